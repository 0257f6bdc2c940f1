//! How the operator's commands (`fleet tail`, `fleet status`, `fleet publish`, ...) reach a
//! broker: the same settings a device has in `agent.toml`'s `[mqtt]` (URL, user, password, CA,
//! client certificate and key, topic prefix), from flags, the environment and an operator
//! config file, turned into a transport config by the agent's own translation
//! ([`MqttSettings::mqtt_config`]), so the two sides cannot drift apart.
//!
//! Precedence: flags, then `OUTPOST_PASSWORD` (the password only), then the config file
//! (`--config FILE`, else `~/.config/outpost/operator.toml` if it exists), then defaults. The
//! password is never a flag value: process lists and shell histories show those.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};
use outpost::config::MqttSettings;
use outpost_hal::mqtt::{MqttConfig, Protocol, RumqttcTransport, TransportError};
use serde::Deserialize;

/// The environment variable holding the broker password, when no `--password-file` is given.
pub const PASSWORD_ENV: &str = "OUTPOST_PASSWORD";

/// The operator config file's place under the user's config directory.
const DEFAULT_CONFIG: &str = "outpost/operator.toml";

/// Connection settings of every command that talks to a broker (`#[command(flatten)]`).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct BrokerArgs {
    /// Broker URL, mqtt://host[:port] or mqtts://host[:port] (else `[broker] url` of the
    /// operator config).
    #[arg(long, value_name = "URL")]
    pub broker: Option<String>,
    /// Broker user name.
    #[arg(long)]
    pub username: Option<String>,
    /// File whose first line is the broker password (else env OUTPOST_PASSWORD, else
    /// `[broker] password_file`).
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// CA certificate (PEM) that signed an mqtts:// broker's certificate (else the system's
    /// roots).
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS.
    #[arg(long, value_name = "PEM")]
    pub client_cert: Option<PathBuf>,
    /// Client private key (PEM) for mutual TLS.
    #[arg(long, value_name = "PEM")]
    pub client_key: Option<PathBuf>,
    /// Topic prefix (default outpost).
    #[arg(long)]
    pub topic_prefix: Option<String>,
    /// Operator config file with a `[broker]` table (default ~/.config/outpost/operator.toml,
    /// if it exists); flags override it.
    #[arg(long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Send the password over plain mqtt:// to a host that is not loopback (else refused).
    #[arg(long)]
    pub allow_plaintext_password: bool,
}

/// `operator.toml`: the operator's broker settings, the `[mqtt]` keys of `agent.toml` a person
/// at a workstation needs (the password in a file of its own, never in this one).
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OperatorFile {
    /// `[broker]`.
    #[serde(default)]
    pub broker: BrokerTable,
}

/// `[broker]` of `operator.toml`; relative paths resolve against the file's directory.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BrokerTable {
    /// `mqtt://host[:port]` or `mqtts://host[:port]`.
    pub url: Option<String>,
    /// User name.
    pub username: Option<String>,
    /// File whose first line is the password.
    pub password_file: Option<PathBuf>,
    /// CA certificate (PEM) for `mqtts://`.
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS.
    pub client_cert: Option<PathBuf>,
    /// Client key (PEM) for mutual TLS.
    pub client_key: Option<PathBuf>,
    /// Topic prefix (default `outpost`).
    pub topic_prefix: Option<String>,
    /// `"5"` (default, falling back to 3.1.1) or `"3.1.1"`.
    pub protocol: Option<String>,
    /// TCP_NODELAY on the socket (default true).
    pub tcp_nodelay: Option<bool>,
    /// Send the password over plain `mqtt://` to a host that is not loopback (default false).
    pub allow_plaintext_password: Option<bool>,
}

/// Where the password came from, for error messages that name the fix.
#[derive(Debug, Clone, PartialEq)]
enum PasswordSource {
    /// `--password-file FILE`.
    Flag(PathBuf),
    /// `OUTPOST_PASSWORD`.
    Env,
    /// `[broker] password_file` of the operator config.
    File(PathBuf),
}

/// A broker to talk to: the transport's settings and the topic prefix.
#[derive(Debug, Clone)]
pub struct Broker {
    /// What sessions are opened with.
    pub mqtt: MqttConfig,
    /// Topic prefix.
    pub prefix: String,
}

impl std::fmt::Display for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.mqtt.broker)
    }
}

impl Broker {
    /// A transport for this broker, its TLS files checked now. Each command opens sessions
    /// with a fresh random client id and a clean session: several may run at once.
    pub fn transport(&self) -> anyhow::Result<RumqttcTransport> {
        RumqttcTransport::new(self.mqtt.clone()).map_err(|error| anyhow::anyhow!(hint(&error)))
    }
}

