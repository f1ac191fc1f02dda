//! In-place, journaled conversion of an `aescbc` recording's `.part` (CTR under the part key:
//! see [`crate::cipher`]) into the user's CBC file (DESIGN §6): it needs no second copy's worth
//! of disk, no second file descriptor, and survives a crash at any point.
//!
//! CBC ciphertext block *i* depends only on plaintext block *i* and ciphertext block *i − 1*, and
//! a CBC file is as long as the CTR one but for its final padded block, so the file can be
//! converted front to back over itself, one chunk at a time. What makes that crash-safe is a
//! small journal kept past the audio, in the same file (`L` = the CTR length, `J` = the CBC
//! length, `L` rounded down to a block plus one block; `C` = the chunk size; `T` = 80 bytes):
//!
//! ```text
//! [0, L)             the file: CBC before the chunk in progress, CTR from it on
//! [L, J)             room for the final padded block
//! [J, J+C)           slot 0: a copy of an even chunk's CTR bytes
//! [J+C, J+2C)        slot 1: the same for odd chunks
//! [J+2C, J+2C+T)     record 0: magic, L, C, chunk index, its length, SHA-256 of all that and slot 0
//! [J+2C+T, J+2C+2T)  record 1, the same for slot 1
//! ```
//!
//! Before chunk *k* is overwritten, its CTR bytes and its record go to slot *k* mod 2 and are
//! fdatasynced; then the chunk is converted, written over itself and fdatasynced. The record of
//! chunk *k − 1* stays intact in the other slot while chunk *k*'s is written, so a torn journal
//! write leaves the previous record valid (redoing a finished chunk from its journalled CTR bytes
//! is harmless). After the last chunk the file is cut to `J`: it is the CBC file.
//!
//! Recovery (`resume`) reads the two records at the file's end; the valid one with the highest
//! index says where to restart: that chunk's CTR bytes come from the journal, the CBC chaining
//! block is the one before it (durable before the record was written). With no valid record, the
//! header says where things stand: CTR under the part key (not started; its sizes give `L`, so
//! the remains of a torn first journal write are cut off) or CBC under the user's key (finished;
//! only the rename was missed). A key that decrypts neither is the wrong key, and nothing is
//! changed.
//!
//! Cost: two fdatasyncs per chunk. `C` is `L`/64 in whole blocks, clamped to 16 KiB – 1 MiB (about
//! 64 chunks a file), so a conversion needs `2C` + 176 bytes of free disk (about 3 % of the file,
//! at most ~2 MiB) for as long as it runs; when even that is not there (a full disk, a file-size
//! limit), the chunk halves, down to 512 bytes (1,200 bytes in all), and for a recording that
//! already ended on a full disk, its last audio is cut 4 KiB at a time until that fits.

use crate::cipher::{ctr_chunk_to_cbc, CipherSpec, BLOCK};
use crate::wav::{
    header_channels, header_fix_channels, HEADER_BYTES, MAX_DATA_BYTES, OPEN_DATA_BYTES,
};
use crate::writer::retry_transient;
use crate::Codec;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use zeroize::Zeroizing;

const MAGIC: [u8; 8] = *b"crcbcj01";
/// A record: magic, five u64 fields, SHA-256.
const RECORD: u64 = 8 + 5 * 8 + 32;
const MIN_CHUNK: u64 = 512;
const SMALL_CHUNK: u64 = 16 * 1024;
const LARGE_CHUNK: u64 = 1024 * 1024;

/// Where a test stops a conversion, as a crash would (nothing after it is written, nothing is
/// cleaned up). Only for tests of recovery ([`convert_with_crash`]).
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashAt {
    /// Never.
    Never,
    /// Once chunk k's journal is durable, before the chunk is touched.
    Journal(u64),
    /// Half-way through writing chunk k's journal (a torn write).
    TornJournal(u64),
    /// Half-way through writing chunk k's CBC bytes over its CTR ones (a torn write).
    TornChunk(u64),
    /// Once the file is cut to its CBC length (before the caller's rename).
    Cut,
}

#[derive(Debug)]
struct Injected;

impl std::fmt::Display for Injected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("crash injected by a test")
    }
}

