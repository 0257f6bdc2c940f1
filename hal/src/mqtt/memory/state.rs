//! The simulated broker's state and the rules that change it, shared by the controller
//! ([`MemoryBroker`](super::MemoryBroker)), the transport and both halves of every session.
//!
//! Everything happens under one lock, synchronously: a publish is received, recorded, acked (or
//! not) and echoed before `publish` returns, so a test sees a consistent state at every await.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::pin::pin;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::{Notify, mpsc};

use super::connection::Kind;
use super::topic::{higher, lower, matches, publish_size};
use super::{
    AckMode, AckState, Inbound, PublishRecord, RetainedMessage, SubscriptionAction,
    SubscriptionChange,
};
use crate::mqtt::{MessageId, QoS, TransportError};

/// What sessions call the broker in their errors (`broker` fields of [`TransportError`]).
pub const BROKER: &str = "memory";

/// The broker's state behind its lock, and the signal that it changed.
#[derive(Debug, Default)]
pub struct Shared {
    state: Mutex<State>,
    /// Woken after every change, so waiting tests re-check their condition.
    changed: Notify,
}

impl Shared {
    /// Read the state. Every change is completed under the lock, so a panic elsewhere leaves it
    /// consistent and poisoning is ignored.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Change the state and wake everyone waiting for a change.
    pub fn update<R>(&self, change: impl FnOnce(&mut State) -> R) -> R {
        let result = change(&mut self.lock());
        self.changed.notify_waiters();
        result
    }

    /// Wait until `done` holds. `done` is checked after registering for the wake-up, so a change
    /// between the check and the wait is never missed. It must not hold the lock on return.
    pub async fn wait_until(&self, mut done: impl FnMut() -> bool) {
        loop {
            let mut changed = pin!(self.changed.notified());
            changed.as_mut().enable();
            if done() {
                return;
            }
            changed.await;
        }
    }
}

/// Everything the broker knows.
#[derive(Debug)]
pub struct State {
    /// Number of the last session opened; 0 before the first. Sessions count from 1.
    pub last_session: u32,
    /// The open session, if any.
    pub current: Option<Session>,
    /// Connects still to refuse.
    pub refuse_connects: u32,
    /// Every `connect` call, refused or not.
    pub connect_attempts: u32,
    /// The next message id handed out (publish, subscribe, unsubscribe, received message).
    pub next_id: MessageId,
    /// How QoS 1/2 publishes of the client are acknowledged.
    pub ack_mode: AckMode,
    /// Largest PUBLISH packet the client may send.
    pub max_packet: usize,
    /// Filters whose subscriptions the broker refuses.
    pub refused_filters: BTreeSet<String>,
    /// Every publish the broker received, in order.
    pub published: Vec<PublishRecord>,
    /// Every subscribe and unsubscribe, in order.
    pub subscription_log: Vec<SubscriptionChange>,
    /// Ids of received messages the client acknowledged, in order.
    pub inbound_acks: Vec<MessageId>,
    /// Retained messages by topic.
    pub retained: BTreeMap<String, RetainedMessage>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            last_session: 0,
            current: None,
            refuse_connects: 0,
            connect_attempts: 0,
            // As `RumqttcTransport`: the first id is 1.
            next_id: 1,
            ack_mode: AckMode::Manual,
            // `MqttConfig`'s (and rumqttc's) default.
            max_packet: 10 * 1024,
            refused_filters: BTreeSet::new(),
            published: Vec::new(),
            subscription_log: Vec::new(),
            inbound_acks: Vec::new(),
            retained: BTreeMap::new(),
        }
    }
}

/// One open session: what the broker holds for the connected client.
#[derive(Debug)]
pub struct Session {
    /// Its number (1 for the first session of the broker).
    pub number: u32,
    /// Events for its connection half; dropped when the session ends, which ends the stream.
    events: mpsc::UnboundedSender<Kind>,
    /// Topic filter to granted QoS.
    pub subscriptions: BTreeMap<String, QoS>,
    /// Received QoS 1/2 messages the client has not acknowledged yet.
    pub awaiting_ack: BTreeSet<MessageId>,
}

impl Session {
    /// Queue an event for the connection. If the connection is gone the session is already
    /// over (dropping it ends the session), so a failed send has nobody to tell.
    fn send(&self, kind: Kind) {
        let _ = self.events.send(kind);
    }
}

impl State {
    /// A new message id: one more than the last, wrapping at `u32::MAX`.
    fn new_id(&mut self) -> MessageId {
        let id = self.next_id;
        self.next_id = id.wrapping_add(1);
        id
    }

