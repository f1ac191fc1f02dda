//! Pause and resume (DESIGN §5): with `pause_behavior: "skip"` the file is the input with the
//! paused span cut out; with `"silence"` the span is G.711 silence of the same length. Timers do
//! not run while paused, barge-in still works, and the pause lands on the exact sample.

mod common;
use callrec::g711::Codec;
use callrec::{Reason, RecordOptions, Status};
use common::*;

fn opts(json: &str) -> RecordOptions {
    RecordOptions::from_json(json).unwrap()
}

/// 0.2 s quiet then 6 s of sound: the recording starts at frame 0 (the pre-roll holds 0..10).
fn talking(codec: Codec) -> Vec<u8> {
    call(&[quiet(codec, 10, 4), sound(codec, 300, 10)])
}

fn silence(codec: Codec, bytes: usize) -> Vec<u8> {
    vec![codec.silence(); bytes]
}

#[test]
fn skip_leaves_the_paused_span_out() {
    let dir = store("pause-skip");
    let e = engine(&dir);
    let input = talking(Codec::Alaw);
    let o = run(&e, &opts("{}"), Codec::Alaw, &input, |i, rec| {
        if i == 50 {
            assert_eq!(rec.pause(), Status::Recording);
            assert!(rec.is_paused());
        }
        if i == 120 {
            assert_eq!(rec.resume(), Status::Recording);
            assert!(!rec.is_paused());
        }
    });
    assert_eq!(o.finished.result.reason, Reason::Hangup);
    let want = [frames(&input, 0, 50), frames(&input, 120, 310)].concat();
    assert_audio(&o.audio, &want);
}

