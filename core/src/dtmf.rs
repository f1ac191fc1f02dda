//! In-band DTMF detection to ITU-T Q.24 (DESIGN §5), for the real-time path: no allocation,
//! state carried across inputs of any length, a fixed cost per sample.
//!
//! Written by hand: no maintained Rust crate detects DTMF to Q.24 limits on a real-time path.
//! SpanDSP's `dtmf_rx` and Asterisk's `dsp.c` were read for what they check and why (level,
//! twist, relative peak, tone-to-total energy); the design here is different.
//!
//! **Design.** The signal is cut into 5 ms *blocks* of [`BLOCK`] = 40 samples. For each block
//! and each of the 8 DTMF frequencies one complex correlation against precomputed twiddles is
//! taken (a single-bin DFT), plus the block's energy. Two consecutive blocks combine coherently into a 10 ms (80-sample) DFT bin
//! `S(n) = C(n) + C(n-1)·e^{jω·40}`; decisions are made on *triples* of blocks (15 ms, hop
//! 5 ms), i.e. on two overlapping 10 ms bins:
//!
//! * **Frequency** is *measured*, not inferred from bin shape: a tone at `f_k + δ` turns bin
//!   `k` by `2π·δ·40/8000` from one 10 ms window to the next (5 ms later), so the angle of
//!   `S(n)·conj(S(n-1))` (less the nominal advance) gives `δ` directly. A triple passes when
//!   both tones are within ±2.5 % of nominal: Q.24's ±1.5 % is accepted and ±3.5 % rejected
//!   with a margin either side, on every frequency. The 10 ms windows (not single 5 ms
//!   blocks) keep the other group's tone leaking into the bin ≥ 20 dB down even with 8 dB of
//!   twist, so it cannot swing the measured phase.
//! * **Level**: each tone at least −42 dBm0 (Q.24: −38 accepted; −45 ignored).
//! * **Twist**: the low-group tone at most 8.5 dB above the high one (normal twist, 8 dB
//!   accepted) and at most 4.5 dB below it (reverse twist, 4 dB accepted).
//! * **Relative peak**: the chosen tone of each group stands ≥ 4.8 dB above the group's other
//!   tones over the triple (a 15 ms coherent DFT).
//! * **Tone to total energy**: the two tones hold ≥ 65 % of the triple's energy (speech
//!   and music spread theirs: talk-off). With 18 dB per-tone S/N white noise they hold ~98 %.
//! * **All three blocks hold the tone** (none more than 12 dB below another, per tone), so a
//!   triple partly in silence does not count: this is what makes the duration rules exact.
//!
//! **Duration** is counted in triples. A digit is confirmed after [`CONFIRM_TRIPLES`] = 5
//! passing triples: a 40 ms tone (320 samples) always covers ≥ 7 whole blocks, hence ≥ 5 whole
//! triples; a 23 ms tone (184 samples) touches at most 6 blocks, hence at most 4 triples whose
//! blocks all hold it. A digit ends after [`END_TRIPLES`] = 6 failing triples: a dropout of
//! ≤ 10 ms (80 samples) touches at most 3 blocks and spoils at most 5 triples, while a 40 ms
//! pause holds ≥ 7 silent blocks and fails ≥ 9. So a ≤ 10 ms dropout never splits a digit and
//! a 40 ms pause always separates two presses of the same key.
//!
//! **Cost** (DTMF ≤ 100 ns per 20 ms frame was the goal; numbers in BENCHMARKS.md):
//!
//! * The correlations are exact integer arithmetic: i16 samples times i16 twiddles (Q11)
//!   summed in i32, which cannot overflow (see `TWIDDLE_ONE`). The AVX2 kernel lays the 8
//!   frequencies across the lanes of a register: per pair of samples, the pair broadcast, one
//!   `pmaddwd` against the cos row and one against the −sin row — 40 `pmaddwd` per block, no
//!   horizontal sums. G.711 is decoded arithmetically 16 bytes at a time. The portable kernel
//!   is plain Rust the compiler vectorises (`pmaddwd` reductions on SSE2). Both compute the
//!   same integers, and the f32 decisions on them are the same IEEE operations in the same
//!   order (no FMA), so every kernel reports exactly the same events. The kernel is chosen
//!   once per detector ([`DtmfKernel::detect`]), not per frame.
//! * A *quiet* block (energy far below the weakest accepted tone) cannot belong to a passing
//!   triple (a bound, see `Tables::quiet_energy`), so its correlations are skipped: silence costs little
//!   more than its energy.
//! * The cheapest check (tone to total energy, on the groups' maxima) runs first; speech and
//!   music fail it, so the other checks run only on tone-like audio. No division, logarithm
//!   or square root anywhere per block: levels and ratios are compared as powers.
//!
//! **Timing.** A digit's `start` is the first sample of its first passing triple; the tone
//! began no earlier than one block before it (a block it only partly covered may have failed)
//! and no later than one block after. Its `end` is the last sample of its last passing triple
//! (same tolerance). [`MARGIN`] (one block) either side covers every sample of the tone, which is
//! what masking uses.

use crate::g711::Codec;

/// Samples per analysis block (5 ms at 8 kHz).
pub const BLOCK: usize = 40;
/// Sample pairs per block: `pmaddwd` multiplies and adds two samples at a time.
const PAIRS: usize = BLOCK / 2;
/// G.711 bytes decoded at once (one 20 ms frame) on the way to the blocks.
const CHUNK: usize = 160;
/// Passing triples that confirm a digit (see the module docs for why 5).
pub const CONFIRM_TRIPLES: u32 = 5;
/// Failing triples that end a digit (see the module docs for why 6).
pub const END_TRIPLES: u32 = 6;
/// How far outside `[start, end)` a tone's samples can lie: one block.
pub const MARGIN: u64 = BLOCK as u64;

/// The DTMF frequencies: four rows (low group), four columns (high group).
pub const FREQUENCIES_HZ: [f64; 8] = [697.0, 770.0, 852.0, 941.0, 1209.0, 1336.0, 1477.0, 1633.0];
const KEYS: [[u8; 4]; 4] = [*b"123A", *b"456B", *b"789C", *b"*0#D"];
const SAMPLE_RATE: f64 = 8000.0;

