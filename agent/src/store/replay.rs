//! Bringing back, at open, the commits the journal made durable after redb's last checkpoint
//! (`journal`), and attaching the journal that later commits are written to.

use std::path::Path;

use redb::{Database, ReadableDatabase};

use super::error::Failure;
use super::journal::{self, JOURNAL_FILE, Journal};
use super::tables::{self, counter};
use super::{Store, redo};

/// What a replay found.
#[derive(Debug, Default)]
pub(super) struct Replayed {
    /// Commits applied again.
    pub(super) commits: usize,
    /// Offset of a damaged frame the replay stopped at, if any.
    pub(super) damaged_at: Option<u64>,
}

/// The checkpoint epoch stored in `db` (0 for a store that never had a journal).
fn stored_epoch(db: &Database) -> Result<u64, Failure> {
    let txn = db.begin_read()?;
    match txn.open_table(tables::COUNTERS) {
        Ok(table) => Ok(table.get(counter::JOURNAL_EPOCH)?.map_or(0, |v| v.value())),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// Applies the frames of `journal`'s current epoch to `db` in one durable commit that is also
/// the next checkpoint, and restarts the journal after it. Nothing is written when there is
/// nothing to replay.
pub(super) fn replay(db: &Database, journal: &mut Journal) -> Result<Replayed, Failure> {
    let bytes = read_all(journal.path())?;
    replay_bytes(db, journal, &bytes)
}

/// The journal file's bytes (none if it is missing).
fn read_all(path: &Path) -> Result<Vec<u8>, Failure> {
    journal::read(path)
        .map(Option::unwrap_or_default)
        .map_err(|error| {
            Failure::Store(super::StoreError::Open {
                path: path.to_path_buf(),
                source: Box::new(error),
            })
        })
}

/// [`replay`] of journal contents read earlier (before [`Journal::open`] could refill a file
/// too short to keep, which a truncated journal is: its frames are still replayed).
fn replay_bytes(db: &Database, journal: &mut Journal, bytes: &[u8]) -> Result<Replayed, Failure> {
    let scan = journal::scan(bytes, journal.tag(), journal.epoch());
    let replayed = Replayed {
        commits: scan.commits.len(),
        damaged_at: scan.damaged_at,
    };
    if scan.commits.is_empty() && scan.end == 0 {
        journal.restart(journal.epoch());
        return Ok(replayed);
    }
    let next = journal.epoch() + 1;
    let mut txn = db.begin_write()?;
    txn.set_durability(redb::Durability::Immediate)?;
    for ops in &scan.commits {
        redo::apply(&txn, ops)?;
    }
    txn.open_table(tables::COUNTERS)?
        .insert(counter::JOURNAL_EPOCH, next)?;
    txn.commit()?;
    journal.restart(next);
    Ok(replayed)
}

impl Store {
    /// Opens the journal next to the state file, replays what it holds after the last
    /// checkpoint and keeps it for later commits. Without it (it cannot be read or created:
    /// a read-only or full disk) the store still works, every commit a durable redb commit as
    /// before the journal existed, and a note says so.
    pub(super) fn attach_journal(&self, file: &Path) -> Result<(), super::StoreError> {
        let path = file.with_file_name(JOURNAL_FILE);
        let db = self.database()?;
        let epoch =
            stored_epoch(&db).map_err(|f| f.at(&self.inner.path, "read the journal epoch"))?;
        let tag = journal::tag_of(self.incarnation());
        // Read first: opening refills a journal too short to keep (truncated by damage or a
        // file-system repair), and the frames it still holds must be replayed.
        let bytes = read_all(&path);
        let mut journal = match Journal::open(&path, tag, epoch) {
            Ok(journal) => journal,
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "no commit journal: every commit is a durable redb commit");
                return Ok(());
            }
        };
        match bytes.and_then(|bytes| replay_bytes(&db, &mut journal, &bytes)) {
            Ok(replayed) => {
                if replayed.commits > 0 {
                    tracing::info!(
                        commits = replayed.commits,
                        "replayed commits from the journal"
                    );
                }
                if let Some(at) = replayed.damaged_at {
                    let text = format!(
                        "commit journal {} damaged at byte {at}: commits after it were not replayed",
                        path.display()
                    );
                    tracing::warn!("{text}");
                    self.add_note(&text)?;
                }
            }
            Err(failure) => {
                let error = failure.at(&self.inner.path, "replay the commit journal");
                let text = format!(
                    "commit journal {} could not be replayed ({error}); commits after the last checkpoint may be missing",
                    path.display()
                );
                tracing::warn!("{text}");
                self.add_note(&text)?;
                // Start over under a new epoch so its frames are never applied later, out of
                // order with what this run commits.
                let next = journal.epoch() + 1;
                self.write("start a new commit journal", |txn| {
                    txn.open_table(tables::COUNTERS)?
                        .insert(counter::JOURNAL_EPOCH, next)?;
                    Ok(())
                })?;
                journal.restart(next);
            }
        }
        *self.journal() = Some(journal);
        self.inner.lazy.set_journaled(true);
        Ok(())
    }
}
