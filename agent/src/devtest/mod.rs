//! Component tests (`outpost test`): scenarios written next to an app (`tests/*.toml`) run
//! against the real runtime on a simulated board, a manual clock and an in-memory store, so
//! they are deterministic and take milliseconds. `docs/TESTING.md` is the format's page.
//!
//! - [`spec`]: the file format, parsed and checked (pure).
//! - [`board`]: the scripted sensors (pinned values, latency on the test clock).
//! - [`run`]: one file run against an app.
//! - [`compare`]: expected against actual, as readable mismatches (pure).

pub mod board;
pub mod compare;
pub mod run;
pub mod spec;

use std::path::{Path, PathBuf};

/// The test files of the app in `dir`: `dir/tests/*.toml`, sorted.
pub fn discover(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let tests = dir.join("tests");
    if !tests.is_dir() {
        return Ok(Vec::new());
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&tests)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    Ok(files)
}
