//! The recorder's in-band DTMF stage (DESIGN §5): the [`DtmfDetector`] on the caller's audio,
//! and what the recorder needs to act on it without touching the writer.
//!
//! **Where the tone is removed.** The writer is left as it is; everything happens on the
//! real-time side, before audio enters the ring:
//!
//! * *Barge-in tone cut* (`mask_dtmf` off): audio flows to the ring undelayed, and the
//!   detector runs on the state machine's own 20 ms frames (a partial frame when one is
//!   flushed), on the samples the sound detector's analysis decoded: each frame is decoded
//!   once for both, and the detector's sample count is the pipeline's. When a barge-in
//!   digit is confirmed (about 40 ms into the tone), the recording stops and the session's
//!   keep point (the one `trim_trailing_silence` uses) is set to the ring offset where the tone
//!   began, so the finalized file ends there. [`WriteLog`] remembers where the last few writes
//!   of input landed in the ring, so a sample position maps to a file offset even across the
//!   pre-roll and pauses.
//! * *Masking* (`mask_dtmf` on): nothing of a tone may reach the disk, not even for the 40 ms
//!   the detector needs to confirm it, so the input passes through a short [`DelayLine`] before
//!   the recorder's state machine sees it. Audio leaves the delay line once the detector has
//!   decided it ([`DtmfDetector::decided_before`]): normally 15-20 ms after it arrived, longer
//!   only while a tone is being confirmed. Samples of a confirmed tone (with one block of
//!   margin either side) leave as G.711 silence, so the state machine, the file and the
//!   encryption never see them. Pause and resume are queued at their exact input sample and
//!   applied when the delayed audio reaches it. Hangup, a host digit that barges in and
//!   dropping the recorder flush the delay line (masking a tone still being confirmed too, to
//!   be safe). The price: an *asynchronous* abort or engine shutdown (from another thread)
//!   loses the audio still in the delay line, at most ~20 ms in steady state, because the
//!   writer finalizes without waiting for the media thread's next call.

use crate::dtmf::{DtmfDetector, DtmfEvent, MARGIN};
use crate::g711::Codec;

/// The delay line's capacity in samples (512 ms). The detector holds audio back at most while
/// it confirms a tone (≤ 5 passing triples, gaps of ≤ 5 failing ones between them: ~130 ms),
/// plus one push piece; the rest is margin.
pub(crate) const DELAY_SAMPLES: usize = 4096;
/// Writes remembered for the tone cut (640 ms of 20 ms frames).
const LOG_WRITES: usize = 32;
/// Tone spans remembered for masking until the delayed audio has passed them.
const MAX_SPANS: usize = 4;
/// Pauses/resumes queued for the delayed audio.
const MAX_TOGGLES: usize = 8;

/// Where recent writes of input audio landed in the ring.
#[derive(Clone, Debug)]
pub(crate) struct WriteLog {
    /// (input sample of the first byte, ring offset, bytes), oldest overwritten first.
    writes: [(u64, u64, u64); LOG_WRITES],
    next: usize,
    len: usize,
}

impl WriteLog {
    pub(crate) fn new() -> WriteLog {
        WriteLog {
            writes: [(0, 0, 0); LOG_WRITES],
            next: 0,
            len: 0,
        }
    }

    pub(crate) fn note(&mut self, input_at: u64, ring_at: u64, bytes: u64) {
        if bytes == 0 {
            return;
        }
        self.writes[self.next] = (input_at, ring_at, bytes);
        self.next = (self.next + 1) % LOG_WRITES;
        self.len = (self.len + 1).min(LOG_WRITES);
    }

    /// The ring offset at which input sample `sample` was (or would have been) written: inside
    /// a write, its byte; in a gap (not recording, or paused with `skip`), where the next write
    /// began; after every write, `ring_end`.
    pub(crate) fn ring_offset_of(&self, sample: u64, ring_end: u64) -> u64 {
        let mut after = ring_end;
        for i in 0..self.len {
            let (input_at, ring_at, bytes) =
                self.writes[(self.next + LOG_WRITES - 1 - i) % LOG_WRITES];
            if input_at <= sample {
                return if sample < input_at + bytes {
                    ring_at + (sample - input_at)
                } else {
                    after.min(ring_at + bytes)
                };
            }
            after = ring_at;
        }
        after
    }
}

/// A digit the detector confirmed, for the recorder to act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Confirmed {
    pub(crate) digit: char,
    /// The tone's first sample, within one block.
    pub(crate) start: u64,
}

/// What [`DelayLine::next`] releases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Released {
    /// `bytes` of audio, at the start of the piece.
    Audio { bytes: usize },
    /// The host paused (true) or resumed here.
    Toggle { pause: bool },
}

