//! The agent's local control socket, so a running device can be inspected: `outpost status`,
//! `kv list|get` and `outbox list` ask the agent through `{data_dir}/control.sock` while it
//! holds the state file, and read the file themselves when no agent answers.
//!
//! - [`protocol`]: the request and response types, one JSON line each (pure).
//! - [`answer`]: a request answered from a store; shared by the agent and the fallback.
//! - [`server`]: the agent's listener (bounded requests and clients, reads off-thread).
//! - [`client`]: the CLI's blocking request.

pub mod answer;
pub mod client;
pub mod protocol;
pub mod server;

use std::path::{Path, PathBuf};

pub use server::ControlServer;

/// The socket's file name in the state directory.
pub const SOCKET_FILE: &str = "control.sock";

/// The control socket of the agent whose state directory is `data_dir`.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_FILE)
}
