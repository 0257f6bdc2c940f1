//! The real `outpost agent` process, run by tests and benches.
//!
//! Its stdout is read line by line; each line that parses as an [`AgentEvent`] (the JSON form
//! of `--events json`) is kept as a typed event, every other line as text (stderr lines too), all
//! with the instant they were read. [`Agent::wait_event`] wakes on every new line; timeouts are
//! only safety nets. Everything is kept for assertions after the fact.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use outpost::events::AgentEvent;

use crate::log::{Log, read_lines};
use crate::signal;

/// Arguments every test agent gets before its own: reconnect fast, report status often, run
/// cron without waiting for a synchronised clock.
pub const FAST_AGENT_ARGS: &[&str] = &[
    "--reconnect-min",
    "20ms",
    "--reconnect-max",
    "250ms",
    "--status-every",
    "1s",
    // Test hosts are often containers whose kernel reports an unsynchronised clock (the host
    // keeps it): cron runs at once rather than waiting for a sync that never comes.
    "--cron-sync-wait",
    "0s",
];

/// The flags that make the agent print its events as JSON lines on stdout.
const EVENTS_JSON: &[&str] = &["--events", "json"];

/// How long a SIGTERMed agent may take to exit before it is SIGKILLed and the test fails.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// One line of the agent's output.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    /// A stdout line that is an event.
    Event(AgentEvent),
    /// Any other stdout line.
    Stdout(String),
    /// A stderr line (logs, diagnostics).
    Stderr(String),
}

impl Line {
    /// The line as a person reads it (an event in its one-line form).
    pub fn text(&self) -> String {
        match self {
            Line::Event(event) => event.line(),
            Line::Stdout(text) => text.clone(),
            Line::Stderr(text) => format!("[stderr] {text}"),
        }
    }

    /// A stdout line: an event if it parses as one (`--events json`), else text.
    pub fn from_stdout(line: String) -> Line {
        match serde_json::from_str::<AgentEvent>(&line) {
            Ok(event) => Line::Event(event),
            Err(_) => Line::Stdout(line),
        }
    }

    /// The event, if this line is one.
    pub fn event(&self) -> Option<&AgentEvent> {
        match self {
            Line::Event(event) => Some(event),
            _ => None,
        }
    }
}

/// A running `outpost agent`. Dropping it SIGKILLs it.
pub struct Agent {
    child: Option<Child>,
    pid: u32,
    /// Every output line so far, stdout and stderr interleaved as read.
    output: Arc<Log<Line>>,
}

impl Agent {
    /// Starts `BIN agent --device-id DEVICE --broker URL --data DATA` with [`FAST_AGENT_ARGS`]
    /// and then `extra` (e.g. `--app DIR`, outbox bounds).
    pub fn start(
        bin: impl AsRef<Path>,
        device: &str,
        broker_url: &str,
        data: &Path,
        extra: &[&str],
    ) -> Agent {
        let head = ["--device-id", device, "--broker", broker_url, "--data"];
        let mut args: Vec<&OsStr> = head.iter().map(OsStr::new).collect();
        args.push(data.as_os_str());
        args.extend(FAST_AGENT_ARGS.iter().chain(extra).map(OsStr::new));
        Agent::spawn(bin, &args)
    }

    /// As [`Agent::start`], with `env` added to the agent's environment (e.g. `TZDIR`, as a
    /// device without a tz database has none).
    pub fn start_with_env(
        bin: impl AsRef<Path>,
        device: &str,
        broker_url: &str,
        data: &Path,
        extra: &[&str],
        env: &[(&str, &Path)],
    ) -> Agent {
        let head = ["--device-id", device, "--broker", broker_url, "--data"];
        let mut args: Vec<&OsStr> = head.iter().map(OsStr::new).collect();
        args.push(data.as_os_str());
        args.extend(FAST_AGENT_ARGS.iter().chain(extra).map(OsStr::new));
        Agent::launch(bin.as_ref(), EVENTS_JSON, &args, env)
    }

