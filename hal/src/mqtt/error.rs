//! Everything that can go wrong opening or using an MQTT session, worded for the person reading
//! the agent's log.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use super::MessageId;

/// Why a session could not be opened, or why an operation on it failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The broker URL does not parse.
    #[error("invalid broker URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The configuration is inconsistent (see [`MqttConfig::validate`](super::MqttConfig::validate)).
    #[error("invalid MQTT configuration: {0}")]
    InvalidConfig(String),
    /// A CA, certificate or key file cannot be read or holds nothing usable.
    #[error("TLS file {}: {reason}", path.display())]
    TlsFile {
        /// The file.
        path: PathBuf,
        /// Why it is unusable.
        reason: String,
    },
    /// The TLS setup or handshake failed (untrusted or mismatched certificate, protocol error).
    #[error("TLS with the broker at {broker} failed: {reason}")]
    Tls {
        /// `host:port`.
        broker: String,
        /// What failed.
        reason: String,
    },
    /// The broker cannot be reached (refused, unreachable, name not found, connection reset).
    #[error("cannot reach the broker at {broker}: {source}")]
    Unreachable {
        /// `host:port`.
        broker: String,
        /// The I/O error.
        source: io::Error,
    },
    /// No CONNACK within the connect timeout.
    #[error("no answer from the broker at {broker} within {after:?}")]
    Timeout {
        /// `host:port`.
        broker: String,
        /// The timeout that passed.
        after: Duration,
    },
    /// The broker refused our user name and password or client certificate.
    #[error("broker refused the credentials ({code})")]
    CredentialsRefused {
        /// The CONNACK return code (`BadUserNamePassword` or `NotAuthorized`).
        code: String,
    },
    /// The broker refused the connection for another reason.
    #[error("broker refused the connection ({code})")]
    Refused {
        /// The CONNACK return code (`RefusedProtocolVersion`, `BadClientId`, ...).
        code: String,
    },
    /// The broker or the client broke the protocol (unexpected or unsolicited packet, oversize
    /// packet, missed ping response).
    #[error("MQTT protocol error: {0}")]
    Protocol(String),
    /// An established connection was lost; the cause of a `Disconnected` event.
    #[error("connection to the broker at {broker} lost: {reason}")]
    ConnectionLost {
        /// `host:port`.
        broker: String,
        /// What ended it.
        reason: String,
    },
    /// Reported as an `Error` event just before `Disconnected`, so a caller that only sees
    /// embedded-svc's payloads (which carry no cause) can still log why the session ended.
    #[error("session ended: {0}")]
    SessionEnded(String),
    /// The session has ended: publish on a new one.
    #[error("the MQTT session is closed")]
    Closed,
    /// A topic or topic filter that MQTT does not allow.
    #[error("invalid MQTT topic {0:?}")]
    InvalidTopic(String),
    /// A publish larger than [`max_packet_bytes`](super::MqttConfig::max_packet_bytes); refused
    /// before it reaches rumqttc, which would end the session over it.
    #[error("MQTT packet of {size} bytes exceeds the limit of {max} bytes")]
    PacketTooLarge {
        /// Size of the PUBLISH packet (header, topic and payload).
        size: usize,
        /// The configured limit.
        max: usize,
    },
    /// `ack` of an id that is not a received QoS 1/2 message awaiting its acknowledgement.
    #[error("message {0} is not awaiting an acknowledgement in this session")]
    NotAwaitingAck(MessageId),
    /// The broker refused a subscription (SUBACK failure code).
    #[error("broker refused subscription {0}")]
    SubscriptionRefused(MessageId),
    /// The broker answered a publish with a failure reason code (MQTT 5 only; a 3.1.1 broker
    /// drops such a message silently). Reported as an `Error` event just before the publish's
    /// `Published` event: the broker will not take it on a resend either.
    #[error("broker refused publish {id}: {reason}")]
    PublishRefused {
        /// The id `publish` returned.
        id: MessageId,
        /// The reason code.
        reason: String,
    },
    /// The broker did not take an MQTT 5 CONNECT, so this session speaks MQTT 3.1.1. Reported
    /// as an `Error` event right after `Connected`, so the caller can say so. One sentence
    /// (`the broker at HOST:PORT refused MQTT 5 (HOW); ...`), so even its `Debug` form, all a
    /// caller generic over embedded-svc's events can print, reads well.
    #[error("{0}")]
    FellBackToV311(String),
}
