//! `callrec decrypt`: decrypts a recording (streaming, any size) and proves the result is the
//! recording before reporting success.
//!
//! A wrong key, IV or cipher type decrypts to noise without any error from AES itself (CTR has
//! no padding; CBC's padding check catches most but not all), so the plaintext is checked as a
//! WAV (`callrec::wav::check_plain`): its header before anything is written, and its RIFF and
//! `data` sizes against its length at the end. Anything else is refused with exit status 2 and
//! "wrong key, IV or cipher type".
//!
//! A truncated (or extended) file is refused before any plaintext is written, to stdout too:
//! the header's RIFF size states the plaintext's length, which for an input that is a regular
//! file is known before decrypting (CTR: the ciphertext's length; CBC: a whole number of
//! blocks, 1 to 16 bytes of padding more than the plaintext), so the first
//! [`HEAD_BYTES`] are compared with it before they are released. (From a pipe the length is
//! unknown: the check then comes at the end, and what was written stays written.)
//!
//! `-o OUT` writes only a regular file: an OUT that exists and is anything else (a FIFO, a
//! device, a symbolic link, a directory) is refused (exit 2) and left as it was. The plaintext
//! goes to a new temporary file beside OUT (0600, like recordings; `O_EXCL`, so never through a
//! link) and is renamed to OUT only once checked, so a failure never leaves an OUT behind.

use crate::{DecryptArgs, Failure};
use callrec::cipher::Mode;
use callrec::cipher::{decrypt_stream, CipherSpec};
use callrec::wav::check_plain;
use std::fs::{File, OpenOptions, Permissions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// How much plaintext is held back until its header has been checked.
const HEAD_BYTES: usize = 4096;

/// A reader that remembers whether an error was its own (so it is reported against the input).
struct Input<R> {
    inner: R,
    failed: bool,
}

impl<R: Read> Read for Input<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|_| self.failed = true)
    }
}

/// A writer that holds the first [`HEAD_BYTES`] back until they look like a WAV header, counts
/// everything, and remembers whether an error was the output's own.
struct Output<W> {
    inner: W,
    head: Vec<u8>,
    released: bool,
    total: u64,
    /// The plaintext lengths the input's length allows (inclusive), when it is known.
    expected: Option<(u64, u64)>,
    refused: Option<String>,
    failed: bool,
}

impl<W: Write> Output<W> {
    fn new(inner: W, expected: Option<(u64, u64)>) -> Self {
        Output {
            inner,
            head: Vec::with_capacity(HEAD_BYTES),
            released: false,
            total: 0,
            expected,
            refused: None,
            failed: false,
        }
    }

    /// Checks the header (the first [`HEAD_BYTES`]) before any of it is released: a WAV
    /// header, stating the length the input allows.
    fn check_head(&mut self) -> io::Result<()> {
        if let Err(e) = check_plain(&self.head, None) {
            return Err(self.refuse(e.to_string()));
        }
        let Some((low, high)) = self.expected else {
            return Ok(());
        };
        let riff = u32::from_le_bytes([self.head[4], self.head[5], self.head[6], self.head[7]]);
        let stated = u64::from(riff) + 8;
        if !(low..=high).contains(&stated) {
            return Err(self.refuse(format!(
                "truncated or extended: its header states {stated} bytes, the file holds {}",
                if low == high {
                    format!("{low}")
                } else {
                    format!("{low} to {high}")
                }
            )));
        }
        if let Err(e) = check_plain(&self.head, Some(stated)) {
            return Err(self.refuse(e.to_string()));
        }
        Ok(())
    }

    fn refuse(&mut self, why: String) -> io::Error {
        self.refused = Some(why);
        io::Error::new(io::ErrorKind::InvalidData, "not the recording")
    }

    fn pass(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.inner
            .write_all(bytes)
            .inspect_err(|_| self.failed = true)
    }

    /// Checks the whole plaintext's length against its header and flushes.
    fn finish(mut self) -> Result<W, (Self, io::Error)> {
        if let Err(e) = check_plain(&self.head, Some(self.total)) {
            let err = self.refuse(e.to_string());
            return Err((self, err));
        }
        if !self.released {
            let head = std::mem::take(&mut self.head);
            if let Err(e) = self.pass(&head) {
                return Err((self, e));
            }
        }
        if let Err(e) = self.inner.flush() {
            self.failed = true;
            return Err((self, e));
        }
        Ok(self.inner)
    }
}

