//! The engine's delivery rules, end to end over the in-memory transport: a real engine, a real
//! (in-memory) store, a broker the test drives. Milliseconds, no broker process, no sleeps.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use outpost_hal::mqtt::QoS;
use outpost_hal::mqtt::memory::{AckMode, Inbound, MemoryBroker, PublishRecord};
use tokio::sync::{broadcast, watch};

use super::batch::Planner;
use super::wire::WireFormat;
use super::{SyncConfig, SyncEngine};
use crate::events::{AgentEvent, Events};
use crate::inbound::{self, Delivery, InboundRoute, Wanted};
use crate::runtime::{Effects, OutboxEffect};
use crate::store::committer::{self, Committer, CommitterThread};
use crate::store::{Commit, OutboxLimits, Store};

/// A store with its commit thread, an engine over a memory broker, and the engine's events.
struct Rig {
    broker: MemoryBroker,
    store: Store,
    committer: Committer,
    thread: Option<CommitterThread>,
    events: broadcast::Receiver<AgentEvent>,
    stop: watch::Sender<bool>,
    engine: Option<tokio::task::JoinHandle<()>>,
}

fn config() -> SyncConfig {
    SyncConfig {
        planner: Planner {
            device: "d1".into(),
            incarnation: "0123456789abcdef".into(),
            prefix: "outpost".into(),
            format: WireFormat::Json,
            // One event per message, so each message carries exactly one row.
            max_events: 1,
            max_packet_bytes: 64 * 1024,
        },
        window: 16,
        window_bytes: 1 << 20,
        page_rows: 100,
        page_bytes: 1 << 20,
        reconnect_min: Duration::from_millis(1),
        reconnect_max: Duration::from_millis(2),
        status_every: Duration::from_secs(3600),
        delete_every: Duration::from_millis(1),
        delete_rows: 1_000,
        rate_limit: None,
        apps: watch::channel(Vec::new()).1,
        schedule: Arc::default(),
        clock: Arc::new(outpost_hal::ManualClock::new(1_000)),
    }
}

impl Rig {
    /// Commits `n` events before the engine starts, then starts it with `routes`.
    async fn start(n: usize, routes: Vec<Arc<dyn InboundRoute>>) -> Rig {
        Rig::start_on(MemoryBroker::new(), n, routes).await
    }

    /// As [`Rig::start`], on a broker the test has already set up.
    async fn start_on(broker: MemoryBroker, n: usize, routes: Vec<Arc<dyn InboundRoute>>) -> Rig {
        let store = Store::in_memory().expect("store");
        let (committer, thread) = committer::spawn(store.clone(), OutboxLimits::default());
        let rig_events = Events::new();
        let events = rig_events.subscribe();
        let mut rig = Rig {
            broker,
            store,
            committer,
            thread: Some(thread),
            events,
            stop: watch::channel(false).0,
            engine: None,
        };
        for i in 0..n {
            rig.commit(&format!("e{i}")).await;
        }
        let mut engine = SyncEngine::new(
            rig.broker.transport(),
            rig.store.clone(),
            config(),
            Some(rig.committer.stats_handle()),
        )
        .with_events(rig_events);
        for route in routes {
            engine = engine.with_route(route);
        }
        let stop = rig.stop.subscribe();
        rig.engine = Some(tokio::spawn(engine.run(stop)));
        rig
    }

    /// Commits one event (on the blocking pool, as the executor does).
    async fn commit(&self, data: &str) {
        let mut effects = Effects::default();
        effects.records.push(OutboxEffect::Event {
            stream: "s".into(),
            data: data.as_bytes().to_vec(),
        });
        let commit = Commit {
            app: "a".into(),
            component: "c".into(),
            time_ms: 1,
            unsynced: None,
            effects: Arc::new(effects),
            trigger_run: None,
            inbox_done: None,
            failed: false,
        };
        let committer = self.committer.clone();
        tokio::task::spawn_blocking(move || committer.commit_blocking(commit))
            .await
            .expect("commit task")
            .expect("commits");
    }

