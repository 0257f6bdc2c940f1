//! `emit` and `mqtt_publish`: both append to the invocation's pending outbox records.

use outpost_abi::{ErrorCode, limits, v1};
use wasmi::{Caller, Linker};

use super::{abi_try, guest_memory, split};
use crate::runtime::context::InvocationContext;
use crate::runtime::effects::OutboxEffect;
use crate::runtime::services::Outbound;

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
        let stream = stream.to_owned();
        return Ok(ctx.refuse(ErrorCode::Denied, || {
            format!("stream '{stream}' is not granted")
        }));
    }
    let len = data.len();
    if len > limits::MAX_PAYLOAD_LEN {
        let stream = stream.to_owned();
        return Ok(ctx.refuse(ErrorCode::TooLarge, || {
            format!(
                "emit to stream '{stream}': {len} bytes, over the ABI's {} bytes",
                limits::MAX_PAYLOAD_LEN
            )
        }));
    }
    // Sized now against the packet that will carry it: a committed event can always be sent.
    let outbound = Outbound::Event {
        app: &ctx.app,
        component: &ctx.component.id,
        stream,
        data,
    };
    if let Err(unsendable) = ctx.services.send.check(&outbound) {
        let stream = stream.to_owned();
        return Ok(ctx.refuse(ErrorCode::TooLarge, || {
            format!("emit to stream '{stream}': {len} bytes {unsendable}")
        }));
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
        let topic = topic.to_owned();
        return Ok(ctx.refuse(ErrorCode::Denied, || {
            format!("publish topic '{topic}' is not granted")
        }));
    }
    let len = payload.len();
    if len > limits::MAX_PAYLOAD_LEN {
        let topic = topic.to_owned();
        return Ok(ctx.refuse(ErrorCode::TooLarge, || {
            format!(
                "publish to '{topic}': {len} bytes, over the ABI's {} bytes",
                limits::MAX_PAYLOAD_LEN
            )
        }));
    }
    if let Err(unsendable) = ctx
        .services
        .send
        .check(&Outbound::Publish { topic, payload })
    {
        let topic = topic.to_owned();
        return Ok(ctx.refuse(ErrorCode::TooLarge, || {
            format!("publish to '{topic}': {len} bytes {unsendable}")
        }));
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
