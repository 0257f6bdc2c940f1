//! `outpost provision`: everything one device needs, written as a directory tree to copy onto the
//! root file system of its SD card (docs/FLASHING.md):
//!
//! ```text
//! DIR/etc/outpost/agent.toml        identity, broker, credentials (mode 0600)
//! DIR/etc/outpost/tls/ca.pem        --ca-file      (0644)
//! DIR/etc/outpost/tls/client.crt    --client-cert  (0644)
//! DIR/etc/outpost/tls/client.key    --client-key   (0600)
//! DIR/etc/outpost/trust/NAME.pub    each --trust key (0644)
//! DIR/etc/outpost/secrets.toml      --secrets-file (0600; the device's secrets, never in bundles)
//! ```
//!
//! Every input is checked before anything is written, and the written `agent.toml` is parsed
//! back with the agent's own loader, so a provisioned device never boots into a config error.
//!
//! With `--broker-dir` the device also gets its identity on the broker ([`broker`]): user name
//! = device id, a random password (unless one is given), and its place in the fleet's
//! mosquitto ACL.

mod broker;
mod passwd;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail, ensure};
use outpost::config::{self, AgentConfig, FleetSettings, MqttSettings};
use outpost_hal::mqtt::{BrokerUrl, MqttConfig, RumqttcTransport};

/// Where the files live on the device.
const ETC: &str = "/etc/outpost";
/// Trusted publisher keys larger than this are refused (an ed25519 public key is 32 bytes; even
/// PEM or OpenSSH text forms are far below it).
const MAX_TRUST_KEY_BYTES: u64 = 1024;

/// Arguments of `outpost provision`.
#[derive(clap::Args)]
pub struct ProvisionArgs {
    /// This device's id (one MQTT topic level: 1-64 of A-Z a-z 0-9 - _).
    #[arg(long)]
    device_id: String,
    /// Broker URL, mqtt://host[:port] or mqtts://host[:port].
    #[arg(long)]
    broker: String,
    /// A trusted publisher's public key file (repeatable); copied to etc/outpost/trust/.
    #[arg(long = "trust", value_name = "KEY.pub", required = true)]
    trust: Vec<PathBuf>,
    /// A group this device belongs to (repeatable).
    #[arg(long = "group", value_name = "GROUP")]
    groups: Vec<String>,
    /// Broker user name.
    #[arg(long)]
    username: Option<String>,
    /// Broker password (visible in the process list and shell history: prefer --password-file).
    #[arg(long, requires = "username")]
    password: Option<String>,
    /// File holding the broker password (first line).
    #[arg(
        long,
        value_name = "FILE",
        requires = "username",
        conflicts_with = "password"
    )]
    password_file: Option<PathBuf>,
    /// CA certificate (PEM) to trust for an mqtts:// broker (else the device's system roots).
    #[arg(long, value_name = "PEM")]
    ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS.
    #[arg(long, value_name = "PEM", requires = "client_key")]
    client_cert: Option<PathBuf>,
    /// Client private key (PEM) for mutual TLS.
    #[arg(long, value_name = "PEM", requires = "client_cert")]
    client_key: Option<PathBuf>,
    /// The device's secrets: a TOML file of NAME = "value" lines, copied to
    /// etc/outpost/secrets.toml (0600). Apps read one through a variable whose value is
    /// "{secret}" (docs/SECURITY.md).
    #[arg(long, value_name = "FILE")]
    secrets_file: Option<PathBuf>,
    /// Output directory: the root of the device's file system (or a staging copy of it).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Write into a non-empty DIR (a mounted root file system): provision's files are replaced,
    /// and trust keys and TLS files of an earlier provisioning not given now are removed.
    #[arg(long)]
    force: bool,
    /// Also register the device on the broker: update the mosquitto password file, ACL and
    /// device registry in this directory (one per broker; docs/SECURITY.md). The device logs
    /// in as its id, with a fresh random password unless --password(-file) or a client
    /// certificate is given.
    #[arg(long, value_name = "DIR")]
    broker_dir: Option<PathBuf>,
    /// The operator's user name in the ACL (with --broker-dir).
    #[arg(long, value_name = "USER", default_value = "operator")]
    operator_user: String,
    /// A topic filter outside the topic prefix this device may read (its apps' mqtt triggers),
    /// added to its ACL (repeatable; with --broker-dir).
    #[arg(long = "acl-read", value_name = "FILTER", requires = "broker_dir")]
    acl_read: Vec<String>,
    /// A topic filter outside the topic prefix this device may write (its apps' publish
    /// grants), added to its ACL (repeatable; with --broker-dir).
    #[arg(long = "acl-write", value_name = "FILTER", requires = "broker_dir")]
    acl_write: Vec<String>,
    /// Let the device send its password over plain mqtt:// to a host that is not loopback
    /// (else refused).
    #[arg(long)]
    allow_plaintext_password: bool,
}

