//! Signed release metadata (TUF's "targets" role, kept small): what a device acts on when it
//! installs a bundle, signed by a trusted publisher key at `outpost fleet publish` time.
//!
//! ```text
//! release V1 { app, version, groups: [..], devices: [..], header_digest, bundle_len,
//!              bundle_digest, chunk_size, chunk_digests: [..], created_ms, expires_ms, counter }
//! ```
//!
//! The ed25519 signature (`verify_strict`) covers `sha256("outpost-release-v1\0" || release)`,
//! a domain of its own, so a bundle signature can never pass for a release signature or the
//! reverse. The release names the bundle by its signed header (`header_digest`) and by the digest
//! of each chunk, so a device knows a chunk is bad the moment it arrives (and fetches it again)
//! rather than after assembling the whole bundle; it names who may install it (groups and/or
//! devices) and until when, so a copy replayed to another group, another device or after its
//! expiry is refused before a byte is fetched.

use serde::{Deserialize, Serialize};

use crate::announce::ChunkPlan;
use crate::digest::{Digest, sha256, sha256_parts};
use crate::error::BundleError;
use crate::format::{Limits, valid_app_name};
use crate::keys::{KeyId, SecretKey, TrustStore};

/// Domain separation of release signatures.
const RELEASE_DOMAIN: &[u8] = b"outpost-release-v1\0";
/// Most groups plus devices one release may name (bounds decoding and the topic fan-out).
pub const MAX_RELEASE_TARGETS: usize = 256;

/// The signed bytes of a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ReleaseV1 {
    app: String,
    version: String,
    groups: Vec<String>,
    devices: Vec<String>,
    header_digest: Digest,
    bundle_len: u64,
    bundle_digest: Digest,
    chunk_size: u32,
    chunk_digests: Vec<Digest>,
    created_ms: i64,
    expires_ms: i64,
    counter: u64,
}

#[derive(Serialize, Deserialize)]
enum Envelope {
    V1(ReleaseV1),
}

/// What a signed release says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// The app it installs.
    pub app: String,
    /// Its version.
    pub version: semver::Version,
    /// Groups whose devices may install it.
    pub groups: Vec<String>,
    /// Devices that may install it (by id).
    pub devices: Vec<String>,
    /// SHA-256 of the bundle's signed header bytes: ties the release to one bundle signature.
    pub header_digest: Digest,
    /// How the bundle file is cut, with every chunk's digest.
    pub chunks: ChunkPlan,
    /// When it was signed, ms since the epoch (a lower bound for the device's clock).
    pub created_ms: i64,
    /// After this (ms since the epoch) no device acts on it.
    pub expires_ms: i64,
    /// Increases with every release the publisher signs (anti-replay of older metadata).
    pub counter: u64,
    /// Who signed it.
    pub key_id: KeyId,
}

/// What a publisher fills in to sign a release.
#[derive(Debug, Clone)]
pub struct ReleaseInput {
    /// Groups it targets.
    pub groups: Vec<String>,
    /// Devices it targets.
    pub devices: Vec<String>,
    /// SHA-256 of the bundle's signed header bytes.
    pub header_digest: Digest,
    /// The bundle cut into chunks.
    pub chunks: ChunkPlan,
    /// Signing time, ms since the epoch.
    pub created_ms: i64,
    /// Expiry, ms since the epoch.
    pub expires_ms: i64,
    /// The release counter.
    pub counter: u64,
}

/// A signed release as it travels: the signed bytes, the signer and the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRelease {
    /// The signed bytes (`b"OPR1"` is not part of them; they are the postcard envelope).
    pub bytes: Vec<u8>,
    /// The signer's key id.
    pub key_id: KeyId,
    /// ed25519 signature over the domain-separated digest of `bytes`.
    pub signature: [u8; 64],
}

impl SignedRelease {
    /// Signs the release of `app` `version` described by `input` with `key`.
    pub fn sign(
        app: &str,
        version: &semver::Version,
        input: &ReleaseInput,
        key: &SecretKey,
    ) -> Result<SignedRelease, BundleError> {
        let release = ReleaseV1 {
            app: app.to_string(),
            version: version.to_string(),
            groups: input.groups.clone(),
            devices: input.devices.clone(),
            header_digest: input.header_digest,
            bundle_len: input.chunks.bundle_len,
            bundle_digest: input.chunks.bundle_digest,
            chunk_size: input.chunks.chunk_size,
            chunk_digests: input.chunks.chunk_digests.clone(),
            created_ms: input.created_ms,
            expires_ms: input.expires_ms,
            counter: input.counter,
        };
        let bytes =
            postcard::to_stdvec(&Envelope::V1(release)).map_err(|e| BundleError::Malformed {
                part: "release",
                reason: e.to_string(),
            })?;
        let signature = key.sign(&release_digest(&bytes).0);
        let signed = SignedRelease {
            bytes,
            key_id: key.public().id(),
            signature,
        };
        // What is signed must decode: a publisher never sends what every device refuses.
        signed.decode(&Limits::default())?;
        Ok(signed)
    }

    /// Decodes the release without checking its signature (bounds and canonical form only).
    pub fn decode(&self, limits: &Limits) -> Result<Release, BundleError> {
        decode_release(&self.bytes, self.key_id, limits)
    }

    /// Checks the signature against `trust` (fails closed), then decodes.
    pub fn verify(&self, trust: &TrustStore, limits: &Limits) -> Result<Release, BundleError> {
        trust.check(self.key_id, &release_digest(&self.bytes), &self.signature)?;
        self.decode(limits)
    }

