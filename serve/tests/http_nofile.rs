//! `callrec serve` under a low open-file limit (issue 19, items 10 and 14): slow and idle
//! clients are closed by the header-read timeout while `/v1/health` still gets an answer with
//! the connection limit reached, and a POST that would need descriptors the process does not
//! have is a 503 that says so, with the port pool left as it was.
//!
//! The whole test process runs under `nofile` 128 (soft and hard, so the server's raise at start
//! cannot lift it); the tests take turns, since they share the descriptors.

mod common;

use common::Server;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Mutex, MutexGuard, Once};
use std::time::Duration;

const NOFILE: u64 = 128;

static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOG.lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Lowers the limit once for the process, captures the log, and serializes the tests.
fn setup() -> MutexGuard<'static, ()> {
    static ONCE: Once = Once::new();
    static TURN: Mutex<()> = Mutex::new(());
    ONCE.call_once(|| {
        let limit = libc::rlimit {
            rlim_cur: NOFILE,
            rlim_max: NOFILE,
        };
        // SAFETY: setrlimit reads the struct it is given, which lives across the call.
        let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
        assert_eq!(rc, 0, "setrlimit");
        tracing_subscriber::fmt()
            .with_writer(|| LogWriter)
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .init();
    });
    TURN.lock().unwrap_or_else(|p| p.into_inner())
}

fn log_text() -> String {
    String::from_utf8_lossy(&LOG.lock().unwrap_or_else(|p| p.into_inner())).to_string()
}

/// Sends a request head one header line at a time, `pause` apart, until the server closes the
/// connection (true) or `lines` lines have gone out (false).
fn trickle(mut s: TcpStream, pause: Duration, lines: usize) -> bool {
    if s.write_all(b"GET /v1/health HTTP/1.1\r\n").is_err() {
        return true;
    }
    s.set_read_timeout(Some(pause)).unwrap();
    let mut buf = [0u8; 512];
    for i in 0..lines {
        if s.write_all(format!("X-Trickle-{i}: x\r\n").as_bytes())
            .is_err()
        {
            return true;
        }
        match s.read(&mut buf) {
            // Closed (possibly after an error response).
            Ok(0) => return true,
            Ok(_) => {
                // A 408 or similar: read on until the close.
                s.set_read_timeout(Some(common::GUARD)).unwrap();
                let mut rest = Vec::new();
                return s.read_to_end(&mut rest).is_ok();
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn slow_and_idle_connections_are_closed_and_health_answers_at_the_limit() {
    let _turn = setup();
    let server = Server::start(4, |c| {
        c.http.header_timeout = Duration::from_millis(1500);
    });
    // The limit is a quarter of the open-file limit: 32. Fill it, and more.
    let limit = (NOFILE / 4) as usize;
    let slow: Vec<_> = (0..limit - 8)
        .map(|_| {
            let s = server.connect();
            // A header line every 0.5 s, for up to 60 s: hyper's timeout is for the whole head.
            std::thread::spawn(move || trickle(s, Duration::from_millis(500), 120))
        })
        .collect();
    let idle: Vec<TcpStream> = (0..16).map(|_| server.connect()).collect();
    // Health answers (once the slow and idle ones have been closed to make room).
    let reply = server.get("/v1/health", &[]);
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json()["status"], "ok");
    for t in slow {
        assert!(t.join().unwrap(), "a trickling connection was never closed");
    }
    for mut s in idle {
        let mut buf = [0u8; 64];
        // EOF (or reset): the server closed it; a timeout (GUARD) would be an error here.
        match s.read(&mut buf) {
            Ok(0) => {}
            Ok(_) => {
                let mut rest = Vec::new();
                s.read_to_end(&mut rest).expect("closed after its answer");
            }
            Err(e) => assert!(
                e.kind() == std::io::ErrorKind::ConnectionReset,
                "an idle connection was never closed: {e}"
            ),
        }
    }
    // A kept-alive connection that goes idle after a request is closed too.
    let mut s = server.connect();
    s.write_all(b"GET /v1/health HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("closed after going idle");
    assert_eq!(common::Reply::parse(&out).status, 200);
    let log = log_text();
    assert!(!log.contains("cannot accept HTTP connections"), "{log}");
}

fn rtp_ports_free(server: &Server) -> u64 {
    let reply = server.get("/metrics", &[&Server::auth()]);
    assert_eq!(reply.status, 200);
    let text = String::from_utf8_lossy(&reply.body).to_string();
    text.lines()
        .find(|l| l.starts_with("callrec_rtp_ports_free "))
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no callrec_rtp_ports_free in {text}"))
}

#[test]
fn out_of_descriptors_is_a_503_that_says_so_and_the_pool_stays_true() {
    let _turn = setup();
    let ports = 200;
    let server = Server::start(ports, |_| {});
    let pairs = u64::from(ports / 2);
    assert_eq!(rtp_ports_free(&server), pairs);
    let warns_before = log_text().matches("RTP port pair unavailable").count();
    let body = br#"{"record": {"seconds_max_duration": 3600}}"#;
    let mut started = 0u64;
    let refused = loop {
        let reply = server.request("POST", "/v1/records", &[&Server::auth()], body);
        if reply.status != 201 {
            break reply;
        }
        started += 1;
        assert!(
            started < pairs,
            "every port was taken: no descriptor limit met"
        );
    };
    assert!(started > 0, "not even one call started: {refused:?}");
    assert_eq!(
        refused.status,
        503,
        "{:?}",
        String::from_utf8_lossy(&refused.body)
    );
    let error = refused.json()["error"].as_str().unwrap().to_string();
    assert!(error.contains("file descriptors"), "{error}");
    // Twice more: the same answer, no port lost, no WARN per port tried.
    for _ in 0..2 {
        let reply = server.request("POST", "/v1/records", &[&Server::auth()], body);
        assert_eq!(reply.status, 503);
    }
    assert_eq!(rtp_ports_free(&server), pairs - started);
    assert_eq!(
        log_text().matches("RTP port pair unavailable").count(),
        warns_before
    );
    // The server still answers.
    assert_eq!(server.get("/v1/health", &[]).status, 200);
}

#[test]
fn emfile_while_binding_a_port_is_a_503_naming_descriptors_and_loses_no_port() {
    let _turn = setup();
    let first = 20_000 + (std::process::id() % 10_000) as u16 * 2;
    let (_freed_tx, freed_rx) = crossbeam_channel::unbounded();
    let ports = callrec_serve::records::Ports::new(
        first,
        first + 49,
        1,
        std::time::Duration::ZERO,
        freed_rx,
    );
    let warns_before = log_text().matches("RTP port pair unavailable").count();
    // Use up every descriptor the process may open.
    let mut held = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(f) => held.push(f),
            Err(e) => {
                assert!(callrec_serve::limits::is_out_of_descriptors(&e), "{e}");
                break;
            }
        }
    }
    let refused = ports.bind(std::net::IpAddr::from([127, 0, 0, 1]));
    drop(held);
    let refused = refused.expect_err("no descriptor is left to bind with");
    assert_eq!(refused.status, 503);
    assert!(
        refused.message.contains("file descriptors"),
        "{}",
        refused.message
    );
    assert_eq!(ports.free_count(), 25);
    assert_eq!(
        log_text().matches("RTP port pair unavailable").count(),
        warns_before
    );
    // With descriptors back, the same pool binds.
    let bound = ports
        .bind(std::net::IpAddr::from([127, 0, 0, 1]))
        .expect("binds");
    assert!((first..first + 50).contains(&bound.port));
}
