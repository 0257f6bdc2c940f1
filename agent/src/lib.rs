//! Outpost: an offline-first edge agent that runs signed WebAssembly components.
//!
//! # Layout
//! - [`runtime`]: wasmi engines, loading and checking components, the ABI v1 host functions, and
//!   one fresh sandbox per invocation.
//! - [`store`]: the redb state file (the only module that names redb): key-value data, the
//!   bounded outbox, counters, fleet state, and the group-commit thread that makes each
//!   invocation's effects durable all at once.
//! - [`executor`]: runs one invocation and commits its effects — the path every trigger takes.
//! - [`scheduler`]: cron, interval, on-start and sensor triggers.
//! - [`app`]: assembles the above from an `outpost.toml`.
//! - [`apps`]: the list of apps a device runs, as its status shows it.
//! - [`device`]: one device assembled from `agent.toml` (store, board, apps, fleet, inbox,
//!   sync) and run until shutdown — what `outpost agent` runs.
//! - [`build`]: runs components' build commands.
//! - `watch`: what `outpost watch` polls and which components a change touches (operator builds).
//! - `devtest`: component tests from files next to an app (`outpost test`; operator builds).
//! - [`report`]: prints outcomes and events for people.
//! - `templates` (feature `operator`): the app templates `outpost new` writes.
//! - [`inbound`]: the routes inbound MQTT messages take (the sync engine knows no consumer).
//! - [`inbox`]: inbound MQTT messages for `mqtt` triggers, stored before they are acknowledged.
//! - [`sync`]: drains the outbox to an MQTT broker (store-and-forward).
//! - [`config`]: the device configuration, `agent.toml`.
//! - [`events`]: typed agent events (connected, drained, fetching, ...) the CLI renders and
//!   tests wait on; the library itself never prints.
//!
//! `ARCHITECTURE.md` follows one invocation from trigger to commit.

pub mod app;
pub mod apps;
pub mod binding;
pub mod build;
pub mod config;
pub mod control;
pub mod device;
#[cfg(feature = "operator")]
pub mod devtest;
pub mod events;
pub mod executor;
pub mod fleet;
pub mod identity;
pub mod inbound;
pub mod inbox;
#[cfg(feature = "operator")]
pub mod pack;
pub mod policy;
pub mod report;
pub mod runtime;
pub mod scheduler;
pub mod store;
pub mod sync;
#[cfg(feature = "operator")]
pub mod templates;
#[cfg(feature = "operator")]
pub mod watch;
