//! What a target is offered, read back from the broker's retained announcements (the operator's
//! view: `fleet publish` checks the current offer, `fleet list` shows them, `fleet withdraw`
//! clears them), and the one version rule both sides share: an offer replaces another only if
//! its version is strictly greater, in semver order as the device compares (the `semver`
//! crate's `Ord`). Pure: no I/O.

use outpost_bundle::{Announcement, Digest, KeyId, Limits, Version};
use thiserror::Error;

use super::topics::{self, FleetTopic, Target};

/// Whether `candidate` replaces `current`: strictly greater in semver order. The device applies
/// the same rule to its anti-rollback floor and between offers from several targets.
pub fn supersedes(candidate: &Version, current: &Version) -> bool {
    candidate > current
}

/// Whether an offer of `version` from `target` replaces a download in progress of `downloading`
/// from `from`. Always when both come from the same target (its retained announcement was
/// replaced); across targets (a device's groups and the device itself may offer the same app)
/// the highest version wins, so a lower or equal offer leaves the download alone.
pub fn replaces_download(
    target: &Target,
    version: &Version,
    from: &Target,
    downloading: &Version,
) -> bool {
    target == from || supersedes(version, downloading)
}

/// One offer: a retained announcement of an app to a target, decoded (its signature is not
/// checked: the operator may not hold the devices' trust store; devices check it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// Who it is offered to.
    pub target: Target,
    /// The app.
    pub app: String,
    /// The version the signed header names.
    pub version: Version,
    /// Size of the bundle file.
    pub bundle_len: u64,
    /// SHA-256 of the bundle file (names its chunk topics).
    pub digest: Digest,
    /// Chunks the bundle is cut into.
    pub chunks: u32,
    /// When the bundle was built and signed (its header's `created_ms`), ms since the epoch.
    pub created_ms: i64,
    /// Who signed it.
    pub key_id: KeyId,
}

/// Why a retained message is not a readable offer.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum OfferError {
    /// Its topic is not an announcement topic under the prefix.
    #[error("{topic}: not a fleet announcement topic")]
    Topic {
        /// The topic.
        topic: String,
    },
    /// Its payload does not decode as an announcement.
    #[error("{topic}: {source}")]
    Decode {
        /// The topic.
        topic: String,
        /// What is wrong with it.
        source: outpost_bundle::BundleError,
    },
}

impl Offer {
    /// Decodes the retained announcement `data` on `topic` (under `prefix`).
    pub fn decode(prefix: &str, topic: &str, data: &[u8]) -> Result<Offer, OfferError> {
        let Some(FleetTopic::Announcement { target, app }) = topics::parse(prefix, topic) else {
            return Err(OfferError::Topic {
                topic: topic.into(),
            });
        };
        let decode = |source| OfferError::Decode {
            topic: topic.into(),
            source,
        };
        let announcement = Announcement::decode(data, &Limits::default()).map_err(decode)?;
        let header = announcement.header_unverified().map_err(decode)?;
        Ok(Offer {
            target,
            app,
            version: header.version,
            bundle_len: announcement.chunks.bundle_len,
            digest: announcement.chunks.bundle_digest,
            chunks: announcement.chunks.count() as u32,
            created_ms: header.created_ms,
            key_id: header.key_id,
        })
    }

    /// The topics of this offer's retained chunks (to clear them).
    pub fn chunk_topics(&self, prefix: &str) -> Vec<String> {
        (0..self.chunks)
            .map(|index| topics::chunk(prefix, &self.target, &self.app, &self.digest, index))
            .collect()
    }

    /// Its announcement topic.
    pub fn topic(&self, prefix: &str) -> String {
        topics::announcement(prefix, &self.target, &self.app)
    }
}

/// Why `fleet publish` refuses a bundle over the current offer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "{target} is offered {app} {current}; {new} is not above it, so devices that have {current} would refuse it \
     and new devices would install it (raise [app] version in outpost.toml, or --force to replace the offer anyway)",
    target = target.describe()
)]
pub struct NotNewer {
    /// The target.
    pub target: Target,
    /// The app.
    pub app: String,
    /// The version offered now.
    pub current: Version,
    /// The version that would replace it.
    pub new: Version,
}

