//! Checking a state file before the agent trusts it, and saving what can be read from a damaged
//! one.
//!
//! [`verify`] opens the file, runs redb's integrity check and then reads every row of every
//! table, so a damaged page shows here rather than in the running agent. redb can panic on some
//! damaged pages, and the release build aborts on panic, so the agent runs this in a child
//! process (`outpost state verify`, see [`super::guard`]): a crash there is a verdict, not a
//! crash loop. When the file is damaged, [`salvage`] copies every outbox and inbox row it can
//! still reach into a dump file, one frame per row, written straight through, so whatever was
//! written before a crash part-way is kept; [`scan_file`] adds every intact row found in the raw
//! bytes (rows carry their own table, key and checksum), which needs no redb at all; [`import`]
//! puts those rows into the fresh store.

use std::io::{Read as _, Write as _};
use std::path::Path;

use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, TableError,
};

use super::envelope;
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
    /// The file cannot be checked now for a reason that is not damage (a full or read-only
    /// filesystem, no permission, no memory): it must not be moved aside; try again later.
    Unavailable(String),
}

/// Why an error opening or checking the file is not damage, if it is not: an I/O error of a
/// kind that says the disk or the process cannot do it now, not that the bytes are wrong.
fn not_damage(error: &redb::DatabaseError) -> Option<String> {
    use std::io::ErrorKind as K;
    match error {
        redb::DatabaseError::RepairAborted => Some(error.to_string()),
        redb::DatabaseError::Storage(redb::StorageError::PreviousIo) => Some(error.to_string()),
        redb::DatabaseError::Storage(redb::StorageError::Io(io))
            if matches!(
                io.kind(),
                K::StorageFull
                    | K::QuotaExceeded
                    | K::ReadOnlyFilesystem
                    | K::PermissionDenied
                    | K::OutOfMemory
                    | K::Interrupted
                    | K::WouldBlock
            ) =>
        {
            Some(error.to_string())
        }
        _ => None,
    }
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
        Err(
            redb::DatabaseError::DatabaseAlreadyOpen | redb::DatabaseError::LockProtocolMismatch,
        ) => return Verdict::Locked,
        Err(error) => {
            return match not_damage(&error) {
                Some(reason) => Verdict::Unavailable(reason),
                None => Verdict::Damaged(format!("redb cannot open it: {error}")),
            };
        }
    };
    match db.check_integrity() {
        Ok(true) => {}
        Ok(false) => {
            return Verdict::Damaged("redb's integrity check found damage and repaired it".into());
        }
        Err(error) => {
            return match not_damage(&error) {
                Some(reason) => Verdict::Unavailable(reason),
                None => Verdict::Damaged(format!("integrity check failed: {error}")),
            };
        }
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
            write_frame(&mut frame, tag, key.value(), value);
            out.write_all(&frame)?;
            saved += 1;
        }
    }
    out.sync_all()?;
    Ok(saved)
}

/// Frame tag of an outbox row found by scanning the raw file.
const FRAME_SCANNED_OUTBOX: u8 = 3;
/// Frame tag of an inbox row found by scanning the raw file.
const FRAME_SCANNED_INBOX: u8 = 4;

/// Bytes read from the damaged file at a time by [`scan_file`].
const SCAN_CHUNK: usize = 4 * 1024 * 1024;

/// Appends to `dump` every intact sealed row found in the raw bytes of the damaged file at
/// `path` ([`envelope::scan`]): this needs nothing of redb's structures, so it finds rows behind
/// a damaged page or in a file redb cannot open at all. Reads the file in chunks, so memory stays
/// bounded whatever its size. Returns how many rows it found.
pub fn scan_file(path: &Path, dump: &Path) -> std::io::Result<u64> {
    let mut file = std::fs::File::open(path)?;
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dump)?;
    // A row may straddle two chunks: keep the tail a row could start in for the next window.
    let keep = envelope::OVERHEAD + envelope::MAX_SCANNED_BODY;
    let mut window: Vec<u8> = Vec::with_capacity(SCAN_CHUNK + keep);
    let mut found = 0;
    loop {
        let before = window.len();
        window.resize(before + SCAN_CHUNK, 0);
        let read = read_full(&mut file, &mut window[before..])?;
        window.truncate(before + read);
        let at_end = read == 0;
        // Rows starting at or past `settled` are looked at again with the next chunk.
        let settled = if at_end {
            window.len()
        } else {
            window.len().saturating_sub(keep)
        };
        let mut frames = Vec::new();
        for row in envelope::scan(&window) {
            if row.offset >= settled {
                break;
            }
            let tag = match row.table {
                envelope::Table::Outbox => FRAME_SCANNED_OUTBOX,
                envelope::Table::Inbox => FRAME_SCANNED_INBOX,
            };
            write_frame(&mut frames, tag, row.key, row.row);
            found += 1;
        }
        out.write_all(&frames)?;
        if at_end {
            break;
        }
        window.drain(..settled);
    }
    out.sync_all()?;
    Ok(found)
}

fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

