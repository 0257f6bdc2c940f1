//! What the fleet tests and the fleet bench share: running the `outpost` CLI, and the `beacon`
//! test app (`tests/guests/beacon.wat` emits its config variable `mode` to the stream `beat` on
//! every run; a mode starting with "t" traps), so each version's behaviour shows in the events.

#![allow(dead_code, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs the `outpost` binary with `args`, asserting success; returns its stdout.
pub fn outpost(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_outpost"))
        .args(args)
        .output()
        .expect("outpost runs");
    assert!(
        output.status.success(),
        "outpost {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `tests/guests/beacon.wat` compiled, with `padding` bytes of a custom section appended
/// (engines skip its contents; it makes bundles as large as a test needs).
pub fn padded_wasm(padding: usize) -> Vec<u8> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("agent/ has a parent");
    let mut wasm =
        wat::parse_file(root.join("tests/guests/beacon.wat")).expect("beacon.wat compiles");
    if padding > 0 {
        // A custom section: id 0, LEB128 size, name "pad", bytes.
        let mut body = vec![3u8];
        body.extend_from_slice(b"pad");
        body.extend((0..padding).map(|i| (i * 7 + i / 251) as u8));
        wasm.push(0);
        let mut size = body.len();
        loop {
            let byte = (size & 0x7f) as u8;
            size >>= 7;
            wasm.push(if size == 0 { byte } else { byte | 0x80 });
            if size == 0 {
                break;
            }
        }
        wasm.extend(body);
    }
    wasm
}

/// Writes the app directory `dir/name` of version `version` emitting `mode`, its module padded
/// by `padding` bytes, with `trigger` as the body of its one `[[component.trigger]]`; returns it.
pub fn app(
    dir: &Path,
    name: &str,
    version: &str,
    mode: &str,
    padding: usize,
    trigger: &str,
) -> PathBuf {
    let app = dir.join(name);
    std::fs::create_dir_all(&app).expect("app dir");
    std::fs::write(app.join("beacon.wasm"), padded_wasm(padding)).expect("wasm written");
    std::fs::write(
        app.join("outpost.toml"),
        format!(
            r#"manifest_version = 1
[app]
name = "beacon"
version = "{version}"
[variables]
mode = "{mode}"
[[component]]
id = "beacon"
source = "beacon.wasm"
[component.grants]
streams = ["beat"]
config = ["mode"]
[[component.trigger]]
{trigger}
"#
        ),
    )
    .expect("manifest written");
    app
}
