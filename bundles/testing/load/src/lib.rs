//! Test guest (and, with `outpost.toml` next to it, an app) for the footprint measurements of
//! `cross/footprint.sh`: each run emits one 100-byte JSON event to stream `load`,
//! `{"at":<wall ms>,"i":0,"pad":"xx…"}`. Its trigger fires every 10 ms.
//!
//! Run by hand (`outpost invoke DIR load --payload FILE`) with a payload of ASCII digits `N`, it
//! emits `N` such events (`"i"` 0..N) in one invocation: how the script queues a backlog quickly.
//! Needs grants: streams ["load"]; `N` × ~104 bytes must fit the output limit.
#![no_std]

use core::fmt::Write;
use outpost_sdk::prelude::*;

/// Bytes of each event (the sync bench's payload size).
const EVENT_BYTES: usize = 100;

fn handle() -> Result<()> {
    let count = match trigger::kind() {
        TriggerKind::Manual => parse_count(&trigger::payload()).unwrap_or(1),
        _ => 1,
    };
    let at = clock::wall_ms();
    let mut event = String::with_capacity(EVENT_BYTES);
    for i in 0..count {
        event.clear();
        let _ = write!(event, "{{\"at\":{at},\"i\":{i},\"pad\":\"");
        while event.len() < EVENT_BYTES - 2 {
            event.push('x');
        }
        event.push_str("\"}");
        stream::emit("load", event.as_bytes())?;
    }
    Ok(())
}

/// ASCII digits (surrounding whitespace allowed) as a count; `None` for anything else.
fn parse_count(payload: &[u8]) -> Option<u32> {
    let text = core::str::from_utf8(payload).ok()?.trim();
    text.parse().ok()
}

outpost_sdk::handler!(handle);
