//! Guest SDK for Outpost components.
//!
//! An Outpost component is a core wasm32 module that imports host functions from the
//! `outpost_v1` module (see `docs/ABI.md`) and exports `memory` and `outpost_handle`. This crate
//! wraps those imports in safe, allocation-friendly Rust so a handler is a few lines:
//!
//! ```rust,ignore
//! #![no_std]
//! use outpost_sdk::prelude::*;
//!
//! fn handle() -> Result<()> {
//!     let celsius = sensor::read("temperature")?;
//!     kv::set_string("readings", "latest", &format!("{celsius:.2}"))
//! }
//! outpost_sdk::handler!(handle);
//! ```
//!
//! # Layout
//! - [`sys`]: the raw `outpost_v1` imports, exactly as the ABI declares them.
//! - [`Error`] / [`Result`]: host error codes as a Rust error.
//! - One module per host interface: [`log`], [`clock`], [`random`], [`trigger`], [`config`],
//!   [`kv`], [`stream`], [`sensor`], [`mqtt`], [`gpio`].
//! - [`handler!`]: generates the `outpost_handle` export from a `fn() -> Result<()>`.
//! - [`hex`]: lower-case hex encoding, for ids and payload dumps.
//! - `allocator` (feature `allocator`, default on): a bump allocator that never frees.
//! - [`panic`]: log the panic, then trap; [`handler!`] installs it as the guest's
//!   `#[panic_handler]` when the feature `panic-handler` (default on) is enabled.
//!
//! Every invocation runs in a fresh instance, so nothing in memory survives between calls:
//! state that must last goes to [`kv`]. Effects ([`kv::set`], [`kv::delete`], [`stream::emit`],
//! [`mqtt::publish`], [`gpio::write`]) are committed only if the handler returns `Ok`.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

mod buf;
mod error;
mod stack_str;

pub mod clock;
pub mod config;
pub mod device;
pub mod gpio;
pub mod handler;
pub mod hex;
pub mod kv;
pub mod log;
pub mod mqtt;
pub mod random;
pub mod sensor;
pub mod stream;
pub mod sys;
pub mod trigger;

#[cfg(all(feature = "allocator", target_arch = "wasm32"))]
mod allocator;
#[cfg(target_arch = "wasm32")]
pub mod panic;

pub use error::{Error, Result};
pub use mqtt::Qos;
/// The ABI crate itself, for guests that need its constants (limits, names).
pub use outpost_abi;
pub use outpost_abi::{ErrorCode, LogLevel, SensorPayload, TriggerKind};

/// What a handler usually needs: the interface modules, the error types and the `alloc` basics
/// (`String`, `Vec`, `format!`) that a `#![no_std]` guest would otherwise import by hand.
pub mod prelude {
    pub use crate::{Error, Qos, Result, SensorPayload, TriggerKind};
    // `log` and `handler` bring both the module and the macro of that name.
    pub use crate::{
        clock, config, device, gpio, handler, hex, kv, log, mqtt, random, sensor, stream, trigger,
    };
    pub use alloc::borrow::ToOwned;
    pub use alloc::string::{String, ToString};
    pub use alloc::vec::Vec;
    pub use alloc::{format, vec};
}

/// Not public API: items the exported macros expand to.
#[doc(hidden)]
pub mod __private {
    pub use alloc::format;
}
