//! The non-real-time side: writer threads that drain every session's ring into its file, and the
//! sync thread that makes finished files durable (DESIGN §3, §6).
//!
//! A writer wakes every `poll_interval` (a sleep: the real-time side never signals it, so it
//! never makes a futex call). A session's ring is drained when it holds at least `batch_bytes`
//! (so each file gets few, large writes) or when the recording has settled (stopped, no push in
//! progress: see [`crate::session`]). Draining copies the ring into the writer's scratch buffer,
//! transcoding when the file's law differs from the call's, and appends it to the file in one
//! write. The steady state allocates nothing.
//!
//! A settled recording is finalized: trimmed if asked, header sizes patched, `.part` renamed to
//! its name, *finished* sent; the sync thread then fsyncs the file and its directory (and any
//! directory created for it, with its parent) and sends *available*. fsync can take milliseconds,
//! and an `aescbc` conversion time proportional to the file, which is why neither runs on the
//! writers: an `aescbc` recording is converted to CBC (in place, journaled: see
//! [`crate::convert`]), renamed and reported *finished* by the sync thread.
//!
//! **Nothing written is lost.** A write error (EIO, ENOSPC, EFBIG) stops the recording with
//! `error` and finalizes the audio written before it into a valid file, reported by both events
//! (reason `error`). If even finalizing fails, the `.part` is kept (never deleted) for
//! [`crate::recover`] and *finished* says `error`. Writer and sync threads block SIGXFSZ, so a
//! file-size limit (RLIMIT_FSIZE) gives EFBIG instead of killing the host process. A panic while
//! serving one session finalizes that session as `error`; the others carry on.
//!
//! **Durability reports the truth.** fsync of a file and opening or syncing a directory retry
//! transient failures (EINTR, EAGAIN, EMFILE, ENFILE, ENOMEM) with backoff for a few seconds;
//! the sync thread keeps one open handle per day directory, so at the open-file limit a
//! finished recording still becomes *available*. Only a failure that means the data may not be
//! on disk is reported as `error`.

use crate::cipher::{CipherSpec, EncryptionPlan};
use crate::g711::{transcode_into, Codec};
use crate::metrics::EngineMetrics;
use crate::result::{Event, EventKind, Reason, RecordingResult};
use crate::session::SessionShared;
use crate::store::RecordingPaths;
use crate::wav::WavFile;
use crossbeam_channel::{Receiver, Sender};
use rtrb::Consumer;
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// One recording as the writer sees it.
pub(crate) struct WriterSession {
    pub(crate) shared: Arc<SessionShared>,
    pub(crate) ring: Consumer<u8>,
    pub(crate) wav: WavFile,
    pub(crate) input_codec: Codec,
    pub(crate) file_codec: Codec,
    pub(crate) paths: RecordingPaths,
    pub(crate) id: String,
    pub(crate) failed: bool,
    /// Whether the `.part` carries [`crate::store::SOUND_XATTR`] yet (for recovery).
    pub(crate) sound_marked: bool,
    pub(crate) plan: EncryptionPlan,
    /// A two-leg recording's legs (its `ring` is then unused and empty).
    pub(crate) call: Option<Box<crate::call::CallFeed>>,
}

impl WriterSession {
    /// Moves everything in the ring to the file. On a write error the recording stops with
    /// `error`; the ring is still emptied so the real-time side never sees it full.
    fn drain(&mut self, scratch: &mut [u8], metrics: &EngineMetrics) {
        if let Some(call) = self.call.as_mut() {
            if self.failed {
                call.discard();
                return;
            }
            let settled = self.shared.settled().is_some();
            match call.pump(&mut self.wav, settled) {
                Ok(n) => metrics.add_bytes_written(n),
                Err(_) => {
                    call.discard();
                    self.fail(metrics);
                }
            }
            self.mark_sound();
            return;
        }
        let n = self.ring.slots();
        if n == 0 {
            return;
        }
        let Ok(chunk) = self.ring.read_chunk(n) else {
            return;
        };
        let (first, second) = chunk.as_slices();
        transcode_into(self.input_codec, self.file_codec, first, scratch);
        transcode_into(
            self.input_codec,
            self.file_codec,
            second,
            &mut scratch[first.len()..],
        );
        chunk.commit_all();
        if self.failed {
            return;
        }
        match self.wav.append(&mut scratch[..n]) {
            Ok(()) => metrics.add_bytes_written(n as u64),
            Err(_) => self.fail(metrics),
        }
        self.mark_sound();
    }

    fn mark_sound(&mut self) {
        if !self.sound_marked && self.shared.contains_sound() {
            // Once per recording: recovery after a crash then reports contains_sound truly,
            // even for an encrypted `.part` whose audio it cannot read. No allocation.
            self.sound_marked = true;
            let _ = crate::store::set_xattr(self.wav.file(), crate::store::SOUND_XATTR, b"1");
        }
    }