    /// Starts `BIN agent ARGS` (with its events as JSON lines) and nothing else: for callers
    /// that choose every flag themselves (benches).
    pub fn spawn(bin: impl AsRef<Path>, args: &[impl AsRef<OsStr>]) -> Agent {
        Agent::launch(bin.as_ref(), EVENTS_JSON, args, &[])
    }

    /// Starts `BIN agent --events text ARGS`: events as lines for people, as journald gets
    /// them (each a [`Line::Stdout`]; wait with [`Agent::wait_text`]).
    pub fn spawn_text(bin: impl AsRef<Path>, args: &[impl AsRef<OsStr>]) -> Agent {
        Agent::launch(bin.as_ref(), &["--events", "text"], args, &[])
    }

    fn launch(
        bin: &Path,
        events: &[&str],
        args: &[impl AsRef<OsStr>],
        env: &[(&str, &Path)],
    ) -> Agent {
        let mut child = Command::new(bin)
            .envs(env.iter().map(|(key, value)| (*key, *value)))
            .arg("agent")
            .args(events)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{} agent starts: {e}", bin.display()));
        let pid = child.id();
        // Unbounded: tests assert on everything the agent said.
        let output = Arc::new(Log::new(usize::MAX));
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        // The process ended once both streams closed: then no more lines can come.
        let open_streams = Arc::new(AtomicUsize::new(2));
        let stdout_open = open_streams.clone();
        read_lines(
            format!("agent-{pid}-stdout"),
            stdout,
            output.clone(),
            Line::from_stdout,
            move |log| close_last(&stdout_open, log),
        );
        read_lines(
            format!("agent-{pid}-stderr"),
            stderr,
            output.clone(),
            Line::Stderr,
            move |log| close_last(&open_streams, log),
        );
        Agent {
            child: Some(child),
            pid,
            output,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Blocks until the agent emitted at least `n` events satisfying `pred` (counting from its
    /// start), or `timeout` passes, or it exited; returns whether it did.
    pub fn wait_event(
        &self,
        pred: impl Fn(&AgentEvent) -> bool,
        n: usize,
        timeout: Duration,
    ) -> bool {
        self.output
            .wait_count(|line| line.event().is_some_and(&pred), n, timeout)
    }

    /// Blocks until a stdout text line (`--events text`) contains `needle`, or `timeout`
    /// passes, or the agent exited; returns whether one did.
    pub fn wait_text(&self, needle: &str, timeout: Duration) -> bool {
        self.output.wait_count(
            |line| matches!(line, Line::Stdout(text) if text.contains(needle)),
            1,
            timeout,
        )
    }

    /// Stdout text lines containing `needle` so far.
    pub fn count_text(&self, needle: &str) -> usize {
        self.output
            .count(|line| matches!(line, Line::Stdout(text) if text.contains(needle)))
    }

    /// Events satisfying `pred` emitted so far.
    pub fn count_events(&self, pred: impl Fn(&AgentEvent) -> bool) -> usize {
        self.output.count(|line| line.event().is_some_and(&pred))
    }

    /// Every event emitted so far, in order.
    pub fn events(&self) -> Vec<AgentEvent> {
        self.output
            .items()
            .into_iter()
            .filter_map(|line| match line {
                Line::Event(event) => Some(event),
                _ => None,
            })
            .collect()
    }

    /// A position in the output: lines read so far. Pass it to [`Agent::wait_event_after`].
    pub fn mark(&self) -> u64 {
        self.output.mark()
    }

    /// The first event at or after `mark` satisfying `pred` and when it was read, waiting up to
    /// `timeout`; `None` on timeout or if the agent exited first. For timing (benches).
    pub fn wait_event_after(
        &self,
        mark: u64,
        timeout: Duration,
        pred: impl Fn(&AgentEvent) -> bool,
    ) -> Option<(Instant, AgentEvent)> {
        self.output
            .wait_after(mark, timeout, |line| line.event().is_some_and(&pred))
            .and_then(|found| match found.item {
                Line::Event(event) => Some((found.at, event)),
                _ => None,
            })
    }

    /// The last `n` output lines (stderr ones prefixed), for failure messages.
    pub fn output_tail(&self, n: usize) -> String {
        self.output
            .tail(n)
            .iter()
            .map(Line::text)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// SIGTERM, then waits for the exit (SIGKILL and a panic after [`STOP_TIMEOUT`]).
    pub fn terminate(&mut self) -> ExitStatus {
        let Some(mut child) = self.child.take() else {
            panic!("agent {} already stopped", self.pid);
        };
        signal(self.pid, "TERM");
        let (done, watchdog) = mpsc::channel::<()>();
        let pid = self.pid;
        let guard = std::thread::spawn(move || {
            if watchdog.recv_timeout(STOP_TIMEOUT) == Err(mpsc::RecvTimeoutError::Timeout) {
                signal(pid, "KILL");
                return true;
            }
            false
        });
        let status = child.wait().expect("agent reaped");
        let _ = done.send(());
        let killed = guard.join().unwrap_or(false);
        assert!(
            !killed,
            "agent did not exit within {STOP_TIMEOUT:?} of SIGTERM; output tail:\n{}",
            self.output_tail(40)
        );
        status
    }

    /// SIGKILL: no clean shutdown. Returns once the process is reaped.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Closes `log` if this was the last of its streams to close.
fn close_last(open_streams: &AtomicUsize, log: &Log<Line>) {
    if open_streams.fetch_sub(1, Ordering::SeqCst) == 1 {
        log.close();
    }
}

/// `NAME: <n> kB` from `/proc/PID/status` (e.g. `VmHWM:`, the peak resident set), in KiB.
pub fn proc_status_kib(pid: u32, name: &str) -> Option<i64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with(name))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// CPU time (user + system, every thread, including threads that have exited) process `pid`
/// has used so far, from `/proc/PID/stat`; `pid` may be `self`. Linux counts it in USER_HZ ticks,
/// 100 a second on every architecture, so a reading is to 10 ms: benches sum many.
pub fn proc_cpu_time(pid: &str) -> Option<std::time::Duration> {
    stat_ticks(pid, 11)
}

/// CPU time of the children of this process that have been waited for (cutime + cstime).
pub fn waited_children_cpu_time() -> Option<std::time::Duration> {
    stat_ticks("self", 13)
}

/// The ticks at fields `first` and `first + 1` after the command name in `/proc/PID/stat`.
fn stat_ticks(pid: &str, first: usize) -> Option<std::time::Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count fields after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(first);
    let mut next = || fields.next()?.parse::<u64>().ok();
    let ticks = next()? + next()?;
    Some(std::time::Duration::from_millis(ticks * 10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_cpu_time_and_its_children_one_that_grows_when_reaped() {
        let before = waited_children_cpu_time().expect("children's time");
        assert!(proc_cpu_time("self").is_some());
        // A child that burns a little CPU, reaped: its time is added to cutime/cstime.
        let status = std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"])
            .status()
            .expect("sh");
        assert!(status.success());
        let after = waited_children_cpu_time().expect("children's time");
        assert!(after > before, "{before:?} -> {after:?}");
        assert_eq!(proc_cpu_time("0"), None, "no such process");
    }

    #[test]
    fn stdout_lines_become_events_when_they_are_and_text_otherwise() {
        assert_eq!(
            Line::from_stdout(r#"{"event":"connected"}"#.into()),
            Line::Event(AgentEvent::Connected)
        );
        let refused = Line::from_stdout(
            r#"{"event":"inbound_refused","topic":"t","reason":"too big"}"#.into(),
        );
        assert!(matches!(
            refused.event(),
            Some(AgentEvent::InboundRefused { reason, .. }) if reason == "too big"
        ));
        assert_eq!(
            Line::from_stdout("sync: connected".into()),
            Line::Stdout("sync: connected".into())
        );
        assert_eq!(Line::Stderr("x".into()).text(), "[stderr] x");
    }
}
