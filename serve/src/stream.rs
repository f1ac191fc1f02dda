//! One recording's RTP stream: who may send, which payload types mean what, and the counters.
//!
//! Who may send (DESIGN §11): the source the request names (`media.source`), or else the first
//! source whose packet is valid RTP of the negotiated payload types (version 2, the audio payload
//! type with audio in it, or a telephone-event), is the call's; packets from any other address
//! are ignored and counted as foreign before anything else is looked at (the cheap reject a
//! flood meets). A stray header, a wrong payload type or RTCP never latches, and the previous
//! call's source on the same port is never latched. RTCP multiplexed on the RTP port (RFC 5761:
//! packet types 200-204) is counted as RTCP and otherwise ignored. Packets are parsed with
//! `rtp-types`. The audio payload type goes to the [`Playout`] window, the telephone-event
//! payload type to the [`PressTracker`] and then the window (so a digit lands at its place in
//! the timeline). RFC 3389 comfort noise (payload type 13) is part of the call: it keeps the
//! call alive and means silence, which the next audio packet's timestamp places. A new SSRC is
//! a new sender (e.g. a media server re-INVITE or failover): the window is released and a new
//! timeline starts where the old one ended, so the file stays continuous. Within one SSRC only
//! the sender moves the timeline: a duplicate (by sequence number, up to
//! [`crate::sequence::HISTORY`] back) is ignored, a late packet is dropped, and a timestamp jump
//! is believed only once the packets after it confirm it (the window's rules). Nothing here
//! allocates per packet.

use crate::playout::{Placed, Playout, Sink};
use crate::sequence::{SeqClass, SequenceTracker};
use crate::telephone_event::{PressTracker, TelephoneEvent};
use callrec::Codec;
use rtp_types::RtpPacket;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};

/// RFC 3389 comfort noise's static payload type (RFC 3551).
pub const COMFORT_NOISE_PAYLOAD_TYPE: u8 = 13;

/// How to read one recording's RTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamConfig {
    /// The audio codec (PCMA or PCMU).
    pub codec: Codec,
    /// The audio payload type (8 for PCMA, 0 for PCMU by default).
    pub payload_type: u8,
    /// The RFC 4733 telephone-event payload type, if the call negotiated one.
    pub telephone_event_payload_type: Option<u8>,
    /// The jitter window in samples.
    pub window_samples: u32,
}

/// The only sender a record accepts (`media.source`): an address, and a port if one was named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceFilter {
    /// The sender's IP address.
    pub ip: IpAddr,
    /// The sender's UDP port (any, if not named).
    pub port: Option<u16>,
}

impl SourceFilter {
    /// True if `from` is this sender (an IPv4 sender seen on an IPv6 socket counts too).
    pub fn matches(&self, from: SocketAddr) -> bool {
        let ip = match from.ip() {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        ip == self.ip && self.port.is_none_or(|p| p == from.port())
    }
}

/// True for an RTCP packet (RFC 5761 §4: version 2, packet type 200 to 204 where RTP keeps its
/// payload type and marker bit).
pub fn is_rtcp(datagram: &[u8]) -> bool {
    datagram.len() >= 8 && datagram[0] >> 6 == 2 && (200..=204).contains(&datagram[1])
}

/// A stream's counters: written by its receive thread, read by the control API and metrics.
#[derive(Debug, Default)]
pub struct StreamStats {
    /// RTP packets accepted from the call's source (audio, events and comfort noise; late,
    /// duplicate and discarded ones included).
    pub packets: AtomicU64,
    /// Packets never received (RFC 3550: expected minus received, by sequence number; a late
    /// packet was received, a duplicate or a stray far-off number counts for nothing).
    pub packets_lost: AtomicU64,
    /// Audio packets that arrived after their time had been released to the recorder: dropped,
    /// the timeline unchanged (however late they are).
    pub packets_late: AtomicU64,
    /// Audio packets that arrived out of order but in time (placed in the window).
    pub packets_reordered: AtomicU64,
    /// Packets received again: a sequence number already seen (up to 1,024 back), or audio
    /// whose every sample was already held. Ignored.
    pub packets_duplicate: AtomicU64,
    /// Packets from a source address other than the call's (ignored).
    pub packets_foreign: AtomicU64,
    /// Packets that are not RTP or carry an unexpected payload type, and audio packets that
    /// jumped off the timeline without the packets after them confirming the jump (ignored).
    pub packets_invalid: AtomicU64,
    /// RTCP packets: on the RTCP port (RTP port + 1), or multiplexed on the RTP port (ignored).
    pub rtcp_packets: AtomicU64,
    /// Samples of the call's timeline given to the recorder.
    pub samples: AtomicU64,
    /// Samples given as silence because no packet carried them (loss, gaps, events' spans).
    pub samples_concealed: AtomicU64,
    /// Key presses received as telephone-events (one per press, however long it is held).
    pub digits: AtomicU64,
    /// Times the SSRC changed.
    pub ssrc_changes: AtomicU64,
    /// Times a confirmed timestamp jump too large to fill (over 10 s, or backwards) started a
    /// new timeline.
    pub timestamp_jumps: AtomicU64,
    /// Beep packets sent to the caller (`beep_on_start`).
    pub beep_packets_sent: AtomicU64,
}

/// The server's RTP counters, kept apart for one-leg recordings and for each leg of two-leg
/// calls (DESIGN §13): `/metrics` shows their sum and each leg's.
#[derive(Debug, Default)]
pub struct RtpTotals {
    /// The streams of one-leg recordings.
    pub single: StreamStats,
    /// The caller's (0) and the other party's (1) legs of two-leg calls.
    pub legs: [StreamStats; 2],
}

impl RtpTotals {
    /// The totals a stream of leg `leg` counts into (None: a one-leg recording).
    pub fn of(&self, leg: Option<usize>) -> &StreamStats {
        match leg {
            Some(l) => &self.legs[l.min(1)],
            None => &self.single,
        }
    }

