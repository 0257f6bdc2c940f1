//! Logging to the agent's log. Messages over 4 KiB are truncated by the host; log bytes count
//! towards the invocation's output limit.
//!
//! For formatted messages use the [`log!`](crate::log!) macro: `log!(info, "mean {mean:.2}")`.

use crate::buf::{len, ptr};
use crate::sys;
use outpost_abi::LogLevel;

/// Logs `message` at `level`. Logging is best effort: it never fails the handler.
pub fn write(level: LogLevel, message: &str) {
    let bytes = message.as_bytes();
    // SAFETY: the pointer/length pair is a live slice; the host only reads it.
    unsafe { sys::log(level as i32, ptr(bytes), len(bytes)) };
}

/// Logs at trace level.
pub fn trace(message: &str) {
    write(LogLevel::Trace, message);
}

/// Logs at debug level.
pub fn debug(message: &str) {
    write(LogLevel::Debug, message);
}

/// Logs at info level.
pub fn info(message: &str) {
    write(LogLevel::Info, message);
}

/// Logs at warn level.
pub fn warn(message: &str) {
    write(LogLevel::Warn, message);
}

/// Logs at error level.
pub fn error(message: &str) {
    write(LogLevel::Error, message);
}

/// Formats and logs a message: `log!(level, "format", args..)`, where `level` is one of
/// `trace`, `debug`, `info`, `warn`, `error`. Formats with `alloc::format!`.
#[macro_export]
macro_rules! log {
    ($level:ident, $($arg:tt)+) => {
        $crate::log::$level(&$crate::__private::format!($($arg)+))
    };
}
