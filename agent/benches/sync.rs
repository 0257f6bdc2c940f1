//! Sync benchmarks: the real `outpost agent` draining a prefilled outbox to a real mosquitto,
//! next to a baseline measured in the same run against the same broker.
//!
//! 1. Raw rumqttc: one `AsyncClient` publishing `RAW_MESSAGES` 100-byte messages at QoS 1 with
//!    the agent's in-flight limit, until every PUBACK is in → messages/s. This is the ceiling of
//!    one message per event.
//! 2. Drain: `DRAIN_EVENTS` events of 100-byte payloads committed to a data directory through the
//!    library, then the `outpost agent` binary started on it; timed from spawn to its
//!    `sync: drained` line (outbox empty: every row published, PUBACKed and deleted) → events/s,
//!    and the ratio to (1). Messages sent are read from the agent's own retained status.
//! 3. Agent peak RSS (`VmHWM`, read after `sync: drained`) with backlogs of `RSS_SMALL` and
//!    `DRAIN_EVENTS` events, and with an empty outbox for reference.
//!
//! Run with `cargo bench -p outpost --bench sync`. Needs `/usr/sbin/mosquitto`. Each trial runs
//! (1), then the small and the large drain, so machine noise hits all alike; medians are shown.
//! Figures are wall-clock on a shared machine: compare ratios, not absolute values, across runs.

mod support;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::{Duration, Instant};

use outpost::config::{MqttSettings, SyncSettings};
use outpost::runtime::{Effects, OutboxEffect};
use outpost::store::{Commit, OutboxLimits, Store, committer};
use outpost::sync::batch::Planner;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use support::{cpu_model, load_average};

/// The mosquitto binary (Debian's package installs it here).
const MOSQUITTO: &str = "/usr/sbin/mosquitto";
/// Device id of the agent under test.
const DEVICE: &str = "bench";
/// Stream every prefilled event goes to (one stream: batches are full).
const STREAM: &str = "readings";
/// Bytes of each raw message and of each event's payload.
const PAYLOAD_BYTES: usize = 100;
/// Section 1: messages per run.
const RAW_MESSAGES: usize = 50_000;
/// QoS 1 publishes awaiting PUBACK at once: rumqttc's default, which the agent's transport keeps
/// (`outpost_hal::mqtt::MqttConfig::inflight`).
const INFLIGHT: u16 = 100;
/// rumqttc request channel capacity, as the agent's transport (`MqttConfig::request_capacity`).
const REQUEST_CAPACITY: usize = 10;
/// Sections 2 and 3: the large backlog (drain throughput and RSS) and the small one (RSS).
const DRAIN_EVENTS: usize = 100_000;
const RSS_SMALL: usize = 10_000;
/// Trials of each measurement, interleaved.
const TRIALS: usize = 5;
/// Events per prefill transaction.
const PREFILL_CHUNK: usize = 1_000;
/// The agent's status period here: short, so the count of messages it sent is read soon after
/// the drain (one small retained publish every period; the drain is timed before it is read).
const STATUS_EVERY: &str = "200ms";
/// Safety nets only; every wait is for an event (a log line, an output line, a message).
const START_TIMEOUT: Duration = Duration::from_secs(20);
const DRAIN_TIMEOUT: Duration = Duration::from_secs(120);
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Targets.
const TARGET_DRAIN_RATIO: f64 = 1.0;
const TARGET_RSS_GROWTH_KIB: i64 = 2 * 1024;

