//! ITU-T G.711 A-law and µ-law companding: decode (byte → i16), encode (i16 → byte) and
//! A-law ↔ µ-law transcoding, all table driven.
//!
//! The tables are built at compile time by `const fn`s that follow the segment/quantisation
//! rules of G.711 (the same rules as the classic Sun `g711.c` and CPython's `audioop`), so the
//! hot path is one indexed load per sample. Linear values use the 16-bit scale: A-law works on
//! the top 13 bits of a sample and µ-law on the top 14 bits, as `audioop` does.
//! Transcoding goes through the linear value (decode then encode), which is what a host that
//! converts between codecs through PCM does.

/// A G.711 companding law. One byte per sample, 8,000 samples per second.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 A-law (WAV format tag 6).
    Alaw,
    /// G.711 µ-law (WAV format tag 7).
    Ulaw,
}

impl Codec {
    /// The name used in options and on the command line: `"alaw"` or `"ulaw"`.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Alaw => "alaw",
            Codec::Ulaw => "ulaw",
        }
    }

    /// Parses `"alaw"` or `"ulaw"` (exactly; these are the record action's spellings).
    pub fn from_name(name: &str) -> Option<Codec> {
        match name {
            "alaw" => Some(Codec::Alaw),
            "ulaw" => Some(Codec::Ulaw),
            _ => None,
        }
    }

    /// The decode table of this law: byte → linear 16-bit sample.
    pub fn decode_table(self) -> &'static [i16; 256] {
        match self {
            Codec::Alaw => &ALAW_TO_LINEAR,
            Codec::Ulaw => &ULAW_TO_LINEAR,
        }
    }

    /// Decodes one byte of this law.
    #[inline]
    pub fn decode(self, byte: u8) -> i16 {
        self.decode_table()[byte as usize]
    }

    /// Encodes one linear 16-bit sample to this law.
    #[inline]
    pub fn encode(self, sample: i16) -> u8 {
        match self {
            Codec::Alaw => LINEAR13_TO_ALAW[((sample as u16) >> 3) as usize],
            Codec::Ulaw => LINEAR14_TO_ULAW[((sample as u16) >> 2) as usize],
        }
    }

    /// The byte that encodes digital silence (linear zero) in this law.
    pub fn silence(self) -> u8 {
        self.encode(0)
    }

    /// The table that turns a byte of this law into the byte of `to` (identity when equal).
    pub fn transcode_table(self, to: Codec) -> &'static [u8; 256] {
        match (self, to) {
            (Codec::Alaw, Codec::Ulaw) => &ALAW_TO_ULAW,
            (Codec::Ulaw, Codec::Alaw) => &ULAW_TO_ALAW,
            _ => &IDENTITY,
        }
    }
}

/// Decodes `input` (of law `codec`) into `out`; `out` must be at least as long as `input`.
/// With AVX2 (checked per call: a cached flag), 16 bytes at a time (see the private `avx2` module).
pub fn decode_into(codec: Codec, input: &[u8], out: &mut [i16]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU reported AVX2.
        unsafe { avx2::decode_into(codec, input, out) };
        return;
    }
    decode_by_table(codec, input, out);
}

/// [`decode_into`] one table load per byte, on any CPU.
pub(crate) fn decode_by_table(codec: Codec, input: &[u8], out: &mut [i16]) {
    let table = codec.decode_table();
    for (o, &b) in out.iter_mut().zip(input) {
        *o = table[b as usize];
    }
}

/// Encodes linear `input` into `out` (of law `codec`); `out` must be at least as long.
pub fn encode_into(codec: Codec, input: &[i16], out: &mut [u8]) {
    for (o, &s) in out.iter_mut().zip(input) {
        *o = codec.encode(s);
    }
}

