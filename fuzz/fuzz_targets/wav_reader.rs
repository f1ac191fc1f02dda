//! The WAV reader: never a panic, and what it returns points inside the file.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = callrec::wav::parse(data) {
        assert!(info.data.start <= info.data.end && info.data.end <= data.len());
        let _ = info.g711_codec();
        if let Some(declared) = info.truncated_from {
            assert!(declared as usize > info.data.len());
        }
    }
});
