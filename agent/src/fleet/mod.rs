//! Fleet updates: signed bundles announced over MQTT, fetched in resumable chunks, verified,
//! activated atomically and rolled back automatically when the new version is unhealthy.
//!
//! - [`topics`]: the topic layout under `{prefix}/fleet/` (group and device targets).
//! - [`intake`]: what refused fleet messages may cost (de-duplicated, rate-limited).
//! - [`offer`]: offers read back from retained announcements, and the version rule.
//! - [`state`]: what is kept in redb (installs, downloads, chunks) and each transaction.
//! - [`roles`]: pinned root keys and the trust document scoping publisher keys.
//! - [`report`]: the update reports on `{prefix}/{device}/updates`.
//! - [`prepare`]: turning a verified bundle into a runnable app (manifest, compile, checks).
//! - [`updater`]: the download state machine: announcements in, chunk subscriptions out.
//! - [`supervisor`]: runs the installed apps and watches each new version's health window.
//!
//! The path of one update: the operator's retained announcement arrives (engine → updater);
//! its signed header is checked (trusted signer, newer version) before anything is fetched;
//! the updater subscribes to a few missing chunk topics at a time, storing each chunk with the
//! download's progress in one transaction; once all are in, the bundle is verified and compiled,
//! then one transaction makes it active; the supervisor swaps the running app and counts the
//! new version's failures, rolling back if they pass the limit.

pub mod intake;
pub mod offer;
pub mod prepare;
pub mod report;
pub mod roles;
pub mod state;
pub mod supervisor;
pub mod topics;
pub mod updater;

use std::sync::Arc;
use std::time::Duration;

use outpost_hal::Clock;

use outpost_bundle::{Limits, TrustStore};

use crate::events::Events;

/// How the fleet updater behaves.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// This device's id (reports).
    pub device: String,
    /// Topic prefix (`{prefix}/fleet/{target}/apps/{app}`).
    pub prefix: String,
    /// Groups this device follows (it also follows its own `@{device}` target).
    pub groups: Vec<String>,
    /// Publisher keys bundles must be signed by (without pinned roots).
    pub trust: TrustStore,
    /// Scoped publisher keys under pinned root keys; when set, `trust` is not used.
    pub roles: Option<Arc<std::sync::RwLock<roles::Roles>>>,
    /// The device's local apps (`--app`): no fleet release may take their names.
    pub local_apps: Vec<String>,
    /// Decoder bounds (largest bundle accepted, ...).
    pub limits: Limits,
    /// Chunks requested at once; bounds memory and what a cut link costs.
    pub window: usize,
    /// A download that makes no progress for this long while connected is abandoned.
    pub stall_deadline: Duration,
    /// Fetches of one chunk whose digest does not match before the download is abandoned.
    pub chunk_attempts: u32,
    /// The health window of a new version.
    pub health: HealthPolicy,
    /// Where the updater and the supervisor say what they do (fetching, running, reports).
    pub events: Events,
    /// Whether installed apps' cron triggers wait for a synchronised clock (agent.toml
    /// `[clock]`); `None`: they run on the clock as it is.
    pub cron_sync_wait: Option<crate::scheduler::sync_wait::SyncWait>,
}

/// What the updater and the supervisor share: how they behave, the fleet's persistent state,
/// the services each installed app gets, and the clock.
#[derive(Clone)]
pub struct FleetContext {
    /// How they behave, and where they report.
    pub config: Arc<FleetConfig>,
    /// Installs, downloads and chunks in the store.
    pub state: state::FleetState,
    /// Builds the services (sensors, GPIO, KV, clock, variables) of one installed app.
    pub services: prepare::ServicesFactory,
    /// Wall clock.
    pub clock: Arc<dyn Clock>,
}

/// When a new version counts as unhealthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthPolicy {
    /// Invocations the health window lasts.
    pub trial_invocations: u32,
    /// Failed invocations tolerated within it; one more rolls back.
    pub max_failures: u32,
}

impl Default for HealthPolicy {
    /// 10 invocations, 2 failures tolerated.
    fn default() -> Self {
        HealthPolicy {
            trial_invocations: 10,
            max_failures: 2,
        }
    }
}

