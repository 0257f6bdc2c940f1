//! What the store tells the device about damage and recovery, so nothing about it is silent:
//! the device turns each [`StoreNotice`] into an `AgentEvent::problem` (and the status shows the
//! persistent side: quarantine counter, store notes, incarnation).

use std::sync::Arc;

/// Something an operator should hear about the state store.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreNotice {
    /// A damaged row was moved out of the outbox or inbox into quarantine.
    Quarantined {
        /// `outbox` or `inbox`.
        table: &'static str,
        /// Its sequence number or inbox id.
        key: u64,
        /// What was wrong with it.
        reason: String,
    },
    /// The state file was damaged at start-up, moved aside and replaced by a fresh store.
    Replaced {
        /// The line kept in the store's notes (what, where it was moved, what was salvaged).
        note: String,
    },
    /// An operation failed with an I/O error (full disk, failing medium); the store re-opens
    /// the file on each later operation until one succeeds. Raised once per episode.
    IoError {
        /// The state file.
        path: String,
        /// What failed.
        error: String,
    },
    /// The open file keeps reporting damage that re-opening does not cure (redb says the
    /// database is corrupted): the agent should restart, so that the start-up check moves the
    /// file aside and salvages it. Raised once.
    Unusable {
        /// The state file.
        path: String,
        /// The last error.
        error: String,
    },
    /// A write succeeded again after an I/O error: the store has recovered by itself.
    Reopened {
        /// The state file.
        path: String,
    },
    /// The last run stopped uncleanly (power cut, `kill -9`) in durability-window mode: the
    /// commits of its last window may be lost, and sequence numbers continue past the watermark.
    UncleanStop {
        /// The line kept in the store's notes.
        note: String,
    },
    /// A file kept apart from the state file (the anti-rollback floor, the sequence
    /// watermark) could not be read or written.
    SideFile {
        /// What failed.
        message: String,
    },
}

impl std::fmt::Display for StoreNotice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreNotice::Quarantined { table, key, reason } => write!(
                f,
                "{table} row {key} is damaged ({reason}); moved to quarantine, the rest goes on (outpost outbox quarantine lists it)"
            ),
            StoreNotice::Replaced { note } | StoreNotice::UncleanStop { note } => f.write_str(note),
            StoreNotice::IoError { path, error } => write!(
                f,
                "state file {path}: {error}; re-opening it and retrying until the disk allows"
            ),
            StoreNotice::Unusable { path, error } => write!(
                f,
                "state file {path} is damaged while in use ({error}); restarting so the start-up check can replace it"
            ),
            StoreNotice::Reopened { path } => write!(
                f,
                "state file {path} re-opened after an I/O error; writes work again"
            ),
            StoreNotice::SideFile { message } => {
                write!(f, "file kept apart from the state file: {message}")
            }
        }
    }
}

/// A listener for notices.
pub(super) type Listener = Arc<dyn Fn(&StoreNotice) + Send + Sync>;

/// The listener, or the notices raised before there was one.
#[derive(Default)]
pub(super) struct Sink {
    listener: Option<Listener>,
    pending: Vec<StoreNotice>,
}

/// Notices kept while nobody listens; a store that keeps finding damage before the device is
/// up must not grow without bound.
const MAX_PENDING: usize = 64;

impl Sink {
    /// Tells the listener, or keeps `notice` for the one to come.
    pub(super) fn raise(&mut self, notice: StoreNotice) {
        match &self.listener {
            Some(listener) => listener(&notice),
            None if self.pending.len() < MAX_PENDING => self.pending.push(notice),
            None => {}
        }
    }

    /// Sets the listener and hands it what was raised before.
    pub(super) fn attach(&mut self, listener: Listener) {
        for notice in self.pending.drain(..) {
            listener(&notice);
        }
        self.listener = Some(listener);
    }
}