/// Transcodes `input` from law `from` to law `to` into `out` (a copy when they are equal).
pub fn transcode_into(from: Codec, to: Codec, input: &[u8], out: &mut [u8]) {
    if from == to {
        out[..input.len()].copy_from_slice(input);
        return;
    }
    let table = from.transcode_table(to);
    for (o, &b) in out.iter_mut().zip(input) {
        *o = table[b as usize];
    }
}

/// G.711 decoded arithmetically with AVX2, 16 bytes at a time, instead of one table load per
/// byte: the one place the SIMD form of the decode rules lives, shared by the per-frame
/// analysis ([`crate::features`]), the G.711 energy kernel ([`crate::energy`], which needs only
/// the magnitudes) and the DTMF detector. Equal to the tables for every byte of both laws (a
/// test checks all 512).
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    use super::Codec;
    use std::arch::x86_64::*;

    /// One law's constants, made once per call of a kernel (they stay in registers).
    #[derive(Clone, Copy)]
    pub(crate) struct Decoder {
        ulaw: bool,
        /// A-law inverts the even bits (0x55); µ-law inverts all bits.
        flip: __m128i,
        /// `2^shift` for exponents 0..7, for `pshufb`: A-law shifts by max(e−1, 0), µ-law by e.
        powers: __m256i,
    }

    impl Decoder {
        #[inline]
        #[target_feature(enable = "avx2")]
        pub(crate) fn new(codec: Codec) -> Decoder {
            let ulaw = codec == Codec::Ulaw;
            let powers = if ulaw {
                _mm256_setr_epi8(
                    1, 2, 4, 8, 16, 32, 64, -128, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 64,
                    -128, 0, 0, 0, 0, 0, 0, 0, 0,
                )
            } else {
                _mm256_setr_epi8(
                    1, 1, 2, 4, 8, 16, 32, 64, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 4, 8, 16, 32, 64,
                    0, 0, 0, 0, 0, 0, 0, 0,
                )
            };
            Decoder {
                ulaw,
                flip: _mm_set1_epi8(if ulaw { -1 } else { 0x55 }),
                powers,
            }
        }

        /// The 16 bytes of `raw` as (their bits after the law's inversion, widened to 16 bits;
        /// their decoded magnitudes). The magnitude is `base × 2^shift` (less µ-law's bias),
        /// the base from the mantissa and the power of two from the exponent by `pshufb`.
        #[inline]
        #[target_feature(enable = "avx2")]
        pub(crate) fn magnitudes(self, raw: __m128i) -> (__m256i, __m256i) {
            let w = _mm256_cvtepu8_epi16(_mm_xor_si128(raw, self.flip));
            let mantissa = _mm256_and_si256(w, _mm256_set1_epi16(0x0F));
            let exponent = _mm256_and_si256(_mm256_srli_epi16::<4>(w), _mm256_set1_epi16(0x07));
            // pshufb: index e in the low byte picks 2^shift; 0x80 in the high byte gives 0.
            let power = _mm256_shuffle_epi8(
                self.powers,
                _mm256_or_si256(exponent, _mm256_set1_epi16(0x8000u16 as i16)),
            );
            let magnitude = if self.ulaw {
                // ((m << 3) + 0x84) << e, less the bias 0x84.
                let base =
                    _mm256_add_epi16(_mm256_slli_epi16::<3>(mantissa), _mm256_set1_epi16(0x84));
                _mm256_sub_epi16(_mm256_mullo_epi16(base, power), _mm256_set1_epi16(0x84))
            } else {
                // (m << 4) | 8, plus 0x100 for every segment but the first, << max(e−1, 0).
                let segment_bit =
                    _mm256_slli_epi16::<8>(_mm256_min_epu16(exponent, _mm256_set1_epi16(1)));
                let base = _mm256_or_si256(
                    _mm256_or_si256(_mm256_slli_epi16::<4>(mantissa), _mm256_set1_epi16(8)),
                    segment_bit,
                );
                _mm256_mullo_epi16(base, power)
            };
            (w, magnitude)
        }

        /// The 16 bytes of `raw` decoded to linear samples.
        #[inline]
        #[target_feature(enable = "avx2")]
        pub(crate) fn decode(self, raw: __m128i) -> __m256i {
            let (w, magnitude) = self.magnitudes(raw);
            let sign_clear = _mm256_cmpeq_epi16(
                _mm256_and_si256(w, _mm256_set1_epi16(0x80)),
                _mm256_setzero_si256(),
            );
            // µ-law: the (inverted) sign bit set is negative; A-law: clear is negative.
            let negative = if self.ulaw {
                _mm256_cmpeq_epi16(sign_clear, _mm256_setzero_si256())
            } else {
                sign_clear
            };
            // Two's complement negation where `negative` is all ones.
            _mm256_sub_epi16(_mm256_xor_si256(magnitude, negative), negative)
        }
    }

    /// Decodes `bytes` into `out` (the shorter of the two lengths): 16 at a time, the tail
    /// through the table.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) fn decode_into(codec: Codec, bytes: &[u8], out: &mut [i16]) {
        let decoder = Decoder::new(codec);
        let n = bytes.len().min(out.len());
        let whole = n / 16 * 16;
        for (chunk, o) in bytes[..whole]
            .chunks_exact(16)
            .zip(out[..whole].chunks_exact_mut(16))
        {
            // SAFETY: `chunk` is 16 readable bytes; `loadu` needs no alignment.
            let raw = unsafe { _mm_loadu_si128(chunk.as_ptr().cast()) };
            let value = decoder.decode(raw);
            // SAFETY: `o` is 16 i16s = 32 writable bytes; `storeu` needs no alignment.
            unsafe { _mm256_storeu_si256(o.as_mut_ptr().cast(), value) };
        }
        let table = codec.decode_table();
        for (o, &b) in out[whole..n].iter_mut().zip(&bytes[whole..n]) {
            *o = table[b as usize];
        }
    }
}

