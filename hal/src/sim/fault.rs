//! Sensor faults: scripted in a spec (`faults = [...]`) or injected at run time by tests.
//!
//! TOML shape of one scripted fault, active for `at <= t < at + duration`:
//!
//! ```toml
//! faults = [
//!   { at = "30s", duration = "10s", kind = "unavailable" },
//!   { at = "60s", duration = "5s",  kind = "stuck" },
//!   { at = "90s", duration = "1s",  kind = "spike", value = 99.0 },
//! ]
//! ```

use std::time::Duration;

use serde::Deserialize;

use super::duration::{self, display};
use super::error::{SpecError, finite, non_zero};

/// A way a simulated sensor misbehaves.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Reads fail with [`crate::SensorError::Unavailable`] carrying this reason.
    Unavailable(String),
    /// Reads return the sensor's value from the moment the fault began.
    Stuck,
    /// Reads return this value (any `f64`, so tests can feed NaN or infinities downstream).
    Spike(f64),
}

impl Fault {
    /// What a read returns while the fault is active: a value or the reason it is unavailable.
    /// `value_at_start` gives the sensor's own value when the fault began, for [`Fault::Stuck`].
    pub(crate) fn reading(&self, value_at_start: impl FnOnce() -> f64) -> Result<f64, String> {
        match self {
            Fault::Unavailable(reason) => Err(reason.clone()),
            Fault::Stuck => Ok(value_at_start()),
            Fault::Spike(value) => Ok(*value),
        }
    }
}

/// A fault scripted in a sensor spec, active for `at <= t < at + duration` since board start.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultSpec {
    /// When the fault begins.
    pub at: Duration,
    /// How long it lasts.
    pub duration: Duration,
    /// What the sensor does meanwhile.
    pub fault: Fault,
}

impl FaultSpec {
    /// Whether the fault is in effect at `t` since board start.
    pub fn is_active(&self, t: Duration) -> bool {
        t >= self.at && t - self.at < self.duration
    }

    /// Checks the fault at position `index` of `faults` (used in messages).
    pub(crate) fn validate(&self, index: usize) -> Result<(), SpecError> {
        non_zero(&format!("faults[{index}].duration"), self.duration)?;
        match self.fault {
            Fault::Spike(value) => finite(&format!("faults[{index}].value"), value),
            Fault::Unavailable(_) | Fault::Stuck => Ok(()),
        }
    }
}

/// A fault as written in TOML, before checking that `value` goes with `kind`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFault {
    #[serde(deserialize_with = "duration::deserialize")]
    at: Duration,
    #[serde(deserialize_with = "duration::deserialize")]
    duration: Duration,
    kind: FaultKind,
    value: Option<f64>,
}

/// `kind = "..."` of a scripted fault.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum FaultKind {
    Unavailable,
    Stuck,
    Spike,
}

impl RawFault {
    /// Builds the fault at position `index` of `faults`, which messages use to point at it.
    pub(crate) fn into_spec(self, index: usize) -> Result<FaultSpec, SpecError> {
        let fault = match (self.kind, self.value) {
            (FaultKind::Spike, Some(value)) => Fault::Spike(value),
            (FaultKind::Spike, None) => return Err(SpecError::SpikeWithoutValue(index)),
            (FaultKind::Unavailable, None) => Fault::Unavailable(format!(
                "simulated outage faults[{index}] (from {} for {})",
                display(self.at),
                display(self.duration)
            )),
            (FaultKind::Stuck, None) => Fault::Stuck,
            (FaultKind::Unavailable, Some(_)) => {
                return Err(SpecError::ValueWithoutSpike {
                    index,
                    kind: "unavailable",
                });
            }
            (FaultKind::Stuck, Some(_)) => {
                return Err(SpecError::ValueWithoutSpike {
                    index,
                    kind: "stuck",
                });
            }
        };
        let spec = FaultSpec {
            at: self.at,
            duration: self.duration,
            fault,
        };
        spec.validate(index)?;
        Ok(spec)
    }
}
