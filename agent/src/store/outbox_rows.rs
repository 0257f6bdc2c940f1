//! The outbox's rows and its counters inside one write transaction. This is the only code that
//! adds or removes outbox rows and the only writer of the outbox counters (next sequence
//! number, records, bytes, dropped, rejected), so the counters always describe the rows: the
//! committer's batches, acknowledgements and the fleet's reports all go through it.

use redb::{ReadableTable, Table, WriteTransaction};

use super::envelope;
use super::error::Failure;
use super::tables::{self, counter};

/// The outbox counters as they stand inside the transaction; written back once by
/// [`OutboxRows::finish`].
#[derive(Debug, Default)]
struct Tally {
    next_seq: u64,
    records: u64,
    bytes: u64,
    dropped_records: u64,
    dropped_bytes: u64,
    rejected_records: u64,
    rejected_invocations: u64,
    dead_records: u64,
    dead_bytes: u64,
}

/// The outbox table of one write transaction, with its counters.
pub(super) struct OutboxRows<'txn> {
    rows: Table<'txn, u64, &'static [u8]>,
    tally: Tally,
    /// Rows added or removed, for the commit journal (`redo`).
    touched: Vec<u64>,
}

/// A counter's stored value (0 if never written).
pub(super) fn read_counter(table: &Table<&str, u64>, name: &str) -> Result<u64, Failure> {
    Ok(table.get(name)?.map(|v| v.value()).unwrap_or(0))
}

