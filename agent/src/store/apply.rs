//! Applies a batch of commits inside one redb write transaction (group commit).
//!
//! Each commit is all-or-nothing on its own: a commit the outbox cannot take is refused whole
//! (KV writes included) while the others in the batch still land. A redb failure aborts the
//! transaction, so then nothing of the batch lands and every caller is told.

use std::sync::Arc;

use redb::{Durability, ReadableTable, Table};
use thiserror::Error;

use super::effects::{Commit, Receipt};
use super::outbox::{FullPolicy, OutboxLimits};
use super::records::{RecordV1, StoredRecord};
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
    /// The commit thread has stopped (the agent is shutting down); nothing was written.
    #[error("the commit thread has stopped")]
    Stopped,
    /// The store failed; nothing of the batch was written.
    #[error("{0}")]
    Store(Arc<StoreError>),
}

/// The persistent counters while a batch is applied; written back once at the end.
#[derive(Debug, Default)]
struct Tally {
    next_seq: u64,
    records: u64,
    bytes: u64,
    dropped_records: u64,
    dropped_bytes: u64,
    rejected_records: u64,
    rejected_invocations: u64,
    skipped_runs: u64,
    failed_invocations: u64,
}

impl Tally {
    fn load(table: &Table<&str, u64>) -> Result<Tally, StoreError> {
        let get = |name: &str| -> Result<u64, StoreError> {
            Ok(table.get(name)?.map(|v| v.value()).unwrap_or(0))
        };
        Ok(Tally {
            next_seq: get(counter::NEXT_SEQ)?.max(1),
            records: get(counter::OUTBOX_RECORDS)?,
            bytes: get(counter::OUTBOX_BYTES)?,
            dropped_records: get(counter::DROPPED_RECORDS)?,
            dropped_bytes: get(counter::DROPPED_BYTES)?,
            rejected_records: get(counter::REJECTED_RECORDS)?,
            rejected_invocations: get(counter::REJECTED_INVOCATIONS)?,
            skipped_runs: get(counter::SKIPPED_RUNS)?,
            failed_invocations: get(counter::FAILED_INVOCATIONS)?,
        })
    }

    fn save(&self, table: &mut Table<&str, u64>) -> Result<(), StoreError> {
        table.insert(counter::NEXT_SEQ, self.next_seq)?;
        table.insert(counter::OUTBOX_RECORDS, self.records)?;
        table.insert(counter::OUTBOX_BYTES, self.bytes)?;
        table.insert(counter::DROPPED_RECORDS, self.dropped_records)?;
        table.insert(counter::DROPPED_BYTES, self.dropped_bytes)?;
        table.insert(counter::REJECTED_RECORDS, self.rejected_records)?;
        table.insert(counter::REJECTED_INVOCATIONS, self.rejected_invocations)?;
        table.insert(counter::SKIPPED_RUNS, self.skipped_runs)?;
        table.insert(counter::FAILED_INVOCATIONS, self.failed_invocations)?;
        Ok(())
    }
}

