//! `outpost fleet list` and `outpost fleet withdraw`: what a group or device is offered, read
//! from the broker's retained announcements, and taking an offer back. Also the one reader of
//! retained announcements, which `fleet publish` uses to find the offer it replaces.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use outpost::fleet::offer::Offer;
use outpost::fleet::topics::{self, Target};
use outpost_hal::mqtt::{
    Acknowledge, Client, Connection, Event as _, EventPayload, QoS, TransportError,
};
use serde_json::json;

/// Who a fleet offer is for: one group (`--group G`) or one device (`--device D`, its own
/// target `{prefix}/fleet/@D/...`, which it takes whatever its groups).
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
pub struct TargetArgs {
    /// A fleet group: every device following it.
    #[arg(long)]
    group: Option<String>,
    /// One device (by its device id), for a quick laptop-to-test-board loop.
    #[arg(long)]
    device: Option<String>,
}

impl TargetArgs {
    /// The target, its name checked like agent.toml's.
    pub fn target(&self) -> anyhow::Result<Target> {
        let (flag, target) = match (&self.group, &self.device) {
            (Some(group), _) => ("--group", Target::Group(group.clone())),
            (None, Some(device)) => ("--device", Target::Device(device.clone())),
            (None, None) => anyhow::bail!("--group or --device is required"),
        };
        anyhow::ensure!(
            topics::valid_name(target.name()),
            "{flag} '{}' must be 1-64 characters of A-Z a-z 0-9 - _",
            target.name()
        );
        Ok(target)
    }
}

/// How long after the SUBACK (or the last retained message) the list is taken as complete:
/// brokers send retained messages right around the SUBACK, so a short quiet spell ends them.
const QUIET: Duration = Duration::from_millis(500);

/// Retained messages on `filter` as `(topic, payload)`. Subscribes on a session of its own and
/// collects until [`QUIET`] passes without a message after the SUBACK, or, with `one`, until
/// the first message (a filter without wildcards matches one retained message at most). Empty
/// payloads (cleared offers) are skipped.
pub async fn retained(
    broker: &super::Broker,
    filter: &str,
    one: bool,
) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut transport = super::transport(broker)?;
    let (mut client, mut connection) = super::connect(&mut transport, broker).await?;
    let subscription = client
        .subscribe(filter, QoS::AtLeastOnce)
        .await
        .map_err(|e| anyhow::anyhow!("subscribing to {filter}: {e}"))?;
    let mut messages = Vec::new();
    let mut subscribed = false;
    loop {
        // Before the SUBACK there is no quiet spell to wait for: the session's own timeouts
        // end a broker that never answers.
        let event = if subscribed {
            match tokio::time::timeout(QUIET, connection.next()).await {
                Ok(event) => event,
                Err(_) => break,
            }
        } else {
            connection.next().await
        };
        let event = event.map_err(|e| anyhow::anyhow!("connection to {broker} failed: {e}"))?;
        match event.payload() {
            EventPayload::Subscribed(id) if id == subscription => subscribed = true,
            EventPayload::Error(TransportError::SubscriptionRefused(id)) if *id == subscription => {
                bail!("{broker} refused the subscription to {filter} (not allowed for this login?)")
            }
            EventPayload::Received {
                id, topic, data, ..
            } => {
                let _ = client.ack(id).await;
                if let Some(topic) = topic
                    && !data.is_empty()
                {
                    messages.push((topic.to_string(), data.to_vec()));
                    if one {
                        break;
                    }
                }
            }
            EventPayload::Disconnected => bail!("{broker} closed the connection"),
            _ => {}
        }
    }
    Ok(messages)
}

