//! `kill -9` of `outpost up` during a burst of invocations: every invocation it reported as
//! committed is in redb, and no invocation is half-written (each event has its KV row and each
//! KV row its event). The state file must also reopen cleanly for the next run.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use outpost::store::{RecordBody, Store};

use crate::OUTPOST;

/// Successes to see reported before pulling the plug, per round.
const REPORTED_BEFORE_KILL: usize = 150;
const ROUNDS: usize = 3;

fn manifest(wasm: &std::path::Path) -> String {
    // Four 1 ms triggers: invocations finish together, so group commits happen under the kill.
    let mut text = format!(
        "manifest_version = 1\n[app]\nname = \"crashy\"\nversion = \"1.0.0\"\n\
         [[component]]\nid = \"burst\"\nsource = \"{}\"\ngrants = {{ kv = [\"burst\"], streams = [\"burst\"] }}\n",
        wasm.display()
    );
    for i in 1..=4 {
        text.push_str(&format!(
            "[[component.trigger]]\nname = \"b{i}\"\ninterval = \"1ms\"\n"
        ));
    }
    text
}

/// The `seq a..=b` range of an `ok` line printed by `outpost up`.
fn reported_seqs(line: &str) -> Option<std::ops::RangeInclusive<u64>> {
    if !line.contains(": ok in ") {
        return None;
    }
    let range = line.rsplit("seq ").next()?;
    let (start, end) = range.split_once("..=")?;
    let end = end.split(|c: char| !c.is_ascii_digit()).next()?;
    Some(start.parse().ok()?..=end.parse().ok()?)
}

#[test]
fn kill_9_during_a_burst_loses_no_reported_invocation_and_half_writes_none() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("outpost.toml"),
        manifest(&outpost_testkit::guests::guest("burst")),
    )
    .expect("manifest");
    let data = dir.path().join("data");
    let mut reported = BTreeSet::new();

    for round in 1..=ROUNDS {
        let mut child = Command::new(OUTPOST)
            .args(["up", "--no-build", "--quiet-events", "--data"])
            .arg(&data)
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("outpost up starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut seen_this_round = 0;
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("utf-8 output");
            if let Some(seqs) = reported_seqs(&line) {
                reported.extend(seqs);
                seen_this_round += 1;
                if seen_this_round >= REPORTED_BEFORE_KILL {
                    break;
                }
            }
        }
        assert_eq!(
            seen_this_round, REPORTED_BEFORE_KILL,
            "round {round}: outpost up stopped early"
        );
        child.kill().expect("SIGKILL"); // std's kill() is SIGKILL on Unix: no clean shutdown
        child.wait().expect("reaped");

        let store =
            Store::open_dir(&data).unwrap_or_else(|e| panic!("round {round}: state reopens: {e}"));
        let rows = store.outbox_read(0, usize::MAX).expect("outbox reads");
        let in_outbox: BTreeSet<u64> = rows.iter().map(|r| r.seq).collect();
        let lost: Vec<_> = reported.difference(&in_outbox).collect();
        assert!(
            lost.is_empty(),
            "round {round}: reported but not in redb: {lost:?}"
        );

        let event_ids: BTreeSet<String> = rows
            .iter()
            .map(|r| match &r.record.body {
                RecordBody::Event { data, .. } => String::from_utf8(data.clone()).expect("hex id"),
                other => panic!("unexpected record {other:?}"),
            })
            .collect();
        let kv_ids: BTreeSet<String> = store
            .kv_entries(Some("crashy"), Some("burst"))
            .expect("kv reads")
            .into_iter()
            .map(|entry| {
                assert_eq!(
                    entry.key.as_bytes(),
                    entry.value,
                    "key and value written together"
                );
                entry.key
            })
            .collect();
        assert_eq!(event_ids.len(), rows.len(), "ids are unique");
        assert_eq!(
            event_ids, kv_ids,
            "round {round}: every event has its KV row and vice versa"
        );
        let counters = store.counters().expect("counters");
        assert_eq!(
            counters.outbox_records,
            rows.len() as u64,
            "counters agree with the rows"
        );
    }
}
