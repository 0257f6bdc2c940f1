//! Packing and signing a bundle (operator side).

use crate::digest::sha256;
use crate::error::BundleError;
use crate::format::{
    BUNDLE_MAGIC, BodyV1, Envelope, HeaderV1, Limits, ModuleV1, SignedV1, signed_digest,
    valid_app_name,
};
use crate::keys::SecretKey;

/// One component's module to pack.
#[derive(Debug, Clone, Copy)]
pub struct ModuleInput<'a> {
    /// The component id in the manifest.
    pub id: &'a str,
    /// The module bytes.
    pub wasm: &'a [u8],
}

/// Packs `manifest` (resolved TOML text) and `modules` as version `version` of `app`, signed with
/// `key`; `created_ms` is recorded in the header. The result decodes under `Limits::default()`.
pub fn pack(
    app: &str,
    version: &str,
    manifest: &str,
    modules: &[ModuleInput<'_>],
    key: &SecretKey,
    created_ms: i64,
) -> Result<Vec<u8>, BundleError> {
    if !valid_app_name(app) {
        return Err(BundleError::BadAppName(app.into()));
    }
    crate::parse_version(version)?;
    let limits = Limits::default();
    if modules.is_empty() || modules.len() > limits.max_modules {
        return Err(BundleError::Modules(format!(
            "{} modules; a bundle holds 1 to {}",
            modules.len(),
            limits.max_modules
        )));
    }
    if manifest.len() > limits.max_manifest_bytes {
        return Err(BundleError::OverLimit {
            what: "manifest size",
            value: manifest.len() as u64,
            limit: limits.max_manifest_bytes as u64,
        });
    }
    let body = BodyV1 {
        manifest,
        modules: modules
            .iter()
            .map(|m| ModuleV1 {
                id: m.id,
                digest: sha256(m.wasm),
                wasm: m.wasm,
            })
            .collect(),
    };
    let encode = |part: &'static str, e: postcard::Error| BundleError::Malformed {
        part,
        reason: e.to_string(),
    };
    let body = postcard::to_stdvec(&body).map_err(|e| encode("body", e))?;
    let header = HeaderV1 {
        app: app.into(),
        version: version.into(),
        body_len: body.len() as u64,
        body_digest: sha256(&body),
        created_ms,
    };
    let header = postcard::to_stdvec(&header).map_err(|e| encode("header", e))?;
    let signature = key.sign(&signed_digest(&header).0);
    let envelope = Envelope::V1(SignedV1 {
        header: &header,
        key_id: key.public().id(),
        signature: &signature,
        body: &body,
    });
    let mut out = BUNDLE_MAGIC.to_vec();
    out.extend(postcard::to_stdvec(&envelope).map_err(|e| encode("envelope", e))?);
    if out.len() as u64 > limits.max_bundle_bytes {
        return Err(BundleError::TooLarge {
            size: out.len() as u64,
            limit: limits.max_bundle_bytes,
        });
    }
    Ok(out)
}
