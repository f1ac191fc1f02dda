//! Both sides of the call (DESIGN §13): one recording, two legs, each its own real-time
//! [`crate::Recorder`] with its own ring, placed sample-exactly on one timeline.
//!
//! **The timeline.** Every sample of a leg has an index: samples since the recording began
//! (`Engine::record_call`). A leg's recorder sends *every* sample it takes to its ring, in index
//! order, whatever the recording's phase; a gap ([`crate::Recorder::push_at`] past the leg's
//! position, or audio its full ring could not take) is sent as a *gap* instead of bytes. The
//! writer therefore knows the index of every byte it reads, and decides what goes into the file
//! from decisions published as indices: where the file starts (`start_at`: the first sound on
//! either leg, less the pre-roll), where it ends (`end_at`: both legs silent long enough;
//! `cut_at`: an in-band barge-in tone's start; otherwise the furthest any leg got), and which
//! spans are paused (`pauses`). Both channels get the same indices, so they are aligned by
//! construction; where a leg has no audio for an index of the file the writer puts G.711
//! silence and counts it (`samples_filled`).
//!
//! **A leg that falls behind.** The writer emits an index only once both legs have judged it
//! (a leg's `decided`). A leg that sends nothing, or falls behind the other by more than a ring
//! holds, would hold everything up: the writer then *jumps* it (fills it with silence up to a
//! point behind the other leg) and the leg drops its own audio for indices already jumped, so
//! the other leg never stalls and memory stays bounded.
//!
//! **Memory ordering** (the cross-leg decisions use atomics only, no lock):
//! - A leg publishes what it heard in a frame (`sound_until`, the `start_at` candidate) *before*
//!   it publishes the frame as judged (`decided`), and then reads the other leg's `decided` and
//!   `sound_until`. The store of `decided` and the loads of both legs' `decided` are SeqCst, so
//!   of two legs publishing at once at least one sees the other's frame (the store-then-load
//!   pattern of Dekker's algorithm): a stop on silence (both legs silent up to an index) is
//!   never missed. `sound_until` (each leg's own, stored only by it) is a Release store before
//!   that SeqCst store, so a leg that sees the other's `decided` sees its `sound_until` too; the
//!   stop, decided from `sound_until`, does not depend on which leg saw it first. That store of
//!   `decided` is the one locked write a frame needs besides the ring claim: the other shared
//!   values a leg owns are plain stores, and `start_at` is written only when a candidate lowers it.
//! - A start candidate is published with `fetch_min`, so the earliest sound on either leg wins
//!   whichever leg is ahead. The writer treats `start_at` as final only below
//!   `min(decided) - HOLD` (`HOLD` covers the pre-roll and the detector's confirmation
//!   delay), the point below which no leg can publish an earlier candidate.
//! - Ring position (`edge`): a leg claims indices with a compare-and-swap on its `edge` *before*
//!   writing their bytes; the writer jumps a leg only by a compare-and-swap from the index it
//!   has read up to, with the ring and the gap queue empty. So a jump never lands between a claim
//!   and its bytes, and bytes the writer reads after a jump are at the jumped-to index.
//! - A gap is published in a small single-producer, single-consumer queue (`gaps`: the entry,
//!   then `gap_tail`, Release) *before* any byte after it is written to the ring; the writer
//!   reads the ring's fill level (Acquire) before the queue (`gap_tail`, Acquire), so a byte it
//!   reads after a gap always comes with the gap, and it takes the gaps in order among the
//!   bytes. While the queue is full (`GAPS` entries) a new gap waits in the leg (and audio after it
//!   joins it, lost and counted).
//! - Pause toggles are appended by compare-and-swap on their count, the index stored after;
//!   a toggle whose index is not stored yet reads as not there.

use crate::g711::Codec;
use crate::options::{Legs, PauseBehavior, RecordOptions};
use crate::recorder::{FRAME_SAMPLES, PREROLL_FRAMES, SAMPLE_RATE};
use crate::result::{LegResult, LegsResult, Reason};
use crate::session::SessionShared;
use crate::wav::WavFile;
use crossbeam_utils::CachePadded;
use rtrb::Consumer;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// "Not (yet) known" for an index.
pub(crate) const NONE: u64 = u64::MAX;
/// The caller's leg.
pub const CALLER: usize = 0;
/// The other party's leg.
pub const OTHER: usize = 1;
/// Pause and resume toggles one two-leg recording takes (later ones are ignored).
pub const MAX_PAUSE_TOGGLES: usize = 64;
/// How far behind the legs' judged position the writer stays: the pre-roll plus the sound
/// detector's confirmation delay, so the start is final before anything is emitted.
pub(crate) const HOLD: u64 =
    ((PREROLL_FRAMES + crate::detect::MAX_ONSET_DELAY_FRAMES + 2) * FRAME_SAMPLES) as u64;
const SEQ: Ordering = Ordering::SeqCst;
/// Gaps a leg can have published and not yet taken by the writer (16 bytes each). A host that
/// moves a silent leg on every few milliseconds (`callrec serve`'s tick) extends one entry; a
/// lossy leg pushed faster than real time (a file, `push_at` skipping what was lost) makes one
/// per loss: at 5 % loss, 128 hold 2,560 frames between two polls of the writer. Beyond that the
/// audio after them waits in the leg as a gap (lost, counted in `frames_dropped`). The writer's
/// table of jumps not yet emitted has as many entries: with 4, a leg losing one frame in seven
/// filled it within the writer's hold, the writer stopped taking that leg's bytes, and a
/// hangup then ended the file where it had got to (both channels cut short).
const GAPS: usize = 128;

