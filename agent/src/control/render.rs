//! Responses rendered for a person: the lines `outpost status`, `kv list|get` and
//! `outpost outbox list` print. Rendered where the answer is made (by the agent, or by the
//! CLI's fallback through the same [`super::respond`]), so the output is the same either way
//! and the CLI never has to read the typed responses back.

use std::fmt::Write as _;
use std::path::Path;

use super::protocol::{KvReport, OutboxReport, Request, Response, StatusReport, StoreSummary};
use crate::report;

/// `response` to `request` as [`Response::Text`]; errors stay errors, and a `kv_get` that
/// found no entry, or one in several apps, becomes one. `data_dir` is named in hints.
pub fn render(request: &Request, response: Response, data_dir: &Path) -> Response {
    let text = match (request, response) {
        (_, Response::Status(status)) => status_text(&status, data_dir),
        (Request::KvGet { namespace, key, .. }, Response::Kv(kv)) => {
            match kv_get_text(&kv, namespace, key) {
                Ok(text) => text,
                Err(message) => return Response::error(message),
            }
        }
        (_, Response::Kv(kv)) => kv_list_text(&kv),
        (_, Response::Outbox(outbox)) => outbox_text(&outbox, data_dir),
        (_, other) => return other,
    };
    Response::Text { text }
}

fn kv_list_text(kv: &KvReport) -> String {
    let mut out = String::new();
    for e in &kv.entries {
        let _ = writeln!(out, "{}/{}/{} = {}", e.app, e.namespace, e.key, e.preview());
    }
    out
}

