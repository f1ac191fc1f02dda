//! The standalone in-band DTMF detector for C (`callrec_dtmf_*`): for hosts that only want the
//! digits. Thin: it forwards to `callrec::dtmf::DtmfDetector` and queues its events in a fixed
//! array, so `callrec_dtmf_process` is real-time safe.

use crate::handle::Table;
use crate::{callrec_result, codec_arg, to_handle};
use callrec::dtmf::{DtmfDetector, DtmfEvent};
use callrec::Codec;
use std::ffi::c_char;

/// Event kind: a key was confirmed (its tone lasted long enough); `end` is 0.
pub const CALLREC_DTMF_PRESSED: u32 = 1;
/// Event kind: the confirmed key's tone ended; `start` and `end` span it.
pub const CALLREC_DTMF_RELEASED: u32 = 2;
/// Events a detector holds for the host. One call of up to 8000 samples makes at most 80.
const QUEUE: usize = 256;
/// The most events one call of `callrec_dtmf_process` can make (8000 samples, 5 ms blocks, a
/// key confirmed after 5 blocks at the soonest, two events per key).
const PER_CALL: usize = 80;

/// A streaming in-band DTMF detector (ITU-T Q.24). Opaque: the handle is a checked slot number.
pub struct callrec_dtmf {
    _opaque: [u8; 0],
}

/// One detector event. Times are in samples (8000 per second) from the first sample given.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct callrec_dtmf_event {
    /// `CALLREC_DTMF_PRESSED` or `CALLREC_DTMF_RELEASED`.
    pub kind: u32,
    /// `'0'-'9'`, `'*'`, `'#'` or `'A'-'D'`.
    pub digit: c_char,
    /// The tone's first sample (within 5 ms).
    pub start: u64,
    /// One past its last sample (within 5 ms) for `RELEASED`; 0 for `PRESSED`.
    pub end: u64,
}

pub(crate) struct DtmfState {
    codec: Codec,
    detector: DtmfDetector,
    events: EventQueue,
}

/// The events waiting for the host, oldest first (a fixed ring).
struct EventQueue {
    queue: [callrec_dtmf_event; QUEUE],
    head: usize,
    len: usize,
}

impl EventQueue {
    fn push(&mut self, e: DtmfEvent) {
        let event = match e {
            DtmfEvent::Pressed { digit, start } => callrec_dtmf_event {
                kind: CALLREC_DTMF_PRESSED,
                digit: digit as u8 as c_char,
                start,
                end: 0,
            },
            DtmfEvent::Released(s) => callrec_dtmf_event {
                kind: CALLREC_DTMF_RELEASED,
                digit: s.digit as u8 as c_char,
                start: s.start,
                end: s.end,
            },
        };
        // Callers make room first (see PER_CALL), so this never overwrites.
        if self.len < QUEUE {
            self.queue[(self.head + self.len) % QUEUE] = event;
            self.len += 1;
        }
    }

    /// Moves up to `out.len()` queued events to `out`; returns how many.
    fn drain(&mut self, out: &mut [callrec_dtmf_event]) -> usize {
        let n = out.len().min(self.len);
        for slot in out[..n].iter_mut() {
            *slot = self.queue[self.head];
            self.head = (self.head + 1) % QUEUE;
        }
        self.len -= n;
        n
    }
}

pub(crate) static DETECTORS: Table<DtmfState> = Table::new();

/// A new detector for G.711 audio in `codec` (`CALLREC_CODEC_ALAW` or `_ULAW`); free it with
/// `callrec_dtmf_free`. Any thread; allocates.
///
/// # Safety
/// `dtmf_out` must be valid for a write.
#[no_mangle]
pub unsafe extern "C" fn callrec_dtmf_new(
    codec: u32,
    dtmf_out: *mut *mut callrec_dtmf,
) -> callrec_result {
    ffi_panic_boundary! {
        try_out!(dtmf_out);
        let codec = try_ok!(codec_arg(codec));
        let handle = try_ok!(DETECTORS.insert(DtmfState {
            codec,
            detector: DtmfDetector::new(),
            events: EventQueue {
                queue: [callrec_dtmf_event::default(); QUEUE],
                head: 0,
                len: 0,
            },
        }));
        write_out!(dtmf_out, to_handle(handle));
        callrec_result::Ok
    }
}

