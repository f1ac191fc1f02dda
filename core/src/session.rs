//! What the real-time side (the [`crate::Recorder`]) and the writer share about one recording:
//! the SPSC byte ring that carries its audio (rtrb), and a handful of atomics.
//!
//! **Stopping without losing or racing a frame.** A recording stops when one atomic, `state`,
//! leaves `RUNNING`; a compare-and-swap decides the reason, so the first stop wins whoever makes
//! it (the recorder, an abort from any thread, the writer on an I/O error, engine shutdown).
//! The writer may finalize only once no push is half-way through writing the ring. The recorder
//! marks itself `producer_active` *before* it reads `state`; the writer reads `state` *before*
//! `producer_active`. Each side has a barrier between its two accesses, and the pair orders like
//! two SeqCst fences, so either the push sees the stop (and writes nothing), or the writer sees
//! the push active (and waits for the next poll). The push's barrier is the light half of an
//! asymmetric pair ([`crate::barrier`]: a compiler fence), the writer's the heavy half (a
//! `membarrier(2)` call, made only for a recording that has stopped). No
//! side ever blocks, and the real-time side never waits for anything. The mark is an RAII guard
//! ([`Entered`]): it is cleared when the guard drops, also while unwinding from a panic, so a
//! panic in the middle of a push (caught by a host, the C ABI or Python) never leaves the writer
//! waiting forever for a recording to settle.
//!
//! A two-leg recording ([`crate::call`]) has two producers, each with its own mark
//! (`producer_active[leg]`): the same handshake holds for each, and the writer settles the
//! recording only when neither leg is half-way through a push.

use crate::barrier;
use crate::result::Reason;
use crossbeam_utils::CachePadded;
use rtrb::{Consumer, Producer, RingBuffer};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

const RUNNING: u8 = 0;
/// `keep_bytes` value meaning "keep everything" (no trimming).
pub(crate) const KEEP_ALL: u64 = u64::MAX;

/// State shared by a recording's recorder, its handles and its writer.
///
/// `state` sits alone on its cache line: the writer reads it every poll and nobody writes it
/// until the stop, so it stays shared in both cores' caches. Everything the real-time side
/// writes (`producer_active` twice a push, the metadata) is on another line, which the writer
/// reads only once the recording has stopped, so a push never waits for that line to come
/// back from the writer's core.
#[derive(Debug)]
pub(crate) struct SessionShared {
    state: CachePadded<AtomicU8>,
    producer: CachePadded<ProducerSide>,
}

#[derive(Debug)]
struct ProducerSide {
    /// One mark per leg (a one-leg recording uses the first).
    producer_active: [AtomicBool; 2],
    contains_sound: AtomicBool,
    barge_in_digit: AtomicU8,
    keep_bytes: AtomicU64,
    frames_dropped: AtomicU64,
}

impl SessionShared {
    pub(crate) fn new(trim_trailing_silence: bool) -> SessionShared {
        // Before this session's recorder exists, so its pushes see the barriers chosen.
        barrier::init();
        SessionShared {
            state: CachePadded::new(AtomicU8::new(RUNNING)),
            producer: CachePadded::new(ProducerSide {
                producer_active: [AtomicBool::new(false), AtomicBool::new(false)],
                contains_sound: AtomicBool::new(false),
                barge_in_digit: AtomicU8::new(0),
                keep_bytes: AtomicU64::new(if trim_trailing_silence { 0 } else { KEEP_ALL }),
                frames_dropped: AtomicU64::new(0),
            }),
        }
    }

    /// Stops the recording with `reason` unless it already stopped; returns the reason in force.
    pub(crate) fn stop(&self, reason: Reason) -> Reason {
        match self.state.compare_exchange(
            RUNNING,
            reason.code(),
            Ordering::SeqCst,
            Ordering::SeqCst,
        ) {
            Ok(_) => reason,
            Err(code) => Reason::from_code(code).unwrap_or(Reason::Other),
        }
    }

    /// The reason the recording stopped, or None while it runs.
    pub(crate) fn stopped(&self) -> Option<Reason> {
        Reason::from_code(self.state.load(Ordering::SeqCst))
    }

    /// Producer side: marks a push in progress on leg `leg` (0 for a one-leg recording; 0 or
    /// 1 for a two-leg one) until the returned guard drops, and returns the stop reason, if
    /// stopped. The guard does not borrow `self`, so the recorder stays free to change itself
    /// while it lives.
    ///
    /// # Safety
    /// The guard holds a plain pointer to `self` (no reference count: two atomic read-modify-
    /// writes a push saved), so the caller must keep an `Arc` of `self` alive until the guard
    /// drops.
    pub(crate) unsafe fn enter_leg(self: &Arc<Self>, leg: usize) -> (Entered, Option<Reason>) {
        let leg = leg & 1;
        self.producer.producer_active[leg].store(true, Ordering::Relaxed);
        barrier::light();
        (Entered(Arc::as_ptr(self), leg), self.stopped())
    }

