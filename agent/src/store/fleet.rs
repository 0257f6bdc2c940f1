//! The fleet updater's part of the store: what is installed, the anti-rollback floor, downloads
//! in progress and their chunks, announcements dealt with, and the last report of each app.
//!
//! Reads are methods of [`FleetStore`]. Each step of an update (start a download, store a
//! chunk, activate, roll back, refuse, abandon) is one durable transaction: the fleet logic
//! composes it from the named changes of a [`FleetStep`], and a report queued in a step goes
//! into the outbox inside that same transaction, so it is never lost and never sent for
//! something that did not happen.

use std::path::Path;

use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::error::Failure;
use super::outbox_rows::OutboxRows;
use super::records::{RecordV1, StoredRecord};
use super::{Store, StoreError, tables};
use crate::fleet::state::{Install, Seen, Transfer};

/// The version envelope around every stored fleet record (postcard is not self-describing).
#[derive(Serialize, Deserialize)]
enum Stored<T> {
    V1(T),
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    postcard::to_stdvec(&Stored::V1(value)).map_err(StoreError::Encode)
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, StoreError> {
    postcard::from_bytes::<Stored<T>>(bytes)
        .map(|Stored::V1(value)| value)
        .map_err(|source| StoreError::CorruptState {
            what: "fleet record",
            source,
        })
}

/// A read-only view of the fleet tables; get one with [`Store::fleet`].
#[derive(Clone, Copy)]
pub struct FleetStore<'a> {
    store: &'a Store,
}

impl<'a> FleetStore<'a> {
    /// The fleet tables of `store`.
    pub(super) fn new(store: &'a Store) -> FleetStore<'a> {
        FleetStore { store }
    }

    /// What is installed for `app`.
    pub fn install(&self, app: &str) -> Result<Option<Install>, StoreError> {
        self.get("read an install", tables::INSTALLED, app)
    }

    /// Every installed app, by name.
    pub fn installs(&self) -> Result<Vec<(String, Install)>, StoreError> {
        self.all("list installs", tables::INSTALLED)
    }

    /// The highest version of `app` ever accepted (the anti-rollback floor): the higher of
    /// the table's and the copy kept apart from the state file (`fleet-floor.json`), so a
    /// wiped or replaced state file never lowers it.
    pub fn highest(&self, app: &str) -> Result<Option<String>, StoreError> {
        let table = self.store.read("read the anti-rollback floor", |txn| {
            let table = txn.open_table(tables::HIGHEST)?;
            Ok(table.get(app)?.map(|v| v.value().to_string()))
        })?;
        Ok(super::floor::higher(
            table,
            super::floor::of(self.store, app),
        ))
    }

    /// The last announcement of `app` dealt with.
    pub fn seen(&self, app: &str) -> Result<Option<Seen>, StoreError> {
        self.get("read a seen announcement", tables::FLEET_SEEN, app)
    }

    /// The download of `app` in progress.
    pub fn transfer(&self, app: &str) -> Result<Option<Transfer>, StoreError> {
        self.get("read a download", tables::TRANSFERS, app)
    }

    /// Every download in progress, by app.
    pub fn transfers(&self) -> Result<Vec<(String, Transfer)>, StoreError> {
        self.all("list downloads", tables::TRANSFERS)
    }

    /// The stored bundle file of `app` at `version`.
    pub fn bundle(&self, app: &str, version: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.read("read a bundle", |txn| {
            let table = txn.open_table(tables::BUNDLES)?;
            Ok(table.get((app, version))?.map(|v| v.value().to_vec()))
        })
    }

    /// The stored chunks of `app`'s download, concatenated in order (`count` of them); `None`
    /// if one is missing.
    pub fn assemble(&self, app: &str, count: u32) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.read("assemble a download", |txn| {
            let table = txn.open_table(tables::CHUNKS)?;
            let mut out = Vec::new();
            for index in 0..count {
                match table.get((app, index))? {
                    Some(chunk) => out.extend_from_slice(chunk.value()),
                    None => return Ok(None),
                }
            }
            Ok(Some(out))
        })
    }

    /// The last update report line of every app that has one.
    pub fn last_updates(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.store.read("read the last update reports", |txn| {
            let table = txn.open_table(tables::LAST_UPDATE)?;
            let mut out = Vec::new();
            for row in table.iter()? {
                let (app, line) = row?;
                out.push((app.value().to_string(), line.value().to_string()));
            }
            Ok(out)
        })
    }

    /// Runs one step of an update as one durable transaction: everything `body` changes
    /// through its [`FleetStep`] lands together, or (if it returns an error) nothing does.
    /// `action` names the step in errors ("activate an update").
    pub fn step<T>(
        &self,
        action: &'static str,
        body: impl FnOnce(&mut FleetStep<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let path = self.store.path();
        let (value, raised) = self.store.write(action, |txn| {
            let mut step = FleetStep {
                txn,
                path,
                action,
                raised: Vec::new(),
            };
            let value = body(&mut step).map_err(Failure::from)?;
            Ok((value, step.raised))
        })?;
        // Only once the floor is durable in the table: a failed step raises nothing.
        super::floor::raise(self.store, &raised);
        Ok(value)
    }

    fn get<T: for<'de> Deserialize<'de>>(
        &self,
        action: &'static str,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        self.store
            .read(action, |txn: &ReadTransaction| {
                let table = txn.open_table(table)?;
                Ok(table.get(key)?.map(|v| v.value().to_vec()))
            })?
            .map(|bytes| decode(&bytes))
            .transpose()
    }

    fn all<T: for<'de> Deserialize<'de>>(
        &self,
        action: &'static str,
        table: TableDefinition<&str, &[u8]>,
    ) -> Result<Vec<(String, T)>, StoreError> {
        self.store.read(action, |txn| {
            let table = txn.open_table(table)?;
            let mut out = Vec::new();
            for row in table.iter()? {
                let (key, value) = row?;
                out.push((key.value().to_string(), decode(value.value())?));
            }
            Ok(out)
        })
    }
}

/// The changes one update step may make, all inside its one transaction.
pub struct FleetStep<'txn> {
    txn: &'txn WriteTransaction,
    /// For errors: which file, and which step.
    path: &'txn Path,
    action: &'static str,
    /// Floors raised in this step, copied to the floor file after the commit.
    raised: Vec<(String, String)>,
}