    /// A counter summed over every stream.
    pub fn sum(&self, field: fn(&StreamStats) -> &AtomicU64) -> u64 {
        [&self.single, &self.legs[0], &self.legs[1]]
            .iter()
            .map(|s| field(s).load(Ordering::Relaxed))
            .sum()
    }
}

/// A stream's own counters and the server's totals, updated together.
#[derive(Clone, Copy, Debug)]
pub struct Counters<'a> {
    /// This stream's.
    pub stream: &'a StreamStats,
    /// The server's, over every stream.
    pub total: &'a StreamStats,
}

impl Counters<'_> {
    /// Adds `n` to a counter of the stream and of the totals.
    pub fn add(&self, field: fn(&StreamStats) -> &AtomicU64, n: u64) {
        field(self.stream).fetch_add(n, Ordering::Relaxed);
        field(self.total).fetch_add(n, Ordering::Relaxed);
    }

    /// Sets a stream's running value and moves the total by the difference (modular
    /// arithmetic makes a decrease work too: reordering can lower `lost`).
    fn set(&self, field: fn(&StreamStats) -> &AtomicU64, value: u64) {
        let before = field(self.stream).swap(value, Ordering::Relaxed);
        field(self.total).fetch_add(value.wrapping_sub(before), Ordering::Relaxed);
    }
}

/// What the receive thread should do after a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accepted {
    /// The packet was the call's (the inactivity timer restarts).
    Yes,
    /// Ignored (foreign source or not RTP for this call).
    No,
}

/// One recording's RTP receive state.
#[derive(Debug)]
pub struct RtpStream {
    config: StreamConfig,
    source: Option<SocketAddr>,
    /// Only this sender may be latched (`media.source`).
    allowed: Option<SourceFilter>,
    /// Never latched without `allowed` naming it: the previous call's source on this port.
    refused: Option<SocketAddr>,
    ssrc: Option<u32>,
    sequence: SequenceTracker,
    presses: PressTracker,
    playout: Playout,
    /// The window's discarded packets already added to `packets_invalid`.
    discarded_counted: u64,
}

impl RtpStream {
    /// A stream waiting for its first packet (allocates its window: control side).
    pub fn new(config: StreamConfig) -> RtpStream {
        RtpStream {
            config,
            source: None,
            allowed: None,
            refused: None,
            ssrc: None,
            sequence: SequenceTracker::default(),
            presses: PressTracker::default(),
            playout: Playout::new(config.window_samples, config.codec.silence()),
            discarded_counted: 0,
        }
    }

    /// Accepts only `allowed` (`media.source`) if given; otherwise never latches `refused` (the
    /// previous call's source on this port).
    pub fn accepting(
        mut self,
        allowed: Option<SourceFilter>,
        refused: Option<SocketAddr>,
    ) -> RtpStream {
        self.allowed = allowed;
        self.refused = refused.filter(|r| allowed.is_none_or(|a| !a.matches(*r)));
        self
    }

    /// True if a datagram from `from` is to be looked at: the latched source, or before
    /// latching, a sender that may be latched. The cheap early reject of a foreign flood.
    pub fn may_send(&self, from: SocketAddr) -> bool {
        match self.source {
            Some(source) => source == from,
            None => self.allowed.is_none_or(|a| a.matches(from)) && self.refused != Some(from),
        }
    }

