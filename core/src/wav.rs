//! The G.711 WAV format (DESIGN §6): writing the 58-byte header (RIFF, 18-byte `fmt ` with format
//! tag 6 A-law / 7 µ-law, `fact`, `data`), patching its sizes at finalize, and reading RIFF WAV
//! files back.
//!
//! Written by hand because hound, the usual WAV crate, cannot write or read format tags 6 and 7;
//! hound stays the tool for PCM16 WAV.

use crate::cipher::CtrStream;
use crate::g711::Codec;
use std::fmt;
use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::ops::Range;

/// Bytes before the audio: RIFF (12) + `fmt ` (8 + 18) + `fact` (8 + 4) + `data` header (8).
pub const HEADER_BYTES: usize = 58;
/// The most audio bytes a RIFF file can hold after this header (its 32-bit RIFF size, with pad).
pub const MAX_DATA_BYTES: u64 = u32::MAX as u64 - (HEADER_BYTES as u64 - 8) - 1;
/// WAVE format tag of G.711 A-law.
pub const FORMAT_ALAW: u16 = 6;
/// WAVE format tag of G.711 µ-law.
pub const FORMAT_ULAW: u16 = 7;
/// WAVE format tag of integer PCM.
pub const FORMAT_PCM: u16 = 1;

/// The data size an unfinished (`.part`) file's header claims: the most a RIFF file can hold.
/// A reader that tolerates a truncated file (sox, ffmpeg, callrec's own) therefore reads every
/// byte a `.part` holds at any moment, with no header refresh; and because this value is known,
/// recovery can fix an encrypted (CTR) `.part`'s header without the key (see
/// [`header_fix`]).
pub const OPEN_DATA_BYTES: u32 = MAX_DATA_BYTES as u32;

/// What to XOR into a `.part` file's first [`HEADER_BYTES`] bytes to turn its open-ended header
/// ([`OPEN_DATA_BYTES`]) into the header of a file holding `data_bytes` of audio. Works on the
/// plain header and on a CTR-encrypted one alike (CTR encrypts by XOR, so the keystream cancels
/// out), whatever the law (the format tag is the same on both sides).
pub fn header_fix(data_bytes: u32) -> [u8; HEADER_BYTES] {
    header_fix_channels(1, data_bytes)
}

/// [`header_fix`] for a file of `channels` channels (a two-leg recording's stereo file: its
/// `fact` chunk counts sample frames, so the fix depends on the channel count; recovery reads
/// it from the `.part`'s [`crate::store::CHANNELS_XATTR`]).
pub fn header_fix_channels(channels: u16, data_bytes: u32) -> [u8; HEADER_BYTES] {
    let (open, done) = (
        header_channels(Codec::Alaw, channels, OPEN_DATA_BYTES),
        header_channels(Codec::Alaw, channels, data_bytes),
    );
    let mut fix = [0u8; HEADER_BYTES];
    for (f, (a, b)) in fix.iter_mut().zip(open.iter().zip(done.iter())) {
        *f = a ^ b;
    }
    fix
}

/// The header of a mono 8 kHz G.711 WAV holding `data_bytes` bytes of audio.
pub fn header(codec: Codec, data_bytes: u32) -> [u8; HEADER_BYTES] {
    header_channels(codec, 1, data_bytes)
}

