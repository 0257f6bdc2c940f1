//! The Outpost host–guest ABI contract, shared by the agent (host) and the guest SDK.
//!
//! An Outpost component is a core WebAssembly module (wasmi does not implement the Component
//! Model). It talks to the host only through functions imported from a **versioned module name**
//! ([`v1::MODULE`]); pointers are offsets into the guest's exported `memory`, buffers are
//! pointer + length pairs, and every fallible call returns an `i32`: `>= 0` is success (often a
//! length), `< 0` is an [`ErrorCode`]. Nothing on the boundary is Rust-specific, so guests can be
//! written in any language that compiles to wasm32. `docs/ABI.md` is the human-readable page.
//!
//! Versioning: a later ABI gets a new module name (`outpost_v2`) and the host keeps linking the
//! old one, so bundles built against v1 keep running.
#![no_std]

/// Errors a host function reports to the guest as a negative return value.
///
/// The numeric values are part of the ABI and never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum ErrorCode {
    /// The component's manifest does not grant this interface or this name (default deny).
    Denied = -1,
    /// The key, config variable or sensor does not exist.
    NotFound = -2,
    /// A pointer/length pair lies (partly) outside the guest's linear memory.
    OutOfBounds = -3,
    /// An argument is malformed: not UTF-8, an empty or over-long name, an unknown enum value.
    InvalidArgument = -4,
    /// A key, value, topic or payload is larger than the per-item limit.
    TooLarge = -5,
    /// The backend could not serve the call right now (sensor fault, I/O error).
    Unavailable = -6,
}

impl ErrorCode {
    /// Every code, for exhaustive tables in docs and tests.
    pub const ALL: [ErrorCode; 6] = [
        ErrorCode::Denied,
        ErrorCode::NotFound,
        ErrorCode::OutOfBounds,
        ErrorCode::InvalidArgument,
        ErrorCode::TooLarge,
        ErrorCode::Unavailable,
    ];

    /// The value returned across the boundary.
    pub const fn as_i32(self) -> i32 {
        self as i32
    }

    /// Decodes a negative return value; `None` for success values and unknown codes.
    pub const fn from_i32(value: i32) -> Option<ErrorCode> {
        match value {
            -1 => Some(ErrorCode::Denied),
            -2 => Some(ErrorCode::NotFound),
            -3 => Some(ErrorCode::OutOfBounds),
            -4 => Some(ErrorCode::InvalidArgument),
            -5 => Some(ErrorCode::TooLarge),
            -6 => Some(ErrorCode::Unavailable),
            _ => None,
        }
    }

    /// A short stable name, used in logs and docs.
    pub const fn name(self) -> &'static str {
        match self {
            ErrorCode::Denied => "denied",
            ErrorCode::NotFound => "not-found",
            ErrorCode::OutOfBounds => "out-of-bounds",
            ErrorCode::InvalidArgument => "invalid-argument",
            ErrorCode::TooLarge => "too-large",
            ErrorCode::Unavailable => "unavailable",
        }
    }
}

/// Log levels accepted by `log` (any other value is [`ErrorCode::InvalidArgument`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(i32)]
pub enum LogLevel {
    /// Very detailed diagnostics.
    Trace = 0,
    /// Diagnostics.
    Debug = 1,
    /// Normal operation.
    Info = 2,
    /// Something unexpected that the component handled.
    Warn = 3,
    /// Something failed.
    Error = 4,
}

impl LogLevel {
    /// Decodes the level argument of `log`.
    pub const fn from_i32(value: i32) -> Option<LogLevel> {
        match value {
            0 => Some(LogLevel::Trace),
            1 => Some(LogLevel::Debug),
            2 => Some(LogLevel::Info),
            3 => Some(LogLevel::Warn),
            4 => Some(LogLevel::Error),
            _ => None,
        }
    }
}

