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

use ::rumqttc::{AsyncClient, ClientError, Request, valid_filter, valid_topic};
use tokio::sync::Notify;

use super::to_rumqttc;
use crate::mqtt::{Acknowledge, Client, ErrorType, MessageId, Publish, QoS, TransportError};

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
    pub unacked: HashMap<MessageId, (u16, ::rumqttc::QoS)>,
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
    client: AsyncClient,
    shared: Arc<Shared>,
    /// Largest packet the session may send.
    max_packet: usize,
}

impl RumqttcClient {
    pub(super) fn new(client: AsyncClient, shared: Arc<Shared>, max_packet: usize) -> Self {
        Self {
            client,
            shared,
            max_packet,
        }
    }

    /// Hand one request to rumqttc. `attempt` runs under the queue lock and returns whether the
    /// non-blocking send succeeded; if not, wait until the event loop has taken requests.
    async fn enqueue(
        &self,
        mut attempt: impl FnMut(&mut Queues, &AsyncClient) -> Result<bool, TransportError>,
    ) -> Result<(), TransportError> {
        loop {
            let mut room = pin!(self.shared.room.notified());
            room.as_mut().enable();
            {
                let mut queues = self.shared.lock();
                if queues.closed {
                    return Err(TransportError::Closed);
                }
                if attempt(&mut queues, &self.client)? {
                    return Ok(());
                }
            }
            room.await;
        }
    }

    /// End the session politely: the broker discards the last will, and the connection half
    /// yields `Disconnected` once the broker has closed the link.
    pub async fn disconnect(&mut self) -> Result<(), TransportError> {
        self.enqueue(|_, client| Ok(client.try_disconnect().is_ok()))
            .await
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
        let mut packet = ::rumqttc::Publish::new(topic, to_rumqttc(qos), payload);
        packet.pkid = u16::from(qos != QoS::AtMostOnce);
        if packet.size() > self.max_packet {
            return Err(TransportError::PacketTooLarge {
                size: packet.size(),
                max: self.max_packet,
            });
        }
        let id = self.shared.next_id();
        let mut request: Option<(String, Vec<u8>)> = Some((packet.topic, packet.payload.into()));
        self.enqueue(|queues, client| {
            let (topic, payload) = request
                .take()
                .ok_or_else(|| TransportError::Protocol("rumqttc lost a publish".to_owned()))?;
            queues.publishes.push_back((id, qos));
            match client.try_publish(topic, to_rumqttc(qos), retain, payload) {
                Ok(()) => Ok(true),
                Err(error) => {
                    queues.publishes.pop_back();
                    // The channel is full: take the request back to try again.
                    if let ClientError::TryRequest(Request::Publish(publish)) = error {
                        request = Some((publish.topic, publish.payload.into()));
                    }
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
        self.enqueue(|queues, client| {
            queues.controls.push_back(id);
            let sent = client.try_subscribe(topic, to_rumqttc(qos)).is_ok();
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
        self.enqueue(|queues, client| {
            queues.controls.push_back(id);
            let sent = client.try_unsubscribe(topic).is_ok();
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
        self.enqueue(|queues, client| {
            let &(pkid, qos) = queues
                .unacked
                .get(&id)
                .ok_or(TransportError::NotAwaitingAck(id))?;
            // rumqttc builds the ack from the packet id and QoS alone.
            let mut received = ::rumqttc::Publish::new("", qos, Vec::new());
            received.pkid = pkid;
            let sent = client.try_ack(&received).is_ok();
            if sent {
                queues.unacked.remove(&id);
            }
            Ok(sent)
        })
        .await
    }
}