/// Accepted frequency deviation: between Q.24's must-accept 1.5 % and must-reject 3.5 %.
const MAX_DEVIATION: f64 = 0.025;
/// Minimum per-tone level, dBm0.
const MIN_LEVEL_DBM0: f64 = -42.0;
/// Normal twist (low group stronger) and reverse twist (high group stronger) limits, dB.
const NORMAL_TWIST_DB: f64 = 8.5;
const REVERSE_TWIST_DB: f64 = 4.5;
/// Each group's peak over its other tones (power ratio, 4.8 dB).
const RELATIVE_PEAK: f32 = 3.0;
/// Share of the triple's energy the two tones must hold.
const TONE_TO_TOTAL: f64 = 0.65;
/// Largest power ratio between two blocks of a triple, per tone (12 dB).
const BLOCK_BALANCE: f32 = 16.0;
/// The twiddles' amplitude (cos and sin in Q11). Large enough that rounding them costs nothing
/// the checks can see (the error is ~80 dB below a tone's bin); small enough that a block's
/// correlation of any i16 samples fits an i32: 32768 · Σ|twiddle| stays below 2^31 (at most
/// 0.85 of it on these frequencies; a test checks every lane).
const TWIDDLE_ONE: f64 = 2048.0;

/// A detected key press, in samples from the first sample the detector was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ToneSpan {
    /// `0-9`, `*`, `#` or `A-D`.
    pub digit: char,
    /// First sample of the first passing triple (the tone began within [`MARGIN`] of it).
    pub start: u64,
    /// One past the last sample of the last passing triple (within [`MARGIN`] of the tone's
    /// end).
    pub end: u64,
}

/// What the detector reports, in time order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DtmfEvent {
    /// A digit was confirmed (its tone has lasted long enough); it is still sounding.
    Pressed {
        /// The digit.
        digit: char,
        /// As in [`ToneSpan::start`].
        start: u64,
    },
    /// The confirmed digit's tone ended.
    Released(ToneSpan),
}

/// Which implementation decodes G.711 and computes a block's correlations and energy. Every
/// kernel computes exactly the same integers (no rounding, no overflow), and the decisions on
/// them are shared code, so every kernel reports exactly the same events (a test checks this
/// on the Q.24 battery and the talk-off corpus).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DtmfKernel(KernelKind);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KernelKind {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl DtmfKernel {
    /// Plain Rust, on every CPU (the compiler vectorises it for the baseline target).
    pub const PORTABLE: DtmfKernel = DtmfKernel(KernelKind::Portable);

    /// The fastest kernel this CPU supports (AVX2 `pmaddwd` on x86_64 when present). Call it
    /// once, off the real-time path: [`DtmfDetector::new`] does.
    pub fn detect() -> DtmfKernel {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            return DtmfKernel(KernelKind::Avx2);
        }
        Self::PORTABLE
    }

    /// Every kernel this CPU supports, the portable one first.
    pub fn available() -> Vec<DtmfKernel> {
        let detected = Self::detect();
        if detected == Self::PORTABLE {
            vec![Self::PORTABLE]
        } else {
            vec![Self::PORTABLE, detected]
        }
    }

    /// A short name: `portable` or `avx2`.
    pub fn name(self) -> &'static str {
        match self.0 {
            KernelKind::Portable => "portable",
            #[cfg(target_arch = "x86_64")]
            KernelKind::Avx2 => "avx2",
        }
    }
}

/// The twiddles `TWIDDLE_ONE · e^{−jω_k n}` as i16, laid out for `pmaddwd`: one row per sample
/// pair, holding for each of the 8 frequencies (lanes) the values at samples `2p` and `2p+1`.
/// A pair of samples broadcast to all lanes times a row gives each frequency's contribution of
/// the pair: the 8 frequencies are computed side by side, with no horizontal sums.
#[derive(Clone, Debug)]
#[repr(C, align(32))]
struct Twiddles {
    cos: [[i16; 16]; PAIRS],
    /// `−sin`, so the imaginary part comes out with the DFT's sign.
    neg_sin: [[i16; 16]; PAIRS],
    /// The same values, one row per frequency (the portable kernel's layout).
    cos_rows: [[i16; BLOCK]; 8],
    neg_sin_rows: [[i16; BLOCK]; 8],
}

impl Twiddles {
    fn new() -> Twiddles {
        let mut cos = [[0i16; 16]; PAIRS];
        let mut neg_sin = [[0i16; 16]; PAIRS];
        for (k, &f) in FREQUENCIES_HZ.iter().enumerate() {
            let w = std::f64::consts::TAU * f / SAMPLE_RATE;
            for n in 0..BLOCK {
                let (p, half) = (n / 2, n % 2);
                cos[p][2 * k + half] = (TWIDDLE_ONE * (w * n as f64).cos()).round() as i16;
                neg_sin[p][2 * k + half] = (-TWIDDLE_ONE * (w * n as f64).sin()).round() as i16;
            }
        }
        let cos_rows = std::array::from_fn(|k| std::array::from_fn(|n| cos[n / 2][2 * k + n % 2]));
        let neg_sin_rows =
            std::array::from_fn(|k| std::array::from_fn(|n| neg_sin[n / 2][2 * k + n % 2]));
        Twiddles {
            cos,
            neg_sin,
            cos_rows,
            neg_sin_rows,
        }
    }
}

/// One block's complex correlations with the 8 frequencies, in twiddle units.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct RawBins {
    re: [i32; 8],
    im: [i32; 8],
}

/// What a kernel does per block; the decisions above it are shared.
trait BlockKernel: Copy {
    /// Decodes `bytes` into `out` (the same length).
    fn decode(self, codec: Codec, bytes: &[u8], out: &mut [i16]);
    /// The sum of squares of the block (exact).
    fn energy(self, x: &[i16; BLOCK]) -> u64;
    /// The block's correlations (exact: no overflow, see [`TWIDDLE_ONE`]).
    fn correlate(self, x: &[i16; BLOCK], tw: &Twiddles) -> RawBins;
    /// [`rotate_add`]: every kernel computes it with the same IEEE operations in the same
    /// order (no fused multiply-add), so the results are equal to the bit.
    #[inline(always)]
    fn rotate_add(self, a: Lanes<'_>, b: Lanes<'_>, r: Lanes<'_>) -> ([f32; 8], [f32; 8]) {
        rotate_add(a, b, r)
    }
    /// The power `re² + im²` of [`rotate_add`]'s result, with the same care.
    #[inline(always)]
    fn rotate_add_power(self, a: Lanes<'_>, b: Lanes<'_>, r: Lanes<'_>) -> [f32; 8] {
        let (re, im) = rotate_add(a, b, r);
        std::array::from_fn(|j| re[j] * re[j] + im[j] * im[j])
    }
}

/// Eight complex values as (real parts, imaginary parts).
type Lanes<'a> = (&'a [f32; 8], &'a [f32; 8]);

/// The portable kernel: loops the compiler vectorises.
#[derive(Clone, Copy)]
struct Portable;

impl BlockKernel for Portable {
    #[inline(always)]
    fn decode(self, codec: Codec, bytes: &[u8], out: &mut [i16]) {
        let table = codec.decode_table();
        for (o, &b) in out.iter_mut().zip(bytes) {
            *o = table[b as usize];
        }
    }

