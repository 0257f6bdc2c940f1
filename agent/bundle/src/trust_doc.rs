//! The trust document (TUF's "root" role, kept small): which publisher keys may sign which apps
//! for which targets, the most their apps may be granted, until when, and how far one release
//! may raise an app's version floor. Signed by a threshold of offline root keys; versioned, so a
//! device never goes back to an older document; expiring, so a device that was away for months
//! fails closed and says so.
//!
//! ```text
//! "OPD1" envelope V1 { document: bytes, signatures: [(key_id, signature)] }
//! document V1 { version, expires_ms, roots: [key], threshold, max_major_jump,
//!               publishers: [{ key, name, apps, targets, gpio, publish, expires_ms }] }
//! ```
//!
//! Each signature covers `sha256("outpost-trust-v1\0" || document)`. A new document is taken
//! when at least `threshold` distinct keys among the *current* roots signed it (the device's
//! pinned root keys for the first one) and its version is higher: rotating the roots themselves
//! is a document signed by the old roots naming the new ones.

use serde::{Deserialize, Serialize};

use crate::digest::{Digest, sha256_parts};
use crate::error::BundleError;
use crate::keys::{KeyId, PublicKey, SecretKey, TrustStore};

const TRUST_MAGIC: &[u8; 4] = b"OPD1";
const TRUST_DOMAIN: &[u8] = b"outpost-trust-v1\0";
/// Most publishers, roots and signatures in one document (bounds decoding).
const MAX_ENTRIES: usize = 64;
/// Most names in one publisher's lists.
const MAX_NAMES: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PublisherV1 {
    key: [u8; 32],
    name: String,
    apps: Vec<String>,
    targets: Vec<String>,
    gpio: Vec<String>,
    publish: Vec<String>,
    expires_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct DocumentV1 {
    version: u64,
    expires_ms: i64,
    roots: Vec<[u8; 32]>,
    threshold: u8,
    max_major_jump: u64,
    publishers: Vec<PublisherV1>,
}

#[derive(Serialize, Deserialize)]
enum Document {
    V1(DocumentV1),
}

#[derive(Serialize, Deserialize)]
enum Envelope<'a> {
    #[serde(borrow)]
    V1(EnvelopeV1<'a>),
}

#[derive(Serialize, Deserialize)]
struct EnvelopeV1<'a> {
    document: &'a [u8],
    signatures: Vec<(KeyId, &'a [u8])>,
}

/// What one publisher key may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publisher {
    /// Its public key.
    pub key: PublicKey,
    /// Who holds it (shown in reasons).
    pub name: String,
    /// Apps it may sign: exact names, `prefix-*`, or `*`.
    pub apps: Vec<String>,
    /// Targets its releases may name: group names, `@device` ids, or `*`.
    pub targets: Vec<String>,
    /// GPIO lines its apps may be granted (`*`: any).
    pub gpio: Vec<String>,
    /// Topic prefixes its apps may publish under (`*`: any).
    pub publish: Vec<String>,
    /// After this (ms since the epoch) the key signs nothing a device takes.
    pub expires_ms: i64,
}

/// A verified trust document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustDocument {
    /// Increases with every document; a device never takes a lower or equal one.
    pub version: u64,
    /// After this (ms since the epoch) the device takes no new release until a newer document.
    pub expires_ms: i64,
    /// The root keys that may sign the next document.
    pub roots: Vec<PublicKey>,
    /// How many of them must sign it.
    pub threshold: u8,
    /// How many major versions one release may raise an app's floor by.
    pub max_major_jump: u64,
    /// The publisher keys and their scopes.
    pub publishers: Vec<Publisher>,
}

/// A trust document as it travels: its bytes and the root signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTrust {
    /// The signed document bytes.
    pub document: Vec<u8>,
    /// `(root key id, signature)` pairs.
    pub signatures: Vec<(KeyId, [u8; 64])>,
}

fn bad(reason: impl Into<String>) -> BundleError {
    BundleError::Trust(reason.into())
}

fn digest(document: &[u8]) -> Digest {
    sha256_parts(&[TRUST_DOMAIN, document])
}

/// Whether `name` matches `pattern`: equal, `*`, or `prefix*`.
fn matches(pattern: &str, name: &str) -> bool {
    pattern == "*"
        || pattern == name
        || pattern
            .strip_suffix('*')
            .is_some_and(|prefix| name.starts_with(prefix))
}

impl Publisher {
    /// Whether it may sign `app`.
    pub fn allows_app(&self, app: &str) -> bool {
        self.apps.iter().any(|p| matches(p, app))
    }

    /// Whether its releases may name `target` (a group, or `@device`).
    pub fn allows_target(&self, target: &str) -> bool {
        self.targets.iter().any(|p| matches(p, target))
    }

