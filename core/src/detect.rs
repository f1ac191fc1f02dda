//! Sound / silence decision per 20 ms frame (DESIGN §4): is the caller speaking?
//!
//! Input per frame: the [`FrameFeatures`] of [`crate::features`] (a low-band level below
//! ~1 kHz, a 2 kHz speech-band level that ignores hum and rumble, impulsiveness, and the
//! broadband level for the absolute floor; a spectral tilt was tried and is not used, see
//! confirmation below). Output per
//! frame: a [`Verdict`], *speech* or *silence*, plus, on the frame where a talkspurt is
//! confirmed, how many frames earlier it began (the recorder's pre-roll reaches back that far, so
//! the onset is never clipped).
//!
//! # Why this design
//!
//! The first detector kept one exponentially smoothed floor that rose towards any frame not
//! 9 dB above it, capped at −40 dBm0 at the start: speech at ≤ 10 dB SNR pulled the floor up
//! (premature stops), steady noise or hum was "sound" for seconds, and a click restarted the
//! silence timer (issue 11). Its successor measured the background as the *minimum* frame level
//! over 2.6 s with a margin learnt only on frames judged noise; that never stopped in brown noise
//! and babble, whose frame levels swing 10 dB above their minimum, because those swings were
//! judged speech and so never taught the margin. Hence:
//!
//! * **Background = the quietest 160 ms of the last 5 s** (minimum statistics on short-term
//!   means, after Martin 2001): per channel the frame levels are averaged over sub-windows of
//!   [`SUB_WINDOW_FRAMES`]; the background *level* is the lowest sub-window mean of the last
//!   [`SUB_WINDOWS`] (5.1 s), and its *deviation* is that sub-window's standard deviation. Speech
//!   has a pause of 160 ms somewhere in any 5 s (between phrases, before stops), so it cannot
//!   pull either up; noise of any kind, babble included, sets both. Every frame teaches the
//!   background: no judgement of "noise" gates the learning, so noise that looks like speech is
//!   learnt as well as noise that does not. During a talkspurt a rough estimate (deviation over
//!   [`STEADY_DEVIATION_DB`]) rises no faster than [`RISE_IN_SPEECH_DB`] (2 dB/s): a monologue
//!   with no pause for 5 s would otherwise make its own quietest stretch the background once the
//!   last real pause leaves the window; noise that rose under the speech is steady and is taken
//!   at once. (Until the window is full nothing has aged out of it, so the limit does not apply:
//!   the first frame's level, which may be a dip of the noise, gives way to the first measured
//!   sub-window at once.) The *floor* (the lowest frame of the window) is kept
//!   too: `level − floor` (the background's *roughness*) says how far the noise dips below its
//!   typical level (≈ 1.5 dB for white noise, 6–10 dB for brown noise's low band).
//! * **Margins follow the noise's own deviation**: a frame starts a talkspurt when a channel
//!   exceeds its background by [`ONSET_MIN_DB`] or [`ONSET_DEVS`] deviations, and continues one
//!   above the lower [`CONTINUE_MIN_DB`] / [`CONTINUE_DEVS`] (hysteresis: weak word endings are
//!   kept without letting noise start speech). Babble (deviation ≈ 3 dB) gets a margin of ≈ 9–12
//!   dB, white noise (≈ 0.5 dB) the minimum ones.
//! * **Two channels, the rough one discounted**: the level of the low band (a six-sample moving
//!   sum: below ~1 kHz, −10 dB at 1 kHz, where voiced speech is), and the level of
//!   `x[n] − x[n−2]` (a band-pass peaking at 2 kHz, −20 dB at 60 Hz). A frame stands out if either
//!   channel stands out: speech over white noise shows in the low band, over hum, brown or pink
//!   noise in the band channel, where that noise is 10–25 dB weaker *and steadier*. The low band
//!   replaced the broadband level here: white noise spreads evenly to 4 kHz and a vowel does not,
//!   so over white noise a vowel stands 5–8 dB higher above the background in the low band, and
//!   at 0–5 dB SNR the words after a pause were heard there and not in the broadband level
//!   (held-out white-noise calls stopped within ±250 ms: 71 → 96 % on real speech). Fricatives,
//!   which the low band drops, are in the band channel. Low-frequency noise makes the low band
//!   heavy-tailed (a few cycles of 20–100 Hz per frame: ±5 dB frame to frame), which one short
//!   sub-window's deviation underestimates; so the low band's deviation is at least its
//!   roughness in excess of the band channel's ([`LOW_ROUGHNESS_SHARE`]). For noise that is
//!   rough in both channels alike (babble) or in neither (white noise, hum) this adds nothing.
//! * **A stepped floor or a steady sound is learnt in 0.5 s**: when a channel's level has stayed
//!   within [`FLAT_RANGE_DB`] (+ [`FLAT_RANGE_DEVS`] of its own deviations, at most
//!   [`FLAT_RANGE_MAX_DB`]) for [`FLAT_FRAMES`] frames, that
//!   run is the background at once, forgetting any quieter past. Speech never holds still that
//!   long (syllables move its level by 10–30 dB at about 4 Hz); steady noise, hum and tones do.
//! * **A noise ceiling for rough noise**: the background is the noise's *dips*; babble swells
//!   5–10 dB above them for whole syllables, and those swells stood out, were confirmed within
//!   1 s of the caller's speech, and kept a talkspurt going for seconds after the caller had
//!   stopped. So each channel also keeps a `Ceiling`: the mean plus [`CEILING_DEVS`] standard
//!   deviations of the levels of frames outside talkspurts (idle or steady, not pending),
//!   exponentially weighted over [`CEILING_FRAMES`]. A frame stands out only above it too
//!   (and starts a talkspurt only [`CEILING_ONSET_DB`] above it). For smooth noise (white,
//!   hum, brown or pink in the band channel) it lies within a dB or two of the background and
//!   changes nothing; pending frames do not teach it, because a caller's onsets would drag it
//!   up to the voice.
//! * **A talkspurt must be confirmed**: [`CONFIRM_FRAMES`] (60 ms) frames standing out, none of
//!   them a click (≥ [`IMPULSE_SHARE`] of the frame's energy in 4 ms, after a frame that did not
//!   stand out: the end of a syllable can be as concentrated, but it follows speech), and, after
//!   its first frame, a change of the *speech band's* level of at least [`VARIATION_DB`] (or
//!   [`VARIATION_DEVS`] of that channel's background deviations): speech moves; a noise step,
//!   hum or a dial tone does not (the first frame is left out because a step's first frame is
//!   only partly stepped). The band channel is the judge because it is the steady one in
//!   low-frequency noise: the low band and the spectral tilt of pink noise wobble by
//!   3–4 dB from frame to frame (a few cycles of its loudest frequencies per frame), so a step of
//!   pink noise "moved" there within 15 frames and started a recording, while its band level
//!   holds within 2 dB; speech moves the band as much as the low band (the band is at
//!   −2 dB at 500 Hz, where vowels are). Within [`RECENT_SPEECH_FRAMES`] (1 s) of the last speech
//!   frame the movement needed is [`VARIATION_DB`] alone, however rough the noise: the caller is
//!   mid-turn, and in babble (deviation 3–5 dB, more where a sub-window holds one of its dips)
//!   two deviations were more than a word 10 dB over the babble moves above the continuation
//!   margin, so words after a short pause went unconfirmed until the silence limit cut the
//!   caller off; the margins, not the movement, keep the babble itself out. A click lasts one or
//!   two frames: it never confirms, so it neither starts a recording nor resets the silence
//!   timer.
//! * **A candidate that has not moved after [`MAX_PENDING_FRAMES`] (300 ms) is a new steady
//!   level, background at once**: each channel flat for at least [`ADOPT_RUN_FRAMES`] of it takes
//!   its flat run as the background, as the 0.5 s flat rule would. Waiting for that rule was not
//!   enough: a caller who speaks within 0.5 s of a step breaks the flat run, the step's frames
//!   kept standing out against the old background as "steady", and the speech, standing out
//!   no more than they did, was never confirmed (a premature stop).
//! * **Silence is timed from the last frame that stood out, plus [`END_HANGOVER_FRAMES`] in
//!   noise**: a word's last 50–150 ms (its energy falling 20–40 dB from its peak) sink under the
//!   noise, so what stands out of a word ends early; 60 ms of hangover puts the stop back where
//!   the word ended. On a quiet line (the talkspurt's peak [`TAIL_HIDDEN_DB`] or more above the
//!   background) nothing is hidden and silence starts at the last frame that stood out. Within [`HANGOVER_FRAMES`] of the last speech frame, standing out continues the
//!   talkspurt without a new confirmation (speech with short gaps).
//! * **Back-dated silence after a stepped floor**: a floor that steps up while the caller
//!   speaks is judged speech against the old background until the flat rule learns it, 0.5 s
//!   later, which made the stop 0.3–0.8 s late. When the flat rule raises a channel's
//!   background during a talkspurt, the last [`RECENT_FRAMES`] levels are judged again against
//!   the new background: the frames since the last one that still stands out by
//!   [`BACKDATE_SHARE`] of the continuation margin (less the end hangover in noise) were silence,
//!   and [`SoundDetector::backdated_silence_frames`] tells the recorder, whose silence timer
//!   counts from there. (The share keeps weak speech under the new floor from being back-dated
//!   as well; two-leg recording does not back-date.)
//! * **A timer that runs out waits for a pending verdict** ([`SoundDetector::is_pending`]): a
//!   word that starts just as the silence limit is reached is not cut by the confirmation delay.
//! * **The beep teaches the background**: while the beep plays the caller's audio is not judged,
//!   but it feeds the background ([`SoundDetector::learn_background`]), so a caller who speaks as
//!   soon as the beep ends is measured against the line, not against their own voice. (Without
//!   a beep, the first frame starts the background: a call that is speech from its very first
//!   frame is heard from its first pause between syllables, within the pre-roll mostly.)
//! * [`ABSOLUTE_FLOOR_DBM0`]: nothing quieter is speech (A-law idle is −66 dBm0); speech at
//!   −55 dBFS (≈ −49 dBm0) is well above it.
//!
//! `contains_sound` becomes true once a confirmed talkspurt has [`MIN_SPEECH_FRAMES`] speech
//! frames whose low-band level spans at least [`SPEECH_RANGE_DB`] (syllables do within 100 ms;
//! a noise step that got through confirmation does not, and is background 0.5 s later). Only
//! frames judged against a measured background count (one completed sub-window,
//! [`ESTABLISHED_SUB_WINDOWS`]): before that the background is the first frame's level, and when
//! a call opens on a dip of babble, the babble that follows stands out of it like a voice. With
//! `silence_threshold_db` (the fixed override) a frame is speech when its broadband level is
//! above the threshold, with no confirmation, exactly as before.
//!
//! Cost: O(1) per frame on top of the features (the lowest sub-window is searched once per
//! sub-window, not per frame), no allocation; all state is fixed-size arrays.

