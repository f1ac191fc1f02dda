//! The C ABI of callrec (DESIGN §8; rustls-ffi is the model). Thin: every function converts its
//! arguments, forwards to the `callrec` crate and converts the answer back. No recording logic
//! lives here.
//!
//! Conventions:
//! * Opaque handles (`callrec_engine`, `callrec_recorder`, `callrec_abort_handle`,
//!   `callrec_event`) made by `_new` (or `next_event`) and released by `_free`.
//! * Every fallible function returns a `callrec_result`; `callrec_result_name` names each code.
//! * Outputs come last and are written only on success.
//! * Every buffer pointer is followed by its `size_t` length; strings in are UTF-8, not
//!   NUL-terminated (pass the length); strings out are NUL-terminated.
//! * Every pointer is NULL-checked (`CALLREC_RESULT_NULL_PARAMETER`).
//! * Every export runs inside `catch_unwind`: a panic becomes `CALLREC_RESULT_PANIC`, never an
//!   unwind into C.
//! * Enum values coming *from* C are taken as `uint32_t` and checked, so a bad value is an error
//!   code, not undefined behaviour.
//!
//! Freed recorders are kept as tombstones (the last [`CALLREC_TOMBSTONES`] per engine), so a double free
//! or a use after free of a recorder is caught (`CALLREC_RESULT_INVALID_HANDLE`) as long as its
//! engine lives and fewer than that many recorders were freed since. What cannot be caught: use
//! of a recorder after its engine was freed and older tombstones were released, and double free
//! or use after free of an engine, an abort handle or an event.
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![allow(non_camel_case_types)] // C names: callrec_engine, callrec_result, ...

use callrec::{Codec, Engine, EngineConfig, Event, EventKind, Reason, RecordOptions, Recorder};
use callrec::{RecorderError, RecorderHandle, Status};
use std::collections::VecDeque;
use std::ffi::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How many freed recorders an engine keeps as tombstones to catch double free / use after free.
pub const CALLREC_TOMBSTONES: usize = 4096;

/// Codec value: G.711 A-law.
pub const CALLREC_CODEC_ALAW: u32 = 1;
/// Codec value: G.711 µ-law.
pub const CALLREC_CODEC_ULAW: u32 = 2;
/// Event kind: the file is complete at its final name (the host calls `next_page`).
pub const CALLREC_EVENT_FINISHED: u32 = 1;
/// Event kind: the file and its directory are synced (the host calls `recording_available_page`).
pub const CALLREC_EVENT_AVAILABLE: u32 = 2;

/// The result of every fallible function.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum callrec_result {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullParameter = 1,
    /// The options JSON is invalid (`callrec_options_error` names the field).
    InvalidOptions = 2,
    /// The codec is not `CALLREC_CODEC_ALAW` or `CALLREC_CODEC_ULAW`.
    InvalidCodec = 3,
    /// The digit is not one of `0-9 * # A-D`.
    InvalidDigit = 4,
    /// A push longer than one second (8000 bytes).
    InputTooLong = 5,
    /// The output buffer is too small (nothing was written).
    BufferTooSmall = 6,
    /// A file or directory could not be created or written.
    Io = 7,
    /// The engine has been shut down.
    ShutDown = 8,
    /// An engine setting is out of range.
    InvalidConfig = 9,
    /// No event arrived within the timeout (or the engine is shut down and drained).
    NoEvent = 10,
    /// A string argument is not valid UTF-8.
    InvalidUtf8 = 11,
    /// The recorder was already freed (double free or use after free caught).
    InvalidHandle = 12,
    /// callrec panicked; this is a bug. The call had no effect the caller can rely on.
    Panic = 13,
    /// An enum argument (e.g. a result code) is out of range.
    InvalidArgument = 14,
    /// `callrec_recorder_feed` waited its whole timeout for the writer; `fed_out` says how
    /// much of the input was taken.
    Timeout = 15,
}

/// Why a recording stopped (`NONE` while it runs). Values match the engine's reason codes.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum callrec_reason {
    /// Not stopped.
    None = 0,
    /// `seconds_max_duration` reached.
    Duration = 1,
    /// A barge-in digit.
    Bargein = 2,
    /// Silence.
    Silence = 3,
    /// `max_file_bytes` or the RIFF limit.
    Filesize = 4,
    /// The call ended.
    Hangup = 5,
    /// Aborted.
    Aborted = 6,
    /// The file could not be written or finalized.
    Error = 7,
    /// Anything else (engine shut down, recorder freed mid-recording).
    Other = 8,
}

/// Where a recording is.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum callrec_phase {
    /// Playing the beep (pull it with `callrec_recorder_playout`).
    Beeping = 1,
    /// Waiting for the first sound.
    Waiting = 2,
    /// Recording.
    Recording = 3,
    /// Stopped; `reason` says why.
    Stopped = 4,
}

