//! The drain's rules as a pure state machine: what to read next, what a PUBACK releases, what a
//! session's end means. No I/O and no clock: the engine (`engine.rs`) feeds it what happened
//! (a page was read, a message was sent, an ack arrived, the session ended) and does what it
//! asks (read a page, delete these rows). Modelled on rumqttc's `state.rs` and
//! `scheduler/plan.rs`, so every rule below is unit-tested in microseconds.
//!
//! The rules:
//! - Every session starts reading from the oldest row: whatever the previous session had in
//!   flight is sent again (duplicates, never loss), because the transport forgets un-acknowledged
//!   publishes with the session.
//! - A row leaves the outbox only once the broker acknowledged the message carrying it: a PUBACK
//!   releases exactly that message's rows, nothing else.
//! - At most `window` messages and about `window_bytes` payload bytes await a PUBACK; reading
//!   stops while the window is full, and a page holds at most `page_rows` rows and about
//!   `page_bytes` stored bytes, so memory is bounded however large the backlog and its rows.
//! - Released rows are deleted in batches (`delete_rows`, or when the engine's timer says so);
//!   a failed delete keeps them for the next try.

use std::collections::HashMap;

use embedded_svc::mqtt::client::asynch::MessageId;

/// The drain's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainLimits {
    /// Most messages awaiting PUBACK at once.
    pub window: usize,
    /// Payload bytes awaiting PUBACK that close the window (the message that reaches it is
    /// the last sent).
    pub window_bytes: usize,
    /// Most rows read per page.
    pub page_rows: usize,
    /// Stored bytes that end a page (the row that reaches it is the last read).
    pub page_bytes: usize,
    /// Released rows that make a delete due at once (without waiting for the timer).
    pub delete_rows: usize,
}

/// A page of the outbox to read: rows with `seq >= from`, at most `limit`, ending after the
/// row that reaches `max_bytes` stored bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadRequest {
    /// First sequence number to read.
    pub from: u64,
    /// Most rows.
    pub limit: usize,
    /// Stored bytes that end the page.
    pub max_bytes: usize,
}

/// The drain of one device's outbox.
#[derive(Debug)]
pub struct Drain {
    limits: DrainLimits,
    /// Messages sent this session and not yet acknowledged: message id → the rows it carries
    /// and its payload bytes.
    inflight: HashMap<MessageId, (Vec<u64>, usize)>,
    /// Payload bytes of the messages in `inflight`.
    inflight_bytes: usize,
    /// Rows the broker acknowledged, waiting to be deleted (kept across sessions: they are done).
    released: Vec<u64>,
    /// Next sequence number to read in this session.
    cursor: u64,
    /// The last read found nothing past `cursor`; reset by a commit or a new session.
    caught_up: bool,
    /// Whether "drained" was already reported for the current quiet spell.
    drained_reported: bool,
}

impl Drain {
    /// A drain with `limits`; call [`Drain::start_session`] once connected.
    pub fn new(limits: DrainLimits) -> Drain {
        Drain {
            limits,
            inflight: HashMap::new(),
            inflight_bytes: 0,
            released: Vec::new(),
            cursor: 0,
            caught_up: false,
            drained_reported: false,
        }
    }

    /// A new session: forget what was in flight (the transport forgot it too) and read again
    /// from the oldest row.
    pub fn start_session(&mut self) {
        self.inflight.clear();
        self.inflight_bytes = 0;
        self.cursor = 0;
        self.caught_up = false;
        self.drained_reported = false;
    }

    /// The session ended: what was in flight will be sent again by the next session. Returns
    /// the released rows still to delete, which the engine deletes before reconnecting.
    pub fn end_session(&mut self) -> Vec<u64> {
        self.inflight.clear();
        self.inflight_bytes = 0;
        self.caught_up = false;
        std::mem::take(&mut self.released)
    }

    /// Something was committed locally: there may be rows past the cursor.
    pub fn committed(&mut self) {
        self.caught_up = false;
    }

    /// The next page to read, if the window has room and the outbox may hold more.
    pub fn next_read(&self) -> Option<ReadRequest> {
        (!self.caught_up && self.has_room()).then_some(ReadRequest {
            from: self.cursor,
            limit: self.limits.page_rows,
            max_bytes: self.limits.page_bytes,
        })
    }