    #[inline(always)]
    fn energy(self, x: &[i16; BLOCK]) -> u64 {
        // Each square is at most 2^30: an i32; the sum of 40 needs 64 bits.
        x.iter().map(|&v| (v as i32 * v as i32) as u64).sum()
    }

    #[inline(always)]
    fn correlate(self, x: &[i16; BLOCK], tw: &Twiddles) -> RawBins {
        // One dot product of 40 i16 pairs per bin, against the twiddles transposed to one
        // contiguous row per frequency: a widening multiply-add reduction the compiler turns
        // into `pmaddwd` (SSE2) or its equivalent elsewhere.
        #[inline(always)]
        fn dot(x: &[i16; BLOCK], t: &[i16; BLOCK]) -> i32 {
            x.iter().zip(t).map(|(&a, &b)| a as i32 * b as i32).sum()
        }
        RawBins {
            re: std::array::from_fn(|k| dot(x, &tw.cos_rows[k])),
            im: std::array::from_fn(|k| dot(x, &tw.neg_sin_rows[k])),
        }
    }
}

/// The AVX2 kernel. A value of this type is only made inside code running with AVX2 enabled
/// ([`DtmfDetector::run_avx2`]), which is what makes its methods sound.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct Avx2(());

#[cfg(target_arch = "x86_64")]
impl BlockKernel for Avx2 {
    #[inline(always)]
    fn decode(self, codec: Codec, bytes: &[u8], out: &mut [i16]) {
        // SAFETY: an `Avx2` value exists only where AVX2 is enabled (see the type).
        unsafe { crate::g711::avx2::decode_into(codec, bytes, out) }
    }

    #[inline(always)]
    fn energy(self, x: &[i16; BLOCK]) -> u64 {
        // SAFETY: an `Avx2` value exists only where AVX2 is enabled (see the type).
        unsafe { x86::energy_avx2(x) }
    }

    #[inline(always)]
    fn correlate(self, x: &[i16; BLOCK], tw: &Twiddles) -> RawBins {
        // SAFETY: an `Avx2` value exists only where AVX2 is enabled (see the type).
        unsafe { x86::correlate_avx2(x, tw) }
    }

    #[inline(always)]
    fn rotate_add(self, a: Lanes<'_>, b: Lanes<'_>, r: Lanes<'_>) -> ([f32; 8], [f32; 8]) {
        // SAFETY: an `Avx2` value exists only where AVX2 is enabled (see the type).
        let (re, im) = unsafe { x86::rotate_add_avx2(a, b, r) };
        // SAFETY: as above.
        unsafe { (x86::store(re), x86::store(im)) }
    }

    #[inline(always)]
    fn rotate_add_power(self, a: Lanes<'_>, b: Lanes<'_>, r: Lanes<'_>) -> [f32; 8] {
        // SAFETY: an `Avx2` value exists only where AVX2 is enabled (see the type).
        unsafe { x86::rotate_add_power_avx2(a, b, r) }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Lanes, RawBins, Twiddles, BLOCK, PAIRS};
    use std::arch::x86_64::*;

    /// Eight f32 lanes from an array.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn load(v: &[f32; 8]) -> __m256 {
        // SAFETY: `v` is 8 f32s = 32 readable bytes; `loadu` needs no alignment.
        unsafe { _mm256_loadu_ps(v.as_ptr()) }
    }

    /// Eight f32 lanes into an array.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) fn store(v: __m256) -> [f32; 8] {
        let mut out = [0f32; 8];
        // SAFETY: `out` is 8 f32s = 32 writable bytes; `storeu` needs no alignment.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), v) };
        out
    }

    /// [`super::rotate_add`] on one register per part: the same operations in the same order
    /// (multiplies, then the subtraction or addition, then the sum; no FMA), so equal to the
    /// bit.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) fn rotate_add_avx2(a: Lanes<'_>, b: Lanes<'_>, r: Lanes<'_>) -> (__m256, __m256) {
        let (ar, ai) = (load(a.0), load(a.1));
        let (br, bi) = (load(b.0), load(b.1));
        let (rr, ri) = (load(r.0), load(r.1));
        let re = _mm256_add_ps(
            ar,
            _mm256_sub_ps(_mm256_mul_ps(br, rr), _mm256_mul_ps(bi, ri)),
        );
        let im = _mm256_add_ps(
            ai,
            _mm256_add_ps(_mm256_mul_ps(br, ri), _mm256_mul_ps(bi, rr)),
        );
        (re, im)
    }

    /// `re² + im²` of [`rotate_add_avx2`] (two multiplies, then the sum; no FMA).
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) fn rotate_add_power_avx2(a: Lanes<'_>, b: Lanes<'_>, r: Lanes<'_>) -> [f32; 8] {
        let (re, im) = rotate_add_avx2(a, b, r);
        store(_mm256_add_ps(_mm256_mul_ps(re, re), _mm256_mul_ps(im, im)))
    }

    /// The block's correlations: per sample pair, the pair broadcast to every lane, one
    /// `pmaddwd` against the cos row and one against the −sin row (8 frequencies side by side),
    /// summed in two accumulators each so consecutive additions do not wait on each other.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) fn correlate_avx2(x: &[i16; BLOCK], tw: &Twiddles) -> RawBins {
        let zero = _mm256_setzero_si256();
        let (mut re0, mut re1, mut im0, mut im1) = (zero, zero, zero, zero);
        let pair = |p: usize| {
            _mm256_set1_epi32(
                (x[2 * p] as u16 as u32 | ((x[2 * p + 1] as u16 as u32) << 16)) as i32,
            )
        };
        for p in (0..PAIRS).step_by(2) {
            let (a, b) = (pair(p), pair(p + 1));
            // SAFETY: a twiddle row is 16 i16s = 32 readable bytes; `loadu` needs no alignment.
            let ca = unsafe { _mm256_loadu_si256(tw.cos[p].as_ptr().cast()) };
            // SAFETY: as above.
            let sa = unsafe { _mm256_loadu_si256(tw.neg_sin[p].as_ptr().cast()) };
            // SAFETY: as above.
            let cb = unsafe { _mm256_loadu_si256(tw.cos[p + 1].as_ptr().cast()) };
            // SAFETY: as above.
            let sb = unsafe { _mm256_loadu_si256(tw.neg_sin[p + 1].as_ptr().cast()) };
            re0 = _mm256_add_epi32(re0, _mm256_madd_epi16(a, ca));
            im0 = _mm256_add_epi32(im0, _mm256_madd_epi16(a, sa));
            re1 = _mm256_add_epi32(re1, _mm256_madd_epi16(b, cb));
            im1 = _mm256_add_epi32(im1, _mm256_madd_epi16(b, sb));
        }
        let mut bins = RawBins::default();
        // SAFETY: `bins.re` is 8 i32s = 32 writable bytes; `storeu` needs no alignment.
        unsafe { _mm256_storeu_si256(bins.re.as_mut_ptr().cast(), _mm256_add_epi32(re0, re1)) };
        // SAFETY: `bins.im` likewise.
        unsafe { _mm256_storeu_si256(bins.im.as_mut_ptr().cast(), _mm256_add_epi32(im0, im1)) };
        bins
    }

    /// The block's sum of squares: `pmaddwd` of the samples with themselves (two squares per
    /// lane; 2·32768² = 2^31 fits when read unsigned), widened to 64-bit lanes.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) fn energy_avx2(x: &[i16; BLOCK]) -> u64 {
        // SAFETY: samples 0..16 are 32 readable bytes; `loadu` needs no alignment.
        let a = unsafe { _mm256_loadu_si256(x.as_ptr().cast()) };
        // SAFETY: samples 16..32 likewise.
        let b = unsafe { _mm256_loadu_si256(x[16..].as_ptr().cast()) };
        // SAFETY: samples 24..40 likewise (the low half, 24..32, is counted in `b` and dropped).
        let c = unsafe { _mm256_loadu_si256(x[24..].as_ptr().cast()) };
        let zero = _mm256_setzero_si256();
        let c = _mm256_blend_epi32::<0b1111_0000>(zero, c);
        let mut acc = zero;
        for v in [a, b, c] {
            let pairs = _mm256_madd_epi16(v, v);
            acc = _mm256_add_epi64(acc, _mm256_unpacklo_epi32(pairs, zero));
            acc = _mm256_add_epi64(acc, _mm256_unpackhi_epi32(pairs, zero));
        }
        let halves = _mm_add_epi64(
            _mm256_castsi256_si128(acc),
            _mm256_extracti128_si256::<1>(acc),
        );
        (_mm_cvtsi128_si64(halves) as u64).wrapping_add(_mm_extract_epi64::<1>(halves) as u64)
    }
}

