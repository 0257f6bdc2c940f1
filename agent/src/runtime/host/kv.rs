//! Key-value host functions. Writes go to the invocation's pending effects; reads look there
//! first, so a component sees its own writes before they are committed.

use std::collections::BTreeSet;

use outpost_abi::{ErrorCode, limits, v1};
use wasmi::{Caller, Linker};

use super::{abi_try, guest_memory, split};
use crate::runtime::context::InvocationContext;
use crate::runtime::services::Outbound;

type Ctx<'a> = Caller<'a, InvocationContext>;

/// Most keys one `kv_list` call returns; bounds host memory for a hostile or huge namespace.
const MAX_LIST_KEYS: usize = 10_000;

/// Registers kv_get, kv_set, kv_delete and kv_list on `linker`.
pub fn define(linker: &mut Linker<InvocationContext>) -> Result<(), wasmi::Error> {
    linker.func_wrap(v1::MODULE, v1::KV_GET, kv_get)?;
    linker.func_wrap(v1::MODULE, v1::KV_SET, kv_set)?;
    linker.func_wrap(v1::MODULE, v1::KV_DELETE, kv_delete)?;
    linker.func_wrap(v1::MODULE, v1::KV_LIST, kv_list)?;
    Ok(())
}

/// Reads and checks the namespace and key arguments; copies them since the guest memory is
/// written to later in the same call.
fn ns_and_key(
    memory: &[u8],
    ctx: &mut InvocationContext,
    ns: (i32, i32),
    key: (i32, i32),
) -> Result<(String, String), ErrorCode> {
    let ns = guest_memory::name(memory, ns.0, ns.1, limits::MAX_NAME_LEN)?;
    let key = guest_memory::name(memory, key.0, key.1, limits::MAX_KEY_LEN)?;
    if !ctx.component.grants.allows_kv(ns) {
        ctx.refuse(ErrorCode::Denied, || {
            format!("kv namespace '{ns}' is not granted")
        });
        return Err(ErrorCode::Denied);
    }
    Ok((ns.to_owned(), key.to_owned()))
}

/// The value of a key as this invocation sees it: pending write, else committed.
fn current_value(
    ctx: &InvocationContext,
    ns: String,
    key: String,
) -> Result<Option<Vec<u8>>, ErrorCode> {
    let slot = (ns, key);
    if let Some(pending) = ctx.effects.kv.get(&slot) {
        return Ok(pending.clone());
    }
    ctx.services
        .kv
        .get(&ctx.app, &slot.0, &slot.1)
        .map_err(|error| {
            tracing::warn!(component = &*ctx.component.id, %error, "kv read failed");
            ErrorCode::Unavailable
        })
}

#[allow(clippy::too_many_arguments)] // the ABI's shape: three pointer/length pairs
fn kv_get(
    mut caller: Ctx<'_>,
    ns_ptr: i32,
    ns_len: i32,
    key_ptr: i32,
    key_len: i32,
    out_ptr: i32,
    out_cap: i32,
) -> Result<i32, wasmi::Error> {
    let (memory, ctx) = abi_try!(split(&mut caller));
    let (ns, key) = abi_try!(ns_and_key(
        memory,
        ctx,
        (ns_ptr, ns_len),
        (key_ptr, key_len)
    ));
    abi_try!(guest_memory::range(memory, out_ptr, out_cap));
    let value = abi_try!(abi_try!(current_value(ctx, ns, key)).ok_or(ErrorCode::NotFound));
    Ok(abi_try!(guest_memory::write_out(
        memory, out_ptr, out_cap, &value
    )))
}

