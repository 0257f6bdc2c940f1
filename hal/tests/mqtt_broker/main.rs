//! The rumqttc transport against a real mosquitto (`/usr/sbin/mosquitto`): ids, manual acks,
//! persistent sessions, disconnects, refused credentials, last will, TLS.
//!
//! Every wait is on an event (a log line, an MQTT event) under a generous timeout that only
//! turns a hang into a failure.

mod harness;
mod poison;
mod will_and_tls;

use std::process::Command;

use harness::{Broker, Ev, Session, config};
use outpost_hal::mqtt::{
    Acknowledge, Client, MqttConfig, Publish, QoS, RumqttcTransport, Transport, TransportError,
};

#[tokio::test]
async fn a_thousand_qos1_publishes_are_acked_in_order_with_their_ids() {
    let broker = Broker::start("allow_anonymous true");
    let mut session = Session::open(config(&broker, "pub-a")).await;
    assert_eq!(session.next().await.0, Ev::Connected(false));
    let mut ids = Vec::new();
    for i in 0..1000 {
        let payload = format!("message {i}");
        let id = session
            .client
            .publish("outpost/a", QoS::AtLeastOnce, false, payload.as_bytes());
        ids.push(id.await.expect("publish"));
    }
    let mut published = Vec::new();
    while published.len() < ids.len() {
        match session.next().await.0 {
            Ev::Published(id) => published.push(id),
            other => panic!("unexpected event {other:?}"),
        }
    }
    assert_eq!(published, ids);
    assert!(
        ids.windows(2).all(|pair| pair[0] + 1 == pair[1]),
        "ids increase by one"
    );

    // An oversize publish is refused up front; the session carries on.
    let big = vec![0u8; 10 * 1024];
    let refused = session
        .client
        .publish("outpost/a", QoS::AtLeastOnce, false, &big)
        .await;
    assert!(
        matches!(
            refused,
            Err(TransportError::PacketTooLarge { max: 10240, .. })
        ),
        "{refused:?}"
    );
    let id = session
        .client
        .publish("outpost/a", QoS::AtMostOnce, false, b"small")
        .await;
    assert_eq!(session.next().await.0, Ev::Published(id.expect("publish")));
}