/// Twiddles and limits, computed once per process (about 3 KiB).
#[derive(Clone, Debug)]
struct Tables {
    twiddles: Twiddles,
    /// `e^{jω_k·BLOCK}`: the nominal advance of a bin's phase from one block to the next.
    advance_re: [f32; 8],
    advance_im: [f32; 8],
    /// `e^{jω_k·2·BLOCK}`: the same over two blocks.
    advance2_re: [f32; 8],
    advance2_im: [f32; 8],
    /// `tan` of the largest accepted phase deviation per block, per frequency.
    max_tan: [f32; 8],
    /// Minimum coherent triple (15 ms) power per tone, in twiddle units.
    min_power: f32,
    /// `TONE_TO_TOTAL` times a tone's coherent triple power per unit of its energy there.
    tone_to_total: f32,
    /// A block with less energy than this cannot be part of a passing triple (see
    /// [`DtmfDetector::analyse`]): its correlations are not computed.
    quiet_energy: u64,
    normal_twist: f32,
    reverse_twist: f32,
}

impl Tables {
    /// The one set of tables, computed by the first detector made (at a session's start, off
    /// the real-time path; no allocation).
    fn shared() -> &'static Tables {
        static TABLES: std::sync::OnceLock<Tables> = std::sync::OnceLock::new();
        TABLES.get_or_init(Tables::new)
    }

    fn new() -> Tables {
        let mut t = Tables {
            twiddles: Twiddles::new(),
            advance_re: [0.0; 8],
            advance_im: [0.0; 8],
            advance2_re: [0.0; 8],
            advance2_im: [0.0; 8],
            max_tan: [0.0; 8],
            min_power: 0.0,
            tone_to_total: 0.0,
            quiet_energy: 0,
            normal_twist: 10f64.powf(NORMAL_TWIST_DB / 10.0) as f32,
            reverse_twist: 10f64.powf(REVERSE_TWIST_DB / 10.0) as f32,
        };
        for (k, &f) in FREQUENCIES_HZ.iter().enumerate() {
            let w = std::f64::consts::TAU * f / SAMPLE_RATE;
            let a = w * BLOCK as f64;
            (t.advance_re[k], t.advance_im[k]) = (a.cos() as f32, a.sin() as f32);
            (t.advance2_re[k], t.advance2_im[k]) = ((2.0 * a).cos() as f32, (2.0 * a).sin() as f32);
            let max_angle = std::f64::consts::TAU * MAX_DEVIATION * f * BLOCK as f64 / SAMPLE_RATE;
            t.max_tan[k] = max_angle.tan() as f32;
        }
        // A sine of amplitude A gives a coherent 3-block (120-sample) power of (120·A/2)²
        // (times TWIDDLE_ONE² in twiddle units), and has energy 120·A²/2 there: power per unit
        // of energy 60·TWIDDLE_ONE². Levels follow energy.rs: a full-scale (32768) sine is
        // +3.14 dBm0.
        let amplitude = 32768.0
            * 10f64.powf((MIN_LEVEL_DBM0 - crate::energy::FULL_SCALE_SINE_DBM0 as f64) / 20.0);
        let min_power = (3.0 * BLOCK as f64 * amplitude / 2.0).powi(2);
        let one2 = TWIDDLE_ONE * TWIDDLE_ONE;
        t.min_power = (min_power * one2) as f32;
        t.tone_to_total = (TONE_TO_TOTAL * 1.5 * BLOCK as f64 * one2) as f32;
        // The quiet gate. A block's power in a bin is at most its energy times Σ|twiddle|²
        // (Cauchy-Schwarz), i.e. 40·(TWIDDLE_ONE + 0.71)²·E. A passing triple has a tone of
        // coherent power ≥ min_power, so one of its blocks holds ≥ min_power/9 in that bin
        // (|C0 + C1 + C2|² ≤ 9·max|Ci|²) and, by the balance check, every block ≥ 1/16 of that:
        // E ≥ min_power / (9·16·40·1.0007). Blocks under half that bound are skipped.
        t.quiet_energy = (min_power / (2.0 * 9.0 * BLOCK_BALANCE as f64 * BLOCK as f64)) as u64;
        t
    }
}

/// One block's analysis: the 8 complex correlations and the energy (twiddle units, as f32).
#[derive(Clone, Copy, Debug, Default)]
struct BlockBins {
    re: [f32; 8],
    im: [f32; 8],
    energy: f32,
    /// Below [`Tables::quiet_energy`]: no triple holding this block passes (`re`, `im` zero).
    quiet: bool,
}

impl BlockBins {
    fn power(&self, k: usize) -> f32 {
        self.re[k] * self.re[k] + self.im[k] * self.im[k]
    }
}

/// The coherent 10 ms bins over two consecutive blocks, and their energy.
#[derive(Clone, Copy, Debug, Default)]
struct WindowBins {
    re: [f32; 8],
    im: [f32; 8],
    energy: f32,
}

