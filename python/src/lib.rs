//! The `callrec._callrec` extension module: Python bindings over the `callrec` crate (DESIGN §9,
//! with pydantic-core as the model). Thin: arguments are converted, calls forwarded, results
//! converted back. `python/callrec/__init__.py` re-exports these names; the stubs in
//! `__init__.pyi` are kept by hand and checked with `mypy.stubtest`.
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

use callrec::energy::{frame_level_dbm0, EnergyKernel};
use callrec::g711::{self, Codec};
use callrec::{
    Engine as CoreEngine, EngineConfig, Event, EventKind, Reason, Recorder as CoreRecorder,
    RecorderError, RecorderHandle, RecordingResult, Status as CoreStatus,
};
use crossbeam_channel::RecvTimeoutError;
use pyo3::buffer::PyBuffer;
use pyo3::create_exception;
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyTimeoutError, PyValueError};
use pyo3::marker::Ungil;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

/// The longest timeout accepted, in seconds (one year); None waits forever.
const MAX_TIMEOUT_SECONDS: f64 = 365.0 * 86_400.0;

/// How long one wait lasts before the GIL is taken back to check for signals, so Ctrl-C raises
/// KeyboardInterrupt promptly while waiting for an event.
const WAIT_SLICE: Duration = Duration::from_millis(50);

/// Every engine made in this process, so the interpreter's exit can finalize them even when a
/// consumer thread still holds one (see `_shutdown_all`).
static ENGINES: Mutex<Vec<Weak<CoreEngine>>> = Mutex::new(Vec::new());

/// The threads now inside one of this module's GIL-released sections, and whether the
/// interpreter's exit closed them (see [`detach`] and `_shutdown_all`).
struct Detached {
    closed: bool,
    inside: usize,
}

static DETACHED: Mutex<Detached> = Mutex::new(Detached {
    closed: false,
    inside: 0,
});

/// Signalled when the last thread inside a GIL-released section has taken the GIL back.
static ALL_BACK: Condvar = Condvar::new();

fn detached() -> MutexGuard<'static, Detached> {
    DETACHED.lock().unwrap_or_else(|p| p.into_inner())
}

/// One thread inside a GIL-released section; dropped once it holds the GIL again.
struct Inside(());

impl Inside {
    /// None once the interpreter's exit has closed the sections.
    fn enter() -> Option<Inside> {
        let mut d = detached();
        if d.closed {
            return None;
        }
        d.inside += 1;
        Some(Inside(()))
    }
}

impl Drop for Inside {
    fn drop(&mut self) {
        let mut d = detached();
        d.inside -= 1;
        if d.inside == 0 {
            ALL_BACK.notify_all();
        }
    }
}

