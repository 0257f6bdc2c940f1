//! System figures from `/proc` under the board's root, and free disk space by `statvfs`.

use std::path::{Path, PathBuf};

use super::board::{Found, Source};
use super::sysfs;

const KIB_PER_MIB: f64 = 1024.0;

/// A figure read from a `/proc` table.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ProcFigure {
    /// First field of `proc/loadavg`: runnable tasks averaged over a minute.
    CpuLoad,
    /// `MemAvailable` of `proc/meminfo`, in MiB.
    MemoryAvailable,
    /// `1 - MemAvailable / MemTotal` of `proc/meminfo`, in percent.
    MemoryUsedPercent,
    /// First field of `proc/uptime`, in seconds.
    Uptime,
}

/// The `system/*` sensors whose files exist under `root`, plus `system/disk_free` when a
/// path is given.
pub(crate) fn discover(root: &Path, disk_path: Option<&Path>) -> Vec<Found> {
    let figures = [
        ("cpu_load", "", "proc/loadavg", ProcFigure::CpuLoad),
        (
            "memory_available",
            "MiB",
            "proc/meminfo",
            ProcFigure::MemoryAvailable,
        ),
        (
            "memory_used_percent",
            "%",
            "proc/meminfo",
            ProcFigure::MemoryUsedPercent,
        ),
        ("uptime", "s", "proc/uptime", ProcFigure::Uptime),
    ];
    let mut sensors: Vec<Found> = figures
        .into_iter()
        .map(|(name, unit, file, figure)| (name, unit, root.join(file), figure))
        .filter(|(_, _, file, _)| file.is_file())
        .map(|(name, unit, file, figure)| Found {
            name: format!("system/{name}"),
            unit,
            source: Source::Proc(figure, file),
        })
        .collect();
    if let Some(path) = disk_path {
        sensors.push(Found {
            name: "system/disk_free".to_owned(),
            unit: "MiB",
            source: Source::DiskFree(PathBuf::from(path)),
        });
    }
    sensors
}

impl ProcFigure {
    /// Reads the figure from `file`.
    pub(crate) fn read(self, file: &Path) -> Result<f64, String> {
        let text = sysfs::read_text(file)?;
        match self {
            ProcFigure::CpuLoad | ProcFigure::Uptime => {
                let first = text.split_whitespace().next().unwrap_or_default();
                sysfs::parse_number(first).ok_or_else(|| sysfs::not_a_number(file, &text))
            }
            ProcFigure::MemoryAvailable => {
                Ok(meminfo_kib(file, &text, "MemAvailable")? / KIB_PER_MIB)
            }
            ProcFigure::MemoryUsedPercent => {
                let total = meminfo_kib(file, &text, "MemTotal")?;
                let available = meminfo_kib(file, &text, "MemAvailable")?;
                if total <= 0.0 {
                    return Err(format!("{} gives MemTotal 0", file.display()));
                }
                Ok((total - available) / total * 100.0)
            }
        }
    }
}

/// The value of `key` in a `proc/meminfo` text (`MemAvailable:    2881236 kB`), in KiB.
fn meminfo_kib(file: &Path, text: &str, key: &str) -> Result<f64, String> {
    let line = text
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .ok_or_else(|| format!("{} has no {key} line", file.display()))?;
    let mut fields = line.split_whitespace();
    let value = fields.next().and_then(sysfs::parse_number);
    match (value, fields.next(), fields.next()) {
        (Some(kib), Some("kB"), None) if kib >= 0.0 => Ok(kib),
        _ => Err(format!(
            "{} has {key} {}, not a size in kB",
            file.display(),
            sysfs::quote(line)
        )),
    }
}

/// Space available to unprivileged users on the filesystem holding `path`, in MiB.
#[cfg(unix)]
pub(crate) fn disk_free_mib(path: &Path) -> Result<f64, String> {
    const BYTES_PER_MIB: f64 = 1024.0 * 1024.0;
    let stat = rustix::fs::statvfs(path).map_err(|errno| {
        format!(
            "statvfs {}: {}",
            path.display(),
            std::io::Error::from(errno)
        )
    })?;
    Ok(stat.f_bavail as f64 * stat.f_frsize as f64 / BYTES_PER_MIB)
}

/// Free space is measured only on Unix.
#[cfg(not(unix))]
pub(crate) fn disk_free_mib(path: &Path) -> Result<f64, String> {
    Err(format!(
        "free space of {} is not measured on this platform",
        path.display()
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_lines_must_be_sizes_in_kb() {
        let file = Path::new("/proc/meminfo");
        let text = "MemTotal:        3884484 kB\nMemAvailable:    2881236 kB\nHugePages_Total: 0\n";
        assert_eq!(meminfo_kib(file, text, "MemTotal"), Ok(3884484.0));
        assert_eq!(meminfo_kib(file, text, "MemAvailable"), Ok(2881236.0));
        let missing = meminfo_kib(file, text, "MemFree").unwrap_err();
        assert_eq!(missing, "/proc/meminfo has no MemFree line");
        let unitless = meminfo_kib(file, text, "HugePages_Total").unwrap_err();
        assert!(unitless.contains("not a size in kB"), "{unitless}");
        assert!(meminfo_kib(file, "MemTotal: -5 kB\n", "MemTotal").is_err());
        assert!(meminfo_kib(file, "MemTotal: 5 kB extra\n", "MemTotal").is_err());
    }
}
