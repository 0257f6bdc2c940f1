//! Fleet updates end to end: a real mosquitto, the real `outpost` binary as operator
//! (`keygen`, `bundle build`, `fleet publish`) and as device (`outpost agent`), bundles built
//! from a WAT guest in this repo.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use outpost::events::AgentEvent;
use outpost::fleet::state::FleetState;
use outpost_testkit::agent::Agent;
use outpost_testkit::beacon::Beacon;
use outpost_testkit::broker::Broker;
use outpost_testkit::fleet::Cli;
use outpost_testkit::prefill::{data_dir, open_state};
use outpost_testkit::proxy::Proxy;
use outpost_testkit::s;
use outpost_testkit::seen::Seen;
use outpost_testkit::subscriber::{EVENTS_FILTER, STATUS_FILTER, Subscriber};

use crate::OUTPOST;

const UPDATES_FILTER: &str = "outpost/+/updates";
const WAIT: Duration = Duration::from_secs(60);

/// The CLI under test.
fn cli() -> Cli {
    Cli::new(OUTPOST)
}

/// Runs `outpost ARGS`, asserting success; returns its stdout.
fn outpost(args: &[&str]) -> String {
    cli().run(args)
}

/// A key pair in `dir`; returns (secret, public).
fn keygen(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    cli().keygen(dir, name)
}

/// What every fleet test starts from: a broker, a subscriber to `filters`, a publisher key pair
/// ("release") and a device's state directory, all in one temporary directory.
struct Fleet {
    dir: tempfile::TempDir,
    broker: Broker,
    sub: Subscriber,
    key: PathBuf,
    public: PathBuf,
    data: PathBuf,
}

impl Fleet {
    fn start(filters: &[&str]) -> Fleet {
        let dir = tempfile::tempdir().expect("tempdir");
        let broker = Broker::start();
        let sub = Subscriber::start_with(broker.port(), filters);
        let (key, public) = keygen(dir.path(), "release");
        let data = data_dir(dir.path());
        Fleet {
            dir,
            broker,
            sub,
            key,
            public,
            data,
        }
    }
}

/// `outpost agent` as `device` on `url` with state in `data`, trusting `public` and following
/// the group `field`, plus `extra` flags.
fn device_agent(device: &str, url: &str, data: &Path, public: &Path, extra: &[&str]) -> Agent {
    let mut args = vec!["--trust", s(public), "--group", "field"];
    args.extend_from_slice(extra);
    Agent::start(OUTPOST, device, url, data, &args)
}

/// Builds version `version` of the `beacon` app emitting `mode` every 100 ms, padded with
/// `padding` bytes of custom section; returns the bundle file.
fn beacon_bundle(dir: &Path, key: &Path, version: &str, mode: &str, padding: usize) -> PathBuf {
    cli().beacon_bundle(dir, key, &Beacon::new(version, mode).padded(padding))
}

/// Publishes `bundle` to the group `field` on `broker`, the release signed with `key`.
fn publish(bundle: &Path, key: &Path, broker: &Broker, extra: &[&str]) {
    cli().publish(bundle, key, &broker.url(), "field", extra);
}

fn has_report(seen: &Seen, device: &str, result: &str, to: &str, reason: &str) -> bool {
    seen.reports(device).iter().any(|r| {
        r["result"] == result
            && r["to_version"] == to
            && r["reason"].as_str().is_some_and(|t| t.contains(reason))
    })
}

/// Events of `device` on `beat` whose data is `mode`.
fn beats(seen: &Seen, device: &str, mode: &str) -> usize {
    seen.events_of(device)
        .filter(|a| a.stream == "beat" && a.event["data"] == mode)
        .count()
}