/// The fixed-size FIFO of input not yet decided by the detector (masking only).
#[derive(Clone, Debug)]
pub(crate) struct DelayLine {
    buf: [u8; DELAY_SAMPLES],
    /// Input sample index of the oldest held byte.
    start: u64,
    head: usize,
    len: usize,
    /// Confirmed tones to silence, `[from, to)`; `to == u64::MAX` while the tone sounds.
    spans: [(u64, u64); MAX_SPANS],
    spans_len: usize,
    /// Pause (true) or resume (false) at an input sample.
    toggles: [(u64, bool); MAX_TOGGLES],
    toggles_len: usize,
    silence: u8,
}

impl DelayLine {
    pub(crate) fn new(codec: Codec) -> DelayLine {
        DelayLine {
            buf: [0; DELAY_SAMPLES],
            start: 0,
            head: 0,
            len: 0,
            spans: [(0, 0); MAX_SPANS],
            spans_len: 0,
            toggles: [(0, false); MAX_TOGGLES],
            toggles_len: 0,
            silence: codec.silence(),
        }
    }

    /// Input samples taken in so far.
    pub(crate) fn end(&self) -> u64 {
        self.start + self.len as u64
    }

    /// Room left, in samples.
    pub(crate) fn room(&self) -> usize {
        DELAY_SAMPLES - self.len
    }

    /// Takes in `audio` (the caller keeps `audio.len() <= room()`).
    pub(crate) fn put(&mut self, audio: &[u8]) {
        // At most two contiguous runs: to the end of the buffer, then from its start.
        let at = (self.head + self.len) % DELAY_SAMPLES;
        let first = audio.len().min(DELAY_SAMPLES - at);
        self.buf[at..at + first].copy_from_slice(&audio[..first]);
        self.buf[..audio.len() - first].copy_from_slice(&audio[first..]);
        self.len += audio.len();
    }

    /// A confirmed tone from `from`; it lasts until [`DelayLine::tone_ended`].
    pub(crate) fn tone_started(&mut self, from: u64) {
        self.add_span(from, u64::MAX);
    }

    /// The sounding tone ended at `to` (exclusive).
    pub(crate) fn tone_ended(&mut self, to: u64) {
        if let Some(span) = self.spans[..self.spans_len]
            .iter_mut()
            .rev()
            .find(|s| s.1 == u64::MAX)
        {
            span.1 = to;
        }
    }

    /// Silences `[from, to)` too (a tone still being confirmed when the line is flushed).
    pub(crate) fn add_span(&mut self, from: u64, to: u64) {
        if self.spans_len == MAX_SPANS {
            // Never expected (spans leave as the audio passes them); merge rather than forget,
            // so masking errs on the side of silence.
            let last = &mut self.spans[MAX_SPANS - 1];
            last.0 = last.0.min(from);
            last.1 = last.1.max(to);
            return;
        }
        self.spans[self.spans_len] = (from, to);
        self.spans_len += 1;
    }

    /// Queues a pause (`true`) or resume at input sample `at`; false when the queue is full.
    pub(crate) fn queue_toggle(&mut self, at: u64, pause: bool) -> bool {
        if self.toggles_len == MAX_TOGGLES {
            return false;
        }
        self.toggles[self.toggles_len] = (at, pause);
        self.toggles_len += 1;
        true
    }

    /// The next thing to release before `until`, in order: a queued pause or resume, or up to
    /// one frame of audio (masked) copied into `piece`. None when nothing is due.
    pub(crate) fn next(
        &mut self,
        until: u64,
        piece: &mut [u8; crate::recorder::FRAME_SAMPLES],
    ) -> Option<Released> {
        if self.due_toggle(until) {
            let pause = self.toggles[0].1;
            self.toggles.copy_within(1..self.toggles_len, 0);
            self.toggles_len -= 1;
            return Some(Released::Toggle { pause });
        }
        let mut stop = until.min(self.end());
        if self.toggles_len > 0 {
            stop = stop.min(self.toggles[0].0);
        }
        if stop <= self.start {
            return None;
        }
        let n = ((stop - self.start) as usize).min(piece.len());
        let first = n.min(DELAY_SAMPLES - self.head);
        piece[..first].copy_from_slice(&self.buf[self.head..self.head + first]);
        piece[first..n].copy_from_slice(&self.buf[..n - first]);
        // Then silence over every masked span's part of this piece.
        let (from, to) = (self.start, self.start + n as u64);
        for &(span_from, span_to) in &self.spans[..self.spans_len] {
            let (a, b) = (span_from.max(from), span_to.min(to));
            if a < b {
                piece[(a - from) as usize..(b - from) as usize].fill(self.silence);
            }
        }
        self.head = (self.head + n) % DELAY_SAMPLES;
        self.len -= n;
        self.start += n as u64;
        self.forget_passed_spans();
        Some(Released::Audio { bytes: n })
    }

