//! The real-time side of a recording: the record action's state machine (DESIGN §3–4).
//!
//! The host's media thread owns a [`Recorder`] and calls [`Recorder::push`] with the caller's
//! audio, [`Recorder::digit`] with RFC 4733 digits, [`Recorder::playout`] to pull the beep and
//! [`Recorder::hangup`] when the call ends. Any thread may stop the recording through a
//! [`RecorderHandle`]. None of these allocate, lock, make a system call or block; each costs
//! O(input). Audio goes to the writer through the session's SPSC ring.
//!
//! Phases: *beeping* (only with `beep_on_start`: the caller's audio is discarded until the beep
//! has been pulled in full, then for [`ECHO_GUARD_SAMPLES`] more so its echo is not taken for
//! the caller) → *waiting* for the first sound (the initial-silence timer runs; the last
//! [`PREROLL_FRAMES`] frames are kept) → *recording* (from the pre-roll, so the onset of the
//! first word is not clipped) → *stopped*.
//!
//! Time is counted in samples of input. Input is analysed on 20 ms (160-sample) frames; a
//! push that is not a multiple of 160 bytes leaves a remainder that the next push completes.
//! Silence timers therefore resolve to whole frames: the recording stops on the first frame at
//! which the silence has lasted at least the configured time.
//!
//! **Nothing pushed is lost.** While recording, a remainder shorter than a frame is sent to the
//! writer at once (unanalysed until its frame completes), so the ring always holds every byte
//! pushed so far: a hangup, an abort from another thread, dropping the recorder, closing it
//! through C or Python, or an engine shutdown all keep the partial frame.
//!
//! **One decode per frame.** Each whole frame is decoded once ([`decoded_frame`]); the sound
//! detector's features and, without masking, in-band DTMF both read those samples.
//!
//! **In-band DTMF** (`detect_dtmf`, `mask_dtmf`): see the `inband` module for how a barge-in
//! tone is cut from the file and how masking keeps every tone off the disk (a short delay line
//! in front of this state machine; the only audio an asynchronous abort can lose).
//!
//! **Two legs** (DESIGN §13, [`crate::call`]): a recorder made by `Engine::record_call` is one
//! leg of a two-leg recording. It runs the same detectors on its own audio, but sends every
//! sample to its ring at its index since the recording began (whatever the phase: the writer
//! cuts the file from decisions made as indices), publishes what it heard through the call's
//! atomics, and takes the call's decisions (start, stop, pause) from there. [`Recorder::push_at`]
//! places audio at an index (a gap becomes silence, late audio is dropped).
//!
//! **Feeding faster than real time.** [`Recorder::feed`] is the non-real-time way in for hosts
//! that read a file or a pipe: it waits for ring space instead of letting the ring overflow.

use crate::call::{CallShared, LegLink, Written, CALLER};
use crate::detect::{SoundDetector, Verdict, MAX_ONSET_DELAY_FRAMES};
use crate::energy::EnergyKernel;
use crate::features::{decoded_frame, FrameFeatures};
use crate::g711::Codec;
use crate::inband::{Confirmed, InBand, Released};
use crate::metrics::EngineMetrics;
use crate::options::{is_dtmf_digit, PauseBehavior, RecordOptions};
use crate::result::Reason;
use crate::session::{Entered, SessionShared};
use crate::tone::ToneGenerator;
use crate::wav;
use rtrb::Producer;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Samples per second.
pub const SAMPLE_RATE: u64 = 8000;
/// Samples (= G.711 bytes) per analysed frame: 20 ms.
pub const FRAME_SAMPLES: usize = 160;
/// The longest input one push accepts: one second.
pub const MAX_PUSH_BYTES: usize = 8000;
/// The furthest [`Recorder::push_at`] may place audio past a leg's position: a day, the
/// longest `seconds_max_duration` (further is a bad index, e.g. a raw RTP timestamp, and would
/// make a one-leg push fill silence for that long).
pub const MAX_GAP_SAMPLES: u64 = 86_400 * SAMPLE_RATE;
/// Frames kept before the first sound and put at the start of the recording (200 ms).
pub const PREROLL_FRAMES: usize = 10;
/// Input discarded after the beep has been pulled, so its echo is not taken as sound (100 ms).
pub const ECHO_GUARD_SAMPLES: u64 = 800;

/// Frames kept while waiting: the pre-roll plus the detector's confirmation delay, so the
/// recording still starts [`PREROLL_FRAMES`] before the talkspurt's first frame.
const PREROLL_RING_FRAMES: usize = PREROLL_FRAMES + MAX_ONSET_DELAY_FRAMES;
const PREROLL_BYTES: usize = PREROLL_RING_FRAMES * FRAME_SAMPLES;

/// Where a recording is, as the host sees it after each call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Playing the beep (pull it with `playout`); input is not recorded.
    Beeping,
    /// Waiting for the first sound.
    Waiting,
    /// Recording.
    Recording,
    /// Stopped; later input is ignored.
    Stopped(Reason),
}

/// A real-time call used wrongly (nothing was changed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecorderError {
    /// A push longer than [`MAX_PUSH_BYTES`].
    InputTooLong {
        /// The rejected length in bytes.
        bytes: usize,
    },
    /// A digit that is not one of `0-9 * # A-D`.
    InvalidDigit(char),
    /// [`Recorder::feed`] waited its whole timeout for ring space; the first `fed` bytes were
    /// taken (feed the rest again to continue).
    Timeout {
        /// Bytes of the input that were fed before the timeout.
        fed: usize,
    },
    /// [`Recorder::push_at`] more than [`MAX_GAP_SAMPLES`] past the leg's position.
    GapTooLong {
        /// How far past the leg's position, in samples.
        samples: u64,
    },
}

