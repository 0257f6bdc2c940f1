//! Inspecting a running device: `outpost status`, `kv list|get` and `outbox list` while the
//! agent holds its state file (they go through the agent's control socket), the same commands
//! after it stopped (they read the file), and a control socket that shrugs off bad clients.

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use outpost::events::AgentEvent;
use outpost_testkit::agent::Agent;
use outpost_testkit::broker::Broker;
use serde_json::Value;

use crate::OUTPOST;

const DEVICE: &str = "ctl-1";
const WAIT: Duration = Duration::from_secs(30);
/// What the `kv_emit` guest writes to `bench/k` and emits on stream `bench` every run.
const DATA: &str = "0123456789abcdef";

fn write_app(dir: &Path) {
    let manifest = format!(
        "manifest_version = 1\n[app]\nname = \"inspected\"\nversion = \"1.4.0\"\n\
         [[component]]\nid = \"writer\"\nsource = \"{}\"\n\
         grants = {{ kv = [\"bench\"], streams = [\"bench\"] }}\n\
         [[component.trigger]]\ninterval = \"200ms\"\n",
        outpost_testkit::guests::guest("kv_emit").display()
    );
    std::fs::write(dir.join("outpost.toml"), manifest).expect("manifest");
}

/// Runs `outpost ARGS --data DATA`; fails the test on a non-zero exit.
fn outpost(data: &Path, args: &[&str]) -> String {
    let output = run(data, args);
    assert!(
        output.status.success(),
        "outpost {args:?} exited {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

fn run(data: &Path, args: &[&str]) -> Output {
    Command::new(OUTPOST)
        .args(args)
        .arg("--data")
        .arg(data)
        .output()
        .expect("outpost runs")
}

fn json(data: &Path, args: &[&str]) -> Value {
    let out = outpost(data, args);
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

/// Writes `bytes` to the control socket, returns the first line back (the agent may close
/// before reading everything: the write may fail half-way).
fn raw(data: &Path, bytes: &[u8]) -> String {
    let mut stream = UnixStream::connect(data.join("control.sock")).expect("control socket");
    let _ = stream.write_all(bytes);
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .expect("a response line");
    line
}

fn invoked(agent: &Agent) -> usize {
    agent.count_events(|e| matches!(e, AgentEvent::Invoked { ok: true, .. }))
}

fn wait_more_invocations(agent: &Agent, more: usize) {
    let n = invoked(agent) + more;
    assert!(
        agent.wait_event(
            |e| matches!(e, AgentEvent::Invoked { ok: true, .. }),
            n,
            WAIT
        ),
        "the app stopped running; output tail:\n{}",
        agent.output_tail(30)
    );
}

#[test]
fn a_running_device_is_inspected_through_its_socket_and_a_stopped_one_through_its_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_app(dir.path());
    let data = dir.path().join("data");
    let mut broker = Broker::start();
    let app_dir = dir.path().to_str().expect("utf-8 path");
    let mut agent = Agent::start(OUTPOST, DEVICE, &broker.url(), &data, &["--app", app_dir]);
    assert!(
        agent.wait_event(|e| matches!(e, AgentEvent::Drained), 1, WAIT)
            && agent.wait_event(
                |e| matches!(e, AgentEvent::Invoked { ok: true, .. }),
                1,
                WAIT
            ),
        "no run drained; output tail:\n{}",
        agent.output_tail(30)
    );

    // While it runs: the state file is locked, the socket answers.
    let listed = outpost(&data, &["kv", "list"]);
    assert_eq!(listed, format!("inspected/bench/k = {DATA}\n"));
    assert_eq!(
        outpost(&data, &["kv", "get", "bench", "k"]),
        format!("{DATA}\n")
    );
    let kv = json(&data, &["kv", "list", "--json"]);
    assert_eq!(kv["entries"][0]["app"], "inspected");
    assert_eq!(kv["entries"][0]["key"], "k");
    assert_eq!(kv["entries"][0]["value_base64"], "MDEyMzQ1Njc4OWFiY2RlZg==");
    let missing = run(&data, &["kv", "get", "bench", "nope"]);
    assert!(!missing.status.success());
    assert_eq!(
        String::from_utf8_lossy(&missing.stderr)
            .trim()
            .lines()
            .count(),
        1,
        "one-line error"
    );

    let status = json(&data, &["status", "--json"]);
    assert_eq!(status["agent"]["device"], DEVICE, "{status}");
    assert_eq!(status["agent"]["connected"], true, "{status}");
    assert!(status["agent"]["last_drain_s_ago"].is_u64(), "{status}");
    assert_eq!(status["apps"][0]["name"], "inspected", "{status}");
    assert_eq!(status["apps"][0]["version"], "1.4.0", "{status}");
    let text = outpost(&data, &["status"]);
    assert!(
        text.contains(&format!("device {DEVICE}: agent")) && text.contains("broker: connected"),
        "{text}"
    );

    // Offline, rows queue up; the listing shows them and the status says so.
    broker.stop();
    assert!(
        agent.wait_event(
            |e| matches!(
                e,
                AgentEvent::Disconnected { .. } | AgentEvent::ConnectFailed { .. }
            ),
            1,
            WAIT
        ),
        "the agent never noticed the broker gone; output tail:\n{}",
        agent.output_tail(30)
    );
    wait_more_invocations(&agent, 3);
    let outbox = json(&data, &["outbox", "list", "--json"]);
    let entries = outbox["entries"].as_array().expect("entries");
    assert!(entries.len() >= 2, "{outbox}");
    assert_eq!(
        entries[0]["line"],
        format!("event bench: {DATA}"),
        "{outbox}"
    );
    assert_eq!(entries[0]["app"], "inspected");
    assert!(
        outbox["counters"]["outbox"]["records"].as_u64() >= Some(entries.len() as u64),
        "{outbox}"
    );
    let listing = outpost(&data, &["outbox", "list", "--limit", "1"]);
    assert!(
        listing.starts_with('#')
            && listing.contains(&format!("inspected/writer event bench: {DATA}")),
        "{listing}"
    );
    let status = json(&data, &["status", "--json"]);
    assert_eq!(status["agent"]["connected"], false, "{status}");
    assert!(
        status["store"]["outbox"]["records"].as_u64() > Some(0),
        "{status}"
    );

    // Bad clients get an error line and change nothing.
    let huge = raw(&data, &vec![b'{'; 1 << 20]);
    assert!(
        huge.contains(r#""reply":"error""#) && huge.contains("longer than"),
        "{huge}"
    );
    let malformed = raw(&data, b"{\"request\":\"format_disk\"}\n");
    assert!(malformed.contains("malformed request"), "{malformed}");
    // A client that connects and says nothing holds the socket for seconds, never the agent:
    // the app runs on, the next client is served once the silent one is closed.
    let silent = UnixStream::connect(data.join("control.sock")).expect("connect");
    wait_more_invocations(&agent, 2);
    assert_eq!(
        json(&data, &["status", "--json"])["agent"]["device"],
        DEVICE
    );
    let mut rest = String::new();
    let read = BufReader::new(silent).read_line(&mut rest).expect("closed");
    assert_eq!(read, 0, "the silent client was closed: {rest}");

    // Stopped: the socket is gone and the same commands read the file.
    let exit = agent.terminate();
    assert!(
        exit.success(),
        "agent exited {exit}; output tail:\n{}",
        agent.output_tail(30)
    );
    assert!(
        !data.join("control.sock").exists(),
        "socket removed on a clean stop"
    );
    assert_eq!(
        outpost(&data, &["kv", "list"]),
        listed,
        "same output either way"
    );
    assert_eq!(
        outpost(&data, &["kv", "get", "bench", "k"]),
        format!("{DATA}\n")
    );
    let status = json(&data, &["status", "--json"]);
    assert!(status.get("agent").is_none(), "{status}");
    assert!(
        status["store"]["outbox"]["records"].as_u64() > Some(0),
        "{status}"
    );
    let outbox = json(&data, &["outbox", "list", "--json"]);
    assert_eq!(outbox["entries"][0]["line"], format!("event bench: {DATA}"));
    assert!(outpost(&data, &["status"]).contains("no agent answers"));
}

#[test]
fn a_socket_left_by_a_killed_agent_is_replaced_and_meanwhile_the_file_is_read() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_app(dir.path());
    let data = dir.path().join("data");
    let broker = Broker::start();
    let app_dir = dir.path().to_str().expect("utf-8 path");
    let mut agent = Agent::start(OUTPOST, DEVICE, &broker.url(), &data, &["--app", app_dir]);
    wait_more_invocations(&agent, 1);
    agent.kill();
    assert!(
        data.join("control.sock").exists(),
        "a SIGKILL leaves the socket"
    );
    assert_eq!(
        outpost(&data, &["kv", "get", "bench", "k"]),
        format!("{DATA}\n")
    );

    let mut again = Agent::start(OUTPOST, DEVICE, &broker.url(), &data, &["--app", app_dir]);
    wait_more_invocations(&again, 1);
    let status = json(&data, &["status", "--json"]);
    assert_eq!(status["agent"]["device"], DEVICE, "{status}");
    assert!(again.terminate().success());
}
