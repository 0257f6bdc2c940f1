//! What one non-durable transaction changed, as physical row writes the commit journal keeps
//! (`journal`) and a start after a crash applies again.
//!
//! A transaction notes the keys it touches; before it commits, [`Redo::resolve`] reads their
//! final values (or their absence) from the same transaction. Replaying is then just writing
//! those values back: idempotent, and independent of the logic that produced them, so a replay
//! can never decide differently from the run it repeats (an outbox that has since filled up, a
//! clock that moved). Only the tables the hot paths write are covered — key-value data, the
//! outbox, the inbox and the counters; every other write is a durable commit of its own.

use std::collections::BTreeSet;

use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::error::Failure;
use super::outbox_rows::OUTBOX_COUNTERS;
use super::tables::{self, counter};

/// One row's final state after a transaction: its value, or `None` if it was removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Op {
    /// A key-value row `(app, namespace, key)`.
    Kv {
        /// The app.
        app: String,
        /// The namespace.
        ns: String,
        /// The key.
        key: String,
        /// The value, or `None` if deleted.
        value: Option<Vec<u8>>,
    },
    /// An outbox row (its stored, sealed bytes).
    Outbox {
        /// Sequence number.
        seq: u64,
        /// The row, or `None` if deleted.
        row: Option<Vec<u8>>,
    },
    /// An inbox row (its stored, sealed bytes).
    Inbox {
        /// Inbox id.
        id: u64,
        /// The row, or `None` if deleted.
        row: Option<Vec<u8>>,
    },
    /// A counter's value (counters are never deleted).
    Counter {
        /// The counter's name.
        name: String,
        /// Its value.
        value: u64,
    },
}

/// The keys one transaction touched, resolved into [`Op`]s before it commits.
#[derive(Debug, Default)]
pub(super) struct Redo {
    kv: BTreeSet<(String, String, String)>,
    outbox: BTreeSet<u64>,
    inbox: BTreeSet<u64>,
    counters: BTreeSet<String>,
}

impl Redo {
    /// Notes a key-value row written or deleted.
    pub(super) fn kv(&mut self, app: &str, ns: &str, key: &str) {
        self.kv.insert((app.into(), ns.into(), key.into()));
    }

    /// Notes outbox rows added or removed (their counters with them).
    pub(super) fn outbox(&mut self, seqs: impl IntoIterator<Item = u64>) {
        self.outbox.extend(seqs);
        self.counters
            .extend(OUTBOX_COUNTERS.iter().map(|c| (*c).to_string()));
    }

    /// Notes an inbox row added or removed (the inbox's counters with it).
    pub(super) fn inbox(&mut self, id: u64) {
        self.inbox.insert(id);
        for name in [
            counter::INBOX_RECORDS,
            counter::INBOX_BYTES,
            counter::NEXT_INBOX,
        ] {
            self.counter(name);
        }
    }

    /// Notes a counter written.
    pub(super) fn counter(&mut self, name: &str) {
        if !self.counters.contains(name) {
            self.counters.insert(name.to_string());
        }
    }

    /// Reads the final state of every touched row from `txn` (whose tables the caller has
    /// closed again: redb opens a table once per transaction at a time).
    pub(super) fn resolve(self, txn: &WriteTransaction) -> Result<Vec<Op>, Failure> {
        let mut ops = Vec::with_capacity(
            self.kv.len() + self.outbox.len() + self.inbox.len() + self.counters.len(),
        );
        if !self.kv.is_empty() {
            let table = txn.open_table(tables::KV)?;
            for (app, ns, key) in self.kv {
                let value = table
                    .get((app.as_str(), ns.as_str(), key.as_str()))?
                    .map(|v| v.value().to_vec());
                ops.push(Op::Kv {
                    app,
                    ns,
                    key,
                    value,
                });
            }
        }
        if !self.outbox.is_empty() {
            let table = txn.open_table(tables::OUTBOX)?;
            for seq in self.outbox {
                let row = table.get(seq)?.map(|v| v.value().to_vec());
                ops.push(Op::Outbox { seq, row });
            }
        }
        if !self.inbox.is_empty() {
            let table = txn.open_table(tables::INBOX)?;
            for id in self.inbox {
                let row = table.get(id)?.map(|v| v.value().to_vec());
                ops.push(Op::Inbox { id, row });
            }
        }
        if !self.counters.is_empty() {
            let table = txn.open_table(tables::COUNTERS)?;
            for name in self.counters {
                // An untouched counter that was never written reads as 0, which is what every
                // reader takes a missing counter for.
                let value = table.get(name.as_str())?.map_or(0, |v| v.value());
                ops.push(Op::Counter { name, value });
            }
        }
        Ok(ops)
    }
}

