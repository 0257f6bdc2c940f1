//! Matching what an app needs against what a board has: pure, so every rule is unit-tested
//! without a board.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use outpost_hal::{GpioLineInfo, SensorInfo};
use outpost_manifest::{AppManifest, TriggerKind};

use super::{Bindings, SensorSetting};

/// The logical names an app uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs {
    /// Sensor name → the unit the app expects, when its manifest declares one (the
    /// `[[simulator.sensor]]` entry of that name gives it).
    pub sensors: BTreeMap<String, Option<String>>,
    /// GPIO line names of its `gpio` grants.
    pub lines: BTreeSet<String>,
}

impl Needs {
    /// Every sensor and line `manifest`'s components are granted or triggered by.
    pub fn of(manifest: &AppManifest) -> Needs {
        let unit = |name: &str| {
            manifest
                .simulator
                .iter()
                .find(|spec| spec.name == name)
                .map(|spec| spec.unit.clone())
                .filter(|unit| !unit.is_empty())
        };
        let mut needs = Needs::default();
        for component in &manifest.components {
            let triggered = component.triggers.iter().filter_map(|t| match &t.kind {
                TriggerKind::Sensor { sensor, .. } => Some(sensor),
                _ => None,
            });
            for sensor in component.grants.sensors.iter().chain(triggered) {
                needs.sensors.insert(sensor.clone(), unit(sensor));
            }
            for grant in &component.grants.gpio {
                needs.lines.insert(grant.line.clone());
            }
        }
        needs
    }
}

/// One logical sensor, bound.
#[derive(Debug, Clone, PartialEq)]
pub struct SensorBinding {
    /// The board's sensor.
    pub source: String,
    /// `(scale, offset)` applied to its value, if any.
    pub conversion: Option<(f64, f64)>,
    /// The unit components see: the app's declared one, else the board's.
    pub unit: String,
    /// Whether the match was automatic (no `[sensors]` entry).
    pub automatic: bool,
}

/// Every name of one app, bound.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resolved {
    /// Logical sensor → its binding.
    pub sensors: BTreeMap<String, SensorBinding>,
    /// Logical line → the board's `<chip>:<offset>` name.
    pub lines: BTreeMap<String, String>,
}

/// One name that could not be bound, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unbound {
    /// A sensor.
    Sensor {
        /// The logical name.
        name: String,
        /// Why, with the fix.
        reason: String,
    },
    /// A GPIO line.
    Line {
        /// The logical name.
        name: String,
        /// Why, with the fix.
        reason: String,
    },
}

impl fmt::Display for Unbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unbound::Sensor { name, reason } => write!(f, "sensor '{name}': {reason}"),
            Unbound::Line { name, reason } => write!(f, "gpio line '{name}': {reason}"),
        }
    }
}

/// An app whose names cannot all be bound on this board.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct BindError {
    /// The app.
    pub app: String,
    /// Every name that failed (not just the first).
    pub missing: Vec<Unbound>,
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "app '{}' cannot run on this board: ", self.app)?;
        for (i, unbound) in self.missing.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{unbound}")?;
        }
        f.write_str(" (bind names in agent.toml [sensors] / [gpio]; `outpost hal list` shows this board's sensors and lines)")
    }
}