    /// The first of `lines` its apps may not be granted.
    pub fn excess_gpio<'a>(&self, lines: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
        lines
            .into_iter()
            .find(|line| !self.gpio.iter().any(|p| matches(p, line)))
    }

    /// The first of the topic `filters` not under one of its publish prefixes.
    pub fn excess_publish<'a>(
        &self,
        filters: impl IntoIterator<Item = &'a str>,
    ) -> Option<&'a str> {
        filters.into_iter().find(|filter| {
            !self
                .publish
                .iter()
                .any(|p| p == "*" || (filter.starts_with(p.as_str()) && !p.is_empty()))
        })
    }
}

impl TrustDocument {
    /// The publisher whose key has id `key_id`.
    pub fn publisher(&self, key_id: KeyId) -> Option<&Publisher> {
        self.publishers.iter().find(|p| p.key.id() == key_id)
    }

    /// Every publisher key, as a trust store for signature checks.
    pub fn trust_store(&self) -> TrustStore {
        TrustStore::new(self.publishers.iter().map(|p| p.key.clone()))
    }

    fn to_wire(&self) -> DocumentV1 {
        DocumentV1 {
            version: self.version,
            expires_ms: self.expires_ms,
            roots: self.roots.iter().map(PublicKey::to_bytes).collect(),
            threshold: self.threshold,
            max_major_jump: self.max_major_jump,
            publishers: self
                .publishers
                .iter()
                .map(|p| PublisherV1 {
                    key: p.key.to_bytes(),
                    name: p.name.clone(),
                    apps: p.apps.clone(),
                    targets: p.targets.clone(),
                    gpio: p.gpio.clone(),
                    publish: p.publish.clone(),
                    expires_ms: p.expires_ms,
                })
                .collect(),
        }
    }

    fn from_wire(doc: DocumentV1) -> Result<TrustDocument, BundleError> {
        let key = |bytes: &[u8; 32]| PublicKey::from_bytes(bytes).map_err(BundleError::Key);
        if doc.roots.is_empty()
            || doc.threshold == 0
            || usize::from(doc.threshold) > doc.roots.len()
        {
            return Err(bad(format!(
                "threshold {} of {} root keys",
                doc.threshold,
                doc.roots.len()
            )));
        }
        if doc.roots.len() > MAX_ENTRIES || doc.publishers.len() > MAX_ENTRIES {
            return Err(bad("too many root or publisher keys"));
        }
        let mut publishers = Vec::with_capacity(doc.publishers.len());
        for p in doc.publishers {
            if [&p.apps, &p.targets, &p.gpio, &p.publish]
                .iter()
                .any(|list| list.len() > MAX_NAMES)
            {
                return Err(bad(format!("publisher '{}' lists too many names", p.name)));
            }
            publishers.push(Publisher {
                key: key(&p.key)?,
                name: p.name,
                apps: p.apps,
                targets: p.targets,
                gpio: p.gpio,
                publish: p.publish,
                expires_ms: p.expires_ms,
            });
        }
        Ok(TrustDocument {
            version: doc.version,
            expires_ms: doc.expires_ms,
            roots: doc.roots.iter().map(key).collect::<Result<_, _>>()?,
            threshold: doc.threshold,
            max_major_jump: doc.max_major_jump,
            publishers,
        })
    }
}

impl SignedTrust {
    /// Signs `document` with each of `roots`.
    pub fn sign(
        document: &TrustDocument,
        roots: &[&SecretKey],
    ) -> Result<SignedTrust, BundleError> {
        let bytes = postcard::to_stdvec(&Document::V1(document.to_wire()))
            .map_err(|e| bad(e.to_string()))?;
        let signed = digest(&bytes);
        Ok(SignedTrust {
            signatures: roots
                .iter()
                .map(|key| (key.public().id(), key.sign(&signed.0)))
                .collect(),
            document: bytes,
        })
    }

    /// The message (or file) bytes.
    pub fn encode(&self) -> Result<Vec<u8>, BundleError> {
        let envelope = Envelope::V1(EnvelopeV1 {
            document: &self.document,
            signatures: self
                .signatures
                .iter()
                .map(|(id, sig)| (*id, sig.as_slice()))
                .collect(),
        });
        let mut out = TRUST_MAGIC.to_vec();
        out.extend(postcard::to_stdvec(&envelope).map_err(|e| bad(e.to_string()))?);
        Ok(out)
    }