/// Writes `ops` into `txn`, in order.
pub(super) fn apply(txn: &WriteTransaction, ops: &[Op]) -> Result<(), Failure> {
    let mut kv = txn.open_table(tables::KV)?;
    let mut outbox = txn.open_table(tables::OUTBOX)?;
    let mut inbox = txn.open_table(tables::INBOX)?;
    let mut counters = txn.open_table(tables::COUNTERS)?;
    for op in ops {
        match op {
            Op::Kv {
                app,
                ns,
                key,
                value,
            } => {
                let at = (app.as_str(), ns.as_str(), key.as_str());
                match value {
                    Some(value) => drop(kv.insert(at, value.as_slice())?),
                    None => drop(kv.remove(at)?),
                }
            }
            Op::Outbox { seq, row } => match row {
                Some(row) => drop(outbox.insert(*seq, row.as_slice())?),
                None => drop(outbox.remove(*seq)?),
            },
            Op::Inbox { id, row } => match row {
                Some(row) => drop(inbox.insert(*id, row.as_slice())?),
                None => drop(inbox.remove(*id)?),
            },
            Op::Counter { name, value } => drop(counters.insert(name.as_str(), *value)?),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> redb::Database {
        redb::Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .expect("db")
    }

    #[test]
    fn resolved_ops_replayed_elsewhere_give_the_same_rows() {
        let source = db();
        let txn = source.begin_write().expect("txn");
        let mut redo = Redo::default();
        {
            let mut kv = txn.open_table(tables::KV).expect("kv");
            kv.insert(("a", "n", "k"), b"v".as_slice()).expect("put");
            kv.insert(("a", "n", "gone"), b"x".as_slice()).expect("put");
            kv.remove(("a", "n", "gone")).expect("del");
            redo.kv("a", "n", "k");
            redo.kv("a", "n", "gone");
            let mut outbox = txn.open_table(tables::OUTBOX).expect("outbox");
            outbox.insert(7, b"row".as_slice()).expect("row");
            redo.outbox([7, 6]);
            let mut counters = txn.open_table(tables::COUNTERS).expect("counters");
            counters.insert(counter::NEXT_SEQ, 8).expect("seq");
        }
        let ops = redo.resolve(&txn).expect("resolves");
        assert!(ops.contains(&Op::Outbox { seq: 6, row: None }));
        assert!(ops.contains(&Op::Counter {
            name: counter::OUTBOX_RECORDS.into(),
            value: 0
        }));

        let target = db();
        let txn2 = target.begin_write().expect("txn");
        {
            let mut outbox = txn2.open_table(tables::OUTBOX).expect("outbox");
            outbox.insert(6, b"acked".as_slice()).expect("row");
        }
        apply(&txn2, &ops).expect("applies");
        apply(&txn2, &ops).expect("applying twice is harmless");
        let kv = txn2.open_table(tables::KV).expect("kv");
        assert_eq!(
            kv.get(("a", "n", "k"))
                .expect("get")
                .expect("there")
                .value(),
            b"v"
        );
        assert!(kv.get(("a", "n", "gone")).expect("get").is_none());
        let outbox = txn2.open_table(tables::OUTBOX).expect("outbox");
        assert!(outbox.get(6).expect("get").is_none(), "the delete replayed");
        assert_eq!(outbox.get(7).expect("get").expect("row").value(), b"row");
        let counters = txn2.open_table(tables::COUNTERS).expect("counters");
        assert_eq!(
            counters
                .get(counter::NEXT_SEQ)
                .expect("get")
                .expect("set")
                .value(),
            8
        );
    }
}
