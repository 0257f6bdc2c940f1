//! The local store: one redb file holding key-value data, the outbox and the agent's state.
//!
//! Everything a component writes lands here first, atomically per invocation, before anything is
//! sent anywhere. Writes go through the [`committer`] (group commit); reads go straight to redb.
//! This module is the only persistence seam: nothing outside it names redb, opens a transaction
//! or touches a table. The runtime's [`Effects`](crate::runtime::Effects) come in whole and are
//! converted to the stored layout here.
//!
//! - [`tables`]: every table definition and counter name: the on-disk layout at a glance.
//! - [`records`]: the versioned, postcard-encoded outbox and inbox rows.
//! - [`dead_letters`]: outbox rows that can never be sent, kept apart and counted.
//! - [`envelope`]: the checksum envelope every outbox and inbox row is stored in (table, key,
//!   length, CRC-32), and the raw scan that finds intact rows in a damaged file.
//! - [`quarantine`]: damaged rows taken out of the outbox or inbox, counted and kept.
//! - [`guard`]: opening a device's state directory so a damaged file is moved aside and
//!   replaced, checked in a child process because redb may abort on a damaged page.
//! - [`salvage`]: the check itself, and saving the rows of a damaged file into a fresh one.
//! - `floor`: the anti-rollback floor kept apart from the state file (`fleet-floor.json`).
//! - `meta`: the incarnation id and the notes about the store's history.
//! - `watermark`: sequence numbers reserved apart from the state file, so they never restart.
//! - [`notice`]: what the store tells the device about damage and recovery.
//! - [`durability`]: the durability modes (immediate, or a window of non-durable commits) and
//!   what a crash can take in each; `lazy`: the non-durable commits waiting for a durable one.
//! - [`commit`]: what the committer takes (effects plus bookkeeping) and what it answers.
//! - [`outbox`]: the outbox bounds and full-policy.
//! - `outbox_rows`: the outbox rows and their counters inside a transaction (their one writer).
//! - [`apply`]: applies a batch of commits inside one write transaction.
//! - [`committer`]: the group-commit thread.
//! - [`fleet`]: the fleet updater's reads and its one-transaction steps.
//! - [`error`]: the backend-neutral [`StoreError`].
//!
//! Damage and faults (`docs/design/damaged-state.md`): a row that fails its checksum or does not
//! decode is quarantined and the read goes on; an I/O error closes the database and the next
//! operation re-opens it, so the store resumes by itself once the disk allows; a quota on the
//! file's size makes the outbox's full-policy act before the filesystem is full.

pub mod apply;
pub mod commit;
pub mod committer;
pub mod dead_letters;
pub mod durability;
pub mod envelope;
pub mod error;
pub mod fleet;
mod floor;
pub mod guard;
pub mod journal;
mod lazy;
mod meta;
pub mod notice;
pub mod outbox;
mod outbox_rows;
pub mod quarantine;
pub mod records;
mod redo;
mod replay;
pub mod salvage;
mod side_file;
pub mod tables;
mod watermark;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, WriteTransaction};

pub use commit::{Commit, Receipt};
pub use durability::Durability;
pub use error::StoreError;
pub use fleet::{FleetStep, FleetStore};
pub use guard::Verifier;
pub use meta::StoreNote;
pub use notice::StoreNotice;
pub use outbox::{FullPolicy, OutboxLimits};
pub use quarantine::QuarantinedRow;
pub use records::{BootStamp, RecordBody, RecordV1, StoredInbound, StoredRecord};

use crate::runtime::{KvError, KvReader};
use error::Failure;
use journal::{AppendError, Body, Journal};
use outbox_rows::{OutboxRows, is_outbox_counter, read_counter};

/// redb's default cache is 1 GiB, sized for servers; a device gets a few MiB.
const CACHE_BYTES: usize = 4 * 1024 * 1024;

/// File name of the state database inside a data directory.
pub const STATE_FILE: &str = "state.redb";

/// What an in-memory store calls itself in error messages.
const IN_MEMORY: &str = "(in-memory store)";

/// A handle to the state database; cheap to clone and share across threads.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

/// What every handle of one store shares.
struct Inner {
    /// The open database, or `None` after an I/O error closed it: redb refuses everything after
    /// one ("Previous I/O error occurred"), so the next operation opens the file afresh and the
    /// store resumes as soon as the disk allows. redb serialises writers itself.
    db: RwLock<Option<Arc<Database>>>,
    /// Where it lives, for error messages and re-opening; `None` for an in-memory store.
    file: Option<PathBuf>,
    /// What the store calls itself in errors: the file, or "(in-memory store)".
    path: PathBuf,
    /// This store's random incarnation id (see [`Store::incarnation`]).
    incarnation: String,
    /// Who hears about damage and recovery (the device's events); notices raised before anyone
    /// listens are kept and handed over by [`Store::on_notice`].
    notices: Mutex<notice::Sink>,
    /// Most bytes the state file may take before the outbox's full-policy acts (0 = no quota).
    quota: AtomicU64,
    /// Set by an I/O error, cleared by the next write that succeeds: one notice each way per
    /// episode, however many operations fail in between.
    io_trouble: std::sync::atomic::AtomicBool,
    /// Operations that failed in a row because redb found the file corrupted; at
    /// [`CORRUPTION_LIMIT`] the store asks for a restart ([`StoreNotice::Unusable`]).
    corrupted_in_a_row: AtomicU64,
    /// The sequence number up to which the watermark file has reserved numbers (`watermark`).
    seq_reserved: AtomicU64,
    /// When commits become durable ([`Store::set_durability`]).
    durability: Mutex<Durability>,
    /// Non-durable commits waiting for a durable one, and their flusher.
    lazy: Arc<lazy::Lazy>,
    /// The commit journal (`journal`), once attached; `None` for an in-memory store or when it
    /// cannot be used. Its lock is taken before every write transaction, so a checkpoint and
    /// the journal's restart after it are one step for every other writer.
    journal: Mutex<Option<Journal>>,
}

