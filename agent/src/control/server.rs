//! The running agent's side of the control socket: a listener on `{data_dir}/control.sock`
//! (mode 0600) served by one thread of its own, so store reads never run on the async thread
//! and a client can never block the agent's work. Clients are served one at a time (the
//! others wait in the listen backlog), each read a bounded line at a time with short
//! timeouts, so a silent or slow client holds the socket for seconds at most; a bad request
//! gets an error line.
//!
//! Why a thread and std's sockets rather than tokio's: the device binary has a 4 MiB budget
//! and the CLI's client already links std's Unix sockets; an async server (listener, split
//! streams, buffered reads, a task per client) measured ~30 KB more in the aarch64 binary.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::answer::Running;
use super::protocol::{self, LiveAgent, MAX_REQUEST_BYTES, Request, Response};
use crate::apps::AppVersion;
use crate::events::{AgentEvent, Events};
use crate::store::Store;
use crate::sync::status::SyncStats;

/// A connected client that sends no complete request line within this is closed, so it holds
/// the socket for no longer (the CLI writes its request as soon as it is connected).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(2);

/// A client that does not read its response within this is closed.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the control socket could not be set up (the agent runs on without it).
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// A live agent already answers on the socket.
    #[error("control socket {0}: another agent answers on it")]
    InUse(PathBuf),
    /// Something other than a socket has the socket's name.
    #[error("control socket {0}: exists and is not a socket")]
    NotASocket(PathBuf),
    /// Creating it (or its thread) failed.
    #[error("control socket {path}: {source}")]
    Io {
        /// The socket's path.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

/// A device's control server, made when the device is assembled and started by its run.
pub struct ControlServer {
    store: Store,
    apps: watch::Receiver<Vec<AppVersion>>,
}

impl ControlServer {
    /// A server answering from `store`, with `apps` as the apps the device runs.
    pub fn new(store: Store, apps: watch::Receiver<Vec<AppVersion>>) -> ControlServer {
        ControlServer { store, apps }
    }

    /// Serves `{data_dir}/control.sock` on a thread of its own until [`Serving::stop`]. A
    /// socket left by a crash (nobody answers on it) is replaced. When the socket cannot be
    /// made, a problem event says why and the agent runs on without it.
    pub fn start(
        self,
        data_dir: &Path,
        device: &str,
        events: &Events,
        stats: Arc<SyncStats>,
    ) -> Serving {
        let path = super::socket_path(data_dir);
        let shared = Shared {
            store: self.store,
            apps: self.apps,
            device: device.to_string(),
            data_dir: data_dir.to_path_buf(),
            started: Instant::now(),
            stats,
        };
        let stopping = Arc::new(AtomicBool::new(false));
        let thread = bind(&path).and_then(|listener| {
            let stopping = stopping.clone();
            std::thread::Builder::new()
                .name("outpost-control".into())
                .spawn(move || serve(&listener, &shared, &stopping))
                .map_err(|source| ControlError::Io {
                    path: path.clone(),
                    source,
                })
        });
        match thread {
            Ok(thread) => Serving {
                running: Some((path, stopping, thread)),
            },
            Err(error) => {
                events.emit(AgentEvent::problem(
                    "control",
                    format!("{error}; `outpost status`, `kv` and `outbox` cannot reach this agent"),
                ));
                Serving { running: None }
            }
        }
    }
}

/// A control socket being served. Stopping it (or dropping it) ends the thread once the
/// client it serves, if any, is done, waits for it (so it lets go of the store) and removes
/// the socket.
pub struct Serving {
    running: Option<(PathBuf, Arc<AtomicBool>, std::thread::JoinHandle<()>)>,
}

impl Serving {
    /// Stops serving. Blocking: at most one client's timeouts.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some((path, stopping, thread)) = self.running.take() {
            stopping.store(true, Ordering::Relaxed);
            // Wakes the thread's accept; it sees `stopping` and ends. If the socket file was
            // removed behind the agent's back nothing can wake it: leave it (it ends with the
            // process) rather than hang the shutdown.
            if UnixStream::connect(&path).is_ok() {
                let _ = thread.join();
            }
            let _ = std::fs::remove_file(&path);
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Binds the socket at `path`, replacing a stale one, readable and writable by the owner only.
fn bind(path: &Path) -> Result<UnixListener, ControlError> {
    let io = |source| ControlError::Io {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(ControlError::NotASocket(path.to_path_buf()));
        }
        Ok(_) => {
            // A crashed agent leaves its socket behind; a live one answers the connect.
            if UnixStream::connect(path).is_ok() {
                return Err(ControlError::InUse(path.to_path_buf()));
            }
            std::fs::remove_file(path).map_err(io)?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let listener = UnixListener::bind(path).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    Ok(listener)
}

/// What the answers draw on.
struct Shared {
    store: Store,
    apps: watch::Receiver<Vec<AppVersion>>,
    device: String,
    data_dir: PathBuf,
    started: Instant,
    stats: Arc<SyncStats>,
}

impl Shared {
    /// The live part of the status, now.
    fn running(&self) -> Running {
        let now = Instant::now();
        let last_drained = *self
            .stats
            .last_drained
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let last_error = self
            .stats
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|e| e.as_str().to_string());
        let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        Running {
            agent: LiveAgent {
                device: self.device.clone(),
                agent_version: env!("CARGO_PKG_VERSION").to_string(),
                uptime_s: now.duration_since(self.started).as_secs(),
                connected: self.stats.connected.load(Ordering::Relaxed),
                last_drain_s_ago: last_drained.map(|t| now.saturating_duration_since(t).as_secs()),
                connects: load(&self.stats.connects),
                connect_failures: load(&self.stats.connect_failures),
                published: load(&self.stats.published),
                last_error,
            },
            apps: self.apps.borrow().clone(),
        }
    }

    /// The response line to one request line (blocking: store reads).
    fn respond(&self, line: &[u8]) -> Vec<u8> {
        match protocol::decode_request(line) {
            Ok((request, format)) => {
                let running = matches!(request, Request::Status).then(|| self.running());
                super::respond(&self.store, running, &request, format, &self.data_dir)
            }
            Err(error) => protocol::encode_line(&Response::error(error.to_string())),
        }
    }
}

/// The serving thread: one client at a time until `stopping`.
fn serve(listener: &UnixListener, shared: &Shared, stopping: &AtomicBool) {
    for stream in listener.incoming() {
        if stopping.load(Ordering::Relaxed) {
            return;
        }
        match stream {
            Ok(stream) => client(&stream, shared),
            // Out of file descriptors, most likely: let the agent's own work go first.
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Serves one client: a request line, its response line, until it closes, idles, or sends a
/// line too long to resynchronise after.
fn client(stream: &UnixStream, shared: &Shared) {
    if stream.set_read_timeout(Some(IDLE_TIMEOUT)).is_err()
        || stream.set_write_timeout(Some(WRITE_TIMEOUT)).is_err()
    {
        return;
    }
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = Vec::new();
        // One byte over the bound is enough to know the line is too long.
        match (&mut reader)
            .take(MAX_REQUEST_BYTES as u64 + 1)
            .read_until(b'\n', &mut line)
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let complete = line.last() == Some(&b'\n');
        let mut writer = stream;
        let sent = writer.write_all(&shared.respond(&line));
        if sent.is_err() || !complete {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead as _, BufReader, Write as _};

    use super::*;
    use crate::control::client;
    use crate::control::protocol::{Format, ProtocolError};

    /// Fields drop in order: the server stops before its directory goes.
    struct Started {
        serving: Serving,
        stats: Arc<SyncStats>,
        dir: tempfile::TempDir,
    }

    fn start(dir: tempfile::TempDir) -> Started {
        let store = Store::in_memory().expect("store");
        let (_apps_tx, apps) = watch::channel(vec![AppVersion::local("a", "1.2.3")]);
        let stats = Arc::new(SyncStats::default());
        let serving = ControlServer::new(store, apps).start(
            dir.path(),
            "dev-1",
            &Events::new(),
            stats.clone(),
        );
        Started {
            serving,
            stats,
            dir,
        }
    }

    /// Sends raw bytes on a fresh connection, returns the first response line (blocking).
    /// The write may fail half-way: the agent closes once it has seen too much.
    fn raw(dir: &Path, bytes: &[u8]) -> String {
        let mut stream = UnixStream::connect(crate::control::socket_path(dir)).expect("connect");
        let _ = stream.write_all(bytes);
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).expect("read");
        line
    }

    fn ask(
        dir: &Path,
        request: &Request,
        format: Format,
    ) -> Result<Option<String>, client::ClientError> {
        client::ask(dir, request, format)
    }

    #[test]
    fn answers_requests_refuses_bad_ones_and_removes_its_socket_on_stop() {
        let server = start(tempfile::tempdir().expect("dir"));
        let dir = server.dir.path().to_path_buf();
        let path = crate::control::socket_path(&dir);
        let mode = std::fs::metadata(&path)
            .expect("socket")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        server.stats.connected.store(true, Ordering::Relaxed);

        // The serving thread answers without the async runtime's help.
        let status = ask(&dir, &Request::Status, Format::Json)
            .expect("asked")
            .expect("an agent");
        let doc: serde_json::Value = serde_json::from_str(&status).expect("json");
        assert_eq!(doc["reply"], "status");
        assert_eq!(doc["agent"]["device"], "dev-1", "a live agent answered");
        assert_eq!(doc["agent"]["connected"], true);
        assert_eq!(doc["apps"][0]["version"], "1.2.3");
        let text = ask(&dir, &Request::Status, Format::Text)
            .expect("asked")
            .expect("an agent");
        assert!(text.starts_with("device dev-1: agent "), "{text}");

        let malformed = raw(&dir, b"{\"request\":\"reboot\"}\n");
        assert!(
            malformed.contains("unknown request `reboot`"),
            "{malformed}"
        );
        let huge = raw(&dir, &vec![b'x'; 1 << 20]);
        assert!(huge.contains("longer than 4096 bytes"), "{huge}");
        let missing = ask(
            &dir,
            &Request::KvGet {
                app: None,
                namespace: "n".into(),
                key: "k".into(),
            },
            Format::Text,
        );
        assert!(
            matches!(
                &missing,
                Err(client::ClientError::Protocol { source: ProtocolError::Refused(m), .. })
                    if m == "no key 'k' in namespace 'n'"
            ),
            "still serving: {missing:?}"
        );

        server.serving.stop();
        assert!(!path.exists(), "socket removed on stop");
        let gone = ask(&dir, &Request::Status, Format::Json);
        assert!(matches!(gone, Ok(None)), "no agent: {gone:?}");
    }

    #[test]
    fn a_stale_socket_is_replaced_and_a_live_one_is_left_alone() {
        let dir = tempfile::tempdir().expect("dir");
        let path = crate::control::socket_path(dir.path());
        drop(UnixListener::bind(&path).expect("stale socket"));
        assert!(path.exists());
        let first = start(dir);
        let answered = ask(first.dir.path(), &Request::Status, Format::Json);
        assert!(matches!(answered, Ok(Some(_))), "{answered:?}");

        let events = Events::new();
        let mut heard = events.subscribe();
        let (_apps_tx, apps) = watch::channel(Vec::new());
        let second = ControlServer::new(Store::in_memory().expect("store"), apps).start(
            first.dir.path(),
            "dev-2",
            &events,
            Arc::default(),
        );
        second.stop();
        let problem = heard.try_recv().expect("a problem event");
        assert!(
            problem.line().contains("another agent answers on it"),
            "{}",
            problem.line()
        );
        assert!(path.exists(), "the live agent's socket stays");
    }
}