#[test]
fn upgrade_rollback_and_every_refusal_keep_a_good_version_running() {
    let Fleet {
        dir,
        broker,
        sub,
        key,
        public,
        data,
    } = Fleet::start(&[EVENTS_FILTER, STATUS_FILTER, UPDATES_FILTER]);
    let (other_key, _) = keygen(dir.path(), "stranger");
    let agent = device_agent(
        "pi-1",
        &broker.url(),
        &data,
        &public,
        &["--health-invocations", "5", "--health-max-failures", "1"],
    );
    let wait = |what: &str, condition: &dyn Fn(&Seen) -> bool| {
        assert!(
            sub.wait_for(WAIT, condition),
            "{what}; agent output:\n{}",
            agent.output_tail(40)
        );
    };

    let v1 = beacon_bundle(dir.path(), &key, "1.0.0", "v1", 0);
    publish(&v1, &key, &broker, &[]);
    wait("v1 runs", &|seen| beats(seen, "pi-1", "v1") >= 2);

    publish(
        &beacon_bundle(dir.path(), &key, "2.0.0", "v2", 0),
        &key,
        &broker,
        &[],
    );
    wait("v2 is accepted and its behaviour shows", &|seen| {
        has_report(seen, "pi-1", "accepted", "2.0.0", "verified") && beats(seen, "pi-1", "v2") >= 1
    });
    wait("v2 passes its health window", &|seen| {
        has_report(seen, "pi-1", "confirmed", "2.0.0", "healthy")
    });

    publish(
        &beacon_bundle(dir.path(), &key, "3.0.0", "trap", 0),
        &key,
        &broker,
        &[],
    );
    wait("v3 rolls back to v2", &|seen| {
        seen.reports("pi-1").iter().any(|r| {
            r["result"] == "rolled-back"
                && r["from_version"] == "3.0.0"
                && r["to_version"] == "2.0.0"
                && r["reason"]
                    .as_str()
                    .is_some_and(|t| t.contains("invocations failed"))
        })
    });
    let v2_after_rollback = sub.with(|seen| beats(seen, "pi-1", "v2"));
    wait("v2 runs again after the rollback", &|seen| {
        beats(seen, "pi-1", "v2") > v2_after_rollback + 2
    });

    publish(
        &beacon_bundle(dir.path(), &other_key, "4.0.0", "v4", 0),
        &key,
        &broker,
        &[],
    );
    wait("a bundle signed by an unknown key is refused", &|seen| {
        has_report(seen, "pi-1", "refused", "4.0.0", "signed by unknown key")
    });

    let flipped = beacon_bundle(dir.path(), &key, "5.0.0", "v5", 0);
    let mut bytes = std::fs::read(&flipped).expect("bundle");
    let module = bytes
        .windows(4)
        .position(|w| w == b"\0asm")
        .expect("module inside the bundle");
    bytes[module + 40] ^= 0x04;
    std::fs::write(&flipped, bytes).expect("rewritten");
    publish(&flipped, &key, &broker, &["--force"]);
    wait(
        "a bundle with a flipped bit in a module is refused",
        &|seen| {
            has_report(
                seen,
                "pi-1",
                "refused",
                "5.0.0",
                "module 'beacon' does not match its digest",
            )
        },
    );

    let truncated = beacon_bundle(dir.path(), &key, "6.0.0", "v6", 0);
    let bytes = std::fs::read(&truncated).expect("bundle");
    std::fs::write(&truncated, &bytes[..bytes.len() - 100]).expect("truncated");
    publish(&truncated, &key, &broker, &["--force"]);
    wait("a truncated bundle is refused", &|seen| {
        has_report(seen, "pi-1", "refused", "6.0.0", "truncated")
    });

    // `fleet publish` refuses an older version; forced, the device still refuses it.
    publish(&v1, &key, &broker, &["--force"]);
    wait("a re-published v1 is refused as a downgrade", &|seen| {
        has_report(seen, "pi-1", "refused", "1.0.0", "downgrade refused")
    });

    let v2_now = sub.with(|seen| beats(seen, "pi-1", "v2"));
    wait("v2 keeps running through all of it", &|seen| {
        beats(seen, "pi-1", "v2") > v2_now + 2
            && seen.status("pi-1").is_some_and(|s| {
                s["apps"][0]["name"] == "beacon"
                    && s["apps"][0]["version"] == "2.0.0"
                    && s["apps"][0]["last_update"]
                        .as_str()
                        .is_some_and(|u| u.contains("downgrade refused"))
            })
    });
    sub.with(|seen| {
        for mode in ["trap", "v4", "v5", "v6"] {
            assert_eq!(beats(seen, "pi-1", mode), 0, "{mode} never ran");
        }
        let refused = seen
            .reports("pi-1")
            .iter()
            .filter(|r| r["result"] == "refused")
            .count();
        assert_eq!(
            refused,
            4,
            "each refusal reported once: {:?}",
            seen.reports("pi-1")
        );
    });
    let status = outpost(&["fleet", "status", "--broker", &broker.url()]);
    assert!(status.contains("beacon@2.0.0"), "{status}");
    drop(agent);
}