/// A recorder's status after a call.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct callrec_status {
    /// The phase.
    pub phase: callrec_phase,
    /// Why it stopped (`CALLREC_REASON_NONE` unless `phase` is `CALLREC_PHASE_STOPPED`).
    pub reason: callrec_reason,
}

/// The main fields of an event as plain C values.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct callrec_event_info {
    /// `CALLREC_EVENT_FINISHED` or `CALLREC_EVENT_AVAILABLE`.
    pub kind: u32,
    /// Why the recording stopped.
    pub reason: callrec_reason,
    /// True in the available event.
    pub file_available: bool,
    /// Whether the recording holds sound above the background noise.
    pub contains_sound: bool,
    /// The file's audio length in seconds, rounded to one decimal (as in the JSON).
    pub seconds_duration: f64,
    /// The file's audio length in samples (8000 per second).
    pub samples: u64,
    /// The barge-in digit when `reason` is `CALLREC_REASON_BARGEIN`, else 0.
    pub barge_in_digit: c_char,
    /// Frames lost because the writer fell behind.
    pub frames_dropped: u64,
}

/// The engine's counters.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct callrec_metrics {
    /// Frames lost to full rings.
    pub frames_dropped: u64,
    /// Audio bytes written to files.
    pub bytes_written: u64,
    /// Recordings started.
    pub recordings_started: u64,
    /// Recordings finalized.
    pub recordings_finished: u64,
    /// Recordings that failed to write or finalize.
    pub write_errors: u64,
}

/// Freed recorders, kept so their handles can still be recognised as dead.
struct Graveyard(Mutex<VecDeque<usize>>);

impl Graveyard {
    fn bury(&self, tomb: *mut callrec_recorder) {
        let mut tombs = self.0.lock().unwrap_or_else(|p| p.into_inner());
        tombs.push_back(tomb as usize);
        if tombs.len() > CALLREC_TOMBSTONES {
            if let Some(oldest) = tombs.pop_front() {
                // SAFETY: every address in the graveyard came from `Box::into_raw` in
                // `callrec_recorder_new` and is released exactly once, here or in `drop`.
                drop(unsafe { Box::from_raw(oldest as *mut callrec_recorder) });
            }
        }
    }
}

impl Drop for Graveyard {
    fn drop(&mut self) {
        let tombs = self.0.get_mut().unwrap_or_else(|p| p.into_inner());
        for tomb in tombs.drain(..) {
            // SAFETY: as in `bury`: each buried box is released exactly once.
            drop(unsafe { Box::from_raw(tomb as *mut callrec_recorder) });
        }
    }
}

/// A recording engine: a store, writer threads and an events queue.
pub struct callrec_engine {
    engine: Engine,
    graveyard: Arc<Graveyard>,
}

const LIVE: u64 = 0x6361_6c6c_7265_6321; // "callrec!"
const DEAD: u64 = 0xdead_dead_dead_dead;

/// The real-time side of one recording.
pub struct callrec_recorder {
    magic: u64,
    recorder: Option<Recorder>,
    graveyard: Option<Arc<Graveyard>>,
}

/// Aborts a recording from any thread.
pub struct callrec_abort_handle {
    handle: RecorderHandle,
}

/// One finished or available event.
pub struct callrec_event {
    event: Event,
    json: String,
}

/// Runs `f`, turning a panic into `CALLREC_RESULT_PANIC`.
fn guard(f: impl FnOnce() -> callrec_result) -> callrec_result {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(callrec_result::Panic)
}

/// Runs `f` for a function with no result, swallowing a panic (it must not reach C).
fn guard_void(f: impl FnOnce()) {
    let _ = catch_unwind(AssertUnwindSafe(f));
}

/// Frees a box made by `Box::into_raw`, inside `catch_unwind`; NULL is a no-op.
///
/// # Safety
/// `ptr` must be NULL or come from `Box::into_raw` of a `T`, and be freed only once.
unsafe fn free_box<T>(ptr: *mut T) {
    guard_void(|| {
        if !ptr.is_null() {
            // SAFETY: per this function's contract.
            drop(unsafe { Box::from_raw(ptr) });
        }
    })
}

macro_rules! non_null {
    ($($p:expr),+) => {
        $(if $p.is_null() { return callrec_result::NullParameter; })+
    };
}

/// The UTF-8 string at `ptr..ptr+len`.
///
/// # Safety
/// `ptr` must be valid for reads of `len` bytes (it may be NULL only when `len` is 0).
unsafe fn str_arg<'a>(ptr: *const c_char, len: usize) -> Result<&'a str, callrec_result> {
    if len == 0 {
        return Ok("");
    }
    if ptr.is_null() {
        return Err(callrec_result::NullParameter);
    }
    // SAFETY: the caller guarantees `len` readable bytes at `ptr`.
    let bytes = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) };
    std::str::from_utf8(bytes).map_err(|_| callrec_result::InvalidUtf8)
}

