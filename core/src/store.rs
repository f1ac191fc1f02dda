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
//! false. A third, [`PART_XATTR`], is set when the `.part` is created: it is what lets recovery
//! tell an encrypted (CTR) `.part` from any other file whose first bytes are not a WAV header
//! (without the key, the ciphertext itself proves nothing).
//!
//! Nothing is ever written through a symbolic link below the root: each directory under it is
//! created with `mkdirat` and opened with `openat(O_DIRECTORY | O_NOFOLLOW)` relative to its
//! parent, and the `.part` with `openat(O_CREAT | O_EXCL | O_NOFOLLOW)` relative to its day
//! directory, so a planted link (a day directory pointing at `/etc`, say) makes the recording
//! fail with "is a symbolic link" instead of writing elsewhere. The root itself may be a link:
//! the host chose it.

use std::ffi::{CStr, CString};
use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
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
        let (day_fd, created_dirs) = create_dirs(&self.root, &dir)?;
        let final_path = dir.join(&name);
        let part_name = format!(
            "{name}{}",
            if aescbc {
                AESCBC_PART_SUFFIX
            } else {
                PART_SUFFIX
            }
        );
        let part_path = dir.join(&part_name);
        // Created and locked under a name recovery never looks at, then renamed: a `.part`
        // is locked from the moment it exists, so recovery can never take a live one.
        let fresh = c_name(&format!(".{name}.new"))?;
        let file = create_private_at(&day_fd, &fresh).map_err(|e| named(&dir, e))?;
        // Marks the file as callrec's (see the module docs); a filesystem without user
        // xattrs keeps no mark, and recovery then goes by the name (crate::recover).
        let _ = set_xattr(&file, PART_XATTR, b"1");
        let part = c_name(&part_name)?;
        if let Err(e) = try_lock(&file).and_then(|_| rename_at(&day_fd, &fresh, &part)) {
            unlink_at(&day_fd, &fresh);
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
/// The extended attribute marking a `.part` as created by callrec's store (value `1`).
pub const PART_XATTR: &CStr = c"user.callrec.part";
/// Set to `"2"` on a two-leg stereo recording's `.part` (DESIGN §13): recovery needs the channel
/// count to fix an encrypted (CTR) `.part`'s header without the key (its `fact` chunk counts
/// sample frames). Absent means one channel.
pub const CHANNELS_XATTR: &CStr = c"user.callrec.channels";

/// Whether `name` (a file name, no directory) is a recording's final name as [`Store::create`]
/// makes it: `HH_MM_SS_<16 lower-case hex>.<5 digits>.wav`.
pub fn is_recording_name(name: &str) -> bool {
    let b = name.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    b.len() == 35
        && digits(0..2)
        && b[2] == b'_'
        && digits(3..5)
        && b[5] == b'_'
        && digits(6..8)
        && b[8] == b'_'
        && b[9..25]
            .iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
        && b[25] == b'.'
        && digits(26..31)
        && &b[31..] == b".wav"
}

/// Whether the filesystem holding `file` keeps user extended attributes (false only when it
/// says it does not: ENOTSUP).
pub(crate) fn keeps_xattrs(file: &File) -> bool {
    // SAFETY: the name is NUL-terminated; a NULL buffer of size 0 asks only for the size; the
    // descriptor is open for as long as `file` is borrowed.
    let r = unsafe {
        libc::fgetxattr(
            file.as_raw_fd(),
            PART_XATTR.as_ptr(),
            std::ptr::null_mut(),
            0,
        )
    };
    r >= 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ENOTSUP)
}

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

/// `path: error`, for errors about a path the caller did not name.
fn named(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// One path component as a C string.
fn c_name(name: &str) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a name"))
}