fn write_frame(out: &mut Vec<u8>, tag: u8, key: u64, row: &[u8]) {
    out.push(tag);
    out.extend_from_slice(&key.to_le_bytes());
    out.extend_from_slice(&(row.len() as u32).to_le_bytes());
    out.extend_from_slice(row);
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
/// in one transaction; a frame cut short by a crash ends the dump. Rows redb could still read
/// come first; rows found by scanning the raw file add what sat behind damaged pages, except
/// ones older than the oldest row redb read (copies left in freed pages of rows the broker had
/// already acknowledged). Damaged rows among them go to quarantine the first time they are read.
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
        let (mut oldest_outbox, mut oldest_inbox) = (None::<u64>, None::<u64>);
        let newer = |oldest: Option<u64>, key: u64| oldest.is_none_or(|o| key >= o);
        let mut rest = bytes.as_slice();
        while let Some((tag, key, row, tail)) = frame(rest) {
            rest = tail;
            match tag {
                FRAME_OUTBOX | FRAME_SCANNED_OUTBOX => {
                    if tag == FRAME_OUTBOX {
                        oldest_outbox = Some(oldest_outbox.map_or(key, |o| o.min(key)));
                    } else if !newer(oldest_outbox, key) {
                        continue;
                    }
                    if outbox.restore(key, row)? {
                        salvaged.outbox += 1;
                    }
                }
                FRAME_INBOX | FRAME_SCANNED_INBOX => {
                    if tag == FRAME_INBOX {
                        oldest_inbox = Some(oldest_inbox.map_or(key, |o| o.min(key)));
                    } else if !newer(oldest_inbox, key) {
                        continue;
                    }
                    let intact = |r: &[u8]| envelope::body(r, envelope::Table::Inbox, key).is_ok();
                    let existing = inbox.get(key)?.map(|r| r.value().to_vec());
                    match existing {
                        None => {
                            inbox.insert(key, row)?;
                            salvaged.inbox += 1;
                        }
                        Some(old) if !intact(&old) && intact(row) => {
                            inbox.insert(key, row)?;
                        }
                        Some(_) => {}
                    }
                    next_inbox = next_inbox.max(key + 1);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::envelope::{Table, seal};

    #[test]
    fn a_full_or_read_only_disk_is_not_damage_but_a_corrupted_file_is() {
        let io =
            |kind| redb::DatabaseError::Storage(redb::StorageError::Io(std::io::Error::from(kind)));
        assert!(not_damage(&io(std::io::ErrorKind::StorageFull)).is_some());
        assert!(not_damage(&io(std::io::ErrorKind::ReadOnlyFilesystem)).is_some());
        assert!(not_damage(&io(std::io::ErrorKind::InvalidData)).is_none());
        let corrupted =
            redb::DatabaseError::Storage(redb::StorageError::Corrupted("bad page".into()));
        assert!(not_damage(&corrupted).is_none());
    }

    #[test]
    fn a_raw_scan_finds_rows_across_chunk_boundaries_exactly_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("damaged");
        let dump = dir.path().join("dump");
        // Rows placed so that some straddle the 4 MiB chunk boundary, among noise.
        let mut bytes = vec![0x5Cu8; SCAN_CHUNK - 40];
        let mut keys = Vec::new();
        for key in 1..=40u64 {
            let row = seal(Table::Outbox, key, &vec![key as u8; 50 + key as usize]).expect("seal");
            bytes.extend_from_slice(&row);
            bytes.extend_from_slice(&[0x5C, 1, 0, 0]);
            keys.push(key);
        }
        bytes.resize(bytes.len() + SCAN_CHUNK + 10, 7);
        std::fs::write(&file, &bytes).expect("write");
        assert_eq!(scan_file(&file, &dump).expect("scans"), 40);
        let dumped = std::fs::read(&dump).expect("dump");
        let mut rest = dumped.as_slice();
        let mut found = Vec::new();
        while let Some((tag, key, _, tail)) = frame(rest) {
            assert_eq!(tag, FRAME_SCANNED_OUTBOX);
            found.push(key);
            rest = tail;
        }
        assert_eq!(found, keys);
    }

    #[test]
    fn scanned_rows_fill_a_fresh_store_but_not_with_stale_acknowledged_copies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dump = dir.path().join("dump");
        let row = |key: u64| {
            crate::store::StoredRecord::V1(crate::store::RecordV1 {
                time_ms: 1,
                app: "a".into(),
                component: "c".into(),
                body: crate::store::RecordBody::Event {
                    stream: "s".into(),
                    data: vec![key as u8],
                },
            })
            .encode()
            .map(|mut r| {
                envelope::set_key(&mut r, Table::Outbox, key);
                r
            })
            .expect("encodes")
        };
        let mut frames = Vec::new();
        // redb could read rows 10 and 11; the scan found 3 (acknowledged long ago), 11 again
        // and 12 (behind the damaged page).
        write_frame(&mut frames, FRAME_OUTBOX, 10, &row(10));
        write_frame(&mut frames, FRAME_OUTBOX, 11, &row(11));
        for key in [3, 11, 12] {
            write_frame(&mut frames, FRAME_SCANNED_OUTBOX, key, &row(key));
        }
        frames.extend_from_slice(&[FRAME_OUTBOX, 1, 2]); // cut short by a crash
        std::fs::write(&dump, &frames).expect("dump");
        let store = Store::in_memory().expect("store");
        let salvaged = import(&store, &dump).expect("imports");
        assert_eq!(
            salvaged,
            Salvaged {
                outbox: 3,
                inbox: 0
            }
        );
        let seqs: Vec<u64> = store
            .outbox_read(0, 10)
            .expect("read")
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, [10, 11, 12]);
        assert_eq!(store.counters().expect("counters").next_seq, 13);
    }
}
