//! Last will through a link we cut, and TLS with client certificates.

use std::net::Shutdown;

use outpost_hal::mqtt::{
    BrokerUrl, Client, LastWill, MqttConfig, Publish, QoS, RumqttcTransport, Transport,
};

use crate::harness::{Broker, Ev, PATIENCE, Session, config, cuttable_proxy, openssl};

#[tokio::test]
async fn the_last_will_is_published_when_the_link_is_cut() {
    let broker = Broker::start("allow_anonymous true");
    let mut watcher = Session::open(config(&broker, "watch-e")).await;
    assert_eq!(watcher.next().await.0, Ev::Connected(false));
    let id = watcher
        .client
        .subscribe("outpost/will", QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    assert_eq!(watcher.next().await.0, Ev::Subscribed(id));

    let (proxy_port, cut) = cuttable_proxy(broker.port);
    let url: BrokerUrl = format!("mqtt://127.0.0.1:{proxy_port}")
        .parse()
        .expect("URL");
    let mut device = MqttConfig::new(url, "device-e");
    device.last_will = Some(LastWill {
        topic: "outpost/will".into(),
        payload: b"device-e is gone".to_vec(),
        qos: QoS::AtLeastOnce,
        retain: false,
    });
    let mut session = Session::open(device).await;
    assert_eq!(session.next().await.0, Ev::Connected(false));
    for socket in cut.recv_timeout(PATIENCE).expect("proxy connected") {
        socket.shutdown(Shutdown::Both).expect("cut the link");
    }

    let (received, _) = watcher.next().await;
    assert!(
        matches!(&received, Ev::Received { data, .. } if data == b"device-e is gone"),
        "{received:?}"
    );
    assert_eq!(session.next_disconnect().await.0, Ev::Disconnected);
}

#[tokio::test]
async fn tls_with_client_certificates() {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    for ca in ["ca", "other-ca"] {
        openssl(
            dir.path(),
            &format!("req -x509 {key} -keyout {ca}.key -out {ca}.pem -days 2 -subj /CN={ca}"),
        );
    }
    std::fs::write(dir.path().join("san.ext"), "subjectAltName=DNS:localhost\n").expect("ext");
    for leaf in ["server", "client"] {
        openssl(
            dir.path(),
            &format!("req {key} -keyout {leaf}.key -out {leaf}.csr -subj /CN={leaf}"),
        );
        openssl(
            dir.path(),
            &format!(
                "x509 -req -in {leaf}.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out {leaf}.pem -days 2 -extfile san.ext"
            ),
        );
    }
    let path = |name: &str| dir.path().join(name);
    let extra = format!(
        "allow_anonymous true\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true",
        path("ca.pem").display(),
        path("server.pem").display(),
        path("server.key").display()
    );
    let broker = Broker::start(&extra);
    let url: BrokerUrl = format!("mqtts://localhost:{}", broker.port)
        .parse()
        .expect("URL");
    let mut tls = MqttConfig::new(url, "tls-f");
    tls.ca_file = Some(path("ca.pem"));
    tls.client_cert = Some(path("client.pem"));
    tls.client_key = Some(path("client.key"));
    let mut session = Session::open(tls.clone()).await;
    assert_eq!(session.next().await.0, Ev::Connected(false));
    let id = session
        .client
        .publish("outpost/tls", QoS::AtLeastOnce, false, b"secret")
        .await;
    assert_eq!(session.next().await.0, Ev::Published(id.expect("publish")));

    tls.ca_file = Some(path("other-ca.pem"));
    let mut transport = RumqttcTransport::new(tls).expect("config");
    let error = transport
        .connect()
        .await
        .expect_err("untrusted server")
        .to_string();
    eprintln!("untrusted server: {error}");
    assert!(
        error.starts_with("TLS with the broker at localhost:"),
        "{error}"
    );
}
