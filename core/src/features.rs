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
//! * **Low-band energy**: of the six-sample moving sum, taken at every second sample
//!   (`v[m] = (x[2m] + … + x[2m+5]) >> 3`, m = 0..78): a low-pass with zeros at 1.33, 2.67 and
//!   4 kHz (−3 dB at 600 Hz, −10 dB at 1 kHz). Voiced speech (its pitch and first formant) lies
//!   below 1 kHz, white noise is spread evenly to 4 kHz: over white noise a vowel stands 5–8 dB
//!   higher above the background here than in the broadband level. The sound/silence decision
//!   uses this band where it used the broadband level ([`crate::detect`]: the broadband level
//!   stays what hosts see). Scaled so that a tone well below 1 kHz has its broadband level here.
//! * **Impulsiveness**: the largest share of the frame's energy in two adjacent 2 ms blocks.
//!   A click or pop (≤ 5 ms) puts at least three quarters of a frame's energy there; steady
//!   sound spreads it over all ten blocks (2/10), and even voiced speech, whose pitch pulses are
//!   3–10 ms apart, or a syllable that starts or ends inside the frame, rarely puts more than
//!   ~0.7 there.
//!
//! **How.** The frame is decoded once to 16-bit samples (arithmetically, 16 at a time, with
//! AVX2; by table elsewhere), and the samples are then also what the DTMF detector reads, so
//! the recorder decodes each frame once for both. All four features come from integer sums
//! of squares taken in pairs, exactly as `pmaddwd` takes them: each 2 ms block's energy, the
//! energy of the band-pass difference (saturated to 16 bits, which only a near-full-scale
//! tone near the Nyquist frequency reaches), and the energy of the low band's values (its sums
//! of six from `pmaddwd` against ones: sample pairs summed to 32 bits, three adjacent pairs
//! added, `>> 3`, which fits 16 bits again). Each pair's sum is kept in units of
//! 16 (`>> 4`): that is exact for G.711 (every decoded A-law value is a multiple of 8, every
//! µ-law value a multiple of 4), so the broadband energy is exactly the frame's sum of squares,
//! and it lets ten pairs per lane accumulate in 32 bits. The AVX2 kernel and the portable
//! code compute the same integers (a test checks), so every machine sees the same features.
//! Then three fast logarithms. (A spectral tilt, `x[n] − x[n−1]` against the broadband energy,
//! was computed here too; the detector stopped using it, so it went.)
//!
//! Everything is O(frame) and allocation free; the filters run inside the frame (no state),
//! so a frame's features depend only on its own bytes.

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
    /// The largest share of the frame energy in two adjacent 2 ms blocks (1/5 for steady
    /// sound, near 1 for a click).
    pub peak_block_share: f32,
    /// Level of the low band (below ~1 kHz, see the module docs), in dB on the dBm0 scale of
    /// a low-frequency tone.
    pub low_db: f32,
}

/// Decodes one G.711 frame to linear samples: the AVX2 arithmetic decode when `kernel` is the
/// AVX2 kernel, the table otherwise (the same values). Real-time safe.
#[inline]
pub fn decode_frame(
    kernel: EnergyKernel,
    codec: Codec,
    frame: &[u8; FRAME_SAMPLES],
    out: &mut [i16; FRAME_SAMPLES],
) {
    #[cfg(target_arch = "x86_64")]
    if kernel.is_avx2() {
        // SAFETY: an AVX2 kernel is only made after the CPU reported AVX2.
        unsafe { crate::g711::avx2::decode_into(codec, frame, out) };
        return;
    }
    let _ = kernel;
    crate::g711::decode_by_table(codec, frame, out);
}

