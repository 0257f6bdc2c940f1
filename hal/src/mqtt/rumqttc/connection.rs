//! The connection half of a rumqttc session: drive the event loop, translate its events.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::client::Shared;
use super::lost;
use super::raw::{Loop, Message, Raw};
use crate::mqtt::{
    Connection, Details, ErrorType, Event, EventPayload, MessageId, QoS, TransportError,
};

/// The event half of a session opened by [`RumqttcTransport`](super::RumqttcTransport).
///
/// [`next`](Connection::next) drives the connection: poll it continuously, or nothing is sent
/// or received. It yields `Connected(session_present)` first, then `Published`, `Subscribed`,
/// `Unsubscribed`, `Received` and `Error` events, and `Disconnected` once when the session ends
/// (its [`cause`](OwnedEvent::cause) says why); after that every `next` is
/// [`TransportError::Closed`]. Do not drop a `next` future halfway (as a losing `select!` branch
/// would): rumqttc's event loop may lose a packet it was writing.
pub struct RumqttcConnection {
    /// `None` once the session has ended.
    eventloop: Option<Loop>,
    shared: Arc<Shared>,
    broker: String,
    /// The `Connected` event not yet yielded.
    connected: Option<bool>,
    /// Events to hand out before polling again: a notice after `Connected` (the fallback to
    /// MQTT 3.1.1), the `Disconnected` after the `Error` that named its cause, the `Published`
    /// after the `Error` of a publish the broker refused.
    queued: VecDeque<OwnedEvent>,
    /// QoS 1/2 publishes awaiting PUBACK/PUBCOMP: packet id to our id.
    publishes: HashMap<u16, MessageId>,
    /// Subscribes and unsubscribes awaiting SUBACK/UNSUBACK: packet id to our id.
    controls: HashMap<u16, MessageId>,
}

impl RumqttcConnection {
    pub(super) fn new(
        eventloop: Loop,
        shared: Arc<Shared>,
        session_present: bool,
        broker: String,
        notice: Option<TransportError>,
    ) -> Self {
        Self {
            eventloop: Some(eventloop),
            shared,
            broker,
            connected: Some(session_present),
            queued: notice
                .map(|notice| OwnedEvent {
                    kind: Kind::Error(notice),
                })
                .into_iter()
                .collect(),
            publishes: HashMap::new(),
            controls: HashMap::new(),
        }
    }

    /// End the session: drop the event loop (closing the socket) and fail pending requests.
    fn finish(&mut self, cause: TransportError) -> OwnedEvent {
        self.shared.close();
        self.eventloop = None;
        self.publishes.clear();
        self.controls.clear();
        OwnedEvent {
            kind: Kind::Disconnected(cause),
        }
    }

    /// Ends the session: an `Error` event with the cause now, `Disconnected` on the next call.
    fn end(&mut self, cause: TransportError) -> OwnedEvent {
        let reason = cause.to_string();
        let disconnected = self.finish(cause);
        self.queued.push_back(disconnected);
        OwnedEvent {
            kind: Kind::Error(TransportError::SessionEnded(reason)),
        }
    }

    /// Turn one rumqttc event into ours, if it is one the caller sees.
    fn translate(&mut self, event: Raw) -> Result<Option<Kind>, TransportError> {
        let desync = || TransportError::Protocol("a request went out that nobody queued".into());
        let kind = match event {
            Raw::OutPublish(pkid) => {
                self.shared.wake();
                let (id, qos) = self
                    .shared
                    .lock()
                    .publishes
                    .pop_front()
                    .ok_or_else(desync)?;
                if qos == QoS::AtMostOnce {
                    return Ok(Some(Kind::Published(id)));
                }
                self.publishes.insert(pkid, id);
                None
            }
            Raw::OutControl(pkid) => {
                self.shared.wake();
                let id = self.shared.lock().controls.pop_front().ok_or_else(desync)?;
                self.controls.insert(pkid, id);
                None
            }
            Raw::OutOther => {
                self.shared.wake();
                None
            }
            Raw::Message(message) => {
                let id = self.shared.next_id();
                if message.qos != QoS::AtMostOnce {
                    self.shared
                        .lock()
                        .unacked
                        .insert(id, (message.pkid, message.qos));
                }
                Some(Kind::Received { id, message })
            }
            Raw::Acked { pkid, refused } => match (self.publishes.remove(&pkid), refused) {
                (Some(id), None) => Some(Kind::Published(id)),
                // The broker answered, so the publish is settled either way: the caller hears
                // why first, then `Published`, as a 3.1.1 broker that drops it silently would.
                (Some(id), Some(reason)) => {
                    self.queued.push_back(OwnedEvent {
                        kind: Kind::Published(id),
                    });
                    Some(Kind::Error(TransportError::PublishRefused { id, reason }))
                }
                (None, _) => None,
            },
            Raw::SubAck { pkid, refused } => self.controls.remove(&pkid).map(|id| {
                if refused {
                    Kind::Error(TransportError::SubscriptionRefused(id))
                } else {
                    Kind::Subscribed(id)
                }
            }),
            Raw::UnsubAck(pkid) => self.controls.remove(&pkid).map(Kind::Unsubscribed),
            Raw::Other => None,
        };
        Ok(kind)
    }
}

