//! The download state machine. Announcements and chunks come in from the sync engine; the set of
//! topics the device wants goes out to it (a watch), so the engine subscribes to exactly the next
//! few missing chunks on every session. Each stored chunk is durable with the download's
//! progress, so a cut link or a reboot costs at most the chunks that were in flight.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use outpost_bundle::{Announcement, BundleHeader, Digest, Release, sha256};
use outpost_hal::Clock;
use tokio::sync::{mpsc, watch};

use super::intake::{Admission, RefusalGate};
use super::offer;
use super::prepare::{ServicesFactory, prepare};
use super::report::{UpdateReport, UpdateResult};
use super::state::{FleetState, InstalledVersion, Seen, Transfer, Trial};
use super::supervisor::{Command, SupervisorHandle};
use super::topics::{self, FleetTopic, Target};
use super::{FleetConfig, FleetContext};
use crate::events::AgentEvent;
use crate::inbound::{Delivery, InboundRoute};

pub use crate::inbound::Wanted;

/// A message on a topic under `{prefix}/fleet/`.
#[derive(Debug, Clone)]
pub struct FleetMessage {
    /// Its topic.
    pub topic: String,
    /// Its body.
    pub data: Vec<u8>,
}

/// The `app` of reports about trust documents: not a valid app name, so never an app's.
pub const TRUST_REPORT: &str = "@trust";

/// Largest fleet message taken: a chunk is at most 512 KiB, an announcement (signed header,
/// manifest up to 256 KiB, up to 8192 chunk digests) well under 1 MiB. Anything larger on a fleet
/// topic is refused (and acknowledged and counted) before it is copied to the updater.
pub const MAX_FLEET_MESSAGE: usize = 1 << 20;

/// The updater's inbound route: what the sync engine subscribes to for it, and where messages
/// under `{prefix}/fleet/` go.
pub struct FleetLink {
    /// The topic prefix, to parse fleet topics.
    pub prefix: String,
    /// `{prefix}/fleet/`: inbound messages below it go to the updater.
    pub root: String,
    /// Where those messages go.
    pub inbound: mpsc::UnboundedSender<FleetMessage>,
    /// What to subscribe to.
    pub wanted: watch::Receiver<Wanted>,
    /// Whether a broker session is up (stall time only counts while connected).
    pub connected: watch::Sender<bool>,
    /// Bounds what refusing junk costs: a refusal here is counted in the store, so repeats
    /// and a flood past the rate are acknowledged and dropped without a write.
    pub refusals: std::sync::Mutex<RefusalGate>,
}

impl FleetLink {
    /// Refuses a message on `topic` for `reason`, if the gate lets the refusal be recorded;
    /// otherwise takes and drops it (acknowledged, not counted in the store).
    fn refuse(&self, topic: &str, reason: String) -> Delivery {
        let admitted = match self.refusals.lock() {
            Ok(mut gate) => gate.admit(sha256(topic.as_bytes()), Instant::now()),
            Err(_) => Admission::Suppress,
        };
        match admitted {
            Admission::Record { suppressed: 0 } => Delivery::Refused { reason },
            Admission::Record { suppressed } => Delivery::Refused {
                reason: format!(
                    "{reason} ({suppressed} more refused fleet messages were dropped uncounted: over the refusal rate)"
                ),
            },
            Admission::Duplicate | Admission::Suppress => Delivery::Accepted,
        }
    }
}

/// Fleet messages are retained on the broker and the updater keeps its own progress, so they
/// are acknowledged on arrival: one lost in a crash is fetched again.
impl InboundRoute for FleetLink {
    fn name(&self) -> &'static str {
        "fleet"
    }

    fn wanted(&self) -> watch::Receiver<Wanted> {
        self.wanted.clone()
    }

    fn claims(&self, topic: &str) -> bool {
        topic.starts_with(&self.root)
    }

    fn deliver(&self, topic: &str, payload: &[u8]) -> Delivery {
        if payload.len() > MAX_FLEET_MESSAGE {
            let reason = format!(
                "{} bytes, over the {MAX_FLEET_MESSAGE}-byte limit of fleet messages",
                payload.len()
            );
            return self.refuse(topic, reason);
        }
        if topics::parse(&self.prefix, topic).is_none() {
            let reason = "not a fleet announcement or chunk topic (or not a valid app name)";
            return self.refuse(topic, reason.into());
        }
        let message = FleetMessage {
            topic: topic.to_string(),
            data: payload.to_vec(),
        };
        match self.inbound.send(message) {
            Ok(()) => Delivery::Accepted,
            Err(_) => Delivery::Refused {
                reason: "the fleet updater has stopped".into(),
            },
        }
    }

    fn session(&self, up: bool) {
        self.connected.send_replace(up);
    }
}

