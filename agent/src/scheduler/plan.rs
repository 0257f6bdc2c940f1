//! Pure schedule arithmetic: when a trigger fires next, and whether runs were missed while the
//! agent was off. No I/O and no clock reads, so it is tested with plain numbers.
//!
//! # Cron in a time zone, and daylight saving
//! A cron trigger's fields are local wall time in its zone (UTC when it names none). Local time
//! skips an hour in spring and repeats one in autumn; the rule is Vixie cron's (Debian's
//! `cron`), which is what people who write crontabs expect:
//! - A schedule at **fixed local times** (neither the minute nor the hour field contains `*`,
//!   e.g. `0 30 2 * * *`) runs once per matching local time. A time that occurs twice runs at
//!   its first occurrence only; a time that does not exist runs once at the instant the clocks
//!   jump (02:30 on the spring-forward day runs at 03:00 local time, right after the jump).
//! - A **wildcard** schedule (the minute or hour field contains `*`, e.g. `0 */10 * * * *`,
//!   `@hourly`) follows elapsed time: it runs at every instant whose local time matches, so in
//!   the repeated hour it runs in both passes and in the skipped hour not at all (its runs
//!   before and after the gap are one real hour apart, as always).

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Datelike, Timelike, Utc};
use cron::Schedule;
use outpost_manifest::{Missed, TriggerKind};
use tz::datetime::FoundDateTimeKind;

/// Parses a cron expression (already validated by the manifest loader).
pub fn parse_cron(expr: &str) -> Result<Schedule, String> {
    Schedule::from_str(expr).map_err(|e| format!("bad cron expression '{expr}': {e}"))
}

/// A cron trigger's schedule read in its time zone: what [`CronPlan::next_after`] answers.
#[derive(Debug, Clone)]
pub struct CronPlan {
    /// The parsed expression; its fields are local wall time in `zone`.
    schedule: Schedule,
    /// The zone; `None` is UTC (no transitions, so the cron crate answers directly).
    zone: Option<Arc<tz::TimeZone>>,
    /// Whether the schedule is at fixed local times (see the module doc): decides what a
    /// repeated or skipped local time does.
    fixed_time: bool,
}

/// The most local times [`CronPlan::next_after`] looks at in one call: a bound for schedules
/// whose every match falls in skipped local time (then there is no next run within reach).
const MAX_CANDIDATES: usize = 100_000;

impl CronPlan {
    /// The plan of `expr` in `zone` (`None`: UTC).
    pub fn new(expr: &str, zone: Option<Arc<tz::TimeZone>>) -> Result<CronPlan, String> {
        Ok(CronPlan {
            schedule: parse_cron(expr)?,
            zone,
            fixed_time: is_fixed_time(expr),
        })
    }

