//! Fleet announcements: the retained message telling a group of devices that a bundle is
//! available, how large it is and how it is cut into chunks.
//!
//! The announcement carries the bundle's signed header and signature, so a device checks the
//! signer, app and version before fetching a single chunk. Format 2 also carries the signed
//! release metadata ([`SignedRelease`]): the chunk list, the bundle digest, who the release
//! targets and until when are all signed, and the unsigned copies of format 1 are gone. Format 1
//! still decodes (so a device can say why it refuses it) but never verifies as a release.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::digest::{Digest, sha256};
use crate::error::BundleError;
use crate::format::{BundleHeader, Limits, decode_header, signature_array, signed_digest};
use crate::keys::{KeyId, TrustStore};
use crate::release::{Release, SignedRelease};
use crate::verify::{InspectedBundle, decode_error};

/// First bytes of every announcement.
const ANNOUNCE_MAGIC: &[u8; 4] = b"OPA1";
/// Smallest chunk size accepted (smaller would mean absurd message counts).
const MIN_CHUNK: u32 = 256;
/// Largest chunk size accepted; stays under the agent's 1 MiB inbound packet limit.
const MAX_CHUNK: u32 = 512 << 10;

#[derive(Serialize, Deserialize)]
enum Envelope<'a> {
    #[serde(borrow)]
    V1(AnnouncementV1<'a>),
    /// The bundle's signed header and the signed release; the chunk plan is the release's.
    #[serde(borrow)]
    V2(AnnouncementV2<'a>),
}

#[derive(Serialize, Deserialize)]
struct AnnouncementV2<'a> {
    header: &'a [u8],
    key_id: KeyId,
    signature: &'a [u8],
    release: &'a [u8],
    release_key_id: KeyId,
    release_signature: &'a [u8],
}

#[derive(Serialize, Deserialize)]
struct AnnouncementV1<'a> {
    header: &'a [u8],
    key_id: KeyId,
    signature: &'a [u8],
    bundle_len: u64,
    bundle_digest: Digest,
    chunk_size: u32,
    chunk_digests: Vec<Digest>,
}

/// How a bundle is cut into chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkPlan {
    /// Bundle size in bytes.
    pub bundle_len: u64,
    /// SHA-256 of the whole bundle file.
    pub bundle_digest: Digest,
    /// Bytes per chunk (the last may be shorter).
    pub chunk_size: u32,
    /// SHA-256 of each chunk, in order.
    pub chunk_digests: Vec<Digest>,
}

impl ChunkPlan {
    /// Cuts `bundle` into chunks of `chunk_size` bytes.
    pub fn cut(bundle: &[u8], chunk_size: u32) -> Result<ChunkPlan, BundleError> {
        check_chunk_size(chunk_size)?;
        Ok(ChunkPlan {
            bundle_len: bundle.len() as u64,
            bundle_digest: sha256(bundle),
            chunk_size,
            chunk_digests: bundle.chunks(chunk_size as usize).map(sha256).collect(),
        })
    }

    /// Checks that the numbers agree and stay within `limits`.
    pub fn check(&self, limits: &Limits) -> Result<(), BundleError> {
        if self.bundle_len > limits.max_bundle_bytes {
            return Err(BundleError::TooLarge {
                size: self.bundle_len,
                limit: limits.max_bundle_bytes,
            });
        }
        check_chunk_size(self.chunk_size)?;
        if self.chunk_digests.len() > limits.max_chunks {
            return Err(BundleError::OverLimit {
                what: "chunk count",
                value: self.chunk_digests.len() as u64,
                limit: limits.max_chunks as u64,
            });
        }
        let expected = self.bundle_len.div_ceil(u64::from(self.chunk_size));
        if expected != self.chunk_digests.len() as u64 {
            return Err(BundleError::Announcement(format!(
                "{} bytes in {}-byte chunks is {expected} chunks, but it lists {}",
                self.bundle_len,
                self.chunk_size,
                self.chunk_digests.len()
            )));
        }
        Ok(())
    }

    /// Number of chunks.
    pub fn count(&self) -> usize {
        self.chunk_digests.len()
    }

    /// The byte range of chunk `index` within the bundle.
    pub fn range(&self, index: usize) -> Range<usize> {
        let start = index.saturating_mul(self.chunk_size as usize);
        let end = start
            .saturating_add(self.chunk_size as usize)
            .min(self.bundle_len as usize);
        start.min(end)..end
    }

    /// Whether `data` is chunk `index`: the right length and digest.
    pub fn chunk_matches(&self, index: usize, data: &[u8]) -> bool {
        self.chunk_digests
            .get(index)
            .is_some_and(|digest| data.len() == self.range(index).len() && sha256(data) == *digest)
    }
}

/// A decoded announcement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    /// The bundle's signed header bytes.
    pub header_bytes: Vec<u8>,
    /// The signer's key id.
    pub key_id: KeyId,
    /// The signature over the header.
    pub signature: [u8; 64],
    /// How to fetch the bundle (format 2: the release's, as yet unverified).
    pub chunks: ChunkPlan,
    /// The signed release (format 2); `None` for a format 1 announcement, which no device
    /// acts on any more.
    pub release: Option<SignedRelease>,
}

impl Announcement {
    /// The announcement of `bundle` (already inspected) cut into `chunk_size`-byte chunks.
    pub fn for_bundle(
        inspected: &InspectedBundle,
        bundle: &[u8],
        chunk_size: u32,
    ) -> Result<Announcement, BundleError> {
        Ok(Announcement {
            header_bytes: inspected.header_bytes.clone(),
            key_id: inspected.header.key_id,
            signature: inspected.signature,
            chunks: ChunkPlan::cut(bundle, chunk_size)?,
            release: None,
        })
    }

