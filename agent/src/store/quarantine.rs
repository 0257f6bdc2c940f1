//! Quarantine: damaged outbox and inbox rows, taken out of the way and kept for an operator.
//!
//! A row that fails its checksum or does not decode would otherwise stop the drain at its page
//! forever, or be delivered as altered data. Reading it moves it here in one durable
//! transaction (the outbox counters go down with it, the quarantine counter up), the store
//! raises a [`StoreNotice::Quarantined`], and the read goes on with the rows after it.

use redb::{ReadableTable, ReadableTableMetadata};
use serde::{Deserialize, Serialize};

use super::envelope::RowDamage;
use super::meta::now_ms;
use super::outbox_rows::{OutboxRows, read_counter};
use super::{Store, StoreError, StoreNotice, tables};

/// Where a damaged row was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The outbox (events owed to the broker).
    Outbox,
    /// The inbox (inbound messages waiting for their component).
    Inbox,
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Source::Outbox => "outbox",
            Source::Inbox => "inbox",
        }
    }
}

/// One quarantined row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantinedRow {
    /// Quarantine id.
    #[serde(skip)]
    pub id: u64,
    /// `outbox` or `inbox`.
    pub table: String,
    /// Its sequence number or inbox id there.
    pub key: u64,
    /// Why it was quarantined.
    pub reason: String,
    /// When, ms since epoch.
    pub at_ms: i64,
    /// The row's bytes exactly as they were read.
    pub bytes: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
enum Stored {
    V1(QuarantinedRow),
}

impl Store {
    /// Moves the damaged rows `damaged` of `source` to quarantine in one durable transaction
    /// and tells the listener about each. A row already gone (acknowledged meanwhile) is left.
    pub(super) fn quarantine(
        &self,
        source: Source,
        damaged: &[(u64, RowDamage)],
    ) -> Result<(), StoreError> {
        let moved = self.write("quarantine damaged rows", |txn| {
            let mut counters = txn.open_table(tables::COUNTERS)?;
            let mut quarantine = txn.open_table(tables::QUARANTINE)?;
            let mut next = read_counter(&counters, tables::counter::NEXT_QUARANTINE)?.max(1);
            let mut moved = Vec::new();
            let mut taken = Vec::new();
            match source {
                Source::Outbox => {
                    let mut outbox = OutboxRows::open(txn, &counters)?;
                    for (key, damage) in damaged {
                        if let Some(bytes) = outbox.take(*key)? {
                            taken.push((*key, damage, bytes));
                        }
                    }
                    outbox.finish(&mut counters)?;
                }
                Source::Inbox => {
                    let mut inbox = txn.open_table(tables::INBOX)?;
                    for (key, damage) in damaged {
                        if let Some(bytes) = inbox.remove(*key)?.map(|b| b.value().to_vec()) {
                            taken.push((*key, damage, bytes));
                        }
                    }
                }
            }
            for (key, damage, bytes) in taken {
                let row = postcard::to_stdvec(&Stored::V1(QuarantinedRow {
                    id: next,
                    table: source.name().to_string(),
                    key,
                    reason: damage.to_string(),
                    at_ms: now_ms(),
                    bytes,
                }))
                .map_err(StoreError::Encode)?;
                quarantine.insert(next, row.as_slice())?;
                next += 1;
                moved.push((key, damage.to_string()));
            }
            let total = read_counter(&counters, tables::counter::QUARANTINED_ROWS)?;
            counters.insert(
                tables::counter::QUARANTINED_ROWS,
                total + moved.len() as u64,
            )?;
            counters.insert(tables::counter::NEXT_QUARANTINE, next)?;
            Ok(moved)
        })?;
        for (key, reason) in moved {
            self.notify(StoreNotice::Quarantined {
                table: source.name(),
                key,
                reason,
            });
        }
        Ok(())
    }

    /// The quarantined rows, oldest first, at most `limit`; a quarantine entry that itself does
    /// not decode is listed with its raw bytes.
    pub fn quarantined(&self, limit: usize) -> Result<Vec<QuarantinedRow>, StoreError> {
        self.read("list the quarantine", |txn| {
            let table = txn.open_table(tables::QUARANTINE)?;
            let mut out = Vec::new();
            for row in table.iter()?.take(limit) {
                let (id, bytes) = row?;
                let id = id.value();
                out.push(match postcard::from_bytes::<Stored>(bytes.value()) {
                    Ok(Stored::V1(row)) => QuarantinedRow { id, ..row },
                    Err(error) => QuarantinedRow {
                        id,
                        table: "?".into(),
                        key: 0,
                        reason: format!("quarantine entry does not decode: {error}"),
                        at_ms: 0,
                        bytes: bytes.value().to_vec(),
                    },
                });
            }
            Ok(out)
        })
    }

    /// Rows in quarantine now.
    pub fn quarantine_len(&self) -> Result<u64, StoreError> {
        self.read("count the quarantine", |txn| {
            Ok(txn.open_table(tables::QUARANTINE)?.len()?)
        })
    }
}
