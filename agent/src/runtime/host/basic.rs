//! Host functions that need no grant (log, clocks, random, trigger info, device id) and
//! `config_get`.

use outpost_abi::{ErrorCode, LogLevel, limits, v1};
use wasmi::{Caller, Linker};

use super::{abi_try, guest_memory, split};
use crate::runtime::context::InvocationContext;

type Ctx<'a> = Caller<'a, InvocationContext>;

/// Registers log, clocks, random, trigger info and config on `linker`.
pub fn define(linker: &mut Linker<InvocationContext>) -> Result<(), wasmi::Error> {
    linker.func_wrap(v1::MODULE, v1::LOG, log)?;
    linker.func_wrap(v1::MODULE, v1::CLOCK_WALL_MS, |caller: Ctx<'_>| {
        caller.data().services.clock.wall_ms()
    })?;
    linker.func_wrap(v1::MODULE, v1::CLOCK_MONOTONIC_NS, |caller: Ctx<'_>| {
        i64::try_from(caller.data().services.clock.monotonic().as_nanos()).unwrap_or(i64::MAX)
    })?;
    linker.func_wrap(v1::MODULE, v1::RANDOM_FILL, random_fill)?;
    linker.func_wrap(v1::MODULE, v1::TRIGGER_KIND, |caller: Ctx<'_>| {
        caller.data().firing.kind as i32
    })?;
    linker.func_wrap(v1::MODULE, v1::TRIGGER_NAME, trigger_name)?;
    linker.func_wrap(v1::MODULE, v1::PAYLOAD_READ, payload_read)?;
    linker.func_wrap(v1::MODULE, v1::DEVICE_ID, device_id)?;
    linker.func_wrap(v1::MODULE, v1::TRIGGER_TOPIC, trigger_topic)?;
    linker.func_wrap(v1::MODULE, v1::CONFIG_GET, config_get)?;
    Ok(())
}

fn log(mut caller: Ctx<'_>, level: i32, ptr: i32, len: i32) -> Result<i32, wasmi::Error> {
    let (memory, ctx) = abi_try!(split(&mut caller));
    let level = abi_try!(LogLevel::from_i32(level).ok_or(ErrorCode::InvalidArgument));
    let raw = abi_try!(guest_memory::bytes(memory, ptr, len));
    let raw = &raw[..raw.len().min(limits::MAX_LOG_LEN)];
    ctx.charge_output(raw.len())?;
    let message = escape_controls(&String::from_utf8_lossy(raw)).into_owned();
    let (app, component, trigger) = (&*ctx.app, &*ctx.component.id, &*ctx.firing.name);
    match level {
        LogLevel::Trace => {
            tracing::trace!(target: "component", app, component, trigger, "{message}")
        }
        LogLevel::Debug => {
            tracing::debug!(target: "component", app, component, trigger, "{message}")
        }
        LogLevel::Info => tracing::info!(target: "component", app, component, trigger, "{message}"),
        LogLevel::Warn => tracing::warn!(target: "component", app, component, trigger, "{message}"),
        LogLevel::Error => {
            tracing::error!(target: "component", app, component, trigger, "{message}")
        }
    }
    Ok(0)
}

/// A guest's log text as one line of printable text: control characters (`\n`, `\r`, ESC, ...)
/// and bidirectional-override marks become escapes, so a guest cannot start a line that reads
/// as the agent's own, or hide text, in the journal or on a terminal.
fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    let bidi = |c: char| matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if !text.chars().any(|c| c.is_control() || bidi(c)) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            '\t' => escaped.push_str("\\t"),
            c if c.is_control() || bidi(c) => {
                escaped.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
            }
            c => escaped.push(c),
        }
    }
    std::borrow::Cow::Owned(escaped)
}

fn random_fill(mut caller: Ctx<'_>, ptr: i32, len: i32) -> Result<i32, wasmi::Error> {
    let (memory, _) = abi_try!(split(&mut caller));
    let target = abi_try!(guest_memory::range(memory, ptr, len));
    if target.len() > limits::MAX_PAYLOAD_LEN {
        return Ok(ErrorCode::TooLarge.as_i32());
    }
    abi_try!(getrandom::fill(&mut memory[target]).map_err(|_| ErrorCode::Unavailable));
    Ok(0)
}

fn trigger_name(mut caller: Ctx<'_>, out_ptr: i32, out_cap: i32) -> Result<i32, wasmi::Error> {
    let (memory, ctx) = abi_try!(split(&mut caller));
    Ok(abi_try!(guest_memory::write_out(
        memory,
        out_ptr,
        out_cap,
        ctx.firing.name.as_bytes()
    )))
}

fn payload_read(mut caller: Ctx<'_>, out_ptr: i32, out_cap: i32) -> Result<i32, wasmi::Error> {
    let (memory, ctx) = abi_try!(split(&mut caller));
    Ok(abi_try!(guest_memory::write_out(
        memory,
        out_ptr,
        out_cap,
        &ctx.firing.payload
    )))
}

fn device_id(mut caller: Ctx<'_>, out_ptr: i32, out_cap: i32) -> Result<i32, wasmi::Error> {
    let (memory, ctx) = abi_try!(split(&mut caller));
    let device = ctx.services.device.clone();
    Ok(abi_try!(guest_memory::write_out(
        memory,
        out_ptr,
        out_cap,
        device.as_bytes()
    )))
}

fn trigger_topic(mut caller: Ctx<'_>, out_ptr: i32, out_cap: i32) -> Result<i32, wasmi::Error> {
    let (memory, ctx) = abi_try!(split(&mut caller));
    let topic = ctx.firing.topic.as_deref().unwrap_or_default();
    Ok(abi_try!(guest_memory::write_out(
        memory,
        out_ptr,
        out_cap,
        topic.as_bytes()
    )))
}

fn config_get(
    mut caller: Ctx<'_>,
    name_ptr: i32,
    name_len: i32,
    out_ptr: i32,
    out_cap: i32,
) -> Result<i32, wasmi::Error> {
    let (memory, ctx) = abi_try!(split(&mut caller));
    let name = abi_try!(guest_memory::name(
        memory,
        name_ptr,
        name_len,
        limits::MAX_NAME_LEN
    ));
    if !ctx.component.grants.allows_config(name) {
        return Ok(ctx.refuse(ErrorCode::Denied, || {
            format!("config '{name}' is not granted")
        }));
    }
    let variables = ctx.services.variables.clone();
    let Some(value) = variables.get(name) else {
        return Ok(ctx.refuse(ErrorCode::NotFound, || {
            format!("config '{name}' is not set")
        }));
    };
    Ok(abi_try!(guest_memory::write_out(
        memory,
        out_ptr,
        out_cap,
        value.as_bytes()
    )))
}

#[cfg(test)]
mod tests {
    use super::escape_controls;

    #[test]
    fn log_text_cannot_forge_lines_or_hide_text() {
        assert_eq!(escape_controls("plain ünï text"), "plain ünï text");
        assert_eq!(
            escape_controls("ok\nINFO outpost: fleet: installed evil\r\x1b[2K"),
            "ok\\nINFO outpost: fleet: installed evil\\r\\u{1b}[2K"
        );
        assert_eq!(escape_controls("a\u{202e}b"), "a\\u{202e}b");
    }
}
