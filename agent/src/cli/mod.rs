//! Command-line parsing and dispatch.

mod agent;
#[cfg(feature = "operator")]
mod broker_args;
#[cfg(feature = "operator")]
mod bundle;
#[cfg(feature = "operator")]
mod fleet;
mod hal;
mod invoke;
mod logging;
#[cfg(feature = "operator")]
mod new;
#[cfg(feature = "operator")]
mod provision;
mod state;
mod status;
#[cfg(feature = "operator")]
mod style;
mod systemd;
#[cfg(feature = "operator")]
mod test;
mod up;
#[cfg(feature = "operator")]
mod watch;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use outpost::store::{FullPolicy, OutboxLimits};

/// Outpost: run signed WebAssembly components on field devices, offline first.
#[derive(Parser)]
#[command(name = "outpost", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// More detail on stderr (debug level), and routine agent events (`sync: drained`, each
    /// successful invocation) in `outpost agent --events text`.
    #[arg(short, long, global = true, conflicts_with = "quiet")]
    verbose: bool,
    /// Only warnings and errors on stderr.
    #[arg(short, long, global = true)]
    quiet: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Build the app if needed and run it on the simulated board (no broker needed).
    Up(up::UpArgs),
    /// Run the device daemon: the app's triggers, and sync with an MQTT broker.
    Agent(Box<agent::AgentArgs>),
    /// Watch devices through the broker.
    #[command(subcommand)]
    #[cfg(feature = "operator")]
    Fleet(fleet::FleetCommand),
    /// Inspect this board's hardware.
    #[command(subcommand)]
    Hal(hal::HalCommand),
    /// Run every component's build command.
    Build {
        /// App directory (holding outpost.toml).
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Run one invocation now and print its outcome.
    Invoke(invoke::InvokeArgs),
    /// Run the app like `up`, rebuilding the changed component and restarting on file changes.
    #[cfg(feature = "operator")]
    Watch(watch::WatchArgs),
    /// Run the app's component tests (DIR/tests/*.toml) on a simulated board and clock.
    #[cfg(feature = "operator")]
    Test(test::TestArgs),
    /// Show a device's status: from its running agent, else from its state directory.
    Status(status::StatusArgs),
    /// Read key-value data (from the running agent, else from the state directory).
    #[command(subcommand)]
    Kv(state::KvCommand),
    /// Read the outbox (from the running agent, else from the state directory).
    #[command(subcommand)]
    Outbox(state::OutboxCommand),
    /// Check a state file (used by the agent at start, in a child process).
    #[command(subcommand, hide = true)]
    State(state::StateCommand),
    /// Write one device's config, TLS files and trust keys as a tree to copy onto its SD card.
    #[cfg(feature = "operator")]
    Provision(Box<provision::ProvisionArgs>),
    /// Create a bundle-signing key pair: NAME.key (secret, mode 0600) and NAME.pub.
    #[cfg(feature = "operator")]
    Keygen {
        /// Directory to write the key files into.
        #[arg(long)]
        out: PathBuf,
        /// File name of the pair.
        #[arg(long, default_value = "outpost")]
        name: String,
    },
    /// Build, pack and sign app bundles; inspect them.
    #[command(subcommand)]
    #[cfg(feature = "operator")]
    Bundle(bundle::BundleCommand),
    /// Create an app from a template (`--list` shows them): Rust, C, Zig or AssemblyScript.
    #[cfg(feature = "operator")]
    New(new::NewArgs),
}

/// Outbox bounds, shared by the commands that run components.
#[derive(clap::Args, Clone)]
pub struct OutboxArgs {
    /// Most records the outbox holds.
    #[arg(long, default_value_t = OutboxLimits::default().max_records)]
    outbox_max_records: u64,
    /// Most bytes the outbox holds.
    #[arg(long, default_value_t = OutboxLimits::default().max_bytes)]
    outbox_max_bytes: u64,
    /// What to do when the outbox is full: drop-oldest or reject-new.
    #[arg(long, default_value = "drop-oldest")]
    outbox_full: FullPolicy,
    /// When commits reach the disk: "immediate" (every reported success is on disk) or a
    /// window such as "1s" (fewer writes; a power cut loses at most the window).
    #[arg(long, default_value = "immediate")]
    durability: outpost::store::Durability,
    /// Longest a journaled commit waits for its checkpoint into the state file, such as "5m"
    /// (longer writes less; a crash replays at most this much from the journal).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5m")]
    checkpoint_every: std::time::Duration,
}