fn main() {
    println!(
        "outpost sync benchmark ({} cores, {}, mosquitto {}, load average {})",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model(),
        mosquitto_version(),
        load_average()
    );
    let broker = Broker::start();
    let work = tempfile::tempdir().expect("temp dir");
    let small = prefill(&work.path().join("template-small"), RSS_SMALL);
    let large = prefill(&work.path().join("template-large"), DRAIN_EVENTS);
    let empty = prefill(&work.path().join("template-empty"), 0);
    let per_event = wire_bytes_per_event(&large);

    // Warm-up (page cache, the binary, the broker's allocator), not reported.
    raw_publish(broker.port(), RAW_MESSAGES / 5);
    drain(&broker, &small, RSS_SMALL, work.path());

    let mut raw = Vec::new();
    let mut drains_small = Vec::new();
    let mut drains_large = Vec::new();
    for _ in 0..TRIALS {
        raw.push(raw_publish(broker.port(), RAW_MESSAGES));
        drains_small.push(drain(&broker, &small, RSS_SMALL, work.path()));
        drains_large.push(drain(&broker, &large, DRAIN_EVENTS, work.path()));
    }
    let idle = drain(&broker, &empty, 0, work.path());

    // --- Report.
    let raw_rate = median(raw.iter().map(|r| r.rate()).collect());
    let drain_rate = median(drains_large.iter().map(|d| d.rate()).collect());
    let drain_rate_connected = median(drains_large.iter().map(|d| d.rate_connected()).collect());
    let d = &drains_large[0];
    let ratio = drain_rate / raw_rate;
    println!();
    println!(
        "QoS 1 to mosquitto on loopback, {PAYLOAD_BYTES}-byte payloads, in-flight {INFLIGHT}, medians of {TRIALS} runs"
    );
    println!(
        "  raw rumqttc publish  {:>9.0} msg/s     ({RAW_MESSAGES} msgs, runs {})",
        raw_rate,
        runs(&raw.iter().map(|r| r.rate()).collect::<Vec<_>>())
    );
    println!(
        "  agent drain          {:>9.0} events/s  ({DRAIN_EVENTS} events, spawn→drained, runs {}; {:.0} events/s from connect)",
        drain_rate,
        runs(&drains_large.iter().map(|d| d.rate()).collect::<Vec<_>>()),
        drain_rate_connected,
    );
    println!(
        "    {} messages, {:.1} events/message, ~{per_event} wire bytes/event (JSON), start→connected {:.1} ms",
        d.messages
            .map_or_else(|| "? (status not read)".into(), |m| m.to_string()),
        d.messages
            .map_or(f64::NAN, |m| DRAIN_EVENTS as f64 / m.max(1) as f64),
        median(
            drains_large
                .iter()
                .map(|d| d.connected.as_secs_f64() * 1e3)
                .collect()
        ),
    );
    println!(
        "  drain / raw          {ratio:>9.2}x     target >= {TARGET_DRAIN_RATIO:.1}x  {}",
        verdict(ratio >= TARGET_DRAIN_RATIO)
    );
    println!();
    let hwm = |ds: &[DrainRun]| median(ds.iter().map(|d| d.hwm_kib as f64).collect()) as i64;
    let (hwm_idle, hwm_small, hwm_large) = (idle.hwm_kib, hwm(&drains_small), hwm(&drains_large));
    let growth = hwm_large - hwm_small;
    println!("agent peak RSS (VmHWM after `sync: drained`)");
    println!("  empty outbox         {:>9}", mib(hwm_idle));
    println!(
        "  {RSS_SMALL:>7} events       {:>9}   (runs {})",
        mib(hwm_small),
        kib_runs(&drains_small)
    );
    println!(
        "  {DRAIN_EVENTS:>7} events       {:>9}   (runs {})",
        mib(hwm_large),
        kib_runs(&drains_large)
    );
    println!(
        "  growth {RSS_SMALL} → {DRAIN_EVENTS} {:>+8.2} MiB   target <= {:.0} MiB  {}",
        growth as f64 / 1024.0,
        TARGET_RSS_GROWTH_KIB as f64 / 1024.0,
        verdict(growth <= TARGET_RSS_GROWTH_KIB)
    );
}

// ---------------------------------------------------------------------------------------------
// 1. Raw rumqttc QoS 1 publishing.

struct RawRun {
    messages: usize,
    elapsed: Duration,
}

impl RawRun {
    fn rate(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64()
    }
}

/// Publishes `count` messages from one client and waits for every PUBACK, on a current-thread
/// runtime like the agent's. Timed from the first publish to the last PUBACK.
fn raw_publish(port: u16, count: usize) -> RawRun {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        let mut options =
            MqttOptions::new(format!("raw-{}", std::process::id()), "127.0.0.1", port);
        options
            .set_keep_alive(Duration::from_secs(30))
            .set_clean_session(true)
            .set_max_packet_size(256 * 1024, 256 * 1024)
            .set_inflight(INFLIGHT);
        let (client, mut eventloop) = AsyncClient::new(options, REQUEST_CAPACITY);
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => break,
                Ok(_) => {}
                Err(error) => panic!("raw client cannot connect: {error}"),
            }
        }
        let topic = format!("outpost/raw-{DEVICE}/events/{STREAM}");
        let payload = vec![b'x'; PAYLOAD_BYTES];
        let started = Instant::now();
        let publisher = tokio::spawn(async move {
            for _ in 0..count {
                client
                    .publish(topic.as_str(), QoS::AtLeastOnce, false, payload.clone())
                    .await
                    .expect("publish queued");
            }
            client
        });
        let mut acked = 0;
        while acked < count {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
                Ok(_) => {}
                Err(error) => panic!("raw client lost the broker after {acked} acks: {error}"),
            }
        }
        let elapsed = started.elapsed();
        let client = publisher.await.expect("publisher task");
        let _ = client.disconnect().await;
        // Let the DISCONNECT go out (ends with an error once the broker closes the socket).
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while eventloop.poll().await.is_ok() {}
        })
        .await;
        RawRun {
            messages: count,
            elapsed,
        }
    })
}

