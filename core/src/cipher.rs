//! Whole-file AES encryption (DESIGN §6), compatible with `openssl enc`:
//! `openssl enc -d -aes-<bits>-ctr -K <key> -iv <iv>` and `... -aes-<bits>-cbc ...` (PKCS#7)
//! turn an encrypted recording back into the WAV the same call makes without a cipher.
//!
//! * **CTR** (`aesctr`): AES with a 128-bit big-endian counter starting at the IV (what OpenSSL
//!   uses). The writer encrypts each batch in place as it appends; at finalize the patched
//!   header is re-encrypted in place by seeking the keystream back to 0.
//! * **CBC** (`aescbc`): each block chains from the one before, so the header cannot be patched
//!   in place once audio follows it. The `.part` file is therefore written in CTR mode under a
//!   *part key* derived from the user's key (below); at finalize it is converted, in place and
//!   journaled ([`crate::convert`]), to CBC with the user's key and PKCS#7 padding, and renamed.
//!   Plain audio never reaches the disk in either mode.
//!
//! **Key separation for `aescbc` `.part` files.** The `.part` must be recoverable after a crash
//! with nothing but the user's key (an ephemeral key would die with the process), yet the
//! user's key must not be used in two modes. So the part key and IV are derived, never reused:
//! `HKDF-SHA256(ikm = user key, salt = user IV, info = "callrec aescbc part v1 AES-256-CTR")`
//! gives 48 bytes: an AES-256 key (32) and a CTR IV (16). HKDF is a PRF keyed by the user's key,
//! so the part key reveals nothing about the user's key and differs for every key/IV pair; the
//! user's key itself only ever encrypts in CBC. `callrec recover` (and
//! [`crate::recover::recover_aescbc`]) derive the same part key from the key and IV the user
//! gives, fix the `.part`'s header, and write the CBC file.
//!
//! Key material (keys, IVs, expanded round keys, the ephemeral key) is zeroized when dropped
//! (the `aes`, `ctr` and `cbc` crates' `zeroize` features, and `zeroize` for our own copies).

use aes::cipher::{
    block_padding::Pkcs7, BlockDecryptMut, BlockEncryptMut, KeyIvInit, StreamCipher,
    StreamCipherSeek,
};
use aes::{Aes128, Aes192, Aes256};
use std::fmt;
use std::io::{self, Read, Write};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// How one recording is encrypted, decided once at session start ([`EncryptionPlan::new`]) and
/// carried to its one finalizer (the writer for plain and CTR, the sync thread for CBC).
#[derive(Debug)]
pub(crate) enum EncryptionPlan {
    /// No cipher: the file is plain.
    Plain,
    /// `aesctr`: the `.part` is the final file, encrypted as it is written.
    Ctr(CipherSpec),
    /// `aescbc`: the `.part` is CTR under `part` (derived from `user`), converted to CBC under
    /// `user` at finalize.
    Cbc {
        /// The user's CBC key and IV.
        user: CipherSpec,
        /// The derived CTR key and IV of the `.part` ([`CipherSpec::part_spec`]).
        part: CipherSpec,
    },
}

impl EncryptionPlan {
    /// The plan for the record action's `encryption_cipher`.
    pub(crate) fn new(cipher: Option<&CipherSpec>) -> EncryptionPlan {
        match cipher {
            None => EncryptionPlan::Plain,
            Some(spec) if spec.mode() == Mode::Ctr => EncryptionPlan::Ctr(spec.clone()),
            Some(spec) => EncryptionPlan::Cbc {
                user: spec.clone(),
                part: spec.part_spec(),
            },
        }
    }

    /// The keystream the `.part` is written with (None: plain).
    pub(crate) fn part_stream(&self) -> Option<CtrStream> {
        match self {
            EncryptionPlan::Plain => None,
            EncryptionPlan::Ctr(spec) => Some(spec.ctr()),
            EncryptionPlan::Cbc { part, .. } => Some(part.ctr()),
        }
    }

