//! `callrec decrypt`: decrypts a recording (streaming, any size) and proves the result is the
//! recording before reporting success.
//!
//! A wrong key, IV or cipher type decrypts to noise without any error from AES itself (CTR has
//! no padding; CBC's padding check catches most but not all), so the plaintext is checked as a
//! WAV (`callrec::wav::check_plain`): its header before anything is written, and its RIFF and
//! `data` sizes against its length at the end. Anything else is refused with exit status 2 and
//! "wrong key, IV or cipher type". The output is written to `OUT.part` (0600, like recordings)
//! and renamed to OUT only once checked, so a failure never leaves an OUT behind.

use crate::{DecryptArgs, Failure};
use callrec::cipher::{decrypt_stream, CipherSpec};
use callrec::wav::check_plain;
use std::fs::{File, OpenOptions, Permissions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

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
    refused: Option<String>,
    failed: bool,
}

impl<W: Write> Output<W> {
    fn new(inner: W) -> Self {
        Output {
            inner,
            head: Vec::with_capacity(HEAD_BYTES),
            released: false,
            total: 0,
            refused: None,
            failed: false,
        }
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
            if let Err(e) = check_plain(&self.head, None) {
                return Err(self.refuse(e.to_string()));
            }
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

/// Decrypts `input` into `output`, classifying any failure by whose it was.
fn decrypt_into<W: Write>(
    spec: &CipherSpec,
    input: &Path,
    output: W,
    output_name: &str,
) -> Result<W, Failure> {
    let file = File::open(input).map_err(|e| Failure(2, format!("{}: {e}", input.display())))?;
    let mut reader = Input {
        inner: io::BufReader::new(file),
        failed: false,
    };
    let mut writer = Output::new(output);
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
    let mut part = out.clone().into_os_string();
    part.push(".part");
    let part = PathBuf::from(part);
    let cannot = |e: io::Error| Failure(1, format!("{}: {e}", out.display()));
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&part)
        .map_err(cannot)?;
    // An older .part may have had other permissions: the plaintext is as private as a recording.
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
        std::fs::rename(&part, out).map_err(cannot)
    });
    if finished.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    finished
}