/// The error of a failed connect (or transport setup), with the fix where one is known:
/// `broker refused the credentials (...); check --username and the password (...)`.
pub fn hint(error: &TransportError) -> String {
    let fix = match error {
        TransportError::CredentialsRefused { .. } => {
            "check --username and the password (--password-file, OUTPOST_PASSWORD or [broker] \
             password_file)"
        }
        TransportError::Tls { .. } => {
            "check --ca-file (the CA that signed the broker's certificate) and that the URL's \
             host is the name in that certificate"
        }
        TransportError::TlsFile { .. } => "give a readable PEM file",
        TransportError::Unreachable { .. } | TransportError::Timeout { .. } => {
            "check the --broker URL and that the broker is running"
        }
        _ => return error.to_string(),
    };
    format!("{error}; {fix}")
}

impl BrokerArgs {
    /// The broker these settings name, for a command called `command` (used in the client id):
    /// flags over `OUTPOST_PASSWORD` over the operator config file over defaults. Reads the
    /// config and password files; refuses a password that would cross the network unencrypted
    /// unless that was allowed.
    pub fn resolve(&self, command: &str) -> anyhow::Result<Broker> {
        let (file, file_path) = match &self.config {
            Some(path) => (load(path)?, Some(path.clone())),
            None => match default_config_path().filter(|path| path.is_file()) {
                Some(path) => (load(&path)?, Some(path)),
                None => (OperatorFile::default(), None),
            },
        };
        let env = std::env::var(PASSWORD_ENV).ok().filter(|p| !p.is_empty());
        let resolved = merge(self, file.broker, file_path.as_deref(), env)?;
        let broker = resolved
            .settings
            .mqtt_config(format!("outpost-{command}-{:08x}", fastrand::u32(..)));
        let mut mqtt = broker.map_err(|error| anyhow::anyhow!("{error}; {}", resolved.url_fix))?;
        // An operator's command is short-lived: nothing should queue for it while it is away.
        mqtt.clean_session = true;
        // Room for a whole fleet chunk (512 KiB) with its topic.
        mqtt.max_packet_bytes = 1 << 20;
        mqtt.validate()
            .map_err(|error| anyhow::anyhow!("{error}"))?;
        if let Some(problem) = outpost::config::plaintext_password(&resolved.settings) {
            bail!(
                "{problem}: use mqtts:// with --ca-file, or pass --allow-plaintext-password (or \
                 allow_plaintext_password = true under [broker])"
            );
        }
        Ok(Broker {
            mqtt,
            prefix: resolved.settings.topic_prefix,
        })
    }
}

/// The result of [`merge`]: the device-side settings, and how to fix a bad URL.
struct Merged {
    settings: MqttSettings,
    /// Where the URL came from, for its error.
    url_fix: String,
}