/// Copies `s` and a NUL into `buf` if it fits, and its length (without NUL) into `len_out`.
///
/// # Safety
/// `buf` must be valid for writes of `buf_len` bytes; `len_out` must be valid for a write.
unsafe fn copy_out(
    s: &str,
    buf: *mut c_char,
    buf_len: usize,
    len_out: *mut usize,
) -> callrec_result {
    non_null!(buf, len_out);
    if s.len() + 1 > buf_len {
        return callrec_result::BufferTooSmall;
    }
    // SAFETY: `buf` has room for `s.len() + 1` bytes (checked above); the regions are distinct.
    unsafe {
        std::ptr::copy_nonoverlapping(s.as_ptr(), buf.cast::<u8>(), s.len());
        *buf.add(s.len()) = 0;
        *len_out = s.len();
    }
    callrec_result::Ok
}

fn codec_arg(codec: u32) -> Result<Codec, callrec_result> {
    match codec {
        CALLREC_CODEC_ALAW => Ok(Codec::Alaw),
        CALLREC_CODEC_ULAW => Ok(Codec::Ulaw),
        _ => Err(callrec_result::InvalidCodec),
    }
}

fn reason_out(reason: Reason) -> callrec_reason {
    match reason {
        Reason::Duration => callrec_reason::Duration,
        Reason::Bargein => callrec_reason::Bargein,
        Reason::Silence => callrec_reason::Silence,
        Reason::Filesize => callrec_reason::Filesize,
        Reason::Hangup => callrec_reason::Hangup,
        Reason::Aborted => callrec_reason::Aborted,
        Reason::Error => callrec_reason::Error,
        Reason::Other => callrec_reason::Other,
    }
}

fn to_c_status(status: Status) -> callrec_status {
    let (phase, reason) = match status {
        Status::Beeping => (callrec_phase::Beeping, callrec_reason::None),
        Status::Waiting => (callrec_phase::Waiting, callrec_reason::None),
        Status::Recording => (callrec_phase::Recording, callrec_reason::None),
        Status::Stopped(r) => (callrec_phase::Stopped, reason_out(r)),
    };
    callrec_status { phase, reason }
}

fn error_out(e: &callrec::Error) -> callrec_result {
    match e {
        callrec::Error::Options(_) => callrec_result::InvalidOptions,
        callrec::Error::Config(_) => callrec_result::InvalidConfig,
        callrec::Error::Io { .. } => callrec_result::Io,
        callrec::Error::ShutDown => callrec_result::ShutDown,
    }
}

/// The live recorder behind `ptr`, or the error to return.
///
/// # Safety
/// `ptr` must be NULL, or a pointer from `callrec_recorder_new` whose tombstone (if freed) has
/// not been released (see the crate docs).
unsafe fn live<'a>(ptr: *mut callrec_recorder) -> Result<&'a mut Recorder, callrec_result> {
    if ptr.is_null() {
        return Err(callrec_result::NullParameter);
    }
    // SAFETY: per this function's contract the box is allocated (live or a tombstone).
    let r = unsafe { &mut *ptr };
    match (r.magic, r.recorder.as_mut()) {
        (LIVE, Some(rec)) => Ok(rec),
        _ => Err(callrec_result::InvalidHandle),
    }
}

/// The shape of every call on a live recorder: NULL-check `out`, find the live recorder, run
/// `f`, and write its value to `out` only on success, all inside `catch_unwind`.
///
/// # Safety
/// `recorder` as for [`live`]; `out` must be NULL or valid for a write.
unsafe fn on_recorder<T>(
    recorder: *mut callrec_recorder,
    out: *mut T,
    f: impl FnOnce(&mut Recorder) -> Result<T, callrec_result>,
) -> callrec_result {
    guard(|| {
        non_null!(out);
        // SAFETY: forwarded from this function's contract.
        let value = match unsafe { live(recorder) }.and_then(f) {
            Ok(v) => v,
            Err(e) => return e,
        };
        // SAFETY: `out` is non-NULL and writable per the contract.
        unsafe { out.write(value) };
        callrec_result::Ok
    })
}

