//! The `beacon` test app: `tests/guests/beacon.wat` emits its config variable `mode` to the
//! stream `beat` on every run (a mode starting with "t" traps), so each version's behaviour shows
//! in the events. Its module can be padded to make bundles as large as a test needs.

use std::path::{Path, PathBuf};

use crate::guests::wat_bytes;

/// One version of the beacon app.
#[derive(Debug, Clone)]
pub struct Beacon<'a> {
    /// Its `app.version`.
    pub version: &'a str,
    /// What it emits on `beat` (a mode starting with "t" traps).
    pub mode: &'a str,
    /// Bytes of custom section appended to its module.
    pub padding: usize,
    /// The body of its one `[[component.trigger]]`.
    pub trigger: &'a str,
}

impl<'a> Beacon<'a> {
    /// `version` emitting `mode` every 100 ms, unpadded.
    pub fn new(version: &'a str, mode: &'a str) -> Beacon<'a> {
        Beacon {
            version,
            mode,
            padding: 0,
            trigger: "interval = \"100ms\"",
        }
    }

    /// The same with `padding` bytes of custom section.
    pub fn padded(self, padding: usize) -> Beacon<'a> {
        Beacon { padding, ..self }
    }

    /// The same with `trigger` as the body of its `[[component.trigger]]`.
    pub fn trigger(self, trigger: &'a str) -> Beacon<'a> {
        Beacon { trigger, ..self }
    }

    /// A name for files of this version: `beacon-VERSION-MODE`.
    pub fn name(&self) -> String {
        format!("beacon-{}-{}", self.version, self.mode)
    }

    /// Writes the app directory `dir/NAME` (manifest and padded module); returns it.
    pub fn write_app(&self, dir: &Path) -> PathBuf {
        let app = dir.join(self.name());
        std::fs::create_dir_all(&app).expect("app dir");
        std::fs::write(app.join("beacon.wasm"), padded_wasm(self.padding)).expect("wasm written");
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
"#,
                version = self.version,
                mode = self.mode,
                trigger = self.trigger,
            ),
        )
        .expect("manifest written");
        app
    }
}

/// `tests/guests/beacon.wat` compiled, with `padding` bytes of a custom section appended
/// (engines skip its contents).
pub fn padded_wasm(padding: usize) -> Vec<u8> {
    let mut wasm = wat_bytes("beacon");
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
