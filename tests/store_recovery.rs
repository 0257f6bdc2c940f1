//! The store recovers by itself, end to end with the real `outpost` binary and a real
//! mosquitto: a full disk (a small tmpfs mounted for the test) followed by freed space resumes
//! invocations and delivery within seconds with nothing committed lost; and the anti-rollback
//! floor survives the loss of the state file, so a downgrade is still refused after a wipe.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use outpost_testkit::agent::Agent;
use outpost_testkit::beacon::Beacon;
use outpost_testkit::broker::Broker;
use outpost_testkit::fleet::Cli;
use outpost_testkit::prefill::{open_state, prefill};
use outpost_testkit::proxy::Proxy;
use outpost_testkit::seen::Seen;
use outpost_testkit::subscriber::{EVENTS_FILTER, STATUS_FILTER, Subscriber};

use crate::OUTPOST;
use crate::store_damage::{count_lines, wait_line};

const WAIT: Duration = Duration::from_secs(60);

fn s(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// A tmpfs of `mb` MiB mounted at `at` for the test's life; `None` if mounting is not
/// permitted here (not root, or in a container without CAP_SYS_ADMIN).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, mb: u32) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).expect("mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs", s(at)])
            .status()
            .ok()?;
        status.success().then(|| Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Fills the filesystem holding `dir` with `dir/filler` until it refuses (ENOSPC).
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).expect("filler");
    let block = vec![0xA5u8; 64 * 1024];
    while file.write_all(&block).is_ok() {}
    let _ = file.sync_all();
    path
}

/// Distinct `beat` seqs of `device` seen so far.
fn beat_seqs(seen: &Seen, device: &str) -> std::collections::BTreeSet<u64> {
    seen.events_of(device)
        .filter(|a| a.stream == "beat")
        .map(|a| a.seq)
        .collect()
}

/// An app whose one component emits eight 4 KiB events on `beat` every 20 ms, so an outbox
/// that cannot drain grows its state file fast.
fn big_beats(dir: &Path) -> PathBuf {
    let app = dir.join("big");
    std::fs::create_dir_all(&app).expect("app dir");
    let wasm = wat::parse_str(
        r#"(module
          (import "outpost_v1" "emit" (func $emit (param i32 i32 i32 i32) (result i32)))
          (memory (export "memory") 1)
          (data (i32.const 0) "beat")
          (func (export "outpost_handle") (result i32)
            (local $i i32)
            (loop $again
              (drop (call $emit (i32.const 0) (i32.const 4) (i32.const 1024) (i32.const 4096)))
              (local.set $i (i32.add (local.get $i) (i32.const 1)))
              (br_if $again (i32.lt_u (local.get $i) (i32.const 8))))
            (i32.const 0)))"#,
    )
    .expect("wat");
    std::fs::write(app.join("big.wasm"), wasm).expect("wasm");
    std::fs::write(
        app.join("outpost.toml"),
        r#"manifest_version = 1
[app]
name = "big"
version = "1.0.0"
[[component]]
id = "big"
source = "big.wasm"
grants = { streams = ["beat"] }
[[component.trigger]]
name = "tick"
interval = "20ms"
"#,
    )
    .expect("manifest");
    app
}