/// What `--broker-dir` gets: the updated registry and this device's password-file line.
struct BrokerUpdate {
    dir: PathBuf,
    registry: broker::Registry,
    /// `None` with a client certificate and no password: any earlier line is removed.
    password_line: Option<String>,
}

/// One file to write: path under `DIR`, contents, mode.
struct Output {
    path: PathBuf,
    contents: Vec<u8>,
    mode: u32,
}

/// The TLS files `provision` manages: flag value, name under `etc/outpost/tls/`, mode.
type TlsFile<'a> = (&'a Option<PathBuf>, &'static str, u32);

/// Runs `outpost provision`.
pub fn run(args: ProvisionArgs) -> anyhow::Result<ExitCode> {
    let (outputs, update) = plan(&args)?;
    prepare_out_dir(&args.out, args.force)?;
    if args.force {
        remove_stale(&args.out, &outputs)?;
    }
    for output in &outputs {
        write(&args.out, output)?;
    }
    println!(
        "provisioned {} into {}:",
        args.device_id,
        args.out.display()
    );
    for output in &outputs {
        println!("  {:o}  {}", output.mode, output.path.display());
    }
    println!(
        "copy it onto the device's root file system as root, keeping modes \
         (docs/FLASHING.md); the outpost package gives the service read access at boot"
    );
    if let Some(update) = update {
        write_broker_dir(&update, &args.device_id)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes `--broker-dir`: registry, password file, ACL, and the listener config once.
fn write_broker_dir(update: &BrokerUpdate, device: &str) -> anyhow::Result<()> {
    let dir = &update.dir;
    let passwd_path = dir.join(broker::PASSWD);
    let existing = match fs::read_to_string(&passwd_path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => {
            return Err(error).with_context(|| format!("{}: cannot read", passwd_path.display()));
        }
    };
    let mut files = vec![
        Output {
            path: broker::REGISTRY.into(),
            contents: update.registry.to_text()?.into_bytes(),
            mode: 0o644,
        },
        Output {
            path: broker::PASSWD.into(),
            contents: broker::replace_password_line(
                &existing,
                device,
                update.password_line.as_deref(),
            )
            .into_bytes(),
            mode: 0o600,
        },
        Output {
            path: broker::ACL.into(),
            contents: update.registry.acl().into_bytes(),
            mode: 0o644,
        },
    ];
    if !dir.join(broker::CONF).exists() {
        files.push(Output {
            path: broker::CONF.into(),
            contents: broker::mosquitto_conf().into_bytes(),
            mode: 0o644,
        });
    }
    for file in &files {
        write(dir, file)?;
    }
    println!(
        "registered {device} in {} ({} devices): reload mosquitto (SIGHUP) to apply",
        dir.display(),
        update.registry.devices.len()
    );
    Ok(())
}

/// Checks every input and renders every file, without touching `--out`.
fn plan(args: &ProvisionArgs) -> anyhow::Result<(Vec<Output>, Option<BrokerUpdate>)> {
    let broker: BrokerUrl = args
        .broker
        .parse()
        .with_context(|| format!("--broker '{}'", args.broker))?;
    let mut password = match &args.password_file {
        Some(file) => Some(super::broker_args::read_password(
            file,
            &format!("--password-file {}", file.display()),
        )?),
        None => args.password.clone(),
    };
    let mut username = args.username.clone();
    if args.broker_dir.is_some() {
        // The ACL's patterns name a device by its user name.
        ensure!(
            username.as_ref().is_none_or(|user| *user == args.device_id),
            "--username must be the device id with --broker-dir (the ACL names a device by its \
             user name): leave --username out"
        );
        username = Some(args.device_id.clone());
        if password.is_none() && args.client_cert.is_none() {
            password = Some(passwd::random_password()?);
        }
    }
    let tls: [TlsFile; 3] = [
        (&args.ca_file, "ca.pem", 0o644),
        (&args.client_cert, "client.crt", 0o644),
        (&args.client_key, "client.key", 0o600),
    ];
    let on_device = |name: &str| Path::new(ETC).join("tls").join(name);

    let mut settings = MqttSettings::new(args.broker.clone());
    settings.username = username;
    settings.password = password;
    settings.allow_plaintext_password = args.allow_plaintext_password;
    settings.ca_file = args.ca_file.as_ref().map(|_| on_device("ca.pem"));
    settings.client_cert = args.client_cert.as_ref().map(|_| on_device("client.crt"));
    settings.client_key = args.client_key.as_ref().map(|_| on_device("client.key"));
    let mut config = AgentConfig::new(args.device_id.clone(), args.broker.clone());
    config.mqtt = settings;
    config.fleet = FleetSettings {
        trust: vec![Path::new(ETC).join("trust")],
        groups: unique_groups(&args.groups)?,
        ..FleetSettings::default()
    };
    config::validate(&config).map_err(|message| {
        anyhow::anyhow!(
            "{}",
            message.replace(
                "set allow_plaintext_password = true under [mqtt]",
                "pass --allow-plaintext-password"
            )
        )
    })?;
    let update = args
        .broker_dir
        .as_ref()
        .map(|dir| broker_update(args, &config, dir))
        .transpose()?;

    // The TLS files as the transport will use them (PEM parses, key fits certificate), checked
    // here against the given files; also refuses TLS files with an mqtt:// broker.
    let mut mqtt = MqttConfig::new(broker, args.device_id.clone());
    mqtt.username = config.mqtt.username.clone();
    mqtt.password = config.mqtt.password.clone();
    mqtt.ca_file = args.ca_file.clone();
    mqtt.client_cert = args.client_cert.clone();
    mqtt.client_key = args.client_key.clone();
    mqtt.validate()?;
    if tls.iter().any(|(given, _, _)| given.is_some()) {
        RumqttcTransport::new(mqtt)?;
    }

    let mut outputs = Vec::new();
    let etc = Path::new("etc/outpost");
    let text = render(&config);
    // Parsed back with the agent's loader: what is written is what the device will read.
    let reread = config::parse(&text, &Path::new(ETC).join("agent.toml"))
        .context("the generated agent.toml does not load (a bug in provision)")?;
    ensure!(
        reread == config,
        "the generated agent.toml reads back differently (a bug in provision)"
    );
    outputs.push(Output {
        path: etc.join("agent.toml"),
        contents: text.into_bytes(),
        mode: 0o600,
    });
    for (given, name, mode) in tls {
        if let Some(source) = given {
            outputs.push(Output {
                path: etc.join("tls").join(name),
                contents: fs::read(source)
                    .with_context(|| format!("{}: cannot read", source.display()))?,
                mode,
            });
        }
    }
    if let Some(file) = &args.secrets_file {
        let text = fs::read_to_string(file)
            .with_context(|| format!("--secrets-file {}: cannot read", file.display()))?;
        outpost::policy::Secrets::parse(&text).map_err(|message| {
            anyhow::anyhow!(
                "--secrets-file {}: {message} (expected NAME = \"value\" lines)",
                file.display()
            )
        })?;
        outputs.push(Output {
            path: etc.join("secrets.toml"),
            contents: text.into_bytes(),
            mode: 0o600,
        });
    }
    let mut names = BTreeSet::new();
    for key in &args.trust {
        let name = trust_key_name(key)?;
        ensure!(
            names.insert(name.clone()),
            "--trust {}: a second key named {name}.pub (trust keys are stored by file name)",
            key.display()
        );
        outputs.push(Output {
            path: etc.join("trust").join(format!("{name}.pub")),
            contents: read_trust_key(key)?,
            mode: 0o644,
        });
    }
    Ok((outputs, update))
}

/// The registry with this device in it, and its password line: everything `--broker-dir`
/// gets, checked before anything is written.
fn broker_update(
    args: &ProvisionArgs,
    config: &AgentConfig,
    dir: &Path,
) -> anyhow::Result<BrokerUpdate> {
    let prefix = &config.mqtt.topic_prefix;
    let mut registry = broker::Registry::load_or_new(dir, prefix, &args.operator_user)?;
    ensure!(
        outpost::fleet::topics::valid_name(&args.operator_user),
        "--operator-user '{}' must be 1-64 characters of A-Z a-z 0-9 - _",
        args.operator_user
    );
    registry.check_device(&args.device_id)?;
    for (flag, filters) in [
        ("--acl-read", &args.acl_read),
        ("--acl-write", &args.acl_write),
    ] {
        for filter in filters {
            check_acl_filter(flag, filter, prefix)?;
        }
    }
    registry.devices.insert(
        args.device_id.clone(),
        broker::DeviceEntry {
            groups: config.fleet.groups.clone(),
            read: args.acl_read.clone(),
            write: args.acl_write.clone(),
        },
    );
    let password_line = match &config.mqtt.password {
        Some(password) => Some(passwd::line(&args.device_id, password)?),
        None => None,
    };
    Ok(BrokerUpdate {
        dir: dir.to_path_buf(),
        registry,
        password_line,
    })
}

/// An extra ACL filter: a valid MQTT filter, one ACL word (no spaces: it would add rules), and
/// outside the prefix, whose layout the generated rules own.
fn check_acl_filter(flag: &str, filter: &str, prefix: &str) -> anyhow::Result<()> {
    ensure!(
        !filter.is_empty()
            && !filter.chars().any(|c| c.is_whitespace() || c.is_control())
            && outpost_manifest::TopicFilter::new(filter).is_ok(),
        "{flag} '{filter}': not a single MQTT topic filter"
    );
    // Its first level decides: a wildcard there, or the prefix's own first level, could match
    // the agent's topics (`+/pi-2/status`).
    let first = filter.split('/').next().unwrap_or_default();
    ensure!(
        !matches!(first, "+" | "#") && Some(first) != prefix.split('/').next(),
        "{flag} '{filter}': topics under '{prefix}/' are the agent's own; give a filter outside \
         it"
    );
    Ok(())
}

/// `agent.toml` for `config`, commented for the person who opens it on the device.
fn render(config: &AgentConfig) -> String {
    let mut text = String::new();
    let mqtt = &config.mqtt;
    let _ = writeln!(
        text,
        "# Written by `outpost provision` for device {id}.\n\
         # Format: agent/src/config.rs; every setting not here has its default.\n\
         config_version = 1\n\
         device_id = {}\n\
         data_dir = {}\n\
         # An app directory to run (read-only is fine); without one the agent only syncs.\n\
         # app = \"/opt/outpost/app\"\n\
         \n\
         [mqtt]\n\
         broker = {}",
        quote(&config.device_id),
        quote(&config.data_dir.to_string_lossy()),
        quote(&mqtt.broker),
        id = config.device_id,
    );
    let strings = [("username", &mqtt.username), ("password", &mqtt.password)];
    for (key, value) in strings {
        if let Some(value) = value {
            let _ = writeln!(text, "{key} = {}", quote(value));
        }
    }
    if mqtt.allow_plaintext_password {
        text.push_str(
            "# The password crosses the network unencrypted (mqtt://): allowed on purpose.\n",
        );
        text.push_str("allow_plaintext_password = true\n");
    }
    let paths = [
        ("ca_file", &mqtt.ca_file),
        ("client_cert", &mqtt.client_cert),
        ("client_key", &mqtt.client_key),
    ];
    for (key, value) in paths {
        if let Some(path) = value {
            let _ = writeln!(text, "{key} = {}", quote(&path.to_string_lossy()));
        }
    }
    let list = |items: Vec<String>| {
        items
            .iter()
            .map(|item| quote(item))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let fleet = &config.fleet;
    let _ = writeln!(
        text,
        "\n\
         [fleet]\n\
         # Bundles must be signed by one of these publisher keys (files, or directories of *.pub).\n\
         trust = [{}]\n\
         # Fleet groups this device takes updates from ({{prefix}}/fleet/{{group}}/apps/+).\n\
         groups = [{}]",
        list(
            fleet
                .trust
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect()
        ),
        list(fleet.groups.clone()),
    );
    text
}

/// A TOML basic string.
fn quote(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for c in value.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(quoted, "\\u{:04X}", u32::from(c));
            }
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// `NAME` of `NAME.pub` (or of `NAME`): letters, digits, `.`, `-`, `_`, not starting with `.`.
fn trust_key_name(key: &Path) -> anyhow::Result<String> {
    let file = key
        .file_name()
        .and_then(|name| name.to_str())
        .with_context(|| format!("--trust {}: not a file name", key.display()))?;
    let name = file.strip_suffix(".pub").unwrap_or(file);
    ensure!(
        !name.is_empty()
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')),
        "--trust {}: the file name must be letters, digits, '.', '-' or '_' (it names the key \
         on the device)",
        key.display()
    );
    Ok(name.to_owned())
}

/// The `--group`s, checked, each once, in order.
fn unique_groups(groups: &[String]) -> anyhow::Result<Vec<String>> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for group in groups {
        check_group(group)?;
        if seen.insert(group) {
            out.push(group.clone());
        }
    }
    Ok(out)
}

/// A trusted publisher key (`outpost keygen`'s `.pub` file), checked and copied as it is.
fn read_trust_key(key: &Path) -> anyhow::Result<Vec<u8>> {
    let cannot = |what: &str| format!("--trust {}: {what}", key.display());
    let size = fs::metadata(key)
        .with_context(|| cannot("cannot read"))?
        .len();
    ensure!(
        size <= MAX_TRUST_KEY_BYTES,
        cannot(&format!(
            "{size} bytes is too large for a public key (at most {MAX_TRUST_KEY_BYTES})"
        ))
    );
    let bytes = fs::read(key).with_context(|| cannot("cannot read"))?;
    ensure!(!bytes.is_empty(), cannot("is empty"));
    let text = std::str::from_utf8(&bytes).map_err(|_| anyhow::anyhow!(cannot("is not text")))?;
    outpost_bundle::PublicKey::parse(text).with_context(|| cannot("not a usable key"))?;
    Ok(bytes)
}

/// Groups share the device id's alphabet (they may become topic levels).
fn check_group(group: &str) -> anyhow::Result<()> {
    ensure!(
        !group.is_empty()
            && group.len() <= 64
            && group
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "--group '{group}' must be 1-64 characters of A-Z a-z 0-9 - _"
    );
    Ok(())
}

/// Creates `out`, or accepts it if empty (or with `--force`).
fn prepare_out_dir(out: &Path, force: bool) -> anyhow::Result<()> {
    match fs::read_dir(out) {
        Ok(mut entries) => {
            if entries.next().is_some() && !force {
                bail!(
                    "--out {}: not empty (use --force to write into it, e.g. a mounted root \
                     file system)",
                    out.display()
                );
            }
            Ok(())
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            create_dirs(out).with_context(|| format!("--out {}: cannot create", out.display()))
        }
        Err(error) => {
            Err(error).with_context(|| format!("--out {}: not a readable directory", out.display()))
        }
    }
}

/// With `--force`: trust keys and TLS files of an earlier provisioning that this one does not
/// write. A key left behind would stay trusted.
fn remove_stale(out: &Path, outputs: &[Output]) -> anyhow::Result<()> {
    let written: BTreeSet<&Path> = outputs.iter().map(|o| o.path.as_path()).collect();
    let etc = Path::new("etc/outpost");
    let mut managed: Vec<PathBuf> = ["ca.pem", "client.crt", "client.key"]
        .iter()
        .map(|name| etc.join("tls").join(name))
        .chain([etc.join("secrets.toml")])
        .collect();
    if let Ok(entries) = fs::read_dir(out.join(etc).join("trust")) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            if Path::new(&name).extension().is_some_and(|ext| ext == "pub") {
                managed.push(etc.join("trust").join(name));
            }
        }
    }
    for path in managed {
        if !written.contains(path.as_path()) && out.join(&path).exists() {
            fs::remove_file(out.join(&path))
                .with_context(|| format!("removing the stale {}", out.join(&path).display()))?;
            println!("removed stale {}", path.display());
        }
    }
    Ok(())
}

