//! [`SensorSpec`]: one simulated sensor as written in a manifest's `[[simulator.sensor]]` table.
//!
//! The TOML is first read into a flat table of every possible key with `deny_unknown_fields`,
//! then checked per profile. An internally tagged enum (`#[serde(tag = "profile")]`) would need
//! `#[serde(flatten)]` to share the table with `name`/`unit`/`faults`, and serde does not support
//! `flatten` with `deny_unknown_fields` (tried: valid tables are rejected with "unknown field
//! `profile`", and errors lose their line). The flat table keeps unknown keys errors that point
//! at their line, and lets us name parameters that belong to another profile.

use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

use super::duration::HumanDuration;
use super::error::{SimError, SpecError};
use super::fault::{FaultSpec, RawFault};
use super::profile::{Profile, ProfileKind, Step};

/// One simulated sensor: its name, unit, how its value moves, and scripted faults.
///
/// ```toml
/// [[simulator.sensor]]
/// name = "temperature"
/// unit = "°C"
/// profile = "sine"
/// base = 21.0
/// amplitude = 4.0
/// period = "60s"
/// faults = [{ at = "30s", duration = "10s", kind = "unavailable" }]
/// latency = "5ms"       # optional: each read takes this long
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SensorSpec {
    /// The name components and grants use.
    pub name: String,
    /// Unit of the value; empty if unitless.
    pub unit: String,
    /// How the value moves over time.
    pub profile: Profile,
    /// Faults scripted against board time; where several overlap, the first listed wins.
    pub faults: Vec<FaultSpec>,
    /// How long each read takes (`latency = "2s"`): a slow bus, to try a component's
    /// `limits.timeout` against. Zero by default.
    pub latency: std::time::Duration,
}

impl SensorSpec {
    /// A unitless sensor without faults, for building specs in code.
    pub fn new(name: impl Into<String>, profile: Profile) -> Self {
        SensorSpec {
            name: name.into(),
            unit: String::new(),
            profile,
            faults: Vec::new(),
            latency: std::time::Duration::ZERO,
        }
    }

    /// Checks the spec is usable: a name, sensible parameters, well-formed faults.
    /// Deserialization already does this; specs built in code are checked by the board.
    pub fn validate(&self) -> Result<(), SimError> {
        self.check().map_err(|problem| SimError::InvalidSpec {
            name: self.name.clone(),
            problem,
        })
    }

    /// Where the value comes from, for listings: `sim:sine`, `sim:csv:traces/temp.csv`.
    pub fn source(&self) -> String {
        match &self.profile {
            Profile::Csv { path, .. } => format!("sim:csv:{}", path.display()),
            profile => format!("sim:{}", profile.kind()),
        }
    }

    fn check(&self) -> Result<(), SpecError> {
        if self.name.is_empty() {
            return Err(SpecError::EmptyName);
        }
        self.profile.validate()?;
        self.faults
            .iter()
            .enumerate()
            .try_for_each(|(index, fault)| fault.validate(index))
    }
}

impl<'de> Deserialize<'de> for SensorSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = RawSensorSpec::deserialize(deserializer)?;
        raw.into_spec().map_err(serde::de::Error::custom)
    }
}

/// Every key a sensor table may hold; which ones apply depends on `profile`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSensorSpec {
    name: String,
    #[serde(default)]
    unit: String,
    profile: ProfileKind,
    #[serde(default)]
    faults: Vec<RawFault>,
    latency: Option<HumanDuration>,
    value: Option<f64>,
    base: Option<f64>,
    amplitude: Option<f64>,
    period: Option<HumanDuration>,
    from: Option<f64>,
    to: Option<f64>,
    over: Option<HumanDuration>,
    repeat: Option<bool>,
    steps: Option<Vec<Step>>,
    seed: Option<u64>,
    path: Option<PathBuf>,
    column: Option<String>,
    time_column: Option<String>,
}

impl RawSensorSpec {
    fn into_spec(self) -> Result<SensorSpec, SimError> {
        let name = self.name.clone();
        self.build()
            .map_err(|problem| SimError::InvalidSpec { name, problem })
    }

    fn build(self) -> Result<SensorSpec, SpecError> {
        let kind = self.profile;
        let foreign: Vec<&'static str> = self
            .given()
            .into_iter()
            .filter(|parameter| !kind.parameters().contains(parameter))
            .collect();
        if !foreign.is_empty() {
            return Err(SpecError::ForeignParameters {
                profile: kind,
                parameters: foreign,
            });
        }
        let need = |parameter| SpecError::MissingParameter {
            profile: kind,
            parameter,
        };
        let profile = match kind {
            ProfileKind::Constant => Profile::Constant {
                value: self.value.ok_or_else(|| need("value"))?,
            },
            ProfileKind::Sine => Profile::Sine {
                base: self.base.ok_or_else(|| need("base"))?,
                amplitude: self.amplitude.ok_or_else(|| need("amplitude"))?,
                period: self.period.ok_or_else(|| need("period"))?.0,
            },
            ProfileKind::Ramp => Profile::Ramp {
                from: self.from.ok_or_else(|| need("from"))?,
                to: self.to.ok_or_else(|| need("to"))?,
                over: self.over.ok_or_else(|| need("over"))?.0,
                repeat: self.repeat.unwrap_or(false),
            },
            ProfileKind::Step => Profile::Step {
                steps: self.steps.ok_or_else(|| need("steps"))?,
            },
            ProfileKind::Noise => Profile::Noise {
                base: self.base.ok_or_else(|| need("base"))?,
                amplitude: self.amplitude.ok_or_else(|| need("amplitude"))?,
                seed: self.seed.ok_or_else(|| need("seed"))?,
            },
            ProfileKind::Csv => Profile::Csv {
                path: self.path.ok_or_else(|| need("path"))?,
                column: self.column,
                time_column: self.time_column,
                repeat: self.repeat.unwrap_or(false),
            },
        };
        let faults = self
            .faults
            .into_iter()
            .enumerate()
            .map(|(index, fault)| fault.into_spec(index))
            .collect::<Result<_, _>>()?;
        let spec = SensorSpec {
            name: self.name,
            unit: self.unit,
            profile,
            faults,
            latency: self.latency.map(|l| l.0).unwrap_or_default(),
        };
        spec.check()?;
        Ok(spec)
    }

    /// The profile parameters present in the table, in declaration order.
    fn given(&self) -> Vec<&'static str> {
        [
            ("value", self.value.is_some()),
            ("base", self.base.is_some()),
            ("amplitude", self.amplitude.is_some()),
            ("period", self.period.is_some()),
            ("from", self.from.is_some()),
            ("to", self.to.is_some()),
            ("over", self.over.is_some()),
            ("repeat", self.repeat.is_some()),
            ("steps", self.steps.is_some()),
            ("seed", self.seed.is_some()),
            ("path", self.path.is_some()),
            ("column", self.column.is_some()),
            ("time_column", self.time_column.is_some()),
        ]
        .into_iter()
        .filter_map(|(parameter, given)| given.then_some(parameter))
        .collect()
    }
}
