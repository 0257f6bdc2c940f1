//! Typed agent events: what the agent tells the world about itself, as data.
//!
//! The library never prints. Each part of the agent (sync engine, fleet updater, supervisor,
//! schedulers) emits [`AgentEvent`]s through an [`Events`] handle; the CLI renders them for
//! people (one line each, journald-friendly) or as JSON lines for scripts (`--events json`), and
//! tests and benches wait on them by variant instead of grepping text. One fact, one event: an
//! event is emitted by the one place that knows the fact.
//!
//! The channel is a bounded broadcast: a slow or absent listener never holds up the agent; a
//! listener that falls more than [`CAPACITY`] events behind is told how many it missed.

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// Events kept for a listener that has fallen behind; older ones are skipped (and counted).
pub const CAPACITY: usize = 1024;

/// Something the agent did or noticed.
///
/// The JSON form (`--events json`) is `{"event":"<snake_case name>", ...fields}`; fields are
/// only ever added, so scripts and tests keep working across versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AgentEvent {
    /// The agent is up: device id, broker and state directory.
    Started {
        /// Device id.
        device: String,
        /// Broker URL.
        broker: String,
        /// State directory.
        data_dir: String,
        /// When commits reach the disk and what a power cut can lose (`durability immediate:
        /// …` or `durability window 1s: …`); empty from agents before it was reported.
        #[serde(default)]
        durability: String,
    },
    /// A broker session is established (subscriptions and status sent).
    Connected,
    /// The broker session ended; the engine backs off and reconnects.
    Disconnected {
        /// Why, as the transport said it.
        reason: String,
    },
    /// A connection attempt failed.
    ConnectFailed {
        /// Why, naming the fix where known (credentials, TLS, unreachable).
        error: String,
    },
    /// The outbox is empty and nothing is awaiting a PUBACK.
    Drained,
    /// An inbound message was stored in the inbox and acknowledged.
    InboundStored {
        /// Its topic.
        topic: String,
    },
    /// Outbox rows that can never be sent (larger than the packet limit) were moved to the
    /// dead letters and counted (`outpost outbox dead` lists them).
    DeadLettered {
        /// Rows moved.
        records: u64,
        /// The first one's sequence number.
        first_seq: u64,
        /// Why the first one can never be sent.
        reason: String,
    },
    /// An inbound message was refused (acknowledged, not stored) and counted.
    InboundRefused {
        /// Its topic.
        topic: String,
        /// Why.
        reason: String,
    },
    /// An invocation finished (one line, as `outpost up` prints it).
    Invoked {
        /// The component.
        component: String,
        /// The trigger that started it.
        trigger: String,
        /// Whether it succeeded (its effects are committed).
        ok: bool,
        /// The outcome line.
        line: String,
    },
    /// A fleet download started.
    FleetFetching {
        /// App.
        app: String,
        /// Version being fetched.
        version: String,
        /// Bundle size in bytes.
        bytes: u64,
        /// Chunks in the bundle.
        chunks: u32,
    },
    /// A fleet download stored before a restart goes on.
    FleetResuming {
        /// App.
        app: String,
        /// Version being fetched.
        version: String,
        /// Chunks already stored.
        stored: u32,
        /// Chunks in the bundle.
        chunks: u32,
    },
    /// Every chunk is in; the bundle is being verified and compiled.
    FleetVerifying {
        /// App.
        app: String,
        /// Version.
        version: String,
    },
    /// A version of a fleet app was started.
    FleetRunning {
        /// App.
        app: String,
        /// Version.
        version: String,
        /// Whether it is in its health window.
        on_trial: bool,
    },
    /// An update report was queued for the broker (accepted, refused, rolled back, ...).
    UpdateReported {
        /// App.
        app: String,
        /// `accepted`, `confirmed`, `refused`, `rolled-back` or `abandoned`.
        result: String,
        /// The version the update was about, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to_version: Option<String>,
        /// The report as one line.
        line: String,
    },
    /// Something went wrong that a person may need to act on; the agent carries on.
    Problem {
        /// Which part noticed it: `sync`, `fleet`, `inbox`, `store`, ...
        area: String,
        /// What happened and, where known, the fix.
        message: String,
    },
    /// Shutdown was requested.
    Stopping,
    /// Everything is flushed and stopped.
    Stopped,
}

impl AgentEvent {
    /// A [`AgentEvent::Problem`] from `area`.
    pub fn problem(area: &str, message: impl Into<String>) -> AgentEvent {
        AgentEvent::Problem {
            area: area.to_string(),
            message: message.into(),
        }
    }

    /// Whether this is routine, expected many times an hour on a healthy device (the outbox
    /// drained, a message stored, an invocation that succeeded): people see it only when they
    /// ask for detail (`-v`); problems, connects, disconnects, failed invocations and fleet
    /// steps are always shown. Scripts reading `--events json` get every event.
    pub fn is_routine(&self) -> bool {
        matches!(
            self,
            AgentEvent::Drained
                | AgentEvent::InboundStored { .. }
                | AgentEvent::Invoked { ok: true, .. }
        )
    }

