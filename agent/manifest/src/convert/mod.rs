//! Raw schema → validated model: applies defaults, resolves paths and checks every rule that
//! involves more than one value. Errors name the component and trigger, since that is how
//! people find their way around a manifest.
//!
//! Layout: [`rules`] holds the spelling rules for names and versions, [`component`] converts
//! one component, [`trigger`] one trigger; this module does the app-wide parts.

mod component;
mod env_path;
pub(crate) mod rules;
mod trigger;

use std::collections::BTreeMap;
use std::path::Path;

use outpost_abi::limits::MAX_VALUE_LEN;

use crate::ManifestError;
use crate::model::{AppInfo, AppManifest, ComponentSpec};
use crate::schema_v1 as raw;

/// Converts a version-1 manifest. `path` is the absolute manifest path and `shown_path` the
/// one the caller gave, which errors repeat so that they match what the user typed.
pub(crate) fn from_v1(
    raw: raw::Manifest,
    path: &Path,
    shown_path: &Path,
) -> Result<AppManifest, ManifestError> {
    convert(raw, path).map_err(|message| ManifestError::Invalid {
        path: shown_path.to_path_buf(),
        message,
    })
}

fn convert(raw: raw::Manifest, path: &Path) -> Result<AppManifest, String> {
    let base_dir = path.parent().unwrap_or(Path::new(""));
    let app = app(raw.app)?;
    let variables = variables(raw.variables)?;
    if raw.components.is_empty() {
        return Err("no components: add at least one [[component]] table".into());
    }
    let mut components: Vec<ComponentSpec> = Vec::with_capacity(raw.components.len());
    // Trigger name → owning component, because names are unique across the whole app: the
    // CLI and the logs refer to a trigger by name alone.
    let mut trigger_owners: BTreeMap<String, String> = BTreeMap::new();
    for raw_component in raw.components {
        let component = component::component(raw_component, base_dir, &variables)?;
        if components.iter().any(|other| other.id == component.id) {
            return Err(format!("component '{}' is defined twice", component.id));
        }
        for trigger in &component.triggers {
            if let Some(owner) = trigger_owners.insert(trigger.name.clone(), component.id.clone()) {
                let holder = if owner == component.id {
                    "another of its triggers".to_owned()
                } else {
                    format!("component '{owner}'")
                };
                return Err(format!(
                    "component '{}': trigger name '{}' is already used by {holder}; trigger \
                     names must be unique in the app",
                    component.id, trigger.name
                ));
            }
        }
        components.push(component);
    }
    for ns in &raw.sync.kv {
        if !components.iter().any(|c| c.grants.allows_kv(ns)) {
            return Err(format!(
                "[sync] kv lists namespace '{ns}', but no component is granted it"
            ));
        }
    }
    Ok(AppManifest {
        path: path.to_path_buf(),
        app,
        variables,
        components,
        sync_kv: raw.sync.kv,
        simulator: raw.simulator.sensor,
    })
}

fn app(raw: raw::App) -> Result<AppInfo, String> {
    rules::check_slug("[app] name", &raw.name)?;
    rules::check_version(&raw.version)?;
    Ok(AppInfo {
        name: raw.name,
        version: raw.version,
        description: raw.description,
    })
}

fn variables(raw: BTreeMap<String, String>) -> Result<BTreeMap<String, String>, String> {
    for (name, value) in &raw {
        rules::check_name("[variables] name", name)?;
        // config_get could never hand out a longer value (ABI per-item limit).
        if value.len() > MAX_VALUE_LEN {
            return Err(format!(
                "[variables] {name:?} is {} bytes long; the limit is {MAX_VALUE_LEN}",
                value.len()
            ));
        }
    }
    Ok(raw)
}
