//! Triggers: cron schedules, intervals, on-start and sensor samples, each driven by its own task
//! so a slow invocation never delays an unrelated trigger.
//!
//! - [`plan`]: pure schedule arithmetic (next run, missed runs, the interval grid, lateness,
//!   jitter).
//! - [`sensor_watch`]: which samples fire a sensor trigger.
//! - [`zone`]: cron triggers' time zones from the system's tz database.
//! - [`sync_wait`]: cron triggers wait (bounded) for a synchronised wall clock.
//! - this file: the async driver. Invocations run on blocking threads, at most one per trigger.
//!   An interval trigger whose previous run is still going waits for it, then runs once for the
//!   latest due time and skips the others ([`plan::IntervalGrid`]); a cron or sensor run that
//!   falls due meanwhile is skipped. Skips are counted persistently, late starts in
//!   [`SchedulerStats`] (shown in the status), never queued and never silent.

pub mod plan;
pub mod sensor_watch;
pub mod sync_wait;
pub mod zone;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use outpost_abi::TriggerKind as AbiKind;
use outpost_hal::{Clock, SensorBoard};
use outpost_manifest::{TriggerKind, TriggerSpec};
use sync_wait::{SyncWait, Waited};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::events::{AgentEvent, Events};
use crate::executor::{Executor, Outcome};
use crate::runtime::Firing;
use crate::store::Store;

/// How often a cron trigger planned on an unsynchronised clock looks again, so the first sync
/// re-plans it on the true time (a minute: few wake-ups on a device that never syncs).
const UNSYNCED_REPLAN: Duration = Duration::from_secs(60);

/// Called with every outcome (printing in `outpost up`, collecting in tests).
pub type Reporter = Arc<dyn Fn(&Outcome) + Send + Sync>;

/// Counters the scheduler keeps while running (since the process started, in memory). One set
/// can be shared by every app's scheduler on a device ([`Scheduler::with_stats`]); the status
/// document shows the lateness.
#[derive(Debug, Default)]
pub struct SchedulerStats {
    /// Runs skipped because the trigger's previous run was still going.
    pub skipped_runs: AtomicU64,
    /// Sensor samples that failed (the trigger keeps sampling).
    pub sensor_errors: AtomicU64,
    /// Runs of cron and interval triggers that started late ([`plan::is_late`]): the schedule
    /// did not hold (a previous run, or the device, was too slow).
    pub late_runs: AtomicU64,
    /// The most any run started after its due time, in ms.
    pub max_late_ms: AtomicU64,
}

impl SchedulerStats {
    /// Records a run that started `late` after its due time, if that counts as late for a
    /// trigger of this `period`.
    pub fn record_start(&self, late: Duration, period: Duration) {
        if plan::is_late(late, period) {
            self.late_runs.fetch_add(1, Ordering::Relaxed);
            let ms = u64::try_from(late.as_millis()).unwrap_or(u64::MAX);
            self.max_late_ms.fetch_max(ms, Ordering::Relaxed);
        }
    }

    /// Late runs and the most a run was late (ms), for the status and summaries.
    pub fn lateness(&self) -> (u64, u64) {
        (
            self.late_runs.load(Ordering::Relaxed),
            self.max_late_ms.load(Ordering::Relaxed),
        )
    }
}

/// What every trigger task shares.
struct Shared {
    executor: Executor,
    store: Store,
    clock: Arc<dyn Clock>,
    sensors: Arc<dyn SensorBoard>,
    report: Reporter,
    stats: Arc<SchedulerStats>,
    /// Whether cron triggers wait for a synchronised clock, and where to say they gave up.
    sync_wait: Option<(SyncWait, Events)>,
}

/// Runs every trigger of the app until `shutdown` turns true, then waits for runs in flight.
pub struct Scheduler {
    shared: Arc<Shared>,
}

impl Scheduler {
    /// A scheduler for the executor's app.
    pub fn new(executor: Executor, store: Store, clock: Arc<dyn Clock>, report: Reporter) -> Self {
        let sensors = executor.runtime().services().sensors.clone();
        Scheduler {
            shared: Arc::new(Shared {
                executor,
                store,
                clock,
                sensors,
                report,
                stats: Arc::default(),
                sync_wait: None,
            }),
        }
    }