/// The library's version, e.g. `"0.1.0"` (a static NUL-terminated string). Any thread.
#[no_mangle]
pub extern "C" fn callrec_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// A static NUL-terminated name for a `callrec_result` value (`"unknown result"` if out of
/// range). Any thread; real-time safe.
#[no_mangle]
pub extern "C" fn callrec_result_name(result: u32) -> *const c_char {
    let name: &'static str = match result {
        0 => "ok\0",
        1 => "a required pointer argument is NULL\0",
        2 => "invalid options (callrec_options_error names the field)\0",
        3 => "invalid codec (use CALLREC_CODEC_ALAW or CALLREC_CODEC_ULAW)\0",
        4 => "invalid digit (use 0-9, *, #, A-D)\0",
        5 => "input longer than one second (8000 bytes)\0",
        6 => "output buffer too small\0",
        7 => "a file or directory could not be created or written\0",
        8 => "the engine has been shut down\0",
        9 => "invalid engine configuration\0",
        10 => "no event\0",
        11 => "string argument is not valid UTF-8\0",
        12 => "invalid handle: the recorder was already freed\0",
        13 => "callrec panicked (a bug)\0",
        14 => "argument out of range\0",
        15 => "timed out waiting for the writer (ring full)\0",
        _ => "unknown result\0",
    };
    name.as_ptr().cast()
}

/// Starts an engine writing recordings under the directory `store_root` (UTF-8, `store_root_len`
/// bytes, no NUL needed; created 0700 if missing). `writers` is the number of writer threads
/// and `ring_milliseconds` how much audio each recording's ring holds; 0 means the default
/// (1 writer, 2000 ms). Control thread; not real-time safe.
///
/// # Safety
/// `store_root` must be valid for reads of `store_root_len` bytes; `engine_out` for a write.
#[no_mangle]
pub unsafe extern "C" fn callrec_engine_new(
    store_root: *const c_char,
    store_root_len: usize,
    writers: u32,
    ring_milliseconds: u32,
    engine_out: *mut *mut callrec_engine,
) -> callrec_result {
    guard(|| {
        non_null!(store_root, engine_out);
        // SAFETY: forwarded from this function's contract.
        let root = match unsafe { str_arg(store_root, store_root_len) } {
            Ok(r) => r,
            Err(e) => return e,
        };
        let defaults = EngineConfig::default();
        let config = EngineConfig {
            writers: if writers == 0 {
                defaults.writers
            } else {
                writers as usize
            },
            ring_milliseconds: if ring_milliseconds == 0 {
                defaults.ring_milliseconds
            } else {
                ring_milliseconds
            },
            ..defaults
        };
        match Engine::new(root, config) {
            Ok(engine) => {
                let boxed = Box::new(callrec_engine {
                    engine,
                    graveyard: Arc::new(Graveyard(Mutex::new(VecDeque::new()))),
                });
                // SAFETY: `engine_out` is non-NULL and writable per the contract.
                unsafe { *engine_out = Box::into_raw(boxed) };
                callrec_result::Ok
            }
            Err(e) => error_out(&e),
        }
    })
}

/// Shuts the engine down: stops every open recording with reason `other` (keeping all audio
/// already pushed), finalizes them and joins the threads. Their events stay readable with
/// `callrec_engine_next_event`. Idempotent. Control thread; blocks.
///
/// # Safety
/// `engine` must be NULL or a live engine from `callrec_engine_new`.
#[no_mangle]
pub unsafe extern "C" fn callrec_engine_shutdown(engine: *const callrec_engine) -> callrec_result {
    guard(|| {
        non_null!(engine);
        // SAFETY: a live engine per the contract.
        unsafe { &*engine }.engine.shutdown();
        callrec_result::Ok
    })
}

/// Shuts the engine down (as `callrec_engine_shutdown`) and frees it, with any events not yet
/// read. Free recorders before or after, in any order. NULL is a no-op. Control thread.
///
/// # Safety
/// `engine` must be NULL or a live engine from `callrec_engine_new`, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn callrec_engine_free(engine: *mut callrec_engine) {
    // SAFETY: forwarded from this function's contract.
    unsafe { free_box(engine) }
}

/// Copies the engine's counters into `metrics_out`. Any thread; real-time safe.
///
/// # Safety
/// `engine` must be a live engine; `metrics_out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn callrec_engine_metrics(
    engine: *const callrec_engine,
    metrics_out: *mut callrec_metrics,
) -> callrec_result {
    guard(|| {
        non_null!(engine, metrics_out);
        // SAFETY: a live engine per the contract.
        let m = unsafe { &*engine }.engine.metrics();
        // SAFETY: `metrics_out` is non-NULL and writable per the contract.
        unsafe {
            *metrics_out = callrec_metrics {
                frames_dropped: m.frames_dropped,
                bytes_written: m.bytes_written,
                recordings_started: m.recordings_started,
                recordings_finished: m.recordings_finished,
                write_errors: m.write_errors,
            }
        };
        callrec_result::Ok
    })
}

