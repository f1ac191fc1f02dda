//! One synthetic call per stop reason: the stop lands on the right 20 ms frame, the result is
//! right, and the file's audio equals the input over the recorded span (pre-roll included).

mod common;
use callrec::g711::{transcode_into, Codec};
use callrec::recorder::ECHO_GUARD_SAMPLES;
use callrec::tone::ToneGenerator;
use callrec::{Engine, EngineConfig, Reason, RecordOptions, RecorderError, Status};
use common::*;
use std::time::Duration;

fn opts(json: &str) -> RecordOptions {
    RecordOptions::from_json(json).unwrap()
}

/// 0.6 s quiet, 2 s sound, 4 s quiet: first sound at frame 30, last at frame 129.
fn speech_call(codec: Codec) -> Vec<u8> {
    call(&[
        quiet(codec, 30, 1),
        sound(codec, 100, 30),
        quiet(codec, 200, 2),
    ])
}

#[test]
fn silence_after_sound() {
    let dir = store("silence");
    let e = engine(&dir);
    let input = speech_call(Codec::Alaw);
    let o = run(
        &e,
        &opts(r#"{"milliseconds_max_silence":1000}"#),
        Codec::Alaw,
        &input,
        |_, _| {},
    );
    // 50 silent frames after the last sound frame (129): the stop is on frame 179.
    assert_eq!(o.stop_frame, Some(179));
    assert_eq!(o.stop_status, Status::Stopped(Reason::Silence));
    let r = &o.finished.result;
    assert_eq!(r.reason, Reason::Silence);
    assert!(r.contains_sound);
    // Pre-roll of 10 frames: the file is frames 20..180.
    assert_audio(&o.audio, frames(&input, 20, 180));
    assert_eq!(r.samples, 160 * 160);
    assert_eq!(r.seconds_duration(), 3.2);
    assert!(r
        .action_result_json()
        .contains(r#""seconds_duration":3.2,"reason":"silence"}}"#));
    assert_eq!(r.barge_in_digit, None);
}

#[test]
fn initial_silence_with_no_sound() {
    let dir = store("initial");
    let e = engine(&dir);
    let input = quiet(Codec::Ulaw, 300, 3);
    let o = run(
        &e,
        &opts(r#"{"milliseconds_max_initial_silence":2000}"#),
        Codec::Ulaw,
        &input,
        |_, _| {},
    );
    assert_eq!(o.stop_frame, Some(99));
    let r = &o.finished.result;
    assert_eq!(
        (r.reason, r.contains_sound, r.samples),
        (Reason::Silence, false, 0)
    );
    assert_audio(&o.audio, &[][..]);
    assert!(r
        .action_result_json()
        .contains(r#""contains_sound":false,"seconds_duration":0.0"#));
    // 0 means "use milliseconds_max_silence".
    let o = run(
        &e,
        &opts(r#"{"milliseconds_max_silence":1500}"#),
        Codec::Ulaw,
        &input,
        |_, _| {},
    );
    assert_eq!(o.stop_frame, Some(74));
    // A limit that is not a whole number of frames rounds up to the next frame.
    let o = run(
        &e,
        &opts(r#"{"milliseconds_max_silence":1510}"#),
        Codec::Ulaw,
        &input,
        |_, _| {},
    );
    assert_eq!(o.stop_frame, Some(75));
}

#[test]
fn duration_limit() {
    let dir = store("duration");
    let e = engine(&dir);
    let input = call(&[quiet(Codec::Alaw, 5, 4), sound(Codec::Alaw, 300, 5)]);
    let o = run(
        &e,
        &opts(r#"{"seconds_max_duration":2}"#),
        Codec::Alaw,
        &input,
        |_, _| {},
    );
    // Recording starts at frame 0 (5 frames of pre-roll) and holds 16,000 samples.
    assert_eq!(o.stop_frame, Some(99));
    let r = &o.finished.result;
    assert_eq!(
        (r.reason, r.samples, r.seconds_duration()),
        (Reason::Duration, 16_000, 2.0)
    );
    assert_audio(&o.audio, frames(&input, 0, 100));
}

#[test]
fn bargein_digit_from_the_host() {
    let dir = store("bargein");
    let e = engine(&dir);
    let input = call(&[quiet(Codec::Alaw, 50, 5), sound(Codec::Alaw, 200, 50)]);
    let o = run(
        &e,
        &opts(r##"{"barge_in_digits":"#*"}"##),
        Codec::Alaw,
        &input,
        |i, rec| {
            if i == 60 {
                // Not a barge-in digit: ignored.
                assert_eq!(rec.digit('1'), Ok(Status::Recording));
                assert_eq!(rec.digit('x'), Err(RecorderError::InvalidDigit('X')));
            }
            if i == 80 {
                assert_eq!(rec.digit('*'), Ok(Status::Stopped(Reason::Bargein)));
            }
        },
    );
    assert_eq!(o.stop_frame, Some(80));
    let r = &o.finished.result;
    assert_eq!((r.reason, r.barge_in_digit), (Reason::Bargein, Some('*')));
    assert!(r
        .action_result_json()
        .ends_with(r#""reason":"bargein","barge_in_digit":"*"}}"#));
    assert_audio(&o.audio, frames(&input, 40, 80));
    // No barge-in digits: '#' is ignored and the call runs to its hangup.
    let o = run(
        &e,
        &opts(r#"{"barge_in_digits":""}"#),
        Codec::Alaw,
        &input,
        |i, rec| {
            if i == 80 {
                assert_eq!(rec.digit('#'), Ok(Status::Recording));
            }
        },
    );
    assert_eq!(o.finished.result.reason, Reason::Hangup);
}

#[test]
fn file_size_limit() {
    let dir = store("filesize");
    let e = engine(&dir);
    let input = call(&[quiet(Codec::Alaw, 50, 6), sound(Codec::Alaw, 200, 50)]);
    // 58-byte header + 8,001: the data limit is kept even (8,000) so the pad byte fits.
    let o = run(
        &e,
        &opts(r#"{"max_file_bytes":8059}"#),
        Codec::Alaw,
        &input,
        |_, _| {},
    );
    assert_eq!(o.stop_frame, Some(89));
    assert_eq!(o.finished.result.reason, Reason::Filesize);
    assert_audio(&o.audio, frames(&input, 40, 90));
    assert!(std::fs::metadata(&o.path).unwrap().len() <= 8059);
    // A limit inside a frame cuts the frame.
    let o = run(
        &e,
        &opts(r#"{"max_file_bytes":1058}"#),
        Codec::Alaw,
        &input,
        |_, _| {},
    );
    assert_eq!(o.finished.result.reason, Reason::Filesize);
    assert_audio(&o.audio, &input[40 * FRAME..40 * FRAME + 1000]);
}

#[test]
fn hangup_keeps_a_partial_frame() {
    let dir = store("hangup");
    let e = engine(&dir);
    let mut input = call(&[quiet(Codec::Ulaw, 50, 7), sound(Codec::Ulaw, 101, 50)]);
    input.truncate(input.len() - 80); // ends half-way through a frame
    let o = run(
        &e,
        &RecordOptions::default(),
        Codec::Ulaw,
        &input,
        |_, _| {},
    );
    assert_eq!(o.stop_frame, None);
    assert_eq!(o.stop_status, Status::Stopped(Reason::Hangup));
    assert_eq!(o.finished.result.reason, Reason::Hangup);
    assert_audio(&o.audio, &input[40 * FRAME..]);
}

#[test]
fn abort_from_the_handle() {
    let dir = store("abort");
    let e = engine(&dir);
    let input = speech_call(Codec::Alaw);
    let o = run(
        &e,
        &RecordOptions::default(),
        Codec::Alaw,
        &input,
        |i, rec| {
            if i == 120 {
                assert!(rec.handle().abort());
                assert!(!rec.handle().abort(), "a second abort changes nothing");
            }
        },
    );
    assert_eq!(o.stop_frame, Some(120));
    assert_eq!(o.finished.result.reason, Reason::Aborted);
    assert_audio(&o.audio, frames(&input, 20, 120));
}

#[test]
fn abort_from_another_thread_while_pushing() {
    let dir = store("abort-thread");
    let e = engine(&dir);
    let input = call(&[quiet(Codec::Alaw, 10, 8), sound(Codec::Alaw, 3000, 10)]);
    // A fixed threshold: the steady test tone never turns into background, so only the abort
    // can stop this recording, however slowly the aborting thread gets scheduled.
    let options = opts(r#"{"silence_threshold_db":-40}"#);
    let (mut rec, handle) = e.record(&options, Codec::Alaw).unwrap();
    let pushed_so_far = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = pushed_so_far.clone();
    let aborter = std::thread::spawn(move || {
        while seen.load(std::sync::atomic::Ordering::Relaxed) < 100 {
            std::thread::yield_now();
        }
        handle.abort()
    });
    let mut pushed = 0;
    for frame in input.chunks(FRAME).cycle() {
        if let Status::Stopped(r) = rec.push(frame).unwrap() {
            assert_eq!(r, Reason::Aborted);
            break;
        }
        pushed += 1;
        pushed_so_far.store(pushed, std::sync::atomic::Ordering::Relaxed);
        std::thread::sleep(Duration::from_micros(50));
    }
    assert!(aborter.join().unwrap());
    assert!(pushed >= 100);
    let o = collect(&e, None, rec.status());
    assert_eq!(o.finished.result.reason, Reason::Aborted);
    // Exactly the frames pushed before the abort, nothing lost, nothing after.
    assert_audio(&o.audio, frames(&input, 0, pushed));
}

#[test]
fn shutdown_finalizes_open_recordings_with_other() {
    let dir = store("shutdown");
    let e = engine(&dir);
    let input = speech_call(Codec::Alaw);
    let (mut rec, _h) = e.record(&RecordOptions::default(), Codec::Alaw).unwrap();
    for frame in input.chunks(FRAME).take(120) {
        rec.push(frame).unwrap();
    }
    e.shutdown();
    assert_eq!(
        rec.push(frames(&input, 120, 121)).unwrap(),
        Status::Stopped(Reason::Other)
    );
    let o = collect(&e, None, rec.status());
    assert_eq!(o.finished.result.reason, Reason::Other);
    assert_audio(&o.audio, frames(&input, 20, 120));
    assert!(matches!(
        e.record(&RecordOptions::default(), Codec::Alaw),
        Err(callrec::Error::ShutDown)
    ));
}

#[test]
fn dropping_the_recorder_is_other() {
    let dir = store("drop");
    let e = engine(&dir);
    let input = speech_call(Codec::Alaw);
    let (mut rec, _h) = e.record(&RecordOptions::default(), Codec::Alaw).unwrap();
    for frame in input.chunks(FRAME).take(70) {
        rec.push(frame).unwrap();
    }
    drop(rec);
    let o = collect(&e, None, Status::Stopped(Reason::Other));
    assert_eq!(o.finished.result.reason, Reason::Other);
    assert_audio(&o.audio, frames(&input, 20, 70));
}

#[test]
fn pushes_of_any_size_give_the_same_file() {
    let dir = store("sizes");
    let e = engine(&dir);
    let input = speech_call(Codec::Alaw);
    let options = opts(r#"{"milliseconds_max_silence":1000}"#);
    let (mut rec, _h) = e.record(&options, Codec::Alaw).unwrap();
    let mut at = 0;
    let mut x = 12345u32;
    let mut status = Status::Waiting;
    while at < input.len() {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let len = match x % 4 {
            0 => 1 + (x >> 8) as usize % 159,
            1 => 1 + (x >> 8) as usize % 8000,
            2 => 0,
            _ => 160,
        };
        let end = (at + len).min(input.len());
        status = rec.push(&input[at..end]).unwrap();
        at = end;
        if let Status::Stopped(_) = status {
            break;
        }
    }
    assert_eq!(status, Status::Stopped(Reason::Silence));
    // The stop happened inside the push that completed frame 179.
    assert!((180 * FRAME..180 * FRAME + 8000).contains(&at));
    // A push after the stop records nothing and returns the stopped status.
    assert_eq!(
        rec.push(&input[..160]).unwrap(),
        Status::Stopped(Reason::Silence)
    );
    assert_eq!(rec.hangup(), Status::Stopped(Reason::Silence));
    let o = collect(&e, None, status);
    assert_audio(&o.audio, frames(&input, 20, 180));
    let (mut rec, _h) = e.record(&options, Codec::Alaw).unwrap();
    assert_eq!(
        rec.push(&vec![0xD5; 8001]),
        Err(RecorderError::InputTooLong { bytes: 8001 })
    );
}

#[test]
fn transcodes_to_the_requested_format() {
    let dir = store("transcode");
    let e = engine(&dir);
    let input = speech_call(Codec::Alaw);
    let o = run(
        &e,
        &opts(r#"{"milliseconds_max_silence":1000,"format":"ulaw"}"#),
        Codec::Alaw,
        &input,
        |_, _| {},
    );
    let span = frames(&input, 20, 180);
    let mut want = vec![0u8; span.len()];
    transcode_into(Codec::Alaw, Codec::Ulaw, span, &mut want);
    assert_audio(&o.audio, &want);
    let bytes = std::fs::read(&o.path).unwrap();
    assert_eq!(
        callrec::wav::parse(&bytes).unwrap().g711_codec(),
        Some(Codec::Ulaw)
    );
}

#[test]
fn trim_trailing_silence_cuts_after_the_last_sound() {
    let dir = store("trim");
    let e = engine(&dir);
    let input = speech_call(Codec::Alaw);
    let o = run(
        &e,
        &opts(r#"{"milliseconds_max_silence":1000,"trim_trailing_silence":true}"#),
        Codec::Alaw,
        &input,
        |_, _| {},
    );
    assert_eq!(o.stop_frame, Some(179));
    assert_audio(&o.audio, frames(&input, 20, 130));
    assert_eq!(o.finished.result.seconds_duration(), 2.2);
}

#[test]
fn beep_is_played_and_its_echo_is_not_recorded() {
    let dir = store("beep");
    let e = engine(&dir);
    let codec = Codec::Alaw;
    // The caller's side carries the beep's echo 40 ms late and 6 dB down, then quiet, then speech.
    let mut echo = vec![0u8; 2000];
    ToneGenerator::new(codec, 1000.0, 250, -18.0).fill(&mut echo);
    let input = call(&[
        quiet(codec, 2, 9),
        echo,
        quiet(codec, 58, 10)[..58 * FRAME - 2000].to_vec(),
        sound(codec, 100, 60),
        quiet(codec, 100, 11),
    ]);
    assert_eq!(input.len(), 260 * FRAME);
    let options = opts(r#"{"beep_on_start":true,"milliseconds_max_silence":1000}"#);
    let (mut rec, _h) = e.record(&options, codec).unwrap();
    let mut played = Vec::new();
    let mut stop = None;
    for (i, frame) in input.chunks(FRAME).enumerate() {
        let mut out = [0u8; FRAME];
        let n = rec.playout(&mut out);
        played.extend_from_slice(&out[..n]);
        let status = rec.push(frame).unwrap();
        if i < 12 {
            assert_eq!(status, Status::Beeping);
        }
        if let Status::Stopped(_) = status {
            stop = Some(i);
            break;
        }
    }
    // The host got exactly the beep.
    let mut beep = vec![0u8; 2000];
    ToneGenerator::new(codec, 1000.0, 250, -12.0).fill(&mut beep);
    assert_eq!(played, beep);
    // The beep ends during frame 12; the echo guard covers the next 800 samples (frames 12-16).
    assert_eq!(ECHO_GUARD_SAMPLES, 800);
    // Speech starts at frame 60 (pre-roll from 50) and 50 silent frames after 159 stop it.
    assert_eq!(stop, Some(209));
    let o = collect(&e, stop, rec.status());
    assert_audio(&o.audio, frames(&input, 50, 210));
}

#[test]
fn a_stalled_writer_drops_frames_and_says_so() {
    let dir = store("overflow");
    let e = Engine::new(
        &dir,
        EngineConfig {
            ring_milliseconds: 100,
            batch_bytes: 400,
            poll_interval: Duration::from_secs(1),
            ..EngineConfig::default()
        },
    )
    .unwrap();
    // The call opens with 200 ms of line noise: the detector takes the first frames as the
    // background (a call that is sound from its first frame has no background to compare with),
    // and the pre-roll puts them in the file, so the recording is all 300 frames.
    let input = call(&[quiet(Codec::Alaw, 10, 9), sound(Codec::Alaw, 290, 10)]);
    let (mut rec, _h) = e.record(&RecordOptions::default(), Codec::Alaw).unwrap();
    std::thread::sleep(Duration::from_millis(50)); // the writer has polled once and sleeps
    for frame in input.chunks(FRAME) {
        rec.push(frame).unwrap();
    }
    rec.hangup();
    let o = collect(&e, None, rec.status());
    let r = &o.finished.result;
    assert!(r.frames_dropped > 0);
    assert_eq!(
        r.samples + r.frames_dropped * FRAME as u64,
        300 * FRAME as u64
    );
    assert!(r
        .action_result_json()
        .contains(&format!(r#""frames_dropped":{}"#, r.frames_dropped)));
    assert_eq!(e.metrics().frames_dropped, r.frames_dropped);
    // What did reach the file is input audio, in order, at the start of the recording.
    let audio = o.audio.unwrap();
    assert_eq!(&audio[..FRAME], &input[..FRAME]);
}
