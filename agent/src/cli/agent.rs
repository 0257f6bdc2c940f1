//! `outpost agent`: the device daemon — the app's triggers, the inbox for `mqtt` triggers, and
//! the sync engine draining the outbox to the broker — until SIGTERM or Ctrl-C.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use outpost::config::{self, AgentConfig};
use outpost::device::Device;
use outpost::events::{AgentEvent, Events};
use outpost::store::{FullPolicy, Verifier};
use outpost::sync::wire::WireFormat;
use outpost_hal::mqtt::{Protocol, TransportError};

use super::systemd;

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
    /// Most inbound messages waiting in the inbox (past it they are refused and counted).
    #[arg(long)]
    inbox_max_records: Option<u64>,
    /// Most stored bytes waiting in the inbox.
    #[arg(long)]
    inbox_max_bytes: Option<u64>,
    /// Largest MQTT packet sent; records that could not fit are refused at commit.
    #[arg(long)]
    max_packet_bytes: Option<usize>,
    /// drop-oldest or reject-new.
    #[arg(long)]
    outbox_full: Option<FullPolicy>,
    /// When commits reach the disk: immediate, or a window such as 1s (a power cut loses at
    /// most the window).
    #[arg(long)]
    durability: Option<outpost::store::Durability>,
    /// Longest a journaled commit waits for its checkpoint into the state file, e.g. 5m.
    #[arg(long, value_parser = humantime::parse_duration)]
    checkpoint_every: Option<Duration>,
    /// Disk quota of the state file in bytes (0 = none); the outbox's full-policy acts there.
    #[arg(long)]
    max_state_bytes: Option<u64>,
    /// Least time between two status checks, e.g. 30s: the status is published only when it
    /// changed, at most once per this.
    #[arg(long, value_parser = humantime::parse_duration)]
    status_every: Option<Duration>,
    /// Most events per message.
    #[arg(long)]
    batch_max_events: Option<usize>,
    /// Most payload bytes awaiting PUBACK (memory the transport holds).
    #[arg(long)]
    window_bytes: Option<usize>,
    /// json or postcard.
    #[arg(long)]
    wire: Option<WireFormat>,
    /// Payload bytes per second (0 = unlimited).
    #[arg(long)]
    rate_limit: Option<u64>,
    /// MQTT protocol: `5` (default; falls back to 3.1.1 if the broker refuses it) or `3.1.1`.
    #[arg(long, value_name = "5|3.1.1", value_parser = parse_protocol)]
    mqtt_protocol: Option<Protocol>,
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
    /// A pinned root public key file or directory (repeatable; adds to agent.toml's `[fleet]
    /// trust_root`): publisher keys then come only from a root-signed trust document.
    #[arg(long = "trust-root", value_name = "ROOT.pub")]
    trust_root: Vec<PathBuf>,
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
    /// Longest wait for a synchronised wall clock before cron triggers run, e.g. 5m; 0s: do
    /// not wait (agent.toml: `[clock] cron_sync_wait`, `cron_waits_for_sync`).
    #[arg(long, value_parser = humantime::parse_duration)]
    cron_sync_wait: Option<Duration>,
    /// Run apps on the simulated boards their manifests describe instead of this board's
    /// sensors and GPIO (as `outpost up` does; agent.toml: `[board] simulate = true`).
    #[arg(long)]
    simulate: bool,
    /// How events are printed on stdout: `text` (a line each, for people and journald; routine
    /// ones such as `sync: drained` only with -v) or `json` (every event, one JSON object per
    /// line, for scripts and tests).
    #[arg(long, value_enum, default_value_t = EventFormat::Text)]
    events: EventFormat,
}

