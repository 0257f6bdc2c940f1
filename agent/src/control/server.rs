//! The running agent's side of the control socket: a listener on `{data_dir}/control.sock`
//! (mode 0600), at most [`MAX_CLIENTS`] clients at a time, each read a bounded line at a time
//! with an idle timeout, every store read off the async thread. A client can never crash,
//! block or slow the agent beyond one bounded store read: a bad request gets an error line.

use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, watch};
use tokio::task::{JoinHandle, JoinSet};

use super::answer::{self, Running};
use super::protocol::{self, LiveAgent, MAX_REQUEST_BYTES, Request, Response};
use crate::apps::AppVersion;
use crate::events::{AgentEvent, Events};
use crate::store::Store;
use crate::sync::status::SyncStats;

/// Clients served at once; one more is told the agent is busy and closed.
pub const MAX_CLIENTS: usize = 4;

/// A client that sends nothing for this long is closed, so it cannot hold a slot forever.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// A client that does not read its response within this is closed.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the control socket could not be set up (the agent runs on without it).
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// A live agent already answers on the socket.
    #[error("control socket {0}: another agent answers on it")]
    InUse(PathBuf),
    /// Something other than a socket has the socket's name.
    #[error("control socket {0}: exists and is not a socket")]
    NotASocket(PathBuf),
    /// Creating it failed.
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

    /// Listens on `{data_dir}/control.sock` (bound before this returns; call inside the
    /// device's tokio runtime) until `stop` turns true, then removes the socket.
    /// A socket left by a crash (nobody answers on it) is replaced. When the socket cannot be
    /// made, a problem event says why and the agent runs on without it.
    pub fn spawn(
        self,
        data_dir: &Path,
        device: &str,
        events: &Events,
        stats: Arc<SyncStats>,
        stop: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        let path = super::socket_path(data_dir);
        let shared = Arc::new(Shared {
            store: self.store,
            apps: self.apps,
            device: device.to_string(),
            started: Instant::now(),
            stats,
            link: Mutex::new(Link::default()),
        });
        let heard = events.subscribe();
        // Bound before the task starts, so the socket exists once the device is running.
        let listener = match bind(&path) {
            Ok(listener) => listener,
            Err(error) => {
                events.emit(AgentEvent::problem(
                    "control",
                    format!("{error}; `outpost status`, `kv` and `outbox` cannot reach this agent"),
                ));
                return tokio::spawn(async {});
            }
        };
        tokio::spawn(async move {
            serve(listener, shared, heard, stop).await;
            let _ = std::fs::remove_file(&path);
        })
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
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
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

/// What every client's answers draw on.
struct Shared {
    store: Store,
    apps: watch::Receiver<Vec<AppVersion>>,
    device: String,
    started: Instant,
    stats: Arc<SyncStats>,
    link: Mutex<Link>,
}

impl Shared {
    /// The live part of the status, now.
    fn running(&self) -> Running {
        use std::sync::atomic::Ordering::Relaxed;
        let now = Instant::now();
        let link = *self.link.lock().unwrap_or_else(|p| p.into_inner());
        let last_error = self
            .stats
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|e| e.as_str().to_string());
        Running {
            agent: LiveAgent {
                device: self.device.clone(),
                agent_version: env!("CARGO_PKG_VERSION").to_string(),
                uptime_s: now.duration_since(self.started).as_secs(),
                connected: link.connected,
                last_drain_s_ago: link.last_drain.map(|t| now.duration_since(t).as_secs()),
                connects: self.stats.connects.load(Relaxed),
                connect_failures: self.stats.connect_failures.load(Relaxed),
                published: self.stats.published.load(Relaxed),
                last_error,
            },
            apps: self.apps.borrow().clone(),
        }
    }

    /// Answers `request` off the async thread.
    async fn answer(&self, request: Request) -> Response {
        let running = matches!(request, Request::Status).then(|| self.running());
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || answer::answer(&store, running, &request))
            .await
            .unwrap_or_else(|e| Response::error(format!("the store read failed: {e}")))
    }
}

