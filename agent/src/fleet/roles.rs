//! Scoped publisher keys under offline root keys (issue 15): the device pins root public keys
//! (`[fleet] trust_root` / `--trust-root`); the publisher keys it takes releases from, and what
//! each may sign, come from the newest trust document those roots signed
//! ([`outpost_bundle::TrustDocument`]), received retained on `{prefix}/fleet/trust` and kept in
//! the data directory (`trust-document.opd`) so it survives restarts.
//!
//! Without pinned roots the device keeps the flat trust of earlier versions (every trusted key
//! may sign anything): see docs/FLEET.md, "Migrating a trust directory".
//!
//! The kept file is not re-verified at start: it sits in the root-only data directory next to
//! the store, whose installed bundles are not re-verified either; it was verified when taken.

use std::path::{Path, PathBuf};

use outpost_bundle::{KeyId, PublicKey, Release, SignedTrust, TrustDocument, TrustStore};

/// The kept trust document's file name in the data directory.
pub const TRUST_FILE: &str = "trust-document.opd";

/// The pinned roots and the trust document in force.
#[derive(Debug, Clone)]
pub struct Roles {
    pinned: Vec<PublicKey>,
    current: Option<TrustDocument>,
    file: PathBuf,
}

/// Why the kept trust document could not be read.
#[derive(Debug, thiserror::Error)]
#[error("trust document {path}: {reason}")]
pub struct RolesError {
    /// The file.
    pub path: PathBuf,
    /// What was wrong.
    pub reason: String,
}

impl Roles {
    /// Roles under `pinned` roots, with the document kept in `data_dir` (if any).
    pub fn load(pinned: Vec<PublicKey>, data_dir: &Path) -> Result<Roles, RolesError> {
        let file = data_dir.join(TRUST_FILE);
        let error = |reason: String| RolesError {
            path: file.clone(),
            reason,
        };
        let current = match std::fs::read(&file) {
            Ok(bytes) => Some(
                SignedTrust::decode(&bytes)
                    .and_then(|signed| signed.document_unverified())
                    .map_err(|e| error(e.to_string()))?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(error(e.to_string())),
        };
        Ok(Roles {
            pinned,
            current,
            file,
        })
    }

    /// The document in force.
    pub fn current(&self) -> Option<&TrustDocument> {
        self.current.as_ref()
    }

    /// The publisher keys signatures are checked against.
    pub fn trust_store(&self) -> TrustStore {
        self.current
            .as_ref()
            .map(TrustDocument::trust_store)
            .unwrap_or_default()
    }

    /// Takes the trust document message `bytes` if the current roots signed it (a threshold of
    /// them; the pinned roots for the first), its version is higher and it has not expired at
    /// `now_ms`; keeps it (written atomically) before it is in force.
    pub fn offer(&mut self, bytes: &[u8], now_ms: i64) -> Result<&TrustDocument, String> {
        let signed = SignedTrust::decode(bytes).map_err(|e| e.to_string())?;
        let document = match &self.current {
            Some(current) => {
                signed.verify(&current.roots, current.threshold, Some(current.version))
            }
            None => signed.verify(&self.pinned, 1, None),
        }
        .map_err(|e| e.to_string())?;
        if now_ms >= document.expires_ms {
            return Err(format!(
                "trust document version {} has already expired",
                document.version
            ));
        }
        keep(&self.file, bytes).map_err(|e| format!("cannot keep it: {e}"))?;
        Ok(self.current.insert(document))
    }

    /// Whether a release by `release.key_id` of a bundle signed by `bundle_key`, offered on
    /// `target` (a group or `@device`), may be acted on at `now_ms`, raising the app's floor
    /// from `floor` (if any). The reason names the document and the key.
    pub fn check_release(
        &self,
        release: &Release,
        bundle_key: KeyId,
        target: &str,
        floor: Option<&outpost_bundle::Version>,
        now_ms: i64,
    ) -> Result<(), String> {
        let document = self.in_force(now_ms)?;
        for key in [release.key_id, bundle_key] {
            self.check_key(document, key, &release.app, now_ms)?;
        }
        let publisher = document
            .publisher(release.key_id)
            .ok_or_else(|| format!("key {} is not a publisher", release.key_id))?;
        if !publisher.allows_target(target) {
            return Err(format!(
                "publisher key {} ({}) may not release to {target} (trust document version {})",
                release.key_id, publisher.name, document.version
            ));
        }
        if let Some(floor) = floor
            && release.version.major > floor.major.saturating_add(document.max_major_jump)
        {
            return Err(format!(
                "version floor jump refused: {floor} to {} is more than {} major version(s); the root must allow it (max_major_jump in the trust document)",
                release.version, document.max_major_jump
            ));
        }
        Ok(())
    }

    /// Whether an installed version of `app` signed by `key` may still run at `now_ms`: its key
    /// is still a publisher of that app and has not expired. (An expired *document* does not
    /// stop what runs: it only stops new releases.)
    pub fn check_installed(&self, app: &str, key: KeyId, now_ms: i64) -> Result<(), String> {
        let Some(document) = &self.current else {
            return Err("no trust document yet".into());
        };
        self.check_key(document, key, app, now_ms)
    }

    /// The GPIO lines and publish filters of an app by `key`, checked against its publisher's
    /// maximum grants.
    pub fn check_grants<'a>(
        &self,
        key: KeyId,
        gpio: impl IntoIterator<Item = &'a str>,
        publish: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), String> {
        let Some(publisher) = self.current.as_ref().and_then(|d| d.publisher(key)) else {
            return Err(format!("key {key} is not a publisher"));
        };
        if let Some(line) = publisher.excess_gpio(gpio) {
            return Err(format!(
                "grants GPIO line '{line}', beyond what publisher {} may grant",
                publisher.name
            ));
        }
        if let Some(filter) = publisher.excess_publish(publish) {
            return Err(format!(
                "grants publishing to '{filter}', beyond what publisher {} may grant",
                publisher.name
            ));
        }
        Ok(())
    }