impl fmt::Display for RecorderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecorderError::InputTooLong { bytes } => write!(
                f,
                "input of {bytes} bytes is longer than one second ({MAX_PUSH_BYTES} bytes)"
            ),
            RecorderError::InvalidDigit(c) => {
                write!(f, "{c:?} is not a DTMF digit (use 0-9, *, #, A-D)")
            }
            RecorderError::Timeout { fed } => write!(
                f,
                "timed out waiting for the writer (ring full) after feeding {fed} bytes"
            ),
            RecorderError::GapTooLong { samples } => write!(
                f,
                "push_at is {samples} samples past this leg's position (at most \
                 {MAX_GAP_SAMPLES}, a day)"
            ),
        }
    }
}

impl std::error::Error for RecorderError {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Beep,
    EchoGuard { left: u64 },
    Waiting,
    Recording,
    Stopped(Reason),
}

/// Stops any recording from any thread. Cheap to clone; lock-free; real-time safe.
#[derive(Clone, Debug)]
pub struct RecorderHandle {
    shared: Arc<SessionShared>,
}

impl RecorderHandle {
    /// Aborts the recording (reason `aborted`); true if this call stopped it, false if it had
    /// already stopped. Audio pushed before the abort is kept.
    pub fn abort(&self) -> bool {
        self.shared.stopped().is_none() && self.shared.stop(Reason::Aborted) == Reason::Aborted
    }

    /// The stop reason, or None while the recording runs.
    pub fn stopped(&self) -> Option<Reason> {
        self.shared.stopped()
    }
}

/// The real-time side of one recording. Owned by the host's media thread (it is `Send`, so it
/// may move between threads, but one thread at a time calls it).
pub struct Recorder {
    shared: Arc<SessionShared>,
    metrics: Arc<EngineMetrics>,
    ring: Producer<u8>,
    filename: String,
    codec: Codec,
    energy: EnergyKernel,
    detector: SoundDetector,
    phase: Phase,
    beep: ToneGenerator,
    barge_in_mask: u16,
    carry: [u8; FRAME_SAMPLES],
    carry_len: usize,
    /// Bytes of `carry` already sent to the writer (while recording, a partial frame is sent at
    /// once so nothing pushed can be lost).
    carry_sent: usize,
    /// Set while [`Recorder::feed`] runs: ring writes wait for space instead of dropping.
    feeding: Option<FeedWait>,
    preroll: [u8; PREROLL_BYTES],
    preroll_next: usize,
    preroll_len: usize,
    initial_silence_samples: u64,
    max_silence_samples: u64,
    waited_samples: u64,
    silence_samples: u64,
    recorded_bytes: u64,
    ring_bytes: u64,
    duration_limit_bytes: u64,
    size_limit_bytes: u64,
    trim: bool,
    speech_published: bool,
    /// Audio that reached the ring while the timers ran (not paused): what the duration limit
    /// counts. `recorded_bytes` counts everything (the file-size limit).
    timed_bytes: u64,
    /// The state machine's pause state (with masking it lags the host's by the delay line).
    paused: bool,
    /// What the host asked for last: `pause()` (true) or `resume()`.
    pause_requested: bool,
    pause_fills_silence: bool,
    /// In-band DTMF (`detect_dtmf`): the detector, and the delay line with `mask_dtmf`.
    inband: Option<Box<InBand>>,
    /// Input sample index of the next frame the state machine takes (the start of `carry`).
    pipeline_at: u64,
    /// Input sample index of each pre-roll frame.
    preroll_at: [u64; PREROLL_RING_FRAMES],
    /// Set for one leg of a two-leg recording ([`crate::call`]): every sample goes to the ring
    /// at its index, and the decisions are the call's.
    leg: Option<LegLink>,
}

impl fmt::Debug for Recorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recorder")
            .field("filename", &self.filename)
            .field("phase", &self.phase)
            .field("recorded_bytes", &self.recorded_bytes)
            .finish_non_exhaustive()
    }
}

fn digit_bit(digit: char) -> u16 {
    match digit {
        '0'..='9' => 1 << (digit as u32 - '0' as u32),
        '*' => 1 << 10,
        '#' => 1 << 11,
        'A'..='D' => 1 << (12 + digit as u32 - 'A' as u32),
        _ => 0,
    }
}

impl Recorder {
    /// Made by `Engine::record` (control thread); options are already validated.
    pub(crate) fn new(
        options: &RecordOptions,
        codec: Codec,
        filename: String,
        shared: Arc<SessionShared>,
        metrics: Arc<EngineMetrics>,
        ring: Producer<u8>,
    ) -> (Recorder, RecorderHandle) {
        let size_limit = options
            .max_file_bytes
            .map_or(wav::MAX_DATA_BYTES, |b| {
                // CBC pads to a whole block and adds up to one more: keep room for it.
                let padding = match &options.encryption_cipher {
                    Some(c) if c.mode() == crate::cipher::Mode::Cbc => crate::cipher::BLOCK,
                    _ => 0,
                };
                b.saturating_sub((wav::HEADER_BYTES + padding) as u64)
            })
            .min(wav::MAX_DATA_BYTES)
            & !1; // even, so the RIFF pad byte never takes the file past the limit
        let handle = RecorderHandle {
            shared: shared.clone(),
        };
        let recorder = Recorder {
            shared,
            metrics,
            ring,
            filename,
            codec,
            energy: EnergyKernel::detect(),
            detector: SoundDetector::new(options.silence_threshold_db),
            phase: if options.beep_on_start {
                Phase::Beep
            } else {
                Phase::Waiting
            },
            beep: ToneGenerator::new(
                codec,
                options.beep_frequency_hz as f64,
                options.beep_milliseconds,
                options.beep_level_dbm0 as f64,
            ),
            barge_in_mask: options
                .barge_in_digits
                .chars()
                .map(digit_bit)
                .fold(0, |a, b| a | b),
            carry: [0; FRAME_SAMPLES],
            carry_len: 0,
            carry_sent: 0,
            feeding: None,
            preroll: [0; PREROLL_BYTES],
            preroll_next: 0,
            preroll_len: 0,
            initial_silence_samples: options.effective_initial_silence_ms() * SAMPLE_RATE / 1000,
            max_silence_samples: options.milliseconds_max_silence * SAMPLE_RATE / 1000,
            waited_samples: 0,
            silence_samples: 0,
            recorded_bytes: 0,
            ring_bytes: 0,
            duration_limit_bytes: options.seconds_max_duration * SAMPLE_RATE,
            size_limit_bytes: size_limit,
            trim: options.trim_trailing_silence,
            speech_published: false,
            timed_bytes: 0,
            paused: false,
            pause_requested: false,
            pause_fills_silence: options.pause_behavior == PauseBehavior::Silence,
            inband: options
                .detect_dtmf
                .then(|| Box::new(InBand::new(codec, options.mask_dtmf))),
            pipeline_at: 0,
            preroll_at: [0; PREROLL_RING_FRAMES],
            leg: None,
        };
        (recorder, handle)
    }

