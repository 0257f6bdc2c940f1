//! What a transport needs to open a session: broker address, identity, TLS files and limits.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::{QoS, TransportError};

/// Plain TCP or TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `mqtt://`: plain TCP, default port 1883.
    Mqtt,
    /// `mqtts://`: TLS, default port 8883.
    Mqtts,
}

/// A broker address parsed from `mqtt://host[:port]` or `mqtts://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    /// Plain or TLS.
    pub scheme: Scheme,
    /// Host name or IP address (IPv6 without brackets); for TLS, the name the certificate must
    /// carry.
    pub host: String,
    /// TCP port (1883 or 8883 unless given).
    pub port: u16,
}

impl FromStr for BrokerUrl {
    type Err = TransportError;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| TransportError::InvalidUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let (scheme, rest) = if let Some(rest) = url.strip_prefix("mqtt://") {
            (Scheme::Mqtt, rest)
        } else if let Some(rest) = url.strip_prefix("mqtts://") {
            (Scheme::Mqtts, rest)
        } else {
            return Err(bad("expected mqtt://host[:port] or mqtts://host[:port]"));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) {
            return Err(bad(
                "only host and port are allowed (no path, query or user)",
            ));
        }
        // `[v6addr]:port`, `[v6addr]`, `host:port` or `host`.
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            match after {
                "" => (host, None),
                _ => match after.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    None => return Err(bad("unexpected text after ']'")),
                },
            }
        } else {
            match rest.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            }
        };
        if host.is_empty() || host.contains([' ', '[', ']']) {
            return Err(bad("missing or malformed host"));
        }
        let port = match port {
            None => match scheme {
                Scheme::Mqtt => 1883,
                Scheme::Mqtts => 8883,
            },
            Some(port) => match port.parse::<u16>() {
                Ok(port) if port != 0 => port,
                _ => return Err(bad("the port must be a number from 1 to 65535")),
            },
        };
        Ok(Self {
            scheme,
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::Mqtt => "mqtt",
            Scheme::Mqtts => "mqtts",
        };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// The MQTT protocol version a transport speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// MQTT 5 (the default). Our Maximum Packet Size goes in CONNECT, so the broker drops what
    /// we could not take instead of sending it; if the broker refuses MQTT 5, the transport
    /// falls back to 3.1.1 by itself.
    #[default]
    V5,
    /// MQTT 3.1.1 only.
    V311,
}

impl FromStr for Protocol {
    type Err = TransportError;

    /// `"5"` or `"3.1.1"` (also `"v5"`, `"5.0"`, `"v3.1.1"`, `"3"`, `"4"`, the protocol level).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().trim_start_matches(['v', 'V']) {
            "5" | "5.0" => Ok(Protocol::V5),
            "3.1.1" | "3" | "4" => Ok(Protocol::V311),
            _ => Err(TransportError::InvalidConfig(format!(
                "unknown MQTT protocol {text:?}: expected \"5\" or \"3.1.1\""
            ))),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::V5 => "5",
            Protocol::V311 => "3.1.1",
        })
    }
}

/// The message the broker publishes for us if our connection drops without a DISCONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastWill {
    /// Topic the will is published on.
    pub topic: String,
    /// Its payload.
    pub payload: Vec<u8>,
    /// Its QoS.
    pub qos: QoS,
    /// Whether the broker retains it.
    pub retain: bool,
}

