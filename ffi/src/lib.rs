//! The C ABI of callrec (DESIGN §8; rustls-ffi is the model). Thin: every function converts its
//! arguments, forwards to the `callrec` crate and converts the answer back. No recording logic
//! lives here.
//!
//! Conventions:
//! * Opaque handles (`callrec_engine`, `callrec_recorder`, `callrec_abort_handle`,
//!   `callrec_event`) made by `_new` (or `next_event`) and released by `_free`. A handle is a
//!   slot number plus a generation, never a pointer to freed memory (see `src/handle.rs`): a double
//!   free, a use after free or a stale handle whose slot was reused is
//!   `CALLREC_RESULT_INVALID_HANDLE`, with no effect.
//! * Every fallible function returns a `callrec_result`; `callrec_result_name` names each code
//!   (the same text as `callrec_result`'s `Display`).
//! * Outputs come last and are written only on success (a `len_out` also gets the needed length
//!   on `CALLREC_RESULT_BUFFER_TOO_SMALL`).
//! * Every buffer pointer is followed by its `size_t` length; a NULL buffer with length 0 is an
//!   empty buffer; strings in are UTF-8, not NUL-terminated (pass the length); strings out are
//!   NUL-terminated.
//! * Every pointer is NULL-checked (`CALLREC_RESULT_NULL_PARAMETER`).
//! * Every export runs inside `ffi_panic_boundary!` (`src/macros.rs`): a panic becomes `CALLREC_RESULT_PANIC`,
//!   never an unwind into C.
//! * Enum values coming *from* C are taken as `uint32_t` and checked, so a bad value is an error
//!   code, not undefined behaviour.
//!
//! Adding an export: write it as the others are — `ffi_panic_boundary! { ... }` around a body
//! that takes its arguments with `try_engine!`, `try_recorder!`, `try_slice!`, `try_str!`,
//! `try_out!` and answers with `write_out!`; each `unsafe` block holds one operation.
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![allow(non_camel_case_types)] // C names: callrec_engine, callrec_result, ...

mod handle;
#[macro_use]
mod macros;
mod dtmf;

use callrec::{Codec, Engine, EngineConfig, Event, EventKind, Reason, Recorder};
use callrec::{RecorderError, RecorderHandle, Status};
pub use dtmf::*;
use handle::{HandleError, Table};
use std::ffi::{c_char, CStr};
use std::fmt;
use std::io::ErrorKind;
use std::time::Duration;

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
    /// The options JSON is invalid (the error buffer names the field).
    InvalidOptions = 2,
    /// The codec is not `CALLREC_CODEC_ALAW` or `CALLREC_CODEC_ULAW`.
    InvalidCodec = 3,
    /// The digit is not one of `0-9 * # A-D`.
    InvalidDigit = 4,
    /// A push longer than one second (8000 bytes).
    InputTooLong = 5,
    /// The output buffer is too small (nothing was written but the needed length).
    BufferTooSmall = 6,
    /// A file or directory could not be created or written.
    Io = 7,
    /// The engine has been shut down.
    ShutDown = 8,
    /// The engine configuration is invalid (the error buffer names the setting).
    InvalidConfig = 9,
    /// No event arrived within the timeout (or the engine is shut down and drained).
    NoEvent = 10,
    /// A string argument is not valid UTF-8.
    InvalidUtf8 = 11,
    /// Not a live handle of this type: freed already (double free, use after free), or never
    /// made by callrec. The call had no effect.
    InvalidHandle = 12,
    /// callrec panicked; this is a bug. The call had no effect the caller can rely on.
    Panic = 13,
    /// An enum argument (e.g. a result code) is out of range.
    InvalidArgument = 14,
    /// The recorder is in use by another thread right now (a recorder is used by one thread at
    /// a time). The call had no effect.
    Busy = 15,
    /// Too many live handles of one type (over a million).
    TooManyHandles = 16,
    /// `callrec_recorder_feed` waited its whole timeout for the writer; `fed_out` says how
    /// much of the input was taken.
    Timeout = 17,
    /// `callrec_recover_aescbc` refused the file: not an `.aescbc.part`, in use by a live
    /// recording, or the key and IV do not decrypt it. Nothing was changed.
    Refused = 18,
}

impl callrec_result {
    /// Every code, in numeric order.
    const ALL: [callrec_result; 19] = [
        callrec_result::Ok,
        callrec_result::NullParameter,
        callrec_result::InvalidOptions,
        callrec_result::InvalidCodec,
        callrec_result::InvalidDigit,
        callrec_result::InputTooLong,
        callrec_result::BufferTooSmall,
        callrec_result::Io,
        callrec_result::ShutDown,
        callrec_result::InvalidConfig,
        callrec_result::NoEvent,
        callrec_result::InvalidUtf8,
        callrec_result::InvalidHandle,
        callrec_result::Panic,
        callrec_result::InvalidArgument,
        callrec_result::Busy,
        callrec_result::TooManyHandles,
        callrec_result::Timeout,
        callrec_result::Refused,
    ];

