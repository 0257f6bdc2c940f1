//! A fake filesystem root in a temp dir, laid out and formatted as the kernel lays out and
//! formats sysfs and `/proc`: one value per attribute file with a trailing newline.

use std::fs;
use std::path::{Path, PathBuf};

use outpost_hal::{LinuxBoard, Reading, SensorBoard, SensorError, SensorInfo};
use tempfile::TempDir;

/// A temp dir standing in for `/`.
pub struct FakeRoot {
    dir: TempDir,
}

impl FakeRoot {
    /// An empty root.
    pub fn new() -> FakeRoot {
        FakeRoot {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// The root directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The absolute path of `relative` under the root.
    pub fn at(&self, relative: &str) -> PathBuf {
        self.path().join(relative)
    }

    /// Writes `contents` to `relative`, creating directories on the way.
    pub fn file(&self, relative: &str, contents: impl AsRef<[u8]>) -> &FakeRoot {
        let path = self.at(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create dirs");
        }
        fs::write(&path, contents).expect("write fake file");
        self
    }

    /// Removes the file at `relative`.
    pub fn remove(&self, relative: &str) {
        fs::remove_file(self.at(relative)).expect("remove fake file");
    }

    /// `sys/class/thermal/thermal_zone<index>/` with its `type` and `temp` (m°C).
    pub fn thermal_zone(&self, index: u32, kind: &str, millidegrees: i64) -> &FakeRoot {
        let zone = format!("sys/class/thermal/thermal_zone{index}");
        self.file(&format!("{zone}/type"), format!("{kind}\n"))
            .file(&format!("{zone}/temp"), format!("{millidegrees}\n"))
            .file(&format!("{zone}/mode"), "enabled\n")
    }

    /// `sys/class/hwmon/hwmon<index>/` with its `name` and the given attribute files.
    pub fn hwmon(&self, index: u32, name: &str, attributes: &[(&str, &str)]) -> &FakeRoot {
        let device = format!("sys/class/hwmon/hwmon{index}");
        self.file(&format!("{device}/name"), format!("{name}\n"));
        for (attribute, value) in attributes {
            self.file(&format!("{device}/{attribute}"), format!("{value}\n"));
        }
        self
    }

    /// `sys/bus/iio/devices/iio:device<index>/` with its `name` and the given attribute files.
    pub fn iio(&self, index: u32, name: &str, attributes: &[(&str, &str)]) -> &FakeRoot {
        let device = format!("sys/bus/iio/devices/iio:device{index}");
        self.file(&format!("{device}/name"), format!("{name}\n"));
        for (attribute, value) in attributes {
            self.file(&format!("{device}/{attribute}"), format!("{value}\n"));
        }
        self
    }

    /// `proc/loadavg`, `proc/meminfo` and `proc/uptime` as a 4 GB Pi prints them.
    pub fn proc_files(&self) -> &FakeRoot {
        self.file("proc/loadavg", "0.52 0.58 0.59 1/467 12345\n")
            .file(
                "proc/meminfo",
                "MemTotal:        4000000 kB\n\
                 MemFree:          250000 kB\n\
                 MemAvailable:    1000000 kB\n\
                 Buffers:           32000 kB\n\
                 HugePages_Total:       0\n\
                 Hugepagesize:       2048 kB\n",
            )
            .file("proc/uptime", "12345.67 23456.78\n")
    }

    /// The board discovered under this root.
    pub fn board(&self) -> LinuxBoard {
        LinuxBoard::discover(self.path()).expect("discover")
    }
}

/// The names the board lists, in order.
pub fn names(board: &dyn SensorBoard) -> Vec<String> {
    board.sensors().into_iter().map(|info| info.name).collect()
}

/// The listing entry for `name`.
pub fn info(board: &dyn SensorBoard, name: &str) -> SensorInfo {
    board
        .sensors()
        .into_iter()
        .find(|info| info.name == name)
        .unwrap_or_else(|| panic!("no sensor {name} in {:?}", names(board)))
}

/// Reads `name` and checks it is `expected` (to 1e-9) in `unit`.
pub fn assert_reads(board: &dyn SensorBoard, name: &str, expected: f64, unit: &str) {
    let reading = board.read(name);
    let Ok(Reading { value }) = reading else {
        panic!("{name}: {reading:?}");
    };
    assert!(
        (value - expected).abs() < 1e-9,
        "{name}: read {value}, expected {expected}"
    );
    assert_eq!(info(board, name).unit, unit, "unit of {name}");
}

/// Reads `name`, expects it unavailable, and returns the reason.
pub fn unavailable(board: &dyn SensorBoard, name: &str) -> String {
    match board.read(name) {
        Err(SensorError::Unavailable {
            name: named,
            reason,
        }) => {
            assert_eq!(named, name);
            reason
        }
        other => panic!("{name}: expected Unavailable, got {other:?}"),
    }
}
