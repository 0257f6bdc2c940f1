//! Triggers driven by the real scheduler: payloads reach the component, slow runs do not block
//! other triggers, overlapping runs are skipped and counted, missed runs follow the manifest.
//! Tests wait for reported outcomes (events), never for fixed sleeps.

use std::sync::Arc;
use std::time::Duration;

use outpost::app::{App, AppOptions};
use outpost::executor::Outcome;
use outpost::runtime::Firing;
use outpost::scheduler::{Reporter, Scheduler};
use outpost::store::OutboxLimits;
use outpost_abi::TriggerKind;
use outpost_hal::{Clock, ManualClock, SystemClock};
use outpost_testkit::START_MS;
use outpost_testkit::app::events;
use outpost_testkit::guests::render;
use tokio::sync::{mpsc, watch};

/// Safety net only: a test that sees no progress for this long fails instead of hanging.
const STALL: Duration = Duration::from_secs(30);

/// What the reporter forwards for each outcome.
#[derive(Debug, Clone)]
struct Seen {
    trigger: String,
    ok: bool,
}

fn start(dir: &std::path::Path, manifest: &str, clock: Arc<dyn Clock>) -> App {
    let path = dir.join("outpost.toml");
    std::fs::write(&path, render(manifest, dir)).expect("write manifest");
    App::start(
        &path,
        AppOptions {
            data_dir: dir.join("data"),
            outbox: OutboxLimits::default(),
            clock,
            hardware: None,
            identity: None,
            send: None,
        },
    )
    .unwrap_or_else(|e| panic!("app did not start: {e}"))
}

/// Runs the app's scheduler on `rt` until `until` says the seen outcomes suffice.
fn run_until(
    rt: &tokio::runtime::Runtime,
    app: &App,
    clock: Arc<dyn Clock>,
    mut until: impl FnMut(&[Seen]) -> bool,
) -> (Vec<Seen>, Arc<outpost::scheduler::SchedulerStats>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let reporter: Reporter = Arc::new(move |outcome: &Outcome| {
        let _ = tx.send(Seen {
            trigger: outcome.trigger.to_string(),
            ok: outcome.is_ok(),
        });
    });
    let scheduler = Scheduler::new(app.executor.clone(), app.store.clone(), clock, reporter);
    let stats = scheduler.stats();
    let seen = rt.block_on(async {
        let (stop, stopped) = watch::channel(false);
        let running = tokio::spawn(scheduler.run(app.triggers(), stopped));
        let mut seen = Vec::new();
        while !until(&seen) {
            let next = tokio::time::timeout(STALL, rx.recv()).await;
            seen.push(
                next.expect("no outcome within the stall limit")
                    .expect("reporter alive"),
            );
        }
        stop.send(true).expect("scheduler listening");
        running.await.expect("scheduler ends cleanly");
        // Runs that finished while stopping are reported too.
        while let Ok(more) = rx.try_recv() {
            seen.push(more);
        }
        seen
    });
    (seen, stats)
}

fn count(seen: &[Seen], trigger: &str) -> usize {
    seen.iter().filter(|s| s.trigger == trigger).count()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio")
}

#[test]
fn every_kind_of_trigger_fires_and_delivers_its_payload() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let app = start(
        dir.path(),
        r#"
manifest_version = 1
[app]
name = "triggers"
version = "1.0.0"
[variables]
greeting = "hi"
[[component]]
id = "echo"
source = "{wasm:echo}"
grants = { streams = ["echo"], kv = ["echo"], config = ["greeting"] }
[[component.trigger]]
name = "boot"
on_start = true
[[component.trigger]]
name = "tick"
interval = "20ms"
jitter = "5ms"
[[component.trigger]]
name = "every-second"
cron = "* * * * * *"
[[component.trigger]]
name = "samples"
sensor = "temp"
sample_every = "10ms"
fire = "change"
[[simulator.sensor]]
name = "temp"
profile = "ramp"
from = 0.0
to = 100.0
over = "10s"
"#,
        clock.clone(),
    );
    let rt = runtime();
    let (seen, _) = run_until(&rt, &app, clock, |seen| {
        count(seen, "boot") >= 1
            && count(seen, "tick") >= 3
            && count(seen, "samples") >= 3
            && count(seen, "every-second") >= 1
    });
    assert!(seen.iter().all(|s| s.ok), "{seen:?}");
    assert_eq!(count(&seen, "boot"), 1, "on-start fires once");

    let echoed = events(&app, "echo");
    let has = |prefix: &str| echoed.iter().any(|e| e.starts_with(prefix));
    assert!(has("kind=3 name=boot len=0"), "{echoed:?}");
    assert!(has("kind=2 name=tick len=8"), "{echoed:?}");
    assert!(has("kind=1 name=every-second len=8"), "{echoed:?}");
    assert!(has("kind=4 name=samples len=16"), "{echoed:?}");
    assert!(
        app.store
            .trigger_last_run("triggers", "tick")
            .expect("reads")
            .is_some()
    );
    drop(rt);
    app.shutdown();
}

