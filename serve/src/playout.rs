//! The jitter window: RTP audio in arrival order in, the call's timeline in order out.
//!
//! The file's timeline is the sender's (DESIGN §11 "RTP as real networks deliver it"), whatever
//! the network does to the packets. Audio is placed by RTP timestamp into a ring of
//! [`RING_SAMPLES`] samples and released once it is `window` samples behind the newest sample
//! heard, so a packet that arrives up to `window` late still finds its place. Samples never
//! received are released as G.711 silence, so the output has exactly one sample per timestamp
//! unit: a lost packet or a gap left by a sender that stops sending in silence (DTX: timestamps
//! jump, RFC 3551 §4.1) keeps the recording's duration equal to the call's.
//!
//! The rules that keep one bad packet from moving the timeline:
//! - A packet whose time has already been released is *late*: dropped ([`Placed::Late`]), never
//!   a new timeline, however far back it is.
//! - A packet more than the window ahead of the newest sample heard is a *jump*. One packet
//!   never makes a jump: it is held as evidence ([`Placed::Held`]) until [`CONFIRM`] packets in
//!   a row continue its timeline (then what was held is released, the gap up to it becomes
//!   silence, or beyond [`MAX_FILL_SAMPLES`] a new timeline starts, and the evidence is placed),
//!   or a packet continues the old timeline instead (the evidence is dropped and counted,
//!   [`Playout::discarded_packets`]). A jump backwards is only believed for packets the caller
//!   marks `fresh` (new sequence numbers): a stale or replayed packet is only ever late.
//! - A gap becomes silence that is released no faster than the sink can take it
//!   ([`Sink::room`]): a 4-second gap is never pushed into a 2-second recorder ring at once.
//!   What the sink cannot take yet is owed and released as room appears (each packet, and
//!   [`Playout::drain`] from the receive thread's tick).
//!
//! Digits (RFC 4733) are released in the same timeline, at their event's start, so the audio
//! before the key press is recorded and the audio after it is not. An event's updates (which
//! keep the press's start timestamp for as long as the key is held) never move the timeline
//! back or restart it: they only cover time up to the event's end with silence if no audio
//! does, and never beyond what the ring holds.
//!
//! Nothing here allocates after [`Playout::new`]; every call costs O(samples released).

use callrec::recorder::MAX_PUSH_BYTES;

/// Samples the ring holds (1,024 ms). A power of two.
pub const RING_SAMPLES: usize = 8192;
/// The largest jitter window accepted, in samples (300 ms).
pub const MAX_WINDOW_SAMPLES: u32 = 2400;
/// The longest gap filled with silence (10 s); a larger confirmed jump starts a new timeline.
pub const MAX_FILL_SAMPLES: u32 = 80_000;
/// Packets in a row that make a timestamp jump believed (the first one included).
pub const CONFIRM: usize = 3;
const DIGIT_QUEUE: usize = 8;

/// Where the released timeline goes (a `Recorder` in `callrec serve`, a buffer in tests).
pub trait Sink {
    /// In-order audio, at most [`MAX_PUSH_BYTES`] bytes at a time.
    fn audio(&mut self, audio: &[u8]);
    /// A key press, at its place in the timeline.
    fn digit(&mut self, digit: char);
    /// Bytes the sink can take now without losing any: a gap's silence is released no faster.
    /// Audio the window must release to make room is pushed regardless.
    fn room(&self) -> usize {
        usize::MAX
    }
}

/// What became of one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placed {
    /// In the window (in order or reordered), or a confirmed jump filled with silence.
    Placed,
    /// Its time had already been released: dropped.
    Late,
    /// Every sample of it was already held: dropped.
    Duplicate,
    /// Off the timeline: held as evidence of a jump until the packets after it confirm it.
    Held,
    /// This packet confirmed a timestamp jump too large to fill: a new timeline started at the
    /// jump's first packet.
    NewTimeline,
}

