//! Test guest: emits one event to stream `echo`:
//! `kind=<n> name=<trigger name> len=<payload length>\n<payload as lower-case hex>`
//! (`n` is the ABI trigger kind number). If config variable `greeting` is granted and set, also
//! writes it to KV `echo/greeting`. Expected grants: streams ["echo"], kv ["echo"],
//! config ["greeting"].
#![no_std]

use outpost_sdk::prelude::*;

fn handle() -> Result<()> {
    let payload = trigger::payload();
    let line = format!(
        "kind={} name={} len={}\n{}",
        trigger::kind() as i32,
        trigger::name(),
        payload.len(),
        hex::encode(&payload),
    );
    stream::emit("echo", line.as_bytes())?;
    match config::get("greeting") {
        Ok(Some(greeting)) => kv::set_string("echo", "greeting", &greeting),
        Ok(None) => Ok(()),
        Err(error) if error.is_denied() => Ok(()),
        Err(error) => Err(error),
    }
}

outpost_sdk::handler!(handle);
