//! The MQTT transport boundary: the traits the sync engine is written against, and an
//! implementation over [rumqttc](::rumqttc) ([`RumqttcTransport`]). With the `testing` feature,
//! [`memory`] adds a broker in memory with its [`MemoryTransport`], for unit tests.
//!
//! # Shape
//! The client half and the connection half are **embedded-svc 0.29**'s async MQTT traits
//! ([`Client`], [`Publish`], [`Connection`], with [`Event`]/[`EventPayload`]): publishing returns a
//! [`MessageId`] at once, and the connection later yields `Published(id)` when the broker has
//! acknowledged it. We add two traits where embedded-svc does not fit:
//!
//! - [`Acknowledge`]: manual acknowledgement of inbound QoS 1/2 messages. embedded-svc's only
//!   implementation (esp-idf-svc) acknowledges on receipt; we must acknowledge only after the
//!   message is committed to redb, or a crash between receipt and commit loses it.
//! - [`Transport`]: a **session factory**. Each [`Transport::connect`] opens a brand-new
//!   connection and returns a fresh client/connection pair. The connection yields
//!   `Connected(session_present)` first, `Disconnected` once when the link dies, and then ends
//!   (every later `next()` is an error). Nothing reconnects behind the caller's back.
//!
//! # Why a fresh session per connection
//! rumqttc keeps in-flight state in memory only, and on reconnect it silently drops every
//! un-acknowledged QoS 1 publish when the broker did not resume the session; requests still queued
//! in its channel survive a reconnect and go out in the new session. Keeping one client across
//! reconnects therefore leaks stale state in ways the caller cannot see. With a new client and
//! event loop per session none can leak: the caller (the sync engine) re-sends everything not yet
//! acknowledged from its durable outbox after each connect, re-subscribes, and owns the reconnect
//! backoff. The outbox is the only truth about what was delivered.
//!
//! # Ids and acknowledgements
//! Message ids are handed out by the transport: they increase by one per publish, subscribe,
//! unsubscribe and received message (wrapping at `u32::MAX`) and are never reused while a message
//! is outstanding. `Published(id)`/`Subscribed(id)` carry the id the call returned; a
//! `Received { id, .. }` carries the id to pass to [`Acknowledge::ack`].

mod config;
mod error;
// Only for tests: the agent's dev-dependency turns `testing` on; device builds never do.
#[cfg(any(test, feature = "testing"))]
pub mod memory;
mod rumqttc;

pub use self::config::{BrokerUrl, LastWill, MqttConfig, Scheme};
pub use self::error::TransportError;
#[cfg(any(test, feature = "testing"))]
pub use self::memory::{MemoryBroker, MemoryClient, MemoryConnection, MemoryTransport};
pub use self::rumqttc::{OwnedEvent, RumqttcClient, RumqttcConnection, RumqttcTransport};
pub use embedded_svc::mqtt::client::asynch::{
    Client, Connection, Details, ErrorType, Event, EventPayload, MessageId, Publish, QoS,
};

/// Manual acknowledgement of an inbound message.
///
/// A departure from embedded-svc, whose client acknowledges a QoS 1 message as soon as it
/// arrives. Here the broker keeps a received QoS 1/2 message (and redelivers it in the next
/// session of a persistent client) until [`ack`](Acknowledge::ack) is called with the id of its
/// `Received` event, which the caller does only once the message is durably committed.
// `async fn` in a public trait, as embedded-svc does: callers that need `Send` futures name the
// concrete implementation (whose futures are `Send`) rather than the trait.
#[allow(async_fn_in_trait)]
pub trait Acknowledge: ErrorType {
    /// Acknowledge the received message `id` (the id of its `Received` event).
    ///
    /// QoS 0 messages have nothing to acknowledge; their ids, ids already acknowledged and ids
    /// of other sessions are errors.
    async fn ack(&mut self, id: MessageId) -> Result<(), Self::Error>;
}

/// A factory of MQTT sessions: every [`connect`](Transport::connect) is a new connection.
///
/// A departure from embedded-svc, whose client is created once and reconnects by itself. See the
/// [module documentation](self) for why each session starts from nothing.
#[allow(async_fn_in_trait)]
pub trait Transport {
    /// The publishing/subscribing half of a session.
    type Client: Client + Publish + Acknowledge;
    /// The event half of a session; it must be polled for the session to make progress.
    type Connection: Connection;
    /// Why a session could not be opened.
    type Error: core::fmt::Debug + core::fmt::Display;

    /// Open a new session: connect, wait for the broker's CONNACK, and return the two halves.
    ///
    /// The connection's first event is `Connected(session_present)`. When the link dies it
    /// yields `Disconnected` once and then only errors; call `connect` again for a new session.
    async fn connect(&mut self) -> Result<(Self::Client, Self::Connection), Self::Error>;
}
