//! Time as the agent sees it. Logic code takes a [`Clock`] instead of calling `std::time`, so tests
//! can drive time by hand with [`ManualClock`].
//!
//! A board without a real-time clock boots with a wrong wall clock (often 1970, or the time of
//! the last shutdown) until NTP syncs it. So a clock also says whether its wall time can be
//! trusted ([`Clock::synced`]) and where the device is in its current boot ([`Clock::boot`]):
//! what the agent stamps events with until the wall clock is right, to give them their true time
//! once it is.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A source of wall-clock and monotonic time.
pub trait Clock: std::fmt::Debug + Send + Sync + 'static {
    /// Wall-clock time in milliseconds since the Unix epoch (may jump when the device syncs NTP).
    fn wall_ms(&self) -> i64;
    /// Monotonic time since an arbitrary origin fixed when the clock was made; never goes back.
    fn monotonic(&self) -> Duration;
    /// Whether the wall clock is synchronised to a time source (NTP), so [`Clock::wall_ms`] is
    /// the true time. False on a board without an RTC from boot until its first sync.
    fn synced(&self) -> bool;
    /// Which boot this is and how long since it began, on a clock that never jumps and keeps
    /// counting through suspend: two readings of one boot are exactly as far apart as the
    /// instants they were taken at.
    fn boot(&self) -> BootInstant;
}

/// An instant named by the boot it belongs to, independent of the wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootInstant {
    /// The kernel's random id of this boot (`/proc/sys/kernel/random/boot_id`); 0 if unknown.
    pub boot_id: u128,
    /// Milliseconds since the boot began (`CLOCK_BOOTTIME`).
    pub since_boot_ms: u64,
}

/// The operating system's clocks.
#[derive(Debug)]
pub struct SystemClock {
    /// Origin of [`Clock::monotonic`], so values start near zero and fit in an `i64` of ns.
    origin: Instant,
    /// This boot's id, read once (it cannot change while the process lives).
    boot_id: u128,
}

impl SystemClock {
    /// A clock whose monotonic origin is now.
    pub fn new() -> Self {
        SystemClock {
            origin: Instant::now(),
            boot_id: sys::boot_id(),
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

    fn synced(&self) -> bool {
        sys::synced()
    }

    fn boot(&self) -> BootInstant {
        BootInstant {
            boot_id: self.boot_id,
            since_boot_ms: sys::since_boot()
                .unwrap_or_else(|| self.origin.elapsed())
                .as_millis()
                .try_into()
                .unwrap_or(u64::MAX),
        }
    }
}

/// Where Linux keeps what [`SystemClock`] asks; elsewhere the wall clock is taken as synced.
#[cfg(target_os = "linux")]
mod sys {
    use std::time::Duration;

    /// Written by systemd-timesyncd once it has synchronised the clock (this boot).
    const TIMESYNCD_FLAG: &str = "/run/systemd/timesync/synchronized";

    /// The kernel's view: an NTP daemon (timesyncd, chrony, ntpd) that disciplines the clock
    /// clears `STA_UNSYNC`; it is set from boot until then. timesyncd's flag file counts too,
    /// for setups where the kernel status is not maintained.
    pub(super) fn synced() -> bool {
        kernel_synced() || std::path::Path::new(TIMESYNCD_FLAG).exists()
    }

    fn kernel_synced() -> bool {
        // SAFETY: `timex` is plain data, zeroed is a valid value, and `modes == 0` makes
        // adjtimex only read the kernel's state (no privilege needed); the pointer is to a
        // live local for the duration of the call.
        let mut timex: libc::timex = unsafe { std::mem::zeroed() };
        let state = unsafe { libc::adjtimex(&mut timex) };
        state >= 0 && state != libc::TIME_ERROR && timex.status & libc::STA_UNSYNC == 0
    }

    /// Time since boot including suspend.
    pub(super) fn since_boot() -> Option<Duration> {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid clock id and a pointer to a live local timespec.
        let result = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut now) };
        if result != 0 {
            return None;
        }
        Some(Duration::new(
            u64::try_from(now.tv_sec).ok()?,
            u32::try_from(now.tv_nsec).ok()?,
        ))
    }

