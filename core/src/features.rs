//! Per-frame analysis of a 20 ms G.711 frame: the cheap features the sound/silence detector
//! ([`crate::detect`]) decides on, computed once per frame so other per-frame detectors (DTMF)
//! can sit beside it on the same decoded samples.
//!
//! * **Broadband energy**: the exact sum of squares from the G.711 bytes (the SIMD kernel of
//!   [`crate::energy`]), as dBm0 through a fast logarithm: the level hosts see through
//!   [`crate::energy::frame_level_dbm0`].
//! * **Speech-band energy**: of `x[n] − x[n−2]`, a three-tap band-pass with its peak at 2 kHz,
//!   −20 dB at 60 Hz, −22 dB at 50 Hz, −11 dB at 180 Hz and −6.5 dB at 300 Hz. It keeps the
//!   formant region of speech and throws away mains hum and most of the power of brown (and
//!   much of pink) noise, so speech over hum or rumble stands far higher above the background in
//!   this band than in the broadband level.
//! * **Tilt**: the energy of `x[n] − x[n−1]` against the broadband energy, in dB: a cheap
//!   spectral centroid (and, like the zero-crossing rate, it tells voiced from unvoiced sound).
//!   Speech swings it from frame to frame; steady noise and tones hold it still.
//! * **Impulsiveness**: the largest share of the frame's energy in two adjacent 2 ms blocks.
//!   A click or pop (≤ 5 ms) puts at least three quarters of a frame's energy there; steady
//!   sound spreads it over all ten blocks (2/10), and even voiced speech, whose pitch pulses are
//!   3–10 ms apart, or a syllable that starts or ends inside the frame, rarely puts more than
//!   ~0.7 there.
//!
//! Everything is O(frame), allocation free and branch free over the samples (the loops
//! vectorise); the filters run inside the frame (no state), so a frame's features depend only
//! on its own bytes.

#[cfg(test)]
use crate::energy::level_dbm0;
use crate::energy::EnergyKernel;
use crate::g711::Codec;

/// Samples per analysed frame (20 ms at 8 kHz).
pub const FRAME_SAMPLES: usize = 160;
/// Samples per block of the impulsiveness measure (2 ms).
pub const BLOCK_SAMPLES: usize = 16;
const BLOCKS: usize = FRAME_SAMPLES / BLOCK_SAMPLES;

/// What one frame looks like to the detectors.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FrameFeatures {
    /// Broadband level in dBm0 ([`level_of_frame_energy`] of the exact energy: exactly what
    /// [`crate::energy::frame_level_dbm0`] returns for the frame).
    pub level_dbm0: f32,
    /// Level of the 2 kHz band-pass `x[n] − x[n−2]`, in dB on the same scale.
    pub band_db: f32,
    /// Energy of `x[n] − x[n−1]` over the broadband energy, in dB (−∞..+6): high for hiss and
    /// fricatives, low for hum and voiced sound.
    pub tilt_db: f32,
    /// The largest share of the frame energy in two adjacent 2 ms blocks (1/5 for steady
    /// sound, near 1 for a click).
    pub peak_block_share: f32,
}

const fn f32_table(decode: &[i16; 256]) -> [f32; 256] {
    let mut t = [0f32; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = decode[i] as f32;
        i += 1;
    }
    t
}

static ALAW_F32: [f32; 256] = f32_table(&crate::g711::ALAW_TO_LINEAR);
static ULAW_F32: [f32; 256] = f32_table(&crate::g711::ULAW_TO_LINEAR);

/// Decodes one G.711 frame to linear samples as `f32` (the form the float features and a DTMF
/// filter bank work on), one table lookup a sample. Real-time safe.
#[inline(always)]
pub fn decode_frame_f32(codec: Codec, frame: &[u8; FRAME_SAMPLES], out: &mut [f32; FRAME_SAMPLES]) {
    let table = match codec {
        Codec::Alaw => &ALAW_F32,
        Codec::Ulaw => &ULAW_F32,
    };
    for (o, &b) in out.iter_mut().zip(frame.iter()) {
        *o = table[b as usize];
    }
}

