//! Fleet trust end to end (issue 15): what an attacker who can publish to the broker (a
//! compromised sibling, no signing key) tries against signed releases, each refused with a clear
//! reason in the device's update report, and none of it blocking the genuine release.

use std::path::PathBuf;
use std::time::Duration;

use outpost::events::AgentEvent;
use outpost_testkit::agent::Agent;
use outpost_testkit::beacon::Beacon;
use outpost_testkit::broker::Broker;
use outpost_testkit::fleet::{Cli, ReleaseSpec, now_ms, signed_announcement};
use outpost_testkit::prefill::data_dir;
use outpost_testkit::s;
use outpost_testkit::seen::Seen;
use outpost_testkit::subscriber::{EVENTS_FILTER, Subscriber};

use crate::OUTPOST;

const WAIT: Duration = Duration::from_secs(60);
const UPDATES: &str = "outpost/+/updates";

/// A broker, a subscriber to events and update reports, a trusted publisher key and a device's
/// state directory.
struct Setup {
    dir: tempfile::TempDir,
    broker: Broker,
    sub: Subscriber,
    key: PathBuf,
    public: PathBuf,
}

impl Setup {
    fn start() -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let broker = Broker::start();
        let sub = Subscriber::start_with(broker.port(), &[EVENTS_FILTER, UPDATES]);
        let (key, public) = Cli::new(OUTPOST).keygen(dir.path(), "release");
        Setup {
            dir,
            broker,
            sub,
            key,
            public,
        }
    }

    /// `outpost agent` as `device` in `groups`, trusting the publisher key.
    fn device(&self, device: &str, groups: &[&str]) -> Agent {
        let data = data_dir(&self.dir.path().join(device));
        let mut args = vec!["--trust", s(&self.public)];
        for group in groups {
            args.extend(["--group", group]);
        }
        let agent = Agent::start(OUTPOST, device, &self.broker.url(), &data, &args);
        assert!(
            agent.wait_event(|e| matches!(e, AgentEvent::Connected), 1, WAIT),
            "{}",
            agent.output_tail(20)
        );
        agent
    }

    /// The beacon bundle `version` emitting `mode`, signed with the publisher key.
    fn bundle(&self, version: &str, mode: &str) -> PathBuf {
        let dir = self.dir.path().join(format!("{version}-{mode}"));
        std::fs::create_dir_all(&dir).expect("dir");
        Cli::new(OUTPOST).beacon_bundle(&dir, &self.key, &Beacon::new(version, mode))
    }

    /// Waits for a report of `device` with `result` whose reason contains `reason`.
    fn wait_report(&self, agent: &Agent, device: &str, result: &str, reason: &str) {
        assert!(
            self.sub
                .wait_for(WAIT, |seen| report(seen, device, result, reason)),
            "no '{result}' report of {device} saying '{reason}'; reports: {:?}\noutput:\n{}",
            self.sub.with(|seen| seen.reports(device)),
            agent.output_tail(30)
        );
    }
}

fn report(seen: &Seen, device: &str, result: &str, reason: &str) -> bool {
    seen.reports(device)
        .iter()
        .any(|r| r["result"] == result && r["reason"].as_str().is_some_and(|t| t.contains(reason)))
}

/// Publishes each `(topic, payload)` (QoS 0 when `qos0`, else QoS 1, never retained: what a
/// sibling device can do) and returns once the last one left.
fn inject(port: u16, messages: &[(String, Vec<u8>)], qos0: bool) {
    use rumqttc::{Client, Event, MqttOptions, Outgoing, Packet, QoS};
    let mut options = MqttOptions::new(
        outpost_testkit::subscriber::unique_client_id("sibling"),
        "127.0.0.1",
        port,
    );
    options.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut connection) = Client::new(options, 64);
    let qos = if qos0 {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    };
    let messages = messages.to_vec();
    let total = messages.len();
    let sender = std::thread::spawn(move || {
        for (topic, payload) in messages {
            client.publish(topic, qos, false, payload).expect("queued");
        }
        client
    });
    let (mut sent, mut acked) = (0, 0);
    for event in connection.iter() {
        match event.expect("broker reachable") {
            Event::Outgoing(Outgoing::Publish(_)) => sent += 1,
            Event::Incoming(Packet::PubAck(_)) => acked += 1,
            _ => {}
        }
        if sent == total && (qos0 || acked == total) {
            break;
        }
    }
    let client = sender.join().expect("sender");
    let _ = client.disconnect();
}