    /// One leg of a two-leg recording (made by `Engine::record_call`): `leg` 0 is the caller
    /// (who hears the beep and whose in-band digits barge in), 1 the other party.
    pub(crate) fn new_leg(
        options: &RecordOptions,
        codec: Codec,
        filename: String,
        call: Arc<CallShared>,
        leg: usize,
        metrics: Arc<EngineMetrics>,
        ring: Producer<u8>,
    ) -> Recorder {
        let mut options = options.clone();
        options.beep_on_start &= leg == CALLER;
        // In-band digits barge in from the caller's leg only (DESIGN §13): the other party's
        // detector runs only to mask its tones.
        options.detect_dtmf &= leg == CALLER || options.mask_dtmf;
        let (mut recorder, _) = Recorder::new(
            &options,
            codec,
            filename,
            call.session.clone(),
            metrics,
            ring,
        );
        recorder.leg = Some(LegLink::new(call, leg));
        recorder
    }

    /// Which leg of a two-leg recording this is: Some(0) the caller, Some(1) the other party;
    /// None for a one-leg recording.
    pub fn leg(&self) -> Option<usize> {
        self.leg.as_ref().map(|l| l.leg)
    }

    /// Where a leg of a two-leg recording is on the call's timeline: the index (samples since
    /// the recording began) its next pushed sample goes to; None for a one-leg recording. A host
    /// placing a leg by arrival time pushes at `max(arrival, position)` so that nothing it
    /// pushes is taken as late. Real-time safe.
    pub fn position(&self) -> Option<u64> {
        self.leg.as_ref().map(|l| l.input_at)
    }

    /// The recording's `filename` (as the result will report it).
    pub fn filename(&self) -> &str {
        &self.filename
    }

    /// A handle that can abort this recording from any thread.
    pub fn handle(&self) -> RecorderHandle {
        RecorderHandle {
            shared: self.shared.clone(),
        }
    }

    /// Free space in the ring to the writer, in bytes (samples). A host feeding audio faster
    /// than real time uses [`Recorder::feed`] instead of watching this. Real-time safe.
    pub fn ring_free_bytes(&self) -> usize {
        self.ring.slots()
    }

    /// The current status. Real-time safe.
    pub fn status(&mut self) -> Status {
        if let (Some(r), false) = (self.shared.stopped(), self.is_stopped()) {
            self.phase = Phase::Stopped(r);
        }
        self.follow_call();
        self.current_status()
    }

    /// Feeds the caller's audio (G.711 in the call's codec; any length up to one second) and
    /// returns the status after it. After the stop, input is ignored and the stopped status is
    /// returned. Real-time safe.
    pub fn push(&mut self, input: &[u8]) -> Result<Status, RecorderError> {
        if input.len() > MAX_PUSH_BYTES {
            return Err(RecorderError::InputTooLong { bytes: input.len() });
        }
        let _entered = self.enter();
        self.resync();
        self.take_input(input);
        Ok(self.current_status())
    }

    /// The input path of [`Recorder::push`] (inside its `enter`).
    fn take_input(&mut self, input: &[u8]) {
        if let Some(link) = self.leg.as_mut() {
            link.input_at += input.len() as u64;
        }
        let masking = self.inband.as_ref().is_some_and(|ib| !ib.on_frames());
        if masking {
            self.push_masked(input);
        } else {
            // Without masking, in-band detection runs on the state machine's frames.
            self.consume(input);
        }
    }

    /// Two legs: when the writer has filled this leg past its position (it fell more than a
    /// ring behind, or stopped sending), the leg continues from the other leg's position (the
    /// call's "now"): what it held is sent first (too late for the file), its position moves to
    /// where the fill ends, and the rest up to the other leg becomes a gap. So a leg that stops
    /// sending for a while and then pushes again is placed at the time it comes back.
    fn resync(&mut self) {
        let Some(link) = self.leg.as_ref() else {
            return;
        };
        let jumped = link.call.jumped_to(link.leg);
        if jumped <= link.input_at || self.is_stopped() {
            return;
        }
        let now = link.call.reach(1 - link.leg).max(jumped);
        self.flush_delay();
        self.flush_carry();
        let Some(mut link) = self.leg.take() else {
            return;
        };
        let from = self.pipeline_at.max(link.input_at);
        if jumped > from {
            // Filled by the writer already: no gap to publish.
            link.gap_samples += jumped - from;
            link.input_at = jumped;
            self.pipeline_at = jumped;
        }
        let at = self.pipeline_at;
        if now > at {
            link.gap(at, now - at);
            link.gap_samples += now - at;
            link.input_at = now;
            self.pipeline_at = now;
        }
        self.leg = Some(link);
    }

