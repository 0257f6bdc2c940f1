//! Opening an MQTT 5 session: rumqttc's `v5` options from our configuration, and the connect,
//! telling a broker that does not speak MQTT 5 from one that cannot be reached.

use std::io::ErrorKind;

use ::rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, LastWill, Packet};
use ::rumqttc::v5::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, StateError};
use ::rumqttc::{NetworkOptions, TlsConfiguration};

use super::sender::to_v5;
use super::{Connected, V5Failure, tls};
use crate::mqtt::{MqttConfig, Scheme, TransportError};

/// Session Expiry Interval meaning "never" (MQTT 5, 3.1.2.11.2).
const NEVER_EXPIRES: u32 = u32::MAX;

/// Fresh rumqttc options for one session.
fn options(config: &MqttConfig) -> Result<MqttOptions, TransportError> {
    let mut options = MqttOptions::new(&config.client_id, &config.broker.host, config.broker.port);
    // The incoming limit goes to the broker as our Maximum Packet Size: it must not send us
    // anything larger (MQTT 5, 3.1.2.11.4), so no message can end the session by its size.
    let max_incoming = config
        .max_incoming_packet_bytes
        .max(config.max_packet_bytes);
    let session_expiry = match (config.clean_session, config.session_expiry) {
        (true, _) => None,
        (false, None) => Some(NEVER_EXPIRES),
        (false, Some(expiry)) => Some(u32::try_from(expiry.as_secs()).unwrap_or(NEVER_EXPIRES)),
    };
    options
        .set_keep_alive(config.keep_alive)
        .set_clean_start(config.clean_session)
        .set_session_expiry_interval(session_expiry)
        .set_max_packet_size(Some(u32::try_from(max_incoming).unwrap_or(u32::MAX)))
        .set_receive_maximum(Some(config.receive_maximum))
        .set_outgoing_inflight_upper_limit(config.inflight)
        .set_request_channel_capacity(config.request_capacity)
        .set_connection_timeout(config.connect_timeout.as_secs().max(1))
        .set_manual_acks(true);
    if let Some(username) = &config.username {
        options.set_credentials(username, config.password.as_deref().unwrap_or(""));
    }
    if let Some(will) = &config.last_will {
        let will = LastWill::new(
            &will.topic,
            will.payload.clone(),
            to_v5(will.qos),
            will.retain,
            None,
        );
        options.set_last_will(will);
    }
    if config.broker.scheme == Scheme::Mqtts {
        let tls = TlsConfiguration::Rustls(tls::client_config(config)?);
        options.set_transport(::rumqttc::Transport::tls_with_config(tls));
    }
    let mut network = NetworkOptions::new();
    network.set_connection_timeout(config.connect_timeout.as_secs().max(1));
    network.set_tcp_nodelay(config.tcp_nodelay);
    options.set_network_options(network);
    Ok(options)
}

/// Connect and wait for the CONNACK.
pub(super) async fn connect(
    config: &MqttConfig,
    broker: &str,
) -> Result<(AsyncClient, EventLoop, Connected), V5Failure> {
    let options = options(config).map_err(V5Failure::Failed)?;
    let (client, mut eventloop) = AsyncClient::new(options, config.request_capacity);
    let timeout = config.connect_timeout;
    let connack = match tokio::time::timeout(timeout, eventloop.poll()).await {
        Err(_) => {
            return Err(V5Failure::Failed(TransportError::Timeout {
                broker: broker.to_owned(),
                after: timeout,
            }));
        }
        Ok(Err(error)) => return Err(classify(broker, config, error)),
        Ok(Ok(Event::Incoming(Packet::ConnAck(ack)))) => ack,
        // No `{:?}` of MQTT 5 packets anywhere: their Debug code is large, and the device binary
        // has a size budget.
        Ok(Ok(_)) => {
            return Err(V5Failure::Failed(TransportError::Protocol(
                "expected CONNACK, got another packet".to_owned(),
            )));
        }
    };
    let broker_max_packet = connack
        .properties
        .and_then(|properties| properties.max_packet_size)
        .and_then(|max| usize::try_from(max).ok());
    let connected = Connected {
        session_present: connack.session_present,
        broker_max_packet,
    };
    Ok((client, eventloop, connected))
}

