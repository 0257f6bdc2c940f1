//! `sensor_read`: one sample from the board's sensor backend.

use outpost_abi::{ErrorCode, limits, v1};
use outpost_hal::SensorError;
use wasmi::{Caller, Linker};

use super::{abi_try, guest_memory, split};
use crate::runtime::context::InvocationContext;

/// Registers sensor_read on `linker`.
pub fn define(linker: &mut Linker<InvocationContext>) -> Result<(), wasmi::Error> {
    linker.func_wrap(v1::MODULE, v1::SENSOR_READ, sensor_read)?;
    Ok(())
}

fn sensor_read(
    mut caller: Caller<'_, InvocationContext>,
    name_ptr: i32,
    name_len: i32,
    out_ptr: i32,
) -> Result<i32, wasmi::Error> {
    let (memory, ctx) = abi_try!(split(&mut caller));
    let name = abi_try!(guest_memory::name(
        memory,
        name_ptr,
        name_len,
        limits::MAX_NAME_LEN
    ));
    let out = abi_try!(guest_memory::range(memory, out_ptr, 8));
    if !ctx.component.grants.allows_sensor(name) {
        return Ok(ctx.refuse(ErrorCode::Denied, || {
            format!("sensor '{name}' is not granted")
        }));
    }
    // A read may block (a slow bus): it gets what is left of the deadline, and the invocation
    // ends here if that ran out, whatever the read answered.
    let answer = ctx.services.sensors.read_within(name, ctx.remaining());
    ctx.check_deadline(|| format!("sensor_read '{name}'"))?;
    let reading = match answer {
        Ok(reading) => reading,
        Err(SensorError::NotFound(_)) => {
            return Ok(ctx.refuse(ErrorCode::NotFound, || {
                format!("sensor '{name}' does not exist on this board")
            }));
        }
        Err(other) => {
            tracing::warn!(component = &*ctx.component.id, error = %other, "sensor read failed");
            return Ok(ctx.refuse(ErrorCode::Unavailable, || {
                format!("sensor '{name}' failed: {other}")
            }));
        }
    };
    memory[out].copy_from_slice(&reading.value.to_le_bytes());
    Ok(0)
}
