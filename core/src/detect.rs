//! Sound / silence decision per 20 ms frame (DESIGN §4): is the caller speaking?
//!
//! Input per frame: the [`FrameFeatures`] of [`crate::features`] (broadband level, a 2 kHz
//! speech-band level that ignores hum and rumble, spectral tilt, impulsiveness). Output per
//! frame: a [`Verdict`], *speech* or *silence*, plus, on the frame where a talkspurt is
//! confirmed, how many frames earlier it began (the recorder's pre-roll reaches back that far, so
//! the onset is never clipped).
//!
//! # Why this design
//!
//! The previous detector kept one exponentially smoothed floor that rose towards any frame not
//! 9 dB above it, and was capped at −40 dBm0 at the start. That made three failures (issue 11):
//! speech at ≤ 10 dB SNR pulled the floor up until speech was "silence" (premature stops);
//! steady noise or hum louder than the cap was "sound" for seconds; and a single click was a
//! sound frame, restarting the silence timer. Tuning its constants trades one failure for
//! another, so the estimate and the decision are rebuilt:
//!
//! * **Background by minimum statistics** (Martin 2001, simplified): per channel, the floor is
//!   the minimum frame level over the last [`MIN_WINDOW_FRAMES`] frames (≈ 2.6 s), kept as eight
//!   sub-window minima so it costs O(1) per frame. Speech always has gaps between syllables and
//!   words that drop to the background, so speech cannot pull a minimum up; it follows a drop at
//!   once and a rise within the window. The first frame sets the floor, so noise or hum present
//!   from the start of the call is background from the first frame.
//! * **Stationarity learns a stepped floor fast**: when a channel's level has stayed within
//!   [`FLAT_RANGE_DB`] (widened by the noise's own spread) for [`FLAT_FRAMES`] frames (0.5 s),
//!   that level is background at once. Speech never holds still that long (syllables modulate its
//!   level by 10–30 dB at about 4 Hz); steady noise, hum and a tone do.
//! * **Two channels**: the broadband level, and the level of `x[n] − x[n−2]` (a band-pass peaking
//!   at 2 kHz, −20 dB at 60 Hz). A frame stands out if either channel stands out, so speech over
//!   white noise is found in the broadband channel and speech over hum, brown or pink noise in
//!   the band channel, where that noise is 10–25 dB weaker.
//! * **Margins that follow the noise**: each channel tracks the mean excess of noise frames over
//!   its floor (`spread`; ≈ 1.5 dB for white noise, more for babble or brown noise). A frame must
//!   exceed the floor by [`ONSET_MIN_DB`] or [`ONSET_SPREADS`] × spread to start a talkspurt,
//!   and by the lower [`CONTINUE_MIN_DB`] / [`CONTINUE_SPREADS`] × spread to continue one
//!   (hysteresis: weak word endings are kept without letting noise start speech).
//! * **A talkspurt must be confirmed**: [`CONFIRM_FRAMES`] (60 ms) frames standing out, none of
//!   them a click (≥ [`IMPULSE_SHARE`] of the frame's energy in 4 ms, after a frame that did not
//!   stand out: the end of a syllable can be as concentrated, but it follows speech),
//!   and a level or tilt change of at least [`VARIATION_DB`] (or [`VARIATION_SPREADS`] × the spread) among them (speech moves; a noise
//!   step, hum or a dial tone does not). A click lasts one or two frames: it never confirms, so
//!   it neither starts a recording nor resets the silence timer, and `contains_sound` stays false.
//!   A candidate that has not moved after [`MAX_PENDING_FRAMES`] is not speech.
//! * **Silence is timed from the last frame that stood out**: after a talkspurt, frames that
//!   stand out within [`HANGOVER_FRAMES`] continue it without a new confirmation (speech with
//!   short gaps), but the hangover itself is silence, so the stop lands `max_silence` after the
//!   last speech, not after the hangover.
//! * **A timer that runs out waits for a pending verdict** ([`SoundDetector::is_pending`]): a
//!   word that starts just as the silence limit is reached is not cut by the confirmation delay.
//! * **The beep teaches the background**: while the beep plays the caller's audio is not judged,
//!   but it feeds the background estimate ([`SoundDetector::learn_background`]), so a caller who
//!   speaks as soon as the beep ends is measured against the line, not against their own voice.
//!   (Without a beep, the first frame sets the background: a call that is speech from its very
//!   first frame is heard from its first pause between syllables, within the pre-roll mostly.)
//! * [`ABSOLUTE_FLOOR_DBM0`]: nothing quieter is speech (A-law idle is −66 dBm0); speech at
//!   −55 dBFS (≈ −49 dBm0) is well above it.
//!
//! `contains_sound` becomes true once a confirmed talkspurt has [`MIN_SPEECH_FRAMES`] speech
//! frames. With `silence_threshold_db` (the fixed override) a frame is speech when its broadband
//! level is above the threshold, with no confirmation, exactly as before.
//!
//! Cost: O(1) per frame on top of the features, no allocation; all state is fixed-size arrays.