impl<'txn> OutboxRows<'txn> {
    /// Opens the outbox in `txn`, with its counters read from `counters` (the same
    /// transaction's counter table: redb lets a table be open only once per transaction).
    pub(super) fn open(
        txn: &'txn WriteTransaction,
        counters: &Table<&str, u64>,
    ) -> Result<OutboxRows<'txn>, Failure> {
        let get = |name: &str| read_counter(counters, name);
        Ok(OutboxRows {
            rows: txn.open_table(tables::OUTBOX)?,
            tally: Tally {
                // Sequence numbers start at 1, so 0 can mean "from the beginning".
                next_seq: get(counter::NEXT_SEQ)?.max(1),
                records: get(counter::OUTBOX_RECORDS)?,
                bytes: get(counter::OUTBOX_BYTES)?,
                dropped_records: get(counter::DROPPED_RECORDS)?,
                dropped_bytes: get(counter::DROPPED_BYTES)?,
                rejected_records: get(counter::REJECTED_RECORDS)?,
                rejected_invocations: get(counter::REJECTED_INVOCATIONS)?,
                dead_records: get(counter::DEAD_RECORDS)?,
                dead_bytes: get(counter::DEAD_BYTES)?,
            },
            touched: Vec::new(),
        })
    }

    /// Records in the outbox now.
    pub(super) fn records(&self) -> u64 {
        self.tally.records
    }

    /// The sequence number the next appended row gets.
    pub(super) fn next_seq(&self) -> u64 {
        self.tally.next_seq
    }

    /// The sequence numbers of the rows added or removed so far.
    pub(super) fn touched(&self) -> &[u64] {
        &self.touched
    }

    /// Encoded bytes in the outbox now.
    pub(super) fn bytes(&self) -> u64 {
        self.tally.bytes
    }

    /// Appends one encoded row under the next sequence number and returns that number.
    /// A sealed row is addressed to that number first, so a raw scan of the file can put it
    /// back where it was ([`super::envelope::scan`]).
    pub(super) fn append(&mut self, row: &[u8]) -> Result<u64, Failure> {
        let seq = self.tally.next_seq;
        let mut row = row.to_vec();
        envelope::set_key(&mut row, envelope::Table::Outbox, seq);
        self.rows.insert(seq, row.as_slice())?;
        self.touched.push(seq);
        self.tally.next_seq += 1;
        self.tally.records += 1;
        self.tally.bytes += row.len() as u64;
        Ok(seq)
    }

    /// Deletes the oldest row to make room (drop-oldest) and counts it as dropped; `false` if
    /// the outbox is empty.
    pub(super) fn drop_oldest(&mut self) -> Result<bool, Failure> {
        let Some((seq, len)) = self
            .rows
            .pop_first()?
            .map(|(seq, row)| (seq.value(), row.value().len() as u64))
        else {
            return Ok(false);
        };
        self.touched.push(seq);
        self.forget(len);
        self.tally.dropped_records += 1;
        self.tally.dropped_bytes += len;
        Ok(true)
    }

    /// Deletes row `seq` (the broker has it); `false` if it was already gone.
    pub(super) fn remove(&mut self, seq: u64) -> Result<bool, Failure> {
        let Some(len) = self.rows.remove(seq)?.map(|row| row.value().len() as u64) else {
            return Ok(false);
        };
        self.touched.push(seq);
        self.forget(len);
        Ok(true)
    }

    /// Takes row `seq` out (to quarantine) and returns its bytes; `None` if it is gone.
    pub(super) fn take(&mut self, seq: u64) -> Result<Option<Vec<u8>>, Failure> {
        let Some(bytes) = self.rows.remove(seq)?.map(|row| row.value().to_vec()) else {
            return Ok(None);
        };
        self.forget(bytes.len() as u64);
        Ok(Some(bytes))
    }

    /// Puts a salvaged row back under its old sequence number (into a fresh store), keeping
    /// the next sequence number past it. A row with that number already in place stays, unless
    /// it fails its checksum and this one is intact (an intact copy found by the raw scan beats
    /// a damaged one redb read). Returns whether a new row was added.
    pub(super) fn restore(&mut self, seq: u64, row: &[u8]) -> Result<bool, Failure> {
        self.tally.next_seq = self.tally.next_seq.max(seq + 1);
        let intact = |bytes: &[u8]| envelope::body(bytes, envelope::Table::Outbox, seq).is_ok();
        let existing = self.rows.get(seq)?.map(|r| r.value().to_vec());
        match existing {
            Some(old) if intact(&old) || !intact(row) => Ok(false),
            Some(old) => {
                self.rows.insert(seq, row)?;
                self.tally.bytes = self.tally.bytes - old.len() as u64 + row.len() as u64;
                Ok(false)
            }
            None => {
                self.rows.insert(seq, row)?;
                self.tally.records += 1;
                self.tally.bytes += row.len() as u64;
                Ok(true)
            }
        }
    }

    /// Takes row `seq` out of the outbox to become a dead letter, counting it; its stored
    /// bytes, or `None` if it was already gone.
    pub(super) fn take_dead(&mut self, seq: u64) -> Result<Option<Vec<u8>>, Failure> {
        let Some(row) = self.rows.remove(seq)?.map(|row| row.value().to_vec()) else {
            return Ok(None);
        };
        let len = row.len() as u64;
        self.forget(len);
        self.tally.dead_records += 1;
        self.tally.dead_bytes += len;
        Ok(Some(row))
    }

    /// Counts one invocation's `records` refused because the outbox could not take them.
    pub(super) fn count_rejected(&mut self, records: u64) {
        self.tally.rejected_records += records;
        self.tally.rejected_invocations += 1;
    }

    /// Writes the counters back into `counters`; call once, after the last change.
    pub(super) fn finish(self, counters: &mut Table<&str, u64>) -> Result<(), Failure> {
        let t = &self.tally;
        for (name, value) in [
            (counter::NEXT_SEQ, t.next_seq),
            (counter::OUTBOX_RECORDS, t.records),
            (counter::OUTBOX_BYTES, t.bytes),
            (counter::DROPPED_RECORDS, t.dropped_records),
            (counter::DROPPED_BYTES, t.dropped_bytes),
            (counter::REJECTED_RECORDS, t.rejected_records),
            (counter::REJECTED_INVOCATIONS, t.rejected_invocations),
            (counter::DEAD_RECORDS, t.dead_records),
            (counter::DEAD_BYTES, t.dead_bytes),
        ] {
            counters.insert(name, value)?;
        }
        Ok(())
    }

    fn forget(&mut self, len: u64) {
        self.tally.records = self.tally.records.saturating_sub(1);
        self.tally.bytes = self.tally.bytes.saturating_sub(len);
    }
}

/// The counters only [`OutboxRows`] writes (all of them on every change, in [`OutboxRows::finish`]).
pub(super) const OUTBOX_COUNTERS: [&str; 9] = [
    counter::NEXT_SEQ,
    counter::OUTBOX_RECORDS,
    counter::OUTBOX_BYTES,
    counter::DROPPED_RECORDS,
    counter::DROPPED_BYTES,
    counter::REJECTED_RECORDS,
    counter::REJECTED_INVOCATIONS,
    counter::DEAD_RECORDS,
    counter::DEAD_BYTES,
];

/// Whether `name` is one of the counters only [`OutboxRows`] may write.
pub(super) fn is_outbox_counter(name: &str) -> bool {
    OUTBOX_COUNTERS.contains(&name)
}