/// [`decode_frame`] into a new array: on the AVX2 path the array is made inside the code
/// compiled for AVX2, where the decode overwrites all of it, so the caller pays no separate
/// zeroing of 320 bytes (from code compiled for the baseline target that zeroing is a call to
/// `memset` on every frame). Real-time safe.
#[inline]
pub fn decoded_frame(
    kernel: EnergyKernel,
    codec: Codec,
    frame: &[u8; FRAME_SAMPLES],
) -> [i16; FRAME_SAMPLES] {
    #[cfg(target_arch = "x86_64")]
    if kernel.is_avx2() {
        // SAFETY: an AVX2 kernel is only made after the CPU reported AVX2.
        return unsafe { x86::decoded_frame(codec, frame) };
    }
    let mut out = [0i16; FRAME_SAMPLES];
    decode_frame(kernel, codec, frame, &mut out);
    out
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

/// The integer sums the features come from, each pair of squares in units of 16 (see the
/// module docs: exact for G.711).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Sums {
    /// Each 2 ms block's energy (at most 8 · 2^27: fits).
    blocks: [u32; BLOCKS],
    /// Σ sat(x[n] − x[n−2])² over n = 2..160.
    band: u64,
    /// Σ (v[2j]² + v[2j+1]²) >> 4 over the low band's [`LOW_SAMPLES`] values, in pairs as
    /// the other sums.
    low: u64,
}

/// Values of the low band per frame: sums of six samples starting at every even sample that
/// has five after it.
const LOW_SAMPLES: usize = (FRAME_SAMPLES - 6) / 2 + 1;

/// Multiplies the low band's energy onto the dBm0 scale of the broadband level for a tone well
/// below 1 kHz: each value is 6/8 of the sample there, and there are [`LOW_SAMPLES`] of them
/// for the frame's 160 (the `>> 4` of each square is undone here too).
const LOW_TO_BROADBAND: f32 =
    16.0 * FRAME_SAMPLES as f32 / (LOW_SAMPLES as f32 * (6.0 / 8.0) * (6.0 / 8.0));

/// One low-band value: the six samples from `2m`, summed in 32 bits, `>> 3` (at most
/// 6 · 32768 / 8 = 24576 in magnitude: it fits an `i16`, so pairs of them square as the
/// samples do).
#[inline(always)]
fn low_value(x: &[i16; FRAME_SAMPLES], m: usize) -> i16 {
    (x[2 * m..2 * m + 6]
        .iter()
        .map(|&v| i32::from(v))
        .sum::<i32>()
        >> 3) as i16
}

/// `(a² + b²) >> 4` as `pmaddwd` then a logical shift compute it: two squares of −32768 make
/// 2^31, which a `u32` holds.
#[inline(always)]
fn pair(a: i16, b: i16) -> u32 {
    ((a as i32 * a as i32) as u32 + (b as i32 * b as i32) as u32) >> 4
}

impl Sums {
    /// The portable computation (the reference the AVX2 kernel equals).
    #[inline]
    fn portable(x: &[i16; FRAME_SAMPLES]) -> Sums {
        let blocks = std::array::from_fn(|b| {
            let block = &x[b * BLOCK_SAMPLES..(b + 1) * BLOCK_SAMPLES];
            block.chunks_exact(2).map(|p| pair(p[0], p[1])).sum()
        });
        let mut band = 0u64;
        // Pairs (n, n+1) for even n from 2, as the vector kernel pairs its lanes.
        for n in (2..FRAME_SAMPLES).step_by(2) {
            let d = |i: usize| x[i].saturating_sub(x[i - 2]);
            band += u64::from(pair(d(n), d(n + 1)));
        }
        let low = (0..LOW_SAMPLES)
            .step_by(2)
            .map(|m| u64::from(pair(low_value(x, m), low_value(x, m + 1))))
            .sum();
        Sums { blocks, band, low }
    }

    #[inline(always)]
    fn of(kernel: EnergyKernel, x: &[i16; FRAME_SAMPLES]) -> Sums {
        #[cfg(target_arch = "x86_64")]
        if kernel.is_avx2() {
            // SAFETY: an AVX2 kernel is only made after the CPU reported AVX2.
            return unsafe { x86::sums(x) };
        }
        let _ = kernel;
        Sums::portable(x)
    }

