//! Turning a verified bundle into a runnable app before it is activated: parse its manifest,
//! check that it matches the signed header and the modules, compile every module and check every
//! import against the ABI and the grants. Anything that fails here is refused while the old
//! version keeps running.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use outpost_bundle::VerifiedBundle;
use outpost_manifest::{AppManifest, ManifestError};
use thiserror::Error;

use crate::device::hardware::HardwareError;
use crate::identity::DeviceIdentity;
use crate::runtime::{EnginePool, LoadError, Runtime, Services, loader};

/// Builds the backends an app's components reach (the device's store, board and clock), or
/// says why the board cannot serve the app (names it cannot bind).
pub type ServicesFactory =
    Arc<dyn Fn(&AppManifest) -> Result<Services, HardwareError> + Send + Sync>;

/// Why a verified bundle cannot run here.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PrepareError {
    /// Its manifest does not parse or validate.
    #[error("manifest: {0}")]
    Manifest(#[from] ManifestError),
    /// The manifest disagrees with the signed header or the modules.
    #[error("{0}")]
    Mismatch(String),
    /// A module does not compile, or imports something not in the ABI or not granted.
    #[error("{0}")]
    Load(#[from] LoadError),
    /// Uses something fleet-installed apps cannot do yet.
    #[error("{0}")]
    Unsupported(String),
    /// Needs sensors or GPIO lines this device cannot bind.
    #[error(transparent)]
    Board(#[from] HardwareError),
}

/// A bundle ready to run.
pub struct Prepared {
    /// Its manifest.
    pub manifest: AppManifest,
    /// Its compiled components.
    pub runtime: Arc<Runtime>,
}

/// Prepares `bundle` to run with the backends `services` builds.
pub fn prepare(
    bundle: &VerifiedBundle,
    services: &ServicesFactory,
    identity: &DeviceIdentity,
) -> Result<Prepared, PrepareError> {
    let header = &bundle.header;
    let path = PathBuf::from(format!(
        "bundle/{}/{}/outpost.toml",
        header.app, header.version
    ));
    let mut manifest = outpost_manifest::parse(&bundle.manifest, &path)?;
    if manifest.app.name != header.app {
        return Err(PrepareError::Mismatch(format!(
            "the manifest names app '{}' but the signed header says '{}'",
            manifest.app.name, header.app
        )));
    }
    if outpost_bundle::parse_version(&manifest.app.version)
        .ok()
        .as_ref()
        != Some(&header.version)
    {
        return Err(PrepareError::Mismatch(format!(
            "the manifest says version {} but the signed header says {}",
            manifest.app.version, header.version
        )));
    }
    let declared: BTreeSet<&str> = manifest.components.iter().map(|c| c.id.as_str()).collect();
    let packed: BTreeSet<&str> = bundle.modules.iter().map(|m| m.id.as_str()).collect();
    if declared != packed {
        return Err(PrepareError::Mismatch(format!(
            "the manifest declares components {declared:?} but the bundle holds modules {packed:?}"
        )));
    }
    identity.fill_grants(&mut manifest);
    // The board's bindings first: cheap, and what a device refuses most often.
    let services = services(&manifest)?;
    let pool = EnginePool::default();
    let mut components = Vec::with_capacity(bundle.modules.len());
    for spec in &manifest.components {
        let module = bundle
            .modules
            .iter()
            .find(|m| m.id == spec.id)
            .ok_or_else(|| PrepareError::Mismatch(format!("no module for '{}'", spec.id)))?;
        components.push(loader::load_bytes(&pool, spec, &module.wasm)?);
    }
    let runtime = Runtime::from_components(&manifest.app.name, components, services);
    Ok(Prepared {
        manifest,
        runtime: Arc::new(runtime),
    })
}
