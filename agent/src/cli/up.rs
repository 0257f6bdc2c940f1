//! `outpost up`: build, load and run an app on the simulated board until Ctrl-C or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use outpost::app::{App, AppOptions};
use outpost::report;
use outpost::scheduler::{Reporter, Scheduler};
use outpost_hal::SystemClock;
use tokio::sync::watch;

use super::{OutboxArgs, data_dir, listen_for_stop, manifest_path};

/// Arguments of `outpost up`.
#[derive(clap::Args)]
pub struct UpArgs {
    /// App directory (holding outpost.toml).
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// State directory (default: DIR/.outpost).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Do not run build commands first.
    #[arg(long)]
    no_build: bool,
    /// Print only invocation lines, not each event.
    #[arg(long)]
    quiet_events: bool,
    #[command(flatten)]
    outbox: OutboxArgs,
}

/// Runs `outpost up`.
pub fn run(args: UpArgs) -> anyhow::Result<ExitCode> {
    let manifest_file = manifest_path(&args.dir);
    let manifest = outpost_manifest::load(&manifest_file)?;
    if !args.no_build {
        outpost::build::build_app(&manifest)?;
    }
    let data = data_dir(&args.dir, args.data);
    let runtime = super::device_runtime()?;
    let shutdown = listen_for_stop(&runtime)?;
    serve(
        manifest,
        &data,
        args.outbox.limits(),
        args.quiet_events,
        runtime,
        shutdown,
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Runs a built app on the simulated board, with state in `data`, on `runtime` until
/// `shutdown` resolves; prints its outcomes as `outpost up` does (`outpost watch` runs it
/// between rebuilds).
pub fn serve(
    manifest: outpost_manifest::AppManifest,
    data: &std::path::Path,
    outbox: outpost::store::OutboxLimits,
    quiet: bool,
    runtime: tokio::runtime::Runtime,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let app = App::start_with(
        manifest,
        AppOptions {
            data_dir: data.to_path_buf(),
            outbox,
            clock: Arc::new(SystemClock::new()),
            hardware: None,
            identity: None,
            send: None,
        },
    )?;
    let triggers = app.triggers();
    app.store
        .on_notice(|notice| println!("outpost up: state store: {notice}"));
    println!(
        "outpost up: app {} {} — {} component(s), {} trigger(s), state in {}",
        app.manifest.app.name,
        app.manifest.app.version,
        app.manifest.components.len(),
        triggers.len(),
        data.display()
    );
    println!("  {}", app.store.durability().promise());
    for sensor in app.board.sensors() {
        println!(
            "  sensor {} [{}] from {}",
            sensor.name, sensor.unit, sensor.source
        );
    }
    let reporter: Reporter = Arc::new(move |outcome| {
        println!("{}", report::outcome_line(outcome));
        if !quiet {
            for line in report::effect_lines(outcome) {
                println!("{line}");
            }
        }
    });
    let scheduler = Scheduler::new(
        app.executor.clone(),
        app.store.clone(),
        Arc::new(SystemClock::new()),
        reporter,
    );
    let stats = scheduler.stats();
    runtime.block_on(async {
        let (stop, stopped) = watch::channel(false);
        let scheduler = tokio::spawn(scheduler.run(triggers, stopped));
        shutdown.await;
        println!("outpost up: stopping (waiting for running invocations)");
        let _ = stop.send(true);
        scheduler.await.context("scheduler task")
    })?;
    let store = app.store.clone();
    app.shutdown();
    let counters = store.counters()?;
    let (late_runs, max_late_ms) = stats.lateness();
    println!(
        "outpost up: stopped; outbox holds {} record(s), {} skipped run(s), {} late run(s) (at most {} ms late), {} sensor error(s)",
        counters.outbox_records,
        stats
            .skipped_runs
            .load(std::sync::atomic::Ordering::Relaxed),
        late_runs,
        max_late_ms,
        stats
            .sensor_errors
            .load(std::sync::atomic::Ordering::Relaxed),
    );
    Ok(())
}