    /// Masking: the audio goes through the delay line and reaches the state machine only once
    /// the detector has decided it, tones replaced by silence (see `inband`).
    fn push_masked(&mut self, input: &[u8]) {
        for piece in input.chunks(FRAME_SAMPLES) {
            if self.is_stopped() {
                return;
            }
            let room = self
                .inband
                .as_ref()
                .and_then(|ib| ib.delay.as_ref())
                .map_or(0, |d| d.room());
            if room < piece.len() {
                // Unreachable by construction (see DELAY_SAMPLES); if it ever happened, flush
                // with everything undecided masked rather than lose or leak audio.
                self.flush_delay();
            }
            let Some(ib) = self.inband.as_mut() else {
                return;
            };
            let confirmed = ib.detect(self.codec, piece);
            if let Some(delay) = ib.delay.as_mut() {
                delay.put(piece);
            }
            let decided = ib.detector.decided_before();
            if let Some(c) = confirmed {
                // Two legs: only the caller's in-band digits barge in (the other's are masked).
                let caller = self.leg.as_ref().is_none_or(|l| l.leg == CALLER);
                if caller && self.barge_in_mask & digit_bit(c.digit) != 0 {
                    // The file ends where the tone's masked span begins.
                    let cut = c.start.saturating_sub(crate::dtmf::MARGIN);
                    self.release_delay(cut);
                    self.flush_carry();
                    if let Some(link) = self.leg.as_ref() {
                        link.call.cut(cut + link.gap_samples);
                    }
                    self.barge_in(c.digit);
                    return;
                }
            }
            self.release_delay(decided);
        }
    }

    /// Feeds the delay line's audio before `until` to the state machine, applying queued
    /// pauses and resumes at their samples.
    fn release_delay(&mut self, until: u64) {
        let mut piece = [0u8; FRAME_SAMPLES];
        loop {
            let Some(delay) = self.inband.as_mut().and_then(|ib| ib.delay.as_mut()) else {
                return;
            };
            match delay.next(until, &mut piece) {
                None => return,
                Some(Released::Audio { bytes }) => {
                    self.consume(&piece[..bytes]);
                    if self.is_stopped() {
                        return;
                    }
                }
                Some(Released::Toggle { pause }) => self.set_paused(pause),
            }
        }
    }

    /// Releases everything held (hangup, a host barge-in, drop, and on two legs a gap in the
    /// middle of the call), masking a tone that is still being confirmed too: it may be a key
    /// the caller pressed. The mask ends where the audio held ends: after a gap in the middle of
    /// the call, what follows is masked only if the detector confirms a tone there (a span open
    /// to the end would silence the rest of the leg).
    fn flush_delay(&mut self) {
        let Some(ib) = self.inband.as_mut() else {
            return;
        };
        let undecided = ib.detector.unconfirmed_since();
        let Some(delay) = ib.delay.as_mut() else {
            return;
        };
        let end = delay.end();
        if let Some(from) = undecided {
            delay.add_span(from, end);
        }
        self.release_delay(end);
    }

    /// A digit confirmed in-band: barge-in like [`Recorder::digit`], and the tone's audio (all
    /// of it after `start`) cut from the end of the file through the session's keep point.
    fn in_band_digit(&mut self, c: Confirmed) {
        if self.is_stopped() || self.barge_in_mask & digit_bit(c.digit) == 0 {
            return;
        }
        if let Some(link) = self.leg.as_ref() {
            // Two legs: the caller's tones barge in; the file ends where the tone began.
            if link.leg != CALLER {
                return;
            }
            link.call.cut(c.start + link.gap_samples);
            self.barge_in(c.digit);
            return;
        }
        if let Some(ib) = self.inband.as_ref() {
            let cut = ib.log.ring_offset_of(c.start, self.ring_bytes);
            self.shared
                .set_keep_bytes(self.shared.keep_bytes().min(cut));
        }
        self.barge_in(c.digit);
    }

    fn barge_in(&mut self, digit: char) {
        if !self.is_stopped() {
            self.shared.set_barge_in_digit(digit as u8);
            self.stop(Reason::Bargein);
        }
    }

    /// The state machine's input: any length, analysed on whole frames (a remainder carries,
    /// and while recording is sent to the writer at once).
    fn consume(&mut self, input: &[u8]) {
        let mut rest = input;
        if self.carry_len > 0 && !self.is_stopped() {
            let take = (FRAME_SAMPLES - self.carry_len).min(rest.len());
            self.carry[self.carry_len..self.carry_len + take].copy_from_slice(&rest[..take]);
            self.carry_len += take;
            rest = &rest[take..];
            if self.carry_len == FRAME_SAMPLES {
                self.carry_len = 0;
                let frame = self.carry;
                self.frame(&frame);
                self.carry_sent = 0;
            }
        }
        let mut frames = rest.chunks_exact(FRAME_SAMPLES);
        for frame in frames.by_ref() {
            if self.is_stopped() {
                break;
            }
            self.frame(frame.try_into().expect("chunks_exact gives whole frames"));
        }
        // A carry that is still incomplete consumed all the input; otherwise keep the tail.
        if !self.is_stopped() && self.carry_len == 0 {
            let tail = frames.remainder();
            self.carry[..tail.len()].copy_from_slice(tail);
            self.carry_len = tail.len();
        }
        self.send_partial_frame();
    }

