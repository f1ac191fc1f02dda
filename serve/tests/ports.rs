//! Who may send to a record's ports (DESIGN §11 "Who may send"; issue 19, reproductions 4-7 and
//! the RTCP half of 18), end to end on loopback: the control side's `Starter` binds a pair from
//! the `Ports` pool and hands the session to a real receive thread (`IngestThread`), a test
//! sender sends UDP, and the finished file is read back with sox and compared byte for byte with
//! what the caller sent. Every caller's sample carries its position (and the caller's mark), so
//! the file shows exactly whose audio it holds. Waiting is by polling a counter or an event with
//! a generous cap that only turns a hang into a failure: nothing here asserts a time.

use callrec::{Engine, EngineConfig, EventKind, RecordingResult};
use callrec_serve::ingest::{Command, IngestThread, Timeouts, BEEP_AFTER_PACKETS};
use callrec_serve::records::{Ports, Record, Refusal, Starter};
use callrec_serve::stream::{RtpTotals, StreamStats};
use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Every frame is sound at -50 dBm0; no in-band DTMF: the file holds exactly what arrived.
const OPTIONS: &str = r#"{"silence_threshold_db":-50,"milliseconds_max_silence":60000,"milliseconds_max_initial_silence":60000,"seconds_max_duration":600,"detect_dtmf":false}"#;
const SILENCE: u8 = 0xD5;
const CAP: Duration = Duration::from_secs(30);

/// The byte caller `mark` sends at sample `n`: its position mod 251 and its mark (never the
/// silence byte, so a concealed sample is told from a sent one).
fn sample(mark: u8, n: usize) -> u8 {
    let b = ((n % 251) as u8) ^ mark;
    if b == SILENCE {
        b ^ 1
    } else {
        b
    }
}

fn rtp(pt: u8, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt & 0x7f];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// A caller: its socket, its mark, and what it has sent.
struct Caller {
    socket: UdpSocket,
    mark: u8,
    ssrc: u32,
    seq: u16,
    sent: Vec<u8>,
}

impl Caller {
    fn new(mark: u8) -> Caller {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        Caller {
            socket,
            mark,
            ssrc: 0x1000 + u32::from(mark),
            seq: 1000,
            sent: Vec::new(),
        }
    }

    fn address(&self) -> SocketAddr {
        self.socket.local_addr().unwrap()
    }

    /// Sends `count` packets of `samples` samples each to `port`, `pause` apart.
    fn send(&mut self, port: u16, count: usize, samples: usize, pause: Duration) {
        for _ in 0..count {
            let start = self.sent.len();
            let payload: Vec<u8> = (start..start + samples)
                .map(|n| sample(self.mark, n))
                .collect();
            let packet = rtp(8, self.seq, 5000 + start as u32, self.ssrc, &payload);
            self.socket
                .send_to(&packet, ("127.0.0.1", port))
                .expect("send");
            self.sent.extend_from_slice(&payload);
            self.seq = self.seq.wrapping_add(1);
            std::thread::sleep(pause);
        }
    }
}

/// An even port whose pair is free now (for pools of exactly one pair).
fn free_pair() -> u16 {
    loop {
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = probe.local_addr().unwrap().port() & !1;
        drop(probe);
        if port < 1024 || port == u16::MAX - 1 {
            continue;
        }
        let a = UdpSocket::bind(("127.0.0.1", port));
        let b = UdpSocket::bind(("127.0.0.1", port + 1));
        if a.is_ok() && b.is_ok() {
            return port;
        }
    }
}

/// A random 200-port range (pairs other programs hold are skipped by the pool).
fn some_range() -> (u16, u16) {
    let first = 20000 + (free_pair() % 30000);
    (first, first + 199)
}

/// The control side and the receive threads of a serve, without HTTP.
struct Host {
    engine: Engine,
    ports: Ports,
    threads: Vec<IngestThread>,
    dir: PathBuf,
    events: Mutex<HashMap<(String, bool), RecordingResult>>,
    outbox: callrec_serve::outbox::Outbox,
}

