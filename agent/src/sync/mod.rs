//! Store-and-forward sync: drains the outbox to an MQTT broker whenever the link allows.
//!
//! - [`wire`]: the versioned event format (JSON, or postcard for thin links).
//! - [`batch`]: outbox rows → MQTT messages (batching per stream, packet-size bounds).
//! - [`status`]: the retained device status and its counters.
//! - [`engine`]: the drain loop over the [`outpost_hal::mqtt::Transport`] boundary.

pub mod batch;
pub mod engine;
pub mod status;
pub mod wire;

pub use engine::{InboundRoute, SyncConfig, SyncEngine};