/// Runs `f` with the GIL released, as `py.detach(f)` does, unless the interpreter is exiting:
/// then `Err(f)`, not run, for the caller to run holding the GIL (or not at all).
///
/// Why: a thread that takes the GIL back after the interpreter began finalizing is ended by
/// CPython before 3.14 with `pthread_exit` from `PyEval_RestoreThread`, a forced unwind into
/// these Rust frames (PyO3 0.30 parks the thread forever by catching it in a destructor, which
/// PyO3 itself calls unspecified behaviour), and, racing the finalizing thread, CPython may
/// read that thread's freed state (python/cpython#110052, #127893; fixed in 3.14). So no thread
/// may be in here when finalization starts: `_shutdown_all`, which `callrec/__init__.py` registers to
/// run at exit before finalization, closes the sections, wakes the waits (it shuts the engines
/// down) and waits until every thread inside has taken the GIL back. Every section is bounded
/// (the waits are sliced), so that wait ends.
fn try_detach<T, F>(py: Python<'_>, f: F) -> Result<T, F>
where
    F: Ungil + FnOnce() -> T,
    T: Ungil,
{
    let Some(inside) = Inside::enter() else {
        return Err(f);
    };
    let out = py.detach(f);
    // Dropped only now: the GIL is held again (also when `f` panicked).
    drop(inside);
    Ok(out)
}

/// [`try_detach`], running `f` with the GIL held once the interpreter is exiting: for work that
/// ends by itself (a computation, a shutdown, a bounded wait).
fn detach<T, F>(py: Python<'_>, f: F) -> T
where
    F: Ungil + FnOnce() -> T,
    T: Ungil,
{
    try_detach(py, f).unwrap_or_else(|f| f())
}

create_exception!(
    callrec,
    OptionsError,
    PyValueError,
    "A record option is invalid. `field` names the option (e.g. \"seconds_max_duration\")."
);

fn options_error(py: Python<'_>, e: &callrec::OptionsError) -> PyErr {
    let err = OptionsError::new_err(e.to_string());
    // The field name as an attribute, so a host can point at the offending property.
    let _ = err.value(py).setattr("field", e.field.as_str());
    err
}

fn engine_error(py: Python<'_>, e: callrec::Error) -> PyErr {
    match e {
        callrec::Error::Options(o) => options_error(py, &o),
        callrec::Error::Config(_) => PyValueError::new_err(e.to_string()),
        callrec::Error::Io { .. } => PyOSError::new_err(e.to_string()),
        callrec::Error::ShutDown => PyRuntimeError::new_err(e.to_string()),
    }
}

fn codec_arg(codec: &str) -> PyResult<Codec> {
    Codec::from_name(codec).ok_or_else(|| {
        PyValueError::new_err(format!("codec must be \"alaw\" or \"ulaw\", not {codec:?}"))
    })
}

/// Takes a C-contiguous byte buffer (bytes, bytearray, memoryview, array('B'), ...). Call this
/// before taking any lock: getting a buffer can run Python code (PEP 688 `__buffer__`), which
/// may call back into callrec.
fn take_buffer(data: &Bound<'_, PyAny>) -> PyResult<PyBuffer<u8>> {
    let buffer = PyBuffer::<u8>::get(data)?;
    if buffer.as_slice_ptr().is_none() {
        return Err(PyValueError::new_err(
            "the buffer must be C-contiguous bytes",
        ));
    }
    Ok(buffer)
}

/// Calls `f` on a taken buffer's bytes in place, without copying.
///
/// The buffer contract (also in the README): the bytes are read during the call only, with the
/// GIL held, so no Python code can change them meanwhile; the exporter keeps the memory alive
/// and unresized while exported. A native exporter that writes to its memory from another
/// thread without the GIL while the call reads breaks the buffer protocol's rules; callrec then
/// records whatever bytes it read.
fn with_bytes<T>(buffer: &PyBuffer<u8>, f: impl FnOnce(&[u8]) -> T) -> PyResult<T> {
    let ptr = buffer
        .as_slice_ptr()
        .ok_or_else(|| PyValueError::new_err("the buffer must be C-contiguous bytes"))?;
    // SAFETY: the buffer is held (exported) for the whole call, is C-contiguous bytes (checked
    // by `as_slice_ptr` and the `u8` format check in `get`), and we hold the GIL and call no
    // Python code while the slice lives, so nothing can resize or write to it meanwhile.
    Ok(f(unsafe { ptr.as_ref() }))
}

/// Where a recording is: `phase` is "beeping", "waiting", "recording" or "stopped"; `reason`
/// says why it stopped (None while it runs).
#[pyclass(module = "callrec", frozen, eq, from_py_object)]
#[derive(Clone, Copy, PartialEq, Eq)]
struct Status {
    inner: CoreStatus,
}

#[pymethods]
impl Status {
    /// "beeping", "waiting", "recording" or "stopped".
    #[getter]
    fn phase(&self) -> &'static str {
        match self.inner {
            CoreStatus::Beeping => "beeping",
            CoreStatus::Waiting => "waiting",
            CoreStatus::Recording => "recording",
            CoreStatus::Stopped(_) => "stopped",
        }
    }

    /// Why the recording stopped ("silence", "bargein", ...), or None while it runs.
    #[getter]
    fn reason(&self) -> Option<&'static str> {
        match self.inner {
            CoreStatus::Stopped(r) => Some(r.as_str()),
            _ => None,
        }
    }

    /// True once the recording has stopped.
    #[getter]
    fn stopped(&self) -> bool {
        matches!(self.inner, CoreStatus::Stopped(_))
    }

    fn __repr__(&self) -> String {
        match self.reason() {
            Some(r) => format!("Status(phase='stopped', reason='{r}')"),
            None => format!("Status(phase='{}')", self.phase()),
        }
    }
}

fn status(inner: CoreStatus) -> Status {
    Status { inner }
}

/// One *finished* or *available* event: the recording's result. (`Result` in Python; named
/// otherwise here so Rust's prelude `Result` stays itself.)
#[pyclass(module = "callrec", name = "Result", frozen)]
struct EventResult {
    kind: EventKind,
    result: RecordingResult,
}