    /// A page was read (`seqs` in order, as asked by [`Drain::next_read`]). An empty page means
    /// the outbox holds nothing past the cursor.
    pub fn page_read(&mut self, seqs: impl IntoIterator<Item = u64>) {
        match seqs.into_iter().last() {
            Some(last) => self.cursor = self.cursor.max(last + 1),
            None => self.caught_up = true,
        }
    }

    /// A message of `bytes` payload bytes carrying `seqs` was handed to the transport as `id`.
    pub fn sent(&mut self, id: MessageId, seqs: Vec<u64>, bytes: usize) {
        if let Some((_, old)) = self.inflight.insert(id, (seqs, bytes)) {
            self.inflight_bytes -= old;
        }
        self.inflight_bytes += bytes;
    }

    /// Rows that can never be sent and were disposed of by an explicit, counted policy: they
    /// leave like acknowledged rows.
    pub fn disposed(&mut self, seqs: impl IntoIterator<Item = u64>) {
        self.released.extend(seqs);
    }

    /// The broker acknowledged message `id`: its rows are released, and only they. Returns
    /// whether a delete is now due (the released rows crossed `delete_rows`). An unknown id (a
    /// status publish, or an ack from a session that ended) releases nothing.
    pub fn acknowledged(&mut self, id: MessageId) -> bool {
        let before = self.released.len();
        if let Some((seqs, bytes)) = self.inflight.remove(&id) {
            self.inflight_bytes -= bytes;
            self.released.extend(seqs);
        }
        // On crossing the bound only: after a failed delete the timer retries.
        before < self.limits.delete_rows && self.released.len() >= self.limits.delete_rows
    }

