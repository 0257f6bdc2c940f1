//! One `[[component.trigger]]`: pick its kind, refuse fields of other kinds, fill defaults.

use std::time::Duration;

use super::rules::check_name;
use crate::model::{FireRule, Missed, TriggerKind, TriggerSpec};
use crate::schema_v1::{self as raw, Fire};
use crate::values::HumanDuration;

/// Shorter periods would keep a Pi-class CPU busy with scheduling alone.
const MIN_PERIOD: Duration = Duration::from_millis(1);

/// Converts trigger number `index` (1-based, as people count) of `component`.
pub(crate) fn trigger(
    component: &str,
    index: usize,
    raw: raw::Trigger,
) -> Result<TriggerSpec, String> {
    let context = match &raw.name {
        Some(name) => format!("component '{component}', trigger #{index} ('{name}')"),
        None => format!("component '{component}', trigger #{index}"),
    };
    let name = match &raw.name {
        Some(name) => {
            check_name("name", name).map_err(|e| format!("{context}: {e}"))?;
            name.clone()
        }
        None => format!("{component}#{index}"),
    };
    let kind = kind(raw).map_err(|e| format!("{context}: {e}"))?;
    Ok(TriggerSpec { name, kind })
}

fn kind(raw: raw::Trigger) -> Result<TriggerKind, String> {
    // `on_start = false` reads as "not an on-start trigger", so it neither selects a kind
    // nor counts as a stray field.
    let on_start = raw.on_start == Some(true);
    let present = [
        ("cron", raw.cron.is_some()),
        ("timezone", raw.timezone.is_some()),
        ("interval", raw.interval.is_some()),
        ("jitter", raw.jitter.is_some()),
        ("missed", raw.missed.is_some()),
        ("on_start", on_start),
        ("sensor", raw.sensor.is_some()),
        ("sample_every", raw.sample_every.is_some()),
        ("fire", raw.fire.is_some()),
        ("threshold", raw.threshold.is_some()),
        ("min_delta", raw.min_delta.is_some()),
        ("mqtt", raw.mqtt.is_some()),
    ];
    let kinds: Vec<&str> = present
        .iter()
        .filter(|(key, set)| {
            *set && matches!(*key, "cron" | "interval" | "on_start" | "sensor" | "mqtt")
        })
        .map(|(key, _)| *key)
        .collect();
    // The kind is kept with its article, for the message below.
    let (kind, allowed): (&str, &[&str]) = match kinds.as_slice() {
        [] => {
            return Err(
                "no trigger kind: set exactly one of `cron`, `interval`, `on_start = true`, `sensor`, `mqtt`"
                    .into(),
            );
        }
        ["cron"] => ("a cron", &["cron", "missed", "timezone"]),
        ["interval"] => ("an interval", &["interval", "jitter", "missed"]),
        ["on_start"] => ("an on_start", &["on_start"]),
        ["mqtt"] => ("an mqtt", &["mqtt"]),
        ["sensor"] => (
            "a sensor",
            &["sensor", "sample_every", "fire", "threshold", "min_delta"],
        ),
        several => {
            return Err(format!(
                "sets {}; a trigger has exactly one kind, so split it into several \
                 [[component.trigger]] tables",
                backticked(several)
            ));
        }
    };
    let stray: Vec<&str> = present
        .iter()
        .filter(|(key, set)| *set && !allowed.contains(key))
        .map(|(key, _)| *key)
        .collect();
    if !stray.is_empty() {
        let verb = if stray.len() == 1 { "does" } else { "do" };
        return Err(format!(
            "{} {verb} not apply to {kind} trigger",
            backticked(&stray)
        ));
    }

    let missed = match raw.missed {
        None | Some(raw::Missed::Skip) => Missed::Skip,
        Some(raw::Missed::RunOnce) => Missed::RunOnce,
    };
    if let Some(filter) = raw.mqtt {
        crate::placeholders::check(&filter)
            .map_err(|e| format!("`mqtt` filter {filter:?}: {e}"))?;
        let filter = crate::topic::TopicFilter::new(&filter)
            .map_err(|e| format!("`mqtt` filter {filter:?}: {e}"))?;
        return Ok(TriggerKind::Mqtt { filter });
    }
    if let Some(expr) = raw.cron {
        if let Some(zone) = &raw.timezone {
            crate::timezone::check(&crate::timezone::zoneinfo_dir(), zone)?;
        }
        return Ok(TriggerKind::Cron {
            expr: expr.0,
            missed,
            timezone: raw.timezone,
        });
    }
    if let Some(HumanDuration(every)) = raw.interval {
        period("interval", every)?;
        let jitter = raw
            .jitter
            .map_or(Duration::ZERO, |HumanDuration(jitter)| jitter);
        if jitter >= every {
            return Err(format!(
                "`jitter` ({}) must be shorter than `interval` ({})",
                humantime::format_duration(jitter),
                humantime::format_duration(every)
            ));
        }
        return Ok(TriggerKind::Interval {
            every,
            jitter,
            missed,
        });
    }
    if let Some(sensor) = raw.sensor {
        check_name("`sensor`", &sensor)?;
        let Some(HumanDuration(sample_every)) = raw.sample_every else {
            return Err("`sample_every` is required for a sensor trigger (e.g. \"1s\")".into());
        };
        period("sample_every", sample_every)?;
        let fire = fire_rule(
            raw.fire.unwrap_or(Fire::Every),
            raw.threshold,
            raw.min_delta,
        )?;
        return Ok(TriggerKind::Sensor {
            sensor,
            sample_every,
            fire,
        });
    }
    Ok(TriggerKind::OnStart)
}

