//! Sendable by construction, against a real mosquitto and the real binary (issue 10, item 1):
//! a 64 KiB binary event arrives intact; an event too large for the device's packet limit is
//! refused at `emit` with -5 and nothing committed is dropped; a committed row that outgrew a
//! lowered packet limit goes to the dead letters, counted, reported and listable; and the
//! errors name what to fix (item 6).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use outpost::events::AgentEvent;
use outpost_testkit::agent::Agent;
use outpost_testkit::broker::Broker;
use outpost_testkit::subscriber::Subscriber;

use crate::OUTPOST;

const WAIT: Duration = Duration::from_secs(30);

/// The bytes every emitter guest emits: `i % 32` (control characters: valid UTF-8 that JSON
/// escapes to six bytes each, the worst case for a JSON wire).
fn control_bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 32) as u8).collect()
}

/// A guest that emits `size` control bytes to stream "big". On success it returns 0. When the
/// emit is refused it either returns the emit's code (`on_refusal = "fail"`) or emits
/// "too-large" to stream "note" and returns 0 (`"note"`), so the invocation decides.
fn emitter_wat(size: usize, on_refusal: &str) -> String {
    let refused = match on_refusal {
        "fail" => "(return (local.get $rc))",
        _ => {
            "(drop (call $emit (i32.const 8) (i32.const 4) (i32.const 16) (i32.const 9))) (return (i32.const 0))"
        }
    };
    format!(
        r#"(module
  (import "outpost_v1" "emit" (func $emit (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (data (i32.const 0) "big")
  (data (i32.const 8) "note")
  (data (i32.const 16) "too-large")
  (func (export "outpost_handle") (result i32)
    (local $i i32)
    (local $rc i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (i32.const {size})))
      (i32.store8 (i32.add (i32.const 1024) (local.get $i)) (i32.and (local.get $i) (i32.const 31)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (local.set $rc (call $emit (i32.const 0) (i32.const 3) (i32.const 1024) (i32.const {size})))
    (if (i32.ne (local.get $rc) (i32.const 0)) (then {refused}))
    (i32.const 0)))"#
    )
}

/// Compiles `wat` to `dir/NAME.wasm` and returns its path.
fn guest(dir: &Path, name: &str, wat: &str) -> PathBuf {
    let path = dir.join(format!("{name}.wasm"));
    std::fs::write(&path, wat::parse_str(wat).expect("guest compiles")).expect("write guest");
    path
}

/// Writes `dir/outpost.toml` with one component per `(id, wasm, trigger)`; the trigger is a
/// TOML line (`on_start = true`, or an interval nobody waits for, for manual invocations).
fn write_app(dir: &Path, components: &[(&str, &Path, &str)]) {
    let mut manifest =
        String::from("manifest_version = 1\n[app]\nname = \"bounds\"\nversion = \"1.0.0\"\n");
    for (id, wasm, trigger) in components {
        manifest += &format!(
            "[[component]]\nid = \"{id}\"\nsource = \"{}\"\ngrants = {{ streams = [\"big\", \"note\"] }}\n\
             limits = {{ output = \"1 MiB\" }}\n[[component.trigger]]\n{trigger}\n",
            wasm.display()
        );
    }
    std::fs::write(dir.join("outpost.toml"), manifest).expect("manifest");
}

/// Runs the `outpost` binary; returns (success, stdout + stderr).
fn outpost(args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_outpost"))
        .args(args)
        .output()
        .expect("outpost runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn path_arg(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

#[test]
fn a_64_kib_binary_event_arrives_intact_at_a_real_subscriber() {
    const DEVICE: &str = "bin-1";
    let broker = Broker::start();
    let subscriber = Subscriber::start(broker.port());
    let dir = tempfile::tempdir().expect("temp dir");
    let wasm = guest(dir.path(), "binary", &emitter_wat(65_536, "fail"));
    write_app(dir.path(), &[("binary", &wasm, "on_start = true")]);
    let data = dir.path().join("data");
    let mut agent = Agent::start(
        OUTPOST,
        DEVICE,
        &broker.url(),
        &data,
        &["--app", path_arg(dir.path())],
    );
    assert!(
        subscriber.wait_for(WAIT, |seen| seen.has(DEVICE, "big", 1)),
        "the 64 KiB event arrived; agent output:\n{}",
        agent.output_tail(30)
    );
    let (event, problems) = subscriber.with(|seen| {
        let event = seen
            .events_of(DEVICE)
            .find(|a| a.stream == "big")
            .map(|a| a.event.clone())
            .expect("event");
        (event, seen.problems.clone())
    });
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(event["v"], 3);
    assert!(
        event.get("data").is_none(),
        "control bytes go as base64, not 6x-escaped text"
    );
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(event["data_b64"].as_str().expect("data_b64"))
        .expect("base64");
    assert_eq!(bytes, control_bytes(65_536), "every byte arrived unchanged");
    assert!(
        subscriber.wait_for(WAIT, |seen| seen
            .status(DEVICE)
            .is_some_and(|s| s["outbox"]["records"] == 0)),
        "the outbox drained"
    );
    let status = subscriber.with(|seen| seen.status(DEVICE).cloned().expect("status"));
    assert_eq!(status["dead_letters"]["records"], 0, "{status}");
    assert_eq!(status["dropped"]["records"], 0, "{status}");
    agent.terminate();
}

#[test]
fn an_event_too_large_for_the_packet_limit_is_refused_at_emit_and_nothing_committed_is_dropped() {
    const DEVICE: &str = "small-pkt";
    let broker = Broker::start();
    let subscriber = Subscriber::start(broker.port());
    let dir = tempfile::tempdir().expect("temp dir");
    // 20,000 control bytes need ~26,700 bytes as base64: over a 16 KiB packet limit.
    let noting = guest(dir.path(), "noting", &emitter_wat(20_000, "note"));
    let strict = guest(dir.path(), "strict", &emitter_wat(20_000, "fail"));
    let fits = guest(dir.path(), "fits", &emitter_wat(4_000, "fail"));
    write_app(
        dir.path(),
        &[
            ("noting", &noting, "on_start = true"),
            ("strict", &strict, "on_start = true"),
            ("fits", &fits, "on_start = true"),
        ],
    );
    let data = dir.path().join("data");
    let mut agent = Agent::start(
        OUTPOST,
        DEVICE,
        &broker.url(),
        &data,
        &["--app", path_arg(dir.path()), "--max-packet-bytes", "16384"],
    );
    // The guest that handles the refusal commits its note; the one that fits commits its event.
    assert!(
        subscriber.wait_for(WAIT, |seen| {
            let streams: Vec<&str> = seen.events_of(DEVICE).map(|a| a.stream.as_str()).collect();
            streams.contains(&"note") && streams.contains(&"big")
        }),
        "the note and the event that fits arrived; agent output:\n{}",
        agent.output_tail(30)
    );
    // The strict guest failed with -5 and the outcome names the limit and the sizes.
    assert!(
        agent.wait_event(|e| matches!(e, AgentEvent::Invoked { line, .. } if line.contains("handler returned error status -5")), 1, WAIT),
        "{}",
        agent.output_tail(30)
    );
    let line = agent
        .output_tail(100)
        .lines()
        .find(|l| l.contains("error status -5"))
        .map(str::to_string)
        .expect("outcome line");
    assert!(
        line.contains("emit to stream 'big': 20000 bytes")
            && line.contains("over the device's limit of 16384 bytes")
            && line.contains("too-large"),
        "{line}"
    );
    let events = subscriber.with(|seen| {
        seen.events_of(DEVICE)
            .map(|a| (a.stream.clone(), a.event.clone()))
            .collect::<Vec<_>>()
    });
    let note = events
        .iter()
        .find(|(s, _)| s == "note")
        .map(|(_, e)| e["data"].clone());
    assert_eq!(note, Some(serde_json::json!("too-large")));
    let big: Vec<_> = events.iter().filter(|(s, _)| s == "big").collect();
    assert_eq!(big.len(), 1, "only the event that fits was committed");
    assert!(
        subscriber.wait_for(WAIT, |seen| seen
            .status(DEVICE)
            .is_some_and(|s| s["outbox"]["records"] == 0)),
        "the outbox drained"
    );
    let status = subscriber.with(|seen| seen.status(DEVICE).cloned().expect("status"));
    assert_eq!(status["dead_letters"]["records"], 0, "{status}");
    assert_eq!(status["dropped"]["records"], 0, "{status}");
    agent.terminate();
}

#[test]
fn a_row_that_outgrew_a_lowered_packet_limit_is_dead_lettered_counted_and_listed() {
    const DEVICE: &str = "lowered";
    let broker = Broker::start();
    let subscriber = Subscriber::start(broker.port());
    let dir = tempfile::tempdir().expect("temp dir");
    let small = guest(dir.path(), "small", &emitter_wat(100, "fail"));
    let mid = guest(dir.path(), "mid", &emitter_wat(12_000, "fail"));
    let manual = "interval = \"24h\"";
    write_app(
        dir.path(),
        &[("small", &small, manual), ("mid", &mid, manual)],
    );
    let data = dir.path().join("data");
    // Committed under the default packet limit: seqs 1 (small), 2 (mid, ~16 KB as base64), 3.
    for component in ["small", "mid", "small"] {
        let (ok, output) = outpost(&[
            "invoke",
            path_arg(dir.path()),
            component,
            "--data",
            path_arg(&data),
        ]);
        assert!(ok, "{output}");
    }
    // Then the limit is lowered: row 2 can never be sent.
    let mut agent = Agent::start(
        OUTPOST,
        DEVICE,
        &broker.url(),
        &data,
        &["--max-packet-bytes", "8192"],
    );
    assert!(
        subscriber.wait_for(WAIT, |seen| seen.has(DEVICE, "big", 1)
            && seen.has(DEVICE, "big", 3)
            && seen.status(DEVICE).is_some_and(
                |s| s["dead_letters"]["records"] == 1 && s["outbox"]["records"] == 0
            )),
        "rows 1 and 3 arrived and row 2 is reported dead; agent output:\n{}",
        agent.output_tail(30)
    );
    assert!(
        agent.wait_event(|e| matches!(e, AgentEvent::DeadLettered { .. }), 1, WAIT),
        "{}",
        agent.output_tail(30)
    );
    assert!(!subscriber.with(|seen| seen.has(DEVICE, "big", 2)));
    agent.terminate();

    // Persistent and listable after the agent stopped.
    let (ok, listed) = outpost(&["outbox", "dead", "--data", path_arg(&data)]);
    assert!(ok, "{listed}");
    assert!(
        listed.contains("#2 ")
            && listed.contains("over the packet limit of 8192 bytes")
            && listed.contains("dead letters: 1 record(s)"),
        "{listed}"
    );
}

#[test]
fn a_refused_host_call_and_an_oversized_module_name_what_to_fix() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Reads a sensor it was not granted, and fails with the code it got.
    let reader = guest(
        dir.path(),
        "reader",
        r#"(module
  (import "outpost_v1" "sensor_read" (func $read (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "humidity")
  (func (export "outpost_handle") (result i32)
    (call $read (i32.const 0) (i32.const 8) (i32.const 64))))"#,
    );
    let manifest = format!(
        "manifest_version = 1\n[app]\nname = \"errors\"\nversion = \"1.0.0\"\n\
         [[component]]\nid = \"reader\"\nsource = \"{}\"\ngrants = {{ sensors = [\"temperature\"] }}\n\
         [[component.trigger]]\ninterval = \"24h\"\n",
        reader.display()
    );
    std::fs::write(dir.path().join("outpost.toml"), manifest).expect("manifest");
    let data = dir.path().join("data");
    let (ok, output) = outpost(&[
        "invoke",
        path_arg(dir.path()),
        "reader",
        "--data",
        path_arg(&data),
    ]);
    assert!(!ok, "{output}");
    assert!(
        output.contains("sensor 'humidity' is not granted"),
        "{output}"
    );

    // A module whose initial memory (3 pages) is over its 64 KiB limit is refused at load.
    let fat = guest(
        dir.path(),
        "fat",
        r#"(module (memory (export "memory") 3)
  (func (export "outpost_handle") (result i32) (i32.const 0)))"#,
    );
    let manifest = format!(
        "manifest_version = 1\n[app]\nname = \"errors\"\nversion = \"1.0.0\"\n\
         [[component]]\nid = \"fat\"\nsource = \"{}\"\nlimits = {{ memory = \"64 KiB\" }}\n\
         [[component.trigger]]\ninterval = \"24h\"\n",
        fat.display()
    );
    std::fs::write(dir.path().join("outpost.toml"), manifest).expect("manifest");
    let (ok, output) = outpost(&[
        "invoke",
        path_arg(dir.path()),
        "fat",
        "--data",
        path_arg(&data),
    ]);
    assert!(!ok, "{output}");
    assert!(
        output.contains("needs 196608 bytes of linear memory")
            && output.contains("over its memory limit of 65536 bytes"),
        "{output}"
    );
}