    /// The non-real-time way to feed audio faster than real time (a file, a pipe, a test): like
    /// [`Recorder::push`], but it takes input of any length and, when the ring to the writer is
    /// too full, waits (polling every millisecond) for the writer to make room instead of
    /// dropping audio. Gives up after `timeout` of waiting with [`RecorderError::Timeout`],
    /// saying how many bytes were fed. After the stop, the rest of the input is ignored.
    ///
    /// When the ring has room, this waits for nothing and is as real-time safe as `push`: no
    /// allocation, no lock, no system call (the clock is read only once it has to wait).
    pub fn feed(&mut self, audio: &[u8], timeout: Duration) -> Result<Status, RecorderError> {
        // Wait for at most half the ring to be free: the writer drains a ring once it holds a
        // batch, and a batch is at most half the ring (`EngineConfig::batch_bytes`), so that
        // much room always comes. The most one push of `n` bytes can send is a held partial
        // frame's completion, the input itself and the pre-roll when recording starts; pieces
        // are sized to fit that room, and with a ring too small for it the ring writes wait.
        let room = self.ring.buffer().capacity() / 2;
        let overhead = PREROLL_BYTES + FRAME_SAMPLES;
        let piece_max = room
            .saturating_sub(overhead)
            .clamp(FRAME_SAMPLES, MAX_PUSH_BYTES);
        let mut wait = FeedWait {
            timeout,
            started: None,
            expired: false,
        };
        let mut fed = 0;
        let mut status = self.status();
        while fed < audio.len() {
            if matches!(status, Status::Stopped(_)) {
                return Ok(status);
            }
            let piece = &audio[fed..][..(audio.len() - fed).min(piece_max)];
            let need = (piece.len() + overhead).min(room);
            while self.ring.slots() < need && self.shared.stopped().is_none() {
                if !wait.wait() {
                    return Err(RecorderError::Timeout { fed });
                }
            }
            self.feeding = Some(wait);
            let pushed = self.push(piece);
            wait = self.feeding.take().unwrap_or(wait);
            status = pushed?;
            fed += piece.len();
            if wait.expired {
                // Only with a ring smaller than a push can send: the rest of that piece was
                // dropped (and counted in `frames_dropped`).
                return Err(RecorderError::Timeout { fed });
            }
        }
        Ok(status)
    }

    /// A digit from the host (e.g. an RFC 4733 event): stops the recording with `bargein` when
    /// it is one of `barge_in_digits`; other valid digits are ignored. `a`-`d` mean `A`-`D`.
    /// Real-time safe.
    pub fn digit(&mut self, digit: char) -> Result<Status, RecorderError> {
        let digit = digit.to_ascii_uppercase();
        if !is_dtmf_digit(digit) {
            return Err(RecorderError::InvalidDigit(digit));
        }
        let _entered = self.enter();
        if !self.is_stopped() && self.barge_in_mask & digit_bit(digit) != 0 {
            // Audio pushed before the digit is recorded (masked as needed).
            self.flush_delay();
            self.barge_in(digit);
        }
        Ok(self.current_status())
    }

    /// The call ended: stops with `hangup`, recording any partial frame still held. Real-time safe.
    pub fn hangup(&mut self) -> Status {
        let _entered = self.enter();
        if !self.is_stopped() {
            self.flush_delay();
        }
        // Normally already sent by the push that brought it; this covers none being sent yet.
        self.flush_carry();
        if !self.is_stopped() {
            self.stop(Reason::Hangup);
        }
        self.current_status()
    }

    /// Pauses the recording (PCI: the agent takes card details). From here until [`resume`],
    /// the caller's audio is left out of the file (`pause_behavior: "skip"`) or replaced by
    /// G.711 silence of the same length (`"silence"`); the silence, initial-silence and
    /// duration timers stop, and the sound detector does not see the paused audio. Digits
    /// (from [`digit`]) still stop the recording with `bargein`. The pause takes effect at the
    /// exact sample: a partial frame already pushed is recorded first. Pausing while paused or
    /// stopped changes nothing. Real-time safe.
    ///
    /// [`resume`]: Recorder::resume
    /// [`digit`]: Recorder::digit
    pub fn pause(&mut self) -> Status {
        self.request_pause(true)
    }

    /// Resumes a paused recording at the exact sample: a partial frame pushed while paused is
    /// dropped or recorded as silence like the rest of the paused span. Resuming when not
    /// paused changes nothing. Real-time safe.
    pub fn resume(&mut self) -> Status {
        self.request_pause(false)
    }

    /// True between [`Recorder::pause`] and [`Recorder::resume`]. Real-time safe.
    pub fn is_paused(&self) -> bool {
        match self.leg.as_ref() {
            Some(link) => link.call.paused_now(),
            None => self.pause_requested,
        }
    }

    fn request_pause(&mut self, pause: bool) -> Status {
        let _entered = self.enter();
        if let Some(link) = self.leg.as_ref() {
            // Two legs: a pause covers both, from this leg's input position (the exact sample:
            // the writer applies it to both channels by index).
            if !self.is_stopped() {
                link.call.toggle(link.leg, pause, link.input_at);
            }
            return self.current_status();
        }
        if self.pause_requested != pause && !self.is_stopped() {
            self.pause_requested = pause;
            // With masking, the state machine is behind the input by the delay line: the
            // change waits there for its sample.
            let queued = match self.inband.as_mut().and_then(|ib| ib.delay.as_mut()) {
                Some(delay) => {
                    let at = delay.end();
                    delay.queue_toggle(at, pause)
                }
                None => false,
            };
            if !queued {
                self.flush_delay();
                self.set_paused(pause);
            }
        }
        self.current_status()
    }

    /// Pauses or resumes the state machine here (a held partial frame ends first).
    fn set_paused(&mut self, pause: bool) {
        if self.paused != pause && !self.is_stopped() {
            self.flush_carry();
            self.paused = pause;
        }
    }

    /// Pulls the beep into `out` (G.711, the call's codec) for the host to send to the caller;
    /// returns the bytes written, 0 when there is nothing (more) to play. Real-time safe.
    pub fn playout(&mut self, out: &mut [u8]) -> usize {
        if self.phase != Phase::Beep {
            return 0;
        }
        let n = self.beep.fill(out);
        if self.beep.is_finished() {
            self.phase = Phase::EchoGuard {
                left: ECHO_GUARD_SAMPLES,
            };
        }
        n
    }

    /// Marks a push in progress until the returned guard drops (see [`crate::session`]) and
    /// takes in a stop made elsewhere (abort, the writer, shutdown).
    fn enter(&mut self) -> Entered {
        let leg = self.leg.as_ref().map_or(0, |l| l.leg);
        // SAFETY: the guard is dropped before the method that made it returns, and the
        // recorder's own `Arc` (never replaced) keeps the state alive until then.
        let (entered, stopped) = unsafe { self.shared.enter_leg(leg) };
        if let Some(reason) = stopped {
            if !self.is_stopped() {
                self.phase = Phase::Stopped(reason);
            }
        }
        entered
    }

