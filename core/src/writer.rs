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
//! which is why it does not run on the writers. A write error stops the recording with `error`,
//! removes the `.part` file and sends *finished* with reason `error` and no *available*.

use crate::cipher::{ctr_to_cbc, CipherSpec};
use crate::g711::{transcode_into, Codec};
use crate::metrics::EngineMetrics;
use crate::result::{Event, EventKind, Reason, RecordingResult};
use crate::session::SessionShared;
use crate::store::RecordingPaths;
use crate::wav::WavFile;
use crossbeam_channel::{Receiver, Sender};
use rtrb::Consumer;
use std::fs::File;
use std::path::PathBuf;
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
    /// For `aescbc`: the ephemeral CTR spec of the `.part` file and the user's CBC spec.
    pub(crate) reencrypt: Option<(CipherSpec, CipherSpec)>,
}

impl WriterSession {
    /// Moves everything in the ring to the file. On a write error the recording stops with
    /// `error`; the ring is still emptied so the real-time side never sees it full.
    fn drain(&mut self, scratch: &mut [u8], metrics: &EngineMetrics) {
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
    }

    fn fail(&mut self, metrics: &EngineMetrics) {
        self.failed = true;
        self.shared.stop(Reason::Error);
        metrics.add_write_error();
    }

    /// Finalizes the file and sends *finished*; returns the work left for the sync thread.
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
            reencrypt,
            ..
        } = self;
        let result = |reason, samples| RecordingResult {
            id,
            filename: paths.filename.clone(),
            file_available: false,
            contains_sound: shared.contains_sound(),
            samples,
            reason,
            barge_in_digit: shared.barge_in_digit(),
            frames_dropped: shared.frames_dropped(),
            publish_error: None,
        };
        let finalized = if failed {
            None
        } else {
            wav.finalize(shared.keep_bytes())
                .and_then(|(file, samples)| match &reencrypt {
                    None => {
                        std::fs::rename(&paths.part_path, &paths.final_path)?;
                        Ok((file, samples))
                    }
                    Some((ephemeral, cbc)) => {
                        let file = reencrypt_cbc(file, ephemeral, cbc, &paths)?;
                        Ok((file, samples))
                    }
                })
                .map_err(|_| metrics.add_write_error())
                .ok()
        };
        metrics.finish_recording();
        let Some((file, samples)) = finalized else {
            let _ = std::fs::remove_file(&paths.part_path);
            let _ = std::fs::remove_file(paths.cbc_part_path());
            let _ = events.send(Event {
                kind: EventKind::Finished,
                result: result(Reason::Error, 0),
            });
            return None;
        };
        let result = result(reason, samples);
        let _ = events.send(Event {
            kind: EventKind::Finished,
            result: result.clone(),
        });
        Some(SyncJob {
            file,
            dir: paths
                .final_path
                .parent()
                .map(PathBuf::from)
                .unwrap_or_default(),
            created_dirs: paths.created_dirs,
            result,
        })
    }
}

/// Turns the finalized ephemeral-CTR `.part` into the user's CBC file at its final name:
/// decrypt and re-encrypt in memory into `<name>.cbc.part` (0600), remove the `.part`, rename.
fn reencrypt_cbc(
    mut part: File,
    ephemeral: &CipherSpec,
    cbc: &CipherSpec,
    paths: &RecordingPaths,
) -> std::io::Result<File> {
    use std::io::{Seek, SeekFrom, Write};
    let mut out = crate::store::create_private(&paths.cbc_part_path())?;
    part.seek(SeekFrom::Start(0))?;
    ctr_to_cbc(ephemeral, &mut std::io::BufReader::new(part), cbc, &mut out)?;
    out.flush()?;
    std::fs::remove_file(&paths.part_path)?;
    std::fs::rename(paths.cbc_part_path(), &paths.final_path)?;
    Ok(out)
}

/// A finished file waiting to be made durable.
pub(crate) struct SyncJob {
    file: File,
    dir: PathBuf,
    created_dirs: Vec<PathBuf>,
    result: RecordingResult,
}

/// Jobs one sync thread takes at once (the rest stay queued for the others).
const MAX_SYNC_BATCH: usize = 64;

/// Makes a batch of finished files durable and sends their *available* events: every file is
/// fsynced, then every directory they are in (and each directory created for one, in its
/// parent) once for the whole batch. Hundreds of calls ending per second mostly share a few
/// directories, so this turns hundreds of directory fsyncs into a few (group commit).
fn sync_batch(batch: Vec<SyncJob>, events: &Sender<Event>) {
    let file_ok: Vec<bool> = batch.iter().map(|j| j.file.sync_all().is_ok()).collect();
    let mut dirs: Vec<&std::path::Path> = Vec::new();
    for (job, _) in batch.iter().zip(&file_ok).filter(|(_, ok)| **ok) {
        let parents = job.created_dirs.iter().filter_map(|d| d.parent());
        for dir in std::iter::once(job.dir.as_path()).chain(parents) {
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
    }
    let failed: Vec<&std::path::Path> = dirs.into_iter().filter(|d| sync_dir(d).is_err()).collect();
    for (job, ok) in batch.iter().zip(file_ok) {
        let parents_ok = || {
            let mut needed = std::iter::once(job.dir.as_path())
                .chain(job.created_dirs.iter().filter_map(|d| d.parent()));
            needed.all(|d| !failed.contains(&d))
        };
        let mut result = job.result.clone();
        if ok && parents_ok() {
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

fn sync_dir(dir: &std::path::Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
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
            if settled.is_some() || session.ring.slots() >= ctx.batch_bytes {
                session.drain(&mut scratch, &ctx.metrics);
            }
            match settled {
                Some(reason) => {
                    let done = sessions.swap_remove(i);
                    if let Some(job) = done.finalize(reason, &ctx.metrics, &ctx.events) {
                        let _ = ctx.sync_jobs.send(job);
                    }
                }
                None => i += 1,
            }
        }
        if closing && sessions.is_empty() {
            return;
        }
        std::thread::sleep(ctx.poll_interval);
    }
}

/// The sync thread's loop; returns when every writer has gone and the queue is empty.
pub(crate) fn run_syncer(jobs: Receiver<SyncJob>, events: Sender<Event>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = Vec::with_capacity(MAX_SYNC_BATCH);
        batch.push(first);
        batch.extend(jobs.try_iter().take(MAX_SYNC_BATCH - 1));
        sync_batch(batch, &events);
    }
}