#[pymethods]
impl EventResult {
    /// "finished" (the file is complete: call next_page) or "available" (synced to disk: call
    /// recording_available_page).
    #[getter]
    fn kind(&self) -> &'static str {
        match self.kind {
            EventKind::Finished => "finished",
            EventKind::Available => "available",
        }
    }

    /// The user string from the options.
    #[getter]
    fn id(&self) -> &str {
        &self.result.id
    }

    /// The file's name in the store (under the engine's store directory).
    #[getter]
    fn filename(&self) -> &str {
        &self.result.filename
    }

    /// True in the available event.
    #[getter]
    fn file_available(&self) -> bool {
        self.result.file_available
    }

    /// Whether the recording holds sound above the background noise.
    #[getter]
    fn contains_sound(&self) -> bool {
        self.result.contains_sound
    }

    /// The file's audio length in seconds, rounded to one decimal.
    #[getter]
    fn seconds_duration(&self) -> f64 {
        self.result.seconds_duration()
    }

    /// Why the recording stopped: "duration", "bargein", "silence", "filesize", "hangup",
    /// "aborted", "error" or "other".
    #[getter]
    fn reason(&self) -> &'static str {
        self.result.reason.as_str()
    }

    /// The digit that stopped the recording when `reason` is "bargein", else None.
    #[getter]
    fn barge_in_digit(&self) -> Option<String> {
        match (self.result.reason, self.result.barge_in_digit) {
            (Reason::Bargein, Some(d)) => Some(d.to_string()),
            _ => None,
        }
    }

    /// The file's audio length in samples (8000 per second).
    #[getter]
    fn samples(&self) -> u64 {
        self.result.samples
    }

    /// Frames lost because the writer fell behind (0 on a healthy system).
    #[getter]
    fn frames_dropped(&self) -> u64 {
        self.result.frames_dropped
    }

    /// Each party of a two-leg recording: `{"caller": {...}, "other": {...}}` with
    /// `contains_sound`, `seconds_of_speech`, `samples_filled` and `frames_dropped` (as in the
    /// JSON); None for a one-leg recording.
    #[getter]
    fn legs<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        if self.result.legs.is_none() {
            return Ok(None);
        }
        self.to_dict(py)?.get_item("legs")
    }

    /// Why publishing to the object store gave up (only in an *available* event with reason
    /// "error" from an engine that publishes), else None. Never holds a credential.
    #[getter]
    fn publish_error(&self) -> Option<&str> {
        self.result.publish_error.as_deref()
    }

    /// The record action's `{"action":"record","result":{...}}` JSON.
    fn action_result_json(&self) -> String {
        self.result.action_result_json()
    }

    /// The `result` object of the JSON as a dict (same keys, same order).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let json = py.import("json")?;
        let parsed = json.call_method1("loads", (self.result.action_result_json(),))?;
        Ok(parsed.get_item("result")?.cast_into::<PyDict>()?)
    }

    fn __repr__(&self) -> String {
        format!(
            "Result(kind='{}', filename='{}', reason='{}', seconds_duration={:.1})",
            self.kind(),
            self.result.filename,
            self.reason(),
            self.seconds_duration()
        )
    }
}

fn result(event: Event) -> EventResult {
    EventResult {
        kind: event.kind,
        result: event.result,
    }
}

/// A recording engine writing under a store directory. Use it as a context manager, or call
/// `shutdown()`: that finalizes every open recording (reason "other").
#[pyclass(module = "callrec", frozen)]
struct Engine {
    engine: Arc<CoreEngine>,
}

#[pymethods]
impl Engine {
    /// `Engine(store, **config)`: the configuration keywords are the engine configuration's
    /// names (`writers`, `ring_milliseconds`, `poll_milliseconds`, `batch_bytes`, ...), with
    /// the same ranges and messages as the C API's JSON. `ring_seconds` (0.1..=60) is accepted
    /// as another way to give `ring_milliseconds`.
    #[new]
    #[pyo3(signature = (store, **config))]
    fn new(
        py: Python<'_>,
        store: std::path::PathBuf,
        config: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let config = engine_config(py, config)?;
        let engine = Arc::new(
            callrec_publish::start_engine(store, config).map_err(|e| engine_error(py, e))?,
        );
        let mut all = ENGINES.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|e| e.strong_count() > 0);
        all.push(Arc::downgrade(&engine));
        Ok(Engine { engine })
    }

    /// Starts a recording of a call whose audio is `codec` ("alaw" or "ulaw"). `options` is the
    /// record action's options as a dict or a JSON string (None: all defaults).
    #[pyo3(signature = (options = None, codec = "alaw"))]
    fn record(
        &self,
        py: Python<'_>,
        options: Option<&Bound<'_, PyAny>>,
        codec: &str,
    ) -> PyResult<Recorder> {
        let codec = codec_arg(codec)?;
        let json = options_json(py, options)?;
        let (recorder, handle) = self
            .engine
            .record_json(&json, codec)
            .map_err(|e| engine_error(py, e))?;
        Ok(Recorder::wrap(recorder, handle))
    }

    /// Starts one recording of both parties of a call (options `legs` "both": a stereo file,
    /// channel 1 the caller, channel 2 the other party; or "mixed": one channel, both summed;
    /// `legs` defaults to "both" here). Returns `(caller, other)`: two recorders, each for one
    /// party's audio, which may be pushed from two threads at once. `hangup`, `digit`, `pause`
    /// and `resume` on either act on the whole recording; the beep is the caller's.
    #[pyo3(signature = (options = None, codec = "alaw"))]
    fn record_call(
        &self,
        py: Python<'_>,
        options: Option<&Bound<'_, PyAny>>,
        codec: &str,
    ) -> PyResult<(Recorder, Recorder)> {
        let codec = codec_arg(codec)?;
        let json = options_json(py, options)?;
        let parsed =
            callrec::RecordOptions::from_json_two_legs(&json).map_err(|e| options_error(py, &e))?;
        let (caller, other) = self
            .engine
            .record_call(&parsed, codec)
            .map_err(|e| engine_error(py, e))?;
        let (caller_handle, other_handle) = (caller.handle(), other.handle());
        Ok((
            Recorder::wrap(caller, caller_handle),
            Recorder::wrap(other, other_handle),
        ))
    }

    /// The next event, waiting up to `timeout` seconds (forever when None); None when there is
    /// none (or the engine is shut down and every event has been read). Releases the GIL.
    #[pyo3(signature = (timeout = None))]
    fn next_event(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<EventResult>> {
        Ok(wait_event(py, &self.engine, timeout_arg(timeout)?)?.map(result))
    }

    /// Iterates over events as they come. With a timeout, the iteration ends when no event
    /// arrives within `timeout` seconds; without one, when the engine is shut down and drained.
    #[pyo3(signature = (timeout = None))]
    fn events(&self, timeout: Option<f64>) -> PyResult<Events> {
        Ok(Events {
            engine: self.engine.clone(),
            timeout: timeout_arg(timeout)?,
        })
    }

    /// The engine's counters: frames_dropped, bytes_written, recordings_started,
    /// recordings_finished, write_errors, cbc_key_iv_reused, recordings_recovered (orphaned
    /// `.part` files of a crashed process finalized at start), orphans_kept (those kept instead:
    /// see kept_orphans), and the publisher's publish_uploaded, publish_failed_attempts,
    /// publish_gave_up, publish_pending (0 when the engine does not publish).
    fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let m = self.engine.metrics();
        let p = self.engine.publish_metrics().unwrap_or_default();
        let d = PyDict::new(py);
        d.set_item("frames_dropped", m.frames_dropped)?;
        d.set_item("bytes_written", m.bytes_written)?;
        d.set_item("recordings_started", m.recordings_started)?;
        d.set_item("recordings_finished", m.recordings_finished)?;
        d.set_item("write_errors", m.write_errors)?;
        d.set_item("cbc_key_iv_reused", m.cbc_key_iv_reused)?;
        d.set_item("recordings_recovered", m.recordings_recovered)?;
        d.set_item("orphans_kept", m.orphans_kept)?;
        d.set_item("publish_uploaded", p.uploaded)?;
        d.set_item("publish_failed_attempts", p.failed_attempts)?;
        d.set_item("publish_gave_up", p.gave_up)?;
        d.set_item("publish_pending", p.pending)?;
        Ok(d)
    }

    /// The orphaned `.part` files of a crashed process that this engine kept rather than
    /// finalized (an `.aescbc.part` needs its key: `callrec.recover_aescbc`). The engine's
    /// recovery thread adds to the list as it walks the store.
    fn kept_orphans(&self) -> Vec<std::path::PathBuf> {
        self.engine.kept_orphans()
    }

    /// The store's root directory.
    #[getter]
    fn store(&self) -> std::path::PathBuf {
        self.engine.store_root().to_path_buf()
    }

    /// Stops accepting recordings, finalizes every open one (reason "other", keeping all audio
    /// pushed) and waits for the files to be synced. Idempotent. Releases the GIL.
    fn shutdown(&self, py: Python<'_>) {
        let engine = self.engine.clone();
        detach(py, move || engine.shutdown());
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) {
        self.shutdown(py);
    }
}

