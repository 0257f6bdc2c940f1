//! One broker session's I/O loop: moves events between the transport, the store and the pure
//! [`Drain`], and keeps the status and subscriptions current. Every store access and every
//! route's delivery runs off the async thread ([`Offloaded`]), so a slow SD card never holds up
//! triggers or the watchdog.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use embedded_svc::mqtt::client::asynch::{
    Client, Connection, Event, EventPayload, MessageId, Publish, QoS,
};
use outpost_hal::mqtt::{Acknowledge, Transport};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::batch::{Outgoing, Oversize};
use super::drain::Drain;
use super::engine::{Shared, stopped};
use super::gate::{self, Gate};
use super::offload::Offloaded;
use super::rate::RateBucket;
use super::status;
use super::subscriptions;
use crate::events::AgentEvent;
use crate::inbound::{Delivery, Wanted};
use crate::store::OutboxEntry;

/// Why a session ended.
pub(super) enum End {
    /// Shutdown was asked for; the offline status was published.
    Shutdown,
    /// The link ended (the transport's reason).
    Lost(String),
}

/// Before a session ends because inbound messages overflowed, how long the transport gets to
/// send the acknowledgements already queued.
const OVERFLOW_FLUSH: Duration = Duration::from_millis(300);

/// After a failed outbox read, how long before reading again.
const READ_RETRY: Duration = Duration::from_secs(1);

/// The transport's events, owned so they can cross from the pump to the logic.
enum Ev {
    Published(MessageId),
    Received {
        id: MessageId,
        topic: String,
        data: Vec<u8>,
    },
    Problem(String),
    Ended(String),
}

/// One session.
pub(super) struct Session<'a, T: Transport> {
    shared: &'a Shared,
    client: T::Client,
    drain: &'a mut Drain,
    /// What this session subscribed to, with each filter's fetch generation.
    subscribed: Wanted,
    bucket: RateBucket,
    /// The last status published, as [`status::fingerprint`], to publish again only when it
    /// changes.
    last_status: Option<Vec<u8>>,
    /// When the status was last checked or published: the next check is `status_every` later.
    last_check: Instant,
    /// Back-pressure on inbound messages, shared with the pump.
    gate: Arc<Gate>,
}

impl<'a, T: Transport> Session<'a, T> {
    /// A session over `client`, continuing `drain`.
    pub(super) fn new(shared: &'a Shared, client: T::Client, drain: &'a mut Drain) -> Self {
        Session {
            shared,
            client,
            drain,
            subscribed: Wanted::new(),
            bucket: RateBucket::new(shared.config.rate_limit),
            last_status: None,
            last_check: Instant::now(),
            gate: Arc::new(Gate::new(gate::BUFFER_BYTES, gate::BUFFER_MESSAGES)),
        }
    }

