//! The drain loop: connect, re-send everything un-acknowledged, keep a bounded window of messages
//! in flight, delete rows only on their PUBACK, reconnect with backoff. Generic over the
//! [`Transport`] boundary so the same loop runs over rumqttc on Linux or another client elsewhere.
//!
//! The outbox in redb is the only record of what is owed: the transport's in-flight state is
//! thrown away with every session, and each new session starts again from the oldest row. A
//! crash or cut link therefore causes duplicates (which consumers drop by `(device, stream,
//! seq)`), never loss.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use embedded_svc::mqtt::client::asynch::{
    Client, Connection, Event, EventPayload, MessageId, Publish, QoS,
};
use outpost_hal::Clock;
use outpost_hal::mqtt::{Acknowledge, Transport};
use tokio::sync::{Notify, mpsc, watch};

use super::batch::{Outgoing, Planner};
use super::status::{self, AppVersion, SyncStats};
use crate::events::{AgentEvent, Events};
use crate::fleet::updater::{FleetLink, FleetMessage, Wanted};
use crate::inbox::{Accepted, Inbox};
use crate::store::committer::CommitStats;
use crate::store::{Store, tables};

/// Where inbound messages go: the app's inbox, and the dispatcher to wake after storing.
#[derive(Clone)]
pub struct InboundRoute {
    /// Stores messages for `mqtt` triggers.
    pub inbox: Inbox,
    /// Woken after messages were stored, so the dispatcher runs them.
    pub wake: Arc<Notify>,
    /// Wall clock for the stored rows.
    pub clock: Arc<dyn Clock>,
}

/// How the engine behaves.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// Message shaping (device, prefix, wire format, batch and packet limits).
    pub planner: Planner,
    /// Most messages awaiting PUBACK at once.
    pub window: usize,
    /// Outbox rows read per page; with the window this bounds memory however large the backlog.
    pub page_rows: usize,
    /// First reconnect delay; doubles (with jitter) per failure up to `reconnect_max`.
    pub reconnect_min: Duration,
    /// Longest reconnect delay.
    pub reconnect_max: Duration,
    /// How often the retained status is refreshed (it is also refreshed on change).
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
}

/// What one inbound message looks like to the rest of the agent.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// Id to acknowledge it with, once committed.
    pub id: MessageId,
    /// Its topic.
    pub topic: String,
    /// Its body.
    pub data: Vec<u8>,
}

/// The transport's events, owned so they can cross from the pump to the logic.
enum Ev {
    Published(MessageId),
    Received(Inbound),
    Disconnected,
    Error(String),
}

/// Why a session ended.
enum End {
    Disconnected,
    Shutdown,
}

/// Drains the outbox over a [`Transport`] until shutdown.
pub struct SyncEngine<T: Transport> {
    transport: T,
    store: Store,
    config: SyncConfig,
    stats: Arc<SyncStats>,
    /// Woken after each local commit, so new events go out at once.
    commits: Option<Arc<CommitStats>>,
    /// Inbound messages for `mqtt` triggers, if the app has any.
    inbound: Option<InboundRoute>,
    /// Fleet updates: topics to follow and where their messages go.
    fleet: Option<FleetLink>,
    started: Instant,
    /// Where the engine says what it does (connected, drained, problems).
    events: Events,
}

