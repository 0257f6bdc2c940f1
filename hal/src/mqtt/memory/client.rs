//! The client half of a simulated session: publish, subscribe, acknowledge.

use std::sync::Arc;

use super::state::Shared;
use crate::mqtt::{Acknowledge, Client, ErrorType, MessageId, Publish, QoS, TransportError};

/// The publishing half of a session opened by [`MemoryTransport`](super::MemoryTransport).
///
/// Every call takes effect at the broker before it returns (nothing waits for room or for the
/// connection to be polled). Calls check what rumqttc checks (topic and filter syntax, packet
/// size) with the same errors; once the session has ended they fail with
/// [`TransportError::Closed`].
#[derive(Debug)]
pub struct MemoryClient {
    shared: Arc<Shared>,
    /// The session this half belongs to.
    session: u32,
}

impl MemoryClient {
    pub(super) fn new(shared: Arc<Shared>, session: u32) -> Self {
        Self { shared, session }
    }

    /// The number of the session this client belongs to (1 for the broker's first).
    pub fn session(&self) -> u32 {
        self.session
    }

    /// End the session politely, as [`RumqttcClient::disconnect`](crate::mqtt::RumqttcClient::disconnect):
    /// the connection yields its queued events, then `Error` and `Disconnected`.
    pub async fn disconnect(&mut self) -> Result<(), TransportError> {
        let session = self.session;
        if self
            .shared
            .update(|state| state.end(session, "disconnected by the client"))
        {
            Ok(())
        } else {
            Err(TransportError::Closed)
        }
    }
}

impl ErrorType for MemoryClient {
    type Error = TransportError;
}

impl Publish for MemoryClient {
    /// Publish and return the id; `Published(id)` follows at once for QoS 0, and for QoS 1/2
    /// when the broker acknowledges (see [`AckMode`](super::AckMode)).
    async fn publish(
        &mut self,
        topic: &str,
        qos: QoS,
        retain: bool,
        payload: &[u8],
    ) -> Result<MessageId, TransportError> {
        let session = self.session;
        self.shared
            .update(|state| state.publish(session, topic, qos, retain, payload))
    }
}

impl Client for MemoryClient {
    /// Subscribe and return the id; `Subscribed(id)` follows (then any matching retained
    /// messages), or an `Error` event with [`TransportError::SubscriptionRefused`].
    async fn subscribe(&mut self, topic: &str, qos: QoS) -> Result<MessageId, TransportError> {
        let session = self.session;
        self.shared
            .update(|state| state.subscribe(session, topic, qos))
    }

    /// Unsubscribe and return the id; `Unsubscribed(id)` follows.
    async fn unsubscribe(&mut self, topic: &str) -> Result<MessageId, TransportError> {
        let session = self.session;
        self.shared
            .update(|state| state.unsubscribe(session, topic))
    }
}

impl Acknowledge for MemoryClient {
    /// Acknowledge received QoS 1/2 message `id`; the broker records it
    /// ([`MemoryBroker::inbound_acks`](super::MemoryBroker::inbound_acks)).
    async fn ack(&mut self, id: MessageId) -> Result<(), TransportError> {
        let session = self.session;
        self.shared.update(|state| state.ack_inbound(session, id))
    }
}
