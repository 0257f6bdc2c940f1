//! The board a device runs on, built once, and what each app on it sees of it.
//!
//! [`Hardware`] is the one place that decides which sensors and GPIO lines an app reads:
//! `outpost agent` discovers the real board (`[board]` in `agent.toml`) and binds each app's
//! logical names to it ([`crate::binding`]); `outpost up` and `outpost agent --simulate` give
//! each app the simulated board its manifest describes. The local `--app` and fleet-installed
//! apps go through the same [`Hardware::for_app`], so they cannot drift apart.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use outpost_hal::sim::{SimBoard, SimError};
use outpost_hal::{Clock, GpioBoard, SensorBoard, SimGpio};
use outpost_manifest::AppManifest;
use serde::Deserialize;

use crate::binding::{BindError, Bindings, BoundGpio, BoundSensors, Needs, resolve};

/// Where the device's board is (`[board]` in `agent.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardSettings {
    /// Filesystem root holding `sys/` and `proc/` (`/`; tests point it at a fake tree).
    #[serde(default = "default_root")]
    pub root: PathBuf,
    /// Directory of the `gpiochip*` devices.
    #[serde(default = "default_gpio_dev")]
    pub gpio_dev: PathBuf,
    /// Run every app on the simulated board its manifest describes instead of the real one
    /// (also `outpost agent --simulate`).
    #[serde(default)]
    pub simulate: bool,
}

impl Default for BoardSettings {
    fn default() -> Self {
        BoardSettings {
            root: default_root(),
            gpio_dev: default_gpio_dev(),
            simulate: false,
        }
    }
}

fn default_root() -> PathBuf {
    PathBuf::from("/")
}

fn default_gpio_dev() -> PathBuf {
    PathBuf::from("/dev")
}

/// What an app reads: sensors and GPIO lines under its own names.
#[derive(Clone)]
pub struct AppBoard {
    /// Its sensors.
    pub sensors: Arc<dyn SensorBoard>,
    /// Its GPIO lines.
    pub gpio: Arc<dyn GpioBoard>,
}

/// Why an app cannot get a board.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HardwareError {
    /// Some of its names cannot be bound on this board.
    #[error(transparent)]
    Unbound(#[from] BindError),
    /// Its simulated board is misconfigured.
    #[error("simulated board: {0}")]
    Simulator(#[from] SimError),
    /// This device's policy refuses it (checked with the board, as both are the device's
    /// say over an app whoever signed it).
    #[error("refused by this device: {0}")]
    Policy(#[from] crate::policy::PolicyError),
}

/// The device's board.
pub struct Hardware {
    kind: Kind,
    clock: Arc<dyn Clock>,
}

enum Kind {
    /// Each app gets its manifest's simulated sensors, and these GPIO lines unbound (a line
    /// that is missing is not found when used, as under `outpost up`).
    Simulated { gpio: Arc<dyn GpioBoard> },
    /// One board given whole, for every app (component tests script it themselves).
    Fixed(AppBoard),
    /// The discovered board, bound per app.
    Real {
        sensors: Arc<dyn SensorBoard>,
        gpio: Option<Arc<dyn GpioBoard>>,
        bindings: Bindings,
    },
}

impl Hardware {
    /// Simulated boards, one per app from its manifest (`outpost up`).
    pub fn simulated(clock: Arc<dyn Clock>) -> Hardware {
        Hardware {
            kind: Kind::Simulated {
                gpio: Arc::new(SimGpio::new()),
            },
            clock,
        }
    }

    /// Simulated sensors with `gpio` as every app's lines, unbound (tests of GPIO grants).
    pub fn simulated_with_gpio(clock: Arc<dyn Clock>, gpio: Arc<dyn GpioBoard>) -> Hardware {
        Hardware {
            kind: Kind::Simulated { gpio },
            clock,
        }
    }

    /// `board` as every app's board, names unbound (`outpost test` scripts its sensors and
    /// lines itself).
    pub fn fixed(board: AppBoard, clock: Arc<dyn Clock>) -> Hardware {
        Hardware {
            kind: Kind::Fixed(board),
            clock,
        }
    }

    /// The board `settings` describe, with `bindings` for apps' names; `data_dir` is where
    /// `system/disk_free` looks. A board without sysfs has no sensors and one without GPIO
    /// chips no lines: apps needing them are then refused by name.
    pub fn discover(
        settings: &BoardSettings,
        bindings: Bindings,
        data_dir: &Path,
        clock: Arc<dyn Clock>,
    ) -> Hardware {
        if settings.simulate {
            return Hardware::simulated(clock);
        }
        Hardware {
            kind: Kind::Real {
                sensors: sensors(&settings.root, data_dir, clock.clone()),
                gpio: gpio(&settings.gpio_dev),
                bindings,
            },
            clock,
        }
    }

    /// The board `manifest`'s app reads, or why it cannot run here (every unbindable name).
    pub fn for_app(&self, manifest: &AppManifest) -> Result<AppBoard, HardwareError> {
        match &self.kind {
            Kind::Simulated { gpio } => {
                let base = manifest.path.parent().unwrap_or(Path::new("."));
                Ok(AppBoard {
                    sensors: Arc::new(SimBoard::new(
                        &manifest.simulator,
                        base,
                        self.clock.clone(),
                    )?),
                    gpio: gpio.clone(),
                })
            }
            Kind::Fixed(board) => Ok(board.clone()),
            Kind::Real {
                sensors,
                gpio,
                bindings,
            } => {
                let lines = gpio.as_ref().map(|g| g.lines());
                let resolved = resolve(
                    &manifest.app.name,
                    &Needs::of(manifest),
                    bindings,
                    &sensors.sensors(),
                    lines.as_deref(),
                )?;
                let gpio: Arc<dyn GpioBoard> = match gpio {
                    Some(gpio) => Arc::new(BoundGpio::new(gpio.clone(), resolved.lines)),
                    None => Arc::new(SimGpio::new()),
                };
                Ok(AppBoard {
                    sensors: Arc::new(BoundSensors::new(sensors.clone(), resolved.sensors)),
                    gpio,
                })
            }
        }
    }
}

/// The Linux board's sensors under `root`, or none where there is no sysfs.
fn sensors(root: &Path, data_dir: &Path, clock: Arc<dyn Clock>) -> Arc<dyn SensorBoard> {
    match outpost_hal::LinuxBoard::discover_with(root, Some(data_dir)) {
        Ok(board) => return Arc::new(board),
        Err(error) => {
            tracing::warn!(%error, "no board sensors; apps that read sensors will be refused")
        }
    }
    match SimBoard::new(&[], Path::new("."), clock) {
        Ok(board) => Arc::new(board),
        Err(error) => unreachable!("an empty simulated board is valid: {error}"),
    }
}

/// The GPIO chips in `dev` (as `outpost hal list` shows them) when they can be opened.
fn gpio(dev: &Path) -> Option<Arc<dyn GpioBoard>> {
    #[cfg(target_os = "linux")]
    match outpost_hal::LinuxGpio::discover(dev) {
        Ok(gpio) => return Some(Arc::new(gpio)),
        Err(error) => {
            tracing::info!(%error, "no GPIO chips; apps that use GPIO lines will be refused");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = dev;
    None
}
