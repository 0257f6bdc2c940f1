//! `outpost fleet publish`: checks the bundle as every device would, reads the target's current
//! offer of the app and refuses a version not above it (unless `--force`), sends the bundle's
//! chunks and then its announcement, all retained at QoS 1 (devices that are offline now fetch
//! it whenever they come back), and finally clears the replaced bundle's chunks.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use outpost::fleet::offer::{self, Offer};
use outpost::fleet::topics::{self, Target};
use outpost_bundle::{Announcement, ChunkPlan, Limits, ReleaseInput, SecretKey, SignedRelease};
use outpost_hal::mqtt::{
    Acknowledge, Connection, Event as _, EventPayload, Publish, QoS, RumqttcClient,
    RumqttcConnection, TransportError,
};

/// Messages awaiting PUBACK at once. Below the transport's request queue (10): publishes queue
/// until the connection half is polled, and it is only polled between batches here.
const WINDOW: usize = 8;

/// The publisher key and expiry that sign a release.
pub struct Signer {
    key: SecretKey,
    expires: Duration,
}

impl Signer {
    /// The key at `path` (or `$OUTPOST_KEY`), signing releases valid for `expires`.
    pub fn load(path: Option<PathBuf>, expires: Duration) -> anyhow::Result<Signer> {
        let Some(path) = path.or_else(|| std::env::var_os("OUTPOST_KEY").map(PathBuf::from)) else {
            bail!(
                "fleet publish signs the release (targets, chunk list, expiry): give the publisher key with --key FILE (or OUTPOST_KEY)"
            );
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("{}: cannot read the publisher key", path.display()))?;
        let key = SecretKey::parse(&text).with_context(|| format!("{}", path.display()))?;
        if expires.is_zero() {
            bail!("--expires must be above zero");
        }
        Ok(Signer { key, expires })
    }

    /// Signs the release of `inspected` (cut into `chunks`) for `target`.
    fn sign(
        &self,
        inspected: &outpost_bundle::InspectedBundle,
        chunks: ChunkPlan,
        target: &Target,
    ) -> anyhow::Result<SignedRelease> {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .context("the clock is before 1970")?
            .as_millis() as i64;
        let (groups, devices) = match target {
            Target::Group(group) => (vec![group.clone()], Vec::new()),
            Target::Device(device) => (Vec::new(), vec![device.clone()]),
        };
        let input = ReleaseInput {
            groups,
            devices,
            header_digest: outpost_bundle::sha256(&inspected.header_bytes),
            chunks,
            created_ms: now_ms,
            expires_ms: now_ms.saturating_add(self.expires.as_millis() as i64),
            // Milliseconds since the epoch: increases with every publish without any state
            // on the operator's machine.
            counter: now_ms as u64,
        };
        Ok(SignedRelease::sign(
            &inspected.header.app,
            &inspected.header.version,
            &input,
            &self.key,
        )?)
    }
}