/// The options argument (a dict, a JSON string or None) as the options JSON.
fn options_json(py: Python<'_>, options: Option<&Bound<'_, PyAny>>) -> PyResult<String> {
    match options {
        None => Ok(String::new()),
        Some(o) if o.is_instance_of::<PyString>() => o.extract::<String>(),
        Some(o) if o.is_instance_of::<PyDict>() => py
            .import("json")?
            .call_method1("dumps", (o,))?
            .extract::<String>(),
        Some(_) => Err(pyo3::exceptions::PyTypeError::new_err(
            "options must be a dict, a JSON string or None",
        )),
    }
}

/// The engine configuration from `Engine(store, **config)`'s keywords, through the same JSON
/// parser the C API uses.
fn engine_config(py: Python<'_>, config: Option<&Bound<'_, PyDict>>) -> PyResult<EngineConfig> {
    let Some(config) = config else {
        return Ok(EngineConfig::default());
    };
    let config = config.copy()?;
    if let Some(seconds) = config.get_item("ring_seconds")? {
        config.del_item("ring_seconds")?;
        if config.contains("ring_milliseconds")? {
            return Err(PyValueError::new_err(
                "engine configuration: give ring_seconds or ring_milliseconds, not both",
            ));
        }
        let seconds: f64 = seconds.extract().map_err(|_| {
            PyValueError::new_err("engine configuration: ring_seconds: must be a number")
        })?;
        if !(0.1..=60.0).contains(&seconds) {
            return Err(PyValueError::new_err(format!(
                "engine configuration: ring_seconds: must be 0.1..=60, not {seconds}"
            )));
        }
        config.set_item("ring_milliseconds", (seconds * 1000.0).round() as u64)?;
    }
    let json: String = py
        .import("json")?
        .call_method1("dumps", (config,))?
        .extract()?;
    EngineConfig::from_json(&json).map_err(|e| engine_error(py, e))
}

/// A timeout in seconds: finite, 0..=one year, or None (wait forever).
fn timeout_arg(timeout: Option<f64>) -> PyResult<Option<Duration>> {
    match timeout {
        None => Ok(None),
        Some(t) if (0.0..=MAX_TIMEOUT_SECONDS).contains(&t) => Ok(Some(Duration::from_secs_f64(t))),
        Some(t) => Err(PyValueError::new_err(format!(
            "timeout must be 0..={MAX_TIMEOUT_SECONDS} seconds, or None to wait forever; not {}",
            callrec::json::printable(&t.to_string(), 24)
        ))),
    }
}

