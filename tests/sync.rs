//! MQTT sync end to end: the real `outpost agent` drains a real redb outbox to a real mosquitto,
//! and an independent subscriber checks what arrived — every committed event at least once, per
//! stream first arrivals in order, nothing that was never committed — through broker crashes,
//! cut links, agent crashes and a full outbox.
//!
//! Every wait is for an event (a message the subscriber received, an event the agent emitted, a
//! line mosquitto logged); timeouts are safety nets that fail the test with a diagnosis.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use outpost::events::AgentEvent;
use outpost::store::{FullPolicy, OutboxLimits};
use outpost_testkit::agent::Agent;
use outpost_testkit::broker::Broker;
use outpost_testkit::delivery::{assert_delivered, check_delivery};
use outpost_testkit::prefill::{open_state, prefill};
use outpost_testkit::proxy::Proxy;
use outpost_testkit::seen::Arrival;
use outpost_testkit::subscriber::{Subscriber, fetch_status};
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use serde_json::{Value, json};

use crate::OUTPOST;

/// Safety net for any single wait.
const TIMEOUT: Duration = Duration::from_secs(60);
/// Streams the prefilled events are spread over.
const STREAMS: [&str; 3] = ["readings", "alerts", "heartbeat"];

/// Total events in a per-stream seq map.
fn total(committed: &BTreeMap<String, Vec<u64>>) -> usize {
    committed.values().map(Vec::len).sum()
}

/// What to print when a wait times out: progress, the agent's and the broker's last lines.
fn diagnosis(device: &str, sub: &Subscriber, agent: Option<&Agent>, broker: &Broker) -> String {
    let (unique, arrivals, messages, connects, problems) = sub.with(|s| {
        (
            s.unique(device),
            s.events_of(device).count(),
            s.event_messages,
            s.connects,
            s.problems.len(),
        )
    });
    format!(
        "subscriber: {unique} distinct events of {device} ({arrivals} arrivals in {messages} \
         messages), {connects} connects, {problems} wire problems\n\
         --- agent output (tail) ---\n{}\n--- mosquitto log (tail) ---\n{}",
        agent.map_or_else(|| "(no agent)".into(), |a| a.output_tail(30)),
        broker.log_tail(15)
    )
}

/// Blocks until the subscriber saw `n` distinct events of `device`.
fn wait_progress(device: &str, n: usize, sub: &Subscriber, agent: &Agent, broker: &Broker) {
    assert!(
        sub.wait_for(TIMEOUT, |s| s.unique(device) >= n),
        "no progress to {n} events within {TIMEOUT:?}\n{}",
        diagnosis(device, sub, Some(agent), broker)
    );
}

/// Blocks until every committed event arrived, then checks the delivery and prints its counts.
fn wait_all_and_check(
    device: &str,
    committed: &BTreeMap<String, Vec<u64>>,
    sub: &Subscriber,
    agent: &Agent,
    broker: &Broker,
) {
    let started = Instant::now();
    assert!(
        sub.wait_for_all(device, committed, TIMEOUT),
        "not every committed event arrived within {TIMEOUT:?}\n{}",
        diagnosis(device, sub, Some(agent), broker)
    );
    let delivery = assert_delivered(device, committed, sub);
    eprintln!(
        "{device}: {} committed, {} arrivals, {} duplicates, {} MQTT messages (last wait {:?})",
        delivery.committed,
        delivery.arrivals,
        delivery.duplicates,
        sub.with(|s| s.event_messages),
        started.elapsed()
    );
}

/// Waits for the agent to report an empty outbox, stops it with SIGTERM and checks that the
/// outbox on disk is empty.
fn stop_and_expect_empty_outbox(agent: &mut Agent, data: &Path) {
    assert!(
        agent.wait_event(|e| matches!(e, AgentEvent::Drained), 1, TIMEOUT),
        "the agent never reported the outbox drained; output tail:\n{}",
        agent.output_tail(30)
    );
    let status = agent.terminate();
    assert!(
        status.success(),
        "agent exited with {status} after SIGTERM; output tail:\n{}",
        agent.output_tail(30)
    );
    let counters = open_state(data).counters().expect("counters");
    assert_eq!(
        counters.outbox_records, 0,
        "outbox not empty after a clean stop: {counters:?}"
    );
    assert_eq!(counters.outbox_bytes, 0, "outbox bytes: {counters:?}");
}