/// How to open a session with one broker. [`MqttConfig::new`] fills in the defaults.
#[derive(Debug, Clone)]
pub struct MqttConfig {
    /// Where the broker is.
    pub broker: BrokerUrl,
    /// MQTT client id; must be stable across restarts for a persistent session.
    pub client_id: String,
    /// Keep-alive interval: zero (off) or whole seconds from 1 s to 65535 s. Default 60 s.
    pub keep_alive: Duration,
    /// `true` (default): the broker forgets us on disconnect. `false`: a persistent session,
    /// so subscriptions and QoS 1/2 messages for us survive while we are offline (needed for
    /// MQTT triggers; requires a non-empty `client_id`).
    pub clean_session: bool,
    /// User name, if the broker wants one.
    pub username: Option<String>,
    /// Password (needs `username`).
    pub password: Option<String>,
    /// PEM file of the CA certificates to trust (`mqtts://` only). Without it, the system's
    /// roots are used.
    pub ca_file: Option<PathBuf>,
    /// PEM certificate chain for client authentication (`mqtts://` only, with `client_key`).
    pub client_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) for `client_cert`.
    pub client_key: Option<PathBuf>,
    /// Largest packet sent or accepted, in bytes. Default 10 KiB (rumqttc's): size batches
    /// against it, an oversize publish fails the session.
    pub max_packet_bytes: usize,
    /// Largest packet accepted from the broker. Larger than `max_packet_bytes` on purpose: a
    /// message the caller must refuse has to be read whole first, so it can be acknowledged and
    /// counted. With MQTT 5 it is our Maximum Packet Size in CONNECT, so the broker drops a
    /// larger message instead of sending it (and does not deliver it again). With MQTT 3.1.1 a
    /// larger message ends the session, and a persistent session gets it again on every
    /// reconnect: keep the broker's `message_size_limit` below this. Default 4 MiB.
    pub max_incoming_packet_bytes: usize,
    /// Which protocol to speak. Default MQTT 5, falling back to 3.1.1.
    pub protocol: Protocol,
    /// MQTT 5 Session Expiry Interval of a persistent session (`clean_session = false`): how
    /// long the broker keeps our subscriptions and queued messages while we are away. `None`
    /// (the default): never expires, as a 3.1.1 persistent session.
    pub session_expiry: Option<Duration>,
    /// MQTT 5 Receive Maximum: most QoS 1/2 messages the broker sends us unacknowledged at once
    /// (1 to 65535; default 20, mosquitto's usual in-flight limit). Bounds what one session
    /// buffers inbound.
    pub receive_maximum: u16,
    /// Will message published by the broker if we vanish.
    pub last_will: Option<LastWill>,
    /// Most QoS 1/2 publishes awaiting their acknowledgement at once (1 to 65535; default 100).
    pub inflight: u16,
    /// Requests (publishes, subscribes, acks) that may queue for the connection before
    /// `publish` waits for room (at least 1; default 10).
    pub request_capacity: usize,
    /// Longest `connect` may take (DNS, TCP, TLS and CONNACK); also the write timeout of the
    /// session. Default 10 s.
    pub connect_timeout: Duration,
    /// Set TCP_NODELAY on the socket (default `true`). MQTT packets are written whole, so
    /// Nagle's algorithm only holds a small packet (a PUBACK, a SUBSCRIBE) back until the peer
    /// acknowledges the previous one, which the peer delays by up to 40 ms: a stall per round
    /// trip on a request/response exchange such as a fleet download (BENCHMARKS.md). `false`
    /// saves TCP/IP headers when several small packets leave back to back, on metered links.
    pub tcp_nodelay: bool,
}

impl MqttConfig {
    /// A configuration with the defaults: MQTT 5 (falling back to 3.1.1), clean session,
    /// keep-alive 60 s, 10 KiB packets out and 4 MiB in, 100 in flight, no credentials, no
    /// will, TCP_NODELAY on.
    pub fn new(broker: BrokerUrl, client_id: impl Into<String>) -> Self {
        Self {
            broker,
            client_id: client_id.into(),
            keep_alive: Duration::from_secs(60),
            clean_session: true,
            username: None,
            password: None,
            ca_file: None,
            client_cert: None,
            client_key: None,
            max_packet_bytes: 10 * 1024,
            max_incoming_packet_bytes: 4 * 1024 * 1024,
            protocol: Protocol::V5,
            session_expiry: None,
            receive_maximum: 20,
            last_will: None,
            inflight: 100,
            request_capacity: 10,
            connect_timeout: Duration::from_secs(10),
            tcp_nodelay: true,
        }
    }