impl OutboxArgs {
    fn limits(&self) -> OutboxLimits {
        OutboxLimits {
            max_records: self.outbox_max_records,
            max_bytes: self.outbox_max_bytes,
            policy: self.outbox_full,
            durability: self.durability,
            checkpoint_every: self.checkpoint_every,
        }
    }
}

/// Parses the command line and runs it.
pub fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    // A level, not a filter expression: a filter engine would add hundreds of KiB to a device
    // binary for directives nobody sets on a device.
    logging::init(match (cli.verbose, cli.quiet) {
        (true, _) => Some(logging::Verbosity::Verbose),
        (_, true) => Some(logging::Verbosity::Quiet),
        _ => None,
    });
    match cli.command {
        Command::Up(args) => up::run(args),
        Command::Agent(args) => agent::run(*args),
        #[cfg(feature = "operator")]
        Command::Fleet(command) => fleet::run(command),
        Command::Hal(command) => hal::run(command),
        Command::Build { dir } => {
            let manifest = outpost_manifest::load(&manifest_path(&dir))?;
            let built = outpost::build::build_app(&manifest)?;
            println!("built {built} component(s) of {}", manifest.app.name);
            // Loaded as a device would: a bad import or a costly initial memory shows now.
            let pool = outpost::runtime::EnginePool::default();
            for spec in &manifest.components {
                let loaded = outpost::runtime::loader::load(&pool, spec)?;
                println!(
                    "  {}: {} page(s) of initial memory{}",
                    spec.id,
                    loaded.initial_pages,
                    if loaded.cost_note().is_some() {
                        " (costly: see the warning)"
                    } else {
                        ""
                    }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Invoke(args) => invoke::run(args),
        #[cfg(feature = "operator")]
        Command::Test(args) => test::run(args),
        #[cfg(feature = "operator")]
        Command::Watch(args) => watch::run(args),
        Command::Status(args) => status::run(args),
        Command::Kv(command) => state::kv(command),
        Command::Outbox(command) => state::outbox(command),
        Command::State(command) => state::state(command),
        #[cfg(feature = "operator")]
        Command::Provision(args) => provision::run(*args),
        #[cfg(feature = "operator")]
        Command::Keygen { out, name } => bundle::keygen(&out, &name),
        #[cfg(feature = "operator")]
        Command::Bundle(command) => bundle::run(command),
        #[cfg(feature = "operator")]
        Command::New(args) => new::run(args),
    }
}

/// The runtime `up` and `agent` run on: one thread for triggers and sync, and a small pool of
/// blocking threads for invocations (each trigger has at most one in flight).
pub fn device_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(8)
        .build()
        .context("starting the async runtime")
}

/// `DIR/outpost.toml`, or DIR itself if it names a file (the device's own rule).
pub use outpost::device::manifest_path;

/// The state directory: `--data`, else `DIR/.outpost`.
pub fn data_dir(dir: &Path, data: Option<PathBuf>) -> PathBuf {
    data.unwrap_or_else(|| {
        let base = if dir.is_file() {
            dir.parent().unwrap_or(Path::new("."))
        } else {
            dir
        };
        base.join(".outpost")
    })
}

/// Opens the state store of a data directory for reading.
pub fn open_store(data: &Path) -> anyhow::Result<outpost::store::Store> {
    let file = data.join(outpost::store::STATE_FILE);
    anyhow::ensure!(
        file.exists(),
        "no state at {} (nothing has run there yet)",
        file.display()
    );
    outpost::store::Store::open(&file).with_context(|| format!("opening {}", file.display()))
}

/// Starts listening for Ctrl-C and SIGTERM on `runtime`; the future it returns resolves once
/// either arrives, including one that arrived before it was first polled.
///
/// Call it before any slow start-up work: until the handlers are in place a SIGTERM takes the
/// default action and kills the process, so a stop requested while the state file is checked
/// or the journal replayed would look like a crash instead of a clean stop.
pub fn listen_for_stop(
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<impl std::future::Future<Output = ()> + Send + use<>> {
    let _context = runtime.enter();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
        let mut interrupt = signal(SignalKind::interrupt()).context("listening for Ctrl-C")?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = interrupt.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async move {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
