//! A real mosquitto for end-to-end tests and benches: its own free loopback port, its own
//! persistence directory, started and restarted on demand.
//!
//! Readiness is an event, not a sleep: a thread reads mosquitto's log, and [`Broker::start`]
//! returns once the log says the broker is running. For tests mosquitto runs with `-v`, so the
//! same log tells when the broker saved its in-memory database ([`Broker::wait_saved`]), which
//! matters before a [`Broker::kill`]: a SIGKILLed broker comes back with the state of its last
//! autosave. Benches use [`Broker::start_tuned`]: no persistence, no per-packet log.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tempfile::TempDir;

use crate::log::{Log, read_lines};
use crate::mosquitto::{free_port, test_config, tuned_config};
use crate::signal;

pub use crate::mosquitto::{MOSQUITTO, mosquitto_version};

/// How long a start, save or reload may take before the test fails (a safety net; each is read
/// from the log).
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Log lines kept for diagnostics and waiting; `-v` logs every packet, so older lines are dropped.
const LOG_LINES_KEPT: usize = 4000;

/// Marker the log thread appends when mosquitto's stderr closes (the process ended).
const END_OF_LOG: &str = "<mosquitto stderr closed>";

/// How the broker is configured.
#[derive(Debug, Clone, Copy)]
enum Flavour<'a> {
    /// Persistence on (autosave every second), `-v`; optionally a second listener with these
    /// lines.
    Test(Option<&'a str>),
    /// Never the bottleneck of a throughput figure: no persistence, no per-packet log,
    /// TCP_NODELAY, no queue limits.
    Tuned,
}

/// A running mosquitto. Dropping it kills the process; the persistence directory goes with it.
pub struct Broker {
    /// The first listener's port.
    port: u16,
    /// The second listener's port, if [`Broker::start_with_listener`] made one.
    second_port: Option<u16>,
    /// Config, persistence; removed on drop.
    dir: TempDir,
    /// Whether mosquitto runs with `-v` (tests) or not (tuned).
    verbose: bool,
    child: Option<Child>,
    /// Reads the running process's stderr into `log`; ends when the process does.
    log_reader: Option<JoinHandle<()>>,
    log: Arc<Log<String>>,
}

impl Broker {
    /// Starts a broker on a free loopback port with persistence in a fresh temporary directory,
    /// and returns once it accepts connections.
    pub fn start() -> Broker {
        Broker::launch_new(Flavour::Test(None))
    }

    /// Like [`Broker::start`], plus a second loopback listener on its own port
    /// ([`Broker::second_port`]) configured by `listener_lines`, the lines that follow its
    /// `listener PORT 127.0.0.1` line (TLS files, or `allow_anonymous false` and a
    /// `password_file`). Security settings are per listener (`per_listener_settings true`), so the
    /// first listener stays anonymous and plain for the test's own clients, while the agent meets
    /// the second one.
    pub fn start_with_listener(listener_lines: &str) -> Broker {
        Broker::launch_new(Flavour::Test(Some(listener_lines)))
    }

    /// A broker for throughput benches: no persistence, no per-packet logging, no queue or
    /// in-flight limits, TCP_NODELAY. [`Broker::wait_saved`] and [`Broker::reload`] do not apply.
    pub fn start_tuned() -> Broker {
        Broker::launch_new(Flavour::Tuned)
    }

    fn launch_new(flavour: Flavour<'_>) -> Broker {
        let dir = tempfile::tempdir().expect("temp dir for mosquitto");
        let port = free_port();
        let second = match flavour {
            Flavour::Test(Some(lines)) => {
                let second = std::iter::repeat_with(free_port)
                    .find(|p| *p != port)
                    .expect("a second free port");
                Some((second, lines))
            }
            _ => None,
        };
        let conf = match flavour {
            Flavour::Test(_) => test_config(dir.path(), port, second),
            Flavour::Tuned => tuned_config(port),
        };
        std::fs::write(dir.path().join("mosquitto.conf"), conf).expect("write mosquitto.conf");
        let mut broker = Broker {
            port,
            second_port: second.map(|(port, _)| port),
            dir,
            verbose: matches!(flavour, Flavour::Test(_)),
            child: None,
            log_reader: None,
            log: Arc::new(Log::new(LOG_LINES_KEPT)),
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

    /// The directory holding the config and `mosquitto.db`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The running broker's process id (benches read its CPU time from /proc).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("broker running").id()
    }

    /// Whether the process is running (not killed or stopped).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
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
            let Some(found) = saved else {
                panic!(
                    "mosquitto logged no save within {START_TIMEOUT:?}; log tail:\n{}",
                    self.log_tail(30)
                );
            };
            mark = found.index + 1;
        }
    }

    /// The last `n` log lines, for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        self.log.tail(n).join("\n")
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
            .wait_after(mark, timeout, |line| pred(line))
            .map(|found| found.item)
    }

    /// Spawns mosquitto and waits for its "running" line (or its exit, which fails the test).
    fn launch(&mut self) {
        assert!(self.child.is_none(), "broker already running");
        let mark = self.log.mark();
        let mut command = Command::new(MOSQUITTO);
        command
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"));
        if self.verbose {
            command.arg("-v");
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {MOSQUITTO}: {e} (apt-get install mosquitto)")
            });
        let stderr = child.stderr.take().expect("piped stderr");
        let reader = read_lines(
            format!("mosquitto-{}-log", self.port),
            stderr,
            self.log.clone(),
            |line| line,
            |log| log.push(END_OF_LOG.to_string()),
        );
        self.child = Some(child);
        self.log_reader = Some(reader);
        let ready = self.log.wait_after(mark, START_TIMEOUT, |line| {
            line.ends_with(" running") || line == END_OF_LOG
        });
        match ready {
            Some(found) if found.item != END_OF_LOG => {}
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