    /// This boot's id (a UUID in text), or 0 if the kernel does not say.
    pub(super) fn boot_id() -> u128 {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .ok()
            .and_then(|text| u128::from_str_radix(&text.trim().replace('-', ""), 16).ok())
            .unwrap_or(0)
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    use std::time::Duration;

    pub(super) fn synced() -> bool {
        true
    }

    pub(super) fn since_boot() -> Option<Duration> {
        None
    }

    pub(super) fn boot_id() -> u128 {
        0
    }
}

/// A clock that moves only when told to, for deterministic tests.
#[derive(Debug)]
pub struct ManualClock {
    /// (wall ms, monotonic) — one lock so both always move together.
    now: Mutex<(i64, Duration)>,
    /// What [`Clock::synced`] answers; synced unless a test says otherwise.
    synced: std::sync::atomic::AtomicBool,
    /// (boot id, monotonic reading when that boot began).
    boot: Mutex<(u128, Duration)>,
}

impl ManualClock {
    /// A synced clock reading `wall_ms` on the wall and zero on the monotonic clock, in boot 1.
    pub fn new(wall_ms: i64) -> Self {
        ManualClock {
            now: Mutex::new((wall_ms, Duration::ZERO)),
            synced: std::sync::atomic::AtomicBool::new(true),
            boot: Mutex::new((1, Duration::ZERO)),
        }
    }

    /// A clock as a board without an RTC boots: not synced, reading `wall_ms` (e.g. 0).
    pub fn unsynced(wall_ms: i64) -> Self {
        let clock = ManualClock::new(wall_ms);
        clock.set_synced(false);
        clock
    }

    /// Sets what [`Clock::synced`] answers.
    pub fn set_synced(&self, synced: bool) {
        self.synced
            .store(synced, std::sync::atomic::Ordering::SeqCst);
    }

    /// An NTP sync: the wall clock steps to `wall_ms` and is synced from now on.
    pub fn sync_to(&self, wall_ms: i64) {
        self.set_wall_ms(wall_ms);
        self.set_synced(true);
    }

    /// A reboot into boot `boot_id`: time since boot starts again from zero, the wall clock
    /// reads `wall_ms` and is not synced.
    pub fn reboot(&self, boot_id: u128, wall_ms: i64) {
        let monotonic = self.monotonic();
        *self.boot.lock().unwrap_or_else(|p| p.into_inner()) = (boot_id, monotonic);
        self.set_wall_ms(wall_ms);
        self.set_synced(false);
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

    fn synced(&self) -> bool {
        self.synced.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn boot(&self) -> BootInstant {
        let (boot_id, began) = *self.boot.lock().unwrap_or_else(|p| p.into_inner());
        BootInstant {
            boot_id,
            since_boot_ms: u64::try_from(self.monotonic().saturating_sub(began).as_millis())
                .unwrap_or(u64::MAX),
        }
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
    fn manual_clock_syncs_and_reboots_when_told() {
        let clock = ManualClock::unsynced(0);
        assert!(!clock.synced());
        clock.advance(Duration::from_secs(5));
        assert_eq!(
            clock.boot(),
            BootInstant {
                boot_id: 1,
                since_boot_ms: 5_000
            }
        );
        clock.sync_to(1_800_000_000_000);
        assert!(clock.synced());
        assert_eq!(clock.wall_ms(), 1_800_000_000_000);
        clock.reboot(2, 0);
        clock.advance(Duration::from_secs(1));
        assert!(!clock.synced());
        assert_eq!(
            clock.boot(),
            BootInstant {
                boot_id: 2,
                since_boot_ms: 1_000
            }
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn system_clock_knows_its_boot() {
        let clock = SystemClock::new();
        let a = clock.boot();
        assert_ne!(a.boot_id, 0, "the kernel names its boot");
        assert!(a.since_boot_ms > 0);
        assert!(clock.boot().since_boot_ms >= a.since_boot_ms);
        // Whatever this machine's sync state is, asking never fails.
        let _ = clock.synced();
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
