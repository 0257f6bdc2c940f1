//! [`LinuxBoard`]: the [`SensorBoard`] over the kernel's sensor files, and [`describe`] for
//! listings of any board.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::{LinuxError, hwmon, iio, sysfs, system, thermal};
use crate::{Reading, SensorBoard, SensorError, SensorInfo};

/// A board whose sensors are the kernel's: thermal zones, hwmon, IIO and system figures.
///
/// Sensors are found once, at discovery; each read opens and parses the sensor's files again
/// (a few microseconds), so a value is never stale and a sensor that goes away reads as
/// [`SensorError::Unavailable`] rather than its last value. See the [module docs](super) for
/// names and units.
#[derive(Debug)]
pub struct LinuxBoard {
    root: PathBuf,
    /// In discovery order (thermal, hwmon, IIO, system), which `sensors()` keeps.
    sensors: Vec<Sensor>,
    by_name: HashMap<String, usize>,
}

/// One discovered sensor before names are made unique.
#[derive(Debug)]
pub(crate) struct Found {
    /// The preferred name (`thermal/cpu-thermal`).
    pub(crate) name: String,
    /// Unit of the converted value.
    pub(crate) unit: &'static str,
    /// Where the value comes from.
    pub(crate) source: Source,
}

#[derive(Debug)]
struct Sensor {
    info: SensorInfo,
    source: Source,
}

/// How a sensor's value is computed from files.
#[derive(Debug)]
pub(crate) enum Source {
    /// One sysfs attribute, optionally with IIO's offset and scale.
    Attribute(Attribute),
    /// One figure from a `/proc` table.
    Proc(system::ProcFigure, PathBuf),
    /// Free space of the filesystem holding a path, in MiB.
    DiskFree(PathBuf),
}

/// `value = (file + offset) × scale × factor`; offset and scale are files re-read every time
/// (IIO lets them change), `factor` converts the kernel's unit to the sensor's.
#[derive(Debug)]
pub(crate) struct Attribute {
    pub(crate) file: PathBuf,
    pub(crate) offset: Option<PathBuf>,
    pub(crate) scale: Option<PathBuf>,
    pub(crate) factor: f64,
}

impl Attribute {
    /// A plain attribute: the file's number times `factor`.
    pub(crate) fn scaled(file: PathBuf, factor: f64) -> Attribute {
        Attribute {
            file,
            offset: None,
            scale: None,
            factor,
        }
    }

    fn read(&self) -> Result<f64, String> {
        let mut value = sysfs::read_number(&self.file)?;
        if let Some(offset) = &self.offset {
            value += sysfs::read_number(offset)?;
        }
        if let Some(scale) = &self.scale {
            value *= sysfs::read_number(scale)?;
        }
        Ok(value * self.factor)
    }
}

impl Source {
    /// The file or path named in listings and errors.
    fn path(&self) -> &Path {
        match self {
            Source::Attribute(attribute) => &attribute.file,
            Source::Proc(_, path) | Source::DiskFree(path) => path,
        }
    }

    fn read(&self) -> Result<f64, String> {
        let value = match self {
            Source::Attribute(attribute) => attribute.read()?,
            Source::Proc(figure, path) => figure.read(path)?,
            Source::DiskFree(path) => system::disk_free_mib(path)?,
        };
        if value.is_finite() {
            Ok(value)
        } else {
            Err(format!(
                "{} gives a non-finite value",
                self.path().display()
            ))
        }
    }
}

impl LinuxBoard {
    /// Finds the sensors under `root` (`/` on a device). Missing interfaces are not errors: an
    /// empty root gives a board without sensors. Offers no `system/disk_free`; see
    /// [`LinuxBoard::discover_with`].
    pub fn discover(root: &Path) -> Result<LinuxBoard, LinuxError> {
        LinuxBoard::discover_with(root, None)
    }

    /// As [`LinuxBoard::discover`], plus `system/disk_free` for the filesystem holding
    /// `disk_path` (usually the agent's data directory). `disk_path` is used as given, not
    /// under `root`; it need not exist yet: reads report it unavailable until it does.
    pub fn discover_with(root: &Path, disk_path: Option<&Path>) -> Result<LinuxBoard, LinuxError> {
        let root_error = |source| LinuxError::Root {
            path: root.to_path_buf(),
            source,
        };
        let meta = fs::metadata(root).map_err(root_error)?;
        if !meta.is_dir() {
            return Err(root_error(io::Error::from(io::ErrorKind::NotADirectory)));
        }
        let mut found = thermal::discover(root)?;
        found.extend(hwmon::discover(root)?);
        found.extend(iio::discover(root)?);
        found.extend(system::discover(root, disk_path));

        let mut taken = HashSet::new();
        let mut sensors = Vec::with_capacity(found.len());
        let mut by_name = HashMap::with_capacity(found.len());
        for Found { name, unit, source } in found {
            let name = unique(name, &mut taken);
            by_name.insert(name.clone(), sensors.len());
            let info = SensorInfo {
                name,
                unit: unit.to_owned(),
                source: source.path().display().to_string(),
            };
            sensors.push(Sensor { info, source });
        }
        Ok(LinuxBoard {
            root: root.to_path_buf(),
            sensors,
            by_name,
        })
    }

    /// The filesystem root the board was discovered under.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// `name`, or `name#2`, `name#3`, ... if taken. Discovery already disambiguates devices and
/// channels; this only guards against names that collide by accident (`a.1` vs. a device `a`
/// with index 1).
fn unique(name: String, taken: &mut HashSet<String>) -> String {
    if taken.insert(name.clone()) {
        return name;
    }
    let mut n = 2u32;
    loop {
        let candidate = format!("{name}#{n}");
        if taken.insert(candidate.clone()) {
            return candidate;
        }
        n = n.saturating_add(1);
    }
}

/// Names for devices of one class: a device keeps its own name unless another device of the
/// class shares it; then each sharer gets `<name>.<kernel index>`. Unnamed devices use
/// `fallback` (such as `hwmon3`).
pub(crate) fn device_names(devices: &[(u64, Option<String>)], fallback: &str) -> Vec<String> {
    let base: Vec<String> = devices
        .iter()
        .map(|(index, name)| name.clone().unwrap_or_else(|| format!("{fallback}{index}")))
        .collect();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for name in &base {
        *counts.entry(name).or_default() += 1;
    }
    base.iter()
        .zip(devices)
        .map(|(name, (index, _))| match counts.get(name.as_str()) {
            Some(&count) if count > 1 => format!("{name}.{index}"),
            _ => name.clone(),
        })
        .collect()
}

impl SensorBoard for LinuxBoard {
    fn sensors(&self) -> Vec<SensorInfo> {
        self.sensors
            .iter()
            .map(|sensor| sensor.info.clone())
            .collect()
    }

    fn read(&self, name: &str) -> Result<Reading, SensorError> {
        let sensor = self
            .by_name
            .get(name)
            .and_then(|&index| self.sensors.get(index))
            .ok_or_else(|| SensorError::NotFound(name.to_owned()))?;
        sensor
            .source
            .read()
            .map(|value| Reading { value })
            .map_err(|reason| SensorError::Unavailable {
                name: name.to_owned(),
                reason,
            })
    }
}

/// Every sensor of `board` with a reading taken now, in the board's order: what a listing
/// such as `outpost hal list` shows. Works for any board.
pub fn describe(board: &dyn SensorBoard) -> Vec<(SensorInfo, Result<Reading, SensorError>)> {
    board
        .sensors()
        .into_iter()
        .map(|info| {
            let reading = board.read(&info.name);
            (info, reading)
        })
        .collect()
}
