//! Guests in every language (issue 14): the watcher example in Rust, C, Zig and AssemblyScript,
//! each built from source by its own toolchain (setup.sh puts zig and asc in `.toolchains/bin`),
//! emit the same events for the same sensor trace; and every `outpost new` template becomes an
//! app that builds offline, passes its component tests (`outpost test`) and runs producing
//! events (`outpost up`; the MQTT command handler under `outpost agent` with a real broker), in
//! a directory outside this repository.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use outpost::app::App;
use outpost::runtime::Firing;
use outpost::store::OutboxLimits;
use outpost_abi::TriggerKind;
use outpost_hal::ManualClock;
use outpost_testkit::START_MS;
use outpost_testkit::agent::Agent;
use outpost_testkit::app::{events, options};
use outpost_testkit::broker::Broker;
use outpost_testkit::subscriber::Subscriber;

use crate::OUTPOST;

/// PATH with the guest toolchains setup.sh installs in front.
fn toolchain_path() -> String {
    let bin = outpost_testkit::repo_root().join(".toolchains/bin");
    assert!(
        bin.join("zig").exists() && bin.join("asc").exists(),
        "{} lacks zig or asc: run ./setup.sh",
        bin.display()
    );
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// `outpost ARGS` in `dir` with the toolchains on PATH and cargo offline; panics on failure.
fn outpost(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let output = Command::new(OUTPOST)
        .args(args)
        .current_dir(dir)
        .env("PATH", toolchain_path())
        // The generated apps must build without a network: everything they need is in them.
        .env("CARGO_NET_OFFLINE", "true")
        // The outer test build's settings must not leak into a guest build.
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .envs(env.iter().copied())
        .output()
        .expect("outpost runs");
    assert!(
        output.status.success(),
        "outpost {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Samples, chosen around the rounding and the 25.00 °C threshold: 24.994 rounds to 2499, 25.0
/// crosses, 25.004999 rounds to 2500 (crosses again from 24.0), -3.125 rounds away from zero.
const TRACE: [f64; 8] = [20.0, 24.994, 25.0, 26.5, 24.0, 25.004999, -3.125, 30.0];

/// Runs the trace through an example (built by `outpost build`), each sample as a sensor
/// trigger with the one before it; returns its `readings` and `alerts` events.
fn run_trace(example: &str) -> (Vec<String>, Vec<String>) {
    let root = outpost_testkit::repo_root();
    let dir = root.join("bundles/examples").join(example);
    let dir_arg = dir.to_str().expect("utf-8 path");
    outpost(&root, &["build", dir_arg], &[]);
    // Its component tests pass too (the same files in every language: checked below).
    outpost(&root, &["test", dir_arg], &[]);
    let state = tempfile::tempdir().expect("temp dir");
    let clock = Arc::new(ManualClock::new(START_MS));
    let app = App::start(
        &dir.join("outpost.toml"),
        options(state.path(), clock, OutboxLimits::default()),
    )
    .unwrap_or_else(|e| panic!("{example} did not start: {e}"));
    let mut previous = f64::NAN;
    for sample in TRACE {
        let mut payload = sample.to_le_bytes().to_vec();
        payload.extend_from_slice(&previous.to_le_bytes());
        let firing = Firing {
            name: Arc::from("each-sample"),
            kind: TriggerKind::Sensor,
            payload,
            topic: None,
        };
        let outcome = app.executor.run_blocking("watcher", firing);
        assert!(outcome.is_ok(), "{example} on {sample}: {outcome:?}");
        previous = sample;
    }
    let seen = (events(&app, "readings"), events(&app, "alerts"));
    app.shutdown();
    seen
}

#[test]
fn the_watcher_emits_the_same_events_in_rust_c_zig_and_assemblyscript() {
    let (readings, alerts) = run_trace("watcher");
    let centis = [2000, 2499, 2500, 2650, 2400, 2500, -313, 3000];
    let expected: Vec<String> = centis
        .iter()
        .enumerate()
        .map(|(i, c)| format!(r#"{{"n":{},"centi":{c}}}"#, i + 1))
        .collect();
    assert_eq!(readings, expected);
    assert_eq!(
        alerts,
        [
            r#"{"n":3,"centi":2500,"threshold":2500}"#,
            r#"{"n":6,"centi":2500,"threshold":2500}"#,
            r#"{"n":8,"centi":3000,"threshold":2500}"#,
        ]
    );
    let tests = outpost_testkit::repo_root().join("bundles/examples");
    for other in ["watcher-c", "watcher-zig", "watcher-as"] {
        for file in ["crossing.toml", "threshold.toml", "bad-threshold.toml"] {
            let read = |example: &str| {
                std::fs::read_to_string(tests.join(example).join("tests").join(file))
                    .expect("test file")
            };
            assert_eq!(read(other), read("watcher"), "{other}/tests/{file} differs");
        }
        assert_eq!(
            run_trace(other),
            (readings.clone(), alerts.clone()),
            "{other} differs from the Rust watcher"
        );
    }
}

/// Runs `outpost up` on `app` until it prints a line containing `wanted`, then stops it.
fn up_until(app: &Path, env: &[(&str, &str)], wanted: &str) -> String {
    let mut child = Command::new(OUTPOST)
        .args(["up", "--no-build"])
        .arg(app)
        .env("PATH", toolchain_path())
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("outpost up starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut seen = String::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("utf-8 output");
        seen.push_str(&line);
        seen.push('\n');
        if line.contains(wanted) {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        seen.contains(wanted),
        "outpost up never printed {wanted:?}:\n{seen}"
    );
    seen
}

/// Runs the commander app under `outpost agent` with a real broker; one command to the device
/// must be answered on `replies/<device>/<command>`.
fn commands_through_a_broker(app: &Path, cargo_target: &Path) {
    const DEVICE: &str = "pi-3";
    let wait = Duration::from_secs(30);
    let broker = Broker::start();
    let subscriber = Subscriber::start_with(broker.port(), &["replies/#"]);
    let data = app.join("device-data");
    let app_arg = app.to_str().expect("utf-8 path");
    let mark = broker.log_mark();
    let mut agent = Agent::start_with_env(
        OUTPOST,
        DEVICE,
        &broker.url(),
        &data,
        &["--app", app_arg],
        &[("CARGO_TARGET_DIR", cargo_target)],
    );
    broker
        .wait_log_after(mark, wait, |line| {
            line.contains("SUBSCRIBE") && line.contains(DEVICE)
        })
        .expect("the agent subscribed to its command topics");
    let status = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &broker.port().to_string(),
            "-q",
            "1",
        ])
        .args([
            "-t",
            &format!("outpost/{DEVICE}/commands/my-commander/led"),
            "-m",
            "on",
        ])
        .status()
        .expect("mosquitto_pub runs (package mosquitto-clients, installed by setup.sh)");
    assert!(status.success());
    let answered = subscriber.wait_for(wait, |seen| {
        seen.messages
            .iter()
            .any(|m| m.topic == format!("replies/{DEVICE}/led") && m.payload == b"pi-3: on")
    });
    assert!(answered, "no reply; agent said:\n{}", agent.output_tail(30));
    agent.terminate();
}

#[test]
fn every_template_builds_offline_and_runs_outside_the_repository() {
    let work = tempfile::tempdir().expect("temp dir");
    assert!(!work.path().starts_with(outpost_testkit::repo_root()));
    let listed = outpost(work.path(), &["new", "--list"], &[]);
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    // One cargo target directory for the Rust apps: also shows `source` following it.
    let target: PathBuf = work.path().join("cargo-target");
    let target_env = [("CARGO_TARGET_DIR", target.to_str().expect("utf-8 path"))];
    for template in outpost::templates::all() {
        assert!(
            listed.contains(template.name),
            "--list lacks {}",
            template.name
        );
        let name = format!("my-{}", template.name.trim_start_matches("rust-"));
        outpost(work.path(), &["new", template.name, &name], &[]);
        let app = work.path().join(&name);
        outpost(work.path(), &["build", &name], &target_env);
        // Its component tests (scripted triggers on the simulated board) pass.
        let tested = outpost(work.path(), &["test", &name], &target_env);
        let tested = String::from_utf8_lossy(&tested.stdout).into_owned();
        assert!(tested.contains(" passed, 0 failed"), "{name}: {tested}");
        if template.name == "rust-commander" {
            // Its trigger is `mqtt`, which `up` has no broker for: run it as a device.
            commands_through_a_broker(&app, &target);
            continue;
        }
        // Every other template reads the simulated temperature sensor into `readings`.
        up_until(&app, &target_env, "event readings:");
    }
    // An existing, non-empty directory is never written over.
    let again = Command::new(OUTPOST)
        .args(["new", "c", "my-c"])
        .current_dir(work.path())
        .output()
        .expect("outpost runs");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));
}
