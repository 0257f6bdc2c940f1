//! The topic layout of fleet updates:
//!
//! ```text
//! {prefix}/fleet/{target}/apps/{app}                          retained announcement
//! {prefix}/fleet/{target}/apps/{app}/chunks/{digest16}/{n}    retained chunk n of that bundle
//! {prefix}/{device}/updates                                   the device's update reports
//! ```
//!
//! A **target** is what an offer is addressed to: a fleet group (`{group}`), which every device
//! following the group takes, or one device (`@{device}`), which only that device takes — the
//! laptop-to-test-board loop of `outpost fleet publish --device D`. A device follows its groups
//! and its own `@{device}` target whenever fleet updates are on. Group names and device ids are
//! both `[A-Za-z0-9_-]{1,64}` ([`valid_name`]), so no group can be taken for a device target.
//!
//! Chunk topics name the bundle by digest, so chunks of two versions never mix.

use std::fmt;

use outpost_bundle::Digest;

/// Who an offer is addressed to: the segment after `{prefix}/fleet/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// Every device following this group (`{group}`).
    Group(String),
    /// This device only (`@{device}`).
    Device(String),
}

impl Target {
    /// Parses a topic segment: `@{device}` or `{group}`; `None` if the name is not valid.
    pub fn parse(segment: &str) -> Option<Target> {
        match segment.strip_prefix('@') {
            Some(device) if valid_name(device) => Some(Target::Device(device.into())),
            None if valid_name(segment) => Some(Target::Group(segment.into())),
            _ => None,
        }
    }

    /// The name of the group or device.
    pub fn name(&self) -> &str {
        match self {
            Target::Group(name) | Target::Device(name) => name,
        }
    }

    /// How people read it: `group north`, `device pi-1`.
    pub fn describe(&self) -> String {
        match self {
            Target::Group(name) => format!("group {name}"),
            Target::Device(name) => format!("device {name}"),
        }
    }
}

/// The topic segment: `{group}` or `@{device}`.
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Group(name) => f.write_str(name),
            Target::Device(name) => write!(f, "@{name}"),
        }
    }
}

/// Whether `name` may be a group name or a device id: 1-64 characters of `A-Z a-z 0-9 - _`
/// (no `@`, `/`, wildcards or spaces, so it is one topic segment and never a device target).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A message under `{prefix}/fleet/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FleetTopic {
    /// The root-signed trust document (`{prefix}/fleet/trust`), retained.
    Trust,
    /// An announcement of `app` to `target`.
    Announcement {
        /// Who it is offered to.
        target: Target,
        /// The app.
        app: String,
    },
    /// Chunk `index` of the bundle whose digest starts with `digest16`.
    Chunk {
        /// Who it is offered to.
        target: Target,
        /// The app.
        app: String,
        /// First 16 hex digits of the bundle digest.
        digest16: String,
        /// Chunk index.
        index: u32,
    },
}

/// `{prefix}/fleet/`: everything below it goes to the updater.
pub fn fleet_root(prefix: &str) -> String {
    format!("{prefix}/fleet/")
}

/// The filter for every announcement to `target` (a device follows one per target).
pub fn announcements(prefix: &str, target: &Target) -> String {
    format!("{prefix}/fleet/{target}/apps/+")
}

/// The announcement topic of `app` for `target`.
pub fn announcement(prefix: &str, target: &Target, app: &str) -> String {
    format!("{prefix}/fleet/{target}/apps/{app}")
}

/// The topic of chunk `index` of the bundle `digest` of `app` for `target`.
pub fn chunk(prefix: &str, target: &Target, app: &str, digest: &Digest, index: u32) -> String {
    format!(
        "{prefix}/fleet/{target}/apps/{app}/chunks/{}/{index}",
        digest.short()
    )
}

/// The trust document's topic.
pub fn trust(prefix: &str) -> String {
    format!("{prefix}/fleet/trust")
}

/// The device's update report topic.
pub fn reports(prefix: &str, device: &str) -> String {
    format!("{prefix}/{device}/updates")
}

/// Parses a topic under `{prefix}/fleet/`; `None` for anything else.
pub fn parse(prefix: &str, topic: &str) -> Option<FleetTopic> {
    let rest = topic.strip_prefix(&fleet_root(prefix))?;
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        ["trust"] => Some(FleetTopic::Trust),
        // Names are checked here, before anything named after them is stored or reported.
        [target, "apps", app] if outpost_bundle::valid_app_name(app) => {
            Some(FleetTopic::Announcement {
                target: Target::parse(target)?,
                app: (*app).into(),
            })
        }
        [target, "apps", app, "chunks", digest16, index]
            if outpost_bundle::valid_app_name(app) && is_digest16(digest16) =>
        {
            Some(FleetTopic::Chunk {
                target: Target::parse(target)?,
                app: (*app).into(),
                digest16: (*digest16).into(),
                index: index.parse().ok()?,
            })
        }
        _ => None,
    }
}

/// Whether `text` is 16 lowercase hex digits (a chunk topic's bundle name).
fn is_digest16(text: &str) -> bool {
    text.len() == 16 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(name: &str) -> Target {
        Target::Group(name.into())
    }

    #[test]
    fn topics_round_trip_through_parse() {
        let digest = outpost_bundle::sha256(b"bundle");
        assert_eq!(
            parse("op", &announcement("op", &group("north"), "pump")),
            Some(FleetTopic::Announcement {
                target: group("north"),
                app: "pump".into()
            })
        );
        assert_eq!(
            parse("op", &chunk("op", &group("north"), "pump", &digest, 7)),
            Some(FleetTopic::Chunk {
                target: group("north"),
                app: "pump".into(),
                digest16: digest.short(),
                index: 7
            })
        );
        assert_eq!(parse("op", "op/dev1/events/x"), None);
        assert_eq!(parse("op", "op/fleet/north/apps/pump/chunks/ab/x"), None);
    }

    #[test]
    fn device_targets_are_at_names_and_never_groups() {
        let device = Target::Device("pi-1".into());
        assert_eq!(
            announcement("op", &device, "pump"),
            "op/fleet/@pi-1/apps/pump"
        );
        assert_eq!(announcements("op", &device), "op/fleet/@pi-1/apps/+");
        assert_eq!(
            parse("op", "op/fleet/@pi-1/apps/pump"),
            Some(FleetTopic::Announcement {
                target: device.clone(),
                app: "pump".into()
            })
        );
        assert_eq!(Target::parse("@pi-1"), Some(device));
        assert_eq!(Target::parse("north"), Some(group("north")));
        // Neither a group nor a device can be named so as to look like the other.
        for bad in ["@", "@@pi", "a@b", "", "@a/b", "a+b", "#"] {
            assert_eq!(Target::parse(bad), None, "{bad:?}");
        }
        assert!(!valid_name("@pi-1"));
        assert_eq!(parse("op", "op/fleet/a@b/apps/pump"), None);
        assert_eq!(parse("op", "op/fleet/north/apps/"), None);
        // Junk names are refused before anything is stored under them.
        assert_eq!(parse("op", "op/fleet/north/apps/Pump"), None);
        assert_eq!(
            parse("op", &format!("op/fleet/north/apps/{}", "a".repeat(65))),
            None
        );
        assert_eq!(parse("op", "op/fleet/north/apps/pump/chunks/xyz/1"), None);
    }
}