use crate::features::FrameFeatures;

/// Frames per sub-window of the background tracker (160 ms).
pub const SUB_WINDOW_FRAMES: u32 = 8;
/// Completed sub-windows kept: the background is the quietest of them (5.1 s).
pub const SUB_WINDOWS: usize = 32;
/// Frames the sub-window in progress needs before it can be the quietest one (80 ms).
pub const PARTIAL_MIN_FRAMES: u32 = 4;
/// Frames a channel must stay flat to become background at once (500 ms).
pub const FLAT_FRAMES: u32 = 25;
/// Level range (dB) that counts as flat, before widening by the background's deviation.
pub const FLAT_RANGE_DB: f32 = 4.0;
/// Background deviations added to the flat range.
pub const FLAT_RANGE_DEVS: f32 = 2.0;
/// The flat range never exceeds this (dB): speech moves by more within 0.5 s.
pub const FLAT_RANGE_MAX_DB: f32 = 10.0;
/// The smallest margin over the background that starts a talkspurt, in dB.
pub const ONSET_MIN_DB: f32 = 6.0;
/// The margin that starts a talkspurt, in background deviations.
pub const ONSET_DEVS: f32 = 4.0;
/// The smallest margin over the background that continues a talkspurt, in dB.
pub const CONTINUE_MIN_DB: f32 = 3.5;
/// The margin that continues a talkspurt, in background deviations.
pub const CONTINUE_DEVS: f32 = 3.0;
/// A sub-window's deviation is capped here (dB): a sub-window with speech in it is never the
/// quietest for long, and must not leave huge margins behind when it is.
pub const DEVIATION_MAX_DB: f32 = 5.0;
/// The share of the low band's roughness in excess of the band channel's that the low band's
/// deviation is at least (see the module docs: low-frequency noise).
pub const LOW_ROUGHNESS_SHARE: f32 = 1.0;
/// No frame at or below this level is speech, in dBm0.
pub const ABSOLUTE_FLOOR_DBM0: f32 = -62.0;
/// A frame with this share of its energy in 4 ms, after a frame that did not stand out, is a
/// click, not speech.
pub const IMPULSE_SHARE: f32 = 0.7;
/// Frames that must stand out before a talkspurt is speech (60 ms).
pub const CONFIRM_FRAMES: u32 = 3;
/// Speech-band level change a confirming talkspurt must show after its first frame, in dB.
pub const VARIATION_DB: f32 = 3.0;
/// The variation a confirming talkspurt must show, in deviations of the speech band's background.
pub const VARIATION_DEVS: f32 = 2.0;
/// A candidate that never moved becomes a channel's background at once when that channel has
/// been flat for at least this many frames (100 ms) of it.
pub const ADOPT_RUN_FRAMES: u32 = 5;
/// Within this many frames (1 s) of the last speech frame a candidate needs only
/// [`VARIATION_DB`] of movement, however rough the noise (see the module docs).
pub const RECENT_SPEECH_FRAMES: u32 = 50;
/// A candidate talkspurt still without variation after this many frames is not speech (300 ms).
pub const MAX_PENDING_FRAMES: u32 = 15;
/// Frames after the last speech frame within which standing out continues the talkspurt (200 ms).
pub const HANGOVER_FRAMES: u32 = 10;
/// Frames after the last frame that stood out that are still speech (60 ms): the faint end of
/// a word that the noise hides.
pub const END_HANGOVER_FRAMES: u32 = 3;
/// A talkspurt whose loudest frame is less than this above the low band's background (dB) has
/// had the faint end of its last word hidden by the noise (a word's energy falls 40 dB from its
/// peak as it ends; its last 5 dB are too brief to matter): only then does [`END_HANGOVER_FRAMES`] apply.
pub const TAIL_HIDDEN_DB: f32 = 35.0;
/// Completed sub-windows the background needs before speech frames count towards
/// `contains_sound` (before that it is the first frame's level, which may be a dip of the noise).
pub const ESTABLISHED_SUB_WINDOWS: usize = 1;
/// Speech frames a talkspurt needs for `contains_sound` (100 ms).
pub const MIN_SPEECH_FRAMES: u32 = 5;
/// The low-band level range (dB) a talkspurt must span for `contains_sound`.
pub const SPEECH_RANGE_DB: f32 = 8.0;
/// Frames of level history kept to back-date silence when a stepped floor becomes background
/// during a talkspurt (640 ms: more than the [`FLAT_FRAMES`] the flat rule takes).
pub const RECENT_FRAMES: usize = 32;
/// A frame is back-dated silence only when each channel is within this share of its
/// continuation margin of the new background: weak speech under a stepped floor is not.
pub const BACKDATE_SHARE: f32 = 0.75;
/// Frames over which the noise ceiling (`Ceiling`) is averaged (640 ms).
pub const CEILING_FRAMES: u32 = 32;
/// Frames the noise ceiling needs before it applies (0.5 s).
pub const CEILING_MIN_FRAMES: u32 = 25;
/// The noise ceiling is this many standard deviations above the noise's mean level.
pub const CEILING_DEVS: f32 = 1.6;
/// A talkspurt starts only this far above the noise ceiling (dB); it continues above it.
pub const CEILING_ONSET_DB: f32 = 1.0;
/// The most frames a [`Verdict::Speech`] onset can lie in the past.
pub const MAX_ONSET_DELAY_FRAMES: usize = MAX_PENDING_FRAMES as usize;