    /// Takes the released rows for one delete transaction.
    pub fn take_released(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.released)
    }

    /// A delete failed: keep its rows for the next try (or a re-send after a restart).
    pub fn delete_failed(&mut self, mut seqs: Vec<u64>) {
        seqs.append(&mut self.released);
        self.released = seqs;
    }

    /// Whether released rows wait for a delete.
    pub fn has_released(&self) -> bool {
        !self.released.is_empty()
    }

    /// Whether the window has room for another message.
    pub fn has_room(&self) -> bool {
        self.inflight.len() < self.limits.window && self.inflight_bytes < self.limits.window_bytes
    }

    /// Whether the outbox was read to its end (the engine then waits for a commit).
    pub fn caught_up(&self) -> bool {
        self.caught_up
    }

    /// Messages awaiting PUBACK.
    pub fn in_flight(&self) -> usize {
        self.inflight.len()
    }

    /// True once per quiet spell: the outbox was read to its end, nothing awaits a PUBACK and
    /// nothing waits to be deleted. Further calls return false until new work arrived.
    pub fn newly_drained(&mut self) -> bool {
        let drained = self.caught_up && self.inflight.is_empty() && self.released.is_empty();
        if !drained {
            self.drained_reported = false;
            return false;
        }
        !std::mem::replace(&mut self.drained_reported, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(window: usize) -> Drain {
        let mut drain = Drain::new(DrainLimits {
            window,
            window_bytes: 1 << 20,
            page_rows: 100,
            page_bytes: 1 << 20,
            delete_rows: 1_000,
        });
        drain.start_session();
        drain
    }

    #[test]
    fn a_puback_releases_exactly_the_rows_of_its_message() {
        let mut d = drain(8);
        assert_eq!(
            d.next_read(),
            Some(ReadRequest {
                from: 0,
                limit: 100,
                max_bytes: 1 << 20
            })
        );
        d.page_read([1, 2, 3, 4]);
        d.sent(10, vec![1, 2], 10);
        d.sent(11, vec![3], 10);
        d.sent(12, vec![4], 10);
        d.acknowledged(11);
        assert_eq!(d.take_released(), vec![3]);
        d.acknowledged(99); // not ours (e.g. the status): nothing
        assert!(!d.has_released());
        d.acknowledged(10);
        assert_eq!(d.take_released(), vec![1, 2]);
        d.acknowledged(10); // twice: nothing more
        assert!(!d.has_released());
        assert_eq!(d.in_flight(), 1);
    }

    #[test]
    fn a_cut_session_sends_again_from_the_oldest_row() {
        let mut d = drain(8);
        d.page_read([5, 6, 7]);
        d.sent(1, vec![5, 6], 10);
        d.sent(2, vec![7], 10);
        d.acknowledged(2);
        assert_eq!(d.next_read().map(|r| r.from), Some(8));
        // The link dies: 7 was acknowledged and is deleted; 5 and 6 are owed.
        assert_eq!(d.end_session(), vec![7]);
        assert_eq!(d.in_flight(), 0);
        d.start_session();
        assert_eq!(
            d.next_read(),
            Some(ReadRequest {
                from: 0,
                limit: 100,
                max_bytes: 1 << 20
            })
        );
        // An ack for a message of the old session releases nothing.
        d.acknowledged(1);
        assert!(!d.has_released());
    }

    #[test]
    fn a_full_window_stops_reading_until_an_ack() {
        let mut d = drain(2);
        d.page_read([1, 2, 3]);
        d.sent(1, vec![1], 10);
        d.sent(2, vec![2], 10);
        assert_eq!(d.next_read(), None);
        assert!(!d.has_room());
        d.acknowledged(1);
        assert_eq!(d.next_read().map(|r| r.from), Some(4));
    }

    #[test]
    fn reading_stops_at_the_end_until_a_commit() {
        let mut d = drain(8);
        d.page_read([1]);
        d.sent(1, vec![1], 10);
        d.page_read([]);
        assert!(d.caught_up());
        assert_eq!(d.next_read(), None);
        assert!(!d.newly_drained(), "a message is still in flight");
        d.acknowledged(1);
        assert!(!d.newly_drained(), "a row still waits to be deleted");
        d.take_released();
        assert!(d.newly_drained());
        assert!(!d.newly_drained(), "said once per quiet spell");
        d.committed();
        assert_eq!(d.next_read().map(|r| r.from), Some(2));
        d.page_read([]);
        assert!(
            !d.newly_drained(),
            "a commit that added nothing ends no quiet spell"
        );
        d.committed();
        d.page_read([2]);
        d.sent(2, vec![2], 10);
        assert!(!d.newly_drained());
        d.acknowledged(2);
        d.take_released();
        d.page_read([]);
        assert!(d.newly_drained(), "new work drained is said again");
    }

    #[test]
    fn a_delete_is_due_when_released_rows_cross_the_bound_and_a_failed_one_keeps_them() {
        let mut d = Drain::new(DrainLimits {
            window: 8,
            window_bytes: 1 << 20,
            page_rows: 10,
            page_bytes: 1 << 20,
            delete_rows: 3,
        });
        d.start_session();
        d.page_read([1, 2, 3, 4]);
        d.sent(1, vec![1, 2], 10);
        d.sent(2, vec![3, 4], 10);
        assert!(!d.acknowledged(1));
        assert!(d.acknowledged(2));
        let rows = d.take_released();
        assert_eq!(rows, vec![1, 2, 3, 4]);
        d.disposed([9]);
        d.delete_failed(rows);
        assert_eq!(d.take_released(), vec![1, 2, 3, 4, 9]);
    }

    #[test]
    fn large_messages_close_the_window_by_bytes_before_its_count() {
        let mut d = Drain::new(DrainLimits {
            window: 64,
            window_bytes: 1_000,
            page_rows: 1024,
            page_bytes: 4_096,
            delete_rows: 100,
        });
        d.start_session();
        assert_eq!(d.next_read().map(|r| r.max_bytes), Some(4_096));
        d.page_read([1, 2, 3]);
        d.sent(1, vec![1], 600);
        assert!(d.has_room());
        d.sent(2, vec![2], 600);
        assert!(
            !d.has_room(),
            "1,200 bytes in flight close a 1,000-byte window"
        );
        assert_eq!(d.next_read(), None);
        d.acknowledged(1);
        assert!(d.has_room());
        assert_eq!(d.next_read().map(|r| r.from), Some(4));
        d.end_session();
        d.start_session();
        assert!(d.has_room(), "a new session starts with an empty window");
    }
}