    /// The one message table: what each code means, as a static C string.
    fn message(self) -> &'static CStr {
        match self {
            callrec_result::Ok => c"ok",
            callrec_result::NullParameter => c"a required pointer argument is NULL",
            callrec_result::InvalidOptions => c"invalid options (the error buffer names the field)",
            callrec_result::InvalidCodec => {
                c"invalid codec (use CALLREC_CODEC_ALAW or CALLREC_CODEC_ULAW)"
            }
            callrec_result::InvalidDigit => c"invalid digit (use 0-9, *, #, A-D)",
            callrec_result::InputTooLong => c"input longer than one second (8000 bytes)",
            callrec_result::BufferTooSmall => c"output buffer too small",
            callrec_result::Io => c"a file or directory could not be created or written",
            callrec_result::ShutDown => c"the engine has been shut down",
            callrec_result::InvalidConfig => {
                c"invalid engine configuration (the error buffer names the setting)"
            }
            callrec_result::NoEvent => c"no event",
            callrec_result::InvalidUtf8 => c"string argument is not valid UTF-8",
            callrec_result::InvalidHandle => {
                c"invalid handle: already freed, or not made by callrec"
            }
            callrec_result::Panic => c"callrec panicked (a bug)",
            callrec_result::InvalidArgument => c"argument out of range",
            callrec_result::Busy => c"the recorder is in use by another thread",
            callrec_result::TooManyHandles => c"too many live handles",
            callrec_result::Timeout => c"timed out waiting for the writer (ring full)",
            callrec_result::Refused => {
                c"refused: not an aescbc .part, in use, or the key and IV do not decrypt it"
            }
        }
    }
}

impl fmt::Display for callrec_result {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message().to_string_lossy())
    }
}

impl std::error::Error for callrec_result {}

impl TryFrom<u32> for callrec_result {
    type Error = u32;
    fn try_from(code: u32) -> Result<Self, u32> {
        callrec_result::ALL.get(code as usize).copied().ok_or(code)
    }
}

impl From<HandleError> for callrec_result {
    fn from(e: HandleError) -> Self {
        match e {
            HandleError::Invalid => callrec_result::InvalidHandle,
            HandleError::Busy => callrec_result::Busy,
            HandleError::Full => callrec_result::TooManyHandles,
        }
    }
}

impl From<&callrec::Error> for callrec_result {
    fn from(e: &callrec::Error) -> Self {
        match e {
            callrec::Error::Options(_) => callrec_result::InvalidOptions,
            callrec::Error::Config(_) => callrec_result::InvalidConfig,
            callrec::Error::Io { .. } => callrec_result::Io,
            callrec::Error::ShutDown => callrec_result::ShutDown,
        }
    }
}

impl From<RecorderError> for callrec_result {
    fn from(e: RecorderError) -> Self {
        match e {
            RecorderError::InputTooLong { .. } => callrec_result::InputTooLong,
            RecorderError::InvalidDigit(_) => callrec_result::InvalidDigit,
            RecorderError::Timeout { .. } => callrec_result::Timeout,
            // An index too far ahead is input that reaches too far.
            RecorderError::GapTooLong { .. } => callrec_result::InputTooLong,
        }
    }
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
    /// `aescbc` recordings whose key and IV the engine had already used (`aesctr` reuse is
    /// refused with `CALLREC_RESULT_INVALID_OPTIONS` instead).
    pub cbc_key_iv_reused: u64,
    /// Orphaned `.part` files of a crashed process that this engine finalized at start.
    pub recordings_recovered: u64,
    /// Orphaned `.part` files this engine kept rather than finalized (an `aescbc` one needs the
    /// key): listed by `callrec_engine_kept_orphan`, never deleted.
    pub orphans_kept: u64,
    /// Publishing (`"publish"` in the engine configuration; all four are 0 without it):
    /// recordings uploaded, verified and reported available.
    pub publish_uploaded: u64,
    /// Upload attempts that failed (each retry counts).
    pub publish_failed_attempts: u64,
    /// Recordings reported with reason `error` after `max_age_seconds` of failed uploads.
    pub publish_gave_up: u64,
    /// Recordings in the outbox now (waiting for their upload or a retry).
    pub publish_pending: u64,
}

/// A recording engine: a store, writer threads and an events queue. Opaque: the handle is a
/// checked slot number, never dereferenced.
pub struct callrec_engine {
    _opaque: [u8; 0],
}

/// The real-time side of one recording. Opaque: the handle is a checked slot number.
pub struct callrec_recorder {
    _opaque: [u8; 0],
}

/// Aborts a recording from any thread. Opaque: the handle is a checked slot number.
pub struct callrec_abort_handle {
    _opaque: [u8; 0],
}

/// One finished or available event. Opaque: the handle is a checked slot number.
pub struct callrec_event {
    _opaque: [u8; 0],
}

/// What a `callrec_event` handle stands for.
struct EventData {
    event: Event,
    json: String,
}

static ENGINES: Table<Engine> = Table::new();
static RECORDERS: Table<Recorder> = Table::new();
static ABORT_HANDLES: Table<RecorderHandle> = Table::new();
static EVENTS: Table<EventData> = Table::new();

/// The C handle for a table slot handle (a number, never dereferenced).
fn to_handle<T>(handle: usize) -> *mut T {
    std::ptr::without_provenance_mut(handle)
}

/// Copies `s` and a NUL into `buf` if it fits, and its length (without NUL) into `len_out`;
/// on `CALLREC_RESULT_BUFFER_TOO_SMALL`, `len_out` still gets the needed length.
///
/// # Safety
/// `buf` must be valid for writes of `buf_len` bytes; `len_out` must be valid for a write.
unsafe fn copy_out(
    s: &str,
    buf: *mut c_char,
    buf_len: usize,
    len_out: *mut usize,
) -> callrec_result {
    try_out!(buf, len_out);
    write_out!(len_out, s.len());
    if s.len() >= buf_len {
        return callrec_result::BufferTooSmall;
    }
    let out = try_slice_mut!(buf, buf_len);
    out[..s.len()].copy_from_slice(s.as_bytes());
    out[s.len()] = 0;
    callrec_result::Ok
}

