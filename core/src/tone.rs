//! The beep: a sine tone generated straight into G.711 bytes, a sample at a time, so the host can
//! pull it in frames of any size with no buffer of its own. Raised-cosine ramps at both ends keep
//! it free of clicks.

use crate::energy::FULL_SCALE_SINE_DBM0;
use crate::g711::Codec;

/// Length of each raised-cosine ramp, in samples (5 ms).
pub const RAMP_SAMPLES: u32 = 40;

/// A finite tone, generated on demand. Real-time safe: no allocation, O(samples).
#[derive(Clone, Debug)]
pub struct ToneGenerator {
    codec: Codec,
    amplitude: f64,
    step: f64,
    total: u32,
    position: u32,
}

impl ToneGenerator {
    /// A tone of `frequency_hz` lasting `milliseconds` at `level_dbm0`, encoded in `codec`.
    pub fn new(codec: Codec, frequency_hz: f64, milliseconds: u32, level_dbm0: f64) -> Self {
        // A sine at the full-scale amplitude (32,768) is FULL_SCALE_SINE_DBM0.
        let amplitude = 32768.0 * 10f64.powf((level_dbm0 - FULL_SCALE_SINE_DBM0 as f64) / 20.0);
        ToneGenerator {
            codec,
            amplitude: amplitude.min(32767.0),
            step: 2.0 * std::f64::consts::PI * frequency_hz / 8000.0,
            total: milliseconds * 8,
            position: 0,
        }
    }

    /// Samples still to come.
    pub fn remaining(&self) -> u32 {
        self.total - self.position
    }

    /// True when every sample has been produced.
    pub fn is_finished(&self) -> bool {
        self.position >= self.total
    }

    /// Writes up to `out.len()` samples of the tone; returns how many were written (0 at the end).
    pub fn fill(&mut self, out: &mut [u8]) -> usize {
        let n = (self.remaining() as usize).min(out.len());
        for o in &mut out[..n] {
            let i = self.position;
            let from_edge = i.min(self.total - 1 - i);
            let envelope = if from_edge < RAMP_SAMPLES {
                0.5 - 0.5 * (std::f64::consts::PI * from_edge as f64 / RAMP_SAMPLES as f64).cos()
            } else {
                1.0
            };
            let sample = self.amplitude * envelope * (self.step * i as f64).sin();
            *o = self.codec.encode(sample.round() as i16);
            self.position += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::energy::{level_dbm0, sum_of_squares_scalar};

    #[test]
    fn tone_has_the_asked_length_level_and_frequency() {
        let mut t = ToneGenerator::new(Codec::Alaw, 1000.0, 250, -12.0);
        let mut bytes = vec![0u8; 4000];
        let mut n = 0;
        // Pull in odd-sized pieces, as a host might.
        while n < bytes.len() {
            let got = t.fill(&mut bytes[n..(n + 77).min(4000)]);
            if got == 0 {
                break;
            }
            n += got;
        }
        assert_eq!(n, 2000);
        assert!(t.is_finished());
        let linear: Vec<i16> = bytes[..n].iter().map(|&b| Codec::Alaw.decode(b)).collect();
        // Level over the steady middle part (away from the ramps).
        let mid = &linear[400..1600];
        let level = level_dbm0(sum_of_squares_scalar(mid), mid.len());
        assert!((level + 12.0).abs() < 0.2, "level {level}");
        // 1000 Hz at 8 kHz: 2 zero crossings every 8 samples.
        let crossings = mid.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
        assert!((297..=303).contains(&crossings), "{crossings}");
        // Starts and ends at (near) zero thanks to the ramps.
        assert!(linear[0].abs() < 64 && linear[n - 1].abs() < 64);
    }
}
