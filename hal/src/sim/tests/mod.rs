//! Tests of the simulated board, one file per concern, sharing the helpers below.
#![allow(clippy::unwrap_used)]

mod board;
mod faults;
mod profiles;
mod spec_toml;
mod trace;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::{SensorSpec, SimBoard};
use crate::{ManualClock, SensorBoard};

/// A board over `specs` (no CSV) with a manual clock at board start.
fn board(specs: &[SensorSpec]) -> (Arc<ManualClock>, SimBoard) {
    board_in(specs, Path::new("."))
}

/// A board over `specs` whose CSV paths resolve under `base_dir`.
fn board_in(specs: &[SensorSpec], base_dir: &Path) -> (Arc<ManualClock>, SimBoard) {
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let board = SimBoard::new(specs, base_dir, clock.clone()).expect("valid specs build a board");
    (clock, board)
}

/// Reads `name`, which the test expects to succeed.
fn value(board: &SimBoard, name: &str) -> f64 {
    board.read(name).expect("sensor reads").value
}

/// Asserts `actual` is within `1e-9` of `expected`.
#[track_caller]
fn assert_near(actual: f64, expected: f64) {
    assert!(
        (actual - expected).abs() < 1e-9,
        "expected {expected}, got {actual}"
    );
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// A fresh directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let unique = format!(
            "outpost-hal-sim-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(unique);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    /// Writes `contents` to `name` inside the directory and returns its path.
    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("write temp file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // Best effort: a leftover temp dir is harmless.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
