//! Recovery of the `.part` files a crashed process left in a store (DESIGN §6).
//!
//! Every `.part` starts with the open-ended header ([`crate::wav::OPEN_DATA_BYTES`]), so a
//! `.part` is, at every moment, a file that holds all the audio the writer has written (at most
//! one batch, about half a second, behind what was pushed) and whose header can be fixed from
//! the file's length alone:
//!
//! * plain: the header is rewritten with the real sizes (and the RIFF pad byte added);
//! * `aesctr`: the encrypted header is fixed **without the key**, by XOR with
//!   [`crate::wav::header_fix`] (the old and new plain headers differ only in their sizes, and
//!   CTR encrypts by XOR, so the keystream cancels out); an odd length loses its last sample
//!   rather than write an unencryptable pad byte;
//! * `aescbc` (`.aescbc.part`, CTR under the key derived from the user's key): needs the user's
//!   key to become a CBC file, so the engine keeps it and reports it
//!   ([`crate::Engine::kept_orphans`], metric `orphans_kept`); [`recover_aescbc`] (the CLI's
//!   `callrec recover`) finishes it with the key, whatever state a crash left it in, its
//!   conversion to CBC half done included ([`crate::convert`]).
//!
//! [`crate::Engine::new`] starts recovery on its own thread (`callrec-recover`) and returns at
//! once: a store with many days of files never delays the engine's start, and new recordings
//! are never touched, because a `.part` that is still being written is `flock`ed by its writer
//! (see [`crate::store`]) and recovery skips any `.part` it cannot lock. Each recovered file is
//! fsynced with its directory, renamed, and reported through the normal events (*finished*, then
//! *available*) with reason `other` and `"recovered": true`.
//!
//! Recovery rewrites and renames files, so it first makes sure a `.part` is callrec's: its name
//! (on engine start) is the store's (`HH_MM_SS_<16 hex>.<5 digits>.wav` plus the suffix, see
//! [`crate::store::is_recording_name`]), and its first [`HEADER_BYTES`] are the header callrec
//! writes (A-law or µ-law, byte for byte but the sizes), or, when they are not a WAV header,
//! the file carries the store's [`crate::store::PART_XATTR`] mark, which is all that can vouch
//! for an encrypted `.part` without its key (on a filesystem without user xattrs, the store's
//! name does). Anything else is never renamed, rewritten or deleted: engine start reports it
//! as kept (`kept_orphans`, metric `orphans_kept`), [`recover_part`] refuses it
//! (`InvalidInput`). A symbolic link where the store has its `rest_api/recordings` or a day
//! directory is not followed.

use crate::cipher::{CipherSpec, Mode};
use crate::convert::{self, CrashAt};
use crate::g711::Codec;
use crate::metrics::EngineMetrics;
use crate::result::{Event, EventKind, Reason, RecordingResult};
use crate::store::{
    get_xattr, is_recording_name, keeps_xattrs, try_lock, AESCBC_PART_SUFFIX, CHANNELS_XATTR,
    ID_XATTR, PART_SUFFIX, PART_XATTR, RECORDINGS_DIR, SOUND_XATTR,
};
use crate::wav::{self, header_channels, header_fix_channels, HEADER_BYTES, MAX_DATA_BYTES};
use crate::writer::{retry_transient, DirHandles};
use crossbeam_channel::Sender;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The `.cbc.part` copy an `aescbc` conversion wrote before conversion became in place
/// ([`crate::convert`]): recovery still clears one that a crash of such a version left.
const CBC_TEMP_SUFFIX: &str = ".cbc.part";

/// A recording finalized from a `.part`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovered {
    /// The finished file.
    pub path: PathBuf,
    /// Audio samples (bytes) in it.
    pub samples: u64,
    /// The record action's `id`, from the `.part`'s extended attribute ("" when the
    /// filesystem keeps none; see [`crate::store`]).
    pub id: String,
    /// Whether the recording was known to contain sound when the writer last wrote to it.
    pub contains_sound: bool,
}