impl<T: Transport> SyncEngine<T>
where
    T::Error: std::fmt::Display,
{
    /// An engine draining `store` through `transport`.
    pub fn new(
        transport: T,
        store: Store,
        config: SyncConfig,
        commits: Option<Arc<CommitStats>>,
    ) -> Self {
        SyncEngine {
            transport,
            store,
            config,
            stats: Arc::default(),
            commits,
            inbound: None,
            fleet: None,
            started: Instant::now(),
            events: Events::new(),
        }
    }

    /// Tells `events` what the engine does (connected, drained, problems).
    pub fn with_events(mut self, events: Events) -> Self {
        self.events = events;
        self
    }

    /// Records `message` as the last error (shown in the status) and emits it as a problem.
    fn problem(&self, message: String) {
        self.stats.error(message.clone());
        self.events.emit(AgentEvent::problem("sync", message));
    }

    /// Routes inbound messages to `route` (subscribing to its filters on every session).
    pub fn with_inbound(mut self, route: InboundRoute) -> Self {
        self.inbound = Some(route);
        self
    }

    /// Follows fleet updates through `link`: subscribes to what the updater wants on every
    /// session and hands it every message under `{prefix}/fleet/`.
    pub fn with_fleet(mut self, link: FleetLink) -> Self {
        self.fleet = Some(link);
        self
    }

    /// The live counters.
    pub fn stats(&self) -> Arc<SyncStats> {
        self.stats.clone()
    }

    /// Connects, drains and reconnects until `stop` turns true.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut delay = self.config.reconnect_min;
        let mut rng = fastrand::Rng::new();
        loop {
            if *stop.borrow() {
                return;
            }
            let connected = tokio::select! {
                result = self.transport.connect() => result,
                _ = stop.wait_for(|s| *s) => return,
            };
            match connected {
                Ok((client, connection)) => {
                    self.stats.connects.fetch_add(1, Ordering::Relaxed);
                    self.events.emit(AgentEvent::Connected);
                    let acked_before = self.stats.acked_rows.load(Ordering::Relaxed);
                    let end = self.session(client, connection, &mut stop).await;
                    if let Some(fleet) = &self.fleet {
                        fleet.connected.send_replace(false);
                    }
                    match end {
                        End::Shutdown => return,
                        End::Disconnected => {
                            self.events.emit(AgentEvent::Disconnected {
                                reason: "the link ended".into(),
                            });
                            if self.stats.acked_rows.load(Ordering::Relaxed) > acked_before {
                                delay = self.config.reconnect_min;
                            }
                        }
                    }
                }
                Err(error) => {
                    self.stats.connect_failures.fetch_add(1, Ordering::Relaxed);
                    self.persist(tables::counter::CONNECT_FAILURES).await;
                    self.stats.error(format!("cannot connect: {error}"));
                    self.events.emit(AgentEvent::ConnectFailed {
                        error: error.to_string(),
                    });
                }
            }
            // Exponential backoff with full jitter, so a fleet does not reconnect in step.
            let wait = Duration::from_millis(
                rng.u64(delay.as_millis() as u64 / 2..=delay.as_millis() as u64),
            );
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            delay = (delay * 2).min(self.config.reconnect_max);
        }
    }

    async fn session(
        &mut self,
        mut client: T::Client,
        mut connection: T::Connection,
        stop: &mut watch::Receiver<bool>,
    ) -> End {
        let (tx, mut rx) = mpsc::unbounded_channel();
        // The pump is never cancelled mid-`next()`: it runs beside the logic until the link ends.
        let pump = async move {
            loop {
                let ev = match connection.next().await {
                    Ok(event) => match event.payload() {
                        EventPayload::Published(id) => Ev::Published(id),
                        EventPayload::Received {
                            id, topic, data, ..
                        } => Ev::Received(Inbound {
                            id,
                            topic: topic.unwrap_or_default().to_string(),
                            data: data.to_vec(),
                        }),
                        EventPayload::Disconnected => Ev::Disconnected,
                        EventPayload::Error(error) => Ev::Error(format!("{error:?}")),
                        _ => continue,
                    },
                    Err(error) => Ev::Error(format!("connection closed: {error:?}")),
                };
                let last = matches!(ev, Ev::Disconnected)
                    || matches!(&ev, Ev::Error(e) if e.starts_with("connection closed"));
                if tx.send(ev).is_err() || last {
                    let _ = tx.send(Ev::Disconnected);
                    return;
                }
            }
        };
        let logic = self.drain(&mut client, &mut rx, stop);
        tokio::pin!(pump);
        tokio::pin!(logic);
        tokio::select! {
            end = &mut logic => return end,
            () = &mut pump => {}
        }
        logic.await
    }

    async fn drain(
        &mut self,
        client: &mut T::Client,
        rx: &mut mpsc::UnboundedReceiver<Ev>,
        stop: &mut watch::Receiver<bool>,
    ) -> End {
        let mut inflight: HashMap<MessageId, Vec<u64>> = HashMap::new();
        let mut acked: Vec<u64> = Vec::new();
        let mut cursor = 0u64;
        let mut drained_said = false;
        // The session starts with a status publish, so the periodic ticks start one period later.
        let later = |period: Duration| {
            tokio::time::interval_at(tokio::time::Instant::now() + period, period)
        };
        let mut status_tick = later(self.config.status_every);
        let mut delete_tick = later(self.config.delete_every);
        let mut change_tick = later(Duration::from_secs(1));
        let mut last_significant = self
            .store
            .counters()
            .ok()
            .map(|c| status::significant(&c, &self.stats));
        let mut bucket = RateBucket::new(self.config.rate_limit);
        let mut apps = self.config.apps.clone();
        let mut wanted = self.fleet.as_ref().map(|f| f.wanted.clone());
        // What this session subscribed to for the fleet, with each filter's fetch generation.
        let mut subscribed = Wanted::new();
        if self.publish_status(client).await.is_err()
            || self.subscribe(client).await.is_err()
            || self
                .follow(client, wanted.as_mut(), &mut subscribed)
                .await
                .is_err()
        {
            return End::Disconnected;
        }
        if let Some(fleet) = &self.fleet {
            fleet.connected.send_replace(true);
        }
        loop {
            // Fill the window from the outbox, oldest first.
            let mut outbox_empty = false;
            while inflight.len() < self.config.window {
                let rows = match self.store.outbox_read(cursor, self.config.page_rows) {
                    Ok(rows) => rows,
                    Err(error) => {
                        self.problem(format!("cannot read the outbox: {error}"));
                        break;
                    }
                };
                let Some(last) = rows.last() else {
                    outbox_empty = true;
                    break;
                };
                cursor = last.seq + 1;
                let (messages, oversize) = self.config.planner.plan(&rows);
                if !oversize.is_empty() {
                    self.stats
                        .oversize_rows
                        .fetch_add(oversize.len() as u64, Ordering::Relaxed);
                    self.problem(format!(
                        "{} outbox row(s) (first seq {}) exceed the packet limit of {} bytes and can never be sent; removed",
                        oversize.len(),
                        oversize[0].seq,
                        self.config.planner.max_packet_bytes
                    ));
                    acked.extend(oversize.iter().map(|o| o.seq));
                }
                for message in messages {
                    bucket.take(message.payload.len()).await;
                    match self.send(client, &message).await {
                        Ok(id) => {
                            inflight.insert(id, message.seqs);
                        }
                        Err(()) => return End::Disconnected,
                    }
                }
            }
            if outbox_empty && inflight.is_empty() && acked.is_empty() {
                if !drained_said {
                    self.events.emit(AgentEvent::Drained);
                    drained_said = true;
                }
            } else {
                drained_said = false;
            }
            let commits = self.commits.clone();
            let room = inflight.len() < self.config.window;
            tokio::select! {
                ev = rx.recv() => match ev {
                    Some(Ev::Published(id)) => {
                        let before = acked.len();
                        if let Some(seqs) = inflight.remove(&id) {
                            acked.extend(seqs);
                        }
                        // On crossing the bound only: after a failed delete the tick retries.
                        let bound = self.config.delete_rows;
                        if before < bound && acked.len() >= bound {
                            self.delete(&mut acked).await;
                        }
                    }
                    Some(Ev::Received(inbound)) => {
                        if self.receive(client, inbound).await.is_err() {
                            return End::Disconnected;
                        }
                    }
                    Some(Ev::Error(error)) => self.problem(error),
                    Some(Ev::Disconnected) | None => {
                        self.delete(&mut acked).await;
                        return End::Disconnected;
                    }
                },
                _ = delete_tick.tick(), if !acked.is_empty() => self.delete(&mut acked).await,
                _ = status_tick.tick() => {
                    if self.publish_status(client).await.is_err() {
                        return End::Disconnected;
                    }
                }
                _ = change_tick.tick() => {
                    let now = self.store.counters().ok().map(|c| status::significant(&c, &self.stats));
                    if now != last_significant {
                        last_significant = now;
                        if self.publish_status(client).await.is_err() {
                            return End::Disconnected;
                        }
                    }
                }
                () = wait_commit(commits), if room && outbox_empty => {}
                () = changed(wanted.as_mut()) => {
                    if self.follow(client, wanted.as_mut(), &mut subscribed).await.is_err() {
                        return End::Disconnected;
                    }
                }
                () = changed(Some(&mut apps)) => {
                    if self.publish_status(client).await.is_err() {
                        return End::Disconnected;
                    }
                }
                _ = stop.wait_for(|s| *s) => {
                    self.delete(&mut acked).await;
                    let _ = client.publish(&self.status_topic(), QoS::AtLeastOnce, true, &status::offline(&self.config.planner.device)).await;
                    return End::Shutdown;
                }
            }
        }
    }

    /// Subscribes to every `mqtt` trigger's filter; subscriptions are renewed on each session
    /// because a broker that lost the session lost them too.
    async fn subscribe(&self, client: &mut T::Client) -> Result<(), ()> {
        let Some(route) = &self.inbound else {
            return Ok(());
        };
        for filter in route.inbox.filters() {
            if let Err(error) = client.subscribe(&filter, QoS::AtLeastOnce).await {
                self.stats
                    .error(format!("subscribe to {filter} failed: {error:?}"));
                return Err(());
            }
        }
        Ok(())
    }

    /// Brings the session's fleet subscriptions in line with what the updater wants: subscribes
    /// to new filters and to those whose fetch generation changed (so the broker sends their
    /// retained message again), unsubscribes from the rest.
    async fn follow(
        &self,
        client: &mut T::Client,
        wanted: Option<&mut watch::Receiver<Wanted>>,
        subscribed: &mut Wanted,
    ) -> Result<(), ()> {
        let Some(wanted) = wanted else {
            return Ok(());
        };
        let now = wanted.borrow_and_update().clone();
        for (filter, generation) in &now {
            if subscribed.get(filter) == Some(generation) {
                continue;
            }
            if let Err(error) = client.subscribe(filter, QoS::AtLeastOnce).await {
                self.stats
                    .error(format!("subscribe to {filter} failed: {error:?}"));
                return Err(());
            }
        }
        for filter in subscribed.keys().filter(|f| !now.contains_key(*f)) {
            if let Err(error) = client.unsubscribe(filter).await {
                self.stats
                    .error(format!("unsubscribe from {filter} failed: {error:?}"));
                return Err(());
            }
        }
        *subscribed = now;
        Ok(())
    }

    /// Stores an inbound message, then acknowledges it, then wakes the dispatcher. A message
    /// that cannot be stored is not acknowledged, so the broker delivers it again.
    async fn receive(&self, client: &mut T::Client, inbound: Inbound) -> Result<(), ()> {
        // Fleet messages are retained on the broker and the updater keeps its own progress,
        // so they are acknowledged on arrival: one lost in a crash is fetched again.
        if let Some(fleet) = &self.fleet
            && inbound.topic.starts_with(&fleet.root)
        {
            let _ = fleet.inbound.send(FleetMessage {
                topic: inbound.topic,
                data: inbound.data,
            });
            return client.ack(inbound.id).await.map_err(|error| {
                self.problem(format!("ack failed: {error:?}"));
            });
        }
        let Some(route) = self.inbound.clone() else {
            return client.ack(inbound.id).await.map_err(|_| ());
        };
        let Inbound { id, topic, data } = inbound;
        let now = route.clock.wall_ms();
        let inbox = route.inbox.clone();
        let shown = topic.clone();
        let accepted = tokio::task::spawn_blocking(move || inbox.accept(&topic, &data, now)).await;
        let stored = matches!(accepted, Ok(Ok(Accepted::Stored(_))));
        match accepted {
            Ok(Ok(Accepted::Stored(_))) => route.wake.notify_one(),
            Ok(Ok(Accepted::NoRoute)) => {
                self.stats.inbound_rejected.fetch_add(1, Ordering::Relaxed);
                self.persist(tables::counter::INBOUND_REJECTED).await;
                self.problem(format!(
                    "inbound message on {shown} matches no mqtt trigger; dropped"
                ));
            }
            Ok(Ok(Accepted::TooLarge { bytes, limit })) => {
                self.stats.inbound_rejected.fetch_add(1, Ordering::Relaxed);
                self.persist(tables::counter::INBOUND_REJECTED).await;
                self.problem(format!("inbound message on {shown} is {bytes} bytes, over the {limit}-byte limit; dropped"));
            }
            Ok(Err(error)) => {
                self.problem(format!(
                    "cannot store inbound message on {shown}: {error}; not acknowledged"
                ));
                return Ok(());
            }
            Err(error) => {
                self.stats
                    .error(format!("inbound store task failed: {error}"));
                return Ok(());
            }
        }
        client.ack(id).await.map_err(|error| {
            self.problem(format!("ack failed: {error:?}"));
        })?;
        // A refused message was acknowledged too (so it is not redelivered), but not stored.
        if stored {
            self.events.emit(AgentEvent::InboundStored { topic: shown });
        }
        Ok(())
    }

    /// Adds one to a persistent counter, off the async thread.
    async fn persist(&self, name: &'static str) {
        let store = self.store.clone();
        if let Ok(Err(error)) =
            tokio::task::spawn_blocking(move || store.add_counter(name, 1)).await
        {
            tracing::warn!(%error, counter = name, "cannot persist a counter");
        }
    }

    async fn send(&self, client: &mut T::Client, message: &Outgoing) -> Result<MessageId, ()> {
        let qos = if message.qos == 0 {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        };
        match client
            .publish(&message.topic, qos, message.retain, &message.payload)
            .await
        {
            Ok(id) => {
                self.stats.published.fetch_add(1, Ordering::Relaxed);
                Ok(id)
            }
            Err(error) => {
                self.stats
                    .error(format!("publish to {} failed: {error:?}", message.topic));
                Err(())
            }
        }
    }

    fn status_topic(&self) -> String {
        format!(
            "{}/{}/status",
            self.config.planner.prefix, self.config.planner.device
        )
    }

    async fn publish_status(&self, client: &mut T::Client) -> Result<(), ()> {
        let counters = self.store.counters().unwrap_or_default();
        let body = status::online(
            &self.config.planner.device,
            &self.config.apps.borrow(),
            &counters,
            &self.stats,
            self.started.elapsed().as_secs(),
        );
        client
            .publish(&self.status_topic(), QoS::AtLeastOnce, true, &body)
            .await
            .map(|_| ())
            .map_err(|error| {
                self.stats
                    .error(format!("status publish failed: {error:?}"))
            })
    }

    /// Deletes acknowledged rows in one transaction, off the async thread.
    async fn delete(&self, acked: &mut Vec<u64>) {
        if acked.is_empty() {
            return;
        }
        let seqs = std::mem::take(acked);
        let store = self.store.clone();
        let count = seqs.len() as u64;
        match tokio::task::spawn_blocking(move || store.outbox_remove(&seqs).map_err(|e| (e, seqs)))
            .await
        {
            Ok(Ok(_)) => {
                self.stats.acked_rows.fetch_add(count, Ordering::Relaxed);
            }
            Ok(Err((error, seqs))) => {
                // Keep them: they are deleted on the next try, or re-sent after a restart.
                self.stats
                    .error(format!("cannot delete acknowledged rows: {error}"));
                *acked = seqs;
            }
            Err(error) => self.problem(format!("delete task failed: {error}")),
        }
    }
}