/// A jump held until confirmed.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    /// RTP timestamp of its first sample.
    start: u32,
    /// Timestamp just after its newest sample.
    end: u32,
    /// Packets held (offset from `start`, length) in `evidence`.
    packets: [(u32, u32); CONFIRM],
    count: usize,
}

/// The jitter window and loss concealment of one RTP stream.
pub struct Playout {
    ring: Box<[u8; RING_SAMPLES]>,
    have: [u64; RING_SAMPLES / 64],
    /// A jump's packets, by offset from its first timestamp (taken while they are placed).
    evidence: Option<Box<[u8; RING_SAMPLES]>>,
    candidate: Option<Candidate>,
    /// Silence to push, for the jumps of the silence byte, without touching the ring.
    silence_buf: Box<[u8; MAX_PUSH_BYTES]>,
    silence: u8,
    window: u32,
    started: bool,
    /// RTP timestamp of the next sample of the ring to release.
    head: u32,
    /// Silence owed before `head` (a confirmed gap the sink could not take at once).
    owed: u32,
    /// Samples from `head` up to the newest one heard (or covered by an event).
    pending: u32,
    digits: [(u32, char); DIGIT_QUEUE],
    digits_len: usize,
    concealed_samples: u64,
    released_samples: u64,
    discarded_packets: u64,
}

impl std::fmt::Debug for Playout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Playout")
            .field("head", &self.head)
            .field("owed", &self.owed)
            .field("pending", &self.pending)
            .field("released_samples", &self.released_samples)
            .finish_non_exhaustive()
    }
}

impl Playout {
    /// A window of `window` samples (clamped to [`MAX_WINDOW_SAMPLES`]); `silence` is the
    /// codec's silence byte. Allocates the ring (control thread).
    pub fn new(window: u32, silence: u8) -> Playout {
        Playout {
            ring: Box::new([silence; RING_SAMPLES]),
            have: [0; RING_SAMPLES / 64],
            evidence: Some(Box::new([silence; RING_SAMPLES])),
            candidate: None,
            silence_buf: Box::new([silence; MAX_PUSH_BYTES]),
            silence,
            window: window.min(MAX_WINDOW_SAMPLES),
            started: false,
            head: 0,
            owed: 0,
            pending: 0,
            digits: [(0, '0'); DIGIT_QUEUE],
            digits_len: 0,
            concealed_samples: 0,
            released_samples: 0,
            discarded_packets: 0,
        }
    }

    /// True once audio or an event started a timeline (and it was not detached since).
    pub fn has_timeline(&self) -> bool {
        self.started
    }

    /// Samples released so far (the timeline's length).
    pub fn released_samples(&self) -> u64 {
        self.released_samples
    }

    /// Samples released as silence because no packet carried them.
    pub fn concealed_samples(&self) -> u64 {
        self.concealed_samples
    }

    /// Packets held as evidence of a jump that the packets after them did not confirm (dropped).
    pub fn discarded_packets(&self) -> u64 {
        self.discarded_packets
    }

    /// Samples known but not yet released: owed silence plus the window's contents.
    pub fn held_samples(&self) -> u64 {
        u64::from(self.owed) + u64::from(self.pending)
    }

    /// The longest packet placed whole; longer payloads are cut to it.
    fn max_packet(&self) -> u32 {
        RING_SAMPLES as u32 - self.window
    }

    /// Places one packet's audio (G.711, one byte per sample) at RTP timestamp `ts`, and
    /// releases what is now older than the window. Without sequence numbers, no packet is
    /// taken as evidence of a jump backwards ([`Playout::audio_numbered`]).
    pub fn audio(&mut self, ts: u32, payload: &[u8], sink: &mut impl Sink) -> Placed {
        self.audio_numbered(ts, payload, false, sink)
    }

