//! Inbound routes: who wants which MQTT topics, and how their messages are acknowledged.
//!
//! The sync engine knows no consumer of inbound messages. Each consumer — the inbox of `mqtt`
//! triggers, the fleet updater — implements [`InboundRoute`]: it says which topic filters it
//! wants (and when that changes), which topics it claims, and takes each message, answering how
//! the engine must acknowledge it. The engine subscribes to the union of what the routes want on
//! every session, hands each message to the first route that claims it, and acknowledges it as
//! the route answered. This module depends on neither side, so `sync` and `fleet` never import
//! each other.

use std::collections::BTreeMap;

use tokio::sync::watch;

/// Topic filters a route wants, each with a fetch generation: a changed generation asks the
/// engine to subscribe again, which makes the broker send the filter's retained message again.
pub type Wanted = BTreeMap<String, u32>;

/// What became of an inbound message, and so how the engine acknowledges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Taken (stored durably, or handed on where the broker keeps the original): acknowledge.
    Accepted,
    /// Refused for good (too large, malformed, no handler): acknowledge so the broker stops
    /// delivering it, count it persistently, and report why.
    Refused {
        /// Why, in words an operator can act on.
        reason: String,
    },
    /// Could not be taken now (e.g. the store failed): do not acknowledge, so the broker
    /// delivers it again.
    Retry {
        /// Why.
        reason: String,
    },
}

/// A consumer of inbound MQTT messages.
///
/// [`InboundRoute::deliver`] may block (a durable write): the engine calls it off the async
/// thread, one message at a time and in arrival order.
pub trait InboundRoute: Send + Sync + 'static {
    /// A short name for logs and events (`inbox`, `fleet`).
    fn name(&self) -> &'static str;

    /// The filters this route wants now; the engine re-reads it whenever it changes.
    fn wanted(&self) -> watch::Receiver<Wanted>;

    /// Whether messages on `topic` are this route's.
    fn claims(&self, topic: &str) -> bool;

    /// Takes one message. Blocking.
    fn deliver(&self, topic: &str, payload: &[u8]) -> Delivery;

    /// A broker session started (`true`) or ended (`false`).
    fn session(&self, _up: bool) {}
}

/// A fixed set of filters (for routes whose filters never change).
pub fn fixed(filters: impl IntoIterator<Item = String>) -> watch::Receiver<Wanted> {
    let wanted: Wanted = filters.into_iter().map(|f| (f, 0)).collect();
    // The sender is dropped: the receiver keeps the value and never reports a change.
    watch::channel(wanted).1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_filters_keep_their_value() {
        let rx = fixed(["x/#".to_string()]);
        assert_eq!(rx.borrow().get("x/#"), Some(&0));
    }
}
