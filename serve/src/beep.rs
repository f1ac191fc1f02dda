//! `beep_on_start`: the record action's beep, sent back to the caller as RTP.
//!
//! The core generates the beep ([`Recorder::playout`]) and keeps the recording in its *beeping*
//! phase until the beep has been pulled in full, then for a short echo guard (DESIGN §5); this
//! module only carries it to the caller. The destination is the call's own source address, latched
//! from its valid RTP (symmetric RTP, as media servers expect from a bidirectional leg such as
//! Asterisk's ExternalMedia), once it has sent a few valid packets (`ingest::BEEP_AFTER_PACKETS`),
//! and the packets leave from the recording's own port, so they pass the same NAT bindings and
//! firewall pinholes as the call's audio. Because a UDP source address can be spoofed, the beep
//! is no amplifier: it never sends more packets, nor more bytes, than the source has sent
//! ([`BeepSender::allow`]); when it has used that allowance it waits for the source's next
//! packet. A media fork that only
//! sends (rtpengine recording, SIPREC-style forking) has nobody listening: the beep goes nowhere,
//! and the recording still starts after it.
//!
//! Packets carry the session's codec and audio payload type, 160 samples (20 ms) each, with a
//! random SSRC, starting sequence number and timestamp (RFC 3550 §5.1), the marker bit on the
//! first (RFC 3551 §4.1: the start of a talkspurt), and the last packet padded with the codec's
//! silence. They are paced in real time by the receive thread that owns the session: the thread
//! wakes at each packet's deadline (its poll timeout is cut short for it), sends every packet
//! that is due, and if it fell behind by more than [`MAX_BURST`] packets (a stalled machine), it
//! restarts the pacing from now rather than bursting a backlog the caller's jitter buffer would
//! drop. Sending is one `send_to` from a stack buffer: nothing is allocated.

use callrec::{Codec, Recorder};
use rtp_types::RtpPacketBuilder;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// Samples (and bytes of G.711) per beep packet: 20 ms.
pub const PACKET_SAMPLES: usize = 160;
/// Bytes of one beep packet: a 12-byte RTP header and its G.711 samples.
pub const PACKET_BYTES: usize = 12 + PACKET_SAMPLES;
/// The time one packet lasts.
pub const PACKET_INTERVAL: Duration = Duration::from_millis(20);
/// The most packets sent at once to catch up after a late wake; further behind, pacing restarts.
pub const MAX_BURST: u32 = 3;

/// What one call to [`BeepSender::send_due`] left to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BeepState {
    /// More packets follow; the next is due at this instant.
    NextAt(Instant),
    /// The beep has been sent in full (or the recording stopped).
    Done,
    /// The next packet would send more than the source has sent: it waits for the source's
    /// next packet ([`BeepSender::allow`]).
    Allowance,
}

/// One recording's beep on its way to the caller.
#[derive(Debug)]
pub struct BeepSender {
    payload_type: u8,
    silence: u8,
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
    next_due: Option<Instant>,
    sent: u64,
    send_errors: u64,
    /// Packets and bytes the source has sent: the most the beep may send.
    allowed_packets: u64,
    allowed_bytes: u64,
    /// Packets and bytes the beep has used of that (sent or failed).
    used_packets: u64,
    used_bytes: u64,
}

impl BeepSender {
    /// A sender for a session of `codec` on `payload_type`, with random RTP identifiers
    /// (control side: reads the OS random source).
    pub fn new(codec: Codec, payload_type: u8) -> BeepSender {
        let mut random = [0u8; 10];
        getrandom::fill(&mut random).expect("the OS random source works");
        BeepSender {
            payload_type,
            silence: codec.silence(),
            ssrc: u32::from_be_bytes([random[0], random[1], random[2], random[3]]),
            sequence: u16::from_be_bytes([random[4], random[5]]),
            timestamp: u32::from_be_bytes([random[6], random[7], random[8], random[9]]),
            next_due: None,
            sent: 0,
            send_errors: 0,
            allowed_packets: 0,
            allowed_bytes: 0,
            used_packets: 0,
            used_bytes: 0,
        }
    }

    /// The source sent `packets` more packets of `bytes` bytes: the beep may send as much.
    pub fn allow(&mut self, packets: u64, bytes: u64) {
        self.allowed_packets += packets;
        self.allowed_bytes += bytes;
    }

    /// The SSRC the beep is sent with.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Packets sent so far.
    pub fn packets_sent(&self) -> u64 {
        self.sent
    }

    /// Packets the socket refused (e.g. the caller's port unreachable); they are not retried.
    pub fn send_errors(&self) -> u64 {
        self.send_errors
    }

    /// Sends every beep packet due at `now` from `socket` to `to`, pulling each from `recorder`,
    /// as far as the allowance goes. The first call starts the beep (its first packet goes at
    /// once). Real-time safe apart from the `send_to` itself: no allocation, no lock.
    pub fn send_due(
        &mut self,
        now: Instant,
        recorder: &mut Recorder,
        socket: &UdpSocket,
        to: SocketAddr,
    ) -> BeepState {
        let mut due = *self.next_due.get_or_insert(now);
        if now.saturating_duration_since(due) > PACKET_INTERVAL * MAX_BURST {
            due = now;
        }
        while due <= now {
            if self.used_packets >= self.allowed_packets
                || self.used_bytes + PACKET_BYTES as u64 > self.allowed_bytes
            {
                self.next_due = Some(due);
                return BeepState::Allowance;
            }
            let mut audio = [self.silence; PACKET_SAMPLES];
            let n = recorder.playout(&mut audio);
            if n == 0 {
                return BeepState::Done;
            }
            self.send(&audio, socket, to);
            due += PACKET_INTERVAL;
            if n < PACKET_SAMPLES {
                // The beep ended inside this packet (its tail is the codec's silence).
                return BeepState::Done;
            }
        }
        self.next_due = Some(due);
        BeepState::NextAt(due)
    }

    fn send(&mut self, audio: &[u8; PACKET_SAMPLES], socket: &UdpSocket, to: SocketAddr) {
        let mut packet = [0u8; PACKET_BYTES];
        let built = RtpPacketBuilder::<&[u8], &[u8]>::new()
            .payload_type(self.payload_type)
            .marker_bit(self.sent == 0)
            .sequence_number(self.sequence)
            .timestamp(self.timestamp)
            .ssrc(self.ssrc)
            .payload(audio.as_slice())
            .write_into(&mut packet);
        self.used_packets += 1;
        self.used_bytes += PACKET_BYTES as u64;
        // A 12-byte header, no CSRCs or extension, a 7-bit payload type: this cannot fail.
        let Ok(len) = built else {
            self.send_errors += 1;
            return;
        };
        match socket.send_to(&packet[..len], to) {
            Ok(_) => self.sent += 1,
            // A full socket buffer or an ICMP error from an earlier packet: this packet is lost,
            // as on any RTP path; the timeline goes on.
            Err(_) => self.send_errors += 1,
        }
        self.sequence = self.sequence.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(PACKET_SAMPLES as u32);
    }
}
