//! The anti-rollback floor kept apart from the state file, so losing or replacing the state
//! file never re-opens the door to a downgrade.
//!
//! `fleet-floor.json` next to `state.redb` holds `app -> highest version ever accepted`. It is
//! written after each transaction that raises the floor (a new file, fsynced, renamed over the
//! old one, the directory fsynced: a reader sees the old or the new floor, never half of one),
//! consulted on every check together with the table ([`higher`] of the two wins), and merged
//! both ways whenever a store opens: into a fresh store after damage or a wipe, and from the
//! table into the file if the agent stopped between a commit and the file's rename. An
//! unreadable file is reported and the table alone decides until the next raise rewrites it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, StoreNotice, tables};

/// File name of the floor copy, next to the state file.
pub const FLOOR_FILE: &str = "fleet-floor.json";

#[derive(Serialize, Deserialize, Default, PartialEq, Eq, Debug)]
struct FloorFile {
    v: u8,
    floor: BTreeMap<String, String>,
}

/// The higher of two versions; one that does not parse loses to one that does, so a damaged
/// entry never lowers the floor.
pub(super) fn higher(a: Option<String>, b: Option<String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => {
            match (
                outpost_bundle::parse_version(&a),
                outpost_bundle::parse_version(&b),
            ) {
                (Ok(va), Ok(vb)) => Some(if vb > va { b } else { a }),
                (Err(_), Ok(_)) => Some(b),
                _ => Some(a),
            }
        }
        (a, b) => a.or(b),
    }
}

fn path_of(store: &Store) -> Option<PathBuf> {
    store
        .inner
        .file
        .as_deref()
        .map(|f| f.with_file_name(FLOOR_FILE))
}

fn read(path: &Path) -> Result<BTreeMap<String, String>, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice::<FloorFile>(&bytes)
            .map(|f| f.floor)
            .map_err(|e| format!("{} does not parse: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

fn write(path: &Path, floor: &BTreeMap<String, String>) -> std::io::Result<()> {
    let text = serde_json::to_vec_pretty(&FloorFile {
        v: 1,
        floor: floor.clone(),
    })
    .map_err(std::io::Error::other)?;
    super::side_file::replace(path, &text)
}

/// The floor of `app` in the file (`None` for an in-memory store, or if unreadable: reported).
pub(super) fn of(store: &Store, app: &str) -> Option<String> {
    let path = path_of(store)?;
    match read(&path) {
        Ok(mut floor) => floor.remove(app),
        Err(message) => {
            store.notify(StoreNotice::SideFile { message });
            None
        }
    }
}

/// Raises the file's floor of each app in `raised` (after their transaction committed).
pub(super) fn raise(store: &Store, raised: &[(String, String)]) {
    let Some(path) = path_of(store) else { return };
    if raised.is_empty() {
        return;
    }
    let mut floor = read(&path).unwrap_or_default();
    for (app, version) in raised {
        let merged = higher(floor.remove(app), Some(version.clone()));
        floor.extend(merged.map(|v| (app.clone(), v)));
    }
    if let Err(error) = write(&path, &floor) {
        store.notify(StoreNotice::SideFile {
            message: format!("cannot write {}: {error}", path.display()),
        });
    }
}

/// Merges the file and the table both ways: each ends with the higher floor of every app.
pub(super) fn reconcile(store: &Store) -> Result<(), StoreError> {
    let Some(path) = path_of(store) else {
        return Ok(());
    };
    let file = match read(&path) {
        Ok(file) => file,
        Err(message) => {
            store.notify(StoreNotice::SideFile { message });
            BTreeMap::new()
        }
    };
    let table = store.read("read the anti-rollback floor", |txn| {
        let table = txn.open_table(tables::HIGHEST)?;
        let mut out = BTreeMap::new();
        for row in table.iter()? {
            let (app, version) = row?;
            out.insert(app.value().to_string(), version.value().to_string());
        }
        Ok(out)
    })?;
    let mut merged = table.clone();
    for (app, version) in &file {
        let value = higher(merged.remove(app), Some(version.clone()));
        merged.extend(value.map(|v| (app.clone(), v)));
    }
    if merged != table {
        store.write("restore the anti-rollback floor", |txn| {
            let mut highest = txn.open_table(tables::HIGHEST)?;
            for (app, version) in &merged {
                highest.insert(app.as_str(), version.as_str())?;
            }
            Ok(())
        })?;
    }
    if merged != file
        && let Err(error) = write(&path, &merged)
    {
        store.notify(StoreNotice::SideFile {
            message: format!("cannot write {}: {error}", path.display()),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_higher_version_wins_and_garbage_never_lowers_the_floor() {
        let s = |v: &str| Some(v.to_string());
        assert_eq!(higher(s("1.2.0"), s("1.10.0")), s("1.10.0"));
        assert_eq!(higher(s("2.0.0"), s("1.10.0")), s("2.0.0"));
        assert_eq!(higher(None, s("1.0.0")), s("1.0.0"));
        assert_eq!(higher(s("garbage"), s("1.0.0")), s("1.0.0"));
        assert_eq!(higher(s("1.0.0"), s("garbage")), s("1.0.0"));
        assert_eq!(higher(None, None), None);
    }

    #[test]
    fn a_wiped_state_file_gets_its_floor_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join(super::super::STATE_FILE);
        {
            let store = Store::open(&state).expect("opens");
            store
                .fleet()
                .step("activate", |step| step.raise_floor("app", "2.0.0"))
                .expect("raises");
        }
        std::fs::remove_file(&state).expect("wipe");
        let store = Store::open(&state).expect("fresh store");
        assert_eq!(
            store.fleet().highest("app").expect("reads").as_deref(),
            Some("2.0.0")
        );
    }
}
