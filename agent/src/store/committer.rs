//! The group-commit thread: invocations that finish together share one durable commit.
//!
//! One fsync costs ~0.2–1 ms on a device, so committing each invocation alone caps throughput at
//! a few thousand per second. The committer takes whatever is queued when it becomes free, writes
//! it in one transaction, and answers each caller only after that transaction is durable — so
//! batching never weakens the promise that a reported success is on disk.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use super::Store;
use super::apply::{CommitError, apply_batch};
use super::commit::{Commit, Receipt};
use super::outbox::OutboxLimits;

/// Most commits folded into one transaction; bounds the latency of the first one in a batch.
const MAX_BATCH: usize = 1024;

type Reply = oneshot::Sender<Result<Receipt, CommitError>>;

/// How much the committer has done, for benchmarks and status.
#[derive(Debug, Default)]
pub struct CommitStats {
    /// Commits answered (landed or refused).
    pub commits: AtomicU64,
    /// Durable transactions written.
    pub transactions: AtomicU64,
    /// Woken after every transaction that may have added outbox rows, so the sync engine drains
    /// new events at once instead of polling.
    pub committed: tokio::sync::Notify,
    /// Skipped trigger runs not yet written; they ride on the next transaction so counting a
    /// skip never costs an fsync of its own.
    unwritten_skips: AtomicU64,
}

/// A handle for submitting commits; clone it freely.
#[derive(Clone)]
pub struct Committer {
    /// Queue to the commit thread; the thread ends when every handle is gone.
    tx: mpsc::Sender<(Commit, Reply)>,
    /// Shared counters.
    stats: Arc<CommitStats>,
}

/// The running commit thread; join it after dropping every [`Committer`] to flush the queue.
pub struct CommitterThread {
    handle: JoinHandle<()>,
}

impl CommitterThread {
    /// Waits until every queued commit has been written and the thread has ended.
    pub fn join(self) {
        // A panic in the thread already printed its message; nothing more to do here.
        let _ = self.handle.join();
    }
}

/// Starts the commit thread for `store`.
pub fn spawn(store: Store, limits: OutboxLimits) -> (Committer, CommitterThread) {
    let (tx, rx) = mpsc::channel::<(Commit, Reply)>();
    let stats = Arc::new(CommitStats::default());
    let thread_stats = stats.clone();
    let handle = std::thread::Builder::new()
        .name("outpost-commit".into())
        .spawn(move || run(store, limits, rx, &thread_stats))
        .expect("the OS refused to start the commit thread");
    (Committer { tx, stats }, CommitterThread { handle })
}

fn run(
    store: Store,
    limits: OutboxLimits,
    rx: mpsc::Receiver<(Commit, Reply)>,
    stats: &CommitStats,
) {
    serve(&store, &limits, &rx, stats);
    // Every handle is gone (shutdown): write the skips no commit carried.
    let skips = stats.unwritten_skips.swap(0, Ordering::Relaxed);
    if skips > 0
        && let Err(error) = apply_batch(&store, &limits, &[], skips)
    {
        tracing::warn!(%error, skips, "could not record skipped runs at shutdown");
    }
}

fn serve(
    store: &Store,
    limits: &OutboxLimits,
    rx: &mpsc::Receiver<(Commit, Reply)>,
    stats: &CommitStats,
) {
    let mut commits = Vec::with_capacity(MAX_BATCH);
    let mut replies = Vec::with_capacity(MAX_BATCH);
    while let Ok((commit, reply)) = rx.recv() {
        commits.push(commit);
        replies.push(reply);
        while commits.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok((commit, reply)) => {
                    commits.push(commit);
                    replies.push(reply);
                }
                Err(_) => break,
            }
        }
        let skips = stats.unwritten_skips.swap(0, Ordering::Relaxed);
        let results = match apply_batch(store, limits, &commits, skips) {
            Ok(results) => results,
            Err(error) => {
                stats.unwritten_skips.fetch_add(skips, Ordering::Relaxed);
                let error = Arc::new(error);
                (0..commits.len())
                    .map(|_| Err(CommitError::Store(error.clone())))
                    .collect()
            }
        };
        stats.transactions.fetch_add(1, Ordering::Relaxed);
        // One stored permit is enough: the single consumer re-reads the whole outbox tail.
        stats.committed.notify_one();
        stats
            .commits
            .fetch_add(commits.len() as u64, Ordering::Relaxed);
        for (reply, result) in replies.drain(..).zip(results) {
            // The caller may have given up (shutdown); its commit landed all the same.
            let _ = reply.send(result);
        }
        commits.clear();
    }
}

impl Committer {
    /// Submits a commit and blocks this (non-async) thread until it is durable or refused.
    pub fn commit_blocking(&self, commit: Commit) -> Result<Receipt, CommitError> {
        let (reply, answer) = oneshot::channel();
        self.submit(commit, reply)?;
        answer.blocking_recv().map_err(|_| stopped())?
    }

    /// Counts `n` skipped trigger runs; they are written with the next commit.
    pub fn note_skipped_runs(&self, n: u64) {
        self.stats.unwritten_skips.fetch_add(n, Ordering::Relaxed);
    }

    /// The shared statistics.
    pub fn stats(&self) -> &CommitStats {
        &self.stats
    }

    /// The statistics as a shared handle (for the sync engine's commit signal).
    pub fn stats_handle(&self) -> Arc<CommitStats> {
        self.stats.clone()
    }

    fn submit(&self, commit: Commit, reply: Reply) -> Result<(), CommitError> {
        self.tx.send((commit, reply)).map_err(|_| stopped())
    }
}

fn stopped() -> CommitError {
    CommitError::Stopped
}