    /// True for `aescbc`.
    pub(crate) fn is_cbc(&self) -> bool {
        matches!(self, EncryptionPlan::Cbc { .. })
    }
}

/// The HKDF `info` of the `aescbc` part key (a new version gets a new label).
const PART_KEY_INFO: &[u8] = b"callrec aescbc part v1 AES-256-CTR";

/// AES block size in bytes.
pub const BLOCK: usize = 16;

/// The cipher mode of the record action's `encryption_cipher.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Zeroize)]
pub enum Mode {
    /// `"aescbc"`: AES-CBC with PKCS#7 padding.
    Cbc,
    /// `"aesctr"`: AES-CTR with a 128-bit big-endian counter.
    Ctr,
}

impl Mode {
    /// Parses `"aescbc"` or `"aesctr"`.
    pub fn from_name(name: &str) -> Option<Mode> {
        match name {
            "aescbc" => Some(Mode::Cbc),
            "aesctr" => Some(Mode::Ctr),
            _ => None,
        }
    }

    /// The record action's spelling.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Cbc => "aescbc",
            Mode::Ctr => "aesctr",
        }
    }
}

/// A mode, a 128/192/256-bit key and a 128-bit IV. Zeroized on drop; never printed.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct CipherSpec {
    mode: Mode,
    key: [u8; 32],
    key_len: usize,
    iv: [u8; BLOCK],
}

impl fmt::Debug for CipherSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CipherSpec({}, AES-{}, key and IV redacted)",
            self.mode.name(),
            self.key_len * 8
        )
    }
}

/// Why a key, IV or cipher stream was refused: `(field, reason)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyError {
    /// `key` or `initialisation_vector`.
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for KeyError {}

/// Decodes hex (either case); the error says what is wrong without echoing the secret.
pub fn decode_hex(field: &'static str, hex: &str) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let err = |m: String| KeyError { field, message: m };
    if hex.len() % 2 == 1 {
        return Err(err(format!("odd number of hex digits ({})", hex.len())));
    }
    if let Some(at) = hex.find(|c: char| !c.is_ascii_hexdigit()) {
        return Err(err(format!("not hex: bad character at position {at}")));
    }
    let mut out = Zeroizing::new(Vec::with_capacity(hex.len() / 2));
    for pair in hex.as_bytes().chunks_exact(2) {
        let digit = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
        out.push(digit(pair[0]) << 4 | digit(pair[1]));
    }
    Ok(out)
}

/// The key+IV pairs an engine has used, as keyed 64-bit hashes (never the keys themselves),
/// so an `aesctr` recording that reuses a pair can be refused: CTR with a reused key and IV
/// encrypts two files with the same keystream, and XORing them exposes both calls' audio.
/// Bounded memory: the most recent [`UsedKeyIvs::CAPACITY`] pairs per engine (a few MiB).
pub(crate) struct UsedKeyIvs {
    hasher: std::hash::RandomState,
    seen: std::collections::HashSet<u64>,
    order: std::collections::VecDeque<u64>,
}

impl UsedKeyIvs {
    /// How many pairs are remembered.
    pub(crate) const CAPACITY: usize = 1 << 17;

    pub(crate) fn new() -> Self {
        UsedKeyIvs {
            hasher: std::hash::RandomState::new(),
            seen: std::collections::HashSet::new(),
            order: std::collections::VecDeque::new(),
        }
    }