/// `10·log10(energy / 160)` on the dBm0 scale of [`crate::energy::level_dbm0`], from an `f32`
/// energy, with a fast logarithm (exponent bits plus a cubic on the mantissa: within 0.004 dB).
/// Hand-written because the standard `log10` costs a fifth of the per-frame budget, and three
/// are needed per frame.
#[inline]
fn fast_level_db(energy: f32) -> f32 {
    use std::f32::consts::LOG10_2;
    // dBm0 = 10·log10(E / 160 / 32768²) + 10·log10(2) + 3.14 (as level_dbm0), and
    // 10·log10(E) = 10·log10(2)·log2(E).
    const DB_PER_OCTAVE: f32 = 10.0 * LOG10_2;
    const OFFSET: f32 =
        -DB_PER_OCTAVE * 30.0 - 22.041_2 + DB_PER_OCTAVE + crate::energy::FULL_SCALE_SINE_DBM0;
    if energy < 1.0 {
        return crate::energy::MIN_DBM0;
    }
    let bits = energy.to_bits();
    let exponent = ((bits >> 23) & 0xFF) as f32 - 127.0;
    // The mantissa minus one, in [0, 1).
    let m = f32::from_bits((bits & 0x007F_FFFF) | 0x3F80_0000) - 1.0;
    // log2(1 + m) ≈ m·(1.42349 − m·(0.58773 − m·0.16556)), a least-squares fit on [0, 1]
    // (max error 0.0013, i.e. 0.004 dB).
    let log2 = exponent + m * (1.423_485 + m * (-0.587_734 + m * 0.165_559));
    (DB_PER_OCTAVE * log2 + OFFSET).max(crate::energy::MIN_DBM0)
}

/// The broadband level the detector sees, in dBm0, from the exact integer energy of a 20 ms
/// frame: [`crate::energy::level_dbm0`] to within 0.004 dB, at a tenth of its cost.
#[inline]
pub fn level_of_frame_energy(sum_of_squares: u64) -> f32 {
    fast_level_db(sum_of_squares as f32)
}

impl FrameFeatures {
    /// Decodes one frame into `samples` (for a detector that sits beside this one, e.g. DTMF)
    /// and analyses it: `kernel` computes the exact broadband energy from the bytes and, when it
    /// is the AVX2 kernel, the whole analysis runs compiled for AVX2. Real-time safe.
    #[inline]
    pub fn decode_and_analyse(
        kernel: EnergyKernel,
        codec: Codec,
        frame: &[u8; FRAME_SAMPLES],
        samples: &mut [f32; FRAME_SAMPLES],
    ) -> FrameFeatures {
        #[cfg(target_arch = "x86_64")]
        if kernel.is_avx2() {
            // SAFETY: an AVX2 kernel is only made after the CPU reported AVX2.
            return unsafe { decode_and_analyse_avx2(kernel, codec, frame, samples) };
        }
        decode_frame_f32(codec, frame, samples);
        FrameFeatures::analyse(kernel, codec, frame, samples)
    }

    /// Analyses one frame: `kernel` computes the exact broadband energy from the bytes, the rest
    /// comes from `samples`, the same frame decoded by [`decode_frame_f32`]. Real-time safe.
    ///
    /// One pass over the samples in chunks of eight, each sum in eight independent lanes so the
    /// compiler keeps them in vector registers (a float sum is not reassociated on its own).
    #[inline(always)]
    pub fn analyse(
        kernel: EnergyKernel,
        codec: Codec,
        frame: &[u8; FRAME_SAMPLES],
        samples: &[f32; FRAME_SAMPLES],
    ) -> FrameFeatures {
        let energy = kernel.g711_sum_of_squares(codec, frame);
        // Lanes of: each block's squares, x[n] − x[n−1], x[n] − x[n−2]. The differences start
        // at n = 2 (the first two samples have no predecessor inside the frame). Indexing a
        // fixed-size array with bounded indices lets the compiler drop the bounds checks.
        let s = samples;
        let mut blocks = [[0f32; 8]; BLOCKS];
        for (b, block) in blocks.iter_mut().enumerate() {
            for half in 0..BLOCK_SAMPLES / 8 {
                let base = b * BLOCK_SAMPLES + half * 8;
                for j in 0..8 {
                    block[j] += s[base + j] * s[base + j];
                }
            }
        }
        let mut diff1 = [0f32; 8];
        let mut diff2 = [0f32; 8];
        const CHUNKS: usize = (FRAME_SAMPLES - 2) / 8;
        for c in 0..CHUNKS {
            let base = 2 + c * 8;
            for j in 0..8 {
                let d1 = s[base + j] - s[base + j - 1];
                let d2 = s[base + j] - s[base + j - 2];
                diff1[j] += d1 * d1;
                diff2[j] += d2 * d2;
            }
        }
        let mut d1: f32 = diff1.iter().sum();
        let mut d2: f32 = diff2.iter().sum();
        for i in 2 + CHUNKS * 8..FRAME_SAMPLES {
            d1 += (s[i] - s[i - 1]) * (s[i] - s[i - 1]);
            d2 += (s[i] - s[i - 2]) * (s[i] - s[i - 2]);
        }
        let block_energy = blocks.map(|lanes| lanes.iter().sum::<f32>());
        let total: f32 = block_energy.iter().sum();
        let peak = block_energy
            .windows(2)
            .fold(0f32, |m, pair| m.max(pair[0] + pair[1]));
        FrameFeatures {
            level_dbm0: level_of_frame_energy(energy),
            band_db: fast_level_db(d2),
            tilt_db: if energy == 0 {
                0.0
            } else {
                fast_level_db(d1) - fast_level_db(total)
            },
            peak_block_share: if total > 0.0 { peak / total } else { 0.0 },
        }
    }

