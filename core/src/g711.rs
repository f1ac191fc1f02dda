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
pub fn decode_into(codec: Codec, input: &[u8], out: &mut [i16]) {
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