    /// The first run strictly after `after_ms` (ms since the Unix epoch), or `None` if the
    /// schedule has no further run.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        match &self.zone {
            None => next_cron_ms(&self.schedule, after_ms),
            Some(zone) => self.next_in_zone(zone, after_ms),
        }
    }

    /// Walks the schedule's local times as naive wall times (carried in a `DateTime<Utc>`),
    /// maps each to its instants in `zone` by the DST rule, and keeps the earliest after
    /// `after_ms`. Local times are ordered like instants except in a repeated hour, so the walk
    /// starts that far back when a backward jump lies ahead and stops that far past the best.
    fn next_in_zone(&self, zone: &tz::TimeZone, after_ms: i64) -> Option<i64> {
        let offset_ms = |at_ms: i64| {
            zone.find_local_time_type(at_ms.div_euclid(1000))
                .ok()
                .map(|local| i64::from(local.ut_offset()) * 1000)
        };
        let offset_now = offset_ms(after_ms)?;
        // The largest backward jump within the next day (a repeated local hour ahead).
        let lowest_ahead = (1..=26)
            .filter_map(|hour| offset_ms(after_ms.saturating_add(hour * 3_600_000)))
            .min()
            .unwrap_or(offset_now);
        let look_back = (offset_now - lowest_ahead).max(0);
        let local_after = after_ms.checked_add(offset_now)?;
        let start = DateTime::<Utc>::from_timestamp_millis(local_after - look_back)?;
        let mut best: Option<(i64, i64)> = None; // (instant, its local time)
        for local in self.schedule.after(&start).take(MAX_CANDIDATES) {
            let local_ms = local.timestamp_millis();
            if let Some((_, best_local)) = best
                && local_ms > local_after.max(best_local) + look_back
            {
                break;
            }
            for instant in self.instants(zone, &local) {
                if instant > after_ms && best.is_none_or(|(b, _)| instant < b) {
                    best = Some((instant, local_ms));
                }
            }
        }
        best.map(|(instant, _)| instant)
    }

    /// The instants (ms) at which local wall time `local` runs in `zone`, by the DST rule.
    fn instants(&self, zone: &tz::TimeZone, local: &DateTime<Utc>) -> Vec<i64> {
        let (Ok(month), Ok(day), Ok(hour), Ok(minute), Ok(second)) = (
            u8::try_from(local.month()),
            u8::try_from(local.day()),
            u8::try_from(local.hour()),
            u8::try_from(local.minute()),
            u8::try_from(local.second()),
        ) else {
            return Vec::new();
        };
        let Ok(found) = tz::DateTime::find(
            local.year(),
            month,
            day,
            hour,
            minute,
            second,
            0,
            zone.as_ref(),
        ) else {
            return Vec::new();
        };
        let mut existing = Vec::new();
        let mut jump = None;
        for kind in found.into_inner() {
            match kind {
                FoundDateTimeKind::Normal(at) => existing.push(at.unix_time() * 1000),
                FoundDateTimeKind::Skipped {
                    after_transition, ..
                } => jump = Some(after_transition.unix_time() * 1000),
            }
        }
        if !self.fixed_time {
            return existing;
        }
        // Fixed local times run once: the first occurrence, or the jump over a skipped time.
        match existing.first() {
            Some(&first) => vec![first],
            None => jump.into_iter().collect(),
        }
    }
}

