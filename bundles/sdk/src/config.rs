//! Config variables from the manifest's `[variables]` table (each needs a `config` grant).

use crate::buf::{self, len, ptr};
use crate::{Error, ErrorCode, Result, sys};
use alloc::string::String;

/// The value of variable `name`; `Ok(None)` if it is not set.
pub fn get(name: &str) -> Result<Option<String>> {
    let name = name.as_bytes();
    // SAFETY: `name` is a live slice; `buf::read` passes a writable buffer of `cap` bytes.
    let read = buf::read(64, |out, cap| unsafe {
        sys::config_get(ptr(name), len(name), out, cap)
    });
    match read {
        Ok(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| Error::Other("config value is not UTF-8")),
        Err(Error::Host(ErrorCode::NotFound)) => Ok(None),
        Err(error) => Err(error),
    }
}