#[test]
fn a_large_download_resumes_across_cuts_and_a_reboot_without_refetching() {
    let Fleet {
        dir,
        broker,
        sub,
        key,
        public,
        data,
    } = Fleet::start(&[EVENTS_FILTER, UPDATES_FILTER]);
    let proxy = Proxy::start(broker.port());
    let bundle = beacon_bundle(dir.path(), &key, "1.0.0", "big", 1_100_000);
    let size = std::fs::metadata(&bundle).expect("bundle").len();
    assert!(size >= 1 << 20, "the bundle is at least 1 MiB ({size})");
    let args = ["--chunk-window", "2"];
    let mut agent = device_agent("pi-2", &proxy.url(), &data, &public, &args);
    assert!(
        agent.wait_event(|e| matches!(e, AgentEvent::Connected), 1, WAIT),
        "{}",
        agent.output_tail(20)
    );
    // Small chunks, so the download takes long enough to be cut several times.
    publish(&bundle, &key, &broker, &["--chunk-size", "8192"]);
    assert!(
        agent.wait_event(
            |e| matches!(e, AgentEvent::FleetFetching { app, version, .. }
                if app == "beacon" && version == "1.0.0"),
            1,
            WAIT,
        ),
        "{}",
        agent.output_tail(20)
    );
    let base = proxy.downstream_bytes();
    let mut cuts = 0;
    for fraction in [0.15, 0.3, 0.45] {
        let target = base + (size as f64 * fraction) as u64;
        while proxy.downstream_bytes() < target {
            std::thread::sleep(Duration::from_millis(1));
        }
        cuts += usize::from(proxy.cut() > 0);
    }
    // A reboot mid-download: kill -9, start again on the same state.
    let target = base + (size as f64 * 0.6) as u64;
    while proxy.downstream_bytes() < target {
        std::thread::sleep(Duration::from_millis(1));
    }
    agent.kill();
    let agent = device_agent("pi-2", &proxy.url(), &data, &public, &args);
    assert!(
        agent.wait_event(
            |e| matches!(e, AgentEvent::FleetResuming { app, version, .. }
                if app == "beacon" && version == "1.0.0"),
            1,
            WAIT,
        ),
        "{}",
        agent.output_tail(20)
    );
    assert!(
        sub.wait_for(WAIT, |seen| beats(seen, "pi-2", "big") >= 1),
        "the downloaded version runs; agent output:\n{}",
        agent.output_tail(40)
    );
    assert_eq!(cuts, 3, "the link was cut three times during the download");
    let received = proxy.downstream_bytes() - base;
    assert!(
        (received as f64) < 1.5 * size as f64,
        "{received} bytes reached the device for a {size}-byte bundle (over 1.5x)"
    );
    println!(
        "received {received} bytes for a {size}-byte bundle: {:.3}x",
        received as f64 / size as f64
    );
    drop(agent);
}

#[test]
fn kill_during_activation_leaves_exactly_one_complete_version_active() {
    let Fleet {
        dir,
        broker,
        sub,
        key,
        public,
        data,
    } = Fleet::start(&[EVENTS_FILTER, UPDATES_FILTER]);
    let agent = device_agent("pi-3", &broker.url(), &data, &public, &[]);
    publish(
        &beacon_bundle(dir.path(), &key, "1.0.0", "uno", 0),
        &key,
        &broker,
        &[],
    );
    assert!(
        sub.wait_for(WAIT, |seen| beats(seen, "pi-3", "uno") >= 1),
        "{}",
        agent.output_tail(20)
    );
    let mut agent = agent;
    // A large v2 takes a while to verify and compile: the kill lands inside activation.
    publish(
        &beacon_bundle(dir.path(), &key, "2.0.0", "dos", 2_000_000),
        &key,
        &broker,
        &[],
    );
    assert!(
        agent.wait_event(
            |e| matches!(e, AgentEvent::FleetVerifying { app, version }
                if app == "beacon" && version == "2.0.0"),
            1,
            WAIT,
        ),
        "{}",
        agent.output_tail(20)
    );
    agent.kill();

    let active = |data: &Path| {
        let store = open_state(data);
        let state = FleetState::new(store, "unused".into());
        let install = state
            .install("beacon")
            .expect("readable")
            .expect("installed");
        let bytes = state
            .bundle("beacon", &install.active.version)
            .expect("readable")
            .expect("the active version's bundle is stored");
        let verified = outpost_bundle::reopen(&bytes, &install.active.digest, &Default::default())
            .expect("the active bundle is complete");
        assert_eq!(verified.header.version.to_string(), install.active.version);
        install.active.version
    };
    let version = active(&data);
    assert!(["1.0.0", "2.0.0"].contains(&version.as_str()), "{version}");

    let agent = device_agent("pi-3", &broker.url(), &data, &public, &[]);
    assert!(
        agent.wait_event(
            |e| matches!(e, AgentEvent::FleetRunning { app, version: running, .. }
                if app == "beacon" && *running == version),
            1,
            WAIT,
        ),
        "the active version {version} starts after the restart; output:\n{}",
        agent.output_tail(40)
    );
    // If v1 was still active, the retained announcement makes the device fetch v2 again.
    assert!(
        sub.wait_for(WAIT, |seen| beats(seen, "pi-3", "dos") >= 1),
        "v2 ends up running; output:\n{}",
        agent.output_tail(40)
    );
    let mut agent = agent;
    agent.terminate();
    assert_eq!(active(&data), "2.0.0");
    // The last result is kept for the status across restarts.
    let last = FleetState::new(open_state(&data), "unused".into())
        .last_updates()
        .expect("readable");
    assert!(
        last.iter()
            .any(|(app, line)| app == "beacon" && line.contains("-> 2.0.0")),
        "{last:?}"
    );
}

