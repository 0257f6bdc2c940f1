//! The simulated broker against the session contract of `Transport` and the rules of MQTT.

use std::time::Duration;

use super::*;
use crate::mqtt::{Acknowledge, Client, Connection, Event, EventPayload, Publish, QoS};

/// An event reduced to comparable values.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Connected(bool),
    Disconnected,
    Published(MessageId),
    Subscribed(MessageId),
    Unsubscribed(MessageId),
    Received {
        id: MessageId,
        topic: String,
        data: Vec<u8>,
        qos: QoS,
        retain: bool,
    },
    Error(String),
}

use crate::mqtt::MessageId;

fn seen(event: &MemoryEvent) -> Seen {
    match event.payload() {
        EventPayload::Connected(present) => Seen::Connected(present),
        EventPayload::Disconnected => Seen::Disconnected,
        EventPayload::Published(id) => Seen::Published(id),
        EventPayload::Subscribed(id) => Seen::Subscribed(id),
        EventPayload::Unsubscribed(id) => Seen::Unsubscribed(id),
        EventPayload::Received {
            id, topic, data, ..
        } => Seen::Received {
            id,
            topic: topic.unwrap_or_default().to_owned(),
            data: data.to_vec(),
            qos: event.qos().expect("a received message has a QoS"),
            retain: event.retain(),
        },
        EventPayload::Error(error) => Seen::Error(error.to_string()),
        other => panic!("unexpected event {other}"),
    }
}

/// The next event if one is queued, without waiting (`recv` is cancel-safe).
async fn queued(connection: &mut MemoryConnection) -> Option<Result<Seen, TransportError>> {
    tokio::select! {
        biased;
        event = connection.next() => Some(event.map(|event| seen(&event))),
        () = std::future::ready(()) => None,
    }
}

/// Every event queued now, up to the first error (the end of an ended session).
async fn drain(connection: &mut MemoryConnection) -> Vec<Seen> {
    let mut events = Vec::new();
    while let Some(Ok(event)) = queued(connection).await {
        events.push(event);
    }
    events
}

async fn connect(broker: &MemoryBroker) -> (MemoryClient, MemoryConnection) {
    broker.transport().connect().await.expect("connects")
}

fn received(id: MessageId, topic: &str, data: &[u8], qos: QoS) -> Seen {
    Seen::Received {
        id,
        topic: topic.to_owned(),
        data: data.to_vec(),
        qos,
        retain: false,
    }
}

#[tokio::test]
async fn refused_connects_fail_then_a_fresh_session_opens() {
    let broker = MemoryBroker::new();
    broker.refuse_connects(2);
    let mut transport = broker.transport();
    for _ in 0..2 {
        let error = transport.connect().await.expect_err("refused");
        assert!(
            matches!(error, TransportError::Unreachable { .. }),
            "{error}"
        );
    }
    assert!(!broker.is_connected());
    let (client, mut connection) = transport.connect().await.expect("third connect");
    assert_eq!(broker.connect_attempts(), 3);
    assert_eq!(
        (broker.session(), client.session(), connection.session()),
        (1, 1, 1)
    );
    assert_eq!(drain(&mut connection).await, [Seen::Connected(false)]);
}

