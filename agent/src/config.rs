//! The device configuration, `agent.toml`: identity, broker, outbox bounds and sync tuning.
//! Strict like the manifest (unknown keys are errors naming key and line); every essential
//! setting can also be given as an `outpost agent` flag.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use outpost_hal::mqtt::{BrokerUrl, MqttConfig, Protocol, Scheme, TransportError};
use serde::{Deserialize, Deserializer};
use thiserror::Error;

use crate::binding::{Bindings, SensorSetting};
pub use crate::device::hardware::BoardSettings;
use crate::inbox::InboxLimits;
use crate::store::{FullPolicy, OutboxLimits};
use crate::sync::wire::WireFormat;

/// Why `agent.toml` was refused.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Not valid TOML, an unknown key, or a wrong type.
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What was wrong.
        message: String,
    },
    /// A value is out of range or missing.
    #[error("{path}: {message}")]
    Invalid {
        /// The file (or `flags`).
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
}

/// Everything `outpost agent` runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    /// This device's id: one MQTT topic level (`[A-Za-z0-9_-]`, 1..=64).
    pub device_id: String,
    /// Where the state file lives.
    pub data_dir: PathBuf,
    /// An app directory to run, if any (without one the agent only syncs).
    pub app: Option<PathBuf>,
    /// Broker and session settings.
    pub mqtt: MqttSettings,
    /// Outbox bounds and full-policy.
    pub outbox: OutboxLimits,
    /// Disk quota of the state file (`[outbox] max_state_bytes`): at this size the outbox's
    /// full-policy acts, before the filesystem is full. `None`: the default chosen at start
    /// ([`crate::device::default_state_quota`]); `Some(0)`: no quota.
    pub max_state_bytes: Option<u64>,
    /// Inbox bounds (inbound messages for `mqtt` triggers); past them messages are refused
    /// and counted.
    pub inbox: InboxLimits,
    /// Drain tuning.
    pub sync: SyncSettings,
    /// Fleet updates (trusted publishers, groups, transfer and health settings).
    pub fleet: FleetSettings,
    /// Where the board is, or whether to simulate it (`[board]`).
    pub board: BoardSettings,
    /// Apps' logical sensor and line names bound to this board (`[sensors]`, `[gpio]`).
    pub bindings: Bindings,
    /// What cron triggers do while the wall clock is not synchronised (`[clock]`).
    pub clock: ClockSettings,
    /// The most any app may be granted on this device (`[policy]`).
    pub policy: crate::policy::PolicySettings,
    /// This device's secrets file (`secrets`, default [`DEFAULT_SECRETS`]): a TOML table of
    /// strings, mode 0600, read at start ([`crate::policy::Secrets::load`]).
    pub secrets: PathBuf,
}

impl AgentConfig {
    /// A device `device_id` on `broker` with every other setting at its default.
    pub fn new(device_id: String, broker: String) -> AgentConfig {
        AgentConfig {
            device_id,
            data_dir: DEFAULT_DATA_DIR.into(),
            app: None,
            mqtt: MqttSettings::new(broker),
            outbox: OutboxLimits::default(),
            max_state_bytes: None,
            inbox: InboxLimits::default(),
            sync: SyncSettings::default(),
            fleet: FleetSettings::default(),
            board: BoardSettings::default(),
            bindings: Bindings::default(),
            clock: ClockSettings::default(),
            policy: crate::policy::PolicySettings::default(),
            secrets: DEFAULT_SECRETS.into(),
        }
    }
}

/// Wall-clock settings (`[clock]`). A board without an RTC boots with a wrong clock until NTP
/// syncs it (docs/WIRE.md, "Time"): cron triggers wait for the sync, up to a bound.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockSettings {
    /// Whether cron triggers wait for a synchronised clock before their first run (default
    /// true). Set false where the clock is right without NTP the kernel knows of (a
    /// battery-backed RTC, a container whose host keeps the time).
    #[serde(default = "default_cron_waits")]
    pub cron_waits_for_sync: bool,
    /// The longest wait (default 5m); after it cron runs on the clock as it is, and a problem
    /// event says so.
    #[serde(default = "default_cron_sync_wait", with = "humantime_serde")]
    pub cron_sync_wait: Duration,
}

impl Default for ClockSettings {
    fn default() -> Self {
        ClockSettings {
            cron_waits_for_sync: default_cron_waits(),
            cron_sync_wait: default_cron_sync_wait(),
        }
    }
}

