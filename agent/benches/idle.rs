//! Idle and schedule benchmarks: how often the real `outpost agent` wakes up, next to a plain
//! MQTT client measured in the same run against the same broker, and how well a fast interval
//! trigger holds its schedule.
//!
//! A wake-up is a voluntary context switch: a thread of the process went to sleep (waiting on a
//! timer, a socket, a lock or the disk) and was woken again. Each thread's
//! `voluntary_ctxt_switches` (`/proc/PID/task/TID/status`) is sampled every `SAMPLE` and the
//! increments summed, so short-lived threads (tokio's blocking pool) count too; what a thread
//! does between its last sample and its exit is lost (at most one sample period of it).
//!
//! 1. Idle: an agent with an app whose only trigger is not due (interval 24 h), connected with
//!    the default settings (60 s keepalive, default status interval), waited on until connected
//!    and quiet, then sampled for `IDLE`. Beside it, over the same window, the baselines: a plain
//!    rumqttc client with the same 60 s keepalive, subscribed to one topic (on a thread of this
//!    bench with its own current-thread runtime, like the agent's; that thread is counted), and
//!    `mosquitto_sub -k 60` (libmosquitto's loop wakes every second whatever the keepalive).
//!    Target: <= 0.05 wake-ups/s.
//! 2. Per invocation: an agent running an app with a 2 s interval trigger that emits one event
//!    (committed, published, acknowledged); wake-ups between its first and its
//!    `1 + INVOCATIONS`th `Invoked` event, per invocation, and net of the idle rate. Target: <= 5.
//! 3. Schedule: an app with a 10 ms interval trigger emitting one event, run for `SCHEDULE`;
//!    committed invocations/s next to the scheduled 100/s, and the late runs, max lateness and
//!    skipped runs the agent's status reports.
//!
//! Run with `cargo bench -p outpost --bench idle` (about 2 minutes). Needs `/usr/sbin/mosquitto`
//! and `mosquitto_sub`. The agents' state lives in a temporary directory under
//! `OUTPOST_BENCH_DIR` if set (e.g. an ext4 mount of an SD card or loop device, where fsync costs
//! what it costs on a device), else under the system's temporary directory. Figures from a shared machine: others' work wakes nothing here, but it
//! delays the agent's threads (more invocations queue up, fewer wake-ups per invocation).

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use outpost::events::AgentEvent;
use outpost_testkit::agent::Agent;
use outpost_testkit::broker::{Broker, mosquitto_version};
use outpost_testkit::guests::render;
use outpost_testkit::s;
use outpost_testkit::subscriber::fetch_status;
use support::{cpu_model, load_average};

/// The `outpost` binary under test.
const OUTPOST: &str = env!("CARGO_BIN_EXE_outpost");
/// How often each thread's counter is read.
const SAMPLE: Duration = Duration::from_millis(500);
/// Section 1's window (quiet, connected).
const IDLE: Duration = Duration::from_secs(60);
/// Before the idle window: the agent's start-up work (first status, blocking threads that
/// linger 10 s after their last task) is over.
const SETTLE: Duration = Duration::from_secs(12);
/// Section 2: invocations counted, and the trigger's period.
const INVOCATIONS: usize = 10;
const EVERY: &str = "2s";
/// Section 3: how long the 10 ms trigger runs.
const SCHEDULE: Duration = Duration::from_secs(10);
/// Safety net for every wait on an event.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Targets (issue 12).
const TARGET_IDLE_PER_S: f64 = 0.05;
const TARGET_PER_INVOCATION: f64 = 5.0;

