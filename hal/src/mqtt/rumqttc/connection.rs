//! The connection half of a rumqttc session: drive the event loop, translate its events.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use ::rumqttc::{Event as RawEvent, EventLoop, Outgoing, Packet, SubscribeReasonCode};

use super::client::Shared;
use super::{from_rumqttc, lost};
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
    eventloop: Option<EventLoop>,
    shared: Arc<Shared>,
    broker: String,
    /// The `Connected` event not yet yielded.
    connected: Option<bool>,
    /// The `Disconnected` event to hand out after the `Error` event that named its cause.
    ending: Option<OwnedEvent>,
    /// QoS 1/2 publishes awaiting PUBACK/PUBCOMP: packet id to our id.
    publishes: HashMap<u16, MessageId>,
    /// Subscribes and unsubscribes awaiting SUBACK/UNSUBACK: packet id to our id.
    controls: HashMap<u16, MessageId>,
}

impl RumqttcConnection {
    pub(super) fn new(
        eventloop: EventLoop,
        shared: Arc<Shared>,
        session_present: bool,
        broker: String,
    ) -> Self {
        Self {
            eventloop: Some(eventloop),
            shared,
            broker,
            connected: Some(session_present),
            ending: None,
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
        self.ending = Some(self.finish(cause));
        OwnedEvent {
            kind: Kind::Error(TransportError::SessionEnded(reason)),
        }
    }

    /// Turn one rumqttc event into ours, if it is one the caller sees.
    fn translate(&mut self, event: RawEvent) -> Result<Option<Kind>, TransportError> {
        let desync = || TransportError::Protocol("a request went out that nobody queued".into());
        let kind = match event {
            RawEvent::Outgoing(outgoing) => {
                self.shared.wake();
                match outgoing {
                    Outgoing::Publish(pkid) => {
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
                    }
                    Outgoing::Subscribe(pkid) | Outgoing::Unsubscribe(pkid) => {
                        let id = self.shared.lock().controls.pop_front().ok_or_else(desync)?;
                        self.controls.insert(pkid, id);
                    }
                    // `AwaitAck` (packet id collision): the publish goes out, as
                    // `Outgoing::Publish`, once the colliding one is acknowledged.
                    _ => {}
                }
                None
            }
            RawEvent::Incoming(Packet::Publish(publish)) => {
                let id = self.shared.next_id();
                if publish.qos != ::rumqttc::QoS::AtMostOnce {
                    self.shared
                        .lock()
                        .unacked
                        .insert(id, (publish.pkid, publish.qos));
                }
                Some(Kind::Received { id, publish })
            }
            RawEvent::Incoming(Packet::PubAck(ack)) => {
                self.publishes.remove(&ack.pkid).map(Kind::Published)
            }
            RawEvent::Incoming(Packet::PubComp(comp)) => {
                self.publishes.remove(&comp.pkid).map(Kind::Published)
            }
            RawEvent::Incoming(Packet::SubAck(ack)) => self.controls.remove(&ack.pkid).map(|id| {
                if ack.return_codes.contains(&SubscribeReasonCode::Failure) {
                    Kind::Error(TransportError::SubscriptionRefused(id))
                } else {
                    Kind::Subscribed(id)
                }
            }),
            RawEvent::Incoming(Packet::UnsubAck(ack)) => {
                self.controls.remove(&ack.pkid).map(Kind::Unsubscribed)
            }
            RawEvent::Incoming(_) => None,
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
        if let Some(event) = self.ending.take() {
            return Ok(event);
        }
        loop {
            let eventloop = self.eventloop.as_mut().ok_or(TransportError::Closed)?;
            let event = match eventloop.poll().await {
                Ok(event) => event,
                Err(error) => {
                    let cause = lost(&self.broker, &error);
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
    Received {
        id: MessageId,
        publish: ::rumqttc::Publish,
    },
    Error(TransportError),
}

impl OwnedEvent {
    /// The QoS a received message was delivered with (`None` for other events).
    pub fn qos(&self) -> Option<QoS> {
        match &self.kind {
            Kind::Received { publish, .. } => Some(from_rumqttc(publish.qos)),
            _ => None,
        }
    }

    /// Whether a received message is a retained one (sent because we subscribed).
    pub fn retain(&self) -> bool {
        matches!(&self.kind, Kind::Received { publish, .. } if publish.retain)
    }

    /// Whether a received message is a redelivery (DUP flag) of one we may have seen before.
    pub fn duplicate(&self) -> bool {
        matches!(&self.kind, Kind::Received { publish, .. } if publish.dup)
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
            Kind::Received { id, publish } => EventPayload::Received {
                id: *id,
                topic: Some(&publish.topic),
                data: &publish.payload,
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
