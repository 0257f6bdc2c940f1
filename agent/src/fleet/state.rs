//! What the fleet updater keeps (installs, downloads, announcements dealt with) and each step
//! it takes. Each step of an update (start a download, store a chunk, activate, roll back,
//! refuse, abandon) is one durable transaction of the store ([`FleetStore::step`]), and its
//! report is appended to the outbox inside that same transaction: a report is never lost, and
//! never sent for something that did not happen.

use std::sync::Arc;

use outpost_bundle::{Digest, KeyId};
use serde::{Deserialize, Serialize};

use super::report::UpdateReport;
use crate::store::committer::CommitStats;
use crate::store::records::{RecordBody, RecordV1};
use crate::store::{FleetStep, FleetStore, Store, StoreError};

/// One installed version of an app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstalledVersion {
    /// Its version (semver text).
    pub version: String,
    /// SHA-256 of its bundle file.
    pub digest: Digest,
    /// Who signed it.
    pub key_id: KeyId,
    /// When it was activated, ms since the epoch.
    pub installed_ms: i64,
}

/// The health window of a freshly activated version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Trial {
    /// Invocations finished so far.
    pub invocations: u32,
    /// Of those, how many failed (trap, limit, error status).
    pub failures: u32,
}

/// What is installed for one app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Install {
    /// The version that runs.
    pub active: InstalledVersion,
    /// The version to roll back to, if any.
    pub previous: Option<InstalledVersion>,
    /// Set while the active version is on trial.
    pub trial: Option<Trial>,
}

/// A download in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// The target whose topics it comes from, as its topic segment: a group name or
    /// `@{device}` ([`super::topics::Target`]).
    pub group: String,
    /// The announcement message it follows.
    pub announcement: Vec<u8>,
    /// One bit per chunk: stored or not.
    pub received: Vec<u8>,
    /// Chunk payload bytes received, repeats and bad ones included (link cost).
    pub bytes_received: u64,
    /// When it started, ms since the epoch.
    pub started_ms: i64,
}

impl Transfer {
    /// Whether chunk `index` is stored.
    pub fn has(&self, index: usize) -> bool {
        self.received
            .get(index / 8)
            .is_some_and(|byte| byte & (1 << (index % 8)) != 0)
    }

    /// Marks chunk `index` stored.
    pub fn set(&mut self, index: usize) {
        if let Some(byte) = self.received.get_mut(index / 8) {
            *byte |= 1 << (index % 8);
        }
    }

    /// Chunks stored.
    pub fn count(&self) -> usize {
        self.received.iter().map(|b| b.count_ones() as usize).sum()
    }
}

/// An announcement already dealt with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    /// The bundle it announced.
    pub digest: Digest,
    /// What became of it (`accepted`, `refused`, `rolled-back`, `abandoned`).
    pub result: String,
}

/// The fleet updater's view of the store.
#[derive(Clone)]
pub struct FleetState {
    store: Store,
    /// `{prefix}/{device}/updates`.
    report_topic: String,
    /// Woken after a report is written, so the sync engine sends it at once.
    wake: Option<Arc<CommitStats>>,
}

impl FleetState {
    /// The fleet state in `store`, reporting to `report_topic`.
    pub fn new(store: Store, report_topic: String) -> FleetState {
        FleetState {
            store,
            report_topic,
            wake: None,
        }
    }

    /// Wakes the sync engine through `stats` (the agent committer's) after each report.
    pub fn with_wake(mut self, stats: Arc<CommitStats>) -> FleetState {
        self.wake = Some(stats);
        self
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The fleet tables, for reads.
    fn tables(&self) -> FleetStore<'_> {
        self.store.fleet()
    }

    /// What is installed for `app`.
    pub fn install(&self, app: &str) -> Result<Option<Install>, StoreError> {
        self.tables().install(app)
    }

    /// Every installed app, by name.
    pub fn installs(&self) -> Result<Vec<(String, Install)>, StoreError> {
        self.tables().installs()
    }

    /// The highest version of `app` ever accepted.
    pub fn highest(&self, app: &str) -> Result<Option<String>, StoreError> {
        self.tables().highest(app)
    }

    /// The last announcement of `app` dealt with.
    pub fn seen(&self, app: &str) -> Result<Option<Seen>, StoreError> {
        self.tables().seen(app)
    }

    /// The download of `app` in progress.
    pub fn transfer(&self, app: &str) -> Result<Option<Transfer>, StoreError> {
        self.tables().transfer(app)
    }

    /// Every download in progress, by app.
    pub fn transfers(&self) -> Result<Vec<(String, Transfer)>, StoreError> {
        self.tables().transfers()
    }

    /// The stored bundle file of `app` at `version`.
    pub fn bundle(&self, app: &str, version: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.tables().bundle(app, version)
    }

    /// The stored chunks of `app`'s download, concatenated in order (`count` of them).
    pub fn assemble(&self, app: &str, count: u32) -> Result<Option<Vec<u8>>, StoreError> {
        self.tables().assemble(app, count)
    }

