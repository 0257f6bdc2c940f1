//! Non-durable commits waiting for a durable one, and the thread that makes them durable when
//! no other commit does so in time (`durability`).
//!
//! Every non-durable commit notes when the oldest not-yet-durable one was made; every durable
//! commit clears that. The flusher sleeps on a condition variable while nothing is pending (no
//! periodic wake-ups on an idle device) and otherwise until the oldest pending commit is
//! `flush_after` old, then commits durably.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use super::{Inner, Store};

/// Non-durable commits in a row after which the next one is made durable (about 16,000
/// acknowledged rows at the drain's delete batches of 2,048: one fsync per such run, against
/// the pages and memory a longer run holds; the sync bench's RSS growth shows it).
const MAX_LAZY_COMMITS: u32 = 8;

/// What is pending, shared by the store and its flusher thread.
#[derive(Default)]
pub(super) struct Lazy {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    /// When the oldest commit not yet durable was made.
    since: Option<Instant>,
    /// Non-durable commits since the last durable one.
    count: u32,
    /// How long it may wait (the window, or the immediate mode's lazy flush).
    after: Duration,
    /// Whether the flusher thread runs.
    started: bool,
    /// The store is gone: the flusher ends.
    closed: bool,
}

impl Lazy {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing is left half-done under this lock: plain fields.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How long the oldest non-durable commit has waited, if there is one.
    pub(super) fn pending_for(&self) -> Option<Duration> {
        self.lock().since.map(|since| since.elapsed())
    }

    /// Whether a non-durable commit waits for a durable one.
    pub(super) fn pending(&self) -> bool {
        self.lock().since.is_some()
    }

    /// Whether so many non-durable commits wait that the next commit should be durable: redb
    /// cannot reuse the pages they free until a durable commit, so a long run of them (deletes
    /// while a large backlog drains, with no invocation commit between) grows the file and the
    /// memory that tracks those pages.
    pub(super) fn too_many(&self) -> bool {
        self.lock().count >= MAX_LAZY_COMMITS
    }

    /// Sets how long a non-durable commit may wait.
    pub(super) fn set_after(&self, after: Duration) {
        self.lock().after = after;
        self.wake.notify_all();
    }

    /// Notes a non-durable commit made just now; starts the flusher for `inner` if needed.
    pub(super) fn note_lazy(self: &Arc<Self>, inner: &Arc<Inner>) {
        let mut state = self.lock();
        state.since.get_or_insert_with(Instant::now);
        state.count = state.count.saturating_add(1);
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
        self.wake.notify_all();
    }

    /// Notes a durable commit: everything before it is on disk.
    pub(super) fn note_durable(&self) {
        let mut state = self.lock();
        state.since = None;
        state.count = 0;
    }

    /// Ends the flusher (the store is being dropped).
    pub(super) fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_all();
    }
}

fn flush_loop(lazy: &Lazy, store: &Weak<Inner>) {
    let mut state = lazy.lock();
    loop {
        if state.closed {
            return;
        }
        let Some(since) = state.since else {
            state = lazy
                .wake
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            continue;
        };
        let due = since + state.after;
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
        if let Err(error) = (Store { inner }).persist() {
            tracing::warn!(%error, "cannot make the last commits durable; retrying");
            // Retry no sooner than one more period: an I/O error re-opens the file on the next
            // operation, and a failing disk must not be hammered.
            let mut state = lazy.lock();
            if let Some(since) = state.since.as_mut() {
                *since = Instant::now();
            }
            drop(state);
        }
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
            assert!(!lazy.too_many());
            lazy.lock().count += 1;
        }
        assert!(lazy.too_many());
        lazy.note_durable();
        assert!(!lazy.too_many());
        assert!(!lazy.pending());
    }
}