    /// Producer side: the push is over; everything it wrote to the ring is published (a
    /// release store suffices: the writer's acquire load that sees `false` then sees the ring
    /// writes before it; only the store that *starts* a push must be ordered before a load).
    fn leave(&self, leg: usize) {
        self.producer.producer_active[leg & 1].store(false, Ordering::Release);
    }

    /// Writer side: the stop reason once the recording stopped *and* no push is in progress, so
    /// the ring holds everything the recording will ever get.
    pub(crate) fn settled(&self) -> Option<Reason> {
        let reason = self.stopped()?;
        if !barrier::heavy() {
            // Impossible once registered (see `barrier::heavy`); if it ever happened, a push
            // might be half-way through, so the recording waits (the next poll tries again)
            // rather than lose its end.
            return None;
        }
        let active = |leg: usize| self.producer.producer_active[leg].load(Ordering::Acquire);
        (!active(0) && !active(1)).then_some(reason)
    }

    pub(crate) fn set_contains_sound(&self) {
        self.producer.contains_sound.store(true, Ordering::Relaxed);
    }

    pub(crate) fn contains_sound(&self) -> bool {
        self.producer.contains_sound.load(Ordering::Relaxed)
    }

    pub(crate) fn set_barge_in_digit(&self, digit: u8) {
        self.producer.barge_in_digit.store(digit, Ordering::Relaxed);
    }

    pub(crate) fn barge_in_digit(&self) -> Option<char> {
        match self.producer.barge_in_digit.load(Ordering::Relaxed) {
            0 => None,
            d => Some(d as char),
        }
    }

    /// Trim point: ring bytes up to the end of the last sound frame.
    pub(crate) fn set_keep_bytes(&self, bytes: u64) {
        self.producer.keep_bytes.store(bytes, Ordering::Relaxed);
    }

    pub(crate) fn keep_bytes(&self) -> u64 {
        self.producer.keep_bytes.load(Ordering::Relaxed)
    }

    pub(crate) fn add_frames_dropped(&self, frames: u64) {
        self.producer
            .frames_dropped
            .fetch_add(frames, Ordering::Relaxed);
    }

    pub(crate) fn frames_dropped(&self) -> u64 {
        self.producer.frames_dropped.load(Ordering::Relaxed)
    }
}

/// A push in progress (see the module docs): dropping it, normally or while unwinding, ends it.
#[must_use = "the push ends when this guard drops"]
pub(crate) struct Entered(*const SessionShared, usize);

impl Drop for Entered {
    fn drop(&mut self) {
        // SAFETY: `SessionShared::enter`'s caller keeps an `Arc` of the state alive until this
        // guard drops, so the pointer is valid and the state is shared (read-only access).
        let shared = unsafe { &*self.0 };
        shared.leave(self.1);
    }
}

/// A new audio ring of `capacity` bytes (G.711: one byte per sample).
pub(crate) fn audio_ring(capacity: usize) -> (Producer<u8>, Consumer<u8>) {
    RingBuffer::new(capacity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_stop_wins() {
        let s = SessionShared::new(false);
        assert_eq!(s.stopped(), None);
        assert_eq!(s.stop(Reason::Aborted), Reason::Aborted);
        assert_eq!(s.stop(Reason::Silence), Reason::Aborted);
        assert_eq!(s.stopped(), Some(Reason::Aborted));
    }

    #[test]
    fn writer_waits_for_an_active_push() {
        let s = Arc::new(SessionShared::new(false));
        // SAFETY: `s` outlives the guard.
        let (entered, reason) = unsafe { s.enter_leg(0) };
        assert_eq!(reason, None);
        s.stop(Reason::Aborted);
        assert_eq!(s.settled(), None);
        drop(entered);
        assert_eq!(s.settled(), Some(Reason::Aborted));
    }

    #[test]
    fn a_panic_mid_push_still_ends_the_push() {
        let s = Arc::new(SessionShared::new(false));
        let caught = std::panic::catch_unwind(|| {
            // SAFETY: `s` outlives the guard.
            let (_entered, _) = unsafe { s.enter_leg(0) };
            panic!("a bug half-way through a push");
        });
        assert!(caught.is_err());
        s.stop(Reason::Other);
        assert_eq!(s.settled(), Some(Reason::Other), "the writer can finalize");
    }
}
