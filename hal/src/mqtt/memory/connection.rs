//! The connection half of a simulated session, and its events.

use std::fmt;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::state::Shared;
use crate::mqtt::{
    Connection, Details, ErrorType, Event, EventPayload, MessageId, QoS, TransportError,
};

/// The event half of a session opened by [`MemoryTransport`](super::MemoryTransport).
///
/// Like [`RumqttcConnection`](crate::mqtt::RumqttcConnection) it yields `Connected(false)` first,
/// then `Published`, `Subscribed`, `Unsubscribed`, `Received` and `Error` events in the order
/// the broker produced them; when the session ends, an `Error` with
/// [`TransportError::SessionEnded`], then `Disconnected` once, then every `next` is
/// [`TransportError::Closed`]. Unlike rumqttc, nothing needs polling for the session to make
/// progress (the broker acts at once), and `next` may be cancelled freely.
///
/// Dropping it ends the session, as dropping rumqttc's event loop closes the socket.
pub struct MemoryConnection {
    shared: Arc<Shared>,
    /// The session this half belongs to.
    session: u32,
    /// Events queued by the broker; closed when the session has ended and they are all read.
    events: mpsc::UnboundedReceiver<Kind>,
}

impl MemoryConnection {
    pub(super) fn new(
        shared: Arc<Shared>,
        session: u32,
        events: mpsc::UnboundedReceiver<Kind>,
    ) -> Self {
        Self {
            shared,
            session,
            events,
        }
    }

    /// The number of the session this connection belongs to (1 for the broker's first).
    pub fn session(&self) -> u32 {
        self.session
    }
}

impl Drop for MemoryConnection {
    fn drop(&mut self) {
        let session = self.session;
        self.shared
            .update(|state| state.end(session, "the connection was dropped"));
    }
}

impl fmt::Debug for MemoryConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryConnection")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl ErrorType for MemoryConnection {
    type Error = TransportError;
}

impl Connection for MemoryConnection {
    type Event<'a>
        = MemoryEvent
    where
        Self: 'a;

    async fn next(&mut self) -> Result<MemoryEvent, TransportError> {
        match self.events.recv().await {
            Some(kind) => Ok(MemoryEvent { kind }),
            None => Err(TransportError::Closed),
        }
    }
}

/// One event of a [`MemoryConnection`]; it owns its data, so it outlives the next `next()`.
///
/// Read it through [`Event::payload`]; the inherent methods are those of
/// [`OwnedEvent`](crate::mqtt::OwnedEvent), so code written against one reads the other.
#[derive(Debug)]
pub struct MemoryEvent {
    kind: Kind,
}

/// What the broker tells a session.
#[derive(Debug)]
pub(super) enum Kind {
    Connected(bool),
    Disconnected(TransportError),
    Published(MessageId),
    Subscribed(MessageId),
    Unsubscribed(MessageId),
    Received {
        id: MessageId,
        topic: String,
        payload: Vec<u8>,
        qos: QoS,
        retain: bool,
        duplicate: bool,
    },
    Error(TransportError),
}

impl MemoryEvent {
    /// The QoS a received message was delivered with (`None` for other events).
    pub fn qos(&self) -> Option<QoS> {
        match &self.kind {
            Kind::Received { qos, .. } => Some(*qos),
            _ => None,
        }
    }

    /// Whether a received message is a retained one (sent because we subscribed).
    pub fn retain(&self) -> bool {
        matches!(&self.kind, Kind::Received { retain: true, .. })
    }

    /// Whether a received message is flagged as a redelivery (DUP).
    pub fn duplicate(&self) -> bool {
        matches!(
            &self.kind,
            Kind::Received {
                duplicate: true,
                ..
            }
        )
    }

    /// Why the session ended (`Disconnected`) or what went wrong (`Error`).
    pub fn cause(&self) -> Option<&TransportError> {
        match &self.kind {
            Kind::Disconnected(cause) | Kind::Error(cause) => Some(cause),
            _ => None,
        }
    }
}

impl ErrorType for MemoryEvent {
    type Error = TransportError;
}

impl Event for MemoryEvent {
    fn payload(&self) -> EventPayload<'_, TransportError> {
        match &self.kind {
            Kind::Connected(session_present) => EventPayload::Connected(*session_present),
            Kind::Disconnected(_) => EventPayload::Disconnected,
            Kind::Published(id) => EventPayload::Published(*id),
            Kind::Subscribed(id) => EventPayload::Subscribed(*id),
            Kind::Unsubscribed(id) => EventPayload::Unsubscribed(*id),
            Kind::Received {
                id, topic, payload, ..
            } => EventPayload::Received {
                id: *id,
                topic: Some(topic),
                data: payload,
                details: Details::Complete,
            },
            Kind::Error(error) => EventPayload::Error(error),
        }
    }
}

impl fmt::Display for MemoryEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.payload(), f)
    }
}
