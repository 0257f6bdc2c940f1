//! Bounded memory whatever is queued (issue 10, item 3), against a real mosquitto and the real
//! binary: 10,000 inbound commands of 30 KB to an agent with an `mqtt` trigger, and a backlog
//! of 3,000 events of 60 KB draining. Each checks the agent's peak RSS (`VmHWM`) and that
//! every message is accounted for (handled or refused and counted; delivered).
//!
//! Measure what ships: these are `#[ignore]`d in the default (debug) run, whose binary alone is
//! several times larger. Run them with
//! `cargo test --release -p outpost --test memory -- --ignored --nocapture --test-threads 1`
//! (`OUTPOST_AGENT_ARGS="--window-bytes 524288"` passes more flags to the agent).

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use outpost_testkit::agent::Agent;
use outpost_testkit::broker::Broker;
use outpost_testkit::subscriber::{fetch_status, unique_client_id};

use crate::OUTPOST;
use outpost::app::{App, AppOptions};
use outpost::runtime::Firing;
use outpost::store::OutboxLimits;
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};

/// The target: peak RSS of the agent whatever is queued in either direction.
const RSS_TARGET_KIB: u64 = 16 * 1024;

/// `VmHWM` of `pid`, KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("agent status")
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .expect("VmHWM")
}

/// `VmRSS` of `pid` every 100 ms until `stop`; prints the trajectory at the end (where the
/// peak happens says what to look at).
fn sample_rss(pid: u32, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let started = Instant::now();
        let mut samples = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find(|l| l.starts_with("VmRSS:"))
                        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                });
            if let Some(rss) = rss {
                samples.push((started.elapsed().as_millis(), rss));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let step = (samples.len() / 12).max(1);
        let shown: Vec<String> = samples
            .iter()
            .step_by(step)
            .map(|(ms, kib)| format!("{:.1}s:{kib}", *ms as f64 / 1000.0))
            .collect();
        println!("VmRSS KiB over time: {}", shown.join(" "));
    })
}

/// Distinct `(stream, seq)` of one device's events, decoded and dropped at once (a 60 KB event
/// is not kept): a subscriber whose own memory does not follow the test's volume.
struct Counter {
    seen: Arc<Mutex<HashSet<(String, u64)>>>,
    /// The first 8 bytes of each event's data (the command's index), distinct.
    payloads: Arc<Mutex<HashSet<u64>>>,
    stop: Arc<AtomicBool>,
}

impl Counter {
    fn start(port: u16, device: &str) -> Counter {
        let mut options = MqttOptions::new(unique_client_id("count"), "127.0.0.1", port);
        options
            .set_clean_session(false)
            .set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut connection) = Client::new(options, 16);
        client
            .subscribe(format!("outpost/{device}/events/#"), QoS::AtLeastOnce)
            .expect("subscribe");
        let seen = Arc::new(Mutex::new(HashSet::new()));
        let payloads = Arc::new(Mutex::new(HashSet::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (subscribed_tx, subscribed) = std::sync::mpsc::channel();
        {
            let seen = seen.clone();
            let payloads = payloads.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                for event in connection.iter() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    match event {
                        Ok(Event::Incoming(Packet::SubAck(_))) => {
                            let _ = subscribed_tx.send(());
                        }
                        Ok(Event::Incoming(Packet::Publish(publish))) => {
                            let mut seen = seen.lock().expect("counter lock");
                            for event in outpost::sync::wire::decode(&publish.payload) {
                                if let Some(index) = event.data.get(..8) {
                                    let index =
                                        u64::from_le_bytes(index.try_into().expect("8 bytes"));
                                    payloads.lock().expect("counter lock").insert(index);
                                }
                                seen.insert((event.stream, event.seq));
                            }
                        }
                        Ok(_) => {}
                        Err(_) => std::thread::sleep(Duration::from_millis(100)),
                    }
                }
            });
        }
        subscribed
            .recv_timeout(Duration::from_secs(20))
            .expect("the counter subscribed");
        Counter {
            seen,
            payloads,
            stop,
        }
    }

    /// Distinct command indexes handled.
    fn distinct_payloads(&self) -> usize {
        self.payloads.lock().expect("counter lock").len()
    }

    fn count(&self, stream: &str) -> usize {
        self.seen
            .lock()
            .expect("counter lock")
            .iter()
            .filter(|(s, _)| s == stream)
            .count()
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Waits until `done()` or `timeout`; returns whether it held.
fn wait(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    done()
}

/// Publishes `count` messages of `bytes` bytes to `topic` at QoS 1; returns once all are
/// acknowledged by the broker.
fn publish_many(port: u16, topic: &str, count: usize, bytes: usize) {
    let mut options = MqttOptions::new(unique_client_id("pub"), "127.0.0.1", port);
    options.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut connection) = Client::new(options, 64);
    let topic = topic.to_string();
    let sender = std::thread::spawn(move || {
        for n in 0..count {
            let mut payload = vec![b'x'; bytes];
            payload[..8].copy_from_slice(&(n as u64).to_le_bytes());
            client
                .publish(&topic, QoS::AtLeastOnce, false, payload)
                .expect("queue publish");
        }
        client
    });
    let mut acked = 0;
    for event in connection.iter() {
        if let Event::Incoming(Packet::PubAck(_)) = event.expect("publisher connection") {
            acked += 1;
            if acked == count {
                break;
            }
        }
    }
    let client = sender.join().expect("sender");
    let _ = client.disconnect();
}