const fn alaw_decode(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let exponent = ((a >> 4) & 0x07) as i32;
    let mantissa = (a & 0x0F) as i32;
    // Reconstruct at the middle of the quantisation interval (the +8 / +0x108 terms).
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    if a & 0x80 != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

const fn ulaw_decode(byte: u8) -> i16 {
    const BIAS: i32 = 0x84;
    let u = !byte;
    let exponent = ((u >> 4) & 0x07) as i32;
    let mantissa = (u & 0x0F) as i32;
    let t = ((mantissa << 3) + BIAS) << exponent;
    if u & 0x80 != 0 {
        (BIAS - t) as i16
    } else {
        (t - BIAS) as i16
    }
}

/// Encodes a 13-bit two's complement value (the top 13 bits of a 16-bit sample) to A-law.
const fn alaw_encode13(value: i32) -> u8 {
    // Sign bit set for non-negative values; even bits inverted (the 0x55 mask).
    let (mask, magnitude) = if value >= 0 {
        (0xD5u8, value)
    } else {
        (0x55u8, -value - 1)
    };
    // Segment ends are 0x1F, 0x3F, ..., 0xFFF.
    let mut segment = 0;
    while segment < 8 && magnitude > (0x20 << segment) - 1 {
        segment += 1;
    }
    if segment >= 8 {
        return 0x7F ^ mask;
    }
    let quant = if segment < 2 {
        (magnitude >> 1) & 0x0F
    } else {
        (magnitude >> segment) & 0x0F
    };
    (((segment as u8) << 4) | quant as u8) ^ mask
}

/// Encodes a 14-bit two's complement value (the top 14 bits of a 16-bit sample) to µ-law.
const fn ulaw_encode14(value: i32) -> u8 {
    const CLIP: i32 = 8159;
    const BIAS14: i32 = 0x84 >> 2;
    let (mask, mut magnitude) = if value < 0 {
        (0x7Fu8, -value)
    } else {
        (0xFFu8, value)
    };
    if magnitude > CLIP {
        magnitude = CLIP;
    }
    magnitude += BIAS14;
    // Segment ends are 0x3F, 0x7F, ..., 0x1FFF.
    let mut segment = 0;
    while segment < 8 && magnitude > (0x40 << segment) - 1 {
        segment += 1;
    }
    if segment >= 8 {
        return 0x7F ^ mask;
    }
    (((segment as u8) << 4) | ((magnitude >> (segment + 1)) & 0x0F) as u8) ^ mask
}

const fn build_decode(ulaw: bool) -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if ulaw {
            ulaw_decode(i as u8)
        } else {
            alaw_decode(i as u8)
        };
        i += 1;
    }
    t
}

