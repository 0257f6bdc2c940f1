//! Pure schedule arithmetic: when a trigger fires next, and whether runs were missed while the
//! agent was off. No I/O and no clock reads, so it is tested with plain numbers.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cron::Schedule;
use outpost_manifest::{Missed, TriggerKind};

/// Parses a cron expression (already validated by the manifest loader).
pub fn parse_cron(expr: &str) -> Result<Schedule, String> {
    Schedule::from_str(expr).map_err(|e| format!("bad cron expression '{expr}': {e}"))
}

/// The first occurrence of `schedule` strictly after `after_ms` (UTC), in ms since epoch.
pub fn next_cron_ms(schedule: &Schedule, after_ms: i64) -> Option<i64> {
    let after = DateTime::<Utc>::from_timestamp_millis(after_ms)?;
    schedule
        .after(&after)
        .next()
        .map(|next| next.timestamp_millis())
}

/// Whether a `run-once` trigger should run at start: it ran before, and at least one run fell
/// due between that run and now. A trigger that never ran has missed nothing.
pub fn missed_while_off(
    kind: &TriggerKind,
    schedule: Option<&Schedule>,
    last_run_ms: Option<i64>,
    now_ms: i64,
) -> bool {
    let Some(last) = last_run_ms else {
        return false;
    };
    match kind {
        TriggerKind::Cron {
            missed: Missed::RunOnce,
            ..
        } => schedule
            .and_then(|s| next_cron_ms(s, last))
            .is_some_and(|due| due <= now_ms),
        TriggerKind::Interval {
            every,
            missed: Missed::RunOnce,
            ..
        } => now_ms.saturating_sub(last) >= i64::try_from(every.as_millis()).unwrap_or(i64::MAX),
        _ => false,
    }
}

/// A random delay in `[0, max]`, so a fleet of devices does not fire in lock-step.
pub fn jitter(max: Duration, rng: &mut fastrand::Rng) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    let max_ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rng.u64(0..=max_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-01-01T00:00:00Z
    const NEW_YEAR_MS: i64 = 1_767_225_600_000;

    #[test]
    fn next_cron_is_strictly_after_and_on_the_grid() {
        let every_ten_seconds = parse_cron("*/10 * * * * *").expect("valid");
        assert_eq!(
            next_cron_ms(&every_ten_seconds, NEW_YEAR_MS),
            Some(NEW_YEAR_MS + 10_000)
        );
        assert_eq!(
            next_cron_ms(&every_ten_seconds, NEW_YEAR_MS + 1),
            Some(NEW_YEAR_MS + 10_000)
        );
        let daily_at_eight = parse_cron("0 0 8 * * *").expect("valid");
        assert_eq!(
            next_cron_ms(&daily_at_eight, NEW_YEAR_MS),
            Some(NEW_YEAR_MS + 8 * 3_600_000)
        );
    }

    #[test]
    fn missed_runs_count_only_for_run_once_triggers_that_ran_before() {
        let schedule = parse_cron("0 0 * * * *").expect("hourly");
        let run_once = TriggerKind::Cron {
            expr: "0 0 * * * *".into(),
            missed: Missed::RunOnce,
        };
        let skip = TriggerKind::Cron {
            expr: "0 0 * * * *".into(),
            missed: Missed::Skip,
        };
        let two_hours_later = NEW_YEAR_MS + 2 * 3_600_000;
        assert!(missed_while_off(
            &run_once,
            Some(&schedule),
            Some(NEW_YEAR_MS),
            two_hours_later
        ));
        assert!(!missed_while_off(
            &run_once,
            Some(&schedule),
            Some(NEW_YEAR_MS),
            NEW_YEAR_MS + 60_000
        ));
        assert!(!missed_while_off(
            &run_once,
            Some(&schedule),
            None,
            two_hours_later
        ));
        assert!(!missed_while_off(
            &skip,
            Some(&schedule),
            Some(NEW_YEAR_MS),
            two_hours_later
        ));

        let interval = TriggerKind::Interval {
            every: Duration::from_secs(60),
            jitter: Duration::ZERO,
            missed: Missed::RunOnce,
        };
        assert!(missed_while_off(&interval, None, Some(0), 60_000));
        assert!(!missed_while_off(&interval, None, Some(0), 59_999));
    }

    #[test]
    fn jitter_stays_within_its_bound() {
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..1000 {
            assert!(jitter(Duration::from_millis(250), &mut rng) <= Duration::from_millis(250));
        }
        assert_eq!(jitter(Duration::ZERO, &mut rng), Duration::ZERO);
    }
}
