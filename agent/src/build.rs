//! Runs each component's build command (from its manifest `build` table).

use std::path::PathBuf;
use std::process::Command;

use outpost_manifest::AppManifest;
use thiserror::Error;

/// Why a build failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The command could not be started.
    #[error("component '{component}': cannot run `{command}` in {workdir}: {source}")]
    Spawn {
        /// Component id.
        component: String,
        /// The command line.
        command: String,
        /// Where it ran.
        workdir: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The command ran and failed.
    #[error("component '{component}': `{command}` failed ({status})")]
    Failed {
        /// Component id.
        component: String,
        /// The command line.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
    },
    /// The command succeeded but did not produce the manifest's `source`.
    #[error("component '{component}': build succeeded but {path} does not exist (check `source`)")]
    NoOutput {
        /// Component id.
        component: String,
        /// The expected wasm file.
        path: PathBuf,
    },
}

/// Builds every component that has a build command; returns how many were built.
///
/// Build tools such as cargo decide themselves what is out of date, so running the command on
/// every `outpost up` is cheap when nothing changed.
pub fn build_app(manifest: &AppManifest) -> Result<usize, BuildError> {
    let mut built = 0;
    for component in &manifest.components {
        let Some(build) = &component.build else {
            continue;
        };
        tracing::info!(component = %component.id, command = %build.command, "building");
        let status = Command::new("sh")
            .arg("-c")
            .arg(&build.command)
            .current_dir(&build.workdir)
            .status()
            .map_err(|source| BuildError::Spawn {
                component: component.id.clone(),
                command: build.command.clone(),
                workdir: build.workdir.clone(),
                source,
            })?;
        if !status.success() {
            return Err(BuildError::Failed {
                component: component.id.clone(),
                command: build.command.clone(),
                status,
            });
        }
        if !component.source.exists() {
            return Err(BuildError::NoOutput {
                component: component.id.clone(),
                path: component.source.clone(),
            });
        }
        built += 1;
    }
    Ok(built)
}
