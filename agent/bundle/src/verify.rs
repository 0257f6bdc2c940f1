//! Decoding and verifying a bundle (device side), and inspecting one without trusting it
//! (operator side).

use std::collections::BTreeSet;

use crate::digest::{Digest, sha256};
use crate::error::BundleError;
use crate::format::{
    BUNDLE_MAGIC, BodyV1, BundleHeader, Envelope, Limits, ModuleEntry, SignedV1, decode_header,
    signature_array, signed_digest,
};
use crate::keys::TrustStore;

/// A bundle whose signature, header and every digest checked out. Only these are installed.
#[derive(Debug, Clone)]
pub struct VerifiedBundle {
    /// The signed header.
    pub header: BundleHeader,
    /// The signed header's bytes (an announcement must carry the same).
    pub header_bytes: Vec<u8>,
    /// The resolved manifest (TOML text).
    pub manifest: String,
    /// The modules, in bundle order.
    pub modules: Vec<ModuleEntry>,
    /// SHA-256 of the whole file.
    pub file_digest: Digest,
}

/// What a bundle says about itself, checked for consistency but not against any trust store.
#[derive(Debug, Clone)]
pub struct InspectedBundle {
    /// The header (its signature not checked).
    pub header: BundleHeader,
    /// The header's bytes, as signed.
    pub header_bytes: Vec<u8>,
    /// The signature over the header.
    pub signature: [u8; 64],
    /// The manifest text, if the body decodes.
    pub manifest: Option<String>,
    /// Each module: id, listed digest, actual digest, size.
    pub modules: Vec<(String, Digest, Digest, usize)>,
    /// Whether the body matches the header and every module its digest (the first problem).
    pub body: Result<(), BundleError>,
    /// SHA-256 of the whole file.
    pub file_digest: Digest,
    /// Size of the whole file.
    pub size: u64,
}

impl InspectedBundle {
    /// Checks the signature against `trust` (fails closed), then the body.
    pub fn check(&self, trust: &TrustStore) -> Result<(), BundleError> {
        trust.check(
            self.header.key_id,
            &signed_digest(&self.header_bytes),
            &self.signature,
        )?;
        self.body.clone()
    }
}

/// Decodes and fully verifies `bytes` against `trust`: signer trusted, signature strict-valid,
/// header canonical, body length and digest as signed, every module as listed.
pub fn verify(
    bytes: &[u8],
    trust: &TrustStore,
    limits: &Limits,
) -> Result<VerifiedBundle, BundleError> {
    let signed = split(bytes, limits)?;
    let signature = signature_array(signed.signature)?;
    trust.check(signed.key_id, &signed_digest(signed.header), &signature)?;
    open_checked(bytes, &signed, limits)
}

/// Re-opens a bundle this device verified and stored earlier: the whole file must still hash to
/// `file_digest` (recorded at activation), and every inner digest is checked again. The signature
/// is not re-checked, so rotating a publisher key out of the trust store does not stop apps it
/// signed earlier from starting.
pub fn reopen(
    bytes: &[u8],
    file_digest: &Digest,
    limits: &Limits,
) -> Result<VerifiedBundle, BundleError> {
    let actual = sha256(bytes);
    if &actual != file_digest {
        return Err(BundleError::BodyDigest {
            expected: *file_digest,
            actual,
        });
    }
    open_checked(bytes, &split(bytes, limits)?, limits)
}

/// Decodes the header and body of `signed` (part of `bytes`) and checks every digest.
fn open_checked(
    bytes: &[u8],
    signed: &SignedV1<'_>,
    limits: &Limits,
) -> Result<VerifiedBundle, BundleError> {
    let header = decode_header(signed.header, signed.key_id)?;
    check_body_digest(&header, signed.body, limits)?;
    let body = decode_body(signed.body, limits)?;
    let mut modules = Vec::with_capacity(body.modules.len());
    for module in &body.modules {
        check_module(module.id, &module.digest, module.wasm)?;
        modules.push(ModuleEntry {
            id: module.id.into(),
            digest: module.digest,
            wasm: module.wasm.to_vec(),
        });
    }
    Ok(VerifiedBundle {
        header,
        header_bytes: signed.header.to_vec(),
        manifest: body.manifest.into(),
        modules,
        file_digest: sha256(bytes),
    })
}

/// Decodes `bytes` and reports what it holds and what is wrong with its body, without checking
/// the signature (see [`InspectedBundle::check`]). Fails only if the header cannot be read.
pub fn inspect(bytes: &[u8], limits: &Limits) -> Result<InspectedBundle, BundleError> {
    let signed = match split(bytes, limits) {
        Ok(signed) => signed,
        // A cut-off or padded file: report its header and what is wrong with the rest.
        Err(whole) => {
            let prefix = split_prefix(bytes, limits).map_err(|_| whole.clone())?;
            let signature = signature_array(prefix.signature)?;
            return Ok(InspectedBundle {
                header: decode_header(prefix.header, prefix.key_id)?,
                header_bytes: prefix.header.to_vec(),
                signature,
                manifest: None,
                modules: Vec::new(),
                body: Err(whole),
                file_digest: sha256(bytes),
                size: bytes.len() as u64,
            });
        }
    };
    let signature = signature_array(signed.signature)?;
    let header = decode_header(signed.header, signed.key_id)?;
    let mut manifest = None;
    let mut modules = Vec::new();
    let body = check_body_digest(&header, signed.body, limits).and_then(|()| {
        let body = decode_body(signed.body, limits)?;
        manifest = Some(body.manifest.to_string());
        let mut first_bad = Ok(());
        for m in &body.modules {
            modules.push((m.id.to_string(), m.digest, sha256(m.wasm), m.wasm.len()));
            if first_bad.is_ok() {
                first_bad = check_module(m.id, &m.digest, m.wasm);
            }
        }
        first_bad
    });
    Ok(InspectedBundle {
        header,
        header_bytes: signed.header.to_vec(),
        signature,
        manifest,
        modules,
        body,
        file_digest: sha256(bytes),
        size: bytes.len() as u64,
    })
}

