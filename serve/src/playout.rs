//! The jitter window: RTP audio in arrival order in, the call's timeline in order out.
//!
//! Audio is placed by RTP timestamp into a ring of [`RING_SAMPLES`] samples and released once
//! it is `window` samples behind the newest sample heard, so a packet that arrives up to
//! `window` late still finds its place. Samples never received are released as G.711 silence,
//! so the output has exactly one sample per timestamp unit: a lost packet, a gap left by a
//! sender that stops sending in silence (timestamps jump, RFC 3551 §4.1), or the span of a
//! telephone-event all keep the recording's duration equal to the call's. A packet whose time
//! has already been released is late and dropped. A timestamp jump larger than
//! [`MAX_FILL_SAMPLES`] (or backwards beyond the ring) is a new timeline: what is held is
//! released and the timeline restarts at the new timestamp, without filling.
//!
//! Digits (RFC 4733) are released in the same timeline, at their event's timestamp, so the audio
//! before the key press is recorded and the audio after it is not.
//!
//! Nothing here allocates after [`Playout::new`]; every call costs O(samples released).

use callrec::recorder::MAX_PUSH_BYTES;

/// Samples the ring holds (512 ms). A power of two.
pub const RING_SAMPLES: usize = 4096;
/// The largest jitter window accepted, in samples (300 ms), leaving room for a 1,500-byte packet.
pub const MAX_WINDOW_SAMPLES: u32 = 2400;
/// The longest gap filled with silence (10 s); a larger jump starts a new timeline.
pub const MAX_FILL_SAMPLES: u32 = 80_000;
const DIGIT_QUEUE: usize = 8;

/// Where a packet goes, relative to `head`.
enum Slot {
    /// `offset` samples after `head`.
    At(u32),
    /// Starts `behind` samples before `head` and ends after it: the rest is placed at `head`.
    Straddles { behind: u32 },
    /// The timeline restarted at the packet (it is at `head`).
    NewTimeline,
    /// Entirely before `head`: its time has been released.
    Passed,
}

/// Where the released timeline goes (a `Recorder` in `callrec serve`, a buffer in tests).
pub trait Sink {
    /// In-order audio, at most [`MAX_PUSH_BYTES`] bytes at a time.
    fn audio(&mut self, audio: &[u8]);
    /// A key press, at its place in the timeline.
    fn digit(&mut self, digit: char);
}

/// What became of one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placed {
    /// In the window (in order or reordered).
    Placed,
    /// Its time had already been released: dropped.
    Late,
    /// Every sample of it was already held: dropped.
    Duplicate,
    /// A timestamp jump: the timeline restarted at this packet.
    NewTimeline,
}

/// The jitter window and loss concealment of one RTP stream.
pub struct Playout {
    ring: Box<[u8; RING_SAMPLES]>,
    have: [u64; RING_SAMPLES / 64],
    silence: u8,
    window: u32,
    started: bool,
    /// RTP timestamp of the next sample to release.
    head: u32,
    /// Samples from `head` up to the newest one heard (or covered by an event).
    pending: u32,
    digits: [(u32, char); DIGIT_QUEUE],
    digits_len: usize,
    concealed_samples: u64,
    released_samples: u64,
}