impl ClockSettings {
    /// The scheduler's wait, or `None` when cron does not wait (also for a zero wait).
    pub fn sync_wait(&self) -> Option<crate::scheduler::sync_wait::SyncWait> {
        (self.cron_waits_for_sync && !self.cron_sync_wait.is_zero())
            .then(|| crate::scheduler::sync_wait::SyncWait::up_to(self.cron_sync_wait))
    }
}

fn default_cron_waits() -> bool {
    true
}
/// NTP usually syncs within a minute of the network coming up; an offline device should not
/// hold its jobs back much longer.
fn default_cron_sync_wait() -> Duration {
    Duration::from_secs(300)
}

/// Fleet update settings (`[fleet]`). Updates are followed when at least one group is set or
/// one publisher key is trusted ([`FleetSettings::enabled`]); without a trusted key every bundle
/// is refused (fail closed).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetSettings {
    /// Trusted publisher key files (`.pub`), or directories whose `*.pub` files are all trusted.
    #[serde(default)]
    pub trust: Vec<PathBuf>,
    /// Pinned root public keys (`.pub` files or directories of them). When set, publisher keys
    /// and their scopes come only from a trust document these roots signed (`trust` is then
    /// ignored); see [`crate::fleet::roles`].
    #[serde(default)]
    pub trust_root: Vec<PathBuf>,
    /// Groups this device follows (`{prefix}/fleet/{group}/apps/+`); it also follows offers
    /// to itself (`{prefix}/fleet/@{device_id}/apps/+`, see [`crate::fleet::topics`]).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Largest bundle accepted.
    #[serde(default = "default_max_bundle")]
    pub max_bundle_bytes: u64,
    /// Chunks requested at once.
    #[serde(default = "default_chunk_window")]
    pub chunk_window: usize,
    /// A download without progress for this long (while connected) is abandoned.
    #[serde(default = "default_stall", with = "humantime_serde")]
    pub stall_deadline: Duration,
    /// Invocations a new version's health window lasts.
    #[serde(default = "default_trial")]
    pub health_invocations: u32,
    /// Failed invocations tolerated in the health window; one more rolls back.
    #[serde(default = "default_max_failures")]
    pub health_max_failures: u32,
}

impl Default for FleetSettings {
    fn default() -> Self {
        FleetSettings {
            trust: Vec::new(),
            trust_root: Vec::new(),
            groups: Vec::new(),
            max_bundle_bytes: default_max_bundle(),
            chunk_window: default_chunk_window(),
            stall_deadline: default_stall(),
            health_invocations: default_trial(),
            health_max_failures: default_max_failures(),
        }
    }
}

impl FleetSettings {
    /// Whether the device follows fleet updates: when it follows a group, or trusts a publisher
    /// (so a test board with only `--trust` takes `fleet publish --device` offers).
    pub fn enabled(&self) -> bool {
        !self.groups.is_empty() || !self.trust.is_empty() || !self.trust_root.is_empty()
    }
}

fn default_max_bundle() -> u64 {
    16 << 20
}
fn default_chunk_window() -> usize {
    4
}
fn default_stall() -> Duration {
    Duration::from_secs(600)
}
fn default_trial() -> u32 {
    10
}
fn default_max_failures() -> u32 {
    2
}

