//! The agent's local control socket, so a running device can be inspected: `outpost status`,
//! `kv list|get` and `outbox list` ask the agent through `{data_dir}/control.sock` while it
//! holds the state file, and read the file themselves when no agent answers.
//!
//! - [`protocol`]: the request and response types, one JSON line each (pure).
//! - [`answer`]: a request answered from a store; shared by the agent and the fallback.
//! - [`render`]: an answer as the lines a person reads.
//! - [`server`]: the agent's listener (bounded requests and clients, reads off-thread).
//! - [`client`]: the CLI's blocking request.

pub mod answer;
pub mod client;
pub mod protocol;
pub mod render;
pub mod server;

use std::path::{Path, PathBuf};

pub use server::ControlServer;

use crate::store::Store;
use protocol::{Format, Request};

/// The socket's file name in the state directory.
pub const SOCKET_FILE: &str = "control.sock";

/// The control socket of the agent whose state directory is `data_dir`.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_FILE)
}

/// The response line to `request`, answered from `store` (with `running`, the live agent's
/// part of a status) in `format`: what the agent sends, and what the CLI computes itself when
/// no agent answers. `data_dir` is named in hints. Blocking: store reads.
pub fn respond(
    store: &Store,
    running: Option<answer::Running>,
    request: &Request,
    format: Format,
    data_dir: &Path,
) -> Vec<u8> {
    let response = answer::answer(store, running, request);
    let response = match format {
        Format::Json => response,
        Format::Text => render::render(request, response, data_dir),
    };
    protocol::encode_line(&response)
}
