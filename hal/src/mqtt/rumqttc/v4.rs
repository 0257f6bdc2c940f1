//! Opening an MQTT 3.1.1 session: rumqttc's options from our configuration, and the connect.

use ::rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, MqttOptions, NetworkOptions,
    Packet, TlsConfiguration,
};

use super::{Connected, tls, to_rumqttc};
use crate::mqtt::{MqttConfig, Scheme, TransportError};

/// Fresh rumqttc options for one session.
fn options(config: &MqttConfig) -> Result<MqttOptions, TransportError> {
    let mut options = MqttOptions::new(&config.client_id, &config.broker.host, config.broker.port);
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
        let will = ::rumqttc::LastWill::new(&will.topic, will.payload.clone(), qos, will.retain);
        options.set_last_will(will);
    }
    if config.broker.scheme == Scheme::Mqtts {
        let tls = TlsConfiguration::Rustls(tls::client_config(config)?);
        options.set_transport(::rumqttc::Transport::tls_with_config(tls));
    }
    Ok(options)
}

/// Connect and wait for the CONNACK.
pub(super) async fn connect(
    config: &MqttConfig,
    broker: &str,
) -> Result<(AsyncClient, EventLoop, Connected), TransportError> {
    let (client, mut eventloop) = AsyncClient::new(options(config)?, config.request_capacity);
    let timeout = config.connect_timeout;
    let mut network = NetworkOptions::new();
    network.set_connection_timeout(timeout.as_secs().max(1));
    network.set_tcp_nodelay(config.tcp_nodelay);
    eventloop.set_network_options(network);
    let session_present = match tokio::time::timeout(timeout, eventloop.poll()).await {
        Err(_) => {
            return Err(TransportError::Timeout {
                broker: broker.to_owned(),
                after: timeout,
            });
        }
        Ok(Err(error)) => return Err(connect_error(broker, config, error)),
        Ok(Ok(Event::Incoming(Packet::ConnAck(ack)))) => ack.session_present,
        Ok(Ok(other)) => {
            return Err(TransportError::Protocol(format!(
                "expected CONNACK, got {other:?}"
            )));
        }
    };
    let connected = Connected {
        session_present,
        broker_max_packet: None,
    };
    Ok((client, eventloop, connected))
}

/// Translate a failure of the first poll (connect + CONNACK).
fn connect_error(broker: &str, config: &MqttConfig, error: ConnectionError) -> TransportError {
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
            broker: broker.to_owned(),
            reason: error.to_string(),
        },
        ConnectionError::Io(source) => TransportError::Unreachable {
            broker: broker.to_owned(),
            source,
        },
        ConnectionError::NetworkTimeout | ConnectionError::FlushTimeout => {
            TransportError::Timeout {
                broker: broker.to_owned(),
                after: config.connect_timeout,
            }
        }
        other => TransportError::Protocol(other.to_string()),
    }
}
