//! The RTP receive logic against timelines whose answer is known by construction: every sample
//! of the sent call carries its own position (mod 251, never the silence byte), so the output
//! shows exactly which samples arrived, which were concealed, and where each digit landed.

use callrec::Codec;
use callrec_serve::playout::{Placed, Playout, Sink};
use callrec_serve::sequence::{SeqClass, SequenceTracker};
use callrec_serve::stream::{Accepted, Counters, RtpStream, StreamConfig, StreamStats};
use callrec_serve::telephone_event::{PressTracker, TelephoneEvent};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

const SILENCE: u8 = 0xD5;

#[derive(Default)]
struct Tape {
    audio: Vec<u8>,
    /// (position in `audio` when the digit was released, digit)
    digits: Vec<(usize, char)>,
    largest_push: usize,
}

impl Sink for Tape {
    fn audio(&mut self, audio: &[u8]) {
        self.largest_push = self.largest_push.max(audio.len());
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

fn payload(start: usize, len: usize) -> Vec<u8> {
    (start..start + len).map(sample).collect()
}

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

const TS0: u32 = 0xFFFF_F000; // wraps during every test

#[test]
fn in_order_20ms_is_passed_through_exactly() {
    let mut p = Playout::new(480, SILENCE);
    let mut tape = Tape::default();
    for k in 0..100 {
        let ts = TS0.wrapping_add(k * 160);
        assert_eq!(
            p.audio(ts, &payload(k as usize * 160, 160), &mut tape),
            Placed::Placed
        );
    }
    // The window holds the last 480 samples until the call ends.
    assert_eq!(tape.audio.len(), 100 * 160 - 480);
    p.flush(&mut tape);
    assert_eq!(tape.audio, expected(16_000, &[]));
    assert_eq!(p.concealed_samples(), 0);
    assert_eq!(p.released_samples(), 16_000);
}

#[test]
fn any_packetization_from_10_to_60_ms() {
    for len in [80usize, 160, 240, 320, 400, 480] {
        let mut p = Playout::new(480, SILENCE);
        let mut tape = Tape::default();
        let packets = 7 * 8000 / len;
        for k in 0..packets {
            let ts = TS0.wrapping_add((k * len) as u32);
            p.audio(ts, &payload(k * len, len), &mut tape);
        }
        p.flush(&mut tape);
        assert_eq!(
            tape.audio,
            expected(packets * len, &[]),
            "{len}-sample packets"
        );
    }
}

#[test]
fn lost_packets_become_silence_of_their_exact_length() {
    let mut p = Playout::new(480, SILENCE);
    let mut tape = Tape::default();
    let lost = [3usize, 17, 18, 40];
    for k in (0..50).filter(|k| !lost.contains(k)) {
        p.audio(
            TS0.wrapping_add(k as u32 * 160),
            &payload(k * 160, 160),
            &mut tape,
        );
    }
    p.flush(&mut tape);
    let holes: Vec<_> = lost.iter().map(|&k| (k * 160, k * 160 + 160)).collect();
    assert_eq!(tape.audio, expected(50 * 160, &holes));
    assert_eq!(p.concealed_samples(), 4 * 160);
}

#[test]
fn reordering_within_the_window_is_repaired_and_beyond_it_is_late() {
    let mut p = Playout::new(480, SILENCE);
    let mut tape = Tape::default();
    // Packets 10 and 11 swapped (one packet late): repaired.
    let mut order: Vec<usize> = (0..40).collect();
    order.swap(10, 11);
    // Packet 30 arrives 5 packets (100 ms) late: beyond the 60 ms window.
    let late = order.iter().position(|&k| k == 30).unwrap();
    let k30 = order.remove(late);
    order.insert(late + 5, k30);
    let mut outcomes = Vec::new();
    for &k in &order {
        outcomes.push((
            k,
            p.audio(
                TS0.wrapping_add(k as u32 * 160),
                &payload(k * 160, 160),
                &mut tape,
            ),
        ));
    }
    p.flush(&mut tape);
    assert_eq!(tape.audio, expected(40 * 160, &[(30 * 160, 31 * 160)]));
    for (k, outcome) in outcomes {
        let want = if k == 30 {
            Placed::Late
        } else {
            Placed::Placed
        };
        assert_eq!(outcome, want, "packet {k}");
    }
}

#[test]
fn duplicates_change_nothing() {
    let mut p = Playout::new(480, SILENCE);
    let mut tape = Tape::default();
    for k in 0..20usize {
        p.audio(
            TS0.wrapping_add(k as u32 * 160),
            &payload(k * 160, 160),
            &mut tape,
        );
        if k == 5 {
            let again = p.audio(
                TS0.wrapping_add(k as u32 * 160),
                &payload(k * 160, 160),
                &mut tape,
            );
            assert_eq!(again, Placed::Duplicate);
        }
    }
    p.flush(&mut tape);
    assert_eq!(tape.audio, expected(20 * 160, &[]));
}

#[test]
fn a_timestamp_gap_is_filled_and_a_huge_jump_starts_a_new_timeline() {
    let mut p = Playout::new(480, SILENCE);
    let mut tape = Tape::default();
    // 1 s, then the sender stops for 300 ms (silence suppression: timestamps jump by 2,400),
    // then 1 s more.
    for k in 0..50usize {
        p.audio(
            TS0.wrapping_add(k as u32 * 160),
            &payload(k * 160, 160),
            &mut tape,
        );
    }
    for k in 65..115usize {
        p.audio(
            TS0.wrapping_add(k as u32 * 160),
            &payload(k * 160, 160),
            &mut tape,
        );
    }
    // Then a jump of a minute (a sender restarting its clock): no minute of silence. The jump
    // is held until the packets after it confirm it, then nothing of it is lost.
    let jump = TS0.wrapping_add(115 * 160 + 480_000);
    let outcomes: Vec<Placed> = (115..120usize)
        .map(|k| {
            p.audio(
                jump.wrapping_add((k - 115) as u32 * 160),
                &payload(k * 160, 160),
                &mut tape,
            )
        })
        .collect();
    use Placed::{Held, NewTimeline};
    assert_eq!(
        outcomes,
        [Held, Held, NewTimeline, Placed::Placed, Placed::Placed]
    );
    p.flush(&mut tape);
    assert_eq!(tape.audio, expected(120 * 160, &[(50 * 160, 65 * 160)]));
    assert_eq!(p.concealed_samples(), 2400);
    assert!(tape.largest_push <= callrec::recorder::MAX_PUSH_BYTES);
}

#[test]
fn a_long_gap_is_filled_in_pushes_of_at_most_one_second() {
    let mut p = Playout::new(480, SILENCE);
    let mut tape = Tape::default();
    p.audio(TS0, &payload(0, 160), &mut tape);
    // 9 s of nothing, then audio again (three packets: a jump is believed once confirmed).
    let k = 9 * 50 + 1;
    for k in k..k + 3 {
        p.audio(
            TS0.wrapping_add(k as u32 * 160),
            &payload(k * 160, 160),
            &mut tape,
        );
    }
    p.flush(&mut tape);
    assert_eq!(tape.audio, expected((k + 3) * 160, &[(160, k * 160)]));
    assert!(tape.largest_push <= callrec::recorder::MAX_PUSH_BYTES);
}

#[test]
fn telephone_event_payload_and_digits() {
    let e = TelephoneEvent::parse(&[11, 0x8a, 0x08, 0xc0]).unwrap();
    assert_eq!(
        e,
        TelephoneEvent {
            event: 11,
            end: true,
            volume: 10,
            duration: 2240
        }
    );
    assert_eq!(e.digit(), Some('#'));
    let digits: String = (0..16)
        .map(|n| {
            TelephoneEvent {
                event: n,
                end: false,
                volume: 0,
                duration: 0,
            }
            .digit()
            .unwrap()
        })
        .collect();
    assert_eq!(digits, "0123456789*#ABCD");
    assert_eq!(
        TelephoneEvent {
            event: 32,
            end: false,
            volume: 0,
            duration: 0
        }
        .digit(),
        None
    );
    assert_eq!(TelephoneEvent::parse(&[1, 2, 3]), None);
}

#[test]
fn one_press_is_one_digit() {
    let mut t = PressTracker::default();
    let ev = |event: u8, end: bool, duration: u16| TelephoneEvent {
        event,
        end,
        volume: 10,
        duration,
    };
    // Marker, updates, three end packets: one press.
    assert!(t.packet(1000, true, &ev(5, false, 160)));
    assert!(!t.packet(1000, false, &ev(5, false, 320)));
    for _ in 0..3 {
        assert!(!t.packet(1000, false, &ev(5, true, 480)));
    }
    // The same key again, its marker packet lost: a new press (the last one ended).
    assert!(t.packet(3000, false, &ev(5, false, 160)));
    // A long press's next segment (new timestamp, no marker, not ended): the same press.
    assert!(!t.packet(3000 + 65535, false, &ev(5, false, 160)));
    // Another key without an end packet in between: a new press.
    assert!(t.packet(200_000, false, &ev(7, false, 160)));
}

#[test]
fn a_digit_lands_at_its_place_in_the_timeline() {
    let mut p = Playout::new(480, SILENCE);
    let mut tape = Tape::default();
    for k in 0..30usize {
        let ts = TS0.wrapping_add(k as u32 * 160);
        p.audio(ts, &payload(k * 160, 160), &mut tape);
        if k == 20 {
            // The press started at packet 19's time (its first event packet arrives a packet
            // later, within the window).
            p.event(TS0.wrapping_add(19 * 160), 800, Some('#'), &mut tape);
        }
    }
    p.flush(&mut tape);
    assert_eq!(tape.digits, vec![(19 * 160, '#')]);
    // A press whose first packet comes after its time was recorded still counts, at once.
    let mut late = Playout::new(480, SILENCE);
    let mut tape2 = Tape::default();
    for k in 0..10usize {
        late.audio(k as u32 * 160, &payload(k * 160, 160), &mut tape2);
    }
    late.event(0, 160, Some('5'), &mut tape2);
    assert_eq!(tape2.digits, vec![(10 * 160 - 480, '5')]);
    assert_eq!(tape.audio, expected(30 * 160, &[]));
}

#[test]
fn events_alone_advance_the_timeline() {
    // sipp's dtmf_2833_pound.pcap sends only telephone-events: the press must still be released.
    let mut p = Playout::new(480, SILENCE);
    let mut tape = Tape::default();
    p.event(92_640, 0, Some('#'), &mut tape);
    for d in (320..=2240).step_by(320) {
        p.event(92_640, d, None, &mut tape);
    }
    assert_eq!(tape.digits, vec![(0, '#')], "released before the call ends");
    p.flush(&mut tape);
    assert_eq!(tape.audio, vec![SILENCE; 2240]);
}

#[test]
fn sequence_numbers_count_loss_reordering_and_duplicates_across_the_wrap() {
    let mut s = SequenceTracker::default();
    assert_eq!(s.packet(65_530), SeqClass::First);
    let mut seq = 65_530u16;
    let mut sent = vec![];
    for _ in 0..20 {
        seq = seq.wrapping_add(1);
        sent.push(seq);
    }
    // Lose the 3rd and 4th, swap the 10th and 11th, repeat the 15th.
    let mut order: Vec<u16> = sent
        .iter()
        .copied()
        .enumerate()
        .filter(|&(i, _)| i != 3 && i != 4)
        .map(|(_, s)| s)
        .collect();
    order.swap(7, 8);
    order.insert(13, order[12]);
    let classes: Vec<SeqClass> = order.iter().map(|&q| s.packet(q)).collect();
    assert_eq!(
        classes
            .iter()
            .filter(|c| **c == SeqClass::Duplicate)
            .count(),
        1
    );
    assert_eq!(
        classes
            .iter()
            .filter(|c| **c == SeqClass::Reordered)
            .count(),
        1
    );
    assert_eq!(s.expected(), 21);
    assert_eq!(s.received(), 19);
    assert_eq!(s.lost(), 2);
    // A packet far behind is a stray (a stale copy): it counts for nothing...
    assert_eq!(s.packet(seq.wrapping_sub(30_000)), SeqClass::Stray);
    assert_eq!(s.lost(), 2);
    // ...unless the next packet follows it: a sender restart, not a loss of 65,000.
    assert_eq!(s.packet(seq.wrapping_sub(29_999)), SeqClass::Restart);
    assert_eq!(s.lost(), 2);
}

fn rtp(pt: u8, marker: bool, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt | if marker { 0x80 } else { 0 }];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

fn stream() -> RtpStream {
    RtpStream::new(StreamConfig {
        codec: Codec::Alaw,
        payload_type: 8,
        telephone_event_payload_type: Some(101),
        window_samples: 480,
    })
}

#[test]
fn the_stream_keeps_its_first_source_and_rides_an_ssrc_change() {
    let mut s = stream();
    let (mine, other): (SocketAddr, SocketAddr) = (
        "127.0.0.1:5004".parse().unwrap(),
        "127.0.0.1:6004".parse().unwrap(),
    );
    let (ours, total) = (StreamStats::default(), StreamStats::default());
    let c = Counters {
        stream: &ours,
        total: &total,
    };
    let mut tape = Tape::default();
    for k in 0..10usize {
        let d = rtp(
            8,
            k == 0,
            100 + k as u16,
            5000 + k as u32 * 160,
            0xAAAA,
            &payload(k * 160, 160),
        );
        assert_eq!(s.datagram(mine, &d, &mut tape, c), Accepted::Yes);
        // A second sender on the same port, with plausible packets: ignored.
        let d = rtp(
            8,
            false,
            100 + k as u16,
            5000 + k as u32 * 160,
            0xBBBB,
            &[0x11; 160],
        );
        assert_eq!(s.datagram(other, &d, &mut tape, c), Accepted::No);
    }
    // Not RTP, and a payload type the call did not negotiate: ignored.
    assert_eq!(s.datagram(mine, b"hello", &mut tape, c), Accepted::No);
    assert_eq!(
        s.datagram(
            mine,
            &rtp(0, false, 110, 6600, 0xAAAA, &[0; 160]),
            &mut tape,
            c
        ),
        Accepted::No
    );
    // The media server switches to a new SSRC with new numbering and clock: the timeline goes on.
    for k in 10..20usize {
        let d = rtp(
            8,
            k == 10,
            9000 + k as u16,
            777_000 + k as u32 * 160,
            0xCCCC,
            &payload(k * 160, 160),
        );
        s.datagram(mine, &d, &mut tape, c);
    }
    s.finish(&mut tape, c);
    assert_eq!(tape.audio, expected(20 * 160, &[]));
    for stats in [&ours, &total] {
        assert_eq!(stats.packets_foreign.load(Ordering::Relaxed), 10);
        assert_eq!(stats.packets_invalid.load(Ordering::Relaxed), 2);
        assert_eq!(stats.packets.load(Ordering::Relaxed), 20);
        assert_eq!(stats.ssrc_changes.load(Ordering::Relaxed), 1);
        assert_eq!(stats.packets_lost.load(Ordering::Relaxed), 0);
        assert_eq!(stats.samples.load(Ordering::Relaxed), 3200);
    }
}

#[test]
fn the_stream_counts_loss_and_places_rfc4733_digits() {
    let mut s = stream();
    let from: SocketAddr = "127.0.0.1:5004".parse().unwrap();
    let (ours, total) = (StreamStats::default(), StreamStats::default());
    let c = Counters {
        stream: &ours,
        total: &total,
    };
    let mut tape = Tape::default();
    let mut seq = 0u16;
    for k in 0..40usize {
        seq += 1;
        if k == 7 || k == 8 {
            continue; // lost
        }
        s.datagram(
            from,
            &rtp(8, false, seq, k as u32 * 160, 1, &payload(k * 160, 160)),
            &mut tape,
            c,
        );
        if k == 25 {
            // '#' pressed at packet 24's time: marker, one update, three ends (same seq each time
            // for the ends, as sipp's capture has them: duplicates).
            for (marker, end, dur) in [
                (true, false, 160u16),
                (false, false, 320),
                (false, true, 480),
            ] {
                seq += 1;
                let ev = [
                    11,
                    if end { 0x80 } else { 0 } | 10,
                    (dur >> 8) as u8,
                    dur as u8,
                ];
                let copies = if end { 3 } else { 1 };
                for _ in 0..copies {
                    s.datagram(from, &rtp(101, marker, seq, 24 * 160, 1, &ev), &mut tape, c);
                }
            }
        }
    }
    s.finish(&mut tape, c);
    assert_eq!(tape.digits, vec![(24 * 160, '#')]);
    assert_eq!(tape.audio, expected(40 * 160, &[(7 * 160, 9 * 160)]));
    assert_eq!(ours.packets_lost.load(Ordering::Relaxed), 2);
    assert_eq!(ours.packets_duplicate.load(Ordering::Relaxed), 2);
    assert_eq!(ours.digits.load(Ordering::Relaxed), 1);
    assert_eq!(ours.samples_concealed.load(Ordering::Relaxed), 320);
}

#[test]
fn arbitrary_datagrams_never_panic_and_keep_the_timeline_consistent() {
    // A stand-in for a fuzz target on stable: 30,000 datagrams from a fixed-seed generator,
    // half of them well-formed RTP headers with random fields (so the window, the sequence
    // tracker and the press tracker see wild jumps, wraps and events), half arbitrary bytes.
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut s = stream();
    let from: SocketAddr = "127.0.0.1:5004".parse().unwrap();
    let (ours, total) = (StreamStats::default(), StreamStats::default());
    let c = Counters {
        stream: &ours,
        total: &total,
    };
    let mut tape = Tape::default();
    let mut datagram = Vec::new();
    for _ in 0..30_000 {
        datagram.clear();
        let len = (next() % 600) as usize;
        datagram.extend((0..len).map(|_| next() as u8));
        if next() % 2 == 0 && datagram.len() >= 12 {
            datagram[0] = 0x80;
            datagram[1] = if next() % 4 == 0 { 101 } else { 8 } | (next() as u8 & 0x80);
            datagram[8..12].copy_from_slice(&[0, 0, 0, (next() % 3) as u8]);
        }
        s.datagram(from, &datagram, &mut tape, c);
    }
    s.finish(&mut tape, c);
    assert!(tape.largest_push <= callrec::recorder::MAX_PUSH_BYTES);
    assert_eq!(
        ours.samples.load(Ordering::Relaxed),
        tape.audio.len() as u64,
        "every released sample reached the sink"
    );
    assert!(ours.samples_concealed.load(Ordering::Relaxed) <= tape.audio.len() as u64);
}