/// What one leg shares with the other leg and the writer.
#[derive(Debug)]
pub(crate) struct LegShared {
    /// Index up to which this leg's timeline is claimed (by its recorder, or jumped by the
    /// writer).
    edge: AtomicU64,
    /// Gaps for the writer, in index order: `[from, to)` has no bytes. A single-producer (the
    /// leg), single-consumer (the writer) queue: `gap_tail` counts the gaps published,
    /// `gap_head` those taken.
    gaps: [(AtomicU64, AtomicU64); GAPS],
    gap_head: AtomicU64,
    gap_tail: AtomicU64,
    /// End of the frames this leg has judged (sound or silence, no onset pending).
    decided: AtomicU64,
    /// Where the writer jumped this leg to (silence before it).
    filled_to: AtomicU64,
    /// End of this leg's last frame of speech (0: none yet).
    sound_until: AtomicU64,
    contains_sound: AtomicBool,
    speech_samples: AtomicU64,
    frames_dropped: AtomicU64,
}

impl LegShared {
    fn new() -> LegShared {
        LegShared {
            edge: AtomicU64::new(0),
            gaps: std::array::from_fn(|_| (AtomicU64::new(0), AtomicU64::new(0))),
            gap_head: AtomicU64::new(0),
            gap_tail: AtomicU64::new(0),
            decided: AtomicU64::new(0),
            filled_to: AtomicU64::new(0),
            sound_until: AtomicU64::new(0),
            contains_sound: AtomicBool::new(false),
            speech_samples: AtomicU64::new(0),
            frames_dropped: AtomicU64::new(0),
        }
    }

    /// Publishes a gap (the leg's thread): its place in the queue, None when the queue is full.
    fn push_gap(&self, from: u64, to: u64) -> Option<u64> {
        let tail = self.gap_tail.load(Ordering::Relaxed);
        if tail - self.gap_head.load(Ordering::Acquire) >= GAPS as u64 {
            return None;
        }
        let slot = &self.gaps[(tail % GAPS as u64) as usize];
        slot.0.store(from, Ordering::Relaxed);
        slot.1.store(to, Ordering::Relaxed);
        self.gap_tail.store(tail + 1, Ordering::Release);
        Some(tail)
    }