/// How a write transaction landed.
enum Landed {
    /// A durable redb commit (a checkpoint), restarting the journal under this epoch if any.
    Durable(Option<u64>),
    /// A non-durable redb commit whose row changes (this many) are in a journal frame.
    Journaled(usize),
    /// A non-durable redb commit with no journal behind it.
    Lazy,
}

/// How durable a write transaction must be when its call returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// A durable redb commit: a checkpoint.
    Durable,
    /// On disk: a synced journal frame (a durable redb commit without a journal).
    Synced,
    /// Not yet: an unsynced journal frame (a non-durable redb commit without a journal), made
    /// durable by the next synced commit or the flusher within the durability window.
    Lazy,
    /// Whenever convenient: an unsynced journal frame with no deadline of its own (deletes after
    /// PUBACK, counters: losing them costs duplicates or a count, never data), made durable by
    /// the next synced commit or at the latest by the next checkpoint. It sets no timer, so a
    /// device that only acknowledges rows never wakes the flusher for them.
    RideAlong,
}

impl Drop for Inner {
    /// The last handle is gone (a clean stop): make every non-durable commit durable, then
    /// remove the window marker, so the next start knows nothing was lost.
    fn drop(&mut self) {
        self.lazy.close();
        let marker = self
            .file
            .as_ref()
            .map(|file| file.with_file_name(durability::MARKER_FILE));
        if !self.lazy.pending() {
            // Nothing to persist (a read-only tool, an idle agent): write nothing.
            if let Some(marker) = marker {
                let _ = std::fs::remove_file(marker);
            }
            return;
        }
        let db = self
            .db
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let Some(db) = db else { return };
        let journal = self
            .journal
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let persisted = (|| -> Result<(), Failure> {
            let mut txn = db.begin_write()?;
            txn.set_durability(redb::Durability::Immediate)?;
            if let Some(journal) = journal.as_ref() {
                // The journal's frames are all in this checkpoint: the next start replays none.
                txn.open_table(tables::COUNTERS)?
                    .insert(tables::counter::JOURNAL_EPOCH, journal.epoch() + 1)?;
            }
            txn.commit()?;
            Ok(())
        })();
        match persisted {
            Ok(()) => {
                if let Some(marker) = marker {
                    let _ = std::fs::remove_file(marker);
                }
            }
            Err(failure) => {
                tracing::warn!(error = %failure.at(&self.path, "close the store"), "state store")
            }
        }
    }
}

/// Consecutive "corrupted" failures (each followed by a re-open) after which the file is taken
/// as damaged for good while in use.
const CORRUPTION_LIMIT: u64 = 3;

/// One outbox row as read back, with its sequence number.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    /// Device-wide sequence number.
    pub seq: u64,
    /// The decoded row.
    pub record: RecordV1,
    /// Its boot stamp, if it was committed while the wall clock was not synchronised.
    pub unsynced: Option<BootStamp>,
}

/// One key-value entry as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvEntry {
    /// The app that owns it.
    pub app: String,
    /// Its namespace.
    pub ns: String,
    /// Its key.
    pub key: String,
    /// Its value.
    pub value: Vec<u8>,
}

/// An inbound message waiting for its component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxEntry {
    /// Inbox id (removed with the handling invocation's effects).
    pub id: u64,
    /// The MQTT trigger that handles it.
    pub trigger: String,
    /// Topic it arrived on.
    pub topic: String,
    /// Its body.
    pub payload: Vec<u8>,
}

/// A snapshot of the persistent counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Next sequence number to hand out.
    pub next_seq: u64,
    /// Records in the outbox.
    pub outbox_records: u64,
    /// Payload bytes in the outbox.
    pub outbox_bytes: u64,
    /// Records dropped to make room (drop-oldest).
    pub dropped_records: u64,
    /// Bytes dropped to make room (drop-oldest).
    pub dropped_bytes: u64,
    /// Records refused because the outbox was full (reject-new).
    pub rejected_records: u64,
    /// Invocations refused because the outbox was full (reject-new).
    pub rejected_invocations: u64,
    /// Trigger runs skipped because the previous run was still going.
    pub skipped_runs: u64,
    /// Invocations that failed (trap, limit, error status); their effects were discarded.
    pub failed_invocations: u64,
    /// Inbound messages refused (too large, or on no trigger's topic), over the device's life.
    pub inbound_rejected: u64,
    /// Outbox and inbox rows moved to quarantine because they failed their checksum or did
    /// not decode (see `outpost outbox quarantine`).
    pub quarantined_rows: u64,
    /// Records moved to the dead letters because they can never be sent.
    pub dead_records: u64,
    /// Bytes moved to the dead letters.
    pub dead_bytes: u64,
    /// Inbound messages waiting in the inbox.
    pub inbox_records: u64,
    /// Payload bytes waiting in the inbox.
    pub inbox_bytes: u64,
    /// The store's incarnation id ([`Store::incarnation`]).
    pub incarnation: String,
    /// The notes about the store's history (a damaged file replaced), oldest first, as lines.
    pub store_notes: Vec<String>,
    /// The durability mode ([`Durability`]'s text: `immediate` or the window).
    pub durability: String,
}

