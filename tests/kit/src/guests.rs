//! Guest modules for the tests: the real guests of the `bundles/` workspace (built once per test
//! process) and the small WAT guests of `tests/guests/`, compiled on demand; and manifests that
//! name either by placeholder.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::repo_root;

/// Builds the guest workspace once per process; returns `bundles/target/.../NAME.wasm`.
pub fn guest(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let bundles = repo_root().join("bundles");
        // Run inside bundles/ so its .cargo/config.toml (target, guest link flags) applies; the
        // variables of the outer build must not leak into it.
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
    let wasm = wat_bytes(name);
    let out = dir.join(format!("{name}.wasm"));
    std::fs::write(&out, wasm).expect("write wasm");
    out
}

/// `tests/guests/NAME.wat` compiled to wasm bytes.
pub fn wat_bytes(name: &str) -> Vec<u8> {
    let source = repo_root().join("tests/guests").join(format!("{name}.wat"));
    wat::parse_file(&source).unwrap_or_else(|e| panic!("{}: {e}", source.display()))
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
