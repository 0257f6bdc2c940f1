//! MQTT in both directions against a real mosquitto, beyond the outbox drain: commands for
//! `mqtt`-triggered components (each handled exactly once by the component's effects, across
//! downtime and a SIGKILL between acknowledgement and dispatch), and key-value namespaces
//! mirrored as retained messages.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use outpost::events::AgentEvent;
use outpost::store::Store;
use outpost_testkit::agent::Agent;
use outpost_testkit::broker::Broker;
use outpost_testkit::seen::Seen;
use outpost_testkit::subscriber::Subscriber;

use crate::OUTPOST;

const DEVICE: &str = "pi-9";
const WAIT: Duration = Duration::from_secs(30);

fn publish(broker: &Broker, payload: &str) {
    let status = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &broker.port().to_string(),
            "-q",
            "1",
        ])
        .args(["-t", &format!("cmd/{DEVICE}/run"), "-m", payload])
        .status()
        .expect("mosquitto_pub runs (package mosquitto-clients, installed by setup.sh)");
    assert!(status.success(), "mosquitto_pub {payload}");
}

fn write_app(dir: &Path) {
    let manifest = format!(
        r#"manifest_version = 1
[app]
name = "commands"
version = "1.0.0"
[[component]]
id = "commands"
source = "{}"
grants = {{ kv = ["cmds"], streams = ["cmd"] }}
limits = {{ fuel = 2_000_000_000 }}
[[component.trigger]]
name = "on-command"
mqtt = "cmd/{DEVICE}/#"
"#,
        outpost_testkit::guests::wat_guest(dir, "slow_command").display()
    );
    std::fs::write(dir.join("outpost.toml"), manifest).expect("manifest");
}