/// Resolves when `wanted` changes; never if there is none or its sender is gone.
async fn changed<T>(wanted: Option<&mut watch::Receiver<T>>) {
    match wanted {
        Some(wanted) => {
            if wanted.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending::<()>().await,
    }
}

async fn wait_commit(commits: Option<Arc<CommitStats>>) {
    match commits {
        Some(stats) => stats.committed.notified().await,
        // No local app commits: look for rows written by others now and then.
        None => tokio::time::sleep(Duration::from_secs(1)).await,
    }
}

/// A token bucket for `rate_limit` bytes per second (one second of burst).
struct RateBucket {
    rate: Option<u64>,
    tokens: f64,
    last: tokio::time::Instant,
}

impl RateBucket {
    fn new(rate: Option<u64>) -> Self {
        RateBucket {
            rate,
            tokens: rate.unwrap_or(0) as f64,
            last: tokio::time::Instant::now(),
        }
    }

    async fn take(&mut self, bytes: usize) {
        let Some(rate) = self.rate.filter(|r| *r > 0) else {
            return;
        };
        let rate = rate as f64;
        let now = tokio::time::Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * rate).min(rate);
        self.last = now;
        self.tokens -= bytes as f64;
        if self.tokens < 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(-self.tokens / rate)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_rate_limit_paces_bytes_per_second() {
        let mut bucket = RateBucket::new(Some(1_000));
        let started = tokio::time::Instant::now();
        // One second of burst is free, then 3,000 more bytes take three seconds.
        for _ in 0..4 {
            bucket.take(1_000).await;
        }
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(2_900), "{waited:?}");
        assert!(waited <= Duration::from_millis(3_200), "{waited:?}");
        let mut unlimited = RateBucket::new(None);
        let before = tokio::time::Instant::now();
        unlimited.take(1 << 30).await;
        assert_eq!(before.elapsed(), Duration::ZERO);
    }
}
