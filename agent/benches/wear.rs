//! Wear benchmark: bytes written to storage per committed invocation, for the real `outpost`
//! binary running the sampler example (one KV write + one event + its KV mirror publish per
//! invocation), offline (`outpost up`) and connected (`outpost agent` → a real mosquitto, rows
//! deleted on PUBACK), in each durability mode, next to baselines measured in the same run:
//!
//! 1. the physical floor: one 4 KiB page rewritten + `fdatasync` per record;
//! 2. an append-only file, one record + `fdatasync` per invocation;
//! 3. SQLite (the `sqlite3` CLI), WAL mode, `synchronous=FULL`, one transaction per invocation
//!    doing the same rows (upsert the KV row, insert the two outbox rows; connected: also delete
//!    the rows the previous invocation added, in the same transaction — the ride-along the agent
//!    does — and, as a second figure, in a transaction of their own).
//!
//! "Bytes written" is `write_bytes` of `/proc/PID/io`: bytes the process caused to be sent to
//! the storage layer (page-cache pages dirtied, so a rewritten 4 KiB page counts 4 KiB each time
//! it is written after an fsync). Journal writes of the filesystem are not in it, for any of the
//! contenders. The state directories live under `CARGO_TARGET_TMPDIR` (a real filesystem here;
//! the bench prints its type). Each figure is the growth of `write_bytes` between two invocation
//! reports divided by the invocations between them, so start-up writes are not counted.
//!
//! The agent makes a commit durable with a commit-journal frame and an `fdatasync` (once per
//! commit in immediate mode, once per window in window mode) and checkpoints redb now and then
//! (`[outbox] checkpoint_every`, 5 minutes by default). The bytes per invocation depend on the
//! invocations per fsync and per checkpoint, not on the rate, so every case runs at
//! 20 invocations/s with the window and the checkpoint interval 20× shorter than the 1/s they
//! stand for; the "equivalence" rows run one point both ways to show it.
//!
//! Run with `cargo bench -p outpost --bench wear`. Needs `/usr/sbin/mosquitto` and `sqlite3`.

mod support;

use std::io::{BufRead, BufReader, Write as _};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use outpost::events::AgentEvent;
use outpost::store::Store;
use outpost_testkit::agent::Agent;
use outpost_testkit::broker::{Broker, mosquitto_version};
use outpost_testkit::s;
use support::{cpu_model, load_average};

/// The `outpost` binary under test.
const OUTPOST: &str = env!("CARGO_BIN_EXE_outpost");
/// Bytes of a stored outbox row of the sampler (envelope + postcard record), for the baselines.
const ROW_BYTES: usize = 120;
/// Records of each in-process baseline.
const BASELINE_RECORDS: usize = 300;
/// SQLite transactions (enough for its WAL to checkpoint: 1000 pages by default).
const SQLITE_TXNS: usize = 1500;
/// Targets (issue 12).
const TARGET_IMMEDIATE: f64 = 12.0 * 1024.0;
const TARGET_SQLITE_RATIO: f64 = 0.7;
const TARGET_WINDOW: f64 = 1024.0;
/// Safety net only: every wait is for an output line.
const TIMEOUT: Duration = Duration::from_secs(120);

