//! Who a device is on the broker (its id, topic prefix and fleet groups), and the topics that
//! follow from it: where commands for an app arrive, and what manifests' placeholders become.
//!
//! ```text
//! {prefix}/{device}/commands/{app}/{subtopic…}        a command to one device
//! {prefix}/fleet/{group}/commands/{app}/{subtopic…}   a command to every device of a group
//! ```
//!
//! `outpost fleet send` publishes there; an app receives them with an `mqtt` trigger on
//! `{commands}/…` (see [`outpost_manifest::placeholders`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use outpost_manifest::placeholders::{self, Values};
use outpost_manifest::{AppManifest, TopicFilter};

use crate::config::AgentConfig;
use crate::policy::{AppPolicy, PolicyError, Secrets};

/// A device's identity on the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceIdentity {
    /// The device id.
    pub device: String,
    /// The topic prefix.
    pub prefix: String,
    /// The fleet groups it follows.
    pub groups: Vec<String>,
    /// What it lets any app do ([`DeviceIdentity::admit`]): `[policy]` and its secrets.
    pub policy: Arc<AppPolicy>,
}

impl DeviceIdentity {
    /// The identity of a device configured by `config`.
    pub fn of(config: &AgentConfig) -> DeviceIdentity {
        DeviceIdentity {
            device: config.device_id.clone(),
            prefix: config.mqtt.topic_prefix.clone(),
            groups: config.fleet.groups.clone(),
            policy: Arc::new(AppPolicy {
                settings: config.policy.clone(),
                secrets: Secrets::default(),
            }),
        }
    }

    /// This identity with the device's secrets (read by the caller, [`Secrets::load`]).
    pub fn with_secrets(mut self, secrets: Secrets) -> DeviceIdentity {
        Arc::make_mut(&mut self.policy).secrets = secrets;
        self
    }

    /// Admits `manifest` (placeholders already filled, [`DeviceIdentity::fill_grants`]) on
    /// this device: no publish grant under its prefix, every grant within `[policy]`. Returns
    /// the variables its components read, the device's secrets filled in. Local and fleet apps
    /// alike pass here before their components are loaded.
    pub fn admit(&self, manifest: &AppManifest) -> Result<BTreeMap<String, String>, PolicyError> {
        self.policy.admit(manifest, &self.prefix)
    }

    /// The identity of a laptop running `outpost up` or `outpost invoke`: device `local`,
    /// prefix `outpost`, no groups.
    pub fn local() -> DeviceIdentity {
        DeviceIdentity {
            device: "local".into(),
            prefix: "outpost".into(),
            groups: Vec::new(),
            policy: Arc::default(),
        }
    }

    /// What placeholders become for `app` on this device.
    pub fn values<'a>(&'a self, app: &'a str) -> Values<'a> {
        Values {
            device: &self.device,
            prefix: &self.prefix,
            app,
            groups: &self.groups,
        }
    }

    /// The filters `filter` (as written in a manifest of `app`) becomes on this device.
    pub fn filters(&self, filter: &TopicFilter, app: &str) -> Vec<TopicFilter> {
        placeholders::expand(filter.as_str(), &self.values(app))
            .iter()
            .filter_map(|f| TopicFilter::new(f).ok())
            .collect()
    }

    /// Fills the placeholders of `manifest`'s `publish` grants for this device (its `mqtt`
    /// filters are expanded by the inbox, which needs each one's origin).
    pub fn fill_grants(&self, manifest: &mut AppManifest) {
        let app = manifest.app.name.clone();
        for component in &mut manifest.components {
            let publish = std::mem::take(&mut component.grants.publish);
            component.grants.publish = publish
                .iter()
                .flat_map(|filter| self.filters(filter, &app))
                .collect();
        }
    }

    /// The topic of a command `subtopic` for `app` on `device`.
    pub fn device_command(prefix: &str, device: &str, app: &str, subtopic: &str) -> String {
        format!(
            "{}/{subtopic}",
            placeholders::device_commands(prefix, device, app)
        )
    }

    /// The topic of a command `subtopic` for `app` on every device of `group`.
    pub fn group_command(prefix: &str, group: &str, app: &str, subtopic: &str) -> String {
        format!(
            "{}/{subtopic}",
            placeholders::group_commands(prefix, group, app)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_topics_match_what_commands_placeholders_subscribe() {
        let id = DeviceIdentity {
            device: "pi-1".into(),
            prefix: "outpost".into(),
            groups: vec!["north".into()],
            policy: Arc::default(),
        };
        let filter = TopicFilter::new("{commands}/set/#").expect("filter");
        let filters = id.filters(&filter, "pump");
        assert_eq!(filters.len(), 2);
        let to_device = DeviceIdentity::device_command("outpost", "pi-1", "pump", "set/speed");
        let to_group = DeviceIdentity::group_command("outpost", "north", "pump", "set/speed");
        let other_device = DeviceIdentity::device_command("outpost", "pi-2", "pump", "set/speed");
        let other_app = DeviceIdentity::group_command("outpost", "north", "fan", "set/speed");
        assert!(filters.iter().any(|f| f.matches(&to_device)));
        assert!(filters.iter().any(|f| f.matches(&to_group)));
        assert!(!filters.iter().any(|f| f.matches(&other_device)));
        assert!(!filters.iter().any(|f| f.matches(&other_app)));
    }
}