    fn fail(&mut self, metrics: &EngineMetrics) {
        if !self.failed {
            self.failed = true;
            self.shared.stop(Reason::Error);
            metrics.add_write_error();
        }
    }

    /// Whether the writer should serve this session on this poll.
    fn due(&self, batch_bytes: usize) -> bool {
        match &self.call {
            Some(call) => call.due(batch_bytes),
            None => self.ring.slots() >= batch_bytes,
        }
    }

    /// Finalizes the file and, for plain and CTR, sends *finished*; returns the work left for
    /// the sync thread (for CBC: the conversion, the rename and *finished* too).
    fn finalize(
        self,
        reason: Reason,
        metrics: &EngineMetrics,
        events: &Sender<Event>,
    ) -> Option<SyncJob> {
        let WriterSession {
            shared,
            wav,
            paths,
            id,
            failed,
            plan,
            call,
            ..
        } = self;
        let reason = if failed { Reason::Error } else { reason };
        let mut result = RecordingResult {
            id,
            filename: paths.filename.clone(),
            file_available: false,
            contains_sound: shared.contains_sound(),
            samples: 0,
            reason,
            barge_in_digit: shared.barge_in_digit(),
            frames_dropped: shared.frames_dropped(),
            publish_error: None,
            recovered: false,
            legs: call.as_ref().map(|c| c.result()),
        };
        metrics.finish_recording();
        let mut keep = match &call {
            Some(c) => c.keep_bytes(),
            None => shared.keep_bytes(),
        };
        if failed && plan.is_cbc() {
            // The disk refused more: CBC's padding must fit where the `.part` already reached
            // (and the conversion cuts more if its journal does not fit: crate::convert).
            keep = keep.min(
                wav.data_bytes()
                    .saturating_sub(2 * crate::cipher::BLOCK as u64),
            );
        }
        let finalized = wav.finalize(keep).and_then(|(file, samples)| {
            if !plan.is_cbc() {
                std::fs::rename(&paths.part_path, &paths.final_path)?;
            }
            Ok((file, samples))
        });
        let (file, samples) = match finalized {
            Ok(done) => done,
            Err(_) => {
                // The `.part` stays for recovery: never delete audio that was written.
                if !failed {
                    metrics.add_write_error();
                }
                result.reason = Reason::Error;
                finished(events, &result);
                return None;
            }
        };
        // Per channel: a stereo file's `seconds_duration` is its channels' length (DESIGN §13).
        let channels = call.as_ref().map_or(1, |c| c.channels());
        result.samples = samples / channels;
        let convert = match plan {
            EncryptionPlan::Cbc { user, part } => Some((part, user)),
            _ => {
                finished(events, &result);
                None
            }
        };
        Some(SyncJob {
            file,
            paths,
            result,
            convert,
        })
    }
}

fn finished(events: &Sender<Event>, result: &RecordingResult) {
    let _ = events.send(Event {
        kind: EventKind::Finished,
        result: result.clone(),
    });
}

/// Turns the finalized part-key CTR `.part` into the user's CBC file, in place and journaled
/// ([`crate::convert`]: no second copy, no second file descriptor, a crash at any point leaves
/// a `.part` that `callrec recover` finishes with the key), then renames it to its final name.
fn convert_to_cbc(
    part: File,
    part_spec: &CipherSpec,
    cbc: &CipherSpec,
    paths: &RecordingPaths,
    failed: bool,
) -> io::Result<(File, u64)> {
    let samples = crate::convert::convert_part(
        &part,
        part_spec,
        cbc,
        failed,
        crate::convert::CrashAt::Never,
    )?;
    std::fs::rename(&paths.part_path, &paths.final_path)?;
    Ok((part, samples))
}

/// A finished file waiting to be made durable (and for `aescbc`, converted first).
pub(crate) struct SyncJob {
    file: File,
    paths: RecordingPaths,
    result: RecordingResult,
    /// For `aescbc`: the part key's spec and the user's CBC spec.
    convert: Option<(CipherSpec, CipherSpec)>,
}

/// The sync thread's open directory handles, one per day directory (a handful at most).
#[derive(Default)]
pub(crate) struct DirHandles(HashMap<PathBuf, File>);

impl DirHandles {
    /// fsyncs `dir`, through a handle kept open for the next file in the same directory.
    pub(crate) fn sync(&mut self, dir: &Path) -> io::Result<()> {
        if !self.0.contains_key(dir) {
            if self.0.len() >= 8 {
                self.0.clear(); // a new day: yesterday's handles are done with
            }
            let handle = File::open(dir).or_else(|e| {
                if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
                    // At the open-file limit the kept handles are the ones to give back.
                    self.0.clear();
                }
                retry_transient(|| File::open(dir))
            })?;
            self.0.insert(dir.to_path_buf(), handle);
        }
        let handle = &self.0[dir];
        retry_transient(|| handle.sync_all())
    }
}