/// How much the background level and deviation may rise per frame during a talkspurt (dB;
/// 2 dB/s): only a flat run (a stepped floor) raises it faster then.
pub const RISE_IN_SPEECH_DB: f32 = 0.04;
/// A background candidate with no more deviation than this (dB) is steady noise, never the
/// quietest stretch of a monologue: it may rise at once during a talkspurt.
pub const STEADY_DEVIATION_DB: f32 = 2.0;
/// A channel's background deviation before it has been measured (dB).
const DEVIATION_INITIAL_DB: f32 = 0.5;
/// A flat run raises the background only when it is this much louder (dB): below that, the
/// sub-window statistics already follow it.
const FLAT_RAISE_DB: f32 = 0.5;

/// The decision for one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not speech: the silence timer runs.
    Silence,
    /// Speech. `onset_frames_ago` is 0 except on the frame that confirms a new talkspurt, where it
    /// says how many frames before this one the talkspurt began.
    Speech {
        /// Frames between the talkspurt's first frame and this one.
        onset_frames_ago: u32,
    },
}

impl Verdict {
    /// True for speech.
    pub fn is_speech(self) -> bool {
        matches!(self, Verdict::Speech { .. })
    }
}

/// Mean and standard deviation of `n` levels from their sum and sum of squares.
#[inline]
fn mean_and_deviation(n: u32, sum: f32, squares: f32) -> (f32, f32) {
    let mean = sum / n as f32;
    (mean, deviation_of(n, mean, squares))
}

/// The standard deviation of `n` levels of mean `mean` from their sum of squares (computed
/// only when needed: the square root is most of the per-frame cost of the statistics).
#[inline]
fn deviation_of(n: u32, mean: f32, squares: f32) -> f32 {
    (squares / n as f32 - mean * mean).max(0.0).sqrt()
}

/// The background estimate of one channel (low band or speech band).
#[derive(Clone, Debug)]
struct Background {
    /// Completed sub-windows: mean, deviation and lowest level (a ring; `filled` are valid).
    sub_mean: [f32; SUB_WINDOWS],
    sub_deviation: [f32; SUB_WINDOWS],
    sub_min: [f32; SUB_WINDOWS],
    filled: usize,
    next_sub: usize,
    /// The quietest completed sub-window (mean, deviation) and the lowest completed level.
    quietest: (f32, f32),
    completed_floor: f32,
    /// The sub-window in progress.
    in_current: u32,
    current_sum: f32,
    current_squares: f32,
    current_min: f32,
    /// The flat run.
    run_lo: f32,
    run_hi: f32,
    run_len: u32,
    run_sum: f32,
    run_squares: f32,
    /// The estimate: background level, its deviation, and the lowest level in the window.
    level: f32,
    deviation: f32,
    floor: f32,
}

impl Background {
    fn new(first: f32) -> Background {
        Background {
            sub_mean: [first; SUB_WINDOWS],
            sub_deviation: [DEVIATION_INITIAL_DB; SUB_WINDOWS],
            sub_min: [first; SUB_WINDOWS],
            filled: 0,
            next_sub: 0,
            quietest: (first, DEVIATION_INITIAL_DB),
            completed_floor: first,
            in_current: 0,
            current_sum: 0.0,
            current_squares: 0.0,
            current_min: first,
            run_lo: first,
            run_hi: first,
            run_len: 0,
            run_sum: 0.0,
            run_squares: 0.0,
            level: first,
            deviation: DEVIATION_INITIAL_DB,
            floor: first,
        }
    }

    /// How far the background dips below its level (dB).
    fn roughness(&self) -> f32 {
        self.level - self.floor
    }

    fn onset(&self, deviation: f32) -> f32 {
        self.level + ONSET_MIN_DB.max(ONSET_DEVS * deviation)
    }

    fn continuation(&self, deviation: f32) -> f32 {
        self.level + CONTINUE_MIN_DB.max(CONTINUE_DEVS * deviation)
    }

