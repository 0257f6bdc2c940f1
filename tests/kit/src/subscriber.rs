//! An independent MQTT client (rumqttc, persistent session) that records what the agent
//! delivers into a [`Seen`], waited on with [`Subscriber::wait_for`]; and [`fetch_status`], the
//! retained status of a device read by a throwaway client.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use serde_json::Value;

use crate::seen::{Arrival, Seen};

/// Topic filter for every device's events under the default prefix.
pub const EVENTS_FILTER: &str = "outpost/+/events/#";
/// Topic filter for every device's retained status under the default prefix.
pub const STATUS_FILTER: &str = "outpost/+/status";

/// Largest MQTT packet the test clients accept or send (the broker has no limit either).
const MAX_PACKET: usize = 256 * 1024 * 1024;
/// Pause between reconnect attempts while the broker is down (pacing, not synchronisation).
const RECONNECT_PAUSE: Duration = Duration::from_millis(20);

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
                    let mut seen = thread_shared.seen.lock().expect("subscriber lock");
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
        let mut seen = self.shared.seen.lock().expect("subscriber lock");
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
            seen = self
                .shared
                .changed
                .wait_timeout(seen, left)
                .expect("subscriber lock")
                .0;
        }
    }

    /// Runs `f` on what was seen so far.
    pub fn with<R>(&self, f: impl FnOnce(&Seen) -> R) -> R {
        assert!(
            !IN_CONDITION.get(),
            "a Subscriber::wait_for condition called back into the subscriber (it would \
             deadlock): read the &Seen the condition is given instead"
        );
        f(&self.shared.seen.lock().expect("subscriber lock"))
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

/// Every retained message matching `filter` as `(topic, payload)`, read by a throwaway client.
/// Event-based like [`fetch_status`]: after both subscriptions are acknowledged the client
/// publishes a marker to itself, and retained messages, queued at subscription, arrive first.
pub fn fetch_retained(port: u16, filter: &str) -> Vec<(String, Vec<u8>)> {
    let client_id = unique_client_id("retained");
    let marker = format!("outpost-test/marker/{client_id}");
    let mut options = MqttOptions::new(&client_id, "127.0.0.1", port);
    options
        .set_clean_session(true)
        .set_max_packet_size(MAX_PACKET, MAX_PACKET);
    let (client, mut connection) = Client::new(options, 16);
    for topic in [filter, marker.as_str()] {
        client
            .subscribe(topic, QoS::AtLeastOnce)
            .expect("queue subscribe");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut subacks = 0;
    let mut found = Vec::new();
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
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) if p.topic == marker => {
                let _ = client.try_disconnect();
                return found;
            }
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                found.push((p.topic.clone(), p.payload.to_vec()));
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("retained client on port {port}: {e}"),
            Err(_) => break,
        }
    }
    panic!("retained client on port {port}: no answer within 20 s");
}
