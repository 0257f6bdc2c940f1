//! Every redb table the agent uses, in one place, so the on-disk layout is readable at a glance.
//! Only the store opens them: the outbox table and its counters through `outbox_rows` (their one
//! writer), the fleet tables through [`super::fleet`].

use redb::TableDefinition;

/// Key-value data: `(app, namespace, key) -> value`.
pub const KV: TableDefinition<(&str, &str, &str), &[u8]> = TableDefinition::new("kv_v1");

/// The outbox: `seq -> postcard(StoredRecord)`. Sequence numbers are per device and only grow,
/// so a consumer can deduplicate and spot gaps.
pub const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox_v1");

/// Inbound MQTT messages for components: `id -> postcard(StoredInbound)`. A row is written
/// before the message is acknowledged to the broker and removed in the same transaction as the
/// effects of the invocation that handled it, so each message's effects land exactly once.
pub const INBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("inbox_v1");

/// Outbox rows that can never be sent (larger than the packet limit after it was lowered, or
/// the wire format or device id changed): `seq -> postcard(StoredDeadLetter)`, moved out of the
/// outbox in one transaction with their count, kept for an operator (`outpost outbox dead`).
pub const DEAD_LETTERS: TableDefinition<u64, &[u8]> = TableDefinition::new("dead_letters_v1");

/// Counters that must survive restarts (next sequence number, outbox size, drop counts). The
/// outbox's counters change only with its rows (`outbox_rows`); the rest through
/// [`Store::count_inbound_refused`](super::Store::count_inbound_refused) or the commit batch.
pub const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters_v1");

/// Last run of each trigger: `(app, trigger) -> wall ms`, to decide about runs missed while off.
/// Read only, for stores written before the last runs moved into [`COUNTERS`]
/// ([`counter::trigger_run`]): one table fewer to rewrite per commit, one 4 KiB page less.
pub const TRIGGER_RUNS: TableDefinition<(&str, &str), i64> =
    TableDefinition::new("trigger_runs_v1");

/// Names of the persistent counters in [`COUNTERS`].
pub mod counter {
    /// The sequence number the next outbox record gets.
    pub const NEXT_SEQ: &str = "outbox.next_seq";
    /// Records currently in the outbox.
    pub const OUTBOX_RECORDS: &str = "outbox.records";
    /// Payload bytes currently in the outbox.
    pub const OUTBOX_BYTES: &str = "outbox.bytes";
    /// Records removed to make room under the `drop-oldest` policy.
    pub const DROPPED_RECORDS: &str = "outbox.dropped_records";
    /// Bytes removed to make room under the `drop-oldest` policy.
    pub const DROPPED_BYTES: &str = "outbox.dropped_bytes";
    /// Records refused under the `reject-new` policy.
    pub const REJECTED_RECORDS: &str = "outbox.rejected_records";
    /// Invocations whose effects were refused because the outbox was full.
    pub const REJECTED_INVOCATIONS: &str = "outbox.rejected_invocations";
    /// Records moved from the outbox to the dead letters (they can never be sent).
    pub const DEAD_RECORDS: &str = "outbox.dead_records";
    /// Bytes moved from the outbox to the dead letters.
    pub const DEAD_BYTES: &str = "outbox.dead_bytes";
    /// Inbound messages in the inbox now.
    pub const INBOX_RECORDS: &str = "inbox.records";
    /// Payload bytes in the inbox now.
    pub const INBOX_BYTES: &str = "inbox.bytes";
    /// Invocations that trapped, hit a limit or returned an error (their effects discarded).
    pub const FAILED_INVOCATIONS: &str = "invocations.failed";
    /// Inbound messages refused (too large, or on no trigger's topic).
    pub const INBOUND_REJECTED: &str = "sync.inbound_rejected";
    /// The id the next inbox row gets.
    pub const NEXT_INBOX: &str = "inbox.next_id";
    /// Runs skipped because the previous run of the same trigger was still going.
    pub const SKIPPED_RUNS: &str = "scheduler.skipped_runs";
    /// Outbox and inbox rows moved to [`super::QUARANTINE`] (failed checksum, undecodable).
    pub const QUARANTINED_ROWS: &str = "store.quarantined_rows";
    /// The id the next quarantined row gets.
    pub const NEXT_QUARANTINE: &str = "store.next_quarantine_id";
    /// The id the next store note gets.
    pub const NEXT_NOTE: &str = "store.next_note_id";
    /// Checkpoints made since the commit journal was first used: the journal's frames carry
    /// it, so frames from before the last checkpoint are never replayed (`journal`).
    pub const JOURNAL_EPOCH: &str = "store.journal_epoch";

    /// The counter holding the last run (wall ms, as `i64` bits) of `trigger` of `app`: kept
    /// with the counters, which every commit rewrites anyway, so a commit touches one table
    /// (and one page) fewer than with a table of its own.
    pub fn trigger_run(app: &str, trigger: &str) -> String {
        format!("run\0{app}\0{trigger}")
    }
}

/// Damaged rows taken out of the outbox or inbox so that the rest still flows:
/// `id -> postcard(quarantine::Stored::V1(QuarantinedRow))`, the damaged bytes kept as they were
/// for an operator (`outpost outbox quarantine`).
pub const QUARANTINE: TableDefinition<u64, &[u8]> = TableDefinition::new("quarantine_v1");

/// Facts about the store itself: `name -> bytes`; `incarnation` holds the random id drawn when
/// the store was created.
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta_v1");

/// What happened to the store that an operator should know after a restart (a damaged file
/// replaced, rows salvaged): `id -> postcard(meta::Stored::V1(StoreNote))`.
pub const NOTES: TableDefinition<u64, &[u8]> = TableDefinition::new("store_notes_v1");

/// Installed bundle files: `(app, version) -> bundle bytes`; the active and the previous version
/// of each app (older ones are removed on activation).
pub const BUNDLES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("bundles_v1");

/// What is installed: `app -> postcard(Stored::V1(fleet::state::Install))`. Activation and rollback
/// rewrite one row in one transaction, so an app always has exactly one active version.
pub const INSTALLED: TableDefinition<&str, &[u8]> = TableDefinition::new("installed_v1");

/// Anti-rollback: `app -> highest version ever accepted`, kept even when the app is removed.
pub const HIGHEST: TableDefinition<&str, &str> = TableDefinition::new("highest_version_v1");

/// Bundle downloads in progress: `app -> postcard(Stored::V1(fleet::state::Transfer))`.
pub const TRANSFERS: TableDefinition<&str, &[u8]> = TableDefinition::new("transfers_v1");

/// Chunks received so far: `(app, index) -> bytes`, written with their transfer's progress.
pub const CHUNKS: TableDefinition<(&str, u32), &[u8]> = TableDefinition::new("chunks_v1");

/// The last update report of each app, as one line: `app -> line`, for the status after a
/// restart (the reports themselves leave through the outbox).
pub const LAST_UPDATE: TableDefinition<&str, &str> = TableDefinition::new("last_update_v1");

/// Announcements already dealt with (installed, refused, rolled back, abandoned):
/// `app -> postcard(Stored::V1(fleet::state::Seen))`, so a retained announcement delivered again on
/// every reconnect is not fetched or reported again.
pub const FLEET_SEEN: TableDefinition<&str, &[u8]> = TableDefinition::new("fleet_seen_v1");
