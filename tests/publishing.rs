//! Safe publishing end to end (issue 11, item 5): a real mosquitto, the real `outpost` binary as
//! operator (`bundle build`, `fleet publish|list|withdraw`) and as devices (`outpost agent`).
//! Retained topics are read back with the kit's event-based reader, never after a sleep.

use std::path::{Path, PathBuf};
use std::time::Duration;

use outpost_testkit::agent::Agent;
use outpost_testkit::beacon::Beacon;
use outpost_testkit::broker::Broker;
use outpost_testkit::fleet::Cli;
use outpost_testkit::s;
use outpost_testkit::seen::Seen;
use outpost_testkit::subscriber::{EVENTS_FILTER, Subscriber, fetch_retained};
use serde_json::Value;

use crate::OUTPOST;

const WAIT: Duration = Duration::from_secs(60);

fn cli() -> Cli {
    Cli::new(OUTPOST)
}

/// A bundle of `beacon` `version` emitting `mode`, renamed to `app` unless it is "beacon".
fn bundle(dir: &Path, key: &Path, app: &str, version: &str, mode: &str) -> PathBuf {
    let beacon = Beacon::new(version, mode);
    let path = beacon.write_app(dir);
    let manifest = path.join("outpost.toml");
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    std::fs::write(
        &manifest,
        text.replace("name = \"beacon\"", &format!("name = \"{app}\"")),
    )
    .expect("renamed");
    let out = dir.join(format!("{app}-{version}-{mode}.bundle"));
    cli().run(&[
        "bundle",
        "build",
        s(&path),
        "--key",
        s(key),
        "--out",
        s(&out),
    ]);
    out
}

/// `outpost fleet SUBCOMMAND ... --broker URL TARGET...`, whatever its outcome.
fn fleet(sub: &str, args: &[&str], broker: &Broker, target: &[&str]) -> std::process::Output {
    let url = broker.url();
    let mut all = vec!["fleet", sub];
    all.extend(args);
    all.extend(["--broker", &url]);
    all.extend(target);
    cli().output(&all)
}

fn ok(output: &std::process::Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The digests (16 hex digits) of the retained chunks of `app` under `target`.
fn chunk_digests(broker: &Broker, target: &str, app: &str) -> Vec<String> {
    let mut digests: Vec<String> = fetch_retained(
        broker.port(),
        &format!("outpost/fleet/{target}/apps/{app}/chunks/#"),
    )
    .into_iter()
    .map(|(topic, _)| topic.split('/').nth(6).expect("digest segment").to_string())
    .collect();
    digests.dedup();
    digests
}

fn short_digest(bundle: &Path) -> String {
    outpost_bundle::sha256(&std::fs::read(bundle).expect("bundle")).short()
}

#[test]
fn an_older_version_is_refused_unless_forced_and_replaced_chunks_are_cleared() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start();
    let (key, _) = cli().keygen(dir.path(), "release");
    let group = ["--group", "field"];
    let v2 = bundle(dir.path(), &key, "beacon", "2.0.0", "two");
    ok(&fleet(
        "publish",
        &[s(&v2), "--key", s(&key)],
        &broker,
        &group,
    ));

    let v1 = bundle(dir.path(), &key, "beacon", "1.0.0", "one");
    let refused = fleet("publish", &[s(&v1), "--key", s(&key)], &broker, &group);
    assert_eq!(refused.status.code(), Some(1), "refused with exit code 1");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("group field is offered beacon 2.0.0; 1.0.0 is not above it")
            && stderr.contains("--force")
            && stderr.lines().count() == 1,
        "one line naming both versions and the fix: {stderr}"
    );
    let same = fleet("publish", &[s(&v2), "--key", s(&key)], &broker, &group);
    assert!(
        !same.status.success(),
        "the same version again is refused too"
    );
    assert_eq!(
        chunk_digests(&broker, "field", "beacon"),
        [short_digest(&v2)]
    );

    let v3 = bundle(dir.path(), &key, "beacon", "3.0.0", "three");
    let stdout = ok(&fleet(
        "publish",
        &[s(&v3), "--key", s(&key)],
        &broker,
        &group,
    ));
    assert!(
        stdout.contains("replaced beacon 2.0.0: cleared its"),
        "{stdout}"
    );
    assert_eq!(
        chunk_digests(&broker, "field", "beacon"),
        [short_digest(&v3)],
        "only the offered version's chunks stay retained"
    );

    let forced = fleet(
        "publish",
        &[s(&v1), "--key", s(&key), "--force"],
        &broker,
        &group,
    );
    let stdout = ok(&forced);
    assert!(
        String::from_utf8_lossy(&forced.stderr).contains("replacing the offer anyway (--force)")
    );
    assert!(
        stdout.contains("published beacon 1.0.0 to group field"),
        "{stdout}"
    );
    assert_eq!(
        chunk_digests(&broker, "field", "beacon"),
        [short_digest(&v1)]
    );
}

