//! The topic layout of fleet updates:
//!
//! ```text
//! {prefix}/fleet/{group}/apps/{app}                          retained announcement
//! {prefix}/fleet/{group}/apps/{app}/chunks/{digest16}/{n}    retained chunk n of that bundle
//! {prefix}/{device}/updates                                  the device's update reports
//! ```
//!
//! Chunk topics name the bundle by digest, so chunks of two versions never mix.

use outpost_bundle::Digest;

/// A message under `{prefix}/fleet/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FleetTopic {
    /// An announcement of `app` in `group`.
    Announcement {
        /// The group.
        group: String,
        /// The app.
        app: String,
    },
    /// Chunk `index` of the bundle whose digest starts with `digest16`.
    Chunk {
        /// The group.
        group: String,
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

/// The filter a device in `group` subscribes to for announcements.
pub fn announcements(prefix: &str, group: &str) -> String {
    format!("{prefix}/fleet/{group}/apps/+")
}

/// The announcement topic of `app` in `group`.
pub fn announcement(prefix: &str, group: &str, app: &str) -> String {
    format!("{prefix}/fleet/{group}/apps/{app}")
}

/// The topic of chunk `index` of the bundle `digest` of `app` in `group`.
pub fn chunk(prefix: &str, group: &str, app: &str, digest: &Digest, index: u32) -> String {
    format!(
        "{prefix}/fleet/{group}/apps/{app}/chunks/{}/{index}",
        digest.short()
    )
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
        [group, "apps", app] => Some(FleetTopic::Announcement {
            group: (*group).into(),
            app: (*app).into(),
        }),
        [group, "apps", app, "chunks", digest16, index] => Some(FleetTopic::Chunk {
            group: (*group).into(),
            app: (*app).into(),
            digest16: (*digest16).into(),
            index: index.parse().ok()?,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_round_trip_through_parse() {
        let digest = outpost_bundle::sha256(b"bundle");
        assert_eq!(
            parse("op", &announcement("op", "north", "pump")),
            Some(FleetTopic::Announcement {
                group: "north".into(),
                app: "pump".into()
            })
        );
        assert_eq!(
            parse("op", &chunk("op", "north", "pump", &digest, 7)),
            Some(FleetTopic::Chunk {
                group: "north".into(),
                app: "pump".into(),
                digest16: digest.short(),
                index: 7
            })
        );
        assert_eq!(parse("op", "op/dev1/events/x"), None);
        assert_eq!(parse("op", "op/fleet/north/apps/pump/chunks/ab/x"), None);
    }
}
