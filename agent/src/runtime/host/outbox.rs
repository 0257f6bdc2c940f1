//! `emit` and `mqtt_publish`: both append to the invocation's pending outbox records.

use outpost_abi::{ErrorCode, limits, v1};
use wasmi::{Caller, Linker};

use super::{abi_try, guest_memory, split};
use crate::runtime::context::InvocationContext;
use crate::runtime::effects::OutboxEffect;

type Ctx<'a> = Caller<'a, InvocationContext>;

/// Registers emit and mqtt_publish on `linker`.
pub fn define(linker: &mut Linker<InvocationContext>) -> Result<(), wasmi::Error> {
    linker.func_wrap(v1::MODULE, v1::EMIT, emit)?;
    linker.func_wrap(v1::MODULE, v1::MQTT_PUBLISH, mqtt_publish)?;
    Ok(())
}

fn emit(
    mut caller: Ctx<'_>,
    stream_ptr: i32,
    stream_len: i32,
    data_ptr: i32,
    data_len: i32,
) -> Result<i32, wasmi::Error> {
    let (memory, ctx) = abi_try!(split(&mut caller));
    let stream = abi_try!(guest_memory::name(
        memory,
        stream_ptr,
        stream_len,
        limits::MAX_NAME_LEN
    ));
    let data = abi_try!(guest_memory::bytes(memory, data_ptr, data_len));
    if !ctx.component.grants.allows_stream(stream) {
        return Ok(ErrorCode::Denied.as_i32());
    }
    if data.len() > limits::MAX_PAYLOAD_LEN {
        return Ok(ErrorCode::TooLarge.as_i32());
    }
    ctx.charge_output(stream.len() + data.len())?;
    ctx.effects.records.push(OutboxEffect::Event {
        stream: stream.to_owned(),
        data: data.to_vec(),
    });
    Ok(0)
}

#[allow(clippy::too_many_arguments)] // the ABI's shape
fn mqtt_publish(
    mut caller: Ctx<'_>,
    topic_ptr: i32,
    topic_len: i32,
    payload_ptr: i32,
    payload_len: i32,
    qos: i32,
    retain: i32,
) -> Result<i32, wasmi::Error> {
    let (memory, ctx) = abi_try!(split(&mut caller));
    let topic = abi_try!(guest_memory::name(
        memory,
        topic_ptr,
        topic_len,
        limits::MAX_TOPIC_LEN
    ));
    let payload = abi_try!(guest_memory::bytes(memory, payload_ptr, payload_len));
    // A publish names one topic: wildcards belong to subscriptions only.
    if topic.contains(['+', '#', '\0']) || !matches!(qos, 0 | 1) || !matches!(retain, 0 | 1) {
        return Ok(ErrorCode::InvalidArgument.as_i32());
    }
    if !ctx.component.grants.allows_publish(topic) {
        return Ok(ErrorCode::Denied.as_i32());
    }
    if payload.len() > limits::MAX_PAYLOAD_LEN {
        return Ok(ErrorCode::TooLarge.as_i32());
    }
    ctx.charge_output(topic.len() + payload.len())?;
    ctx.effects.records.push(OutboxEffect::Publish {
        topic: topic.to_owned(),
        payload: payload.to_vec(),
        qos: qos as u8,
        retain: retain == 1,
    });
    Ok(0)
}
