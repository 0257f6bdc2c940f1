//! One device, assembled in one place: the store and its commit thread, the board (sensors,
//! GPIO), the local app, fleet updates, the inbox for `mqtt` triggers and the sync engine, all
//! from one [`AgentConfig`]. `outpost agent` is this plus argument parsing, event rendering and
//! sd_notify.
//!
//! - [`hardware`]: the board's sensors and GPIO lines.
//! - [`fleet`]: the fleet updater and supervisor wired to the device's services.
//! - [`link`]: the MQTT transport and the sync engine's settings.
//!
//! [`Device::run`] takes any shutdown future (production passes SIGTERM/Ctrl-C, tests their
//! own), so both share one code path.

pub mod fleet;
pub mod hardware;
pub mod link;

use std::future::Future;
use std::sync::Arc;

use outpost_hal::Clock;
use outpost_hal::mqtt::RumqttcTransport;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::app::{App, AppError, AppOptions};
use crate::apps::AppVersion;
use crate::config::AgentConfig;
use crate::events::{AgentEvent, Events};
use crate::identity::DeviceIdentity;
use crate::inbox::{Inbox, InboxRoute};
use crate::report;
use crate::runtime::SendCheck;
use crate::scheduler::{Reporter, Scheduler, SchedulerStats};
use crate::store::committer::{self, Committer, CommitterThread};
use crate::store::{OutboxLimits, Store, StoreError, StoreNotice, Verifier, guard};
use crate::sync::SyncEngine;

/// Inbound messages above this are refused (the ABI's payload limit).
const MAX_INBOUND_BYTES: usize = outpost_abi::limits::MAX_PAYLOAD_LEN;

