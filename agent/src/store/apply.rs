//! Applies a batch of commits inside one write transaction (group commit).
//!
//! Each commit is all-or-nothing on its own: a commit the outbox cannot take is refused whole
//! (KV writes included) while the others in the batch still land. A redb failure aborts the
//! transaction, so then nothing of the batch lands and every caller is told.

use std::ops::RangeInclusive;
use std::sync::Arc;

use redb::Table;
use thiserror::Error;

use super::commit::{Commit, Receipt};
use super::error::Failure;
use super::outbox::{FullPolicy, OutboxLimits};
use super::outbox_rows::{OutboxRows, read_counter};
use super::records::{RecordBody, RecordV1, StoredRecord};
use super::tables::{self, counter};
use super::{Store, StoreError};

/// Why one commit did not land.
#[derive(Debug, Error, Clone)]
#[non_exhaustive]
pub enum CommitError {
    /// The outbox is full and the policy is reject-new.
    #[error(
        "outbox full ({records}/{max_records} records, {bytes}/{max_bytes} bytes; policy reject-new): effects refused"
    )]
    OutboxFull {
        /// Records in the outbox.
        records: u64,
        /// Its record bound.
        max_records: u64,
        /// Bytes in the outbox.
        bytes: u64,
        /// Its byte bound.
        max_bytes: u64,
    },
    /// The commit alone is larger than the whole outbox may ever be.
    #[error(
        "invocation produced {records} records / {bytes} bytes, more than the whole outbox holds"
    )]
    LargerThanOutbox {
        /// Records in the commit.
        records: u64,
        /// Encoded bytes in the commit.
        bytes: u64,
    },
    /// The state file has reached its disk quota (`[outbox] max_state_bytes`) and the policy is
    /// reject-new.
    #[error(
        "state file at its disk quota of {max_state_bytes} bytes (policy reject-new): effects refused"
    )]
    StateQuota {
        /// The quota.
        max_state_bytes: u64,
    },
    /// The commit thread has stopped (the agent is shutting down); nothing was written.
    #[error("the commit thread has stopped")]
    Stopped,
    /// The store failed; nothing of the batch was written.
    #[error("{0}")]
    Store(Arc<StoreError>),
}

