//! `outpost agent`: the device daemon — the app's triggers, the inbox for `mqtt` triggers, and
//! the sync engine draining the outbox to the broker — until SIGTERM or Ctrl-C.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use outpost::app::{App, AppOptions};
use outpost::config::{self, AgentConfig, MqttSettings, SyncSettings};
use outpost::events::{AgentEvent, Events};
use outpost::fleet::prepare::ServicesFactory;
use outpost::fleet::state::FleetState;
use outpost::fleet::supervisor::{Command, Supervisor};
use outpost::fleet::updater::{FleetLink, Updater};
use outpost::fleet::{self, FleetConfig, HealthPolicy};
use outpost::inbox::Inbox;
use outpost::report;
use outpost::runtime::{KvReader, Services};
use outpost::scheduler::{Reporter, Scheduler};
use outpost::store::committer::{self, Committer};
use outpost::store::{FullPolicy, Store};
use outpost::sync::batch::Planner;
use outpost::sync::status::{self, AppVersion};
use outpost::sync::wire::WireFormat;
use outpost::sync::{InboundRoute, SyncConfig, SyncEngine};
use outpost_hal::mqtt::{BrokerUrl, LastWill, MqttConfig, QoS, RumqttcTransport};
use outpost_hal::{Clock, SystemClock};
use tokio::sync::{Notify, watch};

use super::wait_for_signal;

/// Arguments of `outpost agent`; flags override `--config`.
#[derive(clap::Args)]
pub struct AgentArgs {
    /// agent.toml to read (flags below override it).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Device id (one MQTT topic level).
    #[arg(long)]
    device_id: Option<String>,
    /// Broker URL, mqtt://host:port or mqtts://host:port.
    #[arg(long)]
    broker: Option<String>,
    /// State directory.
    #[arg(long)]
    data: Option<PathBuf>,
    /// App directory to run (without one the agent only syncs).
    #[arg(long)]
    app: Option<PathBuf>,
    /// Topic prefix (default outpost).
    #[arg(long)]
    topic_prefix: Option<String>,
    /// Broker user name.
    #[arg(long)]
    username: Option<String>,
    /// Broker password.
    #[arg(long)]
    password: Option<String>,
    /// CA certificate (PEM) for mqtts://.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS.
    #[arg(long)]
    client_cert: Option<PathBuf>,
    /// Client key (PEM) for mutual TLS.
    #[arg(long)]
    client_key: Option<PathBuf>,
    /// Most records the outbox holds.
    #[arg(long)]
    outbox_max_records: Option<u64>,
    /// Most bytes the outbox holds.
    #[arg(long)]
    outbox_max_bytes: Option<u64>,
    /// drop-oldest or reject-new.
    #[arg(long)]
    outbox_full: Option<FullPolicy>,
    /// Status refresh interval, e.g. 30s.
    #[arg(long, value_parser = humantime::parse_duration)]
    status_every: Option<Duration>,
    /// Most events per message.
    #[arg(long)]
    batch_max_events: Option<usize>,
    /// json or postcard.
    #[arg(long)]
    wire: Option<WireFormat>,
    /// Payload bytes per second (0 = unlimited).
    #[arg(long)]
    rate_limit: Option<u64>,
    /// First reconnect delay, e.g. 500ms.
    #[arg(long, value_parser = humantime::parse_duration)]
    reconnect_min: Option<Duration>,
    /// Longest reconnect delay, e.g. 60s.
    #[arg(long, value_parser = humantime::parse_duration)]
    reconnect_max: Option<Duration>,
    /// A trusted publisher key file or directory of `.pub` files (repeatable; adds to
    /// agent.toml's `[fleet] trust`).
    #[arg(long = "trust", value_name = "KEY.pub")]
    trust: Vec<PathBuf>,
    /// A fleet group to take updates from (repeatable; adds to agent.toml's `[fleet] groups`).
    #[arg(long = "group", value_name = "GROUP")]
    groups: Vec<String>,
    /// Invocations a new version's health window lasts.
    #[arg(long)]
    health_invocations: Option<u32>,
    /// Failed invocations tolerated in the health window; one more rolls back.
    #[arg(long)]
    health_max_failures: Option<u32>,
    /// Bundle chunks requested at once.
    #[arg(long)]
    chunk_window: Option<usize>,
    /// Abandon a download without progress for this long while connected, e.g. 10m.
    #[arg(long, value_parser = humantime::parse_duration)]
    stall_deadline: Option<Duration>,
    /// How events are printed on stdout: `text` (a line each, for people and journald) or
    /// `json` (one JSON object per line, for scripts and tests).
    #[arg(long, value_enum, default_value_t = EventFormat::Text)]
    events: EventFormat,
}

