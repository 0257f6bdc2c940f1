//! The broker side of `outpost provision --broker-dir DIR`: each device's identity on a
//! mosquitto broker and what it may touch there.
//!
//! ```text
//! DIR/devices.toml      the registry: prefix, operator user, each device's groups and extras
//! DIR/devices.passwd    mosquitto password file of the devices' listener (0600)
//! DIR/devices.acl       mosquitto ACL, regenerated from the registry on every run
//! DIR/mosquitto.conf    the listeners that use them (written once; edit it freely)
//! ```
//!
//! The ACL rests on one invariant: **a device's user name is its device id**, and on its
//! listener `use_username_as_clientid true` makes that its client id too, so no client can take
//! another's session. `pattern` rules give every device its own `{prefix}/{device}/` (`%u`);
//! mosquitto patterns substitute whole topic levels only, so the reads that depend on the
//! device (`{prefix}/fleet/@{device}/#`, each group's `{prefix}/fleet/{group}/#`) are
//! generated per device under its `user` line. Only the operator user writes `{prefix}/fleet/`
//! and other devices' command topics.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use anyhow::{Context, ensure};
use serde::{Deserialize, Serialize};

/// The registry file under `--broker-dir`.
pub const REGISTRY: &str = "devices.toml";
/// The devices' password file under `--broker-dir`.
pub const PASSWD: &str = "devices.passwd";
/// The ACL file under `--broker-dir`.
pub const ACL: &str = "devices.acl";
/// The listener configuration under `--broker-dir`.
pub const CONF: &str = "mosquitto.conf";

/// `devices.toml`: everything the ACL is generated from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    /// The topic prefix every rule is under.
    pub prefix: String,
    /// The operator's user name (on the operators' listener).
    pub operator: String,
    /// Each device by id.
    #[serde(default)]
    pub devices: BTreeMap<String, DeviceEntry>,
}

/// One device in the registry.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceEntry {
    /// Its fleet groups: it reads `{prefix}/fleet/{group}/#` (offers and group commands).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Extra topic filters it may read (its apps' `mqtt` triggers outside `{prefix}/`).
    #[serde(default)]
    pub read: Vec<String>,
    /// Extra topic filters it may write (its apps' publish grants outside `{prefix}/`).
    #[serde(default)]
    pub write: Vec<String>,
}

impl Registry {
    /// Reads `DIR/devices.toml`, or a new registry if there is none.
    pub fn load_or_new(dir: &Path, prefix: &str, operator: &str) -> anyhow::Result<Registry> {
        let path = dir.join(REGISTRY);
        let registry = match fs::read_to_string(&path) {
            Ok(text) => toml::from_str::<Registry>(&text)
                .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message()))?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Registry {
                    prefix: prefix.to_owned(),
                    operator: operator.to_owned(),
                    devices: BTreeMap::new(),
                });
            }
            Err(error) => {
                return Err(error).with_context(|| format!("{}: cannot read", path.display()));
            }
        };
        ensure!(
            registry.prefix == prefix && registry.operator == operator,
            "{}: made for prefix '{}' and operator '{}', not '{prefix}' and '{operator}' (one \
             --broker-dir per broker and prefix)",
            path.display(),
            registry.prefix,
            registry.operator
        );
        Ok(registry)
    }

    /// Checks that `device` can be given an ACL of its own.
    pub fn check_device(&self, device: &str) -> anyhow::Result<()> {
        // `{prefix}/fleet/` is the fleet root and the operator's name its own namespace: a
        // device with either id would be granted them by the `%u` pattern.
        ensure!(
            device != "fleet" && device != self.operator,
            "--device-id '{device}' is reserved on the broker ('fleet' is the fleet topic root, \
             '{}' the operator's user name): choose another id",
            self.operator
        );
        Ok(())
    }

    /// The ACL file's text.
    pub fn acl(&self) -> String {
        let prefix = &self.prefix;
        let mut text = format!(
            "# mosquitto ACL for the Outpost devices under topic prefix '{prefix}'.\n\
             # Written by `outpost provision --broker-dir` from {REGISTRY} next to it: edit that \
             file\n# (or provision again), not this one. docs/SECURITY.md explains each rule.\n\
             # Needs, on the devices' listener: allow_anonymous false, password_file {PASSWD},\n\
             # use_username_as_clientid true (a device's user name = device id = client id).\n\
             \n\
             # Every device: writes (events, status, kv, update reports) and reads (its commands)\n\
             # only under its own {prefix}/<device>/.\n\
             pattern readwrite {prefix}/%u/#\n\
             \n\
             # The operator: offers, chunks and group commands under {prefix}/fleet/, commands to\n\
             # any device, and reading everything the devices publish.\n\
             user {}\n\
             topic readwrite {prefix}/#\n",
            self.operator
        );
        for (device, entry) in &self.devices {
            let _ = write!(
                text,
                "\n# device {device}\nuser {device}\ntopic read {prefix}/fleet/@{device}/#\n"
            );
            for group in &entry.groups {
                let _ = writeln!(text, "topic read {prefix}/fleet/{group}/#");
            }
            for filter in &entry.read {
                let _ = writeln!(text, "topic read {filter}");
            }
            for filter in &entry.write {
                let _ = writeln!(text, "topic write {filter}");
            }
        }
        text
    }

    /// The registry file's text.
    pub fn to_text(&self) -> anyhow::Result<String> {
        Ok(format!(
            "# Written by `outpost provision --broker-dir`; {ACL} is generated from it.\n{}",
            toml::to_string(self).context("rendering the device registry")?
        ))
    }
}

