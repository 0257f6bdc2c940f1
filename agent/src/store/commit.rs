//! What the committer takes (an invocation's effects plus bookkeeping) and what it answers.

use std::ops::RangeInclusive;
use std::sync::Arc;

use crate::runtime::Effects;

/// One unit of work for the committer: an invocation's effects plus bookkeeping.
#[derive(Debug, Clone)]
pub struct Commit {
    /// App the invocation belongs to (KV is namespaced per app).
    pub app: Arc<str>,
    /// Component that produced the effects (recorded on outbox rows).
    pub component: Arc<str>,
    /// Wall time of the invocation, ms since epoch (recorded on outbox rows).
    pub time_ms: i64,
    /// Where in which boot the invocation was, if the wall clock was not synchronised (then
    /// `time_ms` is not the true time; the sync engine re-anchors it once the clock syncs).
    pub unsynced: Option<super::records::BootStamp>,
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
