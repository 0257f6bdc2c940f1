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

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use outpost_abi::TriggerKind as AbiKind;
use outpost_hal::Clock;
use outpost_manifest::{AppManifest, TopicFilter, TriggerKind};
use tokio::sync::{Notify, watch};

use crate::executor::Executor;
use crate::identity::DeviceIdentity;
use crate::inbound::{Delivery, InboundRoute, Wanted};
use crate::runtime::Firing;
use crate::scheduler::Reporter;
use crate::store::{InboxEntry, Store, StoreError};

/// One `mqtt` trigger, under one of the filters its manifest filter becomes on this device.
#[derive(Debug, Clone)]
struct Route {
    filter: TopicFilter,
    component: String,
    trigger: Arc<str>,
}

/// One app's `mqtt` triggers and what runs them.
#[derive(Clone)]
struct AppRoutes {
    routes: Arc<[Route]>,
    executor: Executor,
    report: Reporter,
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

/// The device's inbox: every app's `mqtt` triggers, local and fleet-installed. Apps come and
/// go ([`Inbox::register`], [`Inbox::unregister`]) as the supervisor swaps versions; the
/// filters to subscribe to follow ([`Inbox::wanted`]).
///
/// Rows are stored under `app:trigger`, so a message waiting for an app that is being
/// replaced waits for its new version instead of being lost.
#[derive(Clone)]
pub struct Inbox {
    store: Store,
    identity: Arc<DeviceIdentity>,
    apps: Arc<RwLock<BTreeMap<String, AppRoutes>>>,
    wanted: Arc<watch::Sender<Wanted>>,
    max_bytes: usize,
    limits: InboxLimits,
}

impl Inbox {
    /// An inbox without apps for the device `identity`; messages above `max_bytes` are refused,
    /// and so is every message while the inbox holds `limits`' worth.
    pub fn new(
        store: Store,
        identity: DeviceIdentity,
        max_bytes: usize,
        limits: InboxLimits,
    ) -> Inbox {
        Inbox {
            store,
            identity: Arc::new(identity),
            apps: Arc::default(),
            wanted: Arc::new(watch::channel(Wanted::new()).0),
            max_bytes,
            limits,
        }
    }

    /// Routes `manifest`'s `mqtt` triggers (placeholders filled for this device) to `executor`,
    /// reporting each outcome to `report`; replaces what the app had. An app without `mqtt`
    /// triggers is removed instead.
    pub fn register(&self, manifest: &AppManifest, executor: Executor, report: Reporter) {
        let app = manifest.app.name.as_str();
        let routes: Vec<Route> = manifest
            .components
            .iter()
            .flat_map(|c| {
                c.triggers.iter().flat_map(move |t| match &t.kind {
                    TriggerKind::Mqtt { filter } => self
                        .identity
                        .filters(filter, app)
                        .into_iter()
                        .map(|filter| Route {
                            filter,
                            component: c.id.clone(),
                            trigger: Arc::from(t.name.as_str()),
                        })
                        .collect(),
                    _ => Vec::new(),
                })
            })
            .collect();
        {
            let mut apps = write(&self.apps);
            if routes.is_empty() {
                apps.remove(app);
            } else {
                apps.insert(
                    app.to_string(),
                    AppRoutes {
                        routes: routes.into(),
                        executor,
                        report,
                    },
                );
            }
        }
        self.publish_wanted();
    }

    /// Stops routing messages to `app`; rows already stored for it wait for its next version.
    pub fn unregister(&self, app: &str) {
        let removed = write(&self.apps).remove(app).is_some();
        if removed {
            self.publish_wanted();
        }
    }

    /// The filters the sync engine subscribes to, kept up to date as apps come and go.
    pub fn wanted(&self) -> watch::Receiver<Wanted> {
        self.wanted.subscribe()
    }

    fn publish_wanted(&self) {
        let wanted: Wanted = self.filters().into_iter().map(|f| (f, 0)).collect();
        self.wanted.send_if_modified(|current| {
            let changed = *current != wanted;
            *current = wanted;
            changed
        });
    }

