//! Sync benchmarks: the real `outpost agent` draining a prefilled outbox to a real mosquitto,
//! next to a baseline measured in the same run against the same broker.
//!
//! 1. Raw rumqttc: one `AsyncClient` publishing `RAW_MESSAGES` 100-byte messages at QoS 1 with
//!    the agent's in-flight limit, until every PUBACK is in → messages/s. This is the ceiling of
//!    one message per event.
//! 2. Drain: `DRAIN_EVENTS` events of 100-byte payloads committed to a data directory through the
//!    library, then the `outpost agent` binary started on it; timed from spawn to its
//!    `Drained` event (outbox empty: every row published, PUBACKed and deleted) → events/s,
//!    and the ratio to (1). Messages sent are read from the agent's own retained status.
//! 3. Agent peak RSS (`VmHWM`, read after the `Drained` event) with backlogs of `RSS_SMALL` and
//!    `DRAIN_EVENTS` events, and with an empty outbox for reference.
//!
//! Run with `cargo bench -p outpost --bench sync`. Needs `/usr/sbin/mosquitto`. The agent speaks
//! its default protocol (MQTT 5); `OUTPOST_BENCH_MQTT_PROTOCOL=3.1.1` passes `--mqtt-protocol`. Each trial runs
//! (1), then the small and the large drain, so machine noise hits all alike; medians are shown.
//! Figures are wall-clock on a shared machine: compare ratios, not absolute values, across runs.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use outpost::config::{MqttSettings, SyncSettings};
use outpost::events::AgentEvent;
use outpost::runtime::OutboxEffect;
use outpost::store::{OutboxLimits, Store};
use outpost::sync::batch::Planner;
use outpost_testkit::agent::{Agent, proc_status_kib};
use outpost_testkit::broker::{Broker, mosquitto_version};
use outpost_testkit::prefill::prefill_with;
use outpost_testkit::s;
use outpost_testkit::subscriber::{STATUS_FILTER, Subscriber};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use support::{cpu_model, load_average};

/// The `outpost` binary under test.
const OUTPOST: &str = env!("CARGO_BIN_EXE_outpost");
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
/// The agent's status period here: short, so the count of messages it sent is read soon after
/// the drain (one small retained publish every period; the drain is timed before it is read).
const STATUS_EVERY: &str = "200ms";
/// Safety nets only; every wait is for an event (a log line, an agent event, a message).
const START_TIMEOUT: Duration = Duration::from_secs(20);
const DRAIN_TIMEOUT: Duration = Duration::from_secs(120);
/// Targets.
const TARGET_DRAIN_RATIO: f64 = 1.0;
const TARGET_RSS_GROWTH_KIB: i64 = 2 * 1024;

/// `--mqtt-protocol P` if `OUTPOST_BENCH_MQTT_PROTOCOL` is set.
fn protocol_args() -> Vec<String> {
    match std::env::var("OUTPOST_BENCH_MQTT_PROTOCOL") {
        Ok(protocol) => vec!["--mqtt-protocol".into(), protocol],
        Err(_) => Vec::new(),
    }
}

fn main() {
    println!(
        "outpost sync benchmark ({} cores, {}, mosquitto {}, load average {}, agent MQTT {})",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model(),
        mosquitto_version(),
        load_average(),
        std::env::var("OUTPOST_BENCH_MQTT_PROTOCOL").unwrap_or_else(|_| "5 (default)".into()),
    );
    let broker = Broker::start_tuned();
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
    println!("agent peak RSS (VmHWM after the `Drained` event)");
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
    /// Spawn → `Drained`.
    elapsed: Duration,
    /// Spawn → `Connected`.
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
/// (the group committer), as an app would have.
fn prefill(dir: &Path, count: usize) -> Template {
    let seqs = prefill_with(dir, count, OutboxLimits::default(), |n| {
        OutboxEffect::Event {
            stream: STREAM.into(),
            data: payload(n),
        }
    });
    let records: usize = seqs.values().map(Vec::len).sum();
    assert_eq!(records, count, "prefill left {records} rows");
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
    let (messages, _) = planner.plan(&rows, &outpost::sync::anchor::ClockNow::assume_synced());
    let bytes: usize = messages.iter().map(|m| m.payload.len()).sum();
    bytes / rows.len().max(1)
}

/// Copies `template` to a fresh data directory, runs the agent on it until `Drained`,
/// reads its peak RSS and the messages it sent, stops it with SIGTERM and checks the outbox is
/// empty.
fn drain(broker: &Broker, template: &Template, events: usize, work: &Path) -> DrainRun {
    let data = tempfile::tempdir_in(work).expect("data dir");
    for entry in std::fs::read_dir(&template.dir).expect("template dir") {
        let entry = entry.expect("template entry");
        std::fs::copy(entry.path(), data.path().join(entry.file_name())).expect("copy template");
    }
    let started = Instant::now();
    let mut agent = spawn_agent(broker, data.path());
    let connected =
        agent.wait_event_after(0, DRAIN_TIMEOUT, |e| matches!(e, AgentEvent::Connected));
    let drained = agent.wait_event_after(0, DRAIN_TIMEOUT, |e| matches!(e, AgentEvent::Drained));
    let (Some((connected, _)), Some((drained, _))) = (connected, drained) else {
        panic!(
            "agent did not drain {events} events within {DRAIN_TIMEOUT:?}; output tail:\n{}",
            agent.output_tail(20)
        );
    };
    let hwm_kib = proc_status_kib(agent.pid(), "VmHWM:").expect("VmHWM of the agent");
    let messages = published_count(broker.port(), events);
    let status = agent.terminate();
    assert!(
        status.success(),
        "agent exited with {status}; output tail:\n{}",
        agent.output_tail(20)
    );
    let store = Store::open_dir(data.path()).expect("agent state opens");
    let left = store.counters().expect("counters").outbox_records;
    assert_eq!(left, 0, "{left} rows left in the outbox after `Drained`");
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
    let subscriber = Subscriber::start_with(port, &[STATUS_FILTER]);
    let acked = |status: &serde_json::Value| {
        status["sync"]["acked_rows"].as_u64().unwrap_or(0) >= events as u64
    };
    subscriber
        .wait_for(START_TIMEOUT, |seen| seen.status(DEVICE).is_some_and(acked))
        .then(|| subscriber.with(|seen| seen.status(DEVICE)?["sync"]["published"].as_u64()))
        .flatten()
}

/// `outpost agent` for `DEVICE` on `broker` with state in `data`, reporting status every
/// `STATUS_EVERY`.
fn spawn_agent(broker: &Broker, data: &Path) -> Agent {
    let mut args: Vec<String> = [
        "--device-id",
        DEVICE,
        "--broker",
        &broker.url(),
        "--data",
        s(data),
        "--status-every",
        STATUS_EVERY,
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    args.extend(protocol_args());
    Agent::spawn(OUTPOST, &args)
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