/// The header of an 8 kHz G.711 WAV of `channels` interleaved channels (1, or 2 for a two-leg
/// recording: block align 2, 16,000 bytes/s) holding `data_bytes` bytes of audio; its `fact`
/// chunk counts sample frames (`data_bytes / channels`).
pub fn header_channels(codec: Codec, channels: u16, data_bytes: u32) -> [u8; HEADER_BYTES] {
    let channels = channels.max(1);
    let pad = data_bytes & 1;
    let riff_size = (HEADER_BYTES as u32 - 8) + data_bytes + pad;
    let tag = match codec {
        Codec::Alaw => FORMAT_ALAW,
        Codec::Ulaw => FORMAT_ULAW,
    };
    let mut h = [0u8; HEADER_BYTES];
    let mut at = 0;
    let mut put = |bytes: &[u8]| {
        h[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    put(b"RIFF");
    put(&riff_size.to_le_bytes());
    put(b"WAVE");
    put(b"fmt ");
    put(&18u32.to_le_bytes());
    put(&tag.to_le_bytes());
    put(&channels.to_le_bytes());
    put(&8000u32.to_le_bytes()); // sample rate
    put(&(8000 * u32::from(channels)).to_le_bytes()); // bytes per second
    put(&channels.to_le_bytes()); // block align: one byte per channel
    put(&8u16.to_le_bytes()); // bits per sample
    put(&0u16.to_le_bytes()); // cbSize
    put(b"fact");
    put(&4u32.to_le_bytes());
    put(&(data_bytes / u32::from(channels)).to_le_bytes()); // sample frames
    put(b"data");
    put(&data_bytes.to_le_bytes());
    h
}

/// A G.711 WAV being written: header placeholder first, audio appended, sizes patched last.
///
/// With a CTR keystream every byte (header included) is encrypted at its file offset before it
/// is written, so plaintext never reaches the file; patching re-encrypts the header in place.
#[derive(Debug)]
pub struct WavFile {
    file: File,
    codec: Codec,
    channels: u16,
    data_bytes: u64,
    crypt: Option<CtrStream>,
}

impl WavFile {
    /// Writes the open-ended header ([`OPEN_DATA_BYTES`] until [`WavFile::finalize`]) to a new,
    /// empty `file`, encrypted with `crypt` when given.
    pub fn start(file: File, codec: Codec, crypt: Option<CtrStream>) -> io::Result<WavFile> {
        WavFile::start_channels(file, codec, 1, crypt)
    }

    /// [`WavFile::start`] for `channels` interleaved channels (2: a two-leg stereo file).
    pub fn start_channels(
        file: File,
        codec: Codec,
        channels: u16,
        crypt: Option<CtrStream>,
    ) -> io::Result<WavFile> {
        let mut wav = WavFile {
            file,
            codec,
            channels: channels.max(1),
            data_bytes: 0,
            crypt,
        };
        wav.write_at(
            0,
            &mut header_channels(codec, wav.channels, OPEN_DATA_BYTES),
        )?;
        Ok(wav)
    }

    /// Appends audio bytes (already in the file's law). The buffer is encrypted in place when
    /// the file is encrypted (it is the writer's scratch buffer, so that costs no copy).
    pub fn append(&mut self, audio: &mut [u8]) -> io::Result<()> {
        if let Some(c) = &mut self.crypt {
            // The keystream is already at the end of the file: appends are sequential.
            c.apply(audio);
        }
        self.file.write_all(audio)?;
        self.data_bytes += audio.len() as u64;
        Ok(())
    }

    /// The file being written.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Audio bytes appended so far.
    pub fn data_bytes(&self) -> u64 {
        self.data_bytes
    }

    /// Keeps the first `keep` audio bytes (all when larger), adds the RIFF pad byte when the
    /// length is odd, patches the header's sizes and returns the file, flushed but not synced,
    /// with the audio length kept. After a failed append (a full disk, EFBIG) this still makes a
    /// valid file of the audio written before the failure: a partly written batch is cut off,
    /// and when even the pad byte cannot be written the last sample goes instead. Nothing here
    /// grows the file but that one byte.
    pub fn finalize(mut self, keep: u64) -> io::Result<(File, u64)> {
        let mut data = keep.min(self.data_bytes).min(MAX_DATA_BYTES);
        // Whole sample frames only (a stereo file never ends half-way through a frame).
        data -= data % u64::from(self.channels);
        let mut end = HEADER_BYTES as u64 + data;
        if self.file.metadata()?.len() != end {
            self.file.set_len(end)?;
        }
        if data % 2 == 1 && self.write_at(end, &mut [0]).is_err() {
            data -= 1;
            end -= 1;
            self.file.set_len(end)?;
        }
        self.write_at(
            0,
            &mut header_channels(self.codec, self.channels, data as u32),
        )?;
        self.file.flush()?;
        Ok((self.file, data))
    }

    /// Writes `bytes` (encrypted in place first, when encrypting) at file offset `at`.
    fn write_at(&mut self, at: u64, bytes: &mut [u8]) -> io::Result<()> {
        if let Some(c) = &mut self.crypt {
            c.seek(at);
            c.apply(bytes);
        }
        self.file.seek(SeekFrom::Start(at))?;
        self.file.write_all(bytes)?;
        // Back to the end for the next append (only `start` writes before audio exists).
        self.file.seek(SeekFrom::End(0))?;
        if let Some(c) = &mut self.crypt {
            c.seek(HEADER_BYTES as u64 + self.data_bytes);
        }
        Ok(())
    }
}

/// What [`parse`] found in a RIFF WAV file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WavInfo {
    /// The `fmt ` chunk's format tag (1 PCM, 6 A-law, 7 µ-law, ...). For
    /// WAVE_FORMAT_EXTENSIBLE (0xFFFE) this is the sub-format's tag (the first two bytes of its
    /// GUID), so an extensible A-law file reads as A-law, as sox and ffprobe read it.
    pub format_tag: u16,
    /// Channels.
    pub channels: u16,
    /// Samples per second.
    pub sample_rate: u32,
    /// Bits per sample.
    pub bits_per_sample: u16,
    /// The `fact` chunk's sample count, when there is one.
    pub fact_samples: Option<u32>,
    /// Where the `data` chunk's bytes are in the file.
    pub data: Range<usize>,
    /// Set when the file ends inside its `data` chunk: the size the chunk declared. `data`
    /// then covers the bytes present (read them with a warning, as sox does).
    pub truncated_from: Option<u32>,
}

impl WavInfo {
    /// The G.711 law of a mono 8 kHz 8-bit G.711 file, or None for anything else.
    pub fn g711_codec(&self) -> Option<Codec> {
        if self.channels != 1 || self.sample_rate != 8000 || self.bits_per_sample != 8 {
            return None;
        }
        match self.format_tag {
            FORMAT_ALAW => Some(Codec::Alaw),
            FORMAT_ULAW => Some(Codec::Ulaw),
            _ => None,
        }
    }
}

/// A file that is not a RIFF WAV this reader understands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WavError(pub String);

impl fmt::Display for WavError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WavError {}

/// WAVE_FORMAT_EXTENSIBLE's format tag.
pub const FORMAT_EXTENSIBLE: u16 = 0xFFFE;
/// The 14 bytes that follow the format tag in a KSDATAFORMAT_SUBTYPE GUID.
const SUBTYPE_GUID_TAIL: [u8; 14] = [
    0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
];

/// Walks the RIFF chunks of `bytes` and returns the format and where the audio is.
pub fn parse(bytes: &[u8]) -> Result<WavInfo, WavError> {
    let bad = |m: &str| WavError(m.to_owned());
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(bad("not a RIFF WAVE file"));
    }
    let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    let mut at = 12;
    let mut fmt = None;
    let mut fact = None;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let size = u32_at(at + 4) as usize;
        let body = at + 8;
        let end = body.saturating_add(size);
        match id {
            b"fmt " => {
                if size < 16 || end > bytes.len() {
                    return Err(bad("truncated fmt chunk"));
                }
                let mut tag = u16_at(body);
                if tag == FORMAT_EXTENSIBLE {
                    // cbSize 22: valid bits, channel mask, then the sub-format GUID.
                    if size < 40 || bytes[body + 26..body + 40] != SUBTYPE_GUID_TAIL {
                        return Err(bad("WAVE_FORMAT_EXTENSIBLE without a known sub-format"));
                    }
                    tag = u16_at(body + 24);
                }
                fmt = Some((tag, u16_at(body + 2), u32_at(body + 4), u16_at(body + 14)));
            }
            b"fact" if size >= 4 && body + 4 <= bytes.len() => fact = Some(u32_at(body)),
            b"data" => {
                let (format_tag, channels, sample_rate, bits_per_sample) =
                    fmt.ok_or_else(|| bad("data chunk before fmt chunk"))?;
                let truncated_from = (end > bytes.len()).then_some(size as u32);
                return Ok(WavInfo {
                    format_tag,
                    channels,
                    sample_rate,
                    bits_per_sample,
                    fact_samples: fact,
                    data: body.min(bytes.len())..end.min(bytes.len()),
                    truncated_from,
                });
            }
            _ => {}
        }
        at = end.saturating_add(size & 1);
    }
    Err(bad("no data chunk"))
}

