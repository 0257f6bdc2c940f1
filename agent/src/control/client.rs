//! The CLI's side of the control socket: one request, one response, blocking. "No agent
//! answers" (no socket, or a socket nobody listens on) is not an error but `None`, so the
//! caller can read the state file instead.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::protocol::{self, Format, ProtocolError, Request};

/// How long to wait for the agent's response: a store read on a slow SD card, not more.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Longest response read: bounds the CLI's memory if something else listens on the socket.
const MAX_RESPONSE_BYTES: u64 = 256 << 20;

/// Why asking the agent failed (it was there, but the exchange did not complete).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting, writing or reading failed.
    #[error("control socket {path}: {source}")]
    Io {
        /// The socket.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The agent closed the connection without an answer.
    #[error("control socket {0}: the agent closed the connection without an answer")]
    NoAnswer(PathBuf),
    /// The answer did not decode, or it is an error reply.
    #[error("control socket {path}: {source}")]
    Protocol {
        /// The socket.
        path: PathBuf,
        /// What was wrong.
        source: ProtocolError,
    },
}

/// Sends `request` to the agent running on `data_dir`, asking for `format`; `Ok(None)` when
/// no agent answers there, else what to print ([`protocol::decode_response`]): an error reply
/// is [`ClientError::Protocol`] with [`ProtocolError::Refused`].
pub fn ask(
    data_dir: &Path,
    request: &Request,
    format: Format,
) -> Result<Option<String>, ClientError> {
    let path = super::socket_path(data_dir);
    let io = |source| ClientError::Io {
        path: path.clone(),
        source,
    };
    let mut stream = match UnixStream::connect(&path) {
        Ok(stream) => stream,
        Err(e) if is_nobody_there(&e) => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    stream.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(io)?;
    stream
        .write_all(&protocol::encode_request(request, format))
        .map_err(io)?;
    let mut line = Vec::new();
    BufReader::new(stream)
        .take(MAX_RESPONSE_BYTES)
        .read_until(b'\n', &mut line)
        .map_err(io)?;
    if line.is_empty() {
        return Err(ClientError::NoAnswer(path));
    }
    protocol::decode_response(&line)
        .map(Some)
        .map_err(|source| ClientError::Protocol { path, source })
}

/// No socket file, or one left by an agent that is gone.
fn is_nobody_there(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
    )
}
