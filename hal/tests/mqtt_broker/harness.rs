//! The harness: a real mosquitto per test, sessions driven in their own task, a TCP proxy that
//! can be cut, and openssl for certificates.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use outpost_hal::mqtt::{
    BrokerUrl, Connection, Event, EventPayload, MqttConfig, OwnedEvent, RumqttcClient,
    RumqttcConnection, RumqttcTransport, Transport, TransportError,
};
use tokio::sync::mpsc;

pub const PATIENCE: Duration = Duration::from_secs(20);

/// A mosquitto on a free loopback port, configured in its own temp dir, killed on drop.
pub struct Broker {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Broker {
    pub fn start(extra_config: &str) -> Broker {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_in(dir, extra_config)
    }

    pub fn start_in(dir: tempfile::TempDir, extra_config: &str) -> Broker {
        let port = free_port();
        let config = format!(
            "listener {port} 127.0.0.1\npersistence true\npersistence_location {}/\n\
             # As root, mosquitto would switch to user `mosquitto`, who cannot use the temp dir.\n\
             user root\n{extra_config}\n",
            dir.path().display()
        );
        let path = dir.path().join("mosquitto.conf");
        std::fs::write(&path, config).expect("write mosquitto.conf");
        let mut child = Command::new("/usr/sbin/mosquitto")
            .arg("-c")
            .arg(&path)
            .arg("-v")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start /usr/sbin/mosquitto");
        // Read the log until mosquitto says it runs; keep draining it so it never blocks.
        let stderr = child.stderr.take().expect("piped stderr");
        let (ready_tx, ready_rx) = std_mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("running") || line.contains("Error") {
                    let _ = ready_tx.send(line);
                }
            }
        });
        let line = ready_rx
            .recv_timeout(PATIENCE)
            .expect("mosquitto never said it runs");
        assert!(
            line.contains("running"),
            "mosquitto failed to start: {line}"
        );
        Broker {
            child,
            port,
            _dir: dir,
        }
    }

    pub fn url(&self) -> BrokerUrl {
        format!("mqtt://127.0.0.1:{}", self.port)
            .parse()
            .expect("valid URL")
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// What a test asserts on: an event with its borrowed data copied out.
#[derive(Debug, Clone, PartialEq)]
pub enum Ev {
    Connected(bool),
    Disconnected,
    Published(u32),
    Subscribed(u32),
    Received {
        id: u32,
        topic: String,
        data: Vec<u8>,
    },
    Other(String),
}

pub fn ev(event: &OwnedEvent) -> Ev {
    match event.payload() {
        EventPayload::Connected(session_present) => Ev::Connected(session_present),
        EventPayload::Disconnected => Ev::Disconnected,
        EventPayload::Published(id) => Ev::Published(id),
        EventPayload::Subscribed(id) => Ev::Subscribed(id),
        EventPayload::Received {
            id, topic, data, ..
        } => Ev::Received {
            id,
            topic: topic.unwrap_or_default().to_owned(),
            data: data.to_vec(),
        },
        other => Ev::Other(other.to_string()),
    }
}

/// A connected session whose connection half runs in its own task.
pub struct Session {
    pub client: RumqttcClient,
    events: mpsc::UnboundedReceiver<Result<OwnedEvent, TransportError>>,
    task: tokio::task::JoinHandle<()>,
}

impl Session {
    pub async fn open(config: MqttConfig) -> Session {
        let mut transport = RumqttcTransport::new(config).expect("valid config");
        let (client, connection) = transport.connect().await.expect("connect");
        Self::drive(client, connection)
    }

    pub fn drive(client: RumqttcClient, mut connection: RumqttcConnection) -> Session {
        let (tx, events) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                let item = connection.next().await;
                let end = item.is_err();
                if tx.send(item).is_err() || end {
                    return;
                }
            }
        });
        Session {
            client,
            events,
            task,
        }
    }

    /// The next event, or `None` once the connection half has ended.
    pub async fn item(&mut self) -> Option<Result<OwnedEvent, TransportError>> {
        tokio::time::timeout(PATIENCE, self.events.recv())
            .await
            .expect("an event in time")
    }

    pub async fn next(&mut self) -> (Ev, OwnedEvent) {
        let event = self
            .item()
            .await
            .expect("connection still open")
            .expect("an event");
        (ev(&event), event)
    }

    /// The end of a session: an `Error` naming the cause, then `Disconnected` (returned).
    pub async fn next_disconnect(&mut self) -> (Ev, OwnedEvent) {
        let (first, _) = self.next().await;
        assert!(
            matches!(&first, Ev::Other(text) if text.contains("SessionEnded")),
            "the cause comes first as an error event: {first:?}"
        );
        self.next().await
    }

    /// Drop the connection without a DISCONNECT, as a crash would.
    pub async fn abort(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

pub fn config(broker: &Broker, client_id: &str) -> MqttConfig {
    MqttConfig::new(broker.url(), client_id)
}

/// Forwards one TCP connection to `target`; returns its port and, once connected, both sockets
/// so the test can cut them.
pub fn cuttable_proxy(target: u16) -> (u16, std_mpsc::Receiver<[TcpStream; 2]>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
    let port = listener.local_addr().expect("proxy address").port();
    let (cut_tx, cut_rx) = std_mpsc::channel();
    std::thread::spawn(move || {
        let Ok((inbound, _)) = listener.accept() else {
            return;
        };
        let Ok(outbound) = TcpStream::connect(("127.0.0.1", target)) else {
            return;
        };
        let pipe = |mut from: TcpStream, mut to: TcpStream| {
            std::thread::spawn(move || {
                let mut buffer = [0u8; 4096];
                while let Ok(n @ 1..) = from.read(&mut buffer) {
                    if to.write_all(&buffer[..n]).is_err() {
                        break;
                    }
                }
            });
        };
        let clone = |s: &TcpStream| s.try_clone().expect("clone socket");
        pipe(clone(&inbound), clone(&outbound));
        pipe(clone(&outbound), clone(&inbound));
        let _ = cut_tx.send([inbound, outbound]);
    });
    (port, cut_rx)
}

pub fn openssl(dir: &Path, args: &str) {
    let status = Command::new("openssl")
        .args(args.split_whitespace())
        .current_dir(dir)
        .stderr(Stdio::null())
        .status()
        .expect("run openssl");
    assert!(status.success(), "openssl {args} failed");
}
