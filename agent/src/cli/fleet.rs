//! `outpost fleet`: the operator's view of devices through the broker.

use std::collections::{BTreeMap, HashMap};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use outpost::sync::wire;
use outpost_hal::mqtt::{
    Acknowledge, BrokerUrl, Client, Connection, Event, EventPayload, MqttConfig, QoS,
    RumqttcTransport, Transport,
};
use serde_json::Value;

/// `outpost fleet ...`
#[derive(clap::Subcommand)]
pub enum FleetCommand {
    /// Print events as they arrive, decoded and de-duplicated.
    Tail {
        /// Broker URL.
        #[arg(long)]
        broker: String,
        /// Only this device.
        #[arg(long)]
        device: Option<String>,
        /// Only this stream.
        #[arg(long)]
        stream: Option<String>,
        /// Topic prefix.
        #[arg(long, default_value = "outpost")]
        topic_prefix: String,
        /// Exit after this many distinct events.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Publish a signed bundle to a fleet group or one device: its chunks, then its
    /// announcement (retained); then clear the chunks of the version it replaces.
    Publish {
        /// The bundle file (from `outpost bundle build`).
        file: std::path::PathBuf,
        /// Broker URL.
        #[arg(long)]
        broker: String,
        /// Who it is offered to.
        #[command(flatten)]
        target: TargetArgs,
        /// Topic prefix.
        #[arg(long, default_value = "outpost")]
        topic_prefix: String,
        /// Bytes per chunk (256 B to 512 KiB); smaller chunks waste less on a cut link.
        #[arg(long, default_value_t = 32 * 1024)]
        chunk_size: u32,
        /// Publish even if devices would refuse the bundle (damaged, not runnable) or its version
        /// is not above the current offer (to test devices, or to take a release back).
        #[arg(long)]
        force: bool,
    },
    /// Send a command to an app on one device or on every device of a group (its `mqtt`
    /// triggers on `{commands}/…` receive it).
    Send {
        /// The app the command is for.
        app: String,
        /// The command's subtopic (`led`, `led/blink`), below the app's command topic.
        subtopic: String,
        /// The payload, as given.
        payload: String,
        /// Where the command goes.
        #[command(flatten)]
        target: TargetArgs,
        /// Broker URL.
        #[arg(long)]
        broker: String,
        /// Topic prefix.
        #[arg(long, default_value = "outpost")]
        topic_prefix: String,
    },
    /// List what a fleet group or one device is offered (from the retained announcements).
    List {
        /// Broker URL.
        #[arg(long)]
        broker: String,
        /// Whose offers.
        #[command(flatten)]
        target: TargetArgs,
        /// Topic prefix.
        #[arg(long, default_value = "outpost")]
        topic_prefix: String,
        /// One JSON document instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Withdraw an app's offer from a fleet group or one device: clear its retained
    /// announcement and chunks. Devices keep running what they installed.
    Withdraw {
        /// The app.
        app: String,
        /// Broker URL.
        #[arg(long)]
        broker: String,
        /// Whose offer.
        #[command(flatten)]
        target: TargetArgs,
        /// Topic prefix.
        #[arg(long, default_value = "outpost")]
        topic_prefix: String,
    },
    /// Print a table of devices from their retained status.
    Status {
        /// Broker URL.
        #[arg(long)]
        broker: String,
        /// Topic prefix.
        #[arg(long, default_value = "outpost")]
        topic_prefix: String,
    },
}

/// Runs an `outpost fleet` command.
pub fn run(command: FleetCommand) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match command {
        FleetCommand::Tail {
            broker,
            device,
            stream,
            topic_prefix,
            count,
        } => {
            let filter = format!(
                "{topic_prefix}/{}/events/{}",
                device.as_deref().unwrap_or("+"),
                stream.as_deref().unwrap_or("#")
            );
            runtime.block_on(tail(&broker, &filter, count))
        }
        FleetCommand::Publish {
            file,
            broker,
            target,
            topic_prefix,
            chunk_size,
            force,
        } => runtime.block_on(publish::publish(
            &file,
            &broker,
            &target.target()?,
            &topic_prefix,
            chunk_size,
            force,
        )),
        FleetCommand::Send {
            app,
            subtopic,
            payload,
            target,
            broker,
            topic_prefix,
        } => {
            let topic = send::command_topic(&topic_prefix, &target.target()?, &app, &subtopic)?;
            runtime.block_on(send::send(
                transport(&broker)?,
                &broker,
                &topic,
                payload.as_bytes(),
            ))
        }
        FleetCommand::List {
            broker,
            target,
            topic_prefix,
            json,
        } => runtime.block_on(offers::list(
            &broker,
            &topic_prefix,
            &target.target()?,
            json,
        )),
        FleetCommand::Withdraw {
            app,
            broker,
            target,
            topic_prefix,
        } => runtime.block_on(offers::withdraw(
            &broker,
            &topic_prefix,
            &target.target()?,
            &app,
        )),
        FleetCommand::Status {
            broker,
            topic_prefix,
        } => runtime.block_on(status(&broker, &format!("{topic_prefix}/+/status"))),
    }
}

#[path = "fleet_publish.rs"]
mod publish;
#[path = "fleet_send.rs"]
mod send;

#[path = "fleet_offers.rs"]
mod offers;
use offers::TargetArgs;

fn transport(broker: &str) -> anyhow::Result<RumqttcTransport> {
    let url: BrokerUrl = broker.parse()?;
    let mut config = MqttConfig::new(url, format!("outpost-fleet-{:08x}", fastrand::u32(..)));
    config.clean_session = true;
    config.max_packet_bytes = 1 << 20;
    Ok(RumqttcTransport::new(config)?)
}

async fn tail(broker: &str, filter: &str, count: Option<u64>) -> anyhow::Result<ExitCode> {
    let mut transport = transport(broker)?;
    // Highest seq printed per (device, incarnation, stream): devices re-send after
    // reconnects, and first arrivals per stream only grow, so anything at or below it is a
    // duplicate. A store that was reset starts a new incarnation, whose seqs start again.
    let mut highest: HashMap<(String, String, String), u64> = HashMap::new();
    let mut printed = 0u64;
    loop {
        let (mut client, mut connection) = match transport.connect().await {
            Ok(pair) => pair,
            Err(error) => {
                eprintln!("fleet tail: {error}; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .map_err(|e| anyhow::anyhow!("subscribe: {e:?}"))?;
        loop {
            let (id, payload) = match connection.next().await {
                Ok(event) => match event.payload() {
                    EventPayload::Received { id, data, .. } => (id, data.to_vec()),
                    EventPayload::Disconnected => break,
                    _ => continue,
                },
                Err(_) => break,
            };
            let _ = client.ack(id).await;
            for seen in wire::decode(&payload) {
                let key = seen.stream_key();
                if highest.get(&key).is_some_and(|h| *h >= seen.seq) {
                    continue;
                }
                highest.insert(key, seen.seq);
                println!(
                    "{} {} {} #{} {}",
                    outpost::report::clock_time(seen.time),
                    seen.device,
                    seen.stream,
                    seen.seq,
                    outpost::report::preview(&seen.data)
                );
                printed += 1;
                if count.is_some_and(|c| printed >= c) {
                    return Ok(ExitCode::SUCCESS);
                }
            }
        }
    }
}

async fn status(broker: &str, filter: &str) -> anyhow::Result<ExitCode> {
    let mut transport = transport(broker)?;
    let (mut client, mut connection) = transport.connect().await?;
    client
        .subscribe(filter, QoS::AtLeastOnce)
        .await
        .map_err(|e| anyhow::anyhow!("subscribe: {e:?}"))?;
    let mut devices: BTreeMap<String, Value> = BTreeMap::new();
    // Retained messages arrive right after the subscription; a short quiet spell ends the list.
    loop {
        let next = tokio::time::timeout(Duration::from_millis(700), connection.next()).await;
        let Ok(Ok(event)) = next else { break };
        if let EventPayload::Received { id, data, .. } = event.payload() {
            let _ = client.ack(id).await;
            if let Ok(value) = serde_json::from_slice::<Value>(data)
                && let Some(device) = value.get("device").and_then(Value::as_str)
            {
                devices.insert(device.to_string(), value);
            }
        }
    }
    println!(
        "{:<20} {:<7} {:<8} {:>8} {:>8} {:<28} LAST ERROR",
        "DEVICE", "ONLINE", "AGENT", "OUTBOX", "DROPPED", "APPS"
    );
    for (device, s) in &devices {
        let num = |path: [&str; 2]| {
            s.get(path[0])
                .and_then(|v| v.get(path[1]))
                .and_then(Value::as_u64)
                .unwrap_or(0)
        };
        let apps: Vec<String> = s
            .get("apps")
            .and_then(Value::as_array)
            .map(|apps| {
                apps.iter()
                    .map(|a| {
                        format!(
                            "{}@{}{}",
                            a["name"].as_str().unwrap_or("?"),
                            a["version"].as_str().unwrap_or("?"),
                            if a["on_trial"].as_bool() == Some(true) {
                                "(trial)"
                            } else {
                                ""
                            }
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        println!(
            "{:<20} {:<7} {:<8} {:>8} {:>8} {:<28} {}",
            device,
            if s.get("online").and_then(Value::as_bool).unwrap_or(false) {
                "yes"
            } else {
                "no"
            },
            s.get("agent_version")
                .and_then(Value::as_str)
                .unwrap_or("?"),
            num(["outbox", "records"]),
            num(["dropped", "records"]),
            apps.join(","),
            s.get("last_error").and_then(Value::as_str).unwrap_or("-"),
        );
        for app in s
            .get("apps")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(update) = app.get("last_update").and_then(Value::as_str) {
                println!("{:<20} last {update}", "");
            }
        }
    }
    if devices.is_empty() {
        println!("(no device has published a status under {filter})");
    }
    Ok(ExitCode::SUCCESS)
}
