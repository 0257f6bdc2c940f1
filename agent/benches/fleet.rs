//! Fleet update benchmark: the time from `outpost fleet publish` to the device running the new
//! version, and the bytes that reach the device for it, for a 256 KiB bundle on loopback.
//!
//! Everything is the real thing, as in `tests/fleet.rs`, through the test kit (`tests/kit/`):
//! mosquitto on a free loopback port (`broker`: persistence on, autosave every second, `-v`), the
//! `outpost` binary for `keygen`, `bundle build` and `fleet publish` (straight to the broker), and
//! an `outpost agent` connected through a counting TCP proxy (`proxy`), so every byte the broker
//! sends the device is counted.
//!
//! Two setups run side by side, rounds interleaved: the test broker as is (mosquitto's default
//! `set_tcp_nodelay false`: Nagle on), and the same with `set_tcp_nodelay true`. In each:
//! 1. `beacon` 1.0.0 is installed and confirmed (not timed).
//! 2. Each round k in `ROUNDS` publishes `beacon` k.0.0, a bundle of exactly `BUNDLE_BYTES`
//!    (tests/guests/beacon.wat padded with a custom section), and times spawn of `fleet publish`
//!    → the agent's `FleetRunning` event for k.0.0 (in its health window). The agent's own events
//!    (`FleetFetching`, `FleetVerifying`, the `accepted` report) split the device side; the proxy's
//!    downstream counter gives the wire bytes, and the `accepted` report on
//!    `outpost/bench/updates` the chunk payload bytes (`bytes_received`). The round ends when the
//!    version is confirmed (its health window passed), so rounds do not overlap.
//! 3. Baseline, in each round right after it: the same bundle bytes, cut in the same chunks,
//!    published retained at QoS 1 with the same in-flight window by a plain rumqttc client that is
//!    already connected, then fetched by a plain rumqttc subscriber (already connected, through
//!    its own proxy) subscribing to them: the transport alone, pulled as the device pulls.
//! 4. CPU: the agent's and the broker's CPU time (/proc/PID/stat) from the spawn of `fleet
//!    publish` to the `accepted` report, next to the agent's CPU time over as long a window
//!    right after the update (running its app): what one update costs a device, the figure the
//!    fleet-scale target (1,000 devices on one broker) is made of.
//!
//! Run with `cargo bench -p outpost --bench fleet` (~20 s). Needs `/usr/sbin/mosquitto`. Figures
//! are wall-clock on a shared machine: the header prints the load average.

