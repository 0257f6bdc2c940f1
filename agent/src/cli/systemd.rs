//! systemd's service notifications (sd_notify(3)): one datagram per message to
//! `$NOTIFY_SOCKET`; nothing at all when not started by systemd. About 30 lines over std's
//! `UnixDatagram` instead of a crate: the protocol is a single `sendto`, no dependency needed.

use std::time::Duration;

/// Sends `state` (e.g. `READY=1`) to the service manager, if there is one. Failures are
/// logged, never fatal: a lost notification must not stop the agent.
pub fn notify(state: &str) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(error) = send(&socket, state) {
        tracing::warn!(%error, "cannot notify systemd ({state})");
    }
}

#[cfg(unix)]
fn send(socket: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    use std::os::unix::net::UnixDatagram;
    let datagram = UnixDatagram::unbound()?;
    // `@name` is a socket in the abstract namespace (Linux), anything else a path.
    #[cfg(target_os = "linux")]
    if let Some(name) = socket.as_encoded_bytes().strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let address = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        return datagram.send_to_addr(state.as_bytes(), &address).map(drop);
    }
    datagram.send_to(state.as_bytes(), socket).map(drop)
}

#[cfg(not(unix))]
fn send(_socket: &std::ffi::OsStr, _state: &str) -> std::io::Result<()> {
    Ok(())
}

/// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC`, if systemd watches this
/// process (`$WATCHDOG_PID`, when set, must be ours).
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.parse::<u32>().ok()? != std::process::id()
    {
        return None;
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// Test hook for the boot tests only (`cross/boot/watchdog.guest`), never set in the shipped
/// unit: `OUTPOST_TEST_WATCHDOG_STOP` names a file; once it exists the watchdog pings stop for
/// good, as if the agent hung, so systemd's watchdog restart can be checked on a booted board.
/// The file is removed first, so the restarted agent pings again.
pub fn test_watchdog_stop_file() -> Option<std::path::PathBuf> {
    std::env::var_os("OUTPOST_TEST_WATCHDOG_STOP").map(Into::into)
}

/// Whether the test hook above asks the pings to stop now (and consumes its file).
pub fn test_watchdog_stop_requested(file: Option<&std::path::Path>) -> bool {
    file.is_some_and(|file| std::fs::remove_file(file).is_ok())
}
