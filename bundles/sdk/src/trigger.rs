//! What started this invocation: its kind, its name and its payload.

use crate::{buf, sys};
use alloc::string::String;
use alloc::vec::Vec;
use outpost_abi::{SensorPayload, TriggerKind};

/// The kind of trigger. A value this SDK does not know (impossible with a v1 host) reads as
/// [`TriggerKind::Manual`].
pub fn kind() -> TriggerKind {
    TriggerKind::from_i32(sys::trigger_kind()).unwrap_or(TriggerKind::Manual)
}

/// The trigger's name from the manifest (`<component>#<index>` when it has none).
pub fn name() -> String {
    // SAFETY: `buf::read` passes a writable buffer of `cap` bytes.
    let bytes =
        buf::read(64, |out, cap| unsafe { sys::trigger_name(out, cap) }).unwrap_or_default();
    String::from_utf8(bytes).unwrap_or_default()
}

/// The raw trigger payload (see `docs/ABI.md` for each kind's layout).
pub fn payload() -> Vec<u8> {
    // SAFETY: `buf::read` passes a writable buffer of `cap` bytes.
    buf::read(64, |out, cap| unsafe { sys::payload_read(out, cap) }).unwrap_or_default()
}

/// The topic the message of an `mqtt` trigger arrived on (`None` for other triggers), e.g.
/// `outpost/pi-7/commands/pump/set` for a command sent to one device.
pub fn topic() -> Option<String> {
    if kind() != TriggerKind::Mqtt {
        return None;
    }
    // SAFETY: `buf::read` passes a writable buffer of `cap` bytes.
    let bytes =
        buf::read(128, |out, cap| unsafe { sys::trigger_topic(out, cap) }).unwrap_or_default();
    String::from_utf8(bytes).ok()
}

/// The sample and the previous sample, when a sensor trigger fired.
pub fn sensor() -> Option<SensorPayload> {
    if kind() != TriggerKind::Sensor {
        return None;
    }
    SensorPayload::decode(&payload())
}

/// The scheduled wall time (ms since epoch) of a cron or interval run; it can be earlier than
/// [`crate::clock::wall_ms`] when the run was delayed.
pub fn scheduled_ms() -> Option<i64> {
    if !matches!(kind(), TriggerKind::Cron | TriggerKind::Interval) {
        return None;
    }
    let bytes: [u8; 8] = payload().as_slice().try_into().ok()?;
    Some(i64::from_le_bytes(bytes))
}
