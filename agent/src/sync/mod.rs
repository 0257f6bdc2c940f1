//! Store-and-forward sync: drains the outbox to an MQTT broker whenever the link allows.
//!
//! - [`wire`]: the versioned event format (JSON, or postcard for thin links).
//! - [`batch`]: outbox rows → MQTT messages (batching per stream, packet-size bounds).
//! - [`anchor`]: the true time of events committed before the wall clock synchronised.
//! - [`status`]: the retained device status and its counters.
//! - [`drain`]: the drain's rules as a pure state machine (what to read and send next, what a
//!   PUBACK releases, what a session's end means).
//! - [`subscriptions`]: which subscribe/unsubscribe calls match what the inbound routes want.
//! - [`offload`]: the engine's only way to the store, off the async thread.
//! - [`gate`]: back-pressure on inbound messages (memory never follows the broker's queue).
//! - `session` (private): one broker session's I/O loop around the drain.
//! - [`engine`]: connect, session, back off, reconnect, over the
//!   [`outpost_hal::mqtt::Transport`] boundary.
//!
//! The engine knows no consumer of inbound messages: they are [`crate::inbound::InboundRoute`]s.

pub mod anchor;
pub mod batch;
pub mod drain;
pub mod engine;
pub mod gate;
pub mod offload;
mod rate;
mod session;
pub mod status;
pub mod subscriptions;
pub mod wire;

#[cfg(test)]
mod tests;

pub use engine::{SyncConfig, SyncEngine};