#[test]
fn a_slow_run_blocks_no_other_trigger_and_its_overlaps_are_skipped_and_counted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let app = start(
        dir.path(),
        r#"
manifest_version = 1
[app]
name = "overlap"
version = "1.0.0"
[variables]
greeting = "hi"
[[component]]
id = "spinner"
source = "{wat:infinite_loop}"
limits = { fuel = 20_000_000 }
[[component.trigger]]
name = "slow"
interval = "2ms"
[[component]]
id = "echo"
source = "{wasm:echo}"
grants = { streams = ["echo"], kv = ["echo"], config = ["greeting"] }
[[component.trigger]]
name = "fast"
interval = "5ms"
"#,
        clock.clone(),
    );
    let rt = runtime();
    let (seen, stats) = run_until(&rt, &app, clock, |seen| count(seen, "fast") >= 10);
    let skipped = stats
        .skipped_runs
        .load(std::sync::atomic::Ordering::Relaxed);
    // Ten fast runs completed while the slow trigger could finish at most a few runs.
    assert!(count(&seen, "slow") < count(&seen, "fast"), "{seen:?}");
    assert!(
        skipped >= 1,
        "overlapping slow runs were skipped (skipped = {skipped})"
    );
    assert!(
        seen.iter().filter(|s| s.trigger == "slow").all(|s| !s.ok),
        "the spinner always runs out of fuel"
    );
    // Dropping the runtime waits for the blocking tasks that persist the skip counter.
    drop(rt);
    let store = app.store.clone();
    app.shutdown();
    assert!(
        store.counters().expect("counters").skipped_runs >= 1,
        "skips are persisted"
    );
}

#[test]
fn missed_runs_run_once_at_start_only_when_the_manifest_says_so() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = r#"
manifest_version = 1
[app]
name = "missed"
version = "1.0.0"
[variables]
greeting = "hi"
[[component]]
id = "echo"
source = "{wasm:echo}"
grants = { streams = ["echo"], kv = ["echo"], config = ["greeting"] }
# Yearly on June 1st: a run fell due between the first session (Jan 1st 2026) and now.
[[component.trigger]]
name = "catch-up"
cron = "0 0 0 1 6 *"
missed = "run-once"
[[component.trigger]]
name = "forget"
cron = "0 0 0 1 6 *"
missed = "skip"
"#;
    // First session, on a manual clock at 2026-01-01: both triggers run once by hand.
    {
        let clock = Arc::new(ManualClock::new(START_MS));
        let app = start(dir.path(), manifest, clock);
        for trigger in ["catch-up", "forget"] {
            let firing = Firing::scheduled(Arc::from(trigger), TriggerKind::Cron, START_MS);
            assert!(app.executor.run_blocking("echo", firing).is_ok());
        }
        app.shutdown();
    }
    // Second session, now: the agent was "off" across June 1st.
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let app = start(dir.path(), manifest, clock.clone());
    let rt = runtime();
    let (seen, _) = run_until(&rt, &app, clock, |seen| count(seen, "catch-up") >= 1);
    assert_eq!(count(&seen, "catch-up"), 1);
    assert_eq!(count(&seen, "forget"), 0, "skip never catches up: {seen:?}");
    drop(rt);
    app.shutdown();
}
