//! The sequence-number watermark kept apart from the state file, so a fresh store that replaces
//! a damaged or wiped one never hands out a sequence number it handed out before.
//!
//! `seq-watermark` next to `state.redb` holds a number above every sequence number handed out:
//! the store reserves blocks of [`BLOCK`] numbers, rewriting the file (temporary file, fsync,
//! rename) only when a commit reaches the reserved mark — once per [`BLOCK`] events, not per
//! commit. A store created where the file exists starts its numbers at the mark. Consumers that
//! drop duplicates by `(device, stream, seq)` therefore never discard the new store's events as
//! ones they have seen; the jump shows as a gap, which is what it is.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use redb::ReadableTable;

use super::outbox_rows::read_counter;
use super::{Store, StoreError, StoreNotice, durability, tables};

/// File name of the watermark, next to the state file.
pub const WATERMARK_FILE: &str = "seq-watermark";

/// Sequence numbers reserved per rewrite of the file.
pub const BLOCK: u64 = 10_000;

fn path_of(store: &Store) -> Option<PathBuf> {
    store
        .inner
        .file
        .as_deref()
        .map(|f| f.with_file_name(WATERMARK_FILE))
}

fn read(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn write(path: &Path, mark: u64) -> std::io::Result<()> {
    super::side_file::replace(path, format!("{mark}\n").as_bytes())
}

/// At open: a store without a next sequence number (created just now) starts at the mark; then
/// the mark is moved past the store's next number if it is not already.
pub(super) fn open(store: &Store) -> Result<(), StoreError> {
    let Some(path) = path_of(store) else {
        return Ok(());
    };
    let mark = read(&path).unwrap_or(0);
    let next = store.write("start at the sequence watermark", |txn| {
        let mut counters = txn.open_table(tables::COUNTERS)?;
        if counters.get(tables::counter::NEXT_SEQ)?.is_none() && mark > 0 {
            counters.insert(tables::counter::NEXT_SEQ, mark)?;
        }
        Ok(read_counter(&counters, tables::counter::NEXT_SEQ)?.max(1))
    })?;
    store.inner.seq_reserved.store(mark, Ordering::Relaxed);
    reserve(store, next);
    Ok(())
}

/// At open, after [`open`]: a window marker left behind means the last run stopped uncleanly
/// in window mode, so non-durable commits may be lost — and their rows may have been sent with
/// sequence numbers the file no longer knows. Continues past the watermark (which every handed
/// out number is below: it is reserved before a commit becomes visible), keeps a note and tells
/// the device, then removes the marker.
pub(super) fn recover_window(store: &Store) -> Result<(), StoreError> {
    let Some(file) = store.inner.file.as_deref() else {
        return Ok(());
    };
    let marker = file.with_file_name(durability::MARKER_FILE);
    let Some(window) = durability::read_marker(&marker) else {
        return Ok(());
    };
    let mark = store.inner.seq_reserved.load(Ordering::Relaxed);
    let (from, to) = store.write("continue past the sequence watermark", |txn| {
        let mut counters = txn.open_table(tables::COUNTERS)?;
        let next = read_counter(&counters, tables::counter::NEXT_SEQ)?.max(1);
        if mark > next {
            counters.insert(tables::counter::NEXT_SEQ, mark)?;
        }
        Ok((next, mark.max(next)))
    })?;
    reserve(store, to);
    let note = format!(
        "unclean stop in durability window {window}: commits made in the last {window} before the stop may be lost; sequence numbers go on at {to} (numbers {from}..{to} are skipped: some may have been sent before the stop)"
    );
    store.add_note(&note)?;
    store.notify(StoreNotice::UncleanStop { note });
    if let Err(error) = std::fs::remove_file(&marker) {
        store.notify(StoreNotice::SideFile {
            message: format!("cannot remove {}: {error}", marker.display()),
        });
    }
    Ok(())
}

/// Before a commit becomes visible: `next` is the store's next sequence number after it;
/// reserves another block when it reached the mark. A failure to write is reported, never
/// fails the commit.
pub(super) fn reserve(store: &Store, next: u64) {
    if next < store.inner.seq_reserved.load(Ordering::Relaxed) {
        return;
    }
    let Some(path) = path_of(store) else { return };
    let mark = next.saturating_add(BLOCK);
    match write(&path, mark) {
        Ok(()) => store.inner.seq_reserved.store(mark, Ordering::Relaxed),
        Err(error) => store.notify(StoreNotice::SideFile {
            message: format!("cannot write {}: {error}", path.display()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{Effects, OutboxEffect};
    use crate::store::{Commit, OutboxLimits, apply::apply_batch};

    fn one_event() -> Commit {
        Commit {
            app: "a".into(),
            component: "c".into(),
            time_ms: 1,
            unsynced: None,
            effects: std::sync::Arc::new(Effects {
                records: vec![OutboxEffect::Event {
                    stream: "s".into(),
                    data: b"x".to_vec(),
                }],
                ..Effects::default()
            }),
            trigger_run: None,
            inbox_done: None,
            failed: false,
        }
    }

    fn seq_of(store: &Store) -> u64 {
        let results =
            apply_batch(store, &OutboxLimits::default(), &[one_event()], 0).expect("batch");
        let receipt = results[0].as_ref().expect("lands");
        *receipt.seqs.as_ref().expect("a seq").start()
    }

    #[test]
    fn a_fresh_store_never_reuses_a_sequence_number_of_the_one_it_replaces() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join(super::super::STATE_FILE);
        let last = {
            let store = Store::open(&file).expect("opens");
            let mut last = 0;
            for _ in 0..5 {
                last = seq_of(&store);
            }
            last
        };
        assert_eq!(last, 5);
        // A reopened store goes on where it was: no jump without a reason.
        assert_eq!(seq_of(&Store::open(&file).expect("reopens")), 6);
        std::fs::remove_file(&file).expect("wipe");
        let fresh = seq_of(&Store::open(&file).expect("fresh"));
        assert!(fresh > 6, "{fresh}");
        assert_eq!(
            read(&file.with_file_name(WATERMARK_FILE)),
            Some(fresh + BLOCK)
        );
    }
}