/// What started an invocation, as returned by `trigger_kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum TriggerKind {
    /// A cron schedule. Payload: scheduled wall time, `i64` little-endian milliseconds since epoch.
    Cron = 1,
    /// A fixed interval. Payload: as for [`TriggerKind::Cron`].
    Interval = 2,
    /// Agent or app start. Payload: empty.
    Start = 3,
    /// A sensor sample. Payload: [`SensorPayload`] (16 bytes).
    Sensor = 4,
    /// An MQTT message. Payload: the message body.
    Mqtt = 5,
    /// Run by hand (`outpost invoke`). Payload: whatever the operator passed.
    Manual = 6,
}

impl TriggerKind {
    /// Decodes the value returned by `trigger_kind`.
    pub const fn from_i32(value: i32) -> Option<TriggerKind> {
        match value {
            1 => Some(TriggerKind::Cron),
            2 => Some(TriggerKind::Interval),
            3 => Some(TriggerKind::Start),
            4 => Some(TriggerKind::Sensor),
            5 => Some(TriggerKind::Mqtt),
            6 => Some(TriggerKind::Manual),
            _ => None,
        }
    }
}

/// Payload of a sensor trigger: the sample and the previous sample, both `f64` little-endian.
///
/// `previous` is NaN on the first sample after start, so threshold logic can tell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SensorPayload {
    /// The value that fired the trigger.
    pub value: f64,
    /// The sample before it (NaN if none).
    pub previous: f64,
}

impl SensorPayload {
    /// Encoded size in bytes.
    pub const LEN: usize = 16;

    /// Encodes as two little-endian `f64`s.
    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[..8].copy_from_slice(&self.value.to_le_bytes());
        out[8..].copy_from_slice(&self.previous.to_le_bytes());
        out
    }

    /// Decodes; `None` if the slice is not exactly [`SensorPayload::LEN`] bytes.
    pub fn decode(bytes: &[u8]) -> Option<SensorPayload> {
        if bytes.len() != Self::LEN {
            return None;
        }
        let mut value = [0u8; 8];
        let mut previous = [0u8; 8];
        value.copy_from_slice(&bytes[..8]);
        previous.copy_from_slice(&bytes[8..]);
        Some(SensorPayload {
            value: f64::from_le_bytes(value),
            previous: f64::from_le_bytes(previous),
        })
    }
}

/// Per-item size limits that every host enforces (returning [`ErrorCode::TooLarge`]).
pub mod limits {
    /// Longest namespace, stream, sensor, config-variable or trigger name, in bytes.
    pub const MAX_NAME_LEN: usize = 128;
    /// Longest key-value key, in bytes.
    pub const MAX_KEY_LEN: usize = 512;
    /// Largest key-value value, in bytes.
    pub const MAX_VALUE_LEN: usize = 64 * 1024;
    /// Largest event or MQTT payload, in bytes.
    pub const MAX_PAYLOAD_LEN: usize = 64 * 1024;
    /// Longest MQTT topic, in bytes.
    pub const MAX_TOPIC_LEN: usize = 256;
    /// Longest log message, in bytes; longer messages are truncated, not refused.
    pub const MAX_LOG_LEN: usize = 4 * 1024;
    /// What one `gpio_write` counts against the per-invocation output limit, in bytes, so a
    /// guest cannot queue an unbounded number of line changes.
    pub const GPIO_WRITE_OUTPUT_BYTES: usize = 16;
}

/// ABI version 1: the import module name, the function names and the guest's exports.
pub mod v1 {
    /// The import module name every v1 host function lives under.
    pub const MODULE: &str = "outpost_v1";

    /// Guest export called for every invocation: `() -> i32`; 0 means success, anything else is
    /// a failure reported by the handler (its effects are discarded).
    pub const EXPORT_HANDLE: &str = "outpost_handle";
    /// The guest's linear memory export, which every pointer refers to.
    pub const EXPORT_MEMORY: &str = "memory";