/// Writes an error message for the caller: as much of `message` as fits in `buf` (cut at a
/// character boundary) and a NUL; `len_out` gets the whole message's length. Either may be NULL
/// (length 0) when the caller does not want the text.
///
/// # Safety
/// `buf` must be NULL or valid for writes of `buf_len` bytes; `len_out` NULL or valid for a write.
unsafe fn error_out(message: &str, buf: *mut c_char, buf_len: usize, len_out: *mut usize) {
    if !len_out.is_null() {
        write_out!(len_out, message.len());
    }
    if buf.is_null() || buf_len == 0 {
        return;
    }
    let mut cut = message.len().min(buf_len - 1);
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    // SAFETY: `buf` is non-NULL and valid for writes of `buf_len` bytes per the contract.
    let out = unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), buf_len) };
    out[..cut].copy_from_slice(&message.as_bytes()[..cut]);
    out[cut] = 0;
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

/// Frees the object behind `handle` in `table`: NULL is a no-op (`OK`), a freed or foreign
/// handle `INVALID_HANDLE`.
fn free_in<T>(table: &Table<T>, handle: usize) -> callrec_result {
    if handle == 0 {
        return callrec_result::Ok;
    }
    try_ok!(table.remove(handle));
    callrec_result::Ok
}

/// The library's version, e.g. `"0.1.0"` (a static NUL-terminated string). Any thread.
#[no_mangle]
pub extern "C" fn callrec_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// A static NUL-terminated message for a `callrec_result` value (`"unknown result"` if out of
/// range). Any thread; real-time safe.
#[no_mangle]
pub extern "C" fn callrec_result_name(result: u32) -> *const c_char {
    match callrec_result::try_from(result) {
        Ok(r) => r.message().as_ptr(),
        Err(_) => c"unknown result".as_ptr(),
    }
}

/// Starts an engine writing recordings under the directory `store_root` (UTF-8, `store_root_len`
/// bytes, no NUL needed; created 0700 if missing). `config_json` is the engine configuration as
/// a JSON object (`config_json_len` bytes; length 0 means all defaults), with the same names and
/// ranges as Python's `Engine(store, **config)`: `writers` (1..=256, default 1),
/// `ring_milliseconds` (100..=60000, default 2000), `poll_milliseconds` (1..=1000, default 20),
/// `batch_bytes` (1..=240000, default 4096, capped at half the ring), `publish` (an
/// `s3://bucket/prefix` URL or `{"url", "keep_local", "max_age_seconds", "concurrency"}`:
/// *available* then comes after a verified upload; endpoint and credentials from the `AWS_*`
/// environment, see the README's Publishing section). On
/// `CALLREC_RESULT_INVALID_CONFIG` or `CALLREC_RESULT_IO`, the reason is written to `error_buf`
/// (NUL-terminated, cut to fit; may be NULL with `error_buf_len` 0) and its full length to
/// `error_len_out` (may be NULL). Control thread; not real-time safe.
///
/// # Safety
/// `store_root` must be valid for reads of `store_root_len` bytes, `config_json` for reads of
/// `config_json_len` bytes, `error_buf` NULL or valid for writes of `error_buf_len` bytes,
/// `error_len_out` NULL or valid for a write, `engine_out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn callrec_engine_new(
    store_root: *const c_char,
    store_root_len: usize,
    config_json: *const c_char,
    config_json_len: usize,
    error_buf: *mut c_char,
    error_buf_len: usize,
    error_len_out: *mut usize,
    engine_out: *mut *mut callrec_engine,
) -> callrec_result {
    ffi_panic_boundary! {
        try_non_null!(store_root);
        try_out!(engine_out);
        let root = try_str!(store_root, store_root_len);
        let json = try_str!(config_json, config_json_len);
        let engine = EngineConfig::from_json(json)
            .and_then(|config| callrec_publish::start_engine(root, config));
        match engine {
            Ok(engine) => {
                let handle = try_ok!(ENGINES.insert(engine));
                // SAFETY: `error_buf`/`error_len_out` are NULL or writable per the contract.
                unsafe { error_out("", error_buf, error_buf_len, error_len_out) };
                write_out!(engine_out, to_handle(handle));
                callrec_result::Ok
            }
            Err(e) => {
                // SAFETY: `error_buf`/`error_len_out` are NULL or writable per the contract.
                unsafe { error_out(&e.to_string(), error_buf, error_buf_len, error_len_out) };
                callrec_result::from(&e)
            }
        }
    }
}

/// Shuts the engine down: stops every open recording with reason `other` (keeping all audio
/// already pushed), finalizes them and joins the threads. Their events stay readable with
/// `callrec_engine_next_event`. Idempotent. Control thread; blocks.
///
/// # Safety
/// `engine` may be any value; a live engine from `callrec_engine_new` is shut down.
#[no_mangle]
pub unsafe extern "C" fn callrec_engine_shutdown(engine: *const callrec_engine) -> callrec_result {
    ffi_panic_boundary! {
        try_non_null!(engine);
        try_engine!(engine).shutdown();
        callrec_result::Ok
    }
}