/// Checks a record action's options JSON and writes what is wrong with it (naming the field,
/// e.g. `"seconds_max_duration: must not be negative, got -1"`) into `buf`, NUL-terminated, or
/// an empty string when the options are valid; `len_out` gets the message length. Use it to
/// explain `CALLREC_RESULT_INVALID_OPTIONS`. Any thread; not real-time safe.
///
/// # Safety
/// `options_json` must be valid for reads of `options_json_len` bytes, `buf` for writes of
/// `buf_len` bytes, `len_out` for a write.
#[no_mangle]
pub unsafe extern "C" fn callrec_options_error(
    options_json: *const c_char,
    options_json_len: usize,
    buf: *mut c_char,
    buf_len: usize,
    len_out: *mut usize,
) -> callrec_result {
    guard(|| {
        // SAFETY: forwarded from this function's contract.
        let json = match unsafe { str_arg(options_json, options_json_len) } {
            Ok(j) => j,
            Err(callrec_result::InvalidUtf8) => "\u{0}",
            Err(e) => return e,
        };
        let message = match json {
            "\u{0}" => "options: not valid UTF-8".to_owned(),
            _ => RecordOptions::from_json(json)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default(),
        };
        // SAFETY: forwarded from this function's contract.
        unsafe { copy_out(&message, buf, buf_len, len_out) }
    })
}

/// Starts a recording of a call whose audio is in `codec` (`CALLREC_CODEC_ALAW` or
/// `CALLREC_CODEC_ULAW`), with the record action's options as JSON (`options_json_len` bytes;
/// length 0 means all defaults). Creates the file; on `CALLREC_RESULT_INVALID_OPTIONS`, call
/// `callrec_options_error` for the reason. Control thread; allocates; not real-time safe.
///
/// # Safety
/// `engine` must be a live engine; `options_json` valid for reads of `options_json_len` bytes;
/// `recorder_out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn callrec_recorder_new(
    engine: *const callrec_engine,
    options_json: *const c_char,
    options_json_len: usize,
    codec: u32,
    recorder_out: *mut *mut callrec_recorder,
) -> callrec_result {
    guard(|| {
        non_null!(engine, recorder_out);
        // SAFETY: a live engine per the contract.
        let engine = unsafe { &*engine };
        // SAFETY: forwarded from this function's contract.
        let json = match unsafe { str_arg(options_json, options_json_len) } {
            Ok(j) => j,
            Err(e) => return e,
        };
        let codec = match codec_arg(codec) {
            Ok(c) => c,
            Err(e) => return e,
        };
        match engine.engine.record_json(json, codec) {
            Ok((recorder, _handle)) => {
                let boxed = Box::new(callrec_recorder {
                    magic: LIVE,
                    recorder: Some(recorder),
                    graveyard: Some(engine.graveyard.clone()),
                });
                // SAFETY: `recorder_out` is non-NULL and writable per the contract.
                unsafe { *recorder_out = Box::into_raw(boxed) };
                callrec_result::Ok
            }
            Err(e) => error_out(&e),
        }
    })
}

/// Frees a recorder. If it is still recording, the recording stops with reason `other` and
/// keeps everything pushed. A second free of the same recorder is caught and ignored (see the
/// crate docs for the limits). NULL is a no-op. The recorder's thread; not real-time safe.
///
/// # Safety
/// `recorder` must be NULL or a pointer from `callrec_recorder_new`.
#[no_mangle]
pub unsafe extern "C" fn callrec_recorder_free(recorder: *mut callrec_recorder) {
    guard_void(|| {
        if recorder.is_null() {
            return;
        }
        // SAFETY: allocated (live or tombstone) per the contract.
        let r = unsafe { &mut *recorder };
        if r.magic != LIVE {
            return; // double free caught
        }
        r.magic = DEAD;
        drop(r.recorder.take());
        match r.graveyard.take() {
            Some(graveyard) => graveyard.bury(recorder),
            // SAFETY: came from `Box::into_raw`; not in any graveyard, so freed only here.
            None => drop(unsafe { Box::from_raw(recorder) }),
        }
    })
}

/// Feeds the caller's audio: `len` bytes of G.711 in the call's codec, any length up to 8000
/// (one second; 160 = 20 ms is usual). `status_out` gets the status after it; after the stop,
/// input is ignored and the stopped status returned. The media thread; **real-time safe**.
///
/// # Safety
/// `recorder` must be a recorder from `callrec_recorder_new`; `audio` valid for reads of `len`
/// bytes (may be NULL when `len` is 0); `status_out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn callrec_recorder_push(
    recorder: *mut callrec_recorder,
    audio: *const u8,
    len: usize,
    status_out: *mut callrec_status,
) -> callrec_result {
    if audio.is_null() && len > 0 {
        return callrec_result::NullParameter;
    }
    // SAFETY: forwarded from this function's contract.
    unsafe {
        on_recorder(recorder, status_out, |rec| {
            let input: &[u8] = if len == 0 {
                &[]
            } else {
                // SAFETY: `audio` is non-NULL and readable for `len` bytes per the contract.
                std::slice::from_raw_parts(audio, len)
            };
            match rec.push(input) {
                Ok(status) => Ok(to_c_status(status)),
                Err(RecorderError::InputTooLong { .. }) => Err(callrec_result::InputTooLong),
                Err(RecorderError::InvalidDigit(_)) => Err(callrec_result::InvalidDigit),
                Err(RecorderError::Timeout { .. }) => Err(callrec_result::Timeout),
            }
        })
    }
}

