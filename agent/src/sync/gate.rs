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
//! one, the pump keeps polling. It does wait at times even with a roomy request queue
//! ([`request_capacity`]): rumqttc stops taking requests while a packet id is still awaiting
//! its PUBACK, and during a flood that PUBACK sits behind the flood in the socket. So the pump
//! must read on, but what it reads past the bound is **not kept and not acknowledged**
//! ([`Gate::over`], counted by [`Gate::overflowed`]): the broker still holds it, and once the
//! logic has handled what it took, the session ends so that the broker delivers the rest again
//! (MQTT re-delivers unacknowledged QoS 1 messages of a persistent session on reconnect).
//! Memory stays bounded, nothing is lost, and every round makes progress.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// Inbound payload bytes handed over before the pump waits (plus one message of up to the
/// inbound packet limit on top).
pub const BUFFER_BYTES: usize = 128 * 1024;

/// Inbound messages handed over before the pump waits: bounds the acks the logic queues while
/// the pump does not poll.
pub const BUFFER_MESSAGES: usize = 32;

/// A transport request queue in which the session never waits for room: the drain's window and
/// one page of messages, an ack for every message the gate lets through, and room for status
/// publishes and subscription changes.
pub fn request_capacity(window: usize, page_rows: usize) -> usize {
    window + page_rows + BUFFER_MESSAGES + 64
}

/// The bound, the count and the signal shared by a session's pump and logic.
#[derive(Debug)]
pub struct Gate {
    /// Bytes handed over that make the pump wait.
    limit: usize,
    /// Messages handed over that make the pump wait.
    max_messages: usize,
    /// Payload bytes handed to the logic and not yet taken.
    buffered: AtomicUsize,
    /// Messages handed to the logic and not yet taken.
    messages: AtomicUsize,
    /// Transport calls the logic is waiting in.
    calls: AtomicUsize,
    /// Messages read past the bound and left unacknowledged this session.
    overflow: AtomicUsize,
    /// Wakes the pump when either changed.
    changed: Notify,
}

impl Gate {
    /// A gate that pauses the pump at `limit` buffered bytes or `max_messages` messages.
    pub fn new(limit: usize, max_messages: usize) -> Gate {
        Gate {
            limit,
            max_messages,
            buffered: AtomicUsize::new(0),
            messages: AtomicUsize::new(0),
            calls: AtomicUsize::new(0),
            overflow: AtomicUsize::new(0),
            changed: Notify::new(),
        }
    }

    /// The pump handed over a message of `bytes`.
    pub fn handed(&self, bytes: usize) {
        self.buffered.fetch_add(bytes, Ordering::SeqCst);
        self.messages.fetch_add(1, Ordering::SeqCst);
    }

    /// The logic took a message of `bytes` (stored, refused or left for re-delivery).
    pub fn taken(&self, bytes: usize) {
        self.buffered.fetch_sub(bytes, Ordering::SeqCst);
        self.messages.fetch_sub(1, Ordering::SeqCst);
        self.changed.notify_one();
    }

    /// Whether the buffer is at its bound: a message read now is not kept.
    pub fn over(&self) -> bool {
        self.buffered.load(Ordering::SeqCst) >= self.limit
            || self.messages.load(Ordering::SeqCst) >= self.max_messages
    }

    /// Whether the pump must wait before reading again: at the bound, unless the logic waits
    /// in a transport call (which only the pump's polling completes).
    pub fn full(&self) -> bool {
        self.over() && self.calls.load(Ordering::SeqCst) == 0
    }

    /// The pump read a message past the bound and dropped it unacknowledged.
    pub fn overflowed(&self) {
        self.overflow.fetch_add(1, Ordering::SeqCst);
    }

    /// Messages dropped unacknowledged this session (the broker delivers them again).
    pub fn overflow(&self) -> usize {
        self.overflow.load(Ordering::SeqCst)
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
        let gate = Gate::new(100, 10);
        gate.handed(60);
        assert!(!gate.full());
        gate.handed(60);
        assert!(gate.full());
        {
            let _call = gate.calling();
            assert!(!gate.full(), "the logic needs the pump to poll");
            assert!(gate.over(), "but what it reads now is not kept");
            gate.overflowed();
        }
        assert_eq!(gate.overflow(), 1);
        assert!(gate.full());
        gate.taken(60);
        assert!(!gate.full());
        assert_eq!(gate.buffered(), 60);
        for _ in 0..9 {
            gate.handed(1);
        }
        assert!(gate.full(), "ten small messages close it too");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_waiting_pump_wakes_when_a_message_is_taken() {
        let gate = std::sync::Arc::new(Gate::new(10, 10));
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
