//! The Linux board: sensors read from the kernel's standard interfaces under a filesystem root,
//! and GPIO lines over the GPIO character device.
//!
//! [`LinuxBoard`] implements [`SensorBoard`](crate::SensorBoard). It discovers its sensors once,
//! in [`LinuxBoard::discover`], and re-reads the sensor's file on every read:
//! - thermal zones: `sys/class/thermal/thermal_zone*/temp`, named `thermal/<type>`;
//! - hwmon: `sys/class/hwmon/hwmon*/{temp,in,fan,curr,power,humidity}N_input`, named
//!   `hwmon/<name>/<label or channel>`;
//! - IIO: `sys/bus/iio/devices/iio:device*/in_<channel>_{raw,input}`, named
//!   `iio/<device>/<channel>`;
//! - system: `system/{cpu_load,memory_available,memory_used_percent,uptime}` from `proc/`, and
//!   `system/disk_free` for a path given to [`LinuxBoard::discover_with`].
//!
//! The root is `/` on a device and a directory of fake files in tests, so every path the board
//! touches is relative to it. Values are converted to SI-style units (°C, V, A, W, %, RPM, ...);
//! each sensor's [`SensorInfo::unit`](crate::SensorInfo::unit) says which.
//!
//! When two devices share a name, each gets its kernel index: `thermal/acpitz.0`,
//! `thermal/acpitz.1`. When two channels of one hwmon device share a label, they fall back to
//! their channel names (`temp1`, `temp2`).
//!
//! [`LinuxGpio`] (Linux only) implements [`GpioBoard`](crate::GpioBoard) over `/dev/gpiochip*`.
//!
//! Submodules:
//! - `board`: [`LinuxBoard`], [`describe`] and the per-sensor read logic.
//! - `thermal`, `hwmon`, `iio`, `system`: discovery of each kind of sensor.
//! - `sysfs`: reading and parsing one small kernel file, with errors that name it.
//! - `lines`: GPIO line names (`gpiochip0:17`, `GPIO17`), for [`LinuxGpio`] and
//!   [`SimGpio`](crate::SimGpio).
//! - `gpio`: [`LinuxGpio`].

mod board;
#[cfg(target_os = "linux")]
mod gpio;
mod hwmon;
mod iio;
pub(crate) mod lines;
mod sysfs;
mod system;
mod thermal;

use std::io;
use std::path::PathBuf;

use thiserror::Error;

pub use board::{LinuxBoard, describe};
#[cfg(target_os = "linux")]
pub use gpio::LinuxGpio;

/// Why a Linux board could not be discovered.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LinuxError {
    /// The filesystem root given to discovery is not a readable directory.
    #[error("board root {}: {source}", path.display())]
    Root {
        /// The root as given.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// A directory of sensors exists but could not be listed.
    #[error("listing {}: {source}", path.display())]
    Scan {
        /// The directory, under the root.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
}
