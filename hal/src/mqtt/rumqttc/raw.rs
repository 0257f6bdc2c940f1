//! One event loop of either protocol, and its events reduced to what the
//! [connection half](super::RumqttcConnection) acts on, so that translation is written once.

use bytes::Bytes;

use super::from_rumqttc;
use super::sender::from_v5;
use crate::mqtt::QoS;

/// The event loop of one session (boxed: each is most of a kilobyte, and moves with the
/// connection half).
pub(super) enum Loop {
    /// MQTT 3.1.1.
    V4(Box<::rumqttc::EventLoop>),
    /// MQTT 5.
    V5(Box<::rumqttc::v5::EventLoop>),
}

/// A received PUBLISH, whichever protocol carried it.
#[derive(Debug)]
pub(super) struct Message {
    /// `None` if the topic is not UTF-8 (possible on the MQTT 5 decoder's side only): such a
    /// message is handed on all the same, so the caller can refuse and acknowledge it.
    pub topic: Option<String>,
    /// The payload, shared with rumqttc's read buffer (no copy).
    pub payload: Bytes,
    /// Delivery QoS.
    pub qos: QoS,
    /// Retained message, sent because we subscribed.
    pub retain: bool,
    /// Redelivery flag.
    pub dup: bool,
    /// Packet id, for the acknowledgement.
    pub pkid: u16,
    /// MQTT 5 Message Expiry Interval left, in seconds, if the publisher set one.
    pub expiry: Option<u32>,
}

/// What the connection half acts on.
pub(super) enum Raw {
    /// A PUBLISH went out with this packet id (0 for QoS 0).
    OutPublish(u16),
    /// A SUBSCRIBE or UNSUBSCRIBE went out with this packet id.
    OutControl(u16),
    /// Some other request left the channel (an ack, a ping, a DISCONNECT).
    OutOther,
    /// A message arrived.
    Message(Message),
    /// PUBACK or PUBCOMP of our publish; `refused` names a failure reason code (MQTT 5).
    Acked { pkid: u16, refused: Option<String> },
    /// SUBACK; `refused` if any filter was refused.
    SubAck { pkid: u16, refused: bool },
    /// UNSUBACK.
    UnsubAck(u16),
    /// Nothing the caller sees (PINGRESP, PUBREC, ...).
    Other,
}

impl Loop {
    /// Drive the loop to its next event. The error, worded, ends the session.
    pub async fn poll(&mut self) -> Result<Raw, String> {
        match self {
            Loop::V4(eventloop) => eventloop
                .poll()
                .await
                .map(from_v4_event)
                .map_err(|e| e.to_string()),
            Loop::V5(eventloop) => eventloop
                .poll()
                .await
                .map(from_v5_event)
                .map_err(|e| super::v5::describe(&e)),
        }
    }
}

/// Outgoing events are common to both protocols.
fn outgoing(outgoing: ::rumqttc::Outgoing) -> Raw {
    match outgoing {
        ::rumqttc::Outgoing::Publish(pkid) => Raw::OutPublish(pkid),
        ::rumqttc::Outgoing::Subscribe(pkid) | ::rumqttc::Outgoing::Unsubscribe(pkid) => {
            Raw::OutControl(pkid)
        }
        // `AwaitAck` (packet id collision): the publish goes out, as `Outgoing::Publish`, once
        // the colliding one is acknowledged.
        _ => Raw::OutOther,
    }
}

fn from_v4_event(event: ::rumqttc::Event) -> Raw {
    use ::rumqttc::{Event, Packet, SubscribeReasonCode};
    match event {
        Event::Outgoing(out) => outgoing(out),
        Event::Incoming(Packet::Publish(publish)) => Raw::Message(Message {
            topic: Some(publish.topic),
            payload: publish.payload,
            qos: from_rumqttc(publish.qos),
            retain: publish.retain,
            dup: publish.dup,
            pkid: publish.pkid,
            expiry: None,
        }),
        Event::Incoming(Packet::PubAck(ack)) => Raw::Acked {
            pkid: ack.pkid,
            refused: None,
        },
        Event::Incoming(Packet::PubComp(comp)) => Raw::Acked {
            pkid: comp.pkid,
            refused: None,
        },
        Event::Incoming(Packet::SubAck(ack)) => Raw::SubAck {
            pkid: ack.pkid,
            refused: ack.return_codes.contains(&SubscribeReasonCode::Failure),
        },
        Event::Incoming(Packet::UnsubAck(ack)) => Raw::UnsubAck(ack.pkid),
        Event::Incoming(_) => Raw::Other,
    }
}

fn from_v5_event(event: ::rumqttc::v5::Event) -> Raw {
    use ::rumqttc::v5::Event;
    use ::rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason, PubCompReason, SubscribeReasonCode};
    match event {
        Event::Outgoing(out) => outgoing(out),
        Event::Incoming(Packet::Publish(publish)) => Raw::Message(Message {
            topic: String::from_utf8(publish.topic.to_vec()).ok(),
            payload: publish.payload,
            qos: from_v5(publish.qos),
            retain: publish.retain,
            dup: publish.dup,
            pkid: publish.pkid,
            expiry: publish
                .properties
                .and_then(|properties| properties.message_expiry_interval),
        }),
        Event::Incoming(Packet::PubAck(ack)) => Raw::Acked {
            pkid: ack.pkid,
            refused: match ack.reason {
                PubAckReason::Success | PubAckReason::NoMatchingSubscribers => None,
                other => Some(format!("{other:?}")),
            },
        },
        Event::Incoming(Packet::PubComp(comp)) => Raw::Acked {
            pkid: comp.pkid,
            refused: match comp.reason {
                PubCompReason::Success => None,
                other => Some(format!("{other:?}")),
            },
        },
        Event::Incoming(Packet::SubAck(ack)) => Raw::SubAck {
            pkid: ack.pkid,
            refused: ack
                .return_codes
                .iter()
                .any(|code| !matches!(code, SubscribeReasonCode::Success(_))),
        },
        Event::Incoming(Packet::UnsubAck(ack)) => Raw::UnsubAck(ack.pkid),
        Event::Incoming(_) => Raw::Other,
    }
}
