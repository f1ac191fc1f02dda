//! Frame energy: the sum of squares of linear samples, with runtime SIMD dispatch, and its
//! level in dBm0; and the same sum straight from G.711 bytes through a table of squares, which
//! is what the recorder uses per frame (no decode needed).
//!
//! The kernel is chosen once (at session start, on the control thread) by
//! [`EnergyKernel::detect`]: AVX2, then SSE2 on x86_64; NEON on aarch64; a scalar loop
//! elsewhere. Every kernel returns exactly the scalar result (a test checks this on random and
//! extreme frames).
//!
//! Overflow: `madd(v, v)` sums two squares into one 32-bit lane. Two squares of -32768 make
//! 2^31, which does not fit an `i32` but does fit a `u32`, and the true value is never negative,
//! so the kernels read those lanes as unsigned and widen them to 64-bit accumulators.

/// Which implementation computes the sum of squares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnergyKernel(Kind);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Sse2,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "aarch64")]
    Neon,
}

impl EnergyKernel {
    /// The portable kernel, always available.
    pub const SCALAR: EnergyKernel = EnergyKernel(Kind::Scalar);

    /// The fastest kernel this CPU supports.
    pub fn detect() -> EnergyKernel {
        *Self::available().last().unwrap_or(&Self::SCALAR)
    }

