//! Durability modes under `kill -9` (issue 12): a window-mode crash loses at most the window,
//! says so at the next start and never reuses a sequence number; an immediate-mode crash loses
//! nothing reported as committed; deletes after PUBACK, made non-durable, come back after a
//! crash as duplicates, never as loss.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use outpost::events::AgentEvent;
use outpost::store::{OutboxLimits, Store};
use outpost_testkit::agent::Agent;
use outpost_testkit::broker::Broker;
use outpost_testkit::delivery::check_delivery;
use outpost_testkit::prefill::prefill;
use outpost_testkit::subscriber::Subscriber;

use crate::OUTPOST;

/// The window of the window-mode tests.
const WINDOW: Duration = Duration::from_secs(1);
/// Scheduling slack on a busy machine on top of the window: the flusher thread and the commit
/// may run late by this much.
const SLACK: Duration = Duration::from_millis(750);
/// Safety net only; every wait is for a line or an event.
const WAIT: Duration = Duration::from_secs(60);

fn manifest(wasm: &Path) -> String {
    // Four 1 ms triggers, as in crash.rs: a steady stream of commits under the kill.
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

/// `outpost up --durability MODE` on `data`, its stdout lines sent with the instant each was
/// read.
fn up(app: &Path, data: &Path, mode: &str) -> (Child, mpsc::Receiver<(Instant, String)>) {
    let mut child = Command::new(OUTPOST)
        .args([
            "up",
            "--no-build",
            "--quiet-events",
            "--durability",
            mode,
            "--data",
        ])
        .arg(data)
        .arg(app)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("outpost up starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send((Instant::now(), line)).is_err() {
                return;
            }
        }
    });
    (child, rx)
}

#[test]
fn a_window_mode_kill_9_loses_at_most_the_window_says_so_and_reuses_no_sequence_number() {
    let dir = tempfile::tempdir().expect("temp dir");
    let wasm = outpost_testkit::guests::guest("burst");
    std::fs::write(dir.path().join("outpost.toml"), manifest(&wasm)).expect("manifest");
    let data = dir.path().join("data");

    let (mut child, lines) = up(dir.path(), &data, "1s");
    let mut reported: Vec<(Instant, u64)> = Vec::new();
    let mut promise = String::new();
    let started = Instant::now();
    // Run for three windows, so some commits are durable and the last ones are not.
    while started.elapsed() < 3 * WINDOW {
        let (at, line) = lines.recv_timeout(WAIT).expect("outpost up reports");
        if line.contains("durability window") {
            promise = line.clone();
        }
        if let Some(seqs) = reported_seqs(&line) {
            reported.extend(seqs.map(|seq| (at, seq)));
        }
    }
    child.kill().expect("SIGKILL"); // no clean shutdown: non-durable commits die with it
    let killed = Instant::now();
    child.wait().expect("reaped");
    assert!(
        promise.contains("loses at most the last 1s"),
        "outpost up states the loss bound at start: {promise:?}"
    );
    // Lines still in the pipe were reported before the kill too.
    while let Ok((at, line)) = lines.recv_timeout(Duration::from_millis(200)) {
        if let Some(seqs) = reported_seqs(&line) {
            reported.extend(seqs.map(|seq| (at, seq)));
        }
    }
    assert!(reported.len() > 100, "only {} reported", reported.len());

    // The next start says what happened and continues past every number handed out before.
    let (mut child, lines) = up(dir.path(), &data, "1s");
    let mut notice = None;
    let mut first_new = None;
    while first_new.is_none() {
        let (_, line) = lines.recv_timeout(WAIT).expect("outpost up reports");
        if line.contains("unclean stop in durability window 1s") {
            notice = Some(line.clone());
        }
        first_new = reported_seqs(&line).map(|seqs| *seqs.start());
    }
    outpost_testkit::signal(child.id(), "TERM");
    child.wait().expect("stops");
    let notice = notice.expect("the start after the crash tells of the unclean stop");
    assert!(notice.contains("may be lost"), "{notice}");
    let last_old = reported.iter().map(|(_, seq)| *seq).max().expect("some");
    let first_new = first_new.expect("a new invocation");
    assert!(
        first_new > last_old,
        "sequence number {first_new} reused after the crash (the lost run reported up to {last_old})"
    );
    // Read after the second run (opening the store here would take the marker away from it):
    // its new numbers are all past the first run's, so they do not hide a loss.
    let store = Store::open_dir(&data).expect("state reopens");
    let in_outbox: BTreeSet<u64> = store
        .outbox_read(0, usize::MAX)
        .expect("outbox reads")
        .iter()
        .map(|r| r.seq)
        .collect();
    let lost: Vec<(Duration, u64)> = reported
        .iter()
        .filter(|(_, seq)| !in_outbox.contains(seq))
        .map(|(at, seq)| (killed.duration_since(*at), *seq))
        .collect();
    let oldest_lost = lost.iter().map(|(age, _)| *age).max();
    eprintln!(
        "window 1s: {} of {} reported invocations lost to kill -9, the oldest reported {:?} before it",
        lost.len(),
        reported.len(),
        oldest_lost
    );
    assert!(
        oldest_lost.is_none_or(|age| age <= WINDOW + SLACK),
        "lost more than the window: {} rows, the oldest reported {oldest_lost:?} before the kill",
        lost.len()
    );

    assert!(
        store
            .notes()
            .expect("notes")
            .iter()
            .any(|n| n.text.contains("unclean stop")),
        "the status keeps the note"
    );
    assert!(
        !data.join("durability-window").exists(),
        "a clean stop removes the window marker"
    );
}

