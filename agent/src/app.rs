//! Assembles a runnable app from a manifest: store, committer, board, runtime and executor.
//! `outpost up`, `outpost invoke` and the tests all start an app through here.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use outpost_hal::{Clock, GpioBoard, SensorBoard};
use outpost_manifest::{AppManifest, ManifestError};
use thiserror::Error;

use crate::device::hardware::{Hardware, HardwareError};
use crate::executor::Executor;
use crate::identity::DeviceIdentity;
use crate::runtime::{LoadError, Runtime, SendCheck, Services};
use crate::store::committer::{self, CommitterThread};
use crate::store::{OutboxLimits, Store, StoreError};
use crate::sync::batch::Planner;

/// Why an app could not be started.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AppError {
    /// The manifest is missing or wrong.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A component could not be loaded.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The state store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The board cannot serve the app (unbound names, a misconfigured simulator).
    #[error(transparent)]
    Board(#[from] HardwareError),
    /// A cron trigger's time zone is not installed on this device.
    #[error(transparent)]
    Zone(#[from] crate::scheduler::zone::ZoneError),
    /// This device's policy refuses it (a grant under the topic prefix or beyond `[policy]`,
    /// a missing secret).
    #[error("refused by this device: {0}")]
    Policy(#[from] crate::policy::PolicyError),
}

/// How to start an app.
#[derive(Clone)]
pub struct AppOptions {
    /// Directory holding `state.redb`.
    pub data_dir: PathBuf,
    /// Outbox bounds and full-policy.
    pub outbox: OutboxLimits,
    /// Time source for the board, the scheduler and outbox rows.
    pub clock: Arc<dyn Clock>,
    /// The board the app runs on; `None` is the simulated board its manifest describes
    /// (sensors from `[[simulator.sensor]]`, GPIO without lines).
    pub hardware: Option<Arc<Hardware>>,
    /// Who the device is (`device_id`, placeholders in `publish` grants); `None` is
    /// [`DeviceIdentity::local`].
    pub identity: Option<DeviceIdentity>,
    /// Sizes outbox records against the device's packet limit and wire format; `None`
    /// assumes a device with default settings ([`Planner::assumed_default`]).
    pub send: Option<Arc<dyn SendCheck>>,
}

/// A started app: everything needed to invoke components and schedule triggers.
pub struct App {
    /// The loaded manifest.
    pub manifest: AppManifest,
    /// The state store.
    pub store: Store,
    /// Runs and commits invocations.
    pub executor: Executor,
    /// The commit thread, if the app owns one; join it after dropping the executor to flush
    /// every commit.
    pub committer: Option<CommitterThread>,
    /// The board components read sensors from.
    pub board: Arc<dyn SensorBoard>,
    /// The GPIO lines components drive.
    pub gpio: Arc<dyn GpioBoard>,
}

impl App {
    /// Loads `manifest_path` and starts the app with `options`.
    pub fn start(manifest_path: &Path, options: AppOptions) -> Result<App, AppError> {
        let manifest = outpost_manifest::load(manifest_path)?;
        App::start_with(manifest, options)
    }

    /// Starts an already-loaded manifest, with its own store handle and commit thread.
    pub fn start_with(manifest: AppManifest, options: AppOptions) -> Result<App, AppError> {
        let store = Store::open_dir(&options.data_dir)?;
        store.set_durability(options.outbox.durability)?;
        store.set_checkpoint_every(options.outbox.checkpoint_every);
        let (committer, thread) = committer::spawn(store.clone(), options.outbox);
        let mut app = App::start_on(manifest, options, store, committer)?;
        app.committer = Some(thread);
        Ok(app)
    }

    /// Starts an already-loaded manifest on a store and committer shared with the rest of the
    /// agent (`options.data_dir` and `options.outbox` are not used).
    pub fn start_on(
        mut manifest: AppManifest,
        options: AppOptions,
        store: Store,
        committer: crate::store::committer::Committer,
    ) -> Result<App, AppError> {
        // Before anything starts: an app whose cron zones are missing would run at wrong times.
        crate::scheduler::zone::check_app(&manifest)?;
        let hardware = options
            .hardware
            .unwrap_or_else(|| Arc::new(Hardware::simulated(options.clock.clone())));
        let board = hardware.for_app(&manifest).map_err(AppError::Board)?;
        let identity = options.identity.unwrap_or_else(DeviceIdentity::local);
        identity.fill_grants(&mut manifest);
        let variables = identity.admit(&manifest)?;
        let services = Services {
            kv: Arc::new(store.clone()),
            sensors: board.sensors.clone(),
            clock: options.clock.clone(),
            variables: Arc::new(variables),
            device: Arc::from(identity.device.as_str()),
            gpio: board.gpio.clone(),
            send: options
                .send
                .unwrap_or_else(|| Arc::new(Planner::assumed_default())),
        };
        let runtime = Arc::new(Runtime::load(&manifest, services)?);
        let executor =
            Executor::new(runtime, committer, options.clock).with_synced_kv(&manifest.sync_kv);
        Ok(App {
            manifest,
            store,
            executor,
            committer: None,
            board: board.sensors,
            gpio: board.gpio,
        })
    }

    /// Every trigger of the app as `(component id, trigger)`.
    pub fn triggers(&self) -> Vec<(String, outpost_manifest::TriggerSpec)> {
        self.manifest
            .components
            .iter()
            .flat_map(|c| c.triggers.iter().map(|t| (c.id.clone(), t.clone())))
            .collect()
    }

    /// Drops the executor and waits until every queued commit is durable.
    pub fn shutdown(self) {
        let App {
            executor,
            committer,
            ..
        } = self;
        drop(executor);
        if let Some(committer) = committer {
            committer.join();
        }
    }
}
