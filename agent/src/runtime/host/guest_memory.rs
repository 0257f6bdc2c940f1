//! Bounds-checked views of guest memory. Every pointer a guest passes is untrusted: a bad one
//! yields `out-of-bounds`, never a host panic or a read outside the guest's memory.

use outpost_abi::ErrorCode;

/// The byte range `[ptr, ptr + len)` of `memory`, if it lies wholly inside.
pub fn range(memory: &[u8], ptr: i32, len: i32) -> Result<std::ops::Range<usize>, ErrorCode> {
    let start = usize::try_from(ptr).map_err(|_| ErrorCode::OutOfBounds)?;
    let len = usize::try_from(len).map_err(|_| ErrorCode::OutOfBounds)?;
    let end = start.checked_add(len).ok_or(ErrorCode::OutOfBounds)?;
    if end > memory.len() {
        return Err(ErrorCode::OutOfBounds);
    }
    Ok(start..end)
}

/// Reads `len` bytes at `ptr`.
pub fn bytes(memory: &[u8], ptr: i32, len: i32) -> Result<&[u8], ErrorCode> {
    Ok(&memory[range(memory, ptr, len)?])
}

/// Reads a UTF-8 name of 1..=`max` bytes at `ptr` (over-long is `too-large`).
pub fn name(memory: &[u8], ptr: i32, len: i32, max: usize) -> Result<&str, ErrorCode> {
    let raw = bytes(memory, ptr, len)?;
    if raw.is_empty() {
        return Err(ErrorCode::InvalidArgument);
    }
    if raw.len() > max {
        return Err(ErrorCode::TooLarge);
    }
    std::str::from_utf8(raw).map_err(|_| ErrorCode::InvalidArgument)
}

/// Copies `value` to the guest buffer `[out_ptr, out_ptr + out_cap)` if it fits, and returns
/// the value's full length either way (the ABI's "call again with a bigger buffer" contract).
pub fn write_out(
    memory: &mut [u8],
    out_ptr: i32,
    out_cap: i32,
    value: &[u8],
) -> Result<i32, ErrorCode> {
    let target = range(memory, out_ptr, out_cap)?;
    let full = i32::try_from(value.len()).map_err(|_| ErrorCode::TooLarge)?;
    if value.len() <= target.len() {
        memory[target.start..target.start + value.len()].copy_from_slice(value);
    }
    Ok(full)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_outside_memory_are_refused() {
        let memory = [0u8; 16];
        assert_eq!(range(&memory, 0, 16), Ok(0..16));
        assert_eq!(range(&memory, 16, 0), Ok(16..16));
        assert_eq!(range(&memory, 8, 9), Err(ErrorCode::OutOfBounds));
        assert_eq!(range(&memory, -1, 1), Err(ErrorCode::OutOfBounds));
        assert_eq!(range(&memory, 1, -1), Err(ErrorCode::OutOfBounds));
        assert_eq!(
            range(&memory, i32::MAX, i32::MAX),
            Err(ErrorCode::OutOfBounds)
        );
    }

    #[test]
    fn names_must_be_non_empty_utf8_within_the_limit() {
        let memory = *b"ok\xff\xfeabcdef";
        assert_eq!(name(&memory, 0, 2, 8), Ok("ok"));
        assert_eq!(name(&memory, 0, 0, 8), Err(ErrorCode::InvalidArgument));
        assert_eq!(name(&memory, 2, 2, 8), Err(ErrorCode::InvalidArgument));
        assert_eq!(name(&memory, 4, 6, 3), Err(ErrorCode::TooLarge));
    }

    #[test]
    fn write_out_reports_full_length_and_writes_only_when_it_fits() {
        let mut memory = [0u8; 8];
        assert_eq!(write_out(&mut memory, 0, 4, b"abcdef"), Ok(6));
        assert_eq!(
            memory, [0u8; 8],
            "nothing written when the buffer is too small"
        );
        assert_eq!(write_out(&mut memory, 2, 6, b"abcdef"), Ok(6));
        assert_eq!(&memory[2..], b"abcdef");
        assert_eq!(
            write_out(&mut memory, 4, 6, b"x"),
            Err(ErrorCode::OutOfBounds)
        );
    }
}
