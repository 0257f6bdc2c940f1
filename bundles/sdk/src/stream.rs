//! Event streams (each needs a `streams` grant).

use crate::buf::{check, len, ptr};
use crate::{Result, sys};

/// Appends `data` (at most 64 KiB) as one event to `stream`. Committed only if the handler
/// succeeds; the event gets its device-wide sequence number then.
pub fn emit(stream: &str, data: &[u8]) -> Result<()> {
    let stream = stream.as_bytes();
    // SAFETY: both pointer/length pairs are live slices; the host only reads them.
    check(unsafe { sys::emit(ptr(stream), len(stream), ptr(data), len(data)) })?;
    Ok(())
}