/// Broker connection settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttSettings {
    /// `mqtt://host[:port]` or `mqtts://host[:port]`.
    pub broker: String,
    /// User name, if the broker wants one.
    #[serde(default)]
    pub username: Option<String>,
    /// Password, with `username`.
    #[serde(default)]
    pub password: Option<String>,
    /// CA certificate (PEM) for `mqtts://`. The one rule for roots: with `ca_file`, only the
    /// CAs in it are trusted (the system's roots are not); without it, the system's roots are.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS.
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// Client key (PEM) for mutual TLS.
    #[serde(default)]
    pub client_key: Option<PathBuf>,
    /// Keep-alive interval.
    #[serde(default = "default_keepalive", with = "humantime_serde")]
    pub keepalive: Duration,
    /// Topic prefix: events go to `{prefix}/{device}/events/{stream}`.
    #[serde(default = "default_prefix")]
    pub topic_prefix: String,
    /// Largest MQTT packet sent.
    #[serde(default = "default_max_packet")]
    pub max_packet_bytes: usize,
    /// Largest MQTT packet taken in (default 4 MiB; never less than `max_packet_bytes`). A
    /// message up to this size is read whole, and refused, acknowledged and counted if no route
    /// takes it (the inbox refuses anything over the ABI's 64 KiB payload limit). MQTT 5 tells the broker, which drops anything
    /// larger for this device; with MQTT 3.1.1 anything larger ends the session, so keep the
    /// broker's `message_size_limit` below it.
    #[serde(default = "default_max_incoming_packet")]
    pub max_incoming_packet_bytes: usize,
    /// `"5"` (default: MQTT 5, falling back to 3.1.1 if the broker refuses it) or `"3.1.1"`.
    #[serde(default, deserialize_with = "protocol")]
    pub protocol: Protocol,
    /// MQTT 5: how long the broker keeps this device's session (subscriptions and queued
    /// commands) while it is offline, e.g. `"30d"`. Unset: for ever, as with MQTT 3.1.1.
    #[serde(default, with = "humantime_serde")]
    pub session_expiry: Option<Duration>,
    /// First reconnect delay.
    #[serde(default = "default_reconnect_min", with = "humantime_serde")]
    pub reconnect_min: Duration,
    /// Longest reconnect delay.
    #[serde(default = "default_reconnect_max", with = "humantime_serde")]
    pub reconnect_max: Duration,
    /// Set TCP_NODELAY on the broker socket (default `true`): small packets (acks,
    /// subscriptions) leave at once instead of waiting out the peer's delayed ACK, which takes a
    /// fleet update on loopback from ~100 ms to under 20 ms. `false` sends fewer TCP/IP headers
    /// when several small packets leave together, for metered links.
    #[serde(default = "default_tcp_nodelay")]
    pub tcp_nodelay: bool,
    /// Send the password over plain `mqtt://` to a host that is not loopback (default false:
    /// such a config is refused, see [`plaintext_password`]).
    #[serde(default)]
    pub allow_plaintext_password: bool,
}

/// Drain tuning.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSettings {
    /// Most events batched into one message.
    #[serde(default = "default_batch")]
    pub batch_max_events: usize,
    /// Most messages awaiting PUBACK.
    #[serde(default = "default_window")]
    pub window: usize,
    /// Most payload bytes awaiting PUBACK (the transport keeps them in memory); a page of the
    /// outbox is read a quarter of this at a time.
    #[serde(default = "default_window_bytes")]
    pub window_bytes: usize,
    /// Payload bytes per second on metered links (0 = unlimited).
    #[serde(default)]
    pub rate_limit: u64,
    /// Event encoding.
    #[serde(default)]
    pub wire: WireFormat,
    /// Least time between two checks of the retained status (published only when it changed).
    #[serde(default = "default_status_every", with = "humantime_serde")]
    pub status_every: Duration,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            batch_max_events: default_batch(),
            window: default_window(),
            window_bytes: default_window_bytes(),
            rate_limit: 0,
            wire: WireFormat::Json,
            status_every: default_status_every(),
        }
    }
}

impl MqttSettings {
    /// Settings for `broker` with every default.
    pub fn new(broker: String) -> Self {
        MqttSettings {
            broker,
            username: None,
            password: None,
            ca_file: None,
            client_cert: None,
            client_key: None,
            keepalive: default_keepalive(),
            topic_prefix: default_prefix(),
            max_packet_bytes: default_max_packet(),
            max_incoming_packet_bytes: default_max_incoming_packet(),
            protocol: Protocol::default(),
            session_expiry: None,
            reconnect_min: default_reconnect_min(),
            reconnect_max: default_reconnect_max(),
            tcp_nodelay: default_tcp_nodelay(),
            allow_plaintext_password: false,
        }
    }

    /// The transport settings of a session with this broker as client `client_id`: address,
    /// credentials, TLS files, keep-alive, packet limits, protocol and TCP_NODELAY. The kind of
    /// session, its will and its queue sizes stay the caller's: a device and an operator's
    /// command differ there. The one translation both `outpost agent` and the operator commands
    /// use, so they cannot drift apart.
    pub fn mqtt_config(&self, client_id: impl Into<String>) -> Result<MqttConfig, TransportError> {
        let broker: BrokerUrl = self.broker.parse()?;
        let mut mqtt = MqttConfig::new(broker, client_id);
        mqtt.keep_alive = self.keepalive;
        mqtt.username = self.username.clone();
        mqtt.password = self.password.clone();
        mqtt.ca_file = self.ca_file.clone();
        mqtt.client_cert = self.client_cert.clone();
        mqtt.client_key = self.client_key.clone();
        mqtt.max_packet_bytes = self.max_packet_bytes;
        mqtt.max_incoming_packet_bytes = self.max_incoming_packet_bytes;
        mqtt.protocol = self.protocol;
        mqtt.session_expiry = self.session_expiry;
        mqtt.tcp_nodelay = self.tcp_nodelay;
        Ok(mqtt)
    }
}

