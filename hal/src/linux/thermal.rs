//! Thermal zones: `sys/class/thermal/thermal_zone<N>/{type,temp}`, the SoC temperature on
//! every Raspberry Pi (`cpu-thermal`) and most ARM boards.

use std::path::Path;

use super::LinuxError;
use super::board::{Attribute, Found, Source, device_names};
use super::sysfs;

/// One sensor per zone, named `thermal/<type>` (`thermal/<type>.<N>` when types repeat, and
/// `thermal/thermal_zone<N>` when `type` is unreadable). `temp` is in millidegrees Celsius.
pub(crate) fn discover(root: &Path) -> Result<Vec<Found>, LinuxError> {
    let zones = sysfs::numbered_entries(&root.join("sys/class/thermal"), "thermal_zone")?;
    let named: Vec<(u64, Option<String>)> = zones
        .iter()
        .map(|zone| (zone.index, sysfs::read_name(&zone.path.join("type"))))
        .collect();
    let names = device_names(&named, "thermal_zone");
    Ok(zones
        .into_iter()
        .zip(names)
        .map(|(zone, name)| Found {
            name: format!("thermal/{name}"),
            unit: "°C",
            source: Source::Attribute(Attribute::scaled(zone.path.join("temp"), 1e-3)),
        })
        .collect())
}