    /// [`Playout::audio`] for a packet whose sequence number is `fresh` (ahead of every one
    /// seen): only such a packet may be evidence of a jump backwards (a stale or replayed one
    /// is late).
    pub fn audio_numbered(
        &mut self,
        ts: u32,
        payload: &[u8],
        fresh: bool,
        sink: &mut impl Sink,
    ) -> Placed {
        let len = payload.len().min(self.max_packet() as usize) as u32;
        let payload = &payload[..len as usize];
        if !self.started {
            self.started = true;
            self.head = ts;
        }
        let mut rel = i64::from(ts.wrapping_sub(self.head) as i32);
        let jump_ahead = rel > i64::from(self.pending + self.window);
        let behind = rel + i64::from(len) <= 0;
        if jump_ahead || (behind && fresh) {
            return self.evidence(ts, payload, sink);
        }
        if behind {
            return Placed::Late;
        }
        // The ring holds `head..head + RING_SAMPLES`: make room by releasing the oldest audio
        // (at most what is held, as `rel` is within the window of the newest sample).
        let over = rel + i64::from(len) - RING_SAMPLES as i64;
        if over > 0 {
            self.release(self.owed + over as u32, sink);
            rel -= over;
        }
        let skip = (-rel).max(0) as u32;
        let first = rel.max(0) as u32;
        let fresh_samples = self.place(first, &payload[skip as usize..]);
        if first + len - skip > self.pending {
            // The old timeline goes on: a jump held as evidence was a stray.
            self.pending = first + len - skip;
            self.drop_candidate();
        }
        self.release_beyond_window(sink);
        if fresh_samples {
            Placed::Placed
        } else {
            Placed::Duplicate
        }
    }

    /// Copies `audio` into the ring at `first` samples after `head` (it fits); true when any
    /// sample of it was new.
    fn place(&mut self, first: u32, audio: &[u8]) -> bool {
        let mut fresh = false;
        let mut at = self.head.wrapping_add(first) as usize % RING_SAMPLES;
        let mut audio = audio;
        // At most two contiguous spans of the ring (the second after it wraps).
        while !audio.is_empty() {
            let n = audio.len().min(RING_SAMPLES - at);
            let (span, rest) = audio.split_at(n);
            let held = self.count_held(at, n);
            if held == 0 {
                // The usual case, a packet whose samples are all new: one copy.
                self.ring[at..at + n].copy_from_slice(span);
                self.mark(at, n, true);
                fresh = true;
            } else if held < n {
                for (i, &b) in span.iter().enumerate() {
                    if !self.has(at + i) {
                        fresh = true;
                        self.ring[at + i] = b;
                        self.have[(at + i) / 64] |= 1 << ((at + i) % 64);
                    }
                }
            }
            audio = rest;
            at = 0;
        }
        fresh
    }

    /// A packet off the timeline: it starts or continues a candidate jump, which the
    /// [`CONFIRM`]th packet in a row makes the timeline.
    fn evidence(&mut self, ts: u32, payload: &[u8], sink: &mut impl Sink) -> Placed {
        let len = payload.len() as u32;
        let continues = self.candidate.is_some_and(|c| {
            let off = ts.wrapping_sub(c.start);
            let end = c.end.wrapping_sub(c.start);
            off <= end + self.window && off + len <= RING_SAMPLES as u32
        });
        if !continues {
            self.drop_candidate();
            self.candidate = Some(Candidate {
                start: ts,
                end: ts,
                packets: [(0, 0); CONFIRM],
                count: 0,
            });
        }
        let Some(c) = self.candidate.as_mut() else {
            return Placed::Held;
        };
        let off = ts.wrapping_sub(c.start);
        if let Some(evidence) = self.evidence.as_mut() {
            evidence[off as usize..(off + len) as usize].copy_from_slice(payload);
        }
        c.packets[c.count] = (off, len);
        c.count += 1;
        if off + len > c.end.wrapping_sub(c.start) {
            c.end = ts.wrapping_add(len);
        }
        if c.count < CONFIRM {
            return Placed::Held;
        }
        let c = *c;
        self.candidate = None;
        // Confirmed: everything held goes out, then the gap as silence (or nothing: a new
        // timeline), then the evidence is the window's content.
        let newest = self.head.wrapping_add(self.pending);
        let gap = c.start.wrapping_sub(newest);
        let new_timeline = gap > MAX_FILL_SAMPLES;
        self.release_all(sink);
        if !new_timeline {
            self.owed += gap;
        }
        self.head = c.start;
        self.pending = 0;
        if let Some(evidence) = self.evidence.take() {
            for &(off, len) in &c.packets[..c.count] {
                self.place(off, &evidence[off as usize..(off + len) as usize]);
                self.pending = self.pending.max(off + len);
            }
            self.evidence = Some(evidence);
        }
        self.release_beyond_window(sink);
        if new_timeline {
            Placed::NewTimeline
        } else {
            Placed::Placed
        }
    }

