//! What this device lets any app do, whoever signed it: the device-local side of the
//! perimeter, checked when an app is admitted (local `--app` and fleet apps alike, after the
//! manifest's placeholders are filled), so no bundle signature can widen it.
//!
//! - **The agent's own topics**: no component may be granted a publish filter that can match a
//!   topic under `{prefix}/` (status, events, kv, update reports, commands, fleet offers).
//! - **`[policy]` in agent.toml** narrows grants further: which GPIO lines, which publish
//!   topics, which host interfaces any component may be granted. Unset keys do not narrow.
//! - **Secrets**: a variable whose value is exactly [`SECRET`] is filled from this device's
//!   secrets file under the same name, so a secret is never in a bundle (nor on the broker); a
//!   component reads it with `config_get` like any variable it is granted.
//!
//! Pure apart from [`Secrets::load`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use outpost_abi::Interface;
use outpost_manifest::{AppManifest, TopicFilter};
use serde::Deserialize;
use thiserror::Error;

/// The variable value that asks for the device's secret of the same name.
pub const SECRET: &str = "{secret}";

/// Why an app is refused by this device's policy.
#[derive(Debug, Error, PartialEq)]
#[non_exhaustive]
pub enum PolicyError {
    /// A publish grant reaches into the agent's own topics.
    #[error(
        "component '{component}': publish grant '{filter}' reaches the agent's own topics under \
         '{prefix}/' (refused on every device)"
    )]
    ReservedTopic {
        /// The component.
        component: String,
        /// The grant, placeholders filled.
        filter: String,
        /// The device's topic prefix.
        prefix: String,
    },
    /// A grant this device's `[policy]` does not allow.
    #[error(
        "component '{component}': {what} is not allowed by this device's [policy] in agent.toml"
    )]
    Narrowed {
        /// The component.
        component: String,
        /// What was granted: `GPIO line 'x'`, `publish 'a/#'`, `interface 'gpio'`.
        what: String,
    },
    /// A variable wants a secret this device does not have.
    #[error(
        "variable '{name}' wants this device's secret '{name}', which its secrets file does not \
         hold (add it there: docs/SECURITY.md)"
    )]
    MissingSecret {
        /// The variable and secret name.
        name: String,
    },
}

/// `[policy]` of agent.toml: the most any app may be granted on this device.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySettings {
    /// GPIO lines (as grants name them) any component may be granted; unset: any.
    #[serde(default)]
    pub gpio: Option<Vec<String>>,
    /// Topic filters every publish grant must lie within; unset: any outside `{prefix}/`.
    #[serde(default)]
    pub publish: Option<Vec<String>>,
    /// Host interfaces (`kv`, `streams`, `sensors`, `config`, `publish`, `gpio`) a component may
    /// be granted; unset: all.
    #[serde(default)]
    pub interfaces: Option<Vec<String>>,
}

impl PolicySettings {
    /// Checks names that types cannot: interface names and publish filters.
    pub fn validate(&self) -> Result<(), String> {
        for name in self.interfaces.iter().flatten() {
            if interface(name).is_none() {
                return Err(format!(
                    "[policy] interfaces: unknown interface '{name}' (known: {})",
                    ALL.map(Interface::grant_key).join(", ")
                ));
            }
        }
        for filter in self.publish.iter().flatten() {
            TopicFilter::new(filter).map_err(|e| format!("[policy] publish: '{filter}': {e}"))?;
        }
        Ok(())
    }
}

const ALL: [Interface; 6] = [
    Interface::KeyValue,
    Interface::Streams,
    Interface::Sensors,
    Interface::Config,
    Interface::Publish,
    Interface::Gpio,
];

fn interface(name: &str) -> Option<Interface> {
    ALL.into_iter().find(|i| i.grant_key() == name)
}

/// This device's secrets: name to value. Its `Debug` shows names only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secrets(BTreeMap<String, String>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// Why the secrets file cannot be used.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SecretsError {
    /// Unreadable.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Readable by others than its owner.
    #[error("{path}: mode {mode:o} lets others read the secrets: chmod 600 {path}")]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Not a TOML table of strings.
    #[error("{path}: {message} (expected NAME = \"value\" lines)")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
}

