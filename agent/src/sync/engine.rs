//! The sync engine: connect, run a session, back off, reconnect — until shutdown. Generic over
//! the [`Transport`] boundary, so the same engine runs over rumqttc on Linux, over the in-memory
//! transport in unit tests, or over another client elsewhere.
//!
//! The rules of what to send and what to delete live in [`super::drain`] (pure); one session's
//! I/O loop lives in [`super::session`]; this file owns only the connection life cycle.
//!
//! The outbox in redb is the only record of what is owed: the transport's in-flight state is
//! thrown away with every session, and each new session starts again from the oldest row. A
//! crash or cut link therefore causes duplicates (which consumers drop by `(device, stream,
//! seq)`), never loss.

use std::sync::Arc;
use std::time::{Duration, Instant};

use outpost_hal::mqtt::Transport;
use tokio::sync::{Notify, watch};

use super::batch::Planner;
use super::drain::{Drain, DrainLimits};
use super::offload::Offloaded;
use super::session::{End, Session};
use super::status::{AppVersion, SyncStats};
use crate::events::{AgentEvent, Events};
use crate::inbound::InboundRoute;
use crate::scheduler::SchedulerStats;
use crate::store::Store;
use crate::store::committer::CommitStats;

/// How the engine behaves.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// Message shaping (device, prefix, wire format, batch and packet limits).
    pub planner: Planner,
    /// Most messages awaiting PUBACK at once.
    pub window: usize,
    /// Outbox rows read per page; with the window this bounds memory however large the backlog.
    pub page_rows: usize,
    /// Stored bytes read per page (a page ends after the row that reaches it): rows can be
    /// 64 KiB each, so a row count alone does not bound a page's memory.
    pub page_bytes: usize,
    /// Most payload bytes awaiting PUBACK at once: the transport keeps every unacknowledged
    /// message in memory, and messages can be as large as the packet limit.
    pub window_bytes: usize,
    /// First reconnect delay; doubles (with jitter) per failure up to `reconnect_max`.
    pub reconnect_min: Duration,
    /// Longest reconnect delay.
    pub reconnect_max: Duration,
    /// Least time between two checks of the retained status: it is published at connect, when
    /// the apps change, and otherwise only when it changed, at most once per this (a change
    /// after a quiet spell shows within a second). No timer runs while nothing changes.
    pub status_every: Duration,
    /// How often acknowledged rows are deleted (deletes are batched into one transaction).
    pub delete_every: Duration,
    /// Acknowledged rows that are deleted at once, without waiting for `delete_every`. Rows read
    /// but not yet deleted keep their pages in redb's cache, and a delete transaction's memory
    /// grows with its rows, so this bounds memory however fast the link drains.
    pub delete_rows: usize,
    /// Upper bound of payload bytes per second (metered links), if any.
    pub rate_limit: Option<u64>,
    /// Running apps, for the status (republished when it changes).
    pub apps: watch::Receiver<Vec<AppVersion>>,
    /// The device's schedulers' counters, for the status (late runs).
    pub schedule: Arc<SchedulerStats>,
    /// The device's clock: whether it is synchronised (the status says so) and where this boot
    /// is, to give events committed before the sync their true time (`anchor`).
    pub clock: std::sync::Arc<dyn outpost_hal::Clock>,
}

impl SyncConfig {
    /// The drain's limits.
    pub fn drain_limits(&self) -> DrainLimits {
        DrainLimits {
            window: self.window,
            window_bytes: self.window_bytes,
            page_rows: self.page_rows,
            page_bytes: self.page_bytes,
            delete_rows: self.delete_rows,
        }
    }
}

/// What every session of the engine shares: where rows come from, where messages go, and who
/// hears about it.
pub(super) struct Shared {
    /// The state file (outbox, counters), reachable only off the async thread.
    pub store: Offloaded,
    /// How the engine behaves.
    pub config: SyncConfig,
    /// Live counters for the status.
    pub stats: Arc<SyncStats>,
    /// Where the engine says what it does.
    pub events: Events,
    /// Consumers of inbound messages, in the order they are asked to claim a topic.
    pub routes: Vec<Arc<dyn InboundRoute>>,
    /// Woken when any route's wanted filters change.
    pub routes_changed: Arc<Notify>,
    /// Woken after each local commit, so new events go out at once; `None` when nothing on
    /// this device commits (then the engine looks for rows now and then).
    pub commits: Option<Arc<CommitStats>>,
    /// When the engine started, for the status's uptime.
    pub started: Instant,
}