/// Sort a failed MQTT 5 connect into "try 3.1.1" and "report it".
fn classify(broker: &str, config: &MqttConfig, error: ConnectionError) -> V5Failure {
    let not_spoken = |sticky: bool, reason: String| V5Failure::NotSpoken { reason, sticky };
    let failed = |error: TransportError| V5Failure::Failed(error);
    match error {
        // The broker said it: this protocol version is not spoken here.
        ConnectionError::ConnectionRefused(
            code @ (ConnectReturnCode::UnsupportedProtocolVersion
            | ConnectReturnCode::RefusedProtocolVersion),
        ) => not_spoken(true, format!("CONNACK {code:?}")),
        // It did not understand our CONNECT.
        ConnectionError::ConnectionRefused(
            code @ (ConnectReturnCode::MalformedPacket | ConnectReturnCode::ProtocolError),
        ) => not_spoken(false, format!("CONNACK {code:?}")),
        ConnectionError::ConnectionRefused(
            code @ (ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized),
        ) => failed(TransportError::CredentialsRefused {
            code: format!("{code:?}"),
        }),
        ConnectionError::ConnectionRefused(code) => failed(TransportError::Refused {
            code: format!("{code:?}"),
        }),
        // It answered in something other than MQTT 5 (a 3.1.1 broker's CONNACK with return
        // code 1, "unacceptable protocol version", does not decode as MQTT 5).
        ConnectionError::MqttState(StateError::Deserialization(error)) => {
            not_spoken(true, format!("its CONNACK is not MQTT 5: {error}"))
        }
        ConnectionError::NotConnAck(_) => {
            not_spoken(false, "it answered CONNECT with another packet".to_owned())
        }
        // It hung up on our CONNECT, as many 3.1.1 brokers do.
        ConnectionError::MqttState(StateError::ConnectionAborted) => {
            not_spoken(false, "it closed the connection on CONNECT".to_owned())
        }
        ConnectionError::MqttState(StateError::Io(error)) | ConnectionError::Io(error)
            if matches!(
                error.kind(),
                ErrorKind::UnexpectedEof
                    | ErrorKind::ConnectionReset
                    | ErrorKind::ConnectionAborted
                    | ErrorKind::BrokenPipe
            ) =>
        {
            not_spoken(
                false,
                format!("it closed the connection on CONNECT: {error}"),
            )
        }
        ConnectionError::Io(source) => failed(TransportError::Unreachable {
            broker: broker.to_owned(),
            source,
        }),
        ConnectionError::Tls(error) => failed(TransportError::Tls {
            broker: broker.to_owned(),
            reason: error.to_string(),
        }),
        ConnectionError::Timeout(_) => failed(TransportError::Timeout {
            broker: broker.to_owned(),
            after: config.connect_timeout,
        }),
        ConnectionError::MqttState(error) => failed(TransportError::Protocol(error.to_string())),
        ConnectionError::RequestsDone => failed(TransportError::Closed),
    }
}

/// Why an established MQTT 5 session ended, in words. Written out rather than through
/// `ConnectionError`'s `Display`, whose `NotConnAck` arm would pull the `Debug` code of every
/// MQTT 5 packet into the binary.
pub(super) fn describe(error: &ConnectionError) -> String {
    match error {
        ConnectionError::MqttState(error) => error.to_string(),
        ConnectionError::Timeout(_) => "timed out".to_owned(),
        ConnectionError::Tls(error) => format!("TLS: {error}"),
        ConnectionError::Io(error) => format!("I/O: {error}"),
        ConnectionError::ConnectionRefused(code) => format!("connection refused: {code:?}"),
        ConnectionError::NotConnAck(_) => "expected CONNACK, got another packet".to_owned(),
        ConnectionError::RequestsDone => "the client was dropped".to_owned(),
    }
}