/// One download in progress.
struct Download {
    transfer: Transfer,
    announcement: Announcement,
    header: BundleHeader,
    /// SHA-256 of the announcement message (what a refusal of it marks seen).
    message: Digest,
    /// Connected time without a new chunk.
    stalled: Duration,
    /// Fetches per chunk whose digest did not match.
    bad: HashMap<u32, u32>,
    /// Chunks that kept failing, not asked for again before this time (back-off).
    cooling: HashMap<u32, Instant>,
}

impl Download {
    fn new(transfer: Transfer, announcement: Announcement, header: BundleHeader) -> Download {
        Download {
            message: sha256(&transfer.announcement),
            transfer,
            announcement,
            header,
            stalled: Duration::ZERO,
            bad: HashMap::new(),
            cooling: HashMap::new(),
        }
    }
}

/// Back-off of a chunk after `bad` failed fetches, `attempts` of them immediate: 5 s doubling,
/// at most 5 minutes. A bad chunk (a broken or hostile copy on the broker) never ends the
/// download: the genuine one may be published again at any time.
fn chunk_backoff(bad: u32, attempts: u32) -> Duration {
    let doublings = bad.saturating_sub(attempts).min(6);
    Duration::from_secs(5 << doublings).min(Duration::from_secs(300))
}

/// Back-off before announcements are asked for again after abandoned downloads in a row: one
/// minute doubling, at most an hour.
fn retry_backoff(abandoned: u32) -> Duration {
    Duration::from_secs(60 << abandoned.min(6)).min(Duration::from_secs(3600))
}

/// Follows announcements for the device's groups and its own target, and downloads what is
/// newer.
pub struct Updater {
    config: Arc<FleetConfig>,
    state: FleetState,
    services: ServicesFactory,
    supervisor: SupervisorHandle,
    clock: Arc<dyn Clock>,
    rx: mpsc::UnboundedReceiver<FleetMessage>,
    wanted: watch::Sender<Wanted>,
    connected: watch::Receiver<bool>,
    downloads: HashMap<String, Download>,
    /// Bounds what refused messages cost in durable writes.
    gate: RefusalGate,
    /// The latest signing time of any verified release: the device's clock is taken to be at
    /// least this when deciding whether metadata has expired (a clock that reset to 1970 cannot
    /// make expired metadata look current... nor current metadata look expired for long).
    clock_floor_ms: i64,
    /// Downloads abandoned in a row (the back-off grows with it).
    abandoned: u32,
    /// When announcements are asked for again after an abandoned download.
    retry_at: Option<Instant>,
    /// Bumped to subscribe to announcements again (the broker re-delivers retained ones).
    announce_generation: u32,
}

impl Updater {
    /// An updater and the link the sync engine serves it through.
    pub fn new(context: FleetContext, supervisor: SupervisorHandle) -> (Updater, FleetLink) {
        let FleetContext {
            config,
            state,
            services,
            clock,
        } = context;
        let (inbound, rx) = mpsc::unbounded_channel();
        let (wanted, wanted_rx) = watch::channel(Wanted::new());
        let (connected_tx, connected) = watch::channel(false);
        let link = FleetLink {
            prefix: config.prefix.clone(),
            root: topics::fleet_root(&config.prefix),
            inbound,
            wanted: wanted_rx,
            connected: connected_tx,
            refusals: std::sync::Mutex::new(RefusalGate::standard(Instant::now())),
        };
        let updater = Updater {
            config,
            state,
            services,
            supervisor,
            clock,
            rx,
            wanted,
            connected,
            downloads: HashMap::new(),
            gate: RefusalGate::standard(Instant::now()),
            clock_floor_ms: i64::MIN,
            abandoned: 0,
            retry_at: None,
            announce_generation: 0,
        };
        (updater, link)
    }

