//! Routes inbound MQTT messages to the components whose `mqtt` triggers match, through a
//! durable inbox: a message is stored (one row per matching trigger) before it is acknowledged
//! to the broker, and a row is removed in the same transaction as its handler's effects. A crash
//! between acknowledgement and dispatch therefore loses nothing, and no message's effects land
//! twice; rows left by a crash run on the next start.
//!
//! The inbox is bounded ([`InboxLimits`], `[inbox]` in `agent.toml`) and its policy when full
//! is **refuse and count**: a message that would take it past either bound is acknowledged, not
//! stored, counted persistently (`inbound_rejected` in the status) and reported with the bounds
//! in the reason. Back-pressure (not acknowledging) was the alternative, and it is worse here:
//! under MQTT 3.1.1 an unacknowledged message is re-delivered only after a reconnect, so the
//! device would have to drop its session to get it again; and the broker's own queue limit
//! (`max_queued_messages`) then drops messages that nobody counts. A refusal at the device is
//! explicit, counted and visible to the operator. The dispatcher reads the inbox a page at a
//! time, so memory does not follow its depth either.

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
    /// The inbox is full (acknowledged and dropped, and counted).
    Full {
        /// Messages waiting.
        records: u64,
        /// Stored bytes waiting.
        bytes: u64,
        /// The bounds.
        limits: InboxLimits,
    },
}

/// The inbox's bounds: what waits for the components, on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboxLimits {
    /// Most messages waiting (one per matching trigger).
    #[serde(default = "default_max_records")]
    pub max_records: u64,
    /// Most stored bytes waiting.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
}

impl Default for InboxLimits {
    fn default() -> Self {
        InboxLimits {
            max_records: default_max_records(),
            max_bytes: default_max_bytes(),
        }
    }
}

/// A thousand commands waiting is a device far behind: past it, refusing is the honest answer.
fn default_max_records() -> u64 {
    1_000
}

/// 16 MiB of commands waiting on disk, a small part of a device's storage.
fn default_max_bytes() -> u64 {
    16 * 1024 * 1024
}

/// Inbox rows the dispatcher reads per page: it never holds more than this many messages.
const DISPATCH_PAGE: usize = 4;

/// The inbox of one app.
#[derive(Clone)]
pub struct Inbox {
    store: Store,
    executor: Executor,
    routes: Arc<[Route]>,
    max_bytes: usize,
    limits: InboxLimits,
}

impl Inbox {
    /// The inbox for `manifest`'s `mqtt` triggers; messages above `max_bytes` are refused, and
    /// so is every message while the inbox holds `limits`' worth.
    pub fn new(
        manifest: &AppManifest,
        store: Store,
        executor: Executor,
        max_bytes: usize,
        limits: InboxLimits,
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
            limits,
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
        // Deliveries come one at a time and the dispatcher only removes rows, so the size read
        // here can only shrink before the write below.
        let counters = self.store.counters()?;
        let adding = triggers.len() as u64;
        if counters.inbox_records + adding > self.limits.max_records
            || counters.inbox_bytes + adding * payload.len() as u64 > self.limits.max_bytes
        {
            return Ok(Accepted::Full {
                records: counters.inbox_records,
                bytes: counters.inbox_bytes,
                limits: self.limits,
            });
        }
        // One durable write for the message, however many triggers it matches.
        let ids = self.store.inbox_put(&triggers, topic, payload, now_ms)?;
        Ok(Accepted::Stored(ids))
    }

    /// Runs every stored message in order, a page at a time, handing each outcome to
    /// `report` as it finishes; returns how many ran. Blocking.
    pub fn dispatch_pending(&self, report: impl Fn(&Outcome)) -> Result<u64, StoreError> {
        let mut from = 0;
        let mut ran = 0;
        loop {
            let page = self.store.inbox_page(from, DISPATCH_PAGE)?;
            let Some(last) = page.last() else {
                return Ok(ran);
            };
            from = last.id + 1;
            for entry in page {
                if let Some(outcome) = self.dispatch(entry) {
                    report(&outcome);
                    ran += 1;
                }
            }
        }
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
            Ok(Accepted::Full {
                records,
                bytes,
                limits,
            }) => Delivery::Refused {
                reason: format!(
                    "the inbox is full ({records} messages, {bytes} bytes waiting; [inbox] max_records = {}, max_bytes = {})",
                    limits.max_records, limits.max_bytes
                ),
            },
            Err(error) => Delivery::Retry {
                reason: format!("cannot store it: {error}"),
            },
        }
    }
}
