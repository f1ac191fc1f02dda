//! Issue 19's timeline reproductions (DESIGN §11 "RTP as real networks deliver it"): the file's
//! timeline is the sender's, whatever the network does to the packets. Each call is built so
//! its answer is known: every sample the sender sends carries its own position (mod 251, never
//! the silence byte), so the output shows exactly which samples arrived, which were concealed,
//! and where a digit landed. Calls through a real `Recorder` are read back with sox.

use callrec::{Codec, Engine, EngineConfig, EventKind, Reason, Recorder};
use callrec_serve::ingest::RecorderSink;
use callrec_serve::playout::Sink;
use callrec_serve::stream::{Accepted, Counters, RtpStream, RtpTotals, StreamConfig, StreamStats};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const SILENCE: u8 = 0xD5;
const PT: u8 = 8;
const EVENT_PT: u8 = 101;
const SSRC: u32 = 0x0C0F_FEE0;
/// RTP timestamps wrap during every call.
const TS0: u32 = 0xFFFF_0000;
const SEQ0: u16 = 65_000;

#[derive(Default)]
struct Tape {
    audio: Vec<u8>,
    /// (position in `audio` when the digit was released, digit)
    digits: Vec<(usize, char)>,
}

impl Sink for Tape {
    fn audio(&mut self, audio: &[u8]) {
        self.audio.extend_from_slice(audio);
    }
    fn digit(&mut self, digit: char) {
        self.digits.push((self.audio.len(), digit));
    }
}

/// The byte the sender puts at sample `n` of its timeline: never the silence byte.
fn sample(n: usize) -> u8 {
    let b = (n % 251) as u8;
    if b >= SILENCE {
        b + 1
    } else {
        b
    }
}

/// The timeline the sender sent, `holes` (sample ranges) as silence.
fn expected(total: usize, holes: &[(usize, usize)]) -> Vec<u8> {
    (0..total)
        .map(|n| {
            if holes.iter().any(|&(a, b)| (a..b).contains(&n)) {
                SILENCE
            } else {
                sample(n)
            }
        })
        .collect()
}

fn rtp(pt: u8, marker: bool, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt | if marker { 0x80 } else { 0 }];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&SSRC.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// Packet `k` of a 20 ms PCMA call whose sample `n` is at timestamp `TS0 + n`.
fn audio(k: usize, seq: u16) -> Vec<u8> {
    let payload: Vec<u8> = (k * 160..k * 160 + 160).map(sample).collect();
    rtp(PT, k == 0, seq, TS0.wrapping_add(k as u32 * 160), &payload)
}

/// An RFC 4733 packet: `event` pressed at sample `start`, lasting `duration` so far.
fn event(seq: u16, start: usize, event: u8, end: bool, duration: u16, marker: bool) -> Vec<u8> {
    let d = duration.to_be_bytes();
    let payload = [event, if end { 0x80 } else { 0 } | 10, d[0], d[1]];
    rtp(
        EVENT_PT,
        marker,
        seq,
        TS0.wrapping_add(start as u32),
        &payload,
    )
}

fn stream() -> RtpStream {
    RtpStream::new(StreamConfig {
        codec: Codec::Alaw,
        payload_type: PT,
        telephone_event_payload_type: Some(EVENT_PT),
        window_samples: 480,
    })
}

fn from() -> SocketAddr {
    "127.0.0.1:5004".parse().unwrap()
}

struct Stats {
    ours: StreamStats,
    total: StreamStats,
}

impl Stats {
    fn new() -> Stats {
        Stats {
            ours: StreamStats::default(),
            total: StreamStats::default(),
        }
    }
    fn c(&self) -> Counters<'_> {
        Counters {
            stream: &self.ours,
            total: &self.total,
        }
    }
    /// A counter's value, the same in the stream's stats and the totals.
    fn n(&self, field: fn(&StreamStats) -> &AtomicU64) -> u64 {
        let v = field(&self.ours).load(Ordering::Relaxed);
        assert_eq!(v, field(&self.total).load(Ordering::Relaxed), "total");
        v
    }
}

