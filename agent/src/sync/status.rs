//! The device status document, published retained on `{prefix}/{device}/status` so the latest
//! state of a device is readable from the broker while the device is offline. The Last-Will
//! message replaces it with `online: false` when the link dies.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use serde::Serialize;

pub use crate::apps::AppVersion;
use crate::store::Counters;

/// Live sync counters, shown in the status document.
#[derive(Debug, Default)]
pub struct SyncStats {
    /// Messages published (events batches, component publishes, status).
    pub published: AtomicU64,
    /// Outbox rows acknowledged by the broker and deleted.
    pub acked_rows: AtomicU64,
    /// Sessions established.
    pub connects: AtomicU64,
    /// Connection attempts that failed since the agent started. In memory only: a device
    /// offline for days must not write to flash for every failed attempt.
    pub connect_failures: AtomicU64,
    /// Whether a broker session is up now (for `outpost status`).
    pub connected: AtomicBool,
    /// When the outbox was last drained (empty, nothing awaiting a PUBACK), for
    /// `outpost status`.
    pub last_drained: Mutex<Option<Instant>>,
    /// The most recent error, for a person to act on. Fixed capacity: the retained status has
    /// to fit one bounded MQTT packet however long an error message is.
    pub last_error: Mutex<Option<heapless::String<LAST_ERROR_CAP>>>,
}

/// Most bytes of `last_error` kept (longer messages are cut at a character boundary).
pub const LAST_ERROR_CAP: usize = 256;

impl SyncStats {
    /// Records `error` as the last error (the engine also emits it as an event, which logs it).
    pub fn error(&self, error: impl Into<String>) {
        let error = error.into();
        let mut kept = heapless::String::new();
        for c in error.chars() {
            if kept.push(c).is_err() {
                break;
            }
        }
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(kept);
    }

    fn last_error(&self) -> Option<String> {
        let kept = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
        kept.as_ref().map(|s| s.as_str().to_string())
    }
}

#[derive(Serialize)]
struct Pair {
    records: u64,
    bytes: u64,
}

#[derive(Serialize)]
struct Rejected {
    records: u64,
    invocations: u64,
}

#[derive(Serialize)]
struct SyncCounters {
    published: u64,
    acked_rows: u64,
    connects: u64,
    connect_failures: u64,
    /// Same as `dead_letters.records` (persistent since wire v2; kept for old dashboards).
    oversize_rows: u64,
    inbound_rejected: u64,
}

/// The state store's health: its incarnation (new after a damaged store was replaced), rows
/// quarantined over its life, and the notes about its history.
#[derive(Serialize)]
struct StoreHealth<'a> {
    incarnation: &'a str,
    quarantined_rows: u64,
    notes: &'a [String],
}

#[derive(Serialize)]
struct Status<'a> {
    v: u8,
    device: &'a str,
    online: bool,
    agent_version: &'a str,
    apps: &'a [AppVersion],
    outbox: Pair,
    dropped: Pair,
    rejected: Rejected,
    dead_letters: Pair,
    inbox: Pair,
    skipped_runs: u64,
    failed_invocations: u64,
    sync: SyncCounters,
    store: StoreHealth<'a>,
    last_error: Option<String>,
    uptime_s: u64,
}

/// The online status document.
pub fn online(
    device: &str,
    apps: &[AppVersion],
    counters: &Counters,
    stats: &SyncStats,
    uptime_s: u64,
) -> Vec<u8> {
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let status = Status {
        v: 1,
        device,
        online: true,
        agent_version: env!("CARGO_PKG_VERSION"),
        apps,
        outbox: Pair {
            records: counters.outbox_records,
            bytes: counters.outbox_bytes,
        },
        dropped: Pair {
            records: counters.dropped_records,
            bytes: counters.dropped_bytes,
        },
        rejected: Rejected {
            records: counters.rejected_records,
            invocations: counters.rejected_invocations,
        },
        dead_letters: Pair {
            records: counters.dead_records,
            bytes: counters.dead_bytes,
        },
        inbox: Pair {
            records: counters.inbox_records,
            bytes: counters.inbox_bytes,
        },
        skipped_runs: counters.skipped_runs,
        failed_invocations: counters.failed_invocations,
        sync: SyncCounters {
            published: load(&stats.published),
            acked_rows: load(&stats.acked_rows),
            connects: load(&stats.connects),
            connect_failures: load(&stats.connect_failures),
            oversize_rows: counters.dead_records,
            inbound_rejected: counters.inbound_rejected,
        },
        store: StoreHealth {
            incarnation: &counters.incarnation,
            quarantined_rows: counters.quarantined_rows,
            notes: &counters.store_notes,
        },
        last_error: stats.last_error(),
        uptime_s,
    };
    serde_json::to_vec(&status).unwrap_or_default()
}

/// The offline document: the Last-Will payload, and what a clean shutdown publishes.
pub fn offline(device: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "v": 1,
        "device": device,
        "online": false,
        "agent_version": env!("CARGO_PKG_VERSION"),
    }))
    .unwrap_or_default()
}

/// The counters whose change triggers an early status refresh.
pub type Significant = [u64; 8];

/// The part of the counters whose change triggers an early status refresh (not the outbox
/// depth, which changes all the time while draining).
pub fn significant(counters: &Counters, stats: &SyncStats) -> Significant {
    [
        counters.failed_invocations,
        counters.dropped_records,
        counters.rejected_records,
        counters.skipped_runs,
        counters.dead_records,
        counters.inbound_rejected,
        stats.connect_failures.load(Ordering::Relaxed),
        counters.quarantined_rows,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_reports_counters_and_the_last_error() {
        let stats = SyncStats::default();
        stats.error("broker refused the credentials");
        let counters = Counters {
            outbox_records: 5,
            dropped_records: 2,
            ..Counters::default()
        };
        let apps = [AppVersion {
            previous: None,
            on_trial: false,
            last_update: None,
            name: "a".into(),
            version: "1.0.0".into(),
        }];
        let doc: serde_json::Value =
            serde_json::from_slice(&online("d1", &apps, &counters, &stats, 9)).expect("json");
        assert_eq!(doc["online"], true);
        assert_eq!(doc["outbox"]["records"], 5);
        assert_eq!(doc["dropped"]["records"], 2);
        assert_eq!(doc["apps"][0]["version"], "1.0.0");
        assert_eq!(doc["store"]["quarantined_rows"], 0);
        assert_eq!(doc["last_error"], "broker refused the credentials");
        stats.error("é".repeat(400));
        let long: serde_json::Value =
            serde_json::from_slice(&online("d1", &apps, &counters, &stats, 9)).expect("json");
        let kept = long["last_error"].as_str().expect("a string");
        assert!(
            kept.len() <= LAST_ERROR_CAP && kept.len() >= LAST_ERROR_CAP - 1,
            "{}",
            kept.len()
        );
        let gone: serde_json::Value = serde_json::from_slice(&offline("d1")).expect("json");
        assert_eq!(gone["online"], false);
    }
}