    /// Recomputes the quietest completed sub-window and the lowest completed level.
    fn rescan(&mut self) {
        let mut quietest = (f32::INFINITY, DEVIATION_INITIAL_DB);
        let mut floor = f32::INFINITY;
        for i in 0..self.filled {
            if self.sub_mean[i] < quietest.0 {
                quietest = (self.sub_mean[i], self.sub_deviation[i]);
            }
            floor = floor.min(self.sub_min[i]);
        }
        self.quietest = quietest;
        self.completed_floor = floor;
    }

    /// Sets `level`, `deviation` and `floor` from the completed sub-windows and, once it has
    /// [`PARTIAL_MIN_FRAMES`] (or nothing is completed yet), the one in progress.
    /// `in_speech` (a talkspurt is going on) limits how fast the estimate may rise.
    fn estimate(&mut self, in_speech: bool) {
        let (mut level, mut deviation) = self.quietest;
        let mut floor = self.completed_floor;
        if self.in_current > 0 {
            floor = floor.min(self.current_min);
            if self.in_current >= PARTIAL_MIN_FRAMES || self.filled == 0 {
                let mean = self.current_sum / self.in_current as f32;
                if mean < level {
                    let dev = deviation_of(self.in_current, mean, self.current_squares);
                    (level, deviation) = (mean, dev.min(DEVIATION_MAX_DB));
                }
            }
        }
        if level.is_finite() {
            if in_speech && deviation > STEADY_DEVIATION_DB && self.filled == SUB_WINDOWS {
                // The quiet sub-window that set the background may age out of the window in a
                // long stretch of speech without a pause; the next quietest is then speech,
                // which is rough. (A steady one is noise that rose: it is taken at once.)
                // Before the window is full nothing has aged out: a rise then is the first
                // frame's level giving way to the first measured sub-window, taken at once.
                level = level.min(self.level + RISE_IN_SPEECH_DB);
                deviation = deviation.min(self.deviation + RISE_IN_SPEECH_DB);
            }
            self.level = level;
            self.deviation = deviation;
            self.floor = floor;
        }
    }

    /// Takes one frame's level; `in_speech` says a talkspurt is going on. True when a flat run
    /// raised the background (a stepped floor or a steady sound learnt at once).
    fn update(&mut self, level: f32, in_speech: bool) -> bool {
        self.in_current += 1;
        self.current_sum += level;
        self.current_squares += level * level;
        self.current_min = if self.in_current == 1 {
            level
        } else {
            self.current_min.min(level)
        };
        if self.in_current == SUB_WINDOW_FRAMES {
            let (mean, dev) =
                mean_and_deviation(self.in_current, self.current_sum, self.current_squares);
            let i = self.next_sub;
            self.sub_mean[i] = mean;
            self.sub_deviation[i] = dev.min(DEVIATION_MAX_DB);
            self.sub_min[i] = self.current_min;
            self.next_sub = (i + 1) % SUB_WINDOWS;
            self.filled = (self.filled + 1).min(SUB_WINDOWS);
            self.in_current = 0;
            self.current_sum = 0.0;
            self.current_squares = 0.0;
            self.rescan();
        }
        let lo = self.run_lo.min(level);
        let hi = self.run_hi.max(level);
        if hi - lo > (FLAT_RANGE_DB + FLAT_RANGE_DEVS * self.deviation).min(FLAT_RANGE_MAX_DB) {
            self.run_lo = level;
            self.run_hi = level;
            self.run_len = 1;
            self.run_sum = level;
            self.run_squares = level * level;
        } else {
            self.run_lo = lo;
            self.run_hi = hi;
            self.run_len += 1;
            self.run_sum += level;
            self.run_squares += level * level;
        }
        self.estimate(in_speech);
        // A steady level for 0.5 s is background now.
        self.run_len >= FLAT_FRAMES && self.take_run()
    }