/// Waits for the next event up to `timeout` (forever when None) in slices of [`WAIT_SLICE`]
/// with the GIL released, checking for signals between slices, so Ctrl-C raises
/// KeyboardInterrupt. None on timeout, or when the engine is shut down and drained.
fn wait_event(
    py: Python<'_>,
    engine: &Arc<CoreEngine>,
    timeout: Option<Duration>,
) -> PyResult<Option<Event>> {
    if timeout.is_some_and(|t| t.is_zero()) {
        return Ok(engine.next_event(Some(Duration::ZERO)));
    }
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let slice = match deadline {
            None => WAIT_SLICE,
            Some(d) => d.saturating_duration_since(Instant::now()).min(WAIT_SLICE),
        };
        let waiting = engine.clone();
        let Ok(received) = try_detach(py, move || waiting.events().recv_timeout(slice)) else {
            // The interpreter is exiting (every engine is shut down): what is already there,
            // without waiting.
            return Ok(engine.next_event(Some(Duration::ZERO)));
        };
        match received {
            Ok(event) => return Ok(Some(event)),
            // Shut down and every event read.
            Err(RecvTimeoutError::Disconnected) => return Ok(None),
            Err(RecvTimeoutError::Timeout) => {}
        }
        py.check_signals()?;
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(None);
        }
    }
}

/// Shuts down every engine still alive (finalizing its open recordings). `callrec/__init__.py`
/// calls this at interpreter exit, before non-daemon threads are joined, so a consumer thread
/// waiting in `events()` ends and no `.part` file is left behind.
///
/// It also closes this module's GIL-released sections and returns only once no thread is
/// inside one (see [`try_detach`]): a daemon thread that was waiting in `events()` has then
/// taken the GIL back before finalization begins, and from now on waits do not release the GIL.
#[pyfunction]
fn _shutdown_all(py: Python<'_>) {
    detached().closed = true;
    let engines: Vec<Arc<CoreEngine>> = ENGINES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .drain(..)
        .filter_map(|e| e.upgrade())
        .collect();
    // Not `detach`: this is the thread that will finalize the interpreter (it may take the GIL
    // back), and it must release the GIL for the threads inside to take it.
    py.detach(move || {
        engines.iter().for_each(|e| e.shutdown());
        let mut d = detached();
        while d.inside > 0 {
            d = ALL_BACK.wait(d).unwrap_or_else(|p| p.into_inner());
        }
    });
}

/// The iterator returned by `Engine.events()`.
#[pyclass(module = "callrec", frozen)]
struct Events {
    engine: Arc<CoreEngine>,
    timeout: Option<Duration>,
}

#[pymethods]
impl Events {
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<EventResult>> {
        Ok(wait_event(py, &self.engine, self.timeout)?.map(result))
    }
}

/// The real-time side of one recording: push the caller's audio, digits and the hangup. Use it
/// as a context manager or call `close()`; closing a recording that is still running stops it
/// with reason "other" (everything pushed is kept).
#[pyclass(module = "callrec", frozen)]
struct Recorder {
    // The recorder is used from one thread at a time, but Python may hand the object to any
    // thread, so it sits behind an (uncontended) mutex. Aborting goes through `handle`, which
    // never takes this lock.
    recorder: Mutex<Option<CoreRecorder>>,
    handle: RecorderHandle,
    filename: String,
    /// Which party of a two-leg recording this is (None: a one-leg recording).
    leg: Option<usize>,
}

impl Recorder {
    fn wrap(recorder: CoreRecorder, handle: RecorderHandle) -> Recorder {
        Recorder {
            filename: recorder.filename().to_owned(),
            leg: recorder.leg(),
            recorder: Mutex::new(Some(recorder)),
            handle,
        }
    }

    fn open(&self) -> PyResult<MutexGuard<'_, Option<CoreRecorder>>> {
        let guard = self.recorder.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            return Err(PyRuntimeError::new_err("the recorder is closed"));
        }
        Ok(guard)
    }
}

/// How long one wait of `Recorder.feed` lasts before it looks for signals.
const FEED_SLICE: Duration = Duration::from_millis(100);

fn recorder_error(e: RecorderError) -> PyErr {
    PyValueError::new_err(e.to_string())
}

#[pymethods]
impl Recorder {
    /// Feeds the caller's audio (G.711 in the call's codec, up to 8000 bytes) from any
    /// C-contiguous byte buffer, without copying; returns the status after it. After the stop,
    /// input is ignored and the stopped status returned.
    fn push(&self, frame: &Bound<'_, PyAny>) -> PyResult<Status> {
        // The buffer first: getting it may run Python code that calls push again.
        let buffer = take_buffer(frame)?;
        let mut guard = self.open()?;
        let rec = guard.as_mut().expect("open() checked");
        with_bytes(&buffer, |bytes| rec.push(bytes))?
            .map(status)
            .map_err(recorder_error)
    }

    /// Places audio at sample index `at` since the recording began (e.g. from an RTP
    /// timestamp): later than this party's position leaves a gap the file gets as silence
    /// (counted in the party's `samples_filled` on a two-leg recording); audio for indices
    /// already taken is late and dropped (counted in the party's `frames_dropped` on a two-leg
    /// recording). `push_at(at, b"")` moves a party whose audio has stopped on to `at`. Same
    /// buffers and limits as `push`; ValueError for an `at` more than a day past the position.
    fn push_at(&self, at: u64, frame: &Bound<'_, PyAny>) -> PyResult<Status> {
        let buffer = take_buffer(frame)?;
        let mut guard = self.open()?;
        let rec = guard.as_mut().expect("open() checked");
        with_bytes(&buffer, |bytes| rec.push_at(at, bytes))?
            .map(status)
            .map_err(recorder_error)
    }