    /// Resumes stored downloads, then follows messages until `stop` turns true.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        self.resume().await;
        // A download whose last chunk was stored but whose activation did not commit (power
        // lost while verifying) is complete: activate it now.
        let complete: Vec<String> = self
            .downloads
            .iter()
            .filter(|(_, d)| d.transfer.count() == d.announcement.chunks.count())
            .map(|(app, _)| app.clone())
            .collect();
        for app in complete {
            self.complete(&app).await;
        }
        self.publish_wanted();
        let tick_every = Duration::from_secs(1);
        let mut tick = tokio::time::interval(tick_every);
        // The stall clock only runs while a download is in progress and the link is up, so an
        // idle device is not woken every second for nothing; a tick missed meanwhile is skipped,
        // not made up in a burst.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            let downloading = !self.downloads.is_empty() && *self.connected.borrow();
            let retry_at = self.retry_at.map(tokio::time::Instant::from_std);
            tokio::select! {
                message = self.rx.recv() => match message {
                    Some(message) => self.message(message).await,
                    None => return,
                },
                _ = tick.tick(), if downloading => {
                    self.count_stall(tick_every).await;
                    self.cooled();
                }
                () = sleep_until(retry_at), if retry_at.is_some() => self.retry_due(),
                () = link_changed(&mut self.connected) => {}
                () = stopped(&mut stop) => return,
            }
        }
    }

    async fn resume(&mut self) {
        let state = self.state.clone();
        let transfers = match blocking(move || state.transfers()).await {
            Ok(transfers) => transfers,
            Err(error) => {
                self.config.events.emit(AgentEvent::problem(
                    "fleet",
                    format!("cannot read stored downloads: {error}"),
                ));
                return;
            }
        };
        for (app, transfer) in transfers {
            let parsed = Announcement::decode(&transfer.announcement, &self.config.limits)
                .and_then(|a| {
                    a.verify_release(&self.config.trust_now(), &self.config.limits)
                        .map(|(h, _)| (a, h))
                });
            match parsed {
                Ok((announcement, header)) => {
                    self.config.events.emit(AgentEvent::FleetResuming {
                        app: app.clone(),
                        version: header.version.to_string(),
                        stored: transfer.count() as u32,
                        chunks: announcement.chunks.count() as u32,
                    });
                    self.downloads
                        .insert(app, Download::new(transfer, announcement, header));
                }
                // E.g. its signer was removed from the trust store since: drop it, say why.
                Err(error) => {
                    self.finish(&app, None, UpdateResult::Abandoned, error.to_string(), None)
                        .await;
                }
            }
        }
    }

    async fn message(&mut self, message: FleetMessage) {
        match topics::parse(&self.config.prefix, &message.topic) {
            Some(FleetTopic::Trust) if !message.data.is_empty() => {
                self.trust_document(&message.data).await;
            }
            // An empty retained payload is the operator clearing the offer (`fleet withdraw`,
            // or the old chunks after `fleet publish` replaced a version).
            Some(FleetTopic::Announcement { target, app }) if self.config.follows(&target) => {
                if message.data.is_empty() {
                    self.withdrawn(&target, &app).await;
                } else {
                    self.announcement(target, app, &message.data).await;
                }
            }
            Some(FleetTopic::Chunk {
                app,
                digest16,
                index,
                ..
            }) if !message.data.is_empty() => {
                self.chunk(&app, &digest16, index, &message.data).await;
            }
            _ => {}
        }
    }

    /// The offer of `app` to `target` was withdrawn. What is installed keeps running (a
    /// withdrawal stops new installs, it does not uninstall); a download of that offer is
    /// abandoned, since its chunks are going too.
    async fn withdrawn(&mut self, target: &Target, app: &str) {
        let from = target.to_string();
        if self
            .downloads
            .get(app)
            .is_none_or(|d| d.transfer.group != from)
        {
            return;
        }
        if let Some(download) = self.downloads.remove(app) {
            let version = Some(download.header.version.to_string());
            let reason = format!(
                "the offer to {} was withdrawn ({}/{} chunks stored)",
                target.describe(),
                download.transfer.count(),
                download.announcement.chunks.count()
            );
            // Without the download, its bundle is not marked seen: offered again, it is
            // fetched again (a withdrawal says nothing against the bundle).
            self.finish(app, None, UpdateResult::Abandoned, reason, version)
                .await;
            self.publish_wanted();
        }
    }

    async fn announcement(&mut self, target: Target, app: String, data: &[u8]) {
        // Refusals are keyed by the message itself, never by a digest it merely claims: a
        // forged announcement naming the genuine bundle must not get the genuine one ignored.
        let message = sha256(data);
        let announcement = match Announcement::decode(data, &self.config.limits) {
            Ok(announcement) => announcement,
            Err(error) => {
                if !self.already_seen(&app, &message).await {
                    let reason = format!("announcement does not decode: {error}");
                    self.refuse(&app, message, None, reason).await;
                }
                return;
            }
        };
        let digest = announcement.chunks.bundle_digest;
        if self
            .downloads
            .get(&app)
            .is_some_and(|d| d.message == message)
        {
            return;
        }
        let state = self.state.clone();
        let name = app.clone();
        let Ok((install, seen, highest)) = blocking(move || {
            Ok::<_, crate::store::StoreError>((
                state.install(&name)?,
                state.seen(&name)?,
                state.highest(&name)?,
            ))
        })
        .await
        else {
            self.config.events.emit(AgentEvent::problem(
                "fleet",
                format!("cannot read the install state of {app}; announcement ignored"),
            ));
            return;
        };
        let running = install.as_ref().map(|i| i.active.version.clone());
        // Installed or rolled back (marked by the bundle's digest, which only a verified bundle
        // gets), or this very message refused: nothing new. An abandoned download is no verdict
        // on the bundle and is tried again.
        if install.as_ref().is_some_and(|i| i.active.digest == digest)
            || seen.is_some_and(|s| {
                s.result != UpdateResult::Abandoned.as_str()
                    && (s.digest == message
                        || (s.digest == digest && s.result != UpdateResult::Refused.as_str()))
            })
        {
            return;
        }
        let (header, release) =
            match announcement.verify_release(&self.config.trust_now(), &self.config.limits) {
                Ok(verified) => verified,
                Err(error) => {
                    let version = announcement
                        .header_unverified()
                        .ok()
                        .map(|h| h.version.to_string());
                    self.refuse(
                        &app,
                        message,
                        version,
                        format!("refused before download: {error}"),
                    )
                    .await;
                    return;
                }
            };
        let version = header.version.to_string();
        if header.app != app {
            let reason = format!(
                "announced as app '{app}' but the signed bundle is for app '{}'",
                header.app
            );
            self.refuse(&app, message, Some(version), reason).await;
            return;
        }
        if let Err(reason) = self.check_release(&target, &release) {
            self.refuse(&app, message, Some(version), reason).await;
            return;
        }
        if self.config.local_apps.contains(&app) {
            let reason = format!(
                "app name '{app}' is this device's local app (--app); no fleet release may replace it"
            );
            self.refuse(&app, message, Some(version), reason).await;
            return;
        }
        if let Some(roles) = &self.config.roles {
            let floor = highest
                .as_deref()
                .and_then(|f| outpost_bundle::parse_version(f).ok());
            let now = self.clock.wall_ms().max(self.clock_floor_ms);
            let checked = roles
                .read()
                .map_err(|_| "the trust document lock is poisoned".to_string())
                .and_then(|r| {
                    r.check_release(
                        &release,
                        header.key_id,
                        &target.to_string(),
                        floor.as_ref(),
                        now,
                    )
                });
            if let Err(reason) = checked {
                self.refuse(&app, message, Some(version), reason).await;
                return;
            }
        }
        self.clock_floor_ms = self.clock_floor_ms.max(release.created_ms);
        // The same bundle announced again (published again): whatever back-off its chunks were
        // in is over, the genuine copies may be back.
        if let Some(download) = self.downloads.get_mut(&app)
            && download.announcement.chunks.bundle_digest == digest
        {
            download.cooling.clear();
            download.stalled = Duration::ZERO;
            for bad in download.bad.values_mut() {
                *bad += 1;
            }
            self.publish_wanted();
            return;
        }
        // Its groups and the device itself may offer the same app: the highest version wins,
        // so a download of a higher offer goes on (the lower one is looked at again when it is
        // announced again, and by then the floor refuses it).
        if let Some(current) = self.downloads.get(&app)
            && let Some(from) = Target::parse(&current.transfer.group)
            && !offer::replaces_download(&target, &header.version, &from, &current.header.version)
        {
            return;
        }
        // The floor's own version is accepted again only when nothing is installed: a store
        // replaced after damage (or wiped) lost its install but kept its floor, and the device
        // must get back the version it ran. Anything older is a downgrade, always.
        if let Some(floor) = highest.as_deref()
            && let Ok(floor_version) = outpost_bundle::parse_version(floor)
            && (header.version < floor_version
                || (header.version == floor_version && install.is_some()))
        {
            let installed = running.as_deref().unwrap_or("none");
            let reason = format!(
                "downgrade refused: version {version} is not newer than the installed {installed} (highest ever accepted: {floor})"
            );
            self.refuse(&app, message, Some(version), reason).await;
            return;
        }
        let count = announcement.chunks.count();
        let transfer = Transfer {
            group: target.to_string(),
            announcement: data.to_vec(),
            received: vec![0; count.div_ceil(8)],
            bytes_received: 0,
            started_ms: self.clock.wall_ms(),
        };
        let (state, name, stored) = (self.state.clone(), app.clone(), transfer.clone());
        if let Err(error) = blocking(move || state.begin_transfer(&name, &stored)).await {
            self.config.events.emit(AgentEvent::problem(
                "fleet",
                format!("cannot start the download of {app} {version}: {error}"),
            ));
            return;
        }
        self.config.events.emit(AgentEvent::FleetFetching {
            app: app.clone(),
            version: version.to_string(),
            bytes: announcement.chunks.bundle_len,
            chunks: count as u32,
        });
        self.downloads
            .insert(app, Download::new(transfer, announcement, header));
        self.publish_wanted();
    }

    async fn chunk(&mut self, app: &str, digest16: &str, index: u32, data: &[u8]) {
        let attempts = self.config.chunk_attempts;
        let Some(download) = self.downloads.get_mut(app) else {
            return;
        };
        if download.announcement.chunks.bundle_digest.short() != digest16 {
            return;
        }
        download.transfer.bytes_received += data.len() as u64;
        let slot = index as usize;
        if slot >= download.announcement.chunks.count() || download.transfer.has(slot) {
            return;
        }
        if !download.announcement.chunks.chunk_matches(slot, data) {
            // Backing off from this chunk: a bad copy still in flight counts for nothing.
            if download.cooling.contains_key(&index) {
                return;
            }
            let bad = download.bad.entry(index).or_default();
            *bad += 1;
            let bad = *bad;
            if bad >= attempts {
                let wait = chunk_backoff(bad, attempts);
                download.cooling.insert(index, Instant::now() + wait);
                self.config.events.emit(AgentEvent::problem(
                    "fleet",
                    format!(
                        "chunk {index} of {app} did not match its signed digest in {bad} fetches; asking again in {}",
                        humantime::format_duration(wait)
                    ),
                ));
            } else {
                self.config.events.emit(AgentEvent::problem(
                    "fleet",
                    format!(
                        "chunk {index} of {app} does not match its signed digest; fetching it again"
                    ),
                ));
            }
            self.publish_wanted();
            return;
        }
        // A good copy is taken whenever it comes, back-off or not: its digest is signed.
        download.cooling.remove(&index);
        download.transfer.set(slot);
        download.stalled = Duration::ZERO;
        self.abandoned = 0;
        let (state, name, transfer, chunk) = (
            self.state.clone(),
            app.to_string(),
            download.transfer.clone(),
            data.to_vec(),
        );
        if let Err(error) = blocking(move || state.put_chunk(&name, index, &chunk, &transfer)).await
        {
            // Not stored: forget it, so it is fetched again.
            self.config.events.emit(AgentEvent::problem(
                "fleet",
                format!("cannot store chunk {index} of {app}: {error}"),
            ));
            if let Some(download) = self.downloads.get_mut(app) {
                download.transfer.received[slot / 8] &= !(1 << (slot % 8));
            }
            return;
        }
        let complete = self
            .downloads
            .get(app)
            .is_some_and(|d| d.transfer.count() == d.announcement.chunks.count());
        if complete {
            self.complete(app).await;
        }
        self.publish_wanted();
    }

    /// Verifies, compiles and activates a complete download.
    async fn complete(&mut self, app: &str) {
        let Some(download) = self.downloads.remove(app) else {
            return;
        };
        let version = download.header.version.to_string();
        self.config.events.emit(AgentEvent::FleetVerifying {
            app: app.to_string(),
            version: version.to_string(),
        });
        let (state, config, services) = (
            self.state.clone(),
            self.config.clone(),
            self.services.clone(),
        );
        let name = app.to_string();
        let now = self.clock.wall_ms();
        let device = self.config.device.clone();
        let bytes_received = download.transfer.bytes_received;
        let announced = download.announcement.clone();
        let activated = blocking(move || {
            let chunks = announced.chunks.count() as u32;
            let bytes = state
                .assemble(&name, chunks)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| "a stored chunk is missing".to_string())?;
            if sha256(&bytes) != announced.chunks.bundle_digest {
                return Err(format!(
                    "the assembled bundle does not match the announced digest {:?}",
                    announced.chunks.bundle_digest
                ));
            }
            let verified = outpost_bundle::verify(&bytes, &config.trust_now(), &config.limits)
                .map_err(|e| e.to_string())?;
            if verified.header_bytes != announced.header_bytes {
                return Err("the bundle's signed header differs from the announced one".into());
            }
            let prepared =
                prepare(&verified, &services, &config.identity()).map_err(|e| e.to_string())?;
            if let Some(roles) = &config.roles {
                let grants = prepared.manifest.components.iter().map(|c| &c.grants);
                let gpio: Vec<&str> = grants.clone().flat_map(|g| g.gpio.iter().map(|l| l.line.as_str())).collect();
                let publish: Vec<&str> = grants.flat_map(|g| g.publish.iter().map(|t| t.as_str())).collect();
                roles
                    .read()
                    .map_err(|_| "the trust document lock is poisoned".to_string())?
                    .check_grants(verified.header.key_id, gpio, publish)?;
            }
            let previous = state
                .install(&name)
                .map_err(|e| e.to_string())?
                .map(|i| i.active.version);
            let installed = InstalledVersion {
                version: verified.header.version.to_string(),
                digest: verified.file_digest,
                key_id: verified.header.key_id,
                installed_ms: now,
            };
            let report = UpdateReport {
                device,
                app: name.clone(),
                result: UpdateResult::Accepted,
                from_version: previous.clone(),
                to_version: Some(installed.version.clone()),
                reason: format!(
                    "signature by {} and all digests verified, {} components compiled; activated, health window started",
                    verified.header.key_id,
                    verified.modules.len()
                ),
                bytes_received: Some(bytes_received),
                bundle_bytes: Some(bytes.len() as u64),
                time_ms: now,
            };
            state
                .activate(&name, &bytes, installed.clone(), &report)
                .map_err(|e| e.to_string())?;
            Ok((installed, prepared, report, previous))
        })
        .await;
        match activated {
            Ok((installed, prepared, report, previous)) => {
                self.config.events.emit(report.event());
                self.supervisor.send(Command::Reported(report));
                self.supervisor.send(Command::Run {
                    app: app.to_string(),
                    version: installed,
                    prepared,
                    trial: Some(Trial::default()),
                    previous,
                });
            }
            Err(reason) => {
                self.finish(
                    app,
                    Some(&download),
                    UpdateResult::Refused,
                    format!("refused after download: {reason}"),
                    Some(version),
                )
                .await;
            }
        }
    }

    async fn count_stall(&mut self, by: Duration) {
        let deadline = self.config.stall_deadline;
        let mut stalled = Vec::new();
        for (app, download) in &mut self.downloads {
            download.stalled += by;
            if download.stalled >= deadline {
                stalled.push(app.clone());
            }
        }
        for app in stalled {
            let reason = format!(
                "no progress for {} while connected",
                humantime::format_duration(deadline)
            );
            self.abandon(&app, reason).await;
        }
    }

    async fn abandon(&mut self, app: &str, reason: String) {
        if let Some(download) = self.downloads.remove(app) {
            let version = Some(download.header.version.to_string());
            let wait = retry_backoff(self.abandoned);
            self.abandoned = self.abandoned.saturating_add(1);
            self.retry_at = Some(Instant::now() + wait);
            let reason = format!(
                "{reason} ({}/{} chunks stored); asked for again in {} (or when published again)",
                download.transfer.count(),
                download.announcement.chunks.count(),
                humantime::format_duration(wait)
            );
            self.finish(
                app,
                Some(&download),
                UpdateResult::Abandoned,
                reason,
                version,
            )
            .await;
            self.publish_wanted();
        }
    }

    /// Ends a download (or a stored one that cannot resume) without installing, and reports.
    async fn finish(
        &mut self,
        app: &str,
        download: Option<&Download>,
        result: UpdateResult,
        reason: String,
        to_version: Option<String>,
    ) {
        // Keyed by the announcement message: a refusal after download concerns this signed
        // release only; an abandoned one is tried again (see `announcement`).
        let digest = download.map(|d| d.message).unwrap_or(Digest([0; 32]));
        let report = self.report(app, result, to_version, reason).await;
        let report = UpdateReport {
            bytes_received: download.map(|d| d.transfer.bytes_received),
            bundle_bytes: download.map(|d| d.announcement.chunks.bundle_len),
            ..report
        };
        self.config.events.emit(report.event());
        self.supervisor.send(Command::Reported(report.clone()));
        let seen = Seen {
            digest,
            result: result.as_str().into(),
        };
        let (state, name) = (self.state.clone(), app.to_string());
        if let Err(error) = blocking(move || state.end_transfer(&name, &seen, &report)).await {
            self.config.events.emit(AgentEvent::problem(
                "fleet",
                format!("cannot record the end of the download of {app}: {error}"),
            ));
        }
    }

    async fn refuse(&mut self, app: &str, digest: Digest, version: Option<String>, reason: String) {
        let reason = match self.gate.admit(digest, Instant::now()) {
            Admission::Duplicate => return,
            Admission::Suppress => {
                // Counted, shown in the agent's own log, but no durable write and no report:
                // a flood of junk must not cost a flood of fsyncs or push real events out.
                self.config.events.emit(AgentEvent::problem(
                    "fleet",
                    format!(
                        "announcement of {app} refused (not recorded: over the refusal rate): {reason}"
                    ),
                ));
                return;
            }
            Admission::Record { suppressed: 0 } => reason,
            Admission::Record { suppressed } => format!(
                "{reason} ({suppressed} more refused announcements were not recorded: over the refusal rate)"
            ),
        };
        let report = self
            .report(app, UpdateResult::Refused, version, reason)
            .await;
        self.config.events.emit(report.event());
        self.supervisor.send(Command::Reported(report.clone()));
        let seen = Seen {
            digest,
            result: "refused".into(),
        };
        let (state, name) = (self.state.clone(), app.to_string());
        if let Err(error) = blocking(move || state.refuse(&name, &seen, &report)).await {
            self.config.events.emit(AgentEvent::problem(
                "fleet",
                format!("cannot record the refusal for {app}: {error}"),
            ));
        }
    }

    async fn already_seen(&self, app: &str, digest: &Digest) -> bool {
        let (state, name) = (self.state.clone(), app.to_string());
        matches!(blocking(move || state.seen(&name)).await, Ok(Some(seen)) if seen.digest == *digest)
    }

    /// A report about `app`, with the version running now as `from_version`.
    async fn report(
        &self,
        app: &str,
        result: UpdateResult,
        to_version: Option<String>,
        reason: String,
    ) -> UpdateReport {
        let (state, name) = (self.state.clone(), app.to_string());
        let running = blocking(move || state.install(&name))
            .await
            .ok()
            .flatten()
            .map(|i| i.active.version);
        UpdateReport {
            device: self.config.device.clone(),
            app: app.to_string(),
            result,
            from_version: running,
            to_version,
            reason,
            bytes_received: None,
            bundle_bytes: None,
            time_ms: self.clock.wall_ms(),
        }
    }

    /// A trust document arrived: take it if the roots signed it and it is newer, then stop
    /// every installed app whose signer it no longer lists (or lists expired).
    async fn trust_document(&mut self, data: &[u8]) {
        let Some(roles) = self.config.roles.clone() else {
            return;
        };
        let now = self.clock.wall_ms().max(self.clock_floor_ms);
        let taken = roles
            .write()
            .map_err(|_| "the trust document lock is poisoned".to_string())
            .and_then(|mut r| r.offer(data, now).map(|d| (d.version, d.publishers.len())));
        let message = sha256(data);
        let (version, publishers) = match taken {
            Ok(taken) => taken,
            Err(reason) => {
                // The same (older) document re-delivered on every subscription is no news.
                if reason.contains("rollback refused") {
                    return;
                }
                self.refuse(TRUST_REPORT, message, None, reason).await;
                return;
            }
        };
        let mut report = self
            .report(
                TRUST_REPORT,
                UpdateResult::Accepted,
                Some(version.to_string()),
                format!("trust document version {version} taken: {publishers} publisher key(s)"),
            )
            .await;
        report.from_version = None;
        self.config.events.emit(report.event());
        let state = self.state.clone();
        let saved = report.clone();
        if let Err(error) = blocking(move || state.record(&saved)).await {
            self.config.events.emit(AgentEvent::problem(
                "fleet",
                format!("cannot record the trust document: {error}"),
            ));
        }
        let state = self.state.clone();
        let installs = blocking(move || state.installs()).await.unwrap_or_default();
        for (app, install) in installs {
            let Err(reason) = self.config.may_run(&app, install.active.key_id, now) else {
                continue;
            };
            let mut report = self
                .report(
                    &app,
                    UpdateResult::Refused,
                    None,
                    format!(
                        "installed {app} {} stopped: {reason}",
                        install.active.version
                    ),
                )
                .await;
            report.to_version = None;
            let (state, saved) = (self.state.clone(), report.clone());
            if let Err(error) = blocking(move || state.record(&saved)).await {
                self.config.events.emit(AgentEvent::problem(
                    "fleet",
                    format!("cannot record the stop of {app}: {error}"),
                ));
            }
            self.supervisor.send(Command::Stop { app, report });
        }
    }

    /// Whether a verified release may be acted on here: it targets the topic's target and this
    /// device, and has not expired. The reason names both sides.
    fn check_release(&self, target: &Target, release: &Release) -> Result<(), String> {
        let targeted = match target {
            Target::Group(group) => release.targets_group(group),
            Target::Device(device) => release.targets_device(device),
        };
        if !targeted {
            return Err(format!(
                "release metadata targets {}, not {} (replayed from another target?)",
                release.describe_targets(),
                target.describe()
            ));
        }
        let now = self.clock.wall_ms().max(self.clock_floor_ms);
        if now >= release.expires_ms {
            let ago = Duration::from_millis(now.saturating_sub(release.expires_ms) as u64);
            return Err(format!(
                "release metadata expired {} ago (signed for {}); publish it again to renew",
                humantime::format_duration(Duration::from_secs(ago.as_secs())),
                humantime::format_duration(Duration::from_secs(
                    (release.expires_ms.saturating_sub(release.created_ms) / 1000) as u64
                ))
            ));
        }
        Ok(())
    }

    /// Once the back-off after abandoned downloads is over, subscribes to announcements again,
    /// so the broker re-delivers the retained ones and the download starts again.
    fn retry_due(&mut self) {
        self.retry_at = None;
        self.announce_generation = self.announce_generation.wrapping_add(1);
        self.publish_wanted();
    }

    /// Asks again for chunks whose back-off is over.
    fn cooled(&mut self) {
        let cooled = self
            .downloads
            .values()
            .any(|d| d.cooling.values().any(|until| *until <= Instant::now()));
        if cooled {
            let now = Instant::now();
            for download in self.downloads.values_mut() {
                download.cooling.retain(|_, until| *until > now);
            }
            self.publish_wanted();
        }
    }

    /// Announcement filters of every target (groups and the device's own), plus the next
    /// `window` missing chunks of each download; a chunk fetched again gets a new generation.
    fn publish_wanted(&self) {
        let prefix = &self.config.prefix;
        let mut wanted: Wanted = self
            .config
            .targets()
            .iter()
            .map(|t| (topics::announcements(prefix, t), self.announce_generation))
            .collect();
        if self.config.roles.is_some() {
            wanted.insert(topics::trust(prefix), self.announce_generation);
        }
        let now = Instant::now();
        for (app, download) in &self.downloads {
            // A stored target that does not parse cannot name a topic (it never should).
            let Some(target) = Target::parse(&download.transfer.group) else {
                continue;
            };
            let digest = download.announcement.chunks.bundle_digest;
            let missing = (0..download.announcement.chunks.count())
                .filter(|&i| !download.transfer.has(i))
                .filter(|&i| {
                    download
                        .cooling
                        .get(&(i as u32))
                        .is_none_or(|until| *until <= now)
                })
                .take(self.config.window);
            for index in missing {
                let index = index as u32;
                let topic = topics::chunk(prefix, &target, app, &digest, index);
                let generation = download.bad.get(&index).copied().unwrap_or(0);
                wanted.insert(topic, generation);
            }
        }
        self.wanted.send_if_modified(|current| {
            if *current == wanted {
                false
            } else {
                *current = wanted;
                true
            }
        });
    }
}