/// Feeds the datagrams to a fresh stream into a tape, then ends the call.
fn run(datagrams: &[Vec<u8>]) -> (Tape, Stats) {
    let mut s = stream();
    let stats = Stats::new();
    let mut tape = Tape::default();
    for d in datagrams {
        assert_eq!(s.datagram(from(), d, &mut tape, stats.c()), Accepted::Yes);
    }
    s.finish(&mut tape, stats.c());
    (tape, stats)
}

/// Packets `0..n` in order, with `extra` inserted after packet `after` (each `(after, datagram)`).
fn call(n: usize, extra: &[(usize, Vec<u8>)]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for k in 0..n {
        out.push(audio(k, SEQ0.wrapping_add(k as u16)));
        for (after, d) in extra {
            if *after == k {
                out.push(d.clone());
            }
        }
    }
    out
}

#[test]
fn a_duplicate_arriving_1_8_s_late_leaves_a_5_s_call_5_s() {
    // Reproduction 1: a copy of packet 60 arrives 1.8 s (90 packets) after it.
    let (tape, st) = run(&call(250, &[(150, audio(60, SEQ0.wrapping_add(60)))]));
    assert_eq!(tape.audio.len(), 40_000, "5.0 s");
    assert_eq!(tape.audio, expected(40_000, &[]));
    assert_eq!(st.n(|s| &s.packets), 251);
    assert_eq!(st.n(|s| &s.packets_duplicate), 1);
    assert_eq!(st.n(|s| &s.packets_late), 0);
    assert_eq!(st.n(|s| &s.packets_lost), 0);
    assert_eq!(st.n(|s| &s.timestamp_jumps), 0);
    assert_eq!(st.n(|s| &s.samples), 40_000);
    assert_eq!(st.n(|s| &s.samples_concealed), 0);
}

#[test]
fn a_packet_arriving_1_8_s_late_is_dropped_and_counted_late() {
    // Packet 60 itself (not a copy) held back 1.8 s: its time was released as silence.
    let mut datagrams = call(250, &[(150, audio(60, SEQ0.wrapping_add(60)))]);
    datagrams.remove(60);
    let (tape, st) = run(&datagrams);
    assert_eq!(tape.audio, expected(40_000, &[(60 * 160, 61 * 160)]));
    assert_eq!(st.n(|s| &s.packets_late), 1);
    assert_eq!(st.n(|s| &s.packets_lost), 0, "it arrived: late, not lost");
    assert_eq!(st.n(|s| &s.packets_reordered), 0, "not in time");
    assert_eq!(st.n(|s| &s.packets_duplicate), 0);
    assert_eq!(st.n(|s| &s.timestamp_jumps), 0);
    assert_eq!(st.n(|s| &s.samples), 40_000);
    assert_eq!(st.n(|s| &s.samples_concealed), 160);
}

#[test]
fn a_stale_duplicate_100_packets_back_loses_nothing() {
    // Reproduction 1: a copy of packet 100 after packet 200; and, 30 s into the call, a copy
    // of packet 5 (beyond any history: a stray number, late).
    let (tape, st) = run(&call(
        1600,
        &[
            (200, audio(100, SEQ0.wrapping_add(100))),
            (1500, audio(5, SEQ0.wrapping_add(5))),
        ],
    ));
    assert_eq!(tape.audio, expected(1600 * 160, &[]));
    assert_eq!(st.n(|s| &s.packets_lost), 0);
    assert_eq!(st.n(|s| &s.packets_duplicate), 1);
    assert_eq!(st.n(|s| &s.packets_late), 1);
    assert_eq!(st.n(|s| &s.timestamp_jumps), 0);
    assert_eq!(st.n(|s| &s.samples_concealed), 0);
}

