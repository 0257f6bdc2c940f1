//! Bad input from the network, end to end against a real mosquitto and the real `outpost agent`:
//! an oversize command, a command the component cannot parse, refused credentials and a broker
//! certificate from an unknown CA. Each gives a clear line in the agent's log and a counter in
//! the retained status, and none stops the agent or loses an outbox event.
//!
//! Every wait is for an event (a message the subscriber received, an event the agent emitted, a
//! line mosquitto logged); timeouts are safety nets that fail the test with a diagnosis.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use outpost::events::AgentEvent;
use outpost::store::OutboxLimits;
use outpost_testkit::agent::Agent;
use outpost_testkit::broker::Broker;
use outpost_testkit::delivery::{assert_delivered, check_delivery};
use outpost_testkit::prefill::{open_state, outbox_seqs, prefill};
use outpost_testkit::seen::{Arrival, Seen};
use outpost_testkit::subscriber::{Subscriber, fetch_status};
use serde_json::Value;

use crate::OUTPOST;

/// Safety net for any single wait.
const WAIT: Duration = Duration::from_secs(30);
/// Streams the prefilled events are spread over.
const STREAMS: [&str; 2] = ["readings", "alerts"];
/// Events committed before the agent starts; all must arrive whatever the network did.
const PREFILLED: usize = 300;

/// The topic commands for `device` are published on.
fn command_topic(device: &str) -> String {
    format!("cmd/{device}/run")
}

/// `mosquitto_pub` at QoS 1 to the broker's plain listener; returns once the broker has it.
/// `body` is the arguments naming the payload (`-m TEXT` or `-f FILE`).
fn publish(broker: &Broker, topic: &str, body: &[&str]) {
    let status = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &broker.port().to_string()])
        .args(["-q", "1", "-t", topic])
        .args(body)
        .status()
        .expect("mosquitto_pub runs (package mosquitto-clients, installed by setup.sh)");
    assert!(status.success(), "mosquitto_pub {body:?}");
}

/// An app whose one component, WAT guest `guest`, handles commands for `device`.
fn write_app(dir: &Path, device: &str, guest: &str) {
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
mqtt = "cmd/{device}/#"
"#,
        outpost_testkit::guests::wat_guest(dir, guest).display()
    );
    std::fs::write(dir.join("outpost.toml"), manifest).expect("manifest");
}

/// Starts the agent on `data` with the app in `app` and returns once the broker logged its
/// subscription (commands published before it would not be queued for the agent's session).
fn start_with_app(broker: &Broker, device: &str, app: &Path, data: &Path) -> Agent {
    let app = app.to_str().expect("utf-8 path");
    let mark = broker.log_mark();
    let agent = Agent::start(OUTPOST, device, &broker.url(), data, &["--app", app]);
    assert!(
        broker
            .wait_log_after(mark, WAIT, |line| {
                line.contains("Received SUBSCRIBE") && line.contains(device)
            })
            .is_some(),
        "the agent never subscribed; output:\n{}\n--- mosquitto ---\n{}",
        agent.output_tail(30),
        broker.log_tail(20)
    );
    agent
}

/// The payloads of the distinct `cmd` events of `device` (by seq), as text.
fn commands(seen: &Seen, device: &str) -> Vec<String> {
    let mut distinct: BTreeMap<u64, String> = BTreeMap::new();
    for arrival in seen.events_of(device).filter(|a| a.stream == "cmd") {
        let data = match &arrival.event["data"] {
            Value::String(text) => text.clone(),
            json => json.to_string(),
        };
        distinct.insert(arrival.seq, data);
    }
    distinct.into_values().collect()
}

/// Checks that every prefilled event of `device` arrived, in order per stream, ignoring the
/// `cmd` events the component emitted meanwhile.
fn assert_prefilled_delivered(
    device: &str,
    committed: &BTreeMap<String, Vec<u64>>,
    sub: &Subscriber,
    agent: &Agent,
) {
    assert!(
        sub.wait_for_all(device, committed, WAIT),
        "not every prefilled event arrived ({} of {PREFILLED}); output:\n{}",
        sub.unique(device),
        agent.output_tail(30)
    );
    assert!(sub.problems().is_empty(), "{:?}", sub.problems());
    let arrivals: Vec<Arrival> = sub
        .arrivals()
        .into_iter()
        .filter(|a| a.stream != "cmd")
        .collect();
    check_delivery(device, committed, &arrivals)
        .unwrap_or_else(|problems| panic!("delivery of {device} is wrong:\n{problems}"));
}