    #[inline(always)]
    fn features(self) -> FrameFeatures {
        let total: u64 = self.blocks.iter().map(|&b| u64::from(b)).sum();
        let energy = total << 4;
        let peak = self
            .blocks
            .windows(2)
            .map(|pair| u64::from(pair[0]) + u64::from(pair[1]))
            .max()
            .unwrap_or(0);
        FrameFeatures {
            level_dbm0: level_of_frame_energy(energy),
            band_db: fast_level_db((self.band << 4) as f32),
            low_db: fast_level_db(self.low as f32 * LOW_TO_BROADBAND),
            peak_block_share: if total > 0 {
                peak as f32 / total as f32
            } else {
                0.0
            },
        }
    }
}

impl FrameFeatures {
    /// Analyses one frame already decoded to linear samples (by [`decode_frame`]). For G.711
    /// input the broadband level is exactly [`crate::energy::frame_level_dbm0`]'s; other
    /// linear input loses under 16 per pair of squares. Real-time safe.
    #[inline]
    pub fn of_samples(kernel: EnergyKernel, samples: &[i16; FRAME_SAMPLES]) -> FrameFeatures {
        Sums::of(kernel, samples).features()
    }

    /// Decodes one frame into `samples` (for a detector that sits beside this one: DTMF) and
    /// analyses it. Real-time safe.
    #[inline]
    pub fn decode_and_analyse(
        kernel: EnergyKernel,
        codec: Codec,
        frame: &[u8; FRAME_SAMPLES],
        samples: &mut [i16; FRAME_SAMPLES],
    ) -> FrameFeatures {
        decode_frame(kernel, codec, frame, samples);
        FrameFeatures::of_samples(kernel, samples)
    }

    /// Decodes and analyses one frame (for callers that do not need the decoded samples).
    /// Real-time safe.
    #[inline]
    pub fn of_frame(
        kernel: EnergyKernel,
        codec: Codec,
        frame: &[u8; FRAME_SAMPLES],
    ) -> FrameFeatures {
        let mut samples = [0i16; FRAME_SAMPLES];
        FrameFeatures::decode_and_analyse(kernel, codec, frame, &mut samples)
    }
}

