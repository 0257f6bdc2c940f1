//! Issue 10, item 2: no inbound message ends a session. A device with a 2 MiB message waiting
//! on each topic it subscribes to (an `mqtt` trigger's and the fleet announcements', retained
//! and queued in its persistent session) stays online, keeps delivering events, handles the
//! commands queued behind the poison, and counts every refusal persistently; under MQTT 5 (and
//! then a message over its Maximum Packet Size too, which the broker drops) and under 3.1.1. A
//! device whose broker refuses MQTT 5 speaks 3.1.1 by itself and says so.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use outpost::events::AgentEvent;
use outpost_testkit::agent::Agent;
use outpost_testkit::broker::Broker;
use outpost_testkit::guests::wat_guest;
use outpost_testkit::seen::Seen;
use outpost_testkit::subscriber::Subscriber;

use crate::OUTPOST;

const DEVICE: &str = "pi-poison";
const WAIT: Duration = Duration::from_secs(30);
/// The poison: larger than anything a route takes (inbox 64 KiB, fleet 1 MiB).
const BIG: usize = 2 << 20;
/// Over the agent's default `max_incoming_packet_bytes` (4 MiB).
const HUGE: usize = 5 << 20;

fn mosquitto_pub(broker: &Broker, topic: &str, retain: bool, payload: Payload<'_>) {
    let mut command = Command::new("mosquitto_pub");
    command
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &broker.port().to_string(),
            "-q",
            "1",
        ])
        .args(["-t", topic]);
    if retain {
        command.arg("-r");
    }
    match payload {
        Payload::Text(text) => command.args(["-m", text]),
        Payload::File(path) => command.arg("-f").arg(path),
    };
    let status = command.status().expect("mosquitto_pub runs");
    assert!(status.success(), "mosquitto_pub to {topic}");
}