    fn in_force(&self, now_ms: i64) -> Result<&TrustDocument, String> {
        let Some(document) = &self.current else {
            return Err(
                "no trust document yet: the device pins root keys and takes releases only from publishers a root-signed trust document lists (outpost trust publish)".into(),
            );
        };
        if now_ms >= document.expires_ms {
            return Err(format!(
                "trust document version {} expired {} ago; no release is taken until a newer one is published (outpost trust publish)",
                document.version,
                ago(now_ms, document.expires_ms)
            ));
        }
        Ok(document)
    }

    fn check_key(
        &self,
        document: &TrustDocument,
        key: KeyId,
        app: &str,
        now_ms: i64,
    ) -> Result<(), String> {
        let version = document.version;
        let Some(publisher) = document.publisher(key) else {
            return Err(format!(
                "key {key} is not a publisher in trust document version {version} (revoked or never listed)"
            ));
        };
        if now_ms >= publisher.expires_ms {
            return Err(format!(
                "publisher key {key} ({}) expired {} ago (trust document version {version})",
                publisher.name,
                ago(now_ms, publisher.expires_ms)
            ));
        }
        if !publisher.allows_app(app) {
            return Err(format!(
                "publisher key {key} ({}) may not sign app '{app}' (it may sign {}; trust document version {version})",
                publisher.name,
                publisher.apps.join(", ")
            ));
        }
        Ok(())
    }
}

/// `now - then` as people read it, to the second.
fn ago(now_ms: i64, then_ms: i64) -> String {
    let secs = (now_ms.saturating_sub(then_ms) / 1000).max(0) as u64;
    humantime::format_duration(std::time::Duration::from_secs(secs)).to_string()
}

/// Writes `bytes` to `file` atomically and durably (temporary file, fsync, rename, fsync dir).
fn keep(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = file.with_extension("tmp");
    {
        let mut out = std::fs::File::create(&tmp)?;
        out.write_all(bytes)?;
        out.sync_all()?;
    }
    std::fs::rename(&tmp, file)?;
    if let Some(dir) = file.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
