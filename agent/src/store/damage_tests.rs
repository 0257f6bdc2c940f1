//! Damage is detected, contained and reported: damaged rows go to quarantine and the rest
//! flows; damaged files are moved aside and replaced; the quota makes the full-policy act.

use std::sync::{Arc, Mutex};

use super::apply::{CommitError, apply_batch};
use super::*;
use crate::runtime::{Effects, OutboxEffect};

fn commit(events: &[&str]) -> Commit {
    let effects = Effects {
        records: events
            .iter()
            .map(|data| OutboxEffect::Event {
                stream: "s".into(),
                data: data.as_bytes().to_vec(),
            })
            .collect(),
        ..Effects::default()
    };
    Commit {
        app: "a".into(),
        component: "c".into(),
        time_ms: 1,
        unsynced: None,
        effects: Arc::new(effects),
        trigger_run: None,
        inbox_done: None,
        failed: false,
    }
}

fn with_events(store: &Store, events: &[&str]) {
    apply_batch(store, &OutboxLimits::default(), &[commit(events)], 0)
        .expect("batch")
        .into_iter()
        .for_each(|r| {
            r.expect("commit lands");
        });
}

/// Changes outbox row `seq`'s stored bytes with `damage`, as a flipped bit on disk would.
fn damage_outbox_row(store: &Store, seq: u64, damage: impl FnOnce(&mut Vec<u8>)) {
    store
        .write("damage a row", |txn| {
            let mut table = txn.open_table(tables::OUTBOX)?;
            let mut row = table.get(seq)?.expect("row exists").value().to_vec();
            damage(&mut row);
            table.insert(seq, row.as_slice())?;
            Ok(())
        })
        .expect("damaged");
}

fn notices(store: &Store) -> Arc<Mutex<Vec<String>>> {
    let heard = Arc::new(Mutex::new(Vec::new()));
    let sink = heard.clone();
    store.on_notice(move |n| sink.lock().expect("lock").push(n.to_string()));
    heard
}

fn data(entries: &[OutboxEntry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| match &e.record.body {
            RecordBody::Event { data, .. } => String::from_utf8_lossy(data).into_owned(),
            other => format!("{other:?}"),
        })
        .collect()
}

#[test]
fn a_flipped_bit_and_an_undecodable_row_go_to_quarantine_and_the_rest_flows() {
    let store = Store::in_memory().expect("store");
    let heard = notices(&store);
    with_events(&store, &["one", "two", "three", "four"]);
    damage_outbox_row(&store, 2, |row| {
        let last = row.len() - 1;
        row[last] ^= 0x04;
    });
    // Same length, so the byte counter still describes the rows: tag 0, then no valid varint.
    damage_outbox_row(&store, 3, |row| {
        row.fill(0xff);
        row[0] = 0;
    });
    let before = store.counters().expect("counters");
    let page = store
        .outbox_read(0, 10)
        .expect("the read goes on past the damage");
    assert_eq!(data(&page), ["one", "four"]);
    let after = store.counters().expect("counters");
    assert_eq!(after.quarantined_rows, 2);
    assert_eq!(after.outbox_records, before.outbox_records - 2);
    let quarantined = store.quarantined(10).expect("list");
    assert_eq!(
        quarantined
            .iter()
            .map(|q| (q.table.as_str(), q.key))
            .collect::<Vec<_>>(),
        [("outbox", 2), ("outbox", 3)]
    );
    assert!(
        quarantined[0].reason.contains("checksum"),
        "{quarantined:?}"
    );
    assert_eq!(quarantined[1].bytes[..3], [0, 0xff, 0xff]);
    let heard = heard.lock().expect("lock");
    assert_eq!(heard.len(), 2, "{heard:?}");
    assert!(heard[0].contains("outbox row 2 is damaged"), "{heard:?}");
    // A second read finds nothing more to move; acknowledging the rest empties the outbox.
    assert_eq!(
        data(&store.outbox_read(0, 10).expect("read")),
        ["one", "four"]
    );
    store.outbox_remove(&[1, 4]).expect("ack");
    let last = store.counters().expect("counters");
    assert_eq!((last.outbox_records, last.outbox_bytes), (0, 0));
}

#[test]
fn a_page_is_full_even_when_damaged_rows_were_in_it() {
    let store = Store::in_memory().expect("store");
    with_events(&store, &["1", "2", "3", "4", "5"]);
    damage_outbox_row(&store, 1, |row| row[6] ^= 1);
    assert_eq!(
        data(&store.outbox_read(0, 3).expect("read")),
        ["2", "3", "4"]
    );
}

#[test]
fn a_damaged_inbox_row_is_quarantined_and_the_others_still_run() {
    let store = Store::in_memory().expect("store");
    store.inbox_put(&["t"], "cmd/1", b"first", 1).expect("put");
    store.inbox_put(&["t"], "cmd/2", b"second", 2).expect("put");
    store
        .write("damage", |txn| {
            let mut inbox = txn.open_table(tables::INBOX)?;
            let mut row = inbox.get(1)?.expect("row").value().to_vec();
            row[8] ^= 0x80;
            inbox.insert(1, row.as_slice())?;
            Ok(())
        })
        .expect("damaged");
    let pending = store.inbox_pending().expect("pending");
    assert_eq!(
        pending.iter().map(|p| p.topic.as_str()).collect::<Vec<_>>(),
        ["cmd/2"]
    );
    assert_eq!(store.counters().expect("counters").quarantined_rows, 1);
    assert_eq!(store.quarantined(10).expect("list")[0].table, "inbox");
}