/// Distinct `cmd` events per payload, as the independent subscriber saw them.
fn handled(seen: &Seen) -> BTreeMap<String, usize> {
    let mut distinct: BTreeMap<u64, String> = BTreeMap::new();
    for arrival in seen.events_of(DEVICE).filter(|a| a.stream == "cmd") {
        let data = arrival.event["data"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        distinct.insert(arrival.seq, data);
    }
    let mut per_payload = BTreeMap::new();
    for data in distinct.into_values() {
        *per_payload.entry(data).or_insert(0) += 1;
    }
    per_payload
}

#[test]
fn commands_are_handled_exactly_once_across_downtime_and_sigkill() {
    let broker = Broker::start();
    let subscriber = Subscriber::start(broker.port());
    let app = tempfile::tempdir().expect("temp dir");
    write_app(app.path());
    let data = app.path().join("data");
    let app_arg = app.path().to_str().expect("utf-8 path").to_string();
    let extra = ["--app", app_arg.as_str()];

    // First run: the persistent session and its subscription come into being.
    let mark = broker.log_mark();
    let mut agent = Agent::start(OUTPOST, DEVICE, &broker.url(), &data, &extra);
    broker
        .wait_log_after(mark, WAIT, |line| {
            line.contains("SUBSCRIBE") && line.contains(DEVICE)
        })
        .expect("the agent subscribed");
    agent.terminate();

    // While the agent is down the broker queues commands for its session.
    for n in 1..=3 {
        publish(&broker, &format!("down-{n}"));
    }
    let mut agent = Agent::start(OUTPOST, DEVICE, &broker.url(), &data, &extra);
    for n in 1..=3 {
        publish(&broker, &format!("up-{n}"));
    }
    assert!(
        subscriber.wait_for(WAIT, |seen| handled(seen).len() >= 6),
        "six commands handled; agent output:\n{}",
        agent.output_tail(30)
    );

    // A slow command: kill the agent after it stored and acknowledged it, before its effects.
    let stored_before = agent.count_events(|e| matches!(e, AgentEvent::InboundStored { .. }));
    let outcomes_before = agent.count_events(|e| matches!(e, AgentEvent::Invoked { component, trigger, .. } if component == "commands" && trigger == "on-command"));
    publish(&broker, "slow-1");
    assert!(
        agent.wait_event(
            |e| matches!(e, AgentEvent::InboundStored { .. }),
            stored_before + 1,
            WAIT,
        ),
        "stored and acknowledged"
    );
    agent.kill();
    assert_eq!(
        agent.count_events(|e| matches!(e, AgentEvent::Invoked { component, trigger, .. } if component == "commands" && trigger == "on-command")),
        outcomes_before,
        "the kill landed before the slow command's effects were committed"
    );

    // The restarted agent runs the stored message; the broker does not redeliver it (acked).
    let mut agent = Agent::start(OUTPOST, DEVICE, &broker.url(), &data, &extra);
    assert!(
        subscriber.wait_for(WAIT, |seen| handled(seen).contains_key("slow-1")),
        "the slow command ran after the restart; output:\n{}",
        agent.output_tail(30)
    );
    assert!(
        agent.wait_event(|e| matches!(e, AgentEvent::Invoked { component, trigger, .. } if component == "commands" && trigger == "on-command"), 1, WAIT),
        "the restarted agent ran the stored row itself (it survived the kill in the inbox)"
    );
    agent.terminate();

    let per_payload = subscriber.with(handled);
    let expected = [
        "down-1", "down-2", "down-3", "slow-1", "up-1", "up-2", "up-3",
    ];
    assert_eq!(
        per_payload.keys().map(String::as_str).collect::<Vec<_>>(),
        expected
    );
    assert!(
        per_payload.values().all(|n| *n == 1),
        "each handled exactly once: {per_payload:?}"
    );

    let store = Store::open_dir(&data).expect("state opens");
    let keys: Vec<String> = store
        .kv_entries(Some("commands"), Some("cmds"))
        .expect("kv")
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(keys, expected, "one KV row per command");
    assert!(
        store.inbox_pending().expect("inbox").is_empty(),
        "nothing left in the inbox"
    );
}

#[test]
fn a_synced_kv_namespace_is_readable_retained_from_the_broker() {
    let broker = Broker::start();
    let topic = "outpost/kv-dev/kv/readings/temperature/latest";
    let live = Subscriber::start_with(broker.port(), &["outpost/+/kv/#"]);
    let data = tempfile::tempdir().expect("temp dir");
    outpost_testkit::guests::guest("sampler"); // builds the example's wasm
    let app = outpost_testkit::repo_root().join("bundles/examples/sampler");
    let app = app.to_str().expect("utf-8 path");
    let mut agent = Agent::start(
        OUTPOST,
        "kv-dev",
        &broker.url(),
        data.path(),
        // The manifest's simulated sensor: this machine is not the board it binds to.
        &["--app", app, "--simulate"],
    );
    assert!(
        live.wait_for(WAIT, |seen| seen.messages.iter().any(|m| m.topic == topic)),
        "the sampler's latest reading was published; output:\n{}",
        agent.output_tail(20)
    );
    agent.terminate();

    // With the device gone, a newcomer still reads the latest value: it is retained.
    let late = Subscriber::start_with(broker.port(), &["outpost/+/kv/#"]);
    assert!(late.wait_for(WAIT, |seen| {
        seen.messages.iter().any(|m| m.topic == topic && m.retain)
    }));
    let value = late.with(|seen| {
        let message = seen
            .messages
            .iter()
            .rev()
            .find(|m| m.topic == topic)
            .expect("seen");
        String::from_utf8(message.payload.clone()).expect("utf-8")
    });
    let celsius: f64 = value.parse().expect("a number");
    assert!(
        (17.0..=25.0).contains(&celsius),
        "the simulated sine stays within 21 ± 4: {celsius}"
    );
}

#[test]
fn fleet_tail_prints_each_event_once_and_fleet_status_lists_the_device() {
    let broker = Broker::start();
    let data = tempfile::tempdir().expect("temp dir");
    let committed = outpost_testkit::prefill::prefill(
        data.path(),
        300,
        &["a", "b"],
        outpost::store::OutboxLimits::default(),
    );
    // Tail first (clean session: it only sees what is published after it subscribed).
    let tail = std::process::Command::new(OUTPOST)
        .args([
            "fleet",
            "tail",
            "--broker",
            &broker.url(),
            "--device",
            "tail-dev",
            "--count",
            "300",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("fleet tail starts");
    let mark = broker.log_mark();
    broker
        .wait_log_after(mark, WAIT, |line| line.contains("SUBSCRIBE"))
        .expect("fleet tail subscribed");
    let mut agent = Agent::start(OUTPOST, "tail-dev", &broker.url(), data.path(), &[]);
    let output = tail
        .wait_with_output()
        .expect("fleet tail exits after --count events");
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).expect("utf-8");
    let mut printed: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for line in text.lines() {
        // "HH:MM:SS.mmm tail-dev <stream> #<seq> <data>"
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields[1], "tail-dev", "{line}");
        let seq: u64 = fields[3].trim_start_matches('#').parse().expect("seq");
        printed.entry(fields[2].to_string()).or_default().push(seq);
    }
    assert_eq!(printed, committed, "every event once, in order per stream");

    assert!(agent.wait_event(|e| matches!(e, AgentEvent::Drained), 1, WAIT));
    let status = std::process::Command::new(OUTPOST)
        .args(["fleet", "status", "--broker", &broker.url()])
        .output()
        .expect("fleet status runs");
    let table = String::from_utf8(status.stdout).expect("utf-8");
    let row = table
        .lines()
        .find(|l| l.starts_with("tail-dev"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        row.split_whitespace().nth(1) == Some("yes"),
        "online: {row}"
    );
    agent.terminate();
}