/// The chunk topics and payloads of `announcement`'s bundle under `target`.
fn chunks(
    target: &str,
    bytes: &[u8],
    announcement: &outpost_bundle::Announcement,
) -> Vec<(String, Vec<u8>)> {
    let digest = announcement.chunks.bundle_digest.short();
    (0..announcement.chunks.count())
        .map(|index| {
            (
                format!("outpost/fleet/{target}/apps/beacon/chunks/{digest}/{index}"),
                bytes[announcement.chunks.range(index)].to_vec(),
            )
        })
        .collect()
}

/// The chunks, then the announcement, of a release as the attacker hands it to `target`.
fn replay(port: u16, target: &str, bytes: &[u8], announcement: &outpost_bundle::Announcement) {
    let mut messages = chunks(target, bytes, announcement);
    messages.push((
        format!("outpost/fleet/{target}/apps/beacon"),
        announcement.encode().expect("encodes"),
    ));
    inject(port, &messages, false);
}

fn beats(seen: &Seen, device: &str, mode: &str) -> usize {
    seen.events_of(device)
        .filter(|a| a.stream == "beat" && a.event["data"] == mode)
        .count()
}

#[test]
fn forged_replayed_and_expired_releases_are_refused_and_the_genuine_one_still_installs() {
    let setup = Setup::start();
    let port = setup.broker.port();
    let agent = setup.device("pi-s", &["south"]);
    let v1 = setup.bundle("1.0.0", "v1");
    let bytes = std::fs::read(&v1).expect("bundle");

    // 1. A release signed for group north, replayed by a sibling to group south.
    let north = signed_announcement(&bytes, &setup.key, &ReleaseSpec::group("north"));
    replay(port, "south", &bytes, &north);
    setup.wait_report(
        &agent,
        "pi-s",
        "refused",
        "release metadata targets groups north, not group south",
    );

    // 2. The old unsigned chunk list (announcement format 1) with a crafted chunk digest.
    let inspected =
        outpost_bundle::inspect(&bytes, &outpost_bundle::Limits::default()).expect("inspects");
    let mut crafted =
        outpost_bundle::Announcement::for_bundle(&inspected, &bytes, 1024).expect("cuts");
    crafted.chunks.chunk_digests[0] = outpost_bundle::sha256(b"evil");
    replay(port, "south", &bytes, &crafted);
    setup.wait_report(
        &agent,
        "pi-s",
        "refused",
        "carries no signed release metadata",
    );

    // 3. A genuine release for south with one flipped byte (a crafted chunk list under a
    //    signature that no longer verifies).
    let south = signed_announcement(&bytes, &setup.key, &ReleaseSpec::group("south"));
    let mut flipped = south.clone();
    let release = flipped.release.as_mut().expect("format 2");
    let at = release.bytes.len() - 20;
    release.bytes[at] ^= 0x01;
    replay(port, "south", &bytes, &flipped);
    setup.wait_report(
        &agent,
        "pi-s",
        "refused",
        "signature does not verify against key",
    );

    // 4. A release for south whose metadata expired an hour ago.
    let mut spec = ReleaseSpec::group("south");
    spec.created_ms = now_ms() - 7_200_000;
    spec.expires_ms = now_ms() - 3_600_000;
    let expired = signed_announcement(&bytes, &setup.key, &spec);
    replay(port, "south", &bytes, &expired);
    setup.wait_report(&agent, "pi-s", "refused", "release metadata expired 1h");

    // None of it blocks the genuine release of the very same bundle.
    Cli::new(OUTPOST).publish(&v1, &setup.key, &setup.broker.url(), "south", &[]);
    setup.wait_report(&agent, "pi-s", "accepted", "verified");
    assert!(
        setup
            .sub
            .wait_for(WAIT, |seen| beats(seen, "pi-s", "v1") >= 1),
        "v1 runs"
    );
    assert_eq!(
        setup.sub.with(|seen| seen
            .reports("pi-s")
            .iter()
            .filter(|r| r["result"] == "refused")
            .count()),
        4,
        "each attack refused and reported once"
    );
}

#[test]
fn a_release_for_another_device_is_refused() {
    let setup = Setup::start();
    let agent = setup.device("pi-b", &[]);
    let bytes = std::fs::read(setup.bundle("1.0.0", "v1")).expect("bundle");
    let mut spec = ReleaseSpec::group("x");
    spec.groups.clear();
    spec.devices.push("pi-a".into());
    let for_a = signed_announcement(&bytes, &setup.key, &spec);
    replay(setup.broker.port(), "@pi-b", &bytes, &for_a);
    setup.wait_report(
        &agent,
        "pi-b",
        "refused",
        "release metadata targets devices pi-a, not device pi-b",
    );
}

