//! The client side of the MQTT end-to-end tests:
//!
//! - [`Subscriber`]: an independent MQTT client (rumqttc, persistent session) that records every
//!   event the agent delivers, in arrival order, and every other message it sees;
//! - [`check_delivery`] / [`assert_delivered`]: the at-least-once, in-order verdict;
//! - [`fetch_status`]: the retained status of a device, read by a throwaway client;
//! - [`Agent`]: the real `outpost agent` process, its output lines as events;
//! - [`prefill`]: commits a backlog into a data directory through the library, no agent needed.
//!
//! Waiting is event-driven: each recorded message wakes [`Subscriber::wait_for`]; each output line
//! wakes [`Agent::wait_line`]. Timeouts are only safety nets.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::{Duration, Instant};

use outpost::runtime::{Effects, OutboxEffect};
use outpost::store::{Commit, OutboxLimits, RecordBody, Store};
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use serde_json::Value;

/// Topic filter for every device's events under the default prefix.
pub const EVENTS_FILTER: &str = "outpost/+/events/#";
/// Topic filter for every device's retained status under the default prefix.
pub const STATUS_FILTER: &str = "outpost/+/status";

/// Largest MQTT packet the test clients accept or send (the broker has no limit either).
const MAX_PACKET: usize = 256 * 1024 * 1024;
/// Pause between reconnect attempts while the broker is down (pacing, not synchronisation).
const RECONNECT_PAUSE: Duration = Duration::from_millis(20);

// ---------------------------------------------------------------------------------------------
// Subscriber

/// One event as it arrived (a batch contributes one per element, in order).
#[derive(Debug, Clone, PartialEq)]
pub struct Arrival {
    /// `device` of the event object.
    pub device: String,
    /// `stream` of the event object.
    pub stream: String,
    /// `seq` of the event object.
    pub seq: u64,
    /// `time` of the event object (ms since the epoch).
    pub time: i64,
    /// The whole event object.
    pub event: Value,
}

/// A message on a topic that is not an events topic.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Its topic.
    pub topic: String,
    /// Its body.
    pub payload: Vec<u8>,
    /// Whether it came with the retain flag (a retained message replayed on subscribe).
    pub retain: bool,
}

/// Everything a [`Subscriber`] has seen so far.
#[derive(Debug, Default)]
pub struct Seen {
    /// Every event, in arrival order, duplicates included.
    pub events: Vec<Arrival>,
    /// MQTT messages received on events topics (a batch is one message).
    pub event_messages: usize,
    /// Every message on other topics (status included), in arrival order.
    pub messages: Vec<Message>,
    /// The latest status document per device (from `{prefix}/{device}/status`).
    pub statuses: HashMap<String, Value>,
    /// Wire-format violations: unparsable payloads, missing keys, topic/payload mismatches.
    pub problems: Vec<String>,
    /// Sessions established (ConnAcks).
    pub connects: usize,
    /// Distinct `(stream, seq)` seen per device.
    unique: HashMap<String, HashSet<(String, u64)>>,
    /// Whether the subscriptions are in place (SubAck received on the current session).
    subscribed: bool,
}

impl Seen {
    /// How many distinct `(stream, seq)` of `device` arrived.
    pub fn unique(&self, device: &str) -> usize {
        self.unique.get(device).map_or(0, HashSet::len)
    }

    /// Whether `(stream, seq)` of `device` arrived at least once.
    pub fn has(&self, device: &str, stream: &str, seq: u64) -> bool {
        self.unique
            .get(device)
            .is_some_and(|set| set.contains(&(stream.to_string(), seq)))
    }

    /// The latest status of `device`, if one arrived.
    pub fn status(&self, device: &str) -> Option<&Value> {
        self.statuses.get(device)
    }