/// Waits until a live status of `device` satisfies `pred`, then checks that the retained one
/// (read by a newcomer) does too, and returns it.
fn wait_status(
    broker: &Broker,
    sub: &Subscriber,
    agent: &Agent,
    device: &str,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    assert!(
        sub.wait_for(WAIT, |seen| seen.status(device).is_some_and(&pred)),
        "no status with {what}; latest: {:?}\noutput:\n{}",
        sub.with(|seen| seen.status(device).cloned()),
        agent.output_tail(30)
    );
    let retained = fetch_status(broker.port(), "outpost", device).expect("a retained status");
    assert!(pred(&retained), "retained status lacks {what}: {retained}");
    retained
}

/// SIGTERM; checks the agent was still running until then (it acknowledged the signal) and
/// exited cleanly.
fn stop_cleanly(agent: &mut Agent) {
    let status = agent.terminate();
    // Its last event; the output readers may still be draining the pipes.
    let complete = agent.wait_event(|e| matches!(e, AgentEvent::Stopped), 1, WAIT);
    assert!(
        status.success()
            && complete
            && agent.count_events(|e| matches!(e, AgentEvent::Stopping)) == 1,
        "the agent was not running until SIGTERM or did not stop cleanly ({status}); output:\n{}",
        agent.output_tail(30)
    );
}