#[test]
fn a_full_disk_then_freed_space_resumes_within_seconds_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(_tmpfs) = Tmpfs::mount(&dir.path().join("disk"), 24) else {
        eprintln!("SKIPPED: mounting a tmpfs is not permitted here (needs root / CAP_SYS_ADMIN)");
        return;
    };
    let data = dir.path().join("disk/data");
    let app = big_beats(dir.path());
    let broker = Broker::start();
    let link = Proxy::start(broker.port());
    let sub = Subscriber::start_with(broker.port(), &[EVENTS_FILTER, STATUS_FILTER]);
    let device = "disk-1";
    // No quota: this test is about the filesystem itself running out.
    let mut agent = Agent::start(
        OUTPOST,
        device,
        &link.url(),
        &data,
        // Checkpoints every second: with the commit journal an invocation needs no new space
        // in the state file until its checkpoint, so without them the disk would be met only
        // minutes later (which is the journal doing its job).
        &[
            "--app",
            s(&app),
            "--max-state-bytes",
            "0",
            "--checkpoint-every",
            "1s",
        ],
    );
    let wait = |what: &str, condition: &dyn Fn(&Seen) -> bool, agent: &Agent| {
        assert!(
            sub.wait_for(WAIT, condition),
            "{what}; agent output:\n{}",
            agent.output_tail(30)
        );
    };
    wait(
        "beats arrive",
        &|seen| beat_seqs(seen, device).len() >= 20,
        &agent,
    );

    // Offline, the outbox grows; with the disk full the state file cannot.
    link.set_offline(true);
    link.cut();
    let filler = fill(&dir.path().join("disk"));
    assert!(
        wait_line(&agent, "No space left on device", 1, WAIT),
        "the commits never met the full disk; output:\n{}",
        agent.output_tail(30)
    );
    // Let it run against the full disk for a while: every invocation fails, nothing wedges.
    std::thread::sleep(Duration::from_secs(2));
    let ok_before = count_lines(&agent, "ok in");
    eprintln!(
        "while full: {} invocations failed for lack of space, {} I/O error notice(s)",
        count_lines(&agent, "No space left on device"),
        count_lines(&agent, "re-opening it and retrying")
    );

    std::fs::remove_file(&filler).expect("free the space");
    let freed = Instant::now();
    assert!(
        wait_line(&agent, "ok in", ok_before + 5, WAIT),
        "invocations never succeeded again; output:\n{}",
        agent.output_tail(30)
    );
    let invoking = freed.elapsed();
    link.set_offline(false);
    eprintln!("invocations succeed again {invoking:?} after the space was freed");
    assert!(invoking < Duration::from_secs(10), "took {invoking:?}");
    assert!(
        count_lines(&agent, "re-opened after an I/O error; writes work again") >= 1
            && count_lines(&agent, "re-opening it and retrying") >= 1
            && count_lines(&agent, "re-opening it and retrying") * 4
                <= count_lines(&agent, "No space left on device"),
        "the error and the recovery are reported, once per episode, not per failure; output:\n{}",
        agent.output_tail(30)
    );
    let reconnected = Instant::now();
    let before = sub.with(|seen| beat_seqs(seen, device).last().copied().unwrap_or(0));
    wait(
        "delivery resumes",
        &|seen| {
            beat_seqs(seen, device)
                .iter()
                .any(|&seq| seq > before + 100)
        },
        &agent,
    );
    eprintln!(
        "delivery resumed {:?} after the link came back",
        reconnected.elapsed()
    );

    // Nothing committed is lost: sequence numbers are handed out only by commits that landed,
    // so every seq up to the last one must arrive or still be queued.
    let exit = agent.terminate();
    assert!(exit.success(), "{exit}");
    let state = open_state(&data);
    let last = state.counters().expect("counters").next_seq - 1;
    let queued: std::collections::BTreeSet<u64> = state
        .outbox_read(0, usize::MAX)
        .expect("outbox")
        .iter()
        .map(|e| e.seq)
        .collect();
    let got = sub.with(|seen| beat_seqs(seen, device));
    let lost: Vec<u64> = (1..=last)
        .filter(|s| !got.contains(s) && !queued.contains(s))
        .collect();
    assert!(
        lost.is_empty(),
        "{} committed events lost: {lost:?}",
        lost.len()
    );
    eprintln!(
        "{last} events committed: {} delivered, {} still queued at stop, 0 lost",
        got.len(),
        queued.len()
    );
}

#[test]
fn a_full_disk_at_start_is_never_taken_for_damage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(_tmpfs) = Tmpfs::mount(&dir.path().join("disk"), 16) else {
        eprintln!("SKIPPED: mounting a tmpfs is not permitted here (needs root / CAP_SYS_ADMIN)");
        return;
    };
    let data = dir.path().join("disk/data");
    let committed = prefill(
        &data,
        500,
        &["readings"],
        outpost::store::OutboxLimits::default(),
    );
    let filler = fill(&dir.path().join("disk"));
    let broker = Broker::start();
    let sub = Subscriber::start_with(broker.port(), &[EVENTS_FILTER, STATUS_FILTER]);
    let device = "full-at-start";
    // It may start or refuse to while the disk is full; either way the file stays where it is.
    let mut agent = Agent::start(OUTPOST, device, &broker.url(), &data, &[]);
    let started = wait_line(&agent, "sync: connected", 1, Duration::from_secs(5));
    agent.kill();
    let aside = std::fs::read_dir(&data)
        .expect("dir")
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_string_lossy().contains(".damaged-"));
    assert!(
        !aside,
        "a full disk moved a healthy store aside; output:\n{}",
        agent.output_tail(20)
    );
    eprintln!(
        "with the disk full the agent {}",
        if started { "started" } else { "did not start" }
    );

    std::fs::remove_file(&filler).expect("free");
    let agent = Agent::start(OUTPOST, device, &broker.url(), &data, &[]);
    assert!(
        sub.wait_for_all(device, &committed, WAIT),
        "every committed event arrives; output:\n{}",
        agent.output_tail(20)
    );
    assert_eq!(
        count_lines(&agent, "was damaged"),
        0,
        "{}",
        agent.output_tail(20)
    );
}