/// Why a device could not be assembled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// The state file could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The fleet trust keys could not be loaded.
    #[error(transparent)]
    Trust(#[from] crate::fleet::TrustError),
    /// The kept trust document could not be read.
    #[error("{0}")]
    Roles(String),
    /// The broker settings are unusable (URL, TLS files).
    #[error("broker settings: {0}")]
    Link(#[from] outpost_hal::mqtt::TransportError),
    /// The secrets file is unreadable, malformed, or readable by others.
    #[error("secrets: {0}")]
    Secrets(#[from] crate::policy::SecretsError),
}

/// A device ready to run.
pub struct Device {
    config: AgentConfig,
    events: Events,
    clock: Arc<dyn Clock>,
    committer: Committer,
    committer_thread: CommitterThread,
    /// The local app (`--app` / `app =`), if any.
    app: Option<App>,
    /// The inbox of every app's `mqtt` triggers, and what wakes its dispatcher.
    inbox: (Inbox, Arc<Notify>),
    /// Fleet updates, when the device follows groups.
    fleet: Option<fleet::FleetParts>,
    engine: SyncEngine<RumqttcTransport>,
    /// Prints (emits) each invocation's outcome.
    reporter: Reporter,
    /// Woken when the state file turns out damaged while in use: the device stops so that a
    /// restart's start-up check can move the file aside ([`Stopped::needs_restart`]).
    restart: Arc<Notify>,
    /// Every app's scheduler counters (late and skipped runs), which the status shows.
    schedule: Arc<SchedulerStats>,
    /// The control socket (`outpost status`, `kv`, `outbox` while the agent runs).
    control: crate::control::ControlServer,
}

impl Device {
    /// Assembles the device `config` describes; `events` hears everything it does. The state
    /// file is checked in this process ([`Verifier::InProcess`]); the agent binary uses
    /// [`Device::assemble_with`] and a child process.
    pub fn assemble(config: AgentConfig, events: Events) -> Result<Device, DeviceError> {
        Device::assemble_with(config, events, &Verifier::InProcess)
    }

    /// Assembles the device, checking its state file with `verifier` first: a damaged file is
    /// moved aside and replaced (see [`crate::store::guard`]), and every notice about the
    /// store (replaced, rows quarantined, re-opened after an I/O error) becomes a problem event.
    pub fn assemble_with(
        config: AgentConfig,
        events: Events,
        verifier: &Verifier,
    ) -> Result<Device, DeviceError> {
        let clock: Arc<dyn Clock> = Arc::new(outpost_hal::SystemClock::new());
        // Before the store: a secrets file others can read stops the device, naming the fix.
        let identity = DeviceIdentity::of(&config)
            .with_secrets(crate::policy::Secrets::load(&config.secrets)?);
        let store = guard::open_dir(&config.data_dir, verifier)?;
        let restart = Arc::new(Notify::new());
        {
            let events = events.clone();
            let restart = restart.clone();
            store.on_notice(move |notice| {
                events.emit(AgentEvent::problem("store", notice.to_string()));
                if matches!(notice, StoreNotice::Unusable { .. }) {
                    restart.notify_one();
                }
            });
        }
        store.set_quota(
            config
                .max_state_bytes
                .unwrap_or_else(|| default_state_quota(&store, &config.outbox)),
        );
        store.set_durability(config.outbox.durability)?;
        store.set_checkpoint_every(config.outbox.checkpoint_every);
        // One commit thread for every app on the device, so all commits share its batches.
        let (committer, committer_thread) = committer::spawn(store.clone(), config.outbox);
        // One board for every app on the device, local and fleet-installed alike.
        let hardware = Arc::new(hardware::Hardware::discover(
            &config.board,
            config.bindings.clone(),
            &config.data_dir,
            clock.clone(),
        ));
        let planner = link::planner(&config, incarnation(&store));
        let send: Arc<dyn SendCheck> = Arc::new(planner.clone());
        let reporter: Reporter = {
            let events = events.clone();
            Arc::new(move |outcome| events.emit(report::outcome_event(outcome)))
        };
        let app = match &config.app {
            Some(dir) => {
                let path = manifest_path(dir);
                let loaded = outpost_manifest::load(&path)
                    .map_err(AppError::from)
                    .and_then(|manifest| {
                        App::start_on(
                            manifest,
                            AppOptions {
                                data_dir: config.data_dir.clone(),
                                outbox: config.outbox,
                                clock: clock.clone(),
                                hardware: Some(hardware.clone()),
                                identity: Some(identity.clone()),
                                send: Some(send.clone()),
                            },
                            store.clone(),
                            committer.clone(),
                        )
                    });
                // A device stays up without its local app rather than exit into a crash loop:
                // sync, fleet updates and inspection keep working, and the problem says why.
                match loaded {
                    Ok(app) => Some(app),
                    Err(error) => {
                        events.emit(AgentEvent::problem(
                            "app",
                            format!(
                                "{}: {error}; the device runs without it until the app is fixed and the agent restarted",
                                path.display()
                            ),
                        ));
                        None
                    }
                }
            }
            None => None,
        };
        let local_apps: Vec<AppVersion> = app
            .iter()
            .map(|a| AppVersion::local(&a.manifest.app.name, &a.manifest.app.version))
            .collect();
        let (apps_tx, apps_rx) = watch::channel(local_apps.clone());
        // One set of scheduler counters for every app on the device: the status shows them.
        let schedule = Arc::new(SchedulerStats::default());
        let control = crate::control::ControlServer::new(store.clone(), apps_rx.clone());
        let mut engine = SyncEngine::new(
            link::transport(&config)?,
            store.clone(),
            link::sync_config(&config, planner, apps_rx, schedule.clone(), clock.clone()),
            Some(committer.stats_handle()),
        )
        .with_events(events.clone());
        // One inbox for every app's `mqtt` triggers. Its route comes first: group commands
        // live under `{prefix}/fleet/`, which the fleet updater claims otherwise.
        let inbox = Inbox::new(
            store.clone(),
            identity.clone(),
            MAX_INBOUND_BYTES,
            config.inbox,
        );
        let wake = Arc::new(Notify::new());
        if let Some(app) = &app {
            inbox.register(&app.manifest, app.executor.clone(), reporter.clone());
        }
        engine = engine.with_route(Arc::new(InboxRoute {
            inbox: inbox.clone(),
            wake: wake.clone(),
            clock: clock.clone(),
        }));
        let fleet = if !config.fleet.enabled() {
            None
        } else {
            let parts = fleet::assemble(
                &config,
                fleet::Shared {
                    store: &store,
                    committer: &committer,
                    clock: clock.clone(),
                    hardware,
                    reporter: reporter.clone(),
                    events: events.clone(),
                    send,
                    inbox: (inbox.clone(), wake.clone()),
                    schedule: schedule.clone(),
                    identity,
                },
                apps_tx,
                local_apps,
            )?;
            engine = engine.with_route(parts.link.clone());
            Some(parts)
        };
        Ok(Device {
            config,
            events,
            clock,
            committer,
            committer_thread,
            app,
            inbox: (inbox, wake),
            fleet,
            engine,
            reporter,
            restart,
            schedule,
            control,
        })
    }

    /// The settings the device was assembled from.
    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    /// Runs every part (triggers, inbox dispatcher, fleet, sync) until `shutdown` resolves or
    /// the engine ends, then stops them all and flushes every queued commit. Call inside a
    /// tokio runtime; the commit thread is joined by [`Stopped::join`] outside it.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Stopped {
        let Device {
            config,
            events,
            clock,
            committer,
            committer_thread,
            app,
            inbox,
            fleet,
            engine,
            reporter,
            restart,
            schedule,
            control,
        } = self;
        events.emit(AgentEvent::Started {
            device: config.device_id.clone(),
            broker: config.mqtt.broker.clone(),
            data_dir: config.data_dir.display().to_string(),
            durability: config.outbox.durability.promise(),
        });
        let (stop_tx, stop) = watch::channel(false);
        let mut tasks: Vec<JoinHandle<()>> = Vec::new();
        if let Some(app) = &app {
            let mut scheduler = Scheduler::new(
                app.executor.clone(),
                app.store.clone(),
                clock,
                reporter.clone(),
            )
            .with_stats(schedule);
            if let Some(wait) = config.clock.sync_wait() {
                scheduler = scheduler.waiting_for_sync(wait, events.clone());
            }
            tasks.push(tokio::spawn(scheduler.run(app.triggers(), stop.clone())));
        }
        let (inbox, wake) = inbox;
        tasks.push(tokio::spawn(dispatch(inbox, wake, stop.clone())));
        if let Some(parts) = fleet {
            tasks.extend(parts.spawn(&stop));
        }
        let control = control.start(&config.data_dir, &config.device_id, &events, engine.stats());
        let engine = engine.run(stop.clone());
        tokio::pin!(engine);
        let mut needs_restart = false;
        tokio::select! {
            () = &mut engine => {}
            () = shutdown => {
                events.emit(AgentEvent::Stopping);
                let _ = stop_tx.send(true);
                engine.await;
            }
            () = restart.notified() => {
                needs_restart = true;
                events.emit(AgentEvent::Stopping);
                let _ = stop_tx.send(true);
                engine.await;
            }
        }
        let _ = stop_tx.send(true);
        for task in tasks {
            let _ = task.await;
        }
        Stopped {
            app,
            committer,
            committer_thread,
            events,
            needs_restart,
            control,
        }
    }
}

/// A device whose tasks have stopped; [`Stopped::join`] flushes its commits.
pub struct Stopped {
    app: Option<App>,
    committer: Committer,
    committer_thread: CommitterThread,
    events: Events,
    needs_restart: bool,
    /// The control socket, served until the commits are flushed.
    control: crate::control::server::Serving,
}

impl Stopped {
    /// Whether the device stopped because its state file is damaged while in use: the process
    /// should exit with a failure so the service manager restarts it and the start-up check
    /// moves the file aside.
    pub fn needs_restart(&self) -> bool {
        self.needs_restart
    }

    /// Waits until every queued commit is written, then says [`AgentEvent::Stopped`]. Blocking:
    /// call outside the async runtime.
    pub fn join(self) {
        self.control.stop();
        if let Some(app) = self.app {
            app.shutdown();
        }
        drop(self.committer);
        self.committer_thread.join();
        self.events.emit(AgentEvent::Stopped);
    }
}

/// The state file's disk quota when `agent.toml` sets none: room for twice the outbox's byte
/// bound plus 16 MiB (redb's pages, KV, bundles), but never more than half of what the file and
/// the free space of its filesystem add up to at start, so the outbox's full-policy acts well
/// before the disk is full and the rest of the system keeps room too.
pub fn default_state_quota(store: &Store, outbox: &OutboxLimits) -> u64 {
    let wanted = outbox.max_bytes.saturating_mul(2).saturating_add(16 << 20);
    let path = store.path();
    let file = std::fs::metadata(path).map_or(0, |m| m.len());
    match path.parent().and_then(free_bytes) {
        Some(free) => wanted.min((file + free) / 2),
        None => wanted,
    }
}

/// Bytes free for an unprivileged writer on the filesystem holding `dir`.
fn free_bytes(dir: &std::path::Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(dir).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// `DIR/outpost.toml`, or DIR itself if it names a file.
pub fn manifest_path(dir: &std::path::Path) -> std::path::PathBuf {
    if dir.is_file() {
        dir.to_path_buf()
    } else {
        dir.join("outpost.toml")
    }
}

/// Runs stored inbound messages, one at a time and in order, whenever woken (and once at start,
/// for rows a crash left behind).
async fn dispatch(inbox: Inbox, wake: Arc<Notify>, mut stop: watch::Receiver<bool>) {
    loop {
        let worker = inbox.clone();
        match tokio::task::spawn_blocking(move || worker.dispatch_pending()).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::warn!(%error, "cannot read the inbox"),
            Err(error) => tracing::warn!(%error, "inbox dispatch failed"),
        }
        tokio::select! {
            () = wake.notified() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// The store's incarnation for the wire (docs/WIRE.md): a random id drawn when the store was
/// created, so consumers never take a replaced store's new events for duplicates.
fn incarnation(store: &Store) -> String {
    store.incarnation().to_string()
}