#[test]
fn keygen_and_bundle_inspect_tell_a_good_bundle_from_a_bad_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (key, public) = keygen(dir.path(), "release");
    let (_, stranger) = keygen(dir.path(), "stranger");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).expect("key").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the secret key is private");
    }
    let again = Command::new(OUTPOST)
        .args(["keygen", "--out", s(dir.path()), "--name", "release"])
        .output()
        .expect("runs");
    assert!(
        !again.status.success(),
        "an existing key is never overwritten"
    );

    let bundle = beacon_bundle(dir.path(), &key, "1.2.3", "ok", 0);
    let inspect = |file: &Path, trust: &Path| {
        let output = Command::new(OUTPOST)
            .args(["bundle", "inspect", s(file), "--trust", s(trust)])
            .output()
            .expect("runs");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };
    let (ok, text) = inspect(&bundle, &public);
    assert!(ok, "{text}");
    assert!(
        text.contains("app:       beacon 1.2.3") && text.contains("signature: valid"),
        "{text}"
    );
    assert!(
        text.contains("module:    beacon") && text.contains("mode = \"ok\""),
        "{text}"
    );

    let (ok, text) = inspect(&bundle, &stranger);
    assert!(!ok, "a bundle from another key does not check out: {text}");
    assert!(
        text.contains("signature: NOT VALID: signed by unknown key"),
        "{text}"
    );

    let mut bytes = std::fs::read(&bundle).expect("bundle");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&bundle, bytes).expect("tampered");
    let (ok, text) = inspect(&bundle, &public);
    assert!(!ok, "a tampered bundle does not check out: {text}");
    assert!(text.contains("integrity: BROKEN"), "{text}");

    let refused = Command::new(OUTPOST)
        .args([
            "fleet",
            "publish",
            s(&bundle),
            "--key",
            s(&key),
            "--broker",
            "mqtt://127.0.0.1:1",
            "--group",
            "g",
        ])
        .output()
        .expect("runs");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("not published (--force"),
        "a damaged bundle is not published: {stderr}"
    );
}

/// Publishes `payload` retained at QoS 1 to `topic` and waits for the broker's PUBACK.
fn publish_raw(port: u16, topic: &str, payload: &[u8]) {
    use rumqttc::{Client, Event, MqttOptions, Outgoing, Packet, QoS};
    let mut options = MqttOptions::new(
        outpost_testkit::subscriber::unique_client_id("raw"),
        "127.0.0.1",
        port,
    );
    options.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut connection) = Client::new(options, 10);
    client
        .publish(topic, QoS::AtLeastOnce, true, payload.to_vec())
        .expect("queued");
    let mut sent = false;
    for event in connection.iter() {
        match event.expect("broker reachable") {
            Event::Outgoing(Outgoing::Publish(_)) => sent = true,
            Event::Incoming(Packet::PubAck(_)) if sent => return,
            _ => {}
        }
    }
}

/// Publishes `bundle`'s announcement to group `field` by hand, with the chunks `chunk` returns
/// (`None`: not published at all).
fn publish_by_hand(
    port: u16,
    bundle: &Path,
    key: &Path,
    chunk: impl Fn(usize, &[u8]) -> Option<Vec<u8>>,
) {
    let bytes = std::fs::read(bundle).expect("bundle");
    let announcement = outpost_testkit::fleet::signed_announcement(
        &bytes,
        key,
        &outpost_testkit::fleet::ReleaseSpec::group("field"),
    );
    let digest = announcement.chunks.bundle_digest.short();
    for index in 0..announcement.chunks.count() {
        if let Some(data) = chunk(index, &bytes[announcement.chunks.range(index)]) {
            let topic = format!("outpost/fleet/field/apps/beacon/chunks/{digest}/{index}");
            publish_raw(port, &topic, &data);
        }
    }
    let message = announcement.encode().expect("encodes");
    publish_raw(port, "outpost/fleet/field/apps/beacon", &message);
}