/// How `outpost agent` prints its events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EventFormat {
    /// One line per event, for people.
    Text,
    /// One JSON object per line (`{"event":"connected"}`), for scripts.
    Json,
}

/// Prints every event on stdout, off the async thread, until [`AgentEvent::Stopped`].
fn render_events(events: &Events, format: EventFormat) -> std::thread::JoinHandle<()> {
    let mut rx = events.subscribe();
    std::thread::spawn(move || {
        use std::io::Write as _;
        loop {
            let event = match rx.blocking_recv() {
                Ok(event) => event,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                    AgentEvent::problem(
                        "events",
                        format!("{missed} events not shown (output too slow)"),
                    )
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            };
            let line = match format {
                EventFormat::Text => event.line(),
                EventFormat::Json => serde_json::to_string(&event).unwrap_or_default(),
            };
            let mut out = std::io::stdout().lock();
            // stdout gone (a closed pipe): nothing left to tell, the agent goes on.
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
            if event == AgentEvent::Stopped {
                return;
            }
        }
    })
}

/// Inbound messages above this are refused (the ABI's payload limit).
const MAX_INBOUND_BYTES: usize = outpost_abi::limits::MAX_PAYLOAD_LEN;

fn resolve(args: AgentArgs) -> anyhow::Result<AgentConfig> {
    let mut config = match &args.config {
        Some(path) => config::load(path)?,
        None => AgentConfig {
            device_id: args
                .device_id
                .clone()
                .context("--device-id is required without --config")?,
            data_dir: config::DEFAULT_DATA_DIR.into(),
            app: None,
            mqtt: MqttSettings::new(
                args.broker
                    .clone()
                    .context("--broker is required without --config")?,
            ),
            outbox: Default::default(),
            sync: SyncSettings::default(),
            fleet: Default::default(),
        },
    };
    macro_rules! set {
        ($($flag:ident => $($field:ident).+),* $(,)?) => {$(
            if let Some(value) = args.$flag { config.$($field).+ = value; }
        )*};
    }
    set!(device_id => device_id, broker => mqtt.broker, data => data_dir, topic_prefix => mqtt.topic_prefix,
        outbox_max_records => outbox.max_records, outbox_max_bytes => outbox.max_bytes, outbox_full => outbox.policy,
        status_every => sync.status_every, batch_max_events => sync.batch_max_events, wire => sync.wire,
        rate_limit => sync.rate_limit, reconnect_min => mqtt.reconnect_min, reconnect_max => mqtt.reconnect_max,
        health_invocations => fleet.health_invocations, health_max_failures => fleet.health_max_failures,
        stall_deadline => fleet.stall_deadline, chunk_window => fleet.chunk_window);
    config.fleet.trust.extend(args.trust);
    for group in args.groups {
        if !config.fleet.groups.contains(&group) {
            config.fleet.groups.push(group);
        }
    }
    if args.app.is_some() {
        config.app = args.app;
    }
    for (flag, value) in [
        (&mut config.mqtt.username, args.username),
        (&mut config.mqtt.password, args.password),
    ] {
        if value.is_some() {
            *flag = value;
        }
    }
    for (flag, value) in [
        (&mut config.mqtt.ca_file, args.ca_file),
        (&mut config.mqtt.client_cert, args.client_cert),
        (&mut config.mqtt.client_key, args.client_key),
    ] {
        if value.is_some() {
            *flag = value;
        }
    }
    config::validate(&config).map_err(|message| anyhow::anyhow!("agent settings: {message}"))?;
    Ok(config)
}

/// The device's GPIO chips (`/dev/gpiochip*`, as `outpost hal list` shows them) when they can
/// be opened; otherwise `None`, which the app turns into a simulated board without lines.
fn device_gpio() -> Option<Arc<dyn outpost_hal::GpioBoard>> {
    #[cfg(target_os = "linux")]
    match outpost_hal::LinuxGpio::discover(std::path::Path::new("/dev")) {
        Ok(gpio) => return Some(Arc::new(gpio)),
        Err(error) => {
            tracing::warn!(%error, "GPIO unavailable; components' gpio calls will find no lines");
        }
    }
    None
}