impl std::error::Error for Injected {}

fn injected() -> io::Error {
    io::Error::other(Injected)
}

fn is_injected(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|r| r.is::<Injected>())
}

fn no_room(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOSPC | libc::EFBIG | libc::EDQUOT)
    )
}

fn bad_data(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_owned())
}

/// The CBC length of `len` bytes of plaintext (PKCS#7 always adds 1 to 16 bytes).
fn cbc_len(len: u64) -> u64 {
    len / BLOCK as u64 * BLOCK as u64 + BLOCK as u64
}

fn chunk_for(len: u64) -> u64 {
    ((len / 64).div_ceil(BLOCK as u64) * BLOCK as u64).clamp(SMALL_CHUNK, LARGE_CHUNK)
}

/// Where things are while `len` CTR bytes are converted in chunks of `chunk` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Layout {
    len: u64,
    chunk: u64,
}

impl Layout {
    fn journal(&self) -> u64 {
        cbc_len(self.len)
    }
    fn slot_at(&self, index: u64) -> u64 {
        self.journal() + index % 2 * self.chunk
    }
    fn record_at(&self, index: u64) -> u64 {
        self.journal() + 2 * self.chunk + index % 2 * RECORD
    }
    fn file_len(&self) -> u64 {
        self.journal() + 2 * self.chunk + 2 * RECORD
    }
    /// Chunk `index`'s offset and length.
    fn chunk(&self, index: u64) -> (u64, usize) {
        let at = index * self.chunk;
        (at, self.chunk.min(self.len - at) as usize)
    }
    fn fields(&self, index: u64, n: usize) -> [u8; 48] {
        let mut f = [0u8; 48];
        f[..8].copy_from_slice(&MAGIC);
        let values = [self.len, self.chunk, index, n as u64, self.file_len()];
        for (out, v) in f[8..].chunks_exact_mut(8).zip(values) {
            out.copy_from_slice(&v.to_le_bytes());
        }
        f
    }
    fn record(&self, index: u64, data: &[u8]) -> [u8; RECORD as usize] {
        let fields = self.fields(index, data.len());
        let mut r = [0u8; RECORD as usize];
        r[..48].copy_from_slice(&fields);
        r[48..].copy_from_slice(
            &Sha256::new()
                .chain_update(fields)
                .chain_update(data)
                .finalize(),
        );
        r
    }
}

/// Writes chunk `index`'s CTR bytes and record to its slot, durably.
fn journal(
    file: &File,
    layout: &Layout,
    index: u64,
    data: &[u8],
    crash: CrashAt,
) -> io::Result<()> {
    if crash == CrashAt::TornJournal(index) {
        file.write_all_at(&data[..data.len() / 2], layout.slot_at(index))?;
        return Err(injected());
    }
    file.write_all_at(data, layout.slot_at(index))?;
    file.write_all_at(&layout.record(index, data), layout.record_at(index))?;
    retry_transient(|| file.sync_data())?;
    if crash == CrashAt::Journal(index) {
        return Err(injected());
    }
    Ok(())
}

/// One conversion: the `.part`, its CTR spec, the user's CBC spec, where a test stops it.
#[derive(Clone, Copy)]
struct Job<'a> {
    file: &'a File,
    part: &'a CipherSpec,
    cbc: &'a CipherSpec,
    crash: CrashAt,
}

/// Converts chunks from `index` on; `buf` holds chunk `index`'s CTR bytes (journalled) and
/// `chain` the CBC block before it. Cuts the file to its CBC length at the end.
fn convert_from(
    job: &Job,
    layout: Layout,
    mut index: u64,
    buf: &mut [u8],
    mut chain: [u8; BLOCK],
) -> io::Result<u64> {
    let Job {
        file,
        part,
        cbc,
        crash,
    } = *job;
    loop {
        let (at, n) = layout.chunk(index);
        let last = at + n as u64 == layout.len;
        let out = ctr_chunk_to_cbc(part, at, cbc, &chain, buf, n, last);
        if crash == CrashAt::TornChunk(index) {
            file.write_all_at(&buf[..out / 2], at)?;
            return Err(injected());
        }
        file.write_all_at(&buf[..out], at)?;
        retry_transient(|| file.sync_data())?;
        chain.copy_from_slice(&buf[out - BLOCK..out]);
        if last {
            break;
        }
        index += 1;
        let (at, n) = layout.chunk(index);
        file.read_exact_at(&mut buf[..n], at)?;
        journal(file, &layout, index, &buf[..n], crash)?;
    }
    file.set_len(layout.journal())?;
    retry_transient(|| file.sync_data())?;
    if crash == CrashAt::Cut {
        return Err(injected());
    }
    Ok(layout.journal())
}

