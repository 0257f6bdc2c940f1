//! A real mosquitto broker for end-to-end tests: its own free loopback port, its own persistence
//! directory, started and restarted on demand.
//!
//! Readiness is an event, not a sleep: mosquitto runs with `-v`, a thread reads its log, and
//! [`Broker::start`] returns once the log says the broker is running. The same log tells when the
//! broker saved its in-memory database ([`Broker::wait_saved`]), which matters before a
//! [`Broker::kill`]: a SIGKILLed broker comes back with the state of its last autosave.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The mosquitto binary (Debian's package installs it here).
pub const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// How long a start may take before the test fails (a safety net; readiness is read from the log).
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Log lines kept for diagnostics and waiting; `-v` logs every packet, so older lines are dropped.
const LOG_LINES_KEPT: usize = 4000;

/// A running mosquitto. Dropping it kills the process; the persistence directory goes with it.
pub struct Broker {
    port: u16,
    /// The second listener's port, if [`Broker::start_with_listener`] made one.
    second_port: Option<u16>,
    dir: TempDir,
    child: Option<Child>,
    /// Reads the running process's stderr into `log`; ends when the process does.
    log_reader: Option<JoinHandle<()>>,
    log: Arc<Log>,
}

impl Broker {
    /// Starts a broker on a free loopback port with persistence in a fresh temporary directory,
    /// and returns once it accepts connections.
    pub fn start() -> Broker {
        Broker::launch_new(None)
    }

    /// Like [`Broker::start`], plus a second loopback listener on its own port
    /// ([`Broker::second_port`]) configured by `listener_lines`, the lines that follow its
    /// `listener PORT 127.0.0.1` line (TLS files, or `allow_anonymous false` and a
    /// `password_file`). Security settings are per listener (`per_listener_settings true`), so the
    /// first listener stays anonymous and plain for the test's own clients, while the agent meets
    /// the second one.
    pub fn start_with_listener(listener_lines: &str) -> Broker {
        Broker::launch_new(Some(listener_lines))
    }

    fn launch_new(second_listener: Option<&str>) -> Broker {
        let dir = tempfile::tempdir().expect("temp dir for mosquitto");
        let port = free_port();
        let second = second_listener.map(|lines| {
            let second = std::iter::repeat_with(free_port)
                .find(|p| *p != port)
                .expect("a second free port");
            (second, lines)
        });
        write_config(dir.path(), port, second);
        let mut broker = Broker {
            port,
            second_port: second.map(|(port, _)| port),
            dir,
            child: None,
            log_reader: None,
            log: Arc::new(Log::default()),
        };
        broker.launch();
        broker
    }

    /// The broker's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `mqtt://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// The port of the listener [`Broker::start_with_listener`] added.
    pub fn second_port(&self) -> u16 {
        self.second_port
            .expect("a broker started with Broker::start_with_listener")
    }

    /// SIGHUP: mosquitto reloads its configuration and password files. Returns once it logged
    /// "Reloading config." (the reload completes in the same turn of its single-threaded loop,
    /// before it serves the next packet).
    pub fn reload(&self) {
        let pid = self.child.as_ref().expect("broker running").id();
        let mark = self.log.mark();
        signal(pid, "HUP");
        let reloaded = self.log.wait_after(mark, START_TIMEOUT, |line| {
            line.contains("Reloading config.")
        });
        assert!(
            reloaded.is_some(),
            "mosquitto logged no reload within {START_TIMEOUT:?}; log tail:\n{}",
            self.log_tail(30)
        );
    }

