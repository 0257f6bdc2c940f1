//! The client half of a rumqttc session: publish, subscribe, acknowledge.
//!
//! rumqttc's `AsyncClient::publish` returns nothing; the packet id appears later, as the event
//! loop's `Outgoing::Publish(pkid)`. The event loop takes requests from its channel strictly in
//! order, so each request we hand it is queued in [`Queues`] with the id we returned, and the
//! connection half pops the front when the matching `Outgoing` event comes by. The queue entry is
//! pushed and the request sent under one lock, with a non-blocking send, so the two can never
//! disagree, and dropping a `publish` future halfway cannot desynchronise them.

use std::collections::{HashMap, VecDeque};
use std::pin::pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use ::rumqttc::{valid_filter, valid_topic};
use tokio::sync::Notify;

use super::sender::{Sender, publish_size};
use crate::mqtt::{
    Acknowledge, Client, ErrorType, MessageId, Protocol, Publish, QoS, TransportError,
};

/// State shared by the two halves of one session.
#[derive(Debug)]
pub(super) struct Shared {
    queues: Mutex<Queues>,
    /// Woken when the event loop has taken requests from its channel, or the session closed.
    room: Notify,
    /// The transport's id counter, shared by all its sessions.
    next_id: Arc<AtomicU32>,
}

/// Requests handed to rumqttc whose packet ids are not known yet, and received messages not yet
/// acknowledged.
#[derive(Debug, Default)]
pub(super) struct Queues {
    /// Publishes, in channel order: our id and the QoS.
    pub publishes: VecDeque<(MessageId, QoS)>,
    /// Subscribes and unsubscribes, in channel order.
    pub controls: VecDeque<MessageId>,
    /// Received QoS 1/2 messages awaiting `ack`: our id to the packet id and QoS.
    pub unacked: HashMap<MessageId, (u16, QoS)>,
    /// The connection half has ended: no request will ever be taken again.
    pub closed: bool,
}

impl Shared {
    pub fn new(next_id: Arc<AtomicU32>) -> Self {
        Self {
            queues: Mutex::default(),
            room: Notify::new(),
            next_id,
        }
    }

    /// The queues. A panic while holding the lock leaves them consistent (every update is a
    /// single push, pop or insert), so poisoning is ignored.
    pub fn lock(&self) -> MutexGuard<'_, Queues> {
        self.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new message id (wrapping at `u32::MAX`).
    pub fn next_id(&self) -> MessageId {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The event loop took requests: let waiting senders retry.
    pub fn wake(&self) {
        self.room.notify_waiters();
    }

    /// The session is over: fail every waiting and future request.
    pub fn close(&self) {
        self.lock().closed = true;
        self.wake();
    }
}

/// The publishing half of a session opened by [`RumqttcTransport`](super::RumqttcTransport).
///
/// Its calls only queue requests for the [connection half](super::RumqttcConnection), which must
/// be polled concurrently (another task, or `select!`); when the queue is full
/// ([`request_capacity`](crate::mqtt::MqttConfig::request_capacity)) they wait for room. Once
/// the session has ended they fail with [`TransportError::Closed`].
#[derive(Debug)]
pub struct RumqttcClient {
    sender: Sender,
    shared: Arc<Shared>,
    /// Largest packet the session may send: ours, or the broker's if it announced a smaller one
    /// (MQTT 5 CONNACK), since rumqttc would end the session over a larger one.
    max_packet: usize,
}

impl RumqttcClient {
    pub(super) fn new(sender: Sender, shared: Arc<Shared>, max_packet: usize) -> Self {
        Self {
            sender,
            shared,
            max_packet,
        }
    }

    /// The protocol version this session speaks (MQTT 5, or 3.1.1 as configured or as the
    /// fallback from a broker that refused MQTT 5).
    pub fn protocol(&self) -> Protocol {
        self.sender.protocol()
    }

    /// The largest packet this session may send, in bytes.
    pub fn max_packet_bytes(&self) -> usize {
        self.max_packet
    }

