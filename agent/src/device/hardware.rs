//! The board a device runs on: its sensors and GPIO lines, discovered at start.

use std::path::Path;
use std::sync::Arc;

use outpost_hal::{Clock, GpioBoard, SensorBoard};

/// The device's GPIO chips (`/dev/gpiochip*`, as `outpost hal list` shows them) when they can
/// be opened; otherwise `None`, which the app turns into a simulated board without lines.
pub fn gpio() -> Option<Arc<dyn GpioBoard>> {
    #[cfg(target_os = "linux")]
    match outpost_hal::LinuxGpio::discover(Path::new("/dev")) {
        Ok(gpio) => return Some(Arc::new(gpio)),
        Err(error) => {
            tracing::warn!(%error, "GPIO unavailable; components' gpio calls will find no lines");
        }
    }
    None
}

/// The sensors fleet-installed apps read: the Linux board's, or none where there is no sysfs.
pub fn sensors(clock: Arc<dyn Clock>) -> Arc<dyn SensorBoard> {
    #[cfg(target_os = "linux")]
    match outpost_hal::LinuxBoard::discover(Path::new("/")) {
        Ok(board) => return Arc::new(board),
        Err(error) => tracing::warn!(%error, "no Linux sensors; fleet apps will find none"),
    }
    match outpost_hal::sim::SimBoard::new(&[], Path::new("."), clock) {
        Ok(board) => Arc::new(board),
        Err(error) => unreachable!("an empty simulated board is valid: {error}"),
    }
}