fn main() {
    println!(
        "outpost idle benchmark ({} cores, {}, mosquitto {}, load average {})",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model(),
        mosquitto_version(),
        load_average(),
    );
    let broker = Broker::start();
    let work = match std::env::var_os("OUTPOST_BENCH_DIR") {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir(),
    }
    .expect("temp dir");
    println!("state in {}", work.path().display());

    // --- 1. Idle, beside a plain client.
    let idle_app = app(work.path(), "idle", "24h");
    let agent = start_agent(&broker, work.path(), "idle", &idle_app);
    let mut baseline = MqttSub::start(broker.port());
    let plain = plain_client(broker.port());
    std::thread::sleep(SETTLE);
    let mut agent_counter = Wakeups::new(agent.pid());
    let mut sub_counter = Wakeups::new(baseline.pid());
    let mut plain_counter = Wakeups::thread(std::process::id(), plain);
    let started = Instant::now();
    while started.elapsed() < IDLE {
        std::thread::sleep(SAMPLE);
        agent_counter.sample();
        sub_counter.sample();
        plain_counter.sample();
    }
    let window = started.elapsed().as_secs_f64();
    let agent_idle = agent_counter.total as f64 / window;
    let sub_idle = sub_counter.total as f64 / window;
    let plain_idle = plain_counter.total as f64 / window;
    let agent_threads = agent_counter.by_thread();
    drop(agent);
    baseline.stop();

    // --- 2. Per invocation.
    let tick_app = app(work.path(), "tick", EVERY);
    let agent = start_agent(&broker, work.path(), "tick", &tick_app);
    let invoked = |e: &AgentEvent| matches!(e, AgentEvent::Invoked { ok: true, .. });
    assert!(
        agent.wait_event(invoked, 1, TIMEOUT),
        "no first invocation\n{}",
        agent.output_tail(20)
    );
    let mut counter = Wakeups::new(agent.pid());
    let started = Instant::now();
    while agent.count_events(invoked) < 1 + INVOCATIONS {
        assert!(started.elapsed() < TIMEOUT * 2, "invocations stopped");
        std::thread::sleep(SAMPLE / 5);
        counter.sample();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let per_invocation = counter.total as f64 / INVOCATIONS as f64;
    let net = (counter.total as f64 - agent_idle * elapsed) / INVOCATIONS as f64;
    let tick_threads = counter.by_thread();
    drop(agent);

    // --- 3. Schedule of a 10 ms interval trigger, in each durability mode.
    let fast_app = app(work.path(), "fast", "10ms");
    let schedule = |device: &str, durability: &str| {
        // A short status interval, so the status read below is at most a second old.
        let mut agent = start_agent_with(
            &broker,
            work.path(),
            device,
            &fast_app,
            &["--status-every", "1s", "--durability", durability],
        );
        assert!(agent.wait_event(invoked, 1, TIMEOUT), "no first invocation");
        let first = agent.count_events(invoked);
        std::thread::sleep(SCHEDULE);
        let ran = agent.count_events(invoked) - first;
        let rate = ran as f64 / SCHEDULE.as_secs_f64();
        std::thread::sleep(Duration::from_millis(1500));
        let status = fetch_status(broker.port(), "outpost", device);
        agent.terminate();
        (rate, status)
    };
    let schedules = [
        ("immediate", schedule("fast", "immediate")),
        ("window 1s", schedule("fast-window", "1s")),
    ];

    // --- Report.
    println!();
    println!(
        "idle, connected, nothing due ({:.0} s, 60 s keepalive, default status interval)",
        window
    );
    println!(
        "  outpost agent            {agent_idle:>7.3} wake-ups/s   target <= {TARGET_IDLE_PER_S}  {}",
        verdict(agent_idle <= TARGET_IDLE_PER_S)
    );
    println!(
        "  plain rumqttc client     {plain_idle:>7.3} wake-ups/s   (baseline, same window, keepalive 60 s)"
    );
    println!(
        "  mosquitto_sub -k 60      {sub_idle:>7.3} wake-ups/s   (same window; its loop polls every second)"
    );
    println!("    agent by thread: {agent_threads}");
    println!();
    println!("interval trigger every {EVERY}, one event each (commit, publish, PUBACK)");
    println!(
        "  outpost agent            {per_invocation:>7.1} wake-ups/invocation ({net:.1} net of idle)   target <= {TARGET_PER_INVOCATION}  {}",
        verdict(per_invocation <= TARGET_PER_INVOCATION)
    );
    println!("    by thread: {tick_threads}");
    println!();
    for (mode, (rate, status)) in &schedules {
        println!(
            "interval trigger every 10 ms, one event each, {mode} durability ({:.0} s)",
            SCHEDULE.as_secs_f64()
        );
        println!("  scheduled                {:>7.1} invocations/s", 100.0);
        println!(
            "  committed                {rate:>7.1} invocations/s   target >= 95 in window mode"
        );
        match status {
            Some(status) => println!(
                "    status: late_runs {} (max {} ms late), skipped_runs {}",
                status["schedule"]["late_runs"],
                status["schedule"]["max_late_ms"],
                status["skipped_runs"],
            ),
            None => println!("    status: none retained"),
        }
    }
}

/// An app dir with one component emitting one event per run of an interval trigger.
fn app(work: &Path, name: &str, every: &str) -> std::path::PathBuf {
    let dir = work.join(format!("app-{name}"));
    std::fs::create_dir_all(&dir).expect("app dir");
    let manifest = format!(
        r#"manifest_version = 1
[app]
name = "{name}"
version = "1.0.0"
[[component]]
id = "counter"
source = "{{wat:counter}}"
grants = {{ streams = ["count"] }}
[[component.trigger]]
name = "every"
interval = "{every}"
"#
    );
    std::fs::write(dir.join("outpost.toml"), render(&manifest, &dir)).expect("manifest");
    dir
}

/// `outpost agent` on `app` with default settings (keepalive, status interval) but a fast
/// first reconnect; returns once it is connected.
fn start_agent(broker: &Broker, work: &Path, device: &str, app: &Path) -> Agent {
    start_agent_with(broker, work, device, app, &[])
}

/// [`start_agent`] with `extra` flags.
fn start_agent_with(
    broker: &Broker,
    work: &Path,
    device: &str,
    app: &Path,
    extra: &[&str],
) -> Agent {
    let data = work.join(format!("data-{device}"));
    let url = broker.url();
    let args = [
        "--device-id",
        device,
        "--broker",
        &url,
        "--data",
        s(&data),
        "--app",
        s(app),
        "--reconnect-min",
        "20ms",
    ];
    let args: Vec<&str> = args.iter().chain(extra).copied().collect();
    let agent = Agent::spawn(OUTPOST, &args);
    assert!(
        agent.wait_event(|e| matches!(e, AgentEvent::Connected), 1, TIMEOUT),
        "agent did not connect\n{}",
        agent.output_tail(20)
    );
    agent
}

/// Voluntary context switches of every thread of a process (or of one thread), summed over
/// samples.
struct Wakeups {
    pid: u32,
    /// Only this thread, if set.
    only: Option<u32>,
    /// Each thread's count at its last sample, and its name.
    seen: BTreeMap<u32, (u64, String)>,
    /// Increments per thread name.
    per_name: BTreeMap<String, u64>,
    total: u64,
}

impl Wakeups {
    fn new(pid: u32) -> Wakeups {
        Wakeups::counting(pid, None)
    }

    fn thread(pid: u32, tid: u32) -> Wakeups {
        Wakeups::counting(pid, Some(tid))
    }

    fn counting(pid: u32, only: Option<u32>) -> Wakeups {
        let mut w = Wakeups {
            pid,
            only,
            seen: BTreeMap::new(),
            per_name: BTreeMap::new(),
            total: 0,
        };
        w.sample();
        w.per_name.clear();
        w.total = 0;
        w
    }

    /// Adds every thread's increase since the last sample (a new thread's whole count).
    fn sample(&mut self) {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", self.pid)) else {
            return;
        };
        for task in tasks.flatten() {
            let Ok(tid) = task.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if self.only.is_some_and(|only| only != tid) {
                continue;
            }
            let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
                continue;
            };
            let field = |key: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(key))
                    .map(|v| v.trim().to_string())
            };
            let count: u64 = field("voluntary_ctxt_switches:")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let name = field("Name:").unwrap_or_default();
            let before = self.seen.get(&tid).map_or(0, |(c, _)| *c);
            let delta = count.saturating_sub(before);
            self.total += delta;
            *self.per_name.entry(name.clone()).or_default() += delta;
            self.seen.insert(tid, (count, name));
        }
    }

    fn by_thread(&self) -> String {
        self.per_name
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(name, n)| format!("{name} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The baseline: a plain rumqttc client (keepalive 60 s, subscribed to one topic) on a thread of
/// this process with a current-thread runtime; returns that thread's id once it is subscribed.
/// The thread runs until the bench exits.
fn plain_client(port: u16) -> u32 {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        runtime.block_on(async move {
            let mut options = MqttOptions::new("bench-plain", "127.0.0.1", port);
            options.set_keep_alive(Duration::from_secs(60));
            let (client, mut eventloop) = AsyncClient::new(options, 10);
            client
                .subscribe("bench/plain", QoS::AtLeastOnce)
                .await
                .expect("subscribe queued");
            let tid = std::fs::read_link("/proc/thread-self")
                .ok()
                .and_then(|p| p.file_name()?.to_str()?.parse::<u32>().ok())
                .expect("this thread's id");
            let mut told = false;
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::SubAck(_))) if !told => {
                        told = true;
                        let _ = tx.send(tid);
                    }
                    Ok(_) => {}
                    // The broker stops at the end of the bench.
                    Err(_) => return,
                }
            }
        });
    });
    rx.recv_timeout(TIMEOUT)
        .expect("the plain client subscribed")
}

/// The other baseline: `mosquitto_sub -k 60` subscribed to one topic.
struct MqttSub {
    child: Child,
}

impl MqttSub {
    fn start(port: u16) -> MqttSub {
        let child = Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-k", "60"])
            .args(["-t", "bench/baseline", "-q", "1"])
            .stdout(Stdio::null())
            .spawn()
            .expect("mosquitto_sub starts (apt install mosquitto-clients)");
        MqttSub { child }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "MISSED" }
}