/// Whether `expr` names fixed local times: neither its minute nor its hour field has a `*`
/// (Vixie cron's test); `@hourly` is the one wildcard shorthand.
fn is_fixed_time(expr: &str) -> bool {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    match fields.as_slice() {
        [shorthand] if shorthand.starts_with('@') => *shorthand != "@hourly",
        [_seconds, minutes, hours, ..] => !minutes.contains('*') && !hours.contains('*'),
        _ => false,
    }
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
    schedule: Option<&CronPlan>,
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
            .and_then(|plan| plan.next_after(last))
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
        let schedule = CronPlan::new("0 0 * * * *", None).expect("hourly");
        let run_once = TriggerKind::Cron {
            expr: "0 0 * * * *".into(),
            missed: Missed::RunOnce,
            timezone: None,
        };
        let skip = TriggerKind::Cron {
            expr: "0 0 * * * *".into(),
            missed: Missed::Skip,
            timezone: None,
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

    /// Europe/Berlin from the system's tz database, or its POSIX rule where tzdata is missing
    /// (the same transitions for these years: last Sunday of March 01:00 UTC, of October
    /// 01:00 UTC).
    fn berlin() -> Arc<tz::TimeZone> {
        match crate::scheduler::zone::load("test", "Europe/Berlin") {
            Ok(zone) => zone,
            Err(_) => Arc::new(
                tz::TimeZone::from_posix_tz("CET-1CEST,M3.5.0,M10.5.0/3").expect("posix rule"),
            ),
        }
    }

    fn utc_ms(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
        use chrono::TimeZone as _;
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .expect("valid")
            .timestamp_millis()
    }

    /// The runs a scheduler would make from `start_ms`, driven by a manual clock that jumps to
    /// each due time, as `scheduler::drive` sleeps until it.
    fn runs(plan: &CronPlan, start_ms: i64, count: usize) -> Vec<i64> {
        let clock = outpost_hal::ManualClock::new(start_ms);
        let mut fired = Vec::new();
        for _ in 0..count {
            use outpost_hal::Clock as _;
            let now = clock.wall_ms();
            let due = plan.next_after(now).expect("a next run");
            clock.advance(Duration::from_millis(
                u64::try_from(due - now).expect("ahead"),
            ));
            fired.push(clock.wall_ms());
        }
        fired
    }

    #[test]
    fn a_fixed_time_job_runs_once_on_both_dst_days_in_berlin() {
        let plan = CronPlan::new("0 30 2 * * *", Some(berlin())).expect("valid");
        // Spring forward, 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00Z), so 02:30 does not
        // exist that day; it runs once at the jump.
        assert_eq!(
            runs(&plan, utc_ms(2026, 3, 27, 12, 0), 3),
            [
                utc_ms(2026, 3, 28, 1, 30), // 02:30 CET
                utc_ms(2026, 3, 29, 1, 0),  // the jump: 03:00 CEST
                utc_ms(2026, 3, 30, 0, 30), // 02:30 CEST
            ]
        );
        // Fall back, 2026-10-25: 03:00 CEST goes back to 02:00 CET (01:00Z), so 02:30 happens
        // twice that day; it runs at the first only.
        assert_eq!(
            runs(&plan, utc_ms(2026, 10, 23, 12, 0), 3),
            [
                utc_ms(2026, 10, 24, 0, 30), // 02:30 CEST
                utc_ms(2026, 10, 25, 0, 30), // 02:30 CEST, first pass; not again at 01:30Z
                utc_ms(2026, 10, 26, 1, 30), // 02:30 CET
            ]
        );
    }

    #[test]
    fn a_daily_job_keeps_its_local_time_across_the_change() {
        let plan = CronPlan::new("0 30 7 * * *", Some(berlin())).expect("valid");
        assert_eq!(
            runs(&plan, utc_ms(2026, 10, 24, 12, 0), 2),
            [utc_ms(2026, 10, 25, 6, 30), utc_ms(2026, 10, 26, 6, 30)]
        );
        assert_eq!(
            runs(&plan, utc_ms(2026, 3, 28, 12, 0), 2),
            [utc_ms(2026, 3, 29, 5, 30), utc_ms(2026, 3, 30, 5, 30)]
        );
    }

    #[test]
    fn a_wildcard_job_follows_elapsed_time_through_both_changes() {
        let plan = CronPlan::new("0 */30 * * * *", Some(berlin())).expect("valid");
        // Autumn: both passes of the repeated hour run, every 30 real minutes.
        let autumn: Vec<i64> = (0..6)
            .map(|i| utc_ms(2026, 10, 25, 0, 0) + i * 1_800_000)
            .collect();
        assert_eq!(runs(&plan, utc_ms(2026, 10, 24, 23, 50), 6), autumn);
        // Spring: the skipped hour has no runs, and none are lost in real time.
        let spring: Vec<i64> = (0..4)
            .map(|i| utc_ms(2026, 3, 29, 0, 30) + i * 1_800_000)
            .collect();
        assert_eq!(runs(&plan, utc_ms(2026, 3, 29, 0, 20), 4), spring);
        let hourly = CronPlan::new("@hourly", Some(berlin())).expect("valid");
        assert_eq!(
            runs(&hourly, utc_ms(2026, 10, 24, 23, 30), 4),
            [0, 1, 2, 3].map(|h| utc_ms(2026, 10, 25, h, 0))
        );
    }

    #[test]
    fn fixed_and_wildcard_schedules_are_told_apart() {
        assert!(is_fixed_time("0 30 2 * * *"));
        assert!(is_fixed_time("0 0,30 1-3 * * MON"));
        assert!(is_fixed_time("@daily"));
        assert!(!is_fixed_time("0 */10 * * * *"));
        assert!(!is_fixed_time("0 0 * * * *"));
        assert!(!is_fixed_time("@hourly"));
    }

    #[test]
    fn without_a_zone_cron_is_utc() {
        let plan = CronPlan::new("0 30 2 * * *", None).expect("valid");
        assert_eq!(
            plan.next_after(utc_ms(2026, 3, 29, 0, 0)),
            Some(utc_ms(2026, 3, 29, 2, 30))
        );
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