    /// Check the combinations rumqttc would reject (some of them by panicking).
    pub fn validate(&self) -> Result<(), TransportError> {
        let bad = |reason: &str| Err(TransportError::InvalidConfig(reason.to_owned()));
        let keep_alive = self.keep_alive;
        if !keep_alive.is_zero()
            && (keep_alive.subsec_nanos() != 0 || !(1..=65535).contains(&keep_alive.as_secs()))
        {
            return bad("keep_alive must be zero or whole seconds from 1 to 65535");
        }
        if !self.clean_session && self.client_id.is_empty() {
            return bad("a persistent session (clean_session = false) needs a client_id");
        }
        if self.password.is_some() && self.username.is_none() {
            return bad("a password needs a username");
        }
        if self.inflight == 0 || self.request_capacity == 0 || self.max_packet_bytes == 0 {
            return bad("inflight, request_capacity and max_packet_bytes must be at least 1");
        }
        if self.receive_maximum == 0 {
            return bad("receive_maximum must be at least 1");
        }
        if u32::try_from(self.max_incoming_packet_bytes).is_err() {
            return bad("max_incoming_packet_bytes must fit in 32 bits");
        }
        // rumqttc's MQTT 5 client panics on a keep-alive under 5 s (zero included).
        if self.protocol == Protocol::V5 && keep_alive < Duration::from_secs(5) {
            return bad("with MQTT 5, keep_alive must be at least 5 seconds");
        }
        if self.connect_timeout.is_zero() {
            return bad("connect_timeout must not be zero");
        }
        let tls_files = [&self.ca_file, &self.client_cert, &self.client_key];
        if self.broker.scheme == Scheme::Mqtt && tls_files.iter().any(|file| file.is_some()) {
            return bad("ca_file, client_cert and client_key need an mqtts:// broker");
        }
        if self.client_cert.is_some() != self.client_key.is_some() {
            return bad("client_cert and client_key go together");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Result<BrokerUrl, TransportError> {
        text.parse()
    }

    #[test]
    fn urls_parse_with_default_ports() -> Result<(), TransportError> {
        let plain = url("mqtt://broker.local")?;
        assert_eq!(
            (plain.scheme, plain.host.as_str(), plain.port),
            (Scheme::Mqtt, "broker.local", 1883)
        );
        let tls = url("mqtts://10.0.0.2:9883/")?;
        assert_eq!(
            (tls.scheme, tls.host.as_str(), tls.port),
            (Scheme::Mqtts, "10.0.0.2", 9883)
        );
        assert_eq!(url("mqtts://[::1]")?.port, 8883);
        assert_eq!(
            url("mqtt://[fe80::1]:1884")?.to_string(),
            "mqtt://[fe80::1]:1884"
        );
        Ok(())
    }

    #[test]
    fn bad_urls_are_named() {
        for bad in [
            "http://x",
            "mqtt://",
            "mqtt://h:0",
            "mqtt://h:99999",
            "mqtt://h/path",
            "mqtt://[::1",
        ] {
            let message = url(bad).expect_err(bad).to_string();
            assert!(message.contains(bad), "{message}");
        }
    }

    #[test]
    fn inconsistent_configs_are_refused() -> Result<(), TransportError> {
        let mut config = MqttConfig::new(url("mqtt://h")?, "");
        config.validate()?;
        config.clean_session = false;
        assert!(
            config.validate().is_err(),
            "persistent session without client id"
        );
        config.client_id = "device".into();
        config.keep_alive = Duration::from_millis(1500);
        assert!(config.validate().is_err(), "fractional keep-alive");
        config.keep_alive = Duration::ZERO;
        config.ca_file = Some("ca.pem".into());
        assert!(config.validate().is_err(), "CA file with plain mqtt://");
        config.ca_file = None;
        config.password = Some("secret".into());
        assert!(config.validate().is_err(), "password without username");
        Ok(())
    }

    #[test]
    fn protocols_parse_and_mqtt5_needs_a_real_keep_alive() -> Result<(), TransportError> {
        assert_eq!("5".parse::<Protocol>()?, Protocol::V5);
        assert_eq!("3.1.1".parse::<Protocol>()?, Protocol::V311);
        assert_eq!(Protocol::V311.to_string(), "3.1.1");
        assert!("6".parse::<Protocol>().is_err());
        let mut config = MqttConfig::new(url("mqtt://h")?, "device");
        assert_eq!(config.protocol, Protocol::V5);
        config.keep_alive = Duration::ZERO;
        assert!(config.validate().is_err(), "MQTT 5 without keep-alive");
        config.protocol = Protocol::V311;
        config.validate()
    }
}
