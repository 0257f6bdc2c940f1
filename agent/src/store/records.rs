//! What the outbox stores, encoded with postcard inside a version envelope.
//!
//! postcard is not self-describing, so every stored value starts with an enum tag: a future
//! layout is a new variant, and old rows still decode.

use serde::{Deserialize, Serialize};

use super::envelope::{self, RowDamage, Table};
use crate::runtime::OutboxEffect;

/// The effect an outbox row carries, as stored. It mirrors [`OutboxEffect`] but is the on-disk
/// layout: variants and fields are only ever appended, never reordered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordBody {
    /// An event emitted to a named stream.
    Event {
        /// Stream name (granted in the manifest).
        stream: String,
        /// The component's bytes, unchanged.
        data: Vec<u8>,
    },
    /// An MQTT message queued for the sync engine.
    Publish {
        /// Topic the component chose (within its granted filters).
        topic: String,
        /// Message body.
        payload: Vec<u8>,
        /// 0 or 1.
        qos: u8,
        /// Whether the broker should retain it.
        retain: bool,
    },
    /// A change to a key of a namespace the manifest marks `[sync] kv`; published retained so
    /// a device's latest state is readable from the broker while it is offline. Appended last:
    /// postcard tags variants by position, so rows written before it still decode.
    Kv {
        /// Namespace.
        ns: String,
        /// Key.
        key: String,
        /// New value, or `None` for a delete (an empty retained message clears the topic).
        value: Option<Vec<u8>>,
    },
}

impl RecordBody {
    /// Bytes the record's payload occupies, for the outbox byte bound.
    pub fn payload_len(&self) -> u64 {
        match self {
            RecordBody::Event { stream, data } => (stream.len() + data.len()) as u64,
            RecordBody::Publish { topic, payload, .. } => (topic.len() + payload.len()) as u64,
            RecordBody::Kv { ns, key, value } => {
                (ns.len() + key.len() + value.as_ref().map_or(0, Vec::len)) as u64
            }
        }
    }
}

impl From<&OutboxEffect> for RecordBody {
    fn from(effect: &OutboxEffect) -> Self {
        match effect {
            OutboxEffect::Event { stream, data } => RecordBody::Event {
                stream: stream.clone(),
                data: data.clone(),
            },
            OutboxEffect::Publish {
                topic,
                payload,
                qos,
                retain,
            } => RecordBody::Publish {
                topic: topic.clone(),
                payload: payload.clone(),
                qos: *qos,
                retain: *retain,
            },
            OutboxEffect::Kv { ns, key, value } => RecordBody::Kv {
                ns: ns.clone(),
                key: key.clone(),
                value: value.clone(),
            },
        }
    }
}

impl From<RecordBody> for OutboxEffect {
    fn from(body: RecordBody) -> Self {
        match body {
            RecordBody::Event { stream, data } => OutboxEffect::Event { stream, data },
            RecordBody::Publish {
                topic,
                payload,
                qos,
                retain,
            } => OutboxEffect::Publish {
                topic,
                payload,
                qos,
                retain,
            },
            RecordBody::Kv { ns, key, value } => OutboxEffect::Kv { ns, key, value },
        }
    }
}

/// An outbox row as stored, version 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordV1 {
    /// Wall-clock time of the invocation that produced it, ms since epoch.
    pub time_ms: i64,
    /// App that produced it.
    pub app: String,
    /// Component that produced it.
    pub component: String,
    /// The effect itself.
    pub body: RecordBody,
}

/// Where in the device's life a row was committed while the wall clock was not synchronised:
/// enough to compute its true time once the clock is (`sync::anchor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootStamp {
    /// The kernel's id of the boot it was committed in.
    pub boot_id: u128,
    /// Milliseconds since that boot began (`CLOCK_BOOTTIME`).
    pub since_boot_ms: u64,
}

impl From<outpost_hal::BootInstant> for BootStamp {
    fn from(at: outpost_hal::BootInstant) -> Self {
        BootStamp {
            boot_id: at.boot_id,
            since_boot_ms: at.since_boot_ms,
        }
    }
}

/// The version envelope around every stored outbox row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoredRecord {
    /// Layout 1: a row committed while the wall clock was synchronised (its `time_ms` is
    /// true), or by an agent that did not know.
    V1(RecordV1),
    /// A row committed while the wall clock was not synchronised: its `time_ms` is whatever
    /// the clock read, and `unsynced` says where in which boot it really was. Rows committed
    /// with a synced clock stay `V1`, so they cost no extra byte.
    V2 {
        /// The row.
        record: RecordV1,
        /// Its boot and time since boot.
        unsynced: BootStamp,
    },
}

