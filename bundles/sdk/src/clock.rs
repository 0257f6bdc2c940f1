//! The board's clocks.

use crate::sys;

/// Wall-clock time, milliseconds since the Unix epoch (may jump when the board sets its clock).
pub fn wall_ms() -> i64 {
    sys::clock_wall_ms()
}

/// Monotonic time in nanoseconds from an arbitrary origin, for measuring durations.
pub fn monotonic_ns() -> i64 {
    sys::clock_monotonic_ns()
}
