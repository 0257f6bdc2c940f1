//! Dead letters: outbox rows that can never be sent. Commit-time checks keep such rows out of
//! the outbox, but a row committed under an older packet limit, wire format or device id can
//! still outgrow the packet that would carry it. Such a row is never deleted silently: it moves
//! here with its reason, in one transaction that also counts it (`outbox.dead_records`,
//! `outbox.dead_bytes`, shown in the device's status), and an operator lists it with
//! `outpost outbox dead`.

use serde::{Deserialize, Serialize};

use super::outbox_rows::OutboxRows;
use super::records::{RecordV1, StoredRecord};
use super::{Store, StoreError, tables};

/// A dead letter as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum StoredDeadLetter {
    /// Layout 1.
    V1 {
        /// Why it can never be sent.
        reason: String,
        /// When it was moved here, ms since epoch.
        moved_ms: i64,
        /// The outbox row's stored bytes, unchanged.
        row: Vec<u8>,
    },
}

/// One dead letter as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Its outbox sequence number.
    pub seq: u64,
    /// Why it can never be sent.
    pub reason: String,
    /// When it was moved out of the outbox, ms since epoch.
    pub moved_ms: i64,
    /// The outbox row's stored bytes.
    pub row: Vec<u8>,
}

impl DeadLetter {
    /// The row decoded, if it still decodes.
    pub fn record(&self) -> Option<RecordV1> {
        StoredRecord::decode(&self.row, self.seq)
            .ok()
            .map(StoredRecord::into_current)
    }
}

impl Store {
    /// Moves the outbox rows `rows` (`seq`, reason) to the dead letters and counts them, in one
    /// durable transaction. Rows already gone are skipped. Returns how many were moved.
    pub fn outbox_dead_letter(
        &self,
        rows: &[(u64, String)],
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        self.write("move unsendable outbox rows to the dead letters", |txn| {
            let mut counters = txn.open_table(tables::COUNTERS)?;
            let mut outbox = OutboxRows::open(txn, &counters)?;
            let mut dead = txn.open_table(tables::DEAD_LETTERS)?;
            let mut moved = 0;
            for (seq, reason) in rows {
                let Some(row) = outbox.take_dead(*seq)? else {
                    continue;
                };
                let stored = postcard::to_stdvec(&StoredDeadLetter::V1 {
                    reason: reason.clone(),
                    moved_ms: now_ms,
                    row,
                })
                .map_err(StoreError::Encode)?;
                dead.insert(*seq, stored.as_slice())?;
                moved += 1;
            }
            outbox.finish(&mut counters)?;
            Ok(moved)
        })
    }

    /// Up to `limit` dead letters with `seq >= from`, oldest first. A dead letter that does not
    /// decode is listed with that as its reason, never skipped.
    pub fn dead_letters(&self, from: u64, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        self.read("list the dead letters", |txn| {
            let table = txn.open_table(tables::DEAD_LETTERS)?;
            let mut out = Vec::new();
            for entry in table.range(from..)?.take(limit) {
                let (seq, bytes) = entry?;
                let seq = seq.value();
                out.push(
                    match postcard::from_bytes::<StoredDeadLetter>(bytes.value()) {
                        Ok(StoredDeadLetter::V1 {
                            reason,
                            moved_ms,
                            row,
                        }) => DeadLetter {
                            seq,
                            reason,
                            moved_ms,
                            row,
                        },
                        Err(error) => DeadLetter {
                            seq,
                            reason: format!("(this dead letter does not decode: {error})"),
                            moved_ms: 0,
                            row: bytes.value().to_vec(),
                        },
                    },
                );
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::runtime::{Effects, OutboxEffect};
    use crate::store::apply::apply_batch;
    use crate::store::{Commit, OutboxLimits, Store};

    #[test]
    fn an_unsendable_row_moves_to_the_dead_letters_counted_and_listable() {
        let store = Store::in_memory().expect("store");
        let mut effects = Effects::default();
        for data in [b"a".to_vec(), vec![7u8; 500], b"c".to_vec()] {
            effects.records.push(OutboxEffect::Event {
                stream: "s".into(),
                data,
            });
        }
        let commit = Commit {
            app: "app".into(),
            component: "c".into(),
            time_ms: 1_000,
            unsynced: None,
            effects: Arc::new(effects),
            trigger_run: None,
            inbox_done: None,
            failed: false,
        };
        apply_batch(&store, &OutboxLimits::default(), &[commit], 0).expect("commits");
        let before = store.counters().expect("counters");
        assert_eq!(before.outbox_records, 3);

        let moved = store
            .outbox_dead_letter(&[(2, "too large".into()), (99, "gone".into())], 5_000)
            .expect("moves");
        assert_eq!(moved, 1);
        let after = store.counters().expect("counters");
        assert_eq!(after.outbox_records, 2);
        assert_eq!(after.dead_records, 1);
        assert_eq!(after.dead_bytes + after.outbox_bytes, before.outbox_bytes);
        let seqs: Vec<u64> = store
            .outbox_read(0, 10)
            .expect("reads")
            .iter()
            .map(|r| r.seq)
            .collect();
        assert_eq!(seqs, vec![1, 3], "the other rows stay owed");
        let dead = store.dead_letters(0, 10).expect("lists");
        assert_eq!(dead.len(), 1);
        assert_eq!((dead[0].seq, dead[0].reason.as_str()), (2, "too large"));
        assert_eq!(dead[0].moved_ms, 5_000);
        assert_eq!(dead[0].record().expect("decodes").app, "app");
    }
}
