//! Routes inbound MQTT messages to the components whose `mqtt` triggers match, through a
//! durable inbox: a message is stored (one row per matching trigger) before it is acknowledged
//! to the broker, and a row is removed in the same transaction as its handler's effects. A crash
//! between acknowledgement and dispatch therefore loses nothing, and no message's effects land
//! twice; rows left by a crash run on the next start.

use std::sync::Arc;

use outpost_abi::TriggerKind as AbiKind;
use outpost_manifest::{AppManifest, TopicFilter, TriggerKind};

use outpost_hal::Clock;
use tokio::sync::{Notify, watch};

use crate::executor::{Executor, Outcome};
use crate::inbound::{self, Delivery, InboundRoute, Wanted};
use crate::runtime::Firing;
use crate::store::{InboxEntry, Store, StoreError};

/// One `mqtt` trigger.
#[derive(Debug, Clone)]
struct Route {
    filter: TopicFilter,
    component: String,
    trigger: Arc<str>,
}

/// What became of an inbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// Stored for these inbox ids (one per matching trigger).
    Stored(Vec<u64>),
    /// No trigger subscribes to its topic (it is acknowledged and dropped, and counted).
    NoRoute,
    /// Larger than the inbound limit (acknowledged and dropped, and counted).
    TooLarge {
        /// Its size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
}

/// The inbox of one app.
#[derive(Clone)]
pub struct Inbox {
    store: Store,
    executor: Executor,
    routes: Arc<[Route]>,
    max_bytes: usize,
}

impl Inbox {
    /// The inbox for `manifest`'s `mqtt` triggers; messages above `max_bytes` are refused.
    pub fn new(
        manifest: &AppManifest,
        store: Store,
        executor: Executor,
        max_bytes: usize,
    ) -> Inbox {
        let routes: Vec<Route> = manifest
            .components
            .iter()
            .flat_map(|c| {
                c.triggers.iter().filter_map(|t| match &t.kind {
                    TriggerKind::Mqtt { filter } => Some(Route {
                        filter: filter.clone(),
                        component: c.id.clone(),
                        trigger: Arc::from(t.name.as_str()),
                    }),
                    _ => None,
                })
            })
            .collect();
        Inbox {
            store,
            executor,
            routes: routes.into(),
            max_bytes,
        }
    }

    /// The topic filters to subscribe to, without repeats.
    pub fn filters(&self) -> Vec<String> {
        let mut filters: Vec<String> = self
            .routes
            .iter()
            .map(|r| r.filter.as_str().to_string())
            .collect();
        filters.sort();
        filters.dedup();
        filters
    }

    /// Whether some `mqtt` trigger's filter matches `topic`.
    pub fn claims(&self, topic: &str) -> bool {
        self.routes.iter().any(|r| r.filter.matches(topic))
    }

    /// Stores a message for every trigger it matches. Blocking (one durable write).
    pub fn accept(&self, topic: &str, payload: &[u8], now_ms: i64) -> Result<Accepted, StoreError> {
        if payload.len() > self.max_bytes {
            return Ok(Accepted::TooLarge {
                bytes: payload.len(),
                limit: self.max_bytes,
            });
        }
        let triggers: Vec<&str> = self
            .routes
            .iter()
            .filter(|r| r.filter.matches(topic))
            .map(|r| &*r.trigger)
            .collect();
        if triggers.is_empty() {
            return Ok(Accepted::NoRoute);
        }
        // One durable write for the message, however many triggers it matches.
        let ids = self.store.inbox_put(&triggers, topic, payload, now_ms)?;
        Ok(Accepted::Stored(ids))
    }

    /// Runs every stored message in order; returns the outcomes. Blocking.
    pub fn dispatch_pending(&self) -> Result<Vec<Outcome>, StoreError> {
        Ok(self
            .store
            .inbox_pending()?
            .into_iter()
            .filter_map(|entry| self.dispatch(entry))
            .collect())
    }

    /// Runs one stored message. `None` if its trigger no longer exists (the row is dropped).
    pub fn dispatch(&self, entry: InboxEntry) -> Option<Outcome> {
        let Some(route) = self.routes.iter().find(|r| *r.trigger == entry.trigger) else {
            tracing::warn!(trigger = %entry.trigger, topic = %entry.topic, "no such mqtt trigger any more; message dropped");
            let _ = self.store.inbox_remove(entry.id);
            return None;
        };
        let firing = Firing {
            name: route.trigger.clone(),
            kind: AbiKind::Mqtt,
            payload: entry.payload,
        };
        Some(
            self.executor
                .run_blocking_for(&route.component, firing, Some(entry.id)),
        )
    }
}

/// The inbox as an inbound route of the sync engine: messages on the `mqtt` triggers' topics
/// are stored before they are acknowledged, then the dispatcher is woken.
pub struct InboxRoute {
    /// Where messages are stored.
    pub inbox: Inbox,
    /// Woken after a message was stored, so the dispatcher runs it.
    pub wake: Arc<Notify>,
    /// Wall clock for the stored rows.
    pub clock: Arc<dyn Clock>,
}

impl InboundRoute for InboxRoute {
    fn name(&self) -> &'static str {
        "inbox"
    }

    fn wanted(&self) -> watch::Receiver<Wanted> {
        inbound::fixed(self.inbox.filters())
    }

    fn claims(&self, topic: &str) -> bool {
        self.inbox.claims(topic)
    }

    fn deliver(&self, topic: &str, payload: &[u8]) -> Delivery {
        match self.inbox.accept(topic, payload, self.clock.wall_ms()) {
            Ok(Accepted::Stored(_)) => {
                self.wake.notify_one();
                Delivery::Accepted
            }
            Ok(Accepted::NoRoute) => Delivery::Refused {
                reason: "no mqtt trigger matches its topic".into(),
            },
            Ok(Accepted::TooLarge { bytes, limit }) => Delivery::Refused {
                reason: format!("{bytes} bytes, over the {limit}-byte limit"),
            },
            Err(error) => Delivery::Retry {
                reason: format!("cannot store it: {error}"),
            },
        }
    }
}
