//! Opening a finished recording for download without following any symlink.
//!
//! The name's shape is checked first ([`crate::api::is_recording_path`]); then the name is
//! resolved beneath the store's recordings directory with every symlink refused: one
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`, or, where the kernel has no `openat2`
//! (before 5.6, or a seccomp filter that refuses it), one `openat(O_NOFOLLOW)` per component.
//! A day directory or file planted in the store as a symlink (to `/etc/shadow`, say) is
//! therefore "not found", and no path leaves the store. The file is served from the descriptor
//! opened here, so nothing can be swapped in between the check and the read.

use rustix::fs::{fstat, open, openat, openat2, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;

/// How the name is resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolve {
    /// `openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, falling back to
    /// [`Resolve::PerComponent`] where the kernel refuses `openat2`.
    Openat2,
    /// One `openat(O_NOFOLLOW)` per component (the fallback, selectable for tests).
    PerComponent,
}

/// Opens the regular file `relative` (components separated by `/`, none empty, `.` or `..`)
/// beneath the directory `root`, following no symlink. A symlink anywhere in `relative` is
/// `ELOOP` or `ENOTDIR`; anything but a regular file is `NotFound`.
pub fn open_beneath(root: &Path, relative: &str, how: Resolve) -> io::Result<OwnedFd> {
    if relative
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(io::ErrorKind::InvalidInput.into());
    }
    let dir = open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    // Non-blocking: a FIFO planted in the store must not hang the open.
    let flags =
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let file = match how {
        Resolve::Openat2 => match openat2(
            &dir,
            relative,
            flags,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        ) {
            Err(Errno::NOSYS) | Err(Errno::PERM) => per_component(dir, relative, flags)?,
            opened => opened?,
        },
        Resolve::PerComponent => per_component(dir, relative, flags)?,
    };
    if FileType::from_raw_mode(fstat(&file)?.st_mode) != FileType::RegularFile {
        return Err(io::ErrorKind::NotFound.into());
    }
    Ok(file)
}

fn per_component(dir: OwnedFd, relative: &str, flags: OFlags) -> io::Result<OwnedFd> {
    let mut current = dir;
    let mut parts = relative.split('/').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            return Ok(openat(&current, part, flags, Mode::empty())?);
        }
        current = openat(
            &current,
            part,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
    }
    Err(io::ErrorKind::InvalidInput.into())
}