/// 60 s: a connected agent with nothing to do wakes for the keepalive alone about once a
/// minute (battery-powered boards), and a dead link is still noticed within 90 s.
fn default_keepalive() -> Duration {
    Duration::from_secs(60)
}
fn default_prefix() -> String {
    "outpost".into()
}
/// Large enough for any event the ABI allows (64 KiB) plus JSON framing.
fn default_max_packet() -> usize {
    256 * 1024
}
/// Room for a fleet chunk (512 KiB) and well over any command a route takes, so that larger
/// messages are still read, refused and counted rather than ending a 3.1.1 session.
fn default_max_incoming_packet() -> usize {
    4 * 1024 * 1024
}
/// `protocol = "5"`, `"3.1.1"`, or the same as a TOML number (`5`).
fn protocol<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Protocol, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Given {
        Text(String),
        Integer(i64),
        Float(f64),
    }
    let text = match Given::deserialize(deserializer)? {
        Given::Text(text) => text,
        Given::Integer(number) => number.to_string(),
        Given::Float(number) => number.to_string(),
    };
    text.parse().map_err(serde::de::Error::custom)
}
fn default_reconnect_min() -> Duration {
    Duration::from_millis(500)
}
fn default_reconnect_max() -> Duration {
    Duration::from_secs(60)
}
fn default_tcp_nodelay() -> bool {
    true
}
fn default_batch() -> usize {
    64
}
fn default_window() -> usize {
    64
}
/// Half a MiB in flight keeps a loopback link as busy as 1 MiB did, for ~3.5 MiB less peak RSS
/// draining a backlog of 60 KB events (BENCHMARKS.md).
fn default_window_bytes() -> usize {
    512 * 1024
}
fn default_status_every() -> Duration {
    Duration::from_secs(60)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    config_version: u32,
    device_id: String,
    #[serde(default)]
    data_dir: Option<PathBuf>,
    #[serde(default)]
    app: Option<PathBuf>,
    mqtt: MqttSettings,
    #[serde(default)]
    outbox: RawOutbox,
    #[serde(default)]
    inbox: InboxLimits,
    #[serde(default)]
    sync: SyncSettings,
    #[serde(default)]
    fleet: FleetSettings,
    #[serde(default)]
    board: BoardSettings,
    #[serde(default)]
    sensors: BTreeMap<String, SensorSetting>,
    #[serde(default)]
    gpio: BTreeMap<String, String>,
    #[serde(default)]
    clock: ClockSettings,
    #[serde(default)]
    policy: crate::policy::PolicySettings,
    #[serde(default)]
    secrets: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawOutbox {
    #[serde(default)]
    max_records: Option<u64>,
    #[serde(default)]
    max_bytes: Option<u64>,
    #[serde(default)]
    full: Option<FullPolicy>,
    #[serde(default)]
    max_state_bytes: Option<u64>,
    #[serde(default)]
    durability: Option<crate::store::Durability>,
    #[serde(default, with = "humantime_serde")]
    checkpoint_every: Option<std::time::Duration>,
}

/// Default state directory on a device.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/outpost";
/// Default secrets file on a device (root's, mode 0600; the unit hands it to the service).
pub const DEFAULT_SECRETS: &str = "/etc/outpost/secrets.toml";

/// Reads and checks `agent.toml`.
pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// Parses and checks `agent.toml` text; relative paths resolve against the file's directory.
pub fn parse(text: &str, path: &Path) -> Result<AgentConfig, ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(|error| {
        let (line, column) = error
            .span()
            .map(|span| line_col(text, span.start))
            .unwrap_or((1, 1));
        ConfigError::Syntax {
            path: path.to_path_buf(),
            line,
            column,
            message: error.message().replace('\n', " "),
        }
    })?;
    let invalid = |message: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    if raw.config_version != 1 {
        return Err(invalid(format!(
            "unsupported config_version {} (this agent reads 1)",
            raw.config_version
        )));
    }
    let base = path.parent().unwrap_or(Path::new("."));
    let defaults = OutboxLimits::default();
    let config = AgentConfig {
        device_id: raw.device_id,
        data_dir: base.join(raw.data_dir.unwrap_or_else(|| DEFAULT_DATA_DIR.into())),
        app: raw.app.map(|app| base.join(app)),
        mqtt: MqttSettings {
            ca_file: raw.mqtt.ca_file.as_ref().map(|p| base.join(p)),
            client_cert: raw.mqtt.client_cert.as_ref().map(|p| base.join(p)),
            client_key: raw.mqtt.client_key.as_ref().map(|p| base.join(p)),
            ..raw.mqtt
        },
        outbox: OutboxLimits {
            max_records: raw.outbox.max_records.unwrap_or(defaults.max_records),
            max_bytes: raw.outbox.max_bytes.unwrap_or(defaults.max_bytes),
            policy: raw.outbox.full.unwrap_or(defaults.policy),
            durability: raw.outbox.durability.unwrap_or(defaults.durability),
            checkpoint_every: raw
                .outbox
                .checkpoint_every
                .unwrap_or(defaults.checkpoint_every),
        },
        max_state_bytes: raw.outbox.max_state_bytes,
        inbox: raw.inbox,
        sync: raw.sync,
        fleet: FleetSettings {
            trust: raw.fleet.trust.iter().map(|p| base.join(p)).collect(),
            trust_root: raw.fleet.trust_root.iter().map(|p| base.join(p)).collect(),
            ..raw.fleet
        },
        board: BoardSettings {
            root: base.join(&raw.board.root),
            gpio_dev: base.join(&raw.board.gpio_dev),
            ..raw.board
        },
        bindings: Bindings {
            sensors: raw.sensors,
            gpio: raw.gpio,
        },
        clock: raw.clock,
        policy: raw.policy,
        secrets: base.join(raw.secrets.unwrap_or_else(|| DEFAULT_SECRETS.into())),
    };
    validate(&config).map_err(invalid)?;
    Ok(config)
}