#[test]
fn an_oversize_inbound_message_is_refused_counted_and_the_rest_still_run() {
    const DEVICE: &str = "oversize-in";
    let broker = Broker::start();
    let sub = Subscriber::start(broker.port());
    let app = tempfile::tempdir().expect("temp dir");
    write_app(app.path(), DEVICE, "slow_command");
    let data = app.path().join("data");
    let committed = prefill(&data, PREFILLED, &STREAMS, OutboxLimits::default());
    let mut agent = start_with_app(&broker, DEVICE, app.path(), &data);

    // 100 KB: within the packet limit (so the session survives it), over the ABI's 64 KiB.
    let big = app.path().join("big.bin");
    std::fs::write(&big, vec![b'x'; 100 * 1024]).expect("write the big payload");
    let topic = command_topic(DEVICE);
    publish(&broker, &topic, &["-f", big.to_str().expect("utf-8 path")]);
    publish(&broker, &topic, &["-m", "after-the-big-one"]);

    assert!(
        agent.wait_event(
            |e| matches!(e, AgentEvent::InboundRefused { reason, .. }
                if reason.contains("over the 65536-byte limit")),
            1,
            WAIT,
        ),
        "no log line about the oversize message; output:\n{}",
        agent.output_tail(30)
    );
    assert!(
        sub.wait_for(WAIT, |seen| !commands(seen, DEVICE).is_empty()),
        "the normal command was not handled; output:\n{}",
        agent.output_tail(30)
    );
    wait_status(
        &broker,
        &sub,
        &agent,
        DEVICE,
        "sync.inbound_rejected >= 1 and last_error about the limit",
        |st| {
            st["sync"]["inbound_rejected"]
                .as_u64()
                .is_some_and(|n| n >= 1)
                && st["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("over the 65536-byte limit"))
        },
    );
    assert_prefilled_delivered(DEVICE, &committed, &sub, &agent);
    stop_cleanly(&mut agent);

    assert_eq!(
        sub.with(|seen| commands(seen, DEVICE)),
        ["after-the-big-one"],
        "only the normal command ran"
    );
    assert_eq!(
        agent.count_events(|e| matches!(e, AgentEvent::InboundStored { .. })),
        1,
        "only the normal command was stored; output:\n{}",
        agent.output_tail(30)
    );
    let store = open_state(&data);
    assert!(store.inbox_pending().expect("inbox").is_empty());
    assert_eq!(store.counters().expect("counters").failed_invocations, 0);
}

#[test]
fn a_malformed_command_fails_its_invocation_without_stopping_the_agent() {
    const DEVICE: &str = "malformed-in";
    let broker = Broker::start();
    let sub = Subscriber::start(broker.port());
    let app = tempfile::tempdir().expect("temp dir");
    write_app(app.path(), DEVICE, "strict_command");
    let data = app.path().join("data");
    let committed = prefill(&data, PREFILLED, &STREAMS, OutboxLimits::default());
    let mut agent = start_with_app(&broker, DEVICE, app.path(), &data);

    let topic = command_topic(DEVICE);
    publish(&broker, &topic, &["-m", "garbage"]);
    publish(&broker, &topic, &["-m", "{}"]);

    // Stored messages run in order: once "{}" was handled, "garbage" has been tried.
    assert!(
        sub.wait_for(WAIT, |seen| !commands(seen, DEVICE).is_empty()),
        "the well-formed command was not handled; output:\n{}",
        agent.output_tail(30)
    );
    assert!(
        agent.wait_event(
            |e| matches!(e, AgentEvent::Invoked { ok: false, line, .. }
                if line.contains("`unreachable` executed")),
            1,
            WAIT,
        ),
        "the output does not name the trap; output:\n{}",
        agent.output_tail(30)
    );
    assert_eq!(
        agent.count_events(|e| matches!(e, AgentEvent::Invoked { ok: false, .. })),
        1,
        "one failed invocation; output:\n{}",
        agent.output_tail(30)
    );
    wait_status(
        &broker,
        &sub,
        &agent,
        DEVICE,
        "failed_invocations = 1",
        |st| st["failed_invocations"] == 1,
    );
    assert_prefilled_delivered(DEVICE, &committed, &sub, &agent);
    stop_cleanly(&mut agent);

    assert_eq!(sub.with(|seen| commands(seen, DEVICE)), ["{}"]);
    let store = open_state(&data);
    assert!(
        store.inbox_pending().expect("inbox").is_empty(),
        "the failed message left the inbox with its invocation"
    );
    assert_eq!(store.counters().expect("counters").failed_invocations, 1);
}

/// Runs `mosquitto_passwd` with `args`.
pub(crate) fn mosquitto_passwd(args: &[&str]) {
    let status = Command::new("mosquitto_passwd")
        .args(args)
        .status()
        .expect("mosquitto_passwd runs (package mosquitto)");
    assert!(status.success(), "mosquitto_passwd {args:?}");
}

#[test]
fn refused_credentials_are_logged_counted_and_nothing_is_lost() {
    const DEVICE: &str = "bad-password";
    let dir = tempfile::tempdir().expect("temp dir");
    let passwords = dir.path().join("passwords");
    let passwords = passwords.to_str().expect("utf-8 path");
    mosquitto_passwd(&["-c", "-b", passwords, "admin", "not-the-agent"]);
    // The agent meets the password-protected listener; the test's clients use the open one.
    let broker =
        Broker::start_with_listener(&format!("allow_anonymous false\npassword_file {passwords}"));
    let sub = Subscriber::start(broker.port());
    let data = dir.path().join("data");
    let committed = prefill(&data, PREFILLED, &STREAMS, OutboxLimits::default());
    let url = format!("mqtt://127.0.0.1:{}", broker.second_port());
    let mut agent = Agent::start(
        OUTPOST,
        DEVICE,
        &url,
        &data,
        &["--username", "dev", "--password", "wrong"],
    );

    // Refused, and tried again: the agent keeps running.
    assert!(
        agent.wait_event(
            |e| matches!(e, AgentEvent::ConnectFailed { error }
                if error.contains("refused the credentials")),
            2,
            WAIT,
        ),
        "no repeated log line about refused credentials; output:\n{}\n--- mosquitto ---\n{}",
        agent.output_tail(30),
        broker.log_tail(20)
    );
    assert_eq!(sub.unique(DEVICE), 0, "nothing can have been sent yet");

    // The operator fixes the broker side; the agent's reconnect loop finds it by itself.
    mosquitto_passwd(&["-b", passwords, "dev", "wrong"]);
    broker.reload();
    assert!(
        agent.wait_event(|e| matches!(e, AgentEvent::Connected), 1, WAIT),
        "the agent did not connect after the password file was fixed; output:\n{}\n--- mosquitto ---\n{}",
        agent.output_tail(30),
        broker.log_tail(20)
    );
    assert_delivered_all(DEVICE, &committed, &sub, &agent);
    let status = wait_status(
        &broker,
        &sub,
        &agent,
        DEVICE,
        "sync.connect_failures >= 1 and last_error about the credentials",
        |st| {
            st["sync"]["connect_failures"]
                .as_u64()
                .is_some_and(|n| n >= 1)
                && st["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("refused the credentials"))
        },
    );
    eprintln!("status after the fix: {status}");
    stop_after_drain(&mut agent, &data);
}

/// Waits for every committed event of `device`, then checks the delivery (no other streams).
fn assert_delivered_all(
    device: &str,
    committed: &BTreeMap<String, Vec<u64>>,
    sub: &Subscriber,
    agent: &Agent,
) {
    assert!(
        sub.wait_for_all(device, committed, WAIT),
        "not every prefilled event arrived ({} of {PREFILLED}); output:\n{}",
        sub.unique(device),
        agent.output_tail(30)
    );
    assert_delivered(device, committed, sub);
}

/// A failed TLS handshake with the test broker (`localhost`).
fn tls_failed(event: &AgentEvent) -> bool {
    matches!(event, AgentEvent::ConnectFailed { error }
        if error.contains("TLS with the broker at localhost:"))
}

/// Waits for the outbox to drain, stops the agent cleanly and checks the outbox on disk is empty.
fn stop_after_drain(agent: &mut Agent, data: &Path) {
    assert!(
        agent.wait_event(|e| matches!(e, AgentEvent::Drained), 1, WAIT),
        "never drained; output:\n{}",
        agent.output_tail(30)
    );
    stop_cleanly(agent);
    let counters = open_state(data).counters().expect("counters");
    assert_eq!(counters.outbox_records, 0, "{counters:?}");
}

/// Runs `openssl` with `args` (split on whitespace) in `dir`.
fn openssl(dir: &Path, args: &str) {
    let output = Command::new("openssl")
        .args(args.split_whitespace())
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        output.status.success(),
        "openssl {args} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Two CAs (`ca`, `other-ca`) and a server certificate for `localhost` signed by `ca`, as PEM
/// files in `dir`.
pub(crate) fn make_certificates(dir: &Path) {
    let key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    for ca in ["ca", "other-ca"] {
        openssl(
            dir,
            &format!("req -x509 {key} -keyout {ca}.key -out {ca}.pem -days 2 -subj /CN={ca}"),
        );
    }
    std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:localhost\n").expect("ext");
    openssl(
        dir,
        &format!("req {key} -keyout server.key -out server.csr -subj /CN=localhost"),
    );
    openssl(
        dir,
        "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem \
         -days 2 -extfile san.ext",
    );
}

#[test]
fn a_broker_certificate_signed_by_an_unknown_ca_is_refused_and_nothing_is_lost() {
    const DEVICE: &str = "unknown-ca";
    let dir = tempfile::tempdir().expect("temp dir");
    make_certificates(dir.path());
    let path = |name: &str| dir.path().join(name).to_str().expect("utf-8").to_string();
    // The agent meets the TLS listener; the test's clients use the plain one.
    let broker = Broker::start_with_listener(&format!(
        "allow_anonymous true\ncafile {}\ncertfile {}\nkeyfile {}",
        path("ca.pem"),
        path("server.pem"),
        path("server.key")
    ));
    let sub = Subscriber::start(broker.port());
    let data = dir.path().join("data");
    let committed = prefill(&data, PREFILLED, &STREAMS, OutboxLimits::default());
    let url = format!("mqtts://localhost:{}", broker.second_port());
    // The agent trusts the wrong CA.
    let agent_ca = path("agent-ca.pem");
    std::fs::copy(path("other-ca.pem"), &agent_ca).expect("copy the CA");
    let args = ["--ca-file", agent_ca.as_str()];

    let mut agent = Agent::start(OUTPOST, DEVICE, &url, &data, &args);
    assert!(
        agent.wait_event(tls_failed, 2, WAIT),
        "no repeated TLS error; output:\n{}",
        agent.output_tail(30)
    );
    assert!(
        agent.count_events(|e| matches!(e, AgentEvent::ConnectFailed { error }
            if error.contains("UnknownIssuer")))
            >= 1,
        "the TLS error does not name the certificate problem; output:\n{}",
        agent.output_tail(30)
    );
    assert_eq!(sub.unique(DEVICE), 0, "nothing can have been sent");
    stop_cleanly(&mut agent);
    assert_eq!(
        outbox_seqs(&open_state(&data)),
        committed,
        "the outbox is intact after the refused connections"
    );

    // Again, and this time the operator installs the right CA while the agent retries: the
    // CA file is read at every connect, so the agent connects by itself.
    let mut agent = Agent::start(OUTPOST, DEVICE, &url, &data, &args);
    assert!(
        agent.wait_event(tls_failed, 1, WAIT),
        "no TLS error; output:\n{}",
        agent.output_tail(30)
    );
    let staged = path("agent-ca.pem.new");
    std::fs::copy(path("ca.pem"), &staged).expect("copy the CA");
    std::fs::rename(&staged, &agent_ca).expect("install the CA");
    assert_delivered_all(DEVICE, &committed, &sub, &agent);
    let status = wait_status(
        &broker,
        &sub,
        &agent,
        DEVICE,
        "sync.connect_failures >= 1, last_error naming the certificate problem, nothing dropped",
        |st| {
            st["sync"]["connect_failures"]
                .as_u64()
                .is_some_and(|n| n >= 1)
                && st["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("UnknownIssuer"))
                && st["dropped"]["records"] == 0
                && st["sync"]["oversize_rows"] == 0
        },
    );
    eprintln!("status after the fix: {status}");
    stop_after_drain(&mut agent, &data);
}

/// A message larger than the outgoing packet limit (`mqtt.max_packet_bytes`, 256 KiB by
/// default) on a subscribed topic: the transport reads inbound packets up to 1 MiB, so the
/// agent can refuse, count and acknowledge it instead of losing the session over it (which
/// made the broker redeliver it on every reconnect, for ever).
#[test]
fn a_message_over_the_packet_limit_is_refused_counted_and_the_rest_still_run() {
    const DEVICE: &str = "huge-in";
    let broker = Broker::start();
    let sub = Subscriber::start(broker.port());
    let app = tempfile::tempdir().expect("temp dir");
    write_app(app.path(), DEVICE, "slow_command");
    let data = app.path().join("data");
    let committed = prefill(&data, PREFILLED, &STREAMS, OutboxLimits::default());
    let mut agent = start_with_app(&broker, DEVICE, app.path(), &data);
    assert_prefilled_delivered(DEVICE, &committed, &sub, &agent);

    let huge = app.path().join("huge.bin");
    std::fs::write(&huge, vec![b'x'; 300 * 1024]).expect("write the huge payload");
    let topic = command_topic(DEVICE);
    publish(&broker, &topic, &["-f", huge.to_str().expect("utf-8 path")]);
    publish(&broker, &topic, &["-m", "after-the-huge-one"]);
    assert!(
        sub.wait_for(WAIT, |seen| !commands(seen, DEVICE).is_empty()),
        "the normal command was not handled ({} sessions so far); output:\n{}",
        agent.count_events(|e| matches!(e, AgentEvent::Connected)),
        agent.output_tail(30)
    );
    assert!(
        agent.count_events(|e| matches!(e, AgentEvent::InboundRefused { reason, .. }
            if reason.contains("307200 bytes, over the 65536-byte limit")))
            >= 1,
        "no log line naming the size and the limit; output:\n{}",
        agent.output_tail(30)
    );
    wait_status(
        &broker,
        &sub,
        &agent,
        DEVICE,
        "sync.inbound_rejected >= 1",
        |st| {
            st["sync"]["inbound_rejected"]
                .as_u64()
                .is_some_and(|n| n >= 1)
        },
    );
    assert!(
        agent.count_events(|e| matches!(e, AgentEvent::Connected)) <= 2,
        "the agent reconnected over and over; output:\n{}",
        agent.output_tail(30)
    );
    stop_cleanly(&mut agent);
}