/// The detector's digit state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Track {
    Idle,
    /// A digit seen in `hits` passing triples (confirmed once `hits >= CONFIRM_TRIPLES`), the
    /// last `misses` triples failing.
    Digit {
        key: u8,
        start: u64,
        end: u64,
        hits: u32,
        misses: u32,
    },
}

/// What a detector is fed.
#[derive(Clone, Copy)]
enum Input<'a> {
    G711(Codec, &'a [u8]),
    Linear(&'a [i16]),
}

/// A streaming in-band DTMF detector (8 kHz). Feed it audio of any length, any number of
/// times; it reports [`DtmfEvent`]s through a callback. Real-time safe: no allocation, no
/// system call; cost proportional to the input.
#[derive(Clone, Debug)]
pub struct DtmfDetector {
    kernel: DtmfKernel,
    /// Shared by every detector (read only): one copy in the cache for thousands of sessions.
    tables: &'static Tables,
    /// [`Tables::quiet_energy`], here so a test can move the gate.
    quiet_energy: u64,
    block: [i16; BLOCK],
    filled: usize,
    /// Whole blocks analysed so far.
    blocks: u64,
    /// The last three blocks' bins, a ring (see [`Self::ring_slots`]).
    bins: [BlockBins; 3],
    /// The last two 10 ms windows, a ring (see [`Self::window_slots`]).
    windows: [WindowBins; 2],
    track: Track,
}

impl Default for DtmfDetector {
    fn default() -> Self {
        DtmfDetector::new()
    }
}

/// The index of the strongest of the four bins from `base` (the last of equals).
#[inline(always)]
fn peak_index(power: &[f32; 8], base: usize) -> usize {
    let mut best = base;
    for k in base + 1..base + 4 {
        if power[k] >= power[best] {
            best = k;
        }
    }
    best
}

impl DtmfDetector {
    /// A detector at sample 0, with no digit in progress, on the fastest kernel this CPU
    /// supports ([`DtmfKernel::detect`]). Not real-time: call it at session start.
    pub fn new() -> DtmfDetector {
        DtmfDetector::with_kernel(DtmfKernel::detect())
    }

    /// A detector on the given kernel (every kernel reports the same events).
    pub fn with_kernel(kernel: DtmfKernel) -> DtmfDetector {
        DtmfDetector {
            kernel,
            tables: Tables::shared(),
            quiet_energy: Tables::shared().quiet_energy,
            block: [0; BLOCK],
            filled: 0,
            blocks: 0,
            bins: [BlockBins::default(); 3],
            windows: [WindowBins::default(); 2],
            track: Track::Idle,
        }
    }

    /// The kernel this detector runs on.
    pub fn kernel(&self) -> DtmfKernel {
        self.kernel
    }

    /// Starts again at sample 0 with no digit in progress (keeps the tables and kernel).
    pub fn reset(&mut self) {
        self.filled = 0;
        self.blocks = 0;
        self.bins = [BlockBins::default(); 3];
        self.windows = [WindowBins::default(); 2];
        self.track = Track::Idle;
    }

    /// Samples given so far.
    pub fn samples(&self) -> u64 {
        self.blocks * BLOCK as u64 + self.filled as u64
    }

    /// Feeds G.711 audio in `codec`.
    pub fn process(&mut self, codec: Codec, audio: &[u8], mut on_event: impl FnMut(DtmfEvent)) {
        self.dispatch(Input::G711(codec, audio), &mut on_event);
    }

    /// Feeds linear 16-bit audio.
    pub fn process_linear(&mut self, samples: &[i16], mut on_event: impl FnMut(DtmfEvent)) {
        self.dispatch(Input::Linear(samples), &mut on_event);
    }

    /// Runs the input on this detector's kernel (chosen at construction: no feature test here).
    #[inline]
    fn dispatch(&mut self, input: Input<'_>, on_event: &mut impl FnMut(DtmfEvent)) {
        match self.kernel.0 {
            KernelKind::Portable => self.run(Portable, input, on_event),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: a kernel holding `Avx2` is only made by `DtmfKernel::detect` after the CPU
            // reported AVX2.
            KernelKind::Avx2 => unsafe { self.run_avx2(input, on_event) },
        }
    }

    /// [`Self::run`] compiled for AVX2: the kernel's intrinsics inline, and the shared decision
    /// code gets 8-lane registers.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn run_avx2(&mut self, input: Input<'_>, on_event: &mut impl FnMut(DtmfEvent)) {
        // This function only runs with AVX2 enabled, so it may make the `Avx2` kernel value.
        self.run(Avx2(()), input, on_event);
    }

    #[inline(always)]
    fn run<K: BlockKernel>(
        &mut self,
        k: K,
        input: Input<'_>,
        on_event: &mut impl FnMut(DtmfEvent),
    ) {
        match input {
            Input::G711(codec, audio) => {
                let mut decoded = [0i16; CHUNK];
                for bytes in audio.chunks(CHUNK) {
                    let samples = &mut decoded[..bytes.len()];
                    k.decode(codec, bytes, samples);
                    self.feed(k, samples, on_event);
                }
            }
            Input::Linear(samples) => self.feed(k, samples, on_event),
        }
    }

    /// Cuts `samples` into blocks (whole blocks straight from the input, a partial one kept).
    #[inline(always)]
    fn feed<K: BlockKernel>(
        &mut self,
        k: K,
        samples: &[i16],
        on_event: &mut impl FnMut(DtmfEvent),
    ) {
        let mut rest = samples;
        if self.filled > 0 {
            let take = (BLOCK - self.filled).min(rest.len());
            self.block[self.filled..self.filled + take].copy_from_slice(&rest[..take]);
            self.filled += take;
            rest = &rest[take..];
            if self.filled < BLOCK {
                return;
            }
            self.filled = 0;
            let block = self.block;
            self.analyse(k, &block, on_event);
        }
        let (blocks, tail) = rest.as_chunks::<BLOCK>();
        for x in blocks {
            self.analyse(k, x, on_event);
        }
        // Input in whole blocks (a 20 ms frame is four) leaves no tail: no copy to call.
        if !tail.is_empty() {
            self.block[..tail.len()].copy_from_slice(tail);
        }
        self.filled = tail.len();
    }

    /// The end of the stream: a digit still sounding is released (at its last passing triple).
    /// The detector is then reset.
    pub fn finish(&mut self, mut on_event: impl FnMut(DtmfEvent)) {
        if let Track::Digit {
            key,
            start,
            end,
            hits,
            ..
        } = self.track
        {
            if hits >= CONFIRM_TRIPLES {
                on_event(DtmfEvent::Released(ToneSpan {
                    digit: key as char,
                    start,
                    end,
                }));
            }
        }
        self.reset();
    }

    /// The first sample of a digit that is confirmed and still sounding, if any.
    pub fn sounding_since(&self) -> Option<u64> {
        match self.track {
            Track::Digit { start, hits, .. } if hits >= CONFIRM_TRIPLES => Some(start),
            _ => None,
        }
    }

    /// Where a tone that is not confirmed yet (it may still be rejected) could begin: one
    /// [`MARGIN`] before its first passing triple. None when no unconfirmed tone is in view.
    pub fn unconfirmed_since(&self) -> Option<u64> {
        match self.track {
            Track::Digit { start, hits, .. } if hits < CONFIRM_TRIPLES => {
                Some(start.saturating_sub(MARGIN))
            }
            _ => None,
        }
    }

    /// Every sample before this one is decided: it belongs to no tone, or to a tone already
    /// reported (`Pressed`, with its end still to come or already `Released`) — plus
    /// [`MARGIN`]. Samples from here on may still turn out to be part of a tone. A host that
    /// must keep tones out of its output (masking) holds audio from here on.
    pub fn decided_before(&self) -> u64 {
        let whole = self.blocks * BLOCK as u64;
        // The next triple may start two blocks back; a tone in it one block earlier still.
        let mut before = whole.saturating_sub(3 * MARGIN);
        if let Track::Digit {
            start,
            end,
            hits,
            misses,
            ..
        } = self.track
        {
            if hits < CONFIRM_TRIPLES {
                before = before.min(start.saturating_sub(MARGIN));
            } else if misses > 0 {
                // A confirmed digit that may have ended: its span ends at `end + MARGIN` unless
                // it resumes; hold from there.
                before = before.min(end + MARGIN);
            }
        }
        before
    }

    /// One block: its energy; unless it is quiet, its correlations; then the triple ending
    /// with it. A quiet block (energy under [`Tables::quiet_energy`]) cannot be part of a
    /// passing triple (see there), so its correlations are skipped and every triple holding it
    /// fails without being computed: silence costs little more than its energy.
    ///
    /// The last three blocks and two windows live in rings written in place (copying them
    /// along each block cost more than the arithmetic).
    #[inline(always)]
    fn analyse<K: BlockKernel>(
        &mut self,
        k: K,
        x: &[i16; BLOCK],
        on_event: &mut impl FnMut(DtmfEvent),
    ) {
        let t = self.tables;
        let energy = k.energy(x);
        let quiet = energy < self.quiet_energy;
        let raw = if quiet {
            RawBins::default()
        } else {
            k.correlate(x, &t.twiddles)
        };
        let (cur, last, old) = Self::ring_slots(self.blocks);
        let w_cur = Self::window_slot(self.blocks);
        // Built in locals (not in place through the rings), so the compiler sees no aliasing
        // and keeps the 8 lanes in vector registers.
        let bins = BlockBins {
            re: raw.re.map(|v| v as f32),
            im: raw.im.map(|v| v as f32),
            energy: energy as f32,
            quiet,
        };
        let (b_last, b_old) = (&self.bins[last], &self.bins[old]);
        // S(n) = C(n) + C(n-1)·e^{jω·40}: the 80-sample DFT bin over this block and the last.
        let (re, im) = k.rotate_add(
            (&bins.re, &bins.im),
            (&b_last.re, &b_last.im),
            (&t.advance_re, &t.advance_im),
        );
        let window = WindowBins {
            re,
            im,
            energy: bins.energy + b_last.energy,
        };
        let key = if self.blocks >= 2 && !(quiet || b_last.quiet || b_old.quiet) {
            let prev_window = &self.windows[1 - w_cur];
            triple_key(k, t, [b_old, b_last, &bins], &window, prev_window)
        } else {
            None
        };
        // Field by field: a whole-struct copy moves `energy` and `quiet` as one 8-byte load of
        // two smaller stores just made, which the CPU cannot forward (a stall per block).
        let slot = &mut self.bins[cur];
        (slot.re, slot.im, slot.energy, slot.quiet) = (bins.re, bins.im, bins.energy, bins.quiet);
        let slot = &mut self.windows[w_cur];
        (slot.re, slot.im, slot.energy) = (window.re, window.im, window.energy);
        let triple_start = self.blocks.saturating_sub(2) * BLOCK as u64;
        self.blocks += 1;
        let triple_end = self.blocks * BLOCK as u64;
        // Nearly every block (speech, silence, noise) passes no triple with no digit in view,
        // which leaves the track as it is and reports nothing: decided here, without the call
        // (an AVX2 caller pays a `vzeroupper` and reloads its registers around it).
        if key.is_some() || self.track != Track::Idle {
            self.step(key, triple_start, triple_end, on_event);
        }
    }

    /// Ring slots of (this block, the last, the one before) for block number `n`.
    #[inline(always)]
    fn ring_slots(n: u64) -> (usize, usize, usize) {
        let cur = (n % 3) as usize;
        (cur, (cur + 2) % 3, (cur + 1) % 3)
    }

    /// Ring slot of the window ending with block `n` (the one before is the other slot).
    #[inline(always)]
    fn window_slot(n: u64) -> usize {
        (n % 2) as usize
    }

    fn step(
        &mut self,
        key: Option<u8>,
        triple_start: u64,
        triple_end: u64,
        on_event: &mut impl FnMut(DtmfEvent),
    ) {
        self.track = match (self.track, key) {
            (Track::Idle, None) => Track::Idle,
            (Track::Idle, Some(k)) => Track::Digit {
                key: k,
                start: triple_start,
                end: triple_end,
                hits: 1,
                misses: 0,
            },
            (
                Track::Digit {
                    key,
                    start,
                    end,
                    hits,
                    misses,
                },
                None,
            ) => {
                if misses + 1 >= END_TRIPLES {
                    if hits >= CONFIRM_TRIPLES {
                        on_event(DtmfEvent::Released(ToneSpan {
                            digit: key as char,
                            start,
                            end,
                        }));
                    }
                    Track::Idle
                } else {
                    Track::Digit {
                        key,
                        start,
                        end,
                        hits,
                        misses: misses + 1,
                    }
                }
            }
            (
                Track::Digit {
                    key,
                    start,
                    end,
                    hits,
                    ..
                },
                Some(k),
            ) => {
                if k == key {
                    let hits = hits + 1;
                    if hits == CONFIRM_TRIPLES {
                        on_event(DtmfEvent::Pressed {
                            digit: key as char,
                            start,
                        });
                    }
                    Track::Digit {
                        key,
                        start,
                        end: triple_end,
                        hits,
                        misses: 0,
                    }
                } else {
                    // Another key without a gap: the first one ends where it was last seen.
                    if hits >= CONFIRM_TRIPLES {
                        on_event(DtmfEvent::Released(ToneSpan {
                            digit: key as char,
                            start,
                            end,
                        }));
                    }
                    Track::Digit {
                        key: k,
                        start: triple_start,
                        end: triple_end,
                        hits: 1,
                        misses: 0,
                    }
                }
            }
        };
    }
}

