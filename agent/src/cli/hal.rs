//! `outpost hal list`: every sensor and GPIO line this board exposes, with its current value.

use std::path::PathBuf;
use std::process::ExitCode;

use outpost_hal::{GpioBoard, LinuxBoard, describe};

/// `outpost hal ...`
#[derive(clap::Subcommand)]
pub enum HalCommand {
    /// List sensors (thermal zones, hwmon, IIO, system) and GPIO lines with current values.
    List {
        /// Filesystem root to read `sys/` and `proc/` under (a test tree, or `/`).
        #[arg(long, default_value = "/")]
        root: PathBuf,
        /// Directory whose filesystem `system/disk_free` reports.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Directory holding the `gpiochip*` devices.
        #[arg(long, default_value = "/dev")]
        dev: PathBuf,
    },
}

/// Runs an `outpost hal` command.
pub fn run(command: HalCommand) -> anyhow::Result<ExitCode> {
    let HalCommand::List { root, data, dev } = command;
    let board = LinuxBoard::discover_with(&root, data.as_deref())?;
    let sensors = describe(&board);
    println!("{:<40} {:>14} {:<6} SOURCE", "SENSOR", "VALUE", "UNIT");
    for (info, reading) in &sensors {
        match reading {
            Ok(reading) => println!(
                "{:<40} {:>14.3} {:<6} {}",
                info.name, reading.value, info.unit, info.source
            ),
            Err(error) => println!(
                "{:<40} {:>14} {:<6} {} ({error})",
                info.name, "unreadable", info.unit, info.source
            ),
        }
    }
    if sensors.is_empty() {
        println!("(no sensors under {})", root.display());
    }
    gpio_lines(&dev);
    Ok(ExitCode::SUCCESS)
}

#[cfg(target_os = "linux")]
fn gpio_lines(dev: &std::path::Path) {
    match outpost_hal::LinuxGpio::discover(dev) {
        Ok(gpio) => {
            let lines = gpio.lines();
            if lines.is_empty() {
                println!("(no GPIO chips in {})", dev.display());
            }
            for line in lines {
                println!(
                    "gpio {:<20} {:<16} {:?}{}",
                    line.name,
                    line.line_name.unwrap_or_default(),
                    line.direction,
                    line.consumer
                        .map(|c| format!(" (used by {c})"))
                        .unwrap_or_default()
                );
            }
        }
        Err(error) => println!("(GPIO unavailable: {error})"),
    }
}

#[cfg(not(target_os = "linux"))]
fn gpio_lines(_dev: &std::path::Path) {
    println!("(GPIO character devices exist on Linux only)");
}