    fn drop_candidate(&mut self) {
        if let Some(c) = self.candidate.take() {
            self.discarded_packets += c.count as u64;
        }
    }

    /// A key press whose event started at `ts` and has lasted `duration` samples so far.
    /// `digit` (the press's first packet) is released at `ts`: queued when that is still ahead,
    /// at once when its time has passed. The event's span counts as timeline (silence unless
    /// audio packets cover it) up to what the ring holds; an event never moves the timeline
    /// back, never restarts it and never takes the place of audio.
    pub fn event(&mut self, ts: u32, duration: u16, digit: Option<char>, sink: &mut impl Sink) {
        if !self.started {
            self.started = true;
            self.head = ts;
        }
        let rel = i64::from(ts.wrapping_sub(self.head) as i32);
        if let Some(d) = digit {
            if rel > 0 && rel < i64::from(self.max_packet()) {
                if self.digits_len == DIGIT_QUEUE {
                    self.release_digit(sink);
                }
                self.digits[self.digits_len] = (ts, d);
                self.digits_len += 1;
            } else if self.owed > 0 && self.digits_len < DIGIT_QUEUE {
                // Its time has passed but silence before `head` is still owed: after it.
                self.digits[self.digits_len] = (self.head, d);
                self.digits_len += 1;
            } else {
                sink.digit(d);
            }
        }
        // Only an event within the timeline extends it (a stray one far ahead does not).
        let end = (rel + i64::from(duration)).min(i64::from(self.max_packet()));
        if rel <= i64::from(self.pending + self.window) && end > i64::from(self.pending) {
            self.pending = end as u32;
        }
        self.release_due_digits(sink);
        self.release_beyond_window(sink);
    }

    /// Releases owed silence and audio beyond the window as far as the sink has room (the
    /// receive thread calls it on its tick, so a gap keeps flowing without packets).
    pub fn drain(&mut self, sink: &mut impl Sink) {
        self.release_beyond_window(sink);
    }

    /// Releases everything held (the call ended): samples never received become silence, and
    /// queued digits are released at their places.
    pub fn flush(&mut self, sink: &mut impl Sink) {
        self.release_all(sink);
        while self.digits_len > 0 {
            self.release_digit(sink);
        }
    }

    fn release_all(&mut self, sink: &mut impl Sink) {
        let n = self.owed + self.pending;
        self.release(n, sink);
    }

    /// Releases everything held and continues the timeline at `ts` (a new sender): the next
    /// sample released is the one at `ts`. A jump held as evidence belonged to the old sender.
    pub fn restart_at(&mut self, ts: u32, sink: &mut impl Sink) {
        self.drop_candidate();
        self.flush(sink);
        self.started = true;
        self.head = ts;
        self.pending = 0;
    }

    /// Releases everything held and forgets the timeline: the next packet starts a new one at
    /// its own timestamp, with no silence for the time between. For a leg of a two-leg call
    /// that went quiet: the host has already moved the leg on by the wall clock, and places
    /// the next talkspurt by its arrival, not by its timestamp.
    pub fn detach(&mut self, sink: &mut impl Sink) {
        self.drop_candidate();
        self.flush(sink);
        self.started = false;
        self.pending = 0;
    }

    fn has(&self, at: usize) -> bool {
        self.have[at / 64] & (1 << (at % 64)) != 0
    }