/// Runs `op` again, with backoff, while it fails for a reason that passes (an interrupted call,
/// the open-file limit, memory pressure): about 5 s in all before the error is reported.
pub(crate) fn retry_transient<T>(mut op: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    let mut delay = Duration::from_millis(1);
    let mut waited = Duration::ZERO;
    loop {
        match op() {
            Err(e) if is_transient(&e) && waited < Duration::from_secs(5) => {
                std::thread::sleep(delay);
                waited += delay;
                delay = (delay * 2).min(Duration::from_millis(250));
            }
            other => return other,
        }
    }
}

fn is_transient(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Interrupted
        || matches!(
            e.raw_os_error(),
            Some(libc::EINTR | libc::EAGAIN | libc::EMFILE | libc::ENFILE | libc::ENOMEM)
        )
}

/// Jobs one sync thread takes at once (the rest stay queued for the others).
const MAX_SYNC_BATCH: usize = 64;

/// Converts an `aescbc` job to its CBC file and sends its *finished* (plain and CTR jobs were
/// reported by the writer); None when the conversion failed (reported as `error`, `.part` kept).
fn convert(mut job: SyncJob, events: &Sender<Event>, metrics: &EngineMetrics) -> Option<SyncJob> {
    let Some((part_spec, cbc)) = job.convert.take() else {
        return Some(job);
    };
    let failed = job.result.reason == Reason::Error;
    match convert_to_cbc(job.file, &part_spec, &cbc, &job.paths, failed) {
        Ok((f, samples)) => {
            job.file = f;
            job.result.samples = samples; // per channel already
            finished(events, &job.result);
            Some(job)
        }
        Err(_) => {
            // The `.part` is kept: `callrec recover` with the key finishes it.
            metrics.add_write_error();
            job.result.reason = Reason::Error;
            finished(events, &job.result);
            None
        }
    }
}

/// Makes a batch of finished files durable and sends their *available* events: every file is
/// fsynced, then every directory they are in (and each directory created for one, in its
/// parent) once for the whole batch. Hundreds of calls ending per second mostly share a few
/// directories, so this turns hundreds of directory fsyncs into a few (group commit). Each
/// fsync and directory open retries transient failures ([`retry_transient`]); directories are
/// synced through the thread's kept handles ([`DirHandles`]).
fn sync_batch(batch: Vec<SyncJob>, events: &Sender<Event>, dirs: &mut DirHandles) {
    let file_ok: Vec<bool> = batch
        .iter()
        .map(|j| retry_transient(|| j.file.sync_all()).is_ok())
        .collect();
    // The files are closed before any directory is opened: a process at its open-file limit
    // then still has a descriptor for the directory (no extra one is ever needed).
    let batch: Vec<(RecordingPaths, RecordingResult)> =
        batch.into_iter().map(|j| (j.paths, j.result)).collect();
    let dir_of = |(paths, _): &(RecordingPaths, RecordingResult)| {
        paths
            .final_path
            .parent()
            .unwrap_or(Path::new("."))
            .to_path_buf()
    };
    let needed = |job: &(RecordingPaths, RecordingResult)| -> Vec<PathBuf> {
        std::iter::once(dir_of(job))
            .chain(
                job.0
                    .created_dirs
                    .iter()
                    .filter_map(|d| d.parent().map(Path::to_path_buf)),
            )
            .collect()
    };
    let mut todo: Vec<PathBuf> = Vec::new();
    for (job, _) in batch.iter().zip(&file_ok).filter(|(_, ok)| **ok) {
        for dir in needed(job) {
            if !todo.contains(&dir) {
                todo.push(dir);
            }
        }
    }
    let failed: Vec<PathBuf> = todo.into_iter().filter(|d| dirs.sync(d).is_err()).collect();
    for (job, ok) in batch.iter().zip(file_ok) {
        let mut result = job.1.clone();
        if ok && needed(job).iter().all(|d| !failed.contains(d)) {
            result.file_available = true;
        } else {
            result.reason = Reason::Error;
        }
        let _ = events.send(Event {
            kind: EventKind::Available,
            result,
        });
    }
}

