//! Sandboxing: failed invocations commit nothing, grants are enforced, hostile guests are stopped
//! with a clear cause while the app keeps serving, and bad components are refused at load.

use std::sync::Arc;

use outpost::app::{App, AppError};
use outpost::device::hardware::Hardware;
use outpost::executor::Outcome;
use outpost::runtime::{Firing, InvocationError};
use outpost::store::{FullPolicy, OutboxLimits, RecordBody};
use outpost_abi::{ErrorCode, TriggerKind};
use outpost_hal::{GpioBoard, GpioWrite, SimGpio};
use outpost_testkit::app::{TestApp, events, start_rendered, start_rendered_with};
use outpost_testkit::guests::render;

fn run(app: &TestApp, component: &str) -> Outcome {
    app.app.executor.run_blocking(
        component,
        Firing::scheduled(
            Arc::from("test-trigger"),
            TriggerKind::Interval,
            outpost_testkit::START_MS,
        ),
    )
}

const HOSTILE_APP: &str = r#"
manifest_version = 1
[app]
name = "hostile"
version = "1.0.0"
[variables]
greeting = "hello"

[[component]]
id = "spinner"
source = "{wat:infinite_loop}"
limits = { fuel = 2_000_000 }

[[component]]
id = "grower"
source = "{wat:grow_memory}"
limits = { memory = "1 MiB" }

[[component]]
id = "recurser"
source = "{wat:recursion}"
limits = { stack = "64 KiB" }

[[component]]
id = "flooder"
source = "{wat:emit_flood}"
grants = { streams = ["flood"] }
limits = { output = "64 KiB" }

[[component]]
id = "pointers"
source = "{wat:out_of_bounds}"
grants = { kv = ["ns"], streams = ["s"], sensors = ["temp"], config = ["greeting"], publish = ["t/#"] }

[[component]]
id = "echo"
source = "{wasm:echo}"
grants = { streams = ["echo"], kv = ["echo"], config = ["greeting"] }

[[simulator.sensor]]
name = "temp"
profile = "constant"
value = 20.0
"#;

#[test]
fn hostile_guests_are_stopped_with_their_cause_and_the_app_keeps_serving() {
    let app = start_rendered(HOSTILE_APP);
    type IsExpected = fn(&InvocationError) -> bool;
    let cases: [(&str, IsExpected, &str); 4] = [
        (
            "spinner",
            |e| matches!(e, InvocationError::OutOfFuel { limit: 2_000_000 }),
            "ran out of fuel",
        ),
        (
            "grower",
            |e| {
                matches!(
                    e,
                    InvocationError::GrowLimit {
                        memory_bytes: 1_048_576,
                        ..
                    }
                )
            },
            "asked for 1114112 bytes of linear memory, the limit is 1048576 bytes",
        ),
        (
            "recurser",
            |e| matches!(e, InvocationError::StackExhausted { .. }),
            "stack exhausted",
        ),
        (
            "flooder",
            |e| matches!(e, InvocationError::OutputLimit(_)),
            "output limit of 65536 bytes",
        ),
    ];
    let outbox_len = |app: &TestApp| {
        app.app
            .store
            .outbox_read(0, usize::MAX)
            .expect("outbox")
            .len()
    };
    for (component, is_expected, cause) in cases {
        let before = outbox_len(&app);
        let outcome = run(&app, component);
        let error = outcome
            .result
            .as_ref()
            .expect_err("hostile guest must fail");
        assert!(
            is_expected(error),
            "{component}: unexpected error {error:?}"
        );
        let line = outpost::report::outcome_line(&outcome);
        assert!(
            line.contains(component) && line.contains("test-trigger") && line.contains(cause),
            "the report names component, trigger and cause: {line}"
        );
        assert!(line.contains("nothing committed"), "{line}");
        assert_eq!(outbox_len(&app), before, "{component} committed nothing");

        // The agent keeps serving other components right after.
        let echo = run(&app, "echo");
        assert!(echo.is_ok(), "echo after {component}: {:?}", echo.result);
    }
    assert_eq!(events(&app.app, "echo").len(), 4);
    assert!(events(&app.app, "flood").is_empty());
}

#[test]
fn out_of_bounds_pointers_get_an_error_code_from_every_host_function() {
    let app = start_rendered(HOSTILE_APP);
    let outcome = run(&app, "pointers");
    // A non-zero status names the first call that did not answer out-of-bounds.
    assert!(outcome.is_ok(), "{:?}", outcome.result);
    assert_eq!(events(&app.app, "s"), vec!["all-rejected".to_string()]);
    assert!(app.app.store.kv_entries(None, None).expect("kv").is_empty());
}

