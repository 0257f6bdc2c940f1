//! Runs the installed apps, swaps an app when a new version is activated, and watches each new
//! version's health window: too many failed invocations, or a failed on-start trigger, roll the
//! app back to its previous version automatically.

use std::collections::HashMap;
use std::sync::Arc;

use outpost_abi::TriggerKind as AbiKind;
use outpost_hal::Clock;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;

use super::prepare::{Prepared, ServicesFactory, prepare};
use super::report::{UpdateReport, UpdateResult};
use super::state::{FleetState, Install, InstalledVersion, Trial};
use super::{FleetConfig, FleetContext};
use crate::apps::AppVersion;
use crate::events::AgentEvent;
use crate::executor::Executor;
use crate::inbox::Inbox;
use crate::scheduler::{Reporter, Scheduler, SchedulerStats};
use crate::store::committer::Committer;

/// What the supervisor is asked to do.
pub enum Command {
    /// Run `prepared` as `app` at `version` (replacing what runs), on trial if `trial` is set.
    Run {
        /// The app.
        app: String,
        /// The version, as installed.
        version: InstalledVersion,
        /// The compiled app.
        prepared: Prepared,
        /// The health window's progress, if the version is on trial.
        trial: Option<Trial>,
        /// The version kept to roll back to, if any.
        previous: Option<String>,
    },
    /// Show `report` as its app's last update result in the status.
    Reported(UpdateReport),
    /// Stop `app` (its signer was revoked or expired) and show why; what is stored stays.
    Stop {
        /// The app.
        app: String,
        /// Why, already recorded.
        report: UpdateReport,
    },
}

/// One finished invocation of a version on trial.
struct Sample {
    app: String,
    version: String,
    ok: bool,
    on_start: bool,
    trigger: Arc<str>,
    error: Option<String>,
}

enum Event {
    Command(Box<Command>),
    Sample(Sample),
}

/// Sends commands to a running supervisor.
#[derive(Clone)]
pub struct SupervisorHandle {
    tx: mpsc::UnboundedSender<Event>,
}

impl SupervisorHandle {
    /// Queues `command`; false if the supervisor has stopped.
    pub fn send(&self, command: Command) -> bool {
        self.tx.send(Event::Command(Box::new(command))).is_ok()
    }
}

/// A running app.
struct Slot {
    version: InstalledVersion,
    previous: Option<String>,
    trial: Option<Trial>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// The apps installed by fleet updates, running.
pub struct Supervisor {
    config: Arc<FleetConfig>,
    state: FleetState,
    services: ServicesFactory,
    committer: Committer,
    clock: Arc<dyn Clock>,
    print: Reporter,
    slots: HashMap<String, Slot>,
    last_update: HashMap<String, String>,
    apps: watch::Sender<Vec<AppVersion>>,
    /// Apps not managed here (a local `--app`), listed first in the status.
    fixed: Vec<AppVersion>,
    tx: mpsc::UnboundedSender<Event>,
    rx: mpsc::UnboundedReceiver<Event>,
    /// Where running apps' `mqtt` triggers are routed, and what wakes its dispatcher.
    inbox: Option<(Inbox, Arc<Notify>)>,
    /// The device's schedulers' counters, which every app's scheduler adds to.
    schedule: Arc<SchedulerStats>,
}

impl Supervisor {
    /// A supervisor running apps through `committer`, printing outcomes with `print`, and
    /// publishing the list of running apps on `apps` (after the `fixed` ones).
    pub fn new(
        context: FleetContext,
        committer: Committer,
        print: Reporter,
        apps: watch::Sender<Vec<AppVersion>>,
        fixed: Vec<AppVersion>,
    ) -> Supervisor {
        let FleetContext {
            config,
            state,
            services,
            clock,
        } = context;
        let (tx, rx) = mpsc::unbounded_channel();
        // The last results survive restarts, so the status shows them before the next update.
        let last_update = state
            .last_updates()
            .map(|lines| lines.into_iter().collect())
            .unwrap_or_default();
        Supervisor {
            config,
            state,
            services,
            committer,
            clock,
            print,
            slots: HashMap::new(),
            last_update,
            apps,
            fixed,
            tx,
            rx,
            inbox: None,
            schedule: Arc::default(),
        }
    }

