//! Errors of the local store, free of the backend's types: callers learn which state file
//! failed and what the store was doing, and the backend's own error travels boxed as the source.

use std::path::{Path, PathBuf};
use thiserror::Error;

/// The backend's own error, boxed so no caller depends on (or matches on) the backend.
pub type BackendError = Box<dyn std::error::Error + Send + Sync>;

/// Why the local store failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Another process (a running `outpost up` or agent) holds the state file.
    #[error("state file {path} is in use by another outpost process (stop it first)")]
    Locked {
        /// The state file.
        path: PathBuf,
    },
    /// The state file could not be opened or created.
    #[error("cannot open state file {path}: {source}")]
    Open {
        /// The state file.
        path: PathBuf,
        /// What the backend reported.
        source: BackendError,
    },
    /// A read or write failed inside the backend (I/O error, full disk, corruption); nothing of
    /// that transaction was written.
    #[error("state file {path}: cannot {action}: {source}")]
    Backend {
        /// The state file.
        path: PathBuf,
        /// What the store was doing, as a phrase ("read the outbox").
        action: &'static str,
        /// What the backend reported.
        source: BackendError,
    },
    /// The state file is damaged (empty, truncated, or failing redb's integrity check);
    /// [`open_dir`](super::guard::open_dir) moves such a file aside and starts a fresh one.
    #[error("state file {path} is damaged: {reason}")]
    Damaged {
        /// The state file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A stored outbox or inbox row failed its checksum or does not decode.
    #[error("outbox row {seq} is damaged: {source}")]
    CorruptRecord {
        /// Its sequence number (or inbox id).
        seq: u64,
        /// What is wrong with it.
        source: super::envelope::RowDamage,
    },
    /// A stored fleet record (install, transfer) does not decode (written by a newer agent, or
    /// corrupt).
    #[error("stored {what} does not decode: {source}")]
    CorruptState {
        /// Which record.
        what: &'static str,
        /// What postcard reported.
        source: postcard::Error,
    },
    /// A record could not be encoded (should not happen for well-formed records).
    #[error("cannot encode outbox record: {0}")]
    Encode(postcard::Error),
}

/// A failure inside one transaction, before it is known which file and which action it
/// belongs to: the store's transaction helpers turn it into a [`StoreError`] at their edge.
/// Private to the store, so redb's error types never leave it.
#[derive(Debug)]
pub(super) enum Failure {
    /// redb refused or failed.
    Redb(redb::Error),
    /// Already a store error (a row that does not decode, say).
    Store(StoreError),
}

impl Failure {
    /// Whether redb says the file itself is corrupted (not a passing I/O error).
    pub(super) fn is_corruption(&self) -> bool {
        matches!(self, Failure::Redb(redb::Error::Corrupted(_)))
    }

    /// Whether the database handle is unusable after this failure and the file must be opened
    /// again: redb refuses every operation after an I/O error until it is.
    pub(super) fn needs_reopen(&self) -> bool {
        matches!(
            self,
            Failure::Redb(
                redb::Error::Io(_)
                    | redb::Error::PreviousIo
                    | redb::Error::DatabaseClosed
                    | redb::Error::Corrupted(_)
            )
        )
    }

    /// The public error: `path` failed while doing `action`.
    pub(super) fn at(self, path: &Path, action: &'static str) -> StoreError {
        match self {
            Failure::Redb(source) => StoreError::Backend {
                path: path.to_path_buf(),
                action,
                source: Box::new(source),
            },
            Failure::Store(error) => error,
        }
    }
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        Failure::Store(error)
    }
}

macro_rules! from_redb {
    ($($ty:ty),*) => {$(
        impl From<$ty> for Failure {
            fn from(error: $ty) -> Self {
                Failure::Redb(error.into())
            }
        }
    )*};
}

from_redb!(
    redb::Error,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);
