//! The developer loop of issue 14: `outpost test` (component tests next to an app), wall-clock
//! deadlines on a running device, and `outpost watch` (rebuild and restart on change).

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use outpost_testkit::guests::{guest, render};
use outpost_testkit::log::{Log, read_lines};
use outpost_testkit::{repo_root, s, signal};

use crate::OUTPOST;

/// How long a test waits for something a running app should print (a busy machine).
const PATIENCE: Duration = Duration::from_secs(60);

fn example(name: &str) -> std::path::PathBuf {
    repo_root().join("bundles/examples").join(name)
}

fn outpost(args: &[&str]) -> Output {
    Command::new(OUTPOST)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("outpost runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn every_example_passes_its_component_tests() {
    guest("sampler"); // builds every guest of bundles/, the examples among them
    for name in ["sampler", "aggregator", "commander"] {
        let output = outpost(&["test", s(&example(name))]);
        assert!(output.status.success(), "{name}:\n{}", text(&output));
        assert!(text(&output).contains(" 0 failed"), "{}", text(&output));
    }
    // The slow-sensor scenario ran the real deadline, on the test's clock.
    let json = outpost(&["test", s(&example("sampler")), "--json"]);
    let summary: serde_json::Value =
        serde_json::from_slice(&json.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&json)));
    assert_eq!(summary["failed"], 0, "{summary}");
    assert_eq!(summary["passed"], 2, "{summary}");
}

#[test]
fn a_wrong_expectation_fails_with_a_diff() {
    guest("sampler");
    let dir = tempfile::tempdir().expect("tempdir");
    let right = std::fs::read_to_string(example("sampler").join("tests/reading.toml"))
        .expect("the sampler's test");
    let wrong = right.replace(
        r#""temperature/latest" = "21.50""#,
        r#""temperature/latest" = "22.50""#,
    );
    assert_ne!(wrong, right);
    let file = dir.path().join("wrong.toml");
    std::fs::write(&file, wrong).expect("write");

    let output = outpost(&["test", s(&example("sampler")), s(&file)]);
    let shown = text(&output);
    assert_eq!(output.status.code(), Some(1), "{shown}");
    assert!(shown.contains("FAILED"), "{shown}");
    assert!(
        shown.contains("step 1: kv readings/temperature/latest"),
        "{shown}"
    );
    assert!(
        shown.contains("- 22.50") && shown.contains("+ 21.50"),
        "{shown}"
    );

    let json = outpost(&["test", s(&example("sampler")), s(&file), "--json"]);
    assert_eq!(json.status.code(), Some(1));
    let summary: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    let mismatch = &summary["tests"][0]["mismatches"][0];
    assert_eq!(mismatch["step"], 1, "{summary}");
    assert_eq!(mismatch["expected"], "22.50", "{summary}");
    assert_eq!(mismatch["actual"], "21.50", "{summary}");
}

/// A running `outpost` command whose stdout lines are collected.
struct Running {
    child: Child,
    lines: Arc<Log<String>>,
}

impl Running {
    fn start(args: &[&str]) -> Running {
        let mut child = Command::new(OUTPOST)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("outpost starts");
        let lines = Arc::new(Log::new(usize::MAX));
        let stdout = child.stdout.take().expect("piped");
        read_lines(
            format!("outpost-{}", child.id()),
            stdout,
            lines.clone(),
            |line| line,
            |log| log.close(),
        );
        Running { child, lines }
    }

    /// Waits until `n` lines contain every one of `needles`.
    fn wait(&self, needles: &[&str], n: usize) {
        let found = self.lines.wait_count(
            |line| needles.iter().all(|needle| line.contains(needle)),
            n,
            PATIENCE,
        );
        assert!(
            found,
            "no {n} line(s) with {needles:?}:\n{}",
            self.lines.items().join("\n")
        );
    }

    fn count(&self, needles: &[&str]) -> usize {
        self.lines
            .count(|line| needles.iter().all(|needle| line.contains(needle)))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        signal(self.child.id(), "TERM");
        let _ = self.child.wait();
    }
}