/// Runs blocking store work off the async thread.
async fn blocking<T: Send + 'static, E: std::fmt::Display + Send + 'static>(
    work: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(error) => Err(format!("task failed: {error}")),
    }
}

/// Resolves at `at` (never when `None`).
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Resolves when the link goes up or down; never once the engine's end of it is gone.
async fn link_changed(connected: &mut watch::Receiver<bool>) {
    if connected.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link() -> (FleetLink, mpsc::UnboundedReceiver<FleetMessage>) {
        let (inbound, rx) = mpsc::unbounded_channel();
        let link = FleetLink {
            prefix: "op".into(),
            root: topics::fleet_root("op"),
            inbound,
            wanted: crate::inbound::fixed([]),
            connected: watch::channel(false).0,
            refusals: std::sync::Mutex::new(RefusalGate::standard(Instant::now())),
        };
        (link, rx)
    }

    #[test]
    fn oversized_and_unknown_fleet_messages_are_refused_before_the_updater() {
        let (link, mut rx) = link();
        let announcement = topics::announcement("op", &Target::Group("north".into()), "pump");
        assert_eq!(link.deliver(&announcement, b"x"), Delivery::Accepted);
        assert!(rx.try_recv().is_ok());
        let big = vec![0; MAX_FLEET_MESSAGE + 1];
        assert!(matches!(
            link.deliver(&announcement, &big),
            Delivery::Refused { reason } if reason.contains("limit of fleet messages")
        ));
        assert!(matches!(
            link.deliver("op/fleet/north/other", b"x"),
            Delivery::Refused { reason } if reason.contains("not a fleet")
        ));
        assert!(
            rx.try_recv().is_err(),
            "nothing refused reaches the updater"
        );
    }
}