#[tokio::test]
async fn publishes_are_recorded_and_acknowledged_by_the_test() {
    let broker = MemoryBroker::new();
    let (mut client, mut connection) = connect(&broker).await;
    let first = client
        .publish("a/1", QoS::AtLeastOnce, false, b"one")
        .await
        .expect("publish");
    let second = client
        .publish("a/2", QoS::AtMostOnce, true, b"two")
        .await
        .expect("publish");
    let third = client
        .publish("a/3", QoS::AtLeastOnce, false, b"3")
        .await
        .expect("publish");
    assert_eq!((first, second, third), (1, 2, 3), "ids increase by one");
    // QoS 0 is reported as soon as it is out; QoS 1 waits for the broker.
    assert_eq!(
        drain(&mut connection).await,
        [Seen::Connected(false), Seen::Published(2)]
    );
    assert_eq!(broker.pending(), [1, 3]);

    assert!(broker.ack(third));
    assert!(!broker.ack(third), "already acknowledged");
    assert!(!broker.ack(second), "QoS 0 needs no acknowledgement");
    assert_eq!(drain(&mut connection).await, [Seen::Published(3)]);
    assert_eq!(broker.ack_all(), 1);
    assert_eq!(drain(&mut connection).await, [Seen::Published(1)]);

    let published = broker.published();
    let second = &published[1];
    assert_eq!(
        (second.session, second.id, second.topic.as_str()),
        (1, 2, "a/2")
    );
    assert_eq!(
        (second.payload.as_slice(), second.qos, second.retain),
        (&b"two"[..], QoS::AtMostOnce, true)
    );
    let acks: Vec<AckState> = published.iter().map(|record| record.ack).collect();
    assert_eq!(
        acks,
        [AckState::Acked, AckState::NotRequired, AckState::Acked]
    );
}

#[tokio::test]
async fn auto_and_drop_modes_answer_without_the_test() {
    let broker = MemoryBroker::new();
    let (mut client, mut connection) = connect(&broker).await;
    broker.set_ack_mode(AckMode::Auto);
    let acked = client
        .publish("t", QoS::AtLeastOnce, false, b"x")
        .await
        .expect("publish");
    broker.set_ack_mode(AckMode::Drop);
    let lost = client
        .publish("t", QoS::AtLeastOnce, false, b"y")
        .await
        .expect("publish");
    broker.set_ack_mode(AckMode::Manual);
    let held = client
        .publish("t", QoS::AtLeastOnce, false, b"z")
        .await
        .expect("publish");
    assert!(broker.drop_ack(held));
    assert_eq!(
        drain(&mut connection).await,
        [Seen::Connected(false), Seen::Published(acked)]
    );
    let acks: Vec<AckState> = broker.published().iter().map(|record| record.ack).collect();
    assert_eq!(
        acks,
        [AckState::Acked, AckState::Dropped, AckState::Dropped]
    );
    assert!(broker.pending().is_empty());
    assert!(
        !broker.ack(lost),
        "a lost acknowledgement cannot be sent later"
    );
}

