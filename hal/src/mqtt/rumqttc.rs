//! [`Transport`] over rumqttc 0.25: one `AsyncClient` + `EventLoop` pair per session.

mod client;
mod connection;
mod tls;

use std::sync::Arc;
use std::sync::atomic::AtomicU32;

use ::rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event as RawEvent, EventLoop, MqttOptions,
    NetworkOptions, Packet, TlsConfiguration,
};

pub use self::client::RumqttcClient;
pub use self::connection::{OwnedEvent, RumqttcConnection};
use super::{MqttConfig, QoS, Scheme, Transport, TransportError};

/// Opens MQTT sessions with rumqttc, each with its own client and event loop.
///
/// Manual acknowledgements are always on; ids continue across the sessions of one transport.
#[derive(Debug)]
pub struct RumqttcTransport {
    config: MqttConfig,
    next_id: Arc<AtomicU32>,
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
        })
    }

    /// The configuration sessions are opened with.
    pub fn config(&self) -> &MqttConfig {
        &self.config
    }

    /// `host:port`, for messages.
    fn broker(&self) -> String {
        let broker = &self.config.broker;
        format!("{}:{}", broker.host, broker.port)
    }

    /// Fresh rumqttc options for one session.
    fn options(&self) -> Result<MqttOptions, TransportError> {
        let config = &self.config;
        let mut options =
            MqttOptions::new(&config.client_id, &config.broker.host, config.broker.port);
        options
            .set_keep_alive(config.keep_alive)
            .set_clean_session(config.clean_session)
            .set_max_packet_size(
                config
                    .max_incoming_packet_bytes
                    .max(config.max_packet_bytes),
                config.max_packet_bytes,
            )
            .set_inflight(config.inflight)
            .set_request_channel_capacity(config.request_capacity)
            .set_manual_acks(true);
        if let Some(username) = &config.username {
            options.set_credentials(username, config.password.as_deref().unwrap_or(""));
        }
        if let Some(will) = &config.last_will {
            let qos = to_rumqttc(will.qos);
            let will =
                ::rumqttc::LastWill::new(&will.topic, will.payload.clone(), qos, will.retain);
            options.set_last_will(will);
        }
        if config.broker.scheme == Scheme::Mqtts {
            let tls = TlsConfiguration::Rustls(tls::client_config(config)?);
            options.set_transport(::rumqttc::Transport::tls_with_config(tls));
        }
        Ok(options)
    }

    /// Translate a failure of the first poll (connect + CONNACK).
    fn connect_error(&self, error: ConnectionError) -> TransportError {
        match error {
            ConnectionError::ConnectionRefused(
                code @ (ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized),
            ) => TransportError::CredentialsRefused {
                code: format!("{code:?}"),
            },
            ConnectionError::ConnectionRefused(code) => TransportError::Refused {
                code: format!("{code:?}"),
            },
            ConnectionError::Tls(error) => TransportError::Tls {
                broker: self.broker(),
                reason: error.to_string(),
            },
            ConnectionError::Io(source) => TransportError::Unreachable {
                broker: self.broker(),
                source,
            },
            ConnectionError::NetworkTimeout | ConnectionError::FlushTimeout => {
                TransportError::Timeout {
                    broker: self.broker(),
                    after: self.config.connect_timeout,
                }
            }
            other => TransportError::Protocol(other.to_string()),
        }
    }
}

impl Transport for RumqttcTransport {
    type Client = RumqttcClient;
    type Connection = RumqttcConnection;
    type Error = TransportError;

    async fn connect(&mut self) -> Result<(RumqttcClient, RumqttcConnection), TransportError> {
        let options = self.options()?;
        let (client, mut eventloop) = AsyncClient::new(options, self.config.request_capacity);
        let timeout = self.config.connect_timeout;
        let mut network = NetworkOptions::new();
        network.set_connection_timeout(timeout.as_secs().max(1));
        eventloop.set_network_options(network);
        let session_present = match tokio::time::timeout(timeout, eventloop.poll()).await {
            Err(_) => {
                return Err(TransportError::Timeout {
                    broker: self.broker(),
                    after: timeout,
                });
            }
            Ok(Err(error)) => return Err(self.connect_error(error)),
            Ok(Ok(RawEvent::Incoming(Packet::ConnAck(ack)))) => ack.session_present,
            Ok(Ok(other)) => {
                return Err(TransportError::Protocol(format!(
                    "expected CONNACK, got {other:?}"
                )));
            }
        };
        Ok(self.session(client, eventloop, session_present))
    }
}

impl RumqttcTransport {
    /// Wire the two halves of a connected session to their shared state.
    fn session(
        &self,
        client: AsyncClient,
        eventloop: EventLoop,
        session_present: bool,
    ) -> (RumqttcClient, RumqttcConnection) {
        let shared = Arc::new(client::Shared::new(Arc::clone(&self.next_id)));
        let connection = RumqttcConnection::new(
            eventloop,
            Arc::clone(&shared),
            session_present,
            self.broker(),
        );
        let max_packet = self.config.max_packet_bytes;
        (RumqttcClient::new(client, shared, max_packet), connection)
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
fn lost(broker: &str, error: &ConnectionError) -> TransportError {
    TransportError::ConnectionLost {
        broker: broker.to_owned(),
        reason: error.to_string(),
    }
}