/// Runs `outpost agent`.
pub fn run(args: AgentArgs) -> anyhow::Result<ExitCode> {
    let format = args.events;
    let config = resolve(args)?;
    let events = Events::new();
    let renderer = render_events(&events, format);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let store = Store::open_dir(&config.data_dir)?;
    // One commit thread for every app on the device, so all commits share its batches.
    let (committer, committer_thread) = committer::spawn(store.clone(), config.outbox);
    let gpio = device_gpio();
    let app = match &config.app {
        Some(dir) => Some(App::start_on(
            outpost_manifest::load(&super::manifest_path(dir))?,
            AppOptions {
                data_dir: config.data_dir.clone(),
                outbox: config.outbox,
                clock: clock.clone(),
                board: None,
                gpio: gpio.clone(),
            },
            store.clone(),
            committer.clone(),
        )?),
        None => None,
    };
    let local_apps: Vec<AppVersion> = app
        .iter()
        .map(|a| AppVersion {
            name: a.manifest.app.name.clone(),
            version: a.manifest.app.version.clone(),
            previous: None,
            on_trial: false,
            last_update: None,
        })
        .collect();
    let (apps_tx, apps_rx) = watch::channel(local_apps.clone());
    let reporter: Reporter = {
        let events = events.clone();
        Arc::new(move |outcome| events.emit(report::outcome_event(outcome)))
    };
    let fleet = if config.fleet.groups.is_empty() {
        None
    } else {
        let parts = start_fleet(
            &config,
            &store,
            &committer,
            clock.clone(),
            gpio,
            reporter.clone(),
            apps_tx,
            local_apps,
            events.clone(),
        )?;
        Some(parts)
    };
    let status_topic = format!("{}/{}/status", config.mqtt.topic_prefix, config.device_id);
    let broker: BrokerUrl = config.mqtt.broker.parse()?;
    let mut mqtt = MqttConfig::new(broker, config.device_id.clone());
    mqtt.keep_alive = config.mqtt.keepalive;
    // A persistent session: commands for mqtt triggers queue at the broker while we are away.
    mqtt.clean_session = false;
    mqtt.username = config.mqtt.username.clone();
    mqtt.password = config.mqtt.password.clone();
    mqtt.ca_file = config.mqtt.ca_file.clone();
    mqtt.client_cert = config.mqtt.client_cert.clone();
    mqtt.client_key = config.mqtt.client_key.clone();
    mqtt.max_packet_bytes = config.mqtt.max_packet_bytes;
    mqtt.last_will = Some(LastWill {
        topic: status_topic,
        payload: status::offline(&config.device_id),
        qos: QoS::AtLeastOnce,
        retain: true,
    });
    let transport = RumqttcTransport::new(mqtt)?;
    let sync_config = SyncConfig {
        planner: Planner {
            device: config.device_id.clone(),
            prefix: config.mqtt.topic_prefix.clone(),
            format: config.sync.wire,
            max_events: config.sync.batch_max_events,
            max_packet_bytes: config.mqtt.max_packet_bytes,
        },
        window: config.sync.window,
        page_rows: 1024,
        reconnect_min: config.mqtt.reconnect_min,
        reconnect_max: config.mqtt.reconnect_max,
        status_every: config.sync.status_every,
        delete_every: Duration::from_millis(50),
        // Also delete as soon as this many rows are acknowledged: on a fast link 50 ms is tens of
        // thousands of rows, which fill redb's cache and fragment the heap (peak RSS 16 MiB
        // draining 100k events on loopback, 8 MiB with this bound, flat from 10k to 300k queued
        // events, for ~8% less drain throughput; `cargo bench -p outpost --bench sync`).
        delete_rows: 2048,
        rate_limit: (config.sync.rate_limit > 0).then_some(config.sync.rate_limit),
        apps: apps_rx,
    };
    let mut engine = SyncEngine::new(
        transport,
        store.clone(),
        sync_config,
        Some(committer.stats_handle()),
    )
    .with_events(events.clone());
    let (fleet_tasks, fleet_link) = match fleet {
        Some((supervisor, initial, updater, link)) => {
            (Some((supervisor, initial, updater)), Some(link))
        }
        None => (None, None),
    };
    if let Some(link) = fleet_link {
        engine = engine.with_fleet(link);
    }
    let wake = Arc::new(Notify::new());
    let inbox = app.as_ref().map(|a| {
        Inbox::new(
            &a.manifest,
            store.clone(),
            a.executor.clone(),
            MAX_INBOUND_BYTES,
        )
    });
    if let Some(inbox) = inbox.clone().filter(|i| !i.filters().is_empty()) {
        engine = engine.with_inbound(InboundRoute {
            inbox,
            wake: wake.clone(),
            clock: clock.clone(),
        });
    }
    events.emit(AgentEvent::Started {
        device: config.device_id.clone(),
        broker: config.mqtt.broker.clone(),
        data_dir: config.data_dir.display().to_string(),
    });
    let runtime = super::device_runtime()?;
    runtime.block_on(async {
        let (stop_tx, stop) = watch::channel(false);
        let scheduler = app.as_ref().map(|a| {
            let scheduler = Scheduler::new(
                a.executor.clone(),
                a.store.clone(),
                clock.clone(),
                reporter.clone(),
            );
            tokio::spawn(scheduler.run(a.triggers(), stop.clone()))
        });
        let dispatcher =
            inbox.map(|inbox| tokio::spawn(dispatch(inbox, wake, reporter.clone(), stop.clone())));
        let fleet_tasks = fleet_tasks.map(|(supervisor, initial, updater)| {
            [
                tokio::spawn(supervisor.run(initial, stop.clone())),
                tokio::spawn(updater.run(stop.clone())),
            ]
        });
        let engine = engine.run(stop.clone());
        tokio::pin!(engine);
        // Under systemd (Type=notify): ready once the app is loaded and its tasks run; the
        // watchdog is petted from this loop, so a wedged event loop gets the service restarted.
        if let Some(every) = systemd::watchdog_interval() {
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                loop {
                    tick.tick().await;
                    systemd::notify("WATCHDOG=1");
                }
            });
        }
        systemd::notify(&format!(
            "READY=1\nSTATUS=device {} -> {}",
            config.device_id, config.mqtt.broker
        ));
        tokio::select! {
            () = &mut engine => systemd::notify("STOPPING=1"),
            () = wait_for_signal() => {
                events.emit(AgentEvent::Stopping);
                systemd::notify("STOPPING=1");
                let _ = stop_tx.send(true);
                engine.await;
            }
        }
        let _ = stop_tx.send(true);
        for task in scheduler
            .into_iter()
            .chain(dispatcher)
            .chain(fleet_tasks.into_iter().flatten())
        {
            let _ = task.await;
        }
    });
    drop(runtime);
    if let Some(app) = app {
        app.shutdown();
    }
    drop(committer);
    committer_thread.join();
    events.emit(AgentEvent::Stopped);
    let _ = renderer.join();
    Ok(ExitCode::SUCCESS)
}

