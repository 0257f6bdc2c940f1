//! Test guest: one KV write and one emit, 16 bytes each (benchmark).
//! Needs grants: kv ["bench"], streams ["bench"].
#![no_std]

use outpost_sdk::prelude::*;

const DATA: &[u8] = b"0123456789abcdef";

fn handle() -> Result<()> {
    kv::set("bench", "k", DATA)?;
    stream::emit("bench", DATA)
}

outpost_sdk::handler!(handle);