#[allow(clippy::too_many_arguments)] // the ABI's shape: three pointer/length pairs
fn kv_set(
    mut caller: Ctx<'_>,
    ns_ptr: i32,
    ns_len: i32,
    key_ptr: i32,
    key_len: i32,
    val_ptr: i32,
    val_len: i32,
) -> Result<i32, wasmi::Error> {
    let (memory, ctx) = abi_try!(split(&mut caller));
    let (ns, key) = abi_try!(ns_and_key(
        memory,
        ctx,
        (ns_ptr, ns_len),
        (key_ptr, key_len)
    ));
    let value = abi_try!(guest_memory::bytes(memory, val_ptr, val_len));
    let len = value.len();
    if len > limits::MAX_VALUE_LEN {
        return Ok(ctx.refuse(ErrorCode::TooLarge, || {
            format!(
                "kv_set '{ns}/{key}': {len} bytes, over the ABI's {} bytes",
                limits::MAX_VALUE_LEN
            )
        }));
    }
    // A mirrored namespace sends every change: sized now, like an event.
    if ctx.is_synced(&ns) {
        let outbound = Outbound::Kv {
            ns: &ns,
            key: &key,
            value,
        };
        if let Err(unsendable) = ctx.services.send.check(&outbound) {
            return Ok(ctx.refuse(ErrorCode::TooLarge, || {
                format!("kv_set '{ns}/{key}' (synced): {len} bytes {unsendable}")
            }));
        }
    }
    ctx.charge_output(key.len() + value.len())?;
    ctx.effects.kv.insert((ns, key), Some(value.to_vec()));
    Ok(0)
}

fn kv_delete(
    mut caller: Ctx<'_>,
    ns_ptr: i32,
    ns_len: i32,
    key_ptr: i32,
    key_len: i32,
) -> Result<i32, wasmi::Error> {
    let (memory, ctx) = abi_try!(split(&mut caller));
    let (ns, key) = abi_try!(ns_and_key(
        memory,
        ctx,
        (ns_ptr, ns_len),
        (key_ptr, key_len)
    ));
    let existed = abi_try!(current_value(ctx, ns.clone(), key.clone())).is_some();
    ctx.charge_output(key.len())?;
    ctx.effects.kv.insert((ns, key), None);
    Ok(i32::from(existed))
}

#[allow(clippy::too_many_arguments)] // the ABI's shape: three pointer/length pairs
fn kv_list(
    mut caller: Ctx<'_>,
    ns_ptr: i32,
    ns_len: i32,
    prefix_ptr: i32,
    prefix_len: i32,
    out_ptr: i32,
    out_cap: i32,
) -> Result<i32, wasmi::Error> {
    let (memory, ctx) = abi_try!(split(&mut caller));
    let ns = abi_try!(guest_memory::name(
        memory,
        ns_ptr,
        ns_len,
        limits::MAX_NAME_LEN
    ));
    let prefix = abi_try!(guest_memory::bytes(memory, prefix_ptr, prefix_len));
    let prefix = abi_try!(std::str::from_utf8(prefix).map_err(|_| ErrorCode::InvalidArgument));
    if !ctx.component.grants.allows_kv(ns) {
        return Ok(ctx.refuse(ErrorCode::Denied, || {
            format!("kv namespace '{ns}' is not granted")
        }));
    }
    abi_try!(guest_memory::range(memory, out_ptr, out_cap));
    let committed = abi_try!(
        ctx.services
            .kv
            .keys(&ctx.app, ns, prefix, MAX_LIST_KEYS)
            .map_err(|_| ErrorCode::Unavailable)
    );
    let mut keys: BTreeSet<String> = committed.into_iter().collect();
    for ((p_ns, p_key), value) in &ctx.effects.kv {
        if p_ns == ns && p_key.starts_with(prefix) {
            match value {
                Some(_) => keys.insert(p_key.clone()),
                None => keys.remove(p_key),
            };
        }
    }
    let encoded = encode_keys(keys.iter().take(MAX_LIST_KEYS));
    Ok(abi_try!(guest_memory::write_out(
        memory, out_ptr, out_cap, &encoded
    )))
}

/// The `kv_list` wire format: per key, a `u32` little-endian length then the key bytes.
pub fn encode_keys<'a>(keys: impl Iterator<Item = &'a String>) -> Vec<u8> {
    let mut out = Vec::new();
    for key in keys {
        out.extend_from_slice(&(key.len() as u32).to_le_bytes());
        out.extend_from_slice(key.as_bytes());
    }
    out
}