/// The sums with AVX2: each 16-sample vector's pairs by `pmaddwd`, the differences from a load
/// two samples back, ten pairs per 32-bit lane (ten times 2^27 fits).
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Sums, BLOCKS, BLOCK_SAMPLES, FRAME_SAMPLES, LOW_SAMPLES};
    use crate::g711::Codec;
    use std::arch::x86_64::*;

    /// [`super::decoded_frame`] on AVX2: the zeroed array and the decode that overwrites it are
    /// compiled together, so the zeroing is a few vector stores at most, not a `memset` call.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) fn decoded_frame(codec: Codec, frame: &[u8; FRAME_SAMPLES]) -> [i16; FRAME_SAMPLES] {
        let mut out = [0i16; FRAME_SAMPLES];
        crate::g711::avx2::decode_into(codec, frame, &mut out);
        out
    }

    /// The 16 samples from `at`.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn load(x: &[i16; FRAME_SAMPLES], at: usize) -> __m256i {
        let v: &[i16; 16] = x[at..at + 16].try_into().expect("16 samples");
        // SAFETY: `v` is 16 readable i16s (32 bytes); `loadu` needs no alignment.
        unsafe { _mm256_loadu_si256(v.as_ptr().cast()) }
    }

    /// `(a² + b²) >> 4` of each pair of lanes (see [`super::pair`]).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn pairs(v: __m256i) -> __m256i {
        _mm256_srli_epi32::<4>(_mm256_madd_epi16(v, v))
    }

    /// The four lane sums of `a`, `b`, `c`, `d` (each under 2^31).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn sum4(a: __m256i, b: __m256i, c: __m256i, d: __m256i) -> [u32; 4] {
        let h = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
        let s = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256::<1>(h));
        let mut out = [0u32; 4];
        // SAFETY: `out` is 16 writable bytes; `storeu` needs no alignment.
        unsafe { _mm_storeu_si128(out.as_mut_ptr().cast(), s) };
        out
    }

    /// The sum of the eight 32-bit lanes of `v`, widened.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn sum_wide(v: __m256i) -> u64 {
        let wide = _mm256_add_epi64(
            _mm256_cvtepu32_epi64(_mm256_castsi256_si128(v)),
            _mm256_cvtepu32_epi64(_mm256_extracti128_si256::<1>(v)),
        );
        let s = _mm_add_epi64(
            _mm256_castsi256_si128(wide),
            _mm256_extracti128_si256::<1>(wide),
        );
        (_mm_cvtsi128_si64(s) as u64).wrapping_add(_mm_extract_epi64::<1>(s) as u64)
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) fn sums(x: &[i16; FRAME_SAMPLES]) -> Sums {
        let b: [__m256i; BLOCKS] = std::array::from_fn(|i| pairs(load(x, i * BLOCK_SAMPLES)));
        let zero = _mm256_setzero_si256();
        let [b0, b1, b2, b3] = sum4(b[0], b[1], b[2], b[3]);
        let [b4, b5, b6, b7] = sum4(b[4], b[5], b[6], b[7]);
        let [b8, b9, _, _] = sum4(b[8], b[9], zero, zero);
        // x[n] − x[n−2] for n = 2..146 in nine vectors, then n = 144..160 with its first pair
        // (n = 144, 145, already counted) masked off.
        let mut band = zero;
        for c in 0..10 {
            let n = if c < 9 {
                2 + 16 * c
            } else {
                FRAME_SAMPLES - 16
            };
            let mut p = pairs(_mm256_subs_epi16(load(x, n), load(x, n - 2)));
            if c == 9 {
                p = _mm256_blend_epi32::<1>(p, zero);
            }
            band = _mm256_add_epi32(band, p);
        }
        // The low band: `pmaddwd` against ones sums sample pairs (2m, 2m+1) into 32-bit lanes;
        // three loads two samples apart give the sums of six for m = 8c..8c+8. Nine chunks cover
        // m = 0..72; the last starts at sample 140 (m = 70..78, so no load passes the frame's
        // end) with its first two lanes (m = 70, 71, already counted) masked off. Two chunks'
        // values, packed to 16 bits (they fit), square in pairs (m, m+1) with even m, as the
        // portable code pairs them (packing interleaves the chunks' halves, not the pairs).
        let ones = _mm256_set1_epi16(1);
        let values = |c: usize| {
            let n = if c < 9 { 16 * c } else { 2 * (LOW_SAMPLES - 8) };
            let six = _mm256_add_epi32(
                _mm256_add_epi32(
                    _mm256_madd_epi16(load(x, n), ones),
                    _mm256_madd_epi16(load(x, n + 2), ones),
                ),
                _mm256_madd_epi16(load(x, n + 4), ones),
            );
            let v = _mm256_srai_epi32::<3>(six);
            if c == 9 {
                _mm256_blend_epi32::<0b11>(v, zero)
            } else {
                v
            }
        };
        let mut low = zero;
        for c in (0..10).step_by(2) {
            low = _mm256_add_epi32(low, pairs(_mm256_packs_epi32(values(c), values(c + 1))));
        }
        Sums {
            blocks: [b0, b1, b2, b3, b4, b5, b6, b7, b8, b9],
            band: sum_wide(band),
            low: sum_wide(low),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::energy::level_dbm0;

    /// Frames of every kind the kernels must agree on: noise at several levels, full-scale
    /// extremes (−32768, alternating signs: the saturated differences), silence, ramps.
    fn linear_frames() -> Vec<[i16; FRAME_SAMPLES]> {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut frames = vec![
            [0; FRAME_SAMPLES],
            [i16::MIN; FRAME_SAMPLES],
            [i16::MAX; FRAME_SAMPLES],
            std::array::from_fn(|i| if i % 2 == 0 { i16::MIN } else { i16::MAX }),
            std::array::from_fn(|i| if i % 3 == 0 { i16::MIN } else { i16::MAX }),
            std::array::from_fn(|i| (i as i16 - 80) * 400),
        ];
        for shift in [0, 4, 8, 12, 15] {
            for _ in 0..20 {
                frames.push(std::array::from_fn(|_| (next() as i16) >> shift));
            }
        }
        frames
    }

    #[test]
    fn every_kernel_computes_the_same_sums() {
        for kernel in EnergyKernel::available() {
            for x in linear_frames() {
                assert_eq!(
                    Sums::of(kernel, &x),
                    Sums::portable(&x),
                    "{}",
                    kernel.name()
                );
            }
        }
    }

    #[test]
    fn decoding_then_analysing_equals_the_table_decode_and_the_portable_sums() {
        for kernel in EnergyKernel::available() {
            for codec in [Codec::Alaw, Codec::Ulaw] {
                for x in linear_frames() {
                    let bytes = x.map(|v| codec.encode(v));
                    let mut decoded = [0i16; FRAME_SAMPLES];
                    let f = FrameFeatures::decode_and_analyse(kernel, codec, &bytes, &mut decoded);
                    let table: [i16; FRAME_SAMPLES] = bytes.map(|b| codec.decode(b));
                    assert_eq!(decoded, table);
                    assert_eq!(f, FrameFeatures::of_samples(EnergyKernel::SCALAR, &table));
                }
            }
        }
    }

    #[test]
    fn the_sums_are_the_definitions() {
        // Exact (no units of 16) on samples that are multiples of 4, as G.711's are.
        for x in linear_frames() {
            let x: [i16; FRAME_SAMPLES] = x.map(|v| v & !3);
            let s = Sums::portable(&x);
            let sq = |v: i16| (v as i64 * v as i64) as u64;
            for b in 0..BLOCKS {
                let want: u64 = x[b * 16..(b + 1) * 16].iter().map(|&v| sq(v)).sum();
                assert_eq!(u64::from(s.blocks[b]) << 4, want);
            }
            let value = |m: usize| {
                x[2 * m..2 * m + 6]
                    .iter()
                    .map(|&v| i64::from(v))
                    .sum::<i64>()
                    >> 3
            };
            let low: u64 = (0..LOW_SAMPLES)
                .step_by(2)
                .map(|m| (value(m) * value(m) + value(m + 1) * value(m + 1)) as u64 >> 4)
                .sum();
            assert_eq!(s.low, low);
            let band: u64 = (2..FRAME_SAMPLES)
                .map(|n| sq(x[n].saturating_sub(x[n - 2])))
                .sum();
            // A saturated difference (±32767, not a multiple of 4) loses under 16 a pair.
            let saturated = (2..FRAME_SAMPLES).any(|n| x[n].checked_sub(x[n - 2]).is_none());
            if saturated {
                assert!(band - (s.band << 4) < 16 * 80);
            } else {
                assert_eq!(s.band << 4, band);
            }
        }
    }

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
    }

    #[test]
    fn the_low_band_keeps_voicing_and_drops_the_upper_band() {
        let k = EnergyKernel::detect();
        let tone = |hz: f64| {
            FrameFeatures::of_frame(k, Codec::Alaw, &frame_of(Codec::Alaw, sine(hz, 8000.0)))
        };
        // |Σ six samples| / 6 is |sin(3w) / (6·sin(w/2))|, w = 2πf/8000: −0.3 dB at 200 Hz,
        // −10.2 dB at 1 kHz, −17.9 dB at 3 kHz (taking every second value halves the energy of
        // any tone, which the scale puts back; G.711 and the frame edges cost a little).
        let (low, mid, high) = (tone(200.0), tone(1000.0), tone(3000.0));
        assert!((low.low_db - low.level_dbm0 + 0.3).abs() < 0.5, "{low:?}");
        assert!((mid.low_db - mid.level_dbm0 + 10.2).abs() < 1.5, "{mid:?}");
        assert!(high.low_db - high.level_dbm0 < -15.0, "{high:?}");
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