    /// Every kernel this CPU supports, slowest first (the scalar one is always first).
    pub fn available() -> Vec<EnergyKernel> {
        #[allow(unused_mut)]
        let mut kernels = vec![Self::SCALAR];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("sse2") {
                kernels.push(EnergyKernel(Kind::Sse2));
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                kernels.push(EnergyKernel(Kind::Avx2));
            }
        }
        #[cfg(target_arch = "aarch64")]
        kernels.push(EnergyKernel(Kind::Neon));
        kernels
    }

    /// True for the AVX2 kernel (callers may then run their own code compiled for AVX2).
    pub(crate) fn is_avx2(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            self.0 == Kind::Avx2
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// A short name: `scalar`, `sse2`, `avx2` or `neon`.
    pub fn name(self) -> &'static str {
        match self.0 {
            Kind::Scalar => "scalar",
            #[cfg(target_arch = "x86_64")]
            Kind::Sse2 => "sse2",
            #[cfg(target_arch = "x86_64")]
            Kind::Avx2 => "avx2",
            #[cfg(target_arch = "aarch64")]
            Kind::Neon => "neon",
        }
    }

    /// The sum of the squares of the decoded values of G.711 `bytes` (what the recorder needs
    /// per frame): AVX2 decodes the magnitudes arithmetically 16 at a time; every other kernel
    /// uses the table of squares. Equal to decoding and calling [`sum_of_squares_scalar`] (a
    /// test checks every byte value). Real-time safe.
    #[inline]
    pub fn g711_sum_of_squares(self, codec: Codec, bytes: &[u8]) -> u64 {
        match self.0 {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Avx2` is only made after the CPU reported AVX2.
            Kind::Avx2 => unsafe { x86::g711_sum_of_squares_avx2(codec, bytes) },
            _ => g711_sum_of_squares_table(codec, bytes),
        }
    }

    /// The sum of the squares of `samples`. Real-time safe.
    #[inline]
    pub fn sum_of_squares(self, samples: &[i16]) -> u64 {
        match self.0 {
            Kind::Scalar => sum_of_squares_scalar(samples),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: an `EnergyKernel` holding `Sse2` is only made by `available()` after
            // `is_x86_feature_detected!("sse2")` returned true on this CPU.
            Kind::Sse2 => unsafe { x86::sum_of_squares_sse2(samples) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above, `Avx2` is only made after the CPU reported AVX2.
            Kind::Avx2 => unsafe { x86::sum_of_squares_avx2(samples) },
            #[cfg(target_arch = "aarch64")]
            Kind::Neon => neon::sum_of_squares_neon(samples),
        }
    }
}

/// The sum of squares of G.711 bytes without decoding them: one lookup per byte in a 256-entry
/// table of the decoded sample's square (DESIGN §4's table path). Four independent
/// accumulators keep the loads in flight. The portable G.711 energy path (and the AVX2
/// kernel's tail); it equals `sum_of_squares_scalar` of the decoded frame. Real-time safe.
#[inline]
pub fn g711_sum_of_squares_table(codec: Codec, bytes: &[u8]) -> u64 {
    let table = match codec {
        Codec::Alaw => &ALAW_SQUARES,
        Codec::Ulaw => &ULAW_SQUARES,
    };
    let mut acc = [0u64; 4];
    let mut quads = bytes.chunks_exact(4);
    for q in quads.by_ref() {
        acc[0] += table[q[0] as usize] as u64;
        acc[1] += table[q[1] as usize] as u64;
        acc[2] += table[q[2] as usize] as u64;
        acc[3] += table[q[3] as usize] as u64;
    }
    let rest: u64 = quads
        .remainder()
        .iter()
        .map(|&b| table[b as usize] as u64)
        .sum();
    acc.iter().sum::<u64>() + rest
}

const fn squares(codec: Codec) -> [u32; 256] {
    let decode = match codec {
        Codec::Alaw => crate::g711::ALAW_TO_LINEAR,
        Codec::Ulaw => crate::g711::ULAW_TO_LINEAR,
    };
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let s = decode[i] as i32;
        t[i] = (s * s) as u32;
        i += 1;
    }
    t
}

static ALAW_SQUARES: [u32; 256] = squares(Codec::Alaw);
static ULAW_SQUARES: [u32; 256] = squares(Codec::Ulaw);

/// The reference implementation every SIMD kernel must equal.
pub fn sum_of_squares_scalar(samples: &[i16]) -> u64 {
    samples
        .iter()
        .map(|&s| {
            let s = s as i64;
            (s * s) as u64
        })
        .sum()
}

/// Level of a sine wave at the G.711 overload point, in dBm0 (G.711: A-law +3.14 dBm0).
/// (The digits are G.711's, not π's.)
#[allow(clippy::approx_constant)]
pub const FULL_SCALE_SINE_DBM0: f32 = 3.14;

/// The lowest level reported, for digital silence (an all-zero frame).
pub const MIN_DBM0: f32 = -100.0;

/// The mean power of `sum_of_squares` over `samples` samples, in dBm0.
///
/// 0 dBov is a full-scale (±32,768) square wave; a full-scale sine is -3.01 dBov and is taken as
/// +3.14 dBm0, so dBm0 = dBov + 3.14 + 3.01. This is the convention SpanDSP's power meter uses.
pub fn level_dbm0(sum_of_squares: u64, samples: usize) -> f32 {
    if sum_of_squares == 0 || samples == 0 {
        return MIN_DBM0;
    }
    let mean = sum_of_squares as f64 / samples as f64;
    let dbov = 10.0 * (mean / (32768.0 * 32768.0)).log10();
    let sine_dbov = 10.0 * 0.5f64.log10();
    ((dbov - sine_dbov) as f32 + FULL_SCALE_SINE_DBM0).max(MIN_DBM0)
}

/// The level of one frame of G.711 audio in dBm0, exactly as the sound detector sees it: the
/// recorder's detector uses the same energy and conversion for every 20 ms frame
/// ([`crate::features::level_of_frame_energy`]), and the Python `frame_energy_dbm0` and any other
/// "what level does callrec see" tool call this, so they can never disagree. Input of any other
/// length than 160 bytes is measured as its mean power with [`level_dbm0`]. Real-time safe.
pub fn frame_level_dbm0(kernel: EnergyKernel, codec: Codec, frame: &[u8]) -> f32 {
    let energy = kernel.g711_sum_of_squares(codec, frame);
    if frame.len() == crate::features::FRAME_SAMPLES {
        crate::features::level_of_frame_energy(energy)
    } else {
        level_dbm0(energy, frame.len())
    }
}

use crate::g711::Codec;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::sum_of_squares_scalar;
    use crate::g711::Codec;
    use std::arch::x86_64::*;

    /// The sum of squares of G.711 bytes, decoded arithmetically 16 at a time (no table, see
    /// [`crate::g711::avx2`]): only the magnitudes matter for energy.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn g711_sum_of_squares_avx2(codec: Codec, bytes: &[u8]) -> u64 {
        let decoder = crate::g711::avx2::Decoder::new(codec);
        let zero = _mm256_setzero_si256();
        let mut acc = _mm256_setzero_si256();
        let chunks = bytes.chunks_exact(16);
        let rest = chunks.remainder();
        for chunk in chunks {
            // SAFETY: `chunk` is 16 readable bytes; `loadu` has no alignment need.
            let raw = unsafe { _mm_loadu_si128(chunk.as_ptr().cast()) };
            let (_, magnitude) = decoder.magnitudes(raw);
            // Magnitudes are at most 32,256, so two squares fit a positive i32.
            let pairs = _mm256_madd_epi16(magnitude, magnitude);
            acc = _mm256_add_epi64(acc, _mm256_unpacklo_epi32(pairs, zero));
            acc = _mm256_add_epi64(acc, _mm256_unpackhi_epi32(pairs, zero));
        }
        let mut lanes = [0u64; 4];
        // SAFETY: `lanes` is 32 writable bytes; `storeu` has no alignment need.
        unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), acc) };
        lanes.iter().sum::<u64>() + super::g711_sum_of_squares_table(codec, rest)
    }

    /// # Safety
    /// The CPU must support SSE2.
    #[target_feature(enable = "sse2")]
    pub(super) unsafe fn sum_of_squares_sse2(samples: &[i16]) -> u64 {
        let chunks = samples.chunks_exact(8);
        let rest = chunks.remainder();
        let zero = _mm_setzero_si128();
        let mut acc = _mm_setzero_si128();
        for chunk in chunks {
            // SAFETY: `chunk` is 8 i16s = 16 readable bytes; `loadu` has no alignment need.
            let v = unsafe { _mm_loadu_si128(chunk.as_ptr().cast()) };
            let pairs = _mm_madd_epi16(v, v);
            acc = _mm_add_epi64(acc, _mm_unpacklo_epi32(pairs, zero));
            acc = _mm_add_epi64(acc, _mm_unpackhi_epi32(pairs, zero));
        }
        let mut lanes = [0u64; 2];
        // SAFETY: `lanes` is 16 writable bytes; `storeu` has no alignment need.
        unsafe { _mm_storeu_si128(lanes.as_mut_ptr().cast(), acc) };
        lanes[0] + lanes[1] + sum_of_squares_scalar(rest)
    }

    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn sum_of_squares_avx2(samples: &[i16]) -> u64 {
        let chunks = samples.chunks_exact(16);
        let rest = chunks.remainder();
        let zero = _mm256_setzero_si256();
        let mut acc = _mm256_setzero_si256();
        for chunk in chunks {
            // SAFETY: `chunk` is 16 i16s = 32 readable bytes; `loadu` has no alignment need.
            let v = unsafe { _mm256_loadu_si256(chunk.as_ptr().cast()) };
            let pairs = _mm256_madd_epi16(v, v);
            acc = _mm256_add_epi64(acc, _mm256_unpacklo_epi32(pairs, zero));
            acc = _mm256_add_epi64(acc, _mm256_unpackhi_epi32(pairs, zero));
        }
        let mut lanes = [0u64; 4];
        // SAFETY: `lanes` is 32 writable bytes; `storeu` has no alignment need.
        unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), acc) };
        lanes.iter().sum::<u64>() + sum_of_squares_scalar(rest)
    }
}

#[cfg(target_arch = "aarch64")]
mod neon {
    use super::sum_of_squares_scalar;
    use std::arch::aarch64::*;

    // NEON is part of the aarch64 baseline, so no runtime check is needed.
    pub(super) fn sum_of_squares_neon(samples: &[i16]) -> u64 {
        let chunks = samples.chunks_exact(8);
        let rest = chunks.remainder();
        // SAFETY: NEON is always present on aarch64; each load reads the 8 i16s of `chunk`.
        let total = unsafe {
            let mut acc = vdupq_n_u64(0);
            for chunk in chunks {
                let v = vld1q_s16(chunk.as_ptr());
                // Each product is at most 2^30, so it fits an i32 and reads the same as u32.
                let lo = vmull_s16(vget_low_s16(v), vget_low_s16(v));
                let hi = vmull_high_s16(v, v);
                acc = vpadalq_u32(acc, vreinterpretq_u32_s32(lo));
                acc = vpadalq_u32(acc, vreinterpretq_u32_s32(hi));
            }
            vaddvq_u64(acc)
        };
        total + sum_of_squares_scalar(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::g711::{decode_into, Codec};

    fn frames() -> Vec<Vec<i16>> {
        let mut out = Vec::new();
        // Extreme G.711 frames decoded, and extreme raw i16 frames (beyond G.711's range).
        for codec in [Codec::Alaw, Codec::Ulaw] {
            for byte in [0x00u8, 0x80, 0xFF, 0x7F, 0x55, 0xD5] {
                let mut f = vec![0i16; 160];
                decode_into(codec, &[byte; 160], &mut f);
                out.push(f);
            }
        }
        out.push(vec![i16::MIN; 160]);
        out.push(vec![i16::MAX; 160]);
        out.push(
            (0..160)
                .map(|i| if i % 2 == 0 { i16::MIN } else { i16::MAX })
                .collect(),
        );
        out.push(vec![i16::MIN; 8000]); // one second: 8000 × 2^30 needs more than 32 bits
                                        // Pseudo-random frames of odd lengths, to exercise the remainders (xorshift: reproducible).
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for len in [0usize, 1, 7, 15, 17, 31, 33, 159, 160, 161, 8000] {
            let f = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as i16
                })
                .collect();
            out.push(f);
        }
        out
    }

    #[test]
    fn every_kernel_equals_scalar() {
        let kernels = EnergyKernel::available();
        assert!(!kernels.is_empty());
        for f in frames() {
            let want = sum_of_squares_scalar(&f);
            for k in &kernels {
                assert_eq!(
                    k.sum_of_squares(&f),
                    want,
                    "kernel {} len {}",
                    k.name(),
                    f.len()
                );
            }
        }
        // The extremes really are beyond 32 bits, so an i32 accumulator would have failed.
        assert_eq!(sum_of_squares_scalar(&[i16::MIN; 8000]), 8000u64 << 30);
    }

    #[test]
    fn table_path_equals_decode_then_square() {
        let every_byte: Vec<u8> = (0..=255).collect();
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let random: Vec<u8> = (0..8000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let extremes: Vec<u8> = (0..160)
            .map(|i| [0x00, 0x80, 0xFF, 0x7F, 0x55, 0xD5, 0x2A, 0xAA][i % 8])
            .collect();
        for codec in [Codec::Alaw, Codec::Ulaw] {
            for bytes in [
                &every_byte[..],
                &random[..],
                &random[..161],
                &[][..],
                &[0x80u8; 160][..],
                &extremes[..],
                &random[3..20],
            ] {
                let mut linear = vec![0i16; bytes.len()];
                decode_into(codec, bytes, &mut linear);
                let want = sum_of_squares_scalar(&linear);
                assert_eq!(g711_sum_of_squares_table(codec, bytes), want);
                for k in EnergyKernel::available() {
                    let got = k.g711_sum_of_squares(codec, bytes);
                    assert_eq!(got, want, "{} {codec:?}", k.name());
                }
            }
        }
    }

    #[test]
    #[allow(clippy::approx_constant)] // 3.14 dBm0 is G.711's number, not π
    fn level_of_known_signals() {
        // A full-scale sine is +3.14 dBm0 by definition of the scale.
        let n = 8000;
        let sine: Vec<i16> = (0..n)
            .map(|i| {
                (32767.0 * (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / 8000.0).sin()) as i16
            })
            .collect();
        let l = level_dbm0(sum_of_squares_scalar(&sine), n);
        assert!((l - 3.14).abs() < 0.01, "{l}");
        // 20 dB lower amplitude is 20 dB lower level.
        let quiet: Vec<i16> = sine.iter().map(|&s| s / 10).collect();
        let lq = level_dbm0(sum_of_squares_scalar(&quiet), n);
        assert!((lq - (3.14 - 20.0)).abs() < 0.01, "{lq}");
        assert_eq!(level_dbm0(0, 160), MIN_DBM0);
    }
}