/// Flags over the environment over the file: the pure part of [`BrokerArgs::resolve`] (it
/// reads only the password file it picks).
fn merge(
    args: &BrokerArgs,
    file: BrokerTable,
    file_path: Option<&Path>,
    env_password: Option<String>,
) -> anyhow::Result<Merged> {
    let base = file_path
        .and_then(Path::parent)
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let in_file = |key: &str| match file_path {
        Some(path) => format!("[broker] {key} in {}", path.display()),
        None => format!("[broker] {key}"),
    };
    let (url, url_fix) = match (&args.broker, file.url) {
        (Some(url), _) => (url.clone(), "fix --broker".to_owned()),
        (None, Some(url)) => (url, format!("fix {}", in_file("url"))),
        (None, None) => bail!(
            "no broker given: add --broker mqtt://host:1883 (or mqtts://host:8883), or `url` \
             under [broker] in {}",
            file_path
                .map(Path::to_path_buf)
                .or_else(default_config_path)
                .map_or("the operator config".to_owned(), |p| p
                    .display()
                    .to_string())
        ),
    };
    let mut settings = MqttSettings::new(url);
    settings.username = args.username.clone().or(file.username);
    if let Some(prefix) = args.topic_prefix.clone().or(file.topic_prefix) {
        settings.topic_prefix = prefix;
    }
    if let Some(protocol) = file.protocol {
        settings.protocol = protocol
            .parse::<Protocol>()
            .map_err(|error| anyhow::anyhow!("{}: {error}", in_file("protocol")))?;
    }
    settings.allow_plaintext_password =
        args.allow_plaintext_password || file.allow_plaintext_password.unwrap_or(false);
    if let Some(nodelay) = file.tcp_nodelay {
        settings.tcp_nodelay = nodelay;
    }
    // TLS files: a flag names a file relative to the working directory, the config file one
    // relative to itself.
    let tls = [
        ("ca-file", "ca_file", &args.ca_file, file.ca_file),
        (
            "client-cert",
            "client_cert",
            &args.client_cert,
            file.client_cert,
        ),
        (
            "client-key",
            "client_key",
            &args.client_key,
            file.client_key,
        ),
    ];
    let mut chosen = Vec::new();
    for (flag, key, given, from_file) in tls {
        let picked = match (given, from_file) {
            (Some(path), _) => Some((path.clone(), format!("--{flag} {}", path.display()))),
            (None, Some(path)) => {
                let path = base.join(path);
                let label = format!("{} ({})", in_file(key), path.display());
                Some((path, label))
            }
            (None, None) => None,
        };
        if let Some((path, label)) = &picked {
            ensure!(
                path.is_file(),
                "{label}: no such file; give the PEM file's path (relative paths in the config \
                 file start at its directory)"
            );
        }
        chosen.push(picked.map(|(path, _)| path));
    }
    let [ca_file, client_cert, client_key] =
        <[_; 3]>::try_from(chosen).map_err(|_| anyhow::anyhow!("three TLS settings"))?;
    ensure!(
        client_cert.is_some() == client_key.is_some(),
        "a client certificate needs its key and the other way round: give both --client-cert \
         and --client-key"
    );
    let tls_given = ca_file.is_some() || client_cert.is_some();
    if tls_given && !settings.broker.starts_with("mqtts://") {
        bail!(
            "a CA file or client certificate needs an mqtts:// broker, not {}: use mqtts://host:8883",
            settings.broker
        );
    }
    settings.ca_file = ca_file;
    settings.client_cert = client_cert;
    settings.client_key = client_key;

    let source = match (
        &args.password_file,
        env_password.is_some(),
        file.password_file,
    ) {
        (Some(path), _, _) => Some(PasswordSource::Flag(path.clone())),
        (None, true, _) => Some(PasswordSource::Env),
        (None, false, Some(path)) => Some(PasswordSource::File(base.join(path))),
        (None, false, None) => None,
    };
    settings.password = match source {
        Some(PasswordSource::Flag(path)) => {
            ensure!(
                settings.username.is_some(),
                "--password-file needs a user name: add --username"
            );
            Some(read_password(
                &path,
                &format!("--password-file {}", path.display()),
            )?)
        }
        // The environment is ambient: without a user name it is not meant for this broker.
        Some(PasswordSource::Env) if settings.username.is_none() => None,
        Some(PasswordSource::Env) => env_password,
        Some(PasswordSource::File(path)) => {
            ensure!(
                settings.username.is_some(),
                "{} needs a user name: add --username or `username` under [broker]",
                in_file("password_file")
            );
            let label = format!("{} ({})", in_file("password_file"), path.display());
            Some(read_password(&path, &label)?)
        }
        None => None,
    };
    let prefix = &settings.topic_prefix;
    ensure!(
        !prefix.is_empty()
            && !prefix.contains(['+', '#'])
            && !prefix.starts_with('/')
            && !prefix.ends_with('/'),
        "topic prefix '{prefix}' must be non-empty, without wildcards or outer slashes"
    );
    Ok(Merged { settings, url_fix })
}

/// The first line of a password file; `label` names where the file was given.
pub fn read_password(file: &Path, label: &str) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(file).with_context(|| format!("{label}: cannot read"))?;
    let password = text.lines().next().unwrap_or_default();
    ensure!(!password.is_empty(), "{label}: the first line is empty");
    Ok(password.to_owned())
}

/// `$XDG_CONFIG_HOME/outpost/operator.toml`, else `$HOME/.config/outpost/operator.toml`.
fn default_config_path() -> Option<PathBuf> {
    let dir = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(dir.join(DEFAULT_CONFIG))
}

/// Reads and parses an operator config file.
fn load(path: &Path) -> anyhow::Result<OperatorFile> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "--config {}: cannot read (write a [broker] table there, or leave --config out)",
            path.display()
        )
    })?;
    parse(&text, path)
}

