//! Answers a request from a store: the one code path behind both the running agent's socket
//! (called off the async thread) and the CLI's fallback when no agent runs, so both print the
//! same thing.

use super::protocol::{
    Depth, KvItem, KvReport, LiveAgent, MAX_OUTBOX_ROWS, OutboxItem, OutboxReport, Request,
    Response, StatusReport, StoreSummary,
};
use crate::apps::AppVersion;
use crate::report;
use crate::store::{Counters, Store, StoreError};

/// What a running agent adds to the status: itself and the apps it runs.
#[derive(Debug, Clone)]
pub struct Running {
    /// The agent's live state.
    pub agent: LiveAgent,
    /// The apps it runs (local and fleet-installed).
    pub apps: Vec<AppVersion>,
}

/// Answers `request` from `store`; `running` is the live agent's part of the status (`None`
/// when reading a state file no agent holds). Blocking: store reads.
pub fn answer(store: &Store, running: Option<Running>, request: &Request) -> Response {
    let file = store.path().display().to_string();
    let result = match request {
        Request::Status => status(store, running).map(Response::Status),
        Request::KvList { app, namespace } => kv(store, app.as_deref(), namespace.as_deref(), None),
        Request::KvGet {
            app,
            namespace,
            key,
        } => kv(store, app.as_deref(), Some(namespace), Some(key)),
        Request::OutboxList { from, limit } => outbox(store, *from, *limit),
    };
    result.unwrap_or_else(|e| Response::error(format!("reading {file}: {e}")))
}

fn status(store: &Store, running: Option<Running>) -> Result<StatusReport, StoreError> {
    let counters = store.counters()?;
    // Without an agent the apps are unknown: the local one is named only by the agent's
    // settings, and listing the fleet installs here cost the device binary ~2 KB.
    let (agent, apps) = match running {
        Some(Running { agent, apps }) => (Some(agent), apps),
        None => (None, Vec::new()),
    };
    Ok(StatusReport {
        agent,
        apps,
        store: summary(counters),
    })
}

fn kv(
    store: &Store,
    app: Option<&str>,
    namespace: Option<&str>,
    key: Option<&str>,
) -> Result<Response, StoreError> {
    let entries = store
        .kv_entries(app, namespace)?
        .into_iter()
        .filter(|e| key.is_none_or(|k| e.key == k))
        .map(|e| KvItem::new(e.app, e.ns, e.key, &e.value))
        .collect();
    Ok(Response::Kv(KvReport { entries }))
}

fn outbox(store: &Store, from: u64, limit: usize) -> Result<Response, StoreError> {
    let entries = store
        .outbox_read(from, limit.min(MAX_OUTBOX_ROWS))?
        .into_iter()
        .map(|entry| OutboxItem {
            seq: entry.seq,
            time_ms: entry.record.time_ms,
            line: report::record_line(&entry.record.body.into()),
            app: entry.record.app,
            component: entry.record.component,
        })
        .collect();
    Ok(Response::Outbox(OutboxReport {
        entries,
        counters: summary(store.counters()?),
    }))
}

/// The counters as the protocol shows them.
pub fn summary(c: Counters) -> StoreSummary {
    StoreSummary {
        outbox: Depth {
            records: c.outbox_records,
            bytes: c.outbox_bytes,
        },
        dropped: Depth {
            records: c.dropped_records,
            bytes: c.dropped_bytes,
        },
        rejected_records: c.rejected_records,
        rejected_invocations: c.rejected_invocations,
        dead_letters: Depth {
            records: c.dead_records,
            bytes: c.dead_bytes,
        },
        inbox: Depth {
            records: c.inbox_records,
            bytes: c.inbox_bytes,
        },
        failed_invocations: c.failed_invocations,
        skipped_runs: c.skipped_runs,
        quarantined_rows: c.quarantined_rows,
        incarnation: c.incarnation,
        notes: c.store_notes,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::runtime::{Effects, OutboxEffect};
    use crate::store::apply::apply_batch;
    use crate::store::{Commit, OutboxLimits};

    fn store_with(app: &str, key: &str, value: &[u8], events: &[&str]) -> Store {
        let store = Store::in_memory().expect("store");
        let mut effects = Effects::default();
        effects
            .kv
            .insert(("ns".into(), key.into()), Some(value.to_vec()));
        effects.records = events
            .iter()
            .map(|data| OutboxEffect::Event {
                stream: "s".into(),
                data: data.as_bytes().to_vec(),
            })
            .collect();
        let commit = Commit {
            app: app.into(),
            component: "c".into(),
            time_ms: 1,
            effects: Arc::new(effects),
            trigger_run: None,
            inbox_done: None,
            failed: false,
            unsynced: None,
        };
        let results = apply_batch(&store, &OutboxLimits::default(), &[commit], 0).expect("apply");
        assert!(results.iter().all(Result::is_ok));
        store
    }

    #[test]
    fn kv_requests_filter_by_app_namespace_and_key() {
        let store = store_with("a", "k", b"v1", &[]);
        let all = answer(
            &store,
            None,
            &Request::KvList {
                app: None,
                namespace: None,
            },
        );
        let Response::Kv(KvReport { entries }) = all else {
            panic!("{all:?}")
        };
        assert_eq!(entries.len(), 1);
        assert_eq!(
            (entries[0].app.as_str(), entries[0].namespace.as_str()),
            ("a", "ns")
        );
        assert_eq!(
            entries[0],
            KvItem::new("a".into(), "ns".into(), "k".into(), b"v1")
        );
        let missing = answer(
            &store,
            None,
            &Request::KvGet {
                app: Some("a".into()),
                namespace: "ns".into(),
                key: "other".into(),
            },
        );
        assert_eq!(missing, Response::Kv(KvReport { entries: vec![] }));
    }

    #[test]
    fn outbox_and_status_show_rows_and_counters_with_or_without_an_agent() {
        let store = store_with("a", "k", b"v", &["one", "two", "three"]);
        let listed = answer(&store, None, &Request::OutboxList { from: 0, limit: 2 });
        let Response::Outbox(report) = listed else {
            panic!("{listed:?}")
        };
        assert_eq!(report.entries.len(), 2, "the limit holds");
        assert_eq!(report.entries[0].line, "event s: one");
        assert_eq!(report.counters.outbox.records, 3);

        let offline = answer(&store, None, &Request::Status);
        let Response::Status(offline) = offline else {
            panic!("{offline:?}")
        };
        assert_eq!(offline.agent, None);
        assert!(offline.apps.is_empty(), "only the agent knows its apps");
        assert_eq!(offline.store.outbox.records, 3);
        assert_eq!(offline.store.incarnation, store.incarnation());

        let agent = LiveAgent {
            device: "d1".into(),
            agent_version: "1".into(),
            uptime_s: 9,
            connected: false,
            last_drain_s_ago: None,
            connects: 0,
            connect_failures: 2,
            published: 0,
            last_error: Some("refused".into()),
        };
        let running = Running {
            agent: agent.clone(),
            apps: vec![AppVersion::local("a", "1.0.0")],
        };
        let online = answer(&store, Some(running), &Request::Status);
        let Response::Status(online) = online else {
            panic!("{online:?}")
        };
        assert_eq!(online.agent, Some(agent));
        assert_eq!(online.apps[0].version, "1.0.0");
    }
}