/// Feeds audio of any length faster than real time (from a file or a pipe): like
/// `callrec_recorder_push`, but when the ring to the writer is full it waits for the writer
/// instead of dropping audio, for at most `timeout_ms` milliseconds in all (`UINT64_MAX`: no
/// limit). `status_out` gets the status after it (on `CALLREC_RESULT_OK`). `fed_out` (may be
/// NULL) gets how many bytes were taken: `len` on success, fewer on `CALLREC_RESULT_TIMEOUT`
/// (feed the rest again to continue); this is the one output also written on an error.
/// Any thread that owns the recorder; **not real-time safe** when it has to wait (when the
/// ring has room it is as real-time safe as push).
///
/// # Safety
/// `recorder` must be a recorder from `callrec_recorder_new`; `audio` valid for reads of `len`
/// bytes (may be NULL when `len` is 0); `fed_out` NULL or valid for a write; `status_out`
/// valid for a write.
#[no_mangle]
pub unsafe extern "C" fn callrec_recorder_feed(
    recorder: *mut callrec_recorder,
    audio: *const u8,
    len: usize,
    timeout_ms: u64,
    fed_out: *mut usize,
    status_out: *mut callrec_status,
) -> callrec_result {
    if audio.is_null() && len > 0 {
        return callrec_result::NullParameter;
    }
    // SAFETY: forwarded from this function's contract.
    unsafe {
        on_recorder(recorder, status_out, |rec| {
            let input: &[u8] = if len == 0 {
                &[]
            } else {
                // SAFETY: `audio` is non-NULL and readable for `len` bytes per the contract.
                std::slice::from_raw_parts(audio, len)
            };
            let (fed, outcome) = match rec.feed(input, Duration::from_millis(timeout_ms)) {
                Ok(status) => (len, Ok(to_c_status(status))),
                Err(RecorderError::Timeout { fed }) => (fed, Err(callrec_result::Timeout)),
                Err(RecorderError::InputTooLong { .. }) => (0, Err(callrec_result::InputTooLong)),
                Err(RecorderError::InvalidDigit(_)) => (0, Err(callrec_result::InvalidDigit)),
            };
            if !fed_out.is_null() {
                // SAFETY: `fed_out` is non-NULL and writable per the contract.
                fed_out.write(fed);
            }
            outcome
        })
    }
}

/// A digit from the host (an RFC 4733 event): `'0'-'9'`, `'*'`, `'#'`, `'A'-'D'` (or `'a'-'d'`).
/// Stops the recording with `bargein` when it is one of `barge_in_digits`; other digits are
/// ignored. The media thread; **real-time safe**.
///
/// # Safety
/// `recorder` must be a recorder from `callrec_recorder_new`; `status_out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn callrec_recorder_digit(
    recorder: *mut callrec_recorder,
    digit: c_char,
    status_out: *mut callrec_status,
) -> callrec_result {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        on_recorder(recorder, status_out, |rec| {
            rec.digit(digit as u8 as char)
                .map(to_c_status)
                .map_err(|_| callrec_result::InvalidDigit)
        })
    }
}

/// The call ended: stops with `hangup` (recording any partial frame held). The media thread;
/// **real-time safe**.
///
/// # Safety
/// `recorder` must be a recorder from `callrec_recorder_new`; `status_out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn callrec_recorder_hangup(
    recorder: *mut callrec_recorder,
    status_out: *mut callrec_status,
) -> callrec_result {
    // SAFETY: forwarded from this function's contract.
    unsafe { on_recorder(recorder, status_out, |rec| Ok(to_c_status(rec.hangup()))) }
}

/// Pauses the recording (PCI: the agent takes card details): until `callrec_recorder_resume`,
/// the caller's audio is left out of the file (`pause_behavior` `"skip"`) or replaced by
/// silence (`"silence"`); the silence and duration timers stop; digits still barge in. Pausing
/// while paused or stopped changes nothing. The media thread; **real-time safe**.
///
/// # Safety
/// `recorder` must be a recorder from `callrec_recorder_new`; `status_out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn callrec_recorder_pause(
    recorder: *mut callrec_recorder,
    status_out: *mut callrec_status,
) -> callrec_result {
    // SAFETY: forwarded from this function's contract.
    unsafe { on_recorder(recorder, status_out, |rec| Ok(to_c_status(rec.pause()))) }
}