    /// Runs the session until the link ends or `stop` turns true.
    pub(super) async fn run(
        mut self,
        mut connection: T::Connection,
        stop: &mut watch::Receiver<bool>,
    ) -> End {
        // Unbounded on purpose: the pump must never wait for the logic while the logic waits in
        // a transport call for the event loop, which only the pump drives (a bounded channel
        // deadlocks a fast drain). What it buffers is bounded elsewhere: acks by the window,
        // inbound messages by the gate's bytes (the pump stops reading while the logic is
        // behind and not in a transport call).
        let (tx, mut rx) = mpsc::unbounded_channel();
        let gate = self.gate.clone();
        // The pump is never cancelled mid-`next()`: it runs beside the logic until the link ends.
        let pump = async move {
            // An error event right before `Disconnected` is the reason the link ended, not a
            // problem of its own: it is held back until the next event says which it is.
            let mut held: Option<String> = None;
            loop {
                gate.wait_open().await;
                let ev = match connection.next().await {
                    Ok(event) => match event.payload() {
                        EventPayload::Published(id) => Ev::Published(id),
                        EventPayload::Received {
                            id, topic, data, ..
                        } => {
                            // Polled only for the logic's sake while the buffer is full:
                            // the message is not kept and not acknowledged, so the broker
                            // delivers it again in the next session.
                            if gate.over() {
                                gate.overflowed();
                                continue;
                            }
                            gate.handed(data.len());
                            Ev::Received {
                                id,
                                topic: topic.unwrap_or_default().to_string(),
                                data: data.to_vec(),
                            }
                        }
                        EventPayload::Disconnected => {
                            Ev::Ended(held.take().unwrap_or_else(|| "disconnected".into()))
                        }
                        EventPayload::Error(error) => {
                            let earlier = held.replace(format!("{error:?}"));
                            match earlier {
                                Some(problem) => Ev::Problem(problem),
                                None => continue,
                            }
                        }
                        _ => continue,
                    },
                    Err(error) => Ev::Ended(held.take().unwrap_or_else(|| error.to_string())),
                };
                if !matches!(ev, Ev::Ended(_))
                    && let Some(problem) = held.take()
                    && tx.send(Ev::Problem(problem)).is_err()
                {
                    return;
                }
                let last = matches!(ev, Ev::Ended(_));
                if tx.send(ev).is_err() || last {
                    return;
                }
            }
        };
        let end = {
            let logic = self.serve(&mut rx, stop);
            tokio::pin!(pump);
            tokio::pin!(logic);
            tokio::select! {
                end = &mut logic => end,
                () = &mut pump => logic.await,
            }
        };
        let released = self.drain.end_session();
        self.delete(released).await;
        end
    }

    async fn serve(
        &mut self,
        rx: &mut mpsc::UnboundedReceiver<Ev>,
        stop: &mut watch::Receiver<bool>,
    ) -> End {
        let shared = self.shared;
        self.drain.start_session();
        if let Err(reason) = self.publish_status(None).await {
            return End::Lost(reason);
        }
        if let Err(reason) = self.follow().await {
            return End::Lost(reason);
        }
        shared.routes.iter().for_each(|r| r.session(true));
        shared.stats.connected.store(true, Ordering::Relaxed);
        shared.events.emit(AgentEvent::Connected);
        let config = &shared.config;
        // No periodic status: it is published at connect (above), when the apps change, and
        // when a check after a change finds it different ([`Session::status_due`]).
        let mut delete_tick =
            tokio::time::interval_at(Instant::now() + config.delete_every, config.delete_every);
        let mut apps = config.apps.clone();
        let mut status_check: Option<Instant> = None;
        let mut read_retry: Option<Instant> = None;
        loop {
            // Messages read past the buffer were left unacknowledged: once everything taken is
            // handled, a new session makes the broker deliver them again.
            if self.gate.overflow() > 0 && self.gate.buffered() == 0 {
                // The acks of what was stored are queued in the transport: let the pump drive
                // them out first (what it reads meanwhile is dropped, unacknowledged), or the
                // broker delivers those messages again too.
                tokio::time::sleep(OVERFLOW_FLUSH).await;
                return End::Lost(format!(
                    "{} inbound messages arrived faster than they could be stored and were left \
                     unacknowledged; reconnecting so the broker delivers them again",
                    self.gate.overflow()
                ));
            }
            if read_retry.is_none()
                && let Err(outcome) = self.fill_window().await
            {
                match outcome {
                    Fill::Lost(reason) => return End::Lost(reason),
                    Fill::ReadFailed => read_retry = Some(Instant::now() + READ_RETRY),
                }
            }
            if self.drain.newly_drained() {
                *shared
                    .stats
                    .last_drained
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(std::time::Instant::now());
                shared.events.emit(AgentEvent::Drained);
            }
            let idle = self.drain.caught_up() && self.drain.has_room();
            tokio::select! {
                ev = rx.recv() => match ev {
                    Some(Ev::Published(id)) => {
                        // Only a PUBACK that releases rows changes the status (not the
                        // status's own).
                        if self.drain.acknowledged(id) {
                            let rows = self.drain.take_released();
                            self.delete(rows).await;
                            status_check.get_or_insert_with(|| self.status_due());
                        }
                    }
                    Some(Ev::Received { id, topic, data }) => {
                        let bytes = data.len();
                        self.receive(id, topic, data).await;
                        self.gate.taken(bytes);
                        status_check.get_or_insert_with(|| self.status_due());
                    }
                    Some(Ev::Problem(problem)) => {
                        shared.problem(problem);
                        status_check.get_or_insert_with(|| self.status_due());
                    }
                    Some(Ev::Ended(reason)) => return End::Lost(reason),
                    None => return End::Lost("the connection ended".into()),
                },
                _ = delete_tick.tick(), if self.drain.has_released() => {
                    let rows = self.drain.take_released();
                    self.delete(rows).await;
                    status_check.get_or_insert_with(|| self.status_due());
                }
                () = sleep_until(status_check), if status_check.is_some() => {
                    status_check = None;
                    if let Err(reason) = self.refresh_status().await {
                        return End::Lost(reason);
                    }
                }
                () = sleep_until(read_retry), if read_retry.is_some() => {
                    read_retry = None;
                    status_check.get_or_insert_with(|| self.status_due());
                }
                () = wait_commit(shared), if idle => {
                    self.drain.committed();
                    status_check.get_or_insert_with(|| self.status_due());
                }
                () = shared.routes_changed.notified() => {
                    if let Err(reason) = self.follow().await {
                        return End::Lost(reason);
                    }
                }
                () = changed(&mut apps) => {
                    if let Err(reason) = self.publish_status(None).await {
                        return End::Lost(reason);
                    }
                }
                () = stopped(stop) => {
                    let device = &config.planner.device;
                    let _call = self.gate.calling();
                    let _ = self.client.publish(&self.status_topic(), QoS::AtLeastOnce, true, &status::offline(device)).await;
                    return End::Shutdown;
                }
            }
        }
    }

