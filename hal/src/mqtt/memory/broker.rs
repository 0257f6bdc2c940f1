//! [`MemoryBroker`]: the test's handle on the simulated broker.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::state::Shared;
use super::{
    AckMode, Inbound, MemoryTransport, PublishRecord, RetainedMessage, SubscriptionChange,
};
use crate::mqtt::{MessageId, QoS};

/// The test's handle on a simulated broker: it opens the [`MemoryTransport`] given to the code
/// under test, injects faults, acknowledges, delivers, and reports what the client did.
///
/// Cheap to clone; every clone (and every transport made from it) shares one broker. Queries
/// return copies. The `wait_*` methods wake on each change of the broker's state, never on a
/// timer; wrap them in `tokio::time::timeout` if the code under test might never get there.
#[derive(Debug, Clone, Default)]
pub struct MemoryBroker {
    shared: Arc<Shared>,
}

impl MemoryBroker {
    /// A broker with no session, in [`AckMode::Manual`], with ids starting at 1 and rumqttc's
    /// default 10 KiB packet limit.
    pub fn new() -> Self {
        Self::default()
    }

    /// A transport that opens sessions with this broker (one client id: a second session
    /// takes the first one over).
    pub fn transport(&self) -> MemoryTransport {
        MemoryTransport::new(Arc::clone(&self.shared))
    }

    // --- Sessions ---

    /// Refuse the next `count` connects with [`TransportError::Unreachable`](crate::mqtt::TransportError::Unreachable)
    /// (replacing any count still left).
    pub fn refuse_connects(&self, count: u32) {
        self.shared.update(|state| state.refuse_connects = count);
    }

    /// How many times `connect` was called, refused or not.
    pub fn connect_attempts(&self) -> u32 {
        self.shared.lock().connect_attempts
    }

    /// The number of the last session opened (the first is 1; 0 before any).
    pub fn session(&self) -> u32 {
        self.shared.lock().last_session
    }

    /// Whether a session is open.
    pub fn is_connected(&self) -> bool {
        self.shared.lock().current.is_some()
    }

    /// Cut the open session, as a dead link would: its connection yields the events already
    /// queued, an `Error` ([`SessionEnded`](crate::mqtt::TransportError::SessionEnded)),
    /// `Disconnected`, then only [`Closed`](crate::mqtt::TransportError::Closed) errors; its
    /// client's calls fail with `Closed`; its pending publishes become
    /// [`AckState::Forgotten`](super::AckState::Forgotten) and its unacknowledged received messages are forgotten.
    /// Returns whether a session was open.
    pub fn cut(&self) -> bool {
        self.shared.update(|state| {
            let open = state.current.as_ref().map(|session| session.number);
            open.is_some_and(|session| state.end(session, "cut by the test"))
        })
    }

    // --- The client's publishes ---

    /// How QoS 1/2 publishes are acknowledged from now on; publishes already pending stay so.
    pub fn set_ack_mode(&self, mode: AckMode) {
        self.shared.update(|state| state.ack_mode = mode);
    }

    /// Acknowledge pending publish `id` of the open session: its connection yields
    /// `Published(id)`. Returns whether it was pending.
    pub fn ack(&self, id: MessageId) -> bool {
        self.shared.update(|state| state.settle(id, true))
    }

    /// Acknowledge every pending publish of the open session, oldest first; returns how many.
    pub fn ack_all(&self) -> usize {
        self.shared.update(|state| {
            let pending = state.pending();
            pending.iter().for_each(|&id| {
                state.settle(id, true);
            });
            pending.len()
        })
    }

    /// Lose the acknowledgement of pending publish `id`: the broker has the message but the
    /// client never hears so. Returns whether it was pending.
    pub fn drop_ack(&self, id: MessageId) -> bool {
        self.shared.update(|state| state.settle(id, false))
    }

    /// Ids of the open session's publishes awaiting acknowledgement, oldest first.
    pub fn pending(&self) -> Vec<MessageId> {
        self.shared.lock().pending()
    }

    /// Every publish the broker received, in order, across all sessions.
    pub fn published(&self) -> Vec<PublishRecord> {
        self.shared.lock().published.clone()
    }

    /// Refuse publishes whose PUBLISH packet exceeds `bytes`, as
    /// [`MqttConfig::max_packet_bytes`](crate::mqtt::MqttConfig::max_packet_bytes) does.
    pub fn set_max_packet_bytes(&self, bytes: usize) {
        self.shared.update(|state| state.max_packet = bytes);
    }

    /// Make `id` the next message id handed out, e.g. `u32::MAX` to test wrapping.
    pub fn set_next_id(&self, id: MessageId) {
        self.shared.update(|state| state.next_id = id);
    }