fn main() {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("wear");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).expect("bench dir");
    println!(
        "outpost wear benchmark ({} cores, {}, mosquitto {}, load average {})",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model(),
        mosquitto_version(),
        load_average(),
    );
    println!(
        "state under {} ({}); bytes = write_bytes of /proc/PID/io",
        root.display(),
        filesystem(&root)
    );
    let wasm = outpost_testkit::guests::guest("sampler");

    println!();
    println!("baselines (bytes written per record)");
    let floor = page_per_fsync(&root.join("page"));
    println!("  one 4 KiB page per fsync          {:>8.0}", floor);
    let append = append_fsync(&root.join("append"));
    println!(
        "  append {ROW_BYTES} B + fsync per record    {:>8.0}",
        append
    );
    let sqlite_offline = sqlite(&root.join("sqlite-offline"), Delete::None);
    let sqlite_connected = sqlite(&root.join("sqlite-connected"), Delete::SameTransaction);
    let sqlite_own = sqlite(&root.join("sqlite-own"), Delete::OwnTransaction);
    println!(
        "  SQLite WAL FULL, insert           {:>8.0}   (upsert KV + 2 rows per transaction, {SQLITE_TXNS} transactions)",
        sqlite_offline
    );
    println!(
        "  SQLite WAL FULL, insert + delete  {:>8.0}   (deletes ride along; {:.0} with the delete in its own transaction)",
        sqlite_connected, sqlite_own
    );

    let broker = Broker::start();
    println!();
    println!("outpost, sampler example (bytes written per committed invocation)");
    // Every case at 20 invocations/s with the window and the checkpoint interval 20x shorter
    // than at 1/s: the same invocations per fsync and per checkpoint (300 with the default
    // 5 minutes), over three checkpoints, so the checkpoints' cost is in the figure.
    let cases = [
        Case::new(
            "immediate at 1/s (as 20/s)",
            "immediate",
            "50ms",
            "15s",
            20,
            900,
        ),
        Case::new(
            "window 1s at 1/s (as 50ms at 20/s)",
            "50ms",
            "50ms",
            "15s",
            20,
            900,
        ),
        Case::new(
            "window 10s at 1/s (as 500ms at 20/s)",
            "500ms",
            "50ms",
            "15s",
            20,
            900,
        ),
        Case::new(
            "window 60s at 1/s (as 3s at 20/s)",
            "3s",
            "50ms",
            "15s",
            60,
            900,
        ),
        Case::new(
            "window 60s, checkpoint 10m at 1/s (as 3s, 30s)",
            "3s",
            "50ms",
            "30s",
            60,
            1200,
        ),
    ];
    let mut figures = Vec::new();
    for case in &cases {
        let offline = up(&root, &wasm, case);
        let connected = agent(&root, &wasm, &broker, case);
        println!(
            "  {:<36} offline {:>8.0}   connected {:>8.0}   (rows left after the connected run: {})",
            case.label, offline.per_invocation, connected.per_invocation, connected.rows_left
        );
        figures.push((case.label, offline.per_invocation, connected.per_invocation));
    }
    println!(
        "  equivalence: window 2s, checkpoint 20s at 1/s, measured both ways (offline, 60 invocations per run)"
    );
    let real = up(
        &root,
        &wasm,
        &Case::new("2s at 1/s", "2s", "1s", "20s", 3, 60),
    );
    let scaled = up(
        &root,
        &wasm,
        &Case::new("100ms at 20/s", "100ms", "50ms", "1s", 20, 1200),
    );
    println!(
        "    at 1/s {:>8.0}   at 20/s, window and checkpoint 20x shorter {:>8.0}",
        real.per_invocation, scaled.per_invocation
    );
    let reconnects = failed_reconnects(&root);
    println!(
        "  failed reconnects: {} attempts in {:.0} s wrote {} bytes",
        reconnects.attempts,
        reconnects.elapsed.as_secs_f64(),
        reconnects.bytes
    );

    println!();
    println!("targets");
    let (_, imm_off, imm_con) = figures[0];
    for (what, value, sqlite) in [
        ("immediate offline", imm_off, sqlite_offline),
        ("immediate connected", imm_con, sqlite_connected),
    ] {
        println!(
            "  {what:<22} {value:>8.0} <= {TARGET_IMMEDIATE:.0} B  {}   {:.2}x SQLite (target <= {TARGET_SQLITE_RATIO}x)  {}",
            verdict(value <= TARGET_IMMEDIATE),
            value / sqlite,
            verdict(value / sqlite <= TARGET_SQLITE_RATIO),
        );
    }
    for (label, offline, connected) in &figures[1..] {
        println!(
            "  {label:<36} {offline:>8.0} / {connected:>8.0} <= {TARGET_WINDOW:.0} B  {}",
            verdict(*offline <= TARGET_WINDOW && *connected <= TARGET_WINDOW)
        );
    }
    println!(
        "  failed reconnects write nothing durable: {}",
        verdict(reconnects.bytes == 0)
    );
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT MET" }
}

