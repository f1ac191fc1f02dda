//! The receive path allocates nothing per packet: `recv_from` on a real UDP socket, RTP
//! parsing, sequence tracking, the jitter window, RFC 4733 presses and the pushes into a live
//! `Recorder`, over 100,000 packets with loss, reordering, duplicates, foreign packets, an SSRC
//! change and telephone-events; then 1,000 packets more with what real networks add (issue 19): a
//! packet 2 s late, a copy 50 packets back, a key held 2 s while audio flows, and comfort noise
//! then a 4-second gap whose silence is drained into the recorder as its ring frees (the
//! receive thread's tick); then a 5-second `beep_on_start` beep sent back as 250 RTP packets
//! (`BeepSender`: playout, RTP header, `send_to`); then a two-leg call whose other party is
//! moved on by the tick and then placed by arrival. A counting global allocator counts this
//! thread's allocations.
//! One test in this binary so nothing else allocates alongside it.

use callrec::{Codec, Engine, EngineConfig};
use callrec_serve::beep::{BeepSender, BeepState, PACKET_INTERVAL};
use callrec_serve::ingest::RecorderSink;
use callrec_serve::stream::{Counters, RtpStream, StreamConfig, StreamStats};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::UdpSocket;
use std::sync::atomic::Ordering;

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static THIS_THREAD: Cell<u64> = const { Cell::new(0) };
}

fn note() {
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let _ = THIS_THREAD.try_with(|n| n.set(n.get() + 1));
        }
    });
}

// SAFETY: forwards every call unchanged to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn header(pt: u8, marker: bool, seq: u16, ts: u32, ssrc: u32) -> [u8; 12] {
    let mut h = [0u8; 12];
    h[0] = 0x80;
    h[1] = pt | if marker { 0x80 } else { 0 };
    h[2..4].copy_from_slice(&seq.to_be_bytes());
    h[4..8].copy_from_slice(&ts.to_be_bytes());
    h[8..12].copy_from_slice(&ssrc.to_be_bytes());
    h
}