    /// Records `spec`'s mode, key and IV; true if they were already recorded.
    pub(crate) fn reused(&mut self, spec: &CipherSpec) -> bool {
        use std::hash::BuildHasher;
        let hash =
            self.hasher
                .hash_one((spec.mode.name(), &spec.key[..spec.key_len], &spec.iv[..]));
        if !self.seen.insert(hash) {
            return true;
        }
        self.order.push_back(hash);
        if self.order.len() > Self::CAPACITY {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        false
    }
}

impl CipherSpec {
    /// A spec from raw key and IV bytes.
    pub fn new(mode: Mode, key: &[u8], iv: &[u8]) -> Result<CipherSpec, KeyError> {
        if !matches!(key.len(), 16 | 24 | 32) {
            return Err(KeyError {
                field: "key",
                message: format!(
                    "{} bits; AES needs 128, 192 or 256 (32, 48 or 64 hex digits)",
                    key.len() * 8
                ),
            });
        }
        if iv.len() != BLOCK {
            return Err(KeyError {
                field: "initialisation_vector",
                message: format!("{} bits; it must be 128 (32 hex digits)", iv.len() * 8),
            });
        }
        let mut spec = CipherSpec {
            mode,
            key: [0; 32],
            key_len: key.len(),
            iv: [0; BLOCK],
        };
        spec.key[..key.len()].copy_from_slice(key);
        spec.iv.copy_from_slice(iv);
        Ok(spec)
    }

    /// A spec from hex key and IV, as in the options JSON.
    pub fn from_hex(mode: Mode, key_hex: &str, iv_hex: &str) -> Result<CipherSpec, KeyError> {
        let key = decode_hex("key", key_hex)?;
        let iv = decode_hex("initialisation_vector", iv_hex)?;
        CipherSpec::new(mode, &key, &iv)
    }

    /// The AES-256-CTR spec an `aescbc` recording's `.part` file is written under: derived from
    /// this key and IV by HKDF-SHA256 (see the module docs: key separation). Deterministic, so
    /// the user's key recovers the `.part` after a crash.
    pub fn part_spec(&self) -> CipherSpec {
        let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(&self.iv), self.key());
        let mut okm = Zeroizing::new([0u8; 48]);
        hk.expand(PART_KEY_INFO, &mut okm[..])
            .expect("48 bytes is a valid HKDF-SHA256 length");
        CipherSpec::new(Mode::Ctr, &okm[..32], &okm[32..]).expect("sizes are fixed")
    }

    /// A CTR spec with a fresh random AES-256 key and IV.
    pub fn ephemeral_ctr() -> io::Result<CipherSpec> {
        let mut secret = Zeroizing::new([0u8; 48]);
        getrandom::fill(&mut secret[..]).map_err(|e| io::Error::other(e.to_string()))?;
        CipherSpec::new(Mode::Ctr, &secret[..32], &secret[32..])
            .map_err(|e| io::Error::other(e.to_string()))
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Key size in bits.
    pub fn key_bits(&self) -> usize {
        self.key_len * 8
    }

    fn key(&self) -> &[u8] {
        &self.key[..self.key_len]
    }

    /// The CTR keystream of this key and IV (whatever the mode says).
    pub fn ctr(&self) -> CtrStream {
        let (k, iv) = (self.key(), &self.iv);
        CtrStream(match self.key_len {
            16 => {
                Ctr::A128(ctr::Ctr128BE::<Aes128>::new_from_slices(k, iv).expect("sizes checked"))
            }
            24 => {
                Ctr::A192(ctr::Ctr128BE::<Aes192>::new_from_slices(k, iv).expect("sizes checked"))
            }
            _ => Ctr::A256(ctr::Ctr128BE::<Aes256>::new_from_slices(k, iv).expect("sizes checked")),
        })
    }

    fn cbc_encryptor(&self) -> CbcEnc {
        let (k, iv) = (self.key(), &self.iv);
        match self.key_len {
            16 => CbcEnc::A128(cbc::Encryptor::new_from_slices(k, iv).expect("sizes checked")),
            24 => CbcEnc::A192(cbc::Encryptor::new_from_slices(k, iv).expect("sizes checked")),
            _ => CbcEnc::A256(cbc::Encryptor::new_from_slices(k, iv).expect("sizes checked")),
        }
    }

    /// The CBC encryptor of this key chaining from `chain` (the IV, or the ciphertext block
    /// before the first one it encrypts: CBC restarted mid-stream).
    fn cbc_encryptor_from(&self, chain: &[u8; BLOCK]) -> CbcEnc {
        let k = self.key();
        match self.key_len {
            16 => CbcEnc::A128(cbc::Encryptor::new_from_slices(k, chain).expect("sizes checked")),
            24 => CbcEnc::A192(cbc::Encryptor::new_from_slices(k, chain).expect("sizes checked")),
            _ => CbcEnc::A256(cbc::Encryptor::new_from_slices(k, chain).expect("sizes checked")),
        }
    }

    /// The IV.
    pub(crate) fn iv(&self) -> &[u8; BLOCK] {
        &self.iv
    }

    /// Decrypts, in place, the start (whole blocks) of a CBC stream under this key and IV.
    pub(crate) fn cbc_decrypt_start(&self, blocks: &mut [u8]) {
        self.cbc_decryptor().blocks(blocks);
    }

    fn cbc_decryptor(&self) -> CbcDec {
        let (k, iv) = (self.key(), &self.iv);
        match self.key_len {
            16 => CbcDec::A128(cbc::Decryptor::new_from_slices(k, iv).expect("sizes checked")),
            24 => CbcDec::A192(cbc::Decryptor::new_from_slices(k, iv).expect("sizes checked")),
            _ => CbcDec::A256(cbc::Decryptor::new_from_slices(k, iv).expect("sizes checked")),
        }
    }
}

enum Ctr {
    A128(ctr::Ctr128BE<Aes128>),
    A192(ctr::Ctr128BE<Aes192>),
    A256(ctr::Ctr128BE<Aes256>),
}

/// A seekable AES-CTR keystream. Applying it encrypts or decrypts in place; no allocation.
pub struct CtrStream(Ctr);

impl fmt::Debug for CtrStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CtrStream(redacted)")
    }
}