/// The filesystem type of `dir` (`stat -f`).
fn filesystem(dir: &Path) -> String {
    Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(dir)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// `write_bytes` of `/proc/PID/io` (`self` for this process).
fn write_bytes(pid: &str) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Baselines.

fn page_per_fsync(path: &Path) -> f64 {
    let file = std::fs::File::create(path).expect("create");
    let page = [7u8; 4096];
    file.write_all_at(&page, 0).expect("write");
    file.sync_data().expect("sync");
    let before = write_bytes("self");
    for _ in 0..BASELINE_RECORDS {
        file.write_all_at(&page, 0).expect("write");
        file.sync_data().expect("sync");
    }
    (write_bytes("self") - before) as f64 / BASELINE_RECORDS as f64
}

fn append_fsync(path: &Path) -> f64 {
    let mut file = std::fs::File::create(path).expect("create");
    let row = [9u8; ROW_BYTES];
    let before = write_bytes("self");
    for _ in 0..BASELINE_RECORDS {
        file.write_all(&row).expect("write");
        file.sync_data().expect("sync");
    }
    (write_bytes("self") - before) as f64 / BASELINE_RECORDS as f64
}

#[derive(Clone, Copy, PartialEq)]
enum Delete {
    None,
    SameTransaction,
    OwnTransaction,
}

/// SQLite through its CLI: the script prints the CLI's own `write_bytes` before and after the
/// transactions (`.shell` runs a child of the CLI, so `$PPID` is the CLI).
fn sqlite(path: &Path, delete: Delete) -> f64 {
    let mut script = String::from(
        "PRAGMA journal_mode=WAL;\nPRAGMA synchronous=FULL;\n\
         CREATE TABLE kv(app TEXT, ns TEXT, key TEXT, value BLOB, PRIMARY KEY(app, ns, key));\n\
         CREATE TABLE outbox(seq INTEGER PRIMARY KEY, row BLOB);\n\
         .shell grep ^write_bytes /proc/$PPID/io\n",
    );
    for i in 0..SQLITE_TXNS {
        let (a, b) = (2 * i + 1, 2 * i + 2);
        script.push_str(&format!(
            "BEGIN;\nINSERT OR REPLACE INTO kv VALUES('sampler','readings','temperature',randomblob(8));\n\
             INSERT INTO outbox VALUES({a}, randomblob({ROW_BYTES}));\nINSERT INTO outbox VALUES({b}, randomblob({ROW_BYTES}));\n"
        ));
        match delete {
            Delete::None => script.push_str("COMMIT;\n"),
            Delete::SameTransaction => {
                script.push_str(&format!("DELETE FROM outbox WHERE seq < {a};\nCOMMIT;\n"))
            }
            Delete::OwnTransaction => script.push_str(&format!(
                "COMMIT;\nBEGIN;\nDELETE FROM outbox WHERE seq < {a};\nCOMMIT;\n"
            )),
        }
    }
    script.push_str(".shell grep ^write_bytes /proc/$PPID/io\n");
    let _ = std::fs::remove_file(path);
    let mut child = Command::new("sqlite3")
        .arg(path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("sqlite3 runs (apt-get install sqlite3)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("script");
    let out = child.wait_with_output().expect("sqlite3 ends");
    let counts: Vec<u64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("write_bytes: ")?.trim().parse().ok())
        .collect();
    assert_eq!(counts.len(), 2, "sqlite3 printed its write_bytes twice");
    (counts[1] - counts[0]) as f64 / SQLITE_TXNS as f64
}

// ---------------------------------------------------------------------------------------------
// Outpost.

/// One measured configuration.
struct Case {
    label: &'static str,
    durability: &'static str,
    interval: &'static str,
    /// `--checkpoint-every`: scaled with the rate like the window, so a run at 20/s has as
    /// many invocations per checkpoint as one at 1/s with the default 5 minutes.
    checkpoint: &'static str,
    /// Invocations reported before measuring (start-up, first window).
    warm_up: usize,
    /// Invocations measured.
    measured: usize,
}

impl Case {
    fn new(
        label: &'static str,
        durability: &'static str,
        interval: &'static str,
        checkpoint: &'static str,
        warm_up: usize,
        measured: usize,
    ) -> Case {
        Case {
            label,
            durability,
            interval,
            checkpoint,
            warm_up,
            measured,
        }
    }
}

struct Measured {
    per_invocation: f64,
    rows_left: u64,
}

/// The sampler example's manifest (`bundles/examples/sampler/outpost.toml`) with the built
/// module and an interval trigger at the case's rate.
fn app_dir(root: &Path, wasm: &Path, interval: &str) -> PathBuf {
    let dir = root.join(format!("app-{interval}"));
    std::fs::create_dir_all(&dir).expect("app dir");
    let example = outpost_testkit::repo_root().join("bundles/examples/sampler/outpost.toml");
    let text = std::fs::read_to_string(&example).expect("sampler manifest");
    let text = text
        .replace(
            "${CARGO_TARGET_DIR:-../../target}/wasm32-unknown-unknown/release/sampler.wasm",
            s(wasm),
        )
        .replace(
            "name = \"every-2s\"\ncron = \"*/2 * * * * *\"",
            &format!("name = \"every\"\ninterval = \"{interval}\""),
        );
    assert!(text.contains("interval"), "the sampler's trigger was found");
    assert!(
        text.contains(s(wasm)),
        "the sampler's module path was found"
    );
    std::fs::write(dir.join("outpost.toml"), text).expect("manifest");
    dir
}

/// `outpost up` offline on a fresh state directory.
fn up(root: &Path, wasm: &Path, case: &Case) -> Measured {
    let app = app_dir(root, wasm, case.interval);
    let data = root.join(format!("up-{}", case.label.replace(' ', "_")));
    let _ = std::fs::remove_dir_all(&data);
    let mut child = Command::new(OUTPOST)
        .args(["up", "--no-build", "--quiet-events", "--durability"])
        .arg(case.durability)
        .arg("--checkpoint-every")
        .arg(case.checkpoint)
        .arg("--data")
        .arg(&data)
        .arg(&app)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("outpost up starts");
    let pid = child.id().to_string();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains(": ok in ") && tx.send(()).is_err() {
                return;
            }
        }
    });
    let wait = |n: usize| {
        for _ in 0..n {
            rx.recv_timeout(TIMEOUT)
                .expect("outpost up reports invocations");
        }
    };
    wait(case.warm_up);
    let before = write_bytes(&pid);
    wait(case.measured);
    let after = write_bytes(&pid);
    outpost_testkit::signal(child.id(), "TERM");
    child.wait().expect("outpost up ends");
    Measured {
        per_invocation: (after - before) as f64 / case.measured as f64,
        rows_left: 0,
    }
}

