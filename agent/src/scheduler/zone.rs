//! Loads cron triggers' time zones from the system's tz database, and refuses an app whose
//! zones are missing before it starts (a local app fails with the fix; a fleet app is refused
//! before activation, so its old version keeps running).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use outpost_manifest::timezone::{self, zoneinfo_dir};
use outpost_manifest::{AppManifest, TriggerKind};
use thiserror::Error;

/// Why a trigger's time zone cannot be used on this device.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ZoneError {
    /// The name is not spelled like a zone (the manifest loader normally catches this).
    #[error("trigger '{trigger}': {message}")]
    BadName {
        /// The trigger that names the zone.
        trigger: String,
        /// What is wrong with the name.
        message: String,
    },
    /// The tz database has no such zone, or no database is installed.
    #[error(
        "trigger '{trigger}': time zone {zone:?} is not installed on this device ({} is missing): install the tz database (`apt install tzdata`), or set TZDIR to where it lives",
        path.display()
    )]
    Missing {
        /// The trigger that names the zone.
        trigger: String,
        /// The zone's name.
        zone: String,
        /// The file looked for.
        path: PathBuf,
    },
    /// The file exists but is not a valid TZif file.
    #[error("trigger '{trigger}': time zone file {} is damaged: {reason} (reinstall tzdata)", path.display())]
    Damaged {
        /// The trigger that names the zone.
        trigger: String,
        /// The file read.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
}

/// Loads zone `zone` of trigger `trigger` from the database at `dir`.
pub fn load_from(dir: &Path, trigger: &str, zone: &str) -> Result<tz::TimeZone, ZoneError> {
    let path = timezone::zone_path(dir, zone).map_err(|message| ZoneError::BadName {
        trigger: trigger.into(),
        message,
    })?;
    let bytes = std::fs::read(&path).map_err(|_| ZoneError::Missing {
        trigger: trigger.into(),
        zone: zone.into(),
        path: path.clone(),
    })?;
    tz::TimeZone::from_tz_data(&bytes).map_err(|error| ZoneError::Damaged {
        trigger: trigger.into(),
        path,
        reason: error.to_string(),
    })
}

/// Loads zone `zone` of trigger `trigger` from the system's database (`$TZDIR` or
/// `/usr/share/zoneinfo`).
pub fn load(trigger: &str, zone: &str) -> Result<Arc<tz::TimeZone>, ZoneError> {
    load_from(&zoneinfo_dir(), trigger, zone).map(Arc::new)
}

/// Checks that every cron trigger's zone in `manifest` loads on this device.
pub fn check_app(manifest: &AppManifest) -> Result<(), ZoneError> {
    check_app_in(&zoneinfo_dir(), manifest)
}

/// [`check_app`] against the database at `dir`.
pub fn check_app_in(dir: &Path, manifest: &AppManifest) -> Result<(), ZoneError> {
    for component in &manifest.components {
        for trigger in &component.triggers {
            if let TriggerKind::Cron {
                timezone: Some(zone),
                ..
            } = &trigger.kind
            {
                load_from(dir, &trigger.name, zone)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_zone_is_refused_with_the_fix() {
        let empty = std::env::temp_dir().join(format!("outpost-nozones-{}", std::process::id()));
        let error = load_from(&empty, "wake", "Europe/Berlin").expect_err("no database");
        let message = error.to_string();
        assert!(
            message.starts_with("trigger 'wake': time zone \"Europe/Berlin\" is not installed"),
            "{message}"
        );
        assert!(message.contains("apt install tzdata"), "{message}");
    }

    #[test]
    fn an_app_with_a_missing_zone_is_refused_before_it_starts() {
        let text = "manifest_version = 1\n[app]\nname = \"a\"\nversion = \"1.0.0\"\n\
                    [[component]]\nid = \"c\"\nsource = \"c.wasm\"\n\
                    [[component.trigger]]\nname = \"wake\"\ncron = \"0 30 7 * * *\"\n\
                    timezone = \"Europe/Berlin\"\n";
        let manifest = outpost_manifest::parse(text, Path::new("/tmp/outpost.toml"))
            .expect("parses where tzdata is installed, and where no database exists");
        let empty = std::env::temp_dir().join(format!("outpost-nodb-{}", std::process::id()));
        let error = check_app_in(&empty, &manifest).expect_err("refused");
        assert!(matches!(error, ZoneError::Missing { ref zone, .. } if zone == "Europe/Berlin"));
        if Path::new(timezone::DEFAULT_ZONEINFO_DIR)
            .join("Europe/Berlin")
            .exists()
        {
            check_app_in(Path::new(timezone::DEFAULT_ZONEINFO_DIR), &manifest).expect("installed");
        }
    }

    #[test]
    fn the_system_database_loads_when_installed() {
        let dir = Path::new(timezone::DEFAULT_ZONEINFO_DIR);
        if !dir.join("Europe/Berlin").exists() {
            return; // tzdata not installed here; the refusal is tested above.
        }
        let berlin = load_from(dir, "t", "Europe/Berlin").expect("loads");
        // 2026-07-01T00:00:00Z is summer time: UTC+2.
        let summer = berlin.find_local_time_type(1_782_864_000).expect("offset");
        assert_eq!(summer.ut_offset(), 7_200);
    }
}
