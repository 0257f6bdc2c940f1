//! GPIO lines (each needs a `gpio` grant: `in:<line>` to read, `out:<line>` to write and read
//! back). Name a line exactly as the grant does.

use crate::buf::{check, len, ptr};
use crate::{Result, sys};

/// Reads `line`'s level: `true` is high. A line this invocation already wrote reads back the
/// level it asked for. `Error::Host(NotFound)` if the board has no such line,
/// `Error::Host(Unavailable)` on a line fault (busy, I/O).
pub fn read(line: &str) -> Result<bool> {
    let line = line.as_bytes();
    // SAFETY: `line` is a live slice; the host only reads it.
    let level = check(unsafe { sys::gpio_read(ptr(line), len(line)) })?;
    Ok(level != 0)
}

/// Drives `line` high (`true`) or low (`false`). Applied to the board only after the handler
/// returns `Ok` and its effects are committed, so a failed invocation never moves the line; if
/// the board then refuses the change, the agent logs it.
pub fn write(line: &str, value: bool) -> Result<()> {
    let line = line.as_bytes();
    // SAFETY: `line` is a live slice; the host only reads it.
    check(unsafe { sys::gpio_write(ptr(line), len(line), i32::from(value)) })?;
    Ok(())
}