/// Converts a finalized `aescbc` `.part` (CTR under `part`, real header sizes, nothing past its
/// audio) to CBC under `cbc`, in place; returns the audio bytes the CBC file holds. When the
/// disk has no room even for the smallest journal and `may_cut` (the recording already ended
/// with a write error: the disk is full), the audio is cut 4 KiB (half a second) at a time,
/// freeing whole filesystem blocks, until the journal fits. On an error the file is left for
/// [`resume`] (before the first chunk is touched, it is left as it was).
pub(crate) fn convert_part(
    file: &File,
    part: &CipherSpec,
    cbc: &CipherSpec,
    may_cut: bool,
    crash: CrashAt,
) -> io::Result<u64> {
    let len = file.metadata()?.len();
    start(file, part, cbc, len, may_cut, crash)?;
    cbc_data_bytes(file, cbc)
}

/// The audio cut when a full disk leaves no room for the journal (a filesystem block).
const CUT: u64 = 4096;

fn start(
    file: &File,
    part: &CipherSpec,
    cbc: &CipherSpec,
    mut len: u64,
    may_cut: bool,
    crash: CrashAt,
) -> io::Result<()> {
    if len < HEADER_BYTES as u64 {
        return Err(bad_data("shorter than a WAV header"));
    }
    let mut chunk = chunk_for(len);
    let mut buf = Zeroizing::new(vec![0u8; chunk as usize + BLOCK]);
    let layout = loop {
        let layout = Layout { len, chunk };
        let (_, n) = layout.chunk(0);
        let journalled = file
            .read_exact_at(&mut buf[..n], 0)
            .and_then(|()| file.set_len(layout.file_len()))
            .and_then(|()| journal(file, &layout, 0, &buf[..n], crash));
        match journalled {
            Ok(()) => break layout,
            Err(e) if is_injected(&e) => return Err(e),
            Err(e) => {
                // Nothing converted yet: give the room back, and try a smaller journal.
                file.set_len(len)?;
                if !no_room(&e) {
                    return Err(e);
                }
                if chunk > MIN_CHUNK {
                    chunk = (chunk / 2 / BLOCK as u64 * BLOCK as u64).max(MIN_CHUNK);
                } else if may_cut && len >= HEADER_BYTES as u64 + CUT {
                    len = cut_audio(file, part, len - CUT)?;
                } else {
                    return Err(e);
                }
            }
        }
    };
    let job = Job {
        file,
        part,
        cbc,
        crash,
    };
    convert_from(&job, layout, 0, &mut buf, *cbc.iv())?;
    Ok(())
}

/// Cuts a CTR `.part` to at most `len` bytes (an even number of audio bytes), patching its
/// header's sizes; returns the new length.
fn cut_audio(file: &File, part: &CipherSpec, len: u64) -> io::Result<u64> {
    let mut data = len - HEADER_BYTES as u64;
    data -= data % 2;
    let mut head = Zeroizing::new([0u8; HEADER_BYTES]);
    file.read_exact_at(&mut head[..], 0)?;
    part.ctr().apply(&mut head[..]);
    let codec = match u16::from_le_bytes([head[20], head[21]]) {
        crate::wav::FORMAT_ULAW => Codec::Ulaw,
        _ => Codec::Alaw,
    };
    let channels = channels_of(&head);
    head.copy_from_slice(&header_channels(codec, channels, data as u32));
    part.ctr().apply(&mut head[..]);
    file.set_len(HEADER_BYTES as u64 + data)?;
    file.write_all_at(&head[..], 0)?;
    Ok(HEADER_BYTES as u64 + data)
}