// ---------------------------------------------------------------------------------------------
// 2 and 3. The real agent draining a prefilled outbox.

struct DrainRun {
    events: usize,
    /// Spawn → `sync: drained`.
    elapsed: Duration,
    /// Spawn → `sync: connected`.
    connected: Duration,
    /// Messages the agent published (its status's `sync.published`).
    messages: Option<u64>,
    /// Peak resident set (VmHWM), KiB.
    hwm_kib: i64,
}

impl DrainRun {
    fn rate(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }

    fn rate_connected(&self) -> f64 {
        self.events as f64 / (self.elapsed - self.connected).as_secs_f64()
    }
}

/// A prefilled data directory to copy from.
struct Template {
    dir: PathBuf,
}

/// Commits `count` events of `PAYLOAD_BYTES`-byte JSON payloads into `dir` through the library
/// (the group committer, `PREFILL_CHUNK` per transaction), as an app would have.
fn prefill(dir: &Path, count: usize) -> Template {
    let store = Store::open_dir(dir).expect("state opens");
    let (committer, thread) = committer::spawn(store.clone(), OutboxLimits::default());
    let mut i = 0;
    while i < count {
        let end = (i + PREFILL_CHUNK).min(count);
        let records = (i..end)
            .map(|n| OutboxEffect::Event {
                stream: STREAM.into(),
                data: payload(n),
            })
            .collect();
        committer
            .commit_blocking(Commit {
                app: "bench".into(),
                component: "gen".into(),
                time_ms: 1_767_225_600_000 + i as i64,
                effects: std::sync::Arc::new(Effects {
                    records,
                    ..Default::default()
                }),
                trigger_run: None,
                inbox_done: None,
                failed: false,
            })
            .unwrap_or_else(|e| panic!("prefill commit at {i}: {e}"));
        i = end;
    }
    drop(committer);
    thread.join();
    let records = store.counters().expect("counters").outbox_records;
    assert_eq!(records, count as u64, "prefill left {records} rows");
    Template {
        dir: dir.to_path_buf(),
    }
}

/// A JSON object of exactly `PAYLOAD_BYTES` bytes (embedded as JSON on the wire).
fn payload(n: usize) -> Vec<u8> {
    let head = format!("{{\"i\":{n},\"pad\":\"");
    let pad = PAYLOAD_BYTES - head.len() - 2;
    format!("{head}{}\"}}", "x".repeat(pad)).into_bytes()
}

/// Wire bytes per event of a full batch, planned exactly as the agent does with its defaults.
fn wire_bytes_per_event(template: &Template) -> usize {
    let store = Store::open_dir(&template.dir).expect("template opens");
    let sync = SyncSettings::default();
    let planner = Planner {
        device: DEVICE.into(),
        // A random 128-bit id in hex, as a store's incarnation is.
        incarnation: "0".repeat(32),
        prefix: MqttSettings::new(String::new()).topic_prefix,
        format: sync.wire,
        max_events: sync.batch_max_events,
        max_packet_bytes: MqttSettings::new(String::new()).max_packet_bytes,
    };
    let rows = store
        .outbox_read(0, sync.batch_max_events)
        .expect("outbox reads");
    let (messages, _) = planner.plan(&rows);
    let bytes: usize = messages.iter().map(|m| m.payload.len()).sum();
    bytes / rows.len().max(1)
}

