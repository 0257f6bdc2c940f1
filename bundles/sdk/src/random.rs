//! Random bytes from the host's OS CSPRNG.

use crate::buf::{len, ptr_mut};
use crate::sys;

/// The most the host fills in one call.
const MAX_CHUNK: usize = 64 * 1024;

/// Fills `buf` with random bytes (in 64 KiB pieces, so any length works).
pub fn fill(buf: &mut [u8]) {
    for chunk in buf.chunks_mut(MAX_CHUNK) {
        // SAFETY: the pointer/length pair is a live, writable slice of at most 64 KiB.
        unsafe { sys::random_fill(ptr_mut(chunk), len(chunk)) };
    }
}

/// A random `u64`.
pub fn u64() -> u64 {
    let mut bytes = [0u8; 8];
    fill(&mut bytes);
    u64::from_le_bytes(bytes)
}