#[test]
fn the_receive_path_allocates_nothing_per_packet() {
    // Removed on drop, whether the test passes or panics.
    let dir = tempfile::Builder::new()
        .prefix("callrec-serve-noalloc-")
        .tempdir()
        .unwrap();
    // A writer that wakes every millisecond keeps up with a sender faster than real time.
    let config = EngineConfig {
        poll_interval: std::time::Duration::from_millis(1),
        ..EngineConfig::default()
    };
    let engine = Engine::new(dir.path().join("store"), config).unwrap();
    // Never stops on its own: 30 minutes, no silence stop, no barge-in digit.
    let (mut recorder, _handle) = engine
        .record_json(
            r#"{"seconds_max_duration":1800,"milliseconds_max_silence":1800000,"milliseconds_max_initial_silence":1800000,"barge_in_digits":""}"#,
            Codec::Alaw,
        )
        .unwrap();
    let mut stream = RtpStream::new(StreamConfig {
        codec: Codec::Alaw,
        payload_type: 8,
        telephone_event_payload_type: Some(101),
        window_samples: 480,
    });
    let (ours, total) = (StreamStats::default(), StreamStats::default());
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = receiver.local_addr().unwrap();
    let mut buf = [0u8; 2048];
    let mut seq = 0u16;
    let mut held: Option<[u8; 172]> = None;
    let mut receive = |stream: &mut RtpStream, recorder: &mut callrec::Recorder| {
        let (n, from) = receiver.recv_from(&mut buf).unwrap();
        let c = Counters {
            stream: &ours,
            total: &total,
        };
        stream.datagram(from, &buf[..n], &mut RecorderSink::new(recorder), c);
    };

    // The beep's recorder, sender and caller (set up on the control side, before counting).
    let (mut beeping, _beep_handle) = engine
        .record_json(
            r#"{"beep_on_start":true,"beep_milliseconds":5000}"#,
            Codec::Alaw,
        )
        .unwrap();
    let mut beep = BeepSender::new(Codec::Alaw, 8);
    let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
    let caller_address = caller.local_addr().unwrap();
    caller.set_nonblocking(true).unwrap();
    let beep_start = std::time::Instant::now();

    // The two legs of a call, and their streams (control side).
    let (mut caller_leg, mut other_leg) = engine
        .record_call_json(
            r#"{"seconds_max_duration":1800,"milliseconds_max_silence":1800000,"milliseconds_max_initial_silence":1800000,"barge_in_digits":""}"#,
            Codec::Alaw,
        )
        .unwrap();
    let new_stream = || {
        RtpStream::new(StreamConfig {
            codec: Codec::Alaw,
            payload_type: 8,
            telephone_event_payload_type: Some(101),
            window_samples: 480,
        })
    };
    let (mut leg_a, mut leg_b) = (new_stream(), new_stream());

    COUNTING.with(|c| c.set(true));
    for k in 0u32..100_000 {
        let ssrc = if k < 50_000 { 0x1234 } else { 0x5678 };
        let ts = k.wrapping_mul(160);
        let mut packet = [(k % 200) as u8; 172];
        packet[..12].copy_from_slice(&header(8, false, seq, ts, ssrc));
        seq = seq.wrapping_add(1);
        match k % 50 {
            7 => continue, // lost
            11 => {
                held = Some(packet); // overtaken by the next one
                continue;
            }
            12 => {
                sender.send_to(&packet, to).unwrap();
                receive(&mut stream, &mut recorder);
                packet = held.take().unwrap();
            }
            20 => {
                // This audio twice, then a press of '3' (marker) in its own packet.
                for _ in 0..2 {
                    sender.send_to(&packet, to).unwrap();
                    receive(&mut stream, &mut recorder);
                }
                let mut e = [0u8; 16];
                e[..12].copy_from_slice(&header(101, true, seq, ts, ssrc));
                seq = seq.wrapping_add(1);
                e[12..].copy_from_slice(&[3, 10, 0, 160]);
                sender.send_to(&e, to).unwrap();
                receive(&mut stream, &mut recorder);
                continue;
            }
            30 if k % 1000 == 30 => {
                stranger.send_to(&packet, to).unwrap();
                receive(&mut stream, &mut recorder);
            }
            _ => {}
        }
        sender.send_to(&packet, to).unwrap();
        receive(&mut stream, &mut recorder);
        // Keep pace with the writer so the ring never fills (a full ring drops, it does not
        // allocate, but the recording should be whole).
        while recorder.ring_free_bytes() < 8000 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    // What real networks add, on the second SSRC (its numbers and clock go on).
    let mut delayed: Option<[u8; 172]> = None;
    let mut old: Option<[u8; 172]> = None;
    let press = 100_400u32.wrapping_mul(160);
    for k in 100_000u32..101_000 {
        let ssrc = 0x5678;
        let ts = k.wrapping_mul(160);
        if (100_600..100_800).contains(&k) {
            continue; // the gap: no packets, no numbers, the clock goes on
        }
        let mut packet = [(k % 200) as u8; 172];
        packet[..12].copy_from_slice(&header(8, false, seq, ts, ssrc));
        seq = seq.wrapping_add(1);
        match k {
            100_100 => {
                delayed = Some(packet); // arrives 100 packets (2 s) late
                continue;
            }
            100_250 => old = Some(packet),
            _ => {}
        }
        sender.send_to(&packet, to).unwrap();
        receive(&mut stream, &mut recorder);
        match k {
            100_200 => {
                sender.send_to(&delayed.take().unwrap(), to).unwrap();
                receive(&mut stream, &mut recorder);
            }
            100_300 => {
                sender.send_to(&old.take().unwrap(), to).unwrap();
                receive(&mut stream, &mut recorder);
            }
            100_400..=100_499 => {
                // '7' held 2 s: every update keeps the press's start; the end packet 3 times.
                let duration = ((k - 100_400 + 1) * 160) as u16;
                let end = k == 100_499;
                let mut e = [0u8; 16];
                e[..12].copy_from_slice(&header(101, k == 100_400, seq, press, ssrc));
                seq = seq.wrapping_add(1);
                e[12..].copy_from_slice(&[7, if end { 0x8a } else { 10 }, 0, 0]);
                e[14..].copy_from_slice(&duration.to_be_bytes());
                for _ in 0..if end { 3 } else { 1 } {
                    sender.send_to(&e, to).unwrap();
                    receive(&mut stream, &mut recorder);
                }
            }
            100_599 => {
                // Comfort noise announces the gap.
                let mut cn = [0u8; 13];
                cn[..12].copy_from_slice(&header(13, false, seq, ts + 160, ssrc));
                seq = seq.wrapping_add(1);
                cn[12] = 50;
                sender.send_to(&cn, to).unwrap();
                receive(&mut stream, &mut recorder);
            }
            _ => {}
        }
        // The receive thread's tick: the gap's silence flows as the writer frees the ring.
        while recorder.ring_free_bytes() < 8000 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let c = Counters {
            stream: &ours,
            total: &total,
        };
        stream.drain(&mut RecorderSink::new(&mut recorder), c);
    }
    let c = Counters {
        stream: &ours,
        total: &total,
    };
    stream.finish(&mut RecorderSink::new(&mut recorder), c);
    let mut wake = 0;
    loop {
        // The caller's 20 ms packet that allows this beep packet back (no amplifier).
        beep.allow(1, 172);
        let state = beep.send_due(
            beep_start + PACKET_INTERVAL * wake,
            &mut beeping,
            &receiver,
            caller_address,
        );
        if !matches!(state, BeepState::NextAt(_)) {
            break;
        }
        wake += 1;
        // Loopback delivers at once; drain the caller's buffer as the caller would.
        while caller.recv_from(&mut buf).is_ok() {}
    }
    // A two-leg call (DESIGN §13) as the receive thread runs it: the caller talks; the other
    // party is moved on as the tick does (its window detached, an empty `push_at` to the wall
    // clock), then its first talkspurt is placed by arrival (`RecorderSink::placing`).
    let (ours2, total2) = (StreamStats::default(), StreamStats::default());
    let c2 = || Counters {
        stream: &ours2,
        total: &total2,
    };
    let (mut place_a, mut place_b) = (Some(0u64), None::<u64>);
    for k in 0u32..500 {
        let mut packet = [(k % 200) as u8 | 1; 172];
        packet[..12].copy_from_slice(&header(8, false, k as u16, k * 160, 0xa));
        sender.send_to(&packet, to).unwrap();
        let (n, from) = receiver.recv_from(&mut buf).unwrap();
        let mut sink = RecorderSink::placing(&mut caller_leg, &mut place_a);
        leg_a.datagram(from, &buf[..n], &mut sink, c2());
        let now = u64::from(k) * 160;
        if k < 200 {
            // Quiet: moved on.
            leg_b.detach(
                &mut RecorderSink::placing(&mut other_leg, &mut place_b),
                c2(),
            );
            if now > other_leg.position().unwrap() {
                let _ = other_leg.push_at(now, &[]);
            }
        } else {
            if k == 200 {
                place_b = Some(now);
            }
            let mut packet = [(k % 100) as u8 | 1; 172];
            packet[..12].copy_from_slice(&header(8, false, k as u16, k * 160, 0xb));
            sender.send_to(&packet, to).unwrap();
            let (n, from) = receiver.recv_from(&mut buf).unwrap();
            let mut sink = RecorderSink::placing(&mut other_leg, &mut place_b);
            leg_b.datagram(from, &buf[..n], &mut sink, c2());
        }
        while caller_leg.ring_free_bytes() < 8000 || other_leg.ring_free_bytes() < 8000 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    COUNTING.with(|c| c.set(false));
    let allocations = THIS_THREAD.with(|n| n.get());
    assert_eq!(
        allocations, 0,
        "the receive path allocated {allocations} times"
    );

    // The run did what it says (so the zero above is about the real path).
    let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    assert_eq!(n(&ours.packets_lost), 2000, "one lost in every 50");
    assert_eq!(
        n(&ours.samples_concealed),
        2000 * 160 + 160 + 200 * 160,
        "the lost, the late one and the gap"
    );
    assert_eq!(n(&ours.packets_late), 1);
    assert_eq!(n(&ours.packets_reordered), 2000);
    assert_eq!(
        n(&ours.packets_duplicate),
        2000 + 1 + 2,
        "+ the copy, the end's repeats"
    );
    assert_eq!(n(&ours.packets_foreign), 100);
    assert_eq!(n(&ours.packets_invalid), 0);
    assert_eq!(n(&ours.digits), 2000 + 1);
    assert_eq!(n(&ours.ssrc_changes), 1);
    assert_eq!(n(&ours.timestamp_jumps), 0);
    assert_eq!(n(&ours.samples), 101_000 * 160);
    assert_eq!(
        engine.metrics().frames_dropped,
        0,
        "the gap dropped no frame"
    );
    assert_eq!(beep.packets_sent(), 250, "5 s of beep in 20 ms packets");
    assert_eq!(beep.send_errors(), 0);
    assert_eq!(n(&ours2.packets), 800, "both legs' packets were taken");
    assert_eq!(
        caller_leg.position(),
        Some(500 * 160 - 480),
        "the caller is a window behind"
    );
    assert_eq!(
        other_leg.position(),
        Some(500 * 160 - 480),
        "placed by arrival, level with it"
    );
    drop((caller_leg, other_leg));
    drop(beeping);
    recorder.hangup();
    drop(recorder);
    engine.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}
