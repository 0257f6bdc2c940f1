//! What `outpost watch` watches, and which components a change touches (no threads, no
//! printing: the CLI polls [`scan`] and acts on [`WatchSet::affected`]).
//!
//! A polling watcher over the app's own files rather than an OS notification crate: an app is a
//! few dozen files, so a stat of each every quarter second costs nothing measurable; it sees
//! changes on every filesystem (network and VM shares where inotify stays silent, editors that
//! replace files by rename); and it adds no dependency.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use outpost_manifest::AppManifest;

/// Directory names never descended into: build outputs, dependencies, VCS and state.
const SKIPPED_DIRS: &[&str] = &[
    "target",
    "node_modules",
    "zig-cache",
    ".zig-cache",
    "zig-out",
];

/// At most this many files are watched per root: a build workdir at the top of a large tree
/// must not turn each poll into a crawl.
pub const MAX_FILES_PER_ROOT: usize = 5_000;

/// One file's state as a poll sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Last modification.
    pub modified: Option<SystemTime>,
    /// Size in bytes.
    pub len: u64,
}

/// Every watched file and its stamp.
pub type Snapshot = BTreeMap<PathBuf, Stamp>;

/// The files of an app that matter: its manifest, each component's build inputs (the files
/// under its build's workdir) or, for a component without a build, its `.wasm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchSet {
    /// The manifest file.
    pub manifest: PathBuf,
    /// (component id, file or directory) pairs.
    pub roots: Vec<(String, PathBuf)>,
    /// Paths never watched: components' outputs (a build writing one must not trigger another)
    /// and the state directory.
    pub ignored: BTreeSet<PathBuf>,
}

/// What a set of changed files calls for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Affected {
    /// The manifest changed: reload it and rebuild everything.
    pub manifest: bool,
    /// Components whose inputs changed (rebuild those with a build, reload the others).
    pub components: BTreeSet<String>,
}

impl Affected {
    /// Whether nothing needs doing.
    pub fn is_empty(&self) -> bool {
        !self.manifest && self.components.is_empty()
    }
}

impl WatchSet {
    /// The files of `manifest`'s app; `state` (the data directory) is left out.
    pub fn of(manifest: &AppManifest, state: &Path) -> WatchSet {
        let mut ignored: BTreeSet<PathBuf> = manifest
            .components
            .iter()
            .map(|c| c.source.clone())
            .collect();
        ignored.insert(state.to_path_buf());
        let roots = manifest
            .components
            .iter()
            .map(|c| {
                let root = match &c.build {
                    Some(build) => build.workdir.clone(),
                    None => c.source.clone(),
                };
                (c.id.clone(), root)
            })
            .collect();
        WatchSet {
            manifest: manifest.path.clone(),
            roots,
            ignored,
        }
    }

    /// Stamps every watched file now.
    pub fn scan(&self) -> Snapshot {
        let mut snapshot = Snapshot::new();
        add_file(&mut snapshot, &self.manifest);
        let mut seen_roots = BTreeSet::new();
        for (_, root) in &self.roots {
            if seen_roots.insert(root.clone()) {
                let mut budget = MAX_FILES_PER_ROOT;
                walk(root, true, &self.ignored, &mut snapshot, &mut budget);
            }
        }
        snapshot
    }

    /// Which components (and whether the manifest) the `changed` files belong to.
    pub fn affected(&self, changed: &[PathBuf]) -> Affected {
        let mut affected = Affected::default();
        for path in changed {
            if *path == self.manifest {
                affected.manifest = true;
                continue;
            }
            for (id, root) in &self.roots {
                if path.starts_with(root) {
                    affected.components.insert(id.clone());
                }
            }
        }
        affected
    }
}

/// The files that differ between two snapshots: added, removed or changed.
pub fn changes(before: &Snapshot, after: &Snapshot) -> Vec<PathBuf> {
    let mut changed: Vec<PathBuf> = after
        .iter()
        .filter(|(path, stamp)| before.get(*path) != Some(stamp))
        .map(|(path, _)| path.clone())
        .collect();
    changed.extend(
        before
            .keys()
            .filter(|path| !after.contains_key(*path))
            .cloned(),
    );
    changed.sort();
    changed
}

fn add_file(snapshot: &mut Snapshot, path: &Path) {
    if let Ok(meta) = std::fs::metadata(path) {
        snapshot.insert(
            path.to_path_buf(),
            Stamp {
                modified: meta.modified().ok(),
                len: meta.len(),
            },
        );
    }
}

/// Stamps the files under `path`; `root` is the directory the walk started at, which is
/// watched whatever its name (an app may live in a hidden directory), while directories below
/// it named in [`SKIPPED_DIRS`] or hidden are not.
fn walk(
    path: &Path,
    root: bool,
    ignored: &BTreeSet<PathBuf>,
    snapshot: &mut Snapshot,
    budget: &mut usize,
) {
    if *budget == 0 || ignored.contains(path) {
        return;
    }
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    if meta.is_file() {
        *budget -= 1;
        add_file(snapshot, path);
        return;
    }
    if !meta.is_dir() {
        return;
    }
    let skipped = !root
        && path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|name| {
                SKIPPED_DIRS.contains(&name) || (name.starts_with('.') && name.len() > 1)
            });
    if skipped {
        return;
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return;
    };
    let mut children: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    children.sort();
    for child in children {
        walk(&child, false, ignored, snapshot, budget);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_name_added_changed_and_removed_files() {
        let stamp = |len| Stamp {
            modified: None,
            len,
        };
        let before: Snapshot = [("a".into(), stamp(1)), ("b".into(), stamp(1))].into();
        let after: Snapshot = [("a".into(), stamp(2)), ("c".into(), stamp(1))].into();
        let names: Vec<PathBuf> = changes(&before, &after);
        assert_eq!(
            names,
            vec![PathBuf::from("a"), PathBuf::from("b"), PathBuf::from("c")]
        );
        assert!(changes(&after, &after).is_empty());
    }

    #[test]
    fn a_scan_skips_outputs_state_and_build_dirs_and_maps_files_to_components() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        for file in [
            "outpost.toml",
            "src/lib.rs",
            "app.wasm",
            "target/x.rlib",
            ".outpost/state.redb",
            ".git/HEAD",
        ] {
            let path = root.join(file);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(&path, "x").expect("write");
        }
        let set = WatchSet {
            manifest: root.join("outpost.toml"),
            roots: vec![("app".into(), root.to_path_buf())],
            ignored: [root.join("app.wasm"), root.join(".outpost")].into(),
        };
        let files: Vec<PathBuf> = set.scan().into_keys().collect();
        assert_eq!(
            files,
            vec![root.join("outpost.toml"), root.join("src/lib.rs")]
        );
        let affected = set.affected(&[root.join("src/lib.rs")]);
        assert_eq!(affected.components, ["app".to_owned()].into());
        assert!(!affected.manifest);
        assert!(set.affected(&[root.join("outpost.toml")]).manifest);
    }
}
