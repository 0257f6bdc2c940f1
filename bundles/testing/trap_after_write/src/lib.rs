//! Test guest: buffers a KV write and an event, then panics (the SDK's panic handler traps).
//! The test checks that neither was committed. Needs grants: kv ["state"], streams ["events"].
#![no_std]

use outpost_sdk::prelude::*;

fn handle() -> Result<()> {
    kv::set_string("state", "written", "yes")?;
    stream::emit("events", b"before-trap")?;
    panic!("trap_after_write: deliberate trap after writing");
}

outpost_sdk::handler!(handle);
