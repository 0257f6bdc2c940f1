//! Checking a state file before the agent trusts it, and saving what can be read from a damaged
//! one.
//!
//! [`verify`] opens the file, runs redb's integrity check and then reads every row of every
//! table, so a damaged page shows here rather than in the running agent. redb can panic on some
//! damaged pages, and the release build aborts on panic, so the agent runs this in a child
//! process (`outpost state verify`, see [`super::guard`]): a crash there is a verdict, not a
//! crash loop. When the file is damaged, [`salvage`] copies every outbox and inbox row it can
//! still reach into a dump file, one frame per row, written straight through, so whatever was
//! written before a crash part-way is kept; [`import`] puts those rows into the fresh store.

use std::io::{Read as _, Write as _};
use std::path::Path;

use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, TableError,
};

use super::error::Failure;
use super::outbox_rows::{OutboxRows, read_counter};
use super::{Store, StoreError, tables};

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every check passed and every row reads.
    Healthy,
    /// The file cannot be trusted; why.
    Damaged(String),
    /// Another process holds the file.
    Locked,
}

/// Frame tag of a salvaged outbox row.
const FRAME_OUTBOX: u8 = 1;
/// Frame tag of a salvaged inbox row.
const FRAME_INBOX: u8 = 2;

fn open_existing(path: &Path) -> Result<Database, redb::DatabaseError> {
    let mut builder = Database::builder();
    builder.set_cache_size(1024 * 1024);
    builder.open(path)
}

/// Checks the state file at `path`: redb opens it (repairing after an unclean stop, as the
/// agent would), its integrity check passes without repairs, and every row of every table
/// reads. May panic inside redb on a damaged page: run it where that is survivable.
pub fn verify(path: &Path) -> Verdict {
    let mut db = match open_existing(path) {
        Ok(db) => db,
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => return Verdict::Locked,
        Err(error) => return Verdict::Damaged(format!("redb cannot open it: {error}")),
    };
    match db.check_integrity() {
        Ok(true) => {}
        Ok(false) => {
            return Verdict::Damaged("redb's integrity check found damage and repaired it".into());
        }
        Err(error) => return Verdict::Damaged(format!("integrity check failed: {error}")),
    }
    match walk_all(&db) {
        Ok(()) => Verdict::Healthy,
        Err(error) => Verdict::Damaged(format!("a table does not read: {error}")),
    }
}

/// Reads every row of every table the agent uses.
fn walk_all(db: &Database) -> Result<(), redb::Error> {
    let txn = db.begin_read()?;
    walk(&txn, tables::KV)?;
    walk(&txn, tables::OUTBOX)?;
    walk(&txn, tables::INBOX)?;
    walk(&txn, tables::COUNTERS)?;
    walk(&txn, tables::TRIGGER_RUNS)?;
    walk(&txn, tables::BUNDLES)?;
    walk(&txn, tables::INSTALLED)?;
    walk(&txn, tables::HIGHEST)?;
    walk(&txn, tables::TRANSFERS)?;
    walk(&txn, tables::CHUNKS)?;
    walk(&txn, tables::FLEET_SEEN)?;
    walk(&txn, tables::LAST_UPDATE)?;
    walk(&txn, tables::QUARANTINE)?;
    walk(&txn, tables::META)?;
    walk(&txn, tables::NOTES)?;
    Ok(())
}

fn walk<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &ReadTransaction,
    table: TableDefinition<K, V>,
) -> Result<(), redb::Error> {
    let table = match txn.open_table(table) {
        Ok(table) => table,
        Err(TableError::TableDoesNotExist(_)) => return Ok(()),
        Err(error) => return Err(error.into()),
    };
    for row in table.iter()? {
        let (key, value) = row?;
        // Decoding each key and value is what a reader would do; a damaged one fails here.
        std::hint::black_box((key.value(), value.value()));
    }
    Ok(())
}