#[tokio::test]
async fn unacked_messages_are_redelivered_to_a_persistent_session_until_acked() {
    let broker = Broker::start("allow_anonymous true");
    let mut sub_config = config(&broker, "sub-b");
    sub_config.clean_session = false;
    let mut publisher = Session::open(config(&broker, "pub-b")).await;
    assert_eq!(publisher.next().await.0, Ev::Connected(false));
    let mut publish = async |payload: &str| {
        let id = publisher
            .client
            .publish("outpost/b", QoS::AtLeastOnce, false, payload.as_bytes());
        let id = id.await.expect("publish");
        assert_eq!(publisher.next().await.0, Ev::Published(id));
    };

    // Session 1: subscribe, receive, do not ack, vanish.
    let mut sub = Session::open(sub_config.clone()).await;
    assert_eq!(sub.next().await.0, Ev::Connected(false));
    let id = sub
        .client
        .subscribe("outpost/b", QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    assert_eq!(sub.next().await.0, Ev::Subscribed(id));
    publish("hello").await;
    let (received, event) = sub.next().await;
    assert!(
        matches!(&received, Ev::Received { data, .. } if data == b"hello"),
        "{received:?}"
    );
    assert_eq!(
        (event.qos(), event.retain(), event.duplicate()),
        (Some(QoS::AtLeastOnce), false, false)
    );
    sub.abort().await;

    // Session 2: the broker redelivers it; ack it, then disconnect politely.
    let mut sub = Session::open(sub_config.clone()).await;
    assert_eq!(sub.next().await.0, Ev::Connected(true));
    let (received, event) = sub.next().await;
    let Ev::Received { id, data, topic } = received else {
        panic!("{received:?}")
    };
    assert_eq!(
        (topic.as_str(), data.as_slice(), event.duplicate()),
        ("outpost/b", &b"hello"[..], true)
    );
    sub.client.ack(id).await.expect("ack");
    let twice = sub.client.ack(id).await.expect_err("acked already");
    assert!(
        matches!(twice, TransportError::NotAwaitingAck(i) if i == id),
        "{twice}"
    );
    sub.client.disconnect().await.expect("disconnect");
    assert_eq!(sub.next_disconnect().await.0, Ev::Disconnected);

    // Session 3: nothing is redelivered; the next message is the new one.
    let mut sub = Session::open(sub_config).await;
    assert_eq!(sub.next().await.0, Ev::Connected(true));
    publish("marker").await;
    let (received, _) = sub.next().await;
    assert!(
        matches!(&received, Ev::Received { data, .. } if data == b"marker"),
        "{received:?}"
    );
}

#[tokio::test]
async fn a_dead_broker_ends_the_session_and_refuses_new_ones() {
    let mut broker = Broker::start("allow_anonymous true");
    let url = broker.url();
    let mut session = Session::open(config(&broker, "dies-c")).await;
    assert_eq!(session.next().await.0, Ev::Connected(false));
    broker.kill();
    let (event, owned) = session.next_disconnect().await;
    assert_eq!(event, Ev::Disconnected);
    let cause = owned.cause().expect("a cause").to_string();
    assert!(
        cause.contains(&format!("127.0.0.1:{}", broker.port)),
        "{cause}"
    );
    assert!(matches!(
        session.item().await,
        Some(Err(TransportError::Closed))
    ));
    assert!(
        session.item().await.is_none(),
        "the connection half has ended"
    );
    let late = session
        .client
        .publish("outpost/c", QoS::AtLeastOnce, false, b"late")
        .await;
    assert!(matches!(late, Err(TransportError::Closed)), "{late:?}");

    let mut transport = RumqttcTransport::new(MqttConfig::new(url, "dies-c")).expect("config");
    let error = transport
        .connect()
        .await
        .expect_err("nobody listens")
        .to_string();
    eprintln!("dead port: {error}\nDisconnected cause: {cause}");
    assert!(
        error.contains(&format!(
            "cannot reach the broker at 127.0.0.1:{}",
            broker.port
        )),
        "{error}"
    );
}

#[tokio::test]
async fn wrong_credentials_are_refused_clearly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let passwords = dir.path().join("passwords");
    let status = Command::new("mosquitto_passwd")
        .args(["-c", "-b"])
        .arg(&passwords)
        .args(["device", "right"])
        .status()
        .expect("run mosquitto_passwd");
    assert!(status.success(), "mosquitto_passwd failed");
    let extra = format!(
        "allow_anonymous false\npassword_file {}",
        passwords.display()
    );
    let broker = Broker::start_in(dir, &extra);

    let mut wrong = config(&broker, "auth-d");
    wrong.username = Some("device".into());
    wrong.password = Some("wrong".into());
    let mut transport = RumqttcTransport::new(wrong.clone()).expect("config");
    let error = transport
        .connect()
        .await
        .expect_err("wrong password")
        .to_string();
    eprintln!("wrong password: {error}");
    assert!(
        error.contains("refused the credentials (NotAuthorized)"),
        "{error}"
    );

    wrong.password = Some("right".into());
    let mut session = Session::open(wrong).await;
    assert_eq!(session.next().await.0, Ev::Connected(false));
}

/// The sync engine may spawn its loop on a multi-threaded runtime: the futures must be `Send`,
/// also when generic code over [`Transport`] is instantiated with the rumqttc transport.
#[test]
fn session_futures_are_send() {
    fn assert_send<T: Send>(_: T) {}
    async fn engine<T: Transport>(mut transport: T) {
        use outpost_hal::mqtt::Connection;
        if let Ok((mut client, mut connection)) = transport.connect().await {
            let _ = client.subscribe("outpost/#", QoS::AtLeastOnce).await;
            let _ = client
                .publish("outpost/x", QoS::AtLeastOnce, false, b"x")
                .await;
            let _ = client.ack(1).await;
            let _ = connection.next().await;
        }
    }
    let url = "mqtt://localhost".parse().expect("URL");
    let transport = RumqttcTransport::new(MqttConfig::new(url, "send")).expect("config");
    assert_send(engine(transport));
}