/// `a + b·r` on 8 complex lanes (real parts, imaginary parts): adds an earlier block's bins,
/// turned by the phase advance `r`, to a later one's.
#[inline(always)]
fn rotate_add(a: Lanes<'_>, b: Lanes<'_>, r: Lanes<'_>) -> ([f32; 8], [f32; 8]) {
    let (ar, ai, br, bi, rr, ri) = (a.0, a.1, b.0, b.1, r.0, r.1);
    // Two plain element-wise maps (one per output) vectorise cleanly.
    let re = std::array::from_fn(|j| ar[j] + (br[j] * rr[j] - bi[j] * ri[j]));
    let im = std::array::from_fn(|j| ai[j] + (br[j] * ri[j] + bi[j] * rr[j]));
    (re, im)
}

/// The key whose two tones pass every check over the triple `blocks` (two blocks back, the
/// last, this one), given the 10 ms window ending with this block and the one before it.
#[inline(always)]
fn triple_key<K: BlockKernel>(
    k: K,
    t: &Tables,
    blocks: [&BlockBins; 3],
    window: &WindowBins,
    prev_window: &WindowBins,
) -> Option<u8> {
    // Level, twist, relative peak and tone-to-total use the coherent 15 ms (120-sample)
    // bin S(n) + C(n-2)·e^{jω·80}: its nulls are 67 Hz apart, so neither a neighbour in
    // the same group nor the other group's tone (8 dB stronger with twist) leaks into it
    // by more than about -26 dB.
    let old = blocks[0];
    let power = k.rotate_add_power(
        (&window.re, &window.im),
        (&old.re, &old.im),
        (&t.advance2_re, &t.advance2_im),
    );
    let energy = window.energy + old.energy;
    // Tone to total first, on the groups' maxima (branch free): speech, music and noise fail
    // it, and it is the cheapest test.
    // Powers are finite, never NaN (squares of exact integers, far inside f32's range), so a
    // plain comparison is the maximum: `f32::max` adds NaN handling to this chain.
    let max = |a: f32, b: f32| if a > b { a } else { b };
    let group_max = |b: usize| max(max(power[b], power[b + 1]), max(power[b + 2], power[b + 3]));
    if group_max(0) + group_max(4) < t.tone_to_total * energy {
        return None;
    }
    let (row, col) = (peak_index(&power, 0), peak_index(&power, 4));
    let (pr, pc) = (power[row], power[col]);
    let clear = |best: usize, base: usize| {
        (base..base + 4).all(|j| j == best || power[j] * RELATIVE_PEAK <= power[best])
    };
    let ok = clear(row, 0)
        && clear(col, 4)
        && pr >= t.min_power
        && pc >= t.min_power
        && pr <= pc * t.normal_twist
        && pc <= pr * t.reverse_twist
        && steady(t, blocks, window, prev_window, row)
        && steady(t, blocks, window, prev_window, col);
    ok.then(|| KEYS[row][col - 4])
}

