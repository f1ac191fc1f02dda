//! Sound / silence decision per 20 ms frame (DESIGN §4).
//!
//! A frame is **sound** when its level (dBm0, from [`crate::energy`]) is
//! * more than [`MARGIN_DB`] above an adaptive background-noise floor, and
//! * above the absolute floor [`ABSOLUTE_FLOOR_DBM0`] (so a very quiet line never counts as sound),
//!
//! or, when the host gives `silence_threshold_db`, simply above that fixed level.
//!
//! The noise floor starts at the first frame's level (clamped to
//! [`INITIAL_FLOOR_MIN_DBM0`]..=[`INITIAL_FLOOR_MAX_DBM0`], so a call that opens with speech
//! still starts from a plausible noise level), falls fast towards quieter frames
//! ([`FALL_RATE`] of the gap per frame), follows noise-like frames up gently ([`RISE_RATE`] of
//! the gap) and rises only [`RISE_DB_PER_SOUND_FRAME`] per sound frame, so a steady hum becomes
//! background after several seconds while speech, which always has pauses, stays sound.
//!
//! A talkspurt is a run of sound frames whose gaps are at most [`HANGOVER_FRAMES`] long (the
//! hangover bridges gaps between syllables). `contains_sound` becomes true once a talkspurt has
//! [`MIN_SPEECH_FRAMES`] sound frames: long enough to be speech, not a click.

/// Margin above the noise floor for a frame to be sound, in dB.
pub const MARGIN_DB: f32 = 9.0;
/// No frame at or below this level is sound, in dBm0.
pub const ABSOLUTE_FLOOR_DBM0: f32 = -48.0;
/// Lowest starting value of the noise floor, in dBm0.
pub const INITIAL_FLOOR_MIN_DBM0: f32 = -75.0;
/// Highest starting value of the noise floor, in dBm0.
pub const INITIAL_FLOOR_MAX_DBM0: f32 = -40.0;
/// Fraction of the gap the floor falls per quieter frame.
pub const FALL_RATE: f32 = 0.1;
/// Fraction of the gap the floor rises per louder frame that is not sound.
pub const RISE_RATE: f32 = 0.05;
/// How far the floor rises per sound frame, in dB (2.5 dB per second).
pub const RISE_DB_PER_SOUND_FRAME: f32 = 0.05;
/// Silent frames bridged inside one talkspurt (100 ms).
pub const HANGOVER_FRAMES: u32 = 5;
/// Sound frames a talkspurt needs to count as speech (100 ms).
pub const MIN_SPEECH_FRAMES: u32 = 5;

/// The per-session sound detector. Real-time safe: no allocation, O(1) per frame.
#[derive(Clone, Debug)]
pub struct SoundDetector {
    fixed_threshold_dbm0: Option<f32>,
    noise_floor_dbm0: Option<f32>,
    hangover_left: u32,
    spurt_sound_frames: u32,
    speech_heard: bool,
}

impl SoundDetector {
    /// An adaptive detector, or a fixed-threshold one when `fixed_threshold_dbm0` is given.
    pub fn new(fixed_threshold_dbm0: Option<f32>) -> SoundDetector {
        SoundDetector {
            fixed_threshold_dbm0,
            noise_floor_dbm0: None,
            hangover_left: 0,
            spurt_sound_frames: 0,
            speech_heard: false,
        }
    }

    /// Classifies one 20 ms frame of level `level_dbm0`; true when it is sound.
    pub fn classify(&mut self, level_dbm0: f32) -> bool {
        let sound = match self.fixed_threshold_dbm0 {
            Some(threshold) => level_dbm0 > threshold,
            None => self.adaptive(level_dbm0),
        };
        self.track_talkspurt(sound);
        sound
    }

    fn adaptive(&mut self, level: f32) -> bool {
        let floor = *self
            .noise_floor_dbm0
            .get_or_insert(level.clamp(INITIAL_FLOOR_MIN_DBM0, INITIAL_FLOOR_MAX_DBM0));
        let sound = level > floor + MARGIN_DB && level > ABSOLUTE_FLOOR_DBM0;
        let next = if level <= floor {
            floor + FALL_RATE * (level - floor)
        } else if sound {
            floor + RISE_DB_PER_SOUND_FRAME
        } else {
            floor + RISE_RATE * (level - floor)
        };
        self.noise_floor_dbm0 = Some(next);
        sound
    }

    fn track_talkspurt(&mut self, sound: bool) {
        if sound {
            self.spurt_sound_frames += 1;
            self.hangover_left = HANGOVER_FRAMES;
            if self.spurt_sound_frames >= MIN_SPEECH_FRAMES {
                self.speech_heard = true;
            }
        } else if self.hangover_left > 0 {
            self.hangover_left -= 1;
        } else {
            self.spurt_sound_frames = 0;
        }
    }

    /// True once a talkspurt long enough to be speech has been heard.
    pub fn contains_sound(&self) -> bool {
        self.speech_heard
    }

    /// The current noise floor estimate in dBm0 (None before the first adaptive frame).
    pub fn noise_floor_dbm0(&self) -> Option<f32> {
        self.noise_floor_dbm0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_line_then_speech_then_quiet() {
        let mut d = SoundDetector::new(None);
        for _ in 0..50 {
            assert!(!d.classify(-62.0));
        }
        assert!(d.classify(-20.0));
        assert!(!d.contains_sound());
        for _ in 0..4 {
            assert!(d.classify(-22.0));
        }
        assert!(d.contains_sound());
        // The floor moved only slightly during 5 sound frames, so quiet is silence again.
        assert!(!d.classify(-61.0));
        assert!(d.noise_floor_dbm0().unwrap() < -60.0);
    }

    #[test]
    fn clicks_are_sound_frames_but_not_speech() {
        let mut d = SoundDetector::new(None);
        for _ in 0..20 {
            d.classify(-65.0);
        }
        for _ in 0..10 {
            assert!(d.classify(-10.0));
            for _ in 0..(HANGOVER_FRAMES + 1) {
                assert!(!d.classify(-65.0));
            }
        }
        assert!(!d.contains_sound());
    }

    #[test]
    fn loud_noise_is_not_sound_once_tracked() {
        let mut d = SoundDetector::new(None);
        // A noisy line at -44 dBm0 is above the absolute floor, but the first frame sets the
        // floor there, so it is never sound.
        for _ in 0..200 {
            assert!(!d.classify(-44.0));
        }
        assert!(d.classify(-25.0));
    }

    #[test]
    fn steady_hum_becomes_background() {
        let mut d = SoundDetector::new(None);
        d.classify(-70.0);
        let mut sound_frames = 0;
        for _ in 0..2000 {
            if d.classify(-30.0) {
                sound_frames += 1;
            }
        }
        // (−30 − 9 − (−70)) / 0.05 dB per frame ≈ 620 frames ≈ 12 s, then background.
        assert!((600..=640).contains(&sound_frames), "{sound_frames}");
    }

    #[test]
    fn fixed_threshold_overrides_adaptation() {
        let mut d = SoundDetector::new(Some(-30.0));
        for _ in 0..1000 {
            assert!(d.classify(-29.0));
        }
        assert!(!d.classify(-30.0));
    }
}
