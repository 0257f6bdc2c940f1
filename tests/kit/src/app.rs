//! An app started in-process (the library, no agent binary) in a temporary directory on a manual
//! clock, and the events it committed to its outbox.

use std::path::Path;
use std::sync::Arc;

use outpost::app::{App, AppOptions};
use outpost::store::{OutboxLimits, RecordBody};
use outpost_hal::ManualClock;
use tempfile::TempDir;

use crate::START_MS;
use crate::guests::render;

/// An app started in a temporary directory on a manual clock.
pub struct TestApp {
    /// Holds the manifest, the wasm and `data/` until the test ends.
    pub dir: TempDir,
    /// The running app.
    pub app: App,
    /// The clock everything reads.
    pub clock: Arc<ManualClock>,
}

/// Options with state in `dir/data`.
pub fn options(dir: &Path, clock: Arc<ManualClock>, outbox: OutboxLimits) -> AppOptions {
    AppOptions {
        data_dir: dir.join("data"),
        outbox,
        clock,
        hardware: None,
        identity: None,
        send: None,
    }
}

/// Starts an app whose manifest may name guests as `{wasm:NAME}` / `{wat:NAME}`.
pub fn start_rendered(manifest: &str) -> TestApp {
    start_rendered_with(manifest, OutboxLimits::default())
}

/// Like [`start_rendered`] with explicit outbox limits.
pub fn start_rendered_with(manifest: &str, outbox: OutboxLimits) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let rendered = render(manifest, dir.path());
    let path = dir.path().join("outpost.toml");
    std::fs::write(&path, rendered).expect("write manifest");
    let clock = Arc::new(ManualClock::new(START_MS));
    let app = App::start(&path, options(dir.path(), clock.clone(), outbox))
        .unwrap_or_else(|e| panic!("app did not start: {e}"));
    TestApp { dir, app, clock }
}

/// Every event payload of `stream` in the outbox, as text, oldest first.
pub fn events(app: &App, stream: &str) -> Vec<String> {
    app.store
        .outbox_read(0, usize::MAX)
        .expect("outbox reads")
        .into_iter()
        .filter_map(|entry| match entry.record.body {
            RecordBody::Event { stream: s, data } if s == stream => {
                Some(String::from_utf8_lossy(&data).into_owned())
            }
            _ => None,
        })
        .collect()
}