#[test]
fn twenty_thousand_junk_announcements_cost_a_bounded_number_of_durable_writes() {
    let setup = Setup::start();
    let agent = setup.device("pi-j", &["south"]);
    // Half with valid app names and junk bodies (they reach the updater), half with names no
    // app may have (refused by the fleet route before anything is stored).
    let junk: Vec<(String, Vec<u8>)> = (0..20_000)
        .map(|i| {
            let app = if i % 2 == 0 {
                format!("junk-{i}")
            } else {
                format!("Junk_{i}")
            };
            (
                format!("outpost/fleet/south/apps/{app}"),
                format!("OPA1 junk {i}").into_bytes(),
            )
        })
        .collect();
    let started = std::time::Instant::now();
    inject(setup.broker.port(), &junk, true);
    let sent_in = started.elapsed();
    // The flood reached the device: its updater saw (and dropped) thousands of them.
    let dropped = |agent: &Agent| {
        agent.count_events(|e| {
            matches!(e, AgentEvent::Problem { area, message }
                if area == "fleet" && message.contains("not recorded: over the refusal rate"))
        })
    };
    let deadline = std::time::Instant::now() + WAIT;
    while dropped(&agent) < 5_000 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        dropped(&agent) >= 5_000,
        "the flood reached the updater: {} dropped; output:\n{}",
        dropped(&agent),
        agent.output_tail(10)
    );
    // A genuine release after the flood is taken at once.
    let v1 = setup.bundle("1.0.0", "v1");
    Cli::new(OUTPOST).publish(&v1, &setup.key, &setup.broker.url(), "south", &[]);
    setup.wait_report(&agent, "pi-j", "accepted", "verified");
    let refusal_reports = setup.sub.with(|seen| {
        seen.reports("pi-j")
            .iter()
            .filter(|r| r["result"] == "refused")
            .count()
    });
    let counted = agent.count_events(|e| matches!(e, AgentEvent::InboundRefused { .. }));
    println!(
        "20000 junk announcements sent in {:.2} s: {refusal_reports} refusal reports (durable), {counted} route refusals counted, {} dropped by the updater",
        sent_in.as_secs_f64(),
        dropped(&agent)
    );
    // The burst (10) plus one a minute, whatever the flood; the route's counted refusals too.
    assert!(
        refusal_reports <= 12,
        "{refusal_reports} durable refusal reports"
    );
    assert!(counted <= 12, "{counted} counted route refusals");
}

/// Writes the trust document description `version` listing `publishers` (`(name, key file,
/// apps, targets)`) under the root `root.pub`, signs it with `root.key` and publishes it.
fn publish_trust(setup: &Setup, version: u64, publishers: &[(&str, &PathBuf, &str, &str)]) {
    publish_trust_for(setup, version, "365d", publishers);
}

/// [`publish_trust`] with the document valid for `expires`.
fn publish_trust_for(
    setup: &Setup,
    version: u64,
    expires: &str,
    publishers: &[(&str, &PathBuf, &str, &str)],
) {
    let dir = setup.dir.path();
    let mut text = format!(
        "version = {version}\nexpires = \"{expires}\"\nroots = [\"root.pub\"]\nmax_major_jump = 1\n"
    );
    for (name, key, apps, targets) in publishers {
        text.push_str(&format!(
            "[[publisher]]\nname = \"{name}\"\nkey = \"{}\"\napps = [{apps}]\ntargets = [{targets}]\nexpires = \"90d\"\n",
            key.display()
        ));
    }
    let description = dir.join(format!("trust-{version}.toml"));
    std::fs::write(&description, text).expect("written");
    let out = dir.join(format!("trust-{version}.opd"));
    let cli = Cli::new(OUTPOST);
    cli.run(&[
        "fleet",
        "trust",
        "sign",
        s(&description),
        "--root-key",
        s(&dir.join("root.key")),
        "--out",
        s(&out),
    ]);
    cli.run(&[
        "fleet",
        "trust",
        "publish",
        s(&out),
        "--broker",
        &setup.broker.url(),
    ]);
}

