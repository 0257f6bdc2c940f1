//! `outpost fleet publish`: sends a bundle's chunks and then its announcement, all retained at
//! QoS 1, so devices that are offline now fetch it whenever they come back.

use std::collections::HashSet;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail, ensure};
use outpost::fleet::topics;
use outpost_bundle::{Announcement, Limits};
use outpost_hal::mqtt::{Connection, Event, EventPayload, Publish, QoS};

/// Messages awaiting PUBACK at once. Below the transport's request queue (10): publishes queue
/// until the connection half is polled, and it is only polled between batches here.
const WINDOW: usize = 8;

/// Publishes `file` to `group`.
pub async fn publish(
    file: &Path,
    broker: &super::Broker,
    group: &str,
    prefix: &str,
    chunk_size: u32,
    force: bool,
) -> anyhow::Result<ExitCode> {
    ensure!(
        !group.is_empty()
            && group
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_')),
        "--group '{group}' must be letters, digits, '-' or '_'"
    );
    let bytes = std::fs::read(file).with_context(|| format!("{}: cannot read", file.display()))?;
    let inspected = outpost_bundle::inspect(&bytes, &Limits::default())
        .with_context(|| format!("{}", file.display()))?;
    if let Err(error) = &inspected.body {
        if !force {
            bail!(
                "{}: {error}; not published (--force publishes it anyway, to test devices)",
                file.display()
            );
        }
        eprintln!("warning: publishing a damaged bundle (--force): {error}");
    }
    let header = &inspected.header;
    let announcement = Announcement::for_bundle(&inspected, &bytes, chunk_size)?;
    let digest = announcement.chunks.bundle_digest;
    let count = announcement.chunks.count();
    let mut transport = super::transport(broker)?;
    let (mut client, mut connection) = super::connect(&mut transport, broker).await?;
    let started = Instant::now();
    let progress = progress_bar(bytes.len() as u64);
    let mut inflight: HashSet<_> = HashSet::new();
    let mut sizes = std::collections::HashMap::new();
    let mut next = 0usize;
    let mut sent_announcement = false;
    loop {
        while inflight.len() < WINDOW && next < count {
            let range = announcement.chunks.range(next);
            let topic = topics::chunk(prefix, group, &header.app, &digest, next as u32);
            let id = client
                .publish(&topic, QoS::AtLeastOnce, true, &bytes[range.clone()])
                .await
                .map_err(|e| anyhow::anyhow!("publishing chunk {next}: {e:?}"))?;
            inflight.insert(id);
            sizes.insert(id, range.len() as u64);
            next += 1;
        }
        // The announcement goes last: a device that sees it finds every chunk already there.
        if next == count && inflight.is_empty() {
            if sent_announcement {
                break;
            }
            let topic = topics::announcement(prefix, group, &header.app);
            let id = client
                .publish(&topic, QoS::AtLeastOnce, true, &announcement.encode()?)
                .await
                .map_err(|e| anyhow::anyhow!("publishing the announcement: {e:?}"))?;
            inflight.insert(id);
            sent_announcement = true;
        }
        let event = connection
            .next()
            .await
            .map_err(|e| anyhow::anyhow!("connection to {broker} failed: {e:?}"))?;
        match event.payload() {
            EventPayload::Published(id) if inflight.remove(&id) => {
                progress.inc(sizes.remove(&id).unwrap_or(0));
            }
            EventPayload::Disconnected => bail!(
                "the broker closed the connection after {next} of {count} chunks; publish again (devices resume what they have)"
            ),
            _ => {}
        }
    }
    progress.finish_and_clear();
    println!(
        "published {} {} to group {group}: {} bytes in {count} chunks of {chunk_size} bytes, sha256 {digest}, in {:.2} s",
        header.app,
        header.version,
        bytes.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
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
