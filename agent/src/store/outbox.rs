//! Outbox bounds: a device's disk is small, so the outbox has a record and a byte limit and an
//! explicit policy for when it is full. Whatever is refused or dropped is counted persistently.

use serde::{Deserialize, Serialize};

use super::Durability;

/// What happens when new records would exceed the outbox bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FullPolicy {
    /// Refuse the invocation's effects (it fails with "outbox full") and count it.
    RejectNew,
    /// Delete the oldest records until the new ones fit, and count what was dropped.
    /// The default: a device that is offline for weeks keeps running and keeps recent data.
    #[default]
    DropOldest,
}

impl std::str::FromStr for FullPolicy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "reject-new" => Ok(FullPolicy::RejectNew),
            "drop-oldest" => Ok(FullPolicy::DropOldest),
            other => Err(format!(
                "unknown outbox full-policy '{other}' (expected reject-new or drop-oldest)"
            )),
        }
    }
}

/// The outbox's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxLimits {
    /// Most records the outbox holds.
    pub max_records: u64,
    /// Most payload bytes the outbox holds.
    pub max_bytes: u64,
    /// What to do when full.
    pub policy: FullPolicy,
    /// When commits become durable (`[outbox] durability`): immediate, or a window.
    #[serde(default)]
    pub durability: Durability,
    /// Longest a commit made durable by the commit journal waits for the checkpoint that makes
    /// it durable in redb itself (`[outbox] checkpoint_every`): longer is gentler on flash
    /// (each checkpoint writes ~20 pages), shorter replays less after a crash.
    #[serde(default = "default_checkpoint_every", with = "humantime_serde")]
    pub checkpoint_every: std::time::Duration,
}

fn default_checkpoint_every() -> std::time::Duration {
    super::lazy::CHECKPOINT_AFTER
}

impl Default for OutboxLimits {
    fn default() -> Self {
        OutboxLimits {
            max_records: 1_000_000,
            max_bytes: 256 * 1024 * 1024,
            policy: FullPolicy::default(),
            durability: Durability::Immediate,
            checkpoint_every: default_checkpoint_every(),
        }
    }
}