/// The `id` and `contains_sound` a `.part` carries ([`crate::store::ID_XATTR`],
/// [`crate::store::SOUND_XATTR`]).
fn carried(file: &File) -> (String, bool) {
    let id = get_xattr(file, ID_XATTR)
        .and_then(|v| String::from_utf8(v).ok())
        .unwrap_or_default();
    let sound = get_xattr(file, SOUND_XATTR).is_some_and(|v| v == b"1");
    (id, sound)
}

/// What the engine's recovery thread needs.
pub(crate) struct RecoveryContext {
    pub(crate) root: PathBuf,
    pub(crate) events: Sender<Event>,
    pub(crate) metrics: Arc<EngineMetrics>,
    pub(crate) kept: Arc<Mutex<Vec<PathBuf>>>,
    pub(crate) closing: Arc<AtomicBool>,
}

/// Walks `<root>/rest_api/recordings/YYYY/MM/DD/` and deals with every orphaned `.part`.
pub(crate) fn run_recovery(ctx: RecoveryContext) {
    crate::writer::block_sigxfsz();
    let mut dirs = DirHandles::default();
    let base = ctx.root.join(RECORDINGS_DIR);
    // The store never writes through a link (crate::store), and recovery never follows one.
    let linked = |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink());
    if linked(&ctx.root.join("rest_api")) || linked(&base) {
        return;
    }
    for day in day_dirs(&base) {
        let Ok(entries) = std::fs::read_dir(&day) else {
            continue;
        };
        let mut names: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        names.sort();
        for path in names {
            if ctx.closing.load(Ordering::Acquire) {
                return;
            }
            if !path.to_str().is_some_and(|p| p.ends_with(PART_SUFFIX)) {
                continue; // finished recordings, and `.new` files being created
            }
            if store_named(&path) {
                recover_one(&ctx, &path, &mut dirs);
            } else {
                keep(&ctx, &path); // not a name the store gives: not ours to touch
            }
        }
    }
}

/// Whether `path`'s file name is one the store gives a `.part`: a recording's name followed by
/// `.part`, `.aescbc.part` or (an older version's conversion copy) `.cbc.part`.
fn store_named(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    [AESCBC_PART_SUFFIX, CBC_TEMP_SUFFIX, PART_SUFFIX]
        .iter()
        .any(|suffix| name.strip_suffix(suffix).is_some_and(is_recording_name))
}

/// The directory to sync for a file at `path` (`.` for a bare name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Every `YYYY/MM/DD` directory under `base`, in order.
fn day_dirs(base: &Path) -> Vec<PathBuf> {
    let mut level = vec![base.to_path_buf()];
    for _ in 0..3 {
        let mut next = Vec::new();
        for dir in &level {
            if let Ok(entries) = std::fs::read_dir(dir) {
                next.extend(
                    entries
                        .flatten()
                        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                        .map(|e| e.path()),
                );
            }
        }
        next.sort();
        level = next;
    }
    level
}

fn with_suffix_removed(path: &Path, suffix: &str) -> Option<PathBuf> {
    let s = path.to_str()?;
    s.strip_suffix(suffix).map(PathBuf::from)
}