    /// Routes running apps' `mqtt` triggers through `inbox`, waking `wake` when an app starts
    /// so messages that waited for it run.
    pub fn with_inbox(mut self, inbox: Inbox, wake: Arc<Notify>) -> Supervisor {
        self.inbox = Some((inbox, wake));
        self
    }

    /// Counts every running app's skipped and late runs into the device's `stats` (the status
    /// shows them).
    pub fn with_scheduler_stats(mut self, stats: Arc<SchedulerStats>) -> Supervisor {
        self.schedule = stats;
        self
    }

    /// A handle to send commands with.
    pub fn handle(&self) -> SupervisorHandle {
        SupervisorHandle {
            tx: self.tx.clone(),
        }
    }

    /// Loads every installed app's active version, ready to run (blocking: reads and compiles).
    /// An app whose stored bundle no longer opens is reported in the log and skipped.
    pub fn load_installed(&self) -> Vec<Command> {
        let installs = match self.state.installs() {
            Ok(installs) => installs,
            Err(error) => {
                tracing::error!(%error, "cannot read the installed apps");
                return Vec::new();
            }
        };
        let mut commands = Vec::new();
        let now = self.clock.wall_ms();
        for (app, install) in installs {
            // Re-checked at every start: a key revoked or expired since it signed what is
            // installed no longer runs anything.
            if let Err(reason) = self.config.may_run(&app, install.active.key_id, now) {
                let report = UpdateReport {
                    device: self.config.device.clone(),
                    app: app.clone(),
                    result: UpdateResult::Refused,
                    from_version: Some(install.active.version.clone()),
                    to_version: None,
                    reason: format!(
                        "installed {} {} not started: {reason}",
                        app, install.active.version
                    ),
                    bytes_received: None,
                    bundle_bytes: None,
                    time_ms: now,
                };
                if let Err(error) = self.state.record(&report) {
                    tracing::error!(%error, "cannot record a report");
                }
                commands.push(Command::Stop { app, report });
                continue;
            }
            match load_version(
                &self.state,
                &self.config,
                &self.services,
                &app,
                &install.active,
            ) {
                Ok(prepared) => commands.push(Command::Run {
                    app,
                    version: install.active,
                    prepared,
                    trial: install.trial,
                    previous: install.previous.map(|p| p.version),
                }),
                Err(error) => self.config.events.emit(AgentEvent::problem(
                    "fleet",
                    format!("cannot start {app} {}: {error}", install.active.version),
                )),
            }
        }
        commands
    }

    /// Runs `initial`, then follows commands and health samples until `stop` turns true.
    pub async fn run(mut self, initial: Vec<Command>, mut stop: watch::Receiver<bool>) {
        for command in initial {
            self.command(command).await;
        }
        loop {
            tokio::select! {
                event = self.rx.recv() => match event {
                    Some(Event::Command(command)) => self.command(*command).await,
                    Some(Event::Sample(sample)) => self.sample(sample).await,
                    None => break,
                },
                () = stopped(&mut stop) => break,
            }
        }
        for (_, slot) in self.slots.drain() {
            let _ = slot.stop.send(true);
            let _ = slot.task.await;
        }
    }

