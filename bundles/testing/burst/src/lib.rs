//! Test guest: each invocation makes a random 16-hex-character id, writes KV `burst/<id>` = id
//! and emits the id to stream `burst`, so a crash test can check that every emitted id has its
//! KV row and every row its event. Needs grants: kv ["burst"], streams ["burst"].
#![no_std]

use outpost_sdk::prelude::*;

fn handle() -> Result<()> {
    let id = hex::encode(&random::u64().to_le_bytes());
    kv::set_string("burst", &id, &id)?;
    stream::emit("burst", id.as_bytes())
}

outpost_sdk::handler!(handle);