mod support;

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use outpost::events::AgentEvent;
use outpost_testkit::agent::{Agent, proc_cpu_time};
use outpost_testkit::beacon::Beacon;
use outpost_testkit::broker::{Broker, MOSQUITTO};
use outpost_testkit::fleet::Cli;
use outpost_testkit::proxy::Proxy;
use outpost_testkit::s;
use outpost_testkit::subscriber::Subscriber;
use rumqttc::{Client, Connection, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use support::{cpu_model, load_average};

/// The `outpost` binary under test.
const OUTPOST: &str = env!("CARGO_BIN_EXE_outpost");

/// Device id of the agent under test.
const DEVICE: &str = "bench";
/// The fleet group it follows.
const GROUP: &str = "field";
/// Exact size of every bundle published.
const BUNDLE_BYTES: u64 = 256 * 1024;
/// `fleet publish`'s default chunk size (the baseline cuts the bundle the same way).
const CHUNK_BYTES: usize = 32 * 1024;
/// `fleet publish`'s in-flight window (the baseline publisher uses the same).
const PUBLISH_WINDOW: u16 = 8;
/// Versions published after 1.0.0, one round each (single digits: every manifest, and so every
/// bundle, has the same length).
const ROUNDS: RangeInclusive<u32> = 2..=9;
/// Safety net for every wait; each wait is for an event (an output line, a message).
const WAIT: Duration = Duration::from_secs(60);

fn main() {
    println!(
        "outpost fleet update benchmark ({} cores, {}, load average {}, mosquitto at {})",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model(),
        load_average(),
        MOSQUITTO,
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let (key, public) = Cli::new(OUTPOST).keygen(dir.path(), "release");
    RELEASE_KEY.set(key.clone()).expect("set once");
    let bundles: Vec<(u32, PathBuf)> = std::iter::once(1)
        .chain(ROUNDS)
        .map(|k| (k, sized_bundle(dir.path(), &key, k)))
        .collect();

    let mut setups = [
        Setup::start(
            "mosquitto defaults (Nagle on)",
            Broker::start(),
            dir.path(),
            &public,
        ),
        Setup::start(
            "mosquitto set_tcp_nodelay true",
            Broker::start_with_listener(NODELAY_LISTENER),
            dir.path(),
            &public,
        ),
    ];
    for setup in &setups {
        setup.install_first(&bundles[0].1);
    }
    // Rounds interleaved between the setups, so machine noise hits both alike.
    for (k, bundle) in &bundles[1..] {
        for setup in &mut setups {
            setup.round(*k, bundle);
        }
    }
    for setup in &setups {
        summary(&setup.name, &setup.rounds);
    }
}

/// The second listener of the `set_tcp_nodelay` broker (`Broker::start_with_listener`): anonymous
/// like the first. `set_tcp_nodelay` is a global option, so both listeners get TCP_NODELAY; the
/// bench uses the first.
const NODELAY_LISTENER: &str = "allow_anonymous true\nset_tcp_nodelay true";

/// One broker configuration: its broker, the device on it (through a proxy), the baseline
/// clients (the subscriber through a second proxy), and the rounds measured so far.
struct Setup {
    /// The device under test (first, so it is dropped before its broker).
    agent: Agent,
    /// Label of the broker configuration in the output.
    name: String,
    /// The broker; `fleet publish` connects to it directly.
    broker: Broker,
    /// The device's link to the broker, counting bytes.
    device_link: Proxy,
    /// The baseline subscriber's link to the broker, counting bytes.
    baseline_link: Proxy,
    /// Update reports of the device, read straight on the broker (not through the device's
    /// proxy, so they do not count as device traffic).
    reports: Subscriber,
    /// The baseline's clients.
    plain: Plain,
    /// Each round and its baseline, in order.
    rounds: Vec<(Round, Baseline)>,
}

impl Setup {
    /// Starts the proxies, the report subscriber, the baseline clients and the agent (data in a
    /// fresh directory under `dir`, trusting `public`); returns once the agent is connected.
    fn start(name: &str, broker: Broker, dir: &Path, public: &Path) -> Setup {
        let device_link = Proxy::start(broker.port());
        let baseline_link = Proxy::start(broker.port());
        let reports = Subscriber::start_with(broker.port(), &[REPORTS_TOPIC]);
        let plain = Plain::connect(broker.port(), baseline_link.port());
        let data = dir.join(format!("device-{}", broker.port()));
        let agent = spawn_agent(&device_link.url(), &data, public);
        agent
            .wait_event_after(0, WAIT, |e| matches!(e, AgentEvent::Connected))
            .unwrap_or_else(|| panic!("agent did not connect:\n{}", agent.output_tail(20)));
        Setup {
            agent,
            name: name.to_string(),
            broker,
            device_link,
            baseline_link,
            reports,
            plain,
            rounds: Vec::new(),
        }
    }

    /// Publishes version 1.0.0 and waits until it runs and is confirmed (not timed).
    fn install_first(&self, bundle: &Path) {
        let mark = self.agent.mark();
        publish(bundle, &self.broker.url());
        self.agent
            .wait_event_after(mark, WAIT, |e| is_running(e, "1.0.0"))
            .unwrap_or_else(|| panic!("v1 did not start:\n{}", self.agent.output_tail(20)));
        wait_confirmed(&self.agent, mark, 1);
    }

    /// One timed update to `k.0.0`, then its baseline; prints and keeps both.
    fn round(&mut self, k: u32, bundle: &Path) {
        let round = update_round(
            &self.agent,
            &self.broker,
            &self.device_link,
            &self.reports,
            k,
            bundle,
        );
        let bytes = std::fs::read(bundle).expect("bundle");
        let baseline = self.plain.round(k, &bytes, &self.baseline_link);
        print!("[{}] ", self.name);
        print_round(&round, &baseline);
        self.rounds.push((round, baseline));
    }
}

// ---------------------------------------------------------------------------------------------
// Bundles.

/// Builds `beacon` `k.0.0` (mode `mK`) padded so the bundle is exactly `BUNDLE_BYTES`: one build
/// to measure the unpadded size, then the padding that fills the difference (checked).
fn sized_bundle(dir: &Path, key: &Path, k: u32) -> PathBuf {
    let mut padding = 0;
    for _ in 0..3 {
        let bundle = beacon_bundle(dir, key, k, padding);
        let size = std::fs::metadata(&bundle).expect("bundle").len();
        if size == BUNDLE_BYTES {
            return bundle;
        }
        let missing = BUNDLE_BYTES as i64 - size as i64;
        padding = usize::try_from(padding as i64 + missing).expect("bundle under the target");
    }
    panic!("cannot size the bundle of version {k} to {BUNDLE_BYTES} bytes");
}

/// Builds version `k.0.0` of the `beacon` app emitting `mK` every 100 ms (as the fleet tests
/// do), its module padded with `padding` bytes of a custom section.
fn beacon_bundle(dir: &Path, key: &Path, k: u32, padding: usize) -> PathBuf {
    let (version, mode) = (format!("{k}.0.0"), format!("m{k}"));
    Cli::new(OUTPOST).beacon_bundle(dir, key, &Beacon::new(&version, &mode).padded(padding))
}

// ---------------------------------------------------------------------------------------------
// One timed update.

/// What one update round measured; times are from the spawn of `fleet publish`.
struct Round {
    version: u32,
    /// `fleet publish` exited.
    publish: Duration,
    /// `FleetFetching` (the announcement reached the updater and its header checked out).
    fetching: Duration,
    /// `FleetVerifying` (every chunk stored).
    verifying: Duration,
    /// The `accepted` update report (verified, compiled, activated in one transaction).
    accepted: Duration,
    /// `FleetRunning` in the health window: the new version's scheduler started.
    running: Duration,
    /// Bytes the proxy forwarded broker → device from the spawn to the `FleetRunning` event.
    downstream: u64,
    /// … and device → broker.
    upstream: u64,
    /// `bytes_received` of the `accepted` report: chunk payload bytes stored.
    chunk_bytes: u64,
    /// CPU time the agent process used from the spawn to the `accepted` report on the broker.
    device_cpu: Duration,
    /// … and the broker.
    broker_cpu: Duration,
    /// Baseline: CPU time the agent used afterwards, running its app, over as long a time.
    device_cpu_running: Duration,
}

/// Publishes `beacon` `k.0.0` and waits until the device runs it, then until it is confirmed.
fn update_round(
    agent: &Agent,
    broker: &Broker,
    link: &Proxy,
    reports: &Subscriber,
    k: u32,
    bundle: &Path,
) -> Round {
    let version = format!("{k}.0.0");
    let mark = agent.mark();
    let (down, up) = (link.downstream_bytes(), link.upstream_bytes());
    let (device_cpu0, broker_cpu0) = (cpu_time(agent.pid()), cpu_time(broker.pid()));
    let started = Instant::now();
    publish(bundle, &broker.url());
    let published = started.elapsed();
    let running = agent.wait_event_after(mark, WAIT, |e| {
        is_running(e, &version) && matches!(e, AgentEvent::FleetRunning { on_trial: true, .. })
    });
    let (downstream, upstream) = (link.downstream_bytes() - down, link.upstream_bytes() - up);
    let Some((running, _)) = running else {
        panic!(
            "beacon {version} did not start; agent output:\n{}",
            agent.output_tail(30)
        );
    };
    let at = |pred: &dyn Fn(&AgentEvent) -> bool| {
        agent
            .wait_event_after(mark, WAIT, pred)
            .map_or(Duration::ZERO, |(t, _)| t - started)
    };
    let fetching = at(
        &|e| matches!(e, AgentEvent::FleetFetching { app, version: v, .. } if app == "beacon" && *v == version),
    );
    let verifying = at(
        &|e| matches!(e, AgentEvent::FleetVerifying { app, version: v } if app == "beacon" && *v == version),
    );
    let accepted = at(&|e| is_reported(e, "accepted", &version));
    let report = wait_report(reports, |r| {
        r["result"] == "accepted" && r["to_version"] == version.as_str()
    })
    .unwrap_or_else(|| panic!("no accepted report for {version}"));
    let update_wall = started.elapsed();
    let device_cpu = cpu_time(agent.pid()) - device_cpu0;
    let broker_cpu = cpu_time(broker.pid()) - broker_cpu0;
    assert_eq!(report["bundle_bytes"].as_u64(), Some(BUNDLE_BYTES));
    wait_confirmed(agent, mark, k);
    // The baseline: the same agent over as long a wall time once the update is behind it,
    // running its app (an invocation every 100 ms) and syncing its events, nothing else. The
    // sleep is the measuring window itself, not a wait for something to happen.
    let before = cpu_time(agent.pid());
    std::thread::sleep(update_wall);
    let device_cpu_running = cpu_time(agent.pid()) - before;
    Round {
        version: k,
        publish: published,
        fetching,
        verifying,
        accepted,
        running: running - started,
        downstream,
        upstream,
        chunk_bytes: report["bytes_received"].as_u64().unwrap_or(0),
        device_cpu,
        broker_cpu,
        device_cpu_running,
    }
}

/// CPU time process `pid` used so far (10 ms ticks: the summary adds up every round).
fn cpu_time(pid: u32) -> Duration {
    proc_cpu_time(&pid.to_string()).expect("/proc/PID/stat")
}

/// Waits for `beacon` `k.0.0` to pass its health window (10 invocations, ~1 s).
fn wait_confirmed(agent: &Agent, mark: u64, k: u32) {
    let version = format!("{k}.0.0");
    agent
        .wait_event_after(mark, WAIT, |e| is_reported(e, "confirmed", &version))
        .unwrap_or_else(|| {
            panic!(
                "beacon {k}.0.0 was not confirmed; agent output:\n{}",
                agent.output_tail(30)
            )
        });
}

/// Whether `event` says `beacon` `version` was started.
fn is_running(event: &AgentEvent, version: &str) -> bool {
    matches!(event, AgentEvent::FleetRunning { app, version: v, .. } if app == "beacon" && v == version)
}

/// Whether `event` is an update report `result` (`accepted`, `confirmed`, ...) of the update to
/// `version`.
fn is_reported(event: &AgentEvent, result: &str, version: &str) -> bool {
    matches!(event, AgentEvent::UpdateReported { app, result: r, to_version: Some(v), .. }
        if app == "beacon" && r == result && v == version)
}

// ---------------------------------------------------------------------------------------------
// The baseline: plain retained QoS 1 messages, pulled by a plain subscriber.

/// What one baseline round measured; times are from the first publish.
struct Baseline {
    /// Every chunk PUBACKed by the broker.
    published: Duration,
    /// Every chunk received by the subscriber.
    received: Duration,
    /// Bytes the proxy forwarded broker → subscriber.
    downstream: u64,
}

/// A publisher connected straight to the broker and a subscriber connected through a proxy,
/// both rumqttc sync clients whose events arrive on channels.
struct Plain {
    /// Publishes the chunks, straight to the broker.
    publisher: Client,
    /// One item per PUBACK the publisher gets.
    acks: mpsc::Receiver<()>,
    /// Fetches them, through the baseline proxy.
    subscriber: Client,
    /// Topic and payload length of each message the subscriber gets.
    messages: mpsc::Receiver<(String, usize)>,
}

impl Plain {
    /// Connects both clients and waits for their CONNACKs.
    fn connect(broker_port: u16, proxy_port: u16) -> Plain {
        let (publisher, acks) = plain_client("plain-pub", broker_port, |packet| match packet {
            Packet::PubAck(_) => Some(()),
            _ => None,
        });
        let (subscriber, messages) = plain_client("plain-sub", proxy_port, |packet| match packet {
            Packet::Publish(p) => Some((p.topic, p.payload.len())),
            _ => None,
        });
        Plain {
            publisher,
            acks,
            subscriber,
            messages,
        }
    }

    /// Publishes `bundle` as `CHUNK_BYTES` retained QoS 1 messages under `bench/plain/{k}/`
    /// (at most `PUBLISH_WINDOW` awaiting PUBACK), then subscribes to them and receives them all.
    /// Clears the retained messages afterwards (not timed).
    fn round(&self, k: u32, bundle: &[u8], link: &Proxy) -> Baseline {
        let chunks: Vec<&[u8]> = bundle.chunks(CHUNK_BYTES).collect();
        let topic = |i: usize| format!("bench/plain/{k}/{i}");
        let down = link.downstream_bytes();
        let started = Instant::now();
        for (i, chunk) in chunks.iter().enumerate() {
            self.publisher
                .publish(topic(i), QoS::AtLeastOnce, true, chunk.to_vec())
                .expect("publish queued");
        }
        for _ in &chunks {
            self.acks.recv_timeout(WAIT).expect("PUBACK");
        }
        let published = started.elapsed();
        self.subscriber
            .subscribe(format!("bench/plain/{k}/#"), QoS::AtLeastOnce)
            .expect("subscribe queued");
        let prefix = format!("bench/plain/{k}/");
        let (mut bytes, mut received) = (0, 0);
        while received < chunks.len() {
            let (topic, len) = self.messages.recv_timeout(WAIT).expect("retained chunk");
            // The clears of the previous round can still arrive (its UNSUBSCRIBE is not awaited).
            if topic.starts_with(&prefix) && len > 0 {
                bytes += len;
                received += 1;
            }
        }
        let received = started.elapsed();
        let downstream = link.downstream_bytes() - down;
        assert_eq!(bytes, bundle.len(), "the subscriber got the whole bundle");
        self.subscriber
            .unsubscribe(format!("bench/plain/{k}/#"))
            .expect("unsubscribe queued");
        for i in 0..chunks.len() {
            self.publisher
                .publish(topic(i), QoS::AtLeastOnce, true, Vec::new())
                .expect("clear queued");
        }
        for _ in &chunks {
            self.acks.recv_timeout(WAIT).expect("PUBACK of the clear");
        }
        Baseline {
            published,
            received,
            downstream,
        }
    }
}

/// A rumqttc sync client on `127.0.0.1:port` (in-flight `PUBLISH_WINDOW`, 1 MiB packets); a thread
/// polls its connection and sends what `pick` keeps from each incoming packet. Returns once
/// connected.
fn plain_client<T: Send + 'static>(
    name: &str,
    port: u16,
    pick: impl Fn(Packet) -> Option<T> + Send + 'static,
) -> (Client, mpsc::Receiver<T>) {
    let mut options = MqttOptions::new(format!("{name}-{}", std::process::id()), "127.0.0.1", port);
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_clean_session(true)
        .set_max_packet_size(1 << 20, 1 << 20)
        .set_inflight(PUBLISH_WINDOW);
    let (client, connection) = Client::new(options, 64);
    let (tx, rx) = mpsc::channel();
    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::spawn(move || poll(connection, &ready_tx, &tx, &pick));
    ready_rx.recv_timeout(WAIT).expect("plain client connects");
    (client, rx)
}

/// Polls `connection` until it fails or nobody listens: CONNACK on `ready`, the rest through
/// `pick` on `tx`.
fn poll<T>(
    mut connection: Connection,
    ready: &mpsc::Sender<()>,
    tx: &mpsc::Sender<T>,
    pick: &impl Fn(Packet) -> Option<T>,
) {
    for event in connection.iter() {
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                let _ = ready.send(());
            }
            Ok(Event::Incoming(packet)) => {
                if let Some(item) = pick(packet)
                    && tx.send(item).is_err()
                {
                    return;
                }
            }
            Ok(Event::Outgoing(_)) => {}
            Err(_) => return,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Update reports.

/// The topic of the device's update reports.
const REPORTS_TOPIC: &str = "outpost/bench/updates";

/// The first update report satisfying `pred`, waiting up to `WAIT`.
fn wait_report(reports: &Subscriber, pred: impl Fn(&Value) -> bool) -> Option<Value> {
    let find = |seen: &outpost_testkit::seen::Seen| {
        seen.messages
            .iter()
            .filter(|m| m.topic == REPORTS_TOPIC)
            .filter_map(|m| serde_json::from_slice::<Value>(&m.payload).ok())
            .find(|r| pred(r))
    };
    reports
        .wait_for(WAIT, |seen| find(seen).is_some())
        .then(|| reports.with(find))
        .flatten()
}

// ---------------------------------------------------------------------------------------------
// The `outpost` binary.

/// The publisher key that signs releases (made once, at the start).
static RELEASE_KEY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// `outpost fleet publish FILE --key KEY --broker URL --group GROUP` (32 KiB chunks, the
/// default).
fn publish(bundle: &Path, broker_url: &str) {
    let key = RELEASE_KEY.get().expect("the release key is made first");
    Cli::new(OUTPOST).publish(bundle, key, broker_url, GROUP, &[]);
}

/// `outpost agent` for device `DEVICE` in `GROUP`, trusting `public`, reconnecting fast.
fn spawn_agent(broker_url: &str, data: &Path, public: &Path) -> Agent {
    Agent::spawn(
        OUTPOST,
        &[
            "--device-id",
            DEVICE,
            "--broker",
            broker_url,
            "--data",
            s(data),
            "--trust",
            s(public),
            "--group",
            GROUP,
            "--reconnect-min",
            "20ms",
            "--reconnect-max",
            "250ms",
        ],
    )
}

// ---------------------------------------------------------------------------------------------
// Reporting.

/// One line per round: the update's timeline, its bytes, and its baseline.
fn print_round(r: &Round, b: &Baseline) {
    println!(
        "{}.0.0: publish {:>6.1} ms | fetching {:>6.1} verifying {:>6.1} accepted {:>6.1} running {:>6.1} ms | {} B down ({:.3}x), {} B up, chunks {} B | baseline published {:.1} received {:.1} ms, {} B down",
        r.version,
        ms(r.publish),
        ms(r.fetching),
        ms(r.verifying),
        ms(r.accepted),
        ms(r.running),
        r.downstream,
        r.downstream as f64 / BUNDLE_BYTES as f64,
        r.upstream,
        r.chunk_bytes,
        ms(b.published),
        ms(b.received),
        b.downstream,
    );
}

/// p50 and max of every figure over the rounds.
fn summary(name: &str, rounds: &[(Round, Baseline)]) {
    let stat = |f: &dyn Fn(&Round, &Baseline) -> f64| {
        let mut values: Vec<f64> = rounds.iter().map(|(r, b)| f(r, b)).collect();
        values.sort_by(f64::total_cmp);
        (values[values.len() / 2], values[values.len() - 1])
    };
    let line = |name: &str, f: &dyn Fn(&Round, &Baseline) -> f64, unit: &str| {
        let (p50, max) = stat(f);
        let digits = if unit == "x" { 3 } else { 2 };
        println!("  {name:<58} p50 {p50:>9.digits$} {unit:<3} max {max:>9.digits$} {unit}");
    };
    let bundle = BUNDLE_BYTES as f64;
    println!();
    println!(
        "[{name}] {} updates of a {BUNDLE_BYTES}-byte bundle ({} chunks of {CHUNK_BYTES} B), spawn of `fleet publish` = 0",
        rounds.len(),
        BUNDLE_BYTES.div_ceil(CHUNK_BYTES as u64)
    );
    line(
        "publish → device running new version",
        &|r, _| ms(r.running),
        "ms",
    );
    line(
        "  `fleet publish` command (spawn → exit)",
        &|r, _| ms(r.publish),
        "ms",
    );
    line(
        "  device: announcement seen (`fetching`)",
        &|r, _| ms(r.fetching),
        "ms",
    );
    line(
        "  device: fetching → verifying (chunk download)",
        &|r, _| ms(r.verifying.saturating_sub(r.fetching)),
        "ms",
    );
    line(
        "  device: verifying → accepted (verify, compile, activate)",
        &|r, _| ms(r.accepted.saturating_sub(r.verifying)),
        "ms",
    );
    line(
        "  device: accepted → running (scheduler swap)",
        &|r, _| ms(r.running.saturating_sub(r.accepted)),
        "ms",
    );
    line(
        "  device total: fetching → running",
        &|r, _| ms(r.running.saturating_sub(r.fetching)),
        "ms",
    );
    line(
        "wire bytes to the device / bundle size",
        &|r, _| r.downstream as f64 / bundle,
        "x",
    );
    line(
        "chunk payload bytes (report) / bundle size",
        &|r, _| r.chunk_bytes as f64 / bundle,
        "x",
    );
    line(
        "bytes from the device (acks, subscribes, events)",
        &|r, _| r.upstream as f64,
        "B",
    );
    println!("baseline: plain retained QoS 1, same chunks, clients already connected");
    line(
        "  published (first publish → last PUBACK)",
        &|_, b| ms(b.published),
        "ms",
    );
    line(
        "  received by a subscriber subscribing after",
        &|_, b| ms(b.received),
        "ms",
    );
    line(
        "  wire bytes to the subscriber / bundle size",
        &|_, b| b.downstream as f64 / bundle,
        "x",
    );
    line(
        "update time / baseline time (per round)",
        &|r, b| r.running.as_secs_f64() / b.received.as_secs_f64(),
        "x",
    );
    // CPU time comes in 10 ms ticks: a round's figure is coarse, the mean over rounds is not.
    let mean = |f: &dyn Fn(&Round) -> Duration| {
        ms(rounds.iter().map(|(r, _)| f(r)).sum::<Duration>()) / rounds.len() as f64
    };
    let (device, broker, running) = (
        mean(&|r| r.device_cpu),
        mean(&|r| r.broker_cpu),
        mean(&|r| r.device_cpu_running),
    );
    println!(
        "  CPU per update, spawn → accepted report (mean of {} rounds, 10 ms ticks):",
        rounds.len()
    );
    println!("    device (agent process, all threads)  {device:>7.1} ms");
    println!("    broker (mosquitto)                   {broker:>7.1} ms");
    if running > 0.0 {
        println!(
            "  baseline: device running its app for as long afterwards {running:>7.1} ms ({:.1}x less)",
            device / running
        );
    } else {
        println!(
            "  baseline: device running its app for as long afterwards: under one 10 ms tick in all {} rounds",
            rounds.len()
        );
    }
}

/// Milliseconds as a float.
fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