    fn due_toggle(&self, until: u64) -> bool {
        self.toggles_len > 0 && self.toggles[0].0 <= self.start && self.start <= until
    }

    fn forget_passed_spans(&mut self) {
        let mut i = 0;
        while i < self.spans_len {
            if self.spans[i].1 <= self.start {
                self.spans.copy_within(i + 1..self.spans_len, i);
                self.spans_len -= 1;
            } else {
                i += 1;
            }
        }
    }
}

/// The detector, and (with `mask_dtmf`) the delay line, of one recording.
#[derive(Clone, Debug)]
pub(crate) struct InBand {
    pub(crate) detector: DtmfDetector,
    pub(crate) log: WriteLog,
    /// Boxed: 4 KiB that a session without masking (the default) does not carry.
    pub(crate) delay: Option<Box<DelayLine>>,
}

impl InBand {
    pub(crate) fn new(codec: Codec, mask: bool) -> InBand {
        InBand {
            detector: DtmfDetector::new(),
            log: WriteLog::new(),
            delay: mask.then(|| Box::new(DelayLine::new(codec))),
        }
    }

    /// True when the detector runs on the recorder's own frames (no masking: the audio is not
    /// delayed, so the frame the sound detector decodes is decoded once for both).
    pub(crate) fn on_frames(&self) -> bool {
        self.delay.is_none()
    }

    /// Runs the detector over G.711 `audio`; returns the first digit confirmed in it, if any
    /// (a second confirmation inside one ≤ 20 ms piece is impossible: confirming takes
    /// 40 ms). With masking, tone starts and ends become masked spans.
    pub(crate) fn detect(&mut self, codec: Codec, audio: &[u8]) -> Option<Confirmed> {
        let mut confirmed = None;
        let delay = &mut self.delay;
        self.detector
            .process(codec, audio, |e| on_event(delay, &mut confirmed, e));
        confirmed
    }

    /// [`InBand::detect`] on audio already decoded to linear samples.
    pub(crate) fn detect_linear(&mut self, samples: &[i16]) -> Option<Confirmed> {
        let mut confirmed = None;
        let delay = &mut self.delay;
        self.detector
            .process_linear(samples, |e| on_event(delay, &mut confirmed, e));
        confirmed
    }
}

/// What the recorder takes from one detector event: the first confirmed digit; with masking,
/// the tone's span (one [`MARGIN`] wider either side).
fn on_event(
    delay: &mut Option<Box<DelayLine>>,
    confirmed: &mut Option<Confirmed>,
    event: DtmfEvent,
) {
    match event {
        DtmfEvent::Pressed { digit, start } => {
            if let Some(d) = delay.as_mut() {
                d.tone_started(start.saturating_sub(MARGIN));
            }
            confirmed.get_or_insert(Confirmed { digit, start });
        }
        DtmfEvent::Released(span) => {
            if let Some(d) = delay.as_mut() {
                d.tone_ended(span.end + MARGIN);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_log_maps_samples_to_ring_offsets() {
        let mut log = WriteLog::new();
        // Pre-roll frames 0..2 at ring 0, then frame 2; paused (skipped) over 480..800.
        log.note(0, 0, 160);
        log.note(160, 160, 160);
        log.note(320, 320, 160);
        log.note(800, 480, 160);
        assert_eq!(log.ring_offset_of(200, 640), 200);
        assert_eq!(log.ring_offset_of(500, 640), 480); // in the skipped gap
        assert_eq!(log.ring_offset_of(850, 640), 530);
        assert_eq!(log.ring_offset_of(5000, 640), 640);
    }

    #[test]
    fn delay_line_masks_spans_and_applies_toggles_in_order() {
        let mut d = DelayLine::new(Codec::Alaw);
        let input: Vec<u8> = (0..400).map(|i| (i % 200) as u8 + 1).collect();
        d.put(&input);
        d.add_span(100, 150);
        d.queue_toggle(300, true);
        let mut out = Vec::new();
        let mut events = Vec::new();
        let mut piece = [0u8; 160];
        while let Some(r) = d.next(350, &mut piece) {
            match r {
                Released::Audio { bytes } => out.extend_from_slice(&piece[..bytes]),
                Released::Toggle { pause } => events.push((out.len(), pause)),
            }
        }
        assert_eq!(out.len(), 350);
        assert_eq!(events, vec![(300, true)]);
        assert!(out[100..150].iter().all(|&b| b == Codec::Alaw.silence()));
        assert_eq!(&out[..100], &input[..100]);
        assert_eq!(&out[150..], &input[150..350]);
        assert_eq!((d.end(), d.room()), (400, DELAY_SAMPLES - 50));
    }
}