/// Parses operator config text; errors name the file, line and column.
pub fn parse(text: &str, path: &Path) -> anyhow::Result<OperatorFile> {
    toml::from_str(text).map_err(|error| {
        let (line, column) = error
            .span()
            .map(|span| {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                (line, column)
            })
            .unwrap_or((1, 1));
        anyhow::anyhow!(
            "{}:{line}:{column}: {}",
            path.display(),
            error.message().replace('\n', " ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(broker: &str) -> BrokerArgs {
        BrokerArgs {
            broker: Some(broker.into()),
            ..BrokerArgs::default()
        }
    }

    #[test]
    fn flags_override_the_file_and_file_paths_resolve_against_it() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("ca.pem"), "x")?;
        std::fs::write(dir.path().join("secret"), "s3cret\nignored\n")?;
        let path = dir.path().join("operator.toml");
        let file = parse(
            "[broker]\nurl = \"mqtts://broker.example:8883\"\nusername = \"ops\"\n\
             password_file = \"secret\"\nca_file = \"ca.pem\"\ntopic_prefix = \"farm\"\n",
            &path,
        )?;
        let merged = merge(&BrokerArgs::default(), file.broker, Some(&path), None)?;
        let s = &merged.settings;
        assert_eq!(s.broker, "mqtts://broker.example:8883");
        assert_eq!(s.username.as_deref(), Some("ops"));
        assert_eq!(s.password.as_deref(), Some("s3cret"));
        assert_eq!(
            s.ca_file.as_deref(),
            Some(dir.path().join("ca.pem").as_path())
        );
        assert_eq!(s.topic_prefix, "farm");

        let file = parse("[broker]\nurl = \"mqtt://a\"\nusername = \"ops\"\n", &path)?;
        let mut flags = args("mqtt://b:1884");
        flags.username = Some("me".into());
        flags.topic_prefix = Some("lab".into());
        let merged = merge(&flags, file.broker, Some(&path), Some("from-env".into()))?;
        let s = &merged.settings;
        assert_eq!(
            (
                s.broker.as_str(),
                s.username.as_deref(),
                s.password.as_deref()
            ),
            ("mqtt://b:1884", Some("me"), Some("from-env"))
        );
        assert_eq!(s.topic_prefix, "lab");
        Ok(())
    }

    #[test]
    fn mistakes_are_one_line_naming_the_fix() -> anyhow::Result<()> {
        let none = merge(&BrokerArgs::default(), BrokerTable::default(), None, None);
        assert!(format!("{:#}", none.err().expect("no URL")).contains("add --broker"));

        let mut missing_ca = args("mqtts://h");
        missing_ca.ca_file = Some("/nonexistent/ca.pem".into());
        let error = merge(&missing_ca, BrokerTable::default(), None, None).err();
        let error = error.expect("missing CA").to_string();
        assert!(
            error.contains("--ca-file /nonexistent/ca.pem: no such file"),
            "{error}"
        );

        let dir = tempfile::tempdir()?;
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "x")?;
        let mut plain = args("mqtt://h");
        plain.ca_file = Some(ca);
        let error = merge(&plain, BrokerTable::default(), None, None).err();
        assert!(
            error
                .expect("CA over mqtt")
                .to_string()
                .contains("use mqtts://")
        );

        let mut no_user = args("mqtt://h");
        no_user.password_file = Some(dir.path().join("pw"));
        let error = merge(&no_user, BrokerTable::default(), None, None).err();
        assert!(
            error
                .expect("no user")
                .to_string()
                .contains("add --username")
        );

        let error = parse("[broker]\nuri = \"mqtt://h\"\n", Path::new("op.toml")).err();
        let error = error.expect("unknown key").to_string();
        assert!(
            error.starts_with("op.toml:2:1:") && error.contains("uri"),
            "{error}"
        );
        Ok(())
    }

    #[test]
    fn the_environment_password_needs_a_user_name_to_apply() -> anyhow::Result<()> {
        let merged = merge(
            &args("mqtt://h"),
            BrokerTable::default(),
            None,
            Some("pw".into()),
        )?;
        assert_eq!(merged.settings.password, None);
        Ok(())
    }

    #[test]
    fn a_password_over_plain_mqtt_to_another_host_is_refused_unless_allowed() -> anyhow::Result<()>
    {
        let dir = tempfile::tempdir()?;
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "pw\n")?;
        let mut given = args("mqtt://broker.example");
        given.username = Some("ops".into());
        given.password_file = Some(secret);
        let settings = merge(&given, BrokerTable::default(), None, None)?.settings;
        assert!(outpost::config::plaintext_password(&settings).is_some());
        given.allow_plaintext_password = true;
        let settings = merge(&given, BrokerTable::default(), None, None)?.settings;
        assert_eq!(outpost::config::plaintext_password(&settings), None);
        Ok(())
    }
}