/// Index = the 16-bit sample's top 13 bits as an unsigned index (sample as u16 >> 3).
const fn build_alaw_encode() -> [u8; 8192] {
    let mut t = [0u8; 8192];
    let mut i = 0;
    while i < 8192 {
        // Sign-extend the 13-bit index back to a two's complement value.
        let v = if i >= 4096 { i as i32 - 8192 } else { i as i32 };
        t[i] = alaw_encode13(v);
        i += 1;
    }
    t
}

/// Index = the 16-bit sample's top 14 bits as an unsigned index (sample as u16 >> 2).
const fn build_ulaw_encode() -> [u8; 16384] {
    let mut t = [0u8; 16384];
    let mut i = 0;
    while i < 16384 {
        let v = if i >= 8192 {
            i as i32 - 16384
        } else {
            i as i32
        };
        t[i] = ulaw_encode14(v);
        i += 1;
    }
    t
}

const fn build_transcode(from_ulaw: bool) -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if from_ulaw {
            alaw_encode13((ulaw_decode(i as u8) as i32) >> 3)
        } else {
            ulaw_encode14((alaw_decode(i as u8) as i32) >> 2)
        };
        i += 1;
    }
    t
}

const fn build_identity() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = i as u8;
        i += 1;
    }
    t
}

pub(crate) static ALAW_TO_LINEAR: [i16; 256] = build_decode(false);
pub(crate) static ULAW_TO_LINEAR: [i16; 256] = build_decode(true);
static LINEAR13_TO_ALAW: [u8; 8192] = build_alaw_encode();
static LINEAR14_TO_ULAW: [u8; 16384] = build_ulaw_encode();
static ALAW_TO_ULAW: [u8; 256] = build_transcode(false);
static ULAW_TO_ALAW: [u8; 256] = build_transcode(true);
static IDENTITY: [u8; 256] = build_identity();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_bytes_are_the_usual_ones() {
        assert_eq!(Codec::Alaw.silence(), 0xD5);
        assert_eq!(Codec::Ulaw.silence(), 0xFF);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx2_decode_equals_the_table_for_every_byte() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            eprintln!("skipped: this CPU has no AVX2");
            return;
        }
        // Every byte, at every position of a 16-byte chunk and in the table-decoded tail.
        let bytes: Vec<u8> = (0..=255u8).chain(0..=255u8).chain(0..7).collect();
        for codec in [Codec::Alaw, Codec::Ulaw] {
            let mut out = vec![0i16; bytes.len()];
            // SAFETY: the CPU reported AVX2 above.
            unsafe { avx2::decode_into(codec, &bytes, &mut out) };
            for (&b, &v) in bytes.iter().zip(&out) {
                assert_eq!(v, codec.decode(b), "{codec:?} byte {b:#04x}");
            }
        }
    }

    #[test]
    fn decode_then_encode_is_identity_for_every_byte() {
        for codec in [Codec::Alaw, Codec::Ulaw] {
            for b in 0..=255u8 {
                let back = codec.encode(codec.decode(b));
                // µ-law has two zeros (0x7F and 0xFF); both decode to 0, which encodes to 0xFF.
                if codec == Codec::Ulaw && b == 0x7F {
                    assert_eq!(back, 0xFF);
                } else {
                    assert_eq!(back, b, "{codec:?} byte {b:#04x}");
                }
            }
        }
    }
}