/// The fleet updater's parts, ready to run.
type FleetParts = (Supervisor, Vec<Command>, Updater, FleetLink);

/// Sets up fleet updates: trust store, state, the supervisor with the installed apps loaded,
/// and the updater with its link to the sync engine.
#[allow(clippy::too_many_arguments)]
fn start_fleet(
    config: &AgentConfig,
    store: &Store,
    committer: &Committer,
    clock: Arc<dyn Clock>,
    gpio: Option<Arc<dyn outpost_hal::GpioBoard>>,
    reporter: Reporter,
    apps: watch::Sender<Vec<AppVersion>>,
    local_apps: Vec<AppVersion>,
    events: Events,
) -> anyhow::Result<FleetParts> {
    let trust = fleet::load_trust(&config.fleet.trust)?;
    if trust.is_empty() {
        events.emit(AgentEvent::problem(
            "fleet",
            "no trusted publisher keys ([fleet] trust / --trust): every bundle will be refused",
        ));
    }
    let prefix = config.mqtt.topic_prefix.clone();
    let mut fleet_config = FleetConfig::new(
        config.device_id.clone(),
        prefix.clone(),
        config.fleet.groups.clone(),
        trust,
    );
    fleet_config.limits.max_bundle_bytes = config.fleet.max_bundle_bytes;
    fleet_config.window = config.fleet.chunk_window;
    fleet_config.stall_deadline = config.fleet.stall_deadline;
    fleet_config.events = events;
    fleet_config.health = HealthPolicy {
        trial_invocations: config.fleet.health_invocations,
        max_failures: config.fleet.health_max_failures,
    };
    let fleet_config = Arc::new(fleet_config);
    let state = FleetState::new(
        store.clone(),
        fleet::topics::reports(&prefix, &config.device_id),
    )
    .with_wake(committer.stats_handle());
    let board = device_board(clock.clone());
    let gpio = gpio.unwrap_or_else(|| Arc::new(outpost_hal::SimGpio::new()));
    let kv: Arc<dyn KvReader> = Arc::new(store.clone());
    let service_clock = clock.clone();
    let services: ServicesFactory = Arc::new(move |manifest| Services {
        kv: kv.clone(),
        sensors: board.clone(),
        clock: service_clock.clone(),
        variables: Arc::new(manifest.variables.clone()),
        gpio: gpio.clone(),
    });
    let supervisor = Supervisor::new(
        fleet_config.clone(),
        state.clone(),
        services.clone(),
        committer.clone(),
        clock.clone(),
        reporter,
        apps,
        local_apps,
    );
    let initial = supervisor.load_installed();
    let (updater, link) = Updater::new(
        fleet_config.clone(),
        state,
        services,
        supervisor.handle(),
        clock,
    );
    tracing::info!(
        "fleet: following groups {} with {} trusted key(s); {} installed app(s)",
        fleet_config.groups.join(", "),
        fleet_config.trust.keys().len(),
        initial.len()
    );
    Ok((supervisor, initial, updater, link))
}