/// Chunk `index`'s journalled CTR bytes, from the valid record with the highest index.
struct Found {
    layout: Layout,
    index: u64,
    data: Zeroizing<Vec<u8>>,
}

fn find_record(file: &File, file_len: u64) -> io::Result<Option<Found>> {
    if file_len < HEADER_BYTES as u64 + 2 * RECORD {
        return Ok(None);
    }
    let mut tail = [0u8; 2 * RECORD as usize];
    file.read_exact_at(&mut tail, file_len - 2 * RECORD)?;
    let mut best: Option<Found> = None;
    for (slot, rec) in tail.chunks_exact(RECORD as usize).enumerate() {
        if rec[..8] != MAGIC {
            continue;
        }
        let field = |i: usize| u64::from_le_bytes(rec[8 + 8 * i..16 + 8 * i].try_into().unwrap());
        let (len, chunk, index, n) = (field(0), field(1), field(2), field(3));
        let layout = Layout { len, chunk };
        let plausible = (MIN_CHUNK..=LARGE_CHUNK).contains(&chunk)
            && chunk % BLOCK as u64 == 0
            && len >= HEADER_BYTES as u64
            && len <= HEADER_BYTES as u64 + MAX_DATA_BYTES + 1
            && index % 2 == slot as u64
            && index.checked_mul(chunk).is_some_and(|at| at < len)
            && layout.chunk(index).1 as u64 == n
            && field(4) == file_len
            && layout.file_len() == file_len;
        if !plausible || best.as_ref().is_some_and(|b| b.index > index) {
            continue;
        }
        let mut data = Zeroizing::new(vec![0u8; chunk as usize + BLOCK]);
        file.read_exact_at(&mut data[..n as usize], layout.slot_at(index))?;
        if layout.record(index, &data[..n as usize]) == rec {
            best = Some(Found {
                layout,
                index,
                data,
            });
        }
    }
    Ok(best)
}

/// Whether `plain` is the start of a callrec WAV header (sizes and law aside), mono or a
/// two-leg recording's stereo.
fn is_header(plain: &[u8; HEADER_BYTES]) -> bool {
    let model = header_channels(Codec::Alaw, channels_of(plain), 0);
    let same = |r: std::ops::Range<usize>| plain[r.clone()] == model[r];
    same(0..4) && same(8..20) && same(22..46) && same(50..54)
}

/// The channel count a decrypted callrec header states (1 unless it says 2).
fn channels_of(plain: &[u8; HEADER_BYTES]) -> u16 {
    if u16::from_le_bytes([plain[22], plain[23]]) == 2 {
        2
    } else {
        1
    }
}

/// Whether a CBC stream's first block under `cbc` starts a RIFF WAVE file.
fn cbc_starts_wav(file: &File, cbc: &CipherSpec) -> io::Result<bool> {
    let mut first = Zeroizing::new([0u8; BLOCK]);
    file.read_exact_at(&mut first[..], 0)?;
    cbc.cbc_decrypt_start(&mut first[..]);
    Ok(&first[..4] == b"RIFF" && &first[8..16] == b"WAVEfmt ")
}

