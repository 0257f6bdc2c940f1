//! Shared helpers for the end-to-end tests: real guests built from `bundles/`, WAT guests from
//! `tests/guests/`, apps in temporary directories with real redb state files; and the MQTT
//! harness: a real mosquitto ([`broker`]), a cuttable TCP link ([`proxy`]), an independent
//! subscriber, the agent process and the delivery verdict ([`mqtt`]).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod broker;
pub mod fleet;
pub mod mqtt;
pub mod proxy;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use outpost::app::{App, AppOptions};
use outpost::store::OutboxLimits;
use outpost_hal::ManualClock;
use tempfile::TempDir;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("agent/ has a parent")
        .to_path_buf()
}

/// Builds the guest workspace once per test binary; returns `bundles/target/.../NAME.wasm`.
pub fn guest(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let bundles = repo_root().join("bundles");
        // Run inside bundles/ so its .cargo/config.toml (target, guest link flags) applies.
        let status = Command::new(env!("CARGO"))
            .args(["build", "--release", "--quiet"])
            .current_dir(&bundles)
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("CARGO_BUILD_TARGET")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the guests in bundles/ failed");
    });
    let path = repo_root()
        .join("bundles/target/wasm32-unknown-unknown/release")
        .join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "guest {name} was not built at {}",
        path.display()
    );
    path
}

/// Compiles `tests/guests/NAME.wat` into `dir/NAME.wasm` and returns that path.
pub fn wat_guest(dir: &Path, name: &str) -> PathBuf {
    let source = repo_root().join("tests/guests").join(format!("{name}.wat"));
    let wasm = wat::parse_file(&source).unwrap_or_else(|e| panic!("{}: {e}", source.display()));
    let out = dir.join(format!("{name}.wasm"));
    std::fs::write(&out, wasm).expect("write wasm");
    out
}

/// 2026-01-01T00:00:00Z, the manual clock's start.
pub const START_MS: i64 = 1_767_225_600_000;

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
        board: None,
        gpio: None,
        send: None,
    }
}

/// Fills guest paths into a manifest: `{wasm:NAME}` becomes the path of guest NAME
/// and `{wat:NAME}` the path of the compiled WAT guest in `dir`.
pub fn render(manifest: &str, dir: &Path) -> String {
    let mut out = manifest.to_string();
    while let Some(start) = out.find("{wasm:").or_else(|| out.find("{wat:")) {
        let end = start + out[start..].find('}').expect("closing brace");
        let (kind, name) = out[start + 1..end].split_once(':').expect("kind:name");
        let path = match kind {
            "wasm" => guest(name),
            _ => wat_guest(dir, name),
        };
        out.replace_range(start..=end, &path.display().to_string());
    }
    out
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
            outpost::store::RecordBody::Event { stream: s, data } if s == stream => {
                Some(String::from_utf8_lossy(&data).into_owned())
            }
            _ => None,
        })
        .collect()
}