    /// Events of `device`, in arrival order.
    pub fn events_of<'a>(&'a self, device: &'a str) -> impl Iterator<Item = &'a Arrival> + 'a {
        self.events.iter().filter(move |a| a.device == device)
    }

    fn record(&mut self, topic: &str, payload: &[u8], retain: bool) {
        let parts: Vec<&str> = topic.split('/').collect();
        match parts.as_slice() {
            [_prefix, device, "events", stream @ ..] if !stream.is_empty() => {
                self.event_messages += 1;
                self.record_events(topic, device, &stream.join("/"), payload);
            }
            [_prefix, device, "status"] => {
                match serde_json::from_slice::<Value>(payload) {
                    Ok(status) => {
                        self.statuses.insert((*device).to_string(), status);
                    }
                    Err(e) => self
                        .problems
                        .push(format!("{topic}: status is not JSON: {e}")),
                }
                self.messages.push(Message {
                    topic: topic.to_string(),
                    payload: payload.to_vec(),
                    retain,
                });
            }
            _ => self.messages.push(Message {
                topic: topic.to_string(),
                payload: payload.to_vec(),
                retain,
            }),
        }
    }

    fn record_events(&mut self, topic: &str, device: &str, stream: &str, payload: &[u8]) {
        let objects = match serde_json::from_slice::<Value>(payload) {
            Ok(Value::Array(items)) => items,
            Ok(object @ Value::Object(_)) => vec![object],
            Ok(other) => {
                self.problems.push(format!(
                    "{topic}: payload is neither object nor array: {other}"
                ));
                return;
            }
            Err(e) => {
                self.problems
                    .push(format!("{topic}: payload is not JSON: {e}"));
                return;
            }
        };
        for event in objects {
            match parse_event(&event) {
                Ok((d, s, seq, time)) => {
                    if d != device || s != stream {
                        self.problems.push(format!(
                            "{topic}: event says device {d:?} stream {s:?} (seq {seq})"
                        ));
                    }
                    self.unique
                        .entry(d.clone())
                        .or_default()
                        .insert((s.clone(), seq));
                    self.events.push(Arrival {
                        device: d,
                        stream: s,
                        seq,
                        time,
                        event,
                    });
                }
                Err(problem) => self.problems.push(format!("{topic}: {problem}: {event}")),
            }
        }
    }
}

/// `(device, stream, seq, time)` of one event object; each key must be there with its type,
/// and so must `data` (or `data_b64`).
fn parse_event(event: &Value) -> Result<(String, String, u64, i64), String> {
    let text = |key: &str| {
        event[key]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("no string {key:?}"))
    };
    let device = text("device")?;
    let stream = text("stream")?;
    let seq = event["seq"].as_u64().ok_or("no integer \"seq\"")?;
    let time = event["time"].as_i64().ok_or("no integer \"time\"")?;
    if event.get("data").is_none() && event.get("data_b64").is_none() {
        return Err("no \"data\" nor \"data_b64\"".into());
    }
    Ok((device, stream, seq, time))
}

thread_local! {
    /// Set while this thread evaluates a [`Subscriber::wait_for`] condition (under the lock).
    static IN_CONDITION: Cell<bool> = const { Cell::new(false) };
}

struct SubShared {
    seen: Mutex<Seen>,
    changed: Condvar,
    stop: AtomicBool,
}

/// An independent MQTT client recording what it receives. Persistent session (clean_session =
/// false) with a unique client id, so a broker restart with persistence loses nothing for it; it
/// reconnects by itself and subscribes again if the broker forgot its session.
pub struct Subscriber {
    client: Client,
    client_id: String,
    shared: Arc<SubShared>,
}

impl Subscriber {
    /// Subscribes to every device's events and status under the default prefix (QoS 1), and
    /// returns once the broker acknowledged the subscriptions.
    pub fn start(port: u16) -> Subscriber {
        Subscriber::start_with(port, &[EVENTS_FILTER, STATUS_FILTER])
    }

