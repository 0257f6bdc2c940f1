//! Test guest: makes calls outside and inside its grants and reports each outcome as one event
//! on stream `probe`, `<call> <name> -> <code>` (`0` on success, else the ABI error code), in
//! this order:
//!
//! ```text
//! kv_set forbidden -> -1
//! kv_set allowed -> 0
//! emit not-granted -> -1
//! sensor_read not-granted -> -1
//! config_get not-granted -> -1
//! ```
//!
//! The handler itself always succeeds, so the `allowed` write and the probe events commit.
//! Expected grants: kv ["allowed"], streams ["probe"], sensors ["temperature"], config ["greeting"].
#![no_std]

use outpost_sdk::prelude::*;

/// `0` for success, else the error's ABI code.
fn code<T>(outcome: &Result<T>) -> i32 {
    outcome.as_ref().map_or_else(Error::as_i32, |_| 0)
}

fn report<T>(call: &str, name: &str, outcome: Result<T>) -> Result<()> {
    let line = format!("{call} {name} -> {}", code(&outcome));
    stream::emit("probe", line.as_bytes())
}

fn handle() -> Result<()> {
    report("kv_set", "forbidden", kv::set("forbidden", "k", b"v"))?;
    report("kv_set", "allowed", kv::set("allowed", "k", b"v"))?;
    report("emit", "not-granted", stream::emit("not-granted", b"x"))?;
    report("sensor_read", "not-granted", sensor::read("not-granted"))?;
    report("config_get", "not-granted", config::get("not-granted"))
}

outpost_sdk::handler!(handle);