    fn is_stopped(&self) -> bool {
        matches!(self.phase, Phase::Stopped(_))
    }

    fn current_status(&self) -> Status {
        match self.phase {
            Phase::Beep | Phase::EchoGuard { .. } => Status::Beeping,
            Phase::Waiting => Status::Waiting,
            Phase::Recording => Status::Recording,
            Phase::Stopped(r) => Status::Stopped(r),
        }
    }

    fn stop(&mut self, reason: Reason) {
        self.phase = Phase::Stopped(self.shared.stop(reason));
    }

    /// Records the partial frame held in `carry` unanalysed (as the pause/resume/hangup point
    /// demands), or, while paused, what the pause behaviour leaves for it; empties the carry.
    /// Outside the recording phase a partial frame is too short to matter and is dropped.
    /// Ends a held partial frame (at hangup, pause, resume): what the writer does not have yet
    /// goes to it, and the next push starts a new frame.
    fn flush_carry(&mut self) {
        // In-band DTMF sees every sample the state machine passes, a partial frame too (its
        // sample count is the pipeline's, which the tone cut relies on).
        if self.carry_len > 0 && !self.is_stopped() {
            let partial = self.carry;
            let confirmed = match self.inband.as_mut() {
                Some(ib) if ib.on_frames() => ib.detect(self.codec, &partial[..self.carry_len]),
                _ => None,
            };
            if let Some(c) = confirmed {
                self.in_band_digit(c);
            }
        }
        self.send_partial_frame();
        self.pipeline_at += self.carry_len as u64;
        self.carry_len = 0;
        self.carry_sent = 0;
    }

    /// While recording, sends the part of a held partial frame the writer does not have yet,
    /// so the ring holds every byte pushed (see the module docs): the audio itself, or while
    /// paused what the pause leaves in its place (nothing, or silence).
    fn send_partial_frame(&mut self) {
        if self.leg.is_some() {
            // Two legs: every sample goes to the ring at its index, whatever the phase.
            if self.is_stopped() || self.carry_len <= self.carry_sent {
                return;
            }
            let (from, to) = (self.carry_sent, self.carry_len);
            self.carry_sent = to;
            let carry = self.carry;
            self.leg_write(&carry[from..to], self.pipeline_at + from as u64);
            return;
        }
        if self.phase != Phase::Recording || self.carry_len <= self.carry_sent {
            return;
        }
        let (from, to) = (self.carry_sent, self.carry_len);
        self.carry_sent = to;
        let at = self.pipeline_at + from as u64;
        let at_limit = if !self.paused {
            let carry = self.carry;
            self.write_audio(&carry[from..to], true, at)
        } else if self.pause_fills_silence {
            self.write_audio(&self.silence_frame()[from..to], false, at)
        } else {
            false
        };
        if at_limit {
            self.stop_at_limit();
        }
    }

    fn silence_frame(&self) -> [u8; FRAME_SAMPLES] {
        [self.codec.silence(); FRAME_SAMPLES]
    }

    /// A frame pushed while paused: the timers and the sound detector do not see it; the file
    /// gets nothing or silence in its place.
    fn paused_frame(&mut self) {
        if !self.pause_fills_silence {
            return;
        }
        let silence = self.silence_frame();
        // The start of a frame completed from a partial one may be with the writer already.
        let sent = std::mem::take(&mut self.carry_sent);
        if self.phase == Phase::Waiting {
            self.remember_preroll(&silence);
        } else if self.phase == Phase::Recording
            && self.write_audio(&silence[sent..], false, self.pipeline_at + sent as u64)
        {
            self.stop_at_limit();
        }
    }

    /// One whole frame of input: decoded once for the sound detector and in-band DTMF (without
    /// masking; a barge-in digit confirmed in it stops the recording after the frame is taken,
    /// and the file is cut back to where its tone began).
    fn frame(&mut self, frame: &[u8; FRAME_SAMPLES]) {
        let samples = decoded_frame(self.energy, self.codec, frame);
        let confirmed = match self.inband.as_mut() {
            Some(ib) if ib.on_frames() => ib.detect_linear(&samples),
            _ => None,
        };
        self.frame_at_pipeline(frame, &samples);
        self.pipeline_at += FRAME_SAMPLES as u64;
        if let Some(c) = confirmed {
            self.in_band_digit(c);
        }
    }

    fn frame_at_pipeline(&mut self, frame: &[u8; FRAME_SAMPLES], samples: &[i16; FRAME_SAMPLES]) {
        if self.leg.is_some() {
            self.leg_frame(frame, samples);
            return;
        }
        if self.paused && matches!(self.phase, Phase::Waiting | Phase::Recording) {
            self.paused_frame();
            return;
        }
        match self.phase {
            Phase::Stopped(_) => {}
            Phase::Beep => self.learn_background(samples),
            Phase::EchoGuard { left } => {
                self.learn_background(samples);
                let left = left.saturating_sub(FRAME_SAMPLES as u64);
                self.phase = if left == 0 {
                    Phase::Waiting
                } else {
                    Phase::EchoGuard { left }
                };
            }
            Phase::Waiting => {
                if let Verdict::Speech { onset_frames_ago } = self.analyse(samples) {
                    self.phase = Phase::Recording;
                    self.start_recording(frame, onset_frames_ago as usize);
                } else {
                    self.remember_preroll(frame);
                    self.waited_samples += FRAME_SAMPLES as u64;
                    if self.waited_samples >= self.initial_silence_samples
                        && !self.detector.is_pending()
                    {
                        self.stop(Reason::Silence);
                    }
                }
            }
            Phase::Recording => {
                let sound = self.analyse(samples).is_speech();
                self.record_frame(frame, sound);
            }
        }
    }

    fn analyse(&mut self, samples: &[i16; FRAME_SAMPLES]) -> Verdict {
        let features = FrameFeatures::of_samples(self.energy, samples);
        let verdict = self.detector.classify(&features);
        if !self.speech_published && self.detector.contains_sound() {
            self.speech_published = true;
            self.shared.set_contains_sound();
        }
        verdict
    }

