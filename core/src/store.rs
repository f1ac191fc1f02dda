//! The recording store: where files go and what they are called (DESIGN §6).
//!
//! A recording's `filename` is `/rest_api/recordings/YYYY/MM/DD/HH_MM_SS_<16 hex>.<5 digits>.wav`
//! relative to the store root: the UTC start time, 64 random bits from the OS, and the engine's
//! sequence number (mod 100,000). The `id` option never takes part in a path. Directories are
//! created 0700 and files 0600; a file is written as `<name>.part` (`<name>.aescbc.part` for an
//! `aescbc` recording, whose `.part` is CTR under a derived key: see [`crate::cipher`]) and
//! renamed when finished.
//!
//! A recording's `.part` is locked (`flock`, exclusive) by the process writing it for as long as
//! it is open: the lock dies with the process, so a `.part` nobody holds locked is an orphan of a
//! crashed process, which [`crate::recover`] may finalize, and a live one (this engine's or
//! another process's on the same store) is never touched.
//!
//! A `.part` also carries what recovery cannot read from its audio, as extended attributes of
//! the file (no second file, no second descriptor; they stay on the finished file):
//! [`ID_XATTR`], the record action's `id` (set at session start when not empty), and
//! [`SOUND_XATTR`], set by the writer once the recording is known to contain sound. On a
//! filesystem without user extended attributes they are simply absent, and a recovered
//! recording then reports `id` `""` and, unless its plain audio shows sound, `contains_sound`
//! false.

use std::ffi::CStr;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::SystemTime;

/// The prefix of every recording's name inside the store.
pub const RECORDINGS_DIR: &str = "rest_api/recordings";

/// A recording store rooted at a directory.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    sequence: AtomicU32,
}

/// The names of one new recording.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordingPaths {
    /// The `filename` reported in the result (starts with `/rest_api/recordings/`).
    pub filename: String,
    /// Where the finished file goes on disk.
    pub final_path: PathBuf,
    /// Where it is written until finished (`<final>.part`, or `<final>.aescbc.part`).
    pub part_path: PathBuf,
    /// The directories that were created for it, deepest first (to be synced with their parents).
    pub created_dirs: Vec<PathBuf>,
}

impl Store {
    /// A store rooted at `root` (created 0700 if missing).
    pub fn open(root: impl Into<PathBuf>) -> io::Result<Store> {
        let root = root.into();
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&root)?;
        Ok(Store {
            root,
            sequence: AtomicU32::new(0),
        })
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Names a new recording started at `now`, creates its directories and its `.part` file
    /// (0600, must not exist, locked: see the module docs); `aescbc` picks the
    /// `.aescbc.part` suffix.
    pub fn create(&self, now: SystemTime, aescbc: bool) -> io::Result<(RecordingPaths, File)> {
        let t = time::OffsetDateTime::from(now);
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).map_err(|e| io::Error::other(e.to_string()))?;
        let seq = self.sequence.fetch_add(1, Ordering::Relaxed) % 100_000;
        let day = format!("{:04}/{:02}/{:02}", t.year(), t.month() as u8, t.day());
        let name = format!(
            "{:02}_{:02}_{:02}_{:016x}.{seq:05}.wav",
            t.hour(),
            t.minute(),
            t.second(),
            u64::from_be_bytes(random)
        );
        let filename = format!("/{RECORDINGS_DIR}/{day}/{name}");
        let dir = self.root.join(RECORDINGS_DIR).join(&day);
        let created_dirs = create_dirs(&self.root, &dir)?;
        let final_path = dir.join(&name);
        let part_path = dir.join(format!(
            "{name}{}",
            if aescbc {
                AESCBC_PART_SUFFIX
            } else {
                PART_SUFFIX
            }
        ));
        // Created and locked under a name recovery never looks at, then renamed: a `.part`
        // is locked from the moment it exists, so recovery can never take a live one.
        let fresh = dir.join(format!(".{name}.new"));
        let file = create_private(&fresh)?;
        if let Err(e) = try_lock(&file).and_then(|_| std::fs::rename(&fresh, &part_path)) {
            let _ = std::fs::remove_file(&fresh);
            return Err(e);
        }
        Ok((
            RecordingPaths {
                filename,
                final_path,
                part_path,
                created_dirs,
            },
            file,
        ))
    }
}

