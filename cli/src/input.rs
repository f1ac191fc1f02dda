//! Reading a call as a stream, in bounded memory: a G.711 WAV (callrec's own RIFF reader:
//! hound cannot read format tags 6/7), an 8 kHz 16-bit PCM WAV, or raw G.711 (`--raw`), from a
//! file, a FIFO or standard input (`-`). A WAV is mono (one party) or stereo (both parties of a
//! call: channel 1 the caller, channel 2 the other party, DESIGN §13). Only the header (at most
//! 64 KiB) is held; the audio is read one 20 ms frame at a time, so `/dev/zero` or an endless
//! pipe never grows memory. A truncated WAV is read to its end with a warning, as sox does.

use callrec::g711::{encode_into, transcode_into, Codec};
use callrec::wav;
use std::io::{self, Read};
use std::path::Path;

/// The most header bytes read while looking for the `data` chunk.
const MAX_HEADER: usize = 64 * 1024;

/// What the input's bytes are.
#[derive(Clone, Copy)]
enum Kind {
    G711(Codec),
    Pcm16,
}

/// A call's audio, streamed in the call's codec.
pub struct Source {
    /// The call's codec (what frames come out in).
    pub codec: Codec,
    /// 1 (one party) or 2 (a stereo WAV: the caller, then the other party).
    pub channels: usize,
    reader: Box<dyn Read>,
    kind: Kind,
    /// Bytes of the header read that belong to the audio (consumed first).
    pending: Vec<u8>,
    pending_at: usize,
    /// Audio bytes the data chunk still holds (u64::MAX: until the end of the input).
    left: u64,
    /// The data chunk's declared size and the input's name, for the truncation warning.
    declared: u64,
    name: String,
    /// A regular file (its truncation is reported at open).
    is_file: bool,
}

/// Opens `path` (`-`: standard input); `codec` is the call's codec (None: the file's law, or
/// alaw for PCM); `raw` reads headerless G.711 in that law.
pub fn open(path: &Path, codec: Option<Codec>, raw: Option<Codec>) -> Result<Source, String> {
    let mut reader: Box<dyn Read> = if path == Path::new("-") {
        Box::new(io::stdin())
    } else {
        Box::new(std::fs::File::open(path).map_err(|e| e.to_string())?)
    };
    if let Some(law) = raw {
        return Ok(Source {
            codec: codec.unwrap_or(law),
            channels: 1,
            reader,
            kind: Kind::G711(law),
            pending: Vec::new(),
            pending_at: 0,
            left: u64::MAX,
            declared: 0,
            name: path.display().to_string(),
            is_file: false,
        });
    }
    // Read until the header's data chunk starts (a parse error other than "no data chunk yet"
    // is final once the header limit or the end of the input is reached).
    let mut head = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let info = loop {
        let parsed = wav::parse(&head);
        if let Ok(info) = parsed {
            break info;
        }
        let n = read_retrying(&mut reader, &mut chunk).map_err(|e| e.to_string())?;
        if n == 0 || head.len() >= MAX_HEADER {
            return Err(match parsed {
                Err(e) if !head.is_empty() => e.to_string(),
                _ => "empty input (raw G.711 needs --raw alaw|ulaw)".into(),
            });
        }
        head.extend_from_slice(&chunk[..n]);
    };
    let declared = info
        .truncated_from
        .map_or(info.data.len() as u64, u64::from);
    // A G.711 or 16-bit PCM WAV at 8 kHz, one party or both.
    let layout_ok = info.sample_rate == 8000 && matches!(info.channels, 1 | 2);
    let kind = match info.format_tag {
        wav::FORMAT_ALAW | wav::FORMAT_ULAW if layout_ok && info.bits_per_sample == 8 => {
            Kind::G711(if info.format_tag == wav::FORMAT_ALAW {
                Codec::Alaw
            } else {
                Codec::Ulaw
            })
        }
        wav::FORMAT_ALAW | wav::FORMAT_ULAW => {
            return Err(format!(
                "G.711 input must be 8000 Hz 8-bit, mono or stereo, not {} Hz {} channel(s) \
                 {}-bit",
                info.sample_rate, info.channels, info.bits_per_sample
            ))
        }
        wav::FORMAT_PCM if layout_ok && info.bits_per_sample == 16 => Kind::Pcm16,
        _ => {
            return Err(format!(
                "must be a G.711 WAV or 8000 Hz 16-bit PCM (mono, or stereo for both parties), \
                 not format {} {} Hz {} channel(s) {}-bit (convert with: sox IN -r 8000 -b 16 \
                 OUT.wav)",
                info.format_tag, info.sample_rate, info.channels, info.bits_per_sample
            ))
        }
    };
    let codec = codec.unwrap_or(match kind {
        Kind::G711(law) => law,
        Kind::Pcm16 => Codec::Alaw,
    });
    // A regular file that ends before its data chunk does: say so now (the recording may stop
    // before the end is reached).
    if let Ok(meta) = std::fs::metadata(path) {
        let have = meta.len().saturating_sub(info.data.start as u64);
        if meta.is_file() && have < declared && path != Path::new("-") {
            eprintln!(
                "callrec: warning: {}: the data chunk declares {declared} bytes but the file \
                 ends after {have}; reading those",
                path.display()
            );
        }
    }
    // A streaming writer's header often says 0 or "the most": read such data to the end.
    let left = if declared == 0 || declared >= u32::MAX as u64 - 64 {
        u64::MAX
    } else {
        declared
    };
    Ok(Source {
        codec,
        channels: usize::from(info.channels),
        reader,
        kind,
        pending_at: info.data.start,
        pending: head,
        left,
        declared,
        name: path.display().to_string(),
        is_file: path != Path::new("-") && std::fs::metadata(path).is_ok_and(|m| m.is_file()),
    })
}

