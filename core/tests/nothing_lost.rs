//! Nothing pushed is lost (DESIGN §3): `feed` waits for the writer instead of dropping, and a
//! partial frame held from odd-sized pushes reaches the file however the recording ends
//! (hangup, abort from another thread, dropping the recorder, engine shutdown).
//!
//! Every call here starts with sound in its first frame, so the recording starts at sample 0
//! with no pre-roll: the file's audio must equal every byte pushed, by construction.

mod common;
use callrec::{Codec, Engine, EngineConfig, Reason, RecordOptions, RecorderError, Status};
use common::*;
use std::time::Duration;

/// Long limits: only the way the test ends the call stops the recording. The fixed threshold
/// makes the first frame sound (the adaptive detector takes its first frame as the line's
/// background), so the recording starts at sample 0.
fn long() -> RecordOptions {
    RecordOptions::from_json(
        r#"{"seconds_max_duration":3600,"milliseconds_max_silence":600000,"silence_threshold_db":-40}"#,
    )
    .unwrap()
}

fn small_ring_engine(dir: &std::path::Path) -> Engine {
    Engine::new(
        dir,
        EngineConfig {
            poll_interval: Duration::from_millis(5),
            ring_milliseconds: 100, // 800 bytes: far less than the input
            batch_bytes: 400,
            ..EngineConfig::default()
        },
    )
    .unwrap()
}

#[test]
fn feed_waits_for_the_writer_and_loses_nothing() {
    let dir = store("feed-waits");
    let e = small_ring_engine(&dir);
    let input = sound(Codec::Alaw, 500, 0); // 10 s in one call, 100 times the ring
    let (mut rec, _h) = e.record(&long(), Codec::Alaw).unwrap();
    assert_eq!(
        rec.feed(&input, Duration::from_secs(60)),
        Ok(Status::Recording)
    );
    rec.hangup();
    drop(rec);
    let out = collect(&e, None, Status::Stopped(Reason::Hangup));
    assert_eq!(out.finished.result.reason, Reason::Hangup);
    assert_eq!(out.finished.result.frames_dropped, 0);
    assert_eq!(out.audio.unwrap(), input);
    assert_eq!(e.metrics().frames_dropped, 0);
}

#[test]
fn feed_timeout_says_how_much_was_fed_and_the_rest_can_follow() {
    let dir = store("feed-timeout");
    let e = small_ring_engine(&dir);
    let input = sound(Codec::Ulaw, 500, 0);
    let (mut rec, _h) = e.record(&long(), Codec::Ulaw).unwrap();
    // No patience at all: the 800-byte ring fills long before 80,000 bytes are in.
    let fed = match rec.feed(&input, Duration::ZERO) {
        Err(RecorderError::Timeout { fed }) => fed,
        other => panic!("expected a timeout, got {other:?}"),
    };
    assert!(fed < input.len());
    rec.feed(&input[fed..], Duration::from_secs(60)).unwrap();
    rec.hangup();
    drop(rec);
    let out = collect(&e, None, Status::Stopped(Reason::Hangup));
    assert_eq!(out.audio.unwrap(), input);
    assert_eq!(out.finished.result.frames_dropped, 0);
}

#[test]
fn feed_after_the_stop_returns_the_stop() {
    let dir = store("feed-stopped");
    let e = engine(&dir);
    let (mut rec, h) = e.record(&long(), Codec::Alaw).unwrap();
    h.abort();
    assert_eq!(
        rec.feed(&sound(Codec::Alaw, 10, 0), Duration::ZERO),
        Ok(Status::Stopped(Reason::Aborted))
    );
}

/// Pushes 1,700 bytes in 170-byte pieces (ten frames and a 100-byte partial one), ends the
/// call with `end`, and checks every pushed byte is in the file with the expected reason.
fn odd_pushes_then(
    name: &str,
    end: impl FnOnce(&Engine, callrec::Recorder, callrec::RecorderHandle),
    want: Reason,
) {
    let dir = store(name);
    let e = engine(&dir);
    let input = sound(Codec::Alaw, 11, 0)[..1700].to_vec();
    let (mut rec, h) = e.record(&long(), Codec::Alaw).unwrap();
    for piece in input.chunks(170) {
        assert_eq!(rec.push(piece), Ok(Status::Recording));
    }
    end(&e, rec, h);
    let out = collect(&e, None, Status::Stopped(want));
    assert_eq!(out.finished.result.reason, want);
    let audio = out.audio.unwrap();
    assert_eq!(audio.len(), 1700, "samples in the file");
    assert_eq!(audio, input);
}

#[test]
fn hangup_keeps_the_partial_frame() {
    odd_pushes_then(
        "odd-hangup",
        |_, mut rec, _| {
            assert_eq!(rec.hangup(), Status::Stopped(Reason::Hangup));
        },
        Reason::Hangup,
    );
}

#[test]
fn abort_keeps_the_partial_frame() {
    // From another thread, while the recorder is still alive and never called again.
    odd_pushes_then(
        "odd-abort",
        |_, rec, h| {
            std::thread::spawn(move || assert!(h.abort()))
                .join()
                .unwrap();
            std::thread::sleep(Duration::from_millis(50));
            drop(rec);
        },
        Reason::Aborted,
    );
}

#[test]
fn drop_keeps_the_partial_frame() {
    odd_pushes_then("odd-drop", |_, rec, _| drop(rec), Reason::Other);
}

#[test]
fn shutdown_keeps_the_partial_frame() {
    // The engine shuts down while the recorder is alive (the host's media thread still has it).
    odd_pushes_then(
        "odd-shutdown",
        |e, rec, _| {
            e.shutdown();
            drop(rec);
        },
        Reason::Other,
    );
}