/// Shuts the engine down (as `callrec_engine_shutdown`) and frees it, with any events not yet
/// read. Free recorders before or after, in any order. NULL is a no-op (`OK`); an engine freed
/// already gives `CALLREC_RESULT_INVALID_HANDLE` and has no effect. Control thread; blocks.
///
/// # Safety
/// `engine` may be any value.
#[no_mangle]
pub unsafe extern "C" fn callrec_engine_free(engine: *mut callrec_engine) -> callrec_result {
    ffi_panic_boundary! {
        if engine.is_null() {
            return callrec_result::Ok;
        }
        // Shut down first: a thread still waiting in `callrec_engine_next_event` then returns,
        // and the engine is dropped when it leaves.
        try_engine!(engine).shutdown();
        free_in(&ENGINES, engine.addr())
    }
}

/// Copies the engine's counters into `metrics_out`. Any thread; real-time safe.
///
/// # Safety
/// `metrics_out` must be valid for a write.
#[no_mangle]
pub unsafe extern "C" fn callrec_engine_metrics(
    engine: *const callrec_engine,
    metrics_out: *mut callrec_metrics,
) -> callrec_result {
    ffi_panic_boundary! {
        try_non_null!(engine);
        try_out!(metrics_out);
        let engine = try_engine!(engine);
        let m = engine.metrics();
        let p = engine.publish_metrics().unwrap_or_default();
        write_out!(metrics_out, callrec_metrics {
            frames_dropped: m.frames_dropped,
            bytes_written: m.bytes_written,
            recordings_started: m.recordings_started,
            recordings_finished: m.recordings_finished,
            write_errors: m.write_errors,
            cbc_key_iv_reused: m.cbc_key_iv_reused,
            recordings_recovered: m.recordings_recovered,
            orphans_kept: m.orphans_kept,
            publish_uploaded: p.uploaded,
            publish_failed_attempts: p.failed_attempts,
            publish_gave_up: p.gave_up,
            publish_pending: p.pending,
        });
        callrec_result::Ok
    }
}

/// Writes into `count_out` how many orphaned `.part` files the engine has kept so far (its
/// recovery thread adds to the list as it walks the store; it never shrinks). Any thread; not
/// real-time safe (takes a lock).
///
/// # Safety
/// `count_out` must be valid for a write.
#[no_mangle]
pub unsafe extern "C" fn callrec_engine_kept_orphan_count(
    engine: *const callrec_engine,
    count_out: *mut usize,
) -> callrec_result {
    ffi_panic_boundary! {
        try_non_null!(engine);
        try_out!(count_out);
        let count = try_engine!(engine).kept_orphans().len();
        write_out!(count_out, count);
        callrec_result::Ok
    }
}

/// Copies the path of kept orphan number `index` (from 0, below
/// `callrec_engine_kept_orphan_count`) into `buf`, NUL-terminated; `len_out` gets its length
/// (also on `CALLREC_RESULT_BUFFER_TOO_SMALL`). An `.aescbc.part` is finished by
/// `callrec_recover_aescbc` with its key. An index out of range is
/// `CALLREC_RESULT_INVALID_ARGUMENT`. Any thread; not real-time safe.
///
/// # Safety
/// `buf` must be valid for writes of `buf_len` bytes; `len_out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn callrec_engine_kept_orphan(
    engine: *const callrec_engine,
    index: usize,
    buf: *mut c_char,
    buf_len: usize,
    len_out: *mut usize,
) -> callrec_result {
    ffi_panic_boundary! {
        try_non_null!(engine);
        let kept = try_engine!(engine).kept_orphans();
        let Some(path) = kept.get(index) else {
            return callrec_result::InvalidArgument;
        };
        let Some(path) = path.to_str() else {
            return callrec_result::InvalidUtf8;
        };
        // SAFETY: forwarded from this function's contract.
        unsafe { copy_out(path, buf, buf_len, len_out) }
    }
}

/// Finishes a crashed `aescbc` recording's `.aescbc.part` with its key and IV (hex, as in the
/// record action's `encryption_cipher`; not NUL-terminated, pass the lengths), whatever state
/// the crash left it in (its conversion to CBC half done included): the CBC file is written in
/// place, renamed to the `.part`'s name without `.aescbc.part`, and fsynced with its directory;
/// `samples_out` gets the audio samples it holds. A file that is not an `.aescbc.part`, is being
/// recorded, or whose header the key and IV do not decrypt gives `CALLREC_RESULT_REFUSED` and is
/// left unchanged; a key or IV that is not valid hex of an AES size,
/// `CALLREC_RESULT_INVALID_ARGUMENT`; an I/O error, `CALLREC_RESULT_IO`. Any thread; takes time
/// proportional to the file (run it off real-time threads).
///
/// # Safety
/// `part_path`, `key_hex` and `iv_hex` must be valid for reads of their lengths; `samples_out`
/// valid for a write.
#[no_mangle]
pub unsafe extern "C" fn callrec_recover_aescbc(
    part_path: *const c_char,
    part_path_len: usize,
    key_hex: *const c_char,
    key_hex_len: usize,
    iv_hex: *const c_char,
    iv_hex_len: usize,
    samples_out: *mut u64,
) -> callrec_result {
    ffi_panic_boundary! {
        try_out!(samples_out);
        let path = try_str!(part_path, part_path_len);
        let key = try_str!(key_hex, key_hex_len);
        let iv = try_str!(iv_hex, iv_hex_len);
        let Ok(spec) = callrec::cipher::CipherSpec::from_hex(callrec::cipher::Mode::Cbc, key, iv)
        else {
            return callrec_result::InvalidArgument;
        };
        match callrec::recover::recover_aescbc(std::path::Path::new(path), &spec) {
            Ok(done) => {
                write_out!(samples_out, done.samples);
                callrec_result::Ok
            }
            Err(e) if matches!(e.kind(), ErrorKind::InvalidInput | ErrorKind::InvalidData) => {
                callrec_result::Refused
            }
            Err(_) => callrec_result::Io,
        }
    }
}