/// The broker link as the agent's events tell it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Link {
    connected: bool,
    last_drain: Option<Instant>,
}

impl Link {
    fn observe(&mut self, event: &AgentEvent, now: Instant) {
        match event {
            AgentEvent::Connected => self.connected = true,
            AgentEvent::Disconnected { .. } | AgentEvent::ConnectFailed { .. } => {
                self.connected = false;
            }
            AgentEvent::Drained => self.last_drain = Some(now),
            _ => {}
        }
    }
}

async fn serve(
    listener: UnixListener,
    shared: Arc<Shared>,
    mut heard: broadcast::Receiver<AgentEvent>,
    mut stop: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(MAX_CLIENTS));
    let mut clients = JoinSet::new();
    let mut hearing = true;
    loop {
        tokio::select! {
            () = stopped(&mut stop) => break,
            event = heard.recv(), if hearing => match event {
                Ok(event) => shared
                    .link
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .observe(&event, Instant::now()),
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => hearing = false,
            },
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    while clients.try_join_next().is_some() {}
                    match permits.clone().try_acquire_owned() {
                        Ok(permit) => {
                            clients.spawn(client(stream, shared.clone(), permit));
                        }
                        Err(_) => {
                            // Never wait on a client we will not serve: one try, then close.
                            let busy = protocol::encode_line(&Response::error(format!(
                                "the agent is serving {MAX_CLIENTS} clients already; try again"
                            )));
                            let _ = stream.try_write(&busy);
                        }
                    }
                }
                Err(error) => {
                    // Out of file descriptors, most likely: let the agent's own work go first.
                    tracing::debug!(%error, "control socket: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    clients.abort_all();
}

/// Resolves once `stop` is true (or its sender is gone). Returns nothing, so no `watch::Ref`
/// (not `Send`) lives in the select's output across the accept loop's awaits.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Serves one client: a request line, its response line, until it closes, idles, or sends a
/// line too long to resynchronise after.
async fn client(stream: UnixStream, shared: Arc<Shared>, _permit: OwnedSemaphorePermit) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let mut line = Vec::new();
        // One byte over the bound is enough to know the line is too long.
        let mut bounded = (&mut reader).take(MAX_REQUEST_BYTES as u64 + 1);
        match tokio::time::timeout(IDLE_TIMEOUT, bounded.read_until(b'\n', &mut line)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
            Ok(Ok(_)) => {}
        }
        let complete = line.last() == Some(&b'\n');
        let response = match protocol::decode_request(&line) {
            Ok(request) => shared.answer(request).await,
            Err(error) => Response::error(error.to_string()),
        };
        let line_out = protocol::encode_line(&response);
        let sent = tokio::time::timeout(WRITE_TIMEOUT, write.write_all(&line_out)).await;
        if !matches!(sent, Ok(Ok(()))) || !complete {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead as _, BufReader, Write as _};

    use super::*;
    use crate::control::client;

    struct Running {
        dir: tempfile::TempDir,
        events: Events,
        stop: watch::Sender<bool>,
        task: JoinHandle<()>,
    }

    fn start(dir: tempfile::TempDir) -> Running {
        let store = Store::in_memory().expect("store");
        let (_apps_tx, apps) = watch::channel(vec![AppVersion::local("a", "1.2.3")]);
        let events = Events::new();
        let (stop, stop_rx) = watch::channel(false);
        let task = ControlServer::new(store, apps).spawn(
            dir.path(),
            "dev-1",
            &events,
            Arc::default(),
            stop_rx,
        );
        Running {
            dir,
            events,
            stop,
            task,
        }
    }

    /// Sends raw bytes on a fresh connection, returns the first response line (blocking).
    /// The write may fail half-way: the agent closes once it has seen too much.
    fn raw(dir: &Path, bytes: Vec<u8>) -> String {
        let mut stream = std::os::unix::net::UnixStream::connect(crate::control::socket_path(dir))
            .expect("connect");
        let _ = stream.write_all(&bytes);
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).expect("read");
        line
    }

    async fn blocking<R: Send + 'static>(work: impl FnOnce() -> R + Send + 'static) -> R {
        tokio::task::spawn_blocking(work)
            .await
            .expect("blocking task")
    }

    #[tokio::test]
    async fn answers_requests_refuses_bad_ones_and_removes_its_socket_on_stop() {
        let server = start(tempfile::tempdir().expect("dir"));
        let path = crate::control::socket_path(server.dir.path());
        let mode = std::fs::metadata(&path)
            .expect("socket")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        server.events.emit(AgentEvent::Connected);
        tokio::task::yield_now().await;

        let dir = server.dir.path().to_path_buf();
        let status = blocking(move || client::ask(&dir, &Request::Status)).await;
        let Ok(Some(Response::Status(status))) = status else {
            panic!("{status:?}")
        };
        let agent = status.agent.expect("a live agent answered");
        assert_eq!(agent.device, "dev-1");
        assert_eq!(status.apps, vec![AppVersion::local("a", "1.2.3")]);

        let dir = server.dir.path().to_path_buf();
        let malformed = blocking(move || raw(&dir, b"{\"request\":\"reboot\"}\n".to_vec())).await;
        assert!(malformed.contains("malformed request"), "{malformed}");
        let dir = server.dir.path().to_path_buf();
        let huge = blocking(move || raw(&dir, vec![b'x'; 1 << 20])).await;
        assert!(huge.contains("longer than 4096 bytes"), "{huge}");

        let dir = server.dir.path().to_path_buf();
        let kv = blocking(move || {
            client::ask(
                &dir,
                &Request::KvList {
                    app: None,
                    namespace: None,
                },
            )
        })
        .await;
        assert!(
            matches!(kv, Ok(Some(Response::Kv(_)))),
            "still serving: {kv:?}"
        );

        let _ = server.stop.send(true);
        server.task.await.expect("server task");
        assert!(!path.exists(), "socket removed on stop");
        let dir = server.dir.path().to_path_buf();
        let gone = blocking(move || client::ask(&dir, &Request::Status)).await;
        assert!(matches!(gone, Ok(None)), "no agent: {gone:?}");
    }

    #[tokio::test]
    async fn a_stale_socket_is_replaced_and_a_live_one_is_left_alone() {
        let dir = tempfile::tempdir().expect("dir");
        let path = crate::control::socket_path(dir.path());
        drop(std::os::unix::net::UnixListener::bind(&path).expect("stale socket"));
        assert!(path.exists());
        let first = start(dir);
        let dir = first.dir.path().to_path_buf();
        let answered = blocking(move || client::ask(&dir, &Request::Status)).await;
        assert!(
            matches!(answered, Ok(Some(Response::Status(_)))),
            "{answered:?}"
        );

        let events = Events::new();
        let mut heard = events.subscribe();
        let (_apps_tx, apps) = watch::channel(Vec::new());
        let (_stop, stop_rx) = watch::channel(false);
        let second = ControlServer::new(Store::in_memory().expect("store"), apps).spawn(
            first.dir.path(),
            "dev-2",
            &events,
            Arc::default(),
            stop_rx,
        );
        second.await.expect("second ends at once");
        let problem = heard.recv().await.expect("a problem event");
        assert!(
            problem.line().contains("another agent answers on it"),
            "{}",
            problem.line()
        );
        assert!(path.exists(), "the live agent's socket stays");
    }

    #[test]
    fn the_link_follows_connects_disconnects_and_drains() {
        let start = Instant::now();
        let mut link = Link::default();
        link.observe(&AgentEvent::Connected, start);
        link.observe(&AgentEvent::Drained, start);
        assert_eq!(
            link,
            Link {
                connected: true,
                last_drain: Some(start)
            }
        );
        link.observe(
            &AgentEvent::Disconnected {
                reason: "gone".into(),
            },
            start,
        );
        assert!(!link.connected);
        assert_eq!(link.last_drain, Some(start), "the last drain is kept");
        link.observe(&AgentEvent::Connected, start);
        link.observe(
            &AgentEvent::ConnectFailed {
                error: "refused".into(),
            },
            start,
        );
        assert!(!link.connected);
    }
}
