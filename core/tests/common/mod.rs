//! Synthetic calls whose right answer is known by how they are made.
#![allow(dead_code)]

use callrec::g711::Codec;
use callrec::{Engine, EngineConfig, Event, EventKind, RecordOptions, Recorder, Status};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const FRAME: usize = 160;

/// A fresh store directory for one test: `store` inside a new temporary directory, not yet
/// created (the engine creates it); both are removed when the value is dropped, so a test that
/// passes or panics leaves nothing behind. Derefs to the store's path.
pub fn store(name: &str) -> TestDir {
    let root = tempfile::Builder::new()
        .prefix(&format!("callrec-test-{name}-"))
        .tempdir()
        .expect("a temporary directory");
    let path = root.path().join("store");
    TestDir { _root: root, path }
}

/// A test's store path, removed with its temporary directory on drop.
pub struct TestDir {
    _root: tempfile::TempDir,
    path: PathBuf,
}

impl std::ops::Deref for TestDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for TestDir {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl From<&TestDir> for PathBuf {
    fn from(dir: &TestDir) -> PathBuf {
        dir.path.clone()
    }
}

pub fn engine(dir: &Path) -> Engine {
    // Tests push far faster than real time: a 30 s ring never overflows.
    engine_with_ring(dir, 30_000)
}

/// An engine whose rings hold `ring_milliseconds` (a small ring makes the writer's handling of
/// full rings and lagging legs happen in a short test), polled every 2 ms.
pub fn engine_with_ring(dir: &Path, ring_milliseconds: u32) -> Engine {
    Engine::new(
        dir,
        EngineConfig {
            poll_interval: Duration::from_millis(2),
            ring_milliseconds,
            ..EngineConfig::default()
        },
    )
    .unwrap()
}

/// `frames` frames of speech-like sound: a 440 Hz + 1100 Hz tone at about -15 dBm0 whose level
/// rises and falls by 14 dB every 240 ms (12 frames), like syllables. (A steady tone is not
/// speech: the detector takes it for background, DESIGN §4.)
pub fn sound(codec: Codec, frames: usize, start_frame: usize) -> Vec<u8> {
    (0..frames * FRAME)
        .map(|i| {
            let t = (start_frame * FRAME + i) as f64 / 8000.0;
            let w = std::f64::consts::TAU;
            let syllables = 0.6 + 0.4 * (w * t / 0.24).sin();
            let s = syllables * (4000.0 * (w * 440.0 * t).sin() + 2500.0 * (w * 1100.0 * t).sin());
            codec.encode(s as i16)
        })
        .collect()
}

/// `frames` frames of low pseudo-random noise (about -60 dBm0): silence.
pub fn quiet(codec: Codec, frames: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..frames * FRAME)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            codec.encode((x >> 40) as i16 % 64)
        })
        .collect()
}

/// Concatenates pieces of a call.
pub fn call(pieces: &[Vec<u8>]) -> Vec<u8> {
    pieces.concat()
}

/// What happened to one synthetic call.
pub struct Outcome {
    pub finished: Event,
    pub available: Option<Event>,
    /// The 0-based frame whose push returned `Stopped` (None if it never stopped by itself).
    pub stop_frame: Option<usize>,
    pub stop_status: Status,
    /// The file's audio bytes (None when the file does not exist).
    pub audio: Option<Vec<u8>>,
    pub path: PathBuf,
}

/// Pushes `input` frame by frame, calling `before(frame_index, recorder)` before each frame;
/// hangs up at the end of input if still running. Then collects both events and the file.
pub fn run(
    engine: &Engine,
    options: &RecordOptions,
    codec: Codec,
    input: &[u8],
    mut before: impl FnMut(usize, &mut Recorder),
) -> Outcome {
    let (mut rec, _handle) = engine.record(options, codec).unwrap();
    let mut stop_frame = None;
    let mut status = Status::Waiting;
    for (i, frame) in input.chunks(FRAME).enumerate() {
        before(i, &mut rec);
        status = rec.push(frame).unwrap();
        if let Status::Stopped(_) = status {
            stop_frame = Some(i);
            break;
        }
    }
    if stop_frame.is_none() {
        status = rec.hangup();
    }
    drop(rec);
    let outcome = collect(engine, stop_frame, status);
    assert_eq!(outcome.finished.result.frames_dropped, 0);
    outcome
}