/// Checks a record action's options JSON without starting a recording: writes what is wrong with
/// it (naming the field, e.g. `"seconds_max_duration: 0 is out of range (allowed 1..=86400)"`)
/// into `buf`, NUL-terminated, or an empty string when the options are valid; `len_out` gets the
/// message length (also on `CALLREC_RESULT_BUFFER_TOO_SMALL`, so the caller can size `buf`).
/// Options that are not UTF-8 give `CALLREC_RESULT_INVALID_UTF8`. Any thread; not real-time safe.
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
    ffi_panic_boundary! {
        try_out!(buf, len_out);
        let json = try_str!(options_json, options_json_len);
        let message = callrec::RecordOptions::from_json(json)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        // SAFETY: forwarded from this function's contract.
        unsafe { copy_out(&message, buf, buf_len, len_out) }
    }
}

/// Starts a recording of a call whose audio is in `codec` (`CALLREC_CODEC_ALAW` or
/// `CALLREC_CODEC_ULAW`), with the record action's options as JSON (`options_json_len` bytes;
/// length 0 means all defaults). Creates the file. On `CALLREC_RESULT_INVALID_OPTIONS` (or
/// `CALLREC_RESULT_IO`, `CALLREC_RESULT_SHUT_DOWN`) the reason, naming the field, is written to
/// `error_buf` (NUL-terminated, cut to fit; may be NULL with `error_buf_len` 0) and its full
/// length to `error_len_out` (may be NULL). Control thread; allocates; not real-time safe.
///
/// # Safety
/// `options_json` must be valid for reads of `options_json_len` bytes; `error_buf` NULL or valid
/// for writes of `error_buf_len` bytes; `error_len_out` NULL or valid for a write;
/// `recorder_out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn callrec_recorder_new(
    engine: *const callrec_engine,
    options_json: *const c_char,
    options_json_len: usize,
    codec: u32,
    error_buf: *mut c_char,
    error_buf_len: usize,
    error_len_out: *mut usize,
    recorder_out: *mut *mut callrec_recorder,
) -> callrec_result {
    ffi_panic_boundary! {
        try_non_null!(engine);
        try_out!(recorder_out);
        let engine = try_engine!(engine);
        let json = try_str!(options_json, options_json_len);
        let codec = try_ok!(codec_arg(codec));
        match engine.record_json(json, codec) {
            Ok((recorder, _abort)) => {
                let handle = try_ok!(RECORDERS.insert(recorder));
                // SAFETY: `error_buf`/`error_len_out` are NULL or writable per the contract.
                unsafe { error_out("", error_buf, error_buf_len, error_len_out) };
                write_out!(recorder_out, to_handle(handle));
                callrec_result::Ok
            }
            Err(e) => {
                // SAFETY: `error_buf`/`error_len_out` are NULL or writable per the contract.
                unsafe { error_out(&e.to_string(), error_buf, error_buf_len, error_len_out) };
                callrec_result::from(&e)
            }
        }
    }
}

/// Starts one recording of both parties of a call (DESIGN §13), whose audio is in `codec` on
/// both legs: `caller_out` gets the caller's recorder and `other_out` the other party's, two
/// ordinary recorders (push, feed, push_at, free each with the `callrec_recorder_*` functions)
/// that may be pushed from two threads at once. `options_json` is the record action's options;
/// `legs` defaults to `"both"` here (a stereo file: channel 1 the caller, channel 2 the other
/// party) and may be `"mixed"` (one channel, both summed); `"caller"` is refused. Hangup,
/// digits and pause on either recorder act on the whole recording; the beep is the caller's;
/// the results carry `"legs"`. Errors as for `callrec_recorder_new`
/// (`CALLREC_RESULT_NULL_PARAMETER` also when `caller_out` and `other_out` are the same
/// pointer); on an error neither output is written. Control thread; allocates; not real-time safe.
///
/// # Safety
/// As for `callrec_recorder_new`; `caller_out` and `other_out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn callrec_call_new(
    engine: *const callrec_engine,
    options_json: *const c_char,
    options_json_len: usize,
    codec: u32,
    error_buf: *mut c_char,
    error_buf_len: usize,
    error_len_out: *mut usize,
    caller_out: *mut *mut callrec_recorder,
    other_out: *mut *mut callrec_recorder,
) -> callrec_result {
    ffi_panic_boundary! {
        try_non_null!(engine);
        try_out!(caller_out, other_out);
        if caller_out == other_out {
            // One place for two handles: one would be lost (and its recording never freed).
            return callrec_result::NullParameter;
        }
        let engine = try_engine!(engine);
        let json = try_str!(options_json, options_json_len);
        let codec = try_ok!(codec_arg(codec));
        let started = callrec::RecordOptions::from_json_two_legs(json)
            .map_err(callrec::Error::Options)
            .and_then(|options| engine.record_call(&options, codec));
        match started {
            Ok((caller, other)) => {
                let caller = try_ok!(RECORDERS.insert(caller));
                let other = match RECORDERS.insert(other) {
                    Ok(other) => other,
                    Err(e) => {
                        // The other recorder was dropped: the recording stops ("other").
                        free_in(&RECORDERS, caller);
                        return callrec_result::from(e);
                    }
                };
                // SAFETY: `error_buf`/`error_len_out` are NULL or writable per the contract.
                unsafe { error_out("", error_buf, error_buf_len, error_len_out) };
                write_out!(caller_out, to_handle(caller));
                write_out!(other_out, to_handle(other));
                callrec_result::Ok
            }
            Err(e) => {
                // SAFETY: `error_buf`/`error_len_out` are NULL or writable per the contract.
                unsafe { error_out(&e.to_string(), error_buf, error_buf_len, error_len_out) };
                callrec_result::from(&e)
            }
        }
    }
}