/// Checks values that types cannot.
pub fn validate(config: &AgentConfig) -> Result<(), String> {
    let id = &config.device_id;
    if id.is_empty()
        || id.len() > 64
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!(
            "device_id '{id}' must be 1-64 characters of A-Z a-z 0-9 - _"
        ));
    }
    let prefix = &config.mqtt.topic_prefix;
    if prefix.is_empty()
        || prefix.contains(['+', '#'])
        || prefix.starts_with('/')
        || prefix.ends_with('/')
    {
        return Err(format!(
            "topic_prefix '{prefix}' must be non-empty, without wildcards or outer slashes"
        ));
    }
    if !(config.mqtt.broker.starts_with("mqtt://") || config.mqtt.broker.starts_with("mqtts://")) {
        return Err(format!(
            "broker '{}' must start with mqtt:// or mqtts://",
            config.mqtt.broker
        ));
    }
    if config.mqtt.password.is_some() && config.mqtt.username.is_none() {
        return Err("a password needs a username".into());
    }
    if config.mqtt.client_cert.is_some() != config.mqtt.client_key.is_some() {
        return Err("client_cert and client_key go together".into());
    }
    if let Some(problem) = plaintext_password(&config.mqtt) {
        return Err(format!(
            "{problem}: use mqtts:// (with ca_file), or set allow_plaintext_password = true \
             under [mqtt]"
        ));
    }
    if config.mqtt.max_packet_bytes < 1024 {
        return Err("max_packet_bytes must be at least 1024".into());
    }
    // The transport takes the larger of the two as its incoming limit, so a large
    // max_packet_bytes alone never makes a configuration invalid.
    if u32::try_from(config.mqtt.max_incoming_packet_bytes).is_err() {
        return Err("max_incoming_packet_bytes must be under 4 GiB".into());
    }
    if config.mqtt.protocol == Protocol::V5 && config.mqtt.keepalive < Duration::from_secs(5) {
        return Err("with protocol = \"5\", keepalive must be at least 5s".into());
    }
    if config.sync.window == 0 || config.sync.batch_max_events == 0 {
        return Err("sync.window and sync.batch_max_events must be at least 1".into());
    }
    if config.sync.window_bytes < 4096 {
        return Err("sync.window_bytes must be at least 4096".into());
    }
    if config.outbox.max_records == 0 || config.outbox.max_bytes == 0 {
        return Err("outbox limits must be at least 1".into());
    }
    if config.inbox.max_records == 0 || config.inbox.max_bytes == 0 {
        return Err("inbox limits must be at least 1".into());
    }
    // The shared rule keeps '@' out of group names: `@{device}` is a device's own target.
    for group in &config.fleet.groups {
        if !crate::fleet::topics::valid_name(group) {
            return Err(format!(
                "fleet group '{group}' must be 1-64 characters of A-Z a-z 0-9 - _ ('@name' is a device's own target, followed without a group)"
            ));
        }
    }
    if config.fleet.chunk_window == 0 || config.fleet.health_invocations == 0 {
        return Err("fleet.chunk_window and fleet.health_invocations must be at least 1".into());
    }
    if config.mqtt.reconnect_min.is_zero() || config.mqtt.reconnect_min > config.mqtt.reconnect_max
    {
        return Err("reconnect_min must be above zero and at most reconnect_max".into());
    }
    config.policy.validate()?;
    Ok(())
}