/// Copies every outbox and inbox row still reachable in the (damaged) state file at `path`
/// into `dump`, each frame written through to the file as soon as it is read. Returns how many
/// rows were saved. May panic inside redb, like [`verify`]; the frames written so far stay.
pub fn salvage(path: &Path, dump: &Path) -> std::io::Result<u64> {
    let mut out = std::fs::File::create(dump)?;
    let db = open_existing(path).map_err(std::io::Error::other)?;
    let txn = db.begin_read().map_err(std::io::Error::other)?;
    let mut saved = 0;
    for (tag, table) in [(FRAME_OUTBOX, tables::OUTBOX), (FRAME_INBOX, tables::INBOX)] {
        let table = match txn.open_table(table) {
            Ok(table) => table,
            Err(_) => continue,
        };
        let Ok(rows) = table.iter() else { continue };
        for row in rows {
            // A row that does not read ends this table: what follows sits behind the same
            // damaged page.
            let Ok((key, value)) = row else { break };
            let value = value.value();
            let mut frame = Vec::with_capacity(13 + value.len());
            frame.push(tag);
            frame.extend_from_slice(&key.value().to_le_bytes());
            frame.extend_from_slice(&(value.len() as u32).to_le_bytes());
            frame.extend_from_slice(value);
            out.write_all(&frame)?;
            saved += 1;
        }
    }
    out.sync_all()?;
    Ok(saved)
}

/// What [`import`] put back.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Salvaged {
    /// Outbox rows restored under their old sequence numbers.
    pub outbox: u64,
    /// Inbox rows restored.
    pub inbox: u64,
}

/// Puts the rows of the salvage dump at `dump` into `store` (a fresh one) under their old keys,
/// in one transaction; a frame cut short by a crash ends the dump. Damaged rows among them go to
/// quarantine the first time they are read, like any other.
pub fn import(store: &Store, dump: &Path) -> Result<Salvaged, StoreError> {
    let mut bytes = Vec::new();
    match std::fs::File::open(dump) {
        Ok(mut file) => {
            // An unreadable dump is as good as an empty one: nothing more can be saved.
            let _ = file.read_to_end(&mut bytes);
        }
        Err(_) => return Ok(Salvaged::default()),
    }
    let salvaged = store.write("restore salvaged rows", |txn| {
        let mut counters = txn.open_table(tables::COUNTERS)?;
        let mut inbox = txn.open_table(tables::INBOX)?;
        let mut outbox = OutboxRows::open(txn, &counters)?;
        let mut next_inbox = read_counter(&counters, tables::counter::NEXT_INBOX)?.max(1);
        let mut salvaged = Salvaged::default();
        let mut rest = bytes.as_slice();
        while let Some((tag, key, row, tail)) = frame(rest) {
            rest = tail;
            match tag {
                FRAME_OUTBOX => {
                    outbox.restore(key, row)?;
                    salvaged.outbox += 1;
                }
                FRAME_INBOX => {
                    inbox.insert(key, row)?;
                    next_inbox = next_inbox.max(key + 1);
                    salvaged.inbox += 1;
                }
                _ => break,
            }
        }
        outbox.finish(&mut counters)?;
        counters.insert(tables::counter::NEXT_INBOX, next_inbox)?;
        Ok::<_, Failure>(salvaged)
    })?;
    Ok(salvaged)
}

/// One frame: tag, key, row, and the bytes after it; `None` at the end or a cut-short frame.
fn frame(bytes: &[u8]) -> Option<(u8, u64, &[u8], &[u8])> {
    let (&tag, rest) = bytes.split_first()?;
    let (key, rest) = rest.split_at_checked(8)?;
    let (len, rest) = rest.split_at_checked(4)?;
    let len = u32::from_le_bytes(len.try_into().ok()?) as usize;
    let (row, rest) = rest.split_at_checked(len)?;
    Some((tag, u64::from_le_bytes(key.try_into().ok()?), row, rest))
}
