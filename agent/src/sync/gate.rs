//! Back-pressure on inbound messages, so memory never follows what a broker pushes.
//!
//! The session's pump reads the transport and hands inbound messages to the logic on a
//! channel. A broker may push its whole queue at once (mosquitto with `max_inflight_messages
//! 0`, or any broker without MQTT 5's Receive Maximum), and a message is up to the inbound
//! packet limit, so the pump stops reading while the messages handed over and not yet taken
//! reach [`Gate`]'s byte bound: TCP then holds the rest at the broker.
//!
//! One exception keeps this deadlock-free: the logic's own transport calls (publish, ack,
//! subscribe) queue requests that only the pump's polling takes, so while the logic waits in
//! one, the pump keeps polling. It may read a few more messages then; each such wait is short
//! (a request taken off a queue).

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// The bound, the count and the signal shared by a session's pump and logic.
#[derive(Debug)]
pub struct Gate {
    /// Bytes handed over that make the pump wait.
    limit: usize,
    /// Payload bytes handed to the logic and not yet taken.
    buffered: AtomicUsize,
    /// Transport calls the logic is waiting in.
    calls: AtomicUsize,
    /// Wakes the pump when either changed.
    changed: Notify,
}

impl Gate {
    /// A gate that pauses the pump at `limit` buffered bytes.
    pub fn new(limit: usize) -> Gate {
        Gate {
            limit,
            buffered: AtomicUsize::new(0),
            calls: AtomicUsize::new(0),
            changed: Notify::new(),
        }
    }

    /// The pump handed over a message of `bytes`.
    pub fn handed(&self, bytes: usize) {
        self.buffered.fetch_add(bytes, Ordering::SeqCst);
    }

    /// The logic took a message of `bytes` (stored, refused or left for re-delivery).
    pub fn taken(&self, bytes: usize) {
        self.buffered.fetch_sub(bytes, Ordering::SeqCst);
        self.changed.notify_one();
    }

    /// Whether the pump must wait before reading again.
    pub fn full(&self) -> bool {
        self.buffered.load(Ordering::SeqCst) >= self.limit && self.calls.load(Ordering::SeqCst) == 0
    }

    /// Payload bytes handed over and not yet taken.
    pub fn buffered(&self) -> usize {
        self.buffered.load(Ordering::SeqCst)
    }

    /// The pump waits here until it may read again.
    pub async fn wait_open(&self) {
        while self.full() {
            // `notify_one` stores a permit when nobody waits, so a change between the check
            // and this await is not lost.
            self.changed.notified().await;
        }
    }

    /// The logic is about to wait in a transport call: the pump must poll meanwhile. The
    /// guard ends it, also when the call is cancelled.
    pub fn calling(&self) -> Calling<'_> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_one();
        Calling { gate: self }
    }
}

/// A transport call in progress (see [`Gate::calling`]).
pub struct Calling<'a> {
    gate: &'a Gate,
}

impl Drop for Calling<'_> {
    fn drop(&mut self) {
        self.gate.calls.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pump_waits_at_the_bound_unless_the_logic_is_in_a_transport_call() {
        let gate = Gate::new(100);
        gate.handed(60);
        assert!(!gate.full());
        gate.handed(60);
        assert!(gate.full());
        {
            let _call = gate.calling();
            assert!(!gate.full(), "the logic needs the pump to poll");
        }
        assert!(gate.full());
        gate.taken(60);
        assert!(!gate.full());
        assert_eq!(gate.buffered(), 60);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_waiting_pump_wakes_when_a_message_is_taken() {
        let gate = std::sync::Arc::new(Gate::new(10));
        gate.handed(10);
        let waiter = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.wait_open().await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        gate.taken(10);
        waiter.await.expect("the pump reads again");
    }
}