    /// Which party this recorder takes: "caller" or "other" on a two-leg recording
    /// (`Engine.record_call`), None on a one-leg one.
    #[getter]
    fn leg(&self) -> Option<&'static str> {
        self.leg.map(|l| if l == 0 { "caller" } else { "other" })
    }

    /// Feeds audio of any length faster than real time (from a file or a pipe), waiting for the
    /// writer instead of dropping audio when the ring is full; returns the status after it.
    /// `timeout` is how many seconds it may wait in all (None: as long as it takes). Releases
    /// the GIL while it waits; Ctrl-C interrupts the wait. On a timeout it raises TimeoutError,
    /// whose `fed` attribute says how many bytes were taken.
    #[pyo3(signature = (frame, timeout = None))]
    fn feed(
        &self,
        py: Python<'_>,
        frame: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<Status> {
        let timeout = timeout_arg(timeout)?;
        // Copied so the GIL can be released while waiting (another thread may write to the
        // caller's buffer meanwhile); feed is the non-real-time call, a copy costs nothing here.
        let audio = with_bytes(&take_buffer(frame)?, |bytes| bytes.to_vec())?;
        drop(self.open()?); // closed: the error now, before any waiting
        let started = std::time::Instant::now();
        let mut fed = 0;
        loop {
            // Wait in slices so a signal (Ctrl-C) is seen between them.
            let left = timeout.map(|t| t.saturating_sub(started.elapsed()));
            let slice = left.map_or(FEED_SLICE, |l| l.min(FEED_SLICE));
            let rest = &audio[fed..];
            // The recorder's lock is taken and released without the GIL: a thread holding the
            // GIL while it waits for the lock (a push from another thread) cannot deadlock us.
            // (Once the interpreter is exiting it is taken with the GIL, see `try_detach`: a
            // thread still in a GIL-released feed releases the lock before taking the GIL.)
            let fed_slice = detach(py, || {
                let mut guard = self.recorder.lock().unwrap_or_else(|p| p.into_inner());
                guard.as_mut().map(|rec| rec.feed(rest, slice))
            });
            let Some(fed_slice) = fed_slice else {
                return Err(PyRuntimeError::new_err("the recorder is closed"));
            };
            match fed_slice {
                Ok(s) => return Ok(status(s)),
                Err(RecorderError::Timeout { fed: n }) => {
                    fed += n;
                    if left.is_some_and(|l| l <= slice) {
                        let err = PyTimeoutError::new_err(format!(
                            "timed out waiting for the writer after feeding {fed} of {} bytes",
                            audio.len()
                        ));
                        err.value(py).setattr("fed", fed)?;
                        return Err(err);
                    }
                    py.check_signals()?;
                }
                Err(e) => return Err(recorder_error(e)),
            }
        }
    }

    /// A digit from the host (e.g. an RFC 4733 event): stops with "bargein" when it is one of
    /// barge_in_digits; other digits are ignored.
    fn digit(&self, digit: &str) -> PyResult<Status> {
        let mut chars = digit.chars();
        let (Some(d), None) = (chars.next(), chars.next()) else {
            return Err(PyValueError::new_err(format!(
                "digit must be one character of 0-9, *, #, A-D, not {digit:?}"
            )));
        };
        let mut guard = self.open()?;
        let rec = guard.as_mut().expect("open() checked");
        rec.digit(d).map(status).map_err(recorder_error)
    }

    /// The call ended: stops with "hangup".
    fn hangup(&self) -> PyResult<Status> {
        let mut guard = self.open()?;
        Ok(status(guard.as_mut().expect("open() checked").hangup()))
    }

    /// Pauses the recording (PCI: the agent takes card details): until resume(), the audio is
    /// left out of the file (pause_behavior "skip") or replaced by silence ("silence"); the
    /// silence and duration timers stop; digits still barge in. No effect when paused or stopped.
    fn pause(&self) -> PyResult<Status> {
        let mut guard = self.open()?;
        Ok(status(guard.as_mut().expect("open() checked").pause()))
    }

    /// Resumes a paused recording; no effect when not paused.
    fn resume(&self) -> PyResult<Status> {
        let mut guard = self.open()?;
        Ok(status(guard.as_mut().expect("open() checked").resume()))
    }

    /// True between pause() and resume().
    #[getter]
    fn paused(&self) -> PyResult<bool> {
        let mut guard = self.open()?;
        Ok(guard.as_mut().expect("open() checked").is_paused())
    }

    /// Aborts the recording (reason "aborted"); True if this call stopped it. Safe from any
    /// thread, at any time, even after close().
    fn abort(&self) -> bool {
        self.handle.abort()
    }

    /// Pulls the beep (with beep_on_start) into a writable byte buffer, for the host to send to
    /// the caller; returns the bytes written (0: nothing to play).
    fn playout(&self, buffer: &Bound<'_, PyAny>) -> PyResult<usize> {
        // The buffer before the lock, as in `push`.
        let buf = take_buffer(buffer)?;
        let mut guard = self.open()?;
        let rec = guard.as_mut().expect("open() checked");
        if buf.readonly() {
            return Err(PyValueError::new_err(
                "playout needs a writable buffer (e.g. a bytearray)",
            ));
        }
        let ptr = buf
            .as_slice_ptr()
            .ok_or_else(|| PyValueError::new_err("the buffer must be C-contiguous bytes"))?;
        // SAFETY: a writable, C-contiguous byte buffer held for this call; the GIL is held and no
        // Python code runs while the slice lives, so no one else reads or writes it meanwhile.
        let out = unsafe { &mut *ptr.as_ptr() };
        Ok(rec.playout(out))
    }

    /// The current status.
    #[getter]
    fn status(&self) -> PyResult<Status> {
        let mut guard = self.open()?;
        Ok(status(guard.as_mut().expect("open() checked").status()))
    }

    /// Free space in the ring to the writer, in bytes (a caller feeding audio faster than real
    /// time uses feed() instead of watching this).
    #[getter]
    fn ring_free(&self) -> PyResult<usize> {
        Ok(self
            .open()?
            .as_ref()
            .expect("open() checked")
            .ring_free_bytes())
    }

    /// The recording's filename (as the result will report it).
    #[getter]
    fn filename(&self) -> &str {
        &self.filename
    }

    /// True once close() was called.
    #[getter]
    fn closed(&self) -> bool {
        self.recorder
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
    }

    /// Releases the recorder; if it is still running the recording stops with "other".
    fn close(&self) {
        drop(
            self.recorder
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, pyo3::types::PyTuple>) {
        self.close();
    }
}

/// Finishes a crashed `aescbc` recording's `.aescbc.part` with its key and IV (hex, as in the
/// record action), whatever state the crash left it in: converts it to the CBC file in place,
/// renames it (the name without `.aescbc.part`) and fsyncs it. Returns `(path, samples)`.
/// ValueError for a bad key or IV, a file that is not an `.aescbc.part`, one being recorded, or
/// a key and IV that do not decrypt it (the file is then unchanged); OSError for an I/O error.
/// Releases the GIL while it works.
#[pyfunction]
fn recover_aescbc(
    py: Python<'_>,
    part: std::path::PathBuf,
    key: &str,
    iv: &str,
) -> PyResult<(std::path::PathBuf, u64)> {
    let spec = callrec::cipher::CipherSpec::from_hex(callrec::cipher::Mode::Cbc, key, iv)
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    let done = detach(py, || callrec::recover::recover_aescbc(&part, &spec));
    match done {
        Ok(r) => Ok((r.path, r.samples)),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData
            ) =>
        {
            Err(PyValueError::new_err(format!("{}: {e}", part.display())))
        }
        Err(e) => Err(PyOSError::new_err(format!("{}: {e}", part.display()))),
    }
}

