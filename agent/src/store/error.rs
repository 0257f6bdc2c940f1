//! Errors of the local store.

use std::path::PathBuf;
use thiserror::Error;

/// Why the local store failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Another process (a running `outpost up` or agent) holds the state file.
    #[error("state file {path} is in use by another outpost process (stop it first)")]
    Locked {
        /// The redb file.
        path: PathBuf,
    },
    /// The state file could not be opened or created.
    #[error("cannot open state file {path}: {source}")]
    Open {
        /// The redb file.
        path: PathBuf,
        /// What redb reported.
        source: redb::DatabaseError,
    },
    /// A read or write failed inside redb (I/O error, full disk, corruption).
    #[error("state store: {0}")]
    Backend(#[from] redb::Error),
    /// A stored outbox row does not decode (written by a newer agent, or corrupt).
    #[error("outbox row {seq} does not decode: {source}")]
    CorruptRecord {
        /// Its sequence number.
        seq: u64,
        /// What postcard reported.
        source: postcard::Error,
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

macro_rules! from_redb {
    ($($ty:ty),*) => {$(
        impl From<$ty> for StoreError {
            fn from(error: $ty) -> Self {
                StoreError::Backend(error.into())
            }
        }
    )*};
}

from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);
