//! Signing keys and the device's trust store.
//!
//! Key files are one line of text, so they can be pasted into a provisioning tool or a ticket:
//! `outpost-ed25519-public <base64 of 32 bytes> [comment]` and
//! `outpost-ed25519-secret <base64 of the 32-byte seed>`. A key's id is the first 8 bytes of the
//! SHA-256 of its public key, shown as hex; bundles name their signer by it.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::digest::{Digest, hex, sha256};
use crate::error::{BundleError, KeyError};

const PUBLIC_PREFIX: &str = "outpost-ed25519-public";
const SECRET_PREFIX: &str = "outpost-ed25519-secret";

/// The id a bundle names its signer by: the first 8 bytes of SHA-256 of the public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct KeyId(pub [u8; 8]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// A publisher's public key.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Parses the text of a `.pub` file (surrounding whitespace and a trailing comment allowed).
    pub fn parse(text: &str) -> Result<PublicKey, KeyError> {
        let bytes = parse_line(text, PUBLIC_PREFIX, "public")?;
        PublicKey::from_bytes(&bytes)
    }

    /// The key with these 32 bytes (refusing invalid and weak keys).
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<PublicKey, KeyError> {
        let key = VerifyingKey::from_bytes(bytes)
            .map_err(|error| KeyError::InvalidPoint(error.to_string()))?;
        // A small-order key would let one signature verify for many messages; `verify_strict`
        // refuses them at verification time, but a trust store should never hold one at all.
        if key.is_weak() {
            return Err(KeyError::InvalidPoint("weak (small-order) key".into()));
        }
        Ok(PublicKey(key))
    }

    /// Its 32 bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The key as one line of `.pub` file text (with a newline).
    pub fn to_text(&self) -> String {
        format!("{PUBLIC_PREFIX} {}\n", STANDARD.encode(self.0.to_bytes()))
    }

    /// Its id.
    pub fn id(&self) -> KeyId {
        let digest = sha256(self.0.as_bytes());
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest.0[..8]);
        KeyId(id)
    }

    /// Whether `signature` is this key's strict ed25519 signature of `message`.
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        let signature = Signature::from_bytes(signature);
        self.0.verify_strict(message, &signature).is_ok()
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.id())
    }
}

/// A publisher's secret signing key. Never printed.
pub struct SecretKey(SigningKey);

impl SecretKey {
    /// A new key from the operating system's random source.
    pub fn generate() -> Result<SecretKey, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|error| KeyError::Random(error.to_string()))?;
        Ok(SecretKey(SigningKey::from_bytes(&seed)))
    }

    /// The key with this 32-byte seed (tests and fixed fuzzing keys; real keys use
    /// [`SecretKey::generate`]).
    pub fn from_seed(seed: [u8; 32]) -> SecretKey {
        SecretKey(SigningKey::from_bytes(&seed))
    }

    /// Parses the text of a secret key file.
    pub fn parse(text: &str) -> Result<SecretKey, KeyError> {
        let seed = parse_line(text, SECRET_PREFIX, "secret")?;
        Ok(SecretKey(SigningKey::from_bytes(&seed)))
    }

    /// The key as one line of secret key file text (with a newline).
    pub fn to_text(&self) -> String {
        format!("{SECRET_PREFIX} {}\n", STANDARD.encode(self.0.to_bytes()))
    }

    /// Its public half.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// Signs `message`.
    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(public {})", self.public().id())
    }
}

/// The publisher keys a device accepts bundles from; several at once, so keys can be rotated.
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    keys: Vec<PublicKey>,
}

impl TrustStore {
    /// A trust store holding `keys` (duplicates are kept once).
    pub fn new(keys: impl IntoIterator<Item = PublicKey>) -> TrustStore {
        let mut store = TrustStore::default();
        for key in keys {
            store.add(key);
        }
        store
    }

    /// Adds a key, unless already present.
    pub fn add(&mut self, key: PublicKey) {
        if !self.keys.contains(&key) {
            self.keys.push(key);
        }
    }

    /// Whether no key is trusted (then every bundle is refused).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The trusted keys.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// Checks `signature` by the key named `key_id` over `digest`; fails closed.
    pub(crate) fn check(
        &self,
        key_id: KeyId,
        digest: &Digest,
        signature: &[u8; 64],
    ) -> Result<(), BundleError> {
        let Some(key) = self.keys.iter().find(|k| k.id() == key_id) else {
            let trusted = if self.keys.is_empty() {
                "none".to_string()
            } else {
                self.keys
                    .iter()
                    .map(|k| k.id().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(BundleError::UnknownKey { key_id, trusted });
        };
        if key.verify(&digest.0, signature) {
            Ok(())
        } else {
            Err(BundleError::BadSignature { key_id })
        }
    }
}

/// The 32 bytes of a `PREFIX <base64> [comment]` line.
fn parse_line(text: &str, prefix: &'static str, what: &'static str) -> Result<[u8; 32], KeyError> {
    let mut words = text.split_whitespace();
    if words.next() != Some(prefix) {
        return Err(KeyError::Format {
            expected: what,
            prefix,
        });
    }
    let encoded = words.next().ok_or(KeyError::Format {
        expected: what,
        prefix,
    })?;
    let bytes = STANDARD
        .decode(encoded)
        .map_err(|error| KeyError::Encoding {
            what,
            reason: error.to_string(),
        })?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| KeyError::Encoding {
        what,
        reason: format!("{} bytes, expected 32", bytes.len()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_their_text() {
        let secret = SecretKey::generate().expect("random");
        let again = SecretKey::parse(&secret.to_text()).expect("parses");
        assert_eq!(again.public(), secret.public());
        let public = PublicKey::parse(&format!(
            "{} laptop of ops",
            secret.public().to_text().trim()
        ))
        .expect("comment allowed");
        assert_eq!(public.id(), secret.public().id());
    }

    #[test]
    fn a_secret_key_is_not_a_public_key() {
        let secret = SecretKey::generate().expect("random");
        let error = PublicKey::parse(&secret.to_text()).expect_err("wrong kind");
        assert!(
            error.to_string().contains("not an Outpost public key"),
            "{error}"
        );
        let error = PublicKey::parse("outpost-ed25519-public AAAA").expect_err("short");
        assert!(
            error.to_string().contains("3 bytes, expected 32"),
            "{error}"
        );
    }

    #[test]
    fn unknown_and_wrong_keys_fail_closed() {
        let signer = SecretKey::generate().expect("random");
        let other = SecretKey::generate().expect("random");
        let digest = sha256(b"header");
        let signature = signer.sign(&digest.0);
        let empty = TrustStore::default();
        assert!(matches!(
            empty.check(signer.public().id(), &digest, &signature),
            Err(BundleError::UnknownKey { .. })
        ));
        let trusted = TrustStore::new([other.public(), signer.public()]);
        assert!(
            trusted
                .check(signer.public().id(), &digest, &signature)
                .is_ok()
        );
        let forged = other.sign(&digest.0);
        assert!(matches!(
            trusted.check(signer.public().id(), &digest, &forged),
            Err(BundleError::BadSignature { .. })
        ));
    }
}