use crate::features::FrameFeatures;

/// Frames per sub-window of the minimum tracker (320 ms).
pub const SUB_WINDOW_FRAMES: u32 = 16;
/// Sub-windows kept; the floor is the minimum over all of them and the current one.
pub const SUB_WINDOWS: usize = 8;
/// Window of the minimum statistics, in frames (≈ 2.6 s).
pub const MIN_WINDOW_FRAMES: u32 = SUB_WINDOW_FRAMES * (SUB_WINDOWS as u32 + 1);
/// Frames a channel must stay flat to become background at once (500 ms).
pub const FLAT_FRAMES: u32 = 25;
/// Level range (dB) that counts as flat, before widening by the noise's spread.
pub const FLAT_RANGE_DB: f32 = 4.0;
/// Margin over the floor to start a talkspurt, in dB, before the noise's spread is added.
pub const ONSET_MIN_DB: f32 = 5.0;
/// Spreads added to the onset margin.
pub const ONSET_SPREADS: f32 = 2.0;
/// Margin over the floor to continue a talkspurt, in dB, before the noise's spread is added.
pub const CONTINUE_MIN_DB: f32 = 3.0;
/// Spreads added to the continuation margin.
pub const CONTINUE_SPREADS: f32 = 1.5;
/// No frame at or below this level is speech, in dBm0.
pub const ABSOLUTE_FLOOR_DBM0: f32 = -62.0;
/// A frame with this share of its energy in 4 ms, after a frame that did not stand out, is a
/// click, not speech.
pub const IMPULSE_SHARE: f32 = 0.7;
/// Frames that must stand out before a talkspurt is speech (60 ms).
pub const CONFIRM_FRAMES: u32 = 3;
/// Level or tilt change a confirming talkspurt must show, in dB.
pub const VARIATION_DB: f32 = 3.0;
/// The variation a confirming talkspurt must show, in units of the broadband noise spread.
pub const VARIATION_SPREADS: f32 = 2.5;
/// A candidate talkspurt still without variation after this many frames is not speech (300 ms).
pub const MAX_PENDING_FRAMES: u32 = 15;
/// Frames after the last speech frame within which standing out continues the talkspurt (200 ms).
pub const HANGOVER_FRAMES: u32 = 10;
/// Speech frames a talkspurt needs for `contains_sound` (100 ms).
pub const MIN_SPEECH_FRAMES: u32 = 5;
/// The most frames a [`Verdict::Speech`] onset can lie in the past.
pub const MAX_ONSET_DELAY_FRAMES: usize = MAX_PENDING_FRAMES as usize;

const SPREAD_INITIAL_DB: f32 = 1.0;
/// The spread is a running mean over its first 1/SPREAD_RATE noise frames, then an exponential
/// average with that time constant (1 s).
const SPREAD_RATE: f32 = 0.02;
const SPREAD_MAX_DB: f32 = 12.0;

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

/// The background estimate of one channel (broadband or speech band).
#[derive(Clone, Debug)]
struct Background {
    sub_minima: [f32; SUB_WINDOWS],
    /// The minimum of `sub_minima` (recomputed when a sub-window completes).
    past_min: f32,
    next_sub: usize,
    current_min: f32,
    in_current: u32,
    floor: f32,
    spread: f32,
    noise_frames: u32,
    run_lo: f32,
    run_hi: f32,
    run_len: u32,
}