    /// Makes the flat run the background at once when it is louder than the estimate,
    /// forgetting any quieter past; true when it did.
    fn take_run(&mut self) -> bool {
        let mean = self.run_sum / self.run_len as f32;
        if mean <= self.level + FLAT_RAISE_DB {
            return false;
        }
        let dev = deviation_of(self.run_len, mean, self.run_squares);
        for i in 0..self.filled {
            if self.sub_mean[i] < mean {
                self.sub_mean[i] = mean;
                self.sub_deviation[i] = dev.min(DEVIATION_MAX_DB);
            }
            self.sub_min[i] = self.sub_min[i].max(self.run_lo);
        }
        if self.in_current > 0 && self.current_sum < mean * self.in_current as f32 {
            let n = self.in_current as f32;
            self.current_sum = mean * n;
            self.current_squares = n * (dev * dev + mean * mean);
        }
        self.current_min = self.current_min.max(self.run_lo);
        self.rescan();
        self.estimate(false);
        true
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Spurt {
    /// No talkspurt.
    Idle,
    /// Frames stand out but are not confirmed yet; the ranges leave out the first frame.
    Pending {
        frames: u32,
        level_lo: f32,
        level_hi: f32,
        band_lo: f32,
        band_hi: f32,
    },
    /// Frames stand out without moving: steady noise or a tone, not speech.
    Steady,
    /// A confirmed talkspurt; `quiet` frames since its last speech frame; the low-band level
    /// range of its frames.
    Speech {
        quiet: u32,
        speech_frames: u32,
        level_lo: f32,
        level_hi: f32,
    },
}

/// The per-session sound detector. Real-time safe: no allocation, O(1) per frame.
#[derive(Clone, Debug)]
pub struct SoundDetector {
    fixed_threshold_dbm0: Option<f32>,
    channels: Option<[Background; 2]>,
    spurt: Spurt,
    stood_out: bool,
    fixed_hangover_left: u32,
    fixed_spurt_frames: u32,
    speech_heard: bool,
    /// Frames since the last speech verdict (saturating).
    since_speech: u32,
    /// The last [`RECENT_FRAMES`] frames' levels (low band, speech band), a ring; `recent_next` is
    /// the oldest.
    recent: [[f32; 2]; RECENT_FRAMES],
    recent_next: usize,
    /// See [`SoundDetector::backdated_silence_frames`].
    backdated: u32,
    /// The loud end of the line's noise, per channel (low band, speech band).
    ceilings: [Ceiling; 2],
}

/// The loud end of the noise of one channel: mean + [`CEILING_DEVS`] standard deviations of
/// the levels of frames outside confirmed talkspurts, exponentially weighted over about
/// [`CEILING_FRAMES`] frames. The background (the quietest 160 ms) is the noise's *dips*; for
/// smooth noise the ceiling is within a dB of it, but babble swells 5–10 dB above its dips for
/// whole syllables, and those swells otherwise stand out and keep a talkspurt going long after
/// the caller has stopped. Only frames not judged speech teach it, so the caller's voice does
/// not raise it; babble that was judged speech is not learnt, but babble between the caller's
/// talkspurts and before the first is.
#[derive(Clone, Copy, Debug)]
struct Ceiling {
    mean: f32,
    square: f32,
    frames: u32,
}

impl Ceiling {
    const NEW: Ceiling = Ceiling {
        mean: 0.0,
        square: 0.0,
        frames: 0,
    };

    fn learn(&mut self, level: f32) {
        self.frames = self.frames.saturating_add(1);
        // The first frames take an arithmetic mean; then the weight stays at 1/CEILING_FRAMES.
        let w = 1.0 / self.frames.min(CEILING_FRAMES) as f32;
        self.mean += w * (level - self.mean);
        self.square += w * (level * level - self.square);
    }

    /// The ceiling in dB, or −∞ before [`CEILING_MIN_FRAMES`] frames have taught it.
    fn ceiling(&self) -> f32 {
        if self.frames < CEILING_MIN_FRAMES {
            return f32::NEG_INFINITY;
        }
        self.mean + CEILING_DEVS * (self.square - self.mean * self.mean).max(0.0).sqrt()
    }
}

impl SoundDetector {
    /// An adaptive detector, or a fixed-threshold one when `fixed_threshold_dbm0` is given.
    pub fn new(fixed_threshold_dbm0: Option<f32>) -> SoundDetector {
        SoundDetector {
            fixed_threshold_dbm0,
            channels: None,
            spurt: Spurt::Idle,
            stood_out: false,
            fixed_hangover_left: 0,
            fixed_spurt_frames: 0,
            speech_heard: false,
            since_speech: u32::MAX,
            recent: [[crate::energy::MIN_DBM0; 2]; RECENT_FRAMES],
            recent_next: 0,
            backdated: 0,
            ceilings: [Ceiling::NEW; 2],
        }
    }

    /// Decides one 20 ms frame.
    pub fn classify(&mut self, f: &FrameFeatures) -> Verdict {
        match self.fixed_threshold_dbm0 {
            Some(threshold) => self.fixed(f.level_dbm0 > threshold),
            None => self.adaptive(f),
        }
    }

    fn fixed(&mut self, sound: bool) -> Verdict {
        if sound {
            self.fixed_spurt_frames += 1;
            self.fixed_hangover_left = HANGOVER_FRAMES;
            if self.fixed_spurt_frames >= MIN_SPEECH_FRAMES {
                self.speech_heard = true;
            }
            Verdict::Speech {
                onset_frames_ago: 0,
            }
        } else {
            if self.fixed_hangover_left > 0 {
                self.fixed_hangover_left -= 1;
            } else {
                self.fixed_spurt_frames = 0;
            }
            Verdict::Silence
        }
    }

    /// The deviations the decision uses: the band channel's own, and the low band's at
    /// least its roughness in excess of the band channel's.
    fn deviations(low: &Background, band: &Background) -> (f32, f32) {
        let excess = low.roughness() - band.roughness();
        (
            low.deviation.max(LOW_ROUGHNESS_SHARE * excess),
            band.deviation,
        )
    }

    fn adaptive(&mut self, f: &FrameFeatures) -> Verdict {
        let [low, band] = self
            .channels
            .get_or_insert_with(|| [Background::new(f.low_db), Background::new(f.band_db)]);
        let (low_dev, band_dev) = Self::deviations(low, band);
        let established = low.filled >= ESTABLISHED_SUB_WINDOWS;
        let click = f.peak_block_share >= IMPULSE_SHARE && !self.stood_out;
        let audible = f.level_dbm0 > ABSOLUTE_FLOOR_DBM0 && !click;
        // The ceiling (a square root) is looked at only for a frame above the background's
        // margin: most frames are not, and the decision stays cheap.
        let [low_ceiling, band_ceiling] = &self.ceilings;
        let onset = audible
            && (f.low_db > low.onset(low_dev)
                && f.low_db > low_ceiling.ceiling() + CEILING_ONSET_DB
                || f.band_db > band.onset(band_dev)
                    && f.band_db > band_ceiling.ceiling() + CEILING_ONSET_DB);
        let stands_out = audible
            && (f.low_db > low.continuation(low_dev) && f.low_db > low_ceiling.ceiling()
                || f.band_db > band.continuation(band_dev) && f.band_db > band_ceiling.ceiling());

        let mut adopt = false;
        let (spurt, verdict) = match self.spurt {
            Spurt::Idle if onset => (
                Spurt::Pending {
                    frames: 1,
                    level_lo: f32::INFINITY,
                    level_hi: f32::NEG_INFINITY,
                    band_lo: f32::INFINITY,
                    band_hi: f32::NEG_INFINITY,
                },
                Verdict::Silence,
            ),
            Spurt::Pending {
                frames,
                level_lo,
                level_hi,
                band_lo,
                band_hi,
            } if stands_out => {
                let frames = frames + 1;
                let (level_lo, level_hi) = (level_lo.min(f.low_db), level_hi.max(f.low_db));
                let (band_lo, band_hi) = (band_lo.min(f.band_db), band_hi.max(f.band_db));
                let enough = if self.since_speech < RECENT_SPEECH_FRAMES {
                    VARIATION_DB
                } else {
                    VARIATION_DB.max(VARIATION_DEVS * band_dev)
                };
                let moved = band_hi - band_lo >= enough;
                if frames >= CONFIRM_FRAMES && moved {
                    // Only frames judged against a measured background count for contains_sound.
                    let (speech_frames, level_lo, level_hi) = if established {
                        (frames, level_lo, level_hi)
                    } else {
                        (0, f32::INFINITY, f32::NEG_INFINITY)
                    };
                    (
                        Spurt::Speech {
                            quiet: 0,
                            speech_frames,
                            level_lo,
                            level_hi,
                        },
                        Verdict::Speech {
                            onset_frames_ago: frames - 1,
                        },
                    )
                } else if frames >= MAX_PENDING_FRAMES {
                    // A new steady level (a stepped floor, a tone): background now, so that
                    // speech starting on it is judged against it (see the module docs).
                    adopt = true;
                    (Spurt::Steady, Verdict::Silence)
                } else {
                    (
                        Spurt::Pending {
                            frames,
                            level_lo,
                            level_hi,
                            band_lo,
                            band_hi,
                        },
                        Verdict::Silence,
                    )
                }
            }
            Spurt::Steady if stands_out => (Spurt::Steady, Verdict::Silence),
            Spurt::Speech {
                speech_frames,
                level_lo,
                level_hi,
                ..
            } if stands_out => (
                if established {
                    Spurt::Speech {
                        quiet: 0,
                        speech_frames: speech_frames + 1,
                        level_lo: level_lo.min(f.low_db),
                        level_hi: level_hi.max(f.low_db),
                    }
                } else {
                    Spurt::Speech {
                        quiet: 0,
                        speech_frames,
                        level_lo,
                        level_hi,
                    }
                },
                Verdict::Speech {
                    onset_frames_ago: 0,
                },
            ),
            Spurt::Speech {
                quiet,
                speech_frames,
                level_lo,
                level_hi,
            } if quiet < HANGOVER_FRAMES => (
                Spurt::Speech {
                    quiet: quiet + 1,
                    speech_frames,
                    level_lo,
                    level_hi,
                },
                if quiet < END_HANGOVER_FRAMES && level_hi - low.level < TAIL_HIDDEN_DB {
                    Verdict::Speech {
                        onset_frames_ago: 0,
                    }
                } else {
                    Verdict::Silence
                },
            ),
            _ => (Spurt::Idle, Verdict::Silence),
        };
        if let Spurt::Speech {
            speech_frames,
            level_lo,
            level_hi,
            ..
        } = spurt
        {
            if speech_frames >= MIN_SPEECH_FRAMES && level_hi - level_lo >= SPEECH_RANGE_DB {
                self.speech_heard = true;
            }
        }
        self.stood_out = stands_out;
        let in_speech = matches!(spurt, Spurt::Speech { .. });
        if matches!(spurt, Spurt::Idle | Spurt::Steady) {
            self.ceilings[0].learn(f.low_db);
            self.ceilings[1].learn(f.band_db);
        }
        self.since_speech = if verdict.is_speech() {
            0
        } else {
            self.since_speech.saturating_add(1)
        };
        // (Both channels learn every frame: `|`, not `||`.)
        let raised = low.update(f.low_db, in_speech) | band.update(f.band_db, in_speech);
        self.recent[self.recent_next] = [f.low_db, f.band_db];
        self.recent_next = (self.recent_next + 1) % RECENT_FRAMES;
        self.backdated = 0;
        let (mut spurt, mut verdict) = (spurt, verdict);
        if let (
            true,
            Spurt::Speech {
                quiet, level_hi, ..
            },
        ) = (raised, spurt)
        {
            // A floor that stepped up during a talkspurt was judged speech until the flat rule
            // learnt it, 0.5 s later: the talkspurt really ended where the last frame stood
            // out of the background as it is now (see the module docs: back-dated silence).
            let (low_dev, band_dev) = Self::deviations(low, band);
            let mut k = 0;
            while k < RECENT_FRAMES {
                let [b, s] =
                    self.recent[(self.recent_next + RECENT_FRAMES - 1 - k) % RECENT_FRAMES];
                if b > low.level + BACKDATE_SHARE * (low.continuation(low_dev) - low.level)
                    || s > band.level + BACKDATE_SHARE * (band.continuation(band_dev) - band.level)
                {
                    break;
                }
                k += 1;
            }
            let k = k as u32;
            let hidden = level_hi - low.level < TAIL_HIDDEN_DB;
            let silent = if hidden {
                k.saturating_sub(END_HANGOVER_FRAMES)
            } else {
                k
            };
            if k > quiet && silent > 0 {
                if let Spurt::Speech { quiet, .. } = &mut spurt {
                    *quiet = k;
                }
                if k >= HANGOVER_FRAMES {
                    spurt = Spurt::Idle;
                }
                verdict = Verdict::Silence;
                self.backdated = silent;
                self.since_speech = silent;
            }
        }
        if adopt {
            for channel in [low, band] {
                if channel.run_len >= ADOPT_RUN_FRAMES {
                    let _ = channel.take_run();
                }
            }
        }
        self.spurt = spurt;
        verdict
    }

    /// Learns the line's background from a frame that is not to be judged (the caller's audio
    /// while the beep plays): a recording that starts right after the beep then already knows
    /// the line, so a caller who speaks at once is heard at once. Real-time safe.
    pub fn learn_background(&mut self, f: &FrameFeatures) {
        if self.fixed_threshold_dbm0.is_some() {
            return;
        }
        match &mut self.channels {
            Some([low, band]) => {
                low.update(f.low_db, false);
                band.update(f.band_db, false);
            }
            None => self.channels = Some([Background::new(f.low_db), Background::new(f.band_db)]),
        }
    }

    /// True while frames stand out but are not yet confirmed as speech (at most
    /// [`MAX_PENDING_FRAMES`]): a silence timer that runs out now waits for the verdict, so a
    /// word that begins just as the limit is reached is not cut.
    pub fn is_pending(&self) -> bool {
        matches!(self.spurt, Spurt::Pending { .. })
    }

    /// On the frame just classified: 0, or, when a floor that stepped up during a talkspurt
    /// has just become background, how many frames (this one included) have really been
    /// silence, though the frames before this one were judged speech against the old
    /// background. The recorder's silence timer counts from there.
    pub fn backdated_silence_frames(&self) -> u32 {
        self.backdated
    }

    /// True once a talkspurt long enough to be speech has been heard.
    pub fn contains_sound(&self) -> bool {
        self.speech_heard
    }

    /// The low band's background level, the mean of its quietest recent 160 ms, in dB on the
    /// dBm0 scale of a low-frequency tone (noise that reaches above 1 kHz reads lower here
    /// than its broadband level); None before the first adaptive frame.
    pub fn low_band_floor_db(&self) -> Option<f32> {
        self.channels.as_ref().map(|c| c[0].level)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(level: f32, tilt: f32) -> FrameFeatures {
        FrameFeatures {
            level_dbm0: level,
            band_db: level + tilt,
            peak_block_share: 0.25,
            low_db: level,
        }
    }

    /// A speech-like level: 4 Hz syllables between `peak` and 25 dB below it.
    fn syllable(peak: f32, i: usize) -> FrameFeatures {
        let phase = (i % 12) as f32 / 12.0;
        frame(
            peak - 25.0 * (1.0 - (std::f32::consts::PI * phase).sin()),
            -3.0,
        )
    }

    #[test]
    fn speech_onset_is_confirmed_and_dated_back() {
        let mut d = SoundDetector::new(None);
        for _ in 0..50 {
            assert_eq!(d.classify(&frame(-62.0, -3.0)), Verdict::Silence);
        }
        // A syllable: its level moves by 8 dB or more, as speech does within 100 ms.
        let levels = [-30.0, -24.0, -20.0, -22.0, -21.0, -25.0, -29.0, -23.0];
        let verdicts: Vec<Verdict> = levels
            .iter()
            .map(|&l| d.classify(&frame(l, -3.0)))
            .collect();
        assert_eq!(verdicts[0], Verdict::Silence);
        assert_eq!(verdicts[1], Verdict::Silence);
        assert_eq!(
            verdicts[2],
            Verdict::Speech {
                onset_frames_ago: 2
            }
        );
        assert!(verdicts[3..].iter().all(|v| *v
            == Verdict::Speech {
                onset_frames_ago: 0
            }));
        assert!(d.contains_sound());
        // The background did not move during speech, so quiet is silence again at once (on a
        // line this quiet no end of a word hides under the noise: no end hangover).
        assert_eq!(d.classify(&frame(-61.0, -3.0)), Verdict::Silence);
        assert!(d.low_band_floor_db().unwrap() <= -62.0);
    }

    #[test]
    fn in_noise_the_end_of_a_word_is_given_a_hangover() {
        let mut d = SoundDetector::new(None);
        let mut state = 5;
        for _ in 0..100 {
            d.classify(&frame(-40.0 + 0.3 * jitter(&mut state), -3.0));
        }
        // A syllable 15 dB over the noise: its faint end may be under the noise.
        for l in [-34.0, -30.0, -25.0, -27.0, -29.0, -33.0, -26.0] {
            d.classify(&frame(l, -3.0));
        }
        assert!(d.contains_sound());
        for _ in 0..END_HANGOVER_FRAMES {
            assert!(d
                .classify(&frame(-40.0 + 0.3 * jitter(&mut state), -3.0))
                .is_speech());
        }
        assert_eq!(
            d.classify(&frame(-40.0 + 0.3 * jitter(&mut state), -3.0)),
            Verdict::Silence
        );
    }

    #[test]
    fn clicks_are_never_speech() {
        let mut d = SoundDetector::new(None);
        for _ in 0..20 {
            d.classify(&frame(-100.0, 0.0));
        }
        for _ in 0..50 {
            // A click spreads over at most two frames: neither is confirmed.
            assert_eq!(d.classify(&frame(-30.0, -2.0)), Verdict::Silence);
            assert_eq!(d.classify(&frame(-40.0, -2.0)), Verdict::Silence);
            for _ in 0..48 {
                assert_eq!(d.classify(&frame(-100.0, 0.0)), Verdict::Silence);
            }
        }
        // Impulsive frames do not stand out however many there are.
        let click = FrameFeatures {
            peak_block_share: 0.9,
            ..frame(-20.0, -2.0)
        };
        for _ in 0..100 {
            assert_eq!(d.classify(&click), Verdict::Silence);
        }
        assert!(!d.contains_sound());
    }

    #[test]
    fn loud_steady_noise_from_the_start_is_background() {
        let mut d = SoundDetector::new(None);
        for i in 0..500 {
            let jitter = if i % 2 == 0 { 0.5 } else { -0.5 };
            assert_eq!(d.classify(&frame(-25.0 + jitter, -3.0)), Verdict::Silence);
        }
        assert!(!d.contains_sound());
        // Speech 13 dB over it is found (speech adds to the noise: no frame is quieter than it).
        let found = (0..50)
            .filter(|&i| {
                let s = syllable(-12.0, i);
                d.classify(&frame(s.level_dbm0.max(-25.0), -3.0))
                    .is_speech()
            })
            .count();
        assert!(found > 20, "{found}");
    }

    #[test]
    fn a_stepped_floor_is_learned_within_a_second_without_speech() {
        let mut d = SoundDetector::new(None);
        for _ in 0..200 {
            d.classify(&frame(-60.0, -3.0));
        }
        for _ in 0..500 {
            assert_eq!(d.classify(&frame(-45.0, -3.0)), Verdict::Silence);
        }
        assert!(!d.contains_sound());
        assert!((d.low_band_floor_db().unwrap() + 45.0).abs() < 0.1);
    }

    #[test]
    fn speech_cannot_pull_the_floor_up() {
        let mut d = SoundDetector::new(None);
        for _ in 0..100 {
            d.classify(&frame(-40.0, -3.0));
        }
        // 20 s of syllables whose peaks are only 8 dB over the noise: all along, the floor
        // stays at the noise and every syllable peak is speech.
        let mut peaks_found = 0;
        for i in 0..1000 {
            let s = syllable(-32.0, i);
            let level = s.level_dbm0.max(-40.0);
            let v = d.classify(&frame(level, -3.0));
            // (The first syllable's peak is its confirming frame's neighbour: count from the second.)
            if i >= 12 && i % 12 == 6 && v.is_speech() {
                peaks_found += 1;
            }
        }
        assert_eq!(peaks_found, 82);
        // The background is the mean of the quietest 160 ms: these syllables leave only 120 ms
        // at the noise between them, so it sits a little above it, never near the peaks.
        let floor = d.low_band_floor_db().unwrap();
        assert!(floor <= -38.0, "{floor}");
    }

    /// A deterministic pseudo-random sequence in [-1, 1).
    fn jitter(state: &mut u32) -> f32 {
        *state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (*state >> 8) as f32 / (1u32 << 23) as f32 - 1.0
    }

    #[test]
    fn rough_broadband_noise_with_a_steady_speech_band_is_background() {
        // Brown noise: the broadband level swings ±5 dB frame to frame, the speech band holds
        // within ±0.3 dB 25 dB lower.
        let mut d = SoundDetector::new(None);
        let mut state = 7;
        let noise = |state: &mut u32| {
            let level = -30.0 + 5.0 * jitter(state);
            FrameFeatures {
                level_dbm0: level,
                band_db: -55.0 + 0.3 * jitter(state),
                peak_block_share: 0.3,
                low_db: level,
            }
        };
        for _ in 0..100 {
            d.classify(&noise(&mut state));
        }
        let mut speech_frames = 0;
        for _ in 0..1000 {
            speech_frames += d.classify(&noise(&mut state)).is_speech() as u32;
        }
        assert_eq!(speech_frames, 0);
        // Syllables 15 dB over the band's noise are speech, seen in the band channel.
        let found = (0..100)
            .filter(|&i| {
                let mut f = noise(&mut state);
                f.band_db = f.band_db.max(syllable(-40.0, i).level_dbm0);
                d.classify(&f).is_speech()
            })
            .count();
        assert!(found > 40, "{found}");
    }

    #[test]
    fn a_floor_that_steps_up_during_speech_back_dates_the_silence() {
        let mut d = SoundDetector::new(None);
        let mut state = 13;
        for _ in 0..100 {
            d.classify(&frame(-60.0 + 0.3 * jitter(&mut state), -3.0));
        }
        for i in 0..36 {
            d.classify(&syllable(-20.0, i));
        }
        assert!(d.contains_sound());
        // The floor steps up 20 dB as the caller stops: judged against the old background its
        // frames are speech, until the flat rule makes it background; then the silence is
        // dated back to where the step began.
        let mut judged_speech = 0;
        let mut backdated = 0;
        for _ in 0..40 {
            let v = d.classify(&frame(-40.0 + 0.3 * jitter(&mut state), -3.0));
            judged_speech += v.is_speech() as u32;
            if d.backdated_silence_frames() > 0 {
                assert_eq!(v, Verdict::Silence);
                backdated = d.backdated_silence_frames();
            }
        }
        assert!(judged_speech >= 20, "{judged_speech}");
        // (Less the end hangover: 20 dB over the new floor, a word's faint end would hide.)
        assert!(
            backdated + END_HANGOVER_FRAMES >= judged_speech,
            "{backdated} {judged_speech}"
        );
        assert_eq!(d.backdated_silence_frames(), 0);
    }

    #[test]
    fn a_noise_step_is_never_sound() {
        let mut d = SoundDetector::new(None);
        let mut state = 3;
        for _ in 0..150 {
            d.classify(&frame(-50.0 + 0.8 * jitter(&mut state), -3.0));
        }
        // The step's first frame is only partly stepped.
        d.classify(&frame(-41.0, -3.0));
        for _ in 0..300 {
            d.classify(&frame(-35.0 + 0.8 * jitter(&mut state), -3.0));
        }
        assert!(!d.contains_sound());
        let floor = d.low_band_floor_db().unwrap();
        assert!((floor + 35.0).abs() < 1.0, "{floor}");
    }

    /// Pink-like noise at `level`: the broadband level wobbles by ±2 dB frame to frame (its
    /// loudest, lowest frequencies make few cycles per frame), the speech band by ±0.5 dB.
    fn pink(level: f32, state: &mut u32) -> FrameFeatures {
        let broad = level + 2.0 * jitter(state);
        let band = level - 1.0 + 0.5 * jitter(state);
        FrameFeatures {
            level_dbm0: broad,
            band_db: band,
            peak_block_share: 0.3,
            low_db: broad,
        }
    }

    #[test]
    fn a_step_of_pink_noise_never_starts_a_recording() {
        let mut d = SoundDetector::new(None);
        let mut state = 11;
        for _ in 0..150 {
            assert_eq!(d.classify(&pink(-50.0, &mut state)), Verdict::Silence);
        }
        // The step's first frame is only partly stepped; then the broadband level wobbles by
        // 4 dB within the 300 ms a candidate may take to move, the speech band does not.
        assert_eq!(d.classify(&pink(-40.0, &mut state)), Verdict::Silence);
        for _ in 0..400 {
            assert_eq!(d.classify(&pink(-35.0, &mut state)), Verdict::Silence);
        }
        assert!(!d.contains_sound());
        let floor = d.low_band_floor_db().unwrap();
        assert!((floor + 35.0).abs() < 1.5, "{floor}");
    }

    #[test]
    fn speech_soon_after_a_noise_step_is_heard() {
        let mut d = SoundDetector::new(None);
        let mut state = 5;
        for _ in 0..150 {
            d.classify(&pink(-50.0, &mut state));
        }
        d.classify(&pink(-40.0, &mut state));
        // The caller speaks 400 ms after the step, before the 0.5 s flat rule would have made
        // the new level background: the step was a steady candidate, background since 300 ms.
        for _ in 0..20 {
            assert_eq!(d.classify(&pink(-35.0, &mut state)), Verdict::Silence);
        }
        let found = (0..100)
            .filter(|&i| {
                let mut f = pink(-35.0, &mut state);
                let s = syllable(-15.0, i).level_dbm0;
                f.level_dbm0 = f.level_dbm0.max(s);
                f.low_db = f.level_dbm0;
                f.band_db = f.band_db.max(s - 1.0);
                d.classify(&f).is_speech()
            })
            .count();
        assert!(found > 40, "{found}");
        assert!(d.contains_sound());
    }

    #[test]
    fn babble_that_opens_on_a_dip_is_not_sound() {
        // The first frame (where the background starts) is a dip 15 dB under babble whose
        // frame levels then swing by ±5 dB: judged against that frame, the babble stood out
        // like a voice until the first measured sub-window replaced it.
        let mut d = SoundDetector::new(None);
        d.classify(&frame(-45.0, -2.0));
        let mut state = 17;
        for _ in 0..400 {
            d.classify(&frame(-30.0 + 5.0 * jitter(&mut state), -2.0));
        }
        assert!(!d.contains_sound());
    }

    /// Rough noise (babble-like: both channels swing by ±5 dB frame to frame) at −30 dBm0.
    fn rough(state: &mut u32) -> FrameFeatures {
        frame(-30.0 + 5.0 * jitter(state), -2.0)
    }

    /// A weak word: it stands out of the rough noise but moves by only 4 dB, less than the
    /// noise's own two deviations.
    const WEAK_WORD: [f32; 6] = [-16.0, -14.0, -15.0, -17.0, -18.0, -16.0];

    /// A detector that has learnt 6 s of rough noise (seeded with `seed`) and then heard a
    /// clear word: the caller is mid-turn.
    fn clear_word_in_rough_noise(seed: u32) -> (SoundDetector, u32) {
        let mut d = SoundDetector::new(None);
        let mut state = seed;
        for _ in 0..300 {
            d.classify(&rough(&mut state));
        }
        for l in [-20.0, -12.0, -6.0, -8.0, -14.0, -7.0, -5.0, -11.0] {
            d.classify(&frame(l, -2.0));
        }
        assert!(d.contains_sound());
        (d, state)
    }

    #[test]
    fn in_rough_noise_a_weak_word_soon_after_speech_is_speech() {
        // A clear word, then 400 ms of noise, then the weak word.
        let (mut d, mut state) = clear_word_in_rough_noise(23);
        for _ in 0..20 {
            d.classify(&rough(&mut state));
        }
        let heard = WEAK_WORD
            .iter()
            .filter(|&&l| d.classify(&frame(l, -2.0)).is_speech())
            .count();
        assert!(heard >= 3, "{heard}");
    }

    #[test]
    fn swells_of_rough_noise_do_not_keep_a_talkspurt_going() {
        // Babble-like noise whose frames swell 5 dB over its mean: measured from its dips (the
        // background) the swells stand out; measured from its ceiling they do not.
        let (mut d, mut state) = clear_word_in_rough_noise(29);
        let mut last_speech = 0;
        for i in 1..=200 {
            if d.classify(&rough(&mut state)).is_speech() {
                last_speech = i;
            }
        }
        assert!(last_speech <= END_HANGOVER_FRAMES, "{last_speech}");
    }

    #[test]
    fn in_rough_noise_a_weak_word_out_of_the_blue_is_not_speech() {
        // The same word with no speech in the last second: it moves less than the noise's
        // two deviations, as a swell of the noise would.
        let mut d = SoundDetector::new(None);
        let mut state = 23;
        for _ in 0..300 {
            d.classify(&rough(&mut state));
        }
        for &l in &WEAK_WORD {
            assert_eq!(d.classify(&frame(l, -2.0)), Verdict::Silence);
        }
    }

    #[test]
    fn fixed_threshold_overrides_adaptation() {
        let mut d = SoundDetector::new(Some(-30.0));
        for _ in 0..1000 {
            assert!(d.classify(&frame(-29.0, 0.0)).is_speech());
        }
        assert_eq!(d.classify(&frame(-30.0, 0.0)), Verdict::Silence);
    }
}
