//! The request side of one session, over either of rumqttc's clients (MQTT 3.1.1 or MQTT 5).
//!
//! Both clients are only a channel sender to their event loop; this enum gives them one set of
//! non-blocking calls, so the id bookkeeping in [`client`](super::client) is written once.

use ::rumqttc::v5::mqttbytes::QoS as QoS5;
use ::rumqttc::{ClientError, Request};

use super::to_rumqttc;
use crate::mqtt::{Protocol, QoS};

/// The requests channel of one session.
#[derive(Debug)]
pub(super) enum Sender {
    /// MQTT 3.1.1.
    V4(::rumqttc::AsyncClient),
    /// MQTT 5.
    V5(::rumqttc::v5::AsyncClient),
}

impl Sender {
    /// The protocol this session speaks.
    pub fn protocol(&self) -> Protocol {
        match self {
            Sender::V4(_) => Protocol::V311,
            Sender::V5(_) => Protocol::V5,
        }
    }

    /// Queue a publish. When the channel is full, the payload comes back to try again.
    pub fn try_publish(
        &self,
        topic: &str,
        qos: QoS,
        retain: bool,
        payload: Vec<u8>,
    ) -> Result<(), Option<Vec<u8>>> {
        match self {
            Sender::V4(client) => match client.try_publish(topic, to_rumqttc(qos), retain, payload)
            {
                Ok(()) => Ok(()),
                Err(ClientError::TryRequest(Request::Publish(publish))) => {
                    Err(Some(publish.payload.into()))
                }
                Err(_) => Err(None),
            },
            Sender::V5(client) => match client.try_publish(topic, to_v5(qos), retain, payload) {
                Ok(()) => Ok(()),
                Err(::rumqttc::v5::ClientError::TryRequest(::rumqttc::v5::Request::Publish(
                    publish,
                ))) => Err(Some(publish.payload.into())),
                Err(_) => Err(None),
            },
        }
    }

    /// Queue a subscription; `false` if the channel is full.
    pub fn try_subscribe(&self, filter: &str, qos: QoS) -> bool {
        match self {
            Sender::V4(client) => client.try_subscribe(filter, to_rumqttc(qos)).is_ok(),
            Sender::V5(client) => client.try_subscribe(filter, to_v5(qos)).is_ok(),
        }
    }

    /// Queue an unsubscription; `false` if the channel is full.
    pub fn try_unsubscribe(&self, filter: &str) -> bool {
        match self {
            Sender::V4(client) => client.try_unsubscribe(filter).is_ok(),
            Sender::V5(client) => client.try_unsubscribe(filter).is_ok(),
        }
    }

    /// Queue the PUBACK (QoS 1) or PUBREC (QoS 2) of received packet `pkid`; `false` if the
    /// channel is full. Both clients build the ack from the packet id and QoS alone.
    pub fn try_ack(&self, pkid: u16, qos: QoS) -> bool {
        match self {
            Sender::V4(client) => {
                let mut received = ::rumqttc::Publish::new("", to_rumqttc(qos), Vec::new());
                received.pkid = pkid;
                client.try_ack(&received).is_ok()
            }
            Sender::V5(client) => {
                let mut received =
                    ::rumqttc::v5::mqttbytes::v5::Publish::new("", to_v5(qos), Vec::new(), None);
                received.pkid = pkid;
                client.try_ack(&received).is_ok()
            }
        }
    }

    /// Queue a DISCONNECT; `false` if the channel is full.
    pub fn try_disconnect(&self) -> bool {
        match self {
            Sender::V4(client) => client.try_disconnect().is_ok(),
            Sender::V5(client) => client.try_disconnect().is_ok(),
        }
    }
}

/// Size on the wire of a PUBLISH of `payload` bytes to `topic`, with no properties.
///
/// MQTT 5 adds one byte (the empty property length) to a 3.1.1 packet.
pub(super) fn publish_size(protocol: Protocol, topic: &str, qos: QoS, payload: usize) -> usize {
    let pkid = if qos == QoS::AtMostOnce { 0 } else { 2 };
    let properties = match protocol {
        Protocol::V311 => 0,
        Protocol::V5 => 1,
    };
    let remaining = 2 + topic.len() + pkid + properties + payload;
    // The remaining length is a variable-length integer of 7 bits per byte.
    let length_bytes = match remaining {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    };
    1 + length_bytes + remaining
}

/// embedded-svc's QoS to rumqttc v5's.
pub(super) fn to_v5(qos: QoS) -> QoS5 {
    match qos {
        QoS::AtMostOnce => QoS5::AtMostOnce,
        QoS::AtLeastOnce => QoS5::AtLeastOnce,
        QoS::ExactlyOnce => QoS5::ExactlyOnce,
    }
}

/// rumqttc v5's QoS to embedded-svc's.
pub(super) fn from_v5(qos: QoS5) -> QoS {
    match qos {
        QoS5::AtMostOnce => QoS::AtMostOnce,
        QoS5::AtLeastOnce => QoS::AtLeastOnce,
        QoS5::ExactlyOnce => QoS::ExactlyOnce,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_sizes_match_rumqttc() {
        for payload in [0, 1, 100, 200, 16_000, 20_000, 2_100_000] {
            for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
                let body = vec![0u8; payload];
                let mut v4 = ::rumqttc::Publish::new("a/b", to_rumqttc(qos), body.clone());
                v4.pkid = u16::from(qos != QoS::AtMostOnce);
                let mut v5 =
                    ::rumqttc::v5::mqttbytes::v5::Publish::new("a/b", to_v5(qos), body, None);
                v5.pkid = v4.pkid;
                assert_eq!(publish_size(Protocol::V311, "a/b", qos, payload), v4.size());
                assert_eq!(publish_size(Protocol::V5, "a/b", qos, payload), v5.size());
            }
        }
    }
}