#[test]
fn list_shows_what_a_target_is_offered_and_withdraw_clears_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start();
    let (key, _) = cli().keygen(dir.path(), "release");
    let group = ["--group", "field"];
    let beacon = bundle(dir.path(), &key, "beacon", "1.4.0", "b");
    let echo = bundle(dir.path(), &key, "echo", "0.2.0", "e");
    ok(&fleet(
        "publish",
        &[s(&beacon), "--key", s(&key)],
        &broker,
        &group,
    ));
    ok(&fleet(
        "publish",
        &[s(&echo), "--key", s(&key)],
        &broker,
        &group,
    ));
    ok(&fleet(
        "publish",
        &[s(&echo), "--key", s(&key)],
        &broker,
        &["--device", "pi-9"],
    ));

    let table = ok(&fleet("list", &[], &broker, &group));
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("APP"), "{table}");
    assert!(
        lines[1].starts_with("beacon") && lines[1].contains("1.4.0"),
        "{table}"
    );
    assert!(
        lines[2].starts_with("echo") && lines[2].contains("0.2.0"),
        "{table}"
    );

    let json: Value =
        serde_json::from_str(&ok(&fleet("list", &["--json"], &broker, &group))).expect("json");
    let offers = json["offers"].as_array().expect("offers");
    assert_eq!(offers.len(), 2, "{json}");
    let bytes = std::fs::read(&beacon).expect("bundle");
    assert_eq!(offers[0]["app"], "beacon");
    assert_eq!(offers[0]["version"], "1.4.0");
    assert_eq!(offers[0]["bundle_bytes"], bytes.len() as u64);
    assert_eq!(
        offers[0]["sha256"],
        outpost_bundle::sha256(&bytes).to_string()
    );
    assert!(offers[0]["created_ms"].as_i64().is_some_and(|t| t > 0));

    let device: Value = serde_json::from_str(&ok(&fleet(
        "list",
        &["--json"],
        &broker,
        &["--device", "pi-9"],
    )))
    .expect("json");
    assert_eq!(device["target"], "@pi-9");
    assert_eq!(
        device["offers"].as_array().map(Vec::len),
        Some(1),
        "{device}"
    );
    assert_eq!(device["offers"][0]["app"], "echo");

    let stdout = ok(&fleet("withdraw", &["beacon"], &broker, &group));
    assert!(
        stdout.contains("withdrew beacon 1.4.0 from group field"),
        "{stdout}"
    );
    assert!(
        fetch_retained(broker.port(), "outpost/fleet/field/apps/beacon/#").is_empty(),
        "neither the announcement nor a chunk stays retained"
    );
    let table = ok(&fleet("list", &[], &broker, &group));
    assert!(
        !table.contains("beacon") && table.contains("echo"),
        "{table}"
    );
    let again = fleet("withdraw", &["beacon"], &broker, &group);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("group field is not offered beacon"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    ok(&fleet(
        "withdraw",
        &["echo"],
        &broker,
        &["--device", "pi-9"],
    ));
    let empty = ok(&fleet("list", &[], &broker, &["--device", "pi-9"]));
    assert!(empty.contains("device pi-9 is offered nothing"), "{empty}");
    assert!(
        fetch_retained(broker.port(), "outpost/fleet/#")
            .iter()
            .all(|(topic, _)| topic.starts_with("outpost/fleet/field/apps/echo")),
        "only the group's echo offer is left"
    );
}

/// Events of `device` on `beat` whose data is `mode`.
fn beats(seen: &Seen, device: &str, mode: &str) -> usize {
    seen.events_of(device)
        .filter(|a| a.stream == "beat" && a.event["data"] == mode)
        .count()
}

