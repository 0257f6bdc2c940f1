//! `outpost fleet trust sign|publish`: the root's side of scoped publisher keys. `sign` turns a
//! TOML description of the trust document into the signed `.opd` file on the (offline) machine
//! that holds the root keys; `publish` sends that file, retained, to `{prefix}/fleet/trust`,
//! where every device pinning those roots takes it (if newer) and re-checks what it runs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use outpost_bundle::{PublicKey, Publisher, SecretKey, SignedTrust, TrustDocument};
use serde::Deserialize;

/// `outpost fleet trust ...`
#[derive(clap::Subcommand)]
pub enum TrustCommand {
    /// Sign a trust document described in TOML with the root key(s); writes the `.opd` file.
    Sign {
        /// The description (version, expires, roots, threshold, max_major_jump, [[publisher]]).
        description: PathBuf,
        /// A root secret key that signs it (repeat up to the current threshold).
        #[arg(long = "root-key", required = true)]
        root_keys: Vec<PathBuf>,
        /// Where to write the signed document.
        #[arg(long)]
        out: PathBuf,
    },
    /// Publish a signed trust document, retained, to `{prefix}/fleet/trust`.
    Publish {
        /// The signed document (from `outpost fleet trust sign`).
        file: PathBuf,
        #[command(flatten)]
        broker: super::BrokerArgs,
    },
}

/// The TOML description of a trust document. Paths are relative to its file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Description {
    /// Must increase with every document.
    version: u64,
    /// How long devices act on it (`365d`).
    #[serde(with = "humantime_serde")]
    expires: Duration,
    /// Root public key files that sign the next document.
    roots: Vec<PathBuf>,
    /// How many of them must sign it.
    #[serde(default = "one")]
    threshold: u8,
    /// How many major versions one release may raise an app's floor by.
    #[serde(default = "one_u64")]
    max_major_jump: u64,
    /// The publisher keys.
    #[serde(default)]
    publisher: Vec<PublisherDescription>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublisherDescription {
    name: String,
    key: PathBuf,
    apps: Vec<String>,
    targets: Vec<String>,
    #[serde(default = "any")]
    gpio: Vec<String>,
    #[serde(default = "any")]
    publish: Vec<String>,
    #[serde(with = "humantime_serde")]
    expires: Duration,
}

fn one() -> u8 {
    1
}

fn one_u64() -> u64 {
    1
}

fn any() -> Vec<String> {
    vec!["*".into()]
}

fn public(path: &Path) -> anyhow::Result<PublicKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    PublicKey::parse(&text).with_context(|| format!("{}", path.display()))
}

fn now_ms() -> anyhow::Result<i64> {
    Ok(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("the clock is before 1970")?
        .as_millis() as i64)
}

/// Runs a trust command.
pub fn run(command: TrustCommand, runtime: &tokio::runtime::Runtime) -> anyhow::Result<ExitCode> {
    match command {
        TrustCommand::Sign {
            description,
            root_keys,
            out,
        } => sign(&description, &root_keys, &out),
        TrustCommand::Publish { file, broker } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("{}: cannot read", file.display()))?;
            let document = SignedTrust::decode(&bytes)
                .and_then(|s| s.document_unverified())
                .with_context(|| format!("{}", file.display()))?;
            let broker = broker.resolve("trust publish")?;
            let topic = outpost::fleet::topics::trust(&broker.prefix);
            runtime.block_on(async {
                let mut transport = super::transport(&broker)?;
                let (mut client, mut connection) = super::connect(&mut transport, &broker).await?;
                super::publish::send_retained(
                    &mut client,
                    &mut connection,
                    &broker,
                    &[(topic.clone(), &bytes[..])],
                    |_| {},
                )
                .await
                .context("publishing the trust document")
            })?;
            println!(
                "published trust document version {} ({} publisher key(s)) to {topic}",
                document.version,
                document.publishers.len()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn sign(description: &Path, root_keys: &[PathBuf], out: &Path) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(description)
        .with_context(|| format!("{}: cannot read", description.display()))?;
    let desc: Description =
        toml::from_str(&text).with_context(|| format!("{}", description.display()))?;
    let base = description.parent().unwrap_or(Path::new("."));
    let now = now_ms()?;
    let until = |d: Duration| now.saturating_add(d.as_millis() as i64);
    let roots = desc
        .roots
        .iter()
        .map(|p| public(&base.join(p)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let publishers = desc
        .publisher
        .iter()
        .map(|p| {
            Ok(Publisher {
                key: public(&base.join(&p.key))?,
                name: p.name.clone(),
                apps: p.apps.clone(),
                targets: p.targets.clone(),
                gpio: p.gpio.clone(),
                publish: p.publish.clone(),
                expires_ms: until(p.expires),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let document = TrustDocument {
        version: desc.version,
        expires_ms: until(desc.expires),
        roots,
        threshold: desc.threshold,
        max_major_jump: desc.max_major_jump,
        publishers,
    };
    let secrets = root_keys
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("{}: cannot read", p.display()))?;
            SecretKey::parse(&text).with_context(|| format!("{}", p.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let signed = SignedTrust::sign(&document, &secrets.iter().collect::<Vec<_>>())?;
    // What devices will decode must decode here too.
    if let Err(error) = signed.document_unverified() {
        bail!("the document does not decode as devices read it: {error}");
    }
    std::fs::write(out, signed.encode()?)
        .with_context(|| format!("{}: cannot write", out.display()))?;
    println!(
        "signed trust document version {} with {} root key(s): {} publisher key(s); written to {}",
        document.version,
        secrets.len(),
        document.publishers.len(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}
