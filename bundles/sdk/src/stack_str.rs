//! A fixed-size, truncating text buffer, for formatting without the heap (panics, error logs).

use core::fmt;

/// Up to `N` bytes of UTF-8; writes past the end are dropped at a character boundary.
pub(crate) struct StackStr<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> StackStr<N> {
    /// An empty buffer.
    pub(crate) const fn new() -> Self {
        StackStr {
            bytes: [0; N],
            len: 0,
        }
    }

    /// The text written so far.
    pub(crate) fn as_str(&self) -> &str {
        // SAFETY: `write_str` only ever appends whole `str`s cut at a character boundary.
        unsafe { core::str::from_utf8_unchecked(&self.bytes[..self.len]) }
    }
}

impl<const N: usize> fmt::Write for StackStr<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = N - self.len;
        let mut take = s.len().min(room);
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        self.bytes[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::fmt::Write;

    #[test]
    fn truncates_at_a_char_boundary() {
        let mut text = StackStr::<5>::new();
        let tail = "°°";
        write!(text, "ab{tail}").expect("never fails");
        assert_eq!(text.as_str(), "ab°");
    }
}