impl std::fmt::Debug for Playout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Playout")
            .field("head", &self.head)
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
            silence,
            window: window.min(MAX_WINDOW_SAMPLES),
            started: false,
            head: 0,
            pending: 0,
            digits: [(0, '0'); DIGIT_QUEUE],
            digits_len: 0,
            concealed_samples: 0,
            released_samples: 0,
        }
    }

    /// Samples released so far (the timeline's length).
    pub fn released_samples(&self) -> u64 {
        self.released_samples
    }

    /// Samples released as silence because no packet carried them.
    pub fn concealed_samples(&self) -> u64 {
        self.concealed_samples
    }

    /// Places one packet's audio (G.711, one byte per sample) at RTP timestamp `ts`, and
    /// releases what is now older than the window.
    pub fn audio(&mut self, ts: u32, payload: &[u8], sink: &mut impl Sink) -> Placed {
        let len = payload.len().min(RING_SAMPLES - self.window as usize) as u32;
        let (first, skip, outcome) = match self.make_room(ts, len, sink) {
            Slot::At(offset) => (offset, 0, Placed::Placed),
            Slot::Straddles { behind } => (0, behind, Placed::Placed),
            Slot::NewTimeline => (0, 0, Placed::NewTimeline),
            Slot::Passed => return Placed::Late,
        };
        let mut fresh = false;
        let base = self.head.wrapping_add(first) as usize % RING_SAMPLES;
        let mut audio = &payload[skip as usize..len as usize];
        let mut at = base;
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
        self.pending = self.pending.max(first + len - skip);
        self.release_beyond_window(sink);
        match outcome {
            Placed::Placed if !fresh => Placed::Duplicate,
            o => o,
        }
    }

    /// A key press whose event started at `ts` and has lasted `duration` samples so far: the
    /// digit is released at `ts`, and the event's span counts as timeline (silence unless
    /// audio packets cover it). `digit` None only extends the timeline (an update of a press
    /// already queued).
    pub fn event(&mut self, ts: u32, duration: u16, digit: Option<char>, sink: &mut impl Sink) {
        let len = u32::from(duration).min(RING_SAMPLES as u32 - self.window);
        let (first, skip) = match self.make_room(ts, len, sink) {
            Slot::At(offset) => (offset, 0),
            Slot::Straddles { behind } => (0, behind),
            Slot::NewTimeline => (0, 0),
            Slot::Passed => {
                // Its time has already been released: a new press still counts, now.
                if let Some(d) = digit {
                    sink.digit(d);
                }
                return;
            }
        };
        if let Some(d) = digit {
            if self.digits_len == DIGIT_QUEUE {
                self.release_digit(sink);
            }
            self.digits[self.digits_len] = (self.head.wrapping_add(first), d);
            self.digits_len += 1;
        }
        self.pending = self.pending.max(first + len - skip);
        self.release_due_digits(sink);
        self.release_beyond_window(sink);
    }

    /// Releases everything held (the call ended): samples never received become silence, and
    /// queued digits are released at their places.
    pub fn flush(&mut self, sink: &mut impl Sink) {
        let n = self.pending;
        self.release(n, sink);
        while self.digits_len > 0 {
            self.release_digit(sink);
        }
    }

    /// Finds where a packet at `ts` lasting `len` goes, releasing older audio when the ring
    /// lacks room, or restarting the timeline on a jump.
    fn make_room(&mut self, ts: u32, len: u32, sink: &mut impl Sink) -> Slot {
        if !self.started {
            self.started = true;
            self.head = ts;
            return Slot::At(0);
        }
        let offset = ts.wrapping_sub(self.head);
        if offset > u32::MAX / 2 {
            let behind = offset.wrapping_neg();
            return if behind >= RING_SAMPLES as u32 {
                self.restart_at(ts, sink);
                Slot::NewTimeline
            } else if behind >= len {
                Slot::Passed
            } else {
                Slot::Straddles { behind }
            };
        }
        if offset > MAX_FILL_SAMPLES {
            self.restart_at(ts, sink);
            return Slot::NewTimeline;
        }
        let end = offset + len;
        if end > RING_SAMPLES as u32 {
            self.release(end - RING_SAMPLES as u32, sink);
        }
        Slot::At(ts.wrapping_sub(self.head))
    }

    /// Releases everything held and continues the timeline at `ts` (a new sender or a
    /// timestamp jump): the next sample released is the one at `ts`.
    pub fn restart_at(&mut self, ts: u32, sink: &mut impl Sink) {
        self.flush(sink);
        self.started = true;
        self.head = ts;
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

    fn release_beyond_window(&mut self, sink: &mut impl Sink) {
        if self.pending > self.window {
            self.release(self.pending - self.window, sink);
        }
    }

    /// Releases `n` samples from `head` (past `pending` too, as silence: a forward jump),
    /// with each queued digit at its place.
    fn release(&mut self, mut n: u32, sink: &mut impl Sink) {
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

    /// A digit due at (or before) `head` goes before the audio that follows it.
    fn release_due_digits(&mut self, sink: &mut impl Sink) {
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
