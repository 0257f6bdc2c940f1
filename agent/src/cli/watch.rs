//! `outpost watch`: `outpost up` that rebuilds the changed component and restarts when the
//! app's files change (debounced), keeping the state directory. What is watched and what a
//! change touches is `outpost::watch`; this file polls, builds and restarts.

use std::path::PathBuf;
use std::process::ExitCode;
use std::thread::JoinHandle;
use std::time::Duration;

use outpost::watch::{Snapshot, WatchSet, changes};
use outpost_manifest::AppManifest;
use tokio::sync::watch as signal_watch;

use super::{OutboxArgs, data_dir, listen_for_stop, manifest_path};

/// Arguments of `outpost watch`.
#[derive(clap::Args)]
pub struct WatchArgs {
    /// App directory (holding outpost.toml).
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// State directory (default: DIR/.outpost), kept across restarts.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Quiet time after the last change before rebuilding (editors write in bursts).
    #[arg(long, default_value = "300ms", value_parser = humantime::parse_duration)]
    debounce: Duration,
    /// How often the files are checked.
    #[arg(long, default_value = "250ms", value_parser = humantime::parse_duration)]
    poll: Duration,
    /// Print only invocation lines, not each event.
    #[arg(long)]
    quiet_events: bool,
    #[command(flatten)]
    outbox: OutboxArgs,
}

/// A running `up` on a thread of its own, stopped by a message.
struct Session {
    stop: signal_watch::Sender<bool>,
    thread: JoinHandle<()>,
}

impl Session {
    fn start(manifest: AppManifest, args: &WatchArgs) -> Session {
        let (stop, mut stopped) = signal_watch::channel(false);
        let data = data_dir(&args.dir, args.data.clone());
        let outbox = args.outbox.limits();
        let quiet = args.quiet_events;
        let thread = std::thread::spawn(move || {
            let shutdown = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            let served = super::device_runtime().and_then(|runtime| {
                super::up::serve(manifest, &data, outbox, quiet, runtime, shutdown)
            });
            if let Err(error) = served {
                println!("outpost watch: the app stopped: {error:#}");
            }
        });
        Session { stop, thread }
    }

    fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.thread.join();
    }
}

/// Loads the manifest and builds `only` (every component when `None`).
fn build(args: &WatchArgs, only: Option<&[String]>) -> anyhow::Result<AppManifest> {
    let manifest = outpost_manifest::load(&manifest_path(&args.dir))?;
    let mut subset = manifest.clone();
    if let Some(ids) = only {
        subset.components.retain(|c| ids.contains(&c.id));
    }
    outpost::build::build_app(&subset)?;
    Ok(manifest)
}

/// Runs `outpost watch` until Ctrl-C or SIGTERM.
pub fn run(args: WatchArgs) -> anyhow::Result<ExitCode> {
    let data = data_dir(&args.dir, args.data.clone());
    let mut manifest = outpost_manifest::load(&manifest_path(&args.dir))?;
    let mut set = WatchSet::of(&manifest, &data);
    let mut seen = set.scan();
    let mut session = match build(&args, None) {
        Ok(built) => {
            manifest = built;
            Some(Session::start(manifest.clone(), &args))
        }
        Err(error) => {
            println!("outpost watch: build failed: {error:#}; waiting for a change");
            None
        }
    };
    println!(
        "outpost watch: watching {} file(s) of {}; Ctrl-C stops",
        seen.len(),
        manifest.app.name
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let signal = listen_for_stop(&runtime)?;
    runtime.block_on(async {
        tokio::pin!(signal);
        loop {
            let changed = tokio::select! {
                () = &mut signal => break,
                changed = settled(&set, &mut seen, &args) => changed,
            };
            let affected = set.affected(&changed);
            let only: Option<Vec<String>> =
                (!affected.manifest).then(|| affected.components.iter().cloned().collect());
            println!(
                "outpost watch: {} changed; rebuilding {}",
                names(&changed),
                match &only {
                    Some(ids) if !ids.is_empty() => ids.join(", "),
                    Some(_) => "nothing".to_owned(),
                    None => "every component (the manifest changed)".to_owned(),
                }
            );
            match build(&args, only.as_deref()) {
                Ok(built) => {
                    if let Some(running) = session.take() {
                        running.stop();
                    }
                    set = WatchSet::of(&built, &data);
                    seen = set.scan();
                    println!("outpost watch: restarting {}", built.app.name);
                    session = Some(Session::start(built, &args));
                }
                Err(error) => println!(
                    "outpost watch: build failed: {error:#}; {}",
                    if session.is_some() {
                        "the previous build keeps running"
                    } else {
                        "waiting for a change"
                    }
                ),
            }
        }
    });
    if let Some(running) = session.take() {
        running.stop();
    }
    Ok(ExitCode::SUCCESS)
}

/// Waits for files to change and then stay unchanged for the debounce time; returns every file
/// that changed meanwhile and leaves `seen` at the settled state.
async fn settled(set: &WatchSet, seen: &mut Snapshot, args: &WatchArgs) -> Vec<PathBuf> {
    let mut changed: Vec<PathBuf> = Vec::new();
    let mut quiet_for = Duration::ZERO;
    loop {
        tokio::time::sleep(args.poll).await;
        let now = set.scan();
        let fresh = changes(seen, &now);
        *seen = now;
        if fresh.is_empty() {
            if !changed.is_empty() {
                quiet_for += args.poll;
                if quiet_for >= args.debounce {
                    changed.sort();
                    changed.dedup();
                    return changed;
                }
            }
        } else {
            quiet_for = Duration::ZERO;
            changed.extend(fresh);
        }
    }
}

/// A short list of file names for the log line.
fn names(paths: &[PathBuf]) -> String {
    let mut shown: Vec<String> = paths
        .iter()
        .take(3)
        .map(|p| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
    if paths.len() > 3 {
        shown.push(format!("and {} more", paths.len() - 3));
    }
    shown.join(", ")
}
