//! [`Transport`] over rumqttc 0.25: one client + event loop pair per session, speaking MQTT 5
//! (rumqttc's `v5` client) or MQTT 3.1.1, with the same semantics either way.

mod client;
mod connection;
mod raw;
mod sender;
mod tls;
mod v4;
mod v5;

use std::sync::Arc;
use std::sync::atomic::AtomicU32;

pub use self::client::RumqttcClient;
pub use self::connection::{OwnedEvent, RumqttcConnection};
use self::raw::Loop;
use self::sender::Sender;
use super::{MqttConfig, Protocol, QoS, Scheme, Transport, TransportError};

/// Opens MQTT sessions with rumqttc, each with its own client and event loop.
///
/// Manual acknowledgements are always on; ids continue across the sessions of one transport.
///
/// # Protocol
/// With [`Protocol::V5`] (the default) every session starts as MQTT 5, announcing
/// [`max_incoming_packet_bytes`](MqttConfig::max_incoming_packet_bytes) as its Maximum Packet
/// Size so the broker never sends what would end the session. If the broker does not take an
/// MQTT 5 CONNECT (it refuses the protocol version, answers with something that is not an MQTT 5
/// CONNACK, or closes the link), the same connect is retried at once as MQTT 3.1.1 and the
/// session's connection yields [`TransportError::FellBackToV311`] as an `Error` event right after
/// `Connected`. An explicit refusal of the protocol version is remembered for the transport's
/// life; a closed link is not (the next connect tries MQTT 5 again), so a broker restarting
/// mid-handshake does not downgrade a device for good.
#[derive(Debug)]
pub struct RumqttcTransport {
    config: MqttConfig,
    next_id: Arc<AtomicU32>,
    /// The broker refused MQTT 5 explicitly: speak 3.1.1 from now on.
    v5_refused: Option<String>,
}

/// How an MQTT 5 connect failed.
pub(super) enum V5Failure {
    /// The broker does not seem to speak MQTT 5: try 3.1.1. `sticky` if it said so explicitly.
    NotSpoken { reason: String, sticky: bool },
    /// Any other failure (unreachable, credentials, TLS, timeout): report it.
    Failed(TransportError),
}

impl RumqttcTransport {
    /// Check the configuration and the TLS files now, so mistakes show at start-up. The TLS
    /// files are read again at every connect, so renewed certificates take effect.
    pub fn new(config: MqttConfig) -> Result<Self, TransportError> {
        config.validate()?;
        if config.broker.scheme == Scheme::Mqtts {
            tls::client_config(&config)?;
        }
        Ok(Self {
            config,
            next_id: Arc::new(AtomicU32::new(1)),
            v5_refused: None,
        })
    }

    /// The configuration sessions are opened with.
    pub fn config(&self) -> &MqttConfig {
        &self.config
    }

    /// The protocol the next session will try first: the configured one, or 3.1.1 once the
    /// broker refused MQTT 5.
    pub fn protocol(&self) -> Protocol {
        match (self.config.protocol, &self.v5_refused) {
            (Protocol::V5, None) => Protocol::V5,
            _ => Protocol::V311,
        }
    }

    /// `host:port`, for messages.
    fn broker(&self) -> String {
        let broker = &self.config.broker;
        format!("{}:{}", broker.host, broker.port)
    }

    /// Wire the two halves of a connected session to their shared state.
    fn session(
        &self,
        sender: Sender,
        eventloop: Loop,
        connected: Connected,
        notice: Option<TransportError>,
    ) -> (RumqttcClient, RumqttcConnection) {
        let shared = Arc::new(client::Shared::new(Arc::clone(&self.next_id)));
        let connection = RumqttcConnection::new(
            eventloop,
            Arc::clone(&shared),
            connected.session_present,
            self.broker(),
            notice,
        );
        let max_packet = match connected.broker_max_packet {
            Some(max) => self.config.max_packet_bytes.min(max),
            None => self.config.max_packet_bytes,
        };
        (RumqttcClient::new(sender, shared, max_packet), connection)
    }
}

/// What the CONNACK said.
pub(super) struct Connected {
    /// The broker resumed our session.
    pub session_present: bool,
    /// The broker's Maximum Packet Size (MQTT 5), if it set one.
    pub broker_max_packet: Option<usize>,
}

impl Transport for RumqttcTransport {
    type Client = RumqttcClient;
    type Connection = RumqttcConnection;
    type Error = TransportError;

    async fn connect(&mut self) -> Result<(RumqttcClient, RumqttcConnection), TransportError> {
        let mut refused = None;
        if self.protocol() == Protocol::V5 {
            match v5::connect(&self.config, &self.broker()).await {
                Ok((sender, eventloop, connected)) => {
                    let eventloop = Loop::V5(Box::new(eventloop));
                    return Ok(self.session(Sender::V5(sender), eventloop, connected, None));
                }
                Err(V5Failure::Failed(error)) => return Err(error),
                Err(V5Failure::NotSpoken { reason, sticky }) => {
                    if sticky {
                        self.v5_refused = Some(reason.clone());
                    }
                    refused = Some(reason);
                }
            }
        }
        // One 3.1.1 path, configured or as the fallback.
        let (sender, eventloop, connected) = v4::connect(&self.config, &self.broker()).await?;
        let notice = refused.map(|reason| {
            TransportError::FellBackToV311(format!(
                "the broker at {} refused MQTT 5 ({reason}); this session speaks MQTT 3.1.1, where \
                 a message over max_incoming_packet_bytes ({} bytes) ends the session",
                self.broker(),
                self.config.max_incoming_packet_bytes
            ))
        });
        let eventloop = Loop::V4(Box::new(eventloop));
        Ok(self.session(Sender::V4(sender), eventloop, connected, notice))
    }
}

/// embedded-svc's QoS to rumqttc's.
fn to_rumqttc(qos: QoS) -> ::rumqttc::QoS {
    match qos {
        QoS::AtMostOnce => ::rumqttc::QoS::AtMostOnce,
        QoS::AtLeastOnce => ::rumqttc::QoS::AtLeastOnce,
        QoS::ExactlyOnce => ::rumqttc::QoS::ExactlyOnce,
    }
}

/// rumqttc's QoS to embedded-svc's.
fn from_rumqttc(qos: ::rumqttc::QoS) -> QoS {
    match qos {
        ::rumqttc::QoS::AtMostOnce => QoS::AtMostOnce,
        ::rumqttc::QoS::AtLeastOnce => QoS::AtLeastOnce,
        ::rumqttc::QoS::ExactlyOnce => QoS::ExactlyOnce,
    }
}

/// Describe why an established connection ended.
fn lost(broker: &str, reason: String) -> TransportError {
    TransportError::ConnectionLost {
        broker: broker.to_owned(),
        reason,
    }
}