    /// `log(level: i32, msg_ptr: i32, msg_len: i32) -> i32`
    pub const LOG: &str = "log";
    /// `clock_wall_ms() -> i64`: the board's wall clock, milliseconds since the Unix epoch.
    pub const CLOCK_WALL_MS: &str = "clock_wall_ms";
    /// `clock_monotonic_ns() -> i64`: a monotonic clock, nanoseconds from an arbitrary origin.
    pub const CLOCK_MONOTONIC_NS: &str = "clock_monotonic_ns";
    /// `random_fill(ptr: i32, len: i32) -> i32`: fills the buffer from the OS CSPRNG.
    pub const RANDOM_FILL: &str = "random_fill";
    /// `trigger_kind() -> i32`: a [`crate::TriggerKind`] value.
    pub const TRIGGER_KIND: &str = "trigger_kind";
    /// `trigger_name(out_ptr: i32, out_cap: i32) -> i32`: the trigger's name; returns its length.
    pub const TRIGGER_NAME: &str = "trigger_name";
    /// `payload_read(out_ptr: i32, out_cap: i32) -> i32`: the trigger payload; returns its length.
    pub const PAYLOAD_READ: &str = "payload_read";
    /// `config_get(name_ptr, name_len, out_ptr, out_cap) -> i32`: a config variable's value.
    pub const CONFIG_GET: &str = "config_get";
    /// `kv_get(ns_ptr, ns_len, key_ptr, key_len, out_ptr, out_cap) -> i32`: a value's length.
    pub const KV_GET: &str = "kv_get";
    /// `kv_set(ns_ptr, ns_len, key_ptr, key_len, val_ptr, val_len) -> i32`
    pub const KV_SET: &str = "kv_set";
    /// `kv_delete(ns_ptr, ns_len, key_ptr, key_len) -> i32`: 1 if the key existed, else 0.
    pub const KV_DELETE: &str = "kv_delete";
    /// `kv_list(ns_ptr, ns_len, prefix_ptr, prefix_len, out_ptr, out_cap) -> i32`: keys with the
    /// prefix, each as a `u32` little-endian length then the bytes; returns the total length.
    pub const KV_LIST: &str = "kv_list";
    /// `emit(stream_ptr, stream_len, data_ptr, data_len) -> i32`: appends an event to a stream.
    pub const EMIT: &str = "emit";
    /// `sensor_read(name_ptr, name_len, out_ptr) -> i32`: writes the value as `f64` LE (8 bytes).
    pub const SENSOR_READ: &str = "sensor_read";
    /// `mqtt_publish(topic_ptr, topic_len, payload_ptr, payload_len, qos, retain) -> i32`:
    /// queues a message in the outbox; it is sent by the sync engine, not during the call.
    pub const MQTT_PUBLISH: &str = "mqtt_publish";
    /// `gpio_read(name_ptr, name_len) -> i32`: a GPIO line's level, `0` (low) or `1` (high); a
    /// line this invocation wrote reads back the written (still pending) value.
    pub const GPIO_READ: &str = "gpio_read";
    /// `gpio_write(name_ptr, name_len, value: i32) -> i32`: buffers driving a GPIO line as an
    /// output (`value` 0 low, 1 high); the board is changed only after the invocation commits.
    pub const GPIO_WRITE: &str = "gpio_write";
    /// `device_id(out_ptr: i32, out_cap: i32) -> i32`: the id of the device running the
    /// component; returns its length. Added in agent 0.3; modules that do not import it run
    /// as before.
    pub const DEVICE_ID: &str = "device_id";
    /// `trigger_topic(out_ptr: i32, out_cap: i32) -> i32`: the MQTT topic the message of an
    /// `mqtt` trigger arrived on (length 0 for other triggers); returns its length. Added in
    /// agent 0.3.
    pub const TRIGGER_TOPIC: &str = "trigger_topic";

