//! `outpost fleet`: the operator's view of devices through the broker.

use std::process::ExitCode;

use anyhow::Context;
use outpost_hal::mqtt::{RumqttcTransport, Transport};

use super::broker_args::{Broker, BrokerArgs, hint};

/// `outpost fleet ...`
#[derive(clap::Subcommand)]
pub enum FleetCommand {
    /// Print events as they arrive, decoded and de-duplicated.
    Tail {
        #[command(flatten)]
        broker: BrokerArgs,
        /// Only this device.
        #[arg(long)]
        device: Option<String>,
        /// Only this stream.
        #[arg(long)]
        stream: Option<String>,
        /// Exit after this many distinct events.
        #[arg(long)]
        count: Option<u64>,
        /// One JSON object per event and line, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Publish a signed bundle to a fleet group or one device: its chunks, then its
    /// announcement (retained); then clear the chunks of the version it replaces.
    Publish {
        /// The bundle file (from `outpost bundle build`).
        file: std::path::PathBuf,
        #[command(flatten)]
        broker: BrokerArgs,
        /// Who it is offered to.
        #[command(flatten)]
        target: TargetArgs,
        /// Bytes per chunk (256 B to 512 KiB); smaller chunks waste less on a cut link.
        #[arg(long, default_value_t = 32 * 1024)]
        chunk_size: u32,
        /// Publish even if devices would refuse the bundle (damaged, not runnable) or its version
        /// is not above the current offer (to test devices, or to take a release back).
        #[arg(long)]
        force: bool,
        /// The publisher key that signs the release metadata (targets, chunk list, expiry);
        /// devices must trust it. Default: `$OUTPOST_KEY`.
        #[arg(long)]
        key: Option<std::path::PathBuf>,
        /// How long devices act on this release (`30d`, `12h`); after that a device that has
        /// not installed it refuses it as expired (publish again to renew).
        #[arg(long, default_value = "30d", value_parser = humantime::parse_duration)]
        expires: std::time::Duration,
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
        #[command(flatten)]
        broker: BrokerArgs,
    },
    /// List what a fleet group or one device is offered (from the retained announcements).
    List {
        #[command(flatten)]
        broker: BrokerArgs,
        /// Whose offers.
        #[command(flatten)]
        target: TargetArgs,
        /// One JSON document instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Withdraw an app's offer from a fleet group or one device: clear its retained
    /// announcement and chunks. Devices keep running what they installed.
    Withdraw {
        /// The app.
        app: String,
        #[command(flatten)]
        broker: BrokerArgs,
        /// Whose offer.
        #[command(flatten)]
        target: TargetArgs,
    },
    /// The root's side of scoped publisher keys: sign a trust document, publish it.
    #[command(subcommand)]
    Trust(trust::TrustCommand),
    /// Print a table of devices from their retained status, or one device's status and the
    /// update reports that arrive while it listens.
    Status(status::StatusArgs),
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
            count,
            json,
        } => {
            let broker = broker.resolve("tail")?;
            let filter = format!(
                "{}/{}/events/{}",
                broker.prefix,
                device.as_deref().unwrap_or("+"),
                stream.as_deref().unwrap_or("#")
            );
            runtime.block_on(tail::tail(&broker, &filter, count, json))
        }
        FleetCommand::Publish {
            file,
            broker,
            target,
            chunk_size,
            force,
            key,
            expires,
        } => {
            let target = target.target()?;
            let broker = broker.resolve("publish")?;
            let signer = publish::Signer::load(key, expires)?;
            runtime.block_on(publish::publish(
                &file,
                &broker,
                &target,
                &broker.prefix,
                chunk_size,
                force,
                &signer,
            ))
        }
        FleetCommand::Send {
            app,
            subtopic,
            payload,
            target,
            broker,
        } => {
            let broker = broker.resolve("send")?;
            let topic = send::command_topic(&broker.prefix, &target.target()?, &app, &subtopic)?;
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
            json,
        } => {
            let target = target.target()?;
            let broker = broker.resolve("list")?;
            runtime.block_on(offers::list(&broker, &broker.prefix, &target, json))
        }
        FleetCommand::Withdraw {
            app,
            broker,
            target,
        } => {
            let target = target.target()?;
            let broker = broker.resolve("withdraw")?;
            runtime.block_on(offers::withdraw(&broker, &broker.prefix, &target, &app))
        }
        FleetCommand::Status(args) => runtime.block_on(status::run(args)),
        FleetCommand::Trust(command) => trust::run(command, &runtime),
    }
}

#[path = "fleet_publish.rs"]
mod publish;
#[path = "fleet_send.rs"]
mod send;

#[path = "fleet_offers.rs"]
mod offers;
use offers::TargetArgs;

#[path = "fleet_status.rs"]
mod status;
#[path = "fleet_tail.rs"]
mod tail;
#[path = "fleet_trust.rs"]
mod trust;

/// A transport for `broker`, its settings checked.
fn transport(broker: &Broker) -> anyhow::Result<RumqttcTransport> {
    broker.transport()
}

/// The first session with `broker`: a failure is the end of the command, worded with its fix
/// (a wrong password or CA does not get better by retrying).
async fn connect(
    transport: &mut RumqttcTransport,
    broker: &Broker,
) -> anyhow::Result<(
    outpost_hal::mqtt::RumqttcClient,
    outpost_hal::mqtt::RumqttcConnection,
)> {
    transport
        .connect()
        .await
        .map_err(|error| anyhow::anyhow!("connecting to {broker}: {}", hint(&error)))
}