impl Shared {
    /// Records `message` as the last error (shown in the status) and emits it as a problem.
    pub fn problem(&self, message: String) {
        self.stats.error(message.clone());
        self.events.emit(AgentEvent::problem("sync", message));
    }
}

/// Drains the outbox over a [`Transport`] until shutdown.
pub struct SyncEngine<T: Transport> {
    transport: T,
    shared: Shared,
}

impl<T: Transport> SyncEngine<T> {
    /// An engine draining `store` through `transport`; `commits` wakes it after local commits.
    pub fn new(
        transport: T,
        store: Store,
        config: SyncConfig,
        commits: Option<Arc<CommitStats>>,
    ) -> Self {
        SyncEngine {
            transport,
            shared: Shared {
                store: Offloaded::new(store),
                config,
                stats: Arc::default(),
                events: Events::new(),
                routes: Vec::new(),
                routes_changed: Arc::new(Notify::new()),
                commits,
                started: Instant::now(),
            },
        }
    }

    /// Tells `events` what the engine does (connected, drained, problems).
    pub fn with_events(mut self, events: Events) -> Self {
        self.shared.events = events;
        self
    }

    /// Adds a consumer of inbound messages: the engine subscribes to what it wants on every
    /// session and hands it the messages it claims.
    pub fn with_route(mut self, route: Arc<dyn InboundRoute>) -> Self {
        self.shared.routes.push(route);
        self
    }

    /// The live counters.
    pub fn stats(&self) -> Arc<SyncStats> {
        self.shared.stats.clone()
    }

    /// Connects, drains and reconnects until `stop` turns true.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let forwarders = self.forward_route_changes();
        let mut drain = Drain::new(self.shared.config.drain_limits());
        let mut delay = self.shared.config.reconnect_min;
        let mut rng = fastrand::Rng::new();
        loop {
            if *stop.borrow() {
                break;
            }
            let connected = tokio::select! {
                result = self.transport.connect() => result,
                () = stopped(&mut stop) => break,
            };
            match connected {
                Ok((client, connection)) => {
                    let stats = &self.shared.stats;
                    stats
                        .connects
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let acked_before = stats.acked_rows.load(std::sync::atomic::Ordering::Relaxed);
                    let session = Session::<T>::new(&self.shared, client, &mut drain);
                    let end = session.run(connection, &mut stop).await;
                    self.shared.routes.iter().for_each(|r| r.session(false));
                    stats
                        .connected
                        .store(false, std::sync::atomic::Ordering::Relaxed);
                    match end {
                        End::Shutdown => break,
                        End::Lost(reason) => {
                            self.shared.events.emit(AgentEvent::Disconnected { reason });
                            // A session that moved rows proves the link works: start over
                            // from the shortest delay.
                            let acked = stats.acked_rows.load(std::sync::atomic::Ordering::Relaxed);
                            if acked > acked_before {
                                delay = self.shared.config.reconnect_min;
                            }
                        }
                    }
                }
                Err(error) => {
                    // Counted in memory only: a device offline for days must not write to
                    // flash for every failed attempt.
                    let stats = &self.shared.stats;
                    stats
                        .connect_failures
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    stats.error(format!("cannot connect: {error}"));
                    self.shared.events.emit(AgentEvent::ConnectFailed {
                        error: error.to_string(),
                    });
                }
            }
            // Exponential backoff with full jitter, so a fleet does not reconnect in step.
            let millis = delay.as_millis() as u64;
            let wait = Duration::from_millis(rng.u64(millis / 2..=millis));
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = stopped(&mut stop) => break,
            }
            delay = (delay * 2).min(self.shared.config.reconnect_max);
        }
        forwarders.into_iter().for_each(|task| task.abort());
    }

    /// One small task per route that turns "its wanted filters changed" into a wake-up of the
    /// session, so the session waits on one [`Notify`] however many routes there are.
    fn forward_route_changes(&self) -> Vec<tokio::task::JoinHandle<()>> {
        self.shared
            .routes
            .iter()
            .map(|route| {
                let mut wanted = route.wanted();
                let notify = self.shared.routes_changed.clone();
                tokio::spawn(async move {
                    while wanted.changed().await.is_ok() {
                        notify.notify_one();
                    }
                })
            })
            .collect()
    }
}

/// Resolves once `stop` turns true (or its sender is gone). The guard `wait_for` returns is
/// dropped here, so futures that await this stay `Send`.
pub(super) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