    /// Starts (or restarts) the download of `app`, dropping chunks of any earlier one.
    pub fn begin_transfer(&self, app: &str, transfer: &Transfer) -> Result<(), StoreError> {
        self.step("start a download", |step| {
            step.clear_chunks(app)?;
            step.put_transfer(app, transfer)
        })
    }

    /// Stores chunk `index` with the transfer's new progress, in one transaction.
    pub fn put_chunk(
        &self,
        app: &str,
        index: u32,
        data: &[u8],
        transfer: &Transfer,
    ) -> Result<(), StoreError> {
        self.step("store a chunk", |step| {
            step.put_chunk(app, index, data)?;
            step.put_transfer(app, transfer)
        })
    }

    /// Ends `app`'s download without installing (abandoned or refused after download), marks its
    /// announcement seen and reports why.
    pub fn end_transfer(
        &self,
        app: &str,
        seen: &Seen,
        report: &UpdateReport,
    ) -> Result<(), StoreError> {
        self.step("end a download", |step| {
            step.clear_chunks(app)?;
            step.remove_transfer(app)?;
            step.mark_seen(app, seen)?;
            self.report(step, report)
        })
    }

    /// Marks an announcement seen and reports why it was refused (nothing was downloaded).
    pub fn refuse(&self, app: &str, seen: &Seen, report: &UpdateReport) -> Result<(), StoreError> {
        self.step("refuse an announcement", |step| {
            step.mark_seen(app, seen)?;
            self.report(step, report)
        })
    }

    /// Records `report` alone (an app stopped because its signer was revoked, a trust document
    /// taken or refused).
    pub fn record(&self, report: &UpdateReport) -> Result<(), StoreError> {
        self.step("record a report", |step| self.report(step, report))
    }

    /// Makes `version` (whose verified bundle file is `bundle`) the active version of `app` in
    /// one transaction: stores the bundle, keeps the old active version as the previous one
    /// (dropping the one before it), starts its trial, raises the anti-rollback floor, ends the
    /// download and reports. Power loss leaves either the old or the new version active.
    pub fn activate(
        &self,
        app: &str,
        bundle: &[u8],
        version: InstalledVersion,
        report: &UpdateReport,
    ) -> Result<Install, StoreError> {
        self.step("activate an update", |step| {
            let old = step.install(app)?;
            if let Some(stale) = old.as_ref().and_then(|o| o.previous.as_ref()) {
                step.remove_bundle(app, &stale.version)?;
            }
            step.put_bundle(app, &version.version, bundle)?;
            let install = Install {
                previous: old.map(|o| o.active),
                active: version,
                trial: Some(Trial::default()),
            };
            step.set_install(app, Some(&install))?;
            step.raise_floor(app, &install.active.version)?;
            step.clear_chunks(app)?;
            step.remove_transfer(app)?;
            step.mark_seen(
                app,
                &Seen {
                    digest: install.active.digest,
                    result: "accepted".into(),
                },
            )?;
            self.report(step, report)?;
            Ok(install)
        })
    }

    /// Rolls `app` back to its previous version (or removes it if there is none) and reports
    /// why; the failed version's bundle is deleted and its announcement marked seen, so it is not
    /// fetched again. Returns what is installed now.
    pub fn roll_back(
        &self,
        app: &str,
        report: &UpdateReport,
    ) -> Result<Option<Install>, StoreError> {
        self.step("roll back an update", |step| {
            let Some(old) = step.install(app)? else {
                return Ok(None);
            };
            step.remove_bundle(app, &old.active.version)?;
            step.mark_seen(
                app,
                &Seen {
                    digest: old.active.digest,
                    result: "rolled-back".into(),
                },
            )?;
            let now = old.previous.map(|previous| Install {
                active: previous,
                previous: None,
                trial: None,
            });
            step.set_install(app, now.as_ref())?;
            self.report(step, report)?;
            Ok(now)
        })
    }

    /// Records the trial's progress of `app`'s active version (`None` ends the trial: the
    /// version is confirmed), with an optional report.
    pub fn set_trial(
        &self,
        app: &str,
        version: &str,
        trial: Option<Trial>,
        report: Option<&UpdateReport>,
    ) -> Result<(), StoreError> {
        self.step("record a trial", |step| {
            let Some(mut install) = step.install(app)? else {
                return Ok(());
            };
            // A late outcome of a version already replaced must not touch the new one's trial.
            if install.active.version != version {
                return Ok(());
            }
            install.trial = trial;
            step.set_install(app, Some(&install))?;
            if let Some(report) = report {
                self.report(step, report)?;
            }
            Ok(())
        })
    }

    /// The last update report line of every app that has one.
    pub fn last_updates(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.tables().last_updates()
    }

