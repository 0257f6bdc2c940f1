//! Turning a verified bundle into a runnable app before it is activated: parse its manifest,
//! check that it matches the signed header and the modules, compile every module and check every
//! import against the ABI and the grants. Anything that fails here is refused while the old
//! version keeps running. The same checks, without a device's services, are [`check`]: the
//! operator's `bundle build` and `fleet publish` run it so they refuse what every device would.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use outpost_bundle::{BundleHeader, VerifiedBundle};
use outpost_manifest::{AppManifest, ManifestError};
use thiserror::Error;

use crate::device::hardware::HardwareError;
use crate::identity::DeviceIdentity;
use crate::runtime::loader::{self, LoadedComponent};
use crate::runtime::{EnginePool, LoadError, Runtime, Services};

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
    /// Needs sensors or GPIO lines this device cannot bind.
    #[error(transparent)]
    Board(#[from] HardwareError),
    /// Names a cron time zone this device's tz database does not have.
    #[error(transparent)]
    Zone(#[from] crate::scheduler::zone::ZoneError),
}

/// A bundle ready to run.
pub struct Prepared {
    /// Its manifest.
    pub manifest: AppManifest,
    /// Its compiled components.
    pub runtime: Arc<Runtime>,
}

/// Prepares `bundle` to run on this device (`identity`) with the backends `services` builds.
pub fn prepare(
    bundle: &VerifiedBundle,
    services: &ServicesFactory,
    identity: &DeviceIdentity,
) -> Result<Prepared, PrepareError> {
    let mut manifest = parse_checked(bundle)?;
    identity.fill_grants(&mut manifest);
    // Zones and the board's bindings before compiling: cheap, and what a device refuses most
    // often; refused here, the running version stays.
    crate::scheduler::zone::check_app(&manifest)?;
    let services = services(&manifest)?;
    let components = compile(bundle, &manifest)?;
    let runtime = Runtime::from_components(&manifest.app.name, components, services);
    Ok(Prepared {
        manifest,
        runtime: Arc::new(runtime),
    })
}

/// Refuses what every device would refuse, before any device sees it: the same manifest checks
/// ([`check_manifest`]) and the same compile and import checks as [`prepare`], without a
/// device's services. `outpost bundle build` and `outpost fleet publish` call it, so an app
/// every device would refuse is never published. Returns the bundle's manifest.
pub fn check(bundle: &VerifiedBundle) -> Result<AppManifest, PrepareError> {
    let manifest = parse_checked(bundle)?;
    compile(bundle, &manifest)?;
    Ok(manifest)
}

/// Parses `bundle`'s manifest and checks it against the header and the modules.
fn parse_checked(bundle: &VerifiedBundle) -> Result<AppManifest, PrepareError> {
    let header = &bundle.header;
    let path = PathBuf::from(format!(
        "bundle/{}/{}/outpost.toml",
        header.app, header.version
    ));
    let manifest = outpost_manifest::parse(&bundle.manifest, &path)?;
    let packed: Vec<&str> = bundle.modules.iter().map(|m| m.id.as_str()).collect();
    check_manifest(&manifest, header, &packed)?;
    Ok(manifest)
}

/// Compiles every component of `manifest` from `bundle`'s modules, checking their imports.
fn compile(
    bundle: &VerifiedBundle,
    manifest: &AppManifest,
) -> Result<Vec<LoadedComponent>, PrepareError> {
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
    Ok(components)
}

/// The rules a bundle's manifest must meet on every device, apart from compiling its modules:
/// it names the app and version of the signed `header` and declares exactly the `modules`
/// packed. One function for the device ([`prepare`]) and the operator ([`check`]); a new
/// device-independent rule belongs here.
pub fn check_manifest(
    manifest: &AppManifest,
    header: &BundleHeader,
    modules: &[&str],
) -> Result<(), PrepareError> {
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
    let packed: BTreeSet<&str> = modules.iter().copied().collect();
    if declared != packed {
        return Err(PrepareError::Mismatch(format!(
            "the manifest declares components {declared:?} but the bundle holds modules {packed:?}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(app: &str, version: &str) -> BundleHeader {
        BundleHeader {
            app: app.into(),
            version: outpost_bundle::parse_version(version).expect("version"),
            body_len: 0,
            body_digest: outpost_bundle::sha256(b""),
            created_ms: 0,
            key_id: outpost_bundle::KeyId([0; 8]),
        }
    }

    fn manifest() -> AppManifest {
        let text = r#"manifest_version = 1
[app]
name = "pump"
version = "1.2.0"
[[component]]
id = "probe"
source = "probe.wasm"
[[component.trigger]]
interval = "1s"
"#;
        outpost_manifest::parse(text, std::path::Path::new("outpost.toml")).expect("manifest")
    }

    #[test]
    fn the_shared_manifest_check_refuses_what_disagrees_with_the_header_or_the_modules() {
        let manifest = manifest();
        assert!(check_manifest(&manifest, &header("pump", "1.2.0"), &["probe"]).is_ok());
        let refused = |header: BundleHeader, modules: &[&str]| {
            check_manifest(&manifest, &header, modules)
                .expect_err("refused")
                .to_string()
        };
        assert!(refused(header("other", "1.2.0"), &["probe"]).contains("names app 'pump'"));
        assert!(refused(header("pump", "1.3.0"), &["probe"]).contains("version 1.2.0"));
        assert!(refused(header("pump", "1.2.0"), &["probe", "extra"]).contains("holds modules"));
    }
}