    /// Extends the published gap at `index` from ending at `end` to ending at `to` (the leg's
    /// thread, for a gap that continues it with no byte between); false if the writer has taken
    /// it already ([`LegShared::take_gap`] marks it taken in the same word).
    fn extend_gap(&self, index: u64, end: u64, to: u64) -> bool {
        let slot = &self.gaps[(index % GAPS as u64) as usize];
        slot.1
            .compare_exchange(end, to, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// The oldest published gap not yet taken (the writer).
    fn peek_gap(&self) -> Option<(u64, u64)> {
        let head = self.gap_head.load(Ordering::Relaxed);
        if head == self.gap_tail.load(Ordering::Acquire) {
            return None;
        }
        let slot = &self.gaps[(head % GAPS as u64) as usize];
        Some((
            slot.0.load(Ordering::Relaxed),
            slot.1.load(Ordering::Relaxed),
        ))
    }

    /// Takes the gap [`LegShared::peek_gap`] gave (the writer): where it ends, as extended up
    /// to the moment it is taken (its end is swapped for NONE, so no extension comes after).
    fn take_gap(&self) -> u64 {
        let head = self.gap_head.load(Ordering::Relaxed);
        let slot = &self.gaps[(head % GAPS as u64) as usize];
        let to = slot.1.swap(NONE, Ordering::AcqRel);
        self.gap_head.store(head + 1, Ordering::Release);
        to
    }

    /// Takes every published gap (the writer, discarding).
    fn clear_gaps(&self) {
        let tail = self.gap_tail.load(Ordering::Acquire);
        self.gap_head.store(tail, Ordering::Release);
    }

    /// True when every published gap was taken.
    fn gaps_empty(&self) -> bool {
        self.gap_head.load(Ordering::Acquire) == self.gap_tail.load(Ordering::Acquire)
    }

    /// How far this leg is judged, counting the writer's jump.
    fn judged(&self) -> u64 {
        self.decided.load(SEQ).max(self.filled_to.load(SEQ))
    }
}

/// The state of one two-leg recording shared by its legs and its writer.
#[derive(Debug)]
pub(crate) struct CallShared {
    pub(crate) session: Arc<SessionShared>,
    legs: [CachePadded<LegShared>; 2],
    start_at: AtomicU64,
    armed_at: AtomicU64,
    end_at: AtomicU64,
    cut_at: AtomicU64,
    pause_count: AtomicUsize,
    pauses: [AtomicU64; MAX_PAUSE_TOGGLES],
    pub(crate) mode: Legs,
    pub(crate) pause_skips: bool,
    initial_silence: u64,
    max_silence: u64,
    /// The file's limits: timed samples (duration) and sample frames (size).
    duration_frames: u64,
    size_frames: u64,
    pub(crate) trim: bool,
}

impl CallShared {
    pub(crate) fn new(options: &RecordOptions, session: Arc<SessionShared>) -> CallShared {
        let channels = options.legs.channels() as u64;
        let size_bytes = options
            .max_file_bytes
            .map_or(crate::wav::MAX_DATA_BYTES, |b| {
                let padding = match &options.encryption_cipher {
                    Some(c) if c.mode() == crate::cipher::Mode::Cbc => crate::cipher::BLOCK,
                    _ => 0,
                };
                b.saturating_sub((crate::wav::HEADER_BYTES + padding) as u64)
            })
            .min(crate::wav::MAX_DATA_BYTES)
            & !1;
        CallShared {
            session,
            legs: [
                CachePadded::new(LegShared::new()),
                CachePadded::new(LegShared::new()),
            ],
            start_at: AtomicU64::new(NONE),
            armed_at: AtomicU64::new(if options.beep_on_start { NONE } else { 0 }),
            end_at: AtomicU64::new(NONE),
            cut_at: AtomicU64::new(NONE),
            pause_count: AtomicUsize::new(0),
            pauses: [const { AtomicU64::new(NONE) }; MAX_PAUSE_TOGGLES],
            mode: options.legs,
            pause_skips: options.pause_behavior == PauseBehavior::Skip,
            initial_silence: options.effective_initial_silence_ms() * SAMPLE_RATE / 1000,
            max_silence: options.milliseconds_max_silence * SAMPLE_RATE / 1000,
            duration_frames: options.seconds_max_duration * SAMPLE_RATE,
            size_frames: size_bytes / channels,
            trim: options.trim_trailing_silence,
        }
    }

    pub(crate) fn leg(&self, leg: usize) -> &LegShared {
        &self.legs[leg & 1]
    }

    /// The caller's beep has played (and its echo guard passed) at `at`: sound counts from here.
    pub(crate) fn arm(&self, at: u64) {
        let _ = self.armed_at.compare_exchange(NONE, at, SEQ, SEQ);
    }

    /// Whether the recording has started (first sound on either leg).
    pub(crate) fn started(&self) -> bool {
        self.start_at.load(SEQ) != NONE
    }

    /// An in-band barge-in tone began at `at` (the caller's leg): the file ends there.
    pub(crate) fn cut(&self, at: u64) {
        self.cut_at.fetch_min(at, SEQ);
    }

    /// Appends a pause (`pause` true) or resume toggle at index `at` (from `leg`); false when
    /// it changes nothing (already in that state, or the toggles are used up). Toggles never go
    /// back in time: not before the previous toggle, nor before where the writer jumped `leg`.
    pub(crate) fn toggle(&self, leg: usize, pause: bool, at: u64) -> bool {
        let at = at.max(self.leg(leg).filled_to.load(SEQ));
        loop {
            let c = self.pause_count.load(SEQ);
            if (c % 2 == 1) == pause || c >= MAX_PAUSE_TOGGLES {
                return false;
            }
            let prev = if c > 0 {
                self.pauses[c - 1].load(SEQ)
            } else {
                0
            };
            let at = if prev == NONE { at } else { at.max(prev) };
            if self
                .pause_count
                .compare_exchange(c, c + 1, SEQ, SEQ)
                .is_ok()
            {
                self.pauses[c].store(at, SEQ);
                return true;
            }
        }
    }

    /// Whether the recording is paused now (the last toggle was a pause).
    pub(crate) fn paused_now(&self) -> bool {
        self.pause_count.load(SEQ) % 2 == 1
    }

    /// The `n`-th paused span `[from, to)` (`to` NONE while open), if it exists.
    fn pause_span(&self, n: usize) -> Option<(u64, u64)> {
        let count = self.pause_count.load(SEQ);
        if 2 * n >= count {
            return None;
        }
        let from = self.pauses[2 * n].load(SEQ);
        if from == NONE {
            return None;
        }
        let to = if 2 * n + 1 < count {
            self.pauses[2 * n + 1].load(SEQ)
        } else {
            NONE
        };
        Some((from, to))
    }

    /// Whether index `at` is in a paused span.
    pub(crate) fn paused_at(&self, at: u64) -> bool {
        (0..MAX_PAUSE_TOGGLES / 2)
            .map_while(|n| self.pause_span(n))
            .any(|(from, to)| from <= at && at < to)
    }

    /// The next pause toggle after `at` (NONE: none).
    fn next_toggle_after(&self, at: u64) -> u64 {
        let count = self.pause_count.load(SEQ);
        (0..count)
            .map(|i| self.pauses[i].load(SEQ))
            .find(|&t| t != NONE && t > at)
            .unwrap_or(NONE)
    }

    /// The index `amount` unpaused samples after `from` (timers do not run while paused).
    fn advance_unpaused(&self, from: u64, amount: u64) -> u64 {
        let mut pos = from;
        let mut left = amount;
        for n in 0..MAX_PAUSE_TOGGLES / 2 {
            let Some((p0, p1)) = self.pause_span(n) else {
                break;
            };
            if p1 <= pos {
                continue;
            }
            if p0 > pos {
                let run = p0 - pos;
                if run >= left {
                    return pos.saturating_add(left);
                }
                left -= run;
            }
            if p1 == NONE {
                return NONE;
            }
            pos = p1;
        }
        pos.saturating_add(left)
    }

    /// Paused samples in `[from, to)`.
    fn paused_within(&self, from: u64, to: u64) -> u64 {
        (0..MAX_PAUSE_TOGGLES / 2)
            .map_while(|n| self.pause_span(n))
            .map(|(p0, p1)| p1.min(to).saturating_sub(p0.max(from)))
            .sum()
    }

    /// Leg side, after each frame (or gap): publishes that `leg` has judged everything before
    /// `decided` (None while its detector is confirming an onset) and makes the cross-leg
    /// decisions (see the module docs for the ordering). Returns the stop to make, with the
    /// index the file ends at when the decision fixes one.
    pub(crate) fn judged(&self, leg: usize, decided: Option<u64>) -> Option<(Reason, Option<u64>)> {
        if let Some(d) = decided {
            // Only this leg stores its `decided` (a plain SeqCst store, the one locked write a
            // frame needs: the store-then-load of the module docs).
            let mine = &self.leg(leg).decided;
            if d > mine.load(Ordering::Relaxed) {
                mine.store(d, SEQ);
            }
        }
        self.decide().1
    }

    /// The cross-leg decisions from what both legs have judged: returns how far both have
    /// (the writer's limit) and the stop they call for, if any. The legs call it after every
    /// frame; the writer too, after it jumps a leg (which judges that leg's jumped span silent).
    pub(crate) fn decide(&self) -> (u64, Option<(Reason, Option<u64>)>) {
        let both = self.legs[0].judged().min(self.legs[1].judged());
        (both, self.decision(both))
    }

    fn decision(&self, both: u64) -> Option<(Reason, Option<u64>)> {
        let start = self.start_at.load(SEQ);
        if start == NONE {
            let armed = self.armed_at.load(SEQ);
            if armed != NONE && both >= self.advance_unpaused(armed, self.initial_silence) {
                return Some((Reason::Silence, Some(armed)));
            }
            return None;
        }
        let sound = self.legs[0]
            .sound_until
            .load(SEQ)
            .max(self.legs[1].sound_until.load(SEQ))
            .max(start);
        let silence_end = self.advance_unpaused(sound, self.max_silence);
        if both >= silence_end {
            return Some((Reason::Silence, Some(silence_end)));
        }
        // The limits stop once both legs are past them (the writer cuts the file exactly), so
        // a leg a frame behind the other still gets its last frame in.
        let (limit, reason) = self.limit_end(start);
        if both >= limit {
            return Some((reason, None));
        }
        None
    }

    /// Where the file's duration or size limit is reached, for a file starting at `start`.
    fn limit_end(&self, start: u64) -> (u64, Reason) {
        let duration = self.advance_unpaused(start, self.duration_frames);
        let size = if self.pause_skips {
            self.advance_unpaused(start, self.size_frames)
        } else {
            start.saturating_add(self.size_frames)
        };
        if duration <= size {
            (duration, Reason::Duration)
        } else {
            (size, Reason::Filesize)
        }
    }

    /// Leg side: a frame of speech on `leg` ending at `end`, whose talkspurt the detector
    /// confirmed `onset_frames_ago` frames after it began.
    pub(crate) fn speech(&self, leg: usize, end: u64, onset_frames_ago: u32) {
        let armed = self.armed_at.load(SEQ);
        if armed == NONE || end <= armed {
            return; // before the caller's beep has played
        }
        // `speech_samples` and `sound_until` are this leg's alone: plain stores, no
        // read-modify-write. `sound_until` is Release: it is read only after the `decided` that
        // follows it (SeqCst, so Release too), whose load is an Acquire.
        let l = self.leg(leg);
        let samples = l.speech_samples.load(Ordering::Relaxed);
        l.speech_samples
            .store(samples + FRAME_SAMPLES as u64, Ordering::Relaxed);
        if end > l.sound_until.load(Ordering::Relaxed) {
            l.sound_until.store(end, Ordering::Release);
        }
        let frames = PREROLL_FRAMES as u64 + 1 + u64::from(onset_frames_ago);
        let candidate = end.saturating_sub(frames * FRAME_SAMPLES as u64).max(armed);
        // `start_at` only goes down: a candidate not below it changes nothing (no locked write
        // on every frame of speech once the recording has started).
        if candidate < self.start_at.load(SEQ) {
            self.start_at.fetch_min(candidate, SEQ);
        }
    }

    /// How far `leg` has claimed its timeline (its position, gaps included).
    pub(crate) fn reach(&self, leg: usize) -> u64 {
        self.leg(leg).edge.load(SEQ)
    }

    /// Where the writer's last jump of `leg` ended (0: never jumped).
    pub(crate) fn jumped_to(&self, leg: usize) -> u64 {
        self.leg(leg).filled_to.load(Ordering::Acquire)
    }

    /// Whether the writer jumped `leg` past `end` (its audio there is late).
    pub(crate) fn jumped_past(&self, leg: usize, end: u64) -> bool {
        self.leg(leg).filled_to.load(SEQ) >= end
    }

    /// Leg side: the leg's detector found speech (for its `contains_sound`).
    pub(crate) fn leg_contains_sound(&self, leg: usize) {
        self.leg(leg).contains_sound.store(true, Ordering::Relaxed);
    }

    /// Leg side: the stop `reason` with the file ending at `end_at` (None: where the legs got).
    pub(crate) fn stop(&self, reason: Reason, end_at: Option<u64>) -> Reason {
        if self.session.stopped().is_none() {
            if let Some(e) = end_at {
                self.end_at.fetch_min(e, SEQ);
            }
        }
        self.session.stop(reason)
    }

    pub(crate) fn add_frames_dropped(&self, leg: usize, frames: u64) {
        self.leg(leg)
            .frames_dropped
            .fetch_add(frames, Ordering::Relaxed);
        self.session.add_frames_dropped(frames);
    }
}

/// A leg's side of its ring position and gaps (held by its [`crate::Recorder`]).
#[derive(Debug)]
pub(crate) struct LegLink {
    pub(crate) call: Arc<CallShared>,
    pub(crate) leg: usize,
    /// Index of the next sample this leg takes (after its input, gaps included).
    pub(crate) input_at: u64,
    /// A gap not yet published (the queue was full).
    pending_gap: Option<(u64, u64)>,
    /// The last gap published: its place in the queue and its end (to extend it).
    last_gap: Option<(u64, u64)>,
    /// Samples of gaps this leg made so far (the in-band detector does not see them).
    pub(crate) gap_samples: u64,
}

/// What happened to a write.
pub(crate) enum Written {
    /// Sent (or part of it late, dropped).
    Sent,
    /// The ring was full: the audio became a gap (lost, counted).
    Lost,
}

impl LegLink {
    pub(crate) fn new(call: Arc<CallShared>, leg: usize) -> LegLink {
        LegLink {
            call,
            leg,
            input_at: 0,
            pending_gap: None,
            last_gap: None,
            gap_samples: 0,
        }
    }

    /// Publishes the pending gap if the writer has taken the previous one.
    fn publish_gap(&mut self) -> bool {
        let Some((from, to)) = self.pending_gap else {
            return true;
        };
        let shared = self.call.leg(self.leg);
        // A gap right after the last one published (no byte between) extends it while the
        // writer has not taken it: a leg moved on in many small steps takes one entry.
        let extended = self
            .last_gap
            .is_some_and(|(index, end)| end == from && shared.extend_gap(index, end, to));
        if extended {
            self.last_gap = self.last_gap.map(|(index, _)| (index, to));
        } else {
            let Some(index) = shared.push_gap(from, to) else {
                return false;
            };
            self.last_gap = Some((index, to));
        }
        self.pending_gap = None;
        true
    }

    /// Claims `[at, at + n)` on the edge; returns the index claimed from (later than `at` when
    /// the writer jumped this leg: what lies before it is late).
    fn claim(&mut self, at: u64, n: u64) -> u64 {
        let edge = &self.call.leg(self.leg).edge;
        loop {
            let e = edge.load(SEQ);
            if e > at {
                // Jumped by the writer past (part of) this: only what follows `e` is claimed.
                if e >= at + n {
                    return e;
                }
                if edge.compare_exchange(e, at + n, SEQ, SEQ).is_ok() {
                    return e;
                }
            } else if edge.compare_exchange(e, at + n, SEQ, SEQ).is_ok() {
                return at;
            }
        }
    }

    /// Makes `[at, at + n)` a gap (no bytes): claimed, then published or held pending.
    pub(crate) fn gap(&mut self, at: u64, n: u64) {
        if n == 0 {
            return;
        }
        let from = self.claim(at, n);
        if from >= at + n {
            return;
        }
        self.pending_gap = match self.pending_gap {
            Some((f, t)) if t == from => Some((f, at + n)),
            Some(g) => {
                // Cannot happen: a held gap is always extended, never followed by bytes.
                Some(g)
            }
            None => Some((from, at + n)),
        };
        self.publish_gap();
    }

    /// Sends `audio` (indices from `at`) to the ring: the part the writer jumped over is
    /// dropped; a ring without room (or a gap still waiting to be published) turns it into a
    /// gap, counted as lost.
    pub(crate) fn write(
        &mut self,
        ring: &mut rtrb::Producer<u8>,
        audio: &[u8],
        at: u64,
    ) -> Written {
        if audio.is_empty() {
            return Written::Sent;
        }
        let n = audio.len() as u64;
        if !self.publish_gap() || ring.slots() < audio.len() {
            self.gap(at, n);
            return Written::Lost;
        }
        let from = self.claim(at, n);
        if from < at + n {
            let skip = (from - at) as usize;
            // Room was checked above and only this thread writes to the ring.
            let _ = ring.push_entire_slice(&audio[skip..]);
        }
        Written::Sent
    }
}

/// One leg as the writer reads it: bytes received and not yet emitted, and the jumps (gaps)
/// among them. Received bytes stay in the leg's ring until they are emitted, so a leg in step
/// with the other is copied once, ring to output (`take`); only when the ring fills past half
/// (this leg ahead of the other, or held back) are its oldest received bytes moved to `buf`,
/// which always holds bytes older than those left in the ring.
struct LegFeed {
    ring: Consumer<u8>,
    /// Received bytes moved out of the ring (circular: `len` bytes from `head`).
    buf: Box<[u8]>,
    head: usize,
    len: usize,
    /// Received bytes still in the ring (its first `in_ring`), after those in `buf`.
    in_ring: usize,
    /// Index of the first received byte (or of the next jump, when at it).
    front: u64,
    /// Index after everything received.
    end: u64,
    jumps: [(u64, u64); GAPS],
    njumps: usize,
    /// Samples of this leg's channel filled with silence, and the latest runs of them as
    /// (file sample, length), so a file cut at finalize (a silence stop decided late, a
    /// barge-in tone, trimming) counts only the fill it keeps.
    filled: u64,
    fill_runs: [(u64, u64); FILL_RUNS],
    nfill: usize,
}

/// Fill runs a leg remembers (older ones are assumed to lie before any cut).
const FILL_RUNS: usize = 32;

impl LegFeed {
    fn new(ring: Consumer<u8>, capacity: usize) -> LegFeed {
        LegFeed {
            ring,
            // Zeroed memory the allocator maps lazily: a leg that never gets ahead of the other
            // never touches it.
            buf: vec![0; capacity].into_boxed_slice(),
            head: 0,
            len: 0,
            in_ring: 0,
            front: 0,
            end: 0,
            jumps: [(0, 0); GAPS],
            njumps: 0,
            filled: 0,
            fill_runs: [(0, 0); FILL_RUNS],
            nfill: 0,
        }
    }

    /// Bytes in the ring not yet received (counted as this leg's).
    fn unreceived(&self) -> usize {
        self.ring.slots() - self.in_ring
    }

    /// Receives the next `n` bytes of the ring (they stay there): the first ones, for indices
    /// already written (filled), are late and dropped.
    fn receive(&mut self, n: usize) {
        let late = self.front.saturating_sub(self.end).min(n as u64) as usize;
        if late > 0 {
            // Indices past `end` were filled only with nothing received (see `take`), so the
            // late bytes are the ring's first.
            debug_assert!(self.len == 0 && self.in_ring == 0);
            if let Ok(chunk) = self.ring.read_chunk(late) {
                chunk.commit_all();
            }
        }
        self.in_ring += n - late;
        self.end += n as u64;
    }

    /// Moves received bytes out of the ring into `buf` while the ring is more than half full,
    /// so the leg keeps room to push while it waits for the other leg.
    fn spill(&mut self) {
        let half = self.ring.buffer().capacity() / 2;
        let k = self.in_ring.min(self.buf.len() - self.len);
        if self.ring.slots() <= half || k == 0 {
            return;
        }
        let Ok(chunk) = self.ring.read_chunk(k) else {
            return;
        };
        let (x, y) = chunk.as_slices();
        let cap = self.buf.len();
        let mut at = (self.head + self.len) % cap;
        for part in [x, y] {
            let mut rest = part;
            while !rest.is_empty() {
                let m = rest.len().min(cap - at);
                self.buf[at..at + m].copy_from_slice(&rest[..m]);
                rest = &rest[m..];
                at = (at + m) % cap;
            }
        }
        chunk.commit_all();
        self.len += k;
        self.in_ring -= k;
    }

    /// Received bytes not yet emitted.
    fn received(&self) -> usize {
        self.len + self.in_ring
    }

    fn push_jump(&mut self, to: u64) {
        if to > self.end {
            let last = self.njumps.checked_sub(1);
            match last {
                // Adjacent to the last jump (no byte between): the same silence, one entry. A
                // leg its host moves on every few milliseconds (`callrec serve`'s tick for a
                // party that does not send) never fills the table.
                Some(i) if self.jumps[i].1 == self.end => self.jumps[i].1 = to,
                _ if self.njumps < self.jumps.len() => {
                    self.jumps[self.njumps] = (self.end, to);
                    self.njumps += 1;
                }
                _ => {}
            }
        }
        self.end = self.end.max(to);
        self.pop_jumps();
    }

    /// Whether a jump from `from` can be taken now: the table has room, or it continues the
    /// last jump.
    fn can_jump(&self, from: u64) -> bool {
        self.njumps < self.jumps.len()
            || (from <= self.end && self.jumps[self.njumps - 1].1 == self.end)
    }

    fn pop_jumps(&mut self) {
        let done = self.jumps[..self.njumps]
            .iter()
            .take_while(|j| j.1 <= self.front)
            .count();
        if done > 0 {
            // Only the entries in use move (the table is large; most of it is empty).
            self.jumps.copy_within(done..self.njumps, 0);
            self.njumps -= done;
        }
    }

    /// Whether everything this leg will ever send has been received (its ring and gap slot
    /// are empty); only meaningful once the recording has settled.
    fn exhausted(&self, shared: &LegShared) -> bool {
        self.unreceived() == 0 && shared.gaps_empty()
    }

    /// Receives what the ring holds (and the published gaps among it), then makes room in the
    /// ring if it is filling.
    fn drain(&mut self, shared: &LegShared) {
        // The fill level is read (Acquire) before the gaps: every gap published before a byte
        // counted here is seen below, and a gap seen that was published after them starts at
        // or after the end of what is counted.
        let mut left = self.unreceived();
        while let Some((from, _)) = shared.peek_gap() {
            if !self.can_jump(from) || from > self.end + left as u64 {
                break;
            }
            let before = (from.saturating_sub(self.end) as usize).min(left);
            self.receive(before);
            left -= before;
            let to = shared.take_gap();
            self.push_jump(to);
        }
        self.receive(left);
        self.spill();
    }

    /// The next run from `front`, at most `max` samples: (samples, is data). A jump gives a
    /// silent run; (0, _) means nothing received there.
    fn run(&self, max: u64) -> (u64, bool) {
        if self.njumps > 0 && self.jumps[0].0 <= self.front {
            return ((self.jumps[0].1 - self.front).min(max), false);
        }
        let next_jump = if self.njumps > 0 {
            self.jumps[0].0
        } else {
            NONE
        };
        (
            (self.received() as u64)
                .min(next_jump - self.front)
                .min(max),
            true,
        )
    }

    /// Notes `n` samples of fill at file sample `at`.
    fn note_fill(&mut self, at: u64, n: u64) {
        self.filled += n;
        if self.nfill > 0 {
            let last = &mut self.fill_runs[self.nfill - 1];
            if last.0 + last.1 == at {
                last.1 += n;
                return;
            }
        }
        if self.nfill == FILL_RUNS {
            self.fill_runs.copy_within(1.., 0);
            self.nfill -= 1;
        }
        self.fill_runs[self.nfill] = (at, n);
        self.nfill += 1;
    }

    /// Fill kept in a file cut to `frames` samples a channel.
    fn filled_within(&self, frames: u64) -> u64 {
        let cut: u64 = self.fill_runs[..self.nfill]
            .iter()
            .map(|&(at, n)| (at + n).saturating_sub(at.max(frames)))
            .sum();
        self.filled - cut.min(self.filled)
    }

    /// Takes `n` samples from the front into `out`, silence where nothing was received; with
    /// `file_at` (the file sample of the first), counts that silence as fill.
    fn take(
        &mut self,
        n: u64,
        mut out: Option<&mut [u8]>,
        silence: u8,
        file_at: Option<u64>,
    ) -> u64 {
        let mut done = 0u64;
        let mut silent = 0;
        while done < n {
            let (run, data) = self.run(n - done);
            let (run, data) = if run == 0 {
                (n - done, false)
            } else {
                (run, data)
            };
            if data {
                // `run` never exceeds what was received (see `run`): the oldest bytes from
                // `buf`, by its contiguous pieces, then the rest straight from the ring.
                let cap = self.buf.len();
                let (mut i, mut left) = (done as usize, run as usize);
                while left > 0 && self.len > 0 {
                    let k = left.min(self.len).min(cap - self.head);
                    if let Some(o) = out.as_deref_mut() {
                        o[i..i + k].copy_from_slice(&self.buf[self.head..self.head + k]);
                    }
                    self.head = (self.head + k) % cap;
                    self.len -= k;
                    i += k;
                    left -= k;
                }
                if left > 0 {
                    if let Ok(chunk) = self.ring.read_chunk(left) {
                        if let Some(o) = out.as_deref_mut() {
                            let (x, y) = chunk.as_slices();
                            o[i..i + x.len()].copy_from_slice(x);
                            o[i + x.len()..i + left].copy_from_slice(y);
                        }
                        chunk.commit_all();
                    }
                    self.in_ring -= left;
                }
            } else if let Some(o) = out.as_deref_mut() {
                o[done as usize..(done + run) as usize].fill(silence);
            }
            if !data {
                silent += run;
                if let Some(at) = file_at {
                    self.note_fill(at + done, run);
                }
            }
            self.front += run;
            done += run;
            self.pop_jumps();
        }
        silent
    }

    /// Drops what was received before `to` (before the file starts); never past `end`.
    fn discard_to(&mut self, to: u64) {
        let to = to.min(self.end);
        if to > self.front {
            self.take(to - self.front, None, 0, None);
        }
    }
}

/// Emission chunk (samples per channel per write).
const CHUNK: usize = 2048;

/// The writer's side of a two-leg recording.
pub(crate) struct CallFeed {
    pub(crate) call: Arc<CallShared>,
    legs: [LegFeed; 2],
    /// Index up to which everything is emitted or discarded (once started).
    cursor: u64,
    /// The index the file starts at, once emitting.
    start: Option<u64>,
    lag: u64,
    file_frames: u64,
    timed_frames: u64,
    input_codec: Codec,
    file_codec: Codec,
    out: Vec<u8>,
    a: Vec<u8>,
    b: Vec<u8>,
}

/// Interleaves two channels into stereo frames, transcoding from `input` to `file` as it goes
/// (one pass, no intermediate copy: the writer's hot loop for `"both"`).
fn interleave(input: Codec, file: Codec, a: &[u8], b: &[u8], out: &mut [u8]) {
    let frames = out.chunks_exact_mut(2).zip(a.iter().zip(b));
    if input == file {
        for (o, (&x, &y)) in frames {
            o[0] = x;
            o[1] = y;
        }
    } else {
        let table = input.transcode_table(file);
        for (o, (&x, &y)) in frames {
            o[0] = table[x as usize];
            o[1] = table[y as usize];
        }
    }
}

/// One sample of `"mixed"`: both legs decoded, summed with saturation, encoded in the file's law.
pub fn mix(input: Codec, file: Codec, a: u8, b: u8) -> u8 {
    let sum = i32::from(input.decode(a)) + i32::from(input.decode(b));
    file.encode(sum.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16)
}

/// [`mix`] over two channels into `out`: one load a sample from the pair's table instead of
/// two decodes, an add, a clamp and an encode (the writer's hot loop for `"mixed"`).
fn mix_into(input: Codec, file: Codec, a: &[u8], b: &[u8], out: &mut [u8]) {
    let table = mix_table(input, file);
    for (o, (&x, &y)) in out.iter_mut().zip(a.iter().zip(b)) {
        *o = table[usize::from(x) << 8 | usize::from(y)];
    }
}

/// Every pair of input bytes mixed, for one (input law, file law): 64 KiB each, made on first
/// use in static memory (no allocation), at most four a process.
type MixTable = [u8; 1 << 16];

fn mix_table(input: Codec, file: Codec) -> &'static MixTable {
    use std::sync::LazyLock;
    fn make(input: Codec, file: Codec) -> MixTable {
        let mut t = [0u8; 1 << 16];
        for (i, m) in t.iter_mut().enumerate() {
            *m = mix(input, file, (i >> 8) as u8, i as u8);
        }
        t
    }
    static AA: LazyLock<MixTable> = LazyLock::new(|| make(Codec::Alaw, Codec::Alaw));
    static AU: LazyLock<MixTable> = LazyLock::new(|| make(Codec::Alaw, Codec::Ulaw));
    static UA: LazyLock<MixTable> = LazyLock::new(|| make(Codec::Ulaw, Codec::Alaw));
    static UU: LazyLock<MixTable> = LazyLock::new(|| make(Codec::Ulaw, Codec::Ulaw));
    match (input, file) {
        (Codec::Alaw, Codec::Alaw) => &AA,
        (Codec::Alaw, Codec::Ulaw) => &AU,
        (Codec::Ulaw, Codec::Alaw) => &UA,
        (Codec::Ulaw, Codec::Ulaw) => &UU,
    }
}

impl CallFeed {
    pub(crate) fn new(
        call: Arc<CallShared>,
        rings: [Consumer<u8>; 2],
        ring_bytes: usize,
        input_codec: Codec,
        file_codec: Codec,
    ) -> CallFeed {
        // With the ring's own bytes, a leg holds what it did before this buffer was only for
        // bytes out of the ring: two rings, the hold and a push.
        let capacity = ring_bytes + HOLD as usize + crate::recorder::MAX_PUSH_BYTES;
        let [r0, r1] = rings;
        CallFeed {
            call,
            legs: [LegFeed::new(r0, capacity), LegFeed::new(r1, capacity)],
            cursor: 0,
            start: None,
            lag: ring_bytes as u64,
            file_frames: 0,
            timed_frames: 0,
            input_codec,
            file_codec,
            out: vec![0; 2 * CHUNK],
            a: vec![0; CHUNK],
            b: vec![0; CHUNK],
        }
    }

