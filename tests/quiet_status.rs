//! An idle agent sleeps: its retained status is published when something changed, not on a
//! timer. Connected and with nothing to do for several status periods, the agent publishes no
//! status; an invocation (a command for an `mqtt` trigger, whose event is then published and
//! acknowledged) changes the status, and it is published again.

use std::process::Command;
use std::time::Duration;

use outpost::events::AgentEvent;
use outpost_testkit::agent::Agent;
use outpost_testkit::broker::Broker;
use outpost_testkit::seen::Seen;
use outpost_testkit::subscriber::Subscriber;

use crate::OUTPOST;

const DEVICE: &str = "quiet-1";
const WAIT: Duration = Duration::from_secs(30);
/// The status period the agent runs with (`--status-every 1s`, the kit's default).
const PERIOD: Duration = Duration::from_secs(1);

fn statuses(seen: &Seen) -> usize {
    let topic = format!("outpost/{DEVICE}/status");
    seen.messages.iter().filter(|m| m.topic == topic).count()
}

#[test]
fn an_idle_agent_publishes_no_status_until_something_changes() {
    let broker = Broker::start();
    let subscriber = Subscriber::start(broker.port());
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = format!(
        r#"manifest_version = 1
[app]
name = "quiet"
version = "1.0.0"
[[component]]
id = "counter"
source = "{}"
grants = {{ streams = ["count"] }}
[[component.trigger]]
name = "on-command"
mqtt = "cmd/{DEVICE}/#"
"#,
        outpost_testkit::guests::wat_guest(dir.path(), "counter").display()
    );
    std::fs::write(dir.path().join("outpost.toml"), manifest).expect("manifest");
    let app = dir.path().to_str().expect("utf-8 path");
    let data = dir.path().join("data");
    let mut agent = Agent::start(OUTPOST, DEVICE, &broker.url(), &data, &["--app", app]);
    assert!(
        agent.wait_event(|e| matches!(e, AgentEvent::Connected), 1, WAIT),
        "{}",
        agent.output_tail(20)
    );
    assert!(
        subscriber.wait_for(WAIT, |seen| statuses(seen) >= 1),
        "the status published at connect"
    );
    // Whatever the start-up changed has been checked within a period or two.
    std::thread::sleep(3 * PERIOD);
    let quiet_from = subscriber.with(statuses);

    // Nothing happens for four status periods: no status is published.
    std::thread::sleep(4 * PERIOD);
    let quiet_to = subscriber.with(statuses);
    assert_eq!(
        quiet_to,
        quiet_from,
        "an idle agent republished an unchanged status\n{}",
        agent.output_tail(20)
    );
    let acked_before = subscriber
        .with(|seen| seen.status(DEVICE).cloned())
        .expect("a status")["sync"]["acked_rows"]
        .as_u64();

    // An invocation changes the status: published within a period or two.
    let sent = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &broker.port().to_string(),
            "-q",
            "1",
        ])
        .args(["-t", &format!("cmd/{DEVICE}/go"), "-m", "go"])
        .status()
        .expect("mosquitto_pub runs");
    assert!(sent.success());
    assert!(
        agent.wait_event(
            |e| matches!(e, AgentEvent::Invoked { ok: true, .. }),
            1,
            WAIT
        ),
        "{}",
        agent.output_tail(20)
    );
    assert!(
        subscriber.wait_for(WAIT, |seen| {
            statuses(seen) > quiet_to
                && seen.status(DEVICE).is_some_and(|s| {
                    s["sync"]["acked_rows"].as_u64() > acked_before
                        && s["schedule"]["late_runs"].is_u64()
                })
        }),
        "no new status after the invocation: {:?}\n{}",
        subscriber.with(|seen| seen.status(DEVICE).cloned()),
        agent.output_tail(20)
    );
    assert!(agent.terminate().success());
}