/// Checks that `bytes` (a whole plaintext when `total_len` is given, else its first bytes)
/// starts like a WAV file callrec or sox writes: `RIFF`/`WAVE`, a `fmt ` chunk with a sane
/// format, then a `data` chunk header; with `total_len`, also that the RIFF size and the `data`
/// chunk agree with the length. `callrec decrypt` runs this on what it decrypted, so a wrong
/// key, IV or cipher type (whose output is noise) is refused instead of written as success.
pub fn check_plain(bytes: &[u8], total_len: Option<u64>) -> Result<(), WavError> {
    let bad = |m: &str| Err(WavError(m.to_owned()));
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return bad("does not start with RIFF....WAVE");
    }
    let riff_size = u64::from(u32::from_le_bytes(bytes[4..8].try_into().unwrap_or([0; 4])));
    let mut at = 12usize;
    let mut seen_fmt = false;
    loop {
        let Some(head) = bytes.get(at..at + 8) else {
            return bad("no data chunk in the header");
        };
        let size = u32::from_le_bytes(head[4..8].try_into().unwrap_or([0; 4]));
        let body = at + 8;
        match &head[0..4] {
            b"fmt " => {
                let Some(fmt) = bytes.get(body..body + 16) else {
                    return bad("truncated fmt chunk");
                };
                let channels = u16::from_le_bytes([fmt[2], fmt[3]]);
                let rate = u32::from_le_bytes(fmt[4..8].try_into().unwrap_or([0; 4]));
                if size < 16 || !(1..=32).contains(&channels) || !(1..=768_000).contains(&rate) {
                    return bad("implausible fmt chunk");
                }
                seen_fmt = true;
            }
            b"data" => {
                if !seen_fmt {
                    return bad("data chunk before fmt chunk");
                }
                if let Some(len) = total_len {
                    if riff_size + 8 != len {
                        return bad("the RIFF size does not match the file's length");
                    }
                    if body as u64 + u64::from(size) > len {
                        return bad("the data chunk runs past the end of the file");
                    }
                }
                return Ok(());
            }
            id if !id.iter().all(|c| c.is_ascii_graphic() || *c == b' ') => {
                return bad("garbage where a chunk should start");
            }
            _ => {}
        }
        at = body
            .checked_add(size as usize + (size as usize & 1))
            .ok_or_else(|| WavError("chunk size overflows".into()))?;
        if total_len.is_some_and(|len| at as u64 > len) {
            return bad("a chunk runs past the end of the file");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_plain_accepts_callrec_files_and_refuses_noise() {
        let mut f = header(Codec::Alaw, 101).to_vec();
        f.extend([0xD5u8; 101]);
        f.push(0); // pad byte
        assert_eq!(check_plain(&f, Some(f.len() as u64)), Ok(()));
        assert_eq!(check_plain(&f[..58], None), Ok(()));
        assert!(check_plain(&f[..f.len() - 1], Some(f.len() as u64 - 1)).is_err());
        assert!(check_plain(&[], Some(0)).is_err());
        let noise: Vec<u8> = (0..200u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        assert!(check_plain(&noise, Some(200)).is_err());
    }

    #[test]
    fn header_layout_is_the_g711_wav_one() {
        let h = header(Codec::Ulaw, 1601);
        assert_eq!(&h[0..4], b"RIFF");
        assert_eq!(
            u32::from_le_bytes(h[4..8].try_into().unwrap()),
            50 + 1601 + 1
        );
        assert_eq!(&h[12..16], b"fmt ");
        assert_eq!(u32::from_le_bytes(h[16..20].try_into().unwrap()), 18);
        assert_eq!(u16::from_le_bytes([h[20], h[21]]), 7);
        assert_eq!(&h[38..42], b"fact");
        assert_eq!(&h[50..54], b"data");
        let mut file = h.to_vec();
        file.extend(std::iter::repeat_n(0xFF, 1601));
        file.push(0);
        let info = parse(&file).unwrap();
        assert_eq!(info.g711_codec(), Some(Codec::Ulaw));
        assert_eq!(info.fact_samples, Some(1601));
        assert_eq!(info.data, 58..58 + 1601);
    }

    #[test]
    fn stereo_header_is_two_channel_g711() {
        let h = header_channels(Codec::Alaw, 2, 3200);
        let u16_at = |at: usize| u16::from_le_bytes([h[at], h[at + 1]]);
        let u32_at = |at: usize| u32::from_le_bytes(h[at..at + 4].try_into().unwrap());
        assert_eq!((u16_at(20), u16_at(22)), (6, 2), "A-law, 2 channels");
        assert_eq!((u32_at(24), u32_at(28)), (8000, 16_000), "rate, bytes/s");
        assert_eq!((u16_at(32), u16_at(34)), (2, 8), "block align, bits");
        assert_eq!(u32_at(46), 1600, "fact: sample frames");
        assert_eq!(u32_at(54), 3200, "data bytes");
        // One channel is exactly the record action's header.
        assert_eq!(header_channels(Codec::Ulaw, 1, 77), header(Codec::Ulaw, 77));
        // The CTR fix without the key works for stereo too.
        let mut open = header_channels(Codec::Ulaw, 2, OPEN_DATA_BYTES);
        for (b, f) in open.iter_mut().zip(header_fix_channels(2, 3200)) {
            *b ^= f;
        }
        assert_eq!(open, header_channels(Codec::Ulaw, 2, 3200));
    }

    #[test]
    fn parse_rejects_garbage_and_reads_a_truncated_file() {
        assert!(parse(b"hello").is_err());
        let mut h = header(Codec::Alaw, 100).to_vec();
        h.extend([0u8; 10]);
        let info = parse(&h).unwrap();
        assert_eq!((info.data, info.truncated_from), (58..68, Some(100)));
    }

    #[test]
    fn extensible_g711_reads_as_its_sub_format() {
        let data = [0xD5u8; 16];
        let mut f = Vec::new();
        f.extend(b"RIFF");
        f.extend((4 + 8 + 40 + 8 + data.len() as u32).to_le_bytes());
        f.extend(b"WAVEfmt ");
        f.extend(40u32.to_le_bytes());
        f.extend(FORMAT_EXTENSIBLE.to_le_bytes());
        f.extend(1u16.to_le_bytes());
        f.extend(8000u32.to_le_bytes());
        f.extend(8000u32.to_le_bytes());
        f.extend(1u16.to_le_bytes());
        f.extend(8u16.to_le_bytes());
        f.extend(22u16.to_le_bytes());
        f.extend(8u16.to_le_bytes()); // valid bits
        f.extend(4u32.to_le_bytes()); // channel mask: front centre
        f.extend(FORMAT_ALAW.to_le_bytes());
        f.extend(SUBTYPE_GUID_TAIL);
        f.extend(b"data");
        f.extend((data.len() as u32).to_le_bytes());
        f.extend(data);
        let info = parse(&f).unwrap();
        assert_eq!(info.g711_codec(), Some(Codec::Alaw));
        assert_eq!(&f[info.data], &data);
        f[20 + 26] ^= 1; // an unknown GUID
        assert!(parse(&f).is_err());
    }
}