/// Feeds `len` bytes of G.711 (up to 8000; `audio` may be NULL when `len` is 0) and copies up
/// to `events_cap` events, oldest first, to `events`; `events_len_out` gets how many. Events
/// that do not fit stay queued for the next call (call with `len` 0 to take them). Returns
/// `CALLREC_RESULT_BUFFER_TOO_SMALL` without taking the audio when more than 176 events are
/// still queued. One thread at a time per detector; **real-time safe**.
///
/// # Safety
/// `audio` must be valid for reads of `len` bytes; `events` valid for writes of `events_cap`
/// events (may be NULL when `events_cap` is 0); `events_len_out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn callrec_dtmf_process(
    dtmf: *mut callrec_dtmf,
    audio: *const u8,
    len: usize,
    events: *mut callrec_dtmf_event,
    events_cap: usize,
    events_len_out: *mut usize,
) -> callrec_result {
    ffi_panic_boundary! {
        try_non_null!(dtmf);
        try_out!(events_len_out);
        if events.is_null() && events_cap > 0 {
            return callrec_result::NullParameter;
        }
        if len > callrec::recorder::MAX_PUSH_BYTES {
            return callrec_result::InputTooLong;
        }
        let input = try_slice!(audio, len);
        let mut state = try_ok!(DETECTORS.exclusive(dtmf.addr()));
        let DtmfState { codec, detector, events: queue } = &mut *state;
        if queue.len + PER_CALL > QUEUE && !input.is_empty() {
            return callrec_result::BufferTooSmall;
        }
        detector.process(*codec, input, |e| queue.push(e));
        let out: &mut [callrec_dtmf_event] = if events_cap == 0 {
            &mut []
        } else {
            // SAFETY: the contract: `events` is valid for writes of `events_cap` events.
            unsafe { std::slice::from_raw_parts_mut(events, events_cap) }
        };
        let n = queue.drain(out);
        write_out!(events_len_out, n);
        callrec_result::Ok
    }
}

/// The end of the stream: a key still sounding is released; then, like
/// `callrec_dtmf_process` with no audio, queued events are copied out. The detector starts
/// again at sample 0. One thread at a time per detector; **real-time safe**.
///
/// # Safety
/// As for `callrec_dtmf_process`.
#[no_mangle]
pub unsafe extern "C" fn callrec_dtmf_finish(
    dtmf: *mut callrec_dtmf,
    events: *mut callrec_dtmf_event,
    events_cap: usize,
    events_len_out: *mut usize,
) -> callrec_result {
    ffi_panic_boundary! {
        try_non_null!(dtmf);
        try_out!(events_len_out);
        if events.is_null() && events_cap > 0 {
            return callrec_result::NullParameter;
        }
        let mut state = try_ok!(DETECTORS.exclusive(dtmf.addr()));
        let DtmfState { detector, events: queue, .. } = &mut *state;
        detector.finish(|e| queue.push(e));
        let out: &mut [callrec_dtmf_event] = if events_cap == 0 {
            &mut []
        } else {
            // SAFETY: the contract: `events` is valid for writes of `events_cap` events.
            unsafe { std::slice::from_raw_parts_mut(events, events_cap) }
        };
        let n = queue.drain(out);
        write_out!(events_len_out, n);
        callrec_result::Ok
    }
}

/// Frees a detector. NULL is a no-op (`OK`); a detector freed already gives
/// `CALLREC_RESULT_INVALID_HANDLE`. Any thread.
///
/// # Safety
/// `dtmf` may be any value.
#[no_mangle]
pub unsafe extern "C" fn callrec_dtmf_free(dtmf: *mut callrec_dtmf) -> callrec_result {
    ffi_panic_boundary! { crate::free_in(&DETECTORS, dtmf.addr()) }
}