fn write_manifest(dir: &Path, wat: &str, trigger: &str) {
    let wasm = dir.join("guest.wasm");
    std::fs::write(&wasm, wat::parse_str(wat).expect("guest compiles")).expect("write guest");
    let manifest = format!(
        "manifest_version = 1\n[app]\nname = \"memory\"\nversion = \"1.0.0\"\n\
         [[component]]\nid = \"guest\"\nsource = \"{}\"\ngrants = {{ streams = [\"done\", \"big\"] }}\n\
         limits = {{ output = \"1 MiB\" }}\n[[component.trigger]]\n{trigger}\n",
        wasm.display()
    );
    std::fs::write(dir.join("outpost.toml"), manifest).expect("manifest");
}

#[test]
#[ignore = "measures the release binary: cargo test --release -p outpost --test memory -- --ignored"]
fn ten_thousand_30_kb_commands_keep_peak_rss_bounded_and_are_all_accounted_for() {
    const DEVICE: &str = "flooded";
    const COMMANDS: usize = 10_000;
    let broker = Broker::start();
    let counter = Counter::start(broker.port(), DEVICE);
    let dir = tempfile::tempdir().expect("temp dir");
    // Reads the whole command, then emits its first 8 bytes (the command's index) to "done".
    write_manifest(
        dir.path(),
        r#"(module
  (import "outpost_v1" "payload_read" (func $read (param i32 i32) (result i32)))
  (import "outpost_v1" "emit" (func $emit (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "done")
  (func (export "outpost_handle") (result i32)
    (drop (call $read (i32.const 1024) (i32.const 40000)))
    (call $emit (i32.const 0) (i32.const 4) (i32.const 1024) (i32.const 8))))"#,
        &format!("mqtt = \"cmd/{DEVICE}/#\""),
    );
    let data = dir.path().join("data");
    let app = dir.path().to_str().expect("utf-8").to_string();
    let mark = broker.log_mark();
    let mut args = vec!["--app".to_string(), app];
    if let Ok(more) = std::env::var("OUTPOST_AGENT_ARGS") {
        args.extend(more.split_whitespace().map(str::to_string));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut agent = Agent::start(OUTPOST, DEVICE, &broker.url(), &data, &args);
    let stop_sampling = Arc::new(AtomicBool::new(false));
    let sampler = sample_rss(agent.pid(), stop_sampling.clone());
    broker
        .wait_log_after(mark, Duration::from_secs(30), |line| {
            line.contains("SUBSCRIBE") && line.contains(DEVICE)
        })
        .expect("the agent subscribed");

    let started = Instant::now();
    publish_many(
        broker.port(),
        &format!("cmd/{DEVICE}/run"),
        COMMANDS,
        30_000,
    );
    let published = started.elapsed();
    let refused = || {
        fetch_status(broker.port(), "outpost", DEVICE)
            .and_then(|s| s["sync"]["inbound_rejected"].as_u64())
            .unwrap_or(0) as usize
    };
    // Under a flood from a broker without an in-flight limit, messages the agent had to leave
    // unacknowledged come again, and so can some it handled (at least once): count distinct
    // commands.
    let accounted = wait(Duration::from_secs(900), || {
        counter.distinct_payloads() + refused() >= COMMANDS
    });
    let elapsed = started.elapsed();
    let hwm = peak_rss_kib(agent.pid());
    stop_sampling.store(true, Ordering::SeqCst);
    sampler.join().expect("sampler");
    let (handled, runs, refused) = (
        counter.distinct_payloads(),
        counter.count("done"),
        refused(),
    );
    println!(
        "inbound: {COMMANDS} x 30 KB published in {published:.1?}; {handled} distinct commands \
         handled ({runs} runs), {refused} refused and counted, in {elapsed:.1?}; agent peak RSS \
         (VmHWM) {hwm} KiB ({:.2} MiB)",
        hwm as f64 / 1024.0
    );
    assert!(
        accounted,
        "every command handled or refused: {handled} + {refused} of {COMMANDS}; agent output:\n{}",
        agent.output_tail(20)
    );
    let status = fetch_status(broker.port(), "outpost", DEVICE).expect("status");
    assert_eq!(status["failed_invocations"], 0, "{status}");
    assert!(hwm <= RSS_TARGET_KIB, "peak RSS {hwm} KiB over 16 MiB");
    agent.terminate();
}

#[test]
#[ignore = "measures the release binary: cargo test --release -p outpost --test memory -- --ignored"]
fn a_3000_event_60_kb_backlog_drains_with_peak_rss_bounded() {
    const DEVICE: &str = "backlogged";
    const EVENTS: usize = 3_000;
    let dir = tempfile::tempdir().expect("temp dir");
    // Emits 60,000 control bytes (80 KB as base64 on the JSON wire) to "big".
    write_manifest(
        dir.path(),
        r#"(module
  (import "outpost_v1" "emit" (func $emit (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (data (i32.const 0) "big")
  (func (export "outpost_handle") (result i32)
    (local $i i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (i32.const 60000)))
      (i32.store8 (i32.add (i32.const 1024) (local.get $i)) (i32.and (local.get $i) (i32.const 31)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (call $emit (i32.const 0) (i32.const 3) (i32.const 1024) (i32.const 60000))))"#,
        "interval = \"24h\"",
    );
    let data = dir.path().join("data");
    // The backlog, committed while no agent runs.
    let app = App::start(
        &dir.path().join("outpost.toml"),
        AppOptions {
            data_dir: data.clone(),
            outbox: OutboxLimits::default(),
            clock: Arc::new(outpost_hal::SystemClock::new()),
            hardware: None,
            identity: None,
            send: None,
        },
    )
    .expect("app starts");
    for _ in 0..EVENTS {
        let outcome = app
            .executor
            .run_blocking("guest", Firing::manual(Vec::new()));
        assert!(outcome.is_ok(), "{:?}", outcome.result);
    }
    app.shutdown();

    let broker = Broker::start();
    let counter = Counter::start(broker.port(), DEVICE);
    let started = Instant::now();
    let extra: Vec<String> = std::env::var("OUTPOST_AGENT_ARGS")
        .map(|a| a.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let mut agent = Agent::start(OUTPOST, DEVICE, &broker.url(), &data, &extra);
    let stop_sampling = Arc::new(AtomicBool::new(false));
    let sampler = sample_rss(agent.pid(), stop_sampling.clone());
    let drained = wait(Duration::from_secs(900), || counter.count("big") == EVENTS);
    let elapsed = started.elapsed();
    let hwm = peak_rss_kib(agent.pid());
    stop_sampling.store(true, Ordering::SeqCst);
    sampler.join().expect("sampler");
    println!(
        "outbound: {EVENTS} x 60 KB backlog ({} delivered) drained in {elapsed:.1?}; agent peak \
         RSS (VmHWM) {hwm} KiB ({:.2} MiB)",
        counter.count("big"),
        hwm as f64 / 1024.0
    );
    assert!(drained, "agent output:\n{}", agent.output_tail(20));
    assert!(hwm <= RSS_TARGET_KIB, "peak RSS {hwm} KiB over 16 MiB");
    agent.terminate();
}