/// Publishes `file` to `target`, with release metadata signed by `signer`.
pub async fn publish(
    file: &Path,
    broker: &super::Broker,
    target: &Target,
    prefix: &str,
    chunk_size: u32,
    force: bool,
    signer: &Signer,
) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(file).with_context(|| format!("{}: cannot read", file.display()))?;
    let inspected = outpost_bundle::inspect(&bytes, &Limits::default())
        .with_context(|| format!("{}", file.display()))?;
    if let Err(error) = check_bundle(&bytes, &inspected) {
        if !force {
            bail!(
                "{}: {error}; not published (--force publishes it anyway, to test devices)",
                file.display()
            );
        }
        eprintln!("warning: publishing a bundle every device refuses (--force): {error}");
    }
    let header = &inspected.header;
    let release = signer.sign(&inspected, ChunkPlan::cut(&bytes, chunk_size)?, target)?;
    let announcement = Announcement::with_release(&inspected, release, &Limits::default())?;
    let digest = announcement.chunks.bundle_digest;
    let count = announcement.chunks.count();

    let current = super::offers::current_offer(broker, prefix, target, &header.app).await?;
    if let Some(current) = &current
        && let Err(refusal) =
            offer::check_newer(target, &header.app, Some(&current.version), &header.version)
    {
        if !force {
            bail!(refusal);
        }
        eprintln!("warning: replacing the offer anyway (--force): {refusal}");
    }

    let mut transport = super::transport(broker)?;
    let (mut client, mut connection) = super::connect(&mut transport, broker).await?;
    let started = Instant::now();
    let progress = progress_bar(bytes.len() as u64);
    let chunks: Vec<(String, &[u8])> = (0..count)
        .map(|index| {
            (
                topics::chunk(prefix, target, &header.app, &digest, index as u32),
                &bytes[announcement.chunks.range(index)],
            )
        })
        .collect();
    send_retained(&mut client, &mut connection, broker, &chunks, |size| {
        progress.inc(size as u64)
    })
    .await
    .with_context(|| {
        "publishing the chunks; publish again (devices resume what they have)".to_string()
    })?;
    // The announcement goes last: a device that sees it finds every chunk already there.
    let encoded = announcement.encode()?;
    let topic = topics::announcement(prefix, target, &header.app);
    send_retained(
        &mut client,
        &mut connection,
        broker,
        &[(topic, &encoded)],
        |_| {},
    )
    .await
    .context("publishing the announcement")?;
    progress.finish_and_clear();
    let elapsed = started.elapsed();
    // Only now, with the new announcement out, can no device start fetching the old bundle.
    let cleared = match &current {
        Some(old) if old.digest != digest => {
            clear_chunks(&mut client, &mut connection, broker, prefix, old).await?
        }
        _ => 0,
    };
    println!(
        "published {} {} to {}: {} bytes in {count} chunks of {chunk_size} bytes, sha256 {digest}, in {:.2} s",
        header.app,
        header.version,
        target.describe(),
        bytes.len(),
        elapsed.as_secs_f64()
    );
    if let Some(old) = current.filter(|_| cleared > 0) {
        println!(
            "replaced {} {}: cleared its {cleared} chunks",
            old.app, old.version
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// What every device would refuse about this bundle, apart from its signer (the operator need
/// not hold the devices' trust store): a damaged body, or what `fleet::prepare::check` refuses.
fn check_bundle(bytes: &[u8], inspected: &outpost_bundle::InspectedBundle) -> anyhow::Result<()> {
    inspected.body.clone()?;
    // `reopen` re-checks every digest against the file itself; the signature is the devices'.
    let bundle = outpost_bundle::reopen(bytes, &inspected.file_digest, &Limits::default())?;
    outpost::fleet::prepare::check(&bundle)?;
    Ok(())
}

/// Clears the retained chunks of `old` (empty retained payloads); returns how many.
pub async fn clear_chunks(
    client: &mut RumqttcClient,
    connection: &mut RumqttcConnection,
    broker: &super::Broker,
    prefix: &str,
    old: &Offer,
) -> anyhow::Result<usize> {
    let topics: Vec<(String, &[u8])> = old
        .chunk_topics(prefix)
        .into_iter()
        .map(|topic| (topic, &[][..]))
        .collect();
    send_retained(client, connection, broker, &topics, |_| {})
        .await
        .with_context(|| format!("clearing the chunks of {} {}", old.app, old.version))?;
    Ok(topics.len())
}

/// Publishes each `(topic, payload)` retained at QoS 1, at most [`WINDOW`] awaiting their
/// PUBACK at once, and returns once the broker acknowledged every one; `acked` is told each
/// acknowledged payload's size.
pub async fn send_retained(
    client: &mut RumqttcClient,
    connection: &mut RumqttcConnection,
    broker: &super::Broker,
    messages: &[(String, &[u8])],
    acked: impl FnMut(usize),
) -> anyhow::Result<()> {
    send_qos1(client, connection, broker, messages, true, acked).await
}

/// [`send_retained`], with `retain` as given (commands are not retained).
pub async fn send_qos1(
    client: &mut RumqttcClient,
    connection: &mut RumqttcConnection,
    broker: &super::Broker,
    messages: &[(String, &[u8])],
    retain: bool,
    mut acked: impl FnMut(usize),
) -> anyhow::Result<()> {
    let mut inflight: HashMap<_, usize> = HashMap::new();
    let mut next = 0;
    while next < messages.len() || !inflight.is_empty() {
        while inflight.len() < WINDOW && next < messages.len() {
            let (topic, payload) = &messages[next];
            let id = client
                .publish(topic, QoS::AtLeastOnce, retain, payload)
                .await
                .map_err(|e| anyhow::anyhow!("publishing to {topic}: {e}"))?;
            inflight.insert(id, payload.len());
            next += 1;
        }
        let event = connection
            .next()
            .await
            .map_err(|e| anyhow::anyhow!("connection to {broker} failed: {e}"))?;
        match event.payload() {
            EventPayload::Published(id) => {
                if let Some(size) = inflight.remove(&id) {
                    acked(size);
                }
            }
            EventPayload::Error(error)
                if matches!(error, TransportError::PublishRefused { .. }) =>
            {
                bail!("{broker} refused a publish: {error}")
            }
            EventPayload::Received { id, .. } => {
                let _ = client.ack(id).await;
            }
            EventPayload::Disconnected => bail!(
                "the broker closed the connection after {} of {} messages",
                next - inflight.len(),
                messages.len()
            ),
            _ => {}
        }
    }
    Ok(())
}

/// A progress bar over `total` bytes.
fn progress_bar(total: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style);
    }
    bar
}