#[test]
fn a_stalled_download_is_abandoned_and_a_bad_chunk_does_not_block_the_genuine_release() {
    let Fleet {
        dir,
        broker,
        sub,
        key,
        public,
        data,
    } = Fleet::start(&[EVENTS_FILTER, UPDATES_FILTER]);
    let agent = device_agent(
        "pi-4",
        &broker.url(),
        &data,
        &public,
        &["--stall-deadline", "2s"],
    );
    assert!(
        agent.wait_event(|e| matches!(e, AgentEvent::Connected), 1, WAIT),
        "{}",
        agent.output_tail(20)
    );
    let abandoned = |seen: &Seen, version: &str, reason: &str| {
        seen.reports("pi-4").iter().any(|r| {
            r["result"] == "abandoned"
                && r["to_version"] == version
                && r["reason"].as_str().is_some_and(|t| t.contains(reason))
        })
    };

    // v1 is announced but its chunks never reach the broker: no progress.
    let v1 = beacon_bundle(dir.path(), &key, "1.0.0", "v1", 5000);
    publish_by_hand(broker.port(), &v1, &key, |_, _| None);
    assert!(
        sub.wait_for(WAIT, |seen| abandoned(seen, "1.0.0", "no progress for 2s")),
        "the stalled download is abandoned; output:\n{}",
        agent.output_tail(30)
    );

    // v2's chunk 3 is garbage on the broker: fetched again, then backed off from, never
    // blacklisted; the genuine chunk published again is taken and v2 installs.
    let v2 = beacon_bundle(dir.path(), &key, "2.0.0", "v2", 5000);
    publish_by_hand(broker.port(), &v2, &key, |index, data| {
        Some(if index == 3 {
            vec![0; data.len()]
        } else {
            data.to_vec()
        })
    });
    assert!(
        agent.wait_event(
            |e| matches!(e, AgentEvent::Problem { area, message }
                if area == "fleet"
                    && message == "chunk 3 of beacon does not match its signed digest; fetching it again"),
            2,
            WAIT
        ),
        "the bad chunk is fetched again; output:\n{}",
        agent.output_tail(30)
    );
    publish_by_hand(broker.port(), &v2, &key, |_, data| Some(data.to_vec()));
    assert!(
        sub.wait_for(WAIT, |seen| has_report(
            seen, "pi-4", "accepted", "2.0.0", "verified"
        )),
        "the genuine release is not blocked by the bad chunk; output:\n{}",
        agent.output_tail(30)
    );
    drop(agent);
}

#[test]
fn a_failing_on_start_trigger_rolls_back_at_once() {
    let Fleet {
        dir,
        broker,
        sub,
        key,
        public,
        data,
    } = Fleet::start(&[EVENTS_FILTER, UPDATES_FILTER]);
    let agent = device_agent("pi-5", &broker.url(), &data, &public, &[]);
    publish(
        &beacon_bundle(dir.path(), &key, "1.0.0", "v1", 0),
        &key,
        &broker,
        &[],
    );
    assert!(
        sub.wait_for(WAIT, |seen| beats(seen, "pi-5", "v1") >= 1),
        "{}",
        agent.output_tail(20)
    );
    // Two failures are tolerated in the window, but not a failed on-start trigger.
    let v2 = cli().beacon_bundle(
        dir.path(),
        &key,
        &Beacon::new("2.0.0", "trap").trigger("on_start = true"),
    );
    publish(&v2, &key, &broker, &[]);
    assert!(
        sub.wait_for(WAIT, |seen| seen.reports("pi-5").iter().any(|r| {
            r["result"] == "rolled-back"
                && r["from_version"] == "2.0.0"
                && r["to_version"] == "1.0.0"
                && r["reason"]
                    .as_str()
                    .is_some_and(|t| t.contains("its on-start trigger 'beacon#1' failed"))
        })),
        "a failed on-start trigger rolls back; output:\n{}",
        agent.output_tail(30)
    );
    let before = sub.with(|seen| beats(seen, "pi-5", "v1"));
    assert!(
        sub.wait_for(WAIT, |seen| beats(seen, "pi-5", "v1") > before),
        "v1 runs again; output:\n{}",
        agent.output_tail(30)
    );
    drop(agent);
}