/// The suffix of a plain or `aesctr` recording being written.
pub const PART_SUFFIX: &str = ".part";
/// The suffix of an `aescbc` recording being written (CTR under the derived part key).
pub const AESCBC_PART_SUFFIX: &str = ".aescbc.part";

/// The extended attribute holding a recording's `id` (UTF-8, at most the option's 1,024 bytes).
pub const ID_XATTR: &CStr = c"user.callrec.id";
/// The extended attribute marking a recording that contains sound (value `1`).
pub const SOUND_XATTR: &CStr = c"user.callrec.sound";

/// Sets extended attribute `name` of `file` to `value` (one system call; no allocation).
pub(crate) fn set_xattr(file: &File, name: &CStr, value: &[u8]) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated, `value` is valid for reads of its length, and the
    // descriptor is open for as long as `file` is borrowed.
    let r = unsafe {
        libc::fsetxattr(
            file.as_raw_fd(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Extended attribute `name` of `file`, if it has one of at most 4 KiB.
pub(crate) fn get_xattr(file: &File, name: &CStr) -> Option<Vec<u8>> {
    let mut value = vec![0u8; 4096];
    // SAFETY: `name` is NUL-terminated, `value` is valid for writes of its length, and the
    // descriptor is open for as long as `file` is borrowed.
    let n = unsafe {
        libc::fgetxattr(
            file.as_raw_fd(),
            name.as_ptr(),
            value.as_mut_ptr().cast(),
            value.len(),
        )
    };
    let n = usize::try_from(n).ok()?;
    value.truncate(n);
    Some(value)
}

/// Takes the exclusive, non-blocking `flock` on `file`: an error (EWOULDBLOCK) means another
/// open file description holds it, i.e. a live writer.
pub fn try_lock(file: &File) -> io::Result<()> {
    // SAFETY: flock on a file descriptor this `File` owns and keeps open for the call.
    let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Creates a new file readable and writable by its owner only (0600); fails if it exists.
pub fn create_private(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// Creates `dir` and its missing parents below `root` (0700); returns those created, deepest first.
fn create_dirs(root: &Path, dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut d = dir;
    while d != root && !d.is_dir() {
        missing.push(d.to_path_buf());
        d = match d.parent() {
            Some(p) => p,
            None => break,
        };
    }
    DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    Ok(missing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn names_have_the_record_action_shape_and_modes() {
        // Removed on drop, whether the test passes or panics; the store itself is created by
        // Store::open, as in use.
        let scratch = tempfile::Builder::new()
            .prefix("callrec-store-")
            .tempdir()
            .unwrap();
        let tmp = scratch.path().join("store");
        let store = Store::open(&tmp).unwrap();
        // 2026-11-23 14:35:03 UTC
        let when = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_795_444_503);
        let (p, _f) = store.create(when, false).unwrap();
        let name = p
            .filename
            .strip_prefix("/rest_api/recordings/2026/11/23/14_35_03_")
            .unwrap();
        let (hex, rest) = name.split_at(16);
        assert!(hex
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(rest, ".00000.wav");
        assert_eq!(p.created_dirs.len(), 5); // rest_api, recordings, 2026, 11, 23
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&p.part_path), 0o600);
        assert_eq!(mode(p.part_path.parent().unwrap()), 0o700);
        let (p2, _f2) = store.create(when, false).unwrap();
        assert!(p2.filename.ends_with(".00001.wav"));
        assert!(p2.created_dirs.is_empty());
        assert_ne!(p.filename, p2.filename);
    }
}