/// Decodes G.711 bytes to 16-bit little-endian PCM bytes (two per sample).
#[pyfunction]
#[pyo3(signature = (data, codec = "alaw"))]
fn g711_decode(data: &Bound<'_, PyAny>, codec: &str) -> PyResult<Vec<u8>> {
    let codec = codec_arg(codec)?;
    with_bytes(&take_buffer(data)?, |bytes| {
        let mut linear = vec![0i16; bytes.len()];
        g711::decode_into(codec, bytes, &mut linear);
        linear.iter().flat_map(|s| s.to_le_bytes()).collect()
    })
}

/// Encodes 16-bit little-endian PCM bytes to G.711 (one byte per sample).
#[pyfunction]
#[pyo3(signature = (pcm16, codec = "alaw"))]
fn g711_encode(pcm16: &Bound<'_, PyAny>, codec: &str) -> PyResult<Vec<u8>> {
    let codec = codec_arg(codec)?;
    with_bytes(&take_buffer(pcm16)?, |bytes| {
        if bytes.len() % 2 != 0 {
            return Err(PyValueError::new_err(
                "16-bit PCM needs an even number of bytes",
            ));
        }
        let linear: Vec<i16> = bytes
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        let mut out = vec![0u8; linear.len()];
        g711::encode_into(codec, &linear, &mut out);
        Ok(out)
    })?
}

/// Transcodes G.711 bytes between "alaw" and "ulaw".
#[pyfunction]
#[pyo3(signature = (data, from_codec, to_codec))]
fn g711_transcode(data: &Bound<'_, PyAny>, from_codec: &str, to_codec: &str) -> PyResult<Vec<u8>> {
    let (from, to) = (codec_arg(from_codec)?, codec_arg(to_codec)?);
    with_bytes(&take_buffer(data)?, |bytes| {
        let mut out = vec![0u8; bytes.len()];
        g711::transcode_into(from, to, bytes, &mut out);
        out
    })
}