    /// Queues `report` for the broker and keeps its line as the app's last, inside `step`.
    fn report(&self, step: &mut FleetStep<'_>, report: &UpdateReport) -> Result<(), StoreError> {
        step.report(
            &report.line(),
            RecordV1 {
                time_ms: report.time_ms,
                app: report.app.clone(),
                component: "outpost.fleet".into(),
                body: RecordBody::Publish {
                    topic: self.report_topic.clone(),
                    payload: report.to_json(),
                    qos: 1,
                    retain: false,
                },
            },
        )?;
        Ok(())
    }

    /// Runs one step in one durable transaction, then wakes the sync engine for its report.
    fn step<T>(
        &self,
        action: &'static str,
        body: impl FnOnce(&mut FleetStep<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let value = self.tables().step(action, body)?;
        if let Some(wake) = &self.wake {
            wake.committed.notify_one();
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::report::UpdateResult;

    fn report(app: &str, result: UpdateResult) -> UpdateReport {
        UpdateReport {
            device: "d".into(),
            app: app.into(),
            result,
            from_version: None,
            to_version: None,
            reason: "test".into(),
            bytes_received: None,
            bundle_bytes: None,
            time_ms: 0,
        }
    }

    fn version(v: &str, byte: u8) -> InstalledVersion {
        InstalledVersion {
            version: v.into(),
            digest: Digest([byte; 32]),
            key_id: KeyId([0; 8]),
            installed_ms: 0,
        }
    }

    #[test]
    fn activation_keeps_one_previous_version_and_rollback_restores_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = FleetState::new(Store::open_dir(dir.path()).expect("store"), "t".into());
        let accepted = report("app", UpdateResult::Accepted);
        state
            .activate("app", b"one", version("1.0.0", 1), &accepted)
            .expect("v1");
        state
            .activate("app", b"two", version("2.0.0", 2), &accepted)
            .expect("v2");
        let install = state
            .activate("app", b"three", version("3.0.0", 3), &accepted)
            .expect("v3");
        assert_eq!(
            install.previous.map(|p| p.version).as_deref(),
            Some("2.0.0")
        );
        assert_eq!(
            state.bundle("app", "1.0.0").expect("read"),
            None,
            "older than previous: gone"
        );
        let now = state
            .roll_back("app", &report("app", UpdateResult::RolledBack))
            .expect("rollback")
            .expect("a previous version");
        assert_eq!(now.active.version, "2.0.0");
        assert_eq!(now.trial, None);
        assert_eq!(state.bundle("app", "3.0.0").expect("read"), None);
        assert_eq!(
            state.seen("app").expect("read").map(|s| s.digest),
            Some(Digest([3; 32]))
        );
        assert_eq!(
            state.highest("app").expect("read").as_deref(),
            Some("3.0.0")
        );
        // Every step queued its report in the outbox, and the last one is kept per app.
        let last = state.last_updates().expect("read");
        assert_eq!(last.len(), 1);
        assert!(last[0].1.starts_with("update rolled-back: app"), "{last:?}");
        assert_eq!(
            state.store().counters().expect("counters").outbox_records,
            4
        );
    }

    #[test]
    fn a_removed_app_keeps_its_anti_rollback_floor() {
        let state = FleetState::new(Store::in_memory().expect("store"), "t".into());
        let accepted = report("app", UpdateResult::Accepted);
        state
            .activate("app", b"five", version("5.0.0", 5), &accepted)
            .expect("v5");
        let now = state
            .roll_back("app", &report("app", UpdateResult::RolledBack))
            .expect("rollback");
        assert_eq!(now, None, "no previous version: the app is removed");
        assert_eq!(state.install("app").expect("read"), None);
        assert_eq!(
            state.highest("app").expect("read").as_deref(),
            Some("5.0.0")
        );
    }

    #[test]
    fn chunks_are_stored_with_progress_and_assembled_in_order() {
        let state = FleetState::new(Store::in_memory().expect("store"), "t".into());
        let mut transfer = Transfer {
            group: "g".into(),
            announcement: vec![1, 2, 3],
            received: vec![0; 1],
            bytes_received: 0,
            started_ms: 0,
        };
        state.begin_transfer("app", &transfer).expect("begin");
        for (index, chunk) in [(1u32, b"cd".as_slice()), (0, b"ab"), (2, b"e")] {
            transfer.set(index as usize);
            transfer.bytes_received += chunk.len() as u64;
            state
                .put_chunk("app", index, chunk, &transfer)
                .expect("chunk");
        }
        assert_eq!(
            state.assemble("app", 3).expect("read").as_deref(),
            Some(b"abcde".as_slice())
        );
        assert_eq!(
            state.assemble("app", 4).expect("read"),
            None,
            "a missing chunk"
        );
        let stored = state.transfer("app").expect("read").expect("stored");
        assert_eq!((stored.count(), stored.bytes_received), (3, 5));
        // A new download of the same app starts clean.
        state.begin_transfer("app", &transfer).expect("restart");
        assert_eq!(state.assemble("app", 1).expect("read"), None);
    }
}