/// Binds every name in `needs` for `app`: an entry in `bindings` first, then a board sensor or
/// line of that very name, then (sensors only) the one board sensor whose name fits the logical
/// name and whose unit is the declared one, or failing a name match, the one non-system sensor
/// with the declared unit. Several fitting sensors are ambiguous and need a binding. `lines` is
/// `None` on a board without GPIO.
pub fn resolve(
    app: &str,
    needs: &Needs,
    bindings: &Bindings,
    sensors: &[SensorInfo],
    lines: Option<&[GpioLineInfo]>,
) -> Result<Resolved, BindError> {
    let mut resolved = Resolved::default();
    let mut missing = Vec::new();
    for (name, unit) in &needs.sensors {
        match bind_sensor(name, unit.as_deref(), bindings.sensors.get(name), sensors) {
            Ok(binding) => {
                resolved.sensors.insert(name.clone(), binding);
            }
            Err(reason) => missing.push(Unbound::Sensor {
                name: name.clone(),
                reason,
            }),
        }
    }
    for name in &needs.lines {
        match bind_line(name, bindings.gpio.get(name), lines) {
            Ok(line) => {
                resolved.lines.insert(name.clone(), line);
            }
            Err(reason) => missing.push(Unbound::Line {
                name: name.clone(),
                reason,
            }),
        }
    }
    if missing.is_empty() {
        Ok(resolved)
    } else {
        Err(BindError {
            app: app.to_string(),
            missing,
        })
    }
}