impl<W: Write> Write for Output<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.total += buf.len() as u64;
        if self.released {
            self.pass(buf)?;
            return Ok(buf.len());
        }
        let room = HEAD_BYTES - self.head.len();
        let (into_head, rest) = buf.split_at(room.min(buf.len()));
        self.head.extend_from_slice(into_head);
        if self.head.len() == HEAD_BYTES {
            self.check_head()?;
            self.released = true;
            let head = std::mem::take(&mut self.head);
            self.pass(&head)?;
            self.head = head; // kept for the length check at the end
            self.pass(rest)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The wrong-key failure, naming the input.
fn wrong_key(input: &Path, why: &str) -> Failure {
    Failure(
        2,
        format!(
            "{}: wrong key, IV or cipher type, or not an encrypted recording ({why})",
            input.display()
        ),
    )
}

/// The plaintext lengths (inclusive) a ciphertext of `len` bytes can decrypt to; None when
/// no length can (a CBC file that is not a whole number of blocks).
fn plain_lengths(mode: Mode, len: u64) -> Option<(u64, u64)> {
    const BLOCK: u64 = 16;
    match mode {
        Mode::Ctr => Some((len, len)),
        Mode::Cbc if len >= BLOCK && len.is_multiple_of(BLOCK) => Some((len - BLOCK, len - 1)),
        Mode::Cbc => None,
    }
}

/// Decrypts `input` into `output`, classifying any failure by whose it was.
fn decrypt_into<W: Write>(
    spec: &CipherSpec,
    input: &Path,
    output: W,
    output_name: &str,
) -> Result<W, Failure> {
    let file = File::open(input).map_err(|e| Failure(2, format!("{}: {e}", input.display())))?;
    let meta = file
        .metadata()
        .map_err(|e| Failure(2, format!("{}: {e}", input.display())))?;
    let expected = if meta.is_file() {
        let lengths = plain_lengths(spec.mode(), meta.len()).ok_or_else(|| {
            wrong_key(
                input,
                &format!("{} bytes is not a whole number of AES blocks", meta.len()),
            )
        })?;
        Some(lengths)
    } else {
        None // a pipe: checked at the end only
    };
    let mut reader = Input {
        inner: io::BufReader::new(file),
        failed: false,
    };
    let mut writer = Output::new(output, expected);
    let streamed = decrypt_stream(spec, &mut reader, &mut writer);
    let result = match streamed {
        Ok(_) => writer.finish(),
        Err(e) => Err((writer, e)),
    };
    match result {
        Ok(inner) => Ok(inner),
        Err((_, e)) if reader.failed => Err(Failure(1, format!("{}: {e}", input.display()))),
        Err((w, e)) if w.failed => Err(Failure(1, format!("{output_name}: {e}"))),
        Err((w, e)) => Err(wrong_key(
            input,
            &w.refused.unwrap_or_else(|| e.to_string()),
        )),
    }
}

/// `callrec decrypt FILE --type T --key K --iv IV [-o OUT]`.
pub fn run(args: &DecryptArgs) -> Result<(), Failure> {
    let spec = CipherSpec::from_hex(args.mode, &args.key, &args.iv).map_err(|e| {
        let flag = if e.field == "key" { "key" } else { "iv" };
        Failure(2, format!("--{flag}: {}", e.message))
    })?;
    let Some(out) = &args.output else {
        let stdout = io::stdout();
        decrypt_into(&spec, &args.file, BufWriter::new(stdout.lock()), "stdout")?;
        return Ok(());
    };
    refuse_unless_regular(out)?;
    let cannot = |e: io::Error| Failure(1, format!("{}: {e}", out.display()));
    let (part, file) = create_beside(out).map_err(cannot)?;
    // The umask may have taken bits away, never added them; this makes it exactly 0600.
    let file = match file.set_permissions(Permissions::from_mode(0o600)) {
        Ok(()) => file,
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            return Err(cannot(e));
        }
    };
    let name = out.display().to_string();
    let finished = decrypt_into(&spec, &args.file, BufWriter::new(file), &name).and_then(|w| {
        let file = w.into_inner().map_err(|e| cannot(e.into_error()))?;
        file.sync_all().map_err(cannot)?;
        // Again, just before the rename replaces it: OUT may have changed meanwhile.
        refuse_unless_regular(out)?;
        std::fs::rename(&part, out).map_err(cannot)
    });
    if finished.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    finished
}

/// Refuses an `out` that exists and is not a regular file (exit 2, naming what it is).
fn refuse_unless_regular(out: &Path) -> Result<(), Failure> {
    let meta = match std::fs::symlink_metadata(out) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Failure(1, format!("{}: {e}", out.display()))),
    };
    let t = meta.file_type();
    let what = if t.is_file() {
        return Ok(());
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else {
        "a socket"
    };
    Err(Failure(
        2,
        format!(
            "{}: not a regular file ({what}); refusing to replace it",
            out.display()
        ),
    ))
}

/// Creates a new private file beside `out` (same directory, so the rename is atomic), under a
/// name no other run uses: `OUT.<pid>.<nanoseconds>.part`.
fn create_beside(out: &Path) -> io::Result<(PathBuf, File)> {
    let mut attempt = 0u32;
    loop {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let mut name = out.as_os_str().to_owned();
        name.push(format!(".{}.{nanos:09}.part", std::process::id()));
        let part = PathBuf::from(name);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&part)
        {
            Ok(file) => return Ok((part, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 100 => attempt += 1,
            Err(e) => return Err(e),
        }
    }
}