/// Copies `template` to a fresh data directory, runs the agent on it until `sync: drained`,
/// reads its peak RSS and the messages it sent, stops it with SIGTERM and checks the outbox is
/// empty.
fn drain(broker: &Broker, template: &Template, events: usize, work: &Path) -> DrainRun {
    let data = tempfile::tempdir_in(work).expect("data dir");
    for entry in std::fs::read_dir(&template.dir).expect("template dir") {
        let entry = entry.expect("template entry");
        std::fs::copy(entry.path(), data.path().join(entry.file_name())).expect("copy template");
    }
    let started = Instant::now();
    let mut agent = AgentProcess::spawn(broker, data.path());
    let connected = agent.wait_line("sync: connected", DRAIN_TIMEOUT);
    let drained = agent.wait_line("sync: drained", DRAIN_TIMEOUT);
    let (Some(connected), Some(drained)) = (connected, drained) else {
        panic!(
            "agent did not drain {events} events within {DRAIN_TIMEOUT:?}; output tail:\n{}",
            agent.output.tail(20)
        );
    };
    let hwm_kib = proc_status_kib(agent.pid, "VmHWM:").expect("VmHWM of the agent");
    let messages = published_count(broker.port(), events);
    agent.terminate();
    let store = Store::open_dir(data.path()).expect("agent state opens");
    let left = store.counters().expect("counters").outbox_records;
    assert_eq!(
        left, 0,
        "{left} rows left in the outbox after `sync: drained`"
    );
    assert!(
        store.outbox_read(0, 1).expect("outbox reads").is_empty(),
        "outbox rows left"
    );
    DrainRun {
        events,
        elapsed: drained - started,
        connected: connected - started,
        messages,
        hwm_kib,
    }
}

/// The `sync.published` of the agent's retained status once it reports `acked_rows >= events`
/// (the status is refreshed every `STATUS_EVERY`). `None` if none arrives in time.
fn published_count(port: u16, events: usize) -> Option<u64> {
    let mut options = MqttOptions::new(format!("status-{}", std::process::id()), "127.0.0.1", port);
    options
        .set_clean_session(true)
        .set_max_packet_size(256 * 1024, 256 * 1024);
    let (client, mut connection) = rumqttc::Client::new(options, 10);
    client
        .subscribe(format!("outpost/{DEVICE}/status"), QoS::AtMostOnce)
        .expect("subscribe queued");
    let deadline = Instant::now() + START_TIMEOUT;
    let mut found = None;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match connection.recv_timeout(left) {
            Ok(Ok(Event::Incoming(Packet::Publish(publish)))) => {
                let Ok(status) = serde_json::from_slice::<serde_json::Value>(&publish.payload)
                else {
                    continue;
                };
                let sync = &status["sync"];
                if sync["acked_rows"].as_u64().unwrap_or(0) >= events as u64 {
                    found = sync["published"].as_u64();
                    break;
                }
            }
            Ok(Ok(_)) => {}
            Ok(Err(_)) | Err(_) => break,
        }
    }
    let _ = client.disconnect();
    for notification in connection.iter().take(16) {
        if notification.is_err() {
            break;
        }
    }
    found
}

/// The real `outpost agent` process, its output lines timestamped as they are read.
struct AgentProcess {
    pid: u32,
    child: Option<Child>,
    output: Arc<Output>,
}

impl AgentProcess {
    fn spawn(broker: &Broker, data: &Path) -> AgentProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_outpost"))
            .args(["agent", "--device-id", DEVICE, "--broker"])
            .arg(format!("mqtt://127.0.0.1:{}", broker.port()))
            .arg("--data")
            .arg(data)
            .args(["--status-every", STATUS_EVERY])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("outpost agent starts");
        let output = Arc::new(Output::default());
        read_lines(child.stdout.take().expect("stdout"), "", output.clone());
        read_lines(
            child.stderr.take().expect("stderr"),
            "[stderr] ",
            output.clone(),
        );
        AgentProcess {
            pid: child.id(),
            child: Some(child),
            output,
        }
    }

    /// When the first line containing `needle` was read, waiting up to `timeout` for it.
    fn wait_line(&self, needle: &str, timeout: Duration) -> Option<Instant> {
        self.output
            .wait(timeout, |line| line.contains(needle))
            .map(|(at, _)| at)
    }

    /// SIGTERM, then waits for the exit (SIGKILL and a panic after `STOP_TIMEOUT`).
    fn terminate(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        signal(self.pid, "TERM");
        let (done, watchdog) = mpsc::channel::<()>();
        let pid = self.pid;
        let guard = std::thread::spawn(move || {
            if watchdog.recv_timeout(STOP_TIMEOUT) == Err(mpsc::RecvTimeoutError::Timeout) {
                signal(pid, "KILL");
                return true;
            }
            false
        });
        let status = child.wait().expect("agent reaped");
        let _ = done.send(());
        assert!(
            !guard.join().unwrap_or(false),
            "agent did not exit within {STOP_TIMEOUT:?} of SIGTERM; output tail:\n{}",
            self.output.tail(20)
        );
        assert!(
            status.success(),
            "agent exited with {status}; output tail:\n{}",
            self.output.tail(20)
        );
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `NAME: <n> kB` from /proc/PID/status.
fn proc_status_kib(pid: u32, name: &str) -> Option<i64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with(name))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