/// Frees a recorder. If it is still recording, the recording stops with reason `other` and
/// keeps everything pushed. NULL is a no-op (`OK`); a recorder freed already gives
/// `CALLREC_RESULT_INVALID_HANDLE` and has no effect (even if its slot now holds a new
/// recorder). The recorder's thread; not real-time safe.
///
/// # Safety
/// `recorder` may be any value.
#[no_mangle]
pub unsafe extern "C" fn callrec_recorder_free(recorder: *mut callrec_recorder) -> callrec_result {
    ffi_panic_boundary! { free_in(&RECORDERS, recorder.addr()) }
}

/// Feeds the caller's audio: `len` bytes of G.711 in the call's codec, any length up to 8000
/// (one second; 160 = 20 ms is usual; `audio` may be NULL when `len` is 0). `status_out` gets
/// the status after it; after the stop, input is ignored and the stopped status returned. The
/// media thread; **real-time safe**.
///
/// # Safety
/// `audio` must be valid for reads of `len` bytes; `status_out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn callrec_recorder_push(
    recorder: *mut callrec_recorder,
    audio: *const u8,
    len: usize,
    status_out: *mut callrec_status,
) -> callrec_result {
    ffi_panic_boundary! {
        try_non_null!(recorder);
        try_out!(status_out);
        let input = try_slice!(audio, len);
        let status = try_ok!(try_recorder!(recorder).push(input));
        write_out!(status_out, to_c_status(status));
        callrec_result::Ok
    }
}

/// Places `len` bytes of audio at sample index `at` since the recording began (e.g. from an
/// RTP timestamp). On a two-leg recording (`callrec_call_new`), audio later than this leg's
/// position leaves a gap that the file gets as silence (counted in the leg's `samples_filled`),
/// and audio for indices already taken is late and dropped (counted in `frames_dropped`);
/// `len` 0 moves a leg whose audio has stopped on to `at`. On a one-leg recording the gap is
/// pushed as silence (late audio is dropped uncounted). `CALLREC_RESULT_INPUT_TOO_LONG` for
/// `len` over 8000 or an `at` more than a day (691,200,000 samples) past the leg's position
/// (nothing changed). `status_out` gets the status after it. The media thread; **real-time
/// safe**.
///
/// # Safety
/// `audio` must be valid for reads of `len` bytes (may be NULL when `len` is 0); `status_out`
/// valid for a write.
#[no_mangle]
pub unsafe extern "C" fn callrec_recorder_push_at(
    recorder: *mut callrec_recorder,
    at: u64,
    audio: *const u8,
    len: usize,
    status_out: *mut callrec_status,
) -> callrec_result {
    ffi_panic_boundary! {
        try_non_null!(recorder);
        try_out!(status_out);
        let input = try_slice!(audio, len);
        let status = try_ok!(try_recorder!(recorder).push_at(at, input));
        write_out!(status_out, to_c_status(status));
        callrec_result::Ok
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
    ffi_panic_boundary! {
        try_non_null!(recorder);
        try_out!(status_out);
        let input = try_slice!(audio, len);
        let outcome = try_recorder!(recorder).feed(input, Duration::from_millis(timeout_ms));
        let fed = match &outcome {
            Ok(_) => len,
            Err(RecorderError::Timeout { fed }) => *fed,
            Err(_) => 0,
        };
        if !fed_out.is_null() {
            write_out!(fed_out, fed);
        }
        let status = try_ok!(outcome);
        write_out!(status_out, to_c_status(status));
        callrec_result::Ok
    }
}

/// A digit from the host (an RFC 4733 event): `'0'-'9'`, `'*'`, `'#'`, `'A'-'D'` (or `'a'-'d'`).
/// Stops the recording with `bargein` when it is one of `barge_in_digits`; other digits are
/// ignored. The media thread; **real-time safe**.
///
/// # Safety
/// `status_out` must be valid for a write.
#[no_mangle]
pub unsafe extern "C" fn callrec_recorder_digit(
    recorder: *mut callrec_recorder,
    digit: c_char,
    status_out: *mut callrec_status,
) -> callrec_result {
    ffi_panic_boundary! {
        try_non_null!(recorder);
        try_out!(status_out);
        let status = try_ok!(try_recorder!(recorder).digit(digit as u8 as char));
        write_out!(status_out, to_c_status(status));
        callrec_result::Ok
    }
}

/// The call ended: stops with `hangup` (recording any partial frame held). The media thread;
/// **real-time safe**.
///
/// # Safety
/// `status_out` must be valid for a write.
#[no_mangle]
pub unsafe extern "C" fn callrec_recorder_hangup(
    recorder: *mut callrec_recorder,
    status_out: *mut callrec_status,
) -> callrec_result {
    ffi_panic_boundary! {
        try_non_null!(recorder);
        try_out!(status_out);
        let status = try_recorder!(recorder).hangup();
        write_out!(status_out, to_c_status(status));
        callrec_result::Ok
    }
}

/// Pauses the recording (PCI: the agent takes card details): until `callrec_recorder_resume`,
/// the caller's audio is left out of the file (`pause_behavior` `"skip"`) or replaced by
/// silence (`"silence"`); the silence and duration timers stop; digits still barge in. Pausing
/// while paused or stopped changes nothing. The media thread; **real-time safe**.
///
/// # Safety
/// `status_out` must be valid for a write.
#[no_mangle]
pub unsafe extern "C" fn callrec_recorder_pause(
    recorder: *mut callrec_recorder,
    status_out: *mut callrec_status,
) -> callrec_result {
    ffi_panic_boundary! {
        try_non_null!(recorder);
        try_out!(status_out);
        let status = try_recorder!(recorder).pause();
        write_out!(status_out, to_c_status(status));
        callrec_result::Ok
    }
}

/// Resumes a paused recording; resuming when not paused changes nothing. The media thread;
/// **real-time safe**.
///
/// # Safety
/// `status_out` must be valid for a write.
#[no_mangle]
pub unsafe extern "C" fn callrec_recorder_resume(
    recorder: *mut callrec_recorder,
    status_out: *mut callrec_status,
) -> callrec_result {
    ffi_panic_boundary! {
        try_non_null!(recorder);
        try_out!(status_out);
        let status = try_recorder!(recorder).resume();
        write_out!(status_out, to_c_status(status));
        callrec_result::Ok
    }
}

/// The recorder's current status. The media thread; **real-time safe**.
///
/// # Safety
/// `status_out` must be valid for a write.
#[no_mangle]
pub unsafe extern "C" fn callrec_recorder_status(
    recorder: *mut callrec_recorder,
    status_out: *mut callrec_status,
) -> callrec_result {
    ffi_panic_boundary! {
        try_non_null!(recorder);
        try_out!(status_out);
        let status = try_recorder!(recorder).status();
        write_out!(status_out, to_c_status(status));
        callrec_result::Ok
    }
}

/// Pulls the beep (with `beep_on_start`) into `buf` as G.711 in the call's codec, for the host
/// to send to the caller; `written_out` gets the bytes written (0: nothing to play). `buf` may
/// be NULL when `len` is 0 (as with `callrec_recorder_push`). The media thread; **real-time
/// safe**.
///
/// # Safety
/// `buf` must be valid for writes of `len` bytes; `written_out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn callrec_recorder_playout(
    recorder: *mut callrec_recorder,
    buf: *mut u8,
    len: usize,
    written_out: *mut usize,
) -> callrec_result {
    ffi_panic_boundary! {
        try_non_null!(recorder);
        try_out!(written_out);
        let out = try_slice_mut!(buf, len);
        let written = try_recorder!(recorder).playout(out);
        write_out!(written_out, written);
        callrec_result::Ok
    }
}