/// Checks that publishing `new` of `app` to `target` replaces `current` (the retained offer, if
/// any) with a newer version.
pub fn check_newer(
    target: &Target,
    app: &str,
    current: Option<&Version>,
    new: &Version,
) -> Result<(), Box<NotNewer>> {
    match current {
        Some(current) if !supersedes(new, current) => Err(Box::new(NotNewer {
            target: target.clone(),
            app: app.into(),
            current: current.clone(),
            new: new.clone(),
        })),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        outpost_bundle::parse_version(text).expect("version")
    }

    #[test]
    fn only_a_strictly_greater_semver_supersedes() {
        assert!(supersedes(&v("1.10.0"), &v("1.9.0")), "numeric, not text");
        assert!(
            supersedes(&v("1.0.0"), &v("1.0.0-rc.1")),
            "a release beats its pre-release"
        );
        assert!(supersedes(&v("1.0.0-rc.2"), &v("1.0.0-rc.1")));
        assert!(!supersedes(&v("1.0.0"), &v("1.0.0")));
        assert!(!supersedes(&v("0.9.9"), &v("1.0.0")));
    }

    #[test]
    fn across_targets_the_highest_version_wins_a_download() {
        let north = Target::Group("north".into());
        let me = Target::Device("pi-1".into());
        assert!(
            replaces_download(&north, &v("1.0.0"), &north, &v("2.0.0")),
            "same target: the new announcement replaces the old"
        );
        assert!(replaces_download(&me, &v("2.1.0"), &north, &v("2.0.0")));
        assert!(!replaces_download(&north, &v("2.0.0"), &me, &v("2.1.0")));
        assert!(
            !replaces_download(&north, &v("2.1.0"), &me, &v("2.1.0")),
            "a tie keeps the download going"
        );
    }

    #[test]
    fn publishing_an_older_or_equal_version_is_refused_naming_both_and_the_fix() {
        let north = Target::Group("north".into());
        assert!(check_newer(&north, "pump", None, &v("0.1.0")).is_ok());
        assert!(check_newer(&north, "pump", Some(&v("1.0.0")), &v("1.0.1")).is_ok());
        let error = check_newer(&north, "pump", Some(&v("1.2.0")), &v("1.1.0"))
            .expect_err("older")
            .to_string();
        assert!(error.starts_with("group north is offered pump 1.2.0; 1.1.0 is not above it"));
        assert!(
            error.contains("--force") && error.contains("[app] version"),
            "{error}"
        );
        assert!(!error.contains('\n'), "one line");
        let device = Target::Device("pi-1".into());
        let error = check_newer(&device, "pump", Some(&v("1.0.0")), &v("1.0.0"))
            .expect_err("equal")
            .to_string();
        assert!(
            error.starts_with("device pi-1 is offered pump 1.0.0"),
            "{error}"
        );
    }

    #[test]
    fn an_offer_decodes_from_its_retained_announcement_and_names_its_chunks() {
        let key = outpost_bundle::SecretKey::from_seed([3; 32]);
        let wasm = b"\0asm\x01\0\0\0";
        let bundle = outpost_bundle::pack(
            "pump",
            "1.2.3",
            "manifest_version = 1",
            &[outpost_bundle::ModuleInput { id: "m", wasm }],
            &key,
            1234,
        )
        .expect("packs");
        let inspected = outpost_bundle::inspect(&bundle, &Limits::default()).expect("inspects");
        let announcement =
            Announcement::for_bundle(&inspected, &bundle, 256).expect("announcement");
        let target = Target::Device("pi-1".into());
        let topic = topics::announcement("op", &target, "pump");
        let offer =
            Offer::decode("op", &topic, &announcement.encode().expect("encodes")).expect("offer");
        assert_eq!(offer.version, v("1.2.3"));
        assert_eq!(offer.created_ms, 1234);
        assert_eq!(offer.bundle_len, bundle.len() as u64);
        assert_eq!(offer.chunks as usize, bundle.len().div_ceil(256));
        assert_eq!(offer.topic("op"), topic);
        let chunks = offer.chunk_topics("op");
        assert_eq!(chunks.len(), offer.chunks as usize);
        assert_eq!(
            chunks[0],
            format!("op/fleet/@pi-1/apps/pump/chunks/{}/0", offer.digest.short())
        );
        assert!(matches!(
            Offer::decode("op", "op/fleet/north/apps/pump/chunks/ab/0", b"x"),
            Err(OfferError::Topic { .. })
        ));
        assert!(matches!(
            Offer::decode("op", &topic, b"garbage"),
            Err(OfferError::Decode { .. })
        ));
    }
}
