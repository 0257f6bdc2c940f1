//! No inbound message ends a session by its size, whichever protocol the session speaks; and a
//! broker that refuses MQTT 5 gets MQTT 3.1.1 instead.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

use outpost_hal::mqtt::{
    Acknowledge, Client, MqttConfig, Protocol, Publish, QoS, RumqttcTransport, Transport,
};

use crate::harness::{Broker, Ev, Session, config};

/// Our incoming limit in these tests; the poison is larger.
const LIMIT: usize = 64 * 1024;

/// A persistent subscriber of `poison/#` speaking `protocol`.
fn device(broker: &Broker, protocol: Protocol, max_incoming: usize) -> MqttConfig {
    let mut device = config(broker, &format!("device-{protocol}"));
    device.clean_session = false;
    device.protocol = protocol;
    device.max_incoming_packet_bytes = max_incoming;
    device
}

/// A publisher allowed to send big messages.
async fn publisher(broker: &Broker) -> Session {
    let mut config = config(broker, "poisoner");
    config.max_packet_bytes = 4 << 20;
    let mut publisher = Session::open(config).await;
    assert_eq!(publisher.next().await.0, Ev::Connected(false));
    publisher
}

async fn publish(publisher: &mut Session, topic: &str, retain: bool, payload: &[u8]) {
    let id = publisher
        .client
        .publish(topic, QoS::AtLeastOnce, retain, payload)
        .await
        .expect("publish");
    assert_eq!(publisher.next().await.0, Ev::Published(id));
}

/// The next message, acknowledged; fails on anything else (a disconnect above all).
async fn receive(session: &mut Session) -> (String, usize) {
    let (event, _) = session.next().await;
    let Ev::Received { id, topic, data } = event else {
        panic!("expected a message, got {event:?}");
    };
    session.client.ack(id).await.expect("ack");
    (topic, data.len())
}

/// Leaves a retained and a queued poison message (and a marker after each) for a device that
/// subscribed to `poison/#` and went away.
async fn poison(broker: &Broker, device: &MqttConfig, size: usize) {
    let mut first = Session::open(device.clone()).await;
    assert!(matches!(first.next().await.0, Ev::Connected(_)));
    let id = first.client.subscribe("poison/#", QoS::AtLeastOnce);
    let id = id.await.expect("subscribe");
    assert_eq!(first.next().await.0, Ev::Subscribed(id));
    first.client.disconnect().await.expect("disconnect");
    assert_eq!(first.next_disconnect().await.0, Ev::Disconnected);

    let mut publisher = publisher(broker).await;
    let big = vec![0xA5; size];
    publish(&mut publisher, "poison/retained", true, &big).await;
    publish(&mut publisher, "poison/queued", false, &big).await;
    publish(&mut publisher, "poison/marker", false, b"after").await;
}

#[tokio::test]
async fn mqtt5_the_broker_drops_what_is_over_our_maximum_packet_size() {
    let broker = Broker::start("allow_anonymous true");
    let device = device(&broker, Protocol::V5, LIMIT);
    poison(&broker, &device, 2 << 20).await;

    let mut session = Session::open(device).await;
    assert_eq!(session.next().await.0, Ev::Connected(true));
    assert_eq!(session.client.protocol(), Protocol::V5);
    // The queued 2 MiB message never comes; the marker queued after it does.
    assert_eq!(receive(&mut session).await, ("poison/marker".into(), 5));
    // Subscribing again makes the broker send retained messages: the poison one is dropped.
    let id = session.client.subscribe("poison/#", QoS::AtLeastOnce);
    let id = id.await.expect("subscribe");
    assert_eq!(session.next().await.0, Ev::Subscribed(id));
    let mut publisher = publisher(&broker).await;
    publish(&mut publisher, "poison/marker", false, b"still up").await;
    assert_eq!(receive(&mut session).await, ("poison/marker".into(), 8));
}

#[tokio::test]
async fn mqtt311_a_message_under_the_incoming_limit_is_read_whole_and_acknowledged() {
    let broker = Broker::start("allow_anonymous true");
    // 3.1.1 cannot tell the broker a limit: the incoming limit must exceed what may come.
    let device = device(&broker, Protocol::V311, 4 << 20);
    poison(&broker, &device, 2 << 20).await;

    let mut session = Session::open(device.clone()).await;
    assert_eq!(session.next().await.0, Ev::Connected(true));
    assert_eq!(session.client.protocol(), Protocol::V311);
    // The retained one was queued for the session too, as it was published after we subscribed.
    assert_eq!(
        receive(&mut session).await,
        ("poison/retained".into(), 2 << 20)
    );
    assert_eq!(
        receive(&mut session).await,
        ("poison/queued".into(), 2 << 20)
    );
    assert_eq!(receive(&mut session).await, ("poison/marker".into(), 5));
    session.client.disconnect().await.expect("disconnect");
    assert_eq!(session.next_disconnect().await.0, Ev::Disconnected);

    // Acknowledged: nothing comes again.
    let mut session = Session::open(device).await;
    assert_eq!(session.next().await.0, Ev::Connected(true));
    let mut publisher = publisher(&broker).await;
    publish(&mut publisher, "poison/marker", false, b"next").await;
    assert_eq!(receive(&mut session).await, ("poison/marker".into(), 4));
}