    /// Decodes and analyses one frame (for callers that do not need the decoded samples).
    /// Real-time safe.
    #[inline]
    pub fn of_frame(
        kernel: EnergyKernel,
        codec: Codec,
        frame: &[u8; FRAME_SAMPLES],
    ) -> FrameFeatures {
        let mut samples = [0f32; FRAME_SAMPLES];
        FrameFeatures::decode_and_analyse(kernel, codec, frame, &mut samples)
    }
}

/// The same decode and analysis compiled for AVX2: the portable code (so both paths compute
/// the same thing), with the eight-lane sums in one register. (An AVX2 gather for the decode was
/// tried: slower than eight scalar lookups on the benchmark machine.)
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn decode_and_analyse_avx2(
    kernel: EnergyKernel,
    codec: Codec,
    frame: &[u8; FRAME_SAMPLES],
    samples: &mut [f32; FRAME_SAMPLES],
) -> FrameFeatures {
    decode_frame_f32(codec, frame, samples);
    FrameFeatures::analyse(kernel, codec, frame, samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_of(codec: Codec, f: impl Fn(usize) -> f64) -> [u8; FRAME_SAMPLES] {
        std::array::from_fn(|i| codec.encode(f(i) as i16))
    }

    fn sine(hz: f64, amp: f64) -> impl Fn(usize) -> f64 {
        move |i| amp * (std::f64::consts::TAU * hz * i as f64 / 8000.0).sin()
    }

    #[test]
    fn band_pass_rejects_hum_and_keeps_the_formant_region() {
        let k = EnergyKernel::detect();
        let hum =
            FrameFeatures::of_frame(k, Codec::Ulaw, &frame_of(Codec::Ulaw, sine(60.0, 8000.0)));
        let mid =
            FrameFeatures::of_frame(k, Codec::Ulaw, &frame_of(Codec::Ulaw, sine(1000.0, 8000.0)));
        // |1 − z^-2| is 2·|sin(2πf/8000)|: −20.5 dB at 60 Hz, +3 dB at 1 kHz (G.711 and the
        // frame edges cost a little).
        assert!((hum.band_db - hum.level_dbm0 + 20.5).abs() < 1.5, "{hum:?}");
        assert!((mid.band_db - mid.level_dbm0 - 3.0).abs() < 0.5, "{mid:?}");
        assert!((hum.level_dbm0 - mid.level_dbm0).abs() < 0.2);
        // Tilt: |1 − z^-1|² at 60 Hz is −26.5 dB, at 1 kHz −2.3 dB.
        assert!(
            hum.tilt_db < -20.0 && (mid.tilt_db + 2.3).abs() < 0.5,
            "{mid:?}"
        );
    }

    #[test]
    fn a_click_is_impulsive_and_a_tone_is_not() {
        let k = EnergyKernel::detect();
        let click = frame_of(Codec::Alaw, |i| {
            if (60..92).contains(&i) {
                3000.0
            } else {
                0.0
            }
        });
        let tone = frame_of(Codec::Alaw, sine(440.0, 3000.0));
        let c = FrameFeatures::of_frame(k, Codec::Alaw, &click);
        let t = FrameFeatures::of_frame(k, Codec::Alaw, &tone);
        assert!(c.peak_block_share > 0.85, "{c:?}");
        assert!(t.peak_block_share < 0.3, "{t:?}");
    }

    #[test]
    fn fast_level_matches_the_exact_one() {
        for e in [1.0f32, 3.7, 160.0, 1.0e4, 2.5e6, 7.7e8, 1.6e11] {
            let exact = level_dbm0(e as u64, FRAME_SAMPLES);
            assert!(
                (fast_level_db(e) - exact).abs() < 0.005,
                "{e}: {} vs {exact}",
                fast_level_db(e)
            );
        }
        assert_eq!(fast_level_db(0.0), crate::energy::MIN_DBM0);
    }

    #[test]
    fn level_is_the_exact_broadband_energy() {
        let k = EnergyKernel::detect();
        for codec in [Codec::Alaw, Codec::Ulaw] {
            let f = frame_of(codec, sine(700.0, 1234.0));
            let decoded: Vec<i16> = f.iter().map(|&b| codec.decode(b)).collect();
            let energy = crate::energy::sum_of_squares_scalar(&decoded);
            let level = FrameFeatures::of_frame(k, codec, &f).level_dbm0;
            assert_eq!(level, crate::energy::frame_level_dbm0(k, codec, &f));
            assert!((level - level_dbm0(energy, FRAME_SAMPLES)).abs() < 0.005);
        }
    }
}