impl Store {
    /// Opens (or creates) `DIR/state.redb`, creating `DIR` if needed.
    pub fn open_dir(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
            path: dir.to_path_buf(),
            source: Box::new(e),
        })?;
        Store::open(&dir.join(STATE_FILE))
    }

    /// Opens (or creates) the state file at `path`, with device-sized settings. An existing
    /// file too short to be a database (zero-length, truncated) is refused as
    /// [`StoreError::Damaged`] instead of silently becoming a fresh store; [`guard::open_dir`]
    /// moves such a file aside.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(reason) = guard::too_short(path) {
            return Err(StoreError::Damaged {
                path: path.to_path_buf(),
                reason,
            });
        }
        let db = open_database(path)?;
        Store::ready(db, Some(path.to_path_buf()))
    }

    /// A fresh, empty store that lives in memory only: for tests and tools that need a store's
    /// behaviour without a file. Everything in it is gone when the last handle is dropped.
    pub fn in_memory() -> Result<Store, StoreError> {
        let path = PathBuf::from(IN_MEMORY);
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|source| StoreError::Open {
                path: path.clone(),
                source: Box::new(source),
            })?;
        Store::ready(db, None)
    }

    fn ready(db: Database, file: Option<PathBuf>) -> Result<Store, StoreError> {
        let path = file.clone().unwrap_or_else(|| PathBuf::from(IN_MEMORY));
        let mut store = Store {
            inner: Arc::new(Inner {
                db: RwLock::new(Some(Arc::new(db))),
                file,
                path,
                incarnation: String::new(),
                notices: Mutex::new(notice::Sink::default()),
                quota: AtomicU64::new(0),
                io_trouble: std::sync::atomic::AtomicBool::new(false),
                corrupted_in_a_row: AtomicU64::new(0),
                seq_reserved: AtomicU64::new(0),
                durability: Mutex::new(Durability::Immediate),
                lazy: Arc::default(),
                journal: Mutex::new(None),
            }),
        };
        store.create_tables()?;
        let incarnation = store.write("create the incarnation id", meta::incarnation)?;
        if let Some(inner) = Arc::get_mut(&mut store.inner) {
            inner.incarnation = incarnation;
        }
        // Before anything reads the counters: the journal may hold commits made after the last
        // checkpoint (the next sequence number among them).
        if let Some(file) = store.inner.file.clone() {
            store.attach_journal(&file)?;
        }
        floor::reconcile(&store)?;
        watermark::open(&store)?;
        watermark::recover_window(&store)?;
        store
            .inner
            .lazy
            .set_after(Durability::Immediate.flush_after());
        Ok(store)
    }

    /// Sets when commits become durable (see [`durability`]). Window mode leaves a marker file
    /// next to the state file until the store is dropped cleanly, so a start after an unclean
    /// stop knows commits may be lost and never reuses their sequence numbers.
    pub fn set_durability(&self, mode: Durability) -> Result<(), StoreError> {
        if let (Durability::Window(_), Some(file)) = (mode, &self.inner.file) {
            let marker = file.with_file_name(durability::MARKER_FILE);
            side_file::replace(&marker, format!("{mode}\n").as_bytes()).map_err(|source| {
                StoreError::Open {
                    path: marker,
                    source: Box::new(source),
                }
            })?;
        }
        *self
            .inner
            .durability
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = mode;
        self.inner.lazy.set_after(mode.flush_after());
        Ok(())
    }

    /// Sets the longest a journaled commit waits for its checkpoint (`[outbox]
    /// checkpoint_every`; see `journal`).
    pub fn set_checkpoint_every(&self, every: std::time::Duration) {
        self.inner.lazy.set_checkpoint_after(every);
    }

    /// When commits become durable.
    pub fn durability(&self) -> Durability {
        *self
            .inner
            .durability
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether an invocation commit made now must be durable under the current mode.
    pub(crate) fn commit_durably_now(&self) -> bool {
        self.durability()
            .commit_durably(self.inner.lazy.pending_for())
    }

    /// Makes every commit made so far durable on disk: an `fdatasync` of the journal, or a
    /// durable redb commit without one.
    pub(crate) fn sync(&self) -> Result<(), StoreError> {
        let _db = self.database()?;
        let mut journal = self.journal();
        let Some(open) = journal.as_mut() else {
            drop(journal);
            return self.persist();
        };
        if let Err(error) = open.sync() {
            // The journal cannot be trusted any more: a checkpoint makes everything durable in
            // redb itself, and later commits do without the journal.
            tracing::warn!(%error, "commit journal failed; committing durably in redb instead");
            drop(journal);
            return self.abandon_journal();
        }
        self.inner.lazy.note_synced();
        Ok(())
    }

    /// The journal slot, locked.
    fn journal(&self) -> std::sync::MutexGuard<'_, Option<Journal>> {
        self.inner
            .journal
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stops using the journal after it failed: one checkpoint (under a new epoch, so none of
    /// its frames is ever replayed), then every commit is a durable redb commit.
    fn abandon_journal(&self) -> Result<(), StoreError> {
        self.write("checkpoint after the commit journal failed", |_| Ok(()))?;
        *self.journal() = None;
        self.inner.lazy.set_journaled(false);
        Ok(())
    }

    /// Makes every non-durable commit durable now (one empty durable commit); nothing to do if
    /// none is pending.
    pub fn persist(&self) -> Result<(), StoreError> {
        if !self.inner.lazy.pending() && !self.inner.lazy.unsynced() {
            return Ok(());
        }
        self.write("make the last commits durable", |_| Ok(()))
    }

    /// The state file's path.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// This store's incarnation id: 16 hex digits drawn at random when the store was created
    /// and kept in it for its life. A store replaced after damage (or wiped) gets a new one, so
    /// consumers that drop duplicates by `(device, incarnation, seq)` never mistake the new
    /// store's sequence numbers, which start again at 1, for ones they have seen.
    pub fn incarnation(&self) -> &str {
        &self.inner.incarnation
    }

    /// Sets the disk quota of the state file: once the file is this large, commits that add
    /// outbox rows meet the outbox's full-policy (drop-oldest frees room, reject-new refuses)
    /// before the filesystem fills up. 0 means no quota.
    pub fn set_quota(&self, max_state_bytes: u64) {
        self.inner.quota.store(max_state_bytes, Ordering::Relaxed);
    }

    /// The disk quota of the state file (0 = none).
    pub fn quota(&self) -> u64 {
        self.inner.quota.load(Ordering::Relaxed)
    }

    /// Tells the sequence watermark that numbers below `next` have been handed out.
    pub(crate) fn handed_out(&self, next: u64) {
        watermark::reserve(self, next);
    }

    /// Whether the state file has reached its quota (never for an in-memory store).
    pub(crate) fn over_quota(&self) -> bool {
        let quota = self.inner.quota.load(Ordering::Relaxed);
        quota > 0
            && self
                .inner
                .file
                .as_deref()
                .and_then(|f| std::fs::metadata(f).ok())
                .is_some_and(|m| m.len() >= quota)
    }

    /// Hands every notice about damage and recovery to `sink` from now on, starting with those
    /// raised before (a store replaced at open, rows quarantined).
    pub fn on_notice(&self, sink: impl Fn(&StoreNotice) + Send + Sync + 'static) {
        self.notices().attach(Arc::new(sink));
    }

    /// Tells whoever listens about `notice` (or keeps it until someone does).
    pub(crate) fn notify(&self, notice: StoreNotice) {
        tracing::warn!(%notice, "state store");
        self.notices().raise(notice);
    }

    fn notices(&self) -> std::sync::MutexGuard<'_, notice::Sink> {
        // A panic while holding it left nothing half-done: the sink is a list and a callback.
        self.inner
            .notices
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The open database, re-opening the file if an I/O error closed it.
    fn database(&self) -> Result<Arc<Database>, StoreError> {
        let shared = |lock: &RwLock<Option<Arc<Database>>>| {
            lock.read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone()
        };
        if let Some(db) = shared(&self.inner.db) {
            return Ok(db);
        }
        let mut slot = self
            .inner
            .db
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(db) = slot.as_ref() {
            return Ok(db.clone());
        }
        let Some(file) = &self.inner.file else {
            return Err(StoreError::Open {
                path: self.inner.path.clone(),
                source: "the in-memory store was closed by an error".into(),
            });
        };
        let db = Arc::new(open_database(file)?);
        // redb is back at its last checkpoint: the journal brings back what came after.
        if let Some(journal) = self.journal().as_mut() {
            replay::replay(&db, journal)
                .map_err(|f| f.at(&self.inner.path, "replay the commit journal"))?;
        }
        *slot = Some(db.clone());
        tracing::debug!(path = %file.display(), "state file re-opened");
        Ok(db)
    }

    /// Forgets `db` after it failed with an I/O error, so the next operation re-opens the file
    /// (once every operation still holding it has finished and released redb's file lock).
    fn close_after_io_error(&self, db: &Arc<Database>) {
        if self.inner.file.is_none() {
            return;
        }
        let mut slot = self
            .inner
            .db
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot
            .as_ref()
            .is_some_and(|current| Arc::ptr_eq(current, db))
        {
            *slot = None;
        }
    }

    /// The fleet updater's part of the store.
    pub fn fleet(&self) -> FleetStore<'_> {
        FleetStore::new(self)
    }

    /// Runs `body` in a read transaction; a failure names this file and `action`.
    fn read<T>(
        &self,
        action: &'static str,
        body: impl FnOnce(&ReadTransaction) -> Result<T, Failure>,
    ) -> Result<T, StoreError> {
        let db = self.database()?;
        let run = || {
            let txn = db.begin_read()?;
            body(&txn)
        };
        let value = run().map_err(|failure: Failure| self.failed(&db, failure, action))?;
        self.inner.corrupted_in_a_row.store(0, Ordering::Relaxed);
        Ok(value)
    }

    /// The public error for `failure`; an I/O error also closes `db` so the next operation
    /// re-opens the file.
    fn failed(&self, db: &Arc<Database>, failure: Failure, action: &'static str) -> StoreError {
        let reopen = failure.needs_reopen();
        if reopen {
            self.close_after_io_error(db);
        }
        let corrupted = failure.is_corruption();
        let error = failure.at(&self.inner.path, action);
        if corrupted
            && self
                .inner
                .corrupted_in_a_row
                .fetch_add(1, Ordering::Relaxed)
                + 1
                == CORRUPTION_LIMIT
        {
            self.notify(StoreNotice::Unusable {
                path: self.inner.path.display().to_string(),
                error: error.to_string(),
            });
            return error;
        }
        if reopen && !self.inner.io_trouble.swap(true, Ordering::Relaxed) {
            self.notify(StoreNotice::IoError {
                path: self.inner.path.display().to_string(),
                error: error.to_string(),
            });
        }
        error
    }

    /// Runs `body` in one write transaction and commits it durably (`Durability::Immediate`:
    /// on disk when this returns; a checkpoint). An error from `body` aborts the transaction:
    /// nothing of it is written. A failure names this file and `action`.
    fn write<T>(
        &self,
        action: &'static str,
        body: impl FnOnce(&WriteTransaction) -> Result<T, Failure>,
    ) -> Result<T, StoreError> {
        self.transact(action, Want::Durable, |txn, _| body(txn))
    }

    /// Runs `body` in one write transaction, which notes in its [`redo::Redo`] every row it
    /// touches, and commits it as durably as `want` says: a journal frame (synced or not) and a
    /// non-durable redb commit, or a durable redb commit when a checkpoint is due or there is
    /// no journal. A non-durable commit is visible to readers at once.
    fn transact<T>(
        &self,
        action: &'static str,
        want: Want,
        body: impl FnOnce(&WriteTransaction, &mut redo::Redo) -> Result<T, Failure>,
    ) -> Result<T, StoreError> {
        let db = self.database()?;
        let mut journal = self.journal();
        let checkpoint = match want {
            Want::Durable => true,
            Want::Synced => {
                journal.is_none()
                    || self.inner.lazy.checkpoint_due()
                    || journal.as_ref().is_some_and(Journal::needs_checkpoint)
            }
            Want::Lazy | Want::RideAlong => {
                self.inner.lazy.checkpoint_due()
                    || journal.as_ref().is_some_and(Journal::needs_checkpoint)
            }
        };
        let mut broken_journal = false;
        let run = |journal: &mut Option<Journal>| -> Result<(T, Landed), Failure> {
            let mut txn = db.begin_write()?;
            let mut redo = redo::Redo::default();
            let value = body(&txn, &mut redo)?;
            let mut durable = checkpoint;
            let mut frame = None;
            if !durable && let Some(open) = journal.as_mut() {
                let ops = redo.resolve(&txn)?;
                let count = ops.len();
                match open.append(&Body::Ops(ops), want == Want::Synced) {
                    Ok(at) => frame = Some((at, count)),
                    Err(AppendError::Full) => durable = true,
                    Err(error) => {
                        tracing::warn!(%error, "commit journal failed; committing durably in redb instead");
                        broken_journal = true;
                        durable = true;
                    }
                }
            }
            let epoch = match journal.as_ref() {
                Some(open) if durable => {
                    let next = open.epoch() + 1;
                    txn.open_table(tables::COUNTERS)?
                        .insert(tables::counter::JOURNAL_EPOCH, next)?;
                    Some(next)
                }
                _ => None,
            };
            txn.set_durability(if durable {
                redb::Durability::Immediate
            } else {
                redb::Durability::None
            })?;
            if let Err(error) = txn.commit() {
                if let (Some((at, _)), Some(open)) = (frame, journal.as_mut())
                    && let Err(cancel) = open.append(&Body::Cancel(at), true)
                {
                    // The frame of a commit that did not land is in the journal: only a
                    // checkpoint under a new epoch keeps it from being replayed.
                    tracing::warn!(error = %cancel, "cannot cancel a journal frame");
                    broken_journal = true;
                }
                return Err(error.into());
            }
            let landed = match frame {
                Some((_, ops)) => Landed::Journaled(ops),
                None if durable => Landed::Durable(epoch),
                None => Landed::Lazy,
            };
            Ok((value, landed))
        };
        let result = run(&mut journal);
        let (value, landed) =
            result.map_err(|failure: Failure| self.failed(&db, failure, action))?;
        if let Landed::Durable(Some(next)) = landed
            && let Some(open) = journal.as_mut()
        {
            open.restart(next);
        }
        drop(journal);
        match landed {
            Landed::Journaled(ops) => self.inner.lazy.note_journaled(
                &self.inner,
                match want {
                    Want::Synced | Want::Durable => lazy::Frame::Synced,
                    Want::Lazy => lazy::Frame::Unsynced,
                    Want::RideAlong => lazy::Frame::RideAlong,
                },
                ops,
            ),
            Landed::Durable(_) => self.inner.lazy.note_durable(),
            Landed::Lazy => self.inner.lazy.note_lazy(&self.inner),
        }
        if broken_journal {
            self.abandon_journal()?;
        }
        self.inner.corrupted_in_a_row.store(0, Ordering::Relaxed);
        if self.inner.io_trouble.swap(false, Ordering::Relaxed) {
            self.notify(StoreNotice::Reopened {
                path: self.inner.path.display().to_string(),
            });
        }
        Ok(value)
    }

    /// Makes sure every table exists, so readers never meet a missing table.
    fn create_tables(&self) -> Result<(), StoreError> {
        self.write("create the tables", |txn| {
            txn.open_table(tables::KV)?;
            txn.open_table(tables::OUTBOX)?;
            txn.open_table(tables::COUNTERS)?;
            txn.open_table(tables::TRIGGER_RUNS)?;
            txn.open_table(tables::INBOX)?;
            txn.open_table(tables::BUNDLES)?;
            txn.open_table(tables::INSTALLED)?;
            txn.open_table(tables::HIGHEST)?;
            txn.open_table(tables::TRANSFERS)?;
            txn.open_table(tables::CHUNKS)?;
            txn.open_table(tables::FLEET_SEEN)?;
            txn.open_table(tables::LAST_UPDATE)?;
            txn.open_table(tables::QUARANTINE)?;
            txn.open_table(tables::META)?;
            txn.open_table(tables::NOTES)?;
            txn.open_table(tables::DEAD_LETTERS)?;
            // A store from before the inbox was counted: count its rows once.
            let mut counters = txn.open_table(tables::COUNTERS)?;
            if counters.get(tables::counter::INBOX_RECORDS)?.is_none() {
                let (mut records, mut bytes) = (0u64, 0u64);
                for entry in txn.open_table(tables::INBOX)?.iter()? {
                    let (_, row) = entry?;
                    records += 1;
                    bytes += row.value().len() as u64;
                }
                counters.insert(tables::counter::INBOX_RECORDS, records)?;
                counters.insert(tables::counter::INBOX_BYTES, bytes)?;
            }
            Ok(())
        })
    }

    /// Reads one key-value entry.
    pub fn kv_get(&self, app: &str, ns: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.read("read a key", |txn| {
            let table = txn.open_table(tables::KV)?;
            Ok(table.get((app, ns, key))?.map(|v| v.value().to_vec()))
        })
    }

    /// Lists keys of one namespace that start with `prefix`, in order, at most `limit`.
    pub fn kv_keys(
        &self,
        app: &str,
        ns: &str,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        self.read("list keys", |txn| {
            let table = txn.open_table(tables::KV)?;
            let mut keys = Vec::new();
            for entry in table.range((app, ns, prefix)..)? {
                let (key, _) = entry?;
                let (k_app, k_ns, k_key) = key.value();
                if k_app != app || k_ns != ns || !k_key.starts_with(prefix) || keys.len() >= limit {
                    break;
                }
                keys.push(k_key.to_string());
            }
            Ok(keys)
        })
    }

    /// Every key-value entry, optionally of one app and namespace, in key order.
    pub fn kv_entries(
        &self,
        app: Option<&str>,
        ns: Option<&str>,
    ) -> Result<Vec<KvEntry>, StoreError> {
        self.read("list key-value entries", |txn| {
            let table = txn.open_table(tables::KV)?;
            let mut out = Vec::new();
            for entry in table.iter()? {
                let (key, value) = entry?;
                let (k_app, k_ns, k_key) = key.value();
                if app.is_some_and(|a| a != k_app) || ns.is_some_and(|n| n != k_ns) {
                    continue;
                }
                out.push(KvEntry {
                    app: k_app.to_string(),
                    ns: k_ns.to_string(),
                    key: k_key.to_string(),
                    value: value.value().to_vec(),
                });
            }
            Ok(out)
        })
    }

    /// Reads up to `limit` outbox rows with `seq >= from`, oldest first. A row that fails its
    /// checksum or does not decode is moved to quarantine (counted, and told through
    /// [`Store::on_notice`]) and the read goes on past it, so one damaged row never stops the
    /// drain.
    pub fn outbox_read(&self, from: u64, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        self.outbox_read_page(from, limit, usize::MAX)
    }

    /// Reads outbox rows with `seq >= from`, oldest first: at most `limit` rows, and no more
    /// once `max_bytes` stored bytes were read (the row that reaches it is the last; a page
    /// always holds at least one row), so a page's memory is bounded whatever the row sizes.
    /// Damaged rows are quarantined as by [`Store::outbox_read`].
    pub fn outbox_read_page(
        &self,
        from: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        loop {
            let (entries, damaged) = self.read("read the outbox", |txn| {
                let table = txn.open_table(tables::OUTBOX)?;
                let mut out = Vec::new();
                let mut damaged = Vec::new();
                let mut read = 0usize;
                for entry in table.range(from..)?.take(limit) {
                    if read >= max_bytes {
                        break;
                    }
                    let (seq, bytes) = entry?;
                    read = read.saturating_add(bytes.value().len());
                    let seq = seq.value();
                    match StoredRecord::decode(bytes.value(), seq) {
                        Ok(record) => {
                            let (record, unsynced) = record.into_parts();
                            out.push(OutboxEntry {
                                seq,
                                record,
                                unsynced,
                            });
                        }
                        Err(damage) => damaged.push((seq, damage)),
                    }
                }
                Ok((out, damaged))
            })?;
            if damaged.is_empty() {
                return Ok(entries);
            }
            // Re-read the page once the damaged rows are out of it, so a full page is a full page.
            self.quarantine(quarantine::Source::Outbox, &damaged)?;
        }
    }

    /// Deletes the outbox rows `seqs` (those the broker acknowledged) and updates the outbox
    /// counters, in one transaction that is not made durable by itself: it rides along with the
    /// next commit that is (see [`durability`]); a crash before that brings the rows back and
    /// they are sent again
    /// (duplicates, never loss). Missing rows are ignored: a re-sent row can be acknowledged
    /// twice. Returns how many rows were removed.
    pub fn outbox_remove(&self, seqs: &[u64]) -> Result<u64, StoreError> {
        if seqs.is_empty() {
            return Ok(0);
        }
        self.transact(
            "remove acknowledged outbox rows",
            Want::RideAlong,
            |txn, redo| {
                let mut counters = txn.open_table(tables::COUNTERS)?;
                let mut outbox = OutboxRows::open(txn, &counters)?;
                let mut removed = 0u64;
                for seq in seqs {
                    if outbox.remove(*seq)? {
                        removed += 1;
                    }
                }
                redo.outbox(outbox.touched().iter().copied());
                outbox.finish(&mut counters)?;
                Ok(removed)
            },
        )
    }

    /// Stores an inbound message durably, one row per trigger that will handle it, in one
    /// transaction; returns the inbox ids in `triggers` order. Call before acknowledging it.
    pub fn inbox_put(
        &self,
        triggers: &[&str],
        topic: &str,
        payload: &[u8],
        received_ms: i64,
    ) -> Result<Vec<u64>, StoreError> {
        self.transact("store an inbound message", Want::Synced, |txn, redo| {
            let mut ids = Vec::with_capacity(triggers.len());
            let mut counters = txn.open_table(tables::COUNTERS)?;
            let mut inbox = txn.open_table(tables::INBOX)?;
            let mut next = read_counter(&counters, tables::counter::NEXT_INBOX)?.max(1);
            for trigger in triggers {
                let row = envelope::seal(
                    envelope::Table::Inbox,
                    next,
                    &StoredInbound::V1 {
                        trigger: (*trigger).to_string(),
                        topic: topic.to_string(),
                        payload: payload.to_vec(),
                        received_ms,
                    },
                )
                .map_err(StoreError::Encode)?;
                inbox.insert(next, row.as_slice())?;
                redo.inbox(next);
                let records = read_counter(&counters, tables::counter::INBOX_RECORDS)?;
                let bytes = read_counter(&counters, tables::counter::INBOX_BYTES)?;
                counters.insert(tables::counter::INBOX_RECORDS, records + 1)?;
                counters.insert(tables::counter::INBOX_BYTES, bytes + row.len() as u64)?;
                ids.push(next);
                next += 1;
            }
            counters.insert(tables::counter::NEXT_INBOX, next)?;
            Ok(ids)
        })
    }

    /// Inbound messages not yet handled, oldest first. Reads them all: for tools and tests;
    /// the dispatcher pages with [`Store::inbox_page`].
    pub fn inbox_pending(&self) -> Result<Vec<InboxEntry>, StoreError> {
        self.inbox_page(0, usize::MAX)
    }

    /// Up to `limit` inbound messages not yet handled with `id >= from`, oldest first. A
    /// damaged row is moved to quarantine like a damaged outbox row, and the others are still
    /// returned.
    pub fn inbox_page(&self, from: u64, limit: usize) -> Result<Vec<InboxEntry>, StoreError> {
        loop {
            let (entries, damaged) = self.read("read the inbox", |txn| {
                let table = txn.open_table(tables::INBOX)?;
                let mut out = Vec::new();
                let mut damaged = Vec::new();
                for entry in table.range(from..)?.take(limit) {
                    let (id, bytes) = entry?;
                    let id = id.value();
                    match envelope::open::<StoredInbound>(bytes.value(), envelope::Table::Inbox, id)
                    {
                        Ok(StoredInbound::V1 {
                            trigger,
                            topic,
                            payload,
                            ..
                        }) => out.push(InboxEntry {
                            id,
                            trigger,
                            topic,
                            payload,
                        }),
                        Err(damage) => damaged.push((id, damage)),
                    }
                }
                Ok((out, damaged))
            })?;
            if damaged.is_empty() {
                return Ok(entries);
            }
            self.quarantine(quarantine::Source::Inbox, &damaged)?;
        }
    }

    /// Counts one inbound message that was refused (and acknowledged, so the broker stops
    /// delivering it). The count survives restarts so a device that keeps refusing shows it;
    /// it rides along with the next durable commit (a crash just before may forget one).
    pub fn count_inbound_refused(&self) -> Result<(), StoreError> {
        self.add_counter(tables::counter::INBOUND_REJECTED, 1)
    }

    /// Adds `by` to a persistent counter in a non-durable transaction of its own, which the
    /// next durable commit (or the flusher) persists: a counter is never worth an fsync. The
    /// outbox's own counters are not for this: only the outbox's row writer changes them, with
    /// the rows.
    fn add_counter(&self, name: &str, by: u64) -> Result<(), StoreError> {
        debug_assert!(
            !is_outbox_counter(name),
            "outbox counter {name} changed outside the outbox"
        );
        self.transact("count an event", Want::RideAlong, |txn, redo| {
            redo.counter(name);
            let mut table = txn.open_table(tables::COUNTERS)?;
            let current = read_counter(&table, name)?;
            table.insert(name, current.saturating_add(by))?;
            Ok(())
        })
    }

    /// Drops one inbox row without running it (its trigger is gone).
    pub fn inbox_remove(&self, id: u64) -> Result<(), StoreError> {
        self.write("drop an inbound message", |txn| {
            let mut counters = txn.open_table(tables::COUNTERS)?;
            if let Some(row) = txn.open_table(tables::INBOX)?.remove(id)? {
                inbox_forget(&mut counters, row.value().len())?;
            }
            Ok(())
        })
    }

    /// The persistent counters.
    pub fn counters(&self) -> Result<Counters, StoreError> {
        self.read("read the counters", |txn| {
            let table = txn.open_table(tables::COUNTERS)?;
            let get = |name: &str| -> Result<u64, Failure> {
                Ok(table.get(name)?.map(|v| v.value()).unwrap_or(0))
            };
            use tables::counter as c;
            Ok(Counters {
                next_seq: get(c::NEXT_SEQ)?,
                outbox_records: get(c::OUTBOX_RECORDS)?,
                outbox_bytes: get(c::OUTBOX_BYTES)?,
                dropped_records: get(c::DROPPED_RECORDS)?,
                dropped_bytes: get(c::DROPPED_BYTES)?,
                rejected_records: get(c::REJECTED_RECORDS)?,
                rejected_invocations: get(c::REJECTED_INVOCATIONS)?,
                skipped_runs: get(c::SKIPPED_RUNS)?,
                failed_invocations: get(c::FAILED_INVOCATIONS)?,
                inbound_rejected: get(c::INBOUND_REJECTED)?,
                quarantined_rows: get(c::QUARANTINED_ROWS)?,
                dead_records: get(c::DEAD_RECORDS)?,
                dead_bytes: get(c::DEAD_BYTES)?,
                inbox_records: get(c::INBOX_RECORDS)?,
                inbox_bytes: get(c::INBOX_BYTES)?,
                incarnation: self.incarnation().to_string(),
                store_notes: Vec::new(),
                durability: self.durability().to_string(),
            })
        })
        .and_then(|mut counters| {
            counters.store_notes = self
                .notes()?
                .into_iter()
                .map(|n| format!("{}: {}", meta::format_ms(n.at_ms), n.text))
                .collect();
            Ok(counters)
        })
    }

    /// When a trigger last ran (wall ms), if ever.
    pub fn trigger_last_run(&self, app: &str, trigger: &str) -> Result<Option<i64>, StoreError> {
        self.read("read a trigger's last run", |txn| {
            let counters = txn.open_table(tables::COUNTERS)?;
            if let Some(at) = counters.get(tables::counter::trigger_run(app, trigger).as_str())? {
                return Ok(Some(at.value() as i64));
            }
            // Written by an agent from before the last runs moved into the counters.
            let table = txn.open_table(tables::TRIGGER_RUNS)?;
            Ok(table.get((app, trigger))?.map(|v| v.value()))
        })
    }
}

