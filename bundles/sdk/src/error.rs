//! Host error codes as a Rust error type.

use core::fmt;
use outpost_abi::ErrorCode;

/// Why an SDK call (or a handler) failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The host returned one of the ABI's error codes.
    Host(ErrorCode),
    /// The host returned a negative value this SDK does not know (a newer host's code).
    Unknown(i32),
    /// A failure on the guest side: a reply that does not decode, bad config, a handler's own
    /// check. Not an ABI code.
    Other(&'static str),
}

/// The result of an SDK call or a handler.
pub type Result<T> = core::result::Result<T, Error>;

impl Error {
    /// Decodes a negative return value.
    pub fn from_code(code: i32) -> Error {
        match ErrorCode::from_i32(code) {
            Some(known) => Error::Host(known),
            None => Error::Unknown(code),
        }
    }

    /// The numeric value: the (negative) ABI code for host errors, the raw value for unknown
    /// ones, and `1` for [`Error::Other`]. Also what a failed handler returns, so never `0`.
    pub fn as_i32(&self) -> i32 {
        match *self {
            Error::Host(code) => code.as_i32(),
            Error::Unknown(0) | Error::Other(_) => 1,
            Error::Unknown(code) => code,
        }
    }

    /// True when the host refused the call because the manifest does not grant it.
    pub fn is_denied(&self) -> bool {
        *self == Error::Host(ErrorCode::Denied)
    }
}

impl From<ErrorCode> for Error {
    fn from(code: ErrorCode) -> Error {
        Error::Host(code)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Host(code) => write!(f, "host error {} ({})", code.name(), code.as_i32()),
            Error::Unknown(code) => write!(f, "unknown host error code {code}"),
            Error::Other(message) => f.write_str(message),
        }
    }
}

impl core::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_decode_and_never_report_success() {
        assert_eq!(Error::from_code(-1), Error::Host(ErrorCode::Denied));
        assert_eq!(Error::from_code(-42), Error::Unknown(-42));
        assert_eq!(Error::from_code(-2).as_i32(), -2);
        assert_eq!(Error::Other("x").as_i32(), 1);
        assert_eq!(Error::Unknown(0).as_i32(), 1);
    }
}