    /// The open session, if it is number `session`; a half of an ended session gets `Closed`.
    fn session(&mut self, session: u32) -> Result<&mut Session, TransportError> {
        self.current
            .as_mut()
            .filter(|current| current.number == session)
            .ok_or(TransportError::Closed)
    }

    /// Open a session (after refusing the ones the test asked to refuse). A session still open
    /// is taken over, as a broker does when the same client id connects again.
    pub fn connect(&mut self) -> Result<(u32, mpsc::UnboundedReceiver<Kind>), TransportError> {
        self.connect_attempts += 1;
        if self.refuse_connects > 0 {
            self.refuse_connects -= 1;
            return Err(TransportError::Unreachable {
                broker: BROKER.to_owned(),
                source: io::Error::new(io::ErrorKind::ConnectionRefused, "refused by the test"),
            });
        }
        if let Some(current) = self.current.as_ref().map(|session| session.number) {
            self.end(current, "another session of this client connected");
        }
        self.last_session += 1;
        let (events, receiver) = mpsc::unbounded_channel();
        let session = Session {
            number: self.last_session,
            events,
            subscriptions: BTreeMap::new(),
            awaiting_ack: BTreeSet::new(),
        };
        // Persistent sessions are not simulated: the broker never has one to resume.
        session.send(Kind::Connected(false));
        self.current = Some(session);
        Ok((self.last_session, receiver))
    }

    /// End session `session` if it is the open one: its connection yields the events already
    /// queued, then an `Error` naming the cause, `Disconnected`, and then only errors. Its
    /// un-acknowledged publishes are forgotten, as its un-acknowledged received messages.
    pub fn end(&mut self, session: u32, reason: &str) -> bool {
        let Some(ended) = self.current.take_if(|current| current.number == session) else {
            return false;
        };
        for record in &mut self.published {
            if record.session == session && record.ack == AckState::Pending {
                record.ack = AckState::Forgotten;
            }
        }
        let cause = TransportError::ConnectionLost {
            broker: BROKER.to_owned(),
            reason: reason.to_owned(),
        };
        // As `RumqttcConnection`: the cause as an `Error` event, then `Disconnected`.
        ended.send(Kind::Error(TransportError::SessionEnded(cause.to_string())));
        ended.send(Kind::Disconnected(cause));
        true
    }

    /// The client publishes: check it as rumqttc would, record it, acknowledge it as the
    /// [`AckMode`] says, keep it if retained, and forward it to matching subscriptions (the
    /// client's own included: MQTT 3.1.1 has no "no local").
    pub fn publish(
        &mut self,
        session: u32,
        topic: &str,
        qos: QoS,
        retain: bool,
        payload: &[u8],
    ) -> Result<MessageId, TransportError> {
        self.session(session)?;
        if topic.is_empty() || !::rumqttc::valid_topic(topic) {
            return Err(TransportError::InvalidTopic(topic.to_owned()));
        }
        let size = publish_size(topic, qos, payload);
        if size > self.max_packet {
            return Err(TransportError::PacketTooLarge {
                size,
                max: self.max_packet,
            });
        }
        let id = self.new_id();
        let ack = match (qos, self.ack_mode) {
            // rumqttc reports a QoS 0 publish as `Published` once written.
            (QoS::AtMostOnce, _) => AckState::NotRequired,
            (_, AckMode::Auto) => AckState::Acked,
            (_, AckMode::Manual) => AckState::Pending,
            (_, AckMode::Drop) => AckState::Dropped,
        };
        if matches!(ack, AckState::NotRequired | AckState::Acked) {
            self.session(session)?.send(Kind::Published(id));
        }
        self.published.push(PublishRecord {
            session,
            id,
            topic: topic.to_owned(),
            payload: payload.to_vec(),
            qos,
            retain,
            ack,
        });
        if retain {
            self.keep_retained(topic, payload, qos);
        }
        // Forwarded messages carry no retain flag (it marks messages sent on subscribing).
        self.deliver(&Inbound::new(topic, payload, qos));
        Ok(id)
    }

    /// Store (or, with an empty payload, clear) the retained message of `topic`.
    pub fn keep_retained(&mut self, topic: &str, payload: &[u8], qos: QoS) {
        if payload.is_empty() {
            self.retained.remove(topic);
        } else {
            let message = RetainedMessage {
                payload: payload.to_vec(),
                qos,
            };
            self.retained.insert(topic.to_owned(), message);
        }
    }