    /// After a write error: empties the rings (so the legs never see them full), writing
    /// nothing.
    pub(crate) fn discard(&mut self) {
        for l in 0..2 {
            let feed = &mut self.legs[l];
            let n = feed.ring.slots();
            if let Ok(chunk) = feed.ring.read_chunk(n) {
                chunk.commit_all();
            }
            // What was received is gone with the ring: nothing more is emitted.
            feed.in_ring = 0;
            feed.len = 0;
            feed.njumps = 0;
            feed.front = feed.end;
            self.call.leg(l).clear_gaps();
        }
    }

    /// Whether the writer should serve this call: a batch not yet received in the two rings
    /// together (a leg that sends nothing leaves the other's ring to fill; serving it then
    /// jumps the silent leg), or a ring more than half full with bytes received and held (a
    /// pump spills them, and a host's `feed` waits for half a ring free).
    pub(crate) fn due(&self, batch_bytes: usize) -> bool {
        self.legs[0].unreceived() + self.legs[1].unreceived() >= batch_bytes
            || self
                .legs
                .iter()
                .any(|l| l.ring.slots() > l.ring.buffer().capacity() / 2)
    }

    /// Jumps a leg that is more than a ring behind the other, when it is idle (see the module
    /// docs).
    fn jump_laggards(&mut self) {
        for l in 0..2 {
            let ahead = self.legs[1 - l].end;
            let me = &self.legs[l];
            let shared = self.call.leg(l);
            let behind = me.end.max(shared.filled_to.load(SEQ));
            if ahead <= behind + self.lag || me.njumps == me.jumps.len() {
                continue;
            }
            if me.unreceived() > 0 || !shared.gaps_empty() {
                continue;
            }
            let to = ahead - self.lag / 2;
            if shared.edge.compare_exchange(me.end, to, SEQ, SEQ).is_ok() {
                self.legs[l].push_jump(to);
                shared.filled_to.fetch_max(to, SEQ);
            }
        }
    }