/// All three blocks hold bin `k`'s tone, and its frequency is within the accepted deviation.
#[inline(always)]
fn steady(
    t: &Tables,
    blocks: [&BlockBins; 3],
    window: &WindowBins,
    prev_window: &WindowBins,
    k: usize,
) -> bool {
    let p = blocks.map(|b| b.power(k));
    let (lo, hi) = (p[0].min(p[1]).min(p[2]), p[0].max(p[1]).max(p[2]));
    if lo * BLOCK_BALANCE < hi {
        return false;
    }
    // Z = S(n)·conj(S(n-1))·e^{-jω·40}: its angle is the tone's phase drift over 5 ms.
    let (sr, si) = (window.re[k], window.im[k]);
    let (qr, qi) = (prev_window.re[k], prev_window.im[k]);
    let zr = sr * qr + si * qi;
    let zi = si * qr - sr * qi;
    let (ar, ai) = (t.advance_re[k], t.advance_im[k]);
    let dr = zr * ar + zi * ai;
    let di = zi * ar - zr * ai;
    dr > 0.0 && di.abs() <= t.max_tan[k] * dr
}

/// Every key press in a whole G.711 buffer, as [`ToneSpan`]s in samples. Convenience for
/// offline use (allocates the result); the real-time path uses [`DtmfDetector`] directly.
pub fn detect(codec: Codec, audio: &[u8]) -> Vec<ToneSpan> {
    let mut d = DtmfDetector::new();
    let mut spans = Vec::new();
    let mut on = |e| {
        if let DtmfEvent::Released(span) = e {
            spans.push(span)
        }
    };
    d.process(codec, audio, &mut on);
    d.finish(&mut on);
    spans
}

/// Every key press in linear 16-bit audio at 8 kHz (see [`detect`]).
pub fn detect_linear(samples: &[i16]) -> Vec<ToneSpan> {
    let mut d = DtmfDetector::new();
    let mut spans = Vec::new();
    let mut on = |e| {
        if let DtmfEvent::Released(span) = e {
            spans.push(span)
        }
    };
    d.process_linear(samples, &mut on);
    d.finish(&mut on);
    spans
}