#[tokio::test]
async fn a_cut_ends_the_session_once_and_forgets_what_was_pending() {
    let broker = MemoryBroker::new();
    let mut transport = broker.transport();
    let (mut client, mut connection) = transport.connect().await.expect("connects");
    client
        .subscribe("in/#", QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    let acked = client
        .publish("t", QoS::AtLeastOnce, false, b"1")
        .await
        .expect("publish");
    let pending = client
        .publish("t", QoS::AtLeastOnce, false, b"2")
        .await
        .expect("publish");
    let inbound = broker
        .deliver(Inbound::new("in/x", "cmd", QoS::AtLeastOnce))
        .expect("delivered");
    assert!(broker.ack(acked));

    assert!(broker.cut());
    assert!(!broker.cut(), "nothing left to cut");
    assert!(!broker.is_connected());
    // What was queued before the cut still arrives, then the end, once.
    let mut events = Vec::new();
    for _ in 0..6 {
        let event = connection.next().await.expect("an event");
        events.push(seen(&event));
    }
    assert_eq!(
        events[..4],
        [
            Seen::Connected(false),
            Seen::Subscribed(1),
            received(inbound, "in/x", b"cmd", QoS::AtLeastOnce),
            Seen::Published(acked),
        ]
    );
    assert!(
        matches!(&events[4], Seen::Error(e) if e.contains("session ended") && e.contains("cut by the test"))
    );
    assert_eq!(events[5..], [Seen::Disconnected]);
    for _ in 0..2 {
        let after = connection
            .next()
            .await
            .expect_err("only errors after Disconnected");
        assert!(matches!(after, TransportError::Closed));
    }
    // The old client is dead, and its pending publish is forgotten.
    let error = client
        .publish("t", QoS::AtLeastOnce, false, b"3")
        .await
        .expect_err("closed");
    assert!(matches!(error, TransportError::Closed));
    assert!(matches!(
        client.ack(inbound).await,
        Err(TransportError::Closed)
    ));
    assert!(matches!(
        client.subscribe("x", QoS::AtMostOnce).await,
        Err(TransportError::Closed)
    ));
    assert_eq!(broker.published()[1].ack, AckState::Forgotten);
    assert!(!broker.ack(pending));

    // A new session starts from nothing; ids go on.
    let (mut client, mut connection) = transport.connect().await.expect("reconnects");
    assert_eq!((broker.session(), client.session()), (2, 2));
    assert!(broker.subscriptions().is_empty());
    assert!(broker.awaiting_inbound_ack().is_empty());
    let id = client
        .publish("t", QoS::AtLeastOnce, false, b"2")
        .await
        .expect("publish");
    assert_eq!(id, inbound + 1);
    assert_eq!(broker.pending(), [id]);
    assert_eq!(drain(&mut connection).await, [Seen::Connected(false)]);
}

#[tokio::test]
async fn dropping_the_connection_ends_the_session() {
    let broker = MemoryBroker::new();
    let (mut client, connection) = connect(&broker).await;
    drop(connection);
    assert!(!broker.is_connected());
    let error = client
        .publish("t", QoS::AtMostOnce, false, b"")
        .await
        .expect_err("closed");
    assert!(matches!(error, TransportError::Closed));
}

#[tokio::test]
async fn a_second_session_takes_the_first_over() {
    let broker = MemoryBroker::new();
    let (mut old_client, mut old) = connect(&broker).await;
    let (_client, mut new) = connect(&broker).await;
    assert_eq!(broker.session(), 2);
    let events = drain(&mut old).await;
    assert_eq!(events.last(), Some(&Seen::Disconnected));
    assert!(old_client.subscribe("a", QoS::AtMostOnce).await.is_err());
    // Dropping the old halves does not touch the new session.
    drop((old_client, old));
    assert!(broker.is_connected());
    assert_eq!(drain(&mut new).await, [Seen::Connected(false)]);
}

#[tokio::test]
async fn the_client_can_disconnect() {
    let broker = MemoryBroker::new();
    let (mut client, mut connection) = connect(&broker).await;
    client.disconnect().await.expect("disconnects");
    let events = drain(&mut connection).await;
    assert!(matches!(&events[1], Seen::Error(e) if e.contains("disconnected by the client")));
    assert_eq!(events[2..], [Seen::Disconnected]);
    assert!(client.disconnect().await.is_err());
}

#[tokio::test]
async fn inbound_messages_follow_subscriptions_and_acks_are_recorded() {
    let broker = MemoryBroker::new();
    assert_eq!(
        broker.deliver(Inbound::new("in/a", "x", QoS::AtLeastOnce)),
        None,
        "no session"
    );
    let (mut client, mut connection) = connect(&broker).await;
    assert_eq!(
        broker.deliver(Inbound::new("in/a", "x", QoS::AtLeastOnce)),
        None,
        "no subscription"
    );
    let sub = client
        .subscribe("in/+", QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    broker.wait_subscribed("in/+").await;
    let one = broker
        .deliver(Inbound::new("in/a", "1", QoS::AtLeastOnce))
        .expect("matches");
    let zero = broker
        .deliver(Inbound::new("in/b", "0", QoS::AtMostOnce))
        .expect("matches");
    assert_eq!(
        broker.deliver(Inbound::new("in/a/deep", "x", QoS::AtLeastOnce)),
        None
    );
    let forced = broker
        .deliver(Inbound::new("other", "f", QoS::AtLeastOnce).unconditional())
        .expect("unconditional");
    assert_eq!(
        (sub, one, zero, forced),
        (1, 2, 3, 4),
        "received messages take ids too"
    );
    assert_eq!(
        drain(&mut connection).await,
        [
            Seen::Connected(false),
            Seen::Subscribed(sub),
            received(one, "in/a", b"1", QoS::AtLeastOnce),
            received(zero, "in/b", b"0", QoS::AtMostOnce),
            received(forced, "other", b"f", QoS::AtLeastOnce),
        ]
    );
    assert_eq!(broker.awaiting_inbound_ack(), [one, forced]);

    client.ack(forced).await.expect("ack");
    client.ack(one).await.expect("ack");
    assert_eq!(broker.inbound_acks(), [forced, one]);
    broker.wait_inbound_acked(one).await;
    for id in [one, zero, 99] {
        let error = client.ack(id).await.expect_err("nothing to acknowledge");
        assert!(matches!(error, TransportError::NotAwaitingAck(bad) if bad == id));
    }
}

#[tokio::test]
async fn delivery_takes_the_highest_matching_subscription_and_caps_its_qos() {
    let broker = MemoryBroker::new();
    let (mut client, mut connection) = connect(&broker).await;
    client
        .subscribe("dev/+/cmd", QoS::AtMostOnce)
        .await
        .expect("subscribe");
    client
        .subscribe("dev/#", QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    client
        .subscribe("$SYS/#", QoS::AtMostOnce)
        .await
        .expect("subscribe");
    drain(&mut connection).await;
    let both = broker
        .deliver(Inbound::new("dev/1/cmd", "a", QoS::ExactlyOnce))
        .expect("matches");
    let sys = broker
        .deliver(Inbound::new("$SYS/load", "b", QoS::AtLeastOnce))
        .expect("matches");
    assert_eq!(
        drain(&mut connection).await,
        [
            received(both, "dev/1/cmd", b"a", QoS::AtLeastOnce),
            received(sys, "$SYS/load", b"b", QoS::AtMostOnce),
        ]
    );

    let unsub = client.unsubscribe("dev/#").await.expect("unsubscribe");
    client
        .unsubscribe("never/subscribed")
        .await
        .expect("unsubscribe");
    assert_eq!(
        broker.subscriptions(),
        [
            ("$SYS/#".to_owned(), QoS::AtMostOnce),
            ("dev/+/cmd".to_owned(), QoS::AtMostOnce),
        ]
    );
    assert_eq!(
        broker.deliver(Inbound::new("dev/1/status", "c", QoS::AtMostOnce)),
        None
    );
    assert_eq!(
        drain(&mut connection).await,
        [Seen::Unsubscribed(unsub), Seen::Unsubscribed(unsub + 1)]
    );
    let log = broker.subscription_log();
    assert_eq!(log.len(), 5);
    assert_eq!(
        (log[1].filter.as_str(), log[1].action),
        ("dev/#", SubscriptionAction::Subscribe(QoS::AtLeastOnce))
    );
    assert_eq!(
        (log[3].id, log[3].action),
        (unsub, SubscriptionAction::Unsubscribe)
    );
}

#[tokio::test]
async fn refused_subscriptions_are_error_events() {
    let broker = MemoryBroker::new();
    broker.refuse_subscriptions_to("secret/#");
    let (mut client, mut connection) = connect(&broker).await;
    let id = client
        .subscribe("secret/#", QoS::AtLeastOnce)
        .await
        .expect("sent");
    let events = drain(&mut connection).await;
    assert_eq!(
        events[1],
        Seen::Error(TransportError::SubscriptionRefused(id).to_string())
    );
    assert!(broker.subscriptions().is_empty());
    assert_eq!(
        broker.subscription_log()[0].action,
        SubscriptionAction::Refused(QoS::AtLeastOnce)
    );
}

#[tokio::test]
async fn retained_messages_reach_later_subscribers_and_own_publishes_echo() {
    let broker = MemoryBroker::new();
    broker.set_retained("fleet/a", "announce", QoS::AtLeastOnce);
    let (mut client, mut connection) = connect(&broker).await;
    client
        .publish("status", QoS::AtLeastOnce, true, b"online")
        .await
        .expect("publish");
    let sub = client
        .subscribe("#", QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    let echoed = client
        .publish("fleet/b", QoS::AtMostOnce, false, b"echo")
        .await
        .expect("publish");
    client
        .publish("fleet/a", QoS::AtMostOnce, true, b"")
        .await
        .expect("clears");
    let events = drain(&mut connection).await;
    let retained = |id, topic: &str, data: &[u8]| Seen::Received {
        id,
        topic: topic.to_owned(),
        data: data.to_vec(),
        qos: QoS::AtLeastOnce,
        retain: true,
    };
    assert_eq!(
        events[1..6],
        [
            Seen::Subscribed(sub),
            retained(sub + 1, "fleet/a", b"announce"),
            retained(sub + 2, "status", b"online"),
            Seen::Published(echoed),
            received(echoed + 1, "fleet/b", b"echo", QoS::AtMostOnce),
        ]
    );
    let topics: Vec<String> = broker.retained().into_keys().collect();
    assert_eq!(topics, ["status"]);
}

#[tokio::test]
async fn the_client_checks_what_rumqttc_checks() {
    let broker = MemoryBroker::new();
    let (mut client, _connection) = connect(&broker).await;
    for topic in ["", "a/+", "a/#"] {
        let error = client
            .publish(topic, QoS::AtMostOnce, false, b"")
            .await
            .expect_err("invalid");
        assert!(
            matches!(error, TransportError::InvalidTopic(_)),
            "{topic:?}"
        );
    }
    for filter in ["", "a/#/b", "a+"] {
        let error = client
            .subscribe(filter, QoS::AtMostOnce)
            .await
            .expect_err("invalid");
        assert!(
            matches!(error, TransportError::InvalidTopic(_)),
            "{filter:?}"
        );
    }
    broker.set_max_packet_bytes(100);
    let error = client
        .publish("t", QoS::AtLeastOnce, false, &[0; 100])
        .await
        .expect_err("too big");
    assert!(matches!(
        error,
        TransportError::PacketTooLarge { max: 100, .. }
    ));
    assert!(
        broker.published().is_empty(),
        "refused calls take no id and reach nobody"
    );
    assert_eq!(
        client
            .publish("t", QoS::AtMostOnce, false, b"")
            .await
            .expect("fits"),
        1
    );
}

#[tokio::test]
async fn ids_wrap_at_the_end_of_the_range() {
    let broker = MemoryBroker::new();
    broker.set_next_id(u32::MAX);
    let (mut client, _connection) = connect(&broker).await;
    let last = client
        .publish("t", QoS::AtLeastOnce, false, b"")
        .await
        .expect("publish");
    let first = client
        .publish("t", QoS::AtLeastOnce, false, b"")
        .await
        .expect("publish");
    assert_eq!((last, first), (u32::MAX, 0));
}

#[tokio::test]
async fn waiting_wakes_on_changes_made_elsewhere() {
    let broker = MemoryBroker::new();
    let mut transport = broker.transport();
    let device = async {
        let (mut client, connection) = transport.connect().await.expect("connects");
        tokio::task::yield_now().await;
        client
            .publish("t", QoS::AtLeastOnce, false, b"1")
            .await
            .expect("publish");
        tokio::task::yield_now().await;
        client
            .publish("t", QoS::AtLeastOnce, false, b"2")
            .await
            .expect("publish");
        // Keep the session open until the test has seen both publishes pending.
        (client, connection)
    };
    let test = async {
        broker.wait_connected(1).await;
        let published = broker.wait_published(2).await;
        assert_eq!(published.len(), 2);
        assert_eq!(broker.wait_pending(2).await, [1, 2]);
    };
    let both = async { tokio::join!(device, test) };
    let (session, ()) = tokio::time::timeout(Duration::from_secs(10), both)
        .await
        .expect("the waits wake up");
    drop(session);
    broker.wait_disconnected().await;
}

#[tokio::test]
async fn halves_and_their_futures_can_move_between_threads() {
    fn send<T: Send>(_: &T) {}
    let broker = MemoryBroker::new();
    let mut transport = broker.transport();
    send(&transport.connect());
    let (mut client, mut connection) = connect(&broker).await;
    send(&client.publish("t", QoS::AtLeastOnce, false, b""));
    send(&client.subscribe("t", QoS::AtLeastOnce));
    send(&client.ack(1));
    send(&connection.next());
    send(&broker.wait_published(1));
    send(&(transport, client, connection, broker));
}