enum Payload<'a> {
    Text(&'a str),
    File(&'a Path),
}

/// An app with a command handler on `cmd/DEVICE/#` and a beacon emitting every 100 ms.
fn write_app(dir: &Path) {
    let manifest = format!(
        r#"manifest_version = 1
[app]
name = "poisoned"
version = "1.0.0"
[variables]
mode = "beat"
[[component]]
id = "commands"
source = "{}"
grants = {{ kv = ["cmds"], streams = ["cmd"] }}
[[component.trigger]]
name = "on-command"
mqtt = "cmd/{DEVICE}/#"
[[component]]
id = "beacon"
source = "{}"
grants = {{ streams = ["beat"], config = ["mode"] }}
[[component.trigger]]
name = "tick"
interval = "100ms"
"#,
        wat_guest(dir, "slow_command").display(),
        wat_guest(dir, "beacon").display(),
    );
    std::fs::write(dir.join("outpost.toml"), manifest).expect("manifest");
}

fn commands(seen: &Seen) -> Vec<String> {
    seen.events_of(DEVICE)
        .filter(|a| a.stream == "cmd")
        .map(|a| a.event["data"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn beats(seen: &Seen) -> usize {
    seen.events_of(DEVICE)
        .filter(|a| a.stream == "beat")
        .count()
}

fn poison_every_topic(protocol: &str) {
    let broker = Broker::start();
    let subscriber = Subscriber::start(broker.port());
    let app = tempfile::tempdir().expect("temp dir");
    write_app(app.path());
    let data = app.path().join("data");
    let app_arg = app.path().to_str().expect("utf-8 path").to_string();
    let extra = [
        "--app",
        app_arg.as_str(),
        "--group",
        "north",
        "--mqtt-protocol",
        protocol,
    ];
    let announcements = "outpost/fleet/north/apps/+".to_string();
    // mosquitto logs the protocol of each client: p5 is MQTT 5, p2 is 3.1.1.
    let client_mark = if protocol == "5" { "(p5," } else { "(p2," };

    // First run: the persistent session and both subscriptions come into being.
    let mark = broker.log_mark();
    let mut agent = Agent::start(OUTPOST, DEVICE, &broker.url(), &data, &extra);
    for filter in [format!("cmd/{DEVICE}/#"), announcements.clone()] {
        broker
            .wait_log_after(mark, WAIT, |line| line.contains(&filter))
            .unwrap_or_else(|| panic!("the agent subscribed to {filter}"));
    }
    let connected = broker
        .wait_log_after(mark, WAIT, |line| line.contains(&format!("as {DEVICE} (")))
        .expect("the agent connected");
    assert!(
        connected.contains(client_mark),
        "MQTT {protocol} expected: {connected}"
    );
    agent.terminate();

    // While it is away: 2 MiB on every topic, retained and queued, then a good command.
    let big = app.path().join("big.bin");
    std::fs::write(&big, vec![b'x'; BIG]).expect("write poison");
    let cmd = format!("cmd/{DEVICE}/run");
    mosquitto_pub(&broker, &cmd, true, Payload::File(&big));
    mosquitto_pub(&broker, &cmd, false, Payload::File(&big));
    mosquitto_pub(
        &broker,
        "outpost/fleet/north/apps/pump",
        true,
        Payload::File(&big),
    );
    mosquitto_pub(
        &broker,
        "outpost/fleet/north/apps/valve",
        false,
        Payload::File(&big),
    );
    if protocol == "5" {
        // Over our Maximum Packet Size: the broker must drop it rather than send it.
        let huge = app.path().join("huge.bin");
        std::fs::write(&huge, vec![b'y'; HUGE]).expect("write huge poison");
        mosquitto_pub(&broker, &cmd, false, Payload::File(&huge));
    }
    mosquitto_pub(&broker, &cmd, false, Payload::Text("after-poison"));

    // Second run: everything queued arrives; the poison is refused, the rest handled.
    let mark = broker.log_mark();
    let mut agent = Agent::start(OUTPOST, DEVICE, &broker.url(), &data, &extra);
    assert!(
        subscriber.wait_for(WAIT, |seen| commands(seen).contains(&"after-poison".into())),
        "the command queued behind the poison was handled; agent output:\n{}",
        agent.output_tail(40)
    );
    mosquitto_pub(&broker, &cmd, false, Payload::Text("while-up"));
    assert!(
        subscriber.wait_for(WAIT, |seen| commands(seen).contains(&"while-up".into())),
        "a new command was handled; agent output:\n{}",
        agent.output_tail(40)
    );
    let beats_now = subscriber.with(beats);
    assert!(
        subscriber.wait_for(WAIT, |seen| beats(seen) >= beats_now + 10),
        "events keep flowing"
    );
    // Refusals are reported as they happen, and counted: 2 on the trigger's topic and 2 on
    // the fleet's (the retained ones again on each subscribe, so at least 4).
    assert!(
        agent.wait_event(|e| matches!(e, AgentEvent::InboundRefused { .. }), 4, WAIT),
        "four refusals reported; agent output:\n{}",
        agent.output_tail(40)
    );
    let status = status_with(&subscriber, |s| {
        s["sync"]["inbound_rejected"].as_u64() >= Some(4)
    });
    assert_eq!(status["online"], true, "{status}");
    assert_eq!(
        status["sync"]["connects"], 1,
        "one session all along: no message ended it; {status}"
    );
    assert_eq!(
        agent.count_events(|e| matches!(e, AgentEvent::Disconnected { .. })),
        0,
        "{}",
        agent.output_tail(40)
    );
    if protocol == "5" {
        broker
            .wait_log_after(mark, WAIT, |line| {
                line.contains("Dropping too large outgoing PUBLISH")
            })
            .expect("the broker dropped the message over our Maximum Packet Size");
    }
    let refused = status["sync"]["inbound_rejected"].as_u64().unwrap_or(0);
    agent.terminate();

    // Third run: the count survived; the device is online at once.
    let mut agent = Agent::start(OUTPOST, DEVICE, &broker.url(), &data, &extra);
    let status = status_with(&subscriber, |s| {
        s["online"] == true && s["sync"]["connects"] == 1
    });
    assert!(
        status["sync"]["inbound_rejected"].as_u64() >= Some(refused),
        "the refusal count is persistent: {status}"
    );
    mosquitto_pub(&broker, &cmd, false, Payload::Text("third-run"));
    assert!(
        subscriber.wait_for(WAIT, |seen| commands(seen).contains(&"third-run".into())),
        "handled in the third run; agent output:\n{}",
        agent.output_tail(40)
    );
    agent.terminate();
}

/// The device's latest status, once one satisfies `ok` (one comes every second).
fn status_with(
    subscriber: &Subscriber,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let matched = subscriber.wait_for(WAIT, |seen| seen.status(DEVICE).is_some_and(&ok));
    let status = subscriber.with(|seen| seen.status(DEVICE).cloned());
    let status = status.expect("a status");
    assert!(matched, "status never matched: {status}");
    status
}

#[test]
fn mqtt5_poison_on_every_topic_never_ends_the_session() {
    poison_every_topic("5");
}

#[test]
fn mqtt311_poison_on_every_topic_never_ends_the_session() {
    poison_every_topic("3.1.1");
}

/// A broker that speaks only MQTT 3.1.1 in front of the real one: an MQTT 5 CONNECT is read
/// whole and answered as a 3.1.1 broker does (CONNACK 0x01, "unacceptable protocol version",
/// then close); any other connection is forwarded. Returns its port.
fn mqtt311_only(target: u16) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind gate");
    let port = listener.local_addr().expect("gate address").port();
    std::thread::spawn(move || {
        for inbound in listener.incoming() {
            let Ok(inbound) = inbound else { return };
            std::thread::spawn(move || gate(inbound, target));
        }
    });
    port
}

fn gate(mut inbound: TcpStream, target: u16) {
    // Fixed header byte, remaining length (1 to 4 bytes), then "\0\x04MQTT" and the level.
    let mut head = vec![0u8; 1];
    if inbound.read_exact(&mut head).is_err() {
        return;
    }
    let mut remaining = 0usize;
    for shift in (0..4).map(|i| 7 * i) {
        let mut byte = [0u8; 1];
        if inbound.read_exact(&mut byte).is_err() {
            return;
        }
        head.push(byte[0]);
        remaining |= usize::from(byte[0] & 0x7f) << shift;
        if byte[0] & 0x80 == 0 {
            break;
        }
    }
    let mut body = vec![0u8; remaining];
    if remaining < 7 || inbound.read_exact(&mut body).is_err() {
        return;
    }
    if body[6] == 5 {
        let _ = inbound.write_all(&[0x20, 0x02, 0x00, 0x01]);
        let _ = inbound.shutdown(Shutdown::Write);
        let _ = inbound.read_to_end(&mut body);
        return;
    }
    let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", target)) else {
        return;
    };
    head.extend_from_slice(&body);
    if outbound.write_all(&head).is_err() {
        return;
    }
    let pipe = |mut from: TcpStream, mut to: TcpStream| {
        std::thread::spawn(move || {
            let mut buffer = [0u8; 16 * 1024];
            while let Ok(n @ 1..) = from.read(&mut buffer) {
                if to.write_all(&buffer[..n]).is_err() {
                    break;
                }
            }
            let _ = to.shutdown(Shutdown::Both);
        });
    };
    let (Ok(inbound_copy), Ok(outbound_copy)) = (inbound.try_clone(), outbound.try_clone()) else {
        return;
    };
    pipe(inbound_copy, outbound);
    pipe(outbound_copy, inbound);
}

#[test]
fn a_broker_that_refuses_mqtt5_gets_a_311_device_that_says_so_and_refuses_poison() {
    let broker = Broker::start();
    let subscriber = Subscriber::start(broker.port());
    let gate = mqtt311_only(broker.port());
    let app = tempfile::tempdir().expect("temp dir");
    write_app(app.path());
    let data = app.path().join("data");
    let app_arg = app.path().to_str().expect("utf-8 path").to_string();
    let url = format!("mqtt://127.0.0.1:{gate}");
    let mark = broker.log_mark();
    let mut agent = Agent::start(OUTPOST, DEVICE, &url, &data, &["--app", app_arg.as_str()]);
    assert!(
        agent.wait_event(|e| matches!(e, AgentEvent::Problem { message, .. } if message.contains("refused MQTT 5")), 1, WAIT),
        "the fallback is reported; agent output:\n{}\nbroker log:\n{}",
        agent.output_tail(20),
        broker.log_tail(20)
    );
    let connected = broker
        .wait_log_after(mark, WAIT, |line| line.contains(&format!("as {DEVICE} (")))
        .expect("the agent connected");
    assert!(
        connected.contains("(p2,"),
        "MQTT 3.1.1 expected: {connected}"
    );
    broker
        .wait_log_after(mark, WAIT, |line| line.contains(&format!("cmd/{DEVICE}/#")))
        .expect("the agent subscribed");

    // The 3.1.1 session reads a 2 MiB command, refuses it, and carries on.
    let big = app.path().join("big.bin");
    std::fs::write(&big, vec![b'x'; BIG]).expect("write poison");
    let cmd = format!("cmd/{DEVICE}/run");
    mosquitto_pub(&broker, &cmd, false, Payload::File(&big));
    mosquitto_pub(&broker, &cmd, false, Payload::Text("after-poison"));
    assert!(
        subscriber.wait_for(WAIT, |seen| commands(seen).contains(&"after-poison".into())),
        "handled after the poison; agent output:\n{}",
        agent.output_tail(40)
    );
    let status = status_with(&subscriber, |s| {
        s["sync"]["inbound_rejected"].as_u64() >= Some(1)
    });
    assert_eq!(status["online"], true, "{status}");
    assert_eq!(status["sync"]["connects"], 1, "{status}");
    agent.terminate();
}
