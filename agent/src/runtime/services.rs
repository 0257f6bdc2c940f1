//! The backends behind the host interfaces. A component never sees these: swapping a backend
//! (one key-value store for another, the simulated board for a Linux one) touches no component
//! code.
//!
//! Writes are not here on purpose: every write is buffered in the invocation's effects and
//! committed by the transactional store, whichever backend serves the reads. The one exception
//! is [`Services::gpio`], which the executor also drives buffered line changes onto, after
//! their invocation committed.

use std::collections::BTreeMap;
use std::sync::Arc;

use outpost_hal::{Clock, GpioBoard, SensorBoard};

/// Why a committed key-value read failed, whatever the backend. The backend's own error is
/// kept as the source for the log; a component only ever sees `unavailable`.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct KvError(Box<dyn std::error::Error + Send + Sync>);

impl KvError {
    /// Wraps a backend's error.
    pub fn new(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> KvError {
        KvError(source.into())
    }
}

/// Read access to committed key-value data; the store implements it, a test may too.
pub trait KvReader: Send + Sync + 'static {
    /// The committed value of `key` in `app`'s namespace `ns`.
    fn get(&self, app: &str, ns: &str, key: &str) -> Result<Option<Vec<u8>>, KvError>;
    /// Committed keys of `ns` starting with `prefix`, in order, at most `limit`.
    fn keys(&self, app: &str, ns: &str, prefix: &str, limit: usize)
    -> Result<Vec<String>, KvError>;
}

/// Everything host functions may reach, shared by all invocations of an app.
#[derive(Clone)]
pub struct Services {
    /// Committed key-value data.
    pub kv: Arc<dyn KvReader>,
    /// The board's sensors.
    pub sensors: Arc<dyn SensorBoard>,
    /// Wall and monotonic time.
    pub clock: Arc<dyn Clock>,
    /// The app's config variables.
    pub variables: Arc<BTreeMap<String, String>>,
    /// The id of the device the app runs on (`device_id`).
    pub device: Arc<str>,
    /// The board's GPIO lines: read by `gpio_read`, written after commit for `gpio_write`.
    pub gpio: Arc<dyn GpioBoard>,
    /// Whether a record fits the message that will carry it (the device's packet limit and
    /// wire format).
    pub send: Arc<dyn SendCheck>,
}

/// A record an invocation asks to queue for the broker, as [`SendCheck`] sees it.
#[derive(Debug, Clone, Copy)]
pub enum Outbound<'a> {
    /// `emit(stream, data)`.
    Event {
        /// The app emitting it.
        app: &'a str,
        /// The component emitting it.
        component: &'a str,
        /// Its stream.
        stream: &'a str,
        /// Its bytes.
        data: &'a [u8],
    },
    /// `mqtt_publish(topic, payload)`.
    Publish {
        /// Its topic.
        topic: &'a str,
        /// Its body.
        payload: &'a [u8],
    },
    /// A `kv_set` in a namespace mirrored to the broker (`[sync] kv`).
    Kv {
        /// The namespace.
        ns: &'a str,
        /// The key.
        key: &'a str,
        /// The value.
        value: &'a [u8],
    },
}

/// A record no message could ever carry: its packet would be larger than the device's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("needs a {needed}-byte MQTT packet, over the device's limit of {limit} bytes")]
pub struct Unsendable {
    /// Bytes the packet carrying it alone would take.
    pub needed: usize,
    /// The packet limit (`mqtt.max_packet_bytes`).
    pub limit: usize,
}

/// Sizes a record against the wire format and packet limit that will carry it, so that an
/// invocation is told at `emit`/`mqtt_publish`/`kv_set` (`too-large`) instead of the drain
/// finding later that a committed row can never be sent. The sync planner implements it from
/// the device's settings.
pub trait SendCheck: Send + Sync + 'static {
    /// `Ok` if `record` fits one message under the packet limit.
    fn check(&self, record: &Outbound<'_>) -> Result<(), Unsendable>;
}