    /// The caller's audio while the beep plays is not judged, but it shows the detector the
    /// line's background before the caller speaks.
    fn learn_background(&mut self, samples: &[i16; FRAME_SAMPLES]) {
        let features = FrameFeatures::of_samples(self.energy, samples);
        self.detector.learn_background(&features);
    }

    fn remember_preroll(&mut self, frame: &[u8; FRAME_SAMPLES]) {
        let at = self.preroll_next * FRAME_SAMPLES;
        self.preroll[at..at + FRAME_SAMPLES].copy_from_slice(frame);
        self.preroll_at[self.preroll_next] = self.pipeline_at;
        self.preroll_next = (self.preroll_next + 1) % PREROLL_RING_FRAMES;
        self.preroll_len = (self.preroll_len + 1).min(PREROLL_RING_FRAMES);
    }

    /// Starts the file [`PREROLL_FRAMES`] before the talkspurt's first frame, which the detector
    /// confirmed `onset_frames_ago` frames after it began.
    fn start_recording(&mut self, confirming: &[u8; FRAME_SAMPLES], onset_frames_ago: usize) {
        let take = self.preroll_len.min(PREROLL_FRAMES + onset_frames_ago);
        let oldest = (self.preroll_next + PREROLL_RING_FRAMES - take) % PREROLL_RING_FRAMES;
        for i in 0..take {
            let at = ((oldest + i) % PREROLL_RING_FRAMES) * FRAME_SAMPLES;
            let frame: [u8; FRAME_SAMPLES] = self.preroll[at..at + FRAME_SAMPLES]
                .try_into()
                .expect("a pre-roll slot is one frame");
            let input_at = self.preroll_at[(oldest + i) % PREROLL_RING_FRAMES];
            if self.write_audio(&frame, true, input_at) {
                self.stop_at_limit();
                return;
            }
        }
        self.preroll_len = 0;
        self.record_frame(confirming, true);
    }

    fn record_frame(&mut self, frame: &[u8; FRAME_SAMPLES], sound: bool) {
        // The start of a frame completed from a partial one may be with the writer already.
        let sent = std::mem::take(&mut self.carry_sent);
        let at_limit = self.write_audio(&frame[sent..], true, self.pipeline_at + sent as u64);
        if sound {
            self.silence_samples = 0;
            if self.trim {
                self.shared.set_keep_bytes(self.ring_bytes);
            }
        } else {
            // A stepped floor just learnt as background ends the talkspurt where it stepped.
            let backdated = u64::from(self.detector.backdated_silence_frames());
            self.silence_samples =
                (self.silence_samples + FRAME_SAMPLES as u64).max(backdated * FRAME_SAMPLES as u64);
        }
        if at_limit {
            self.stop_at_limit();
        } else if self.silence_samples >= self.max_silence_samples && !self.detector.is_pending() {
            self.stop(Reason::Silence);
        }
    }

    /// Sends audio to the writer, cut at the duration/size limit; true when a limit is reached.
    /// `input_at` is the input sample of its first byte (for the tone cut's map).
    /// `timed` audio counts towards the duration limit; paused silence counts only towards the
    /// file size. A ring without room (the writer stalled) loses the audio: counted, never silent.
    fn write_audio(&mut self, audio: &[u8], timed: bool, input_at: u64) -> bool {
        let size_room = self.size_limit_bytes.saturating_sub(self.recorded_bytes);
        let duration_room = self.duration_limit_bytes.saturating_sub(self.timed_bytes);
        let room = if timed {
            size_room.min(duration_room)
        } else {
            size_room
        };
        let audio = &audio[..(audio.len() as u64).min(room) as usize];
        self.recorded_bytes += audio.len() as u64;
        if timed {
            self.timed_bytes += audio.len() as u64;
        }
        let mut pushed = self.ring.push_entire_slice(audio).is_ok();
        if let Some(wait) = self.feeding.as_mut() {
            // `feed` only: wait for the writer rather than drop (its pieces normally fit).
            while !pushed && !self.ring.is_abandoned() && wait.wait() {
                pushed = self.ring.push_entire_slice(audio).is_ok();
            }
        }
        if pushed {
            if let Some(ib) = self.inband.as_mut() {
                ib.log.note(input_at, self.ring_bytes, audio.len() as u64);
            }
            self.ring_bytes += audio.len() as u64;
        } else {
            self.shared.add_frames_dropped(1);
            self.metrics.add_frames_dropped(1);
        }
        self.recorded_bytes >= self.size_limit_bytes
            || self.timed_bytes >= self.duration_limit_bytes
    }

    /// Two legs: sends audio to this leg's ring at its index (see [`crate::call`]).
    fn leg_write(&mut self, audio: &[u8], at: u64) {
        let Some(link) = self.leg.as_mut() else {
            return;
        };
        if let Written::Lost = link.write(&mut self.ring, audio, at) {
            link.call.add_frames_dropped(link.leg, 1);
            self.metrics.add_frames_dropped(1);
        }
    }

    /// Two legs: one whole frame at `pipeline_at`: to the ring, then judged for the call.
    fn leg_frame(&mut self, frame: &[u8; FRAME_SAMPLES], samples: &[i16; FRAME_SAMPLES]) {
        let sent = std::mem::take(&mut self.carry_sent);
        let at = self.pipeline_at;
        let end = at + FRAME_SAMPLES as u64;
        if self.is_stopped() {
            return;
        }
        self.leg_write(&frame[sent..], at + sent as u64);
        let Some(link) = self.leg.take() else {
            return;
        };
        let call = &link.call;
        match self.phase {
            Phase::Stopped(_) => {}
            Phase::Beep => self.learn_background(samples),
            Phase::EchoGuard { left } => {
                self.learn_background(samples);
                let left = left.saturating_sub(FRAME_SAMPLES as u64);
                self.phase = if left == 0 {
                    call.arm(end);
                    Phase::Waiting
                } else {
                    Phase::EchoGuard { left }
                };
            }
            Phase::Waiting | Phase::Recording => {
                if !call.paused_at(at) {
                    let published = self.speech_published;
                    let verdict = self.analyse(samples);
                    if !published && self.speech_published {
                        call.leg_contains_sound(link.leg);
                    }
                    if let Verdict::Speech { onset_frames_ago } = verdict {
                        if !call.jumped_past(link.leg, end) {
                            call.speech(link.leg, end, onset_frames_ago);
                        }
                    }
                }
            }
        }
        let decided = (!self.detector.is_pending()).then_some(end);
        if let Some((reason, end_at)) = call.judged(link.leg, decided) {
            self.phase = Phase::Stopped(call.stop(reason, end_at));
        }
        self.leg = Some(link);
        self.follow_call();
    }