impl Host {
    fn new(name: &str, (first, last): (u16, u16), quarantine: Duration) -> Host {
        let dir = std::env::temp_dir().join(format!(
            "callrec-serve-ports-{name}-{}-{first}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let config = EngineConfig {
            poll_interval: Duration::from_millis(1),
            ..EngineConfig::default()
        };
        let engine = Engine::new(&dir, config).unwrap();
        let (freed_tx, freed_rx) = crossbeam_channel::unbounded();
        let ports = Ports::new(first, last, 1, quarantine, freed_rx);
        let threads = ports
            .blocks()
            .into_iter()
            .map(|(first_port, pairs)| {
                IngestThread::start(
                    "test-rtp".into(),
                    first_port,
                    pairs,
                    Timeouts {
                        inactivity: Duration::from_secs(60),
                        first_packet: Duration::from_secs(60),
                    },
                    Arc::new(RtpTotals::default()),
                    freed_tx.clone(),
                )
                .unwrap()
            })
            .collect();
        Host {
            engine,
            ports,
            threads,
            outbox: callrec_serve::outbox::Outbox::open(&dir).unwrap().0,
            dir,
            events: Mutex::new(HashMap::new()),
        }
    }

    fn start(&self, body: &str) -> Result<Record, Refusal> {
        Starter {
            engine: &self.engine,
            ports: &self.ports,
            threads: &self.threads,
            rtp_address: "127.0.0.1".parse().unwrap(),
            window_samples: 480,
            app_url: None,
            destinations: &Default::default(),
            outbox: &self.outbox,
        }
        .start(body.as_bytes())
    }

    fn record(&self, media: &str) -> Record {
        self.start(&format!(r#"{{"record":{OPTIONS},"media":{{{media}}}}}"#))
            .unwrap()
    }

    fn hangup(&self, record: &Record) {
        self.threads[record.thread]
            .send(Command::Hangup(record.port))
            .unwrap();
    }

    /// The record's *available* result, and its file's A-law samples as sox reads them.
    fn file(&self, record: &Record) -> (RecordingResult, Vec<u8>) {
        let key = (record.filename.clone(), true);
        let deadline = Instant::now() + CAP;
        let result = loop {
            if let Some(r) = self.events.lock().unwrap().remove(&key) {
                break r;
            }
            assert!(
                Instant::now() < deadline,
                "no event for {}",
                record.filename
            );
            if let Some(e) = self.engine.next_event(Some(Duration::from_millis(50))) {
                let available = e.kind == EventKind::Available;
                self.events
                    .lock()
                    .unwrap()
                    .insert((e.result.filename.clone(), available), e.result);
            }
        };
        (result, sox_samples(&self.path(&record.filename)))
    }

    fn path(&self, filename: &str) -> PathBuf {
        self.dir.join(filename.trim_start_matches('/'))
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        for t in &self.threads {
            t.shutdown();
        }
        self.engine.shutdown();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The file's samples as raw A-law, decoded by sox (an independent WAV reader).
fn sox_samples(path: &Path) -> Vec<u8> {
    let out = std::process::Command::new("sox")
        .arg(path)
        .args(["-t", "al", "-"])
        .output()
        .expect("sox runs (apt-get install sox)");
    assert!(
        out.status.success(),
        "sox {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn stat(record: &Record, field: fn(&StreamStats) -> &AtomicU64) -> u64 {
    field(&record.shared.stats).load(Ordering::Relaxed)
}

/// Polls until `done`; the cap only turns a hang into a failure.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + CAP;
    while !done() {
        assert!(Instant::now() < deadline, "waited too long for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// An RTCP receiver report (RFC 3550 §6.4.2, no report blocks), from `ssrc`.
fn rtcp_rr(ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 201, 0, 1];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p
}

/// Makes sure the receive thread has finished at least one full loop after everything sent to
/// `record` so far: one RTCP packet to its RTCP port, counted.
fn sync(record: &Record, from: &UdpSocket) {
    let before = stat(record, |s| &s.rtcp_packets);
    from.send_to(&rtcp_rr(1), ("127.0.0.1", record.port + 1))
        .unwrap();
    wait_until("the RTCP sync packet", || {
        stat(record, |s| &s.rtcp_packets) > before
    });
}

/// Reproduction 4: 300 ms packets (2,400-byte payloads) lose nothing.
#[test]
fn a_300_ms_packet_is_read_whole() {
    let host = Host::new("300ms", some_range(), Duration::from_secs(5));
    let record = host.record("");
    let mut caller = Caller::new(0x00);
    caller.send(record.port, 20, 2400, Duration::from_millis(5));
    sync(&record, &caller.socket);
    host.hangup(&record);
    let (result, audio) = host.file(&record);
    assert_eq!(stat(&record, |s| &s.packets), 20);
    assert_eq!(stat(&record, |s| &s.packets_invalid), 0);
    assert_eq!(stat(&record, |s| &s.samples_concealed), 0);
    assert_eq!(result.samples, 48_000);
    assert_eq!(result.frames_dropped, 0);
    assert_eq!(audio.len(), 48_000, "6 s of audio");
    assert!(audio == caller.sent, "the file is exactly what was sent");
}

/// Reproduction 18 (RTCP half): RTCP to port + 1 and RTCP multiplexed on the RTP port are
/// counted as RTCP, never as foreign or invalid RTP, and the audio is untouched.
#[test]
fn rtcp_on_the_next_port_and_multiplexed_is_rtcp() {
    let host = Host::new("rtcp", some_range(), Duration::from_secs(5));
    let record = host.record("");
    assert_eq!(record.port % 2, 0, "RTP on an even port");
    let mut caller = Caller::new(0x00);
    // A media server sends its RTCP from the next port.
    let rtcp_from = UdpSocket::bind("127.0.0.1:0").unwrap();
    for k in 0..5 {
        caller.send(record.port, 10, 160, Duration::from_millis(2));
        rtcp_from
            .send_to(&rtcp_rr(caller.ssrc), ("127.0.0.1", record.port + 1))
            .unwrap();
        if k % 2 == 0 {
            // rtcp-mux (RFC 5761): on the RTP port, from the call's source.
            caller
                .socket
                .send_to(&rtcp_rr(caller.ssrc), ("127.0.0.1", record.port))
                .unwrap();
        }
    }
    wait_until("8 RTCP packets", || stat(&record, |s| &s.rtcp_packets) == 8);
    host.hangup(&record);
    let (result, audio) = host.file(&record);
    assert_eq!(stat(&record, |s| &s.packets), 50);
    assert_eq!(stat(&record, |s| &s.packets_foreign), 0);
    assert_eq!(stat(&record, |s| &s.packets_invalid), 0);
    assert_eq!(result.samples, 8000);
    assert!(audio == caller.sent, "the file is exactly what was sent");
}

/// Ports are even, drawn at random from the range, and the pair's RTCP port is bound too.
#[test]
fn ports_are_even_pairs_drawn_at_random() {
    let (first, last) = some_range();
    let (_tx, rx) = crossbeam_channel::unbounded();
    let ports = Ports::new(first, last, 1, Duration::from_secs(5), rx);
    let address = "127.0.0.1".parse().unwrap();
    let mut drawn = Vec::new();
    let mut held = Vec::new();
    for _ in 0..10 {
        let pair = ports.bind(address).unwrap();
        assert_eq!(pair.port % 2, 0);
        assert!(pair.port >= first && pair.port < last);
        assert_eq!(pair.rtp.local_addr().unwrap().port(), pair.port);
        assert_eq!(pair.rtcp.local_addr().unwrap().port(), pair.port + 1);
        drawn.push(pair.port);
        held.push(pair);
    }
    let mut sorted = drawn.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 10, "ten different pairs");
    // Handed out in order, ten draws would be ascending: at random from 100 pairs, the chance
    // of that is 1 in 10! (3.6 million).
    assert_ne!(drawn, sorted, "drawn at random, not in order: {drawn:?}");
}

/// A hung-up call whose media keeps flowing on a stream of its own.
struct Flowing {
    stop: Arc<AtomicBool>,
    sender: Option<std::thread::JoinHandle<()>>,
}

impl Flowing {
    fn start(mut caller: Caller, port: u16) -> Flowing {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let sender = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                caller.send(port, 1, 160, Duration::from_millis(5));
            }
        });
        Flowing {
            stop,
            sender: Some(sender),
        }
    }
}

impl Drop for Flowing {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(s) = self.sender.take() {
            let _ = s.join();
        }
    }
}

/// Reproduction 5 (first half): with one pair, a call hung up while its media keeps flowing
/// leaves its port resting: the next record is refused with a 503 that says why.
#[test]
fn a_hung_up_calls_port_rests_and_the_next_record_hears_why() {
    let port = free_pair();
    let host = Host::new("rest", (port, port + 1), Duration::from_secs(3600));
    let a = host.record("");
    let mut caller_a = Caller::new(0x00);
    caller_a.send(a.port, 10, 160, Duration::from_millis(2));
    host.hangup(&a);
    let (result, _) = host.file(&a);
    assert_eq!(result.samples, 1600);
    // A's media goes on after its record ended.
    let _flowing = Flowing::start(caller_a, a.port);
    let deadline = Instant::now() + CAP;
    let refused = loop {
        assert!(Instant::now() < deadline, "the pair never came back");
        let refused = host
            .start(&format!(r#"{{"record":{OPTIONS}}}"#))
            .unwrap_err();
        // Until the receive thread has handed the pair back, it is still in A's call.
        if !refused.message.contains("1 in calls") {
            break refused;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(refused.status, 503);
    assert!(
        refused.message.contains("1 resting after their call")
            && refused.message.contains("--rtp-port-quarantine-ms"),
        "{}",
        refused.message
    );
}

/// Reproduction 5 (second half): after the quarantine, the next call on the same (only) pair
/// while the old call's media still flows holds exactly its own caller's audio.
#[test]
fn the_next_call_on_a_port_holds_none_of_the_previous_calls_audio() {
    let port = free_pair();
    let host = Host::new("next", (port, port + 1), Duration::from_millis(200));
    let a = host.record("");
    let mut caller_a = Caller::new(0x00);
    caller_a.send(a.port, 10, 160, Duration::from_millis(2));
    host.hangup(&a);
    assert_eq!(host.file(&a).0.samples, 1600);
    // A's media goes on after its record ended, through the quarantine and B's call.
    let flowing = Flowing::start(caller_a, a.port);
    let b = loop {
        match host.start(&format!(r#"{{"record":{OPTIONS}}}"#)) {
            Ok(b) => break b,
            Err(r) if r.status == 503 => std::thread::sleep(Duration::from_millis(20)),
            Err(r) => panic!("{r:?}"),
        }
    };
    assert_eq!(b.port, a.port);
    // A's media reaches B's port before and while B's caller talks.
    wait_until("A's media on B's port", || {
        stat(&b, |s| &s.packets_foreign) > 0
    });
    let mut caller_b = Caller::new(0x80);
    caller_b.send(b.port, 250, 160, Duration::from_millis(2));
    sync(&b, &caller_b.socket);
    drop(flowing);
    host.hangup(&b);
    let (result, audio) = host.file(&b);
    assert_eq!(stat(&b, |s| &s.packets), 250);
    assert!(stat(&b, |s| &s.packets_foreign) > 0);
    assert_eq!(result.samples, 40_000);
    assert!(audio == caller_b.sent, "B's file is exactly B's caller");
}

/// Reproduction 5 (third): a stray 12-byte packet, or a packet of a payload type the call did
/// not negotiate, before the caller's first packet does not capture the call.
#[test]
fn a_stray_header_or_wrong_payload_type_does_not_capture_the_call() {
    let host = Host::new("stray", some_range(), Duration::from_secs(5));
    let record = host.record(r#""codec":"alaw","payload_type":8"#);
    let stray = UdpSocket::bind("127.0.0.1:0").unwrap();
    stray
        .send_to(&rtp(8, 1, 1, 0xbad, &[]), ("127.0.0.1", record.port))
        .unwrap();
    let other = UdpSocket::bind("127.0.0.1:0").unwrap();
    other
        .send_to(
            &rtp(0, 1, 1, 0xbad, &[0x55; 160]),
            ("127.0.0.1", record.port),
        )
        .unwrap();
    wait_until("the two strays", || {
        stat(&record, |s| &s.packets_invalid) == 2
    });
    let mut caller = Caller::new(0x00);
    caller.send(record.port, 250, 160, Duration::from_millis(2));
    sync(&record, &caller.socket);
    host.hangup(&record);
    let (result, audio) = host.file(&record);
    assert_eq!(stat(&record, |s| &s.packets), 250);
    assert_eq!(stat(&record, |s| &s.packets_foreign), 0);
    assert_eq!(stat(&record, |s| &s.packets_invalid), 2);
    assert_eq!(result.samples, 40_000, "5.0 s");
    assert!(
        audio == caller.sent,
        "the caller's 250 packets, all of them"
    );
}

/// `media.source`: only the named sender is accepted, even when another sends valid RTP first.
#[test]
fn media_source_names_the_only_sender() {
    let host = Host::new("source", some_range(), Duration::from_secs(5));
    for by_port in [true, false] {
        let mut caller = Caller::new(0x00);
        let source = if by_port {
            caller.address().to_string()
        } else {
            "127.0.0.1".to_string()
        };
        let record = host.record(&format!(r#""source":"{source}""#));
        let mut stranger = Caller::new(0x80);
        if !by_port {
            // Only the address named: the stranger sends from another address.
            stranger.socket = UdpSocket::bind("127.0.0.2:0").unwrap();
        }
        stranger.send(record.port, 5, 160, Duration::from_millis(2));
        wait_until("the stranger's packets", || {
            stat(&record, |s| &s.packets_foreign) == 5
        });
        caller.send(record.port, 50, 160, Duration::from_millis(2));
        sync(&record, &caller.socket);
        host.hangup(&record);
        let (result, audio) = host.file(&record);
        assert_eq!(stat(&record, |s| &s.packets), 50);
        assert_eq!(stat(&record, |s| &s.packets_foreign), 5);
        assert_eq!(result.samples, 8000);
        assert!(audio == caller.sent, "only the named source's audio");
    }
    for (bad, why) in [
        ("\"nowhere\"", "must be an IP address"),
        ("\"127.0.0.1:0\"", "port must be"),
        ("\"0.0.0.0\"", "unicast"),
        ("5", "must be an IP address"),
    ] {
        let refused = host
            .start(&format!(
                r#"{{"record":{OPTIONS},"media":{{"source":{bad}}}}}"#
            ))
            .unwrap_err();
        assert_eq!(refused.status, 400);
        assert_eq!(refused.field.as_deref(), Some("media.source"));
        assert!(refused.message.contains(why), "{bad}: {}", refused.message);
    }
}

fn beep_record(host: &Host) -> Record {
    host.start(r#"{"record":{"beep_on_start":true,"beep_milliseconds":5000,"milliseconds_max_initial_silence":60000}}"#)
        .unwrap()
}

/// Everything the caller's socket has received so far: (packets, bytes).
fn drain(socket: &UdpSocket) -> (u64, u64) {
    socket.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 2048];
    let (mut packets, mut bytes) = (0, 0);
    while let Ok(n) = socket.recv(&mut buf) {
        packets += 1;
        bytes += n as u64;
    }
    (packets, bytes)
}

/// Reproduction 6: one 12-byte packet (or fewer than `BEEP_AFTER_PACKETS` valid ones) to a
/// record with a 5 s beep gets nothing back.
#[test]
fn a_stray_packet_gets_no_beep() {
    let host = Host::new("nobeep", some_range(), Duration::from_secs(5));
    let record = beep_record(&host);
    let spoofed = UdpSocket::bind("127.0.0.1:0").unwrap();
    spoofed
        .send_to(&rtp(8, 1, 1, 7, &[]), ("127.0.0.1", record.port))
        .unwrap();
    sync(&record, &spoofed);
    sync(&record, &spoofed);
    assert_eq!(stat(&record, |s| &s.packets_invalid), 1);
    assert_eq!(drain(&spoofed), (0, 0), "nothing sent back");
    let mut caller = Caller::new(0x00);
    caller.send(
        record.port,
        BEEP_AFTER_PACKETS as usize - 1,
        160,
        Duration::ZERO,
    );
    sync(&record, &caller.socket);
    sync(&record, &caller.socket);
    assert_eq!(stat(&record, |s| &s.packets), BEEP_AFTER_PACKETS - 1);
    assert_eq!(
        drain(&caller.socket),
        (0, 0),
        "no beep before a few packets"
    );
    assert_eq!(stat(&record, |s| &s.beep_packets_sent), 0);
    host.hangup(&record);
}

/// Reproduction 6 (the amplifier): the beep sends back at most as many packets and bytes as
/// the source sent; a source that stops gets nothing more.
#[test]
fn the_beep_never_sends_more_than_it_received() {
    let host = Host::new("amplifier", some_range(), Duration::from_secs(5));
    // 20 ms packets (172 bytes, as the beep's): as many packets back as sent. 10 ms packets
    // (92 bytes): bounded by the bytes, 20 x 92 = 1840 bytes, ten 172-byte beep packets.
    for (samples, expected_packets) in [(160usize, 20u64), (80, 10)] {
        let record = beep_record(&host);
        let mut caller = Caller::new(0x00);
        caller.send(record.port, 20, samples, Duration::ZERO);
        let sent_bytes = 20 * (12 + samples as u64);
        wait_until("the beep's allowance used", || {
            stat(&record, |s| &s.beep_packets_sent) == expected_packets
        });
        // One more beep period after it, nothing follows.
        std::thread::sleep(callrec_serve::beep::PACKET_INTERVAL * 3);
        sync(&record, &caller.socket);
        let (packets, bytes) = drain(&caller.socket);
        assert_eq!(packets, expected_packets, "{samples}-sample packets");
        assert_eq!(bytes, expected_packets * 172);
        assert!(bytes <= sent_bytes);
        assert_eq!(stat(&record, |s| &s.beep_packets_sent), expected_packets);
        host.hangup(&record);
    }
}

/// Sanity of the known-by-construction audio: two callers never share a byte at a position.
#[test]
fn callers_marks_differ_everywhere() {
    assert!((0..40_000).all(|n| sample(0x00, n) != sample(0x80, n)));
    assert!((0..40_000).all(|n| sample(0x00, n) != SILENCE && sample(0x80, n) != SILENCE));
}