#[test]
fn scoped_keys_a_floor_bound_and_revocation_under_a_root_key() {
    let setup = Setup::start();
    let dir = setup.dir.path();
    let cli = Cli::new(OUTPOST);
    let (_, root_pub) = cli.keygen(dir, "root");
    let (team_a, team_a_pub) = cli.keygen(dir, "team-a");
    let (team_b, team_b_pub) = cli.keygen(dir, "team-b");
    publish_trust(
        &setup,
        1,
        &[
            ("team-a", &team_a_pub, "\"beacon\"", "\"south\""),
            ("team-b", &team_b_pub, "\"other-*\"", "\"*\""),
        ],
    );
    let data = data_dir(&dir.join("pi-r"));
    let args = ["--trust-root", s(&root_pub), "--group", "south"];
    let mut agent = Agent::start(OUTPOST, "pi-r", &setup.broker.url(), &data, &args);
    setup.wait_report(&agent, "pi-r", "accepted", "trust document version 1 taken");
    let bundle = |key: &PathBuf, version: &str, mode: &str| {
        let at = dir.join(format!("{version}-{mode}"));
        std::fs::create_dir_all(&at).expect("dir");
        cli.beacon_bundle(&at, key, &Beacon::new(version, mode))
    };
    let url = setup.broker.url();

    // A key scoped to other apps signs beacon: refused.
    cli.publish(&bundle(&team_b, "1.0.0", "b"), &team_b, &url, "south", &[]);
    setup.wait_report(
        &agent,
        "pi-r",
        "refused",
        "(team-b) may not sign app 'beacon'",
    );

    // The app's own key: accepted.
    cli.publish(
        &bundle(&team_a, "1.1.0", "a"),
        &team_a,
        &url,
        "south",
        &["--force"],
    );
    setup.wait_report(&agent, "pi-r", "accepted", "verified");
    assert!(
        setup
            .sub
            .wait_for(WAIT, |seen| beats(seen, "pi-r", "a") >= 1),
        "1.1.0 runs"
    );

    // A jump of the floor past the bound (1 major version): refused.
    cli.publish(
        &bundle(&team_a, "9.0.0", "nine"),
        &team_a,
        &url,
        "south",
        &[],
    );
    setup.wait_report(
        &agent,
        "pi-r",
        "refused",
        "version floor jump refused: 1.1.0 to 9.0.0",
    );

    // Version 2 of the document drops team-a: what it signed stops, and nothing new is taken.
    publish_trust(
        &setup,
        2,
        &[("team-b", &team_b_pub, "\"other-*\"", "\"*\"")],
    );
    setup.wait_report(
        &agent,
        "pi-r",
        "refused",
        "installed beacon 1.1.0 stopped: key",
    );
    cli.publish(
        &bundle(&team_a, "2.0.0", "two"),
        &team_a,
        &url,
        "south",
        &["--force"],
    );
    setup.wait_report(
        &agent,
        "pi-r",
        "refused",
        "is not a publisher in trust document version 2 (revoked or never listed)",
    );

    // Re-checked at start: the revoked key's installed bundle does not start again; the old
    // document published again is no way back.
    agent.terminate();
    publish_trust(
        &setup,
        1,
        &[("team-a", &team_a_pub, "\"beacon\"", "\"south\"")],
    );
    let agent = Agent::start(OUTPOST, "pi-r", &setup.broker.url(), &data, &args);
    setup.wait_report(
        &agent,
        "pi-r",
        "refused",
        "installed beacon 1.1.0 not started: key",
    );
    // The report is written before the supervisor starts anything: had the app started, its
    // running event would be in the output already.
    assert_eq!(
        agent.count_events(|e| matches!(e, AgentEvent::FleetRunning { .. })),
        0,
        "nothing started"
    );
}

#[test]
fn a_device_whose_trust_document_expired_takes_no_release_and_says_so() {
    let setup = Setup::start();
    let dir = setup.dir.path();
    let cli = Cli::new(OUTPOST);
    let (_, root_pub) = cli.keygen(dir, "root");
    publish_trust_for(
        &setup,
        1,
        "4s",
        &[("release", &setup.public, "\"*\"", "\"*\"")],
    );
    let signed_at = std::time::Instant::now();
    let data = data_dir(&dir.join("pi-x"));
    let args = ["--trust-root", s(&root_pub), "--group", "south"];
    let agent = Agent::start(OUTPOST, "pi-x", &setup.broker.url(), &data, &args);
    setup.wait_report(&agent, "pi-x", "accepted", "trust document version 1 taken");
    // Away for longer than the document lasts (the time itself is what is tested).
    std::thread::sleep(Duration::from_secs(5).saturating_sub(signed_at.elapsed()));
    let v1 = setup.bundle("1.0.0", "v1");
    cli.publish(&v1, &setup.key, &setup.broker.url(), "south", &[]);
    setup.wait_report(
        &agent,
        "pi-x",
        "refused",
        "trust document version 1 expired",
    );
}