    /// Like [`Subscriber::start`] with explicit topic filters (all at QoS 1).
    pub fn start_with(port: u16, filters: &[&str]) -> Subscriber {
        let client_id = unique_client_id("sub");
        let mut options = MqttOptions::new(&client_id, "127.0.0.1", port);
        options
            .set_clean_session(false)
            .set_keep_alive(Duration::from_secs(30))
            .set_max_packet_size(MAX_PACKET, MAX_PACKET);
        let (client, mut connection) = Client::new(options, 64);
        let shared = Arc::new(SubShared {
            seen: Mutex::new(Seen::default()),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let filters: Vec<String> = filters.iter().map(|f| f.to_string()).collect();
        let thread_client = client.clone();
        let thread_shared = shared.clone();
        std::thread::Builder::new()
            .name(client_id.clone())
            .spawn(move || {
                // The thread ends when the subscriber is dropped; it is not joined (a blocked
                // poll could outlive the test's broker), it just notices the flag.
                for notification in connection.iter() {
                    if thread_shared.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let mut seen = thread_shared.seen.lock().unwrap();
                    match notification {
                        Ok(Event::Incoming(Packet::Publish(publish))) => {
                            seen.record(&publish.topic, &publish.payload, publish.retain);
                        }
                        Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                            seen.connects += 1;
                            if !ack.session_present {
                                seen.subscribed = false;
                                for filter in &filters {
                                    let _ = thread_client.try_subscribe(filter, QoS::AtLeastOnce);
                                }
                            }
                        }
                        Ok(Event::Incoming(Packet::SubAck(_))) => seen.subscribed = true,
                        Ok(_) => continue,
                        Err(_) => {
                            drop(seen);
                            std::thread::sleep(RECONNECT_PAUSE);
                            continue;
                        }
                    }
                    thread_shared.changed.notify_all();
                }
            })
            .expect("subscriber thread");
        let subscriber = Subscriber {
            client,
            client_id,
            shared,
        };
        assert!(
            subscriber.wait_for(Duration::from_secs(20), |seen| seen.subscribed),
            "subscriber did not get its SubAck from the broker on port {port}"
        );
        subscriber
    }

    /// This client's id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Blocks until `condition` holds for what was seen (re-checked on every received message),
    /// or `timeout` passes. Returns whether it holds.
    ///
    /// The condition runs under the subscriber's lock: it must read the `&Seen` it is given, not
    /// call back into the subscriber (that would deadlock, so it panics instead).
    pub fn wait_for(&self, timeout: Duration, condition: impl Fn(&Seen) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut seen = self.shared.seen.lock().unwrap();
        loop {
            IN_CONDITION.set(true);
            let holds = condition(&seen);
            IN_CONDITION.set(false);
            if holds {
                return true;
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            seen = self.shared.changed.wait_timeout(seen, left).unwrap().0;
        }
    }

    /// Runs `f` on what was seen so far.
    pub fn with<R>(&self, f: impl FnOnce(&Seen) -> R) -> R {
        assert!(
            !IN_CONDITION.get(),
            "a Subscriber::wait_for condition called back into the subscriber (it would \
             deadlock): read the &Seen the condition is given instead"
        );
        f(&self.shared.seen.lock().unwrap())
    }

    /// Distinct events of `device` seen so far.
    pub fn unique(&self, device: &str) -> usize {
        self.with(|seen| seen.unique(device))
    }

    /// A copy of every event arrival so far, in order.
    pub fn arrivals(&self) -> Vec<Arrival> {
        self.with(|seen| seen.events.clone())
    }

    /// Wire-format problems seen so far.
    pub fn problems(&self) -> Vec<String> {
        self.with(|seen| seen.problems.clone())
    }

    /// Waits until every `(stream, seq)` of `committed` arrived for `device`; returns whether so.
    pub fn wait_for_all(
        &self,
        device: &str,
        committed: &BTreeMap<String, Vec<u64>>,
        timeout: Duration,
    ) -> bool {
        let total: usize = committed.values().map(Vec::len).sum();
        // Counting is O(1) per message; the full membership check runs only once it can pass.
        self.wait_for(timeout, |seen| {
            seen.unique(device) >= total
                && committed
                    .iter()
                    .all(|(stream, seqs)| seqs.iter().all(|&s| seen.has(device, stream, s)))
        })
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = self.client.try_disconnect();
    }
}

/// A client id no other test client in any process uses.
pub fn unique_client_id(role: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "outpost-test-{role}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The retained status of `device` under `prefix`, read by a throwaway client, or `None` if the
/// broker holds none. Event-based: after subscribing, the client publishes a marker to itself;
/// a retained message, if any, arrives before the marker does.
pub fn fetch_status(port: u16, prefix: &str, device: &str) -> Option<Value> {
    let client_id = unique_client_id("status");
    let marker = format!("outpost-test/marker/{client_id}");
    let status_topic = format!("{prefix}/{device}/status");
    let mut options = MqttOptions::new(&client_id, "127.0.0.1", port);
    options
        .set_clean_session(true)
        .set_max_packet_size(MAX_PACKET, MAX_PACKET);
    let (client, mut connection) = Client::new(options, 16);
    client
        .subscribe(&status_topic, QoS::AtLeastOnce)
        .expect("queue subscribe");
    client
        .subscribe(&marker, QoS::AtLeastOnce)
        .expect("queue subscribe");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut subacks = 0;
    let mut status = None;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match connection.recv_timeout(left) {
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => {
                subacks += 1;
                if subacks == 2 {
                    client
                        .try_publish(&marker, QoS::AtLeastOnce, false, b"end".to_vec())
                        .expect("queue marker");
                }
            }
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) if p.topic == status_topic => {
                status = Some(serde_json::from_slice(&p.payload).unwrap_or_else(|e| {
                    panic!("status of {device} is not JSON ({e}): {:?}", p.payload)
                }));
            }
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) if p.topic == marker => {
                let _ = client.try_disconnect();
                return status;
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("status client on port {port}: {e}"),
            Err(_) => break,
        }
    }
    panic!("status client on port {port}: no answer within 20 s");
}

// ---------------------------------------------------------------------------------------------
// Delivery verdict

/// Counts from a successful [`check_delivery`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Events committed (and all delivered).
    pub committed: usize,
    /// Event arrivals of the device, duplicates included.
    pub arrivals: usize,
    /// Arrivals beyond the first of the same `(stream, seq)` (allowed: at least once).
    pub duplicates: usize,
}