pub fn collect(engine: &Engine, stop_frame: Option<usize>, stop_status: Status) -> Outcome {
    let finished = engine
        .next_event(Some(Duration::from_secs(10)))
        .expect("finished event");
    assert_eq!(finished.kind, EventKind::Finished);
    assert!(!finished.result.file_available);
    let final_path = engine
        .store_root()
        .join(finished.result.filename.trim_start_matches('/'));
    // A recording that failed before anything could be kept has no file and no *available*.
    let available = if finished.result.reason == callrec::Reason::Error && !final_path.exists() {
        None
    } else {
        let a = engine
            .next_event(Some(Duration::from_secs(10)))
            .expect("available event");
        assert_eq!(a.kind, EventKind::Available);
        assert!(a.result.file_available);
        let mut same = a.result.clone();
        same.file_available = false;
        assert_eq!(same, finished.result, "available repeats finished");
        Some(a)
    };
    let path = engine
        .store_root()
        .join(finished.result.filename.trim_start_matches('/'));
    // Encrypted files do not parse: their audio is None (tests decrypt them themselves).
    let audio = std::fs::read(&path).ok().and_then(|bytes| {
        let info = callrec::wav::parse(&bytes).ok()?;
        assert_eq!(info.fact_samples, Some(info.data.len() as u32));
        assert_eq!(
            bytes.len(),
            info.data.end + info.data.len() % 2,
            "RIFF pad byte"
        );
        let riff = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
        assert_eq!(riff + 8, bytes.len());
        Some(bytes[info.data].to_vec())
    });
    Outcome {
        finished,
        available,
        stop_frame,
        stop_status,
        audio,
        path,
    }
}

pub fn frames(input: &[u8], from: usize, to: usize) -> &[u8] {
    &input[from * FRAME..to * FRAME]
}

/// Asserts the file's audio equals `want`, reporting lengths and the first difference (not bytes).
#[track_caller]
pub fn assert_audio(got: &Option<Vec<u8>>, want: &[u8]) {
    let got = got.as_deref().expect("the file exists");
    let first_diff = got.iter().zip(want).position(|(a, b)| a != b);
    assert!(
        got.len() == want.len() && first_diff.is_none(),
        "file audio: {} bytes, expected {}; first difference at byte {:?}",
        got.len(),
        want.len(),
        first_diff
    );
}

/// Makes every write past `bytes` fail with EFBIG in this process (RLIMIT_FSIZE, with SIGXFSZ
/// ignored so the process is not killed): a real write error for the writer to meet. Per
/// process, so a test binary that uses it holds that one test.
pub fn limit_file_size(bytes: u64) {
    // SAFETY: plain libc calls with valid arguments.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let limit = libc::rlimit {
            rlim_cur: bytes,
            rlim_max: libc::RLIM_INFINITY,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
}

/// Every file under `dir`, with its bytes.
pub fn all_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                out.push((p, bytes));
            }
        }
    }
    out
}

/// Panics if any file under `dir` holds a RIFF/WAVE/fmt marker or a 64-byte run of `input`.
/// Returns how many files were scanned.
pub fn assert_no_plaintext(dir: &Path, input: &[u8]) -> usize {
    let runs: std::collections::HashSet<&[u8]> = input.windows(64).collect();
    let files = all_files(dir);
    for (path, bytes) in &files {
        for marker in [&b"RIFF"[..], b"WAVE", b"fmt "] {
            assert!(
                !bytes.windows(4).any(|w| w == marker),
                "{} holds {:?}",
                path.display(),
                String::from_utf8_lossy(marker)
            );
        }
        if let Some(at) = bytes.windows(64).position(|w| runs.contains(w)) {
            panic!("{} holds input audio at byte {at}", path.display());
        }
    }
    files.len()
}