    /// One line for a person (and journald): `area: what happened`.
    pub fn line(&self) -> String {
        match self {
            AgentEvent::Started {
                device,
                broker,
                data_dir,
                durability,
            } => format!(
                "outpost agent: device {device} -> {broker} (state in {data_dir}; {durability})"
            ),
            AgentEvent::Connected => "sync: connected".into(),
            AgentEvent::Disconnected { reason } => format!("sync: disconnected ({reason})"),
            AgentEvent::ConnectFailed { error } => format!("sync: cannot connect: {error}"),
            AgentEvent::Drained => "sync: drained".into(),
            AgentEvent::InboundStored { topic } => {
                format!("inbox: stored and acknowledged a message on {topic}")
            }
            AgentEvent::DeadLettered {
                records,
                first_seq,
                reason,
            } => format!(
                "sync: {records} outbox row(s) can never be sent (first seq {first_seq}: {reason}); moved to the dead letters (`outpost outbox dead`)"
            ),
            AgentEvent::InboundRefused { topic, reason } => {
                format!("inbox: refused a message on {topic}: {reason}")
            }
            AgentEvent::Invoked { line, .. } => line.clone(),
            AgentEvent::FleetFetching {
                app,
                version,
                bytes,
                chunks,
            } => format!("fleet: fetching {app} {version}: {bytes} bytes in {chunks} chunks"),
            AgentEvent::FleetResuming {
                app,
                version,
                stored,
                chunks,
            } => format!("fleet: resuming {app} {version}: {stored}/{chunks} chunks stored"),
            AgentEvent::FleetVerifying { app, version } => {
                format!("fleet: verifying {app} {version}")
            }
            AgentEvent::FleetRunning {
                app,
                version,
                on_trial,
            } => format!(
                "fleet: running {app} {version}{}",
                if *on_trial { " (health window)" } else { "" }
            ),
            AgentEvent::UpdateReported { line, .. } => format!("fleet: {line}"),
            AgentEvent::Problem { area, message } => format!("{area}: {message}"),
            AgentEvent::Stopping => "outpost agent: stopping".into(),
            AgentEvent::Stopped => "outpost agent: stopped".into(),
        }
    }
}

/// The sending side, cheap to clone; every part of the agent that has something to say holds
/// one. Emitting never blocks and never fails: with no listener the event is simply dropped.
#[derive(Clone)]
pub struct Events {
    sender: broadcast::Sender<AgentEvent>,
}

impl Default for Events {
    fn default() -> Self {
        Events::new()
    }
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("listeners", &self.sender.receiver_count())
            .finish()
    }
}

impl Events {
    /// A new channel with no listeners yet.
    pub fn new() -> Events {
        let (sender, _) = broadcast::channel(CAPACITY);
        Events { sender }
    }

    /// Sends `event` to every listener (if any); also logs problems through `tracing`, so
    /// a device without a listener still has them in its journal.
    pub fn emit(&self, event: AgentEvent) {
        if let AgentEvent::Problem { area, message } = &event {
            tracing::warn!(area = %area, "{message}");
        }
        let _ = self.sender.send(event);
    }

    /// A new listener: it sees every event emitted from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<AgentEvent> {
        self.sender.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_their_json_form() {
        let events = [
            AgentEvent::Connected,
            AgentEvent::problem("sync", "publish failed"),
            AgentEvent::FleetRunning {
                app: "beacon".into(),
                version: "2.0.0".into(),
                on_trial: true,
            },
        ];
        for event in events {
            let json = serde_json::to_string(&event).expect("serialises");
            assert!(json.starts_with("{\"event\":"), "{json}");
            let back: AgentEvent = serde_json::from_str(&json).expect("parses");
            assert_eq!(back, event);
        }
        assert_eq!(
            AgentEvent::FleetRunning {
                app: "beacon".into(),
                version: "2.0.0".into(),
                on_trial: true
            }
            .line(),
            "fleet: running beacon 2.0.0 (health window)"
        );
    }

    #[test]
    fn routine_events_are_the_healthy_repeats_and_never_problems() {
        let invoked = |ok| AgentEvent::Invoked {
            component: "c".into(),
            trigger: "t".into(),
            ok,
            line: String::new(),
        };
        assert!(AgentEvent::Drained.is_routine());
        assert!(invoked(true).is_routine());
        assert!(
            !invoked(false).is_routine(),
            "a failed invocation is always shown"
        );
        assert!(!AgentEvent::Connected.is_routine());
        assert!(!AgentEvent::problem("sync", "x").is_routine());
    }

    #[tokio::test]
    async fn every_listener_sees_each_event_and_no_listener_is_fine() {
        let events = Events::new();
        events.emit(AgentEvent::Drained); // nobody listens: dropped, no error
        let mut a = events.subscribe();
        let mut b = events.subscribe();
        events.emit(AgentEvent::Connected);
        assert_eq!(a.recv().await.expect("a"), AgentEvent::Connected);
        assert_eq!(b.recv().await.expect("b"), AgentEvent::Connected);
    }
}