/// Resumes a paused recording; resuming when not paused changes nothing. The media thread;
/// **real-time safe**.
///
/// # Safety
/// `recorder` must be a recorder from `callrec_recorder_new`; `status_out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn callrec_recorder_resume(
    recorder: *mut callrec_recorder,
    status_out: *mut callrec_status,
) -> callrec_result {
    // SAFETY: forwarded from this function's contract.
    unsafe { on_recorder(recorder, status_out, |rec| Ok(to_c_status(rec.resume()))) }
}

/// The recorder's current status. The media thread; **real-time safe**.
///
/// # Safety
/// `recorder` must be a recorder from `callrec_recorder_new`; `status_out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn callrec_recorder_status(
    recorder: *mut callrec_recorder,
    status_out: *mut callrec_status,
) -> callrec_result {
    // SAFETY: forwarded from this function's contract.
    unsafe { on_recorder(recorder, status_out, |rec| Ok(to_c_status(rec.status()))) }
}

/// Pulls the beep (with `beep_on_start`) into `buf` as G.711 in the call's codec, for the host
/// to send to the caller; `written_out` gets the bytes written (0: nothing to play). The media
/// thread; **real-time safe**.
///
/// # Safety
/// `recorder` must be a recorder from `callrec_recorder_new`; `buf` valid for writes of `len`
/// bytes; `written_out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn callrec_recorder_playout(
    recorder: *mut callrec_recorder,
    buf: *mut u8,
    len: usize,
    written_out: *mut usize,
) -> callrec_result {
    if buf.is_null() {
        return callrec_result::NullParameter;
    }
    // SAFETY: forwarded from this function's contract.
    unsafe {
        on_recorder(recorder, written_out, |rec| {
            // SAFETY: `buf` is non-NULL and writable for `len` bytes per the contract.
            Ok(rec.playout(std::slice::from_raw_parts_mut(buf, len)))
        })
    }
}

/// Free space in the recorder's ring, in bytes (a host feeding audio faster than real time
/// uses `callrec_recorder_feed` instead of watching this). The media thread; **real-time safe**.
///
/// # Safety
/// `recorder` must be a recorder from `callrec_recorder_new`; `free_out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn callrec_recorder_ring_free(
    recorder: *mut callrec_recorder,
    free_out: *mut usize,
) -> callrec_result {
    // SAFETY: forwarded from this function's contract.
    unsafe { on_recorder(recorder, free_out, |rec| Ok(rec.ring_free_bytes())) }
}

/// Copies the recording's `filename` (as the result will report it) into `buf`,
/// NUL-terminated; `len_out` gets its length. Any thread that owns the recorder.
///
/// # Safety
/// `recorder` must be a recorder from `callrec_recorder_new`; `buf` valid for writes of
/// `buf_len` bytes; `len_out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn callrec_recorder_filename(
    recorder: *mut callrec_recorder,
    buf: *mut c_char,
    buf_len: usize,
    len_out: *mut usize,
) -> callrec_result {
    guard(|| {
        // SAFETY: forwarded from this function's contract.
        let rec = match unsafe { live(recorder) } {
            Ok(r) => r,
            Err(e) => return e,
        };
        // SAFETY: forwarded from this function's contract.
        unsafe { copy_out(rec.filename(), buf, buf_len, len_out) }
    })
}

/// Makes a handle that can abort this recording from any thread (free it with
/// `callrec_abort_handle_free`; it may outlive the recorder). Control thread; allocates.
///
/// # Safety
/// `recorder` must be a recorder from `callrec_recorder_new`; `handle_out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn callrec_recorder_abort_handle(
    recorder: *mut callrec_recorder,
    handle_out: *mut *mut callrec_abort_handle,
) -> callrec_result {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        on_recorder(recorder, handle_out, |rec| {
            Ok(Box::into_raw(Box::new(callrec_abort_handle {
                handle: rec.handle(),
            })))
        })
    }
}

/// Aborts the recording (reason `aborted`, keeping the audio pushed before); `stopped_out` is
/// true if this call stopped it, false if it had already stopped. **Any thread**, concurrently
/// with the media thread's calls; lock-free and **real-time safe**.
///
/// # Safety
/// `handle` must be a live handle from `callrec_recorder_abort_handle`; `stopped_out` valid for
/// a write.
#[no_mangle]
pub unsafe extern "C" fn callrec_abort_handle_abort(
    handle: *const callrec_abort_handle,
    stopped_out: *mut bool,
) -> callrec_result {
    guard(|| {
        non_null!(handle, stopped_out);
        // SAFETY: a live handle per the contract.
        let stopped = unsafe { &*handle }.handle.abort();
        // SAFETY: non-NULL and writable per the contract.
        unsafe { *stopped_out = stopped };
        callrec_result::Ok
    })
}

/// Frees an abort handle (the recording goes on). NULL is a no-op. Any thread.
///
/// # Safety
/// `handle` must be NULL or a live handle from `callrec_recorder_abort_handle`, not used after.
#[no_mangle]
pub unsafe extern "C" fn callrec_abort_handle_free(handle: *mut callrec_abort_handle) {
    // SAFETY: forwarded from this function's contract.
    unsafe { free_box(handle) }
}