#[test]
fn rows_written_before_the_checksum_envelope_still_read() {
    let store = Store::in_memory().expect("store");
    with_events(&store, &["old"]);
    // Strip the envelope: what an agent before it wrote.
    damage_outbox_row(&store, 1, |row| {
        row.drain(..envelope::OVERHEAD);
    });
    assert_eq!(data(&store.outbox_read(0, 10).expect("read")), ["old"]);
    assert_eq!(store.counters().expect("counters").quarantined_rows, 0);
}

#[test]
fn the_incarnation_is_kept_with_the_file_and_new_for_a_new_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = Store::open_dir(dir.path()).expect("opens");
    let id = first.incarnation().to_string();
    assert_eq!(id.len(), 16);
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
    drop(first);
    assert_eq!(
        Store::open_dir(dir.path()).expect("reopens").incarnation(),
        id
    );
    std::fs::remove_file(dir.path().join(STATE_FILE)).expect("wipe");
    assert_ne!(
        Store::open_dir(dir.path()).expect("fresh").incarnation(),
        id
    );
    assert_ne!(Store::in_memory().expect("mem").incarnation(), id);
}

#[test]
fn an_empty_state_file_is_refused_by_open_and_replaced_by_the_guard() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join(STATE_FILE);
    std::fs::write(&file, b"").expect("empty file");
    let error = Store::open(&file).err().expect("refused");
    assert!(matches!(error, StoreError::Damaged { .. }), "{error}");
    assert!(error.to_string().contains("empty"), "{error}");
    let store = guard::open_dir(dir.path(), &Verifier::InProcess).expect("replaced");
    let heard = notices(&store);
    assert_eq!(
        heard.lock().expect("lock").len(),
        1,
        "the replacement is told"
    );
    let notes = store.counters().expect("counters").store_notes;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].contains("damaged (the file is empty"), "{notes:?}");
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".damaged-"))
        .collect();
    assert_eq!(aside.len(), 1, "the damaged file is kept for forensics");
    with_events(&store, &["after"]);
}

#[test]
fn a_truncated_state_file_is_moved_aside_and_its_readable_rows_salvaged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join(STATE_FILE);
    {
        let store = Store::open(&file).expect("opens");
        with_events(&store, &["a", "b", "c"]);
    }
    let len = std::fs::metadata(&file).expect("meta").len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .expect("open");
    f.set_len(len / 2).expect("truncate");
    drop(f);
    let store = guard::open_dir(dir.path(), &Verifier::InProcess).expect("replaced");
    let counters = store.counters().expect("counters");
    assert_eq!(counters.store_notes.len(), 1, "{counters:?}");
    // Whatever was salvaged keeps its sequence number; new events come after it.
    let salvaged = store.outbox_read(0, 10).expect("read");
    with_events(&store, &["new"]);
    let all = store.outbox_read(0, 10).expect("read");
    assert_eq!(all.len(), salvaged.len() + 1);
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
}

#[test]
fn a_healthy_state_file_passes_the_guard_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = {
        let store = Store::open_dir(dir.path()).expect("opens");
        with_events(&store, &["kept"]);
        store.incarnation().to_string()
    };
    let store = guard::open_dir(dir.path(), &Verifier::InProcess).expect("opens");
    assert_eq!(store.incarnation(), id);
    assert_eq!(data(&store.outbox_read(0, 10).expect("read")), ["kept"]);
    assert!(store.counters().expect("counters").store_notes.is_empty());
}

#[test]
fn at_its_quota_the_state_file_makes_the_full_policy_act() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open_dir(dir.path()).expect("opens");
    with_events(&store, &["1", "2", "3"]);
    store.set_quota(1);
    let reject = OutboxLimits {
        policy: FullPolicy::RejectNew,
        ..OutboxLimits::default()
    };
    let results = apply_batch(&store, &reject, &[commit(&["refused"])], 0).expect("batch");
    assert!(
        matches!(
            results[0],
            Err(CommitError::StateQuota { max_state_bytes: 1 })
        ),
        "{results:?}"
    );
    let drop = OutboxLimits {
        policy: FullPolicy::DropOldest,
        ..OutboxLimits::default()
    };
    let results = apply_batch(&store, &drop, &[commit(&["4"])], 0).expect("batch");
    let receipt = results[0].as_ref().expect("lands");
    assert!(receipt.dropped_records >= 1, "{receipt:?}");
    let counters = store.counters().expect("counters");
    assert!(counters.dropped_records >= 1 && counters.rejected_records == 1);
    store.set_quota(0);
    with_events(&store, &["5"]);
}

#[test]
fn a_file_that_stays_corrupted_asks_for_a_restart_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open_dir(dir.path()).expect("opens");
    let heard = notices(&store);
    let db = store.database().expect("db");
    for _ in 0..5 {
        let _ = store.failed(
            &db,
            error::Failure::Redb(redb::Error::Corrupted("bad page".into())),
            "read the outbox",
        );
    }
    let heard = heard.lock().expect("lock").clone();
    let unusable: Vec<_> = heard.iter().filter(|n| n.contains("restarting")).collect();
    assert_eq!(unusable.len(), 1, "{heard:?}");
    // Re-opened on the next operation (once nothing holds the old handle: redb locks the
    // file), and a success resets the count.
    drop(db);
    with_events(&store, &["still works"]);
    assert_eq!(store.inner.corrupted_in_a_row.load(Ordering::Relaxed), 0);
}

#[test]
fn only_the_newest_damaged_copies_are_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join(STATE_FILE);
    for _ in 0..4 {
        std::fs::write(&file, b"").expect("empty file");
        drop(guard::open_dir(dir.path(), &Verifier::InProcess).expect("replaced"));
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let copies = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(".damaged-"))
        .count();
    assert_eq!(copies, guard::KEEP_DAMAGED);
}