    /// Reads pages and sends their messages until the window is full or the outbox read to its
    /// end.
    async fn fill_window(&mut self) -> Result<(), Fill> {
        let shared = self.shared;
        while let Some(request) = self.drain.next_read() {
            let rows = match shared.store.outbox_page(request).await {
                Ok(rows) => rows,
                Err(error) => {
                    shared.problem(format!("cannot read the outbox: {error}"));
                    return Err(Fill::ReadFailed);
                }
            };
            self.drain.page_read(rows.iter().map(|row| row.seq));
            self.send_page(&rows).await.map_err(Fill::Lost)?;
        }
        Ok(())
    }

    async fn send_page(&mut self, rows: &[OutboxEntry]) -> Result<(), String> {
        let shared = self.shared;
        let planner = &shared.config.planner;
        let now = super::anchor::ClockNow::read(&*shared.config.clock);
        let (messages, oversize) = planner.plan(rows, &now);
        if !oversize.is_empty() {
            self.dead_letter(&oversize).await?;
        }
        for message in messages {
            self.bucket.take(message.payload.len()).await;
            let id = self.send(&message).await?;
            self.drain.sent(id, message.seqs, message.payload.len());
        }
        Ok(())
    }

    /// Moves rows that can never be sent to the dead letters (one transaction that counts
    /// them), reports them, and refreshes the status. If the move fails they stay in the
    /// outbox, owed, and the next session tries again: never deleted silently.
    async fn dead_letter(&mut self, oversize: &[Oversize]) -> Result<(), String> {
        let shared = self.shared;
        let limit = shared.config.planner.max_packet_bytes;
        let rows: Vec<(u64, String)> = oversize
            .iter()
            .map(|o| {
                (
                    o.seq,
                    format!(
                        "needs a {}-byte MQTT packet, over the packet limit of {limit} bytes",
                        o.bytes
                    ),
                )
            })
            .collect();
        let first = rows[0].clone();
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        match shared.store.outbox_dead_letter(rows, now_ms).await {
            Ok(moved) => {
                shared.stats.error(format!(
                    "{moved} outbox row(s) can never be sent (first seq {}: {}); moved to the dead letters (`outpost outbox dead`)",
                    first.0, first.1
                ));
                shared.events.emit(AgentEvent::DeadLettered {
                    records: moved,
                    first_seq: first.0,
                    reason: first.1,
                });
                self.refresh_status().await
            }
            Err(error) => {
                shared.problem(format!(
                    "cannot move unsendable outbox rows to the dead letters: {error}; they stay in the outbox"
                ));
                Ok(())
            }
        }
    }

