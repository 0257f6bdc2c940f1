//! `gpio_read` and `gpio_write`: GPIO lines, granted line by line (`in:` reads, `out:` writes
//! and reads back).
//!
//! Reads go to the board at once, except for a line this invocation already wrote, which reads
//! back the pending level. Writes only append to the invocation's effects; the executor drives
//! them onto the board after the commit succeeded, so a trapped invocation moves nothing.

use outpost_abi::{ErrorCode, limits, v1};
use outpost_hal::GpioError;
use wasmi::{Caller, Linker};

use super::{abi_try, guest_memory, split};
use crate::runtime::context::InvocationContext;
use crate::runtime::effects::GpioChange;

type Ctx<'a> = Caller<'a, InvocationContext>;

/// Registers gpio_read and gpio_write on `linker`.
pub fn define(linker: &mut Linker<InvocationContext>) -> Result<(), wasmi::Error> {
    linker.func_wrap(v1::MODULE, v1::GPIO_READ, gpio_read)?;
    linker.func_wrap(v1::MODULE, v1::GPIO_WRITE, gpio_write)?;
    Ok(())
}

/// The ABI code for a board error: a line the board does not have is `not-found` (as for
/// sensors); anything else (busy, permission, I/O, an ambiguous name) is `unavailable`.
pub fn error_code(error: &GpioError) -> ErrorCode {
    match error {
        GpioError::NotFound(_) | GpioError::NoChip { .. } => ErrorCode::NotFound,
        _ => ErrorCode::Unavailable,
    }
}

fn gpio_read(mut caller: Ctx<'_>, name_ptr: i32, name_len: i32) -> Result<i32, wasmi::Error> {
    let (memory, ctx) = abi_try!(split(&mut caller));
    let line = abi_try!(guest_memory::name(
        memory,
        name_ptr,
        name_len,
        limits::MAX_NAME_LEN
    ));
    if !ctx.component.grants.allows_gpio_read(line) {
        return Ok(ctx.refuse(ErrorCode::Denied, || {
            format!("gpio line '{line}' is not granted for reading")
        }));
    }
    if let Some(pending) = ctx.effects.pending_gpio(line) {
        return Ok(i32::from(pending));
    }
    let level = match ctx.services.gpio.read(line) {
        Ok(level) => level,
        Err(error) => {
            tracing::warn!(component = &*ctx.component.id, line, %error, "gpio read failed");
            return Ok(ctx.refuse(error_code(&error), || {
                format!("gpio line '{line}': {error}")
            }));
        }
    };
    Ok(i32::from(level))
}

fn gpio_write(
    mut caller: Ctx<'_>,
    name_ptr: i32,
    name_len: i32,
    value: i32,
) -> Result<i32, wasmi::Error> {
    let (memory, ctx) = abi_try!(split(&mut caller));
    let line = abi_try!(guest_memory::name(
        memory,
        name_ptr,
        name_len,
        limits::MAX_NAME_LEN
    ));
    let value = match value {
        0 => false,
        1 => true,
        _ => return Ok(ErrorCode::InvalidArgument.as_i32()),
    };
    if !ctx.component.grants.allows_gpio_write(line) {
        return Ok(ctx.refuse(ErrorCode::Denied, || {
            format!("gpio line '{line}' is not granted for writing")
        }));
    }
    ctx.charge_output(limits::GPIO_WRITE_OUTPUT_BYTES)?;
    ctx.effects.gpio.push(GpioChange {
        line: line.to_owned(),
        value,
    });
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_lines_are_not_found_and_faults_unavailable() {
        assert_eq!(
            error_code(&GpioError::NotFound("x".into())),
            ErrorCode::NotFound
        );
        assert_eq!(
            error_code(&GpioError::NoChip {
                line: "gpiochip9:1".into(),
                chip: "gpiochip9".into()
            }),
            ErrorCode::NotFound
        );
        let fault = GpioError::Line {
            line: "gpiochip0:1".into(),
            operation: "read",
            reason: "busy".into(),
        };
        assert_eq!(error_code(&fault), ErrorCode::Unavailable);
        let ambiguous = GpioError::Ambiguous {
            name: "LED".into(),
            lines: vec!["gpiochip0:1".into(), "gpiochip1:1".into()],
        };
        assert_eq!(error_code(&ambiguous), ErrorCode::Unavailable);
    }
}