/// `outpost agent` connected to `broker`, on a fresh state directory.
fn agent(root: &Path, wasm: &Path, broker: &Broker, case: &Case) -> Measured {
    let app = app_dir(root, wasm, case.interval);
    let data = root.join(format!("agent-{}", case.label.replace(' ', "_")));
    let _ = std::fs::remove_dir_all(&data);
    let mut agent = Agent::start(
        OUTPOST,
        "wear",
        &broker.url(),
        &data,
        &[
            "--app",
            s(&app),
            "--simulate",
            "--durability",
            case.durability,
            "--checkpoint-every",
            case.checkpoint,
        ],
    );
    let invoked = |e: &AgentEvent| matches!(e, AgentEvent::Invoked { ok: true, .. });
    let pid = agent.pid().to_string();
    assert!(
        agent.wait_event(|e| matches!(e, AgentEvent::Connected), 1, TIMEOUT),
        "agent connects: {}",
        agent.output_tail(20)
    );
    assert!(agent.wait_event(invoked, case.warm_up, TIMEOUT), "warm-up");
    let before = write_bytes(&pid);
    assert!(
        agent.wait_event(invoked, case.warm_up + case.measured, TIMEOUT),
        "measured invocations: {}",
        agent.output_tail(20)
    );
    let after = write_bytes(&pid);
    agent.terminate();
    let rows_left = Store::open_dir(&data)
        .and_then(|store| store.counters())
        .map_or(u64::MAX, |c| c.outbox_records);
    Measured {
        per_invocation: (after - before) as f64 / case.measured as f64,
        rows_left,
    }
}

struct Reconnects {
    attempts: usize,
    elapsed: Duration,
    bytes: u64,
}

/// An agent whose broker is unreachable (a closed port), no app: what its reconnect attempts
/// write, after the first few (start-up writes the store's tables).
fn failed_reconnects(root: &Path) -> Reconnects {
    let data = root.join("offline-agent");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let agent = Agent::start(
        OUTPOST,
        "wear-offline",
        &format!("mqtt://127.0.0.1:{port}"),
        &data,
        &[],
    );
    let failed = |e: &AgentEvent| matches!(e, AgentEvent::ConnectFailed { .. });
    assert!(agent.wait_event(failed, 3, TIMEOUT), "connect fails");
    let pid = agent.pid().to_string();
    let start = Instant::now();
    let (before, first) = (write_bytes(&pid), agent.count_events(failed));
    // The reconnect delay grows to --reconnect-max (250 ms in the kit): ~40 attempts.
    assert!(
        agent.wait_event(failed, first + 40, TIMEOUT),
        "keeps trying"
    );
    Reconnects {
        attempts: agent.count_events(failed) - first,
        elapsed: start.elapsed(),
        bytes: write_bytes(&pid) - before,
    }
}