#[test]
fn an_immediate_mode_kill_9_loses_no_reported_invocation() {
    let dir = tempfile::tempdir().expect("temp dir");
    let wasm = outpost_testkit::guests::guest("burst");
    std::fs::write(dir.path().join("outpost.toml"), manifest(&wasm)).expect("manifest");
    let data = dir.path().join("data");
    let (mut child, lines) = up(dir.path(), &data, "immediate");
    let mut reported = BTreeSet::new();
    while reported.len() < 200 {
        let (_, line) = lines.recv_timeout(WAIT).expect("outpost up reports");
        if let Some(seqs) = reported_seqs(&line) {
            reported.extend(seqs);
        }
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    while let Ok((_, line)) = lines.recv_timeout(Duration::from_millis(200)) {
        if let Some(seqs) = reported_seqs(&line) {
            reported.extend(seqs);
        }
    }
    let store = Store::open_dir(&data).expect("state reopens");
    let in_outbox: BTreeSet<u64> = store
        .outbox_read(0, usize::MAX)
        .expect("outbox reads")
        .iter()
        .map(|r| r.seq)
        .collect();
    let lost: Vec<_> = reported.difference(&in_outbox).collect();
    assert!(lost.is_empty(), "reported but not on disk: {lost:?}");
    assert!(
        store.notes().expect("notes").is_empty(),
        "no window, nothing to report"
    );
}

#[test]
fn deletes_after_puback_come_back_after_a_crash_as_duplicates_never_as_loss() {
    const DEVICE: &str = "wear-acks";
    const EVENTS: usize = 300;
    let broker = Broker::start();
    let sub = Subscriber::start(broker.port());
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let committed = prefill(&data, EVENTS, &["a"], OutboxLimits::default());

    // Drained: every row published, acknowledged and deleted — non-durably, since no commit
    // followed to carry the deletes. kill -9 before the lazy flush makes them durable.
    let mut agent = Agent::start(OUTPOST, DEVICE, &broker.url(), &data, &[]);
    assert!(
        agent.wait_event(|e| matches!(e, AgentEvent::Drained), 1, WAIT),
        "drains: {}",
        agent.output_tail(20)
    );
    agent.kill();
    assert!(sub.wait_for_all(DEVICE, &committed, WAIT), "all delivered");
    let first_run = sub.arrivals().len();

    // Unsynced journal frames wait in memory, so kill -9 takes the deletes' frames — unless
    // enough of them piled up to be written out (64 KiB). A power cut takes those too: in this
    // run nothing was ever synced (the agent ran no invocation and received no message, the
    // only commits that sync), so a zeroed journal is exactly what a power cut leaves.
    let journal = data.join(outpost::store::journal::JOURNAL_FILE);
    let len = std::fs::metadata(&journal).expect("a journal").len();
    std::fs::write(&journal, vec![0u8; len as usize]).expect("power cut");

    let back = Store::open_dir(&data)
        .expect("reopens")
        .counters()
        .expect("counters")
        .outbox_records;
    assert!(
        back > 0,
        "the acknowledged rows' deletes were not durable, so they are back"
    );

    // The next run sends them again: duplicates, with their old sequence numbers.
    let mut agent = Agent::start(OUTPOST, DEVICE, &broker.url(), &data, &[]);
    assert!(
        agent.wait_event(|e| matches!(e, AgentEvent::Drained), 1, WAIT),
        "drains again: {}",
        agent.output_tail(20)
    );
    assert!(
        sub.wait_for(WAIT, |seen| seen.events.len() >= first_run + back as usize),
        "re-sent"
    );
    agent.terminate();
    let delivery = check_delivery(DEVICE, &committed, &sub.arrivals())
        .unwrap_or_else(|problems| panic!("delivery is wrong:\n{problems}"));
    assert!(delivery.duplicates > 0, "{delivery:?}");
    let left = Store::open_dir(&data)
        .expect("reopens")
        .counters()
        .expect("counters")
        .outbox_records;
    assert_eq!(left, 0, "a clean stop makes the deletes durable");
}