/// Checks the arrivals of `device` against what was committed per stream:
/// 1. every committed seq arrived at least once;
/// 2. per stream, first arrivals come in strictly increasing seq order;
/// 3. nothing arrived that was not committed (for that stream).
///
/// Duplicates are allowed and counted.
pub fn check_delivery(
    device: &str,
    committed: &BTreeMap<String, Vec<u64>>,
    arrivals: &[Arrival],
) -> Result<Delivery, String> {
    let committed_sets: BTreeMap<&str, BTreeSet<u64>> = committed
        .iter()
        .map(|(stream, seqs)| (stream.as_str(), seqs.iter().copied().collect()))
        .collect();
    let mut first_seen: BTreeMap<&str, BTreeSet<u64>> = BTreeMap::new();
    let mut last_first: BTreeMap<&str, u64> = BTreeMap::new();
    let mut problems = Vec::new();
    let mut unknown = Vec::new();
    let (mut count, mut duplicates) = (0, 0);
    for arrival in arrivals.iter().filter(|a| a.device == device) {
        count += 1;
        let stream = arrival.stream.as_str();
        if !committed_sets
            .get(stream)
            .is_some_and(|set| set.contains(&arrival.seq))
        {
            unknown.push(format!("{stream}#{}", arrival.seq));
            continue;
        }
        if !first_seen.entry(stream).or_default().insert(arrival.seq) {
            duplicates += 1;
            continue;
        }
        if let Some(previous) = last_first.insert(stream, arrival.seq)
            && previous >= arrival.seq
            && problems.len() < 20
        {
            problems.push(format!(
                "stream {stream}: seq {} first arrived after seq {previous}",
                arrival.seq
            ));
        }
    }
    for (stream, seqs) in &committed_sets {
        let got = first_seen.get(stream);
        let missing: Vec<u64> = seqs
            .iter()
            .copied()
            .filter(|s| !got.is_some_and(|g| g.contains(s)))
            .collect();
        if !missing.is_empty() {
            problems.push(format!(
                "stream {stream}: {} of {} committed seqs never arrived, e.g. {:?}",
                missing.len(),
                seqs.len(),
                &missing[..missing.len().min(20)]
            ));
        }
    }
    if !unknown.is_empty() {
        problems.push(format!(
            "{} arrivals were never committed, e.g. {:?}",
            unknown.len(),
            &unknown[..unknown.len().min(20)]
        ));
    }
    if problems.is_empty() {
        Ok(Delivery {
            committed: committed.values().map(Vec::len).sum(),
            arrivals: count,
            duplicates,
        })
    } else {
        Err(problems.join("\n"))
    }
}

/// [`check_delivery`], panicking with its findings; also fails on wire-format problems.
pub fn assert_delivered(
    device: &str,
    committed: &BTreeMap<String, Vec<u64>>,
    subscriber: &Subscriber,
) -> Delivery {
    let problems = subscriber.problems();
    assert!(
        problems.is_empty(),
        "wire-format problems ({}), first: {:#?}",
        problems.len(),
        &problems[..problems.len().min(10)]
    );
    let arrivals = subscriber.arrivals();
    check_delivery(device, committed, &arrivals)
        .unwrap_or_else(|problems| panic!("delivery of {device} is wrong:\n{problems}"))
}

// ---------------------------------------------------------------------------------------------
// Prefill

/// Records per commit when prefilling (capped by the outbox's record bound).
const PREFILL_CHUNK: usize = 1000;

