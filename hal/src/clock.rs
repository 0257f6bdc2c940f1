//! Time as the agent sees it. Logic code takes a [`Clock`] instead of calling `std::time`, so tests
//! can drive time by hand with [`ManualClock`].

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A source of wall-clock and monotonic time.
pub trait Clock: Send + Sync + 'static {
    /// Wall-clock time in milliseconds since the Unix epoch (may jump when the device syncs NTP).
    fn wall_ms(&self) -> i64;
    /// Monotonic time since an arbitrary origin fixed when the clock was made; never goes back.
    fn monotonic(&self) -> Duration;
}

/// The operating system's clocks.
#[derive(Debug)]
pub struct SystemClock {
    /// Origin of [`Clock::monotonic`], so values start near zero and fit in an `i64` of ns.
    origin: Instant,
}

impl SystemClock {
    /// A clock whose monotonic origin is now.
    pub fn new() -> Self {
        SystemClock {
            origin: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn wall_ms(&self) -> i64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(since) => i64::try_from(since.as_millis()).unwrap_or(i64::MAX),
            // A board without an RTC can boot before 1970; report the negative offset honestly.
            Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
        }
    }

    fn monotonic(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// A clock that moves only when told to, for deterministic tests.
#[derive(Debug)]
pub struct ManualClock {
    /// (wall ms, monotonic) — one lock so both always move together.
    now: Mutex<(i64, Duration)>,
}

impl ManualClock {
    /// A clock reading `wall_ms` on the wall and zero on the monotonic clock.
    pub fn new(wall_ms: i64) -> Self {
        ManualClock {
            now: Mutex::new((wall_ms, Duration::ZERO)),
        }
    }

    /// Moves both clocks forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        now.0 = now
            .0
            .saturating_add(i64::try_from(by.as_millis()).unwrap_or(i64::MAX));
        now.1 += by;
    }

    /// Sets the wall clock only (as an NTP step would); the monotonic clock is untouched.
    pub fn set_wall_ms(&self, wall_ms: i64) {
        let mut now = self
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        now.0 = wall_ms;
    }
}

impl Clock for ManualClock {
    fn wall_ms(&self) -> i64 {
        self.now.lock().unwrap_or_else(|p| p.into_inner()).0
    }

    fn monotonic(&self) -> Duration {
        self.now.lock().unwrap_or_else(|p| p.into_inner()).1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        let clock = ManualClock::new(1_000);
        assert_eq!(clock.wall_ms(), 1_000);
        assert_eq!(clock.monotonic(), Duration::ZERO);
        clock.advance(Duration::from_millis(1_500));
        assert_eq!(clock.wall_ms(), 2_500);
        assert_eq!(clock.monotonic(), Duration::from_millis(1_500));
        clock.set_wall_ms(10);
        assert_eq!(clock.wall_ms(), 10);
        assert_eq!(clock.monotonic(), Duration::from_millis(1_500));
    }

    #[test]
    fn system_clock_is_monotonic() {
        let clock = SystemClock::new();
        let a = clock.monotonic();
        let b = clock.monotonic();
        assert!(b >= a);
        assert!(
            clock.wall_ms() > 1_600_000_000_000,
            "wall clock is after 2020"
        );
    }
}
