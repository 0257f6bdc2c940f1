//! The `outpost_handle` export: [`handler!`](crate::handler!) turns a `fn() -> Result<()>` into it.

use crate::stack_str::StackStr;
use crate::{Result, log};
use core::fmt::Write;

/// Runs `handler` and maps its result to the export's return value: `0` on `Ok`; on `Err` the
/// error is logged at error level and its non-zero [`crate::Error::as_i32`] is returned, so the
/// host commits nothing.
pub fn run(handler: impl FnOnce() -> Result<()>) -> i32 {
    match handler() {
        Ok(()) => 0,
        Err(error) => {
            let mut message = StackStr::<256>::new();
            let _ = write!(message, "handler failed: {error}");
            log::error(message.as_str());
            error.as_i32()
        }
    }
}

/// Exports `fn outpost_handle() -> i32` calling the given `fn() -> outpost_sdk::Result<()>`:
/// `outpost_sdk::handler!(my_handler);`. Use it once per component. With the feature
/// `panic-handler` (default on) it also installs the SDK's `#[panic_handler]` (outside
/// `cfg(test)`), which logs the panic and traps.
#[macro_export]
macro_rules! handler {
    ($handler:path) => {
        /// The Outpost entry point, called once per invocation in a fresh instance: `0` when the
        /// handler succeeded (its effects are committed), non-zero when it failed (nothing is).
        #[unsafe(no_mangle)]
        pub extern "C" fn outpost_handle() -> i32 {
            $crate::handler::run($handler)
        }

        $crate::__panic_handler!();
    };
}