fn recover_one(ctx: &RecoveryContext, path: &Path, dirs: &mut DirHandles) {
    if let Some(final_path) = with_suffix_removed(path, CBC_TEMP_SUFFIX) {
        // An interrupted CBC conversion: its source `.aescbc.part` is still there (it is
        // removed only after the rename), so this partial copy holds nothing of its own.
        let mut source = final_path.clone().into_os_string();
        source.push(AESCBC_PART_SUFFIX);
        if Path::new(&source).exists() {
            let _ = std::fs::remove_file(path);
        } else {
            keep(ctx, path);
        }
        return;
    }
    if let Some(final_path) = with_suffix_removed(path, AESCBC_PART_SUFFIX) {
        let Ok(file) = OpenOptions::new().read(true).open(path) else {
            return;
        };
        if try_lock(&file).is_err() {
            return; // a live recording
        }
        if final_path.exists() {
            // Converted and renamed; only the removal of the source was missed.
            let _ = std::fs::remove_file(path);
        } else {
            keep(ctx, path);
        }
        return;
    }
    let Some(final_path) = with_suffix_removed(path, PART_SUFFIX) else {
        return;
    };
    let Ok(file) = OpenOptions::new().read(true).write(true).open(path) else {
        return;
    };
    if try_lock(&file).is_err() {
        return; // a live recording
    }
    let recovered = fix_part(&file, true).and_then(|samples| {
        retry_transient(|| file.sync_all())?;
        std::fs::rename(path, &final_path)?;
        dirs.sync(parent_dir(&final_path))?;
        Ok(samples)
    });
    let Ok(samples) = recovered else {
        keep(ctx, path);
        return;
    };
    let (id, contains_sound) = carried(&file);
    ctx.metrics.add_recovered();
    let filename = final_path
        .strip_prefix(&ctx.root)
        .map(|p| format!("/{}", p.display()))
        .unwrap_or_else(|_| final_path.display().to_string());
    let mut result = RecordingResult {
        id,
        filename,
        file_available: false,
        contains_sound,
        samples,
        reason: Reason::Other,
        barge_in_digit: None,
        frames_dropped: 0,
        publish_error: None,
        recovered: true,
        legs: None,
    };
    let _ = ctx.events.send(Event {
        kind: EventKind::Finished,
        result: result.clone(),
    });
    result.file_available = true;
    let _ = ctx.events.send(Event {
        kind: EventKind::Available,
        result,
    });
}

fn keep(ctx: &RecoveryContext, path: &Path) {
    ctx.metrics.add_orphan_kept();
    ctx.kept
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(path.to_path_buf());
}

/// What a `.part`'s first bytes say it is.
enum PartKind {
    /// callrec's plain header, in this law, with this many channels (1, or 2: a two-leg file).
    Plain(Codec, u16),
    /// Encrypted (CTR): not a WAV header, but marked as the store's.
    Ctr,
}

/// Whether `head` is the header callrec writes, whatever its sizes: the one
/// [`wav::header_channels`] makes for the channels and data size it states (mono, or a two-leg
/// recording's stereo).
fn plain_codec(head: &[u8; HEADER_BYTES]) -> Option<(Codec, u16)> {
    let codec = match u16::from_le_bytes([head[20], head[21]]) {
        wav::FORMAT_ALAW => Codec::Alaw,
        wav::FORMAT_ULAW => Codec::Ulaw,
        _ => return None,
    };
    let channels = u16::from_le_bytes([head[22], head[23]]);
    if !(1..=2).contains(&channels) {
        return None;
    }
    let at = HEADER_BYTES - 4;
    let data = u32::from_le_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
    (header_channels(codec, channels, data) == *head).then_some((codec, channels))
}

/// Decides whether `file` (first bytes `head`) is a `.part` of callrec's, before anything is
/// written to it; `store_named`: its name is one the store gives (see the module docs).
fn classify(file: &File, head: &[u8; HEADER_BYTES], store_named: bool) -> io::Result<PartKind> {
    if let Some((codec, channels)) = plain_codec(head) {
        return Ok(PartKind::Plain(codec, channels));
    }
    let marked = get_xattr(file, PART_XATTR).is_some_and(|v| v == b"1");
    if marked || (store_named && !keeps_xattrs(file)) {
        return Ok(PartKind::Ctr);
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        "not a callrec recording: its header is not callrec's and it is not marked as an \
         encrypted .part (left as it was)",
    ))
}