    /// The topic filters to subscribe to, without repeats.
    pub fn filters(&self) -> Vec<String> {
        let apps = read(&self.apps);
        let mut filters: Vec<String> = apps
            .values()
            .flat_map(|a| a.routes.iter().map(|r| r.filter.as_str().to_string()))
            .collect();
        filters.sort();
        filters.dedup();
        filters
    }

    /// Whether some `mqtt` trigger's filter matches `topic`.
    pub fn claims(&self, topic: &str) -> bool {
        read(&self.apps)
            .values()
            .any(|a| a.routes.iter().any(|r| r.filter.matches(topic)))
    }

    /// Stores a message for every trigger it matches. Blocking (one durable write).
    pub fn accept(&self, topic: &str, payload: &[u8], now_ms: i64) -> Result<Accepted, StoreError> {
        if payload.len() > self.max_bytes {
            return Ok(Accepted::TooLarge {
                bytes: payload.len(),
                limit: self.max_bytes,
            });
        }
        let keys: Vec<String> = read(&self.apps)
            .iter()
            .flat_map(|(app, a)| {
                a.routes
                    .iter()
                    .filter(|r| r.filter.matches(topic))
                    .map(move |r| row_key(app, &r.trigger))
            })
            .collect();
        if keys.is_empty() {
            return Ok(Accepted::NoRoute);
        }
        let triggers: Vec<&str> = keys.iter().map(String::as_str).collect();
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

    /// Runs every stored message whose app is here, in order, a page at a time, reporting
    /// each outcome to its app's reporter; returns how many ran. Blocking.
    pub fn dispatch_pending(&self) -> Result<u64, StoreError> {
        let mut from = 0;
        let mut ran = 0;
        loop {
            let page = self.store.inbox_page(from, DISPATCH_PAGE)?;
            let Some(last) = page.last() else {
                return Ok(ran);
            };
            from = last.id + 1;
            for entry in page {
                if self.dispatch(entry) {
                    ran += 1;
                }
            }
        }
    }

    /// Runs one stored message; false if it did not run (its app is not here now, so it
    /// waits; or its trigger no longer exists, so it is dropped).
    fn dispatch(&self, entry: InboxEntry) -> bool {
        let found = {
            let apps = read(&self.apps);
            find_route(&apps, &entry.trigger)
                .map(|(app, route)| (app.executor.clone(), app.report.clone(), route.clone()))
        };
        let (executor, report, route) = match found {
            Ok(found) => found,
            Err(Missing::App) => return false,
            Err(Missing::Trigger) => {
                tracing::warn!(trigger = %entry.trigger, topic = %entry.topic, "no such mqtt trigger any more; message dropped");
                let _ = self.store.inbox_remove(entry.id);
                return false;
            }
        };
        let firing = Firing {
            name: route.trigger.clone(),
            kind: AbiKind::Mqtt,
            payload: entry.payload,
            topic: Some(entry.topic.into_boxed_str()),
        };
        let outcome = executor.run_blocking_for(&route.component, firing, Some(entry.id));
        report(&outcome);
        true
    }
}

/// The inbox row key of `trigger` of `app`: app names never hold `:`.
fn row_key(app: &str, trigger: &str) -> String {
    format!("{app}:{trigger}")
}

/// Why a stored row has no route now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Missing {
    /// Its app is not registered (being replaced, or not started yet): the row waits.
    App,
    /// Its app is here without that trigger: the row can never run.
    Trigger,
}

/// The route of a row key, or what is missing. Rows written before keys named their app (`trigger` alone) go to
/// whichever app has that trigger.
fn find_route<'a>(
    apps: &'a BTreeMap<String, AppRoutes>,
    key: &str,
) -> Result<(&'a AppRoutes, &'a Route), Missing> {
    if let Some((app, trigger)) = key.split_once(':')
        && let Some(routes) = apps.get(app)
    {
        return routes
            .routes
            .iter()
            .find(|r| &*r.trigger == trigger)
            .map(|r| (routes, r))
            .ok_or(Missing::Trigger);
    }
    apps.values()
        .find_map(|a| a.routes.iter().find(|r| &*r.trigger == key).map(|r| (a, r)))
        .ok_or(Missing::App)
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
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
        self.inbox.wanted()
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
