//! The store's own rules, checked in memory (and on a file where the file is the point).

use std::sync::Arc;

use super::apply::{CommitError, apply_batch};
use super::error::Failure;
use super::*;
use crate::runtime::{Effects, OutboxEffect};

fn commit(app: &str, events: &[&str]) -> Commit {
    let mut effects = Effects::default();
    effects
        .kv
        .insert(("ns".into(), "k".into()), Some(b"v".to_vec()));
    effects.records = events
        .iter()
        .map(|data| OutboxEffect::Event {
            stream: "s".into(),
            data: data.as_bytes().to_vec(),
        })
        .collect();
    Commit {
        app: app.into(),
        component: "c".into(),
        time_ms: 1,
        unsynced: None,
        effects: Arc::new(effects),
        trigger_run: None,
        inbox_done: None,
        failed: false,
    }
}

/// The outbox counters must always describe the rows actually stored.
fn assert_counters_match_rows(store: &Store) {
    let rows = store.outbox_read(0, usize::MAX).expect("outbox");
    let bytes: u64 = rows
        .iter()
        .map(|row| {
            let encoded = StoredRecord::V1(row.record.clone())
                .encode()
                .expect("encodes");
            encoded.len() as u64
        })
        .sum();
    let counters = store.counters().expect("counters");
    assert_eq!(
        (counters.outbox_records, counters.outbox_bytes),
        (rows.len() as u64, bytes),
        "counters {counters:?} vs rows"
    );
    if let Some(last) = rows.last() {
        assert!(counters.next_seq > last.seq, "{counters:?}");
    }
}

#[test]
fn outbox_counters_follow_every_append_drop_and_removal() {
    let store = Store::in_memory().expect("store");
    let limits = OutboxLimits {
        max_records: 4,
        max_bytes: u64::MAX,
        policy: FullPolicy::DropOldest,
        ..OutboxLimits::default()
    };
    let results = apply_batch(
        &store,
        &limits,
        &[commit("a", &["1", "2"]), commit("a", &["3"])],
        2,
    )
    .expect("batch");
    let seqs: Vec<_> = results
        .into_iter()
        .map(|r| r.expect("landed").seqs)
        .collect();
    assert_eq!(seqs, vec![Some(1..=2), Some(3..=3)]);
    assert_counters_match_rows(&store);

    // Two more than fit: the two oldest go, and are counted.
    let receipt = apply_batch(&store, &limits, &[commit("a", &["4", "5", "6"])], 0)
        .expect("batch")
        .remove(0)
        .expect("landed");
    assert_eq!(receipt.dropped_records, 2);
    assert_counters_match_rows(&store);

    // Acknowledged rows leave; a second acknowledgement of the same row changes nothing.
    assert_eq!(store.outbox_remove(&[3, 4, 99]).expect("remove"), 2);
    assert_eq!(store.outbox_remove(&[3]).expect("remove"), 0);
    assert_counters_match_rows(&store);

    // A fleet report goes through the same writer.
    let seq = store
        .fleet()
        .step("report", |step| {
            step.report(
                "update accepted: a",
                RecordV1 {
                    time_ms: 2,
                    app: "a".into(),
                    component: "outpost.fleet".into(),
                    body: RecordBody::Publish {
                        topic: "t".into(),
                        payload: b"{}".to_vec(),
                        qos: 1,
                        retain: false,
                    },
                },
            )
        })
        .expect("report");
    assert_eq!(seq, 7, "reports take the next sequence number");
    assert_counters_match_rows(&store);

    let counters = store.counters().expect("counters");
    assert_eq!((counters.dropped_records, counters.skipped_runs), (2, 2));
    assert_eq!(
        store.fleet().last_updates().expect("read"),
        vec![("a".to_string(), "update accepted: a".to_string())]
    );
}

#[test]
fn a_full_outbox_under_reject_new_refuses_the_whole_commit() {
    let store = Store::in_memory().expect("store");
    let limits = OutboxLimits {
        max_records: 2,
        max_bytes: u64::MAX,
        policy: FullPolicy::RejectNew,
        ..OutboxLimits::default()
    };
    let results = apply_batch(
        &store,
        &limits,
        &[
            commit("a", &["1", "2"]),
            commit("b", &["3"]),
            commit("c", &["1", "2", "3"]),
        ],
        0,
    )
    .expect("batch");
    assert!(results[0].is_ok());
    assert!(matches!(results[1], Err(CommitError::OutboxFull { .. })));
    assert!(matches!(
        results[2],
        Err(CommitError::LargerThanOutbox { records: 3, .. })
    ));
    assert_eq!(
        store.kv_get("b", "ns", "k").expect("read"),
        None,
        "refused whole"
    );
    let counters = store.counters().expect("counters");
    assert_eq!(
        (counters.rejected_records, counters.rejected_invocations),
        (4, 2)
    );
    assert_counters_match_rows(&store);
}