#[test]
fn a_component_that_traps_after_writing_commits_nothing() {
    let app = start_rendered(
        r#"
manifest_version = 1
[app]
name = "traps"
version = "1.0.0"
[[component]]
id = "trapper"
source = "{wasm:trap_after_write}"
grants = { kv = ["state"], streams = ["events"] }
"#,
    );
    let outcome = run(&app, "trapper");
    assert!(
        matches!(outcome.result, Err(InvocationError::Trap(_))),
        "{:?}",
        outcome.result
    );
    assert_eq!(
        app.app
            .store
            .kv_get("traps", "state", "written")
            .expect("kv"),
        None
    );
    assert!(app.app.store.outbox_read(0, 10).expect("outbox").is_empty());
    let counters = app.app.store.counters().expect("counters");
    assert_eq!(counters.outbox_records, 0);
    assert!(
        counters.next_seq <= 1,
        "no sequence number was used: {counters:?}"
    );
}

#[test]
fn denied_grants_return_the_error_code_and_write_nothing() {
    let app = start_rendered(
        r#"
manifest_version = 1
[app]
name = "grants"
version = "1.0.0"
[variables]
greeting = "hi"
secret = "do not read"
[[component]]
id = "probe"
source = "{wasm:grant_probe}"
grants = { kv = ["allowed"], streams = ["probe"], sensors = ["temperature"], config = ["greeting"] }
[[simulator.sensor]]
name = "temperature"
profile = "constant"
value = 20.0
"#,
    );
    let outcome = run(&app, "probe");
    assert!(outcome.is_ok(), "{:?}", outcome.result);
    assert_eq!(
        events(&app.app, "probe"),
        vec![
            "kv_set forbidden -> -1",
            "kv_set allowed -> 0",
            "emit not-granted -> -1",
            "sensor_read not-granted -> -1",
            "config_get not-granted -> -1",
        ]
    );
    assert!(events(&app.app, "not-granted").is_empty());
    assert_eq!(
        app.app
            .store
            .kv_get("grants", "forbidden", "k")
            .expect("kv"),
        None
    );
    assert_eq!(
        app.app
            .store
            .kv_get("grants", "allowed", "k")
            .expect("kv")
            .as_deref(),
        Some(&b"v"[..])
    );
}

#[test]
fn every_invocation_gets_a_fresh_instance() {
    let app = start_rendered(
        r#"
manifest_version = 1
[app]
name = "fresh"
version = "1.0.0"
[[component]]
id = "counter"
source = "{wat:counter}"
grants = { streams = ["count"] }
"#,
    );
    for _ in 0..3 {
        let outcome = run(&app, "counter");
        assert!(
            outcome.is_ok(),
            "globals or memory leaked between invocations: {:?}",
            outcome.result
        );
    }
    assert_eq!(events(&app.app, "count"), vec!["1", "1", "1"]);
}

fn start_error(manifest: &str) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("outpost.toml");
    std::fs::write(&path, render(manifest, dir.path())).expect("write");
    let clock = Arc::new(outpost_hal::ManualClock::new(outpost_testkit::START_MS));
    match App::start(
        &path,
        outpost_testkit::app::options(dir.path(), clock, OutboxLimits::default()),
    ) {
        Ok(_) => panic!("the app should have been refused"),
        Err(error @ (AppError::Manifest(_) | AppError::Load(_))) => error.to_string(),
        Err(other) => panic!("unexpected kind of error: {other}"),
    }
}

#[test]
fn bad_components_and_manifests_are_refused_with_a_message_naming_the_problem() {
    let header = "manifest_version = 1\n[app]\nname = \"bad\"\nversion = \"1.0.0\"\n";
    let unknown_import = start_error(&format!(
        "{header}[[component]]\nid = \"c\"\nsource = \"{{wat:unknown_import}}\"\n"
    ));
    assert!(
        unknown_import.contains("component 'c' imports `env.fd_write`"),
        "{unknown_import}"
    );

    let ungranted = start_error(&format!(
        "{header}[[component]]\nid = \"c\"\nsource = \"{{wat:ungranted_import}}\"\n"
    ));
    assert!(
        ungranted.contains("imports `kv_set`") && ungranted.contains("grants no `kv`"),
        "{ungranted}"
    );

    let missing = start_error(&format!(
        "{header}[[component]]\nid = \"c\"\nsource = \"nowhere/missing.wasm\"\n"
    ));
    assert!(
        missing.contains("component 'c'") && missing.contains("missing.wasm"),
        "{missing}"
    );

    let unknown_key = start_error(&format!(
        "{header}colour = \"red\"\n[[component]]\nid = \"c\"\nsource = \"{{wat:counter}}\"\n"
    ));
    assert!(
        unknown_key.contains("outpost.toml:5:") && unknown_key.contains("colour"),
        "{unknown_key}"
    );
}

