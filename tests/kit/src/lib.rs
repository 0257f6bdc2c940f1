//! The end-to-end test kit of Outpost: everything the tests in `tests/` and the benches in
//! `agent/benches/` need to run the real thing — a real mosquitto, the real `outpost` binary,
//! real redb state — and to judge what came out of it.
//!
//! # Layout
//!
//! - [`guests`]: guest modules, built from `bundles/` or compiled from `tests/guests/*.wat`.
//! - [`app`]: an app started in-process on a manual clock, and the events it committed.
//! - [`log`]: lines of a child process, kept and waited for (shared by the broker and the agent).
//! - [`mosquitto`]: the mosquitto binary, free ports and the broker configurations.
//! - [`broker`]: a real mosquitto on a free loopback port (plain, TLS/password listeners, tuned).
//! - [`proxy`]: a loopback TCP proxy that cuts the link on demand and counts bytes.
//! - [`seen`]: what an independent subscriber recorded (events, statuses, other messages).
//! - [`subscriber`]: the independent MQTT subscriber itself, and a one-shot status reader.
//! - [`delivery`]: the at-least-once, in-order delivery verdict.
//! - [`prefill`]: a backlog committed into a data directory through the library.
//! - [`agent`]: the `outpost agent` process, its stdout parsed into typed events.
//! - [`beacon`]: the `beacon` test app (`tests/guests/beacon.wat`) as an app directory.
//! - [`fleet`]: the operator side of fleet updates: keys, bundles, `fleet publish`.
//!
//! The `outpost` binary is always passed in by the caller: tests use
//! `env!("CARGO_BIN_EXE_outpost")`, which only the `outpost` package's own targets see.
//!
//! Waiting is event-driven everywhere (a condition variable per source); timeouts are safety
//! nets that fail a test with a diagnosis. Nothing here changes process-wide state (environment
//! variables, the working directory), so tests using the kit run in parallel threads of one
//! process.

pub mod agent;
pub mod app;
pub mod beacon;
pub mod broker;
pub mod delivery;
pub mod fleet;
pub mod guests;
pub mod log;
pub mod mosquitto;
pub mod prefill;
pub mod proxy;
pub mod seen;
pub mod subscriber;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// 2026-01-01T00:00:00Z: where manual clocks start and what prefilled events are stamped with.
pub const START_MS: i64 = 1_767_225_600_000;

/// The repository root (this crate lives in `tests/kit/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("tests/kit/ has two parents")
        .to_path_buf()
}

/// Sends `kill -SIG pid` (no libc needed). Errors are ignored: the process may be gone already.
pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

/// Writes `files` (`(path below root, text)`) under `root`, making directories as needed: fake
/// sysfs trees for boards, small app directories.
pub fn write_tree(root: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dirs");
        std::fs::write(path, text).expect("write");
    }
}

/// A path as `&str` (temporary paths are UTF-8), for argument lists of `&str`.
pub fn s(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}
