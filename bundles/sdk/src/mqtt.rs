//! Queued MQTT publishes (the topic must match a `publish` grant filter).

use crate::buf::{check, len, ptr};
use crate::{Result, sys};

/// MQTT quality of service for a queued message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Qos {
    /// Sent once by the sync engine, no acknowledgement (QoS 0).
    AtMostOnce = 0,
    /// Re-sent until the broker acknowledges it (QoS 1).
    AtLeastOnce = 1,
}

/// Queues `payload` for `topic` in the outbox. It is committed with the invocation and sent later
/// by the sync engine, not during this call.
pub fn publish(topic: &str, payload: &[u8], qos: Qos, retain: bool) -> Result<()> {
    let topic = topic.as_bytes();
    // SAFETY: both pointer/length pairs are live slices; the host only reads them.
    check(unsafe {
        sys::mqtt_publish(
            ptr(topic),
            len(topic),
            ptr(payload),
            len(payload),
            qos as i32,
            i32::from(retain),
        )
    })?;
    Ok(())
}
