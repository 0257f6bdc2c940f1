//! `outpost hal list`: every sensor and GPIO line this board exposes, with its current value,
//! and how apps' logical names bind to them.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use outpost::binding::{Bindings, Needs, resolve};
use outpost::config::BoardSettings;
use outpost_hal::{GpioBoard, GpioLineInfo, LinuxBoard, SensorBoard, describe};

/// `outpost hal ...`
#[derive(clap::Subcommand)]
pub enum HalCommand {
    /// List sensors (thermal zones, hwmon, IIO, system) and GPIO lines with current values,
    /// then the device's bindings of apps' sensor and line names.
    List {
        /// agent.toml whose `[board]`, `[sensors]` and `[gpio]` to use (default: the
        /// installed one, if any).
        #[arg(long)]
        config: Option<PathBuf>,
        /// An app directory (or outpost.toml) whose names to bind (repeatable; default: the
        /// config's local app).
        #[arg(long = "app")]
        apps: Vec<PathBuf>,
        /// Filesystem root to read `sys/` and `proc/` under (a test tree, or `/`).
        #[arg(long)]
        root: Option<PathBuf>,
        /// Directory whose filesystem `system/disk_free` reports.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Directory holding the `gpiochip*` devices.
        #[arg(long)]
        dev: Option<PathBuf>,
    },
}

/// The agent.toml `hal list` reads when none is given.
const INSTALLED_CONFIG: &str = "/etc/outpost/agent.toml";

/// Runs an `outpost hal` command.
pub fn run(command: HalCommand) -> anyhow::Result<ExitCode> {
    let HalCommand::List {
        config,
        apps,
        root,
        data,
        dev,
    } = command;
    let config = match config {
        Some(path) => Some(outpost::config::load(&path)?),
        None if Path::new(INSTALLED_CONFIG).exists() => {
            outpost::config::load(Path::new(INSTALLED_CONFIG)).ok()
        }
        None => None,
    };
    let defaults = BoardSettings::default();
    let board_settings = config.as_ref().map_or(&defaults, |c| &c.board);
    let root = root.unwrap_or_else(|| board_settings.root.clone());
    let dev = dev.unwrap_or_else(|| board_settings.gpio_dev.clone());
    let data = data.or_else(|| config.as_ref().map(|c| c.data_dir.clone()));
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
    let lines = gpio_lines(&dev);
    let bindings = config
        .as_ref()
        .map(|c| c.bindings.clone())
        .unwrap_or_default();
    let apps: Vec<PathBuf> = if apps.is_empty() {
        config.iter().filter_map(|c| c.app.clone()).collect()
    } else {
        apps
    };
    let mut unbound = false;
    println!();
    show_configured(&bindings, &board, lines.as_deref());
    for app in &apps {
        let manifest = outpost_manifest::load(&super::manifest_path(app))?;
        let needs = Needs::of(&manifest);
        match resolve(
            &manifest.app.name,
            &needs,
            &bindings,
            &board.sensors(),
            lines.as_deref(),
        ) {
            Ok(resolved) => {
                println!("app {}: every name bound", manifest.app.name);
                for (name, bound) in &resolved.sensors {
                    let how = if bound.automatic {
                        "auto"
                    } else {
                        "agent.toml"
                    };
                    println!("  sensor {name:<24} -> {} ({how})", bound.source);
                }
                for (name, line) in &resolved.lines {
                    println!("  gpio   {name:<24} -> {line}");
                }
            }
            Err(error) => {
                unbound = true;
                println!("app {}: NOT RUNNABLE HERE", manifest.app.name);
                for missing in &error.missing {
                    println!("  {missing}");
                }
            }
        }
    }
    Ok(if unbound {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The `[sensors]` and `[gpio]` entries of agent.toml, each with whether its source exists.
fn show_configured(bindings: &Bindings, board: &LinuxBoard, lines: Option<&[GpioLineInfo]>) {
    if bindings.sensors.is_empty() && bindings.gpio.is_empty() {
        println!("(no bindings in agent.toml; apps' names bind automatically where unambiguous)");
        return;
    }
    let sensors = board.sensors();
    for (name, setting) in &bindings.sensors {
        let found = sensors.iter().any(|s| s.name == setting.source());
        let conversion = setting
            .conversion()
            .map(|(scale, offset)| format!(" × {scale} + {offset}"))
            .unwrap_or_default();
        println!(
            "binding sensor {name:<24} -> {}{conversion}{}",
            setting.source(),
            if found { "" } else { "  (NOT ON THIS BOARD)" }
        );
    }
    for (name, line) in &bindings.gpio {
        let found = lines.is_some_and(|lines| {
            lines
                .iter()
                .any(|l| &l.name == line || l.line_name.as_ref() == Some(line))
        });
        println!(
            "binding gpio   {name:<24} -> {line}{}",
            if found { "" } else { "  (NOT ON THIS BOARD)" }
        );
    }
}

#[cfg(target_os = "linux")]
fn gpio_lines(dev: &Path) -> Option<Vec<GpioLineInfo>> {
    match outpost_hal::LinuxGpio::discover(dev) {
        Ok(gpio) => {
            let lines = gpio.lines();
            if lines.is_empty() {
                println!("(no GPIO chips in {})", dev.display());
            }
            for line in &lines {
                println!(
                    "gpio {:<20} {:<16} {:?}{}",
                    line.name,
                    line.line_name.clone().unwrap_or_default(),
                    line.direction,
                    line.consumer
                        .as_ref()
                        .map(|c| format!(" (used by {c})"))
                        .unwrap_or_default()
                );
            }
            Some(lines)
        }
        Err(error) => {
            println!("(GPIO unavailable: {error})");
            None
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn gpio_lines(_dev: &Path) -> Option<Vec<GpioLineInfo>> {
    println!("(GPIO character devices exist on Linux only)");
    None
}
