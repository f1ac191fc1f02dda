//! `callrec serve`'s RTP receive path: datagrams from two source addresses through the
//! `rtp-types` parse, the source/SSRC/payload-type checks, sequence counting, RFC 4733 presses
//! and the jitter window, into a checking sink. Never a panic, and the counters agree with what
//! the sink was given: every released sample counted once, concealment within it, pushes
//! within the recorder's bound, every counted press delivered exactly once as a DTMF digit.
//!
//! Input: a run of packets. Each starts with a control byte: high bit set, a raw datagram of
//! the next byte's length (whatever it is); clear, an RTP packet built from the next fields
//! (sequence number, timestamp, payload type, marker, SSRC, payload length and bytes), so
//! most inputs reach the window rather than stopping at the parser.
#![no_main]
use callrec::recorder::MAX_PUSH_BYTES;
use callrec::Codec;
use callrec_serve::playout::Sink;
use callrec_serve::stream::{Counters, RtpStream, StreamConfig, StreamStats};
use libfuzzer_sys::fuzz_target;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

#[derive(Default)]
struct Checker {
    samples: u64,
    digits: u64,
}

impl Sink for Checker {
    fn audio(&mut self, audio: &[u8]) {
        assert!(!audio.is_empty(), "an empty push");
        assert!(
            audio.len() <= MAX_PUSH_BYTES,
            "a push of {} bytes",
            audio.len()
        );
        self.samples += audio.len() as u64;
    }

    fn digit(&mut self, digit: char) {
        assert!(callrec::options::is_dtmf_digit(digit), "digit {digit:?}");
        self.digits += 1;
    }
}

/// Reads bytes off the front of the input; zeros once it runs out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        let (head, tail) = self.0.split_at(n.min(self.0.len()));
        self.0 = tail;
        head
    }

    fn byte(&mut self) -> u8 {
        self.take(1).first().copied().unwrap_or(0)
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }

    fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let config = StreamConfig {
        codec: if input.byte() & 1 == 0 {
            Codec::Alaw
        } else {
            Codec::Ulaw
        },
        payload_type: 8,
        telephone_event_payload_type: Some(101),
        window_samples: u32::from(input.u16() % 2401),
    };
    let mut stream = RtpStream::new(config);
    let (own, total) = (StreamStats::default(), StreamStats::default());
    let stats = Counters {
        stream: &own,
        total: &total,
    };
    let mut sink = Checker::default();
    let sources: [SocketAddr; 2] = [
        "127.0.0.1:4000".parse().unwrap(),
        "127.0.0.1:4002".parse().unwrap(),
    ];
    let mut packet = [0u8; 12 + 1500];
    while !input.0.is_empty() {
        let control = input.byte();
        let from = sources[usize::from(control & 1)];
        let datagram: &[u8] = if control & 0x80 != 0 {
            let n = usize::from(input.byte());
            input.take(n)
        } else {
            let pt = match (control >> 1) & 3 {
                0 | 1 => 8,
                2 => 101,
                _ => input.byte() & 0x7f,
            };
            let marker = control & 0x08 != 0;
            let ssrc = if control & 0x10 != 0 { 0x5eed } else { 0xca11 };
            packet[0] = 0x80;
            packet[1] = pt | if marker { 0x80 } else { 0 };
            packet[2..4].copy_from_slice(&input.u16().to_be_bytes());
            packet[4..8].copy_from_slice(&input.u32().to_be_bytes());
            packet[8..12].copy_from_slice(&u32::to_be_bytes(ssrc));
            // Payload lengths up to 1,500: 0-255 from one byte, scaled by the control bits.
            let len = usize::from(input.byte()) * (1 + usize::from((control >> 5) & 3) * 2);
            let len = len.min(1500);
            let bytes = input.take(len);
            packet[12..12 + bytes.len()].copy_from_slice(bytes);
            packet[12 + bytes.len()..12 + len].fill(0xd5);
            &packet[..12 + len]
        };
        stream.datagram(from, datagram, &mut sink, stats);
        let released = own.samples.load(Ordering::Relaxed);
        assert_eq!(released, sink.samples, "samples counted vs released");
        assert!(own.samples_concealed.load(Ordering::Relaxed) <= released);
    }
    stream.finish(&mut sink, stats);
    assert_eq!(own.samples.load(Ordering::Relaxed), sink.samples);
    assert_eq!(
        own.digits.load(Ordering::Relaxed),
        sink.digits,
        "presses counted vs delivered"
    );
    assert!(own.samples_concealed.load(Ordering::Relaxed) <= sink.samples);
    // The totals moved with the stream's own counters.
    for (a, b) in [
        (&own.packets, &total.packets),
        (&own.packets_lost, &total.packets_lost),
        (&own.samples, &total.samples),
        (&own.digits, &total.digits),
        (&own.packets_foreign, &total.packets_foreign),
    ] {
        assert_eq!(a.load(Ordering::Relaxed), b.load(Ordering::Relaxed));
    }
});