/// Commits `count` events into the state of `data` through the library (no agent running),
/// round-robin over `streams`, `PREFILL_CHUNK` records per commit, under `limits`. Event `i` is
/// the JSON `{"i":i}`. Returns the seqs in the outbox afterwards per stream (read back, so
/// rows dropped by the full-policy are not in it).
pub fn prefill(
    data: &Path,
    count: usize,
    streams: &[&str],
    limits: OutboxLimits,
) -> BTreeMap<String, Vec<u64>> {
    let store = Store::open_dir(data).expect("state opens");
    let (committer, thread) = outpost::store::committer::spawn(store.clone(), limits);
    let chunk = PREFILL_CHUNK.min(limits.max_records as usize).max(1);
    let mut i = 0;
    while i < count {
        let end = (i + chunk).min(count);
        let records = (i..end)
            .map(|n| OutboxEffect::Event {
                stream: streams[n % streams.len()].to_string(),
                data: format!("{{\"i\":{n}}}").into_bytes(),
            })
            .collect();
        committer
            .commit_blocking(Commit {
                app: "prefill".into(),
                component: "gen".into(),
                time_ms: super::START_MS + i as i64,
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
    outbox_seqs(&store)
}

/// The seqs of every event in the outbox of `store`, per stream.
pub fn outbox_seqs(store: &Store) -> BTreeMap<String, Vec<u64>> {
    let mut seqs: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for entry in store.outbox_read(0, usize::MAX).expect("outbox reads") {
        if let RecordBody::Event { stream, .. } = entry.record.body {
            seqs.entry(stream).or_default().push(entry.seq);
        }
    }
    seqs
}

// ---------------------------------------------------------------------------------------------
// The agent process

/// Arguments every test agent gets before its own: reconnect fast, report status often.
pub const FAST_AGENT_ARGS: &[&str] = &[
    "--reconnect-min",
    "20ms",
    "--reconnect-max",
    "250ms",
    "--status-every",
    "1s",
];

/// How long a SIGTERMed agent may take to exit before it is SIGKILLed and the test fails.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// The agent's output so far, stdout and stderr interleaved as read.
#[derive(Default)]
struct Output {
    lines: Mutex<Vec<String>>,
    changed: Condvar,
}

/// A running `outpost agent`. Dropping it SIGKILLs it.
pub struct Agent {
    child: Option<Child>,
    pid: u32,
    output: Arc<Output>,
}

impl Agent {
    /// Starts `outpost agent --device-id DEVICE --broker URL --data DATA` with
    /// [`FAST_AGENT_ARGS`] and then `extra` (e.g. `--app DIR`, outbox bounds).
    pub fn start(device: &str, broker_url: &str, data: &Path, extra: &[&str]) -> Agent {
        let mut command = Command::new(env!("CARGO_BIN_EXE_outpost"));
        command
            .args([
                "agent",
                "--device-id",
                device,
                "--broker",
                broker_url,
                "--data",
            ])
            .arg(data)
            .args(FAST_AGENT_ARGS)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("outpost agent starts");
        let output = Arc::new(Output::default());
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        spawn_reader(stdout, "", output.clone());
        spawn_reader(stderr, "[stderr] ", output.clone());
        Agent {
            pid: child.id(),
            child: Some(child),
            output,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Blocks until the agent printed at least `n` lines containing `needle` (counting from its
    /// start), or `timeout` passes; returns whether it did.
    pub fn wait_line(&self, needle: &str, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut lines = self.output.lines.lock().unwrap();
        loop {
            if lines.iter().filter(|l| l.contains(needle)).count() >= n {
                return true;
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            lines = self.output.changed.wait_timeout(lines, left).unwrap().0;
        }
    }

    /// Lines containing `needle` printed so far.
    pub fn count_lines(&self, needle: &str) -> usize {
        let lines = self.output.lines.lock().unwrap();
        lines.iter().filter(|l| l.contains(needle)).count()
    }

    /// The last `n` output lines (stderr ones prefixed), for failure messages.
    pub fn output_tail(&self, n: usize) -> String {
        let lines = self.output.lines.lock().unwrap();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// SIGTERM, then waits for the exit (SIGKILL and a panic after [`STOP_TIMEOUT`]).
    pub fn terminate(&mut self) -> ExitStatus {
        let Some(mut child) = self.child.take() else {
            panic!("agent {} already stopped", self.pid);
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
        let killed = guard.join().unwrap_or(false);
        assert!(
            !killed,
            "agent did not exit within {STOP_TIMEOUT:?} of SIGTERM; output tail:\n{}",
            self.output_tail(40)
        );
        status
    }

    /// SIGKILL: no clean shutdown. Returns once the process is reaped.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn_reader(stream: impl Read + Send + 'static, prefix: &'static str, output: Arc<Output>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            output.lines.lock().unwrap().push(format!("{prefix}{line}"));
            output.changed.notify_all();
        }
    });
}

/// Sends `kill -SIG pid`.
fn signal(pid: u32, sig: &str) {
    super::broker::signal(pid, sig);
}

/// Opens the state of `data` (the agent must have exited: redb allows one process).
pub fn open_state(data: &Path) -> Store {
    Store::open_dir(data).unwrap_or_else(|e| panic!("state of {} opens: {e}", data.display()))
}

/// A data directory path inside `dir`.
pub fn data_dir(dir: &Path) -> PathBuf {
    dir.join("data")
}
