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