/// Free space in the recorder's ring, in bytes (a host feeding audio faster than real time
/// uses `callrec_recorder_feed` instead of watching this). The media thread; **real-time safe**.
///
/// # Safety
/// `free_out` must be valid for a write.
#[no_mangle]
pub unsafe extern "C" fn callrec_recorder_ring_free(
    recorder: *mut callrec_recorder,
    free_out: *mut usize,
) -> callrec_result {
    ffi_panic_boundary! {
        try_non_null!(recorder);
        try_out!(free_out);
        let free = try_recorder!(recorder).ring_free_bytes();
        write_out!(free_out, free);
        callrec_result::Ok
    }
}

/// Copies the recording's `filename` (as the result will report it) into `buf`,
/// NUL-terminated; `len_out` gets its length (also on `CALLREC_RESULT_BUFFER_TOO_SMALL`). Any
/// thread that owns the recorder.
///
/// # Safety
/// `buf` must be valid for writes of `buf_len` bytes; `len_out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn callrec_recorder_filename(
    recorder: *mut callrec_recorder,
    buf: *mut c_char,
    buf_len: usize,
    len_out: *mut usize,
) -> callrec_result {
    ffi_panic_boundary! {
        try_non_null!(recorder);
        let rec = try_recorder!(recorder);
        // SAFETY: forwarded from this function's contract.
        unsafe { copy_out(rec.filename(), buf, buf_len, len_out) }
    }
}

/// Makes a handle that can abort this recording from any thread (free it with
/// `callrec_abort_handle_free`; it may outlive the recorder). Control thread; allocates.
///
/// # Safety
/// `handle_out` must be valid for a write.
#[no_mangle]
pub unsafe extern "C" fn callrec_recorder_abort_handle(
    recorder: *mut callrec_recorder,
    handle_out: *mut *mut callrec_abort_handle,
) -> callrec_result {
    ffi_panic_boundary! {
        try_non_null!(recorder);
        try_out!(handle_out);
        let abort = try_recorder!(recorder).handle();
        let handle = try_ok!(ABORT_HANDLES.insert(abort));
        write_out!(handle_out, to_handle(handle));
        callrec_result::Ok
    }
}

