//! What a child process said, kept in order with the instant each item was read, and waited for
//! as it arrives: a reader thread pushes, waiters block on a condition variable.
//!
//! Positions ([`Log::mark`]) count every item ever pushed, including those no longer kept, so a
//! waiter can ask for "the first match after this point" even when the log is bounded.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A shared, append-only sequence of items of type `T` with their arrival instants.
pub struct Log<T> {
    state: Mutex<State<T>>,
    /// Signalled on every push and on close.
    changed: Condvar,
    /// Items kept; older ones are dropped (a verbose broker logs every packet).
    keep: usize,
}

struct State<T> {
    /// Items pushed so far, including those no longer kept.
    total: u64,
    /// The most recent items with when each was read.
    items: VecDeque<(Instant, T)>,
    /// The source ended: nothing more will come, so waiting is pointless.
    closed: bool,
}

/// One match of [`Log::wait_after`].
#[derive(Debug, Clone)]
pub struct Found<T> {
    /// Its position (see [`Log::mark`]).
    pub index: u64,
    /// When it was read.
    pub at: Instant,
    /// The item.
    pub item: T,
}

impl<T: Clone> Log<T> {
    /// An empty log keeping the last `keep` items.
    pub fn new(keep: usize) -> Log<T> {
        Log {
            state: Mutex::new(State {
                total: 0,
                items: VecDeque::new(),
                closed: false,
            }),
            changed: Condvar::new(),
            keep,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().expect("log lock")
    }

    /// Appends `item` (read now) and wakes the waiters.
    pub fn push(&self, item: T) {
        let mut state = self.lock();
        state.total += 1;
        state.items.push_back((Instant::now(), item));
        if state.items.len() > self.keep {
            state.items.pop_front();
        }
        self.changed.notify_all();
    }

    /// Marks the source as ended: waits that have not matched yet give up at once.
    pub fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }

    /// Opens the log again for a new source (a restarted process).
    pub fn reopen(&self) {
        self.lock().closed = false;
    }

    /// The position after the last item pushed so far.
    pub fn mark(&self) -> u64 {
        self.lock().total
    }

    /// The first kept item at position `mark` or later satisfying `pred`, waiting up to `timeout`
    /// for it; `None` on timeout or when the source ended without one.
    pub fn wait_after(
        &self,
        mark: u64,
        timeout: Duration,
        mut pred: impl FnMut(&T) -> bool,
    ) -> Option<Found<T>> {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        let mut next = mark;
        loop {
            let first_kept = state.total - state.items.len() as u64;
            next = next.max(first_kept);
            while next < state.total {
                let (at, item) = &state.items[(next - first_kept) as usize];
                if pred(item) {
                    return Some(Found {
                        index: next,
                        at: *at,
                        item: item.clone(),
                    });
                }
                next += 1;
            }
            if state.closed {
                return None;
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            state = self.changed.wait_timeout(state, left).expect("log lock").0;
        }
    }

    /// Waits until at least `n` kept items satisfy `pred`, up to `timeout`; returns whether so.
    pub fn wait_count(
        &self,
        mut pred: impl FnMut(&T) -> bool,
        n: usize,
        timeout: Duration,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        loop {
            if state.items.iter().filter(|(_, item)| pred(item)).count() >= n {
                return true;
            }
            if state.closed {
                return false;
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            state = self.changed.wait_timeout(state, left).expect("log lock").0;
        }
    }

    /// Kept items satisfying `pred`.
    pub fn count(&self, mut pred: impl FnMut(&T) -> bool) -> usize {
        self.lock()
            .items
            .iter()
            .filter(|(_, item)| pred(item))
            .count()
    }

    /// A copy of every kept item, oldest first.
    pub fn items(&self) -> Vec<T> {
        self.lock()
            .items
            .iter()
            .map(|(_, item)| item.clone())
            .collect()
    }

    /// The last `n` kept items.
    pub fn tail(&self, n: usize) -> Vec<T> {
        let state = self.lock();
        let skip = state.items.len().saturating_sub(n);
        state
            .items
            .iter()
            .skip(skip)
            .map(|(_, item)| item.clone())
            .collect()
    }
}

/// Reads `stream` line by line on a thread of its own, pushing `to_item(line)` for each line;
/// calls `at_end` once the stream closes (the process ended or closed it).
pub fn read_lines<T, R>(
    name: String,
    stream: R,
    log: Arc<Log<T>>,
    to_item: impl Fn(String) -> T + Send + 'static,
    at_end: impl FnOnce(&Log<T>) + Send + 'static,
) -> std::thread::JoinHandle<()>
where
    T: Clone + Send + 'static,
    R: Read + Send + 'static,
{
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                log.push(to_item(line));
            }
            at_end(&log);
        })
        .expect("reader thread")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_waiter_wakes_on_the_matching_push_and_positions_survive_dropping() {
        let log = Arc::new(Log::new(2));
        let pusher = log.clone();
        let thread = std::thread::spawn(move || {
            for n in 0..5 {
                pusher.push(n);
            }
        });
        let found = log
            .wait_after(0, Duration::from_secs(10), |n| *n == 4)
            .expect("4 arrives");
        thread.join().expect("pusher");
        assert_eq!((found.index, found.item), (4, 4));
        assert_eq!(log.items(), vec![3, 4], "only the last two are kept");
        assert_eq!(log.mark(), 5);
    }

    #[test]
    fn a_closed_log_ends_waits_at_once() {
        let log: Log<u32> = Log::new(10);
        log.push(1);
        log.close();
        assert!(
            log.wait_after(0, Duration::from_secs(60), |n| *n == 2)
                .is_none()
        );
        assert!(!log.wait_count(|n| *n == 1, 2, Duration::from_secs(60)));
        assert!(log.wait_count(|n| *n == 1, 1, Duration::from_secs(60)));
    }
}