/// Checks that `threshold` and `min_delta` are given exactly when `fire` uses them.
fn fire_rule(
    fire: Fire,
    threshold: Option<f64>,
    min_delta: Option<f64>,
) -> Result<FireRule, String> {
    let when = format!("when fire = \"{}\"", fire.as_str());
    if fire != Fire::Change && min_delta.is_some() {
        return Err(format!(
            "`min_delta` only applies when fire = \"change\", not {when}"
        ));
    }
    if matches!(fire, Fire::Every | Fire::Change) && threshold.is_some() {
        return Err(format!("`threshold` does not apply {when}"));
    }
    let threshold = || match threshold {
        None => Err(format!("`threshold` is required {when}")),
        Some(value) if !value.is_finite() => {
            Err(format!("`threshold` must be a finite number, not {value}"))
        }
        Some(value) => Ok(value),
    };
    Ok(match fire {
        Fire::Every => FireRule::Every,
        Fire::Change => {
            let min_delta = min_delta.unwrap_or(0.0);
            if !(min_delta.is_finite() && min_delta >= 0.0) {
                return Err(format!(
                    "`min_delta` must be a finite number >= 0, not {min_delta}"
                ));
            }
            FireRule::Change { min_delta }
        }
        Fire::Rising => FireRule::Rising {
            threshold: threshold()?,
        },
        Fire::Falling => FireRule::Falling {
            threshold: threshold()?,
        },
        Fire::Crossing => FireRule::Crossing {
            threshold: threshold()?,
        },
    })
}

fn period(key: &str, value: Duration) -> Result<(), String> {
    if value < MIN_PERIOD {
        Err(format!(
            "`{key}` must be at least 1ms, not {}",
            humantime::format_duration(value)
        ))
    } else {
        Ok(())
    }
}

/// `a`, `a` and `b`, `a`, `b` and `c`.
fn backticked(keys: &[&str]) -> String {
    let quoted: Vec<String> = keys.iter().map(|key| format!("`{key}`")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => quoted.join(""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backticked_lists_read_naturally() {
        assert_eq!(backticked(&["a"]), "`a`");
        assert_eq!(backticked(&["a", "b"]), "`a` and `b`");
        assert_eq!(backticked(&["a", "b", "c"]), "`a`, `b` and `c`");
    }

    #[test]
    fn fire_rules_demand_and_refuse_the_right_numbers() {
        let ok = [
            (Fire::Every, None, None, FireRule::Every),
            (
                Fire::Change,
                None,
                None,
                FireRule::Change { min_delta: 0.0 },
            ),
            (
                Fire::Change,
                None,
                Some(0.5),
                FireRule::Change { min_delta: 0.5 },
            ),
            (
                Fire::Rising,
                Some(1.0),
                None,
                FireRule::Rising { threshold: 1.0 },
            ),
            (
                Fire::Falling,
                Some(-1.0),
                None,
                FireRule::Falling { threshold: -1.0 },
            ),
            (
                Fire::Crossing,
                Some(30.0),
                None,
                FireRule::Crossing { threshold: 30.0 },
            ),
        ];
        for (fire, threshold, min_delta, expected) in ok {
            assert_eq!(
                fire_rule(fire, threshold, min_delta),
                Ok(expected),
                "{fire:?}"
            );
        }
        let bad = [
            (
                Fire::Crossing,
                None,
                None,
                "`threshold` is required when fire = \"crossing\"",
            ),
            (
                Fire::Rising,
                Some(f64::NAN),
                None,
                "`threshold` must be a finite number",
            ),
            (
                Fire::Every,
                Some(1.0),
                None,
                "`threshold` does not apply when fire = \"every\"",
            ),
            (
                Fire::Change,
                Some(1.0),
                None,
                "`threshold` does not apply when fire = \"change\"",
            ),
            (
                Fire::Rising,
                Some(1.0),
                Some(0.1),
                "`min_delta` only applies when fire = \"change\"",
            ),
            (
                Fire::Change,
                None,
                Some(-0.1),
                "`min_delta` must be a finite number >= 0",
            ),
            (
                Fire::Change,
                None,
                Some(f64::INFINITY),
                "`min_delta` must be a finite number >= 0",
            ),
        ];
        for (fire, threshold, min_delta, expected) in bad {
            let error = fire_rule(fire, threshold, min_delta).expect_err(expected);
            assert!(error.starts_with(expected), "{error}");
        }
    }
}