impl StoredRecord {
    /// Encodes for storage, inside the checksum envelope; the outbox addresses it to its
    /// sequence number when it appends it.
    pub fn encode(&self) -> Result<Vec<u8>, postcard::Error> {
        envelope::seal(Table::Outbox, 0, self)
    }

    /// Checks and decodes stored outbox row `seq` (with or without the checksum envelope); a
    /// damaged, misplaced, unknown or corrupt row is an error, never a panic.
    pub fn decode(bytes: &[u8], seq: u64) -> Result<StoredRecord, RowDamage> {
        envelope::open(bytes, Table::Outbox, seq)
    }

    /// The row as committed at `time_ms`, stamped with `unsynced` if the wall clock was not
    /// synchronised then.
    pub fn new(record: RecordV1, unsynced: Option<BootStamp>) -> StoredRecord {
        match unsynced {
            None => StoredRecord::V1(record),
            Some(unsynced) => StoredRecord::V2 { record, unsynced },
        }
    }

    /// The current-version view of the row.
    pub fn into_current(self) -> RecordV1 {
        self.into_parts().0
    }

    /// The row and, if it was committed with an unsynchronised clock, its boot stamp.
    pub fn into_parts(self) -> (RecordV1, Option<BootStamp>) {
        match self {
            StoredRecord::V1(record) => (record, None),
            StoredRecord::V2 { record, unsynced } => (record, Some(unsynced)),
        }
    }
}

/// An inbound MQTT message waiting for its component, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoredInbound {
    /// Layout 1.
    V1 {
        /// The MQTT trigger that will handle it.
        trigger: String,
        /// Topic it arrived on.
        topic: String,
        /// Its body.
        payload: Vec<u8>,
        /// When it was stored, ms since epoch.
        received_ms: i64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips_and_garbage_is_an_error() {
        let record = StoredRecord::V1(RecordV1 {
            time_ms: 1_700_000_000_000,
            app: "demo".into(),
            component: "sampler".into(),
            body: RecordBody::Event {
                stream: "readings".into(),
                data: b"21.5".to_vec(),
            },
        });
        let mut bytes = record.encode().expect("encodes");
        envelope::set_key(&mut bytes, Table::Outbox, 5);
        assert_eq!(StoredRecord::decode(&bytes, 5).expect("decodes"), record);
        // The on-disk layout, pinned: envelope tag, table, key, length and CRC-32, then the
        // version tag, time (zigzag varint), names, body tag.
        assert_eq!(
            &bytes[..14],
            &[envelope::CHECKED, 1, 5, 0, 0, 0, 0, 0, 0, 0, 35, 0, 0, 0]
        );
        assert_eq!(
            &bytes[18..],
            [
                0, 128, 160, 171, 254, 249, 98, 4, b'd', b'e', b'm', b'o', 7, b's', b'a', b'm',
                b'p', b'l', b'e', b'r', 0, 8, b'r', b'e', b'a', b'd', b'i', b'n', b'g', b's', 4,
                b'2', b'1', b'.', b'5'
            ]
        );
        // A row written before the envelope still decodes.
        assert_eq!(
            StoredRecord::decode(&bytes[18..], 5).expect("old row decodes"),
            record
        );
        assert!(StoredRecord::decode(&[7, 1, 2], 1).is_err());
        assert!(StoredRecord::decode(&[], 1).is_err());
    }

    #[test]
    fn a_row_committed_unsynced_keeps_its_boot_stamp_and_version_1_rows_still_read() {
        let record = RecordV1 {
            time_ms: 5_000,
            app: "demo".into(),
            component: "c".into(),
            body: RecordBody::Event {
                stream: "s".into(),
                data: b"1".to_vec(),
            },
        };
        let stamp = BootStamp {
            boot_id: 0xfeed,
            since_boot_ms: 5_000,
        };
        let stored = StoredRecord::new(record.clone(), Some(stamp));
        let bytes = stored.encode().expect("encodes");
        let back = StoredRecord::decode(&bytes, 0).expect("decodes");
        assert_eq!(back.into_parts(), (record.clone(), Some(stamp)));
        // Version 1 rows (every row an older agent wrote) decode as synced.
        let old = StoredRecord::new(record.clone(), None)
            .encode()
            .expect("encodes");
        assert_eq!(
            StoredRecord::decode(&old, 0).expect("decodes").into_parts(),
            (record, None)
        );
    }
}