    /// Moves audio from the rings to the file as far as it is decided (all of it once
    /// `settled`); returns the bytes written. Errors are the file's.
    pub(crate) fn pump(&mut self, wav: &mut WavFile, settled: bool) -> std::io::Result<u64> {
        let mut written = 0;
        loop {
            for l in 0..2 {
                self.legs[l].drain(self.call.leg(l));
            }
            if !settled {
                self.jump_laggards();
            }
            let progressed = self.emit(wav, settled, &mut written)?;
            if !settled || !progressed {
                return Ok(written);
            }
        }
    }

    /// Where the file may be written up to now. Unsettled, the writer first makes the
    /// decisions itself from what both legs have judged (it may have just jumped one), so it
    /// never writes past a stop that is due.
    fn limit(&self, settled: bool) -> u64 {
        if settled {
            let reach = self.call.legs[0]
                .edge
                .load(SEQ)
                .max(self.call.legs[1].edge.load(SEQ));
            return reach
                .min(self.call.end_at.load(SEQ))
                .min(self.call.cut_at.load(SEQ));
        }
        let (judged, stop) = self.call.decide();
        if let Some((reason, end_at)) = stop {
            self.call.stop(reason, end_at);
        }
        judged
            .saturating_sub(HOLD)
            .min(self.call.end_at.load(SEQ))
            .min(self.call.cut_at.load(SEQ))
            .min(self.legs[0].end)
            .min(self.legs[1].end)
    }

