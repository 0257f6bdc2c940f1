//! The host functions of ABI v1 (`docs/ABI.md`), registered on a wasmi `Linker`.
//!
//! Every function validates guest pointers and the component's grants before doing anything,
//! and reports problems as the ABI's negative error codes. Only exceeded per-invocation limits
//! end the invocation (a trap), because the guest could otherwise ignore them.
//!
//! - [`guest_memory`]: bounds-checked access to guest memory.
//! - [`basic`]: log, clocks, random, trigger info, config.
//! - [`kv`]: key-value, reading through pending writes.
//! - [`outbox`]: emit and MQTT publish.
//! - [`sensor`]: sensor reads.
//! - [`gpio`]: GPIO line reads, and writes buffered until the commit.

pub mod basic;
pub mod gpio;
pub mod guest_memory;
pub mod kv;
pub mod outbox;
pub mod sensor;

use outpost_abi::{ErrorCode, v1};
use wasmi::{Caller, Extern, Linker, ValType};

use super::context::InvocationContext;

/// Returns the ABI error code from a host function when `$e` is an `Err(ErrorCode)`.
macro_rules! abi_try {
    ($e:expr) => {
        match $e {
            Ok(value) => value,
            Err(code) => return Ok(outpost_abi::ErrorCode::as_i32(code)),
        }
    };
}
pub(crate) use abi_try;

/// The guest's memory and the invocation context, borrowed together so a host function can read
/// arguments and update the context without copying.
pub(crate) fn split<'a>(
    caller: &'a mut Caller<'_, InvocationContext>,
) -> Result<(&'a mut [u8], &'a mut InvocationContext), ErrorCode> {
    let memory = caller
        .get_export(v1::EXPORT_MEMORY)
        .and_then(Extern::into_memory)
        .ok_or(ErrorCode::OutOfBounds)?;
    Ok(memory.data_and_store_mut(caller))
}

/// The `(i32 parameter count, result type)` of a v1 function: every v1 parameter is an `i32`.
pub fn signature(function: &str) -> Option<(usize, ValType)> {
    Some(match function {
        v1::CLOCK_WALL_MS | v1::CLOCK_MONOTONIC_NS => (0, ValType::I64),
        v1::TRIGGER_KIND => (0, ValType::I32),
        v1::RANDOM_FILL
        | v1::TRIGGER_NAME
        | v1::PAYLOAD_READ
        | v1::GPIO_READ
        | v1::DEVICE_ID
        | v1::TRIGGER_TOPIC => (2, ValType::I32),
        v1::LOG | v1::SENSOR_READ | v1::GPIO_WRITE => (3, ValType::I32),
        v1::CONFIG_GET | v1::KV_DELETE | v1::EMIT => (4, ValType::I32),
        v1::KV_GET | v1::KV_SET | v1::KV_LIST | v1::MQTT_PUBLISH => (6, ValType::I32),
        _ => return None,
    })
}

/// Registers every v1 host function on `linker`.
pub fn define_v1(linker: &mut Linker<InvocationContext>) -> Result<(), wasmi::Error> {
    basic::define(linker)?;
    kv::define(linker)?;
    outbox::define(linker)?;
    sensor::define(linker)?;
    gpio::define(linker)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_abi_function_has_a_signature() {
        for function in v1::FUNCTIONS {
            assert!(signature(function).is_some(), "{function} has no signature");
        }
        assert!(signature("fd_write").is_none());
    }
}