    /// Counts into `stats` instead of counters of its own: a device shares one set between
    /// every app's scheduler, so its status shows them all. Call before [`Scheduler::run`].
    pub fn with_stats(mut self, stats: Arc<SchedulerStats>) -> Self {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.stats = stats;
        }
        self
    }

    /// Makes cron triggers wait for a synchronised wall clock (bounded by `wait`) before they
    /// plan their first run; a wait that times out is told to `events` as a problem. Without
    /// it (`outpost up`, tests) cron runs on the clock as it is.
    pub fn waiting_for_sync(mut self, wait: SyncWait, events: Events) -> Self {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.sync_wait = Some((wait, events));
        }
        self
    }

    /// The live counters.
    pub fn stats(&self) -> Arc<SchedulerStats> {
        self.shared.stats.clone()
    }

    /// Drives `triggers` (component id, trigger) until shutdown, then lets in-flight runs finish.
    pub async fn run(self, triggers: Vec<(String, TriggerSpec)>, shutdown: watch::Receiver<bool>) {
        let tasks: Vec<JoinHandle<()>> = triggers
            .into_iter()
            .map(|(component, spec)| {
                let shared = self.shared.clone();
                let stop = shutdown.clone();
                tokio::spawn(drive(shared, Arc::from(component), spec, stop))
            })
            .collect();
        for task in tasks {
            if let Err(error) = task.await {
                tracing::error!(%error, "a trigger task failed");
            }
        }
    }
}

/// At most one run per trigger is in flight.
struct Runner {
    shared: Arc<Shared>,
    component: Arc<str>,
    name: Arc<str>,
    in_flight: Option<JoinHandle<()>>,
    /// Runs skipped so far; only the first is a warning, so a trigger that is simply too fast
    /// for its component does not flood the device log (the count is in the state counters).
    skipped: u64,
}

impl Runner {
    fn fire(&mut self, firing: Firing) {
        if self
            .in_flight
            .as_ref()
            .is_some_and(|run| !run.is_finished())
        {
            self.skip(1);
            return;
        }
        let shared = self.shared.clone();
        let component = self.component.clone();
        self.in_flight = Some(tokio::task::spawn_blocking(move || {
            let outcome = shared.executor.run_blocking(&component, firing);
            (shared.report)(&outcome);
        }));
    }

    /// Waits until the previous run (if any) has finished; `false` if shutdown came first.
    async fn idle(&mut self, stop: &mut watch::Receiver<bool>) -> bool {
        let Some(run) = self.in_flight.as_mut() else {
            return true;
        };
        if run.is_finished() {
            return true;
        }
        tokio::select! {
            result = run => {
                self.in_flight = None;
                if let Err(error) = result {
                    tracing::error!(%error, "an invocation thread failed");
                }
                true
            }
            _ = stop.wait_for(|stopped| *stopped) => false,
        }
    }

    /// Counts `n` runs that did not happen (persistently, with the next commit).
    fn skip(&mut self, n: u64) {
        if n == 0 {
            return;
        }
        self.shared
            .stats
            .skipped_runs
            .fetch_add(n, Ordering::Relaxed);
        self.shared.executor.note_skipped_runs(n);
        if self.skipped == 0 {
            tracing::warn!(
                component = &*self.component,
                trigger = &*self.name,
                "previous run still going; run skipped (further skips are counted, not logged)"
            );
        } else {
            tracing::debug!(
                component = &*self.component,
                trigger = &*self.name,
                "run skipped"
            );
        }
        self.skipped += n;
    }

    async fn finish(self) {
        if let Some(run) = self.in_flight
            && let Err(error) = run.await
        {
            tracing::error!(%error, "an invocation thread failed");
        }
    }
}

/// Sleeps for `duration`; `false` if shutdown came first.
async fn sleep_or_stop(duration: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(duration) => true,
        _ = stop.wait_for(|stopped| *stopped) => false,
    }
}

/// Sleeps until `at`; `false` if shutdown came first.
async fn sleep_until_or_stop(at: Instant, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep_until(at) => true,
        _ = stop.wait_for(|stopped| *stopped) => false,
    }
}