fn kv_get_text(kv: &KvReport, namespace: &str, key: &str) -> Result<String, String> {
    match kv.entries.as_slice() {
        [] => Err(format!("no key '{key}' in namespace '{namespace}'")),
        [entry] => Ok(format!("{}\n", entry.preview())),
        several => Err(format!(
            "key '{key}' exists in {} apps ({}); pick one with --app",
            several.len(),
            several
                .iter()
                .map(|e| e.app.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn outbox_text(outbox: &OutboxReport, data_dir: &Path) -> String {
    let mut out = String::new();
    for e in &outbox.entries {
        let _ = writeln!(
            out,
            "#{} {} {}/{} {}",
            e.seq,
            report::clock_time(e.time_ms),
            e.app,
            e.component,
            e.line
        );
    }
    let c = &outbox.counters;
    counters_text(&mut out, c);
    if c.quarantined_rows > 0 {
        let _ = writeln!(
            out,
            "quarantine: {} damaged row(s) set aside (outpost outbox quarantine --data {})",
            c.quarantined_rows,
            data_dir.display()
        );
    }
    out
}

/// The outbox and store lines `outbox list` and `status` share.
fn counters_text(out: &mut String, c: &StoreSummary) {
    let _ = writeln!(
        out,
        "outbox: {} record(s), {} byte(s); dropped {} ({} bytes); rejected {} record(s) in {} invocation(s)",
        c.outbox.records,
        c.outbox.bytes,
        c.dropped.records,
        c.dropped.bytes,
        c.rejected_records,
        c.rejected_invocations
    );
    let _ = writeln!(out, "store: incarnation {}", c.incarnation);
    for note in &c.notes {
        let _ = writeln!(out, "store note: {note}");
    }
}

fn status_text(status: &StatusReport, data_dir: &Path) -> String {
    let mut out = String::new();
    match &status.agent {
        Some(agent) => {
            let _ = writeln!(
                out,
                "device {}: agent {} running for {}s",
                agent.device, agent.agent_version, agent.uptime_s
            );
            let drained = match agent.last_drain_s_ago {
                Some(s) => format!("last drained {s}s ago"),
                None => "not drained yet".into(),
            };
            let _ = writeln!(
                out,
                "broker: {}, {drained}; {} connect(s), {} failed attempt(s), {} message(s) published",
                if agent.connected {
                    "connected"
                } else {
                    "not connected"
                },
                agent.connects,
                agent.connect_failures,
                agent.published
            );
            if let Some(error) = &agent.last_error {
                let _ = writeln!(out, "last error: {error}");
            }
        }
        None => {
            let _ = writeln!(
                out,
                "no agent answers on {}: read from the state file",
                data_dir.display()
            );
        }
    }
    if status.apps.is_empty() {
        out.push_str("apps: none\n");
    }
    for app in &status.apps {
        let mut notes = Vec::new();
        if app.on_trial {
            notes.push("on trial".to_string());
        }
        if let Some(previous) = &app.previous {
            notes.push(format!("previous {previous}"));
        }
        if let Some(update) = &app.last_update {
            notes.push(format!("last update: {update}"));
        }
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!(" ({})", notes.join("; "))
        };
        let _ = writeln!(out, "app {} {}{notes}", app.name, app.version);
    }
    let s = &status.store;
    counters_text(&mut out, s);
    let _ = writeln!(
        out,
        "inbox: {} message(s), {} byte(s); {} failed invocation(s), {} skipped run(s)",
        s.inbox.records, s.inbox.bytes, s.failed_invocations, s.skipped_runs
    );
    if s.dead_letters.records > 0 {
        let _ = writeln!(
            out,
            "dead letters: {} record(s), {} byte(s) (outpost outbox dead --data {})",
            s.dead_letters.records,
            s.dead_letters.bytes,
            data_dir.display()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apps::AppVersion;
    use crate::control::protocol::{Depth, KvItem, LiveAgent, OutboxItem};

    fn text(response: Response) -> String {
        match response {
            Response::Text { text } => text,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn kv_lines_and_the_get_rules() {
        let kv = KvReport {
            entries: vec![
                KvItem::new("a".into(), "n".into(), "k".into(), b"v"),
                KvItem::new("b".into(), "n".into(), "k".into(), &[0, 1]),
            ],
        };
        let list = Request::KvList {
            app: None,
            namespace: None,
        };
        assert_eq!(
            text(render(&list, Response::Kv(kv.clone()), Path::new("d"))),
            "a/n/k = v\nb/n/k = 0x0001\n"
        );
        let get = Request::KvGet {
            app: None,
            namespace: "n".into(),
            key: "k".into(),
        };
        assert_eq!(
            render(&get, Response::Kv(kv.clone()), Path::new("d")),
            Response::error("key 'k' exists in 2 apps (a, b); pick one with --app")
        );
        let one = KvReport {
            entries: kv.entries[..1].to_vec(),
        };
        assert_eq!(text(render(&get, Response::Kv(one), Path::new("d"))), "v\n");
        assert_eq!(
            render(
                &get,
                Response::Kv(KvReport { entries: vec![] }),
                Path::new("d")
            ),
            Response::error("no key 'k' in namespace 'n'")
        );
        assert_eq!(
            render(&get, Response::error("x"), Path::new("d")),
            Response::error("x")
        );
    }

    #[test]
    fn outbox_and_status_lines() {
        let counters = StoreSummary {
            outbox: Depth {
                records: 1,
                bytes: 20,
            },
            quarantined_rows: 2,
            incarnation: "inc".into(),
            ..StoreSummary::default()
        };
        let outbox = OutboxReport {
            entries: vec![OutboxItem {
                seq: 4,
                time_ms: 0,
                app: "a".into(),
                component: "c".into(),
                line: "event s: x".into(),
            }],
            counters: counters.clone(),
        };
        let listing = text(render(
            &Request::OutboxList { from: 0, limit: 1 },
            Response::Outbox(outbox),
            Path::new("/var/lib/outpost"),
        ));
        assert_eq!(
            listing,
            "#4 00:00:00.000 a/c event s: x\n\
             outbox: 1 record(s), 20 byte(s); dropped 0 (0 bytes); rejected 0 record(s) in 0 invocation(s)\n\
             store: incarnation inc\n\
             quarantine: 2 damaged row(s) set aside (outpost outbox quarantine --data /var/lib/outpost)\n"
        );
        let mut status = StatusReport {
            agent: None,
            apps: vec![],
            store: counters,
        };
        let offline = text(render(
            &Request::Status,
            Response::Status(status.clone()),
            Path::new("d"),
        ));
        assert!(
            offline.starts_with("no agent answers on d: read from the state file\napps: none\n"),
            "{offline}"
        );
        status.agent = Some(LiveAgent {
            device: "pi".into(),
            agent_version: "1.0.0".into(),
            uptime_s: 61,
            connected: true,
            last_drain_s_ago: Some(2),
            connects: 1,
            connect_failures: 0,
            published: 3,
            last_error: None,
        });
        status.apps = vec![AppVersion {
            on_trial: true,
            previous: Some("0.9.0".into()),
            ..AppVersion::local("app", "1.0.0")
        }];
        let online = text(render(
            &Request::Status,
            Response::Status(status),
            Path::new("d"),
        ));
        assert!(
            online.starts_with(
                "device pi: agent 1.0.0 running for 61s\n\
                 broker: connected, last drained 2s ago; 1 connect(s), 0 failed attempt(s), 3 message(s) published\n\
                 app app 1.0.0 (on trial; previous 0.9.0)\n"
            ),
            "{online}"
        );
    }
}
