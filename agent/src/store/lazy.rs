//! Work that is not durable yet, and the thread that makes it so when no commit does in time.
//!
//! Two things wait (`durability`, `journal`):
//! - *unsynced* work: journal frames written without an `fdatasync` (deletes after PUBACKs,
//!   counters, window-mode commits) — or, for a store without a journal, redb commits made
//!   non-durably. A power cut would lose it. It is synced at most `after` later (the window, or
//!   the immediate mode's lazy flush), or earlier by any commit that syncs.
//! - *unchecked* work: redb commits made non-durably whose durability rests on the journal.
//!   A checkpoint (a durable redb commit) comes at most [`CHECKPOINT_AFTER`] later, or when so
//!   much is journaled that a checkpoint is due ([`Lazy::checkpoint_due`]).
//!
//! The flusher sleeps on a condition variable while nothing waits (no periodic wake-ups on an
//! idle device), and is woken only when a deadline appears, never for work that joins one.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use super::{Inner, Store};

/// Non-durable redb commits in a row, without a journal, after which the next one is made
/// durable (about 16,000 acknowledged rows at the drain's delete batches of 2,048: one fsync per
/// such run, against the pages and memory a longer run holds; the sync bench's RSS growth
/// shows it).
const MAX_LAZY_COMMITS: u32 = 8;

/// Journaled row changes after which a checkpoint is due: the same bound on what redb holds
/// in memory between durable commits as [`MAX_LAZY_COMMITS`] of full delete batches.
const MAX_JOURNALED_OPS: u64 = 16_384;

/// Longest a journaled commit waits for its checkpoint. A checkpoint costs about twenty pages
/// whatever it carries (BENCHMARKS.md), so fewer is gentler on flash; a crash replays at most
/// this long of commits from the journal at the next start.
pub const CHECKPOINT_AFTER: Duration = Duration::from_secs(300);

/// What is pending, shared by the store and its flusher thread.
#[derive(Default)]
pub(super) struct Lazy {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    /// When the oldest work not yet on disk was done.
    unsynced: Option<Instant>,
    /// When the oldest redb commit not yet durable in redb itself was made.
    unchecked: Option<Instant>,
    /// Non-durable redb commits since the last durable one, without a journal.
    lazy_commits: u32,
    /// Row changes journaled since the last checkpoint.
    journaled_ops: u64,
    /// Journaled commits since the last checkpoint.
    journaled_commits: u32,
    /// How long unsynced work may wait (the window, or the immediate mode's lazy flush).
    after: Duration,
    /// Whether commits are journaled (unchecked work is then safe until its checkpoint).
    journaled: bool,
    /// Longest journaled work waits for its checkpoint ([`CHECKPOINT_AFTER`] unless set).
    checkpoint_after: Option<Duration>,
    /// Whether the flusher thread runs.
    started: bool,
    /// The store is gone: the flusher ends.
    closed: bool,
}

/// How durable a journaled commit's frame already is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Frame {
    /// Synced with the commit (and everything before it with it).
    Synced,
    /// Not synced; due within the unsynced-work delay (the durability window).
    Unsynced,
    /// Not synced, and with no deadline of its own: the next sync or checkpoint carries it.
    RideAlong,
}

/// What the flusher does when it wakes.
enum Due {
    Sync,
    Checkpoint,
}

impl State {
    fn checkpoint_after(&self) -> Duration {
        self.checkpoint_after.unwrap_or(CHECKPOINT_AFTER)
    }

    /// The next thing due and when.
    fn next_due(&self) -> Option<(Instant, Due)> {
        let sync = self.unsynced.map(|since| (since + self.after, Due::Sync));
        let checkpoint = self
            .unchecked
            .filter(|_| self.journaled)
            .map(|since| (since + self.checkpoint_after(), Due::Checkpoint));
        match (sync, checkpoint) {
            (Some(s), Some(c)) => Some(if c.0 <= s.0 { c } else { s }),
            (s, c) => s.or(c),
        }
    }
}

impl Lazy {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing is left half-done under this lock: plain fields.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How long the oldest work not yet on disk has waited, if there is any.
    pub(super) fn pending_for(&self) -> Option<Duration> {
        self.lock().unsynced.map(|since| since.elapsed())
    }

    /// Whether redb holds commits not yet durable in redb itself (journaled or not): a clean
    /// stop makes them so.
    pub(super) fn pending(&self) -> bool {
        self.lock().unchecked.is_some()
    }

    /// Whether work waits that a power cut now would lose.
    pub(super) fn unsynced(&self) -> bool {
        self.lock().unsynced.is_some()
    }

    /// Whether the next commit should be a checkpoint (a durable redb commit): redb cannot
    /// reuse the pages non-durable commits free until one, so a long run of them grows the file
    /// and the memory that tracks those pages; and a journaled commit waits at most
    /// [`CHECKPOINT_AFTER`].
    pub(super) fn checkpoint_due(&self) -> bool {
        let state = self.lock();
        if state.journaled {
            state.journaled_ops >= MAX_JOURNALED_OPS
                || state
                    .unchecked
                    .is_some_and(|since| since.elapsed() >= state.checkpoint_after())
        } else {
            state.lazy_commits >= MAX_LAZY_COMMITS
        }
    }

