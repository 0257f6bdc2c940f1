//! The device status document, published retained on `{prefix}/{device}/status` so the latest
//! state of a device is readable from the broker while the device is offline. The Last-Will
//! message replaces it with `online: false` when the link dies.
//!
//! It is published when it changed, not on a timer: [`fingerprint`] is the document without
//! what changes by itself (uptime, and the count of messages published, which the status's own
//! publish moves), so an agent with nothing going on publishes nothing and sleeps.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

pub use crate::apps::AppVersion;
use crate::scheduler::SchedulerStats;
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
    /// Whether the device's wall clock was synchronised when the session last looked: until it
    /// is, event times are re-anchored or marked `unsynced` (docs/WIRE.md, "Time").
    pub clock_synced: AtomicBool,
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

/// How well the schedules hold (since the agent started).
#[derive(Serialize)]
struct Schedule {
    /// Cron and interval runs that started late (`scheduler::plan::is_late`).
    late_runs: u64,
    /// The most any run started after its due time, in ms.
    max_late_ms: u64,
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
    /// `immediate`, or the durability window: the most a power cut loses.
    durability: &'a str,
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
    schedule: Schedule,
    failed_invocations: u64,
    sync: SyncCounters,
    store: StoreHealth<'a>,
    last_error: Option<String>,
    uptime_s: u64,
    clock_synced: bool,
}

/// After a change (a commit, an ack, an inbound message, a problem), how long the session waits
/// before checking whether the status changed, so a burst of changes costs one read of the
/// counters and at most one publish.
pub const SETTLE: Duration = Duration::from_secs(1);

/// When to check the status after a change at `now`: once the change settled ([`SETTLE`], or
/// `every` if shorter), and not sooner than `every` after the `last` check or publish. Generic
/// over the instant type, so it is tested with plain durations.
pub fn check_at<T>(now: T, last: T, every: Duration) -> T
where
    T: std::ops::Add<Duration, Output = T> + Ord,
{
    (now + SETTLE.min(every)).max(last + every)
}

/// What the status document is made of.
pub struct Parts<'a> {
    /// Device id.
    pub device: &'a str,
    /// Running apps.
    pub apps: &'a [AppVersion],
    /// The store's counters.
    pub counters: &'a Counters,
    /// The sync engine's counters.
    pub stats: &'a SyncStats,
    /// The schedulers' counters (lateness).
    pub schedule: &'a SchedulerStats,
}

/// The online status document.
pub fn online(parts: &Parts<'_>, uptime_s: u64) -> Vec<u8> {
    serde_json::to_vec(&document(parts, uptime_s)).unwrap_or_default()
}

/// The document without uptime and the count of published messages: equal fingerprints mean
/// nothing worth publishing changed.
pub fn fingerprint(parts: &Parts<'_>) -> Vec<u8> {
    let mut status = document(parts, 0);
    status.sync.published = 0;
    serde_json::to_vec(&status).unwrap_or_default()
}

fn document<'a>(parts: &Parts<'a>, uptime_s: u64) -> Status<'a> {
    let Parts {
        device,
        apps,
        counters,
        stats,
        schedule,
    } = *parts;
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let (late_runs, max_late_ms) = schedule.lateness();
    Status {
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
        schedule: Schedule {
            late_runs,
            max_late_ms,
        },
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
            durability: &counters.durability,
            quarantined_rows: counters.quarantined_rows,
            notes: &counters.store_notes,
        },
        last_error: stats.last_error(),
        uptime_s,
        clock_synced: stats.clock_synced.load(Ordering::Relaxed),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_reports_counters_and_the_last_error() {
        let stats = SyncStats::default();
        stats.error("broker refused the credentials");
        let counters = Counters {
            outbox_records: 5,
            durability: "1s".into(),
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
        let schedule = SchedulerStats::default();
        schedule.record_start(
            std::time::Duration::from_millis(40),
            std::time::Duration::from_millis(10),
        );
        let parts = Parts {
            device: "d1",
            apps: &apps,
            counters: &counters,
            stats: &stats,
            schedule: &schedule,
        };
        let doc: serde_json::Value = serde_json::from_slice(&online(&parts, 9)).expect("json");
        assert_eq!(doc["online"], true);
        assert_eq!(doc["outbox"]["records"], 5);
        assert_eq!(doc["dropped"]["records"], 2);
        assert_eq!(doc["apps"][0]["version"], "1.0.0");
        assert_eq!(doc["store"]["quarantined_rows"], 0);
        assert_eq!(doc["schedule"]["late_runs"], 1);
        assert_eq!(doc["schedule"]["max_late_ms"], 40);
        assert_eq!(doc["store"]["durability"], "1s");
        assert_eq!(doc["last_error"], "broker refused the credentials");
        assert_eq!(doc["clock_synced"], false);
        stats.clock_synced.store(true, Ordering::Relaxed);
        let synced: serde_json::Value = serde_json::from_slice(&online(&parts, 9)).expect("json");
        assert_eq!(synced["clock_synced"], true);
        stats.error("é".repeat(400));
        let long: serde_json::Value = serde_json::from_slice(&online(&parts, 9)).expect("json");
        let kept = long["last_error"].as_str().expect("a string");
        assert!(
            kept.len() <= LAST_ERROR_CAP && kept.len() >= LAST_ERROR_CAP - 1,
            "{}",
            kept.len()
        );
        // What changes by itself does not change the fingerprint; a counter does.
        let before = fingerprint(&parts);
        stats.published.fetch_add(1, Ordering::Relaxed);
        assert_eq!(fingerprint(&parts), before);
        stats.acked_rows.fetch_add(1, Ordering::Relaxed);
        assert_ne!(fingerprint(&parts), before);
        let gone: serde_json::Value = serde_json::from_slice(&offline("d1")).expect("json");
        assert_eq!(gone["online"], false);
    }

    #[test]
    fn a_change_is_checked_after_it_settles_and_at_most_once_per_period() {
        let s = Duration::from_secs;
        // Quiet for long: one settle time after the change.
        assert_eq!(check_at(s(1000), s(0), s(60)), s(1001));
        // Checked 10 s ago: not before the period is over.
        assert_eq!(check_at(s(1000), s(990), s(60)), s(1050));
        // A period shorter than the settle time bounds it too.
        let ms = Duration::from_millis;
        assert_eq!(check_at(ms(1000), ms(0), ms(200)), ms(1200));
    }
}