/// The two frequencies of a key, `(row, column)` in Hz; None for a character that is no key.
pub fn key_frequencies(digit: char) -> Option<(f64, f64)> {
    let d = digit.to_ascii_uppercase() as u32;
    for (r, row) in KEYS.iter().enumerate() {
        for (c, &k) in row.iter().enumerate() {
            if k as u32 == d {
                return Some((FREQUENCIES_HZ[r], FREQUENCIES_HZ[4 + c]));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key's two tones at `level_dbm0` each, `ms` long, with `twist_db` (row minus column).
    fn tone(digit: char, ms: u32, level_dbm0: f64) -> Vec<i16> {
        let (r, c) = key_frequencies(digit).unwrap();
        let a =
            32768.0 * 10f64.powf((level_dbm0 - crate::energy::FULL_SCALE_SINE_DBM0 as f64) / 20.0);
        (0..ms * 8)
            .map(|n| {
                let t = n as f64 / 8000.0;
                let w = std::f64::consts::TAU;
                (a * (w * r * t).sin() + a * (w * c * t + 1.0).sin()) as i16
            })
            .collect()
    }

    fn silence(ms: u32) -> Vec<i16> {
        vec![0; ms as usize * 8]
    }

    #[test]
    fn every_key_in_any_push_size() {
        let keys = "123A456B789C*0#D";
        let mut audio = silence(30);
        for d in keys.chars() {
            audio.extend(tone(d, 60, -10.0));
            audio.extend(silence(60));
        }
        for size in [1, 7, 40, 160, 333, audio.len()] {
            let mut det = DtmfDetector::new();
            let mut got = String::new();
            let mut spans = Vec::new();
            for piece in audio.chunks(size) {
                det.process_linear(piece, |e| match e {
                    DtmfEvent::Pressed { digit, .. } => got.push(digit),
                    DtmfEvent::Released(s) => spans.push(s),
                });
            }
            assert_eq!(got, keys, "push size {size}");
            assert_eq!(spans.len(), 16);
            for (i, s) in spans.iter().enumerate() {
                let begin = 240 + i as u64 * 960;
                assert!(
                    s.start + MARGIN >= begin && s.start <= begin + MARGIN,
                    "{s:?}"
                );
                assert!(s.end + MARGIN >= begin + 480 && s.end <= begin + 480 + MARGIN);
            }
        }
    }

    #[test]
    fn key_frequencies_are_the_grid() {
        assert_eq!(key_frequencies('5'), Some((770.0, 1336.0)));
        assert_eq!(key_frequencies('d'), Some((941.0, 1633.0)));
        assert_eq!(key_frequencies('x'), None);
    }

    #[test]
    fn decided_before_holds_a_candidate() {
        let mut det = DtmfDetector::new();
        det.process_linear(&silence(100), |_| {});
        assert_eq!(det.decided_before(), 800 - 120);
        det.process_linear(&tone('7', 15, -10.0), |_| panic!("not yet confirmed"));
        assert!(det.decided_before() <= 800);
        assert!(det.decided_before() + MARGIN >= 760);
    }

    /// The committed Q.24 battery (linear) and talk-off corpus (A-law), as one A-law stream
    /// and one linear stream.
    fn corpus() -> (Vec<u8>, Vec<i16>) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/dtmf");
        let linear: Vec<i16> = std::fs::read(dir.join("battery.s16"))
            .expect("battery")
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        let alaw = std::fs::read(dir.join("talkoff.alaw")).expect("talk-off corpus");
        (alaw, linear)
    }

    fn events(mut d: DtmfDetector, codec: Codec, alaw: &[u8], linear: &[i16]) -> Vec<DtmfEvent> {
        let mut out = Vec::new();
        // Uneven pieces, so partial blocks and every path through `feed` are taken.
        for piece in alaw.chunks(333) {
            d.process(codec, piece, |e| out.push(e));
        }
        for piece in linear.chunks(160) {
            d.process_linear(piece, |e| out.push(e));
        }
        d.finish(|e| out.push(e));
        out
    }

    #[test]
    fn every_kernel_reports_the_same_events_and_bins() {
        let (alaw, linear) = corpus();
        let reference = events(
            DtmfDetector::with_kernel(DtmfKernel::PORTABLE),
            Codec::Alaw,
            &alaw,
            &linear,
        );
        // The battery alone holds well over a hundred keys.
        assert!(reference.len() > 200, "{}", reference.len());
        let tables = Tables::new();
        for kernel in DtmfKernel::available() {
            let got = events(
                DtmfDetector::with_kernel(kernel),
                Codec::Alaw,
                &alaw,
                &linear,
            );
            assert_eq!(got, reference, "kernel {}", kernel.name());
            // Bit for bit below the events too: every block's integers and lanes.
            #[cfg(target_arch = "x86_64")]
            if kernel.name() == "avx2" {
                let k = Avx2(());
                for x in linear.as_chunks::<BLOCK>().0.iter().step_by(7) {
                    // SAFETY: `available()` lists AVX2 only when the CPU has it.
                    let (e, c) = unsafe { avx2_block(k, x, &tables) };
                    assert_eq!(e, Portable.energy(x));
                    assert_eq!(c, Portable.correlate(x, &tables.twiddles));
                    let f = (c.re.map(|v| v as f32), c.im.map(|v| v as f32));
                    let r = (&tables.advance_re, &tables.advance_im);
                    assert_eq!(
                        // SAFETY: as above.
                        unsafe { avx2_rotate(k, (&f.0, &f.1), r) },
                        (
                            Portable.rotate_add((&f.0, &f.1), (&f.1, &f.0), r),
                            Portable.rotate_add_power((&f.0, &f.1), (&f.1, &f.0), r)
                        )
                    );
                }
            }
        }
    }

    /// Runs the AVX2 kernel's block work inside code compiled for AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn avx2_block(k: Avx2, x: &[i16; BLOCK], t: &Tables) -> (u64, RawBins) {
        (k.energy(x), k.correlate(x, &t.twiddles))
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn avx2_rotate(k: Avx2, a: Lanes<'_>, r: Lanes<'_>) -> (([f32; 8], [f32; 8]), [f32; 8]) {
        (
            k.rotate_add(a, (a.1, a.0), r),
            k.rotate_add_power(a, (a.1, a.0), r),
        )
    }

    #[test]
    fn a_block_correlation_cannot_overflow_an_i32() {
        let tw = Twiddles::new();
        for lane in 0..16 {
            for rows in [&tw.cos, &tw.neg_sin] {
                let sum: i64 = rows.iter().map(|r| (r[lane] as i64).abs()).sum();
                assert!(sum * 32768 < i32::MAX as i64, "lane {lane}: {sum}");
            }
        }
        // And the worst case is reached without overflow: each sample ±32768 against the sign
        // of its twiddle.
        let worst: [i16; BLOCK] = std::array::from_fn(|n| {
            if tw.cos[n / 2][2 * 5 + n % 2] < 0 {
                -32768
            } else {
                32767
            }
        });
        let c = Portable.correlate(&worst, &tw);
        assert!(c.re[5] > 1_500_000_000, "{}", c.re[5]);
    }

    #[test]
    fn the_quiet_gate_changes_no_event() {
        let (alaw, linear) = corpus();
        // Quiet-level noise and tones near the gate too: the battery at -50 dB.
        let soft: Vec<i16> = linear.iter().map(|&v| (v as f32 * 0.003) as i16).collect();
        for kernel in DtmfKernel::available() {
            let gated = DtmfDetector::with_kernel(kernel);
            let mut ungated = DtmfDetector::with_kernel(kernel);
            ungated.quiet_energy = 0;
            for audio in [&linear, &soft] {
                assert_eq!(
                    events(gated.clone(), Codec::Alaw, &alaw, audio),
                    events(ungated.clone(), Codec::Alaw, &alaw, audio)
                );
            }
            // The comparison can fail: a gate 30 dB too high loses the battery's soft keys.
            let mut deaf = gated.clone();
            deaf.quiet_energy *= 1000;
            assert_ne!(
                events(gated.clone(), Codec::Alaw, &alaw, &linear),
                events(deaf, Codec::Alaw, &alaw, &linear)
            );
        }
    }
}