/// Fixes a plain or CTR `.part` in place (header sizes from its length, RIFF pad byte or, for
/// CTR, an odd last sample dropped); returns the audio bytes it holds. A file that is not
/// callrec's ([`classify`]) is refused before anything is written.
fn fix_part(file: &File, store_named: bool) -> io::Result<u64> {
    let len = file.metadata()?.len();
    if len < HEADER_BYTES as u64 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a callrec recording: shorter than a WAV header (left as it was)",
        ));
    }
    let mut head = [0u8; HEADER_BYTES];
    file.read_exact_at(&mut head, 0)?;
    let kind = classify(file, &head, store_named)?;
    let mut data = (len - HEADER_BYTES as u64).min(MAX_DATA_BYTES);
    let channels;
    match kind {
        PartKind::Plain(codec, ch) => {
            channels = ch;
            // A stereo file keeps whole sample frames: an odd trailing byte (half a frame) goes.
            data -= data % u64::from(channels);
            if data % 2 == 1 && file.write_all_at(&[0], len).is_err() {
                data -= 1;
            }
            file.set_len(HEADER_BYTES as u64 + data + data % 2)?;
            file.write_all_at(&header_channels(codec, channels, data as u32), 0)?;
        }
        PartKind::Ctr => {
            // No key: the keystream under the pad byte is unknown, so an odd last sample goes
            // (which also keeps a stereo file's frames whole).
            data -= data % 2;
            file.set_len(HEADER_BYTES as u64 + data)?;
            channels = match get_xattr(file, CHANNELS_XATTR).as_deref() {
                Some(b"2") => 2,
                _ => 1,
            };
            for (h, f) in head
                .iter_mut()
                .zip(header_fix_channels(channels, data as u32))
            {
                *h ^= f;
            }
            file.write_all_at(&head, 0)?;
        }
    }
    // Samples per channel (a stereo file's sample frames).
    Ok(data / u64::from(channels))
}

/// Finalizes an `aescbc` recording's orphaned `.aescbc.part` with the user's key and IV (the
/// record action's `encryption_cipher`), whatever state a crash left it in (recording, waiting
/// for its conversion, converted in part, converted but not renamed): converts it to the user's
/// CBC file in place ([`crate::convert`]: no second copy, no second file descriptor), renames
/// it to the final name (`<name>.wav`) and fsyncs its directory. A wrong key or IV changes
/// nothing (`InvalidInput`).
pub fn recover_aescbc(part_path: &Path, cipher: &CipherSpec) -> io::Result<Recovered> {
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidInput, m.to_owned());
    if cipher.mode() != Mode::Cbc {
        return Err(bad("the cipher must be aescbc"));
    }
    let final_path = with_suffix_removed(part_path, AESCBC_PART_SUFFIX)
        .ok_or_else(|| bad("not an aescbc recording's .aescbc.part file"))?;
    let file = open_orphan(part_path)?;
    let samples = convert::resume(&file, &cipher.part_spec(), cipher, CrashAt::Never)?;
    commit_orphan(&file, part_path, final_path, samples)
}

/// Finalizes one orphaned plain or `aesctr` `.part` (no key needed) at its final name, fsynced
/// with its directory: what an engine start does for each orphan, for a single file.
pub fn recover_part(part_path: &Path) -> io::Result<Recovered> {
    let final_path = with_suffix_removed(part_path, PART_SUFFIX)
        .filter(|p| {
            with_suffix_removed(part_path, AESCBC_PART_SUFFIX).is_none() && p.extension().is_some()
        })
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a plain or aesctr recording's .part file (an .aescbc.part needs the key)",
            )
        })?;
    let file = open_orphan(part_path)?;
    let samples = fix_part(&file, store_named(part_path))?;
    commit_orphan(&file, part_path, final_path, samples)
}

/// Opens an orphaned `.part` for finishing, refusing one a live recording still holds (its
/// writer keeps an exclusive lock on it).
fn open_orphan(part_path: &Path) -> io::Result<File> {
    let file = OpenOptions::new().read(true).write(true).open(part_path)?;
    try_lock(&file).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the file is being written by a live recording",
        )
    })?;
    Ok(file)
}

/// The last steps of finishing an orphan, whatever its cipher: the file made durable, renamed to
/// its final name, that name made durable, and the result the `.part` carried read back.
fn commit_orphan(
    file: &File,
    part_path: &Path,
    final_path: PathBuf,
    samples: u64,
) -> io::Result<Recovered> {
    retry_transient(|| file.sync_all())?;
    std::fs::rename(part_path, &final_path)?;
    DirHandles::default().sync(parent_dir(&final_path))?;
    let (id, contains_sound) = carried(file);
    Ok(Recovered {
        path: final_path,
        samples,
        id,
        contains_sound,
    })
}
