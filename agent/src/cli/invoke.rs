//! `outpost invoke`: one invocation now, its outcome printed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use outpost::app::{App, AppOptions};
use outpost::report;
use outpost::runtime::Firing;
use outpost_hal::SystemClock;

use super::{OutboxArgs, data_dir, manifest_path};

/// Arguments of `outpost invoke`.
#[derive(clap::Args)]
pub struct InvokeArgs {
    /// App directory (holding outpost.toml).
    dir: PathBuf,
    /// Component id.
    component: String,
    /// File whose bytes are the trigger payload.
    #[arg(long)]
    payload: Option<PathBuf>,
    /// State directory (default: DIR/.outpost).
    #[arg(long)]
    data: Option<PathBuf>,
    #[command(flatten)]
    outbox: OutboxArgs,
}

/// Runs `outpost invoke`; exits non-zero if the invocation failed.
pub fn run(args: InvokeArgs) -> anyhow::Result<ExitCode> {
    let payload = match &args.payload {
        Some(path) => std::fs::read(path)
            .with_context(|| format!("reading payload file {}", path.display()))?,
        None => Vec::new(),
    };
    let app = App::start(
        &manifest_path(&args.dir),
        AppOptions {
            data_dir: data_dir(&args.dir, args.data),
            outbox: args.outbox.limits(),
            clock: Arc::new(SystemClock::new()),
            hardware: None,
            identity: None,
            send: None,
        },
    )?;
    anyhow::ensure!(
        app.manifest.component(&args.component).is_some(),
        "no component '{}' in app {} (it has: {})",
        args.component,
        app.manifest.app.name,
        app.manifest
            .components
            .iter()
            .map(|c| c.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let outcome = app
        .executor
        .run_blocking(&args.component, Firing::manual(payload));
    println!("{}", report::outcome_line(&outcome));
    for line in report::effect_lines(&outcome) {
        println!("{line}");
    }
    let pages = app
        .executor
        .runtime()
        .initial_pages(&args.component)
        .unwrap_or(0);
    println!(
        "instantiation: {} µs of the run ({pages} page(s), {} KiB, of initial memory, allocated and zeroed per invocation)",
        outcome.instantiation.as_micros(),
        pages * 64
    );
    app.shutdown();
    Ok(if outcome.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
