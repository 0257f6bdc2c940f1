//! The device's link to its broker: the MQTT transport and the sync engine's settings, from
//! `agent.toml`.

use std::sync::Arc;
use std::time::Duration;

use outpost_hal::mqtt::{LastWill, QoS, RumqttcTransport, TransportError};
use tokio::sync::watch;

use crate::apps::AppVersion;
use crate::config::AgentConfig;
use crate::scheduler::SchedulerStats;
use crate::sync::SyncConfig;
use crate::sync::batch::Planner;
use crate::sync::status;

/// Outbox rows read per page.
const PAGE_ROWS: usize = 1024;

/// The MQTT transport: a persistent session under the device id, with a Last-Will that marks
/// the device offline; MQTT 5 unless configured otherwise (falling back to 3.1.1 by itself).
pub fn transport(config: &AgentConfig) -> Result<RumqttcTransport, TransportError> {
    let status_topic = format!("{}/{}/status", config.mqtt.topic_prefix, config.device_id);
    let mut mqtt = config.mqtt.mqtt_config(config.device_id.clone())?;
    // A persistent session: commands for mqtt triggers queue at the broker while we are away.
    mqtt.clean_session = false;
    // Room for everything a session enqueues, so it never waits for the event loop while the
    // inbound gate has paused it (sync/gate.rs).
    mqtt.request_capacity = crate::sync::gate::request_capacity(config.sync.window, PAGE_ROWS);
    mqtt.last_will = Some(LastWill {
        topic: status_topic,
        payload: status::offline(&config.device_id),
        qos: QoS::AtLeastOnce,
        retain: true,
    });
    RumqttcTransport::new(mqtt)
}

/// How this device shapes messages: its id, its store's `incarnation`, topic prefix, wire
/// format and packet limit. The sync engine plans with it and every app sizes its outbox
/// records against it at commit time.
pub fn planner(config: &AgentConfig, incarnation: String) -> Planner {
    Planner {
        device: config.device_id.clone(),
        incarnation,
        prefix: config.mqtt.topic_prefix.clone(),
        format: config.sync.wire,
        max_events: config.sync.batch_max_events,
        max_packet_bytes: config.mqtt.max_packet_bytes,
    }
}

/// The sync engine's settings; `apps` is the list of running apps the status shows, `schedule`
/// the device's schedulers' counters.
pub fn sync_config(
    config: &AgentConfig,
    planner: Planner,
    apps: watch::Receiver<Vec<AppVersion>>,
    schedule: Arc<SchedulerStats>,
    clock: std::sync::Arc<dyn outpost_hal::Clock>,
) -> SyncConfig {
    SyncConfig {
        planner,
        window: config.sync.window,
        page_rows: PAGE_ROWS,
        // A quarter of the window: a few large rows, or a thousand small ones.
        page_bytes: config.sync.window_bytes / 4,
        window_bytes: config.sync.window_bytes,
        reconnect_min: config.mqtt.reconnect_min,
        reconnect_max: config.mqtt.reconnect_max,
        status_every: config.sync.status_every,
        delete_every: Duration::from_millis(50),
        // Also delete as soon as this many rows are acknowledged: on a fast link 50 ms is tens of
        // thousands of rows, which fill redb's cache and fragment the heap (peak RSS 16 MiB
        // draining 100k events on loopback, 8 MiB with this bound, flat from 10k to 300k queued
        // events, for ~8% less drain throughput; `cargo bench -p outpost --bench sync`).
        delete_rows: 2048,
        rate_limit: (config.sync.rate_limit > 0).then_some(config.sync.rate_limit),
        apps,
        schedule,
        clock,
    }
}