/// Finishes an `aescbc` recording's `.part` with the user's key, whatever state a crash left it
/// in: never converted (its header still open-ended if the recording never finished: fixed from
/// the file's length, an odd last sample dropped), part-converted (resumed from the journal), or
/// converted (nothing to do). Returns the audio bytes the CBC file holds. A key and IV that
/// decrypt none of these is refused (`InvalidInput`) and the file is left as it is.
pub(crate) fn resume(
    file: &File,
    part: &CipherSpec,
    cbc: &CipherSpec,
    crash: CrashAt,
) -> io::Result<u64> {
    let wrong_key = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "wrong key or initialisation_vector for this file (its header does not decrypt)",
        )
    };
    let file_len = file.metadata()?.len();
    if file_len < HEADER_BYTES as u64 {
        return Err(bad_data("shorter than a WAV header"));
    }
    if let Some(mut found) = find_record(file, file_len)? {
        let key_fits = if found.index == 0 {
            let mut head = [0u8; HEADER_BYTES];
            head.copy_from_slice(&found.data[..HEADER_BYTES]);
            part.ctr().apply(&mut head);
            is_header(&head)
        } else {
            cbc_starts_wav(file, cbc)?
        };
        if !key_fits {
            return Err(wrong_key());
        }
        let mut chain = *cbc.iv();
        if found.index > 0 {
            file.read_exact_at(&mut chain, found.index * found.layout.chunk - BLOCK as u64)?;
        }
        let job = Job {
            file,
            part,
            cbc,
            crash,
        };
        convert_from(&job, found.layout, found.index, &mut found.data, chain)?;
        return cbc_data_bytes(file, cbc);
    }
    let mut head = [0u8; HEADER_BYTES];
    file.read_exact_at(&mut head, 0)?;
    let mut plain = head;
    part.ctr().apply(&mut plain);
    if is_header(&plain) {
        let size = u32::from_le_bytes(plain[54..58].try_into().unwrap());
        let len = if size == OPEN_DATA_BYTES {
            // The recording never finished: its audio is what the file holds.
            let mut data = (file_len - HEADER_BYTES as u64).min(MAX_DATA_BYTES);
            data -= data % 2; // the pad byte's keystream is not worth a special case
            let fix = header_fix_channels(channels_of(&plain), data as u32);
            for (h, f) in head.iter_mut().zip(fix) {
                *h ^= f;
            }
            file.write_all_at(&head, 0)?;
            HEADER_BYTES as u64 + data
        } else {
            let data = u64::from(size);
            HEADER_BYTES as u64 + data + data % 2
        };
        if len > file_len {
            return Err(bad_data("shorter than its header says"));
        }
        // Anything past the audio is a first journal write a crash cut short.
        file.set_len(len)?;
        start(file, part, cbc, len, false, crash)?;
        return cbc_data_bytes(file, cbc);
    }
    if file_len % BLOCK as u64 == 0 && cbc_starts_wav(file, cbc)? {
        return cbc_data_bytes(file, cbc);
    }
    Err(wrong_key())
}

/// The audio a converted file's header states, in samples per channel (sample frames).
fn cbc_data_bytes(file: &File, cbc: &CipherSpec) -> io::Result<u64> {
    let mut head = Zeroizing::new([0u8; 4 * BLOCK]);
    file.read_exact_at(&mut head[..], 0)?;
    cbc.cbc_decrypt_start(&mut head[..]);
    let channels = u64::from(u16::from_le_bytes([head[22], head[23]]).max(1));
    Ok(u64::from(u32::from_le_bytes(head[54..58].try_into().unwrap())) / channels)
}

/// [`resume`] (a `.part` in any state) stopped at `crash`, for tests of crash recovery: the
/// file is left exactly as a process killed at that point would leave it.
#[doc(hidden)]
pub fn convert_with_crash(file: &File, cipher: &CipherSpec, crash: CrashAt) -> io::Result<u64> {
    resume(file, &cipher.part_spec(), cipher, crash)
}

/// [`convert_part`] as the sync thread calls it, for tests: `may_cut` for a recording that
/// ended with a write error (a full disk). Returns the audio bytes the CBC file holds.
#[doc(hidden)]
pub fn convert_finished(file: &File, cipher: &CipherSpec, may_cut: bool) -> io::Result<u64> {
    convert_part(file, &cipher.part_spec(), cipher, may_cut, CrashAt::Never)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes_are_whole_blocks_within_bounds() {
        assert_eq!(chunk_for(0), SMALL_CHUNK);
        assert_eq!(chunk_for(64 * SMALL_CHUNK + 1), SMALL_CHUNK);
        assert_eq!(chunk_for(64 * SMALL_CHUNK + 64), SMALL_CHUNK + BLOCK as u64);
        assert_eq!(chunk_for(u64::from(u32::MAX)), LARGE_CHUNK);
        let l = Layout {
            len: 1000,
            chunk: 512,
        };
        assert_eq!((l.journal(), l.chunk(1)), (1008, (512, 488)));
        assert_eq!(l.file_len(), 1008 + 1024 + 160);
        let smallest = Layout {
            len: 1008,
            chunk: MIN_CHUNK,
        };
        assert_eq!(smallest.file_len() - 1008, 16 + 1024 + 160);
    }
}