    async fn command(&mut self, command: Command) {
        let (app, version, prepared, trial, previous) = match command {
            Command::Run {
                app,
                version,
                prepared,
                trial,
                previous,
            } => (app, version, prepared, trial, previous),
            Command::Reported(report) => {
                self.last_update.insert(report.app.clone(), report.line());
                self.publish_apps();
                return;
            }
            Command::Stop { app, report } => {
                if let Some(slot) = self.slots.remove(&app) {
                    let _ = slot.stop.send(true);
                    let _ = slot.task.await;
                }
                self.note(&report);
                return;
            }
        };
        if let Some(old) = self.slots.remove(&app) {
            let _ = old.stop.send(true);
            let _ = old.task.await;
        }
        let on_trial = trial.is_some();
        let executor = Executor::new(
            prepared.runtime.clone(),
            self.committer.clone(),
            self.clock.clone(),
        )
        .with_synced_kv(&prepared.manifest.sync_kv);
        let reporter = self.reporter(&app, &version.version, on_trial);
        if let Some((inbox, wake)) = &self.inbox {
            inbox.register(&prepared.manifest, executor.clone(), reporter.clone());
            wake.notify_one();
        }
        let mut scheduler = Scheduler::new(
            executor,
            self.state.store().clone(),
            self.clock.clone(),
            reporter,
        )
        .with_stats(self.schedule.clone());
        if let Some(wait) = self.config.cron_sync_wait {
            scheduler = scheduler.waiting_for_sync(wait, self.config.events.clone());
        }
        let triggers: Vec<_> = prepared
            .manifest
            .components
            .iter()
            .flat_map(|c| c.triggers.iter().map(|t| (c.id.clone(), t.clone())))
            .collect();
        let (stop_tx, stop_rx) = watch::channel(false);
        self.config.events.emit(AgentEvent::FleetRunning {
            app: app.clone(),
            version: version.version.to_string(),
            on_trial,
        });
        let task = tokio::spawn(scheduler.run(triggers, stop_rx));
        self.slots.insert(
            app,
            Slot {
                version,
                previous,
                trial,
                stop: stop_tx,
                task,
            },
        );
        self.publish_apps();
    }

    /// Prints every outcome; while on trial, also feeds the health window.
    fn reporter(&self, app: &str, version: &str, on_trial: bool) -> Reporter {
        let print = self.print.clone();
        let tx = self.tx.clone();
        let (app, version) = (app.to_string(), version.to_string());
        Arc::new(move |outcome| {
            print(outcome);
            if on_trial {
                let _ = tx.send(Event::Sample(Sample {
                    app: app.clone(),
                    version: version.clone(),
                    ok: outcome.is_ok(),
                    on_start: outcome.kind == AbiKind::Start,
                    trigger: outcome.trigger.clone(),
                    error: outcome.result.as_ref().err().map(|e| e.to_string()),
                }));
            }
        })
    }

    async fn sample(&mut self, sample: Sample) {
        let policy = self.config.health;
        let Some(slot) = self.slots.get_mut(&sample.app) else {
            return;
        };
        // Samples of a version already replaced, or of one that left its trial, are stale.
        let Some(trial) = slot.trial.as_mut() else {
            return;
        };
        if slot.version.version != sample.version {
            return;
        }
        trial.invocations += 1;
        if !sample.ok {
            trial.failures += 1;
        }
        let error = sample.error.unwrap_or_default();
        let verdict = if !sample.ok && sample.on_start {
            Some(format!(
                "its on-start trigger '{}' failed: {error}",
                sample.trigger
            ))
        } else if trial.failures > policy.max_failures {
            Some(format!(
                "{} of its first {} invocations failed (at most {} allowed); last failure in trigger '{}': {error}",
                trial.failures, trial.invocations, policy.max_failures, sample.trigger
            ))
        } else {
            None
        };
        let trial = *trial;
        if let Some(reason) = verdict {
            self.roll_back(&sample.app, reason).await;
            return;
        }
        let done = trial.invocations >= policy.trial_invocations;
        let report = done.then(|| UpdateReport {
            device: self.config.device.clone(),
            app: sample.app.clone(),
            result: UpdateResult::Confirmed,
            from_version: slot.previous.clone(),
            to_version: Some(sample.version.clone()),
            reason: format!(
                "healthy: {} of its first {} invocations failed (at most {} allowed)",
                trial.failures, trial.invocations, policy.max_failures
            ),
            bytes_received: None,
            bundle_bytes: None,
            time_ms: self.clock.wall_ms(),
        });
        if done {
            slot.trial = None;
        }
        let state = self.state.clone();
        let (app, version) = (sample.app.clone(), sample.version.clone());
        let saved_report = report.clone();
        let saved = tokio::task::spawn_blocking(move || {
            state.set_trial(
                &app,
                &version,
                (!done).then_some(trial),
                saved_report.as_ref(),
            )
        })
        .await;
        if !matches!(saved, Ok(Ok(()))) {
            tracing::warn!(app = %sample.app, "cannot record the health window's progress");
        }
        if let Some(report) = report {
            self.note(&report);
        }
    }