/// The sensors fleet-installed apps read: the Linux board's, or none where there is no sysfs.
fn device_board(clock: Arc<dyn Clock>) -> Arc<dyn outpost_hal::SensorBoard> {
    #[cfg(target_os = "linux")]
    match outpost_hal::LinuxBoard::discover(std::path::Path::new("/")) {
        Ok(board) => return Arc::new(board),
        Err(error) => tracing::warn!(%error, "no Linux sensors; fleet apps will find none"),
    }
    match outpost_hal::sim::SimBoard::new(&[], std::path::Path::new("."), clock) {
        Ok(board) => Arc::new(board),
        Err(error) => unreachable!("an empty simulated board is valid: {error}"),
    }
}

/// Runs stored inbound messages, one at a time and in order, whenever woken (and once at start,
/// for rows a crash left behind).
async fn dispatch(
    inbox: Inbox,
    wake: Arc<Notify>,
    reporter: Reporter,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let worker = inbox.clone();
        match tokio::task::spawn_blocking(move || worker.dispatch_pending()).await {
            Ok(Ok(outcomes)) => outcomes.iter().for_each(|o| reporter(o)),
            Ok(Err(error)) => tracing::warn!(%error, "cannot read the inbox"),
            Err(error) => tracing::warn!(%error, "inbox dispatch failed"),
        }
        tokio::select! {
            () = wake.notified() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// systemd's service notifications (sd_notify(3)): one datagram per message to
/// `$NOTIFY_SOCKET`; nothing at all when not started by systemd. About 30 lines over std's
/// `UnixDatagram` instead of a crate: the protocol is a single `sendto`, no dependency needed.
mod systemd {
    use std::time::Duration;

    /// Sends `state` (e.g. `READY=1`) to the service manager, if there is one. Failures are
    /// logged, never fatal: a lost notification must not stop the agent.
    pub fn notify(state: &str) {
        let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
            return;
        };
        if let Err(error) = send(&socket, state) {
            tracing::warn!(%error, "cannot notify systemd ({state})");
        }
    }

    #[cfg(unix)]
    fn send(socket: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
        use std::os::unix::net::UnixDatagram;
        let datagram = UnixDatagram::unbound()?;
        // `@name` is a socket in the abstract namespace (Linux), anything else a path.
        #[cfg(target_os = "linux")]
        if let Some(name) = socket.as_encoded_bytes().strip_prefix(b"@") {
            use std::os::linux::net::SocketAddrExt;
            let address = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            return datagram.send_to_addr(state.as_bytes(), &address).map(drop);
        }
        datagram.send_to(state.as_bytes(), socket).map(drop)
    }

    #[cfg(not(unix))]
    fn send(_socket: &std::ffi::OsStr, _state: &str) -> std::io::Result<()> {
        Ok(())
    }

    /// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC`, if systemd watches this
    /// process (`$WATCHDOG_PID`, when set, must be ours).
    pub fn watchdog_interval() -> Option<Duration> {
        let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
        if let Ok(pid) = std::env::var("WATCHDOG_PID")
            && pid.parse::<u32>().ok()? != std::process::id()
        {
            return None;
        }
        (usec > 0).then(|| Duration::from_micros(usec / 2))
    }
}
