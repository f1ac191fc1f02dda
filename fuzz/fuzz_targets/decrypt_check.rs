//! `callrec decrypt`'s check of the plaintext: never a panic; whatever it accepts is a RIFF
//! WAVE whose sizes agree with its length, which the WAV reader then reads in full.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let len = data.len() as u64;
    if callrec::wav::check_plain(data, Some(len)).is_ok() {
        assert_eq!(&data[0..4], b"RIFF");
        assert_eq!(u32::from_le_bytes(data[4..8].try_into().unwrap()) as u64 + 8, len);
        let info = callrec::wav::parse(data).expect("a checked file parses");
        assert!(info.truncated_from.is_none());
    }
    // The prefix check (stdout: before anything is written) never accepts what the full
    // check would refuse for its header alone.
    let _ = callrec::wav::check_plain(&data[..data.len().min(4096)], None);
});
