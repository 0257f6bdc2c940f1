//! The raw shape of a version-1 manifest, exactly as written, before any rule is checked.
//!
//! Every struct denies unknown fields, so a typo is an error with its line rather than a
//! silently ignored setting. These types never leave the crate: `convert` turns them into the
//! model, and a future `schema_v2` would convert into the same model.

use std::collections::BTreeMap;

use outpost_hal::sim::SensorSpec;
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::gpio::GpioList;
use crate::size::ByteSize;
use crate::values::{CronExpr, HumanDuration};

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Manifest {
    /// Already checked by the probe; declared only so it is not an unknown field.
    #[serde(rename = "manifest_version")]
    pub _manifest_version: IgnoredAny,
    pub app: App,
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    #[serde(default, rename = "component")]
    pub components: Vec<Component>,
    #[serde(default)]
    pub simulator: Simulator,
    #[serde(default)]
    pub sync: Sync,
}

/// `[sync]`: what of the app's state is mirrored to the broker.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Sync {
    /// Key-value namespaces published retained under `{prefix}/{device}/kv/{ns}/{key}`.
    #[serde(default)]
    pub kv: Vec<String>,
}

/// `[app]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct App {
    pub name: String,
    pub version: String,
    pub description: Option<String>,
}

/// `[[component]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Component {
    pub id: String,
    pub source: String,
    pub build: Option<Build>,
    #[serde(default)]
    pub grants: Grants,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default, rename = "trigger")]
    pub triggers: Vec<Trigger>,
}

/// `build = { command = "...", workdir = "..." }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Build {
    pub command: String,
    pub workdir: Option<String>,
}

/// `[component.grants]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Grants {
    #[serde(default)]
    pub kv: Vec<String>,
    #[serde(default)]
    pub streams: Vec<String>,
    #[serde(default)]
    pub sensors: Vec<String>,
    #[serde(default)]
    pub config: Vec<String>,
    #[serde(default)]
    pub publish: Vec<String>,
    /// Checked entry by entry while deserializing, so mistakes carry their position.
    #[serde(default)]
    pub gpio: GpioList,
}

/// `[component.limits]`; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Limits {
    pub fuel: Option<u64>,
    pub memory: Option<ByteSize>,
    pub table_elements: Option<u32>,
    pub stack: Option<ByteSize>,
    pub output: Option<ByteSize>,
    pub timeout: Option<HumanDuration>,
}

/// `[[component.trigger]]`: the union of every kind's fields. Which combination is allowed
/// depends on the kind, a rule serde cannot express with a useful message, so `convert`
/// checks it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Trigger {
    pub name: Option<String>,
    pub cron: Option<CronExpr>,
    pub timezone: Option<String>,
    pub interval: Option<HumanDuration>,
    pub jitter: Option<HumanDuration>,
    pub missed: Option<Missed>,
    pub on_start: Option<bool>,
    pub sensor: Option<String>,
    pub sample_every: Option<HumanDuration>,
    pub fire: Option<Fire>,
    pub threshold: Option<f64>,
    pub min_delta: Option<f64>,
    pub mqtt: Option<String>,
}

/// `missed = "skip" | "run-once"`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Missed {
    Skip,
    RunOnce,
}

/// `fire = "every" | "change" | "rising" | "falling" | "crossing"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Fire {
    Every,
    Change,
    Rising,
    Falling,
    Crossing,
}

impl Fire {
    /// The spelling in the manifest, for error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Fire::Every => "every",
            Fire::Change => "change",
            Fire::Rising => "rising",
            Fire::Falling => "falling",
            Fire::Crossing => "crossing",
        }
    }
}

/// `[simulator]`. Each sensor table is read by the hal's `SensorSpec`, which owns that schema
/// (and denies unknown keys itself).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Simulator {
    #[serde(default)]
    pub sensor: Vec<SensorSpec>,
}