/// A broker that speaks only MQTT 3.1.1: refuses an MQTT 5 CONNECT as a 3.1.1 broker does
/// (CONNACK 0x01, "unacceptable protocol version", then close), forwards anything else to the
/// real broker at `target`. Returns its port.
fn mqtt311_only(target: u16) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind gate");
    let port = listener.local_addr().expect("gate address").port();
    std::thread::spawn(move || {
        for inbound in listener.incoming() {
            let Ok(mut inbound) = inbound else { return };
            std::thread::spawn(move || {
                // Fixed header, remaining length (1 to 4 bytes), "\0\x04MQTT", protocol level.
                let mut head = vec![0u8; 1];
                inbound.read_exact(&mut head).expect("read CONNECT");
                loop {
                    let mut byte = [0u8; 1];
                    inbound.read_exact(&mut byte).expect("read length");
                    head.push(byte[0]);
                    if byte[0] & 0x80 == 0 {
                        break;
                    }
                }
                let mut name_and_level = [0u8; 7];
                inbound.read_exact(&mut name_and_level).expect("read level");
                head.extend_from_slice(&name_and_level);
                if name_and_level[6] == 5 {
                    // Read the rest of the CONNECT as a broker would, answer, hang up.
                    let remaining = head[1..head.len() - name_and_level.len()]
                        .iter()
                        .rev()
                        .fold(0usize, |length, byte| {
                            (length << 7) | usize::from(byte & 0x7f)
                        });
                    let mut rest = vec![0u8; remaining - name_and_level.len()];
                    inbound.read_exact(&mut rest).expect("read CONNECT");
                    let _ = inbound.write_all(&[0x20, 0x02, 0x00, 0x01]);
                    let _ = inbound.shutdown(std::net::Shutdown::Write);
                    let _ = inbound.read_to_end(&mut rest);
                    return;
                }
                let mut outbound = TcpStream::connect(("127.0.0.1", target)).expect("broker");
                outbound.write_all(&head).expect("forward CONNECT start");
                let pipe = |mut from: TcpStream, mut to: TcpStream| {
                    std::thread::spawn(move || {
                        let mut buffer = [0u8; 4096];
                        while let Ok(n @ 1..) = from.read(&mut buffer) {
                            if to.write_all(&buffer[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                };
                let clone = |s: &TcpStream| s.try_clone().expect("clone socket");
                pipe(clone(&inbound), clone(&outbound));
                pipe(outbound, inbound);
            });
        }
    });
    port
}

#[tokio::test]
async fn a_broker_that_refuses_mqtt5_gets_mqtt311_and_the_session_says_so() {
    let broker = Broker::start("allow_anonymous true");
    let gate = mqtt311_only(broker.port);
    let url = format!("mqtt://127.0.0.1:{gate}").parse().expect("url");
    let mut transport = RumqttcTransport::new(MqttConfig::new(url, "old-broker")).expect("config");
    assert_eq!(transport.protocol(), Protocol::V5);

    let (client, connection) = transport.connect().await.expect("connect as 3.1.1");
    let mut session = Session::drive(client, connection);
    assert_eq!(session.next().await.0, Ev::Connected(false));
    let (notice, _) = session.next().await;
    assert!(
        matches!(&notice, Ev::Other(text) if text.contains("FellBackToV311(\"the broker at") && text.contains("refused MQTT 5")),
        "{notice:?}"
    );
    assert_eq!(session.client.protocol(), Protocol::V311);

    // The session works: a message to ourselves goes round.
    let id = session.client.subscribe("gate/echo", QoS::AtLeastOnce);
    let id = id.await.expect("subscribe");
    assert_eq!(session.next().await.0, Ev::Subscribed(id));
    let id = session
        .client
        .publish("gate/echo", QoS::AtLeastOnce, false, b"hi")
        .await
        .expect("publish");
    let mut seen = Vec::new();
    while seen.len() < 2 {
        seen.push(session.next().await.0);
    }
    assert!(seen.contains(&Ev::Published(id)), "{seen:?}");
    assert!(
        seen.iter()
            .any(|e| matches!(e, Ev::Received { data, .. } if data == b"hi")),
        "{seen:?}"
    );
    // rumqttc's MQTT 5 decoder cannot read a 3.1.1 CONNACK, so all we see is the broker
    // hanging up: not explicit enough to give up MQTT 5 for good. The next connect tries MQTT 5
    // again, falls back again and says so again.
    assert_eq!(transport.protocol(), Protocol::V5);
    session.client.disconnect().await.expect("disconnect");
    assert_eq!(session.next_disconnect().await.0, Ev::Disconnected);
    let (client, connection) = transport.connect().await.expect("connect again");
    let mut session = Session::drive(client, connection);
    assert_eq!(session.next().await.0, Ev::Connected(false));
    assert!(
        matches!(session.next().await.0, Ev::Other(text) if text.contains("FellBackToV311(\"the broker at") && text.contains("refused MQTT 5"))
    );
}