#[test]
fn silence_replaces_the_paused_span() {
    for codec in [Codec::Alaw, Codec::Ulaw] {
        let dir = store(&format!("pause-silence-{}", codec.name()));
        let e = engine(&dir);
        let input = talking(codec);
        let o = run(
            &e,
            &opts(r#"{"pause_behavior":"silence"}"#),
            codec,
            &input,
            |i, rec| {
                if i == 50 {
                    rec.pause();
                }
                if i == 120 {
                    rec.resume();
                }
            },
        );
        let want = [
            frames(&input, 0, 50),
            &silence(codec, 70 * FRAME),
            frames(&input, 120, 310),
        ]
        .concat();
        assert_audio(&o.audio, &want);
    }
}

#[test]
fn pause_and_resume_land_on_the_exact_sample() {
    for behavior in ["skip", "silence"] {
        let dir = store(&format!("pause-exact-{behavior}"));
        let e = engine(&dir);
        let codec = Codec::Ulaw;
        let input = talking(codec);
        let (mut rec, _h) = e
            .record(
                &opts(&format!(r#"{{"pause_behavior":"{behavior}"}}"#)),
                codec,
            )
            .unwrap();
        // Odd-sized pushes: the pause falls at byte 8_100, the resume at 12_345.
        let (pause_at, resume_at) = (8_100, 12_345);
        let mut at = 0;
        for chunk in input.chunks(97) {
            let end = at + chunk.len();
            let cut = |from: usize, to: usize| &chunk[from - at..to - at];
            if at < pause_at && pause_at <= end {
                rec.push(cut(at, pause_at)).unwrap();
                rec.pause();
                rec.push(cut(pause_at, end)).unwrap();
            } else if at < resume_at && resume_at <= end {
                rec.push(cut(at, resume_at)).unwrap();
                rec.resume();
                rec.push(cut(resume_at, end)).unwrap();
            } else {
                rec.push(chunk).unwrap();
            }
            at = end;
        }
        rec.hangup();
        drop(rec);
        let o = collect(&e, None, Status::Stopped(Reason::Hangup));
        let gap = if behavior == "skip" {
            Vec::new()
        } else {
            silence(codec, resume_at - pause_at)
        };
        let want = [&input[..pause_at], &gap, &input[resume_at..]].concat();
        assert_audio(&o.audio, &want);
    }
}

#[test]
fn silence_timer_does_not_run_while_paused() {
    let dir = store("pause-timers");
    let e = engine(&dir);
    let codec = Codec::Alaw;
    // Sound, then 3 s of quiet while paused, then sound again, then quiet until the stop.
    let input = call(&[
        quiet(codec, 10, 5),
        sound(codec, 50, 10),
        quiet(codec, 150, 6),
        sound(codec, 50, 210),
        quiet(codec, 100, 7),
    ]);
    let o = run(
        &e,
        &opts(r#"{"milliseconds_max_silence":1000}"#),
        codec,
        &input,
        |i, rec| {
            if i == 60 {
                rec.pause();
            }
            if i == 210 {
                rec.resume();
            }
        },
    );
    // Without the pause it would stop on silence at frame 109; paused, it stops 50 frames
    // after the last sound (frame 259).
    assert_eq!(o.stop_frame, Some(309));
    assert_eq!(o.finished.result.reason, Reason::Silence);
    let want = [frames(&input, 0, 60), frames(&input, 210, 310)].concat();
    assert_audio(&o.audio, &want);
}

#[test]
fn duration_counts_only_unpaused_audio() {
    let dir = store("pause-duration");
    let e = engine(&dir);
    let codec = Codec::Alaw;
    let input = talking(codec);
    // 2 s limit: 1 s recorded, 1 s paused (silence in the file), then 1 s more recorded.
    let o = run(
        &e,
        &opts(r#"{"seconds_max_duration":2,"pause_behavior":"silence"}"#),
        codec,
        &input,
        |i, rec| {
            if i == 50 {
                rec.pause();
            }
            if i == 100 {
                rec.resume();
            }
        },
    );
    assert_eq!(o.finished.result.reason, Reason::Duration);
    assert_eq!(o.stop_frame, Some(149));
    let want = [
        frames(&input, 0, 50),
        &silence(codec, 50 * FRAME),
        frames(&input, 100, 150),
    ]
    .concat();
    assert_audio(&o.audio, &want);
}

#[test]
fn barge_in_works_while_paused_and_pausing_twice_changes_nothing() {
    let dir = store("pause-bargein");
    let e = engine(&dir);
    let codec = Codec::Ulaw;
    let input = talking(codec);
    let o = run(&e, &opts("{}"), codec, &input, |i, rec| {
        if i == 40 {
            rec.pause();
            rec.pause();
        }
        if i == 80 {
            assert_eq!(rec.digit('#').unwrap(), Status::Stopped(Reason::Bargein));
        }
    });
    assert_eq!(o.finished.result.reason, Reason::Bargein);
    assert_eq!(o.finished.result.barge_in_digit, Some('#'));
    assert_audio(&o.audio, frames(&input, 0, 40));
}

#[test]
fn paused_before_the_first_sound_and_resume_without_pause() {
    let dir = store("pause-waiting");
    let e = engine(&dir);
    let codec = Codec::Alaw;
    // Sound during the pause is not recorded and does not start the recording; the initial
    // silence timer (1 s) does not run while paused either.
    let input = call(&[
        quiet(codec, 20, 8),
        sound(codec, 100, 20),
        quiet(codec, 30, 9),
        sound(codec, 50, 150),
    ]);
    let o = run(
        &e,
        &opts(r#"{"milliseconds_max_initial_silence":1000}"#),
        codec,
        &input,
        |i, rec| {
            if i == 0 {
                assert_eq!(rec.resume(), Status::Waiting);
            }
            if i == 20 {
                assert_eq!(rec.pause(), Status::Waiting);
            }
            if i == 140 {
                rec.resume();
            }
        },
    );
    assert_eq!(o.finished.result.reason, Reason::Hangup);
    assert!(o.finished.result.contains_sound);
    // Pre-roll: the 10 quiet frames before the first sound after the resume (140..150).
    assert_audio(&o.audio, frames(&input, 140, 200));
}
