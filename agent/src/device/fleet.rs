//! Fleet updates on a device: the trust store, the fleet state, the supervisor with the
//! installed apps loaded, and the updater with its inbound route for the sync engine.

use std::sync::Arc;

use outpost_hal::Clock;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::DeviceError;
use super::hardware::Hardware;
use crate::apps::AppVersion;
use crate::config::AgentConfig;
use crate::events::{AgentEvent, Events};
use crate::fleet::prepare::ServicesFactory;
use crate::fleet::state::FleetState;
use crate::fleet::supervisor::{Command, Supervisor};
use crate::fleet::updater::{FleetLink, Updater};
use crate::fleet::{self, FleetConfig, FleetContext, HealthPolicy};
use crate::identity::DeviceIdentity;
use crate::inbox::Inbox;
use crate::runtime::{KvReader, SendCheck, Services};
use crate::scheduler::{Reporter, SchedulerStats};
use crate::store::Store;
use crate::store::committer::Committer;

/// The device's services the fleet parts run on.
pub struct Shared<'a> {
    /// The state file.
    pub store: &'a Store,
    /// The device's one commit thread.
    pub committer: &'a Committer,
    /// Wall clock.
    pub clock: Arc<dyn Clock>,
    /// The device's board, which binds each app's sensor and line names.
    pub hardware: Arc<Hardware>,
    /// Where invocation outcomes go.
    pub reporter: Reporter,
    /// Where the updater and supervisor report.
    pub events: Events,
    /// Sizes outbox records against the device's packet limit and wire format.
    pub send: Arc<dyn SendCheck>,
    /// The device's inbox, which routes `mqtt` triggers of running apps, and what wakes its
    /// dispatcher.
    pub inbox: (Inbox, Arc<Notify>),
    /// The device's schedulers' counters (late and skipped runs).
    pub schedule: Arc<SchedulerStats>,
    /// Who the device is and what it lets apps do (its policy and secrets).
    pub identity: DeviceIdentity,
}

/// Fleet updates, assembled and ready to run.
pub struct FleetParts {
    supervisor: Supervisor,
    /// The installed apps, to start first.
    initial: Vec<Command>,
    updater: Updater,
    /// The updater's inbound route, for the sync engine.
    pub link: Arc<FleetLink>,
}

impl FleetParts {
    /// Starts the supervisor (with the installed apps) and the updater.
    pub fn spawn(self, stop: &watch::Receiver<bool>) -> [JoinHandle<()>; 2] {
        [
            tokio::spawn(self.supervisor.run(self.initial, stop.clone())),
            tokio::spawn(self.updater.run(stop.clone())),
        ]
    }
}

/// Sets up fleet updates for `config`'s groups and the device's own target; `apps` is the
/// status's list of running apps, which starts with the `local` ones.
pub fn assemble(
    config: &AgentConfig,
    shared: Shared<'_>,
    apps: watch::Sender<Vec<AppVersion>>,
    local: Vec<AppVersion>,
) -> Result<FleetParts, DeviceError> {
    let trust = fleet::load_trust(&config.fleet.trust)?;
    if trust.is_empty() && config.fleet.trust_root.is_empty() {
        shared.events.emit(AgentEvent::problem(
            "fleet",
            "no trusted publisher keys ([fleet] trust / --trust): every bundle will be refused",
        ));
    }
    let prefix = config.mqtt.topic_prefix.clone();
    let roles = if config.fleet.trust_root.is_empty() {
        None
    } else {
        let roots = fleet::load_trust(&config.fleet.trust_root)?;
        let roles = fleet::roles::Roles::load(roots.keys().to_vec(), &config.data_dir)
            .map_err(|e| DeviceError::Roles(e.to_string()))?;
        Some(Arc::new(std::sync::RwLock::new(roles)))
    };
    let mut fleet_config = FleetConfig::new(
        config.device_id.clone(),
        prefix.clone(),
        config.fleet.groups.clone(),
        trust,
    );
    fleet_config.roles = roles;
    fleet_config.local_apps = local.iter().map(|a| a.name.clone()).collect();
    fleet_config.limits.max_bundle_bytes = config.fleet.max_bundle_bytes;
    fleet_config.window = config.fleet.chunk_window;
    fleet_config.stall_deadline = config.fleet.stall_deadline;
    fleet_config.events = shared.events;
    fleet_config.cron_sync_wait = config.clock.sync_wait();
    fleet_config.health = HealthPolicy {
        trial_invocations: config.fleet.health_invocations,
        max_failures: config.fleet.health_max_failures,
    };
    let state = FleetState::new(
        shared.store.clone(),
        fleet::topics::reports(&prefix, &config.device_id),
    )
    .with_wake(shared.committer.stats_handle());
    let context = FleetContext {
        config: Arc::new(fleet_config),
        state,
        services: services(
            shared.store,
            shared.clock.clone(),
            shared.hardware,
            shared.send.clone(),
            Arc::new(shared.identity),
        ),
        clock: shared.clock,
    };
    let supervisor = Supervisor::new(
        context.clone(),
        shared.committer.clone(),
        shared.reporter,
        apps,
        local,
    )
    .with_inbox(shared.inbox.0, shared.inbox.1)
    .with_scheduler_stats(shared.schedule);
    let initial = supervisor.load_installed();
    let (updater, link) = Updater::new(context.clone(), supervisor.handle());
    tracing::info!(
        "fleet: following {} with {} trusted key(s); {} installed app(s)",
        context
            .config
            .targets()
            .iter()
            .map(|t| t.describe())
            .collect::<Vec<_>>()
            .join(", "),
        context.config.trust.keys().len(),
        initial.len()
    );
    Ok(FleetParts {
        supervisor,
        initial,
        updater,
        link: Arc::new(link),
    })
}

/// The services every fleet-installed app gets: its view of the device's board (refused when
/// its names cannot be bound), its KV data, the clock, the app's own variables and the
/// device's packet limit.
fn services(
    store: &Store,
    clock: Arc<dyn Clock>,
    hardware: Arc<Hardware>,
    send: Arc<dyn SendCheck>,
    identity: Arc<DeviceIdentity>,
) -> ServicesFactory {
    let kv: Arc<dyn KvReader> = Arc::new(store.clone());
    let device: Arc<str> = Arc::from(identity.device.as_str());
    Arc::new(move |manifest| {
        let variables = identity.admit(manifest)?;
        let board = hardware.for_app(manifest)?;
        Ok(Services {
            kv: kv.clone(),
            sensors: board.sensors,
            clock: clock.clone(),
            variables: Arc::new(variables),
            device: device.clone(),
            gpio: board.gpio,
            send: send.clone(),
        })
    })
}