    /// SHA-256 of the signed bytes: names this release (what a device marks seen).
    pub fn digest(&self) -> Digest {
        sha256(&self.bytes)
    }
}

impl Release {
    /// Whether it names `group` among its groups.
    pub fn targets_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// Whether it names `device` among its devices.
    pub fn targets_device(&self, device: &str) -> bool {
        self.devices.iter().any(|d| d == device)
    }

    /// Who it targets, as people read it: `groups north, south; devices pi-1`.
    pub fn describe_targets(&self) -> String {
        let mut parts = Vec::new();
        if !self.groups.is_empty() {
            parts.push(format!("groups {}", self.groups.join(", ")));
        }
        if !self.devices.is_empty() {
            parts.push(format!("devices {}", self.devices.join(", ")));
        }
        if parts.is_empty() {
            "nobody".into()
        } else {
            parts.join("; ")
        }
    }
}

/// The digest a release signature covers.
fn release_digest(bytes: &[u8]) -> Digest {
    sha256_parts(&[RELEASE_DOMAIN, bytes])
}

fn malformed(reason: impl Into<String>) -> BundleError {
    BundleError::Malformed {
        part: "release",
        reason: reason.into(),
    }
}

/// Decodes release bytes: canonical postcard, bounded counts, names that can be topic segments.
fn decode_release(bytes: &[u8], key_id: KeyId, limits: &Limits) -> Result<Release, BundleError> {
    // Counts are checked by postcard against the input length (each element takes at least a
    // byte), so a count cannot make it allocate more than a small multiple of the input; the
    // input is itself bounded by the fleet message limit.
    let Envelope::V1(release) = postcard::from_bytes::<Envelope>(bytes)
        .map_err(|e| crate::verify::decode_error("release", "release", e))?;
    let canonical = postcard::to_stdvec(&Envelope::V1(release.clone()))
        .map_err(|e| malformed(e.to_string()))?;
    if canonical != bytes {
        return Err(malformed("not in canonical form"));
    }
    if !valid_app_name(&release.app) {
        return Err(BundleError::BadAppName(
            release.app.chars().take(64).collect(),
        ));
    }
    let version = crate::parse_version(&release.version)?;
    let targets = release.groups.len() + release.devices.len();
    if targets > MAX_RELEASE_TARGETS {
        return Err(BundleError::OverLimit {
            what: "release target count",
            value: targets as u64,
            limit: MAX_RELEASE_TARGETS as u64,
        });
    }
    if let Some(bad) = release
        .groups
        .iter()
        .chain(&release.devices)
        .find(|name| !valid_target_name(name))
    {
        return Err(malformed(format!(
            "target '{}' is not 1-64 characters of A-Z a-z 0-9 - _",
            bad.chars().take(64).collect::<String>()
        )));
    }
    if release.expires_ms <= release.created_ms {
        return Err(malformed("it expires before it was created"));
    }
    let chunks = ChunkPlan {
        bundle_len: release.bundle_len,
        bundle_digest: release.bundle_digest,
        chunk_size: release.chunk_size,
        chunk_digests: release.chunk_digests,
    };
    chunks.check(limits)?;
    Ok(Release {
        app: release.app,
        version,
        groups: release.groups,
        devices: release.devices,
        header_digest: release.header_digest,
        chunks,
        created_ms: release.created_ms,
        expires_ms: release.expires_ms,
        counter: release.counter,
        key_id,
    })
}

/// Group names and device ids: `[A-Za-z0-9_-]{1,64}` (one topic segment, no wildcards).
pub fn valid_target_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(bundle: &[u8]) -> ReleaseInput {
        ReleaseInput {
            groups: vec!["north".into()],
            devices: vec![],
            header_digest: sha256(b"header"),
            chunks: ChunkPlan::cut(bundle, 256).expect("cut"),
            created_ms: 1_000,
            expires_ms: 2_000,
            counter: 7,
        }
    }

    #[test]
    fn a_release_round_trips_and_verifies_only_with_its_key() {
        let key = SecretKey::from_seed([1; 32]);
        let other = SecretKey::from_seed([2; 32]);
        let version = semver::Version::new(1, 2, 3);
        let signed = SignedRelease::sign("pump", &version, &input(&[5; 700]), &key).expect("sign");
        let trust = TrustStore::new([key.public()]);
        let release = signed.verify(&trust, &Limits::default()).expect("verifies");
        assert_eq!(release.app, "pump");
        assert_eq!(release.version, version);
        assert_eq!(release.chunks.count(), 3);
        assert!(release.targets_group("north") && !release.targets_group("south"));
        assert_eq!(release.describe_targets(), "groups north");
        let wrong = TrustStore::new([other.public()]);
        assert!(matches!(
            signed.verify(&wrong, &Limits::default()),
            Err(BundleError::UnknownKey { .. })
        ));
        let mut flipped = signed.clone();
        let last = flipped.bytes.len() - 1;
        flipped.bytes[last] ^= 1;
        assert!(flipped.verify(&trust, &Limits::default()).is_err());
    }

    #[test]
    fn bad_targets_and_expiry_do_not_sign() {
        let key = SecretKey::from_seed([1; 32]);
        let version = semver::Version::new(1, 0, 0);
        let mut bad = input(&[1; 300]);
        bad.groups = vec!["a/b".into()];
        assert!(SignedRelease::sign("pump", &version, &bad, &key).is_err());
        let mut backwards = input(&[1; 300]);
        backwards.expires_ms = backwards.created_ms;
        assert!(SignedRelease::sign("pump", &version, &backwards, &key).is_err());
        assert!(SignedRelease::sign("Pump", &version, &input(&[1; 300]), &key).is_err());
    }
}