impl CtrStream {
    /// XORs the keystream at the current position into `data` and advances.
    pub fn apply(&mut self, data: &mut [u8]) {
        match &mut self.0 {
            Ctr::A128(c) => c.apply_keystream(data),
            Ctr::A192(c) => c.apply_keystream(data),
            Ctr::A256(c) => c.apply_keystream(data),
        }
    }

    /// Moves to byte `position` of the stream.
    pub fn seek(&mut self, position: u64) {
        match &mut self.0 {
            Ctr::A128(c) => c.seek(position),
            Ctr::A192(c) => c.seek(position),
            Ctr::A256(c) => c.seek(position),
        }
    }
}

enum CbcEnc {
    A128(cbc::Encryptor<Aes128>),
    A192(cbc::Encryptor<Aes192>),
    A256(cbc::Encryptor<Aes256>),
}

enum CbcDec {
    A128(cbc::Decryptor<Aes128>),
    A192(cbc::Decryptor<Aes192>),
    A256(cbc::Decryptor<Aes256>),
}

/// The 16-byte blocks of `data` (a whole number of them), one at a time.
fn each_block(data: &mut [u8]) -> impl Iterator<Item = &mut aes::Block> {
    debug_assert_eq!(data.len() % BLOCK, 0);
    data.chunks_exact_mut(BLOCK).map(aes::Block::from_mut_slice)
}

impl CbcEnc {
    /// Encrypts whole blocks in place.
    fn blocks(&mut self, data: &mut [u8]) {
        for block in each_block(data) {
            match self {
                CbcEnc::A128(c) => c.encrypt_block_mut(block),
                CbcEnc::A192(c) => c.encrypt_block_mut(block),
                CbcEnc::A256(c) => c.encrypt_block_mut(block),
            }
        }
    }

    /// Pads `tail` (fewer than 16 bytes) with PKCS#7 and encrypts it: always one block.
    fn last(self, tail: &[u8]) -> [u8; BLOCK] {
        let mut block = [0u8; BLOCK];
        block[..tail.len()].copy_from_slice(tail);
        let padded = match self {
            CbcEnc::A128(c) => c
                .encrypt_padded_mut::<Pkcs7>(&mut block, tail.len())
                .map(|b| b.len()),
            CbcEnc::A192(c) => c
                .encrypt_padded_mut::<Pkcs7>(&mut block, tail.len())
                .map(|b| b.len()),
            CbcEnc::A256(c) => c
                .encrypt_padded_mut::<Pkcs7>(&mut block, tail.len())
                .map(|b| b.len()),
        };
        debug_assert_eq!(padded.ok(), Some(BLOCK));
        block
    }
}