    /// How far leg `l` can supply samples now: what it has received, or (settled, with
    /// nothing more to come) anything, as silence.
    fn supply_end(&self, l: usize, settled: bool) -> u64 {
        if settled && self.legs[l].exhausted(self.call.leg(l)) {
            NONE
        } else {
            self.legs[l].end
        }
    }

    fn emit(
        &mut self,
        wav: &mut WavFile,
        settled: bool,
        written: &mut u64,
    ) -> std::io::Result<bool> {
        let limit = self.limit(settled);
        if self.start.is_none() {
            let start = self.call.start_at.load(SEQ);
            if start == NONE || (!settled && start >= limit) {
                // Not started, or the start may still move down to `limit`: what lies before
                // both can never be in the file.
                let to = limit.min(start);
                let before = self.legs[0].front + self.legs[1].front;
                for l in &mut self.legs {
                    l.discard_to(to);
                }
                return Ok(self.legs[0].front + self.legs[1].front > before);
            }
            let start = start.max(self.legs[0].front).max(self.legs[1].front);
            for l in &mut self.legs {
                l.discard_to(start);
            }
            if self.legs.iter().any(|l| l.front < start) && !settled {
                return Ok(false); // the start's audio has not all arrived
            }
            self.start = Some(start);
            self.cursor = start;
            for l in &mut self.legs {
                l.front = l.front.max(start);
            }
        }
        let mut progressed = false;
        let stereo = self.call.mode == Legs::Both;
        let silence = self.input_codec.silence();
        while self.cursor < limit {
            let room = self.session_room();
            if room == 0 {
                break;
            }
            let paused = self.call.paused_at(self.cursor);
            let boundary = self.call.next_toggle_after(self.cursor);
            let supply = self.supply_end(0, settled).min(self.supply_end(1, settled));
            let n = limit
                .min(boundary)
                .min(supply)
                .saturating_sub(self.cursor)
                .min(CHUNK as u64);
            if n == 0 {
                break;
            }
            progressed = true;
            if paused && self.call.pause_skips {
                for l in &mut self.legs {
                    l.take(n, None, silence, None);
                }
                self.cursor += n;
                continue;
            }
            let n = if paused {
                n.min(self.call.size_frames - self.file_frames)
            } else {
                n.min(room)
            };
            let k = n as usize;
            // Paused silence is not fill: the host asked for it.
            let fill_at = (!paused).then_some(self.file_frames);
            self.legs[0].take(n, Some(&mut self.a[..k]), silence, fill_at);
            self.legs[1].take(n, Some(&mut self.b[..k]), silence, fill_at);
            if paused {
                self.a[..k].fill(silence);
                self.b[..k].fill(silence);
            } else {
                self.timed_frames += n;
            }
            let bytes = if stereo {
                interleave(
                    self.input_codec,
                    self.file_codec,
                    &self.a[..k],
                    &self.b[..k],
                    &mut self.out[..2 * k],
                );
                2 * k
            } else {
                mix_into(
                    self.input_codec,
                    self.file_codec,
                    &self.a[..k],
                    &self.b[..k],
                    &mut self.out[..k],
                );
                k
            };
            self.file_frames += n;
            self.cursor += n;
            wav.append(&mut self.out[..bytes])?;
            *written += bytes as u64;
            if self.session_room() == 0 {
                let reason = if self.timed_frames >= self.call.duration_frames {
                    Reason::Duration
                } else {
                    Reason::Filesize
                };
                self.call.session.stop(reason);
            }
        }
        Ok(progressed)
    }