/// Why `mqtt`'s password would cross the network unencrypted, unless that was allowed: a
/// password with a plain `mqtt://` broker that is not loopback (on loopback it never leaves the
/// machine). `None` when the settings are safe, allowed, or the URL does not parse (refused
/// elsewhere).
pub fn plaintext_password(mqtt: &MqttSettings) -> Option<String> {
    if mqtt.password.is_none() || mqtt.allow_plaintext_password {
        return None;
    }
    let url: BrokerUrl = mqtt.broker.parse().ok()?;
    let host = url.host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    (url.scheme == Scheme::Mqtt && !loopback).then(|| {
        format!(
            "the password would go to {} unencrypted (mqtt://)",
            url.host
        )
    })
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
config_version = 1
device_id = "pi-07"
data_dir = "state"
app = "app"

[mqtt]
broker = "mqtts://broker.example:8883"
username = "pi-07"
password = "secret"
ca_file = "ca.pem"
keepalive = "15s"
topic_prefix = "farm"
protocol = "3.1.1"
session_expiry = "30d"

[outbox]
max_records = 5000
full = "reject-new"
durability = "2s"

[inbox]
max_records = 200

[sync]
batch_max_events = 32
wire = "postcard"
status_every = "10s"

[fleet]
trust = ["trust"]
groups = ["north", "pumps"]
health_max_failures = 0

[clock]
cron_sync_wait = "90s"
"#;

    #[test]
    fn a_full_config_parses_with_paths_resolved() {
        let config = parse(FULL, Path::new("/etc/outpost/agent.toml")).expect("valid");
        assert_eq!(config.device_id, "pi-07");
        assert_eq!(config.data_dir, PathBuf::from("/etc/outpost/state"));
        assert_eq!(
            config.mqtt.ca_file,
            Some(PathBuf::from("/etc/outpost/ca.pem"))
        );
        assert_eq!(config.mqtt.keepalive, Duration::from_secs(15));
        assert_eq!(config.mqtt.protocol, Protocol::V311);
        assert_eq!(
            config.mqtt.session_expiry,
            Some(Duration::from_secs(30 * 86400))
        );
        assert_eq!(config.mqtt.max_incoming_packet_bytes, 4 << 20);
        assert!(config.clock.cron_waits_for_sync);
        assert_eq!(
            config.clock.sync_wait().map(|wait| wait.max),
            Some(Duration::from_secs(90))
        );
        let trusting = FULL.replace("[clock]", "[clock]\ncron_waits_for_sync = false");
        let trusting = parse(&trusting, Path::new("agent.toml")).expect("valid");
        assert_eq!(trusting.clock.sync_wait(), None);
        let no_wait = FULL.replace("\"90s\"", "\"0s\"");
        let no_wait = parse(&no_wait, Path::new("agent.toml")).expect("valid");
        assert_eq!(no_wait.clock.sync_wait(), None, "a zero wait does not wait");
        let five = FULL.replace("protocol = \"3.1.1\"", "protocol = 5");
        let five = parse(&five, Path::new("agent.toml")).expect("valid");
        assert_eq!(five.mqtt.protocol, Protocol::V5);
        let six = FULL.replace("protocol = \"3.1.1\"", "protocol = \"6\"");
        let error = parse(&six, Path::new("agent.toml")).expect_err("no MQTT 6");
        assert!(error.to_string().contains("3.1.1"), "{error}");
        assert_eq!(config.outbox.max_records, 5000);
        assert_eq!(config.outbox.policy, FullPolicy::RejectNew);
        assert_eq!(
            config.outbox.durability,
            crate::store::Durability::Window(Duration::from_secs(2))
        );
        assert_eq!(config.inbox.max_records, 200);
        assert_eq!(config.inbox.max_bytes, 16 * 1024 * 1024, "its default");
        assert_eq!(config.sync.wire, WireFormat::Postcard);
        assert_eq!(config.sync.window, 64, "defaults fill the rest");
        assert_eq!(config.fleet.trust, [PathBuf::from("/etc/outpost/trust")]);
        assert_eq!(config.fleet.groups, ["north", "pumps"]);
        assert_eq!(config.fleet.health_max_failures, 0);
        assert_eq!(config.fleet.health_invocations, 10);
        assert!(config.mqtt.tcp_nodelay, "TCP_NODELAY is on by default");
    }

    #[test]
    fn the_mqtt_settings_become_the_transport_config_both_sides_use() {
        let config = parse(FULL, Path::new("/etc/outpost/agent.toml")).expect("valid");
        let mqtt = config.mqtt.mqtt_config("pi-07").expect("a good URL");
        assert_eq!(mqtt.broker.to_string(), "mqtts://broker.example:8883");
        assert_eq!(mqtt.client_id, "pi-07");
        assert_eq!(mqtt.username.as_deref(), Some("pi-07"));
        assert_eq!(mqtt.password.as_deref(), Some("secret"));
        assert_eq!(mqtt.ca_file, config.mqtt.ca_file);
        assert_eq!(mqtt.keep_alive, Duration::from_secs(15));
        assert_eq!(mqtt.protocol, Protocol::V311);
        assert!(mqtt.tcp_nodelay);
        let metered = FULL.replace("session_expiry", "tcp_nodelay = false\nsession_expiry");
        let metered = parse(&metered, Path::new("agent.toml")).expect("valid");
        assert!(
            !metered
                .mqtt
                .mqtt_config("pi-07")
                .expect("valid")
                .tcp_nodelay
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused_with_their_place() {
        let text = FULL.replace("keepalive", "keep_alive");
        let error = parse(&text, Path::new("agent.toml"))
            .expect_err("unknown key")
            .to_string();
        assert!(
            error.starts_with("agent.toml:12:1:") && error.contains("keep_alive"),
            "{error}"
        );

        let text = FULL.replace("pi-07\"\ndata", "pi/07\"\ndata");
        let error = parse(&text, Path::new("agent.toml"))
            .expect_err("bad id")
            .to_string();
        assert!(error.contains("device_id 'pi/07'"), "{error}");

        let text = FULL.replace("\"pumps\"", "\"pumps/east\"");
        let error = parse(&text, Path::new("agent.toml"))
            .expect_err("bad group")
            .to_string();
        assert!(error.contains("fleet group 'pumps/east'"), "{error}");

        // A group can never be taken for a device's own target.
        let text = FULL.replace("\"pumps\"", "\"@pi-07\"");
        let error = parse(&text, Path::new("agent.toml"))
            .expect_err("device target as group")
            .to_string();
        assert!(
            error.contains("fleet group '@pi-07'") && error.contains("device's own target"),
            "{error}"
        );

        let text = FULL.replace("mqtts://", "http://");
        assert!(
            parse(&text, Path::new("a.toml"))
                .expect_err("bad url")
                .to_string()
                .contains("mqtt://")
        );
    }

    #[test]
    fn a_password_over_plain_mqtt_is_refused_unless_allowed_or_loopback() {
        let text = FULL
            .replace("ca_file = \"ca.pem\"\n", "")
            .replace("mqtts://", "mqtt://");
        let error = parse(&text, Path::new("agent.toml"))
            .expect_err("plaintext password")
            .to_string();
        assert!(
            error.contains("broker.example unencrypted")
                && error.contains("allow_plaintext_password = true"),
            "{error}"
        );
        let allowed = text.replace("[mqtt]\n", "[mqtt]\nallow_plaintext_password = true\n");
        assert!(parse(&allowed, Path::new("agent.toml")).is_ok());
        for local in ["127.0.0.1", "localhost", "[::1]"] {
            let text = text.replace("broker.example", local);
            assert!(parse(&text, Path::new("agent.toml")).is_ok(), "{local}");
        }
    }
}
