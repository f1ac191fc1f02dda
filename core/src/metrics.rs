//! The engine's counters: a leaf module (it imports nothing of callrec), so the recorder, the
//! writer and the engine all update the same counters without importing each other.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters the engine keeps (all relaxed atomics, readable at any time).
#[derive(Debug, Default)]
pub struct EngineMetrics {
    frames_dropped: AtomicU64,
    bytes_written: AtomicU64,
    recordings_started: AtomicU64,
    recordings_finished: AtomicU64,
    write_errors: AtomicU64,
    recordings_recovered: AtomicU64,
    orphans_kept: AtomicU64,
    cbc_key_iv_reused: AtomicU64,
}

/// A snapshot of the engine's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Frames lost to full rings, over all recordings.
    pub frames_dropped: u64,
    /// Audio bytes written to files.
    pub bytes_written: u64,
    /// Recordings started.
    pub recordings_started: u64,
    /// Recordings finalized (including failed ones).
    pub recordings_finished: u64,
    /// Recordings that failed to write or finalize.
    pub write_errors: u64,
    /// Orphaned `.part` files of a crashed process that this engine finalized.
    pub recordings_recovered: u64,
    /// Orphaned `.part` files this engine could not finalize alone (an `aescbc` one needs the
    /// user's key): kept on disk and listed by `Engine::kept_orphans`, never deleted.
    pub orphans_kept: u64,
    /// `aescbc` recordings whose key and IV this engine had already used (allowed: CBC with a
    /// reused IV only shows which files share a prefix, but a host should not do it). `aesctr`
    /// reuse is refused instead.
    pub cbc_key_iv_reused: u64,
}

impl EngineMetrics {
    pub(crate) fn add_frames_dropped(&self, n: u64) {
        self.frames_dropped.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn add_bytes_written(&self, n: u64) {
        self.bytes_written.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn add_write_error(&self) {
        self.write_errors.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn start_recording(&self) {
        self.recordings_started.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn add_recovered(&self) {
        self.recordings_recovered.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn add_orphan_kept(&self) {
        self.orphans_kept.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn add_cbc_key_iv_reused(&self) {
        self.cbc_key_iv_reused.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn finish_recording(&self) {
        self.recordings_finished.fetch_add(1, Ordering::Relaxed);
    }
    /// The counters now.
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            frames_dropped: self.frames_dropped.load(Ordering::Relaxed),
            bytes_written: self.bytes_written.load(Ordering::Relaxed),
            recordings_started: self.recordings_started.load(Ordering::Relaxed),
            recordings_finished: self.recordings_finished.load(Ordering::Relaxed),
            write_errors: self.write_errors.load(Ordering::Relaxed),
            recordings_recovered: self.recordings_recovered.load(Ordering::Relaxed),
            orphans_kept: self.orphans_kept.load(Ordering::Relaxed),
            cbc_key_iv_reused: self.cbc_key_iv_reused.load(Ordering::Relaxed),
        }
    }
}
