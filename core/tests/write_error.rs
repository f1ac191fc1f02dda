//! A write failure stops the recording with `error` and keeps what was written before it: a
//! valid file, reported by both events with reason `error` and the duration of what it holds.
//! The failure is real: the process's file-size limit (RLIMIT_FSIZE) makes the writer's `write`
//! fail with EFBIG, and the process survives SIGXFSZ because the engine's threads block it.
//! This file holds one test because the limit is per process.

mod common;
use callrec::{Codec, EventKind, Reason, RecordOptions, Status};
use common::*;
use std::time::Duration;

#[test]
fn write_error_stops_with_error_and_keeps_what_was_written() {
    let dir = store("write-error");
    let e = engine(&dir);
    let input = sound(Codec::Alaw, 500, 0); // 80,000 bytes
                                            // The fixed threshold: the sound starts at the first frame, with no line before it for the
                                            // adaptive detector to measure it against (see `common::sound`).
    let options = RecordOptions::from_json(
        r#"{"milliseconds_max_silence":600000,"silence_threshold_db":-40}"#,
    )
    .unwrap();
    let (mut rec, _h) = e.record(&options, Codec::Alaw).unwrap();
    let name = rec.filename().to_owned();
    limit_file_size(20_001);
    let mut status = Status::Waiting;
    for frame in input.chunks(FRAME) {
        status = rec.push(frame).unwrap();
        if let Status::Stopped(_) = status {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    // The real-time side learns of the failure at its next push.
    assert_eq!(status, Status::Stopped(Reason::Error));
    drop(rec);
    let out = collect(&e, None, status);
    assert_eq!(out.finished.kind, EventKind::Finished);
    assert_eq!(out.finished.result.reason, Reason::Error);
    assert_eq!(out.finished.result.filename, name);
    let available = out.available.expect("an available event for the kept file");
    assert!(available.result.file_available);
    let audio = out.audio.expect("a valid WAV at the final name");
    assert!(audio.len() > 10_000, "only {} bytes kept", audio.len());
    // From where the detector started the recording (within the first frames), unbroken.
    let start = (0..20 * FRAME)
        .step_by(FRAME)
        .find(|&at| input[at..].starts_with(&audio[..FRAME]))
        .expect("the file starts within the first 20 frames pushed");
    assert_eq!(
        audio,
        &input[start..start + audio.len()],
        "the audio written before the failure"
    );
    assert_eq!(out.finished.result.samples, audio.len() as u64);
    let size = std::fs::metadata(&out.path).unwrap().len();
    assert!(size <= 20_001, "{size} bytes");
    assert!(!out.path.with_extension("wav.part").exists());
    assert_eq!(e.metrics().write_errors, 1);
}
