//! Errors of the simulated board: a bad sensor spec, an unreadable trace, or a bad board call.

use std::time::Duration;

use thiserror::Error;

use super::profile::ProfileKind;
use super::trace::TraceError;

/// Why a simulated board could not be built or a call on it failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SimError {
    /// A sensor spec is inconsistent (missing or misplaced parameter, bad value).
    #[error("sensor '{name}': {problem}")]
    InvalidSpec {
        /// The sensor's name as written.
        name: String,
        /// What is wrong with it.
        problem: SpecError,
    },
    /// A `csv` sensor's trace file could not be read or parsed.
    #[error("sensor '{name}': {problem}")]
    Trace {
        /// The sensor's name.
        name: String,
        /// What went wrong with the file.
        problem: TraceError,
    },
    /// Two sensors share a name, so reads would be ambiguous.
    #[error("sensor '{0}' is defined more than once")]
    DuplicateSensor(String),
    /// A fault was injected into or cleared from a sensor the board does not have.
    #[error("no simulated sensor named '{0}'")]
    UnknownSensor(String),
}

/// What is wrong inside one sensor spec; [`SimError::InvalidSpec`] adds the sensor's name.
#[derive(Debug, Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum SpecError {
    /// The sensor has no name.
    #[error("the sensor name must not be empty")]
    EmptyName,
    /// The chosen profile needs a parameter the spec does not give.
    #[error("profile '{profile}' needs parameter `{parameter}`")]
    MissingParameter {
        /// The chosen profile.
        profile: ProfileKind,
        /// The missing key.
        parameter: &'static str,
    },
    /// The spec gives parameters that belong to other profiles (usually a wrong `profile`).
    #[error(
        "profile '{profile}' does not take {} (it takes {})",
        quoted(parameters),
        quoted(profile.parameters())
    )]
    ForeignParameters {
        /// The chosen profile.
        profile: ProfileKind,
        /// The keys that do not belong to it.
        parameters: Vec<&'static str>,
    },
    /// A number is NaN or infinite (TOML allows `nan` and `inf`).
    #[error("`{parameter}` must be a finite number, not {value}")]
    NotFinite {
        /// Where the number is, e.g. `base` or `steps[1].value`.
        parameter: String,
        /// The offending value.
        value: f64,
    },
    /// A duration that divides time or bounds a window is zero.
    #[error("`{parameter}` must be longer than 0s")]
    ZeroDuration {
        /// Where the duration is, e.g. `period` or `faults[0].duration`.
        parameter: String,
    },
    /// A noise amplitude is negative, which would make its range `[a, -a]` meaningless.
    #[error("`amplitude` of profile 'noise' must not be negative, not {0}")]
    NegativeAmplitude(f64),
    /// A `step` profile lists no steps.
    #[error("`steps` must list at least one step")]
    NoSteps,
    /// Steps are not listed in strictly increasing `at`.
    #[error("`steps[{index}]` must have a later `at` than `steps[{previous}]`")]
    StepsOutOfOrder {
        /// The step that is out of order.
        index: usize,
        /// The step before it.
        previous: usize,
    },
    /// A `csv` profile names the same column for time and value.
    #[error("`column` and `time_column` are both '{0}'")]
    SameColumn(String),
    /// A `spike` fault has no `value` to report.
    #[error("`faults[{0}]`: kind 'spike' needs `value`")]
    SpikeWithoutValue(usize),
    /// A non-spike fault gives a `value` it would ignore.
    #[error("`faults[{index}]`: `value` only applies to kind 'spike', not '{kind}'")]
    ValueWithoutSpike {
        /// The fault's position in `faults`.
        index: usize,
        /// The fault's kind.
        kind: &'static str,
    },
}

/// `a`, `b`, `c` — parameter names as they appear in the manifest.
fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Rejects NaN and infinities, naming where the number is.
pub(crate) fn finite(parameter: &str, value: f64) -> Result<(), SpecError> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(SpecError::NotFinite {
            parameter: parameter.to_owned(),
            value,
        })
    }
}

/// Rejects a zero duration, naming where it is.
pub(crate) fn non_zero(parameter: &str, value: Duration) -> Result<(), SpecError> {
    if value.is_zero() {
        Err(SpecError::ZeroDuration {
            parameter: parameter.to_owned(),
        })
    } else {
        Ok(())
    }
}