#[test]
fn a_device_offer_installs_on_that_device_only_and_a_withdrawal_uninstalls_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start();
    let sub = Subscriber::start_with(broker.port(), &[EVENTS_FILTER, "outpost/+/updates"]);
    let (key, public) = cli().keygen(dir.path(), "release");
    let agent = |device: &str, extra: &[&str]| {
        let mut args = vec!["--trust", s(&public)];
        args.extend(extra);
        Agent::start(
            OUTPOST,
            device,
            &broker.url(),
            &dir.path().join(device),
            &args,
        )
    };
    let a = agent("pi-a", &["--group", "field"]);
    let b = agent("pi-b", &["--group", "field"]);
    // No group at all: a test board that only trusts the publisher still takes its own offers.
    let c = agent("pi-c", &[]);
    let tails = || {
        format!(
            "pi-a:\n{}\npi-b:\n{}\npi-c:\n{}",
            a.output_tail(20),
            b.output_tail(20),
            c.output_tail(20)
        )
    };
    let wait = |what: &str, condition: &dyn Fn(&Seen) -> bool| {
        assert!(
            sub.wait_for(WAIT, condition),
            "{what}; agents:\n{}",
            tails()
        );
    };

    let grp = bundle(dir.path(), &key, "beacon", "1.0.0", "grp");
    ok(&fleet(
        "publish",
        &[s(&grp), "--key", s(&key)],
        &broker,
        &["--group", "field"],
    ));
    wait("both group members run the group's offer", &|seen| {
        beats(seen, "pi-a", "grp") >= 1 && beats(seen, "pi-b", "grp") >= 1
    });

    let dev = bundle(dir.path(), &key, "beacon", "1.1.0-dev.1", "dev");
    ok(&fleet(
        "publish",
        &[s(&dev), "--key", s(&key)],
        &broker,
        &["--device", "pi-a"],
    ));
    ok(&fleet(
        "publish",
        &[s(&dev), "--key", s(&key)],
        &broker,
        &["--device", "pi-c"],
    ));
    wait("pi-a and pi-c run their device offer", &|seen| {
        beats(seen, "pi-a", "dev") >= 1 && beats(seen, "pi-c", "dev") >= 1
    });
    let b_now = sub.with(|seen| beats(seen, "pi-b", "grp"));
    wait("pi-b keeps running the group's offer", &|seen| {
        beats(seen, "pi-b", "grp") >= b_now + 3
    });

    // A newer group offer below pi-a's own version: pi-b takes it, pi-a's floor refuses it.
    let grp2 = bundle(dir.path(), &key, "beacon", "1.0.1", "grp2");
    ok(&fleet(
        "publish",
        &[s(&grp2), "--key", s(&key)],
        &broker,
        &["--group", "field"],
    ));
    wait("pi-b moves on, pi-a refuses the lower version", &|seen| {
        beats(seen, "pi-b", "grp2") >= 1
            && seen.messages.iter().any(|m| {
                m.topic == "outpost/pi-a/updates"
                    && serde_json::from_slice::<Value>(&m.payload).is_ok_and(|r| {
                        r["result"] == "refused"
                            && r["to_version"] == "1.0.1"
                            && r["reason"]
                                .as_str()
                                .is_some_and(|t| t.contains("downgrade refused"))
                    })
            })
    });

    // Withdrawn offers stop new installs; what runs keeps running.
    ok(&fleet(
        "withdraw",
        &["beacon"],
        &broker,
        &["--group", "field"],
    ));
    ok(&fleet(
        "withdraw",
        &["beacon"],
        &broker,
        &["--device", "pi-a"],
    ));
    let (a_now, b_now) = sub.with(|seen| (beats(seen, "pi-a", "dev"), beats(seen, "pi-b", "grp2")));
    wait("both keep running after the withdrawals", &|seen| {
        beats(seen, "pi-a", "dev") >= a_now + 3 && beats(seen, "pi-b", "grp2") >= b_now + 3
    });
    sub.with(|seen| {
        assert_eq!(beats(seen, "pi-b", "dev"), 0, "pi-b never ran pi-a's offer");
        assert_eq!(
            beats(seen, "pi-a", "grp2"),
            0,
            "pi-a never went below its own offer"
        );
        assert_eq!(beats(seen, "pi-c", "grp"), 0, "pi-c follows no group");
    });
    drop((a, b, c));
}