/// `--mqtt-protocol`'s value.
fn parse_protocol(text: &str) -> Result<Protocol, String> {
    text.parse()
        .map_err(|error: TransportError| error.to_string())
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
    let show_routine = super::logging::debug_enabled();
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
                // Routine lines only with -v: journald keeps what a person must act on.
                EventFormat::Text if event.is_routine() && !show_routine => continue,
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

fn resolve(args: AgentArgs) -> anyhow::Result<AgentConfig> {
    let mut config = match &args.config {
        Some(path) => config::load(path)?,
        None => AgentConfig::new(
            args.device_id
                .clone()
                .context("--device-id is required without --config")?,
            args.broker
                .clone()
                .context("--broker is required without --config")?,
        ),
    };
    macro_rules! set {
        ($($flag:ident => $($field:ident).+),* $(,)?) => {$(
            if let Some(value) = args.$flag { config.$($field).+ = value; }
        )*};
    }
    set!(device_id => device_id, broker => mqtt.broker, data => data_dir, topic_prefix => mqtt.topic_prefix,
        outbox_max_records => outbox.max_records, outbox_max_bytes => outbox.max_bytes, outbox_full => outbox.policy, durability => outbox.durability,
        checkpoint_every => outbox.checkpoint_every,
        inbox_max_records => inbox.max_records, inbox_max_bytes => inbox.max_bytes, max_packet_bytes => mqtt.max_packet_bytes,
        status_every => sync.status_every, batch_max_events => sync.batch_max_events, wire => sync.wire,
        window_bytes => sync.window_bytes,
        rate_limit => sync.rate_limit, mqtt_protocol => mqtt.protocol, reconnect_min => mqtt.reconnect_min, reconnect_max => mqtt.reconnect_max,
        health_invocations => fleet.health_invocations, health_max_failures => fleet.health_max_failures,
        stall_deadline => fleet.stall_deadline, chunk_window => fleet.chunk_window);
    if args.max_state_bytes.is_some() {
        config.max_state_bytes = args.max_state_bytes;
    }
    config.fleet.trust.extend(args.trust);
    config.fleet.trust_root.extend(args.trust_root);
    for group in args.groups {
        if !config.fleet.groups.contains(&group) {
            config.fleet.groups.push(group);
        }
    }
    if args.app.is_some() {
        config.app = args.app;
    }
    config.board.simulate |= args.simulate;
    if let Some(wait) = args.cron_sync_wait {
        config.clock.cron_waits_for_sync = !wait.is_zero();
        config.clock.cron_sync_wait = wait;
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
    let format = args.events;
    // Everything the agent creates outside the package (the data dir, state.redb and its side
    // files, salvage dumps, the control socket) is its own: 0700 directories, 0600 files,
    // whoever runs it and whatever the caller's umask (the unit sets UMask=0077 too).
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let config = resolve(args)?;
    let runtime = super::device_runtime()?;
    let shutdown = super::listen_for_stop(&runtime)?;
    let events = Events::new();
    let renderer = render_events(&events, format);
    // The state file is checked in a child process of this executable (`outpost state
    // verify`): redb can panic on a damaged page, and a release build aborts on panic.
    let device = Device::assemble_with(config, events, &Verifier::this_executable())?;
    let status = format!(
        "STATUS=device {} -> {}",
        device.config().device_id,
        device.config().mqtt.broker
    );
    let stopped = runtime.block_on(async {
        // Under systemd (Type=notify): ready once the app is loaded and its tasks run; the
        // watchdog is petted from this loop, so a wedged event loop gets the service restarted.
        if let Some(every) = systemd::watchdog_interval() {
            let stop_file = systemd::test_watchdog_stop_file();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                loop {
                    tick.tick().await;
                    if systemd::test_watchdog_stop_requested(stop_file.as_deref()) {
                        tracing::warn!(
                            "test hook OUTPOST_TEST_WATCHDOG_STOP: watchdog pings stopped"
                        );
                        break;
                    }
                    systemd::notify("WATCHDOG=1");
                }
            });
        }
        systemd::notify(&format!("READY=1\n{status}"));
        let stopped = device.run(shutdown).await;
        systemd::notify("STOPPING=1");
        stopped
    });
    drop(runtime);
    let restart = stopped.needs_restart();
    stopped.join();
    let _ = renderer.join();
    // EX_TEMPFAIL: systemd's Restart=on-failure starts the agent again, and the start-up
    // check replaces the damaged state file.
    Ok(if restart {
        ExitCode::from(75)
    } else {
        ExitCode::SUCCESS
    })
}
