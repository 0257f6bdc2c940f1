//! Example app: a command handler that runs the same on every device of a fleet.
//!
//! Its `mqtt` trigger listens on `{commands}/#`, which each device turns into its own command
//! topic and its groups' (`outpost/<device>/commands/commander/#`,
//! `outpost/fleet/<group>/commands/commander/#`). For every command it:
//! - keeps the last one in KV `state` / `last` (`<subtopic> <payload>`);
//! - emits `{"device":"pi-7","command":"led","payload":"on","to":"device"}` to stream
//!   `commands` (`to` is `device` or `group`, from the topic it came on);
//! - publishes `<device>: <payload>` to `replies/<device>/<subtopic>`, so whoever sent it hears
//!   which device answered (the grant is `replies/{device}/#`: a device can only answer as
//!   itself).
#![no_std]

use outpost_sdk::prelude::*;

/// The level after which a command topic names the app, then the command. The app's own name is
/// not written here, so the code runs unchanged under any app name (`outpost new` renames it).
const COMMANDS_LEVEL: &str = "/commands/";

fn handle() -> Result<()> {
    let device = device::id();
    let topic = trigger::topic().unwrap_or_default();
    let (base, command) = topic
        .split_once(COMMANDS_LEVEL)
        .and_then(|(base, rest)| Some((base, rest.split_once('/')?.1)))
        .ok_or(Error::Other("not a command topic"))?;
    // `outpost/fleet/<group>` for group commands, `outpost/<device>` for this device's.
    let to = if base.contains("/fleet/") {
        "group"
    } else {
        "device"
    };
    let payload = trigger::payload();
    let text = core::str::from_utf8(&payload).map_err(|_| Error::Other("payload is not UTF-8"))?;
    kv::set_string("state", "last", &format!("{command} {text}"))?;
    let event = format!(
        r#"{{"device":"{}","command":"{}","payload":"{}","to":"{to}"}}"#,
        json_escape(&device),
        json_escape(command),
        json_escape(text)
    );
    stream::emit("commands", event.as_bytes())?;
    let reply = format!("replies/{device}/{command}");
    mqtt::publish(
        &reply,
        format!("{device}: {text}").as_bytes(),
        Qos::AtLeastOnce,
        false,
    )
}

/// `text` as the inside of a JSON string.
fn json_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

outpost_sdk::handler!(handle);