/// Takes the next event (*finished* or *available*): waits up to `timeout_ms` milliseconds
/// (0: do not wait; negative: wait until one arrives or the engine is shut down and drained).
/// Returns `CALLREC_RESULT_NO_EVENT` when there is none. Free the event with
/// `callrec_event_free`. Control thread; blocks; not real-time safe.
///
/// # Safety
/// `engine` must be a live engine; `event_out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn callrec_engine_next_event(
    engine: *const callrec_engine,
    timeout_ms: i64,
    event_out: *mut *mut callrec_event,
) -> callrec_result {
    guard(|| {
        non_null!(engine, event_out);
        let timeout = u64::try_from(timeout_ms).ok().map(Duration::from_millis);
        // SAFETY: a live engine per the contract.
        match unsafe { &*engine }.engine.next_event(timeout) {
            Some(event) => {
                let json = event.result.action_result_json();
                // SAFETY: non-NULL and writable per the contract.
                unsafe { *event_out = Box::into_raw(Box::new(callrec_event { event, json })) };
                callrec_result::Ok
            }
            None => callrec_result::NoEvent,
        }
    })
}

/// The event's main fields as plain C values. Any thread.
///
/// # Safety
/// `event` must be a live event; `info_out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn callrec_event_get_info(
    event: *const callrec_event,
    info_out: *mut callrec_event_info,
) -> callrec_result {
    guard(|| {
        non_null!(event, info_out);
        // SAFETY: a live event per the contract.
        let e = unsafe { &*event };
        let r = &e.event.result;
        let info = callrec_event_info {
            kind: match e.event.kind {
                EventKind::Finished => CALLREC_EVENT_FINISHED,
                EventKind::Available => CALLREC_EVENT_AVAILABLE,
            },
            reason: reason_out(r.reason),
            file_available: r.file_available,
            contains_sound: r.contains_sound,
            seconds_duration: r.seconds_duration(),
            samples: r.samples,
            barge_in_digit: match (r.reason, r.barge_in_digit) {
                (Reason::Bargein, Some(d)) => d as u8 as c_char,
                _ => 0,
            },
            frames_dropped: r.frames_dropped,
        };
        // SAFETY: non-NULL and writable per the contract.
        unsafe { *info_out = info };
        callrec_result::Ok
    })
}

/// The length in bytes of the event's action_result JSON, without the NUL (so the buffer for
/// `callrec_event_json` needs one more byte). Any thread.
///
/// # Safety
/// `event` must be a live event; `len_out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn callrec_event_json_len(
    event: *const callrec_event,
    len_out: *mut usize,
) -> callrec_result {
    guard(|| {
        non_null!(event, len_out);
        // SAFETY: a live event and a writable `len_out` per the contract.
        unsafe { *len_out = (&*event).json.len() };
        callrec_result::Ok
    })
}

/// Copies the event's action_result JSON (`{"action":"record","result":{...}}`) into `buf`,
/// NUL-terminated; `len_out` gets its length. `CALLREC_RESULT_BUFFER_TOO_SMALL` if `buf_len` is
/// not at least `callrec_event_json_len` + 1 (nothing written). Any thread.
///
/// # Safety
/// `event` must be a live event; `buf` valid for writes of `buf_len` bytes; `len_out` for a write.
#[no_mangle]
pub unsafe extern "C" fn callrec_event_json(
    event: *const callrec_event,
    buf: *mut c_char,
    buf_len: usize,
    len_out: *mut usize,
) -> callrec_result {
    guard(|| {
        non_null!(event);
        // SAFETY: a live event; the rest is forwarded from this function's contract.
        unsafe { copy_out(&(&*event).json, buf, buf_len, len_out) }
    })
}

/// Copies the event's `filename` into `buf`, NUL-terminated; `len_out` gets its length.
/// Any thread.
///
/// # Safety
/// `event` must be a live event; `buf` valid for writes of `buf_len` bytes; `len_out` for a write.
#[no_mangle]
pub unsafe extern "C" fn callrec_event_filename(
    event: *const callrec_event,
    buf: *mut c_char,
    buf_len: usize,
    len_out: *mut usize,
) -> callrec_result {
    guard(|| {
        non_null!(event);
        // SAFETY: a live event; the rest is forwarded from this function's contract.
        unsafe { copy_out(&(&*event).event.result.filename, buf, buf_len, len_out) }
    })
}

/// Frees an event. NULL is a no-op. Any thread.
///
/// # Safety
/// `event` must be NULL or a live event from `callrec_engine_next_event`, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn callrec_event_free(event: *mut callrec_event) {
    // SAFETY: forwarded from this function's contract.
    unsafe { free_box(event) }
}