    /// Two legs: takes in the call's start (Waiting → Recording).
    fn follow_call(&mut self) {
        if let (Some(link), Phase::Waiting) = (self.leg.as_ref(), self.phase) {
            if link.call.started() {
                self.phase = Phase::Recording;
            }
        }
    }

    /// Places `input` at sample index `at` since the recording began (two legs: an RTP
    /// timestamp, say). Input later than this leg's position leaves a gap, which the file gets
    /// as G.711 silence (counted in the leg's `samples_filled`); input for indices already
    /// taken is late and dropped (on two legs counted in `frames_dropped`, a frame per started
    /// 160 samples, while the recording runs). On a one-leg recording the gap is pushed as
    /// silence. An `at` more than [`MAX_GAP_SAMPLES`] (a day) past the leg's position is
    /// refused ([`RecorderError::GapTooLong`]). Real-time safe; O(input) on two legs (a gap
    /// costs nothing), O(input + gap) on one.
    pub fn push_at(&mut self, at: u64, input: &[u8]) -> Result<Status, RecorderError> {
        if input.len() > MAX_PUSH_BYTES {
            return Err(RecorderError::InputTooLong { bytes: input.len() });
        }
        let Some(pos) = self.leg.as_ref().map(|l| l.input_at) else {
            let silence = self.silence_frame();
            let mut pos = self.pipeline_at + self.carry_len as u64;
            if let Some(d) = self.inband.as_ref().and_then(|ib| ib.delay.as_ref()) {
                pos = pos.max(d.end());
            }
            gap_allowed(pos, at)?;
            while pos < at && !self.is_stopped() {
                let n = (at - pos).min(FRAME_SAMPLES as u64) as usize;
                self.push(&silence[..n])?;
                pos += n as u64;
            }
            let late = (pos.saturating_sub(at) as usize).min(input.len());
            return self.push(&input[late..]);
        };
        gap_allowed(pos, at)?;
        let _entered = self.enter();
        self.resync();
        let pos = self.leg.as_ref().map_or(pos, |l| l.input_at);
        if at > pos {
            if !self.is_stopped() {
                self.flush_delay();
                self.flush_carry();
            }
            if !self.is_stopped() {
                let from = self.pipeline_at;
                let gap = at.saturating_sub(from);
                if let Some(mut link) = self.leg.take() {
                    link.gap(from, gap);
                    link.gap_samples += gap;
                    link.input_at = at;
                    self.pipeline_at = from + gap;
                    let decided = (!self.detector.is_pending()).then_some(at);
                    if let Some((reason, end_at)) = link.call.judged(link.leg, decided) {
                        self.phase = Phase::Stopped(link.call.stop(reason, end_at));
                    }
                    self.leg = Some(link);
                    self.follow_call();
                }
            }
        }
        let pos = self.leg.as_ref().map_or(at, |l| l.input_at);
        let late = (pos.saturating_sub(at) as usize).min(input.len());
        if late > 0 && !self.is_stopped() {
            if let Some(link) = self.leg.as_ref() {
                let frames = late.div_ceil(FRAME_SAMPLES) as u64;
                link.call.add_frames_dropped(link.leg, frames);
                self.metrics.add_frames_dropped(frames);
            }
        }
        if !self.is_stopped() {
            self.take_input(&input[late..]);
        }
        Ok(self.current_status())
    }

    fn stop_at_limit(&mut self) {
        if self.timed_bytes >= self.duration_limit_bytes {
            self.stop(Reason::Duration);
        } else {
            self.stop(Reason::Filesize);
        }
    }
}

/// Refuses a [`Recorder::push_at`] index further than [`MAX_GAP_SAMPLES`] past `pos`.
fn gap_allowed(pos: u64, at: u64) -> Result<(), RecorderError> {
    match at.checked_sub(pos) {
        Some(samples) if samples > MAX_GAP_SAMPLES => Err(RecorderError::GapTooLong { samples }),
        _ => Ok(()),
    }
}

/// How long [`Recorder::feed`] sleeps between looks at the ring. The writer polls every 20 ms
/// by default, so a shorter sleep costs little and keeps the ring from idling.
const FEED_POLL: Duration = Duration::from_millis(1);

/// The waiting part of a feed: the clock starts at the first wait, so a feed that never waits
/// reads no clock.
#[derive(Clone, Copy, Debug)]
struct FeedWait {
    timeout: Duration,
    started: Option<Instant>,
    expired: bool,
}

impl FeedWait {
    /// Sleeps one poll; false (without sleeping) once the timeout has passed.
    fn wait(&mut self) -> bool {
        let started = *self.started.get_or_insert_with(Instant::now);
        if started.elapsed() >= self.timeout {
            self.expired = true;
            return false;
        }
        std::thread::sleep(FEED_POLL);
        true
    }
}

impl Drop for Recorder {
    /// A recorder dropped while it records stops the recording with `other`; the writer keeps
    /// everything already pushed.
    fn drop(&mut self) {
        let _entered = self.enter();
        if !self.is_stopped() {
            // With masking, what the delay line holds was pushed: it goes to the writer first.
            self.flush_delay();
        }
        self.shared.stop(Reason::Other);
    }
}