#[test]
fn one_stray_packet_ahead_never_moves_the_timeline_and_confirmed_jumps_lose_nothing() {
    // A packet with the next sequence number but a timestamp 5 s ahead, then the call goes
    // on where it was: the stray is discarded (invalid), nothing else changes.
    let mut datagrams = Vec::new();
    let mut seq = SEQ0;
    for k in 0..200usize {
        let mut d = audio(k, seq);
        seq = seq.wrapping_add(1);
        if k == 100 {
            datagrams.push(d.clone());
            d[2..4].copy_from_slice(&seq.to_be_bytes());
            d[4..8].copy_from_slice(&TS0.wrapping_add(140 * 160).to_be_bytes());
            seq = seq.wrapping_add(1);
            datagrams.push(d.clone());
            continue;
        }
        datagrams.push(d);
    }
    let (tape, st) = run(&datagrams);
    assert_eq!(tape.audio, expected(200 * 160, &[]));
    assert_eq!(st.n(|s| &s.packets_invalid), 1);
    assert_eq!(st.n(|s| &s.packets_late), 0);
    assert_eq!(st.n(|s| &s.timestamp_jumps), 0);
    assert_eq!(st.n(|s| &s.samples_concealed), 0);

    // A sender whose clock jumps back 20 s with its numbers going on (a new timeline once the
    // packets after it confirm it), and later forward a minute: no packet of either is lost.
    let mut datagrams = Vec::new();
    for k in 0..300usize {
        let mut d = audio(k, SEQ0.wrapping_add(k as u16));
        let shift: u32 = match k {
            0..100 => 0,
            100..200 => 160_000u32.wrapping_neg(),
            _ => 480_000u32.wrapping_sub(160_000),
        };
        let ts = TS0.wrapping_add(k as u32 * 160).wrapping_add(shift);
        d[4..8].copy_from_slice(&ts.to_be_bytes());
        datagrams.push(d);
    }
    let (tape, st) = run(&datagrams);
    assert_eq!(tape.audio, expected(300 * 160, &[]));
    assert_eq!(st.n(|s| &s.timestamp_jumps), 2);
    assert_eq!(st.n(|s| &s.packets_invalid), 0);
    assert_eq!(st.n(|s| &s.packets_late), 0);
    assert_eq!(st.n(|s| &s.samples_concealed), 0);
}

/// A 10 s call with the key `event` held from `from_s` for `held_s` while audio flows: an event
/// packet after each audio packet keeps the press's start timestamp (the first with the marker),
/// then the end packet three times (the same sequence number, RFC 4733 §2.5.1.4).
fn held_key_call(from_s: f64, held_s: f64, event_code: u8) -> Vec<Vec<u8>> {
    let start = (from_s * 8000.0) as usize;
    let length = (held_s * 8000.0) as usize;
    let mut out = Vec::new();
    let mut seq = SEQ0;
    for k in 0..500usize {
        out.push(audio(k, seq));
        seq = seq.wrapping_add(1);
        let now = k * 160 + 160;
        if now > start && now <= start + length {
            let duration = (now - start) as u16;
            let end = now - start == length;
            for _ in 0..if end { 3 } else { 1 } {
                out.push(event(
                    seq,
                    start,
                    event_code,
                    end,
                    duration,
                    duration == 160,
                ));
            }
            seq = seq.wrapping_add(1);
        }
    }
    out
}

#[test]
fn a_key_held_for_seconds_is_one_digit_and_never_moves_the_timeline() {
    // Reproduction 2: a 2 s and a 1.5 s press inside a 10 s call with audio flowing.
    for (held, code, digit) in [(2.0, 5u8, '5'), (1.5, 11, '#')] {
        let (tape, st) = run(&held_key_call(3.0, held, code));
        assert_eq!(tape.audio.len(), 80_000, "10.0 s with a {held} s press");
        assert_eq!(tape.audio, expected(80_000, &[]));
        assert_eq!(tape.digits, vec![(24_000, digit)], "at the press's start");
        assert_eq!(st.n(|s| &s.digits), 1);
        assert_eq!(st.n(|s| &s.samples_concealed), 0);
        assert_eq!(st.n(|s| &s.timestamp_jumps), 0);
        assert_eq!(st.n(|s| &s.packets_late), 0);
        assert_eq!(st.n(|s| &s.packets_lost), 0);
        assert_eq!(st.n(|s| &s.samples), 80_000);
    }
}

