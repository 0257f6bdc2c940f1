//! The operator side of fleet updates, through the real `outpost` binary: key pairs, signed
//! bundles of the [`beacon`](crate::beacon) app, `fleet publish`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::beacon::Beacon;
use crate::s;

/// The `outpost` CLI at a path the caller knows (`env!("CARGO_BIN_EXE_outpost")`).
#[derive(Debug, Clone)]
pub struct Cli {
    /// The binary.
    bin: PathBuf,
}

impl Cli {
    /// The CLI at `bin`.
    pub fn new(bin: impl AsRef<Path>) -> Cli {
        Cli {
            bin: bin.as_ref().to_path_buf(),
        }
    }

    /// The binary's path.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// Runs `outpost ARGS` and returns what it did, success or not.
    pub fn output(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .args(args)
            .output()
            .expect("outpost runs")
    }

    /// Runs `outpost ARGS`, asserting success; returns its stdout.
    pub fn run(&self, args: &[&str]) -> String {
        let output = self.output(args);
        assert!(
            output.status.success(),
            "outpost {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `outpost keygen`: a key pair `NAME.key`, `NAME.pub` in `dir`; returns (secret, public).
    pub fn keygen(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        self.run(&["keygen", "--out", s(dir), "--name", name]);
        (
            dir.join(format!("{name}.key")),
            dir.join(format!("{name}.pub")),
        )
    }

    /// `outpost bundle build` of `beacon` (its app directory written in `dir`), signed with
    /// `key`; returns the bundle file `dir/beacon-VERSION-MODE.bundle`.
    pub fn beacon_bundle(&self, dir: &Path, key: &Path, beacon: &Beacon<'_>) -> PathBuf {
        let app = beacon.write_app(dir);
        let out = dir.join(format!("{}.bundle", beacon.name()));
        self.run(&[
            "bundle",
            "build",
            s(&app),
            "--key",
            s(key),
            "--out",
            s(&out),
        ]);
        out
    }

    /// `outpost fleet publish BUNDLE --broker URL --group GROUP EXTRA...`.
    pub fn publish(&self, bundle: &Path, broker_url: &str, group: &str, extra: &[&str]) {
        let mut args = vec!["fleet", "publish", s(bundle), "--broker", broker_url];
        args.extend(["--group", group]);
        args.extend(extra);
        self.run(&args);
    }
}