    /// Waits for the next event matching `wanted`.
    async fn event(&mut self, wanted: impl Fn(&AgentEvent) -> bool) -> AgentEvent {
        self.events_until(wanted)
            .await
            .pop()
            .expect("the matching event")
    }

    /// Every event up to and including the next one matching `wanted`.
    async fn events_until(&mut self, wanted: impl Fn(&AgentEvent) -> bool) -> Vec<AgentEvent> {
        let mut seen = Vec::new();
        loop {
            match self.events.recv().await {
                Ok(event) => {
                    let done = wanted(&event);
                    seen.push(event);
                    if done {
                        return seen;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => panic!("the engine stopped"),
            }
        }
    }

    async fn stop(mut self) {
        self.stop.send_replace(true);
        if let Some(engine) = self.engine.take() {
            engine.await.expect("engine ends");
        }
        drop(self.committer);
        if let Some(thread) = self.thread.take() {
            thread.join();
        }
    }
}

/// The sequence number of an events message (`None` for status and other topics).
fn seq(record: &PublishRecord) -> Option<u64> {
    if !record.topic.starts_with("outpost/d1/events/") {
        return None;
    }
    let event: serde_json::Value = serde_json::from_slice(&record.payload).expect("json");
    event["seq"].as_u64()
}

/// The event messages of session `session`, in publish order.
fn events_of(broker: &MemoryBroker, session: u32) -> Vec<PublishRecord> {
    let published = broker.published();
    published
        .into_iter()
        .filter(|r| r.session == session && seq(r).is_some())
        .collect()
}

async fn wait_events(broker: &MemoryBroker, session: u32, n: usize) -> Vec<PublishRecord> {
    broker
        .wait_until(|b| events_of(b, session).len() >= n)
        .await;
    events_of(broker, session)
}

#[tokio::test(flavor = "current_thread")]
async fn a_puback_releases_exactly_its_rows_and_a_cut_resends_from_the_oldest() {
    let mut rig = Rig::start(3, Vec::new()).await;
    let first = wait_events(&rig.broker, 1, 3).await;
    let seqs: Vec<u64> = first.iter().filter_map(seq).collect();
    assert_eq!(seqs, [1, 2, 3], "the oldest first, in order");
    // Only the message carrying seq 2 is acknowledged; then the link dies.
    assert!(rig.broker.ack(first[1].id));
    rig.broker.cut();
    // The cut is a disconnect with its reason, not a problem to report.
    let seen = rig.events_until(|e| *e == AgentEvent::Connected).await;
    let seen = rig
        .events_until(|e| matches!(e, AgentEvent::Disconnected { .. }))
        .await
        .into_iter()
        .chain(seen)
        .collect::<Vec<_>>();
    assert!(
        !seen.iter().any(|e| matches!(e, AgentEvent::Problem { .. })),
        "{seen:?}"
    );
    rig.broker.wait_connected(2).await;
    // The new session starts again from the oldest row: 1 and 3 are owed, 2 is gone.
    let second = wait_events(&rig.broker, 2, 2).await;
    let again: Vec<u64> = second.iter().filter_map(seq).collect();
    assert_eq!(again, [1, 3]);
    let left: Vec<u64> = rig
        .store
        .outbox_read(0, 10)
        .expect("outbox")
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(left, [1, 3], "rows leave only on their PUBACK");
    rig.stop().await;
}

#[tokio::test(flavor = "current_thread")]
async fn with_every_puback_the_outbox_drains_and_drained_is_said() {
    let mut rig = Rig::start(5, Vec::new()).await;
    rig.broker.set_ack_mode(AckMode::Auto);
    rig.broker.ack_all();
    rig.event(|e| *e == AgentEvent::Drained).await;
    assert!(rig.store.outbox_read(0, 10).expect("outbox").is_empty());
    // A commit after the quiet spell goes out at once.
    rig.commit("late").await;
    let published = wait_events(&rig.broker, 1, 6).await;
    assert_eq!(published.iter().rev().find_map(seq), Some(6));
    rig.event(|e| *e == AgentEvent::Drained).await;
    rig.stop().await;
}

/// A route that answers every message the same way and notes where `deliver` ran.
struct FixedRoute {
    answer: Delivery,
    threads: Mutex<Vec<std::thread::ThreadId>>,
}

impl InboundRoute for FixedRoute {
    fn name(&self) -> &'static str {
        "test"
    }
    fn wanted(&self) -> watch::Receiver<Wanted> {
        inbound::fixed(["cmd/#".to_string()])
    }
    fn claims(&self, topic: &str) -> bool {
        topic.starts_with("cmd/")
    }
    fn deliver(&self, _topic: &str, _payload: &[u8]) -> Delivery {
        let mut threads = self.threads.lock().unwrap_or_else(|p| p.into_inner());
        threads.push(std::thread::current().id());
        self.answer.clone()
    }
}

fn route(answer: Delivery) -> Arc<FixedRoute> {
    Arc::new(FixedRoute {
        answer,
        threads: Mutex::default(),
    })
}

#[tokio::test(flavor = "current_thread")]
async fn a_refused_inbound_message_is_acknowledged_counted_and_reported_off_the_async_thread() {
    let refusing = route(Delivery::Refused {
        reason: "too large".into(),
    });
    let mut rig = Rig::start(0, vec![refusing.clone()]).await;
    rig.broker.wait_subscribed("cmd/#").await;
    let id = rig
        .broker
        .deliver(Inbound::new("cmd/reboot", b"x".to_vec(), QoS::AtLeastOnce))
        .expect("delivered");
    rig.broker.wait_inbound_acked(id).await;
    assert_eq!(rig.store.counters().expect("counters").inbound_rejected, 1);
    let refused = rig
        .event(|e| matches!(e, AgentEvent::InboundRefused { .. }))
        .await;
    assert!(
        matches!(refused, AgentEvent::InboundRefused { topic, reason } if topic == "cmd/reboot" && reason == "too large")
    );
    let threads = refusing.threads.lock().expect("lock").clone();
    assert_eq!(threads.len(), 1);
    assert_ne!(
        threads[0],
        std::thread::current().id(),
        "deliver ran on the async thread"
    );
    // A message no route claims is refused the same way.
    let stray = rig
        .broker
        .deliver(Inbound::new("elsewhere", b"y".to_vec(), QoS::AtLeastOnce).unconditional())
        .expect("delivered");
    rig.broker.wait_inbound_acked(stray).await;
    assert_eq!(rig.store.counters().expect("counters").inbound_rejected, 2);
    rig.stop().await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_message_a_route_cannot_take_now_is_left_for_redelivery() {
    let busy = route(Delivery::Retry {
        reason: "disk busy".into(),
    });
    let mut rig = Rig::start(0, vec![busy]).await;
    rig.broker.wait_subscribed("cmd/#").await;
    let id = rig
        .broker
        .deliver(Inbound::new("cmd/x", b"z".to_vec(), QoS::AtLeastOnce))
        .expect("delivered");
    rig.event(
        |e| matches!(e, AgentEvent::Problem { message, .. } if message.contains("disk busy")),
    )
    .await;
    assert_eq!(rig.broker.awaiting_inbound_ack(), [id]);
    assert_eq!(rig.store.counters().expect("counters").inbound_rejected, 0);
    // An accepting route's message is acknowledged.
    rig.stop().await;
    let taking = route(Delivery::Accepted);
    let mut rig = Rig::start(0, vec![taking]).await;
    rig.broker.wait_subscribed("cmd/#").await;
    let id = rig
        .broker
        .deliver(Inbound::new("cmd/y", b"z".to_vec(), QoS::AtLeastOnce))
        .expect("delivered");
    rig.broker.wait_inbound_acked(id).await;
    rig.event(|e| matches!(e, AgentEvent::InboundStored { topic } if topic == "cmd/y"))
        .await;
    rig.stop().await;
}

#[tokio::test(flavor = "current_thread")]
async fn refused_connections_are_retried_and_the_next_session_delivers() {
    let broker = MemoryBroker::new();
    broker.refuse_connects(3);
    broker.set_ack_mode(AckMode::Auto);
    let mut rig = Rig::start_on(broker, 2, Vec::new()).await;
    for _ in 0..3 {
        rig.event(|e| matches!(e, AgentEvent::ConnectFailed { .. }))
            .await;
    }
    rig.event(|e| *e == AgentEvent::Connected).await;
    rig.event(|e| *e == AgentEvent::Drained).await;
    assert_eq!(rig.broker.connect_attempts(), 4);
    assert!(rig.store.outbox_read(0, 10).expect("outbox").is_empty());
    rig.stop().await;
}

/// A board without an RTC: its clock starts in 1970 and jumps to the true time when NTP syncs.
/// Events committed before the jump leave with their true time (this boot) or marked unsynced
/// (an earlier boot that never synced); events after it carry the clock's time unmarked.
#[tokio::test(flavor = "current_thread")]
async fn events_committed_before_the_clock_synced_are_re_anchored_when_sent() {
    use outpost_hal::{Clock, ManualClock};

    const NOW: i64 = 1_795_463_238_000;
    let clock = Arc::new(ManualClock::unsynced(0));
    let store = Store::in_memory().expect("store");
    let (committer, thread) = committer::spawn(store.clone(), OutboxLimits::default());
    // As the executor commits (on a blocking thread): the wall clock's reading, stamped while
    // it is not synced.
    let commit = |data: &str| {
        let mut effects = Effects::default();
        effects.records.push(OutboxEffect::Event {
            stream: "s".into(),
            data: data.as_bytes().to_vec(),
        });
        let commit = Commit {
            app: "a".into(),
            component: "c".into(),
            time_ms: clock.wall_ms(),
            unsynced: (!clock.synced()).then(|| clock.boot().into()),
            effects: Arc::new(effects),
            trigger_run: None,
            inbox_done: None,
            failed: false,
        };
        let committer = committer.clone();
        tokio::task::spawn_blocking(move || committer.commit_blocking(commit).expect("commits"))
    };
    clock.advance(Duration::from_secs(3));
    commit("\"lost boot\"").await.expect("commit task"); // boot 1 never syncs
    clock.reboot(2, 0);
    clock.advance(Duration::from_secs(5));
    commit("\"a\"").await.expect("commit task"); // 5 s into boot 2, the clock reads 1970 + 5 s
    clock.advance(Duration::from_secs(5));
    commit("\"b\"").await.expect("commit task");
    clock.advance(Duration::from_secs(60));
    clock.sync_to(NOW); // 70 s into boot 2
    commit("\"c\"").await.expect("commit task");

    let broker = MemoryBroker::new();
    let mut config = config();
    config.clock = clock.clone();
    let engine = SyncEngine::new(
        broker.transport(),
        store.clone(),
        config,
        Some(committer.stats_handle()),
    );
    let (stop, stopped) = watch::channel(false);
    let run = tokio::spawn(engine.run(stopped));
    let sent = wait_events(&broker, 1, 4).await;
    let times: Vec<(String, i64, Option<String>)> = sent
        .iter()
        .map(|record| {
            let event: serde_json::Value = serde_json::from_slice(&record.payload).expect("json");
            (
                event["data"].as_str().expect("text").to_string(),
                event["time"].as_i64().expect("time"),
                event["time_source"].as_str().map(str::to_string),
            )
        })
        .collect();
    assert_eq!(
        times,
        [
            ("lost boot".into(), 3_000, Some("unsynced".into())),
            ("a".into(), NOW - 65_000, Some("anchored".into())),
            ("b".into(), NOW - 60_000, Some("anchored".into())),
            ("c".into(), NOW, None),
        ]
    );
    stop.send_replace(true);
    run.await.expect("engine ends");
    drop(committer);
    thread.join();
}