    /// Handles one datagram from `from`, sending the timeline it releases to `sink`.
    pub fn datagram(
        &mut self,
        from: SocketAddr,
        datagram: &[u8],
        sink: &mut impl Sink,
        stats: Counters<'_>,
    ) -> Accepted {
        if !self.may_send(from) {
            stats.add(|s| &s.packets_foreign, 1);
            return Accepted::No;
        }
        if is_rtcp(datagram) {
            stats.add(|s| &s.rtcp_packets, 1);
            return Accepted::No;
        }
        let Ok(packet) = RtpPacket::parse(datagram) else {
            stats.add(|s| &s.packets_invalid, 1);
            return Accepted::No;
        };
        let pt = packet.payload_type();
        let is_event = Some(pt) == self.config.telephone_event_payload_type;
        let is_comfort_noise = pt == COMFORT_NOISE_PAYLOAD_TYPE;
        if pt != self.config.payload_type && !is_event && !is_comfort_noise {
            stats.add(|s| &s.packets_invalid, 1);
            return Accepted::No;
        }
        if self.source.is_none() {
            // Latching takes a packet that carries what the call negotiated: audio, or a
            // telephone-event that parses. A bare header or a truncated event does not.
            let carries = if is_event {
                TelephoneEvent::parse(packet.payload()).is_some()
            } else {
                !packet.payload().is_empty()
            };
            if !carries {
                stats.add(|s| &s.packets_invalid, 1);
                return Accepted::No;
            }
            self.source = Some(from);
        }
        stats.add(|s| &s.packets, 1);
        let class = if self.ssrc != Some(packet.ssrc()) {
            if self.ssrc.is_some() {
                stats.add(|s| &s.ssrc_changes, 1);
                self.new_sender(packet.sequence_number(), packet.timestamp(), sink, stats);
            } else {
                self.sequence.restart(packet.sequence_number());
            }
            self.ssrc = Some(packet.ssrc());
            SeqClass::First
        } else {
            self.sequence.packet(packet.sequence_number())
        };
        if class == SeqClass::Duplicate {
            stats.add(|s| &s.packets_duplicate, 1);
            return Accepted::Yes;
        }
        // A new number: the only kind of packet that may show the timeline moved backwards.
        let fresh = matches!(
            class,
            SeqClass::First | SeqClass::Ahead { .. } | SeqClass::Restart
        );
        stats.set(|s| &s.packets_lost, self.sequence.lost());
        let ts = packet.timestamp();
        if is_comfort_noise {
            // Silence until the next audio packet, whose timestamp says how long: nothing to
            // place (the call is alive: the inactivity timer restarts).
        } else if is_event {
            if let Some(event) = TelephoneEvent::parse(packet.payload()) {
                let new_press = self.presses.packet(ts, packet.marker_bit(), &event);
                let digit = event.digit().filter(|_| new_press);
                if digit.is_some() {
                    stats.add(|s| &s.digits, 1);
                }
                self.playout.event(ts, event.duration, digit, sink);
            }
        } else {
            match self
                .playout
                .audio_numbered(ts, packet.payload(), fresh, sink)
            {
                Placed::Late => stats.add(|s| &s.packets_late, 1),
                Placed::Duplicate => stats.add(|s| &s.packets_duplicate, 1),
                Placed::NewTimeline => stats.add(|s| &s.timestamp_jumps, 1),
                Placed::Placed if class == SeqClass::Reordered => {
                    stats.add(|s| &s.packets_reordered, 1)
                }
                Placed::Placed | Placed::Held => {}
            }
        }
        self.publish(stats);
        Accepted::Yes
    }

    /// True while the window has a timeline ([`Playout::has_timeline`]).
    pub fn has_timeline(&self) -> bool {
        self.playout.has_timeline()
    }

    /// The call's source address, once its first packet latched it.
    pub fn source(&self) -> Option<SocketAddr> {
        self.source
    }

    /// The call ended: releases everything held.
    pub fn finish(&mut self, sink: &mut impl Sink, stats: Counters<'_>) {
        self.playout.flush(sink);
        self.publish(stats);
    }

    /// Releases everything held and forgets the timeline ([`Playout::detach`]): the next
    /// packet starts a new one, whatever its timestamp.
    pub fn detach(&mut self, sink: &mut impl Sink, stats: Counters<'_>) {
        self.playout.detach(sink);
        self.publish(stats);
    }

    /// Releases what is due as far as the sink has room (a gap's owed silence): the receive
    /// thread calls it on its tick, between packets.
    pub fn drain(&mut self, sink: &mut impl Sink, stats: Counters<'_>) {
        if self.playout.held_samples() > 0 {
            self.playout.drain(sink);
            self.publish(stats);
        }
    }

    /// A new SSRC: release the old sender's window and continue the timeline with the new one.
    fn new_sender(&mut self, seq: u16, ts: u32, sink: &mut impl Sink, stats: Counters<'_>) {
        self.playout.restart_at(ts, sink);
        self.sequence.restart(seq);
        self.presses.reset();
        self.publish(stats);
    }

    fn publish(&mut self, stats: Counters<'_>) {
        let discarded = self.playout.discarded_packets();
        if discarded > self.discarded_counted {
            stats.add(|s| &s.packets_invalid, discarded - self.discarded_counted);
            self.discarded_counted = discarded;
        }
        stats.set(|s| &s.samples, self.playout.released_samples());
        stats.set(|s| &s.samples_concealed, self.playout.concealed_samples());
    }
}