/// Blocks SIGXFSZ in the calling thread: a write past RLIMIT_FSIZE then fails with EFBIG (which
/// the writer handles) instead of the signal's default action killing the whole process. The
/// signal stays pending on this thread, harmlessly; the host's own disposition is untouched.
pub(crate) fn block_sigxfsz() {
    // SAFETY: an all-zero sigset_t is a valid value to initialise with sigemptyset.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable sigset_t.
    unsafe { libc::sigemptyset(&mut set) };
    // SAFETY: `set` was initialised by sigemptyset; SIGXFSZ is a valid signal number.
    unsafe { libc::sigaddset(&mut set, libc::SIGXFSZ) };
    // SAFETY: `set` is initialised; a NULL old-set pointer is allowed.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
}

/// What a writer thread needs.
pub(crate) struct WriterContext {
    pub(crate) new_sessions: Receiver<WriterSession>,
    pub(crate) closing: Arc<AtomicBool>,
    pub(crate) metrics: Arc<EngineMetrics>,
    pub(crate) events: Sender<Event>,
    pub(crate) sync_jobs: Sender<SyncJob>,
    pub(crate) poll_interval: Duration,
    pub(crate) batch_bytes: usize,
    pub(crate) ring_bytes: usize,
}

/// A writer thread's loop; returns once the engine is closing and every session is finalized.
pub(crate) fn run_writer(ctx: WriterContext) {
    block_sigxfsz();
    let mut sessions: Vec<WriterSession> = Vec::with_capacity(256);
    let mut scratch = vec![0u8; ctx.ring_bytes];
    loop {
        // Read `closing` before taking new sessions: every session registered before the engine
        // started closing is then in the channel (see `Engine::shutdown`).
        let closing = ctx.closing.load(Ordering::Acquire);
        while let Ok(session) = ctx.new_sessions.try_recv() {
            sessions.push(session);
        }
        let mut i = 0;
        while i < sessions.len() {
            let session = &mut sessions[i];
            if closing {
                session.shared.stop(Reason::Other);
            }
            // Settled is read before the ring, so a settled session's ring is complete.
            let settled = session.shared.settled();
            if settled.is_some() || session.due(ctx.batch_bytes) {
                // A panic serving one session fails that session only (catch_unwind costs
                // nothing until something panics).
                let drained = catch_unwind(AssertUnwindSafe(|| {
                    session.drain(&mut scratch, &ctx.metrics)
                }));
                if drained.is_err() {
                    session.fail(&ctx.metrics);
                }
            }
            match settled {
                Some(reason) => {
                    let done = sessions.swap_remove(i);
                    let filename = done.paths.filename.clone();
                    let finalized = catch_unwind(AssertUnwindSafe(|| {
                        done.finalize(reason, &ctx.metrics, &ctx.events)
                    }));
                    match finalized {
                        Ok(Some(job)) => {
                            let _ = ctx.sync_jobs.send(job);
                        }
                        Ok(None) => {}
                        Err(_) => report_panic(&ctx, filename),
                    }
                }
                _ => i += 1,
            }
        }
        if closing && sessions.is_empty() {
            return;
        }
        std::thread::sleep(ctx.poll_interval);
    }
}

/// A session whose finalize panicked: reported as `error` (its `.part` stays for recovery).
fn report_panic(ctx: &WriterContext, filename: String) {
    ctx.metrics.add_write_error();
    let _ = ctx.events.send(panic_event(EventKind::Finished, filename));
}

/// The event that reports a recording lost to a bug (a panic) rather than to the disk: its
/// name is what is known; every other field says "nothing usable".
fn panic_event(kind: EventKind, filename: String) -> Event {
    Event {
        kind,
        result: RecordingResult {
            id: String::new(),
            filename,
            file_available: false,
            contains_sound: false,
            samples: 0,
            reason: Reason::Error,
            barge_in_digit: None,
            frames_dropped: 0,
            publish_error: None,
            recovered: false,
            legs: None,
        },
    }
}

/// The sync thread's loop; returns when every writer has gone and the queue is empty.
pub(crate) fn run_syncer(
    jobs: Receiver<SyncJob>,
    events: Sender<Event>,
    metrics: Arc<EngineMetrics>,
) {
    block_sigxfsz();
    let mut dirs = DirHandles::default();
    while let Ok(first) = jobs.recv() {
        let mut batch = Vec::with_capacity(MAX_SYNC_BATCH);
        batch.push(first);
        batch.extend(jobs.try_iter().take(MAX_SYNC_BATCH - 1));
        let names: Vec<String> = batch.iter().map(|j| j.result.filename.clone()).collect();
        let done = catch_unwind(AssertUnwindSafe(|| {
            let batch: Vec<SyncJob> = batch
                .into_iter()
                .filter_map(|job| convert(job, &events, &metrics))
                .collect();
            sync_batch(batch, &events, &mut dirs);
        }));
        if done.is_err() {
            // A bug, not a disk: say so for the batch rather than lose its events silently.
            for filename in names {
                metrics.add_write_error();
                let _ = events.send(panic_event(EventKind::Available, filename));
            }
        }
    }
}
