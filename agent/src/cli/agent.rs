//! `outpost agent`: the device daemon — the app's triggers, the inbox for `mqtt` triggers, and
//! the sync engine draining the outbox to the broker — until SIGTERM or Ctrl-C.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use outpost::app::{App, AppOptions};
use outpost::config::{self, AgentConfig, MqttSettings, SyncSettings};
use outpost::inbox::Inbox;
use outpost::report;
use outpost::scheduler::{Reporter, Scheduler};
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
        rate_limit => sync.rate_limit, reconnect_min => mqtt.reconnect_min, reconnect_max => mqtt.reconnect_max);
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

/// Runs `outpost agent`.
pub fn run(args: AgentArgs) -> anyhow::Result<ExitCode> {
    let config = resolve(args)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let app = match &config.app {
        Some(dir) => Some(App::start(
            &super::manifest_path(dir),
            AppOptions {
                data_dir: config.data_dir.clone(),
                outbox: config.outbox,
                clock: clock.clone(),
                board: None,
            },
        )?),
        None => None,
    };
    let store = match &app {
        Some(app) => app.store.clone(),
        None => Store::open_dir(&config.data_dir)?,
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
        apps: app
            .iter()
            .map(|a| AppVersion {
                name: a.manifest.app.name.clone(),
                version: a.manifest.app.version.clone(),
            })
            .collect(),
    };
    let mut engine = SyncEngine::new(
        transport,
        store.clone(),
        sync_config,
        app.as_ref().map(|a| a.executor.commit_stats()),
    );
    let reporter: Reporter = Arc::new(|outcome| println!("{}", report::outcome_line(outcome)));
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
    println!(
        "outpost agent: device {} -> {} (state in {})",
        config.device_id,
        config.mqtt.broker,
        config.data_dir.display()
    );
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
                println!("outpost agent: stopping");
                systemd::notify("STOPPING=1");
                let _ = stop_tx.send(true);
                engine.await;
            }
        }
        let _ = stop_tx.send(true);
        for task in scheduler.into_iter().chain(dispatcher) {
            let _ = task.await;
        }
    });
    drop(runtime);
    if let Some(app) = app {
        app.shutdown();
    }
    println!("outpost agent: stopped");
    Ok(ExitCode::SUCCESS)
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
