//! What started an invocation, as the runtime hands it to the guest.

use std::sync::Arc;

use outpost_abi::TriggerKind;

/// One firing of a trigger.
#[derive(Debug, Clone)]
pub struct Firing {
    /// The trigger's name from the manifest (or `manual`).
    pub name: Arc<str>,
    /// Its kind, as `trigger_kind` reports it.
    pub kind: TriggerKind,
    /// The payload `payload_read` returns (layouts in docs/ABI.md).
    pub payload: Vec<u8>,
    /// The topic an `mqtt` trigger's message arrived on (`trigger_topic`).
    pub topic: Option<Box<str>>,
}

impl Firing {
    /// A firing of a time-based trigger scheduled for `scheduled_ms`.
    pub fn scheduled(name: Arc<str>, kind: TriggerKind, scheduled_ms: i64) -> Firing {
        Firing {
            name,
            kind,
            payload: scheduled_ms.to_le_bytes().to_vec(),
            topic: None,
        }
    }

    /// A firing started by hand with an operator-supplied payload.
    pub fn manual(payload: Vec<u8>) -> Firing {
        Firing {
            name: Arc::from("manual"),
            kind: TriggerKind::Manual,
            payload,
            topic: None,
        }
    }
}
