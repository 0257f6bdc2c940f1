//! Durability modes on a real file: the window marker, the start after an unclean stop, and
//! the non-durable work that rides along with the next durable commit.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::apply::apply_batch;
use super::*;
use crate::runtime::{Effects, OutboxEffect};

fn one_event() -> Commit {
    Commit {
        app: "a".into(),
        component: "c".into(),
        time_ms: 1,
        effects: Arc::new(Effects {
            records: vec![OutboxEffect::Event {
                stream: "s".into(),
                data: b"x".to_vec(),
            }],
            ..Effects::default()
        }),
        trigger_run: None,
        inbox_done: None,
        failed: false,
        unsynced: None,
    }
}

fn seq_of(store: &Store) -> u64 {
    let results = apply_batch(store, &OutboxLimits::default(), &[one_event()], 0).expect("batch");
    *results[0]
        .as_ref()
        .expect("lands")
        .seqs
        .as_ref()
        .expect("a seq")
        .start()
}

/// Waits (up to 10 s, polling: the flusher signals nothing) until `done`, failing with `what`.
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

const WINDOW: Durability = Durability::Window(Duration::from_secs(60));

#[test]
fn a_clean_stop_in_window_mode_persists_everything_and_removes_the_marker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join(durability::MARKER_FILE);
    {
        let store = Store::open_dir(dir.path()).expect("opens");
        store.set_durability(WINDOW).expect("window");
        assert!(marker.exists(), "the marker says a window is open");
        assert_eq!(seq_of(&store), 1);
        assert_eq!(seq_of(&store), 2);
        assert!(
            store.inner.lazy.pending(),
            "window commits are not durable yet"
        );
        assert_eq!(
            store.outbox_read(0, 10).expect("reads").len(),
            2,
            "but visible"
        );
        assert_eq!(store.counters().expect("counters").durability, "1m");
    }
    assert!(!marker.exists(), "a clean stop removes it");
    let store = Store::open_dir(dir.path()).expect("reopens");
    assert_eq!(store.outbox_read(0, 10).expect("reads").len(), 2);
    assert_eq!(seq_of(&store), 3, "no jump after a clean stop");
    assert!(store.notes().expect("notes").is_empty());
}

#[test]
fn a_start_after_an_unclean_window_stop_skips_past_every_number_it_may_have_sent() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = Store::open_dir(dir.path()).expect("opens");
        store.set_durability(WINDOW).expect("window");
        for _ in 0..3 {
            seq_of(&store);
        }
    }
    // What a power cut leaves: the marker (the rows of the lost window are simply not there).
    std::fs::write(dir.path().join(durability::MARKER_FILE), "1m\n").expect("marker");
    let store = Store::open_dir(dir.path()).expect("reopens");
    let heard = Arc::new(Mutex::new(Vec::new()));
    {
        let heard = heard.clone();
        store.on_notice(move |n| heard.lock().expect("lock").push(n.clone()));
    }
    let next = seq_of(&store);
    assert!(
        next > 3 + watermark::BLOCK / 2,
        "numbers go on past the watermark, never reusing one that may have been sent: {next}"
    );
    let notes = store.notes().expect("notes");
    assert!(
        notes[0]
            .text
            .contains("unclean stop in durability window 1m"),
        "{notes:?}"
    );
    assert!(matches!(
        heard.lock().expect("lock").as_slice(),
        [StoreNotice::UncleanStop { .. }]
    ));
    assert!(
        !dir.path().join(durability::MARKER_FILE).exists(),
        "immediate mode now: no marker"
    );
}

#[test]
fn deletes_after_puback_are_not_durable_until_the_next_durable_commit() {
    let store = Store::in_memory().expect("store");
    for _ in 0..3 {
        seq_of(&store);
    }
    assert!(!store.inner.lazy.pending(), "immediate commits are durable");
    assert_eq!(store.outbox_remove(&[1, 2]).expect("removes"), 2);
    assert!(store.inner.lazy.pending(), "the delete rides along");
    seq_of(&store);
    assert!(
        !store.inner.lazy.pending(),
        "the next invocation carried it"
    );
    store.outbox_remove(&[3]).expect("removes");
    store.persist().expect("persists");
    assert!(!store.inner.lazy.pending());
}

#[test]
fn the_flusher_makes_a_window_durable_when_no_commit_comes() {
    let store = Store::in_memory().expect("store");
    store
        .set_durability(Durability::Window(Duration::from_millis(20)))
        .expect("window");
    seq_of(&store);
    assert!(store.inner.lazy.pending());
    wait_until("never flushed", || !store.inner.lazy.pending());
}

#[test]
fn inbound_messages_are_durable_before_their_ack_in_window_mode_too() {
    let store = Store::in_memory().expect("store");
    store.set_durability(WINDOW).expect("window");
    seq_of(&store);
    assert!(store.inner.lazy.pending());
    store
        .inbox_put(&["t"], "topic", b"body", 1)
        .expect("stored");
    assert!(
        !store.inner.lazy.pending(),
        "the inbox row is durable, and so is everything before it"
    );
}

/// What a power cut leaves of the store in `from`: its files as they are on disk now (the
/// copy of a file redb has not checkpointed is at its last durable commit for redb).
fn crash_copy(from: &std::path::Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().expect("tempdir");
    for name in [STATE_FILE, journal::JOURNAL_FILE] {
        std::fs::copy(from.join(name), to.path().join(name)).expect("copies");
    }
    to
}