impl Drop for RumqttcConnection {
    fn drop(&mut self) {
        self.shared.close();
    }
}

impl fmt::Debug for RumqttcConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RumqttcConnection")
            .field("broker", &self.broker)
            .field("open", &self.eventloop.is_some())
            .field("awaiting_puback", &self.publishes.len())
            .finish_non_exhaustive()
    }
}

impl ErrorType for RumqttcConnection {
    type Error = TransportError;
}

impl Connection for RumqttcConnection {
    type Event<'a>
        = OwnedEvent
    where
        Self: 'a;

    async fn next(&mut self) -> Result<OwnedEvent, TransportError> {
        if let Some(session_present) = self.connected.take() {
            return Ok(OwnedEvent {
                kind: Kind::Connected(session_present),
            });
        }
        if let Some(event) = self.queued.pop_front() {
            return Ok(event);
        }
        loop {
            let eventloop = self.eventloop.as_mut().ok_or(TransportError::Closed)?;
            let event = match eventloop.poll().await {
                Ok(event) => event,
                Err(reason) => {
                    let cause = lost(&self.broker, reason);
                    return Ok(self.end(cause));
                }
            };
            match self.translate(event) {
                Ok(Some(kind)) => return Ok(OwnedEvent { kind }),
                Ok(None) => {}
                Err(cause) => return Ok(self.end(cause)),
            }
        }
    }
}

/// One event of a [`RumqttcConnection`]; it owns its data, so it outlives the next `next()`.
///
/// Read it through [`Event::payload`]; the inherent methods add what embedded-svc's payload
/// lacks (QoS, retain and duplicate flags of a received message, the cause of a disconnect).
#[derive(Debug)]
pub struct OwnedEvent {
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Connected(bool),
    Disconnected(TransportError),
    Published(MessageId),
    Subscribed(MessageId),
    Unsubscribed(MessageId),
    Received { id: MessageId, message: Message },
    Error(TransportError),
}

impl OwnedEvent {
    /// The QoS a received message was delivered with (`None` for other events).
    pub fn qos(&self) -> Option<QoS> {
        match &self.kind {
            Kind::Received { message, .. } => Some(message.qos),
            _ => None,
        }
    }

    /// Whether a received message is a retained one (sent because we subscribed).
    pub fn retain(&self) -> bool {
        matches!(&self.kind, Kind::Received { message, .. } if message.retain)
    }

    /// Whether a received message is a redelivery (DUP flag) of one we may have seen before.
    pub fn duplicate(&self) -> bool {
        matches!(&self.kind, Kind::Received { message, .. } if message.dup)
    }

    /// How long a received message has left before it expires, if its publisher set an MQTT 5
    /// Message Expiry Interval (the broker already discarded it if it had expired).
    pub fn message_expiry(&self) -> Option<Duration> {
        match &self.kind {
            Kind::Received { message, .. } => message.expiry.map(|s| Duration::from_secs(s.into())),
            _ => None,
        }
    }

    /// Why the session ended (`Disconnected`) or what went wrong (`Error`).
    pub fn cause(&self) -> Option<&TransportError> {
        match &self.kind {
            Kind::Disconnected(cause) | Kind::Error(cause) => Some(cause),
            _ => None,
        }
    }
}

impl ErrorType for OwnedEvent {
    type Error = TransportError;
}

impl Event for OwnedEvent {
    fn payload(&self) -> EventPayload<'_, TransportError> {
        match &self.kind {
            Kind::Connected(session_present) => EventPayload::Connected(*session_present),
            Kind::Disconnected(_) => EventPayload::Disconnected,
            Kind::Published(id) => EventPayload::Published(*id),
            Kind::Subscribed(id) => EventPayload::Subscribed(*id),
            Kind::Unsubscribed(id) => EventPayload::Unsubscribed(*id),
            Kind::Received { id, message } => EventPayload::Received {
                id: *id,
                topic: message.topic.as_deref(),
                data: &message.payload,
                details: Details::Complete,
            },
            Kind::Error(error) => EventPayload::Error(error),
        }
    }
}

impl fmt::Display for OwnedEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.payload(), f)
    }
}
