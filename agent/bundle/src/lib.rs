//! Outpost's signed bundle format: one file per app version that a fleet can trust.
//!
//! A bundle is `b"OPB1"` followed by a postcard-encoded, versioned envelope:
//!
//! ```text
//! envelope V1 { header: bytes, key_id: [u8; 8], signature: bytes(64), body: bytes }
//! header      { app, version, body_len, body_digest = sha256(body), created_ms }
//! body        { manifest: TOML text, modules: [{ id, digest = sha256(wasm), wasm }] }
//! ```
//!
//! The ed25519 signature (`verify_strict`) covers `sha256("outpost-bundle-v1\0" || header)`, and
//! the header names the body's length and digest, so one signature check covers every byte. The
//! header alone is enough to decide whether a bundle is wanted (signer, app, version): a fleet
//! [`Announcement`] carries it so a device can refuse a forged or older bundle before
//! downloading anything.
//!
//! Decoding never panics and never allocates more than a small multiple of its input: postcard
//! reads byte strings as borrowed slices of the input, and every count is checked against
//! [`Limits`] before it is used.

mod announce;
mod digest;
mod error;
mod format;
mod keys;
mod pack;
mod release;
mod trust_doc;
mod verify;

pub use announce::{Announcement, ChunkPlan};
pub use digest::{Digest, sha256};
pub use error::{BundleError, KeyError};
pub use format::{BundleHeader, Limits, ModuleEntry};
pub use keys::{KeyId, PublicKey, SecretKey, TrustStore};
pub use pack::{ModuleInput, pack};
pub use release::{MAX_RELEASE_TARGETS, Release, ReleaseInput, SignedRelease, valid_target_name};
pub use trust_doc::{Publisher, SignedTrust, TrustDocument};

/// Whether `name` is a valid app name: `[a-z0-9][a-z0-9-]{0,63}` (checked before anything
/// named after it is written).
pub fn valid_app_name(name: &str) -> bool {
    format::valid_app_name(name)
}
pub use verify::{InspectedBundle, VerifiedBundle, inspect, reopen, verify};

/// Parses a bundle version (`MAJOR.MINOR.PATCH[-pre]`, semver precedence).
pub fn parse_version(text: &str) -> Result<semver::Version, BundleError> {
    semver::Version::parse(text).map_err(|error| BundleError::BadVersion {
        version: text.chars().take(64).collect(),
        reason: error.to_string(),
    })
}

pub use semver::Version;

/// The checks the fuzz target runs (`fuzz/` workspace), shared with the seed-corpus test so both
/// exercise exactly the same code. Not part of the API.
#[doc(hidden)]
pub mod fuzzing {
    use crate::{Announcement, Limits, SecretKey, SignedRelease, SignedTrust, TrustStore};

    /// The fixed key the seed corpus is signed with (a test key; never trust it on a device).
    pub fn seed_key() -> SecretKey {
        SecretKey::from_seed([7; 32])
    }

    /// Decodes and verifies `data` as a bundle and as an announcement against the seed key;
    /// must never panic. Returns whether it verified as a bundle.
    pub fn exercise(data: &[u8]) -> bool {
        let trust = TrustStore::new([seed_key().public()]);
        let limits = Limits::default();
        let verified = crate::verify(data, &trust, &limits);
        if let Ok(bundle) = &verified {
            // What verified must describe itself consistently.
            assert!(bundle.header.body_len as usize <= data.len());
            assert!(!bundle.modules.is_empty());
        }
        if let Ok(inspected) = crate::inspect(data, &limits) {
            // Inspection and verification agree on a trusted bundle.
            assert_eq!(inspected.check(&trust).is_ok(), verified.is_ok());
        }
        if let Ok(announcement) = Announcement::decode(data, &limits) {
            let _ = announcement.verify(&trust);
            if let Ok((header, release)) = announcement.verify_release(&trust, &limits) {
                // A verified release agrees with the bundle header it names.
                assert_eq!(header.app, release.app);
                assert_eq!(release.chunks, announcement.chunks);
            }
            for index in 0..announcement.chunks.count() {
                let range = announcement.chunks.range(index);
                assert!(range.end as u64 <= announcement.chunks.bundle_len);
            }
        }
        // The same bytes as bare release metadata, signed or not.
        let release = SignedRelease {
            bytes: data.to_vec(),
            key_id: seed_key().public().id(),
            signature: [0; 64],
        };
        if let Ok(decoded) = release.decode(&limits) {
            assert!(decoded.expires_ms > decoded.created_ms);
            assert!(decoded.groups.len() + decoded.devices.len() <= crate::MAX_RELEASE_TARGETS);
        }
        // And as a trust document signed by the seed key as root.
        if let Ok(signed) = SignedTrust::decode(data) {
            let unverified = signed.document_unverified();
            if let Ok(document) = signed.verify(&[seed_key().public()], 1, None) {
                assert_eq!(Some(&document), unverified.as_ref().ok());
                assert!(usize::from(document.threshold) <= document.roots.len());
            }
        }
        verified.is_ok()
    }
}
