//! Named sensors: the capability behind the `sensor_read` host function and sensor triggers.

use thiserror::Error;

/// One sensor sample, already scaled to its unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// The value in [`SensorInfo::unit`].
    pub value: f64,
}

/// What a board says about one of its sensors.
#[derive(Debug, Clone, PartialEq)]
pub struct SensorInfo {
    /// The name components and manifests use.
    pub name: String,
    /// Unit of the scaled value (`°C`, `%`, `V`, ...); empty if unitless.
    pub unit: String,
    /// Where the value comes from (`sim:sine`, `/sys/class/thermal/thermal_zone0`), for listings.
    pub source: String,
}

/// Why a sensor could not be read.
#[derive(Debug, Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum SensorError {
    /// The board has no sensor of that name.
    #[error("no sensor named '{0}' on this board")]
    NotFound(String),
    /// The sensor exists but cannot deliver a value now.
    #[error("sensor '{name}' is unavailable: {reason}")]
    Unavailable {
        /// The sensor's name.
        name: String,
        /// What went wrong, for a person to act on.
        reason: String,
    },
    /// The read did not finish within the time the caller had left (its deadline).
    #[error("sensor '{name}' did not answer within {after:?}")]
    TimedOut {
        /// The sensor's name.
        name: String,
        /// How long the caller waited.
        after: std::time::Duration,
    },
}

/// A board's sensors. Implementations must be cheap to call from many threads.
pub trait SensorBoard: Send + Sync + 'static {
    /// Every sensor the board exposes, in a stable order.
    fn sensors(&self) -> Vec<SensorInfo>;
    /// Reads one sensor now.
    fn read(&self, name: &str) -> Result<Reading, SensorError>;
    /// Reads one sensor, giving up with [`SensorError::TimedOut`] after `within` (the caller's
    /// remaining deadline). Boards whose reads can block for long (a slow bus, a simulated
    /// latency) honour it; the default is [`SensorBoard::read`], for boards whose reads are
    /// quick (sysfs files).
    fn read_within(&self, name: &str, within: std::time::Duration) -> Result<Reading, SensorError> {
        let _ = within;
        self.read(name)
    }
}
