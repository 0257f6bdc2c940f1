//! Facts about the store itself: its incarnation id and the notes an operator should see after
//! a restart (a damaged file replaced, what was salvaged).

use redb::{ReadableTable, ReadableTableMetadata, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::error::Failure;
use super::outbox_rows::read_counter;
use super::{Store, StoreError, tables};

/// Key of the incarnation id in [`tables::META`].
const INCARNATION: &str = "incarnation";

/// Notes kept; older ones are removed when a new one is added.
const MAX_NOTES: usize = 16;

/// One note about the store's history, shown in the status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreNote {
    /// When, ms since epoch.
    pub at_ms: i64,
    /// What happened, as one line.
    pub text: String,
}

#[derive(Serialize, Deserialize)]
enum Stored {
    V1(StoreNote),
}

/// Reads the incarnation id, drawing and storing a new one in a store that has none.
pub(super) fn incarnation(txn: &WriteTransaction) -> Result<String, Failure> {
    let mut meta = txn.open_table(tables::META)?;
    if let Some(id) = meta.get(INCARNATION)? {
        return Ok(hex(id.value()));
    }
    let mut id = [0u8; 8];
    getrandom::fill(&mut id).map_err(|e| {
        Failure::Store(StoreError::Open {
            path: "(incarnation id)".into(),
            source: format!("no randomness for the incarnation id: {e}").into(),
        })
    })?;
    meta.insert(INCARNATION, id.as_slice())?;
    Ok(hex(&id))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Wall-clock now in ms (the store's notes and quarantine say when, for people).
pub(super) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `at_ms` as an RFC 3339 UTC time, for notes shown to people.
pub(super) fn format_ms(at_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(at_ms).map_or_else(
        || at_ms.to_string(),
        |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    )
}

impl Store {
    /// Keeps `text` as a note about the store, shown in the status across restarts.
    pub fn add_note(&self, text: &str) -> Result<(), StoreError> {
        let row = postcard::to_stdvec(&Stored::V1(StoreNote {
            at_ms: now_ms(),
            text: text.to_string(),
        }))
        .map_err(StoreError::Encode)?;
        self.write("keep a store note", |txn| {
            let mut counters = txn.open_table(tables::COUNTERS)?;
            let mut notes = txn.open_table(tables::NOTES)?;
            let id = read_counter(&counters, tables::counter::NEXT_NOTE)?.max(1);
            notes.insert(id, row.as_slice())?;
            counters.insert(tables::counter::NEXT_NOTE, id + 1)?;
            while notes.len()? > MAX_NOTES as u64 {
                notes.pop_first()?;
            }
            Ok(())
        })
    }

    /// The notes about the store, oldest first (at most 16).
    pub fn notes(&self) -> Result<Vec<StoreNote>, StoreError> {
        self.read("read the store notes", |txn| {
            let table = txn.open_table(tables::NOTES)?;
            let mut out = Vec::new();
            for row in table.iter()? {
                let (_, bytes) = row?;
                // A note that does not decode is itself damage, but only a note: skip it.
                if let Ok(Stored::V1(note)) = postcard::from_bytes(bytes.value()) {
                    out.push(note);
                }
            }
            Ok(out)
        })
    }
}
