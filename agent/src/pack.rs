//! Packing an app directory into a signed bundle (operator side of fleet updates).

use std::path::{Path, PathBuf};

use outpost_bundle::{BundleError, ModuleInput, SecretKey};
use outpost_manifest::{AppManifest, ManifestError};
use thiserror::Error;

/// Why an app could not be packed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PackError {
    /// The manifest is missing or wrong.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A component's module could not be read.
    #[error("component '{component}': cannot read {path}: {source}")]
    ReadWasm {
        /// The component.
        component: String,
        /// Its `source`.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The manifest text could not be rewritten.
    #[error("{path}: cannot resolve the manifest: {message}")]
    Resolve {
        /// The manifest.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The bundle could not be built (name, version, sizes).
    #[error(transparent)]
    Bundle(#[from] BundleError),
}

/// The manifest as a device needs it: every component's `source` names its module in the bundle
/// (`{id}.wasm`), and what only a developer machine uses (`build`, `[simulator]`) is dropped.
pub fn resolve_manifest(text: &str, path: &Path) -> Result<String, PackError> {
    let resolve = |message: String| PackError::Resolve {
        path: path.to_path_buf(),
        message,
    };
    let mut table: toml::Table = text.parse().map_err(|e| resolve(format!("{e}")))?;
    table.remove("simulator");
    if let Some(toml::Value::Array(components)) = table.get_mut("component") {
        for component in components {
            let Some(component) = component.as_table_mut() else {
                continue;
            };
            component.remove("build");
            let id = component
                .get("id")
                .and_then(toml::Value::as_str)
                .unwrap_or_default()
                .to_string();
            component.insert("source".into(), toml::Value::String(format!("{id}.wasm")));
        }
    }
    toml::to_string(&table).map_err(|e| resolve(e.to_string()))
}

/// Packs the app of `manifest` (already built) signed with `key`; `created_ms` goes into the
/// header.
pub fn pack_app(
    manifest: &AppManifest,
    key: &SecretKey,
    created_ms: i64,
) -> Result<Vec<u8>, PackError> {
    let text = std::fs::read_to_string(&manifest.path).map_err(|source| ManifestError::Io {
        path: manifest.path.clone(),
        source,
    })?;
    let resolved = resolve_manifest(&text, &manifest.path)?;
    // What the device will parse must parse here too, with the same components.
    let reparsed = outpost_manifest::parse(&resolved, &manifest.path)?;
    if reparsed.components.len() != manifest.components.len() {
        return Err(PackError::Resolve {
            path: manifest.path.clone(),
            message: "the resolved manifest lost components".into(),
        });
    }
    let mut modules = Vec::with_capacity(manifest.components.len());
    for component in &manifest.components {
        let wasm = std::fs::read(&component.source).map_err(|source| PackError::ReadWasm {
            component: component.id.clone(),
            path: component.source.clone(),
            source,
        })?;
        modules.push((component.id.as_str(), wasm));
    }
    let inputs: Vec<ModuleInput<'_>> = modules
        .iter()
        .map(|(id, wasm)| ModuleInput { id, wasm })
        .collect();
    Ok(outpost_bundle::pack(
        &manifest.app.name,
        &manifest.app.version,
        &resolved,
        &inputs,
        key,
        created_ms,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolving_drops_build_and_simulator_and_points_sources_at_the_bundle() {
        let text = r#"
manifest_version = 1
[app]
name = "demo"
version = "1.0.0"
[[component]]
id = "probe"
source = "../target/probe.wasm"
build = { command = "make" }
[[component.trigger]]
on_start = true
[[simulator.sensor]]
name = "t"
profile = "constant"
value = 1.0
"#;
        let resolved = resolve_manifest(text, Path::new("outpost.toml")).expect("resolves");
        assert!(
            !resolved.contains("simulator") && !resolved.contains("make"),
            "{resolved}"
        );
        let manifest =
            outpost_manifest::parse(&resolved, Path::new("/b/outpost.toml")).expect("parses");
        assert_eq!(
            manifest.components[0].source,
            PathBuf::from("/b/probe.wasm")
        );
        assert!(manifest.components[0].build.is_none());
    }
}