    async fn send(&mut self, message: &Outgoing) -> Result<MessageId, String> {
        let qos = if message.qos == 0 {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        };
        let gate = self.gate.clone();
        let _call = gate.calling();
        let sent = self
            .client
            .publish(&message.topic, qos, message.retain, &message.payload)
            .await;
        match sent {
            Ok(id) => {
                self.shared.stats.published.fetch_add(1, Ordering::Relaxed);
                Ok(id)
            }
            Err(error) => {
                let reason = format!("publish to {} failed: {error:?}", message.topic);
                self.shared.problem(reason.clone());
                Err(reason)
            }
        }
    }

    /// Hands an inbound message to the route that claims it (off the async thread), then
    /// acknowledges it as the route answered. A refused message is acknowledged too, so the
    /// broker stops delivering it, and counted persistently.
    async fn receive(&mut self, id: MessageId, topic: String, data: Vec<u8>) {
        let shared = self.shared;
        let route = shared.routes.iter().find(|r| r.claims(&topic)).cloned();
        let delivery = match route {
            Some(route) => {
                let shown = topic.clone();
                Offloaded::run(move || route.deliver(&shown, &data))
                    .await
                    .unwrap_or_else(|error| Delivery::Retry {
                        reason: error.to_string(),
                    })
            }
            None => Delivery::Refused {
                reason: "no mqtt trigger or fleet topic matches it".into(),
            },
        };
        match delivery {
            Delivery::Accepted => shared.events.emit(AgentEvent::InboundStored { topic }),
            Delivery::Refused { reason } => {
                if let Err(error) = shared.store.count_inbound_refused().await {
                    tracing::warn!(%error, "cannot count a refused inbound message");
                }
                shared
                    .stats
                    .error(format!("inbound message on {topic} refused: {reason}"));
                shared
                    .events
                    .emit(AgentEvent::InboundRefused { topic, reason });
            }
            Delivery::Retry { reason } => {
                shared.problem(format!(
                    "cannot take the inbound message on {topic}: {reason}; not acknowledged, the broker will deliver it again"
                ));
                return;
            }
        }
        // A failed ack is not the end of the session: a QoS 0 message has nothing to ack, and
        // a dead link shows up as the connection's end anyway.
        let gate = self.gate.clone();
        let _call = gate.calling();
        if let Err(error) = self.client.ack(id).await {
            tracing::debug!(?error, %id, "inbound message not acknowledged");
        }
    }

    /// Brings the session's subscriptions in line with what the routes want.
    async fn follow(&mut self) -> Result<(), String> {
        let shared = self.shared;
        let receivers: Vec<_> = shared.routes.iter().map(|r| r.wanted()).collect();
        let wanted = {
            let values: Vec<Wanted> = receivers.iter().map(|r| r.borrow().clone()).collect();
            subscriptions::union(values.iter())
        };
        let changes = subscriptions::diff(&wanted, &self.subscribed);
        let gate = self.gate.clone();
        let _call = gate.calling();
        for filter in &changes.subscribe {
            if let Err(error) = self.client.subscribe(filter, QoS::AtLeastOnce).await {
                let reason = format!("subscribe to {filter} failed: {error:?}");
                shared.problem(reason.clone());
                return Err(reason);
            }
        }
        for filter in &changes.unsubscribe {
            if let Err(error) = self.client.unsubscribe(filter).await {
                let reason = format!("unsubscribe from {filter} failed: {error:?}");
                shared.problem(reason.clone());
                return Err(reason);
            }
        }
        self.subscribed = wanted;
        Ok(())
    }