impl CbcDec {
    fn blocks(&mut self, data: &mut [u8]) {
        for block in each_block(data) {
            match self {
                CbcDec::A128(c) => c.decrypt_block_mut(block),
                CbcDec::A192(c) => c.decrypt_block_mut(block),
                CbcDec::A256(c) => c.decrypt_block_mut(block),
            }
        }
    }
}

const CHUNK: usize = 64 * 1024;

/// Reads a whole CTR stream under `from`, and writes it CBC-encrypted (PKCS#7) under `to`.
/// The plaintext exists only in a 64 KiB buffer in memory, which is zeroized afterwards.
/// Returns the bytes written.
pub fn ctr_to_cbc(
    from: &CipherSpec,
    input: &mut impl Read,
    to: &CipherSpec,
    output: &mut impl Write,
) -> io::Result<u64> {
    let mut ctr = from.ctr();
    let mut cbc = to.cbc_encryptor();
    let mut buf = Zeroizing::new(vec![0u8; CHUNK]);
    let mut held = 0; // bytes in buf not yet encrypted (always < CHUNK)
    let mut written = 0u64;
    loop {
        let n = input.read(&mut buf[held..])?;
        if n == 0 {
            break;
        }
        ctr.apply(&mut buf[held..held + n]);
        held += n;
        let whole = held / BLOCK * BLOCK;
        if held == CHUNK {
            cbc.blocks(&mut buf[..whole]);
            output.write_all(&buf[..whole])?;
            written += whole as u64;
            held = 0;
        }
    }
    let whole = held / BLOCK * BLOCK;
    cbc.blocks(&mut buf[..whole]);
    output.write_all(&buf[..whole])?;
    let last = cbc.last(&buf[whole..held]);
    output.write_all(&last)?;
    Ok(written + whole as u64 + BLOCK as u64)
}

/// Converts one chunk of a CTR stream under `from` into CBC under `to`, in place: `buf[..n]`
/// holds the CTR bytes at stream offset `offset` (a multiple of 16), `chain` is the CBC block
/// before them (the IV at offset 0). Unless `last`, `n` is a multiple of 16 and the output is
/// `n` bytes; the `last` chunk is padded (PKCS#7) and its output is `n` rounded down to a block
/// plus one block, so `buf` must have 16 bytes of room past `n`. Returns the output length.
/// The plaintext exists only in `buf`, between the two steps.
pub(crate) fn ctr_chunk_to_cbc(
    from: &CipherSpec,
    offset: u64,
    to: &CipherSpec,
    chain: &[u8; BLOCK],
    buf: &mut [u8],
    n: usize,
    last: bool,
) -> usize {
    debug_assert!(offset.is_multiple_of(BLOCK as u64) && (last || n.is_multiple_of(BLOCK)));
    let mut ctr = from.ctr();
    ctr.seek(offset);
    ctr.apply(&mut buf[..n]);
    let mut cbc = to.cbc_encryptor_from(chain);
    let whole = n / BLOCK * BLOCK;
    cbc.blocks(&mut buf[..whole]);
    if !last {
        return whole;
    }
    let mut tail = [0u8; BLOCK];
    tail[..n - whole].copy_from_slice(&buf[whole..n]);
    let block = cbc.last(&tail[..n - whole]);
    tail.zeroize();
    buf[whole..whole + BLOCK].copy_from_slice(&block);
    whole + BLOCK
}

