//! An in-process `callrec serve` on a free loopback port, and a raw HTTP/1.1 client that shows
//! exactly what went over the wire.

#![allow(dead_code)]

use callrec_serve::ServeConfig;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

/// The token every test server requires.
pub const TOKEN: &str = "t0k3n-for-tests";

/// A generous bound on any single read: a hang fails the test instead of stalling it.
pub const GUARD: Duration = Duration::from_secs(60);

/// A running server; stopped (gracefully) and its store removed on drop.
pub struct Server {
    pub addr: SocketAddr,
    pub store: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), String>>>,
}

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).expect("random");
    u32::from_le_bytes(b)
}

/// A fresh directory under the system's temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "callrec-http-{tag}-{}-{:08x}",
        std::process::id(),
        random_u32()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

impl Server {
    /// Starts a server with a random RTP port range of `ports`, after `tune` adjusts the config.
    pub fn start(ports: u16, tune: impl FnOnce(&mut ServeConfig)) -> Server {
        let store = temp_dir("store");
        let first = 20_000 + (random_u32() % 10_000) as u16 * 2;
        let mut config = ServeConfig {
            store: store.clone(),
            token: Some(TOKEN.to_string()),
            rtp_ports: (first, first + ports - 1),
            ..ServeConfig::default()
        };
        tune(&mut config);
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .map_err(|e| e.to_string())?;
                addr_tx
                    .send(listener.local_addr().map_err(|e| e.to_string())?)
                    .map_err(|e| e.to_string())?;
                callrec_serve::server::serve(config, listener, async move {
                    let _ = stopped.await;
                })
                .await
            })
        });
        let addr = addr_rx.recv_timeout(GUARD).expect("the server starts");
        let mut thread = Some(thread);
        // The listener is bound already: health is answered once serving starts.
        let mut probe = TcpStream::connect(addr).expect("connect");
        probe.set_read_timeout(Some(GUARD)).expect("timeout");
        probe
            .write_all(b"GET /v1/health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .expect("write");
        let mut out = Vec::new();
        let _ = probe.read_to_end(&mut out);
        if Reply::parse(&out).status != 200 {
            let result = thread.take().map(|t| t.join());
            panic!("the server did not start: {result:?}");
        }
        Server {
            addr,
            store,
            stop: Some(stop),
            thread,
        }
    }

    /// A connection to the server, reads bounded by [`GUARD`].
    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).expect("connect");
        s.set_read_timeout(Some(GUARD)).expect("timeout");
        s
    }

    /// Sends `raw` on a new connection and reads the whole answer (the server closes after it:
    /// every request here says `Connection: close`).
    pub fn raw(&self, raw: &[u8]) -> Reply {
        let mut s = self.connect();
        s.write_all(raw).expect("write");
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        Reply::parse(&out)
    }

    /// `GET path` with `headers` (each "Name: value").
    pub fn get(&self, path: &str, headers: &[&str]) -> Reply {
        self.request("GET", path, headers, b"")
    }

    /// A request with a body (Content-Length set).
    pub fn request(&self, method: &str, path: &str, headers: &[&str], body: &[u8]) -> Reply {
        let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
        for h in headers {
            raw.push_str(h);
            raw.push_str("\r\n");
        }
        if !body.is_empty() || method == "POST" {
            raw.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        raw.push_str("\r\n");
        let mut bytes = raw.into_bytes();
        bytes.extend_from_slice(body);
        self.raw(&bytes)
    }

    /// The bearer header with the right token.
    pub fn auth() -> String {
        format!("Authorization: Bearer {TOKEN}")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

/// An HTTP response as received.
#[derive(Debug)]
pub struct Reply {
    /// The status code (0: no response at all).
    pub status: u16,
    /// Header lines, as received.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Reply {
    /// Parses a response (interim 1xx responses are kept out: `status` is the final one).
    pub fn parse(raw: &[u8]) -> Reply {
        let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
            return Reply {
                status: 0,
                headers: Vec::new(),
                body: raw.to_vec(),
            };
        };
        let head = String::from_utf8_lossy(&raw[..end]).to_string();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if (100..200).contains(&status) {
            let mut rest = Reply::parse(&raw[end + 4..]);
            rest.headers.push(("x-interim".into(), status.to_string()));
            return rest;
        }
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Reply {
            status,
            headers,
            body: raw[end + 4..].to_vec(),
        }
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (panics, showing the reply, when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): status {} body {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}
