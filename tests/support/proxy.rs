//! A TCP proxy on loopback for fault injection: it can be cut (open
//! connections dropped, new ones closed on accept) and healed, it can
//! answer the next connections with an HTTP 502 instead of relaying them,
//! it can hold back what goes upstream (a node that lags), and it counts
//! the connections it accepted.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A TCP proxy in front of a loopback port.
pub struct Proxy {
    pub port: u16,
    cut: Arc<AtomicBool>,
    /// How many of the next connections get a 502 (from the proxy, never
    /// reaching upstream), so faults are exact rather than timed.
    pub fail_next: Arc<AtomicUsize>,
    /// Milliseconds each chunk bound upstream is held back.
    delay: Arc<AtomicU64>,
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
            delay: Arc::default(),
            open: Arc::default(),
            accepted: Arc::default(),
        };
        let (cut, fail_next, delay, open, accepted) = (
            proxy.cut.clone(),
            proxy.fail_next.clone(),
            proxy.delay.clone(),
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
                let upstream = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let delay = delay.clone();
                std::thread::spawn(move || late_copy(upstream.0, upstream.1, &delay, end));
                std::thread::spawn(move || {
                    let (mut from, mut to) = (server, client);
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(end);
                });
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

    /// Holds back what goes upstream by `by` (zero: no delay), on open
    /// connections and new ones alike.
    pub fn slow(&self, by: Duration) {
        self.delay.store(by.as_millis() as u64, Ordering::SeqCst);
    }
}

/// Copies `from` to `to`, each chunk sent `delay` ms after it was read (a
/// constant latency, not a bandwidth limit); then shuts `to` with `end`.
fn late_copy(mut from: TcpStream, mut to: TcpStream, delay: &AtomicU64, end: Shutdown) {
    let (tx, rx) = std::sync::mpsc::channel::<(Instant, Vec<u8>)>();
    let writer = std::thread::spawn(move || {
        for (due, chunk) in rx {
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(end);
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let due = Instant::now() + Duration::from_millis(delay.load(Ordering::SeqCst));
                if tx.send((due, buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        }
    }
    drop(tx);
    let _ = writer.join();
}