    /// The client subscribes: `Subscribed(id)` then the retained messages the filter matches,
    /// or an `Error` event with [`TransportError::SubscriptionRefused`] if the test refuses it.
    pub fn subscribe(
        &mut self,
        session: u32,
        filter: &str,
        qos: QoS,
    ) -> Result<MessageId, TransportError> {
        self.session(session)?;
        if filter.is_empty() || !::rumqttc::valid_filter(filter) {
            return Err(TransportError::InvalidTopic(filter.to_owned()));
        }
        let id = self.new_id();
        let refused = self.refused_filters.contains(filter);
        self.subscription_log.push(SubscriptionChange {
            session,
            id,
            filter: filter.to_owned(),
            action: if refused {
                SubscriptionAction::Refused(qos)
            } else {
                SubscriptionAction::Subscribe(qos)
            },
        });
        let current = self.session(session)?;
        if refused {
            current.send(Kind::Error(TransportError::SubscriptionRefused(id)));
            return Ok(id);
        }
        current.subscriptions.insert(filter.to_owned(), qos);
        current.send(Kind::Subscribed(id));
        let retained: Vec<(String, RetainedMessage)> = self
            .retained
            .iter()
            .filter(|(topic, _)| matches(filter, topic))
            .map(|(topic, message)| (topic.clone(), message.clone()))
            .collect();
        for (topic, message) in retained {
            let qos = lower(message.qos, qos);
            self.send_received(&Inbound::new(&topic, message.payload, qos).retained());
        }
        Ok(id)
    }

    /// The client unsubscribes; the broker answers `Unsubscribed(id)` even for a filter it
    /// did not have, as MQTT requires.
    pub fn unsubscribe(&mut self, session: u32, filter: &str) -> Result<MessageId, TransportError> {
        self.session(session)?;
        if filter.is_empty() || !::rumqttc::valid_filter(filter) {
            return Err(TransportError::InvalidTopic(filter.to_owned()));
        }
        let id = self.new_id();
        self.subscription_log.push(SubscriptionChange {
            session,
            id,
            filter: filter.to_owned(),
            action: SubscriptionAction::Unsubscribe,
        });
        let current = self.session(session)?;
        current.subscriptions.remove(filter);
        current.send(Kind::Unsubscribed(id));
        Ok(id)
    }

    /// The client acknowledges received message `id`.
    pub fn ack_inbound(&mut self, session: u32, id: MessageId) -> Result<(), TransportError> {
        if !self.session(session)?.awaiting_ack.remove(&id) {
            return Err(TransportError::NotAwaitingAck(id));
        }
        self.inbound_acks.push(id);
        Ok(())
    }

    /// Send `message` to the open session if one of its subscriptions matches (or if it is
    /// unconditional), at the lower of its QoS and the highest QoS granted by those subscriptions.
    pub fn deliver(&mut self, message: &Inbound) -> Option<MessageId> {
        let current = self.current.as_ref()?;
        let granted = current
            .subscriptions
            .iter()
            .filter(|(filter, _)| matches(filter, &message.topic))
            .map(|(_, &qos)| qos)
            .reduce(higher);
        let qos = match granted {
            Some(granted) => lower(message.qos, granted),
            None if message.unconditional => message.qos,
            None => return None,
        };
        self.send_received(&Inbound {
            qos,
            ..message.clone()
        })
    }

    /// Hand `message` to the open session as it is, with a new id.
    fn send_received(&mut self, message: &Inbound) -> Option<MessageId> {
        self.current.as_ref()?;
        let id = self.new_id();
        let current = self.current.as_mut()?;
        if message.qos != QoS::AtMostOnce {
            current.awaiting_ack.insert(id);
        }
        current.send(Kind::Received {
            id,
            topic: message.topic.clone(),
            payload: message.payload.clone(),
            qos: message.qos,
            retain: message.retain,
            duplicate: message.duplicate,
        });
        Some(id)
    }

    /// Settle publish `id` of the open session if it awaits its acknowledgement: `acked` sends
    /// `Published(id)`, otherwise the acknowledgement is lost.
    pub fn settle(&mut self, id: MessageId, acked: bool) -> bool {
        let Some(current) = self.current.as_ref() else {
            return false;
        };
        let Some(record) = self.published.iter_mut().rev().find(|record| {
            record.id == id && record.session == current.number && record.ack == AckState::Pending
        }) else {
            return false;
        };
        if acked {
            record.ack = AckState::Acked;
            current.send(Kind::Published(id));
        } else {
            record.ack = AckState::Dropped;
        }
        true
    }

    /// Ids of the open session's publishes awaiting their acknowledgement, oldest first.
    pub fn pending(&self) -> Vec<MessageId> {
        let Some(current) = self.current.as_ref() else {
            return Vec::new();
        };
        self.published
            .iter()
            .filter(|record| record.session == current.number && record.ack == AckState::Pending)
            .map(|record| record.id)
            .collect()
    }
}
