//! Sensor reads (each sensor needs a `sensors` grant).

use crate::buf::{check, len, ptr, ptr_mut};
use crate::{Result, sys};

/// Reads sensor `name` now. `Error::Host(Unavailable)` on a sensor fault.
pub fn read(name: &str) -> Result<f64> {
    let name = name.as_bytes();
    let mut out = [0u8; 8];
    // SAFETY: `name` is a live slice; `out` is 8 writable bytes, as the call requires.
    check(unsafe { sys::sensor_read(ptr(name), len(name), ptr_mut(&mut out)) })?;
    Ok(f64::from_le_bytes(out))
}
