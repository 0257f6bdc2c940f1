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
    /// Publish a signed bundle to a fleet group: its chunks, then its announcement (retained).
    Publish {
        /// The bundle file (from `outpost bundle build`).
        file: std::path::PathBuf,
        #[command(flatten)]
        broker: BrokerArgs,
        /// The fleet group to publish to.
        #[arg(long)]
        group: String,
        /// Bytes per chunk (256 B to 512 KiB); smaller chunks waste less on a cut link.
        #[arg(long, default_value_t = 32 * 1024)]
        chunk_size: u32,
        /// Publish even if the bundle is damaged (to test how devices refuse it).
        #[arg(long)]
        force: bool,
    },
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
            group,
            chunk_size,
            force,
        } => {
            let broker = broker.resolve("publish")?;
            runtime.block_on(publish::publish(
                &file,
                &broker,
                &group,
                &broker.prefix,
                chunk_size,
                force,
            ))
        }
        FleetCommand::Status(args) => runtime.block_on(status::run(args)),
    }
}

#[path = "fleet_publish.rs"]
mod publish;

#[path = "fleet_status.rs"]
mod status;
#[path = "fleet_tail.rs"]
mod tail;

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