fn engine(name: &str) -> (Engine, PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "callrec-serve-timeline-{name}-{}",
        std::process::id()
    ));
    let config = EngineConfig {
        poll_interval: Duration::from_millis(2),
        ..EngineConfig::default()
    };
    (Engine::new(&dir, config).unwrap(), dir)
}

/// The file's audio as A-law bytes, as sox reads it.
fn sox_alaw(path: &Path) -> Vec<u8> {
    let out = Command::new("sox")
        .arg(path)
        .args(["-t", "al", "-"])
        .output()
        .expect("sox runs");
    assert!(
        out.status.success(),
        "sox: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// What a call through a real recorder gave: its finished result, the file's audio, the
/// stream's counters.
struct Recorded {
    reason: Reason,
    samples: u64,
    frames_dropped: u64,
    audio: Vec<u8>,
    stats: Stats,
}

/// Sends the datagrams through a stream into a live recorder as the receive thread does: each
/// datagram, then the thread's tick (`drain`) once the writer has emptied the ring. Hangs up at
/// the end unless the recorder stopped on its own.
fn record(name: &str, options: &str, datagrams: &[Vec<u8>]) -> Recorded {
    let (engine, dir) = engine(name);
    let (mut recorder, _handle) = engine.record_json(options, Codec::Alaw).unwrap();
    let mut s = stream();
    let stats = Stats::new();
    let settle = |recorder: &Recorder| {
        // The writer (2 ms poll) drains the ring once it holds a batch (4,096 bytes): wait for
        // that, as a real call's 20 ms between packets would (a wait, not a timed assertion).
        for _ in 0..500 {
            if recorder.ring_free_bytes() >= 16_000 - 4_096 {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    for d in datagrams {
        s.datagram(from(), d, &mut RecorderSink::new(&mut recorder), stats.c());
        settle(&recorder);
        s.drain(&mut RecorderSink::new(&mut recorder), stats.c());
        settle(&recorder);
        s.drain(&mut RecorderSink::new(&mut recorder), stats.c());
    }
    s.finish(&mut RecorderSink::new(&mut recorder), stats.c());
    recorder.hangup();
    drop(recorder);
    let result = loop {
        let e = engine
            .next_event(Some(Duration::from_secs(30)))
            .expect("the recording finishes");
        if e.kind == EventKind::Finished {
            break e.result;
        }
    };
    engine.shutdown();
    let path = dir.join(result.filename.trim_start_matches('/'));
    let audio = sox_alaw(&path);
    let _ = std::fs::remove_dir_all(&dir);
    Recorded {
        reason: result.reason,
        samples: result.samples,
        frames_dropped: result.frames_dropped,
        audio,
        stats,
    }
}

#[test]
fn a_duplicate_4_s_late_does_not_stop_a_10_s_call_for_silence() {
    // Reproduction 1: with `milliseconds_max_silence: 3000`, a copy of packet 100 arriving 4 s
    // late must not stop the call with `silence` (the caller's audio after it is recorded).
    let r = record(
        "late4",
        r#"{"silence_threshold_db":-50,"milliseconds_max_silence":3000}"#,
        &call(500, &[(300, audio(100, SEQ0.wrapping_add(100)))]),
    );
    assert_eq!(r.reason, Reason::Hangup);
    assert_eq!(r.samples, 80_000, "10.0 s");
    assert_eq!(r.frames_dropped, 0);
    assert_eq!(r.audio, expected(80_000, &[]));
    assert_eq!(r.stats.n(|s| &s.packets_duplicate), 1);
    assert_eq!(r.stats.n(|s| &s.packets_lost), 0);
    assert_eq!(r.stats.n(|s| &s.samples), 80_000);
}

/// 2.5 s of audio, a `gap_samples` gap with no audio packets (sequence numbers go on;
/// `between` are the datagrams sent in it), then 2.5 s more.
fn gap_call(gap_samples: usize, between: &[Vec<u8>]) -> (Vec<Vec<u8>>, usize) {
    let mut out = Vec::new();
    let mut seq = SEQ0;
    for k in 0..125usize {
        out.push(audio(k, seq));
        seq = seq.wrapping_add(1);
    }
    for d in between {
        let mut d = d.clone();
        d[2..4].copy_from_slice(&seq.to_be_bytes());
        seq = seq.wrapping_add(1);
        out.push(d);
    }
    let skip = gap_samples / 160;
    for k in 125 + skip..250 + skip {
        out.push(audio(k, seq));
        seq = seq.wrapping_add(1);
    }
    (out, 250 * 160 + gap_samples)
}

#[test]
fn a_4_s_dtx_gap_becomes_silence_without_dropping_a_frame() {
    // Reproduction 3: a 4 s silence-suppression gap in a 9 s call, announced by RFC 3389
    // comfort noise (payload type 13) as real senders do.
    let cn = rtp(13, false, 0, TS0.wrapping_add(125 * 160), &[40]);
    let (datagrams, total) = gap_call(32_000, &[cn]);
    assert_eq!(total, 72_000, "9 s");
    let r = record(
        "dtx",
        r#"{"silence_threshold_db":-50,"milliseconds_max_silence":60000}"#,
        &datagrams,
    );
    let gap = (125 * 160, 125 * 160 + 32_000);
    assert_eq!(r.frames_dropped, 0);
    assert_eq!(r.samples, 72_000);
    assert_eq!(r.audio, expected(72_000, &[gap]));
    // `GET /v1/records/{id}` reports `samples / 8000` as its seconds: it agrees with the file.
    assert_eq!(r.stats.n(|s| &s.samples), 72_000);
    assert_eq!(r.stats.n(|s| &s.samples_concealed), 32_000);
    assert_eq!(
        r.stats.n(|s| &s.packets),
        251,
        "comfort noise is the call's"
    );
    assert_eq!(r.stats.n(|s| &s.packets_invalid), 0);
    assert_eq!(r.stats.n(|s| &s.packets_lost), 0);
    assert_eq!(r.stats.n(|s| &s.timestamp_jumps), 0);
}

#[test]
fn an_event_of_duration_65535_never_drops_a_frame() {
    // A key held 8.2 s while the phone sends no audio: the event's end packet says 65,535
    // samples (three times, one sequence number), then the audio resumes where the press ended.
    let held = 65_535usize;
    let mut datagrams = Vec::new();
    for k in 0..125usize {
        datagrams.push(audio(k, SEQ0.wrapping_add(k as u16)));
    }
    for _ in 0..3 {
        let seq = SEQ0.wrapping_add(125);
        datagrams.push(event(seq, 125 * 160, 1, true, held as u16, true));
    }
    let resume = 125 * 160 + held;
    for k in 0..125usize {
        let n = resume + k * 160;
        let payload: Vec<u8> = (n..n + 160).map(sample).collect();
        let seq = SEQ0.wrapping_add(126 + k as u16);
        datagrams.push(rtp(PT, false, seq, TS0.wrapping_add(n as u32), &payload));
    }
    let total = resume + 125 * 160;
    let r = record(
        "event65535",
        r#"{"silence_threshold_db":-50,"milliseconds_max_silence":60000,"barge_in_digits":""}"#,
        &datagrams,
    );
    assert_eq!(r.frames_dropped, 0);
    assert_eq!(r.samples, total as u64);
    assert_eq!(r.audio, expected(total, &[(125 * 160, resume)]));
    assert_eq!(r.stats.n(|s| &s.digits), 1);
    assert_eq!(r.stats.n(|s| &s.packets_duplicate), 2);
    assert_eq!(r.stats.n(|s| &s.samples_concealed), held as u64);
    assert_eq!(r.stats.n(|s| &s.packets_late), 0);
    assert_eq!(r.stats.n(|s| &s.packets_lost), 0);
}

#[test]
fn a_4_s_dtx_gap_through_a_receive_thread_drops_no_frame() {
    // Reproduction 3 on a real socket and receive thread, paced as a phone sends (20 ms packets,
    // then 4 s of nothing): the thread's tick drains the gap's silence as the ring frees.
    use callrec_serve::ingest::Timeouts;
    use callrec_serve::ingest::{Command as IngestCommand, IngestThread, Session, SessionShared};
    use std::net::UdpSocket;
    use std::sync::Arc;
    use std::time::Instant;

    let dir = std::env::temp_dir().join(format!(
        "callrec-serve-timeline-socket-{}",
        std::process::id()
    ));
    let engine = Engine::new(&dir, EngineConfig::default()).unwrap();
    let (recorder, _handle) = engine
        .record_json(
            r#"{"silence_threshold_db":-50,"milliseconds_max_silence":60000}"#,
            Codec::Alaw,
        )
        .unwrap();
    // An even RTP port with the next one bound for RTCP, as the port pool hands them out.
    let (socket, rtcp) = (0..1000)
        .find_map(|_| {
            let socket = UdpSocket::bind("127.0.0.1:0").ok()?;
            let port = socket.local_addr().ok()?.port();
            if port % 2 != 0 || port == u16::MAX {
                return None;
            }
            let rtcp = UdpSocket::bind(("127.0.0.1", port + 1)).ok()?;
            Some((socket, rtcp))
        })
        .expect("a free even port pair");
    socket.set_nonblocking(true).unwrap();
    rtcp.set_nonblocking(true).unwrap();
    let to = socket.local_addr().unwrap();
    let totals = Arc::new(RtpTotals::default());
    let (freed, _freed_rx) = crossbeam_channel::unbounded();
    let thread = IngestThread::start(
        "timeline-test".into(),
        to.port(),
        1,
        Timeouts {
            inactivity: Duration::from_secs(30),
            first_packet: Duration::from_secs(30),
        },
        totals.clone(),
        freed,
    )
    .unwrap();
    let shared = Arc::new(SessionShared::default());
    thread
        .send(IngestCommand::Start(Box::new(Session {
            socket,
            rtcp,
            port: to.port(),
            stream: stream(),
            recorder,
            shared: shared.clone(),
            record_id: "timeline".into(),
            beep: None,
            leg: None,
        })))
        .unwrap();
    let cn = rtp(13, false, 0, TS0.wrapping_add(125 * 160), &[40]);
    let (datagrams, total) = gap_call(32_000, &[cn]);
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    let start = Instant::now();
    let mut due = Duration::ZERO;
    for (i, d) in datagrams.iter().enumerate() {
        // Packet i is due at its own time (the comfort noise with the last packet before the gap).
        if i == 126 {
            due += Duration::from_secs(4);
        }
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
        sender.send_to(d, to).unwrap();
        if i != 125 {
            due += Duration::from_millis(20);
        }
    }
    // Let the thread read the last packets (a wait for a counter, not a timed assertion).
    for _ in 0..5000 {
        if shared.stats.packets.load(Ordering::Relaxed) == datagrams.len() as u64 {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    thread.send(IngestCommand::Hangup(to.port())).unwrap();
    let result = loop {
        let e = engine
            .next_event(Some(Duration::from_secs(30)))
            .expect("the recording finishes");
        if e.kind == EventKind::Finished {
            break e.result;
        }
    };
    thread.shutdown();
    engine.shutdown();
    let audio = sox_alaw(&dir.join(result.filename.trim_start_matches('/')));
    let _ = std::fs::remove_dir_all(&dir);
    let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
    assert_eq!(result.frames_dropped, 0);
    assert_eq!(result.samples, total as u64, "9.0 s");
    assert_eq!(n(&shared.stats.packets), 251);
    assert_eq!(audio, expected(total, &[(125 * 160, 125 * 160 + 32_000)]));
    // What `GET /v1/records/{id}` reports as `seconds` (samples / 8000) agrees with the file.
    assert_eq!(n(&shared.stats.samples), total as u64);
    assert_eq!(n(&shared.stats.samples_concealed), 32_000);
    assert_eq!(n(&shared.stats.packets_late), 0);
    assert_eq!(n(&shared.stats.packets_lost), 0);
}
