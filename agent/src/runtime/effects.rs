//! The effects one invocation buffers until it returns: committed all together, or not at all.
//!
//! These are the runtime's own types: host functions append to them and never see how (or
//! where) they are stored. The store takes them whole and converts each to its versioned
//! on-disk layout.

use std::collections::BTreeMap;

/// Everything an invocation wants to change, in the order it asked.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Effects {
    /// Pending key-value changes: `(namespace, key) -> Some(value)` to set, `None` to delete.
    /// A map, so the last write to a key wins and reads can see pending writes.
    pub kv: BTreeMap<(String, String), Option<Vec<u8>>>,
    /// Events and publishes bound for the outbox, in emission order.
    pub records: Vec<OutboxEffect>,
    /// GPIO line changes, in the order asked. Not stored: the executor drives them onto the
    /// board only after the commit succeeded, so a failed invocation never moves an actuator.
    pub gpio: Vec<GpioChange>,
}

/// One buffered effect bound for the outbox (and from there to the broker).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboxEffect {
    /// An event emitted to a named stream.
    Event {
        /// Stream name (granted in the manifest).
        stream: String,
        /// The component's bytes, unchanged.
        data: Vec<u8>,
    },
    /// An MQTT message queued for the sync engine.
    Publish {
        /// Topic the component chose (within its granted filters).
        topic: String,
        /// Message body.
        payload: Vec<u8>,
        /// 0 or 1.
        qos: u8,
        /// Whether the broker should retain it.
        retain: bool,
    },
    /// A change to a key of a namespace the manifest marks `[sync] kv`, mirrored so a device's
    /// latest state is readable from the broker while it is offline.
    Kv {
        /// Namespace.
        ns: String,
        /// Key.
        key: String,
        /// New value, or `None` for a delete.
        value: Option<Vec<u8>>,
    },
}

/// One buffered `gpio_write`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpioChange {
    /// The line, spelled as the component's grant names it.
    pub line: String,
    /// The level to drive: `true` is high.
    pub value: bool,
}

impl Effects {
    /// Whether committing would change nothing.
    pub fn is_empty(&self) -> bool {
        self.kv.is_empty() && self.records.is_empty() && self.gpio.is_empty()
    }

    /// The level this invocation last asked `line` to be driven to, if it wrote the line.
    pub fn pending_gpio(&self, line: &str) -> Option<bool> {
        self.gpio
            .iter()
            .rev()
            .find(|change| change.line == line)
            .map(|change| change.value)
    }

    /// Number of events (not publishes) buffered.
    pub fn event_count(&self) -> usize {
        self.records
            .iter()
            .filter(|r| matches!(r, OutboxEffect::Event { .. }))
            .count()
    }

    /// Number of MQTT publishes buffered.
    pub fn publish_count(&self) -> usize {
        self.records
            .iter()
            .filter(|r| matches!(r, OutboxEffect::Publish { .. }))
            .count()
    }

    /// Queues a `Kv` outbox record for every pending change in a namespace of `synced`.
    pub fn mirror_kv(&mut self, synced: &[String]) {
        for ((ns, key), value) in &self.kv {
            if synced.iter().any(|s| s == ns) {
                self.records.push(OutboxEffect::Kv {
                    ns: ns.clone(),
                    key: key.clone(),
                    value: value.clone(),
                });
            }
        }
    }
}
