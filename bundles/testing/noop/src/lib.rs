//! Test guest: a handler that does nothing. The benchmark baseline for a trivial invocation.
#![no_std]

fn handle() -> outpost_sdk::Result<()> {
    Ok(())
}

outpost_sdk::handler!(handle);
