//! Runs an invocation and commits its effects: the one path every trigger, `outpost invoke`
//! and the benchmarks share, from firing to durable commit, then to the GPIO lines it changed.

use std::sync::Arc;
use std::time::Duration;

use outpost_abi::TriggerKind;
use outpost_hal::Clock;

use crate::runtime::{Effects, Firing, InvocationError, Runtime};
use crate::store::committer::Committer;
use crate::store::{Commit, Receipt};

/// The result of one invocation, committed or not.
#[derive(Debug)]
pub struct Outcome {
    /// Component id.
    pub component: Arc<str>,
    /// Trigger name.
    pub trigger: Arc<str>,
    /// Trigger kind.
    pub kind: TriggerKind,
    /// Wall time at which the invocation finished, ms since epoch.
    pub time_ms: i64,
    /// Fuel consumed.
    pub fuel_used: u64,
    /// Time spent in the sandbox (commit excluded).
    pub duration: Duration,
    /// Of which creating the sandbox (instantiation).
    pub instantiation: Duration,
    /// Time spent waiting for the durable commit.
    pub commit_wait: Duration,
    /// What was committed (empty if the invocation failed).
    pub effects: Arc<Effects>,
    /// The commit receipt, or why nothing was committed.
    pub result: Result<Receipt, InvocationError>,
}

impl Outcome {
    /// Whether the invocation succeeded and its effects are durable.
    pub fn is_ok(&self) -> bool {
        self.result.is_ok()
    }
}

/// Runs invocations and commits their effects; cheap to clone and share.
#[derive(Clone)]
pub struct Executor {
    /// The loaded app.
    runtime: Arc<Runtime>,
    /// The group committer.
    committer: Committer,
    /// Time for outbox rows and trigger bookkeeping.
    clock: Arc<dyn Clock>,
    /// Key-value namespaces mirrored to the broker (`[sync] kv`).
    synced_kv: Arc<[String]>,
}

impl Executor {
    /// An executor for `runtime`, committing through `committer`.
    pub fn new(runtime: Arc<Runtime>, committer: Committer, clock: Arc<dyn Clock>) -> Executor {
        Executor {
            runtime,
            committer,
            clock,
            synced_kv: Arc::new([]),
        }
    }

    /// Mirrors changes to these namespaces to the broker through the outbox.
    pub fn with_synced_kv(mut self, namespaces: &[String]) -> Executor {
        self.synced_kv = namespaces.into();
        self
    }

    /// The loaded app.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// The committer's statistics, whose signal wakes the sync engine after each commit.
    pub fn commit_stats(&self) -> Arc<crate::store::committer::CommitStats> {
        self.committer.stats_handle()
    }

    /// Counts skipped trigger runs; they are persisted with the next commit.
    pub fn note_skipped_runs(&self, n: u64) {
        self.committer.note_skipped_runs(n);
    }

    /// Runs `component` for `firing` and waits for the commit. Blocking: call it from a blocking
    /// thread (`spawn_blocking`), never from an async task.
    pub fn run_blocking(&self, component: &str, firing: Firing) -> Outcome {
        self.run_blocking_for(component, firing, None)
    }

    /// Like [`Executor::run_blocking`] for a message from the inbox: its row `inbox_id` is
    /// removed in the same transaction as the effects, so they land exactly once.
    pub fn run_blocking_for(
        &self,
        component: &str,
        firing: Firing,
        inbox_id: Option<u64>,
    ) -> Outcome {
        let trigger = firing.name.clone();
        let kind = firing.kind;
        let execution = self.runtime.invoke(component, firing);
        let time_ms = self.clock.wall_ms();
        // Manual runs are not schedule bookkeeping; everything else records its last run, even a
        // failed one, so a crash loop is not re-run as "missed" on every start.
        let trigger_run = (kind != TriggerKind::Manual).then(|| (trigger.clone(), time_ms));
        let component: Arc<str> = Arc::from(component);
        let (effects, failure) = match execution.result {
            Ok(mut effects) => {
                effects.mirror_kv(&self.synced_kv);
                (Arc::new(effects), None)
            }
            Err(error) => (Arc::default(), Some(error)),
        };
        let commit_started = std::time::Instant::now();
        let failed = failure.is_some();
        let committed = if !failed || trigger_run.is_some() || inbox_id.is_some() {
            Some(self.committer.commit_blocking(Commit {
                app: self.runtime.app().clone(),
                component: component.clone(),
                time_ms,
                unsynced: (!self.clock.synced()).then(|| self.clock.boot().into()),
                effects: Arc::clone(&effects),
                trigger_run,
                inbox_done: inbox_id,
                failed,
            }))
        } else {
            None
        };
        let commit_wait = commit_started.elapsed();
        let result = match (failure, committed) {
            (Some(error), _) => Err(error),
            (None, Some(Ok(receipt))) => Ok(receipt),
            (None, Some(Err(error))) => Err(InvocationError::Commit(error.to_string())),
            (None, None) => Ok(Receipt::default()),
        };
        if result.is_ok() {
            self.apply_gpio(&component, &effects);
        }
        Outcome {
            component,
            trigger,
            kind,
            time_ms,
            fuel_used: execution.fuel_used,
            duration: execution.duration,
            instantiation: execution.instantiation,
            commit_wait,
            effects: if result.is_ok() {
                effects
            } else {
                Arc::default()
            },
            result,
        }
    }

    /// Drives a committed invocation's GPIO changes onto the board, in order. Runs only after
    /// the commit is durable; a change the board refuses is logged and the rest still applied,
    /// since the commit cannot be taken back.
    fn apply_gpio(&self, component: &str, effects: &Effects) {
        let board = &self.runtime.services().gpio;
        for change in &effects.gpio {
            if let Err(error) = board.write(&change.line, change.value) {
                tracing::warn!(
                    component,
                    line = change.line.as_str(),
                    value = change.value,
                    %error,
                    "gpio write failed after commit"
                );
            }
        }
    }
}