/// `devices.passwd` with `device`'s line replaced by `line` (or added).
pub fn replace_password_line(existing: &str, device: &str, line: Option<&str>) -> String {
    let own = format!("{device}:");
    let mut text: String = existing
        .lines()
        .filter(|l| !l.starts_with(&own) && !l.trim().is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    if let Some(line) = line {
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// The listeners, written once as a starting point (paths as on a Debian broker host).
pub fn mosquitto_conf() -> String {
    format!(
        "# Outpost listeners, written by `outpost provision --broker-dir`. Copy this directory to\n\
         # /etc/mosquitto/outpost/ and include this file from mosquitto.conf\n\
         # (`include_dir` or by hand); `per_listener_settings` must come before any listener.\n\
         per_listener_settings true\n\
         \n\
         # Devices: each logs in as its device id, which also becomes its client id, so a\n\
         # device cannot take over another's session. Add cafile/certfile/keyfile for TLS\n\
         # (docs/SECURITY.md); with client certificates add `require_certificate true` and\n\
         # `use_identity_as_username true` (the certificate's CN must be the device id).\n\
         listener 8883\n\
         allow_anonymous false\n\
         password_file /etc/mosquitto/outpost/{PASSWD}\n\
         acl_file /etc/mosquitto/outpost/{ACL}\n\
         use_username_as_clientid true\n\
         \n\
         # Operators (outpost fleet ...): their own password file, so no device credential logs\n\
         # in here; client ids stay free, so several operator commands can run at once.\n\
         # Create it with: mosquitto_passwd -c /etc/mosquitto/outpost/operators.passwd operator\n\
         listener 8884\n\
         allow_anonymous false\n\
         password_file /etc/mosquitto/outpost/operators.passwd\n\
         acl_file /etc/mosquitto/outpost/{ACL}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Registry {
        let mut devices = BTreeMap::new();
        devices.insert(
            "pi-1".to_owned(),
            DeviceEntry {
                groups: vec!["north".into()],
                read: vec!["site/alarms/#".into()],
                write: vec!["site/pi-1/lamp".into()],
            },
        );
        Registry {
            prefix: "outpost".into(),
            operator: "operator".into(),
            devices,
        }
    }

    #[test]
    fn the_acl_gives_each_device_its_namespace_groups_and_extras() {
        let acl = registry().acl();
        for line in [
            "pattern readwrite outpost/%u/#",
            "user operator\ntopic readwrite outpost/#",
            "user pi-1\ntopic read outpost/fleet/@pi-1/#\ntopic read outpost/fleet/north/#\n\
             topic read site/alarms/#\ntopic write site/pi-1/lamp",
        ] {
            assert!(acl.contains(line), "{line}\n{acl}");
        }
        assert!(!acl.contains("write outpost/fleet"), "{acl}");
    }

    #[test]
    fn reserved_ids_are_refused_and_the_registry_reads_back() -> anyhow::Result<()> {
        let registry = registry();
        assert!(registry.check_device("fleet").is_err());
        assert!(registry.check_device("operator").is_err());
        registry.check_device("pi-2")?;
        let back: Registry = toml::from_str(&registry.to_text()?)?;
        assert_eq!(back, registry);
        Ok(())
    }

    #[test]
    fn password_lines_are_replaced_per_device() {
        let text = "pi-1:old\npi-10:other\n";
        assert_eq!(
            replace_password_line(text, "pi-1", Some("pi-1:new")),
            "pi-10:other\npi-1:new\n"
        );
        assert_eq!(replace_password_line(text, "pi-1", None), "pi-10:other\n");
    }
}
