//! The on-the-wire structures of a bundle and the decoder's limits. Byte strings are borrowed
//! from the input, so decoding allocates only small fixed-size parts.

use serde::{Deserialize, Serialize};

use crate::digest::{Digest, sha256_parts};
use crate::error::BundleError;
use crate::keys::KeyId;

/// First bytes of every bundle file.
pub(crate) const BUNDLE_MAGIC: &[u8; 4] = b"OPB1";
/// Domain separation for the signed digest, so a bundle signature can never be replayed as a
/// signature of anything else.
const SIGNING_DOMAIN: &[u8] = b"outpost-bundle-v1\0";

/// Bounds the decoder enforces before trusting any count or size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest bundle file accepted.
    pub max_bundle_bytes: u64,
    /// Most components (modules) in one bundle.
    pub max_modules: usize,
    /// Largest manifest text.
    pub max_manifest_bytes: usize,
    /// Most chunks an announcement may name.
    pub max_chunks: usize,
}

impl Default for Limits {
    /// 32 MiB bundles, 64 modules, 256 KiB of manifest, 8192 chunks.
    fn default() -> Limits {
        Limits {
            max_bundle_bytes: 32 << 20,
            max_modules: 64,
            max_manifest_bytes: 256 << 10,
            max_chunks: 8192,
        }
    }
}

/// The versioned envelope after the magic.
#[derive(Serialize, Deserialize)]
pub(crate) enum Envelope<'a> {
    /// Format version 1.
    #[serde(borrow)]
    V1(SignedV1<'a>),
}

/// A signed header with the body it describes.
#[derive(Serialize, Deserialize)]
pub(crate) struct SignedV1<'a> {
    /// postcard([`HeaderV1`]); the signed bytes.
    pub header: &'a [u8],
    /// The signer's key id.
    pub key_id: KeyId,
    /// ed25519 signature (64 bytes) over [`signed_digest`] of `header`.
    pub signature: &'a [u8],
    /// postcard([`BodyV1`]).
    pub body: &'a [u8],
}

/// The signed header: everything needed to decide whether a bundle is wanted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct HeaderV1 {
    pub app: String,
    pub version: String,
    pub body_len: u64,
    pub body_digest: Digest,
    pub created_ms: i64,
}

/// The payload: the resolved manifest and the modules.
#[derive(Serialize, Deserialize)]
pub(crate) struct BodyV1<'a> {
    pub manifest: &'a str,
    #[serde(borrow)]
    pub modules: Vec<ModuleV1<'a>>,
}

/// One component's module.
#[derive(Serialize, Deserialize)]
pub(crate) struct ModuleV1<'a> {
    pub id: &'a str,
    pub digest: Digest,
    pub wasm: &'a [u8],
}

/// What a bundle's signed header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleHeader {
    /// The app it installs.
    pub app: String,
    /// Its version (semver).
    pub version: semver::Version,
    /// Length of the body in bytes.
    pub body_len: u64,
    /// SHA-256 of the body.
    pub body_digest: Digest,
    /// When it was packed, ms since the Unix epoch.
    pub created_ms: i64,
    /// Who signed it.
    pub key_id: KeyId,
}

/// One component's module inside a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleEntry {
    /// The component id in the manifest.
    pub id: String,
    /// SHA-256 of `wasm`.
    pub digest: Digest,
    /// The module.
    pub wasm: Vec<u8>,
}

/// The digest a signature covers: SHA-256 of the domain and the header bytes.
pub(crate) fn signed_digest(header: &[u8]) -> Digest {
    sha256_parts(&[SIGNING_DOMAIN, header])
}

/// Decodes a header and checks that it is in canonical form and names a valid app and version.
pub(crate) fn decode_header(bytes: &[u8], key_id: KeyId) -> Result<BundleHeader, BundleError> {
    let header: HeaderV1 = postcard::from_bytes(bytes).map_err(|e| BundleError::Malformed {
        part: "header",
        reason: e.to_string(),
    })?;
    // One header, one encoding: re-encoding must give the signed bytes back, so trailing bytes
    // or alternative varint forms cannot ride along under a valid signature.
    let canonical = postcard::to_stdvec(&header).map_err(|e| BundleError::Malformed {
        part: "header",
        reason: e.to_string(),
    })?;
    if canonical != bytes {
        return Err(BundleError::Malformed {
            part: "header",
            reason: "not in canonical form".into(),
        });
    }
    if !valid_app_name(&header.app) {
        return Err(BundleError::BadAppName(
            header.app.chars().take(64).collect(),
        ));
    }
    let version = crate::parse_version(&header.version)?;
    Ok(BundleHeader {
        app: header.app,
        version,
        body_len: header.body_len,
        body_digest: header.body_digest,
        created_ms: header.created_ms,
        key_id,
    })
}

/// The signature bytes as an array, or a clear error.
pub(crate) fn signature_array(bytes: &[u8]) -> Result<[u8; 64], BundleError> {
    <[u8; 64]>::try_from(bytes).map_err(|_| BundleError::Malformed {
        part: "envelope",
        reason: format!("signature is {} bytes, expected 64", bytes.len()),
    })
}

/// App names as the manifest allows them: `[a-z0-9][a-z0-9-]{0,63}`.
pub(crate) fn valid_app_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}