/// What follows the magic of a bundle within the size limit.
fn after_magic<'a>(bytes: &'a [u8], limits: &Limits) -> Result<&'a [u8], BundleError> {
    if bytes.len() as u64 > limits.max_bundle_bytes {
        return Err(BundleError::TooLarge {
            size: bytes.len() as u64,
            limit: limits.max_bundle_bytes,
        });
    }
    let rest = bytes
        .strip_prefix(BUNDLE_MAGIC.as_slice())
        .ok_or(BundleError::BadMagic { what: "bundle" })?;
    Ok(rest)
}

/// Checks size and magic and decodes the envelope, borrowing from `bytes`.
fn split<'a>(bytes: &'a [u8], limits: &Limits) -> Result<SignedV1<'a>, BundleError> {
    let rest = after_magic(bytes, limits)?;
    let (envelope, trailing) = postcard::take_from_bytes::<Envelope<'_>>(rest)
        .map_err(|e| decode_error("bundle", "envelope", e))?;
    if !trailing.is_empty() {
        return Err(BundleError::Malformed {
            part: "envelope",
            reason: format!("{} unexpected bytes after the bundle", trailing.len()),
        });
    }
    let Envelope::V1(signed) = envelope;
    Ok(signed)
}

/// The signed part of an envelope, decoded from the start of a file whose body may be cut off.
#[derive(serde::Deserialize)]
struct SignedPrefix<'a> {
    header: &'a [u8],
    key_id: crate::KeyId,
    signature: &'a [u8],
}

#[derive(serde::Deserialize)]
enum PrefixEnvelope<'a> {
    #[serde(borrow)]
    V1(SignedPrefix<'a>),
}

fn split_prefix<'a>(bytes: &'a [u8], limits: &Limits) -> Result<SignedPrefix<'a>, BundleError> {
    let rest = after_magic(bytes, limits)?;
    let (PrefixEnvelope::V1(prefix), _) = postcard::take_from_bytes::<PrefixEnvelope<'_>>(rest)
        .map_err(|e| decode_error("bundle", "envelope", e))?;
    Ok(prefix)
}

/// Maps a postcard error, telling a cut-off input from a malformed one.
pub(crate) fn decode_error(
    what: &'static str,
    part: &'static str,
    error: postcard::Error,
) -> BundleError {
    match error {
        postcard::Error::DeserializeUnexpectedEnd => BundleError::Truncated { what, part },
        postcard::Error::DeserializeBadEnum => BundleError::UnsupportedFormat {
            what,
            // The variant index is not reported by postcard; any unknown one is "newer".
            version: 2,
        },
        other => BundleError::Malformed {
            part,
            reason: other.to_string(),
        },
    }
}

/// Checks the body's length and digest against the signed header; on a digest mismatch, names
/// the altered module if the body still decodes.
fn check_body_digest(
    header: &BundleHeader,
    body: &[u8],
    limits: &Limits,
) -> Result<(), BundleError> {
    if body.len() as u64 != header.body_len {
        return Err(BundleError::BodyLength {
            expected: header.body_len,
            actual: body.len() as u64,
        });
    }
    let actual = sha256(body);
    if actual == header.body_digest {
        return Ok(());
    }
    if let Ok(decoded) = decode_body(body, limits) {
        for module in &decoded.modules {
            check_module(module.id, &module.digest, module.wasm)?;
        }
    }
    Err(BundleError::BodyDigest {
        expected: header.body_digest,
        actual,
    })
}

/// Decodes the body and checks its counts and ids.
fn decode_body<'a>(bytes: &'a [u8], limits: &Limits) -> Result<BodyV1<'a>, BundleError> {
    let body: BodyV1<'a> =
        postcard::from_bytes(bytes).map_err(|e| decode_error("bundle", "body", e))?;
    if body.manifest.len() > limits.max_manifest_bytes {
        return Err(BundleError::OverLimit {
            what: "manifest size",
            value: body.manifest.len() as u64,
            limit: limits.max_manifest_bytes as u64,
        });
    }
    if body.modules.is_empty() {
        return Err(BundleError::Modules("the bundle holds no modules".into()));
    }
    if body.modules.len() > limits.max_modules {
        return Err(BundleError::OverLimit {
            what: "module count",
            value: body.modules.len() as u64,
            limit: limits.max_modules as u64,
        });
    }
    let mut ids = BTreeSet::new();
    for module in &body.modules {
        if !ids.insert(module.id) {
            return Err(BundleError::Modules(format!(
                "two modules for component '{}'",
                module.id.chars().take(64).collect::<String>()
            )));
        }
    }
    Ok(body)
}

fn check_module(id: &str, listed: &Digest, wasm: &[u8]) -> Result<(), BundleError> {
    let actual = sha256(wasm);
    if &actual == listed {
        Ok(())
    } else {
        Err(BundleError::ModuleDigest {
            component: id.chars().take(64).collect(),
            expected: *listed,
            actual,
        })
    }
}