#[test]
fn backlog_of_50000_built_offline_is_drained_completely_in_order() {
    const DEVICE: &str = "backlog-50k";
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let committed = prefill(&data, 50_000, &STREAMS, OutboxLimits::default());
    assert_eq!(total(&committed), 50_000);

    let broker = Broker::start();
    let sub = Subscriber::start(broker.port());
    let started = Instant::now();
    let mut agent = Agent::start(OUTPOST, DEVICE, &broker.url(), &data, &[]);
    wait_all_and_check(DEVICE, &committed, &sub, &agent, &broker);
    eprintln!("50,000 events drained in {:?}", started.elapsed());
    stop_and_expect_empty_outbox(&mut agent, &data);
}

#[test]
fn broker_killed_and_restarted_during_drain_loses_nothing() {
    const DEVICE: &str = "broker-crash";
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let committed = prefill(&data, 20_000, &STREAMS, OutboxLimits::default());
    let n = total(&committed);

    let mut broker = Broker::start();
    let sub = Subscriber::start(broker.port());
    // A SIGKILLed mosquitto restarts from its last autosave: make sure that save holds the
    // subscriber's session, or the broker itself would forget where to deliver.
    broker.wait_saved();
    let mut agent = Agent::start(OUTPOST, DEVICE, &broker.url(), &data, &[]);
    for percent in [20, 45, 70] {
        wait_progress(DEVICE, n * percent / 100, &sub, &agent, &broker);
        broker.kill();
        broker.restart();
        eprintln!(
            "broker killed and restarted at {percent}% (subscriber had {} events)",
            sub.unique(DEVICE)
        );
    }
    wait_all_and_check(DEVICE, &committed, &sub, &agent, &broker);
    assert!(
        agent.count_events(|e| matches!(e, AgentEvent::Connected)) >= 4,
        "expected a connection per broker life; output tail:\n{}",
        agent.output_tail(30)
    );
    stop_and_expect_empty_outbox(&mut agent, &data);
}

