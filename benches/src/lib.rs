//! Shared pieces of callrec's benchmarks and load generator: realistic audio and engine setup.
#![deny(missing_docs)]

use callrec::{Codec, RecordOptions};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// Samples per 20 ms frame.
pub const FRAME: usize = 160;

/// The repository's bundled sample call (`examples/hello.wav`): real speech, then silence,
/// A-law. Realistic audio for every benchmark: the detector sees speech, pauses and silence.
pub fn sample_call() -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/hello.wav");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let info = callrec::wav::parse(&bytes).expect("examples/hello.wav is a WAV");
    assert_eq!(info.g711_codec(), Some(Codec::Alaw));
    let mut audio = bytes[info.data].to_vec();
    audio.truncate(audio.len() / FRAME * FRAME);
    audio
}

/// Options for a recording that never stops by itself during a benchmark (24 h, 1 h silence),
/// optionally encrypted with `cipher` (`"aesctr"` or `"aescbc"`, AES-256).
///
/// Every call gets its own IV (a process-wide counter): an engine refuses an `aesctr` key+IV
/// pair it has already used, as a host must never reuse one.
pub fn endless_options(cipher: Option<&str>) -> RecordOptions {
    static NEXT_IV: AtomicU64 = AtomicU64::new(1);
    let mut json =
        String::from(r#"{"seconds_max_duration":86400,"milliseconds_max_silence":3600000"#);
    if let Some(mode) = cipher {
        let iv = NEXT_IV.fetch_add(1, Ordering::Relaxed);
        json.push_str(&format!(
            r#","encryption_cipher":{{"type":"{mode}","key":"{}","initialisation_vector":"{:032x}"}}"#,
            "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4", iv
        ));
    }
    json.push('}');
    RecordOptions::from_json(&json).expect("benchmark options are valid")
}

/// A scratch directory for a benchmark's store (removed first if it exists).
pub fn scratch_store(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("callrec-bench-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