impl FleetStep<'_> {
    /// What is installed for `app`, as this step sees it.
    pub fn install(&self, app: &str) -> Result<Option<Install>, StoreError> {
        self.run(|txn| {
            let table = txn.open_table(tables::INSTALLED)?;
            Ok(table.get(app)?.map(|v| decode(v.value())).transpose()?)
        })
    }

    /// Records what is installed for `app` (`None` removes the app).
    pub fn set_install(&mut self, app: &str, install: Option<&Install>) -> Result<(), StoreError> {
        match install {
            Some(install) => self.put(tables::INSTALLED, app, install),
            None => self.run(|txn| {
                txn.open_table(tables::INSTALLED)?.remove(app)?;
                Ok(())
            }),
        }
    }

    /// Stores the bundle file of `app` at `version`.
    pub fn put_bundle(
        &mut self,
        app: &str,
        version: &str,
        bundle: &[u8],
    ) -> Result<(), StoreError> {
        self.run(|txn| {
            txn.open_table(tables::BUNDLES)?
                .insert((app, version), bundle)?;
            Ok(())
        })
    }

    /// Deletes the bundle file of `app` at `version`.
    pub fn remove_bundle(&mut self, app: &str, version: &str) -> Result<(), StoreError> {
        self.run(|txn| {
            txn.open_table(tables::BUNDLES)?.remove((app, version))?;
            Ok(())
        })
    }

    /// Sets the anti-rollback floor of `app` to `version` (kept even if the app is removed).
    pub fn raise_floor(&mut self, app: &str, version: &str) -> Result<(), StoreError> {
        self.run(|txn| {
            txn.open_table(tables::HIGHEST)?.insert(app, version)?;
            Ok(())
        })?;
        self.raised.push((app.to_string(), version.to_string()));
        Ok(())
    }

    /// Marks an announcement of `app` dealt with.
    pub fn mark_seen(&mut self, app: &str, seen: &Seen) -> Result<(), StoreError> {
        self.put(tables::FLEET_SEEN, app, seen)
    }

    /// Records the progress of `app`'s download.
    pub fn put_transfer(&mut self, app: &str, transfer: &Transfer) -> Result<(), StoreError> {
        self.put(tables::TRANSFERS, app, transfer)
    }

    /// Stores chunk `index` of `app`'s download.
    pub fn put_chunk(&mut self, app: &str, index: u32, data: &[u8]) -> Result<(), StoreError> {
        self.run(|txn| {
            txn.open_table(tables::CHUNKS)?.insert((app, index), data)?;
            Ok(())
        })
    }

    /// Deletes every stored chunk of `app`'s download.
    pub fn clear_chunks(&mut self, app: &str) -> Result<(), StoreError> {
        self.run(|txn| {
            let mut chunks = txn.open_table(tables::CHUNKS)?;
            chunks.retain_in((app, 0)..=(app, u32::MAX), |_, _| false)?;
            Ok(())
        })
    }

    /// Ends `app`'s download record (its chunks are cleared separately).
    pub fn remove_transfer(&mut self, app: &str) -> Result<(), StoreError> {
        self.run(|txn| {
            txn.open_table(tables::TRANSFERS)?.remove(app)?;
            Ok(())
        })
    }

    /// Keeps `line` as the last update report of `record.app` and queues `record` in the
    /// outbox, outside the outbox bounds: reports are few and small, and dropping one would
    /// hide what a device did. Returns the report's sequence number.
    pub fn report(&mut self, line: &str, record: RecordV1) -> Result<u64, StoreError> {
        let app = record.app.clone();
        let row = StoredRecord::V1(record)
            .encode()
            .map_err(StoreError::Encode)?;
        self.run(|txn| {
            txn.open_table(tables::LAST_UPDATE)?
                .insert(app.as_str(), line)?;
            let mut counters = txn.open_table(tables::COUNTERS)?;
            let mut outbox = OutboxRows::open(txn, &counters)?;
            let seq = outbox.append(&row)?;
            outbox.finish(&mut counters)?;
            Ok(seq)
        })
    }

    fn put<T: Serialize>(
        &mut self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
        value: &T,
    ) -> Result<(), StoreError> {
        let bytes = encode(value)?;
        self.run(|txn| {
            txn.open_table(table)?.insert(key, bytes.as_slice())?;
            Ok(())
        })
    }

    /// Runs one change; a backend failure names the file and this step.
    fn run<T>(
        &self,
        change: impl FnOnce(&WriteTransaction) -> Result<T, Failure>,
    ) -> Result<T, StoreError> {
        change(self.txn).map_err(|failure| failure.at(self.path, self.action))
    }
}