#[test]
fn connection_cut_at_random_moments_loses_nothing() {
    const DEVICE: &str = "link-cuts";
    let seed = std::env::var("OUTPOST_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("seed {seed} (rerun with OUTPOST_TEST_SEED={seed})");
    let mut rng = fastrand::Rng::with_seed(seed);
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let committed = prefill(&data, 20_000, &STREAMS, OutboxLimits::default());
    let n = total(&committed);

    let broker = Broker::start();
    let proxy = Proxy::start(broker.port());
    let sub = Subscriber::start(broker.port());
    let mut points: Vec<usize> = (0..5).map(|_| rng.usize(n / 20..n * 19 / 20)).collect();
    points.sort_unstable();
    let mut agent = Agent::start(OUTPOST, DEVICE, &proxy.url(), &data, &[]);
    for (cuts, point) in points.into_iter().enumerate() {
        wait_progress(DEVICE, point, &sub, &agent, &broker);
        // Each cut hits a live session: the one after the previous cut must be up.
        assert!(
            agent.wait_event(|e| matches!(e, AgentEvent::Connected), cuts + 1, TIMEOUT),
            "the agent did not reconnect after cut {cuts}\n{}",
            diagnosis(DEVICE, &sub, Some(&agent), &broker)
        );
        let cut = proxy.cut();
        eprintln!(
            "cut {cut} connection(s) at {point} events (subscriber had {}, {} bytes upstream)",
            sub.unique(DEVICE),
            proxy.upstream_bytes()
        );
        assert_eq!(cut, 1, "one live agent connection to cut");
    }
    wait_all_and_check(DEVICE, &committed, &sub, &agent, &broker);
    assert!(
        proxy.connections() >= 6,
        "the agent did not reconnect after each cut through the proxy"
    );
    stop_and_expect_empty_outbox(&mut agent, &data);
}

#[test]
fn agent_killed_with_sigkill_during_drain_loses_nothing() {
    const DEVICE: &str = "agent-crash";
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let committed = prefill(&data, 20_000, &STREAMS, OutboxLimits::default());
    let n = total(&committed);

    let broker = Broker::start();
    let sub = Subscriber::start(broker.port());
    let mut agent = Agent::start(OUTPOST, DEVICE, &broker.url(), &data, &[]);
    for percent in [20, 45, 70] {
        wait_progress(DEVICE, n * percent / 100, &sub, &agent, &broker);
        agent.kill();
        // The broker publishes the Last-Will when the connection dies without a DISCONNECT.
        assert!(
            sub.wait_for(TIMEOUT, |s| s
                .status(DEVICE)
                .is_some_and(|st| st["online"] == json!(false))),
            "no `online: false` status after the agent was killed at {percent}%\n{}",
            diagnosis(DEVICE, &sub, Some(&agent), &broker)
        );
        eprintln!(
            "agent killed at {percent}% (subscriber had {} events)",
            sub.unique(DEVICE)
        );
        agent = Agent::start(OUTPOST, DEVICE, &broker.url(), &data, &[]);
    }
    wait_all_and_check(DEVICE, &committed, &sub, &agent, &broker);
    stop_and_expect_empty_outbox(&mut agent, &data);
}

#[test]
fn a_full_outbox_drops_per_policy_and_reports_it_in_status() {
    const DEVICE: &str = "full-outbox";
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let limits = OutboxLimits {
        max_records: 1000,
        policy: FullPolicy::DropOldest,
        ..OutboxLimits::default()
    };
    let committed = prefill(&data, 3000, &STREAMS, limits);
    assert_eq!(total(&committed), 1000, "the outbox keeps its bound");
    let newest: Vec<u64> = {
        let mut all: Vec<u64> = committed.values().flatten().copied().collect();
        all.sort_unstable();
        all
    };
    let counters = open_state(&data).counters().expect("counters");
    assert_eq!(counters.dropped_records, 2000, "{counters:?}");
    assert_eq!(
        newest.first().copied(),
        Some(counters.next_seq - 1000),
        "the 1000 newest are kept ({counters:?})"
    );

    let broker = Broker::start();
    let sub = Subscriber::start(broker.port());
    let mut agent = Agent::start(
        OUTPOST,
        DEVICE,
        &broker.url(),
        &data,
        &[
            "--outbox-max-records",
            "1000",
            "--outbox-full",
            "drop-oldest",
        ],
    );
    assert!(
        sub.wait_for(TIMEOUT, |s| s
            .status(DEVICE)
            .is_some_and(|st| st["dropped"]["records"] == json!(2000))),
        "no status with dropped.records = 2000; latest status: {:?}\n{}",
        sub.with(|s| s.status(DEVICE).cloned()),
        diagnosis(DEVICE, &sub, Some(&agent), &broker)
    );
    wait_all_and_check(DEVICE, &committed, &sub, &agent, &broker);

    // The status is retained: a client that comes later reads it too.
    let status = fetch_status(broker.port(), "outpost", DEVICE).expect("a retained status");
    for key in [
        "online",
        "outbox",
        "dropped",
        "rejected",
        "last_error",
        "agent_version",
        "apps",
        "uptime_s",
    ] {
        assert!(status.get(key).is_some(), "status lacks {key:?}: {status}");
    }
    assert_eq!(status["online"], json!(true), "{status}");
    assert_eq!(status["dropped"]["records"], json!(2000), "{status}");
    assert!(
        status["dropped"]["bytes"].as_u64().is_some_and(|b| b > 0),
        "{status}"
    );
    stop_and_expect_empty_outbox(&mut agent, &data);
}

// ---------------------------------------------------------------------------------------------
// The harness itself, against mosquitto and a plain rumqttc publisher (no agent involved).

/// Publishes `messages` (topic, payload) at QoS 1 through `port` and returns once all are
/// acknowledged.
fn publish_all(port: u16, messages: &[(String, Vec<u8>)], retain: bool) {
    let mut options = MqttOptions::new(
        outpost_testkit::subscriber::unique_client_id("pub"),
        "127.0.0.1",
        port,
    );
    options.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut connection) = Client::new(options, messages.len() + 1);
    for (topic, payload) in messages {
        client
            .publish(topic, QoS::AtLeastOnce, retain, payload.clone())
            .expect("queue publish");
    }
    let mut acked = 0;
    for event in connection.iter() {
        match event.expect("publisher connection") {
            Event::Incoming(Packet::PubAck(_)) => {
                acked += 1;
                if acked == messages.len() {
                    break;
                }
            }
            _ => continue,
        }
    }
    let _ = client.disconnect();
}

/// Fake agent events `seqs` of `device`/`stream`, as one batch (array) or single objects.
fn fake_events(device: &str, stream: &str, seqs: &[u64], batch: bool) -> Vec<(String, Vec<u8>)> {
    let topic = format!("outpost/{device}/events/{stream}");
    let event = |seq: u64| {
        json!({"v":1,"device":device,"stream":stream,"seq":seq,"time":seq as i64,
               "app":"a","component":"c","data":{"seq":seq}})
    };
    if batch {
        let array = Value::Array(seqs.iter().map(|&s| event(s)).collect());
        vec![(topic, array.to_string().into_bytes())]
    } else {
        seqs.iter()
            .map(|&s| (topic.clone(), event(s).to_string().into_bytes()))
            .collect()
    }
}

