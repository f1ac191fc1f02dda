//! A write failure stops the recording with `error`, removes the partial file and reports no
//! file as good. The failure is real: the process's file-size limit (RLIMIT_FSIZE) makes the
//! writer's `write` fail with EFBIG. This file holds one test because the limit is per process.

mod common;
use callrec::{Codec, EventKind, Reason, RecordOptions, Status};
use common::*;
use std::time::Duration;

#[test]
fn write_error_stops_with_error_and_leaves_no_file() {
    let dir = store("write-error");
    let e = engine(&dir);
    let input = sound(Codec::Alaw, 500, 0); // 80,000 bytes
    let (mut rec, _h) = e.record(&RecordOptions::default(), Codec::Alaw).unwrap();
    let name = rec.filename().to_owned();
    limit_file_size(20_000);
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
    let finished = e.next_event(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(finished.kind, EventKind::Finished);
    assert_eq!(finished.result.reason, Reason::Error);
    assert_eq!(finished.result.filename, name);
    assert!(!finished.result.file_available);
    // No available event: there is no good file to announce.
    assert!(e.next_event(Some(Duration::from_millis(300))).is_none());
    let path = dir.join(name.trim_start_matches('/'));
    assert!(!path.exists());
    assert!(!path.with_extension("wav.part").exists());
    assert_eq!(e.metrics().write_errors, 1);
}