    /// The mask of the bits of `have[word]` that fall in ring indexes `at..at + n`.
    fn word_mask(word: usize, at: usize, n: usize) -> u64 {
        let lo = (word * 64).max(at) - word * 64;
        let hi = ((word + 1) * 64).min(at + n) - word * 64;
        if hi - lo == 64 {
            u64::MAX
        } else {
            ((1u64 << (hi - lo)) - 1) << lo
        }
    }

    /// How many of ring indexes `at..at + n` (no wrap) hold a received sample.
    fn count_held(&self, at: usize, n: usize) -> usize {
        (at / 64..(at + n).div_ceil(64))
            .map(|w| (self.have[w] & Self::word_mask(w, at, n)).count_ones() as usize)
            .sum()
    }

    /// Marks ring indexes `at..at + n` (no wrap) as held or not.
    fn mark(&mut self, at: usize, n: usize, held: bool) {
        for w in at / 64..(at + n).div_ceil(64) {
            let mask = Self::word_mask(w, at, n);
            if held {
                self.have[w] |= mask;
            } else {
                self.have[w] &= !mask;
            }
        }
    }

    /// Releases what is older than the window, as far as the sink has room.
    fn release_beyond_window(&mut self, sink: &mut impl Sink) {
        let held = self.owed + self.pending;
        if held > self.window {
            let n = (held - self.window) as usize;
            self.release(n.min(sink.room()) as u32, sink);
        }
    }

    /// Releases `n` samples: owed silence first, then the ring from `head` (past `pending`
    /// too, as silence), with each queued digit at its place.
    fn release(&mut self, mut n: u32, sink: &mut impl Sink) {
        while n > 0 && self.owed > 0 {
            let chunk = n.min(self.owed).min(MAX_PUSH_BYTES as u32);
            sink.audio(&self.silence_buf[..chunk as usize]);
            self.owed -= chunk;
            self.concealed_samples += u64::from(chunk);
            self.released_samples += u64::from(chunk);
            n -= chunk;
        }
        while n > 0 {
            // Stop at the next digit's place, the ring's end, or one push's worth.
            let mut chunk = n;
            if let Some(&(ts, _)) = self.digits[..self.digits_len].first() {
                let until = ts.wrapping_sub(self.head);
                if until == 0 || until > u32::MAX / 2 {
                    self.release_digit(sink);
                    continue;
                }
                chunk = chunk.min(until);
            }
            let at = self.head as usize % RING_SAMPLES;
            let chunk = (chunk as usize).min(RING_SAMPLES - at).min(MAX_PUSH_BYTES);
            let held = self.count_held(at, chunk);
            if held == 0 {
                self.ring[at..at + chunk].fill(self.silence);
            } else if held < chunk {
                for i in at..at + chunk {
                    if !self.has(i) {
                        self.ring[i] = self.silence;
                    }
                }
            }
            self.concealed_samples += (chunk - held) as u64;
            self.mark(at, chunk, false);
            sink.audio(&self.ring[at..at + chunk]);
            let chunk = chunk as u32;
            self.head = self.head.wrapping_add(chunk);
            self.pending = self.pending.saturating_sub(chunk);
            self.released_samples += u64::from(chunk);
            n -= chunk;
        }
        self.release_due_digits(sink);
    }

    /// A digit due at (or before) `head` goes before the audio that follows it (and after any
    /// silence still owed before `head`).
    fn release_due_digits(&mut self, sink: &mut impl Sink) {
        if self.owed > 0 {
            return;
        }
        while let Some(&(ts, _)) = self.digits[..self.digits_len].first() {
            if ts.wrapping_sub(self.head).wrapping_sub(1) < u32::MAX / 2 {
                break;
            }
            self.release_digit(sink);
        }
    }

    fn release_digit(&mut self, sink: &mut impl Sink) {
        let (_, d) = self.digits[0];
        self.digits.copy_within(1..self.digits_len, 0);
        self.digits_len -= 1;
        sink.digit(d);
    }
}
