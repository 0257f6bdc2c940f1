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

    /// `outpost fleet publish BUNDLE --key KEY --broker URL --group GROUP EXTRA...`: the
    /// release metadata is signed with `key`.
    pub fn publish(
        &self,
        bundle: &Path,
        key: &Path,
        broker_url: &str,
        group: &str,
        extra: &[&str],
    ) {
        let mut args = vec!["fleet", "publish", s(bundle), "--broker", broker_url];
        args.extend(["--key", s(key), "--group", group]);
        args.extend(extra);
        self.run(&args);
    }
}

/// Who a hand-made release targets, and for how long.
#[derive(Debug, Clone)]
pub struct ReleaseSpec {
    /// Groups it names.
    pub groups: Vec<String>,
    /// Devices it names.
    pub devices: Vec<String>,
    /// Signing time, ms since the epoch.
    pub created_ms: i64,
    /// Expiry, ms since the epoch.
    pub expires_ms: i64,
    /// Bytes per chunk.
    pub chunk_size: u32,
}

impl ReleaseSpec {
    /// A release for `group`, signed now, valid for an hour, in 1 KiB chunks.
    pub fn group(group: &str) -> ReleaseSpec {
        let now = now_ms();
        ReleaseSpec {
            groups: vec![group.into()],
            devices: Vec::new(),
            created_ms: now,
            expires_ms: now + 3_600_000,
            chunk_size: 1024,
        }
    }
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64
}

/// The announcement of the bundle file `bundle` with release metadata `spec` signed by the
/// secret key file `key`, as `outpost fleet publish` would make it (but with any targets and
/// times, to forge replays and expired releases).
pub fn signed_announcement(
    bundle: &[u8],
    key: &Path,
    spec: &ReleaseSpec,
) -> outpost_bundle::Announcement {
    let limits = outpost_bundle::Limits::default();
    let inspected = outpost_bundle::inspect(bundle, &limits).expect("inspects");
    let secret = outpost_bundle::SecretKey::parse(&std::fs::read_to_string(key).expect("key file"))
        .expect("secret key");
    let input = outpost_bundle::ReleaseInput {
        groups: spec.groups.clone(),
        devices: spec.devices.clone(),
        header_digest: outpost_bundle::sha256(&inspected.header_bytes),
        chunks: outpost_bundle::ChunkPlan::cut(bundle, spec.chunk_size).expect("cuts"),
        created_ms: spec.created_ms,
        expires_ms: spec.expires_ms,
        counter: spec.created_ms as u64,
    };
    let release = outpost_bundle::SignedRelease::sign(
        &inspected.header.app,
        &inspected.header.version,
        &input,
        &secret,
    )
    .expect("signs");
    outpost_bundle::Announcement::with_release(&inspected, release, &limits).expect("announces")
}