#[test]
fn a_run_stuck_past_its_deadline_ends_naming_it_and_other_triggers_keep_running() {
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = render(
        r#"manifest_version = 1
[app]
name = "deadline"
version = "0.1.0"

[[component]]
id = "slow"
source = "{wasm:sampler}"
[component.grants]
kv = ["readings"]
streams = ["readings"]
sensors = ["temperature"]
[component.limits]
timeout = "300ms"
[[component.trigger]]
name = "slow-read"
interval = "400ms"

[[component]]
id = "fast"
source = "{wasm:noop}"
[[component.trigger]]
name = "tick"
interval = "100ms"

# A bus that takes 30 s per read: without a deadline the trigger would be held that long.
[[simulator.sensor]]
name = "temperature"
profile = "constant"
value = 20.0
latency = "30s"
"#,
        dir.path(),
    );
    std::fs::write(dir.path().join("outpost.toml"), manifest).expect("manifest");
    let data = dir.path().join("data");
    let up = Running::start(&["up", "--no-build", "--data", s(&data), s(dir.path())]);

    let stuck = [
        "slow <- slow-read",
        "FAILED",
        "deadline 300ms exceeded after",
        "(in sensor_read 'temperature')",
    ];
    up.wait(&stuck, 1);
    let fast_ok = ["fast <- tick", ": ok in"];
    let before = up.count(&fast_ok);
    // The trigger is free again: it runs (and is stopped) again; the other one never waited.
    up.wait(&stuck, 2);
    up.wait(&fast_ok, before + 3);
}

/// A guest that emits `version` to stream `beat` on every run.
fn beat_wasm(version: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module
  (import "outpost_v1" "emit" (func $emit (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "beat")
  (data (i32.const 8) "{version}")
  (func (export "outpost_handle") (result i32)
    (drop (call $emit (i32.const 0) (i32.const 4) (i32.const 8) (i32.const {len})))
    (i32.const 0)))"#,
        len = version.len()
    ))
    .expect("wat compiles")
}

fn write_atomically(path: &Path, bytes: &[u8]) {
    let temp = path.with_extension("tmp-write");
    std::fs::write(&temp, bytes).expect("write");
    std::fs::rename(&temp, path).expect("rename");
}

#[test]
fn watch_rebuilds_the_changed_component_and_restarts_with_the_same_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = dir.path().join("app");
    std::fs::create_dir_all(app.join("src")).expect("mkdir");
    // The "build" copies the source module into place, as a compiler would write its output.
    std::fs::write(
        app.join("outpost.toml"),
        r#"manifest_version = 1
[app]
name = "beat"
version = "0.1.0"

[[component]]
id = "beat"
source = "beat.wasm"
build = { command = "cp src/beat.wasm beat.wasm" }
[component.grants]
streams = ["beat"]
[[component.trigger]]
name = "tick"
interval = "200ms"
"#,
    )
    .expect("manifest");
    write_atomically(&app.join("src/beat.wasm"), &beat_wasm("one"));
    let data = dir.path().join("state");
    let watch = Running::start(&["watch", "--data", s(&data), "--debounce", "100ms", s(&app)]);
    watch.wait(&["event beat: one"], 1);
    let before = watch.count(&["#"]);
    assert!(before > 0);

    write_atomically(&app.join("src/beat.wasm"), &beat_wasm("two"));
    watch.wait(&["outpost watch:", "changed; rebuilding beat"], 1);
    watch.wait(&["event beat: two"], 1);
    // The same state directory: sequence numbers continue rather than start again at 1.
    let restarted = watch
        .lines
        .items()
        .into_iter()
        .find(|line| line.contains("event beat: two"))
        .expect("a line");
    let seq: u64 = restarted
        .trim()
        .trim_start_matches('#')
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a sequence number in {restarted:?}"));
    assert!(seq > 1, "{restarted}");
    assert!(data.join(outpost::store::STATE_FILE).exists());
}