#[test]
fn harness_broker_proxy_and_subscriber_behave() {
    const DEVICE: &str = "fake";
    let mut broker = Broker::start();
    let sub = Subscriber::start(broker.port());

    // Retained status: read by a fresh client; none for an unknown device.
    let status = json!({"online": true, "dropped": {"records": 0}});
    publish_all(
        broker.port(),
        &[(
            format!("outpost/{DEVICE}/status"),
            status.to_string().into_bytes(),
        )],
        true,
    );
    assert_eq!(
        fetch_status(broker.port(), "outpost", DEVICE),
        Some(status.clone())
    );
    assert_eq!(fetch_status(broker.port(), "outpost", "nobody"), None);
    assert!(sub.wait_for(TIMEOUT, |s| s.status(DEVICE) == Some(&status)));

    // Single events and a batch.
    let mut messages = fake_events(DEVICE, "a", &[1, 2, 3], false);
    messages.extend(fake_events(DEVICE, "b", &[4, 5, 6], true));
    publish_all(broker.port(), &messages, false);

    // Through the proxy: a live connection is cut and the client comes back through it.
    let proxy = Proxy::start(broker.port());
    let mut options = MqttOptions::new(
        outpost_testkit::subscriber::unique_client_id("via-proxy"),
        "127.0.0.1",
        proxy.port(),
    );
    options.set_clean_session(false);
    let (client, mut connection) = Client::new(options, 8);
    let mut connacks = 0;
    for event in connection.iter() {
        if let Ok(Event::Incoming(Packet::ConnAck(_))) = event {
            connacks += 1;
            if connacks == 1 {
                assert_eq!(proxy.cut(), 1, "one live connection to cut");
            } else {
                break;
            }
        }
    }
    assert_eq!(
        proxy.connections(),
        2,
        "the client reconnected through the proxy"
    );
    assert!(proxy.upstream_bytes() > 0);
    let (topic, payload) = fake_events(DEVICE, "a", &[7], false).remove(0);
    client
        .publish(topic, QoS::AtLeastOnce, false, payload)
        .expect("queue");
    for event in connection.iter() {
        if let Ok(Event::Incoming(Packet::PubAck(_))) = event {
            break;
        }
    }
    drop(client);

    // Broker SIGKILLed after a save and restarted: the subscriber's session survives.
    assert!(sub.wait_for(TIMEOUT, |s| s.unique(DEVICE) == 7));
    broker.wait_saved();
    broker.kill();
    broker.restart();
    publish_all(
        broker.port(),
        &fake_events(DEVICE, "b", &[8, 9], true),
        false,
    );
    assert!(
        sub.wait_for(TIMEOUT, |s| s.unique(DEVICE) == 9),
        "{}",
        diagnosis(DEVICE, &sub, None, &broker)
    );
    assert!(sub.with(|s| s.connects) >= 2);

    let committed: BTreeMap<String, Vec<u64>> = [
        ("a".to_string(), vec![1, 2, 3, 7]),
        ("b".to_string(), vec![4, 5, 6, 8, 9]),
    ]
    .into();
    let delivery = assert_delivered(DEVICE, &committed, &sub);
    assert_eq!(delivery.committed, 9);
    assert_eq!(delivery.duplicates, delivery.arrivals - 9);
    assert!(sub.problems().is_empty());
}

#[test]
fn harness_delivery_check_finds_loss_disorder_and_strangers() {
    let arrival = |stream: &str, seq: u64| Arrival {
        device: "d".into(),
        stream: stream.into(),
        seq,
        time: 0,
        event: Value::Null,
    };
    let committed: BTreeMap<String, Vec<u64>> =
        [("s".to_string(), vec![1, 2, 3]), ("t".to_string(), vec![4])].into();

    let good = [
        arrival("s", 1),
        arrival("t", 4),
        arrival("s", 2),
        arrival("s", 1),
        arrival("s", 3),
        arrival("s", 2),
    ];
    let delivery = check_delivery("d", &committed, &good).expect("good delivery");
    assert_eq!((delivery.arrivals, delivery.duplicates), (6, 2));

    let lost = [arrival("s", 1), arrival("s", 3), arrival("t", 4)];
    let error = check_delivery("d", &committed, &lost).expect_err("detected");
    assert!(
        error.contains("never arrived") && error.contains("[2]"),
        "{error}"
    );

    let disordered = [
        arrival("s", 2),
        arrival("s", 1),
        arrival("s", 3),
        arrival("t", 4),
    ];
    let error = check_delivery("d", &committed, &disordered).expect_err("detected");
    assert!(error.contains("seq 1 first arrived after seq 2"), "{error}");

    let stranger = [
        arrival("s", 1),
        arrival("s", 2),
        arrival("s", 3),
        arrival("t", 4),
        arrival("t", 3),
    ];
    let error = check_delivery("d", &committed, &stranger).expect_err("detected");
    assert!(
        error.contains("never committed") && error.contains("t#3"),
        "{error}"
    );
}
