//! A TCP proxy on loopback for fault injection: it can be cut (open
//! connections dropped, new ones closed on accept) and healed, it can
//! answer the next connections with an HTTP 502 instead of relaying them,
//! and it counts the connections it accepted.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A TCP proxy in front of a loopback port.
pub struct Proxy {
    pub port: u16,
    cut: Arc<AtomicBool>,
    /// How many of the next connections get a 502 (from the proxy, never
    /// reaching upstream), so faults are exact rather than timed.
    pub fail_next: Arc<AtomicUsize>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    /// Every connection accepted, cut, failed or relayed.
    pub accepted: Arc<AtomicUsize>,
}

impl Proxy {
    /// A proxy to `upstream` that closes a relayed connection whole as soon
    /// as either side stops sending.
    pub fn start(upstream: u16) -> Proxy {
        Proxy::start_with(upstream, Shutdown::Both)
    }

    /// A proxy to `upstream`; when one side of a relayed connection stops
    /// sending, the other side's socket is shut down with `end`
    /// (`Shutdown::Write` passes the half-close on and lets the other
    /// direction finish).
    pub fn start_with(upstream: u16, end: Shutdown) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let proxy = Proxy {
            port,
            cut: Arc::default(),
            fail_next: Arc::default(),
            open: Arc::default(),
            accepted: Arc::default(),
        };
        let (cut, fail_next, open, accepted) = (
            proxy.cut.clone(),
            proxy.fail_next.clone(),
            proxy.open.clone(),
            proxy.accepted.clone(),
        );
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { continue };
                accepted.fetch_add(1, Ordering::SeqCst);
                if cut.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                if fail_next
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
                {
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 4096];
                        let _ = client.read(&mut buf);
                        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: application/json\r\nContent-Length: 33\r\nConnection: close\r\n\r\n{\"errors\":[\"upstream went away\"]}");
                    });
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                {
                    let mut open = open.lock().unwrap();
                    open.retain(|s: &TcpStream| s.peer_addr().is_ok());
                    open.push(client.try_clone().unwrap());
                    open.push(server.try_clone().unwrap());
                }
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(end);
                    });
                }
            }
        });
        proxy
    }

    /// `http://127.0.0.1:<port>`, for an upstream that speaks plain HTTP.
    pub fn addr(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The upstream "goes away": open connections drop, new ones close.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Undoes [`Proxy::cut`]: new connections are relayed again.
    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}