    // --- Subscriptions ---

    /// The open session's subscriptions: filter and granted QoS, sorted by filter.
    pub fn subscriptions(&self) -> Vec<(String, QoS)> {
        let state = self.shared.lock();
        let Some(current) = state.current.as_ref() else {
            return Vec::new();
        };
        let subscriptions = current.subscriptions.iter();
        subscriptions.map(|(f, &qos)| (f.clone(), qos)).collect()
    }

    /// Every subscribe and unsubscribe call, in order, across all sessions.
    pub fn subscription_log(&self) -> Vec<SubscriptionChange> {
        self.shared.lock().subscription_log.clone()
    }

    /// Refuse every later subscription to exactly `filter`: its connection yields an `Error`
    /// event with [`SubscriptionRefused(id)`](crate::mqtt::TransportError::SubscriptionRefused)
    /// instead of `Subscribed(id)`.
    pub fn refuse_subscriptions_to(&self, filter: &str) {
        self.shared
            .update(|state| state.refused_filters.insert(filter.to_owned()));
    }

    // --- Messages to the client ---

    /// Deliver `message` to the open session as if another client published it: only if one
    /// of its subscriptions matches (`+`/`#` wildcards), unless it is
    /// [`unconditional`](Inbound::unconditional). Returns the id of its `Received` event, or
    /// `None` if it was not delivered. A QoS 1/2 delivery awaits the client's
    /// [`ack`](crate::mqtt::Acknowledge::ack) (see [`inbound_acks`](Self::inbound_acks)).
    pub fn deliver(&self, message: Inbound) -> Option<MessageId> {
        self.shared.update(|state| state.deliver(&message))
    }

    /// Ids of received messages the client acknowledged, in order, across all sessions.
    pub fn inbound_acks(&self) -> Vec<MessageId> {
        self.shared.lock().inbound_acks.clone()
    }

    /// Ids of the open session's received QoS 1/2 messages not acknowledged yet, in id order.
    pub fn awaiting_inbound_ack(&self) -> Vec<MessageId> {
        let state = self.shared.lock();
        let awaiting = state.current.as_ref().map(|s| s.awaiting_ack.iter());
        awaiting.into_iter().flatten().copied().collect()
    }

    /// Keep a retained message for `topic`, as if another client published it retained (an
    /// empty payload clears it). Later subscriptions that match get it with the retain flag;
    /// current subscribers are not sent it (use [`deliver`](Self::deliver) for that).
    pub fn set_retained(&self, topic: &str, payload: impl Into<Vec<u8>>, qos: QoS) {
        let payload = payload.into();
        self.shared
            .update(|state| state.keep_retained(topic, &payload, qos));
    }

    /// The retained messages by topic, the client's own retained publishes included.
    pub fn retained(&self) -> BTreeMap<String, RetainedMessage> {
        self.shared.lock().retained.clone()
    }

    // --- Waiting ---

    /// Wait until `done` holds; it is checked now and after every change of the broker. It may
    /// call any query of this broker.
    pub async fn wait_until(&self, mut done: impl FnMut(&Self) -> bool) {
        self.shared.wait_until(|| done(self)).await;
    }

    /// Wait until session `session` has been opened (it may have ended since).
    pub async fn wait_connected(&self, session: u32) {
        self.wait_until(|broker| broker.session() >= session).await;
    }

    /// Wait until no session is open.
    pub async fn wait_disconnected(&self) {
        self.wait_until(|broker| !broker.is_connected()).await;
    }

    /// Wait until the broker has received at least `count` publishes in all; returns them all.
    pub async fn wait_published(&self, count: usize) -> Vec<PublishRecord> {
        self.wait_until(|broker| broker.shared.lock().published.len() >= count)
            .await;
        self.published()
    }

    /// Wait until `count` publishes of the open session await acknowledgement; returns their ids.
    pub async fn wait_pending(&self, count: usize) -> Vec<MessageId> {
        self.wait_until(|broker| broker.pending().len() >= count)
            .await;
        self.pending()
    }

    /// Wait until the open session is subscribed to exactly `filter`.
    pub async fn wait_subscribed(&self, filter: &str) {
        let subscribed = |broker: &Self| {
            let state = broker.shared.lock();
            let current = state.current.as_ref();
            current.is_some_and(|session| session.subscriptions.contains_key(filter))
        };
        self.wait_until(subscribed).await;
    }

    /// Wait until the client has acknowledged received message `id`.
    pub async fn wait_inbound_acked(&self, id: MessageId) {
        self.wait_until(|broker| broker.shared.lock().inbound_acks.contains(&id))
            .await;
    }
}