#[test]
fn bundle_build_and_fleet_publish_refuse_what_every_device_refuses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (key, _) = cli().keygen(dir.path(), "release");
    // The beacon emits to `beat` but this manifest grants it no stream: no device loads it.
    let app = Beacon::new("1.0.0", "x").write_app(dir.path());
    let manifest = app.join("outpost.toml");
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    std::fs::write(&manifest, text.replace("streams = [\"beat\"]\n", "")).expect("written");
    let out = dir.path().join("ungranted.bundle");
    let build = cli().output(&[
        "bundle",
        "build",
        s(&app),
        "--key",
        s(&key),
        "--out",
        s(&out),
    ]);
    assert!(!build.status.success());
    let stderr = String::from_utf8_lossy(&build.stderr);
    assert!(
        stderr.contains("every device would refuse this bundle") && stderr.contains("emit"),
        "{stderr}"
    );
    assert!(!out.exists(), "nothing written");

    // The same bundle signed by hand reaches `fleet publish`, which refuses it just the same.
    let secret = outpost_bundle::SecretKey::parse(&std::fs::read_to_string(&key).expect("key"))
        .expect("secret key");
    let resolved = std::fs::read_to_string(&manifest).expect("manifest");
    let wasm = std::fs::read(app.join("beacon.wasm")).expect("wasm");
    let bytes = outpost_bundle::pack(
        "beacon",
        "1.0.0",
        &resolved,
        &[outpost_bundle::ModuleInput {
            id: "beacon",
            wasm: &wasm,
        }],
        &secret,
        1,
    )
    .expect("packs");
    std::fs::write(&out, bytes).expect("written");
    let publish = cli().output(&[
        "fleet",
        "publish",
        s(&out),
        "--key",
        s(&key),
        "--broker",
        "mqtt://127.0.0.1:1",
        "--group",
        "g",
    ]);
    assert!(!publish.status.success());
    let stderr = String::from_utf8_lossy(&publish.stderr);
    assert!(
        stderr.contains("not published (--force") && stderr.contains("emit"),
        "{stderr}"
    );
}

/// Publishes only `bundle`'s announcement to `topic` (retained, QoS 1), none of its chunks, and
/// waits for the broker's PUBACK: a download that cannot progress.
fn announce_only(port: u16, topic: &str, bundle: &Path, key: &Path, device: &str) {
    use rumqttc::{Client, Event, MqttOptions, Outgoing, Packet, QoS};
    let bytes = std::fs::read(bundle).expect("bundle");
    let mut spec = outpost_testkit::fleet::ReleaseSpec::group("unused");
    spec.groups.clear();
    spec.devices.push(device.into());
    spec.chunk_size = 32 * 1024;
    let announcement = outpost_testkit::fleet::signed_announcement(&bytes, key, &spec)
        .encode()
        .expect("encodes");
    let mut options = MqttOptions::new(
        outpost_testkit::subscriber::unique_client_id("announce"),
        "127.0.0.1",
        port,
    );
    options.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut connection) = Client::new(options, 10);
    client
        .publish(topic, QoS::AtLeastOnce, true, announcement)
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

#[test]
fn a_withdrawal_stops_a_download_and_the_same_bundle_can_be_offered_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start();
    let sub = Subscriber::start_with(broker.port(), &[EVENTS_FILTER, "outpost/+/updates"]);
    let (key, public) = cli().keygen(dir.path(), "release");
    let agent = Agent::start(
        OUTPOST,
        "pi-w",
        &broker.url(),
        &dir.path().join("pi-w"),
        &["--trust", s(&public)],
    );
    let v1 = bundle(dir.path(), &key, "beacon", "1.0.0", "back");
    announce_only(
        broker.port(),
        "outpost/fleet/@pi-w/apps/beacon",
        &v1,
        &key,
        "pi-w",
    );
    assert!(
        agent.wait_event(
            |e| matches!(e, outpost::events::AgentEvent::FleetFetching { app, .. } if app == "beacon"),
            1,
            WAIT
        ),
        "{}",
        agent.output_tail(20)
    );
    ok(&fleet(
        "withdraw",
        &["beacon"],
        &broker,
        &["--device", "pi-w"],
    ));
    assert!(
        sub.wait_for(WAIT, |seen| seen.messages.iter().any(|m| {
            m.topic == "outpost/pi-w/updates"
                && serde_json::from_slice::<Value>(&m.payload).is_ok_and(|r| {
                    r["result"] == "abandoned"
                        && r["reason"]
                            .as_str()
                            .is_some_and(|t| t.contains("the offer to device pi-w was withdrawn"))
                })
        })),
        "the download ends when its offer is withdrawn; output:\n{}",
        agent.output_tail(30)
    );
    ok(&fleet(
        "publish",
        &[s(&v1), "--key", s(&key)],
        &broker,
        &["--device", "pi-w"],
    ));
    assert!(
        sub.wait_for(WAIT, |seen| beats(seen, "pi-w", "back") >= 1),
        "the same bundle offered again installs; output:\n{}",
        agent.output_tail(30)
    );
    drop(agent);
}
