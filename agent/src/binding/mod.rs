//! Binding an app's logical sensor and GPIO names to the board it runs on.
//!
//! An app names what it uses by logical names (`sensors = ["temperature"]`, `gpio =
//! ["out:relay"]`), the way it runs under `outpost up`; a device binds each name to a source
//! of its own board in `agent.toml`:
//!
//! ```toml
//! [sensors]
//! temperature = "thermal/cpu-thermal"
//! humidity = { source = "iio/bme280/humidityrelative", scale = 1.0, offset = -2.5 }
//!
//! [gpio]
//! relay = "gpiochip0:17"
//! ```
//!
//! A name without a binding is matched automatically when that is unambiguous (see
//! [`resolve`]): the board has a sensor or line of that very name, or exactly one sensor whose
//! name and unit fit. An app whose names cannot all be bound is refused before it runs, with
//! the missing names and the fix in the error ([`BindError`]).
//!
//! - [`resolve`]: the pure matching, from what an app needs and what a board has.
//! - [`boards`]: the bound boards components read through ([`BoundSensors`], [`BoundGpio`]).

pub mod boards;
mod resolve;

use std::collections::BTreeMap;

use serde::Deserialize;

pub use boards::{BoundGpio, BoundSensors};
pub use resolve::{BindError, Needs, Resolved, SensorBinding, Unbound, resolve};

/// How one logical sensor is bound (`[sensors] name = "source"` or a table).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum SensorSetting {
    /// Just the board's sensor name.
    Source(String),
    /// A board sensor with a linear conversion: `value × scale + offset`.
    Scaled {
        /// The board's sensor name, as `outpost hal list` shows it.
        source: String,
        /// Multiplier applied to the board's value (default 1).
        #[serde(default = "one")]
        scale: f64,
        /// Added after scaling (default 0).
        #[serde(default)]
        offset: f64,
    },
}

fn one() -> f64 {
    1.0
}

impl SensorSetting {
    /// The board's sensor name.
    pub fn source(&self) -> &str {
        match self {
            SensorSetting::Source(source) | SensorSetting::Scaled { source, .. } => source,
        }
    }

    /// `(scale, offset)`; `None` when the value is passed through unchanged.
    pub fn conversion(&self) -> Option<(f64, f64)> {
        match self {
            SensorSetting::Source(_) => None,
            SensorSetting::Scaled { scale, offset, .. } => Some((*scale, *offset)),
        }
    }
}

/// A device's bindings: `[sensors]` and `[gpio]` of `agent.toml`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bindings {
    /// Logical sensor name → board sensor.
    pub sensors: BTreeMap<String, SensorSetting>,
    /// Logical line name → board line (`gpiochip0:17`, `GPIO17`, a line label).
    pub gpio: BTreeMap<String, String>,
}