#[test]
fn effects_are_stored_in_the_versioned_layout_and_read_back_through_kv_reader() {
    let store = Store::in_memory().expect("store");
    let mut commit = commit("a", &[]);
    let effects = Arc::get_mut(&mut commit.effects).expect("sole owner");
    effects.records = vec![
        OutboxEffect::Publish {
            topic: "t".into(),
            payload: b"p".to_vec(),
            qos: 1,
            retain: true,
        },
        OutboxEffect::Kv {
            ns: "ns".into(),
            key: "k".into(),
            value: None,
        },
    ];
    let expected: Vec<RecordBody> = effects.records.iter().map(RecordBody::from).collect();
    apply_batch(&store, &OutboxLimits::default(), &[commit], 0)
        .expect("batch")
        .remove(0)
        .expect("landed");
    let bodies: Vec<RecordBody> = store
        .outbox_read(0, 10)
        .expect("outbox")
        .into_iter()
        .map(|entry| entry.record.body)
        .collect();
    assert_eq!(bodies, expected);
    let reader: &dyn crate::runtime::KvReader = &store;
    assert_eq!(
        reader.get("a", "ns", "k").expect("read"),
        Some(b"v".to_vec())
    );
    assert_eq!(reader.keys("a", "ns", "", 10).expect("keys"), vec!["k"]);
}

#[test]
fn refused_inbound_messages_are_counted_and_read_back() {
    let store = Store::in_memory().expect("store");
    store.count_inbound_refused().expect("count");
    store.count_inbound_refused().expect("count");
    assert_eq!(store.counters().expect("counters").inbound_rejected, 2);
}

#[test]
fn a_state_file_in_use_is_refused_and_survives_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open_dir(dir.path()).expect("opens");
    apply_batch(&store, &OutboxLimits::default(), &[commit("a", &["1"])], 0).expect("batch");
    let error = Store::open_dir(dir.path())
        .err()
        .expect("a second open is refused");
    assert!(matches!(error, StoreError::Locked { .. }), "{error}");
    assert!(error.to_string().contains("is in use"), "{error}");
    drop(store);
    let store = Store::open_dir(dir.path()).expect("reopens");
    assert_eq!(store.outbox_read(0, 10).expect("outbox").len(), 1);
    assert_counters_match_rows(&store);
}

#[test]
fn backend_failures_name_the_file_and_what_failed() {
    let io = std::io::Error::other("disk gone");
    let error = Failure::from(redb::StorageError::Io(io))
        .at(std::path::Path::new("/data/state.redb"), "read the outbox");
    let text = error.to_string();
    assert!(
        text.starts_with("state file /data/state.redb: cannot read the outbox:"),
        "{text}"
    );
    assert!(text.contains("disk gone"), "{text}");
    assert!(std::error::Error::source(&error).is_some());
}

#[test]
fn an_outbox_page_ends_after_the_row_that_reaches_its_byte_bound() {
    let store = Store::in_memory().expect("store");
    let big = "x".repeat(1_000);
    let rows: Vec<&str> = vec![&big; 5];
    apply_batch(&store, &OutboxLimits::default(), &[commit("a", &rows)], 0).expect("batch");
    let seqs = |page: Vec<OutboxEntry>| page.iter().map(|r| r.seq).collect::<Vec<_>>();
    assert_eq!(
        seqs(store.outbox_read_page(0, 100, 2_500).expect("page")),
        vec![1, 2, 3]
    );
    assert_eq!(
        seqs(store.outbox_read_page(2, 100, 1).expect("page")),
        vec![2],
        "a page always holds one row"
    );
    assert_eq!(
        seqs(store.outbox_read_page(0, 2, usize::MAX).expect("page")),
        vec![1, 2]
    );
}

#[test]
fn the_inbox_size_follows_every_put_and_removal_and_pages_in_order() {
    let store = Store::in_memory().expect("store");
    let ids = store
        .inbox_put(&["t1", "t2"], "cmd/x", &[7u8; 100], 1)
        .expect("put");
    let more = store.inbox_put(&["t1"], "cmd/y", b"y", 2).expect("put");
    let counters = store.counters().expect("counters");
    assert_eq!(counters.inbox_records, 3);
    let all = store.inbox_pending().expect("pending");
    let stored: u64 = {
        let one = counters.inbox_bytes;
        assert!(one > 201, "stored rows hold the payloads: {one}");
        one
    };
    let page: Vec<u64> = store
        .inbox_page(ids[1], 10)
        .expect("page")
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(page, vec![ids[1], more[0]]);
    assert_eq!(store.inbox_page(0, 1).expect("page")[0].id, ids[0]);

    // Handled in a commit, or dropped: the size goes down with the row.
    let mut handled = commit("a", &[]);
    handled.inbox_done = Some(ids[0]);
    apply_batch(&store, &OutboxLimits::default(), &[handled], 0).expect("batch");
    store.inbox_remove(more[0]).expect("removed");
    let counters = store.counters().expect("counters");
    assert_eq!(counters.inbox_records, 1);
    assert!(counters.inbox_bytes < stored && counters.inbox_bytes > 100);
    assert_eq!(all.len(), 3);
    assert_eq!(store.inbox_pending().expect("pending")[0].id, ids[1]);
}