impl FleetConfig {
    /// The device's identity on the broker, for placeholders in apps' manifests.
    pub fn identity(&self) -> crate::identity::DeviceIdentity {
        crate::identity::DeviceIdentity {
            device: self.device.clone(),
            prefix: self.prefix.clone(),
            groups: self.groups.clone(),
            // Placeholders only: the device's policy is applied by its services factory.
            policy: Default::default(),
        }
    }

    /// The defaults for `device` under `prefix`: 4 chunks in flight, 10 minutes of stall
    /// allowed, 3 fetches per chunk.
    pub fn new(device: String, prefix: String, groups: Vec<String>, trust: TrustStore) -> Self {
        FleetConfig {
            device,
            prefix,
            groups,
            trust,
            roles: None,
            local_apps: Vec::new(),
            limits: Limits::default(),
            window: 4,
            stall_deadline: Duration::from_secs(600),
            chunk_attempts: 3,
            health: HealthPolicy::default(),
            events: Events::new(),
            cron_sync_wait: None,
        }
    }
}

impl FleetConfig {
    /// The publisher keys signatures are checked against now: the trust document's under
    /// pinned roots, else the flat trust store.
    pub fn trust_now(&self) -> TrustStore {
        match &self.roles {
            Some(roles) => roles.read().map(|r| r.trust_store()).unwrap_or_default(),
            None => self.trust.clone(),
        }
    }

    /// Whether an installed version of `app` signed by `key` may run at `now_ms` (always,
    /// without pinned roots).
    pub fn may_run(
        &self,
        app: &str,
        key: outpost_bundle::KeyId,
        now_ms: i64,
    ) -> Result<(), String> {
        match &self.roles {
            Some(roles) => roles
                .read()
                .map_err(|_| "the trust document lock is poisoned".to_string())?
                .check_installed(app, key, now_ms),
            None => Ok(()),
        }
    }

    /// Every target this device takes offers from: its groups, then itself (`@{device}`).
    pub fn targets(&self) -> Vec<topics::Target> {
        self.groups
            .iter()
            .map(|g| topics::Target::Group(g.clone()))
            .chain([topics::Target::Device(self.device.clone())])
            .collect()
    }

    /// Whether this device takes offers addressed to `target`.
    pub fn follows(&self, target: &topics::Target) -> bool {
        match target {
            topics::Target::Group(group) => self.groups.contains(group),
            topics::Target::Device(device) => *device == self.device,
        }
    }
}

/// Why the trust store could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// A key file or directory could not be read.
    #[error("trust key {path}: cannot read: {source}")]
    Io {
        /// The file or directory.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A key file is not a usable public key.
    #[error("trust key {path}: {source}")]
    Key {
        /// The file.
        path: std::path::PathBuf,
        /// What was wrong.
        source: outpost_bundle::KeyError,
    },
}

/// Loads the trusted publisher keys from `paths`: each a `.pub` file, or a directory whose
/// `*.pub` files are all trusted. A missing directory trusts nothing from it; an unreadable or
/// malformed key file is an error (a key silently skipped could lock a fleet out).
pub fn load_trust(paths: &[std::path::PathBuf]) -> Result<TrustStore, TrustError> {
    let mut store = TrustStore::default();
    let io = |path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source| TrustError::Io { path, source }
    };
    for path in paths {
        let files = if path.is_dir() {
            let mut files: Vec<_> = std::fs::read_dir(path)
                .map_err(io(path))?
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|p| p.extension().is_some_and(|e| e == "pub"))
                .collect();
            files.sort();
            files
        } else if !path.exists() && path.extension().is_none() {
            Vec::new()
        } else {
            vec![path.clone()]
        };
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(io(&file))?;
            let key = outpost_bundle::PublicKey::parse(&text)
                .map_err(|source| TrustError::Key { path: file, source })?;
            store.add(key);
        }
    }
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;
    use topics::Target;

    #[test]
    fn a_device_follows_its_groups_and_its_own_target_only() {
        let config = FleetConfig::new(
            "pi-1".into(),
            "op".into(),
            vec!["north".into()],
            TrustStore::default(),
        );
        assert_eq!(
            config.targets(),
            [Target::Group("north".into()), Target::Device("pi-1".into())]
        );
        assert!(config.follows(&Target::Group("north".into())));
        assert!(config.follows(&Target::Device("pi-1".into())));
        assert!(!config.follows(&Target::Group("south".into())));
        assert!(!config.follows(&Target::Device("pi-2".into())));
    }
}