/// Decrypts a whole encrypted recording (or any `openssl enc` output of the same mode) from
/// `input` to `output`, streaming; returns the plaintext length. A CBC stream whose length is
/// not a whole number of blocks, or whose padding is wrong (wrong key or IV), is an error.
pub fn decrypt_stream(
    spec: &CipherSpec,
    input: &mut impl Read,
    output: &mut impl Write,
) -> io::Result<u64> {
    let mut buf = Zeroizing::new(vec![0u8; CHUNK + BLOCK]);
    let mut total = 0u64;
    match spec.mode {
        Mode::Ctr => {
            let mut ctr = spec.ctr();
            loop {
                let n = input.read(&mut buf[..CHUNK])?;
                if n == 0 {
                    return Ok(total);
                }
                ctr.apply(&mut buf[..n]);
                output.write_all(&buf[..n])?;
                total += n as u64;
            }
        }
        Mode::Cbc => {
            let mut cbc = spec.cbc_decryptor();
            let mut held = 0; // decrypted-or-not bytes kept back: the last block is padding
            let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_owned());
            loop {
                let n = input.read(&mut buf[held..])?;
                held += n;
                let at_end = n == 0;
                if !at_end && held < buf.len() {
                    continue;
                }
                if held % BLOCK != 0 && at_end {
                    return Err(bad("not a CBC stream: its length is not a multiple of 16"));
                }
                // Keep the last whole block back until the end: it carries the padding.
                let ready = if at_end {
                    held
                } else {
                    held / BLOCK * BLOCK - BLOCK
                };
                if at_end && held == 0 {
                    return Err(bad("not a CBC stream: it is empty"));
                }
                let whole = ready / BLOCK * BLOCK;
                cbc.blocks(&mut buf[..whole]);
                if at_end {
                    let pad = buf[whole - 1] as usize;
                    let valid = (1..=BLOCK).contains(&pad)
                        && buf[whole - pad..whole].iter().all(|&b| b as usize == pad);
                    if !valid {
                        return Err(bad(
                            "bad CBC padding: wrong key or IV, or not an aescbc file",
                        ));
                    }
                    output.write_all(&buf[..whole - pad])?;
                    return Ok(total + (whole - pad) as u64);
                }
                output.write_all(&buf[..whole])?;
                total += whole as u64;
                buf.copy_within(whole..held, 0);
                held -= whole;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // NIST SP 800-38A, appendix F: F.2.1/F.2.5 (CBC) and F.5.1/F.5.5 (CTR).
    const PLAIN: &str = "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51\
                         30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710";
    const KEY128: &str = "2b7e151628aed2a6abf7158809cf4f3c";
    const KEY256: &str = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4";
    const CBC_IV: &str = "000102030405060708090a0b0c0d0e0f";
    const CTR_IV: &str = "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";

    fn hex(s: &str) -> Vec<u8> {
        decode_hex("key", s).unwrap().to_vec()
    }

    #[test]
    fn nist_cbc_known_answers() {
        for (key, want) in [
            (
                KEY128,
                "7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2\
                      73bed6b8e3c1743b7116e69e222295163ff1caa1681fac09120eca307586e1a7",
            ),
            (
                KEY256,
                "f58c4c04d6e5f1ba779eabfb5f7bfbd69cfc4e967edb808d679f777bc6702c7d\
                      39f23369a9d9bacfa530e26304231461b2eb05e2c39be9fcda6c19078c6a9d1b",
            ),
        ] {
            let spec = CipherSpec::from_hex(Mode::Cbc, key, CBC_IV).unwrap();
            let mut data = hex(PLAIN);
            spec.cbc_encryptor().blocks(&mut data);
            assert_eq!(data, hex(want));
            // Through the streaming path: same blocks, plus one block of PKCS#7 padding.
            let ephemeral = CipherSpec::ephemeral_ctr().unwrap();
            let mut ctr_stream = hex(PLAIN);
            ephemeral.ctr().apply(&mut ctr_stream);
            let mut out = Vec::new();
            let n = ctr_to_cbc(&ephemeral, &mut &ctr_stream[..], &spec, &mut out).unwrap();
            assert_eq!(n, 80);
            assert_eq!(&out[..64], &hex(want)[..]);
            let mut back = Vec::new();
            decrypt_stream(&spec, &mut &out[..], &mut back).unwrap();
            assert_eq!(back, hex(PLAIN));
        }
    }

    #[test]
    fn nist_ctr_known_answers() {
        for (key, want) in [
            (
                KEY128,
                "874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff\
                      5ae4df3edbd5d35e5b4f09020db03eab1e031dda2fbe03d1792170a0f3009cee",
            ),
            (
                KEY256,
                "601ec313775789a5b7a7f504bbf3d228f443e3ca4d62b59aca84e990cacaf5c5\
                      2b0930daa23de94ce87017ba2d84988ddfc9c58db67aada613c2dd08457941a6",
            ),
        ] {
            let spec = CipherSpec::from_hex(Mode::Ctr, key, CTR_IV).unwrap();
            let mut data = hex(PLAIN);
            spec.ctr().apply(&mut data);
            assert_eq!(data, hex(want));
            // Seeking: re-encrypting bytes 20..37 alone gives the same ciphertext.
            let mut part = hex(PLAIN)[20..37].to_vec();
            let mut ctr = spec.ctr();
            ctr.seek(20);
            ctr.apply(&mut part);
            assert_eq!(part, hex(want)[20..37]);
        }
    }

    #[test]
    fn cbc_round_trips_every_length_across_chunks() {
        let spec = CipherSpec::from_hex(Mode::Cbc, KEY128, CBC_IV).unwrap();
        let eph = CipherSpec::ephemeral_ctr().unwrap();
        for len in [
            0usize,
            1,
            15,
            16,
            17,
            CHUNK - 1,
            CHUNK,
            CHUNK + 1,
            3 * CHUNK + 5,
        ] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let mut stream = plain.clone();
            eph.ctr().apply(&mut stream);
            let mut enc = Vec::new();
            ctr_to_cbc(&eph, &mut &stream[..], &spec, &mut enc).unwrap();
            assert_eq!(enc.len(), (len / 16 + 1) * 16);
            let mut dec = Vec::new();
            assert_eq!(
                decrypt_stream(&spec, &mut &enc[..], &mut dec).unwrap(),
                len as u64
            );
            assert_eq!(dec, plain, "len {len}");
        }
        // A wrong key fails on the padding (almost surely) rather than returning garbage.
        let wrong = CipherSpec::from_hex(Mode::Cbc, KEY256, CBC_IV).unwrap();
        // A fixed CTR key, not the random `eph`: the wrong key's plaintext must be the same on
        // every run (with a random one, its padding is valid about once in 256 runs).
        let fixed = CipherSpec::from_hex(Mode::Ctr, KEY256, CBC_IV).unwrap();
        let mut enc = Vec::new();
        ctr_to_cbc(&fixed, &mut &[0u8; 100][..], &spec, &mut enc).unwrap();
        let err = decrypt_stream(&wrong, &mut &enc[..], &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("padding"));
        let err = decrypt_stream(&spec, &mut &enc[..99], &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("multiple of 16"));
    }

    #[test]
    fn bad_keys_and_ivs_are_named() {
        let e = CipherSpec::from_hex(Mode::Ctr, "abc", CTR_IV).unwrap_err();
        assert_eq!((e.field, e.message.contains("odd")), ("key", true));
        let e = CipherSpec::from_hex(Mode::Ctr, "zz", CTR_IV).unwrap_err();
        assert!(e.message.contains("not hex"));
        let e = CipherSpec::from_hex(Mode::Ctr, "00112233445566778899aabbccddeeff00", CTR_IV)
            .unwrap_err();
        assert!(e.message.contains("136 bits"));
        let e = CipherSpec::from_hex(Mode::Ctr, KEY128, "00").unwrap_err();
        assert_eq!(e.field, "initialisation_vector");
        // Upper case works; the secret is never printed.
        let s = CipherSpec::from_hex(Mode::Cbc, &KEY128.to_uppercase(), CBC_IV).unwrap();
        assert_eq!(s.key_bits(), 128);
        assert!(!format!("{s:?}").contains("2b7e"));
    }
}