    /// Decodes message bytes (signatures not checked).
    pub fn decode(bytes: &[u8]) -> Result<SignedTrust, BundleError> {
        let rest = bytes
            .strip_prefix(TRUST_MAGIC.as_slice())
            .ok_or(BundleError::BadMagic {
                what: "trust document",
            })?;
        let (Envelope::V1(envelope), trailing) = postcard::take_from_bytes::<Envelope<'_>>(rest)
            .map_err(|e| crate::verify::decode_error("trust document", "envelope", e))?;
        if !trailing.is_empty() {
            return Err(bad("unexpected bytes after it"));
        }
        if envelope.signatures.len() > MAX_ENTRIES {
            return Err(bad("too many signatures"));
        }
        let signatures = envelope
            .signatures
            .into_iter()
            .map(|(id, sig)| crate::format::signature_array(sig).map(|sig| (id, sig)))
            .collect::<Result<_, _>>()?;
        Ok(SignedTrust {
            document: envelope.document.to_vec(),
            signatures,
        })
    }

    /// The document without checking any signature (for display and the operator's tools).
    pub fn document_unverified(&self) -> Result<TrustDocument, BundleError> {
        let Document::V1(doc) = postcard::from_bytes::<Document>(&self.document)
            .map_err(|e| crate::verify::decode_error("trust document", "document", e))?;
        let canonical =
            postcard::to_stdvec(&Document::V1(doc.clone())).map_err(|e| bad(e.to_string()))?;
        if canonical != self.document {
            return Err(bad("document not in canonical form"));
        }
        TrustDocument::from_wire(doc)
    }

    /// Verifies it as the successor of a document whose roots are `roots` (threshold
    /// `threshold`) and whose version is `after` (`None`: the first document, checked against
    /// the device's pinned roots). Expiry is the caller's (it owns the clock).
    pub fn verify(
        &self,
        roots: &[PublicKey],
        threshold: u8,
        after: Option<u64>,
    ) -> Result<TrustDocument, BundleError> {
        let signed = digest(&self.document);
        let mut good: Vec<KeyId> = Vec::new();
        for (id, signature) in &self.signatures {
            if good.contains(id) {
                continue;
            }
            if let Some(root) = roots.iter().find(|r| r.id() == *id)
                && root.verify(&signed.0, signature)
            {
                good.push(*id);
            }
        }
        if good.len() < usize::from(threshold.max(1)) {
            return Err(bad(format!(
                "signed by {} of the {} trusted root keys, {} needed",
                good.len(),
                roots.len(),
                threshold.max(1)
            )));
        }
        let document = self.document_unverified()?;
        if let Some(current) = after
            && document.version <= current
        {
            return Err(bad(format!(
                "version {} is not above the current {current} (rollback refused)",
                document.version
            )));
        }
        Ok(document)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(version: u64, roots: &[&SecretKey], publisher: &SecretKey) -> TrustDocument {
        TrustDocument {
            version,
            expires_ms: 10_000,
            roots: roots.iter().map(|k| k.public()).collect(),
            threshold: 1,
            max_major_jump: 1,
            publishers: vec![Publisher {
                key: publisher.public(),
                name: "team-a".into(),
                apps: vec!["pump".into(), "sensor-*".into()],
                targets: vec!["north".into(), "@pi-1".into()],
                gpio: vec!["led".into()],
                publish: vec!["alerts/".into()],
                expires_ms: 9_000,
            }],
        }
    }

    #[test]
    fn a_document_verifies_with_its_roots_only_and_never_goes_back() {
        let root = SecretKey::from_seed([1; 32]);
        let other = SecretKey::from_seed([2; 32]);
        let publisher = SecretKey::from_seed([3; 32]);
        let first = SignedTrust::sign(&doc(1, &[&root], &publisher), &[&root]).expect("signs");
        let wire = SignedTrust::decode(&first.encode().expect("encodes")).expect("decodes");
        let taken = wire.verify(&[root.public()], 1, None).expect("verifies");
        assert_eq!(taken.version, 1);
        let p = taken.publisher(publisher.public().id()).expect("listed");
        assert!(p.allows_app("pump") && p.allows_app("sensor-x") && !p.allows_app("valve"));
        assert!(p.allows_target("north") && !p.allows_target("south"));
        assert_eq!(p.excess_gpio(["led", "relay"]), Some("relay"));
        assert_eq!(p.excess_publish(["alerts/t", "op/pi/x"]), Some("op/pi/x"));
        assert!(wire.verify(&[other.public()], 1, None).is_err());
        assert!(
            wire.verify(&[root.public()], 1, Some(1)).is_err(),
            "rollback"
        );
        let two =
            SignedTrust::sign(&doc(2, &[&root, &other], &publisher), &[&root]).expect("signs");
        assert!(
            two.verify(&[root.public(), other.public()], 2, Some(1))
                .is_err()
        );
        assert!(two.verify(&[root.public()], 1, Some(1)).is_ok());
    }
}
