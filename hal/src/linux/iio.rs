//! Industrial I/O: `sys/bus/iio/devices/iio:device<N>/`, the kernel's interface for ADCs and
//! environmental sensors (BME280, ADS1115, BH1750, MCP3008, accelerometers, ...).
//!
//! Each `in_<channel>_input` (already processed) or `in_<channel>_raw` file is one sensor. A raw
//! value becomes `(raw + offset) × scale` with the first of `in_<channel>_{offset,scale}`,
//! `in_<channel without index>_...` (`voltage-voltage` for `voltage0-voltage1`) and
//! `in_<type>_...` that exists; both are optional. The result is in the unit the kernel ABI
//! (Documentation/ABI/testing/sysfs-bus-iio) gives for the channel type, converted by [`UNITS`].

use std::collections::BTreeSet;
use std::path::Path;

use super::LinuxError;
use super::board::{Attribute, Found, Source, device_names};
use super::sysfs;

/// Channel type → (unit, factor from the kernel's unit). Types not listed keep the kernel's
/// value and have no unit (intensity, proximity, UV index, step counters, ...).
const UNITS: &[(&str, &str, f64)] = &[
    ("temp", "°C", 1e-3),                   // milli degrees Celsius
    ("voltage", "V", 1e-3),                 // millivolts
    ("current", "A", 1e-3),                 // milliamps
    ("power", "W", 1e-3),                   // milliwatts
    ("humidityrelative", "%", 1e-3),        // milli percent
    ("positionrelative", "%", 1e-3),        // milli percent of the pad's size
    ("pressure", "kPa", 1.0),               // kilopascal
    ("illuminance", "lx", 1.0),             // lux
    ("accel", "m/s²", 1.0),                 // metres per second squared
    ("gravity", "m/s²", 1.0),               // metres per second squared
    ("anglvel", "rad/s", 1.0),              // radians per second
    ("angl", "rad", 1.0),                   // radians
    ("incli", "°", 1.0),                    // degrees
    ("magn", "G", 1.0),                     // gauss
    ("capacitance", "nF", 1.0),             // nanofarads
    ("resistance", "Ω", 1.0),               // ohms
    ("concentration", "%", 1.0),            // percent
    ("distance", "m", 1.0),                 // metres
    ("velocity", "m/s", 1.0),               // metres per second
    ("electricalconductivity", "S/m", 1.0), // siemens per metre
];

/// Sensors named `iio/<device>/<channel>`; `<device>` is the `name` attribute (`<name>.<N>`
/// when names repeat, `iio:device<N>` when it is missing).
pub(crate) fn discover(root: &Path) -> Result<Vec<Found>, LinuxError> {
    let devices = sysfs::numbered_entries(&root.join("sys/bus/iio/devices"), "iio:device")?;
    let named: Vec<(u64, Option<String>)> = devices
        .iter()
        .map(|device| (device.index, sysfs::read_name(&device.path.join("name"))))
        .collect();
    let names = device_names(&named, "iio:device");
    let mut sensors = Vec::new();
    for (device, name) in devices.iter().zip(names) {
        let files: BTreeSet<String> = sysfs::file_names(&device.path).into_iter().collect();
        let channels: BTreeSet<&str> = files
            .iter()
            .filter_map(|file| file.strip_prefix("in_"))
            .filter_map(|rest| {
                rest.strip_suffix("_raw")
                    .or_else(|| rest.strip_suffix("_input"))
            })
            .filter(|channel| !channel.is_empty())
            .collect();
        for channel in channels {
            let kind = channel_type(channel);
            let (unit, factor) = UNITS
                .iter()
                .find(|(name, _, _)| *name == kind)
                .map_or(("", 1.0), |&(_, unit, factor)| (unit, factor));
            let input = format!("in_{channel}_input");
            let attribute = if files.contains(&input) {
                Attribute::scaled(device.path.join(input), factor)
            } else {
                let shared = |suffix: &str| {
                    lookup_order(channel)
                        .into_iter()
                        .map(|prefix| format!("in_{prefix}_{suffix}"))
                        .find(|file| files.contains(file))
                        .map(|file| device.path.join(file))
                };
                Attribute {
                    file: device.path.join(format!("in_{channel}_raw")),
                    offset: shared("offset"),
                    scale: shared("scale"),
                    factor,
                }
            };
            sensors.push(Found {
                name: format!("iio/{name}/{channel}"),
                unit,
                source: Source::Attribute(attribute),
            });
        }
    }
    Ok(sensors)
}

/// The channel's type: its leading letters (`voltage` for `voltage0-voltage1`, `accel` for
/// `accel_x`, `concentration` for `concentration_co2`).
fn channel_type(channel: &str) -> &str {
    let end = channel
        .find(|c: char| !c.is_ascii_lowercase())
        .unwrap_or(channel.len());
    channel.get(..end).unwrap_or(channel)
}

/// Where a channel's offset and scale may live, most specific first.
fn lookup_order(channel: &str) -> Vec<String> {
    let mut order = vec![channel.to_owned()];
    let without_index: String = channel.chars().filter(|c| !c.is_ascii_digit()).collect();
    for candidate in [without_index, channel_type(channel).to_owned()] {
        if !candidate.is_empty() && !order.contains(&candidate) {
            order.push(candidate);
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_and_lookup_order_follow_the_abi_names() {
        assert_eq!(channel_type("temp"), "temp");
        assert_eq!(channel_type("voltage0-voltage1"), "voltage");
        assert_eq!(channel_type("accel_x"), "accel");
        assert_eq!(channel_type("0weird"), "");
        assert_eq!(lookup_order("voltage3"), ["voltage3", "voltage"]);
        assert_eq!(
            lookup_order("voltage0-voltage1"),
            ["voltage0-voltage1", "voltage-voltage", "voltage"]
        );
        assert_eq!(lookup_order("accel_x"), ["accel_x", "accel"]);
        assert_eq!(lookup_order("temp"), ["temp"]);
    }
}
