//! The sync engine's only way to the store: every call runs on tokio's blocking pool, never on
//! the async thread that also drives every trigger, the inbox and the systemd watchdog. The
//! session holds an [`Offloaded`] instead of a [`Store`], so a synchronous store call from the
//! async loop does not compile.

use super::drain::ReadRequest;
use crate::store::{Counters, OutboxEntry, Store, StoreError};

/// Why an off-thread call failed.
#[derive(Debug, thiserror::Error)]
pub enum OffloadError {
    /// The store refused.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The blocking task itself failed (panicked or was cancelled).
    #[error("store task failed: {0}")]
    Task(String),
}

/// A [`Store`] whose every call runs off the async thread.
#[derive(Clone)]
pub struct Offloaded {
    store: Store,
}

impl Offloaded {
    /// Wraps `store`.
    pub fn new(store: Store) -> Offloaded {
        Offloaded { store }
    }

    /// Runs `work` on the blocking pool. A panic in it is reported as an error, never
    /// propagated into the async loop.
    pub async fn run<R: Send + 'static>(
        work: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, OffloadError> {
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|join| OffloadError::Task(join.to_string()))
    }

    /// Up to `limit` outbox rows with `seq >= from`, oldest first.
    pub async fn outbox_read(
        &self,
        from: u64,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, OffloadError> {
        let store = self.store.clone();
        Ok(Self::run(move || store.outbox_read(from, limit)).await??)
    }

    /// One page of the outbox as the drain asks for it: rows from `request.from`, at most
    /// `request.limit` of them and about `request.max_bytes` stored bytes.
    pub async fn outbox_page(
        &self,
        request: ReadRequest,
    ) -> Result<Vec<OutboxEntry>, OffloadError> {
        let store = self.store.clone();
        Ok(Self::run(move || {
            store.outbox_read_page(request.from, request.limit, request.max_bytes)
        })
        .await??)
    }

    /// Deletes the acknowledged rows `seqs` in one transaction; returns how many were removed.
    pub async fn outbox_remove(&self, seqs: Vec<u64>) -> Result<u64, OffloadError> {
        let store = self.store.clone();
        Ok(Self::run(move || store.outbox_remove(&seqs)).await??)
    }

    /// Moves outbox rows that can never be sent to the dead letters, counted, in one
    /// transaction; returns how many were moved.
    pub async fn outbox_dead_letter(
        &self,
        rows: Vec<(u64, String)>,
        now_ms: i64,
    ) -> Result<u64, OffloadError> {
        let store = self.store.clone();
        Ok(Self::run(move || store.outbox_dead_letter(&rows, now_ms)).await??)
    }

    /// The persistent counters.
    pub async fn counters(&self) -> Result<Counters, OffloadError> {
        let store = self.store.clone();
        Ok(Self::run(move || store.counters()).await??)
    }

    /// Counts one refused inbound message.
    pub async fn count_inbound_refused(&self) -> Result<(), OffloadError> {
        let store = self.store.clone();
        Ok(Self::run(move || store.count_inbound_refused()).await??)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn store_calls_never_run_on_the_async_thread() {
        let async_thread = std::thread::current().id();
        let ran_on = Offloaded::run(|| std::thread::current().id())
            .await
            .expect("runs");
        assert_ne!(ran_on, async_thread);
        let store = Offloaded::new(Store::in_memory().expect("store"));
        assert!(store.outbox_read(0, 10).await.expect("reads").is_empty());
        store.count_inbound_refused().await.expect("counts");
        assert_eq!(
            store.counters().await.expect("counters").inbound_rejected,
            1
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_panic_off_thread_is_an_error_not_a_crash() {
        let outcome = Offloaded::run(|| -> u8 { panic!("boom") }).await;
        assert!(matches!(outcome, Err(OffloadError::Task(_))), "{outcome:?}");
    }
}