/// One read, retried when a signal interrupted it with nothing read.
fn read_retrying(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match reader.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

impl Source {
    /// Reads input bytes (header leftovers first), at most what the data chunk holds. An
    /// interrupted read (a signal) is returned as such, so the caller can look at its flag.
    fn read_some(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = (buf.len() as u64).min(self.left) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = if self.pending_at < self.pending.len() {
            let n = want.min(self.pending.len() - self.pending_at);
            buf[..n].copy_from_slice(&self.pending[self.pending_at..self.pending_at + n]);
            self.pending_at += n;
            if self.pending_at == self.pending.len() {
                self.pending = Vec::new(); // the header is done with
            }
            n
        } else {
            self.reader.read(&mut buf[..want])?
        };
        if self.left != u64::MAX {
            self.left -= n as u64;
        }
        Ok(n)
    }

    /// Fills `buf` as far as the input goes; stops early (returning what it has) when
    /// `interrupted()` says so after a signal.
    fn fill(&mut self, buf: &mut [u8], interrupted: &dyn Fn() -> bool) -> io::Result<usize> {
        let mut got = 0;
        while got < buf.len() {
            match self.read_some(&mut buf[got..]) {
                Ok(0) => {
                    if self.left != u64::MAX && self.left > 0 && !self.is_file {
                        // As sox does: read what is there, and say so (once).
                        eprintln!(
                            "callrec: warning: {}: the data chunk declares {} bytes but the \
                             input ends after {}; reading those",
                            self.name,
                            self.declared,
                            self.declared - self.left
                        );
                        self.left = 0;
                    }
                    break;
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    if interrupted() {
                        break;
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(got)
    }

    /// The next 20 ms frame of a one-party input (fewer bytes at the end of the input, 0 at its
    /// end).
    pub fn next_frame(
        &mut self,
        out: &mut [u8; 160],
        interrupted: &dyn Fn() -> bool,
    ) -> io::Result<usize> {
        debug_assert_eq!(self.channels, 1);
        let mut other = [0u8; 160];
        self.read_frame(out, &mut other, interrupted)
    }

    /// The next 20 ms frame of each party of a stereo input (channel 1 into `caller`,
    /// channel 2 into `other`): the samples per channel, fewer at the end, 0 at the end.
    pub fn next_frames(
        &mut self,
        caller: &mut [u8; 160],
        other: &mut [u8; 160],
        interrupted: &dyn Fn() -> bool,
    ) -> io::Result<usize> {
        debug_assert_eq!(self.channels, 2);
        self.read_frame(caller, other, interrupted)
    }

    /// Reads 160 sample frames (fewer at the end) and splits their channels (`second` is
    /// untouched for mono), in the call's codec; returns the samples per channel.
    fn read_frame(
        &mut self,
        first: &mut [u8; 160],
        second: &mut [u8; 160],
        interrupted: &dyn Fn() -> bool,
    ) -> io::Result<usize> {
        let channels = self.channels;
        let width = match self.kind {
            Kind::G711(_) => 1,
            Kind::Pcm16 => 2,
        };
        let mut raw = [0u8; 160 * 2 * 2];
        let frame_bytes = width * channels;
        // A stray trailing byte that is no whole sample frame is dropped.
        let n = self.fill(&mut raw[..160 * frame_bytes], interrupted)? / frame_bytes;
        for (channel, out) in [first, second].into_iter().take(channels).enumerate() {
            let at = channel * width;
            match self.kind {
                Kind::G711(law) => {
                    let mut bytes = [0u8; 160];
                    for (b, f) in bytes.iter_mut().zip(raw.chunks_exact(frame_bytes)).take(n) {
                        *b = f[at];
                    }
                    transcode_into(law, self.codec, &bytes[..n], &mut out[..n]);
                }
                Kind::Pcm16 => {
                    let mut samples = [0i16; 160];
                    for (s, f) in samples
                        .iter_mut()
                        .zip(raw.chunks_exact(frame_bytes))
                        .take(n)
                    {
                        *s = i16::from_le_bytes([f[at], f[at + 1]]);
                    }
                    encode_into(self.codec, &samples[..n], &mut out[..n]);
                }
            }
        }
        Ok(n)
    }
}