    /// The grantable interface a host function belongs to, or `None` if it needs no grant.
    pub fn interface_of(function: &str) -> Option<Option<super::Interface>> {
        use super::Interface;
        Some(match function {
            LOG | CLOCK_WALL_MS | CLOCK_MONOTONIC_NS | RANDOM_FILL | TRIGGER_KIND
            | TRIGGER_NAME | PAYLOAD_READ | DEVICE_ID | TRIGGER_TOPIC => None,
            CONFIG_GET => Some(Interface::Config),
            KV_GET | KV_SET | KV_DELETE | KV_LIST => Some(Interface::KeyValue),
            EMIT => Some(Interface::Streams),
            SENSOR_READ => Some(Interface::Sensors),
            MQTT_PUBLISH => Some(Interface::Publish),
            GPIO_READ | GPIO_WRITE => Some(Interface::Gpio),
            _ => return None,
        })
    }

    /// Every v1 function name, in the order `docs/ABI.md` lists them.
    pub const FUNCTIONS: [&str; 19] = [
        LOG,
        CLOCK_WALL_MS,
        CLOCK_MONOTONIC_NS,
        RANDOM_FILL,
        TRIGGER_KIND,
        TRIGGER_NAME,
        PAYLOAD_READ,
        CONFIG_GET,
        KV_GET,
        KV_SET,
        KV_DELETE,
        KV_LIST,
        EMIT,
        SENSOR_READ,
        MQTT_PUBLISH,
        GPIO_READ,
        GPIO_WRITE,
        DEVICE_ID,
        TRIGGER_TOPIC,
    ];
}

/// Host interfaces a manifest can grant (everything else is denied).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interface {
    /// Key-value namespaces.
    KeyValue,
    /// Event streams (`emit`).
    Streams,
    /// Sensor reads.
    Sensors,
    /// Config variables.
    Config,
    /// Queued MQTT publishes.
    Publish,
    /// GPIO lines, each granted for reading (`in:`) or for writing and reading back (`out:`).
    Gpio,
}

impl Interface {
    /// The grant key in the manifest's `[component.grants]` table.
    pub const fn grant_key(self) -> &'static str {
        match self {
            Interface::KeyValue => "kv",
            Interface::Streams => "streams",
            Interface::Sensors => "sensors",
            Interface::Config => "config",
            Interface::Publish => "publish",
            Interface::Gpio => "gpio",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_round_trip_and_are_negative() {
        for code in ErrorCode::ALL {
            assert!(code.as_i32() < 0, "{code:?} must be negative");
            assert_eq!(ErrorCode::from_i32(code.as_i32()), Some(code));
        }
        assert_eq!(ErrorCode::from_i32(0), None);
        assert_eq!(ErrorCode::from_i32(-99), None);
    }

    #[test]
    fn sensor_payload_round_trips_and_rejects_wrong_length() {
        let payload = SensorPayload {
            value: 21.5,
            previous: f64::NAN,
        };
        let decoded = SensorPayload::decode(&payload.encode()).expect("16 bytes decode");
        assert_eq!(decoded.value, 21.5);
        assert!(decoded.previous.is_nan());
        assert!(SensorPayload::decode(&[0u8; 15]).is_none());
    }

    #[test]
    fn every_function_maps_to_an_interface_decision() {
        for name in v1::FUNCTIONS {
            assert!(v1::interface_of(name).is_some(), "{name} is unmapped");
        }
        assert!(v1::interface_of("fd_write").is_none());
        assert_eq!(
            v1::interface_of(v1::KV_SET),
            Some(Some(Interface::KeyValue))
        );
        for gpio in [v1::GPIO_READ, v1::GPIO_WRITE] {
            assert_eq!(v1::interface_of(gpio), Some(Some(Interface::Gpio)));
        }
        assert_eq!(Interface::Gpio.grant_key(), "gpio");
    }
}
