//! An MQTT broker and [`Transport`] in memory, for unit tests of code written against the
//! transport traits (the sync engine): no socket, no broker process, no wall-clock time.
//!
//! A test makes a [`MemoryBroker`], hands [`MemoryBroker::transport`] to the code under test
//! and keeps the broker to drive and observe it:
//!
//! ```
//! # use outpost_hal::mqtt::{Connection, Event, EventPayload, Publish, QoS, Transport};
//! # use outpost_hal::mqtt::memory::MemoryBroker;
//! # tokio::runtime::Builder::new_current_thread().build().expect("runtime").block_on(async {
//! let broker = MemoryBroker::new();
//! let mut transport = broker.transport();
//! let (mut client, mut connection) = transport.connect().await.expect("connects");
//! let id = client.publish("a/b", QoS::AtLeastOnce, false, b"x").await.expect("published");
//! assert!(broker.ack(id));
//! let event = connection.next().await.expect("event"); // Connected(false)
//! let event = connection.next().await.expect("event"); // Published(id)
//! assert!(matches!(event.payload(), EventPayload::Published(acked) if acked == id));
//! broker.cut(); // the connection yields Error, Disconnected, then only errors
//! # });
//! ```
//!
//! # What it simulates
//! The session contract of [`Transport`] exactly as [`RumqttcTransport`](super::RumqttcTransport)
//! keeps it: a fresh session per `connect` (numbered from 1), `Connected(false)` first; ids from
//! one counter per broker (starting at 1, one per publish, subscribe, unsubscribe and received
//! message, wrapping at `u32::MAX`); `Published(id)` at once for QoS 0 and on the broker's
//! acknowledgement for QoS 1/2; `Subscribed`/`Unsubscribed` at once, or an `Error` event with
//! [`SubscriptionRefused`](super::TransportError::SubscriptionRefused); on a dead link an `Error`
//! with [`SessionEnded`](super::TransportError::SessionEnded), `Disconnected` once, then
//! [`Closed`](super::TransportError::Closed) from `next` and from every client call; manual
//! acknowledgement of received QoS 1/2 messages with the same errors. The client validates
//! topics, filters and packet size as rumqttc does.
//!
//! Of the broker: wildcard subscriptions (`+`, `#`, `$` topics) with the QoS capped by the
//! subscription; the client's publishes forwarded to its own matching subscriptions (MQTT 3.1.1
//! has no "no local"); retained messages (kept from retained publishes, cleared by empty ones,
//! sent after `Subscribed` to matching new subscriptions); a second connect taking over the open
//! session. The test controls connects, acknowledgements ([`AckMode`]), cuts and deliveries.
//!
//! Everything happens synchronously under one lock, in call order: an event is queued on the
//! connection before the call that caused it returns, and events queued before a cut are still
//! yielded before `Disconnected`. Runs are therefore deterministic.
//!
//! # What it does not
//! - **Persistent sessions**: `session_present` is always false; nothing survives a session
//!   (subscriptions, pending publishes, unacknowledged received messages). No redelivery.
//! - Flow control: rumqttc's in-flight window and request queue never fill, so no call waits.
//! - QoS 2 has no separate PUBREC/PUBREL stage (acknowledged in one step, like QoS 1).
//! - Keep-alive, timeouts, last will, credentials, TLS and the incoming packet limit.
//! - Message expiry and every MQTT 5 feature.
//!
//! # Layout
//! - `broker`: [`MemoryBroker`], the test's handle.
//! - `records`: what it reports and takes ([`PublishRecord`], [`Inbound`], [`AckMode`], ...).
//! - `state`: the broker's state and rules, under one lock.
//! - `client`, `connection`: the two halves of a session ([`MemoryClient`], [`MemoryConnection`],
//!   [`MemoryEvent`]).
//! - `topic`: filter matching, QoS capping, packet size.

mod broker;
mod client;
mod connection;
mod records;
mod state;
#[cfg(test)]
mod tests;
mod topic;

use std::sync::Arc;

pub use self::broker::MemoryBroker;
pub use self::client::MemoryClient;
pub use self::connection::{MemoryConnection, MemoryEvent};
pub use self::records::{
    AckMode, AckState, Inbound, PublishRecord, RetainedMessage, SubscriptionAction,
    SubscriptionChange,
};
use self::state::Shared;
use super::{Transport, TransportError};

/// Opens sessions with a [`MemoryBroker`]; made by [`MemoryBroker::transport`].
#[derive(Debug, Clone)]
pub struct MemoryTransport {
    shared: Arc<Shared>,
}

impl MemoryTransport {
    fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

impl Transport for MemoryTransport {
    type Client = MemoryClient;
    type Connection = MemoryConnection;
    type Error = TransportError;

    /// Open a new session at once, or fail as [`MemoryBroker::refuse_connects`] asked.
    async fn connect(&mut self) -> Result<(MemoryClient, MemoryConnection), TransportError> {
        let (session, events) = self.shared.update(|state| state.connect())?;
        let client = MemoryClient::new(Arc::clone(&self.shared), session);
        let connection = MemoryConnection::new(Arc::clone(&self.shared), session, events);
        Ok((client, connection))
    }
}