impl Background {
    fn new(first: f32) -> Background {
        Background {
            sub_minima: [first; SUB_WINDOWS],
            past_min: first,
            next_sub: 0,
            current_min: first,
            in_current: 0,
            floor: first,
            spread: SPREAD_INITIAL_DB,
            noise_frames: 0,
            run_lo: first,
            run_hi: first,
            run_len: 0,
        }
    }

    fn onset(&self) -> f32 {
        self.floor + ONSET_MIN_DB + ONSET_SPREADS * self.spread
    }

    fn continuation(&self) -> f32 {
        self.floor + CONTINUE_MIN_DB + CONTINUE_SPREADS * self.spread
    }

    /// Takes one frame's level; `noise` says the frame was judged background (it then teaches
    /// the spread).
    fn update(&mut self, level: f32, noise: bool) {
        self.current_min = self.current_min.min(level);
        self.in_current += 1;
        if self.in_current == SUB_WINDOW_FRAMES {
            self.sub_minima[self.next_sub] = self.current_min;
            self.next_sub = (self.next_sub + 1) % SUB_WINDOWS;
            self.current_min = level;
            self.in_current = 0;
            self.past_min = self.sub_minima.iter().fold(f32::INFINITY, |m, &x| m.min(x));
        }
        let lo = self.run_lo.min(level);
        let hi = self.run_hi.max(level);
        if hi - lo > FLAT_RANGE_DB + self.spread {
            self.run_lo = level;
            self.run_hi = level;
            self.run_len = 1;
        } else {
            self.run_lo = lo;
            self.run_hi = hi;
            self.run_len += 1;
        }
        let mut floor = self.past_min.min(self.current_min);
        if self.run_len >= FLAT_FRAMES && self.run_lo > floor {
            // A steady level for 0.5 s is background now: forget the quieter past.
            floor = self.run_lo;
            for m in &mut self.sub_minima {
                *m = m.max(floor);
            }
            self.past_min = self.past_min.max(floor);
            self.current_min = self.current_min.max(floor);
        }
        self.floor = floor;
        if noise {
            let excess = (level - floor).clamp(0.0, SPREAD_MAX_DB);
            self.noise_frames = self.noise_frames.saturating_add(1);
            let rate = SPREAD_RATE.max(1.0 / self.noise_frames as f32);
            self.spread += rate * (excess - self.spread);
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Spurt {
    /// No talkspurt.
    Idle,
    /// Frames stand out but are not confirmed yet.
    Pending {
        frames: u32,
        level_lo: f32,
        level_hi: f32,
        tilt_lo: f32,
        tilt_hi: f32,
    },
    /// Frames stand out without moving: steady noise or a tone, not speech.
    Steady,
    /// A confirmed talkspurt; `quiet` frames since its last speech frame.
    Speech { quiet: u32, speech_frames: u32 },
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

    fn adaptive(&mut self, f: &FrameFeatures) -> Verdict {
        let [broad, band] = self
            .channels
            .get_or_insert_with(|| [Background::new(f.level_dbm0), Background::new(f.band_db)]);
        let click = f.peak_block_share >= IMPULSE_SHARE && !self.stood_out;
        let audible = f.level_dbm0 > ABSOLUTE_FLOOR_DBM0 && !click;
        let onset = audible && (f.level_dbm0 > broad.onset() || f.band_db > band.onset());
        let stands_out =
            audible && (f.level_dbm0 > broad.continuation() || f.band_db > band.continuation());

        let (spurt, verdict) = match self.spurt {
            Spurt::Idle if onset => (
                Spurt::Pending {
                    frames: 1,
                    level_lo: f.level_dbm0,
                    level_hi: f.level_dbm0,
                    tilt_lo: f.tilt_db,
                    tilt_hi: f.tilt_db,
                },
                Verdict::Silence,
            ),
            Spurt::Pending {
                frames,
                level_lo,
                level_hi,
                tilt_lo,
                tilt_hi,
            } if stands_out => {
                let frames = frames + 1;
                let (level_lo, level_hi) = (level_lo.min(f.level_dbm0), level_hi.max(f.level_dbm0));
                let (tilt_lo, tilt_hi) = (tilt_lo.min(f.tilt_db), tilt_hi.max(f.tilt_db));
                let enough = VARIATION_DB.max(VARIATION_SPREADS * broad.spread);
                let moved = level_hi - level_lo >= enough || tilt_hi - tilt_lo >= enough;
                if frames >= CONFIRM_FRAMES && moved {
                    (
                        Spurt::Speech {
                            quiet: 0,
                            speech_frames: frames,
                        },
                        Verdict::Speech {
                            onset_frames_ago: frames - 1,
                        },
                    )
                } else if frames >= MAX_PENDING_FRAMES {
                    (Spurt::Steady, Verdict::Silence)
                } else {
                    (
                        Spurt::Pending {
                            frames,
                            level_lo,
                            level_hi,
                            tilt_lo,
                            tilt_hi,
                        },
                        Verdict::Silence,
                    )
                }
            }
            Spurt::Steady if stands_out => (Spurt::Steady, Verdict::Silence),
            Spurt::Speech { speech_frames, .. } if stands_out => (
                Spurt::Speech {
                    quiet: 0,
                    speech_frames: speech_frames + 1,
                },
                Verdict::Speech {
                    onset_frames_ago: 0,
                },
            ),
            Spurt::Speech {
                quiet,
                speech_frames,
            } if quiet < HANGOVER_FRAMES => (
                Spurt::Speech {
                    quiet: quiet + 1,
                    speech_frames,
                },
                Verdict::Silence,
            ),
            _ => (Spurt::Idle, Verdict::Silence),
        };
        if let Spurt::Speech { speech_frames, .. } = spurt {
            if speech_frames >= MIN_SPEECH_FRAMES {
                self.speech_heard = true;
            }
        }
        self.stood_out = stands_out;
        let noise = matches!(spurt, Spurt::Idle | Spurt::Steady) && !onset;
        broad.update(f.level_dbm0, noise);
        band.update(f.band_db, noise);
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
            Some([broad, band]) => {
                // Only frames that would not start a talkspurt teach the spread (the beep's own
                // echo must not widen the margins).
                let noise = f.level_dbm0 <= broad.onset() && f.band_db <= band.onset();
                broad.update(f.level_dbm0, noise);
                band.update(f.band_db, noise);
            }
            None => {
                self.channels = Some([Background::new(f.level_dbm0), Background::new(f.band_db)])
            }
        }
    }

    /// True while frames stand out but are not yet confirmed as speech (at most
    /// [`MAX_PENDING_FRAMES`]): a silence timer that runs out now waits for the verdict, so a
    /// word that begins just as the limit is reached is not cut.
    pub fn is_pending(&self) -> bool {
        matches!(self.spurt, Spurt::Pending { .. })
    }

    /// True once a talkspurt long enough to be speech has been heard.
    pub fn contains_sound(&self) -> bool {
        self.speech_heard
    }

    /// The broadband background estimate in dBm0 (None before the first adaptive frame).
    pub fn noise_floor_dbm0(&self) -> Option<f32> {
        self.channels.as_ref().map(|c| c[0].floor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(level: f32, tilt: f32) -> FrameFeatures {
        FrameFeatures {
            level_dbm0: level,
            band_db: level + tilt,
            tilt_db: tilt,
            peak_block_share: 0.25,
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
        let levels = [-30.0, -24.0, -20.0, -22.0, -21.0, -25.0];
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
        // The floor did not move during speech, so quiet is silence again at once.
        assert_eq!(d.classify(&frame(-61.0, -3.0)), Verdict::Silence);
        assert!(d.noise_floor_dbm0().unwrap() <= -62.0);
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
        // Speech 10 dB over it is found.
        let found = (0..50)
            .filter(|&i| d.classify(&syllable(-12.0, i)).is_speech())
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
        assert!((d.noise_floor_dbm0().unwrap() + 45.0).abs() < 0.1);
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
        assert!(d.noise_floor_dbm0().unwrap() <= -40.0);
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