/// Takes one removed inbox row of `len` stored bytes off the inbox's size counters.
fn inbox_forget(counters: &mut redb::Table<&str, u64>, len: usize) -> Result<(), Failure> {
    let records = read_counter(counters, tables::counter::INBOX_RECORDS)?;
    let bytes = read_counter(counters, tables::counter::INBOX_BYTES)?;
    counters.insert(tables::counter::INBOX_RECORDS, records.saturating_sub(1))?;
    counters.insert(
        tables::counter::INBOX_BYTES,
        bytes.saturating_sub(len as u64),
    )?;
    Ok(())
}

/// Opens (or creates) the redb file at `path` with device-sized settings.
fn open_database(path: &Path) -> Result<Database, StoreError> {
    let mut builder = Database::builder();
    builder.set_cache_size(CACHE_BYTES);
    builder.create(path).map_err(|source| match source {
        redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked {
            path: path.to_path_buf(),
        },
        source => StoreError::Open {
            path: path.to_path_buf(),
            source: Box::new(source),
        },
    })
}

/// The store serves the runtime's committed key-value reads; its errors reach the runtime
/// boxed, so the runtime never names the store or its backend.
impl KvReader for Store {
    fn get(&self, app: &str, ns: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.kv_get(app, ns, key).map_err(KvError::new)
    }

    fn keys(
        &self,
        app: &str,
        ns: &str,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<String>, KvError> {
        self.kv_keys(app, ns, prefix, limit).map_err(KvError::new)
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod damage_tests;

#[cfg(test)]
mod durability_tests;