#[test]
fn journaled_commits_survive_a_crash_and_deletes_come_back_as_duplicates_at_worst() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open_dir(dir.path()).expect("opens");
    for expected in 1..=4 {
        assert_eq!(seq_of(&store), expected);
    }
    assert!(
        store.inner.lazy.pending() && !store.inner.lazy.unsynced(),
        "synced in the journal, not checkpointed in redb"
    );
    store.outbox_remove(&[1]).expect("removes");
    let crashed = crash_copy(dir.path());
    let without_journal = crash_copy(dir.path());
    std::fs::remove_file(without_journal.path().join(journal::JOURNAL_FILE)).expect("removes");
    let redb_alone = Store::open_dir(without_journal.path()).expect("opens");
    assert!(
        redb_alone.outbox_read(0, 10).expect("reads").len() < 4,
        "redb alone is at its last checkpoint: the journal is what kept these commits"
    );
    let after = Store::open_dir(crashed.path()).expect("reopens");
    let seqs: Vec<u64> = after
        .outbox_read(0, 10)
        .expect("reads")
        .iter()
        .map(|e| e.seq)
        .collect();
    assert!(
        seqs == [1, 2, 3, 4] || seqs == [2, 3, 4],
        "every committed row is back: {seqs:?}"
    );
    assert_eq!(after.counters().expect("counters").next_seq, 5);
    assert_eq!(seq_of(&after), 5, "numbering goes on");
}

#[test]
fn a_damaged_journal_frame_stops_the_replay_there_and_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open_dir(dir.path()).expect("opens");
    seq_of(&store);
    seq_of(&store);
    let crashed = crash_copy(dir.path());
    let path = crashed.path().join(journal::JOURNAL_FILE);
    let mut bytes = std::fs::read(&path).expect("reads");
    let first = journal::scan(&bytes, u64::MAX, 0).end as usize;
    assert_eq!(first, 0, "no frames under another tag");
    // Flip a byte in the last frame's body: find the end of the frames first.
    let end = bytes.iter().rposition(|b| *b != 0).expect("frames");
    bytes[end] ^= 0x01;
    std::fs::write(&path, &bytes).expect("writes");
    let after = Store::open_dir(crashed.path()).expect("opens anyway");
    let rows = after.outbox_read(0, 10).expect("reads").len();
    assert_eq!(rows, 1, "the intact frame before the damage is replayed");
    let notes = after.notes().expect("notes");
    assert!(
        notes
            .iter()
            .any(|n| n.text.contains("commit journal") && n.text.contains("damaged")),
        "{notes:?}"
    );
}

#[test]
fn a_journal_left_by_another_state_file_is_never_applied() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open_dir(dir.path()).expect("opens");
    seq_of(&store);
    seq_of(&store);
    let crashed = crash_copy(dir.path());
    // The state file was replaced (damaged and moved aside, say): the old journal stays.
    std::fs::remove_file(crashed.path().join(STATE_FILE)).expect("removes");
    let fresh = Store::open_dir(crashed.path()).expect("opens");
    assert!(fresh.outbox_read(0, 10).expect("reads").is_empty());
    assert_eq!(seq_of(&fresh), 1);
}

#[test]
fn a_clean_stop_checkpoints_so_the_next_start_replays_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = Store::open_dir(dir.path()).expect("opens");
        seq_of(&store);
        store.outbox_remove(&[1]).expect("removes");
    }
    let bytes = std::fs::read(dir.path().join(journal::JOURNAL_FILE)).expect("journal");
    let store = Store::open_dir(dir.path()).expect("reopens");
    assert!(
        store.outbox_read(0, 10).expect("reads").is_empty(),
        "the delete held"
    );
    assert!(
        !store.inner.lazy.pending(),
        "nothing replayed, nothing pending"
    );
    assert_eq!(
        bytes,
        std::fs::read(dir.path().join(journal::JOURNAL_FILE)).expect("journal"),
        "opening wrote nothing to the journal"
    );
}

#[test]
fn with_a_journal_the_flusher_syncs_within_the_window_and_checkpoints_when_due() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open_dir(dir.path()).expect("opens");
    store
        .set_durability(Durability::Window(Duration::from_millis(20)))
        .expect("window");
    store.set_checkpoint_every(Duration::from_millis(200));
    seq_of(&store);
    assert!(
        store.inner.lazy.unsynced(),
        "a window commit waits for its sync"
    );
    wait_until("never synced", || !store.inner.lazy.unsynced());
    assert!(
        store.inner.lazy.pending(),
        "synced in the journal, the checkpoint still to come"
    );
    wait_until("never checkpointed", || !store.inner.lazy.pending());
}

#[test]
fn a_truncated_journal_still_gives_back_the_frames_it_holds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open_dir(dir.path()).expect("opens");
    seq_of(&store);
    seq_of(&store);
    let crashed = crash_copy(dir.path());
    let path = crashed.path().join(journal::JOURNAL_FILE);
    let bytes = std::fs::read(&path).expect("reads");
    // Cut to its first page: shorter than a journal is ever kept, so opening refills it.
    std::fs::write(&path, &bytes[..4096]).expect("truncates");
    let after = Store::open_dir(crashed.path()).expect("opens");
    assert_eq!(after.outbox_read(0, 10).expect("reads").len(), 2);
    assert_eq!(
        std::fs::metadata(&path).expect("journal").len(),
        journal::JOURNAL_BYTES,
        "and the journal is whole again"
    );
}