/// Writes one file with exactly its mode (whatever the umask), replacing any earlier one.
fn write(out: &Path, output: &Output) -> anyhow::Result<()> {
    let path = out.join(&output.path);
    let context = || format!("writing {}", path.display());
    if let Some(parent) = path.parent() {
        create_dirs(parent).with_context(context)?;
    }
    // A fresh file: an existing one might be a link, or readable by others until chmod.
    match fs::remove_file(&path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            return Err(error).with_context(context);
        }
        _ => {}
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(output.mode);
        let mut file = options.open(&path).with_context(context)?;
        file.set_permissions(fs::Permissions::from_mode(output.mode))
            .with_context(context)?;
        file.write_all(&output.contents).with_context(context)?;
        file.sync_all().with_context(context)?;
    }
    #[cfg(not(unix))]
    {
        let mut file = options.open(&path).with_context(context)?;
        file.write_all(&output.contents).with_context(context)?;
    }
    Ok(())
}

/// `mkdir -p` with mode 0755 for the directories it creates (existing ones keep theirs).
fn create_dirs(dir: &Path) -> std::io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o755);
    }
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_strings_read_back_as_they_were() {
        for value in [
            "plain",
            "with \"quotes\"",
            "back\\slash",
            "tab\tnew\nline",
            "ünï",
        ] {
            let text = format!("value = {}", quote(value));
            let table: toml::Table = toml::from_str(&text).expect("valid TOML");
            assert_eq!(table["value"].as_str(), Some(value), "{text}");
        }
    }

    #[test]
    fn trust_key_names_come_from_the_file_name() {
        assert_eq!(
            trust_key_name(Path::new("keys/release-2025.pub")).expect("valid"),
            "release-2025"
        );
        assert_eq!(
            trust_key_name(Path::new("ops_key")).expect("valid"),
            "ops_key"
        );
        assert!(trust_key_name(Path::new("keys/.pub")).is_err());
        assert!(trust_key_name(Path::new("my key.pub")).is_err());
    }
}
