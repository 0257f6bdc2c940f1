//! What the simulated broker records and takes from a test: publishes, subscription changes,
//! retained messages, inbound messages and the acknowledgement policy.

use crate::mqtt::{MessageId, QoS};

/// How the broker acknowledges the client's QoS 1/2 publishes (QoS 0 needs no acknowledgement:
/// `Published(id)` follows at once, as with rumqttc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AckMode {
    /// Hold every acknowledgement until the test sends it with
    /// [`ack`](super::MemoryBroker::ack) or [`ack_all`](super::MemoryBroker::ack_all) (or loses
    /// it with [`drop_ack`](super::MemoryBroker::drop_ack)). The default: nothing is
    /// acknowledged behind the test's back, which is how to delay acknowledgements.
    #[default]
    Manual,
    /// Acknowledge each publish as it arrives (`Published(id)` is queued before `publish`
    /// returns), as a healthy broker would.
    Auto,
    /// Take each publish (it is recorded, retained and forwarded) but lose its acknowledgement:
    /// the client never sees `Published(id)`.
    Drop,
}

/// Where a publish stands with its acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckState {
    /// QoS 0: nothing to acknowledge; `Published(id)` was sent at once.
    NotRequired,
    /// Awaiting the test's [`ack`](super::MemoryBroker::ack) (in [`AckMode::Manual`]).
    Pending,
    /// Acknowledged: `Published(id)` was sent to its session.
    Acked,
    /// Received by the broker, but the acknowledgement was lost.
    Dropped,
    /// Its session ended before it was acknowledged: the client never hears of it again and
    /// must publish it anew (a broker without session resume forgets the exchange).
    Forgotten,
}

/// One publish the broker received from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishRecord {
    /// The session it was published in (1 for the broker's first).
    pub session: u32,
    /// The id `publish` returned.
    pub id: MessageId,
    /// Its topic.
    pub topic: String,
    /// Its payload.
    pub payload: Vec<u8>,
    /// Its QoS.
    pub qos: QoS,
    /// Whether it was published as retained.
    pub retain: bool,
    /// Where its acknowledgement stands now.
    pub ack: AckState,
}

/// What a subscribe or unsubscribe call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionAction {
    /// Subscribed, at this QoS.
    Subscribe(QoS),
    /// Asked to subscribe at this QoS; the broker refused (see
    /// [`refuse_subscriptions_to`](super::MemoryBroker::refuse_subscriptions_to)).
    Refused(QoS),
    /// Unsubscribed.
    Unsubscribe,
}

/// One subscribe or unsubscribe call of the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionChange {
    /// The session it was made in.
    pub session: u32,
    /// The id the call returned.
    pub id: MessageId,
    /// The topic filter.
    pub filter: String,
    /// What it did.
    pub action: SubscriptionAction,
}

/// A retained message the broker keeps for later subscribers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetainedMessage {
    /// Its payload (never empty: an empty retained publish clears the topic).
    pub payload: Vec<u8>,
    /// The QoS it was published with; a subscriber gets the lower of this and its own.
    pub qos: QoS,
}

/// A message for the broker to deliver to the client, as if another client published it:
/// `Inbound::new(topic, payload, qos)`, then the flags that apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// Its topic.
    pub topic: String,
    /// Its payload.
    pub payload: Vec<u8>,
    /// The QoS it was published with; delivered at the lower of this and the subscription's.
    pub qos: QoS,
    /// The retain flag of the delivered message (as for a retained message sent on
    /// subscribing). Setting it stores nothing: see
    /// [`set_retained`](super::MemoryBroker::set_retained) for that.
    pub retain: bool,
    /// The DUP flag of the delivered message (a redelivery).
    pub duplicate: bool,
    /// Deliver even without a matching subscription, at `qos` (as a broker with a persistent
    /// session or a misbehaving one might).
    pub unconditional: bool,
}

impl Inbound {
    /// A plain message: no flags, delivered only through a matching subscription.
    pub fn new(topic: impl Into<String>, payload: impl Into<Vec<u8>>, qos: QoS) -> Self {
        Self {
            topic: topic.into(),
            payload: payload.into(),
            qos,
            retain: false,
            duplicate: false,
            unconditional: false,
        }
    }

    /// Set the retain flag.
    pub fn retained(mut self) -> Self {
        self.retain = true;
        self
    }

    /// Set the DUP flag.
    pub fn duplicate(mut self) -> Self {
        self.duplicate = true;
        self
    }

    /// Deliver even without a matching subscription.
    pub fn unconditional(mut self) -> Self {
        self.unconditional = true;
        self
    }
}
