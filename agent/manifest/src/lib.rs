//! Outpost's app manifest, `outpost.toml`: load it, check it, and hand the runtime a model in
//! which every name, path, limit and trigger is already known to be valid.
//!
//! Loading is "version probe, then parse": [`parse`] first reads only `manifest_version`, then
//! parses the whole file with that version's strict schema (unknown keys are errors) and
//! converts it into the version-independent [`AppManifest`]. A later schema version gets its own
//! raw module and converts into the same model, so the runtime never sees the difference.
//!
//! Errors come in two kinds. Anything wrong with the text or with one value (bad TOML, an
//! unknown key, a wrong type, an unparsable size, duration or cron expression) is a
//! [`ManifestError::Syntax`] pointing at `file:line:column`. Anything that breaks a rule
//! involving context (names, ranges, which trigger fields go together, duplicates, grants of
//! undeclared variables) is a [`ManifestError::Invalid`] naming the component and trigger.
//!
//! Layout:
//! - [`error`]: [`ManifestError`], and TOML error spans turned into line and column.
//! - `probe`: reads `manifest_version` alone.
//! - `schema_v1`: the raw version-1 structs, as written.
//! - `size`, `values`, `gpio`: values parsed while deserializing (byte sizes, durations, cron,
//!   GPIO grant entries).
//! - `convert`: raw → model, with every cross-value rule.
//! - [`model`]: the validated types the runtime uses.
//! - [`topic`]: MQTT topic filters and matching, for `publish` grants.
//! - [`placeholders`]: `{device}`, `{commands}`, … in filters and grants, filled per device.
//! - [`timezone`]: cron triggers' zone names, checked against the system's tz database.

pub mod error;
pub mod model;
pub mod placeholders;
pub mod timezone;
pub mod topic;

mod convert;
mod gpio;
mod probe;
mod schema_v1;
mod size;
mod values;

use std::path::Path;

pub use error::ManifestError;
pub use model::{
    AppInfo, AppManifest, BuildSpec, ComponentSpec, FireRule, GpioAccess, GpioGrant, Grants,
    Limits, Missed, TriggerKind, TriggerSpec,
};
pub use topic::{TopicFilter, TopicFilterError, is_valid_topic_name};

/// Reads and parses the manifest at `path`. Relative paths inside it resolve against its
/// directory.
pub fn load(path: &Path) -> Result<AppManifest, ManifestError> {
    let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// Parses manifest text that was read from `manifest_path`. The file is not touched; the path
/// is where relative paths resolve from (made absolute against the current directory if it is
/// relative) and what error messages show.
pub fn parse(text: &str, manifest_path: &Path) -> Result<AppManifest, ManifestError> {
    let syntax = |error: toml::de::Error| ManifestError::from_toml(manifest_path, text, &error);
    let absolute =
        std::path::absolute(manifest_path).unwrap_or_else(|_| manifest_path.to_path_buf());
    match probe::probe(text, manifest_path)? {
        probe::Version::V1 => {
            let raw: schema_v1::Manifest = toml::from_str(text).map_err(syntax)?;
            convert::from_v1(raw, &absolute, manifest_path)
        }
    }
}