    fn session_room(&self) -> u64 {
        (self.call.size_frames - self.file_frames.min(self.call.size_frames))
            .min(self.call.duration_frames - self.timed_frames.min(self.call.duration_frames))
    }

    /// The file's channels (2 for `"both"`, 1 for `"mixed"`).
    pub(crate) fn channels(&self) -> u64 {
        u64::from(self.call.mode.channels())
    }

    /// Audio bytes to keep at finalize: the file up to the end decided (silence stop, barge-in
    /// cut, trim), in whole frames.
    pub(crate) fn keep_bytes(&self) -> u64 {
        self.kept_frames() * self.channels()
    }

    /// Samples a channel the file keeps at finalize.
    fn kept_frames(&self) -> u64 {
        let Some(start) = self.start else {
            return 0;
        };
        let mut end = self.call.end_at.load(SEQ).min(self.call.cut_at.load(SEQ));
        if self.call.trim {
            let sound = self.call.legs[0]
                .sound_until
                .load(SEQ)
                .max(self.call.legs[1].sound_until.load(SEQ));
            end = end.min(sound);
        }
        if end == NONE {
            return self.file_frames;
        }
        let mut frames = end.saturating_sub(start);
        if self.call.pause_skips {
            frames -= self.call.paused_within(start, end.max(start));
        }
        frames.min(self.file_frames)
    }

    /// The per-leg part of the result.
    pub(crate) fn result(&self) -> LegsResult {
        let leg = |l: usize| {
            let s = self.call.leg(l);
            LegResult {
                contains_sound: s.contains_sound.load(Ordering::Relaxed),
                speech_samples: s.speech_samples.load(Ordering::Relaxed),
                samples_filled: self.legs[l].filled_within(self.kept_frames()),
                frames_dropped: s.frames_dropped.load(Ordering::Relaxed),
            }
        };
        LegsResult {
            caller: leg(CALLER),
            other: leg(OTHER),
        }
    }
}
