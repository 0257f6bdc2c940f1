//! Why a bundle, an announcement or a key was refused. Every message names what was wrong in
//! words an operator can act on.

use thiserror::Error;

use crate::Digest;
use crate::keys::KeyId;

/// Why a bundle or announcement was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BundleError {
    /// Larger than the configured maximum; refused before reading it.
    #[error("bundle is {size} bytes, over the {limit}-byte limit")]
    TooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Does not start with the bundle (or announcement) magic.
    #[error("not an Outpost {what} (bad magic bytes)")]
    BadMagic {
        /// `bundle` or `announcement`.
        what: &'static str,
    },
    /// The data ends before the structure it holds does: a cut-off download or file.
    #[error("{what} is truncated: the data ends inside its {part}")]
    Truncated {
        /// `bundle` or `announcement`.
        what: &'static str,
        /// The part being read when the data ran out.
        part: &'static str,
    },
    /// The envelope or a part of it does not decode.
    #[error("malformed {part}: {reason}")]
    Malformed {
        /// Which part (`envelope`, `header`, `body`, `announcement`).
        part: &'static str,
        /// What the decoder said.
        reason: String,
    },
    /// A format version this agent does not read.
    #[error("{what} format version {version} is not supported (this agent reads version 1)")]
    UnsupportedFormat {
        /// `bundle` or `announcement`.
        what: &'static str,
        /// The version found.
        version: u32,
    },
    /// Signed by a key the device does not trust (or not signed at all).
    #[error("signed by unknown key {key_id}; trusted keys: {trusted}")]
    UnknownKey {
        /// The signer's key id.
        key_id: KeyId,
        /// The trusted key ids, comma-separated (or `none`).
        trusted: String,
    },
    /// The signature does not verify against the named (trusted) key.
    #[error(
        "signature does not verify against key {key_id}: the header was altered or signed by another key"
    )]
    BadSignature {
        /// The key the bundle claims.
        key_id: KeyId,
    },
    /// The body is shorter or longer than the signed header says: a truncated or padded file.
    #[error(
        "bundle body is {actual} bytes but its signed header says {expected}: truncated or padded"
    )]
    BodyLength {
        /// What the header says.
        expected: u64,
        /// What is there.
        actual: u64,
    },
    /// The body does not hash to the signed digest.
    #[error(
        "bundle body does not match its signed digest {expected:?} (got {actual:?}): altered after signing"
    )]
    BodyDigest {
        /// What the header says.
        expected: Digest,
        /// What the body hashes to.
        actual: Digest,
    },
    /// A module does not hash to the digest listed for it.
    #[error(
        "module '{component}' does not match its digest (expected {expected:?}, got {actual:?}): altered after signing"
    )]
    ModuleDigest {
        /// The component the module belongs to.
        component: String,
        /// The digest listed in the body.
        expected: Digest,
        /// What the module hashes to.
        actual: Digest,
    },
    /// Two modules with the same component id, or no modules.
    #[error("bundle modules are inconsistent: {0}")]
    Modules(String),
    /// A count or size over the decoder's limits.
    #[error("{what} is {value}, over the limit of {limit}")]
    OverLimit {
        /// What was counted.
        what: &'static str,
        /// The value found.
        value: u64,
        /// The limit.
        limit: u64,
    },
    /// The version is not semver.
    #[error("version '{version}' is not MAJOR.MINOR.PATCH: {reason}")]
    BadVersion {
        /// The version text (shortened).
        version: String,
        /// The parser's reason.
        reason: String,
    },
    /// The app name is not a valid app name.
    #[error("app name '{0}' is not 1-64 characters of a-z 0-9 -")]
    BadAppName(String),
    /// An announcement's numbers disagree with each other.
    #[error("announcement is inconsistent: {0}")]
    Announcement(String),
    /// A trust document does not decode, is not signed by enough root keys, or is older.
    #[error("trust document refused: {0}")]
    Trust(String),
    /// Signed release metadata is missing or does not describe the announced bundle.
    #[error("release metadata refused: {0}")]
    Release(String),
    /// A key could not be used.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// Why a key file or key text was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// Not `outpost-ed25519-public <base64>` / `outpost-ed25519-secret <base64>`.
    #[error("not an Outpost {expected} key: expected a line '{prefix} <base64>'")]
    Format {
        /// `public` or `secret`.
        expected: &'static str,
        /// The line prefix expected.
        prefix: &'static str,
    },
    /// The base64 is bad or the wrong length.
    #[error("bad {what} key: {reason}")]
    Encoding {
        /// `public` or `secret`.
        what: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// Not a valid ed25519 point (or a weak key `verify_strict` would refuse).
    #[error("public key is not a valid ed25519 key: {0}")]
    InvalidPoint(String),
    /// The system's random source failed while generating a key.
    #[error("cannot generate a key: no randomness: {0}")]
    Random(String),
}
