//! The memory and table caps of one invocation: wasmi's `StoreLimits`, plus a record of the
//! request it denied, so the invocation's error says how much the guest asked for and what the
//! limit is instead of wasmi's "a resource limiter denied to allocate or grow the linear
//! memory".

use wasmi::errors::{MemoryError, TableError};
use wasmi::{ResourceLimiter, StoreLimits};
use wasmi_core::LimiterError;

/// What the limiter refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// Linear memory of `asked` bytes (creating it or growing it).
    Memory {
        /// Bytes the guest's memory would have had.
        asked: u64,
    },
    /// A table of `asked` elements.
    Table {
        /// Elements the table would have had.
        asked: u64,
    },
}

/// [`StoreLimits`] that remembers the first request it denied.
#[derive(Debug)]
pub struct Limiter {
    inner: StoreLimits,
    /// The first denied request of this invocation.
    pub denied: Option<Denied>,
}

impl Limiter {
    /// Wraps `inner`.
    pub fn new(inner: StoreLimits) -> Limiter {
        Limiter {
            inner,
            denied: None,
        }
    }

    fn note(&mut self, allowed: &Result<bool, LimiterError>, denied: Denied) {
        if !matches!(allowed, Ok(true)) && self.denied.is_none() {
            self.denied = Some(denied);
        }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> Result<bool, LimiterError> {
        let allowed = self.inner.memory_growing(current, desired, maximum);
        self.note(
            &allowed,
            Denied::Memory {
                asked: desired as u64,
            },
        );
        allowed
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> Result<bool, LimiterError> {
        let allowed = self.inner.table_growing(current, desired, maximum);
        self.note(
            &allowed,
            Denied::Table {
                asked: desired as u64,
            },
        );
        allowed
    }

    fn memory_grow_failed(&mut self, error: &MemoryError) -> Result<(), LimiterError> {
        self.inner.memory_grow_failed(error)
    }

    fn table_grow_failed(&mut self, error: &TableError) -> Result<(), LimiterError> {
        self.inner.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}