/// The offer of `app` to `target` on the broker now, if any. One that does not decode is
/// reported and taken as none (its chunks cannot be known).
pub async fn current_offer(
    broker: &super::Broker,
    prefix: &str,
    target: &Target,
    app: &str,
) -> anyhow::Result<Option<Offer>> {
    let topic = topics::announcement(prefix, target, app);
    let found = retained(broker, &topic, true).await?;
    Ok(found
        .into_iter()
        .find(|(t, _)| *t == topic)
        .and_then(|(t, data)| match Offer::decode(prefix, &t, &data) {
            Ok(offer) => Some(offer),
            Err(error) => {
                eprintln!("warning: the current offer does not decode: {error}");
                None
            }
        }))
}

/// `outpost fleet list`: every app `target` is offered, as a table or JSON.
pub async fn list(
    broker: &super::Broker,
    prefix: &str,
    target: &Target,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let filter = topics::announcements(prefix, target);
    let mut offers = Vec::new();
    let mut problems = Vec::new();
    for (topic, data) in retained(broker, &filter, false).await? {
        match Offer::decode(prefix, &topic, &data) {
            Ok(offer) => offers.push(offer),
            Err(error) => problems.push(error.to_string()),
        }
    }
    offers.sort_by(|a, b| a.app.cmp(&b.app));
    if json {
        let offers: Vec<_> = offers
            .iter()
            .map(|o| {
                json!({
                    "target": o.target.to_string(),
                    "app": o.app,
                    "version": o.version.to_string(),
                    "bundle_bytes": o.bundle_len,
                    "sha256": o.digest.to_string(),
                    "chunks": o.chunks,
                    "created_ms": o.created_ms,
                    "created": date_time(o.created_ms),
                    "signer": o.key_id.to_string(),
                })
            })
            .collect();
        let document = json!({
            "target": target.to_string(),
            "offers": offers,
            "unreadable": problems,
        });
        println!("{document}");
        return Ok(ExitCode::SUCCESS);
    }
    for problem in &problems {
        eprintln!("warning: {problem}");
    }
    if offers.is_empty() {
        println!(
            "{} is offered nothing (no retained announcement under {filter})",
            target.describe()
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<24} {:<14} {:>10} {:<16} {:<20} SIGNER",
        "APP", "VERSION", "BYTES", "SHA256", "BUILT (UTC)"
    );
    for o in &offers {
        println!(
            "{:<24} {:<14} {:>10} {:<16} {:<20} {}",
            o.app,
            o.version.to_string(),
            o.bundle_len,
            o.digest.short(),
            date_time(o.created_ms),
            o.key_id
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `2026-11-26 16:28:47Z` (UTC) for ms since the epoch.
fn date_time(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// `outpost fleet withdraw`: clears the offer of `app` to `target` (its announcement, then its
/// chunks). Devices keep running what they installed; a download of it in progress stops.
pub async fn withdraw(
    broker: &super::Broker,
    prefix: &str,
    target: &Target,
    app: &str,
) -> anyhow::Result<ExitCode> {
    let topic = topics::announcement(prefix, target, app);
    let Some((_, data)) = retained(broker, &topic, true).await?.into_iter().next() else {
        bail!(
            "{} is not offered {app} (no retained announcement on {topic}); `outpost fleet list` shows what it is offered",
            target.describe()
        );
    };
    let offer = Offer::decode(prefix, &topic, &data);
    let mut transport = super::transport(broker)?;
    let (mut client, mut connection) = super::connect(&mut transport, broker).await?;
    // The announcement first, so no device starts fetching chunks that are about to go.
    super::publish::send_retained(
        &mut client,
        &mut connection,
        broker,
        &[(topic.clone(), &[][..])],
        |_| {},
    )
    .await
    .context("clearing the announcement")?;
    match offer {
        Ok(offer) => {
            let cleared =
                super::publish::clear_chunks(&mut client, &mut connection, broker, prefix, &offer)
                    .await?;
            println!(
                "withdrew {app} {} from {}: cleared its announcement and {cleared} chunks; devices keep running what they installed",
                offer.version,
                target.describe()
            );
        }
        Err(error) => {
            eprintln!("warning: {error}; its chunks (if any) are left on the broker");
            println!(
                "withdrew {app} from {}: cleared its announcement",
                target.describe()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
