//! The true time of events committed while the wall clock was not synchronised.
//!
//! A board without a real-time clock boots with a wrong wall clock. Events committed then carry
//! their boot id and time since boot ([`BootStamp`]). When the sync engine sends them, it asks
//! the clock once ([`ClockNow`]): if the clock is synchronised now and the event is from this
//! boot, its wall time is `now.wall - (now.since_boot - event.since_boot)` ("anchored"). An event
//! from an earlier boot that never synced, or sent before any sync, keeps the clock's reading
//! and says that it is not to be trusted ("unsynced"). Pure: no I/O, no clock reads.

use outpost_hal::{BootInstant, Clock};

use super::wire::TimeSource;
use crate::store::BootStamp;

/// What the clock says when a page of events is planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockNow {
    /// Whether the wall clock is synchronised now.
    pub synced: bool,
    /// This boot and the time since it began.
    pub boot: BootInstant,
    /// The wall clock, ms since the Unix epoch.
    pub wall_ms: i64,
}

impl ClockNow {
    /// Reads `clock` (boot time and wall time back to back).
    pub fn read(clock: &dyn Clock) -> ClockNow {
        ClockNow {
            synced: clock.synced(),
            boot: clock.boot(),
            wall_ms: clock.wall_ms(),
        }
    }

    /// A synchronised clock: for planning where no row can carry a stamp to re-anchor (tests,
    /// size checks).
    pub fn assume_synced() -> ClockNow {
        ClockNow {
            synced: true,
            boot: BootInstant {
                boot_id: 0,
                since_boot_ms: 0,
            },
            wall_ms: 0,
        }
    }
}

/// The time to send for an event committed at wall time `time_ms`, stamped `unsynced` if the
/// clock was not synchronised then, and where that time comes from.
pub fn event_time(time_ms: i64, unsynced: Option<&BootStamp>, now: &ClockNow) -> (i64, TimeSource) {
    let Some(stamp) = unsynced else {
        return (time_ms, TimeSource::Clock);
    };
    if now.synced && stamp.boot_id == now.boot.boot_id && stamp.boot_id != 0 {
        let ago = now.boot.since_boot_ms.saturating_sub(stamp.since_boot_ms);
        let ago = i64::try_from(ago).unwrap_or(i64::MAX);
        return (now.wall_ms.saturating_sub(ago), TimeSource::Anchored);
    }
    (time_ms, TimeSource::Unsynced)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_463_238_000;

    fn now(synced: bool, boot_id: u128, since_boot_ms: u64) -> ClockNow {
        ClockNow {
            synced,
            boot: BootInstant {
                boot_id,
                since_boot_ms,
            },
            wall_ms: NOW,
        }
    }

    fn stamp(boot_id: u128, since_boot_ms: u64) -> BootStamp {
        BootStamp {
            boot_id,
            since_boot_ms,
        }
    }

    #[test]
    fn rows_committed_synced_keep_their_time() {
        assert_eq!(
            event_time(42, None, &now(false, 7, 0)),
            (42, TimeSource::Clock)
        );
    }

    #[test]
    fn rows_of_this_boot_are_anchored_once_the_clock_syncs() {
        // Committed 5 s after boot with the clock reading 1970; sent 65 s after boot, synced.
        let committed = stamp(7, 5_000);
        assert_eq!(
            event_time(5_000, Some(&committed), &now(true, 7, 65_000)),
            (NOW - 60_000, TimeSource::Anchored)
        );
    }

    #[test]
    fn rows_that_cannot_be_anchored_say_their_time_is_unknown() {
        let committed = stamp(7, 5_000);
        // Not synced yet.
        assert_eq!(
            event_time(5_000, Some(&committed), &now(false, 7, 65_000)),
            (5_000, TimeSource::Unsynced)
        );
        // An earlier boot that never synced: its time since boot means nothing now.
        assert_eq!(
            event_time(5_000, Some(&committed), &now(true, 8, 65_000)),
            (5_000, TimeSource::Unsynced)
        );
        // A kernel that names no boot cannot tell boots apart.
        assert_eq!(
            event_time(5_000, Some(&stamp(0, 5_000)), &now(true, 0, 65_000)),
            (5_000, TimeSource::Unsynced)
        );
    }
}
