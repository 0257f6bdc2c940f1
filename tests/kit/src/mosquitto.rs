//! mosquitto itself: where it is installed, its version, free loopback ports for it, and the
//! configuration files of the two broker flavours (tests: persistent and verbose; benches:
//! tuned for throughput). Pure text and port picking; [`crate::broker`] runs the process.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The mosquitto binary (Debian's package installs it here).
pub const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// A port that was free a moment ago: bind 127.0.0.1:0, read the port, release it.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a loopback port")
        .port()
}

/// mosquitto's version (`mosquitto -h`'s first line), for bench headers.
pub fn mosquitto_version() -> String {
    Command::new(MOSQUITTO)
        .arg("-h")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(2).map(str::to_string))
        })
        .unwrap_or_else(|| "?".into())
}

/// The configuration of a test broker on `port` with persistence in `dir`, and optionally a
/// second listener `(port, lines)`.
pub(crate) fn test_config(dir: &Path, port: u16, second_listener: Option<(u16, &str)>) -> String {
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
    conf += root_line();
    if let Some((second_port, lines)) = second_listener {
        conf += &format!("listener {second_port} 127.0.0.1\n{lines}\n");
    }
    conf
}

/// The configuration of a tuned broker (see
/// [`Broker::start_tuned`](crate::broker::Broker::start_tuned)); the notice level still logs
/// the "running" line readiness is read from.
pub(crate) fn tuned_config(port: u16) -> String {
    let mut conf = format!(
        "listener {port} 127.0.0.1\n\
         allow_anonymous true\n\
         persistence false\n\
         set_tcp_nodelay true\n\
         max_inflight_messages 0\n\
         max_queued_messages 0\n\
         max_queued_bytes 0\n\
         connection_messages false\n\
         log_dest stderr\n\
         log_type error\n\
         log_type warning\n\
         log_type notice\n\
         log_type information\n"
    );
    conf += root_line();
    conf
}

/// As root, mosquitto 2 switches to user `mosquitto`, who cannot write our temp dir.
fn root_line() -> &'static str {
    use std::os::unix::fs::MetadataExt;
    if std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
        "user root\n"
    } else {
        ""
    }
}