async fn drive(
    shared: Arc<Shared>,
    component: Arc<str>,
    spec: TriggerSpec,
    mut stop: watch::Receiver<bool>,
) {
    let name: Arc<str> = Arc::from(spec.name.as_str());
    let mut runner = Runner {
        shared: shared.clone(),
        component,
        name: name.clone(),
        in_flight: None,
        skipped: 0,
    };
    let clock = shared.clock.clone();
    let app = shared.executor.runtime().app().clone();
    let last_run = shared
        .store
        .trigger_last_run(&app, &name)
        .unwrap_or_else(|error| {
            tracing::warn!(trigger = &*name, %error, "cannot read last run; assuming none");
            None
        });
    match &spec.kind {
        // Fed by the sync engine's inbox when a broker is configured; nothing to schedule.
        TriggerKind::Mqtt { .. } => {}
        TriggerKind::OnStart => runner.fire(Firing {
            name: name.clone(),
            kind: AbiKind::Start,
            payload: Vec::new(),
            topic: None,
        }),
        TriggerKind::Cron { expr, timezone, .. } => {
            // The app's zones were checked when it was loaded (`zone::check_app`); a zone that
            // vanished since (tzdata removed) disables this trigger alone.
            let zone = match timezone.as_deref().map(|zone| zone::load(&name, zone)) {
                None => Ok(None),
                Some(Ok(zone)) => Ok(Some(zone)),
                Some(Err(error)) => Err(error.to_string()),
            };
            let schedule = match zone.and_then(|zone| plan::CronPlan::new(expr, zone)) {
                Ok(schedule) => schedule,
                Err(error) => {
                    tracing::error!(trigger = &*name, %error, "trigger disabled");
                    return;
                }
            };
            if let Some((wait, events)) = &shared.sync_wait {
                if !clock.synced() {
                    tracing::info!(
                        trigger = &*name,
                        "waiting for a synchronised clock before the first cron run"
                    );
                }
                match sync_wait::wait_for_sync(&*clock, *wait, &mut stop).await {
                    Waited::Stopped => {
                        runner.finish().await;
                        return;
                    }
                    Waited::TimedOut => events.emit(AgentEvent::problem(
                        "clock",
                        format!(
                            "the wall clock is not synchronised after {}: cron trigger '{name}' \
                             runs on it as it is (set [clock] in agent.toml if this device's \
                             clock is right without NTP)",
                            humantime::format_duration(wait.max)
                        ),
                    )),
                    Waited::Synced(after) => tracing::info!(
                        trigger = &*name,
                        waited = %humantime::format_duration(after),
                        "clock synchronised; cron trigger scheduled"
                    ),
                    Waited::AlreadySynced => {}
                }
            }
            if plan::missed_while_off(&spec.kind, Some(&schedule), last_run, clock.wall_ms()) {
                runner.fire(Firing::scheduled(
                    name.clone(),
                    AbiKind::Cron,
                    clock.wall_ms(),
                ));
            }
            loop {
                let now = clock.wall_ms();
                let planned_synced = clock.synced();
                let Some(due) = schedule.next_after(now) else {
                    break;
                };
                let mut wait = Duration::from_millis(u64::try_from(due - now).unwrap_or(0));
                // Planned on an unsynchronised clock (its wait gave up, or is off): look again
                // now and then, so the first sync re-plans on the true time.
                if !planned_synced {
                    wait = wait.min(UNSYNCED_REPLAN);
                }
                if !sleep_or_stop(wait, &mut stop).await {
                    break;
                }
                // The clock synced meanwhile: `due` was computed on a wrong clock, re-plan.
                if !planned_synced && clock.synced() {
                    continue;
                }
                // A wall-clock step backwards (NTP) can wake us early: recompute instead.
                let woke = clock.wall_ms();
                if woke >= due {
                    let late = Duration::from_millis(u64::try_from(woke - due).unwrap_or(0));
                    let period = schedule.next_after(due).map_or(Duration::MAX, |next| {
                        Duration::from_millis(u64::try_from(next - due).unwrap_or(0))
                    });
                    shared.stats.record_start(late, period);
                    runner.fire(Firing::scheduled(name.clone(), AbiKind::Cron, due));
                }
            }
        }
        TriggerKind::Interval { every, jitter, .. } => {
            if plan::missed_while_off(&spec.kind, None, last_run, clock.wall_ms()) {
                runner.fire(Firing::scheduled(
                    name.clone(),
                    AbiKind::Interval,
                    clock.wall_ms(),
                ));
            }
            // The grid and its rule: `plan::IntervalGrid`. Monotonic time, so a wall-clock
            // step never moves an interval trigger.
            let mut rng = fastrand::Rng::new();
            let origin = Instant::now();
            let mut grid = plan::IntervalGrid::new(*every, Duration::ZERO);
            loop {
                let spread = plan::jitter(*jitter, &mut rng);
                let at = origin + grid.due() + spread;
                if !sleep_until_or_stop(at, &mut stop).await || !runner.idle(&mut stop).await {
                    break;
                }
                // Jitter moves the planned start, not the grid: lateness is counted from it.
                let now = origin.elapsed().saturating_sub(spread);
                let Some(slot) = grid.take(now) else {
                    continue;
                };
                runner.skip(slot.skipped);
                shared.stats.record_start(slot.late, *every);
                runner.fire(Firing::scheduled(
                    name.clone(),
                    AbiKind::Interval,
                    clock.wall_ms(),
                ));
            }
        }
        TriggerKind::Sensor {
            sensor,
            sample_every,
            fire,
        } => {
            let mut watch = sensor_watch::SensorWatch::new(*fire);
            while sleep_or_stop(*sample_every, &mut stop).await {
                match shared.sensors.read(sensor) {
                    Ok(reading) => {
                        if let Some(payload) = watch.observe(reading.value) {
                            runner.fire(Firing {
                                name: name.clone(),
                                kind: AbiKind::Sensor,
                                payload: payload.encode().to_vec(),
                                topic: None,
                            });
                        }
                    }
                    Err(error) => {
                        shared.stats.sensor_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(trigger = &*name, %error, "sensor sample failed");
                    }
                }
            }
        }
    }
    runner.finish().await;
}
