//! Passing buffers across the boundary: pointer/length conversion, return-value checks, and the
//! "ask with a guess, retry with the exact length" protocol of the buffer-filling calls.

use crate::{Error, ErrorCode, Result};
use alloc::vec::Vec;

/// The guest-memory offset of `bytes`, as the ABI's `i32`.
pub(crate) fn ptr(bytes: &[u8]) -> i32 {
    bytes.as_ptr() as usize as i32
}

/// The guest-memory offset of a buffer the host will write into.
pub(crate) fn ptr_mut(bytes: &mut [u8]) -> i32 {
    bytes.as_mut_ptr() as usize as i32
}

/// The length of `bytes` as the ABI's `i32`. Saturates, so an impossible length makes the host
/// answer out-of-bounds rather than wrapping to a small one.
pub(crate) fn len(bytes: &[u8]) -> i32 {
    i32::try_from(bytes.len()).unwrap_or(i32::MAX)
}

/// Maps a return value to its success value (`>= 0`) or its error.
pub(crate) fn check(ret: i32) -> Result<usize> {
    if ret >= 0 {
        Ok(ret as usize)
    } else {
        Err(Error::from_code(ret))
    }
}

/// Runs a buffer-filling call: `fill(out_ptr, out_cap)` returns the value's full length and
/// writes nothing when that exceeds `out_cap`. Tries a buffer of `guess` bytes first, then once
/// more with exactly the length the host reported.
pub(crate) fn read(guess: usize, mut fill: impl FnMut(i32, i32) -> i32) -> Result<Vec<u8>> {
    let mut out: Vec<u8> = Vec::with_capacity(guess);
    for _ in 0..2 {
        let cap = out.capacity();
        let cap_i32 = i32::try_from(cap).unwrap_or(i32::MAX);
        let full = check(fill(out.as_mut_ptr() as usize as i32, cap_i32))?;
        if full <= cap {
            // SAFETY: the host wrote `full` initialised bytes into the spare capacity.
            unsafe { out.set_len(full) };
            return Ok(out);
        }
        out.reserve_exact(full);
    }
    // The value grew between two calls in one invocation, which the ABI rules out.
    Err(Error::Host(ErrorCode::Unavailable))
}