    /// Rolls `app` back to its previous version (or stops it if it has none).
    async fn roll_back(&mut self, app: &str, reason: String) {
        let Some(slot) = self.slots.remove(app) else {
            return;
        };
        let _ = slot.stop.send(true);
        let _ = slot.task.await;
        let report = UpdateReport {
            device: self.config.device.clone(),
            app: app.to_string(),
            result: UpdateResult::RolledBack,
            from_version: Some(slot.version.version.clone()),
            to_version: slot.previous.clone(),
            reason: match &slot.previous {
                Some(previous) => format!("{reason}; rolled back to {previous}"),
                None => format!("{reason}; no previous version to roll back to, app stopped"),
            },
            bytes_received: None,
            bundle_bytes: None,
            time_ms: self.clock.wall_ms(),
        };
        let (state, config, services) = (
            self.state.clone(),
            self.config.clone(),
            self.services.clone(),
        );
        let (name, saved_report) = (app.to_string(), report.clone());
        let result = tokio::task::spawn_blocking(move || {
            let now: Option<Install> = state
                .roll_back(&name, &saved_report)
                .map_err(|e| e.to_string())?;
            match now {
                Some(install) => load_version(&state, &config, &services, &name, &install.active)
                    .map(|prepared| Some((install.active, prepared))),
                None => Ok(None),
            }
        })
        .await;
        self.note(&report);
        match result {
            Ok(Ok(Some((version, prepared)))) => {
                self.command(Command::Run {
                    app: app.to_string(),
                    version,
                    prepared,
                    trial: None,
                    previous: None,
                })
                .await;
            }
            Ok(Ok(None)) => self.publish_apps(),
            Ok(Err(error)) => {
                self.config.events.emit(AgentEvent::problem(
                    "fleet",
                    format!("rollback of {app} failed: {error}"),
                ));
                self.publish_apps();
            }
            Err(error) => self.config.events.emit(AgentEvent::problem(
                "fleet",
                format!("rollback of {app} failed: {error}"),
            )),
        }
    }

    /// Logs a report and keeps it as the app's last update result for the status.
    fn note(&mut self, report: &UpdateReport) {
        self.config.events.emit(report.event());
        self.last_update.insert(report.app.clone(), report.line());
        self.publish_apps();
    }

    fn publish_apps(&self) {
        let mut apps: Vec<AppVersion> = self
            .slots
            .iter()
            .map(|(name, slot)| AppVersion {
                name: name.clone(),
                version: slot.version.version.clone(),
                previous: slot.previous.clone(),
                on_trial: slot.trial.is_some(),
                last_update: self.last_update.get(name).cloned(),
            })
            .collect();
        apps.sort_by(|a, b| a.name.cmp(&b.name));
        let mut all = self.fixed.clone();
        all.extend(apps);
        self.apps.send_replace(all);
    }
}

/// Loads and prepares a stored version of `app` (blocking).
pub fn load_version(
    state: &FleetState,
    config: &FleetConfig,
    services: &ServicesFactory,
    app: &str,
    version: &InstalledVersion,
) -> Result<Prepared, String> {
    let bytes = state
        .bundle(app, &version.version)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("the bundle of {app} {} is missing", version.version))?;
    let verified = outpost_bundle::reopen(&bytes, &version.digest, &config.limits)
        .map_err(|e| format!("stored bundle: {e}"))?;
    prepare(&verified, services, &config.identity()).map_err(|e| e.to_string())
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