    /// The format 2 announcement of `inspected` with its signed `release`.
    pub fn with_release(
        inspected: &InspectedBundle,
        release: SignedRelease,
        limits: &Limits,
    ) -> Result<Announcement, BundleError> {
        let chunks = release.decode(limits)?.chunks;
        Ok(Announcement {
            header_bytes: inspected.header_bytes.clone(),
            key_id: inspected.header.key_id,
            signature: inspected.signature,
            chunks,
            release: Some(release),
        })
    }

    /// The message bytes.
    pub fn encode(&self) -> Result<Vec<u8>, BundleError> {
        let envelope = match &self.release {
            None => Envelope::V1(AnnouncementV1 {
                header: &self.header_bytes,
                key_id: self.key_id,
                signature: &self.signature,
                bundle_len: self.chunks.bundle_len,
                bundle_digest: self.chunks.bundle_digest,
                chunk_size: self.chunks.chunk_size,
                chunk_digests: self.chunks.chunk_digests.clone(),
            }),
            Some(release) => Envelope::V2(AnnouncementV2 {
                header: &self.header_bytes,
                key_id: self.key_id,
                signature: &self.signature,
                release: &release.bytes,
                release_key_id: release.key_id,
                release_signature: &release.signature,
            }),
        };
        let mut out = ANNOUNCE_MAGIC.to_vec();
        out.extend(
            postcard::to_stdvec(&envelope).map_err(|e| BundleError::Malformed {
                part: "announcement",
                reason: e.to_string(),
            })?,
        );
        Ok(out)
    }

    /// Decodes a message, checking that its numbers agree and stay within `limits`. The
    /// signature is not checked here (see [`Announcement::verify`]).
    pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Announcement, BundleError> {
        let rest = bytes
            .strip_prefix(ANNOUNCE_MAGIC.as_slice())
            .ok_or(BundleError::BadMagic {
                what: "announcement",
            })?;
        let (envelope, trailing) = postcard::take_from_bytes::<Envelope<'_>>(rest)
            .map_err(|e| decode_error("announcement", "announcement", e))?;
        if !trailing.is_empty() {
            return Err(BundleError::Announcement(format!(
                "{} unexpected bytes after it",
                trailing.len()
            )));
        }
        match envelope {
            Envelope::V1(v1) => {
                let chunks = ChunkPlan {
                    bundle_len: v1.bundle_len,
                    bundle_digest: v1.bundle_digest,
                    chunk_size: v1.chunk_size,
                    chunk_digests: v1.chunk_digests,
                };
                chunks.check(limits)?;
                Ok(Announcement {
                    header_bytes: v1.header.to_vec(),
                    key_id: v1.key_id,
                    signature: signature_array(v1.signature)?,
                    chunks,
                    release: None,
                })
            }
            Envelope::V2(v2) => {
                let release = SignedRelease {
                    bytes: v2.release.to_vec(),
                    key_id: v2.release_key_id,
                    signature: signature_array(v2.release_signature)?,
                };
                let chunks = release.decode(limits)?.chunks;
                Ok(Announcement {
                    header_bytes: v2.header.to_vec(),
                    key_id: v2.key_id,
                    signature: signature_array(v2.signature)?,
                    chunks,
                    release: Some(release),
                })
            }
        }
    }

    /// Checks the signature against `trust` (fails closed) and returns the signed header.
    pub fn verify(&self, trust: &TrustStore) -> Result<BundleHeader, BundleError> {
        trust.check(
            self.key_id,
            &signed_digest(&self.header_bytes),
            &self.signature,
        )?;
        decode_header(&self.header_bytes, self.key_id)
    }

    /// Checks both signatures against `trust` (fails closed) and that the release describes
    /// this bundle: same app, version and signed header. A format 1 announcement (no signed
    /// release) is refused. Returns the signed header and the signed release.
    pub fn verify_release(
        &self,
        trust: &TrustStore,
        limits: &Limits,
    ) -> Result<(BundleHeader, Release), BundleError> {
        let header = self.verify(trust)?;
        let Some(signed) = &self.release else {
            return Err(BundleError::Release(
                "announcement format 1 carries no signed release metadata (chunk list, targets, expiry); publish it again with this version of `outpost fleet publish --key`".into(),
            ));
        };
        let release = signed.verify(trust, limits)?;
        if release.app != header.app || release.version != header.version {
            return Err(BundleError::Release(format!(
                "release metadata is for {} {} but the bundle is {} {}",
                release.app, release.version, header.app, header.version
            )));
        }
        if release.header_digest != sha256(&self.header_bytes) {
            return Err(BundleError::Release(
                "release metadata names another bundle header (another signing of this version)"
                    .into(),
            ));
        }
        if release.chunks != self.chunks {
            return Err(BundleError::Release(
                "the announced chunk list differs from the signed one".into(),
            ));
        }
        Ok((header, release))
    }

    /// The header as announced, without checking the signature (for display).
    pub fn header_unverified(&self) -> Result<BundleHeader, BundleError> {
        decode_header(&self.header_bytes, self.key_id)
    }
}

fn check_chunk_size(size: u32) -> Result<(), BundleError> {
    if (MIN_CHUNK..=MAX_CHUNK).contains(&size) {
        Ok(())
    } else {
        Err(BundleError::Announcement(format!(
            "chunk size {size} is outside {MIN_CHUNK}..={MAX_CHUNK} bytes"
        )))
    }
}
