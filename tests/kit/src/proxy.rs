//! A loopback TCP proxy to put between a client and the broker, so a test can cut the link at a
//! moment of its choosing without touching either end.
//!
//! Plain std threads: one accepts, two pump each connection (one per direction). [`Proxy::cut`]
//! shuts down every live connection but keeps listening, so the client reconnects through it;
//! [`Proxy::set_offline`] also refuses new connections until switched back.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// A running proxy from `127.0.0.1:port()` to `127.0.0.1:target`. Dropping it stops accepting
/// and cuts every connection.
pub struct Proxy {
    port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Shared {
    /// Both sockets of every live connection, by connection number.
    live: Mutex<Vec<(u64, TcpStream, TcpStream)>>,
    /// Bytes forwarded client → target.
    upstream_bytes: AtomicU64,
    /// Bytes forwarded target → client.
    downstream_bytes: AtomicU64,
    /// Connections accepted and joined to the target.
    connections: AtomicU64,
    /// Refuse (close at once) new connections.
    offline: AtomicBool,
    /// The proxy is being dropped.
    stopping: AtomicBool,
}

impl Proxy {
    /// Listens on a free loopback port and forwards each connection to `127.0.0.1:target_port`.
    pub fn start(target_port: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy binds");
        let port = listener.local_addr().expect("proxy address").port();
        let shared = Arc::new(Shared::default());
        let accept_shared = shared.clone();
        let acceptor = std::thread::Builder::new()
            .name(format!("proxy-{port}"))
            .spawn(move || accept_loop(listener, target_port, &accept_shared))
            .expect("proxy thread");
        Proxy {
            port,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `mqtt://127.0.0.1:PORT` of the proxy.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Drops every live connection (both sides shut down); keeps listening. Returns how many
    /// connections were cut.
    pub fn cut(&self) -> usize {
        let live = std::mem::take(&mut *self.shared.live.lock().expect("proxy lock"));
        for (_, client, target) in &live {
            let _ = client.shutdown(Shutdown::Both);
            let _ = target.shutdown(Shutdown::Both);
        }
        live.len()
    }

    /// While offline, live connections are cut and new ones closed at once.
    pub fn set_offline(&self, offline: bool) {
        self.shared.offline.store(offline, Ordering::SeqCst);
        if offline {
            self.cut();
        }
    }

    /// Bytes forwarded from clients to the target so far.
    pub fn upstream_bytes(&self) -> u64 {
        self.shared.upstream_bytes.load(Ordering::Relaxed)
    }

    /// Bytes forwarded from the target to clients so far.
    pub fn downstream_bytes(&self) -> u64 {
        self.shared.downstream_bytes.load(Ordering::Relaxed)
    }

    /// Connections accepted and joined to the target so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// Connections currently open.
    pub fn live_connections(&self) -> usize {
        self.shared.live.lock().expect("proxy lock").len()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the blocking accept with a connection of our own.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        self.cut();
    }
}

fn accept_loop(listener: TcpListener, target_port: u16, shared: &Arc<Shared>) {
    let mut next_id = 0u64;
    for client in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        if shared.offline.load(Ordering::SeqCst) {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        // Target down: close the client's connection, as a dead broker would.
        let Ok(target) = TcpStream::connect(("127.0.0.1", target_port)) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = target.set_nodelay(true);
        // Four handles: one per pump direction, and the pair `cut` shuts down.
        let clones = (
            client.try_clone(),
            target.try_clone(),
            client.try_clone(),
            target.try_clone(),
        );
        let (Ok(client2), Ok(target2), Ok(client3), Ok(target3)) = clones else {
            continue;
        };
        next_id += 1;
        let id = next_id;
        shared.connections.fetch_add(1, Ordering::Relaxed);
        shared
            .live
            .lock()
            .expect("proxy lock")
            .push((id, client3, target3));
        let up = shared.clone();
        std::thread::spawn(move || {
            pump(client, target, &up.upstream_bytes);
            up.forget(id);
        });
        let down = shared.clone();
        std::thread::spawn(move || {
            pump(target2, client2, &down.downstream_bytes);
            down.forget(id);
        });
    }
}

impl Shared {
    /// Removes a connection that ended by itself from the live list.
    fn forget(&self, id: u64) {
        self.live
            .lock()
            .expect("proxy lock")
            .retain(|(i, _, _)| *i != id);
    }
}

/// Copies `from` → `to` until either side ends, counting bytes; then shuts both down so the
/// opposite pump ends too.
fn pump(mut from: TcpStream, mut to: TcpStream, counter: &AtomicU64) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
                counter.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