impl Secrets {
    /// Secrets from `path`, a TOML table of strings that only its owner may read (mode 0600 or
    /// stricter); none if it does not exist. Under systemd the unit hands the root-only file to
    /// the service as credential `secrets` (`$CREDENTIALS_DIRECTORY/secrets`), read in its place.
    pub fn load(path: &Path) -> Result<Secrets, SecretsError> {
        let credential = std::env::var_os("CREDENTIALS_DIRECTORY")
            .map(|dir| PathBuf::from(dir).join("secrets"))
            .filter(|path| path.is_file());
        let path = credential.as_deref().unwrap_or(path);
        let io = |source| SecretsError::Io {
            path: path.to_owned(),
            source,
        };
        let metadata = match std::fs::metadata(path) {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Secrets::default());
            }
            Err(error) => return Err(io(error)),
        };
        // A credential is private to the service by systemd's own rules (its mode differs
        // between versions); a file read directly must be its owner's alone.
        #[cfg(unix)]
        if credential.is_none() {
            use std::os::unix::fs::PermissionsExt;
            let mode = metadata.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(SecretsError::Exposed {
                    path: path.to_owned(),
                    mode,
                });
            }
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        Secrets::parse(&text).map_err(|message| SecretsError::Syntax {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses the file's text (errors never quote values).
    pub fn parse(text: &str) -> Result<Secrets, String> {
        toml::from_str::<BTreeMap<String, String>>(text)
            .map(Secrets)
            .map_err(|e| {
                // Only the place: toml's own message can quote the offending value.
                let line = e.span().map_or(1, |span| {
                    text[..span.start.min(text.len())].matches('\n').count() + 1
                });
                format!("line {line} is not valid")
            })
    }

    /// How many secrets there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What the device admits: its topic prefix, `[policy]` and secrets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppPolicy {
    /// `[policy]`.
    pub settings: PolicySettings,
    /// The secrets file's contents.
    pub secrets: Secrets,
}

impl AppPolicy {
    /// Checks `manifest` (placeholders filled for this device, topic prefix `prefix`) and
    /// returns the variables its components read, secrets filled in.
    pub fn admit(
        &self,
        manifest: &AppManifest,
        prefix: &str,
    ) -> Result<BTreeMap<String, String>, PolicyError> {
        let settings = &self.settings;
        let allowed_publish: Option<Vec<TopicFilter>> = settings.publish.as_ref().map(|filters| {
            filters
                .iter()
                .filter_map(|f| TopicFilter::new(f).ok())
                .collect()
        });
        for component in &manifest.components {
            let grants = &component.grants;
            let refuse = |what: String| PolicyError::Narrowed {
                component: component.id.clone(),
                what,
            };
            if let Some(allowed) = &settings.interfaces {
                for iface in ALL {
                    if grants.grants(iface) && !allowed.iter().any(|a| a == iface.grant_key()) {
                        return Err(refuse(format!("interface '{}'", iface.grant_key())));
                    }
                }
            }
            for filter in &grants.publish {
                if may_match_under(filter.as_str(), prefix) {
                    return Err(PolicyError::ReservedTopic {
                        component: component.id.clone(),
                        filter: filter.as_str().to_owned(),
                        prefix: prefix.to_owned(),
                    });
                }
                if let Some(allowed) = &allowed_publish
                    && !allowed.iter().any(|a| covers(a.as_str(), filter.as_str()))
                {
                    return Err(refuse(format!("publish '{}'", filter.as_str())));
                }
            }
            if let Some(lines) = &settings.gpio {
                for grant in &grants.gpio {
                    if !lines.contains(&grant.line) {
                        return Err(refuse(format!("GPIO line '{}'", grant.line)));
                    }
                }
            }
        }
        let mut variables = manifest.variables.clone();
        for (name, value) in &mut variables {
            if value == SECRET {
                *value = self
                    .secrets
                    .0
                    .get(name)
                    .cloned()
                    .ok_or_else(|| PolicyError::MissingSecret { name: name.clone() })?;
            }
        }
        Ok(variables)
    }
}

/// Whether `filter` can match any topic under `{prefix}/`.
pub fn may_match_under(filter: &str, prefix: &str) -> bool {
    let mut levels = filter.split('/');
    for own in prefix.split('/') {
        match levels.next() {
            Some("#") => return true,
            Some(level) if level == "+" || level == own => {}
            _ => return false,
        }
    }
    // Every topic under the prefix has at least one more level; any further level of the
    // filter can match one.
    levels.next().is_some()
}

/// Whether every topic `inner` matches is matched by `outer`.
fn covers(outer: &str, inner: &str) -> bool {
    let mut inner_levels = inner.split('/');
    for level in outer.split('/') {
        if level == "#" {
            return true;
        }
        match inner_levels.next() {
            Some("#") | None => return false,
            Some(_) if level == "+" => {}
            Some(inner_level) if inner_level == level => {}
            Some(_) => return false,
        }
    }
    inner_levels.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_that_can_reach_the_prefix_are_found() {
        for reaching in [
            "outpost/pi-1/status",
            "+/x",
            "#",
            "outpost/#",
            "+/+/events/+",
        ] {
            assert!(may_match_under(reaching, "outpost"), "{reaching}");
        }
        for outside in ["site/x", "outpost", "out/#", "+"] {
            assert!(!may_match_under(outside, "outpost"), "{outside}");
        }
        assert!(may_match_under("farm/+/x", "farm/east"));
        assert!(!may_match_under("farm/west/x", "farm/east"));
    }

    #[test]
    fn coverage_is_per_level() {
        assert!(covers("site/#", "site/a/b"));
        assert!(covers("site/+/lamp", "site/pi-1/lamp"));
        assert!(covers("site/+/lamp", "site/+/lamp"));
        assert!(!covers("site/+/lamp", "site/#"));
        assert!(!covers("site/a", "site/a/b"));
        assert!(!covers("site/a/b", "site/a"));
        assert!(covers("#", "anything/at/all"));
    }

    #[test]
    fn secrets_parse_and_never_show_their_values() {
        let secrets = Secrets::parse("token = \"s3cret\"\n").expect("parses");
        assert_eq!(format!("{secrets:?}"), "{\"token\"}");
        let error = Secrets::parse("a = \"x\"\ntoken = 5123\n").expect_err("not a string");
        assert_eq!(error, "line 2 is not valid");
    }
}