fn bind_sensor(
    name: &str,
    unit: Option<&str>,
    setting: Option<&SensorSetting>,
    sensors: &[SensorInfo],
) -> Result<SensorBinding, String> {
    if let Some(setting) = setting {
        let source = setting.source();
        let Some(info) = sensors.iter().find(|s| s.name == source) else {
            return Err(format!(
                "bound to '{source}' in [sensors], which this board does not have"
            ));
        };
        let conversion = setting.conversion();
        // A conversion is the operator saying what the units are; without one they must agree.
        if conversion.is_none() {
            check_unit(info, unit)?;
        }
        return Ok(binding(info, unit, conversion, false));
    }
    if let Some(info) = sensors.iter().find(|s| s.name == name) {
        check_unit(info, unit)?;
        return Ok(binding(info, unit, None, true));
    }
    let fits_unit = |info: &&SensorInfo| unit.is_none_or(|unit| same_unit(&info.unit, unit));
    let mut candidates: Vec<&SensorInfo> = sensors
        .iter()
        .filter(fits_unit)
        .filter(|info| names_fit(name, &info.name))
        .collect();
    if candidates.is_empty() && unit.is_some() {
        candidates = sensors
            .iter()
            .filter(fits_unit)
            .filter(|info| !info.name.starts_with("system/"))
            .collect();
    }
    match candidates.as_slice() {
        [info] => Ok(binding(info, unit, None, true)),
        [] => Err(match unit {
            Some(unit) => format!("no board sensor in {unit} matches"),
            None => "no board sensor matches".into(),
        }),
        several => Err(format!(
            "ambiguous: {} all fit; bind one in [sensors]",
            several
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn binding(
    info: &SensorInfo,
    unit: Option<&str>,
    conversion: Option<(f64, f64)>,
    automatic: bool,
) -> SensorBinding {
    SensorBinding {
        source: info.name.clone(),
        conversion,
        unit: unit.unwrap_or(&info.unit).to_string(),
        automatic,
    }
}

fn check_unit(info: &SensorInfo, unit: Option<&str>) -> Result<(), String> {
    match unit {
        Some(unit) if !same_unit(&info.unit, unit) => Err(format!(
            "'{}' reads in {} but the app expects {unit}; bind it with scale/offset in [sensors] or bind another source",
            info.name,
            if info.unit.is_empty() {
                "no unit"
            } else {
                &info.unit
            }
        )),
        _ => Ok(()),
    }
}

fn same_unit(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// Whether a board sensor's name fits a logical name: every word of the logical name fits a
/// word of the board's, by being the same or, for words of at least four letters, by one
/// starting with the other (`temperature` fits `temp1` of
/// `hwmon/cpu_thermal/temp1`). Trailing digits are channel numbers and do not count.
fn names_fit(logical: &str, board: &str) -> bool {
    let words = |text: &str| -> Vec<String> {
        text.split(|c: char| !c.is_ascii_alphanumeric())
            .map(|w| {
                w.trim_end_matches(|c: char| c.is_ascii_digit())
                    .to_ascii_lowercase()
            })
            .filter(|w| !w.is_empty())
            .collect()
    };
    let board = words(board);
    words(logical).iter().all(|l| {
        board.iter().any(|b| {
            l == b
                || (l.len() >= 4
                    && b.len() >= 4
                    && (l.starts_with(b.as_str()) || b.starts_with(l.as_str())))
        })
    })
}

fn bind_line(
    name: &str,
    setting: Option<&String>,
    lines: Option<&[GpioLineInfo]>,
) -> Result<String, String> {
    let Some(lines) = lines else {
        return Err("this board has no GPIO chips".into());
    };
    let wanted = setting.map_or(name, String::as_str);
    let found: Vec<&GpioLineInfo> = lines
        .iter()
        .filter(|l| l.name == wanted || l.line_name.as_deref() == Some(wanted))
        .collect();
    match found.as_slice() {
        [line] => Ok(line.name.clone()),
        [] if setting.is_some() => Err(format!(
            "bound to '{wanted}' in [gpio], which this board does not have"
        )),
        [] => Err("no board line has this name".into()),
        several => Err(format!(
            "'{wanted}' names {} lines ({}); bind it by <chip>:<offset> in [gpio]",
            several.len(),
            several
                .iter()
                .map(|l| l.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use outpost_hal::GpioDirection;

    use super::*;

    fn sensor(name: &str, unit: &str) -> SensorInfo {
        SensorInfo {
            name: name.into(),
            unit: unit.into(),
            source: format!("/sys/{name}"),
        }
    }

    fn line(chip: &str, offset: u32, label: Option<&str>) -> GpioLineInfo {
        GpioLineInfo {
            name: format!("{chip}:{offset}"),
            line_name: label.map(Into::into),
            chip: chip.into(),
            offset,
            direction: GpioDirection::Input,
            value: None,
            consumer: None,
        }
    }

    fn pi() -> Vec<SensorInfo> {
        vec![
            sensor("thermal/cpu-thermal", "°C"),
            sensor("hwmon/rpi_volt/in0", "V"),
            sensor("system/cpu_load", "%"),
            sensor("system/memory_used_percent", "%"),
        ]
    }

    fn needs(sensors: &[(&str, Option<&str>)], lines: &[&str]) -> Needs {
        Needs {
            sensors: sensors
                .iter()
                .map(|(n, u)| ((*n).to_string(), u.map(Into::into)))
                .collect(),
            lines: lines.iter().map(|l| (*l).to_string()).collect(),
        }
    }

    #[test]
    fn explicit_bindings_win_and_carry_their_conversion() {
        let mut bindings = Bindings::default();
        bindings.sensors.insert(
            "temperature".into(),
            SensorSetting::Scaled {
                source: "hwmon/rpi_volt/in0".into(),
                scale: 10.0,
                offset: -1.0,
            },
        );
        let resolved = resolve(
            "a",
            &needs(&[("temperature", Some("°C"))], &[]),
            &bindings,
            &pi(),
            None,
        )
        .expect("bound");
        let bound = &resolved.sensors["temperature"];
        assert_eq!(bound.source, "hwmon/rpi_volt/in0");
        assert_eq!(bound.conversion, Some((10.0, -1.0)));
        assert_eq!(bound.unit, "°C", "the app's unit, as converted");
        assert!(!bound.automatic);
    }

    #[test]
    fn a_unique_sensor_of_the_declared_unit_binds_automatically() {
        let resolved = resolve(
            "a",
            &needs(&[("temperature", Some("°C")), ("cpu_load", None)], &[]),
            &Bindings::default(),
            &pi(),
            None,
        )
        .expect("bound");
        assert_eq!(
            resolved.sensors["temperature"].source,
            "thermal/cpu-thermal"
        );
        assert_eq!(
            resolved.sensors["cpu_load"].source, "system/cpu_load",
            "a name match needs no unit"
        );
    }

    #[test]
    fn a_name_match_narrows_several_sensors_of_one_unit() {
        let mut board = pi();
        board.push(sensor("hwmon/cpu_thermal/temp1", "°C"));
        board.push(sensor("hwmon/nvme/composite", "°C"));
        let resolved = resolve(
            "a",
            &needs(&[("temperature", Some("°C"))], &[]),
            &Bindings::default(),
            &board,
            None,
        )
        .expect("bound by name");
        assert_eq!(
            resolved.sensors["temperature"].source,
            "hwmon/cpu_thermal/temp1"
        );
    }

    #[test]
    fn ambiguity_and_absence_are_refused_naming_every_name_and_the_fix() {
        let mut board = pi();
        board.push(sensor("thermal/gpu-thermal", "°C"));
        let error = resolve(
            "sampler",
            &needs(
                &[("temperature", Some("°C")), ("humidity", Some("%RH"))],
                &["relay"],
            ),
            &Bindings::default(),
            &board,
            Some(&[line("gpiochip0", 17, Some("GPIO17"))]),
        )
        .expect_err("unbindable");
        assert_eq!(error.missing.len(), 3, "{error}");
        let text = error.to_string();
        assert!(
            text.starts_with("app 'sampler' cannot run on this board"),
            "{text}"
        );
        assert!(
            text.contains(
                "sensor 'temperature': ambiguous: thermal/cpu-thermal, thermal/gpu-thermal"
            ),
            "{text}"
        );
        assert!(
            text.contains("sensor 'humidity': no board sensor in %RH matches"),
            "{text}"
        );
        assert!(
            text.contains("gpio line 'relay': no board line has this name"),
            "{text}"
        );
        assert!(text.contains("agent.toml [sensors]"), "{text}");
        assert!(!text.contains('\n'));
    }

    #[test]
    fn units_must_agree_unless_a_conversion_is_given() {
        let mut bindings = Bindings::default();
        bindings.sensors.insert(
            "temperature".into(),
            SensorSetting::Source("hwmon/rpi_volt/in0".into()),
        );
        let error = resolve(
            "a",
            &needs(&[("temperature", Some("°C"))], &[]),
            &bindings,
            &pi(),
            None,
        )
        .expect_err("volts are not degrees");
        assert!(
            error
                .to_string()
                .contains("reads in V but the app expects °C"),
            "{error}"
        );

        bindings.sensors.insert(
            "temperature".into(),
            SensorSetting::Source("thermal/nope".into()),
        );
        let error = resolve(
            "a",
            &needs(&[("temperature", None)], &[]),
            &bindings,
            &pi(),
            None,
        )
        .expect_err("no such source");
        assert!(
            error
                .to_string()
                .contains("bound to 'thermal/nope' in [sensors]"),
            "{error}"
        );
    }

    #[test]
    fn lines_bind_by_setting_or_by_name_and_need_a_gpio_board() {
        let lines = [
            line("gpiochip0", 17, Some("GPIO17")),
            line("gpiochip0", 4, None),
        ];
        let mut bindings = Bindings::default();
        bindings.gpio.insert("relay".into(), "GPIO17".into());
        let resolved = resolve(
            "a",
            &needs(&[], &["relay", "gpiochip0:4"]),
            &bindings,
            &[],
            Some(&lines),
        )
        .expect("bound");
        assert_eq!(resolved.lines["relay"], "gpiochip0:17");
        assert_eq!(resolved.lines["gpiochip0:4"], "gpiochip0:4");

        let error = resolve("a", &needs(&[], &["relay"]), &bindings, &[], None)
            .expect_err("no GPIO at all");
        assert!(error.to_string().contains("no GPIO chips"), "{error}");
    }

    #[test]
    fn names_fit_by_word_or_long_prefix() {
        assert!(names_fit("temperature", "hwmon/cpu_thermal/temp1"));
        assert!(names_fit("cpu_load", "system/cpu_load"));
        assert!(!names_fit("temperature", "thermal/cpu-thermal"));
        assert!(
            !names_fit("tem", "hwmon/x/temp1"),
            "short words need an exact match"
        );
        assert!(names_fit("humidity", "iio/bme280/humidityrelative"));
    }
}