/// Opens directory `name` in `parent` without following a symbolic link; a link is refused
/// with an error that says so.
fn open_dir_at(parent: &OwnedFd, name: &CStr, path: &Path) -> io::Result<OwnedFd> {
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: `parent` is an open directory descriptor and `name` is NUL-terminated.
    let fd = unsafe { libc::openat(parent.as_raw_fd(), name.as_ptr(), flags) };
    if fd >= 0 {
        // SAFETY: `fd` was just returned by openat and is owned by nobody else.
        return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    let e = io::Error::last_os_error();
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if is_link {
        return Err(io::Error::other(format!(
            "{} is a symbolic link (the store never writes through one)",
            path.display()
        )));
    }
    Err(named(path, e))
}

/// Creates `dir` and its missing parents below `root` (0700), never through a symbolic link;
/// returns `dir`, open, and the directories created, deepest first.
fn create_dirs(root: &Path, dir: &Path) -> io::Result<(OwnedFd, Vec<PathBuf>)> {
    let below = dir
        .strip_prefix(root)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "outside the store"))?;
    let c_root = CString::new(root.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in the store path"))?;
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
    // SAFETY: `c_root` is NUL-terminated.
    let fd = unsafe { libc::open(c_root.as_ptr(), flags) };
    if fd < 0 {
        return Err(named(root, io::Error::last_os_error()));
    }
    // SAFETY: `fd` was just returned by open and is owned by nobody else.
    let mut at = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut path = root.to_path_buf();
    let mut created = Vec::new();
    for component in below.components() {
        path.push(component);
        let name = CString::new(component.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a name"))?;
        at = match open_dir_at(&at, &name, &path) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // SAFETY: `at` is an open directory descriptor and `name` is NUL-terminated.
                let r = unsafe { libc::mkdirat(at.as_raw_fd(), name.as_ptr(), 0o700) };
                if r == 0 {
                    created.push(path.clone());
                } else {
                    // EEXIST: another recording's thread made it meanwhile.
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::AlreadyExists {
                        return Err(named(&path, e));
                    }
                }
                open_dir_at(&at, &name, &path)?
            }
            Err(e) => return Err(e),
        };
    }
    created.reverse();
    Ok((at, created))
}

/// Creates file `name` in `dir` (0600), never through a symbolic link and never an existing
/// file.
fn create_private_at(dir: &OwnedFd, name: &CStr) -> io::Result<File> {
    let flags = libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: `dir` is an open directory descriptor, `name` is NUL-terminated, and the mode
    // is passed as the variadic argument O_CREAT needs.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags, 0o600 as libc::c_uint) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by openat and is owned by nobody else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Renames `from` to `to`, both in `dir`.
fn rename_at(dir: &OwnedFd, from: &CStr, to: &CStr) -> io::Result<()> {
    // SAFETY: `dir` is an open directory descriptor and both names are NUL-terminated.
    let r = unsafe { libc::renameat(dir.as_raw_fd(), from.as_ptr(), dir.as_raw_fd(), to.as_ptr()) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Removes `name` from `dir`, best effort (cleanup after a failure).
fn unlink_at(dir: &OwnedFd, name: &CStr) {
    // SAFETY: `dir` is an open directory descriptor and `name` is NUL-terminated.
    unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) };
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

    #[test]
    fn recording_names_are_recognised_exactly() {
        assert!(is_recording_name("14_35_03_04f01fb92e8913a8.62100.wav"));
        for bad in [
            "g.wav",
            "14_35_03_04F01FB92E8913A8.62100.wav",
            "14_35_03_04f01fb92e8913a.62100.wav",
            "14_35_03_04f01fb92e8913a8.6210.wav",
            "14-35_03_04f01fb92e8913a8.62100.wav",
            "14_35_03_04f01fb92e8913a8.62100.wax",
            "14_35_03_04f01fb92e8913a8.62100.wav.part",
            "",
        ] {
            assert!(!is_recording_name(bad), "{bad}");
        }
    }

    /// Issue 19 (reproduction 12): a symbolic link anywhere below the root is refused, and
    /// nothing is written where it points.
    #[test]
    fn never_writes_through_a_symlink() {
        let tmp = std::env::temp_dir().join(format!("callrec-store-link-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let elsewhere = tmp.join("elsewhere");
        std::fs::create_dir_all(&elsewhere).unwrap();
        let when = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_795_444_503);
        for link in [
            "rest_api",
            "rest_api/recordings/2026",
            "rest_api/recordings/2026/11/23",
        ] {
            let root = tmp.join(link.replace('/', "-"));
            let at = root.join(link);
            std::fs::create_dir_all(at.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(&elsewhere, &at).unwrap();
            let store = Store::open(&root).unwrap();
            let err = store.create(when, false).unwrap_err().to_string();
            assert!(err.contains("is a symbolic link"), "{link}: {err}");
            assert!(err.contains(at.to_str().unwrap()), "{link}: {err}");
            assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0, "{link}");
        }
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
