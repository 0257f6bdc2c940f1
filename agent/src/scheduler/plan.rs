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

/// Where an interval trigger stands on its grid of due times (`start + k × every`, kept in
/// phase however late runs are), in time since an origin on the monotonic clock.
///
/// The rule when runs fall due faster than they finish (documented in docs/MANIFEST.md): a run
/// never overlaps the trigger's previous one. When the trigger is free again and due times
/// have passed meanwhile, it runs **once, at once**, for the latest of them (late, and its
/// lateness is reported); the earlier ones are skipped and counted. So a trigger that cannot
/// keep up runs back to back at the rate its runs allow, never bursts to make up, and never
/// drifts off its grid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntervalGrid {
    every: Duration,
    next: Duration,
}

/// One run an [`IntervalGrid`] hands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// The due time the run is for.
    pub due: Duration,
    /// How long after `due` it starts.
    pub late: Duration,
    /// Earlier due times that passed without a run (skipped and counted).
    pub skipped: u64,
}

impl IntervalGrid {
    /// A grid whose first due time is one period after `now`.
    pub fn new(every: Duration, now: Duration) -> IntervalGrid {
        // A zero period (refused by the manifest loader) would never advance the grid.
        let every = every.max(Duration::from_millis(1));
        IntervalGrid {
            every,
            next: now + every,
        }
    }

    /// The next due time.
    pub fn due(&self) -> Duration {
        self.next
    }

    /// The run to start at `now` (at or after [`IntervalGrid::due`]), with the due times it
    /// skips, and the grid moved past it; `None` if nothing is due yet.
    pub fn take(&mut self, now: Duration) -> Option<Slot> {
        if now < self.next {
            return None;
        }
        let behind = now - self.next;
        let periods = behind.as_nanos() / self.every.as_nanos();
        let skipped = u64::try_from(periods).unwrap_or(u64::MAX);
        let due = self.next + self.every * u32::try_from(periods).unwrap_or(u32::MAX);
        self.next = due + self.every;
        Some(Slot {
            due,
            late: now - due,
            skipped,
        })
    }
}

/// Whether a run that started `late` after its due time counts as late: more than half its
/// period (the gap to the next due time) or more than a second, whichever is less. Below that
/// is timer and scheduling noise, not a schedule that does not hold.
pub fn is_late(late: Duration, period: Duration) -> bool {
    late > (period / 2).min(Duration::from_secs(1))
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

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn an_interval_grid_on_time_skips_nothing_and_keeps_its_phase() {
        let mut grid = IntervalGrid::new(ms(10), ms(0));
        assert_eq!(grid.take(ms(9)), None, "not due yet");
        for k in 1..=5 {
            assert_eq!(grid.due(), ms(10 * k));
            // A millisecond of timer noise each time does not move the grid.
            let slot = grid.take(ms(10 * k + 1)).expect("due");
            assert_eq!(
                slot,
                Slot {
                    due: ms(10 * k),
                    late: ms(1),
                    skipped: 0
                }
            );
            assert!(!is_late(slot.late, ms(10)));
        }
    }

    #[test]
    fn an_interval_grid_behind_runs_the_latest_due_time_once_and_skips_the_rest() {
        let mut grid = IntervalGrid::new(ms(10), ms(0));
        // The previous run held the trigger until 25 ms: the runs due at 10 and 20 ms passed.
        let slot = grid.take(ms(25)).expect("due");
        assert_eq!(
            slot,
            Slot {
                due: ms(20),
                late: ms(5),
                skipped: 1
            }
        );
        // The grid stays in phase: next due at 30, not 35.
        assert_eq!(grid.due(), ms(30));
        // A long stall (suspend, overload): no burst, one run, the rest skipped.
        let slot = grid.take(ms(1_000_003)).expect("due");
        assert_eq!(slot.due, ms(1_000_000));
        assert_eq!(slot.skipped, 99_997);
        assert_eq!(grid.due(), ms(1_000_010));
        // Exactly on a due time.
        assert_eq!(grid.take(ms(1_000_010)).map(|s| s.late), Some(ms(0)));
    }

    #[test]
    fn lateness_counts_past_half_a_period_or_a_second() {
        assert!(!is_late(ms(5), ms(10)));
        assert!(is_late(ms(6), ms(10)));
        assert!(!is_late(ms(1_000), ms(60_000)));
        assert!(is_late(ms(1_001), ms(60_000)));
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
