//! Hardware monitors: `sys/class/hwmon/hwmon<N>/`, one per chip (`cpu_thermal`, `rpi_volt`,
//! `nvme`, an INA219 power monitor, a SHT3x humidity sensor, ...). Each `<type><M>_input` file is
//! one sensor, named by its `<type><M>_label` when there is one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::LinuxError;
use super::board::{Attribute, Found, Source, device_names};
use super::sysfs;

/// The channel types read, with their unit and the factor from the kernel's unit
/// (Documentation/hwmon/sysfs-interface.rst), in listing order.
const TYPES: &[(&str, &str, f64)] = &[
    ("temp", "°C", 1e-3),    // millidegrees Celsius
    ("in", "V", 1e-3),       // millivolts
    ("curr", "A", 1e-3),     // milliamperes
    ("power", "W", 1e-6),    // microwatts
    ("fan", "RPM", 1.0),     // revolutions per minute
    ("humidity", "%", 1e-3), // milli-percent relative humidity
];

/// One `<type><M>_input` file of a device.
struct Channel {
    /// Position of the type in [`TYPES`], then the number: the listing order.
    order: (usize, u64),
    unit: &'static str,
    factor: f64,
    /// `temp1`, `in0`, ...
    id: String,
    label: Option<String>,
    file: PathBuf,
}

/// Sensors named `hwmon/<device>/<label or channel>`; `<device>` is the `name` attribute
/// (`<name>.<N>` when names repeat, `hwmon<N>` when it is missing).
pub(crate) fn discover(root: &Path) -> Result<Vec<Found>, LinuxError> {
    let devices = sysfs::numbered_entries(&root.join("sys/class/hwmon"), "hwmon")?;
    let mut named = Vec::with_capacity(devices.len());
    let mut channels = Vec::with_capacity(devices.len());
    for device in &devices {
        // Drivers from before Linux 3.x put the attributes in the parent device's directory.
        let mut dir = device.path.clone();
        let mut found = channels_in(&dir);
        if found.is_empty() {
            dir = device.path.join("device");
            found = channels_in(&dir);
        }
        let name = sysfs::read_name(&device.path.join("name"))
            .or_else(|| sysfs::read_name(&dir.join("name")));
        named.push((device.index, name));
        channels.push(found);
    }
    let names = device_names(&named, "hwmon");
    let mut sensors = Vec::new();
    for (device, channels) in names.into_iter().zip(channels) {
        let channel_names = channel_names(&channels);
        for (channel, channel_name) in channels.into_iter().zip(channel_names) {
            sensors.push(Found {
                name: format!("hwmon/{device}/{channel_name}"),
                unit: channel.unit,
                source: Source::Attribute(Attribute::scaled(channel.file, channel.factor)),
            });
        }
    }
    Ok(sensors)
}

/// The readable channels in `dir`, in [`TYPES`] order then by number.
fn channels_in(dir: &Path) -> Vec<Channel> {
    let mut channels: Vec<Channel> = sysfs::file_names(dir)
        .into_iter()
        .filter_map(|file_name| {
            let id = file_name.strip_suffix("_input")?;
            let digits_at = id.find(|c: char| c.is_ascii_digit())?;
            let (kind_name, digits) = id.split_at(digits_at);
            let kind = TYPES.iter().position(|(name, _, _)| *name == kind_name)?;
            let &(_, unit, factor) = TYPES.get(kind)?;
            if !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let number = digits.parse().ok()?;
            Some(Channel {
                order: (kind, number),
                unit,
                factor,
                id: id.to_owned(),
                label: sysfs::read_name(&dir.join(format!("{id}_label"))),
                file: dir.join(&file_name),
            })
        })
        .collect();
    channels.sort_by_key(|channel| channel.order);
    channels
}

/// Each channel's label, or its id when it has none or shares its label with another channel.
fn channel_names(channels: &[Channel]) -> Vec<String> {
    let preferred: Vec<&str> = channels
        .iter()
        .map(|channel| channel.label.as_deref().unwrap_or(&channel.id))
        .collect();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for name in &preferred {
        *counts.entry(name).or_default() += 1;
    }
    preferred
        .iter()
        .zip(channels)
        .map(|(name, channel)| match counts.get(name) {
            Some(&count) if count > 1 => channel.id.clone(),
            _ => (*name).to_owned(),
        })
        .collect()
}