/// Applies `batch` in one durable transaction, adding `skipped_runs` to that counter; returns
/// one result per commit, in order.
pub fn apply_batch(
    store: &Store,
    limits: &OutboxLimits,
    batch: &[Commit],
    skipped_runs: u64,
) -> Result<Vec<Result<Receipt, CommitError>>, StoreError> {
    let mut txn = store.db().begin_write()?;
    // Every invocation that reports success must survive power loss: never weaken this.
    txn.set_durability(Durability::Immediate)?;
    let mut results = Vec::with_capacity(batch.len());
    {
        let mut kv = txn.open_table(tables::KV)?;
        let mut outbox = txn.open_table(tables::OUTBOX)?;
        let mut counters = txn.open_table(tables::COUNTERS)?;
        let mut runs = txn.open_table(tables::TRIGGER_RUNS)?;
        let mut inbox = txn.open_table(tables::INBOX)?;
        let mut tally = Tally::load(&counters)?;
        tally.skipped_runs += skipped_runs;

        for commit in batch {
            if let Some((trigger, at)) = &commit.trigger_run {
                runs.insert((&*commit.app, &**trigger), *at)?;
            }
            // Handled, even if refused below: a message whose effects cannot fit is not retried
            // forever; the refusal is counted like any other.
            if let Some(id) = commit.inbox_done {
                inbox.remove(id)?;
            }
            if commit.failed {
                tally.failed_invocations += 1;
            }
            let rows = encode_rows(commit)?;
            let new_records = rows.len() as u64;
            let new_bytes: u64 = rows.iter().map(|r| r.len() as u64).sum();
            if new_records > limits.max_records || new_bytes > limits.max_bytes {
                tally.rejected_records += new_records;
                tally.rejected_invocations += 1;
                results.push(Err(CommitError::LargerThanOutbox {
                    records: new_records,
                    bytes: new_bytes,
                }));
                continue;
            }
            let overfull = |t: &Tally| {
                t.records + new_records > limits.max_records
                    || t.bytes + new_bytes > limits.max_bytes
            };
            let mut dropped = 0;
            if overfull(&tally) {
                match limits.policy {
                    FullPolicy::RejectNew => {
                        tally.rejected_records += new_records;
                        tally.rejected_invocations += 1;
                        results.push(Err(CommitError::OutboxFull {
                            records: tally.records,
                            max_records: limits.max_records,
                            bytes: tally.bytes,
                            max_bytes: limits.max_bytes,
                        }));
                        continue;
                    }
                    FullPolicy::DropOldest => {
                        while overfull(&tally) {
                            let Some((_, row)) = outbox.pop_first()? else {
                                break;
                            };
                            let len = row.value().len() as u64;
                            tally.records = tally.records.saturating_sub(1);
                            tally.bytes = tally.bytes.saturating_sub(len);
                            tally.dropped_records += 1;
                            tally.dropped_bytes += len;
                            dropped += 1;
                        }
                    }
                }
            }
            for ((ns, key), value) in &commit.effects.kv {
                match value {
                    Some(value) => {
                        kv.insert((&*commit.app, ns.as_str(), key.as_str()), value.as_slice())?
                    }
                    None => kv.remove((&*commit.app, ns.as_str(), key.as_str()))?,
                };
            }
            let first = tally.next_seq;
            for row in &rows {
                outbox.insert(tally.next_seq, row.as_slice())?;
                tally.next_seq += 1;
            }
            tally.records += new_records;
            tally.bytes += new_bytes;
            results.push(Ok(Receipt {
                seqs: (!rows.is_empty()).then(|| first..=tally.next_seq - 1),
                kv_writes: commit.effects.kv.len(),
                dropped_records: dropped,
            }));
        }
        tally.save(&mut counters)?;
    }
    txn.commit()?;
    Ok(results)
}

fn encode_rows(commit: &Commit) -> Result<Vec<Vec<u8>>, StoreError> {
    commit
        .effects
        .records
        .iter()
        .map(|body| {
            StoredRecord::V1(RecordV1 {
                time_ms: commit.time_ms,
                app: commit.app.to_string(),
                component: commit.component.to_string(),
                body: body.clone(),
            })
            .encode()
            .map_err(StoreError::Encode)
        })
        .collect()
}

/// Appends one agent-generated row (an update report) to the outbox inside `txn`, outside the
/// outbox bounds: such rows are few and small, and dropping one would hide what a device did.
pub(crate) fn append_record(
    txn: &redb::WriteTransaction,
    record: RecordV1,
) -> Result<u64, StoreError> {
    let row = StoredRecord::V1(record)
        .encode()
        .map_err(StoreError::Encode)?;
    let mut outbox = txn.open_table(tables::OUTBOX)?;
    let mut counters = txn.open_table(tables::COUNTERS)?;
    let get = |table: &Table<&str, u64>, name: &str| -> Result<u64, StoreError> {
        Ok(table.get(name)?.map(|v| v.value()).unwrap_or(0))
    };
    let seq = get(&counters, counter::NEXT_SEQ)?.max(1);
    let records = get(&counters, counter::OUTBOX_RECORDS)?;
    let bytes = get(&counters, counter::OUTBOX_BYTES)?;
    outbox.insert(seq, row.as_slice())?;
    counters.insert(counter::NEXT_SEQ, seq + 1)?;
    counters.insert(counter::OUTBOX_RECORDS, records + 1)?;
    counters.insert(counter::OUTBOX_BYTES, bytes + row.len() as u64)?;
    Ok(seq)
}
