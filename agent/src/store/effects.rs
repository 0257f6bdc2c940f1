//! The effects one invocation buffers until it returns: committed all together, or not at all.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::Arc;

use super::records::RecordBody;

/// Everything an invocation wants to change, in the order it asked.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Effects {
    /// Pending key-value changes: `(namespace, key) -> Some(value)` to set, `None` to delete.
    /// A map, so the last write to a key wins and reads can see pending writes.
    pub kv: BTreeMap<(String, String), Option<Vec<u8>>>,
    /// Events and publishes bound for the outbox, in emission order.
    pub records: Vec<RecordBody>,
    /// GPIO line changes, in the order asked. Not stored: the executor drives them onto the
    /// board only after the commit succeeded, so a failed invocation never moves an actuator.
    pub gpio: Vec<GpioChange>,
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
            .filter(|r| matches!(r, RecordBody::Event { .. }))
            .count()
    }

    /// Number of MQTT publishes buffered.
    pub fn publish_count(&self) -> usize {
        self.records
            .iter()
            .filter(|r| matches!(r, RecordBody::Publish { .. }))
            .count()
    }

    /// Queues a `Kv` outbox record for every pending change in a namespace of `synced`.
    pub fn mirror_kv(&mut self, synced: &[String]) {
        for ((ns, key), value) in &self.kv {
            if synced.iter().any(|s| s == ns) {
                self.records.push(RecordBody::Kv {
                    ns: ns.clone(),
                    key: key.clone(),
                    value: value.clone(),
                });
            }
        }
    }
}

/// One unit of work for the committer: an invocation's effects plus bookkeeping.
#[derive(Debug, Clone)]
pub struct Commit {
    /// App the invocation belongs to (KV is namespaced per app).
    pub app: Arc<str>,
    /// Component that produced the effects (recorded on outbox rows).
    pub component: Arc<str>,
    /// Wall time of the invocation, ms since epoch (recorded on outbox rows).
    pub time_ms: i64,
    /// The effects; empty for a failed invocation that only records its trigger run. Shared, so
    /// the caller keeps them for its report without copying every value and payload.
    pub effects: Arc<Effects>,
    /// `(trigger, wall ms)` to record as the trigger's last run, if any.
    pub trigger_run: Option<(Arc<str>, i64)>,
    /// The inbox row this invocation handled, removed in the same transaction.
    pub inbox_done: Option<u64>,
    /// Whether the invocation failed (its effects are empty; the failure is counted).
    pub failed: bool,
}

/// What a successful commit did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Receipt {
    /// Sequence numbers given to this commit's outbox records (`None` if it had none).
    pub seqs: Option<RangeInclusive<u64>>,
    /// Key-value changes written.
    pub kv_writes: usize,
    /// Older outbox records dropped to make room (drop-oldest policy).
    pub dropped_records: u64,
}