#[test]
fn a_full_outbox_drops_the_oldest_and_counts_them() {
    let app = start_rendered_with(
        BURST_APP,
        OutboxLimits {
            max_records: 3,
            max_bytes: 1 << 20,
            policy: FullPolicy::DropOldest,
            ..OutboxLimits::default()
        },
    );
    for _ in 0..5 {
        assert!(run(&app, "burst").is_ok());
    }
    let seqs: Vec<u64> = app
        .app
        .store
        .outbox_read(0, 10)
        .expect("outbox")
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, vec![3, 4, 5], "the two oldest were dropped");
    let counters = app.app.store.counters().expect("counters");
    assert_eq!((counters.outbox_records, counters.dropped_records), (3, 2));
    assert_eq!(
        app.app
            .store
            .kv_entries(None, Some("burst"))
            .expect("kv")
            .len(),
        5,
        "kv is not the outbox: all kept"
    );
}

#[test]
fn a_full_outbox_with_reject_new_fails_the_invocation_and_counts_it() {
    let app = start_rendered_with(
        BURST_APP,
        OutboxLimits {
            max_records: 3,
            max_bytes: 1 << 20,
            policy: FullPolicy::RejectNew,
            ..OutboxLimits::default()
        },
    );
    for _ in 0..3 {
        assert!(run(&app, "burst").is_ok());
    }
    let refused = run(&app, "burst");
    let error = refused.result.expect_err("the fourth does not fit");
    assert!(error.to_string().contains("outbox full"), "{error}");
    let counters = app.app.store.counters().expect("counters");
    assert_eq!(
        (
            counters.outbox_records,
            counters.rejected_records,
            counters.rejected_invocations
        ),
        (3, 1, 1)
    );
    assert_eq!(
        app.app
            .store
            .kv_entries(None, Some("burst"))
            .expect("kv")
            .len(),
        3,
        "its KV write was refused too"
    );
}

const BURST_APP: &str = r#"
manifest_version = 1
[app]
name = "bursty"
version = "1.0.0"
[[component]]
id = "burst"
source = "{wasm:burst}"
grants = { kv = ["burst"], streams = ["burst"] }
"#;

// ---------------------------------------------------------------------------------------------
// GPIO: lines granted one by one, writes driven onto the board only after the commit.

const GPIO_APP: &str = r#"
manifest_version = 1
[app]
name = "gpio"
version = "1.0.0"
[[component]]
id = "probe"
source = "{wat:gpio_probe}"
grants = { streams = ["results"], gpio = ["in:door", "out:relay1", "out:ghost"] }
[[component]]
id = "flooder"
source = "{wat:gpio_probe}"
grants = { streams = ["results"], gpio = ["out:relay1"] }
limits = { output = "1 KiB" }
"#;

/// A simulated chip with `door` (an input the test drives high), `relay1` and `secret`.
fn gpio_board() -> Arc<SimGpio> {
    let gpio = SimGpio::new().with_chip("gpiochip0", &["door", "relay1", "secret"]);
    gpio.set_input("door", true).expect("door exists");
    Arc::new(gpio)
}

/// Starts `manifest` with `gpio` as the app's GPIO board.
fn start_with_gpio(manifest: &str, gpio: Arc<SimGpio>) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("outpost.toml");
    std::fs::write(&path, render(manifest, dir.path())).expect("write manifest");
    let clock = Arc::new(outpost_hal::ManualClock::new(outpost_testkit::START_MS));
    let mut options =
        outpost_testkit::app::options(dir.path(), clock.clone(), OutboxLimits::default());
    options.hardware = Some(Arc::new(Hardware::simulated_with_gpio(clock.clone(), gpio)));
    let app = App::start(&path, options).unwrap_or_else(|e| panic!("app did not start: {e}"));
    TestApp { dir, app, clock }
}

