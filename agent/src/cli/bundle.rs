//! `outpost keygen` and `outpost bundle build|inspect`: the publisher's side of signed bundles.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, ensure};
use outpost_bundle::{Limits, PublicKey, SecretKey, TrustStore};

/// `outpost bundle ...`
#[derive(clap::Subcommand)]
pub enum BundleCommand {
    /// Build the app's components, then pack and sign them into one bundle file (refused if
    /// every device would refuse it).
    Build {
        /// App directory (holding outpost.toml).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Secret key file (from `outpost keygen`).
        #[arg(long)]
        key: PathBuf,
        /// Output file (default: APP-VERSION.bundle in the current directory).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Show a bundle's header, manifest, modules and signer; with --trust, check the signature.
    Inspect {
        /// The bundle file.
        file: PathBuf,
        /// A public key to check the signature against (exit status 1 if it does not verify).
        #[arg(long, value_name = "KEY.pub")]
        trust: Vec<PathBuf>,
    },
}

/// Runs `outpost keygen --out DIR [--name NAME]`.
pub fn keygen(out: &Path, name: &str) -> anyhow::Result<ExitCode> {
    ensure!(
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')),
        "--name '{name}' must be letters, digits, '-', '_' or '.'"
    );
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let secret_path = out.join(format!("{name}.key"));
    let public_path = out.join(format!("{name}.pub"));
    for path in [&secret_path, &public_path] {
        ensure!(
            !path.exists(),
            "{} already exists; refusing to overwrite a key",
            path.display()
        );
    }
    let key = SecretKey::generate()?;
    write_new(&secret_path, key.to_text().as_bytes(), 0o600)?;
    write_new(&public_path, key.public().to_text().as_bytes(), 0o644)?;
    println!(
        "key {}: secret {} (mode 0600, keep it off devices), public {} (give it to devices with --trust)",
        key.public().id(),
        secret_path.display(),
        public_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Creates `path` with `mode`, failing if it exists.
fn write_new(path: &Path, contents: &[u8], mode: u32) -> anyhow::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// Reads a secret key file.
fn read_secret(path: &Path) -> anyhow::Result<SecretKey> {
    let text = fs::read_to_string(path)
        .with_context(|| format!("--key {}: cannot read", path.display()))?;
    SecretKey::parse(&text).with_context(|| format!("--key {}", path.display()))
}

/// Reads a public key file.
fn read_public(path: &Path) -> anyhow::Result<PublicKey> {
    let text = fs::read_to_string(path)
        .with_context(|| format!("--trust {}: cannot read", path.display()))?;
    PublicKey::parse(&text).with_context(|| format!("--trust {}", path.display()))
}

/// Runs an `outpost bundle` command.
pub fn run(command: BundleCommand) -> anyhow::Result<ExitCode> {
    match command {
        BundleCommand::Build { dir, key, out } => build(&dir, &key, out),
        BundleCommand::Inspect { file, trust } => inspect(&file, &trust),
    }
}

fn build(dir: &Path, key: &Path, out: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let key = read_secret(key)?;
    let manifest = outpost_manifest::load(&super::manifest_path(dir))?;
    outpost::build::build_app(&manifest)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let bytes = outpost::pack::pack_app(&manifest, &key, now)?;
    // Refuse here what every device would refuse after downloading it: the same check the
    // devices run before activating (and `fleet publish` runs again).
    let packed =
        outpost_bundle::reopen(&bytes, &outpost_bundle::sha256(&bytes), &Limits::default())?;
    outpost::fleet::prepare::check(&packed).with_context(|| {
        format!(
            "{} {}: every device would refuse this bundle; not written",
            manifest.app.name, manifest.app.version
        )
    })?;
    let out = out.unwrap_or_else(|| {
        PathBuf::from(format!(
            "{}-{}.bundle",
            manifest.app.name, manifest.app.version
        ))
    });
    fs::write(&out, &bytes).with_context(|| format!("writing {}", out.display()))?;
    println!(
        "bundle {} {} -> {} ({} bytes, {} component(s), sha256 {}, signed by {})",
        manifest.app.name,
        manifest.app.version,
        out.display(),
        bytes.len(),
        manifest.components.len(),
        outpost_bundle::sha256(&bytes),
        key.public().id()
    );
    Ok(ExitCode::SUCCESS)
}

fn inspect(file: &Path, trust: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let bytes = fs::read(file).with_context(|| format!("{}: cannot read", file.display()))?;
    let inspected = outpost_bundle::inspect(&bytes, &Limits::default())
        .with_context(|| format!("{}", file.display()))?;
    let header = &inspected.header;
    println!("file:      {} ({} bytes)", file.display(), inspected.size);
    println!("sha256:    {}", inspected.file_digest);
    println!("app:       {} {}", header.app, header.version);
    println!(
        "created:   {}",
        outpost::report::clock_time(header.created_ms)
    );
    println!("signer:    key {}", header.key_id);
    println!(
        "body:      {} bytes, sha256 {}",
        header.body_len, header.body_digest
    );
    for (id, listed, actual, size) in &inspected.modules {
        let state = if listed == actual {
            "ok"
        } else {
            "DIGEST MISMATCH"
        };
        println!("module:    {id:<24} {size:>9} bytes  sha256 {listed}  {state}");
    }
    match &inspected.body {
        Ok(()) => println!("integrity: body and every module match the signed header"),
        Err(error) => println!("integrity: BROKEN: {error}"),
    }
    if let Some(manifest) = &inspected.manifest {
        println!("manifest:");
        for line in manifest.lines() {
            println!("  {line}");
        }
    }
    if trust.is_empty() {
        return Ok(if inspected.body.is_ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let store = TrustStore::new(
        trust
            .iter()
            .map(|path| read_public(path))
            .collect::<anyhow::Result<Vec<_>>>()?,
    );
    match inspected.check(&store) {
        Ok(()) => {
            println!("signature: valid, by trusted key {}", header.key_id);
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            println!("signature: NOT VALID: {error}");
            Ok(ExitCode::FAILURE)
        }
    }
}