    /// Hand one request to rumqttc. `attempt` runs under the queue lock and returns whether the
    /// non-blocking send succeeded; if not, wait until the event loop has taken requests.
    async fn enqueue(
        &self,
        mut attempt: impl FnMut(&mut Queues, &Sender) -> Result<bool, TransportError>,
    ) -> Result<(), TransportError> {
        loop {
            let mut room = pin!(self.shared.room.notified());
            room.as_mut().enable();
            {
                let mut queues = self.shared.lock();
                if queues.closed {
                    return Err(TransportError::Closed);
                }
                if attempt(&mut queues, &self.sender)? {
                    return Ok(());
                }
            }
            room.await;
        }
    }

    /// End the session politely: the broker discards the last will, and the connection half
    /// yields `Disconnected` once the broker has closed the link.
    pub async fn disconnect(&mut self) -> Result<(), TransportError> {
        self.enqueue(|_, sender| Ok(sender.try_disconnect())).await
    }
}

impl ErrorType for RumqttcClient {
    type Error = TransportError;
}

impl Publish for RumqttcClient {
    /// Queue a publish and return its id; `Published(id)` follows when the broker has
    /// acknowledged it (QoS 1/2) or it has been written to the socket (QoS 0).
    async fn publish(
        &mut self,
        topic: &str,
        qos: QoS,
        retain: bool,
        payload: &[u8],
    ) -> Result<MessageId, TransportError> {
        if topic.is_empty() || !valid_topic(topic) {
            return Err(TransportError::InvalidTopic(topic.to_owned()));
        }
        // rumqttc would fail the whole session on an oversize packet: refuse it here instead.
        let size = publish_size(self.sender.protocol(), topic, qos, payload.len());
        if size > self.max_packet {
            return Err(TransportError::PacketTooLarge {
                size,
                max: self.max_packet,
            });
        }
        let id = self.shared.next_id();
        let mut request: Option<Vec<u8>> = Some(payload.to_vec());
        self.enqueue(|queues, sender| {
            let payload = request
                .take()
                .ok_or_else(|| TransportError::Protocol("rumqttc lost a publish".to_owned()))?;
            queues.publishes.push_back((id, qos));
            match sender.try_publish(topic, qos, retain, payload) {
                Ok(()) => Ok(true),
                Err(back) => {
                    queues.publishes.pop_back();
                    // The channel is full: take the payload back to try again.
                    request = back;
                    Ok(false)
                }
            }
        })
        .await?;
        Ok(id)
    }
}

impl Client for RumqttcClient {
    /// Queue a subscription and return its id; `Subscribed(id)` follows on the broker's SUBACK,
    /// or an `Error` event with [`TransportError::SubscriptionRefused`].
    async fn subscribe(&mut self, topic: &str, qos: QoS) -> Result<MessageId, TransportError> {
        if topic.is_empty() || !valid_filter(topic) {
            return Err(TransportError::InvalidTopic(topic.to_owned()));
        }
        let id = self.shared.next_id();
        self.enqueue(|queues, sender| {
            queues.controls.push_back(id);
            let sent = sender.try_subscribe(topic, qos);
            if !sent {
                queues.controls.pop_back();
            }
            Ok(sent)
        })
        .await?;
        Ok(id)
    }

    /// Queue an unsubscription and return its id; `Unsubscribed(id)` follows.
    async fn unsubscribe(&mut self, topic: &str) -> Result<MessageId, TransportError> {
        if topic.is_empty() || !valid_filter(topic) {
            return Err(TransportError::InvalidTopic(topic.to_owned()));
        }
        let id = self.shared.next_id();
        self.enqueue(|queues, sender| {
            queues.controls.push_back(id);
            let sent = sender.try_unsubscribe(topic);
            if !sent {
                queues.controls.pop_back();
            }
            Ok(sent)
        })
        .await?;
        Ok(id)
    }
}

impl Acknowledge for RumqttcClient {
    /// Queue the PUBACK (QoS 1) or PUBREC (QoS 2) of received message `id`.
    async fn ack(&mut self, id: MessageId) -> Result<(), TransportError> {
        self.enqueue(|queues, sender| {
            let &(pkid, qos) = queues
                .unacked
                .get(&id)
                .ok_or(TransportError::NotAwaitingAck(id))?;
            let sent = sender.try_ack(pkid, qos);
            if sent {
                queues.unacked.remove(&id);
            }
            Ok(sent)
        })
        .await
    }
}