/// Runs `component` by hand with `payload` (which picks the probe's variant).
fn run_manual(app: &TestApp, component: &str, payload: &str) -> Outcome {
    app.app
        .executor
        .run_blocking(component, Firing::manual(payload.as_bytes().to_vec()))
}

/// The return codes each committed probe run recorded, oldest run first.
fn probe_results(app: &TestApp) -> Vec<Vec<i32>> {
    app.app
        .store
        .outbox_read(0, usize::MAX)
        .expect("outbox reads")
        .into_iter()
        .filter_map(|entry| match entry.record.body {
            RecordBody::Event { stream, data } if stream == "results" => Some(
                data.iter()
                    .map(|byte| i32::from(i8::from_ne_bytes([*byte])))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

#[test]
fn gpio_calls_follow_the_line_grants_and_writes_reach_the_board_after_the_commit() {
    let gpio = gpio_board();
    let app = start_with_gpio(GPIO_APP, gpio.clone());
    let denied = ErrorCode::Denied.as_i32();
    let outcome = run_manual(&app, "probe", "");
    assert!(outcome.is_ok(), "{:?}", outcome.result);
    assert_eq!(
        probe_results(&app),
        [vec![
            1,                                   // in:door reads the board's level
            denied,                              // secret is not granted
            denied,                              // door is in: only
            denied,                              // secret is not granted
            0,                                   // relay1 before writing: the board's level
            0,                                   // relay1 written (buffered)
            1,                                   // ... and read back pending
            ErrorCode::InvalidArgument.as_i32(), // value 2
            ErrorCode::NotFound.as_i32(),        // ghost is granted but not on the board
            0,                                   // ghost written (buffered)
            ErrorCode::OutOfBounds.as_i32(),     // name past the end of memory
        ]]
    );
    // Only the committed write to a real line reached the board; the one to `ghost` failed
    // after the commit (logged), and the commit stands.
    assert_eq!(
        gpio.writes(),
        [GpioWrite {
            line: "gpiochip0:1".into(),
            value: true,
        }]
    );
    assert_eq!(gpio.read("relay1"), Ok(true));
    assert_eq!(gpio.read("secret"), Ok(false), "denied writes never happen");

    // A board fault is the guest's `unavailable`, and a driven line reads back from the board.
    gpio.inject_fault("door", "line is busy")
        .expect("door exists");
    let outcome = run_manual(&app, "probe", "");
    assert!(outcome.is_ok(), "{:?}", outcome.result);
    let second = probe_results(&app).pop().expect("second run's results");
    assert_eq!(second[0], ErrorCode::Unavailable.as_i32());
    assert_eq!(second[4], 1, "relay1 is high since the first run");
    assert_eq!(gpio.writes().len(), 2);
}

#[test]
fn an_invocation_that_fails_after_writing_gpio_moves_nothing() {
    let gpio = gpio_board();
    let app = start_with_gpio(GPIO_APP, gpio.clone());

    let crashed = run_manual(&app, "probe", "crash");
    assert!(
        matches!(
            crashed.result.as_ref().map_err(InvocationError::root),
            Err(InvocationError::Trap(_))
        ),
        "{:?}",
        crashed.result
    );
    assert!(crashed.effects.gpio.is_empty());

    // Queuing line changes counts against the output limit, so a loop of writes is stopped.
    let flooded = run_manual(&app, "flooder", "flood");
    match &flooded.result {
        Err(InvocationError::OutputLimit(message)) => {
            assert!(message.contains("gpio writes"), "{message}");
        }
        other => panic!("expected the output limit, got {other:?}"),
    }

    assert!(gpio.writes().is_empty(), "{:?}", gpio.writes());
    assert_eq!(gpio.read("relay1"), Ok(false));
    assert!(probe_results(&app).is_empty(), "nothing was committed");
}

#[test]
fn a_component_importing_gpio_without_a_gpio_grant_is_refused_at_load() {
    let header = "manifest_version = 1\n[app]\nname = \"bad\"\nversion = \"1.0.0\"\n";
    for grants in ["", "grants = { kv = [\"state\"] }\n"] {
        let refused = start_error(&format!(
            "{header}[[component]]\nid = \"c\"\nsource = \"{{wat:gpio_ungranted}}\"\n{grants}"
        ));
        assert_eq!(
            refused,
            "component 'c' imports `gpio_write`, but its manifest grants no `gpio` (add it under \
             [component.grants])"
        );
    }
}