/// The level of a frame of G.711 audio in dBm0 (a full-scale sine is +3.14 dBm0; digital
/// silence is -100), as callrec's sound detector sees it.
#[pyfunction]
#[pyo3(signature = (frame, codec = "alaw"))]
fn frame_energy_dbm0(frame: &Bound<'_, PyAny>, codec: &str) -> PyResult<f32> {
    let codec = codec_arg(codec)?;
    with_bytes(&take_buffer(frame)?, |bytes| {
        frame_level_dbm0(EnergyKernel::detect(), codec, bytes)
    })
}

/// Every key press in a whole G.711 buffer: `[(digit, start_s, end_s), ...]`, times in seconds
/// from the buffer's start (each within 5 ms). Releases the GIL while it works.
#[pyfunction]
#[pyo3(signature = (data, codec = "alaw"))]
fn dtmf_detect(
    py: Python<'_>,
    data: &Bound<'_, PyAny>,
    codec: &str,
) -> PyResult<Vec<(String, f64, f64)>> {
    let codec = codec_arg(codec)?;
    let buffer = take_buffer(data)?;
    let bytes = with_bytes(&buffer, |b| b.to_vec())?;
    let spans = detach(py, || callrec::dtmf::detect(codec, &bytes));
    Ok(spans
        .iter()
        .map(|s| (s.digit.to_string(), seconds(s.start), seconds(s.end)))
        .collect())
}

fn seconds(samples: u64) -> f64 {
    samples as f64 / 8000.0
}

/// A streaming in-band DTMF detector (ITU-T Q.24) for audio that arrives in pieces of any
/// size. `process(data)` and `finish()` return the events so far as
/// `(kind, digit, start_s, end_s)`: kind "pressed" (the key is confirmed; end_s is None) or
/// "released" (its tone ended), times in seconds from the first sample given.
#[pyclass(module = "callrec.dtmf", name = "Detector")]
struct DtmfDetector {
    codec: Codec,
    detector: callrec::dtmf::DtmfDetector,
}

// A pyclass lives in memory from Python's allocator, which aligns to 16 bytes only: a field
// that needs more (e.g. `#[repr(align(32))]` for AVX) would be misaligned, and the compiler's
// aligned loads would crash. Every type held by value in a pyclass here must stay ≤ 16.
const _: () = assert!(std::mem::align_of::<DtmfDetector>() <= 16);
const _: () = assert!(std::mem::align_of::<Recorder>() <= 16);
const _: () = assert!(std::mem::align_of::<EventResult>() <= 16);
const _: () = assert!(std::mem::align_of::<Status>() <= 16);
const _: () = assert!(std::mem::align_of::<Engine>() <= 16);
const _: () = assert!(std::mem::align_of::<Events>() <= 16);

type DtmfEventTuple = (&'static str, String, f64, Option<f64>);

fn dtmf_event(e: callrec::dtmf::DtmfEvent) -> DtmfEventTuple {
    match e {
        callrec::dtmf::DtmfEvent::Pressed { digit, start } => {
            ("pressed", digit.to_string(), seconds(start), None)
        }
        callrec::dtmf::DtmfEvent::Released(s) => (
            "released",
            s.digit.to_string(),
            seconds(s.start),
            Some(seconds(s.end)),
        ),
    }
}

#[pymethods]
impl DtmfDetector {
    #[new]
    #[pyo3(signature = (codec = "alaw"))]
    fn new(codec: &str) -> PyResult<Self> {
        Ok(DtmfDetector {
            codec: codec_arg(codec)?,
            detector: callrec::dtmf::DtmfDetector::new(),
        })
    }

    /// Feeds G.711 bytes (any length) and returns the events they completed.
    fn process(&mut self, data: &Bound<'_, PyAny>) -> PyResult<Vec<DtmfEventTuple>> {
        let buffer = take_buffer(data)?;
        let mut events = Vec::new();
        let (codec, detector) = (self.codec, &mut self.detector);
        with_bytes(&buffer, |bytes| {
            detector.process(codec, bytes, |e| events.push(dtmf_event(e)))
        })?;
        Ok(events)
    }

    /// The end of the stream: releases a key still sounding; the detector starts again at 0.
    fn finish(&mut self) -> Vec<DtmfEventTuple> {
        let mut events = Vec::new();
        self.detector.finish(|e| events.push(dtmf_event(e)));
        events
    }

    /// Seconds of audio given so far.
    #[getter]
    fn seconds(&self) -> f64 {
        seconds(self.detector.samples())
    }
}

/// The extension module behind `import callrec`.
#[pymodule]
fn _callrec(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Engine>()?;
    m.add_class::<Recorder>()?;
    m.add_class::<Status>()?;
    m.add_class::<EventResult>()?;
    m.add_class::<Events>()?;
    m.add("OptionsError", m.py().get_type::<OptionsError>())?;
    m.add_function(wrap_pyfunction!(g711_decode, m)?)?;
    m.add_function(wrap_pyfunction!(g711_encode, m)?)?;
    m.add_function(wrap_pyfunction!(g711_transcode, m)?)?;
    m.add_function(wrap_pyfunction!(frame_energy_dbm0, m)?)?;
    m.add_function(wrap_pyfunction!(dtmf_detect, m)?)?;
    m.add_function(wrap_pyfunction!(recover_aescbc, m)?)?;
    m.add_class::<DtmfDetector>()?;
    m.add_function(wrap_pyfunction!(_shutdown_all, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
