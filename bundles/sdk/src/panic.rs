//! Panics: log the message at error level (best effort, at most 512 bytes, no heap), then trap
//! with `unreachable`, so the invocation fails and commits nothing.
//!
//! With the `panic-handler` feature (default), [`handler!`](crate::handler!) installs [`trap`]
//! as the guest's `#[panic_handler]`. It is emitted into the guest crate rather than defined
//! here so the guest's own `cfg(test)` can leave it out: a host test build links `std`, whose
//! panic handler would clash with it.

use crate::log;
use crate::stack_str::StackStr;
use core::fmt::Write;
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering::Relaxed};

/// Set on the first panic, so a panic while formatting the message just traps.
static PANICKING: AtomicBool = AtomicBool::new(false);

/// Logs the panic at error level, then traps. Call it from your own `#[panic_handler]` when the
/// `panic-handler` feature is off.
pub fn trap(info: &PanicInfo<'_>) -> ! {
    if !PANICKING.swap(true, Relaxed) {
        let mut message = StackStr::<512>::new();
        let _ = write!(message, "panicked: {}", info.message());
        if let Some(location) = info.location() {
            let _ = write!(message, " at {location}");
        }
        log::error(message.as_str());
    }
    core::arch::wasm32::unreachable()
}

/// Expands to the guest's `#[panic_handler]` (feature `panic-handler` on).
#[cfg(feature = "panic-handler")]
#[doc(hidden)]
#[macro_export]
macro_rules! __panic_handler {
    () => {
        #[cfg(all(target_arch = "wasm32", not(test)))]
        #[panic_handler]
        fn __outpost_panic(info: &::core::panic::PanicInfo<'_>) -> ! {
            $crate::panic::trap(info)
        }
    };
}

/// Expands to nothing (feature `panic-handler` off: the guest brings its own).
#[cfg(not(feature = "panic-handler"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __panic_handler {
    () => {};
}