#[test]
fn the_state_quota_makes_the_full_policy_act_before_the_disk_fills() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let app = big_beats(dir.path());
    let broker = Broker::start();
    let link = Proxy::start(broker.port());
    link.set_offline(true);
    let quota: u64 = 2 * 1024 * 1024;
    let mut agent = Agent::start(
        OUTPOST,
        "quota-1",
        &link.url(),
        &data,
        &[
            "--app",
            s(&app),
            "--max-state-bytes",
            &quota.to_string(),
            "--outbox-full",
            "drop-oldest",
        ],
    );
    // Offline, ~1.6 MB of events a second would grow the file without bound.
    let state = data.join(outpost::store::STATE_FILE);
    let mut largest = 0;
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        largest = largest.max(std::fs::metadata(&state).map_or(0, |m| m.len()));
        std::thread::sleep(Duration::from_millis(50));
    }
    let ok = count_lines(&agent, "ok in");
    assert!(agent.terminate().success());
    let counters = open_state(&data).counters().expect("counters");
    eprintln!(
        "quota {quota}: largest state file {largest} bytes; {ok} invocations ok, {} rows dropped",
        counters.dropped_records
    );
    assert!(counters.dropped_records > 0, "{counters:?}");
    // redb grows its file by doubling, so it may pass the quota once, never run away.
    assert!(largest <= 3 * quota, "state file reached {largest} bytes");
    assert!(
        ok > 100,
        "invocations kept succeeding: {ok}\n{}",
        agent.output_tail(15)
    );
}

fn bundle(dir: &Path, key: &Path, version: &str, mode: &str) -> PathBuf {
    Cli::new(OUTPOST).beacon_bundle(dir, key, &Beacon::new(version, mode))
}

#[test]
fn a_downgrade_is_still_refused_after_the_state_file_was_wiped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start();
    let sub = Subscriber::start_with(
        broker.port(),
        &[EVENTS_FILTER, STATUS_FILTER, "outpost/+/updates"],
    );
    let (key, public) = Cli::new(OUTPOST).keygen(dir.path(), "release");
    let data = dir.path().join("data");
    let device = "wiped-1";
    let start = || {
        Agent::start(
            OUTPOST,
            device,
            &broker.url(),
            &data,
            &["--trust", s(&public), "--group", "field"],
        )
    };
    let publish =
        |bundle: &Path| Cli::new(OUTPOST).publish(bundle, &key, &broker.url(), "field", &[]);
    let wait = |what: &str, agent: &Agent, condition: &dyn Fn(&Seen) -> bool| {
        assert!(
            sub.wait_for(WAIT, condition),
            "{what}; output:\n{}",
            agent.output_tail(30)
        );
    };

    let mut agent = start();
    publish(&bundle(dir.path(), &key, "2.0.0", "v2"));
    wait("v2 is accepted", &agent, &|seen| {
        seen.reports(device)
            .iter()
            .any(|r| r["result"] == "accepted" && r["to_version"] == "2.0.0")
    });
    agent.terminate();

    // The state file is lost (a wipe, or a damaged file replaced): the fresh store must not
    // forget the floor.
    std::fs::remove_file(data.join(outpost::store::STATE_FILE)).expect("wipe");
    let agent = start();
    // The retained announcement of v2 brings back the version the device ran (its floor's own
    // version, with nothing installed any more), so the device does not stay without its app.
    wait("v2 is installed again after the wipe", &agent, &|seen| {
        seen.reports(device)
            .iter()
            .filter(|r| r["result"] == "accepted" && r["to_version"] == "2.0.0")
            .count()
            >= 2
    });
    // `fleet publish` refuses an older version itself; forced, the device's floor refuses it.
    Cli::new(OUTPOST).publish(
        &bundle(dir.path(), &key, "1.0.0", "v1"),
        &key,
        &broker.url(),
        "field",
        &["--force"],
    );
    wait("v1 is refused as a downgrade", &agent, &|seen| {
        seen.reports(device).iter().any(|r| {
            r["result"] == "refused"
                && r["to_version"] == "1.0.0"
                && r["reason"]
                    .as_str()
                    .is_some_and(|t| t.contains("downgrade refused"))
        })
    });
    assert_eq!(
        sub.with(|seen| seen
            .events_of(device)
            .filter(|a| a.stream == "beat" && a.event["data"] == "v1")
            .count()),
        0,
        "v1 never ran"
    );
}