    /// The directory holding the config and `mosquitto.db`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Whether the process is running (not killed or stopped).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILL: no goodbye to the clients, no final save. Returns once the process is reaped.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL on Unix
            let _ = child.wait();
        }
        self.join_log_reader();
    }

    /// SIGTERM: mosquitto closes its connections and saves its database. Returns once it exited.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "TERM");
            let _ = child.wait();
        }
        self.join_log_reader();
    }

    /// Waits until the log holds everything the ended process wrote, so a later wait cannot
    /// mistake its last lines for the next process's.
    fn join_log_reader(&mut self) {
        if let Some(reader) = self.log_reader.take() {
            let _ = reader.join();
        }
    }

    /// Starts the broker again (killing it first if it still runs) on the same port with the same
    /// persistence directory, so persistent sessions and retained messages survive as of its last
    /// save. Returns once it accepts connections.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    /// Makes the broker save its in-memory database now and returns once that save is complete,
    /// so the state as of this call (sessions, subscriptions, queued messages) survives a
    /// [`Broker::kill`].
    ///
    /// mosquitto saves on SIGUSR1 (and every `autosave_interval`). It logs "Saving in-memory
    /// database" when a save *starts*; its loop is single-threaded, so a second save that starts
    /// later proves the first one finished.
    pub fn wait_saved(&self) {
        let pid = self.child.as_ref().expect("broker running").id();
        let mut mark = self.log.mark();
        for _ in 0..2 {
            signal(pid, "USR1");
            let saved = self.log.wait_after(mark, START_TIMEOUT, |line| {
                line.contains("Saving in-memory database")
            });
            let Some((index, _)) = saved else {
                panic!(
                    "mosquitto logged no save within {START_TIMEOUT:?}; log tail:\n{}",
                    self.log_tail(30)
                );
            };
            mark = index + 1;
        }
    }

    /// The last `n` log lines, for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        self.log.tail(n)
    }

    /// A position in the log: lines logged so far (including dropped ones).
    pub fn log_mark(&self) -> u64 {
        self.log.mark()
    }

    /// Waits for a log line after `mark` that satisfies `pred`; `None` on timeout.
    pub fn wait_log_after(
        &self,
        mark: u64,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<String> {
        self.log
            .wait_after(mark, timeout, pred)
            .map(|(_, line)| line)
    }

    /// Spawns mosquitto and waits for its "running" line (or its exit, which fails the test).
    fn launch(&mut self) {
        assert!(self.child.is_none(), "broker already running");
        let mark = self.log.mark();
        let mut child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .arg("-v")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {MOSQUITTO}: {e} (apt-get install mosquitto)")
            });
        let stderr = child.stderr.take().expect("piped stderr");
        let log = self.log.clone();
        let reader = std::thread::Builder::new()
            .name(format!("mosquitto-{}-log", self.port))
            .spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    match line {
                        Ok(line) => log.push(line),
                        Err(_) => break,
                    }
                }
                log.push(END_OF_LOG.to_string());
            })
            .expect("log thread");
        self.child = Some(child);
        self.log_reader = Some(reader);
        let ready = self.log.wait_after(mark, START_TIMEOUT, |line| {
            line.ends_with(" running") || line == END_OF_LOG
        });
        match ready {
            Some((_, line)) if line != END_OF_LOG => {}
            other => {
                self.kill();
                panic!(
                    "mosquitto on port {} did not start ({}); log tail:\n{}",
                    self.port,
                    if other.is_none() {
                        "timed out"
                    } else {
                        "exited"
                    },
                    self.log_tail(30)
                );
            }
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Marker the log thread appends when mosquitto's stderr closes (the process ended).
const END_OF_LOG: &str = "<mosquitto stderr closed>";

/// mosquitto's log lines, shared between the reader thread and waiters.
#[derive(Default)]
struct Log {
    state: Mutex<LogState>,
    changed: Condvar,
}

#[derive(Default)]
struct LogState {
    /// Lines logged so far, including those no longer kept.
    total: u64,
    /// The most recent lines.
    lines: VecDeque<String>,
}

impl Log {
    fn push(&self, line: String) {
        let mut state = self.state.lock().unwrap();
        state.total += 1;
        state.lines.push_back(line);
        if state.lines.len() > LOG_LINES_KEPT {
            state.lines.pop_front();
        }
        self.changed.notify_all();
    }

    fn mark(&self) -> u64 {
        self.state.lock().unwrap().total
    }

    /// The first line with index >= `mark` satisfying `pred`, with its index, waiting up to
    /// `timeout` for it.
    fn wait_after(
        &self,
        mark: u64,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<(u64, String)> {
        let deadline = Instant::now() + timeout;
        let mut state = self.state.lock().unwrap();
        let mut next = mark;
        loop {
            let first_kept = state.total - state.lines.len() as u64;
            next = next.max(first_kept);
            while next < state.total {
                let line = &state.lines[(next - first_kept) as usize];
                if pred(line) {
                    return Some((next, line.clone()));
                }
                next += 1;
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            state = self.changed.wait_timeout(state, left).unwrap().0;
        }
    }

    fn tail(&self, n: usize) -> String {
        let state = self.state.lock().unwrap();
        let skip = state.lines.len().saturating_sub(n);
        state
            .lines
            .iter()
            .skip(skip)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A port that was free a moment ago: bind 127.0.0.1:0, read the port, release it.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a loopback port")
        .port()
}

/// Sends `kill -SIG pid` (no libc needed).
pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

fn write_config(dir: &Path, port: u16, second_listener: Option<(u16, &str)>) {
    let mut persistence_dir: PathBuf = dir.to_path_buf();
    persistence_dir.push(""); // mosquitto wants the trailing slash
    // mosquitto wants this before any security setting.
    let mut conf = String::from(if second_listener.is_some() {
        "per_listener_settings true\n"
    } else {
        ""
    });
    // Unlimited in-flight and queued messages and no size limit: the broker must never be the
    // reason a test message is delayed or dropped.
    conf += &format!(
        "listener {port} 127.0.0.1\n\
         allow_anonymous true\n\
         persistence true\n\
         persistence_location {}\n\
         autosave_interval 1\n\
         max_queued_messages 1000000\n\
         max_inflight_messages 0\n\
         message_size_limit 0\n",
        persistence_dir.display()
    );
    // As root, mosquitto 2 switches to user `mosquitto`, who cannot write our temp dir.
    if running_as_root() {
        conf.push_str("user root\n");
    }
    if let Some((second_port, lines)) = second_listener {
        conf += &format!("listener {second_port} 127.0.0.1\n{lines}\n");
    }
    std::fs::write(dir.join("mosquitto.conf"), conf).expect("write mosquitto.conf");
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}