/// Applies `batch` in one transaction (durable as the store's [`super::Durability`] says), adding `skipped_runs` to that counter; returns
/// one result per commit, in order.
pub fn apply_batch(
    store: &Store,
    limits: &OutboxLimits,
    batch: &[Commit],
    skipped_runs: u64,
) -> Result<Vec<Result<Receipt, CommitError>>, StoreError> {
    // In immediate mode every invocation that reports success must survive power loss: the
    // commit is durable before any caller hears of it; never weaken this. In window mode the
    // operator chose to lose at most a window: the commit is durable only once the oldest
    // non-durable one has waited that long (the flusher does it when no commit comes).
    // Checked once per batch: the file grows only when redb runs out of free pages, so this is
    // the point where the outbox must make room in the file it already has.
    let over_quota = store.over_quota();
    let want = if over_quota && store.inner.lazy.checkpoint_due_at_quota() {
        // redb reuses the pages that dropped rows free only after a durable commit: at the
        // quota a checkpoint comes every few commits, or the file would keep growing past it.
        super::Want::Durable
    } else if store.commit_durably_now() {
        super::Want::Synced
    } else {
        super::Want::Lazy
    };
    let results = store.transact("apply a commit batch", want, |txn, redo| {
        let mut results = Vec::with_capacity(batch.len());
        let mut kv = txn.open_table(tables::KV)?;
        let mut counters = txn.open_table(tables::COUNTERS)?;
        let mut inbox = txn.open_table(tables::INBOX)?;
        let mut outbox = OutboxRows::open(txn, &counters)?;
        let mut failed_invocations = 0;

        for commit in batch {
            if let Some((trigger, at)) = &commit.trigger_run {
                let name = counter::trigger_run(&commit.app, trigger);
                // The i64's bits: a wall time before 1970 (an unset clock) round-trips too.
                counters.insert(name.as_str(), *at as u64)?;
                redo.counter(&name);
            }
            // Handled, even if refused below: a message whose effects cannot fit is not retried
            // forever; the refusal is counted like any other.
            if let Some(id) = commit.inbox_done
                && let Some(row) = inbox.remove(id)?
            {
                redo.inbox(id);
                super::inbox_forget(&mut counters, row.value().len())?;
            }
            if commit.failed {
                failed_invocations += 1;
            }
            let rows = encode_rows(commit)?;
            let new_records = rows.len() as u64;
            let new_bytes: u64 = rows.iter().map(|r| r.len() as u64).sum();
            if new_records > limits.max_records || new_bytes > limits.max_bytes {
                outbox.count_rejected(new_records);
                results.push(Err(CommitError::LargerThanOutbox {
                    records: new_records,
                    bytes: new_bytes,
                }));
                continue;
            }
            let overfull = |o: &OutboxRows| {
                o.records() + new_records > limits.max_records
                    || o.bytes() + new_bytes > limits.max_bytes
            };
            let mut dropped = 0;
            if over_quota && new_records > 0 {
                match limits.policy {
                    FullPolicy::RejectNew => {
                        outbox.count_rejected(new_records);
                        results.push(Err(CommitError::StateQuota {
                            max_state_bytes: store.quota(),
                        }));
                        continue;
                    }
                    FullPolicy::DropOldest => {
                        // Free twice what the commit adds, so redb reuses freed pages instead of
                        // growing the file; an empty outbox frees nothing more (KV and bundles
                        // are not the outbox's to drop).
                        let goal = outbox.bytes().saturating_sub(new_bytes * 2);
                        while outbox.bytes() > goal && outbox.drop_oldest()? {
                            dropped += 1;
                        }
                    }
                }
            }
            if overfull(&outbox) {
                match limits.policy {
                    FullPolicy::RejectNew => {
                        outbox.count_rejected(new_records);
                        results.push(Err(CommitError::OutboxFull {
                            records: outbox.records(),
                            max_records: limits.max_records,
                            bytes: outbox.bytes(),
                            max_bytes: limits.max_bytes,
                        }));
                        continue;
                    }
                    FullPolicy::DropOldest => {
                        while overfull(&outbox) && outbox.drop_oldest()? {
                            dropped += 1;
                        }
                    }
                }
            }
            for ((ns, key), value) in &commit.effects.kv {
                redo.kv(&commit.app, ns, key);
                match value {
                    Some(value) => {
                        kv.insert((&*commit.app, ns.as_str(), key.as_str()), value.as_slice())?
                    }
                    None => kv.remove((&*commit.app, ns.as_str(), key.as_str()))?,
                };
            }
            let mut seqs: Option<RangeInclusive<u64>> = None;
            for row in &rows {
                let seq = outbox.append(row)?;
                let first = seqs.map_or(seq, |s| *s.start());
                seqs = Some(first..=seq);
            }
            results.push(Ok(Receipt {
                seqs,
                kv_writes: commit.effects.kv.len(),
                dropped_records: dropped,
            }));
        }
        // Reserved before the commit is visible: a reader may send these rows at once, and in
        // window mode the commit may be lost to a crash while the numbers are already out.
        store.handed_out(outbox.next_seq());
        redo.outbox(outbox.touched().iter().copied());
        redo.counter(counter::SKIPPED_RUNS);
        redo.counter(counter::FAILED_INVOCATIONS);
        outbox.finish(&mut counters)?;
        add(&mut counters, counter::SKIPPED_RUNS, skipped_runs)?;
        add(
            &mut counters,
            counter::FAILED_INVOCATIONS,
            failed_invocations,
        )?;
        Ok(results)
    })?;
    Ok(results)
}

/// Adds `by` to counter `name` inside the open transaction.
fn add(counters: &mut Table<&str, u64>, name: &str, by: u64) -> Result<(), Failure> {
    let current = read_counter(counters, name)?;
    counters.insert(name, current.saturating_add(by))?;
    Ok(())
}

/// The stored rows of one commit's outbox effects, in order.
fn encode_rows(commit: &Commit) -> Result<Vec<Vec<u8>>, StoreError> {
    commit
        .effects
        .records
        .iter()
        .map(|body| {
            StoredRecord::new(
                RecordV1 {
                    time_ms: commit.time_ms,
                    app: commit.app.to_string(),
                    component: commit.component.to_string(),
                    body: RecordBody::from(body),
                },
                commit.unsynced,
            )
            .encode()
            .map_err(StoreError::Encode)
        })
        .collect()
}