/// Aborts the recording (reason `aborted`, keeping the audio pushed before); `stopped_out` is
/// true if this call stopped it, false if it had already stopped. **Any thread**, concurrently
/// with the media thread's calls; lock-free and **real-time safe**.
///
/// # Safety
/// `stopped_out` must be valid for a write.
#[no_mangle]
pub unsafe extern "C" fn callrec_abort_handle_abort(
    handle: *const callrec_abort_handle,
    stopped_out: *mut bool,
) -> callrec_result {
    ffi_panic_boundary! {
        try_non_null!(handle);
        try_out!(stopped_out);
        let stopped = try_ok!(ABORT_HANDLES.shared(handle.addr())).abort();
        write_out!(stopped_out, stopped);
        callrec_result::Ok
    }
}

/// Frees an abort handle (the recording goes on). NULL is a no-op (`OK`); a handle freed
/// already gives `CALLREC_RESULT_INVALID_HANDLE` and has no effect. Any thread.
///
/// # Safety
/// `handle` may be any value.
#[no_mangle]
pub unsafe extern "C" fn callrec_abort_handle_free(
    handle: *mut callrec_abort_handle,
) -> callrec_result {
    ffi_panic_boundary! { free_in(&ABORT_HANDLES, handle.addr()) }
}

/// Takes the next event (*finished* or *available*): waits up to `timeout_ms` milliseconds
/// (0: do not wait; negative: wait until one arrives or the engine is shut down and drained).
/// Returns `CALLREC_RESULT_NO_EVENT` when there is none. Free the event with
/// `callrec_event_free`. Control thread; blocks; not real-time safe.
///
/// # Safety
/// `event_out` must be valid for a write.
#[no_mangle]
pub unsafe extern "C" fn callrec_engine_next_event(
    engine: *const callrec_engine,
    timeout_ms: i64,
    event_out: *mut *mut callrec_event,
) -> callrec_result {
    ffi_panic_boundary! {
        try_non_null!(engine);
        try_out!(event_out);
        let timeout = u64::try_from(timeout_ms).ok().map(Duration::from_millis);
        let Some(event) = try_engine!(engine).next_event(timeout) else {
            return callrec_result::NoEvent;
        };
        let json = event.result.action_result_json();
        let handle = try_ok!(EVENTS.insert(EventData { event, json }));
        write_out!(event_out, to_handle(handle));
        callrec_result::Ok
    }
}

/// The event's main fields as plain C values. Any thread.
///
/// # Safety
/// `info_out` must be valid for a write.
#[no_mangle]
pub unsafe extern "C" fn callrec_event_get_info(
    event: *const callrec_event,
    info_out: *mut callrec_event_info,
) -> callrec_result {
    ffi_panic_boundary! {
        try_non_null!(event);
        try_out!(info_out);
        let e = try_ok!(EVENTS.shared(event.addr()));
        let r = &e.event.result;
        write_out!(info_out, callrec_event_info {
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
        });
        callrec_result::Ok
    }
}

/// The length in bytes of the event's action_result JSON, without the NUL (so the buffer for
/// `callrec_event_json` needs one more byte). Any thread.
///
/// # Safety
/// `len_out` must be valid for a write.
#[no_mangle]
pub unsafe extern "C" fn callrec_event_json_len(
    event: *const callrec_event,
    len_out: *mut usize,
) -> callrec_result {
    ffi_panic_boundary! {
        try_non_null!(event);
        try_out!(len_out);
        let len = try_ok!(EVENTS.shared(event.addr())).json.len();
        write_out!(len_out, len);
        callrec_result::Ok
    }
}

/// Copies the event's action_result JSON (`{"action":"record","result":{...}}`) into `buf`,
/// NUL-terminated; `len_out` gets its length. `CALLREC_RESULT_BUFFER_TOO_SMALL` if `buf_len` is
/// not at least `callrec_event_json_len` + 1 (nothing written but `len_out`). Any thread.
///
/// # Safety
/// `buf` must be valid for writes of `buf_len` bytes; `len_out` for a write.
#[no_mangle]
pub unsafe extern "C" fn callrec_event_json(
    event: *const callrec_event,
    buf: *mut c_char,
    buf_len: usize,
    len_out: *mut usize,
) -> callrec_result {
    ffi_panic_boundary! {
        try_non_null!(event);
        let e = try_ok!(EVENTS.shared(event.addr()));
        // SAFETY: forwarded from this function's contract.
        unsafe { copy_out(&e.json, buf, buf_len, len_out) }
    }
}

/// Copies the event's `filename` into `buf`, NUL-terminated; `len_out` gets its length (also
/// on `CALLREC_RESULT_BUFFER_TOO_SMALL`). Any thread.
///
/// # Safety
/// `buf` must be valid for writes of `buf_len` bytes; `len_out` for a write.
#[no_mangle]
pub unsafe extern "C" fn callrec_event_filename(
    event: *const callrec_event,
    buf: *mut c_char,
    buf_len: usize,
    len_out: *mut usize,
) -> callrec_result {
    ffi_panic_boundary! {
        try_non_null!(event);
        let e = try_ok!(EVENTS.shared(event.addr()));
        // SAFETY: forwarded from this function's contract.
        unsafe { copy_out(&e.event.result.filename, buf, buf_len, len_out) }
    }
}

/// Frees an event. NULL is a no-op (`OK`); an event freed already gives
/// `CALLREC_RESULT_INVALID_HANDLE` and has no effect. Any thread.
///
/// # Safety
/// `event` may be any value.
#[no_mangle]
pub unsafe extern "C" fn callrec_event_free(event: *mut callrec_event) -> callrec_result {
    ffi_panic_boundary! { free_in(&EVENTS, event.addr()) }
}
