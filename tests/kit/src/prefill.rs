//! A backlog committed into a data directory through the library (the group committer), as an
//! app would have, with no agent running; and reading a device's state back once it stopped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use outpost::runtime::{Effects, OutboxEffect};
use outpost::store::{Commit, OutboxLimits, RecordBody, Store};

use crate::START_MS;

/// Records per commit when prefilling (capped by the outbox's record bound).
const PREFILL_CHUNK: usize = 1000;

/// Commits `count` events into the state of `data` (no agent running), round-robin over
/// `streams`, under `limits`. Event `i` is the JSON `{"i":i}`. Returns the seqs in the outbox
/// afterwards per stream (read back, so rows dropped by the full-policy are not in it).
pub fn prefill(
    data: &Path,
    count: usize,
    streams: &[&str],
    limits: OutboxLimits,
) -> BTreeMap<String, Vec<u64>> {
    prefill_with(data, count, limits, |n| OutboxEffect::Event {
        stream: streams[n % streams.len()].to_string(),
        data: format!("{{\"i\":{n}}}").into_bytes(),
    })
}

/// Commits records `record(0..count)` into the state of `data` (no agent running),
/// `PREFILL_CHUNK` per transaction, under `limits`, each stamped [`START_MS`] + its index.
/// Returns the event seqs in the outbox afterwards per stream.
pub fn prefill_with(
    data: &Path,
    count: usize,
    limits: OutboxLimits,
    record: impl Fn(usize) -> OutboxEffect,
) -> BTreeMap<String, Vec<u64>> {
    let store = Store::open_dir(data).expect("state opens");
    let (committer, thread) = outpost::store::committer::spawn(store.clone(), limits);
    let chunk = PREFILL_CHUNK.min(limits.max_records as usize).max(1);
    let mut i = 0;
    while i < count {
        let end = (i + chunk).min(count);
        committer
            .commit_blocking(Commit {
                app: "prefill".into(),
                component: "gen".into(),
                time_ms: START_MS + i as i64,
                unsynced: None,
                effects: Arc::new(Effects {
                    records: (i..end).map(&record).collect(),
                    ..Default::default()
                }),
                trigger_run: None,
                inbox_done: None,
                failed: false,
            })
            .unwrap_or_else(|e| panic!("prefill commit at {i}: {e}"));
        i = end;
    }
    drop(committer);
    thread.join();
    outbox_seqs(&store)
}

/// The seqs of every event in the outbox of `store`, per stream.
pub fn outbox_seqs(store: &Store) -> BTreeMap<String, Vec<u64>> {
    let mut seqs: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for entry in store.outbox_read(0, usize::MAX).expect("outbox reads") {
        if let RecordBody::Event { stream, .. } = entry.record.body {
            seqs.entry(stream).or_default().push(entry.seq);
        }
    }
    seqs
}

/// Opens the state of `data` (the agent must have exited: redb allows one process).
pub fn open_state(data: &Path) -> Store {
    Store::open_dir(data).unwrap_or_else(|e| panic!("state of {} opens: {e}", data.display()))
}

/// A data directory path inside `dir`.
pub fn data_dir(dir: &Path) -> PathBuf {
    dir.join("data")
}