    /// Takes the clock's sync state into the status (a change refreshes it).
    fn note_clock(&self) {
        let synced = self.shared.config.clock.synced();
        self.shared
            .stats
            .clock_synced
            .store(synced, std::sync::atomic::Ordering::Relaxed);
    }

    fn status_topic(&self) -> String {
        let planner = &self.shared.config.planner;
        format!("{}/{}/status", planner.prefix, planner.device)
    }

    /// When to check the status after a change now: after the settle time, and not sooner
    /// than `status_every` after the last check or publish.
    fn status_due(&self) -> Instant {
        status::check_at(
            Instant::now(),
            self.last_check,
            self.shared.config.status_every,
        )
    }

    /// Publishes the status if it changed since the last one (uptime aside).
    async fn refresh_status(&mut self) -> Result<(), String> {
        self.note_clock();
        let counters = self.shared.store.counters().await.unwrap_or_default();
        self.last_check = Instant::now();
        let shared = self.shared;
        let now = status::fingerprint(&status::Parts {
            device: &shared.config.planner.device,
            apps: &shared.config.apps.borrow(),
            counters: &counters,
            stats: &shared.stats,
            schedule: &shared.config.schedule,
        });
        if self.last_status.as_ref() == Some(&now) {
            return Ok(());
        }
        self.publish_status(Some(counters)).await
    }

    /// Publishes the retained status, reading the counters (off-thread) unless given.
    async fn publish_status(
        &mut self,
        counters: Option<crate::store::Counters>,
    ) -> Result<(), String> {
        let shared = self.shared;
        self.note_clock();
        let counters = match counters {
            Some(counters) => counters,
            None => shared.store.counters().await.unwrap_or_default(),
        };
        let (fingerprint, body) = {
            let apps = shared.config.apps.borrow();
            let parts = status::Parts {
                device: &shared.config.planner.device,
                apps: &apps,
                counters: &counters,
                stats: &shared.stats,
                schedule: &shared.config.schedule,
            };
            (
                status::fingerprint(&parts),
                status::online(&parts, shared.started.elapsed().as_secs()),
            )
        };
        self.last_status = Some(fingerprint);
        self.last_check = Instant::now();
        let gate = self.gate.clone();
        let _call = gate.calling();
        match self
            .client
            .publish(&self.status_topic(), QoS::AtLeastOnce, true, &body)
            .await
        {
            Ok(_) => Ok(()),
            Err(error) => {
                let reason = format!("status publish failed: {error:?}");
                shared.problem(reason.clone());
                Err(reason)
            }
        }
    }

    /// Deletes acknowledged rows in one transaction, off the async thread; on failure they are
    /// kept for the next try (or re-sent after a restart: a duplicate, never a loss).
    async fn delete(&mut self, rows: Vec<u64>) {
        if rows.is_empty() {
            return;
        }
        let count = rows.len() as u64;
        match self.shared.store.outbox_remove(rows.clone()).await {
            Ok(_) => {
                self.shared
                    .stats
                    .acked_rows
                    .fetch_add(count, Ordering::Relaxed);
            }
            Err(error) => {
                self.shared
                    .problem(format!("cannot delete acknowledged rows: {error}"));
                self.drain.delete_failed(rows);
            }
        }
    }
}

/// Why filling the window stopped early.
enum Fill {
    /// The link failed while sending.
    Lost(String),
    /// The outbox could not be read; try again shortly.
    ReadFailed,
}

/// Resolves at `at`; never when `None` (the arm is disabled then anyway).
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Resolves after the next local commit (or, with no local committer, after a second, to look
/// for rows others wrote).
async fn wait_commit(shared: &Shared) {
    match &shared.commits {
        Some(stats) => stats.committed.notified().await,
        None => tokio::time::sleep(Duration::from_secs(1)).await,
    }
}

/// Resolves when `receiver` changes; never once its sender is gone.
async fn changed<T>(receiver: &mut watch::Receiver<T>) {
    if receiver.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}