    /// Whether a store at its disk quota should checkpoint now: the pages its dropped rows
    /// free are reused only after one, so between checkpoints the file grows by what the
    /// commits add; every [`MAX_LAZY_COMMITS`] commits bounds that growth.
    pub(super) fn checkpoint_due_at_quota(&self) -> bool {
        let state = self.lock();
        state.journaled_commits.max(state.lazy_commits) >= MAX_LAZY_COMMITS
    }

    /// Sets how long unsynced work may wait.
    pub(super) fn set_after(&self, after: Duration) {
        self.lock().after = after;
        self.wake.notify_all();
    }

    /// Sets the longest journaled work waits for its checkpoint.
    pub(super) fn set_checkpoint_after(&self, after: Duration) {
        self.lock().checkpoint_after = Some(after);
        self.wake.notify_all();
    }

    /// Says whether commits are journaled from now on.
    pub(super) fn set_journaled(&self, journaled: bool) {
        self.lock().journaled = journaled;
    }

    /// Notes a non-durable redb commit with no journal behind it; starts the flusher for
    /// `inner` if needed.
    pub(super) fn note_lazy(self: &Arc<Self>, inner: &Arc<Inner>) {
        let mut state = self.lock();
        state.lazy_commits = state.lazy_commits.saturating_add(1);
        let new_deadline = state.unsynced.is_none();
        let now = Instant::now();
        state.unsynced.get_or_insert(now);
        state.unchecked.get_or_insert(now);
        self.wake_for(state, inner, new_deadline);
    }

    /// Notes a non-durable redb commit whose `ops` row changes were journaled in a `frame`.
    pub(super) fn note_journaled(self: &Arc<Self>, inner: &Arc<Inner>, frame: Frame, ops: usize) {
        let mut state = self.lock();
        state.journaled_ops = state.journaled_ops.saturating_add(ops as u64);
        state.journaled_commits = state.journaled_commits.saturating_add(1);
        let now = Instant::now();
        let mut new_deadline = state.unchecked.is_none();
        state.unchecked.get_or_insert(now);
        match frame {
            // The sync made every frame before it durable too.
            Frame::Synced => state.unsynced = None,
            Frame::Unsynced if state.unsynced.is_none() => {
                state.unsynced = Some(now);
                new_deadline = true;
            }
            Frame::Unsynced | Frame::RideAlong => {}
        }
        self.wake_for(state, inner, new_deadline);
    }

    /// Notes an `fdatasync` of the journal: nothing unsynced remains.
    pub(super) fn note_synced(&self) {
        self.lock().unsynced = None;
    }

    /// Notes a durable redb commit: everything before it is on disk.
    pub(super) fn note_durable(&self) {
        let mut state = self.lock();
        state.unsynced = None;
        state.unchecked = None;
        state.lazy_commits = 0;
        state.journaled_ops = 0;
        state.journaled_commits = 0;
    }

    /// Ends the flusher (the store is being dropped).
    pub(super) fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_all();
    }

    /// Starts the flusher if it is not running, and wakes it if a deadline just appeared (one
    /// that only joins an earlier deadline needs no wake-up: it cannot come sooner).
    fn wake_for(self: &Arc<Self>, mut state: MutexGuard<'_, State>, inner: &Arc<Inner>, new: bool) {
        if !state.started {
            state.started = true;
            let lazy = self.clone();
            let store = Arc::downgrade(inner);
            let spawned = std::thread::Builder::new()
                .name("outpost-flush".into())
                .spawn(move || flush_loop(&lazy, &store));
            if let Err(error) = spawned {
                // Without it, the next durable commit (any invocation in immediate mode, the
                // shutdown) still persists the work; only the time bound is lost.
                state.started = false;
                tracing::warn!(%error, "cannot start the store's flush thread");
            }
        }
        drop(state);
        if new {
            self.wake.notify_all();
        }
    }
}

fn flush_loop(lazy: &Lazy, store: &Weak<Inner>) {
    let mut state = lazy.lock();
    loop {
        if state.closed {
            return;
        }
        let Some((due, what)) = state.next_due() else {
            state = lazy
                .wake
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            continue;
        };
        let now = Instant::now();
        if now < due {
            state = lazy
                .wake
                .wait_timeout(state, due - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
            continue;
        }
        drop(state);
        let Some(inner) = store.upgrade() else { return };
        let store = Store { inner };
        let done = match what {
            Due::Sync => store.sync(),
            Due::Checkpoint => store.persist(),
        };
        if let Err(error) = done {
            tracing::warn!(%error, "cannot make the last commits durable; retrying");
            // Retry no sooner than one more period: an I/O error re-opens the file on the next
            // operation, and a failing disk must not be hammered.
            let mut state = lazy.lock();
            let now = Instant::now();
            match what {
                Due::Sync => state.unsynced = state.unsynced.map(|_| now),
                Due::Checkpoint => state.unchecked = state.unchecked.map(|_| now),
            }
            drop(state);
        }
        drop(store);
        state = lazy.lock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_of_non_durable_commits_asks_for_a_durable_one_and_a_durable_one_resets_it() {
        let lazy = Lazy::default();
        for _ in 0..MAX_LAZY_COMMITS {
            assert!(!lazy.checkpoint_due());
            lazy.lock().lazy_commits += 1;
        }
        assert!(lazy.checkpoint_due());
        lazy.note_durable();
        assert!(!lazy.checkpoint_due());
        assert!(!lazy.pending());
    }
}