// ---------------------------------------------------------------------------------------------
// The broker.

/// A mosquitto on a free loopback port, configured so it is never the bottleneck: no
/// persistence, no per-packet logging, no queue or in-flight limits (packet size is unlimited by
/// default), TCP_NODELAY. Readiness is its "running" log line.
struct Broker {
    port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Broker {
    fn start() -> Broker {
        let dir = tempfile::tempdir().expect("temp dir for mosquitto");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind a loopback port")
            .port();
        let mut conf = format!(
            "listener {port} 127.0.0.1\n\
             allow_anonymous true\n\
             persistence false\n\
             set_tcp_nodelay true\n\
             max_inflight_messages 0\n\
             max_queued_messages 0\n\
             max_queued_bytes 0\n\
             connection_messages false\n\
             log_dest stderr\n\
             log_type error\n\
             log_type warning\n\
             log_type notice\n\
             log_type information\n"
        );
        // As root, mosquitto 2 switches to user `mosquitto` unless told otherwise.
        if running_as_root() {
            conf.push_str("user root\n");
        }
        let path = dir.path().join("mosquitto.conf");
        std::fs::write(&path, conf).expect("write mosquitto.conf");
        let mut child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {MOSQUITTO}: {e} (apt-get install mosquitto)")
            });
        let log = Arc::new(Output::default());
        read_lines(child.stderr.take().expect("stderr"), "", log.clone());
        let ready = log.wait(START_TIMEOUT, |line| {
            line.ends_with(" running") || line == END_OF_OUTPUT
        });
        match ready {
            Some((_, line)) if line != END_OF_OUTPUT => {}
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("mosquitto did not start; log:\n{}", log.tail(20));
            }
        }
        Broker {
            port,
            child,
            _dir: dir,
        }
    }

    fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Output lines of a child process, waited for as events.

/// Marker appended when the stream closes (the process ended).
const END_OF_OUTPUT: &str = "<end of output>";
/// Lines kept (older ones are dropped; waits only look for recent lines).
const LINES_KEPT: usize = 1000;

#[derive(Default)]
struct Output {
    lines: Mutex<VecDeque<(Instant, String)>>,
    changed: Condvar,
}

impl Output {
    fn push(&self, line: String) {
        let mut lines = self.lines.lock().expect("lines");
        lines.push_back((Instant::now(), line));
        if lines.len() > LINES_KEPT {
            lines.pop_front();
        }
        self.changed.notify_all();
    }

    /// The first kept line satisfying `pred` and when it was read, waiting up to `timeout`.
    fn wait(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Option<(Instant, String)> {
        let deadline = Instant::now() + timeout;
        let mut lines = self.lines.lock().expect("lines");
        loop {
            if let Some((at, line)) = lines.iter().find(|(_, l)| pred(l)) {
                return Some((*at, line.clone()));
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            lines = self.changed.wait_timeout(lines, left).expect("lines").0;
        }
    }

    fn tail(&self, n: usize) -> String {
        let lines = self.lines.lock().expect("lines");
        let skip = lines.len().saturating_sub(n);
        lines
            .iter()
            .skip(skip)
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn read_lines(stream: impl Read + Send + 'static, prefix: &'static str, output: Arc<Output>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            output.push(format!("{prefix}{line}"));
        }
        output.push(END_OF_OUTPUT.to_string());
    });
}

/// Sends `kill -SIG pid` (no libc needed).
fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

// ---------------------------------------------------------------------------------------------
// Reporting.

fn median(mut values: Vec<f64>) -> f64 {
    assert!(!values.is_empty(), "no samples");
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn runs(rates: &[f64]) -> String {
    rates
        .iter()
        .map(|r| format!("{r:.0}"))
        .collect::<Vec<_>>()
        .join(" / ")
}

fn kib_runs(drains: &[DrainRun]) -> String {
    drains
        .iter()
        .map(|d| format!("{} KiB", d.hwm_kib))
        .collect::<Vec<_>>()
        .join(" / ")
}

fn mib(kib: i64) -> String {
    format!("{:.2} MiB", kib as f64 / 1024.0)
}

fn verdict(pass: bool) -> &'static str {
    if pass { "PASS" } else { "FAIL" }
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn mosquitto_version() -> String {
    Command::new(MOSQUITTO)
        .arg("-h")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(2).map(str::to_string))
        })
        .unwrap_or_else(|| "?".into())
}
