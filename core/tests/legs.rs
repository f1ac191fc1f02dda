//! Both sides of the call (DESIGN §13): two legs, each its own `Recorder`, in one file. Every
//! check is against truth by construction: each channel of a `"both"` file must equal what was
//! pushed on its leg (silence where the leg had nothing), a `"mixed"` file the saturated sum
//! computed here, and a two-leg recording whose other party never speaks must end where a
//! one-leg recording of the caller ends.

mod common;
#[path = "common/messages.rs"]
mod messages;
use callrec::g711::Codec;
use callrec::wav::{self, HEADER_BYTES};
use callrec::{Engine, Event, EventKind, Reason, RecordOptions, Recorder, Status};
use common::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

fn opts(json: &str) -> RecordOptions {
    RecordOptions::from_json(json).unwrap()
}

/// Both events of the next recording; returns *finished* and the file's bytes.
fn finished(engine: &Engine) -> (Event, PathBuf, Vec<u8>) {
    let f = engine
        .next_event(Some(Duration::from_secs(20)))
        .expect("finished");
    assert_eq!(f.kind, EventKind::Finished);
    let a = engine
        .next_event(Some(Duration::from_secs(20)))
        .expect("available");
    assert_eq!(a.kind, EventKind::Available);
    assert_eq!(a.result.legs, f.result.legs);
    let path = engine
        .store_root()
        .join(f.result.filename.trim_start_matches('/'));
    let bytes = std::fs::read(&path).unwrap();
    (f, path, bytes)
}

/// The two channels of a stereo G.711 file, checking its header is the §13 one.
fn channels(bytes: &[u8], codec: Codec) -> (Vec<u8>, Vec<u8>) {
    let info = wav::parse(bytes).unwrap();
    let tag = match codec {
        Codec::Alaw => 6,
        Codec::Ulaw => 7,
    };
    assert_eq!(
        (
            info.format_tag,
            info.channels,
            info.sample_rate,
            info.bits_per_sample
        ),
        (tag, 2, 8000, 8)
    );
    assert_eq!(
        u32::from_le_bytes(bytes[28..32].try_into().unwrap()),
        16_000
    );
    assert_eq!(u16::from_le_bytes([bytes[32], bytes[33]]), 2, "block align");
    let data = &bytes[info.data.clone()];
    assert_eq!(data.len() % 2, 0);
    assert_eq!(info.fact_samples, Some(data.len() as u32 / 2));
    (
        data.iter().step_by(2).copied().collect(),
        data.iter().skip(1).step_by(2).copied().collect(),
    )
}

/// `input` padded (or cut) to `len` samples with `codec` silence: what a leg's channel holds.
fn padded(input: &[u8], len: usize, codec: Codec) -> Vec<u8> {
    let mut v: Vec<u8> = input.iter().copied().take(len).collect();
    v.resize(len, codec.silence());
    v
}

#[track_caller]
fn same(got: &[u8], want: &[u8], what: &str) {
    let first = got.iter().zip(want).position(|(a, b)| a != b);
    assert!(
        got.len() == want.len() && first.is_none(),
        "{what}: {} samples, expected {}; first difference at {:?}",
        got.len(),
        want.len(),
        first
    );
}

/// Pushes both legs frame by frame from this thread (`None`: that leg sends nothing), then
/// hangs up on the caller's leg if still running. Returns the status.
fn push_both(caller: &mut Recorder, other: &mut Recorder, a: &[u8], b: Option<&[u8]>) -> Status {
    let frames = a.len().max(b.map_or(0, |b| b.len())).div_ceil(FRAME);
    for i in 0..frames {
        let range = |x: &[u8]| x[(i * FRAME).min(x.len())..((i + 1) * FRAME).min(x.len())].to_vec();
        let s = caller.feed(&range(a), LONG).unwrap();
        if let Status::Stopped(_) = s {
            return s;
        }
        if let Some(b) = b {
            if let Status::Stopped(r) = other.feed(&range(b), LONG).unwrap() {
                return Status::Stopped(r);
            }
        }
    }
    caller.hangup()
}

/// One two-leg recording from `record_call` to the file read back: `feed` pushes the legs, the
/// caller's hangup must stop it with `Hangup`, and the events and the stereo header are checked
/// on the way. Returns *finished* and the two channels (caller, other). The tests that differ
/// only in how they push and what they expect share it, so each shows just that.
#[track_caller]
fn record_two_legs(
    e: &Engine,
    codec: Codec,
    json: &str,
    feed: impl FnOnce(&mut Recorder, &mut Recorder),
) -> (Event, Vec<u8>, Vec<u8>) {
    let (mut caller, mut other) = e.record_call(&opts(json), codec).unwrap();
    feed(&mut caller, &mut other);
    assert_eq!(caller.hangup(), Status::Stopped(Reason::Hangup));
    drop((caller, other));
    let (f, _, bytes) = finished(e);
    let (ch1, ch2) = channels(&bytes, codec);
    (f, ch1, ch2)
}

#[test]
fn options_legs_are_validated_and_routed() {
    assert_eq!(
        opts(r#"{"legs":"both","silence_threshold_db":-40}"#).legs,
        callrec::Legs::Both
    );
    assert_eq!(opts(r#"{"legs":"mixed"}"#).legs, callrec::Legs::Mixed);
    assert_eq!(opts("{}").legs, callrec::Legs::Caller);
    for bad in [
        r#"{"legs":"left"}"#,
        r#"{"legs":2}"#,
        r#"{"legs":"sk_live_secret_value"}"#,
    ] {
        let e = RecordOptions::from_json(bad).unwrap_err();
        assert_eq!(e.field, "legs");
        messages::check(&e.to_string(), bad);
        assert!(!e.message.contains("sk_live_secret_value") || e.message.len() < 120);
    }
    let dir = store("legs-routing");
    let e = engine(&dir);
    let err = e
        .record(
            &opts(r#"{"legs":"both","silence_threshold_db":-40}"#),
            Codec::Alaw,
        )
        .unwrap_err();
    assert!(err.to_string().starts_with("legs:"), "{err}");
    let err = e.record_call(&opts("{}"), Codec::Alaw).unwrap_err();
    assert!(err.to_string().starts_with("legs:"), "{err}");
}

#[test]
fn each_channel_is_its_leg_sample_for_sample() {
    for (codec, format) in [(Codec::Alaw, None), (Codec::Ulaw, Some(Codec::Alaw))] {
        let dir = store(&format!("legs-exact-{codec:?}"));
        let e = engine(&dir);
        // The caller speaks first (the recording starts at frame 0), then the other party.
        let a = call(&[sound(codec, 100, 0), quiet(codec, 150, 1)]);
        let b = call(&[
            quiet(codec, 60, 2),
            sound(codec, 120, 5),
            quiet(codec, 70, 3),
        ]);
        let json = match format {
            None => r#"{"legs":"both","silence_threshold_db":-40,"milliseconds_max_silence":60000}"#.to_string(),
            Some(_) => r#"{"legs":"both","silence_threshold_db":-40,"milliseconds_max_silence":60000,"format":"alaw"}"#
                .to_string(),
        };
        let (mut caller, mut other) = e.record_call(&opts(&json), codec).unwrap();
        assert_eq!(caller.leg(), Some(0));
        assert_eq!(other.leg(), Some(1));
        assert_eq!(caller.filename(), other.filename());
        // An odd partial frame on one leg, completed later: placement is by sample index.
        let s = push_both(&mut caller, &mut other, &a, Some(&b));
        assert_eq!(s, Status::Stopped(Reason::Hangup));
        drop((caller, other));
        let (f, _, bytes) = finished(&e);
        let file_codec = format.unwrap_or(codec);
        let (ch1, ch2) = channels(&bytes, file_codec);
        let tr = |x: &[u8]| -> Vec<u8> {
            let mut out = vec![0; x.len()];
            callrec::g711::transcode_into(codec, file_codec, x, &mut out);
            out
        };
        same(&ch1, &tr(&a), "channel 1 (caller)");
        same(&ch2, &tr(&b), "channel 2 (other)");
        let r = &f.result;
        assert_eq!(r.reason, Reason::Hangup);
        assert!(r.contains_sound);
        assert_eq!(r.samples, a.len() as u64);
        let legs = r.legs.expect("legs in a two-leg result");
        assert!(legs.caller.contains_sound && legs.other.contains_sound);
        assert_eq!(
            (legs.caller.samples_filled, legs.other.samples_filled),
            (0, 0)
        );
        assert_eq!(
            (legs.caller.frames_dropped, legs.other.frames_dropped),
            (0, 0)
        );
        // Speech is about 2 s and 2.4 s (the detector's frames, give or take its edges).
        assert!(
            (legs.caller.seconds_of_speech() - 2.0).abs() <= 0.4,
            "{legs:?}"
        );
        assert!(
            (legs.other.seconds_of_speech() - 2.4).abs() <= 0.4,
            "{legs:?}"
        );
        let json: serde_json::Value = serde_json::from_str(&r.action_result_json()).unwrap();
        assert_eq!(json["result"]["seconds_duration"], 5.0);
        assert_eq!(json["result"]["legs"]["other"]["samples_filled"], 0);
    }
}

#[test]
fn sox_reads_two_channels_and_decodes_each_leg() {
    let Ok(out) = std::process::Command::new("sox").arg("--version").output() else {
        eprintln!("sox not on PATH: skipped");
        return;
    };
    assert!(out.status.success());
    let codec = Codec::Alaw;
    let dir = store("legs-sox");
    let e = engine(&dir);
    let a = call(&[sound(codec, 80, 0), quiet(codec, 40, 1)]);
    let b = call(&[quiet(codec, 30, 2), sound(codec, 90, 7)]);
    let (mut caller, mut other) = e
        .record_call(
            &opts(r#"{"legs":"both","silence_threshold_db":-40,"milliseconds_max_silence":60000}"#),
            codec,
        )
        .unwrap();
    push_both(&mut caller, &mut other, &a, Some(&b));
    drop((caller, other));
    let (_, path, _) = finished(&e);
    let info = std::process::Command::new("sox")
        .args(["--i", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&info.stdout).trim(), "2");
    let decoded = std::process::Command::new("sox")
        .arg(&path)
        .args(["-t", "raw", "-e", "signed-integer", "-b", "16", "-L", "-"])
        .output()
        .unwrap();
    assert!(decoded.status.success());
    let pcm: Vec<i16> = decoded
        .stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    assert_eq!(pcm.len(), 2 * a.len());
    for (i, frame) in pcm.chunks_exact(2).enumerate() {
        assert_eq!(frame[0], codec.decode(a[i]), "caller sample {i}");
        assert_eq!(frame[1], codec.decode(b[i]), "other sample {i}");
    }
}

/// Feeds `a` to the caller frame by frame, and from sample `late` on places `b` on the other
/// leg alongside it with `push_at`. Before that the other leg sends nothing or, with `move_on`,
/// an empty `push_at` every frame (as `callrec serve`'s tick does for a party not sending yet).
/// The two tests of a leg that starts late share it; they differ only in `move_on`.
fn push_other_late(
    caller: &mut Recorder,
    other: &mut Recorder,
    a: &[u8],
    b: &[u8],
    late: u64,
    move_on: bool,
) {
    for i in 0..a.len() / FRAME {
        caller.feed(&a[i * FRAME..(i + 1) * FRAME], LONG).unwrap();
        let at = (i * FRAME) as u64;
        if at < late {
            if move_on {
                other.push_at(at, &[]).unwrap();
            }
        } else {
            let j = (at - late) as usize;
            if j < b.len() {
                other.push_at(at, &b[j..j + FRAME]).unwrap();
            }
        }
    }
}

#[test]
fn a_leg_starting_3_s_late_is_silence_until_it_starts() {
    let codec = Codec::Alaw;
    let dir = store("legs-late");
    let e = engine(&dir);
    let a = call(&[sound(codec, 250, 0), quiet(codec, 100, 1)]); // 7 s
    let b = call(&[
        quiet(codec, 20, 5),
        sound(codec, 100, 3),
        quiet(codec, 80, 4),
    ]); // 4 s, from 3 s
    let late = 24_000u64;
    let (f, ch1, ch2) = record_two_legs(
        &e,
        codec,
        r#"{"legs":"both","silence_threshold_db":-40,"milliseconds_max_silence":60000}"#,
        |caller, other| push_other_late(caller, other, &a, &b, late, false),
    );
    same(&ch1, &a, "caller");
    let mut want = vec![codec.silence(); late as usize];
    want.extend(&b);
    same(
        &ch2,
        &padded(&want, a.len(), codec),
        "other: silence, then its audio",
    );
    let legs = f.result.legs.unwrap();
    assert_eq!(legs.caller.samples_filled, 0);
    assert_eq!(legs.other.samples_filled, late);
    assert!(legs.other.contains_sound);
}

/// A host that moves a silent leg on with an empty `push_at` every frame (as `callrec serve`'s
/// tick does for a party that has not sent yet), then pushes its first audio: many gaps in a
/// row, none of them may cost the audio after them (they once waited in a one-entry slot, and
/// the audio behind them was lost).
#[test]
fn a_leg_moved_on_frame_by_frame_keeps_its_first_audio() {
    let codec = Codec::Alaw;
    let dir = store("legs-moved-on");
    let e = engine(&dir);
    let a = call(&[sound(codec, 250, 0), quiet(codec, 50, 1)]); // 6 s
    let b = call(&[sound(codec, 100, 3), quiet(codec, 50, 4)]); // 3 s, from 2 s
    let late = 16_000u64;
    let (f, ch1, ch2) = record_two_legs(
        &e,
        codec,
        r#"{"legs":"both","silence_threshold_db":-40,"milliseconds_max_silence":60000}"#,
        |caller, other| push_other_late(caller, other, &a, &b, late, true),
    );
    same(&ch1, &a, "caller");
    let mut want = vec![codec.silence(); late as usize];
    want.extend(&b);
    same(
        &ch2,
        &padded(&want, a.len(), codec),
        "other: silence, then all its audio",
    );
    let legs = f.result.legs.unwrap();
    // Silence before it starts and after it ends (the caller talks on).
    let after = a.len() as u64 - late - b.len() as u64;
    assert_eq!(legs.other.samples_filled, late + after);
    assert_eq!(legs.other.frames_dropped, 0);
}

/// A lossy leg pushed as fast as the writer takes it (a file, `push_at` skipping each lost
/// frame): one gap per loss, many between two polls of the writer; every frame that was pushed
/// is in the file at its index, and only the lost ones are silence.
#[test]
fn a_lossy_leg_pushed_fast_keeps_every_frame_it_pushed() {
    let codec = Codec::Alaw;
    let dir = store("legs-lossy");
    let e = engine(&dir);
    let a = call(&[sound(codec, 1500, 0)]); // 30 s
    let b = call(&[sound(codec, 1500, 7)]);
    let mut want = b.clone();
    let mut lost = 0;
    let (f, ch1, ch2) = record_two_legs(
        &e,
        codec,
        r#"{"legs":"both","silence_threshold_db":-40,"milliseconds_max_silence":60000}"#,
        |caller, other| {
            for i in 0..a.len() / FRAME {
                caller.feed(&a[i * FRAME..(i + 1) * FRAME], LONG).unwrap();
                if i % 7 == 3 {
                    want[i * FRAME..(i + 1) * FRAME].fill(codec.silence());
                    lost += 1;
                    continue;
                }
                while other.ring_free_bytes() < FRAME {
                    std::thread::sleep(Duration::from_millis(1));
                }
                other
                    .push_at((i * FRAME) as u64, &b[i * FRAME..(i + 1) * FRAME])
                    .unwrap();
            }
        },
    );
    same(&ch1, &a, "caller");
    same(&ch2, &want, "other: its frames, the lost ones silence");
    let legs = f.result.legs.unwrap();
    assert_eq!(legs.other.frames_dropped, 0);
    assert_eq!(legs.other.samples_filled, lost * FRAME as u64);
}

#[test]
fn a_never_sending_leg_gives_a_complete_file_and_the_caller_s_stop() {
    // The truth: the same caller audio in a one-leg recording with the same options. The
    // two-leg file's channel 1 must be that file's audio, channel 2 silence, and the stop the
    // same; a ring of 1 s makes the writer fill the silent leg as the caller goes on.
    let codec = Codec::Alaw;
    let dir = store("legs-never");
    let e = engine_with_ring(&dir, 1000);
    let a = call(&[
        quiet(codec, 50, 9),
        sound(codec, 120, 0),
        quiet(codec, 500, 1),
    ]);
    let one = opts(r#"{"silence_threshold_db":-40,"milliseconds_max_silence":2000}"#);
    let (mut rec, _) = e.record(&one, codec).unwrap();
    let mut one_stop = None;
    for (i, f) in a.chunks(FRAME).enumerate() {
        if let Status::Stopped(r) = rec.feed(f, LONG).unwrap() {
            one_stop = Some((i, r));
            break;
        }
    }
    assert_eq!(one_stop.map(|s| s.1), Some(Reason::Silence));
    drop(rec);
    let (f1, _, bytes1) = finished(&e);
    let info1 = wav::parse(&bytes1).unwrap();
    let mono = bytes1[info1.data.clone()].to_vec();

    let (mut caller, other) = e
        .record_call(
            &opts(r#"{"legs":"both","silence_threshold_db":-40,"milliseconds_max_silence":2000}"#),
            codec,
        )
        .unwrap();
    let mut stopped = None;
    for f in a.chunks(FRAME) {
        if let Status::Stopped(r) = caller.feed(f, LONG).unwrap() {
            stopped = Some(r);
            break;
        }
        // Real time, roughly: the writer has to see the other leg fall behind.
        std::thread::sleep(Duration::from_micros(300));
    }
    assert_eq!(stopped, Some(Reason::Silence), "stops on silence");
    drop((caller, other));
    let (f2, _, bytes2) = finished(&e);
    let (ch1, ch2) = channels(&bytes2, codec);
    same(&ch1, &mono, "channel 1 = the one-leg recording");
    same(
        &ch2,
        &vec![codec.silence(); mono.len()],
        "channel 2 silence",
    );
    assert_eq!(f2.result.reason, Reason::Silence);
    assert_eq!(f2.result.samples, f1.result.samples);
    let legs = f2.result.legs.unwrap();
    assert_eq!(legs.other.samples_filled, mono.len() as u64);
    assert!(!legs.other.contains_sound && legs.caller.contains_sound);
}

#[test]
fn one_side_talking_never_stops_both_silent_stops() {
    // Turns: the caller talks 0-2 s, the other 1.5-5 s, then both are quiet. With 2 s of
    // allowed silence the caller's 3 s of silence (2-5 s) must not stop the recording (the
    // other is talking); both silent from 5 s must stop it about 7 s in, exactly where the
    // other leg's last speech plus 2 s puts it (checked against a one-leg recording of it).
    let codec = Codec::Alaw;
    let dir = store("legs-stop-rule");
    let e = engine(&dir);
    let a = call(&[sound(codec, 100, 0), quiet(codec, 400, 1)]);
    let b = call(&[
        quiet(codec, 75, 2),
        sound(codec, 175, 11),
        quiet(codec, 250, 3),
    ]);
    let json = r#"{"legs":"both","silence_threshold_db":-40,"milliseconds_max_silence":2000}"#;
    let (mut caller, mut other) = e.record_call(&opts(json), codec).unwrap();
    let s = push_both(&mut caller, &mut other, &a, Some(&b));
    assert_eq!(s, Status::Stopped(Reason::Silence));
    drop((caller, other));
    let (f, _, bytes) = finished(&e);
    let (ch1, ch2) = channels(&bytes, codec);
    same(&ch1, &a[..ch1.len()], "caller");
    same(&ch2, &b[..ch2.len()], "other");
    let seconds = f.result.seconds_duration();
    assert!((6.5..=7.5).contains(&seconds), "stopped at {seconds} s");

    // The other leg alone, starting where the two-leg file starts (0): its one-leg recording
    // stops 2 s after its last speech, at the same sample.
    let (mut rec, _) = e
        .record(
            &opts(r#"{"silence_threshold_db":-40,"milliseconds_max_silence":2000}"#),
            codec,
        )
        .unwrap();
    let mut i = 0;
    while let Ok(Status::Waiting | Status::Recording) =
        rec.feed(&b[i * FRAME..(i + 1) * FRAME], LONG)
    {
        i += 1;
    }
    drop(rec);
    let (_, _, one) = finished(&e);
    let info = wav::parse(&one).unwrap();
    let start = 75 * FRAME - callrec::recorder::PREROLL_FRAMES * FRAME;
    // One-leg: from its pre-roll to its stop; two legs: from 0 to the same stop.
    let one_end = start + info.data.len();
    let tolerance = 2 * FRAME; // the detector's onset decision on its own line
    assert!(
        (ch2.len() as i64 - one_end as i64).abs() <= tolerance as i64,
        "two-leg stop at {} samples, the other leg alone at {one_end}",
        ch2.len()
    );
}

#[test]
fn both_silent_from_the_start_stops_on_initial_silence() {
    let codec = Codec::Alaw;
    let dir = store("legs-initial");
    let e = engine(&dir);
    let a = quiet(codec, 200, 1);
    let b = quiet(codec, 200, 2);
    let (mut caller, mut other) = e
        .record_call(
            &opts(r#"{"legs":"both","silence_threshold_db":-40,"milliseconds_max_initial_silence":1000}"#),
            codec,
        )
        .unwrap();
    let s = push_both(&mut caller, &mut other, &a, Some(&b));
    assert_eq!(s, Status::Stopped(Reason::Silence));
    drop((caller, other));
    let (f, _, bytes) = finished(&e);
    assert_eq!(f.result.samples, 0);
    assert!(!f.result.contains_sound);
    assert_eq!(bytes.len(), HEADER_BYTES);
}

#[test]
fn two_threads_push_at_once() {
    let codec = Codec::Ulaw;
    let dir = store("legs-threads");
    let e = engine(&dir);
    let a = call(&[sound(codec, 300, 0), quiet(codec, 200, 1)]);
    let b = call(&[
        quiet(codec, 100, 2),
        sound(codec, 300, 13),
        quiet(codec, 100, 3),
    ]);
    let (f, ch1, ch2) = record_two_legs(
        &e,
        codec,
        r#"{"legs":"both","silence_threshold_db":-40,"milliseconds_max_silence":60000}"#,
        |caller, other| {
            let go = std::sync::Barrier::new(2);
            std::thread::scope(|s| {
                let (a, b, go) = (&a, &b, &go);
                s.spawn(move || {
                    go.wait();
                    // Odd piece sizes: the legs are placed by sample, not by push.
                    for piece in b.chunks(97) {
                        other.feed(piece, LONG).unwrap();
                    }
                });
                go.wait();
                for piece in a.chunks(211) {
                    caller.feed(piece, LONG).unwrap();
                }
            });
        },
    );
    same(&ch1, &a, "caller");
    same(&ch2, &b, "other");
    assert_eq!(f.result.legs.unwrap().other.samples_filled, 0);
}

#[test]
fn mixed_is_the_saturated_sum() {
    let codec = Codec::Alaw;
    let dir = store("legs-mixed");
    let e = engine(&dir);
    // Loud enough that the sum saturates in places.
    let loud = |frames: usize, f: f64| -> Vec<u8> {
        (0..frames * FRAME)
            .map(|i| {
                let t = i as f64 / 8000.0;
                let env = 0.6 + 0.4 * (std::f64::consts::TAU * t / 0.24).sin();
                codec.encode((env * 30000.0 * (std::f64::consts::TAU * f * t).sin()) as i16)
            })
            .collect()
    };
    let a = call(&[loud(150, 300.0), quiet(codec, 50, 1)]);
    let b = call(&[quiet(codec, 20, 2), loud(150, 300.0), quiet(codec, 30, 3)]);
    let (mut caller, mut other) = e
        .record_call(
            &opts(
                r#"{"legs":"mixed","silence_threshold_db":-40,"milliseconds_max_silence":60000}"#,
            ),
            codec,
        )
        .unwrap();
    push_both(&mut caller, &mut other, &a, Some(&b));
    drop((caller, other));
    let (f, _, bytes) = finished(&e);
    let info = wav::parse(&bytes).unwrap();
    assert_eq!(info.channels, 1);
    let got = &bytes[info.data.clone()];
    // The sum, computed here from the ITU-T G.711 A-law decoding (sign bit 0x80 inverted,
    // even bits inverted) and clamped to 16 bits, re-encoded with the codec.
    let alaw = |byte: u8| -> i32 {
        let x = byte ^ 0x55;
        let exp = (x >> 4) & 7;
        let mant = i32::from(x & 0x0F);
        let mag = if exp == 0 {
            (mant << 4) + 8
        } else {
            ((mant << 4) + 0x108) << (exp - 1)
        };
        if x & 0x80 != 0 {
            mag
        } else {
            -mag
        }
    };
    let mut saturated = 0;
    let want: Vec<u8> = a
        .iter()
        .zip(&b)
        .map(|(&x, &y)| {
            let sum = alaw(x) + alaw(y);
            if !(-32768..=32767).contains(&sum) {
                saturated += 1;
            }
            codec.encode(sum.clamp(-32768, 32767) as i16)
        })
        .collect();
    assert!(saturated > 100, "the test saturates ({saturated} samples)");
    same(got, &want, "mixed");
    assert!(f.result.legs.is_some());
}

#[test]
fn stereo_files_are_encrypted_whole_and_decrypt_to_both_legs() {
    use callrec::cipher::{decrypt_stream, CipherSpec, Mode};
    let codec = Codec::Alaw;
    let key = "000102030405060708090a0b0c0d0e0f";
    for (mode, iv) in [
        ("aesctr", "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"),
        ("aescbc", "e0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"),
    ] {
        let dir = store(&format!("legs-{mode}"));
        let e = engine(&dir);
        let a = call(&[sound(codec, 60, 0), quiet(codec, 40, 1)]);
        let b = call(&[quiet(codec, 30, 2), sound(codec, 70, 3)]);
        let json = format!(
            r#"{{"legs":"both","silence_threshold_db":-40,"milliseconds_max_silence":60000,"encryption_cipher":{{"type":"{mode}","key":"{key}","initialisation_vector":"{iv}"}}}}"#
        );
        let (mut caller, mut other) = e.record_call(&opts(&json), codec).unwrap();
        push_both(&mut caller, &mut other, &a, Some(&b));
        drop((caller, other));
        let (_, _, bytes) = finished(&e);
        assert!(!bytes.windows(4).any(|w| w == b"RIFF"), "{mode}: encrypted");
        let m = if mode == "aesctr" {
            Mode::Ctr
        } else {
            Mode::Cbc
        };
        let spec = CipherSpec::from_hex(m, key, iv).unwrap();
        let mut plain = Vec::new();
        decrypt_stream(&spec, &mut bytes.as_slice(), &mut plain).unwrap();
        let (ch1, ch2) = channels(&plain, codec);
        same(&ch1, &a, &format!("{mode} caller"));
        same(&ch2, &b, &format!("{mode} other"));
    }
}

#[test]
fn limits_apply_to_the_file() {
    let codec = Codec::Alaw;
    let dir = store("legs-limits");
    let e = engine(&dir);
    let a = sound(codec, 200, 0);
    let b = sound(codec, 200, 40);
    // Duration: 2 s per channel.
    let (mut caller, mut other) = e
        .record_call(
            &opts(r#"{"legs":"both","silence_threshold_db":-40,"seconds_max_duration":2}"#),
            codec,
        )
        .unwrap();
    let s = push_both(&mut caller, &mut other, &a, Some(&b));
    assert_eq!(s, Status::Stopped(Reason::Duration));
    drop((caller, other));
    let (f, _, bytes) = finished(&e);
    assert_eq!(f.result.reason, Reason::Duration);
    assert_eq!(f.result.samples, 16_000);
    let (ch1, ch2) = channels(&bytes, codec);
    same(&ch1, &a[..16_000], "caller");
    same(&ch2, &b[..16_000], "other");
    // Size: the whole file, header included, never past max_file_bytes.
    let (mut caller, mut other) = e
        .record_call(
            &opts(r#"{"legs":"both","silence_threshold_db":-40,"max_file_bytes":10058}"#),
            codec,
        )
        .unwrap();
    let s = push_both(&mut caller, &mut other, &a, Some(&b));
    assert_eq!(s, Status::Stopped(Reason::Filesize));
    drop((caller, other));
    let (f, _, bytes) = finished(&e);
    assert_eq!(f.result.reason, Reason::Filesize);
    assert_eq!(bytes.len(), 10_058);
    assert_eq!(f.result.samples, 5_000);
}

#[test]
fn hangup_from_the_other_leg_and_abort_end_the_recording() {
    let codec = Codec::Alaw;
    let dir = store("legs-hangup");
    let e = engine(&dir);
    let a = sound(codec, 100, 0);
    let (mut caller, mut other) = e
        .record_call(
            &opts(r#"{"legs":"both","silence_threshold_db":-40,"milliseconds_max_silence":60000}"#),
            codec,
        )
        .unwrap();
    caller.feed(&a, LONG).unwrap();
    // The other leg sent 0.5 s only; it hangs up: the file is the caller's 2 s and silence.
    other.feed(&quiet(codec, 25, 1), LONG).unwrap();
    assert_eq!(other.hangup(), Status::Stopped(Reason::Hangup));
    assert_eq!(
        caller.push(&a[..FRAME]),
        Ok(Status::Stopped(Reason::Hangup))
    );
    drop((caller, other));
    let (f, _, bytes) = finished(&e);
    let (ch1, ch2) = channels(&bytes, codec);
    same(&ch1, &a, "caller");
    assert_eq!(ch2.len(), a.len());
    assert_eq!(
        f.result.legs.unwrap().other.samples_filled,
        (a.len() - 25 * FRAME) as u64
    );

    let (mut caller, other) = e
        .record_call(
            &opts(r#"{"legs":"both","silence_threshold_db":-40}"#),
            codec,
        )
        .unwrap();
    caller.feed(&a, LONG).unwrap();
    assert!(other.handle().abort());
    assert_eq!(caller.status(), Status::Stopped(Reason::Aborted));
    drop((caller, other));
    let (f, _, _) = finished(&e);
    assert_eq!(f.result.reason, Reason::Aborted);
    assert_eq!(f.result.samples, a.len() as u64);
}

#[test]
fn pause_covers_both_legs() {
    let codec = Codec::Alaw;
    for behavior in ["skip", "silence"] {
        let dir = store(&format!("legs-pause-{behavior}"));
        let e = engine(&dir);
        let a = sound(codec, 300, 0);
        let b = sound(codec, 300, 50);
        let json = format!(
            r#"{{"legs":"both","silence_threshold_db":-40,"milliseconds_max_silence":60000,"pause_behavior":"{behavior}"}}"#
        );
        let (mut caller, mut other) = e.record_call(&opts(&json), codec).unwrap();
        // Pause on the other leg at 2 s (after both pushed 2 s), resume on the caller at 4 s.
        caller.feed(&a[..16_000], LONG).unwrap();
        other.feed(&b[..16_000], LONG).unwrap();
        other.pause();
        assert!(caller.is_paused());
        caller.feed(&a[16_000..32_000], LONG).unwrap();
        other.feed(&b[16_000..32_000], LONG).unwrap();
        caller.resume();
        assert!(!other.is_paused());
        caller.feed(&a[32_000..], LONG).unwrap();
        other.feed(&b[32_000..], LONG).unwrap();
        caller.hangup();
        drop((caller, other));
        let (_, _, bytes) = finished(&e);
        let (ch1, ch2) = channels(&bytes, codec);
        let expect = |x: &[u8]| -> Vec<u8> {
            let mut v = x[..16_000].to_vec();
            if behavior == "silence" {
                v.extend(vec![codec.silence(); 16_000]);
            }
            v.extend(&x[32_000..]);
            v
        };
        same(&ch1, &expect(&a), &format!("{behavior}: caller"));
        same(&ch2, &expect(&b), &format!("{behavior}: other"));
    }
}

#[test]
fn trim_trailing_silence_cuts_after_the_last_sound_on_either_leg() {
    let codec = Codec::Alaw;
    let dir = store("legs-trim");
    let e = engine(&dir);
    let a = call(&[sound(codec, 100, 0), quiet(codec, 200, 1)]);
    let b = call(&[
        quiet(codec, 50, 2),
        sound(codec, 100, 9),
        quiet(codec, 150, 3),
    ]);
    let (mut caller, mut other) = e
        .record_call(
            &opts(r#"{"legs":"both","silence_threshold_db":-40,"milliseconds_max_silence":60000,"trim_trailing_silence":true}"#),
            codec,
        )
        .unwrap();
    push_both(&mut caller, &mut other, &a, Some(&b));
    drop((caller, other));
    let (f, _, bytes) = finished(&e);
    let (ch1, ch2) = channels(&bytes, codec);
    same(&ch1, &a[..ch1.len()], "caller");
    same(&ch2, &b[..ch2.len()], "other");
    // The other leg's speech ends at 3 s: the file ends there, give or take the detector.
    let end = 150 * FRAME;
    assert!(
        (ch1.len() as i64 - end as i64).abs() <= 10 * FRAME as i64,
        "trimmed to {} samples, speech ends at {end}",
        ch1.len()
    );
    assert!(f.result.samples < a.len() as u64);
}

#[test]
fn a_stereo_part_recovers_as_stereo_whole_frames() {
    let codec = Codec::Alaw;
    let dir = store("legs-recover");
    let part_copy = {
        let e = engine(&dir);
        let a = sound(codec, 100, 0);
        let b = sound(codec, 100, 30);
        let (mut caller, mut other) = e
            .record_call(&opts(r#"{"legs":"both","silence_threshold_db":-40,"milliseconds_max_silence":60000}"#), codec)
            .unwrap();
        caller.feed(&a, LONG).unwrap();
        other.feed(&b, LONG).unwrap();
        // The `.part` as a crash would leave it: everything the writer has written so far.
        let part = dir
            .join(caller.filename().trim_start_matches('/'))
            .with_extension("wav.part");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::fs::metadata(&part).map_or(0, |m| m.len()) < (HEADER_BYTES + 2 * 8000) as u64 {
            assert!(std::time::Instant::now() < deadline, "the writer wrote");
            std::thread::sleep(Duration::from_millis(5));
        }
        let copy = dir.join("crashed.wav.part");
        let mut bytes = std::fs::read(&part).unwrap();
        // A crash half-way through a sample frame: one odd trailing byte.
        bytes.truncate(HEADER_BYTES + 2 * 8000 + 1);
        std::fs::write(&copy, &bytes).unwrap();
        caller.hangup();
        drop((caller, other));
        (copy, a, b)
    };
    let (copy, a, b) = part_copy;
    let r = callrec::recover::recover_part(&copy).unwrap();
    assert_eq!(r.samples, 8000, "whole frames: the odd byte dropped");
    let bytes = std::fs::read(Path::new(&r.path)).unwrap();
    let (ch1, ch2) = channels(&bytes, codec);
    same(&ch1, &a[..8000], "recovered caller");
    same(&ch2, &b[..8000], "recovered other");
}

/// `ms` of the DTMF key `digit` at about -9 dBm0 per tone.
fn key(codec: Codec, digit: char, ms: usize) -> Vec<u8> {
    let (r, c) = callrec::dtmf::key_frequencies(digit).unwrap();
    (0..ms * 8)
        .map(|n| {
            let t = n as f64 / 8000.0;
            let w = std::f64::consts::TAU;
            codec.encode((5000.0 * (w * r * t).sin() + 5000.0 * (w * c * t).sin()) as i16)
        })
        .collect()
}

#[test]
fn in_band_barge_in_listens_to_the_caller_and_masking_covers_both_legs() {
    let codec = Codec::Alaw;
    // The other party keys '#' (a barge-in digit) at 2 s: masked in channel 2, no barge-in.
    // The caller keys '#' at 4 s: the recording stops with bargein, the file ending where the
    // tone began (cut and masked).
    let dir = store("legs-dtmf");
    let e = engine(&dir);
    let a = call(&[
        sound(codec, 100, 0),
        quiet(codec, 100, 1),
        key(codec, '#', 120),
        quiet(codec, 94, 2),
    ]);
    let b = call(&[
        sound(codec, 50, 7),
        quiet(codec, 50, 3),
        key(codec, '#', 120),
        sound(codec, 194, 8),
    ]);
    let (mut caller, mut other) = e
        .record_call(
            &opts(r#"{"legs":"both","silence_threshold_db":-40,"milliseconds_max_silence":60000,"mask_dtmf":true}"#),
            codec,
        )
        .unwrap();
    let s = push_both(&mut caller, &mut other, &a, Some(&b));
    assert_eq!(s, Status::Stopped(Reason::Bargein));
    drop((caller, other));
    let (f, _, bytes) = finished(&e);
    assert_eq!(f.result.barge_in_digit, Some('#'));
    let (ch1, ch2) = channels(&bytes, codec);
    // The file ends at the caller's tone (200 frames in), give or take the detector's margin.
    let tone = 200 * FRAME;
    assert!(
        ch1.len() <= tone && ch1.len() + 2 * FRAME >= tone,
        "ends at {} samples, the tone starts at {tone}",
        ch1.len()
    );
    same(&ch1, &a[..ch1.len()], "caller up to its tone");
    // Channel 2: the other's tone (frames 100..106) is silence; the rest is its audio.
    let (from, to) = (100 * FRAME, 100 * FRAME + 960);
    assert!(
        ch2[from..to]
            .iter()
            .filter(|&&x| x == codec.silence())
            .count()
            >= 900,
        "the other leg's key is masked"
    );
    same(
        &ch2[..from - 2 * FRAME],
        &b[..from - 2 * FRAME],
        "other before its key",
    );
    same(
        &ch2[to + 2 * FRAME..],
        &b[to + 2 * FRAME..ch2.len()],
        "other after its key",
    );
}

#[test]
fn a_host_digit_on_either_leg_barges_in() {
    let codec = Codec::Alaw;
    let dir = store("legs-digit");
    let e = engine(&dir);
    let a = sound(codec, 100, 0);
    let (mut caller, mut other) = e
        .record_call(
            &opts(r#"{"legs":"both","silence_threshold_db":-40,"barge_in_digits":"5"}"#),
            codec,
        )
        .unwrap();
    caller.feed(&a, LONG).unwrap();
    other.feed(&a, LONG).unwrap();
    assert_eq!(
        other.digit('#'),
        Ok(Status::Recording),
        "not a barge-in digit"
    );
    assert_eq!(other.digit('5'), Ok(Status::Stopped(Reason::Bargein)));
    assert_eq!(caller.status(), Status::Stopped(Reason::Bargein));
    drop((caller, other));
    let (f, _, _) = finished(&e);
    assert_eq!(
        (f.result.reason, f.result.barge_in_digit),
        (Reason::Bargein, Some('5'))
    );
    assert_eq!(f.result.samples, a.len() as u64);
}

/// Sets a user extended attribute on `path`; false where the filesystem keeps none.
fn set_xattr(path: &Path, name: &str, value: &[u8]) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    // SAFETY: both strings are NUL-terminated and `value` is valid for its length.
    unsafe {
        libc::setxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        ) == 0
    }
}

#[test]
fn an_encrypted_stereo_part_recovers_as_stereo_without_the_key() {
    use callrec::cipher::{decrypt_stream, CipherSpec, Mode};
    let codec = Codec::Ulaw;
    let (key, iv) = (
        "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
        "0f0e0d0c0b0a09080706050403020100",
    );
    let dir = store("legs-recover-ctr");
    let e = engine(&dir);
    let a = sound(codec, 100, 0);
    let b = sound(codec, 100, 30);
    let json = format!(
        r#"{{"legs":"both","silence_threshold_db":-40,"milliseconds_max_silence":60000,"encryption_cipher":{{"type":"aesctr","key":"{key}","initialisation_vector":"{iv}"}}}}"#
    );
    let (mut caller, mut other) = e.record_call(&opts(&json), codec).unwrap();
    caller.feed(&a, LONG).unwrap();
    other.feed(&b, LONG).unwrap();
    let part = dir
        .join(caller.filename().trim_start_matches('/'))
        .with_extension("wav.part");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::fs::metadata(&part).map_or(0, |m| m.len()) < (HEADER_BYTES + 2 * 8000) as u64 {
        assert!(std::time::Instant::now() < deadline, "the writer wrote");
        std::thread::sleep(Duration::from_millis(5));
    }
    let copy = dir.join("crashed-ctr.wav.part");
    let mut bytes = std::fs::read(&part).unwrap();
    bytes.truncate(HEADER_BYTES + 2 * 8000 + 1);
    std::fs::write(&copy, &bytes).unwrap();
    caller.hangup();
    drop((caller, other));
    // The marks the store puts on a `.part` (a copy does not keep them).
    if !set_xattr(&copy, "user.callrec.part", b"1") {
        eprintln!("no user xattrs on this filesystem: skipped");
        return;
    }
    assert!(set_xattr(&copy, "user.callrec.channels", b"2"));
    let r = callrec::recover::recover_part(&copy).unwrap();
    assert_eq!(r.samples, 8000, "whole frames");
    let encrypted = std::fs::read(&r.path).unwrap();
    let spec = CipherSpec::from_hex(Mode::Ctr, key, iv).unwrap();
    let mut plain = Vec::new();
    decrypt_stream(&spec, &mut encrypted.as_slice(), &mut plain).unwrap();
    let (ch1, ch2) = channels(&plain, codec);
    same(&ch1, &a[..8000], "recovered caller");
    same(&ch2, &b[..8000], "recovered other");
}

#[test]
fn the_beep_is_the_caller_s_and_the_recording_starts_after_it() {
    let codec = Codec::Alaw;
    let dir = store("legs-beep");
    let e = engine(&dir);
    let (mut caller, mut other) = e
        .record_call(
            &opts(r#"{"legs":"both","silence_threshold_db":-40,"beep_on_start":true,"milliseconds_max_silence":60000}"#),
            codec,
        )
        .unwrap();
    let mut out = [0u8; FRAME];
    assert_eq!(other.playout(&mut out), 0, "no beep to the other party");
    // The other party talks during the beep: that is not the start of the recording.
    let b = call(&[
        sound(codec, 10, 0),
        quiet(codec, 90, 1),
        sound(codec, 50, 2),
    ]);
    let a = quiet(codec, 150, 3);
    let mut beeped = 0;
    for i in 0..150 {
        let n = caller.playout(&mut out);
        beeped += n;
        caller.feed(&a[i * FRAME..][..FRAME], LONG).unwrap();
        other.feed(&b[i * FRAME..][..FRAME], LONG).unwrap();
    }
    assert_eq!(beeped, 2000, "250 ms of beep");
    caller.hangup();
    drop((caller, other));
    let (f, _, bytes) = finished(&e);
    let (_, ch2) = channels(&bytes, codec);
    // The recording starts at the other's second talkspurt (frame 100), less the pre-roll.
    let start = (100 - callrec::recorder::PREROLL_FRAMES) * FRAME;
    assert_eq!(ch2.len(), b.len() - start, "{:?}", f.result);
    same(&ch2, &b[start..], "other from the pre-roll");
}

#[test]
fn push_at_on_one_leg_fills_the_gap_with_silence() {
    let codec = Codec::Alaw;
    let dir = store("legs-push-at-one");
    let e = engine(&dir);
    let (mut rec, _) = e
        .record(
            &opts(r#"{"silence_threshold_db":-40,"milliseconds_max_silence":60000}"#),
            codec,
        )
        .unwrap();
    let a = sound(codec, 50, 0);
    rec.feed(&a, LONG).unwrap();
    rec.push_at(8000 + 800, &a[..FRAME]).unwrap();
    rec.push_at(8000 + 800 + 80, &a[..FRAME]).unwrap(); // half of it late
    rec.hangup();
    drop(rec);
    let (_, _, bytes) = finished(&e);
    let info = wav::parse(&bytes).unwrap();
    let mut want = a.clone();
    want.extend(vec![codec.silence(); 800]);
    want.extend(&a[..FRAME]);
    want.extend(&a[80..FRAME]);
    same(&bytes[info.data.clone()], &want, "one leg with a gap");
}

#[test]
fn a_leg_that_goes_quiet_and_comes_back_is_placed_when_it_comes_back() {
    // The other leg sends nothing for a while (no timestamps: plain `push`): the writer fills
    // it once it is more than a ring behind, and when it pushes again its audio lands there,
    // whole, rather than seconds late (which would drop it all).
    let codec = Codec::Alaw;
    let dir = store("legs-comeback");
    let e = engine_with_ring(&dir, 1000);
    let a = call(&[sound(codec, 100, 0), quiet(codec, 420, 1)]);
    let b = call(&[quiet(codec, 10, 2), sound(codec, 100, 5)]);
    let (f, ch1, ch2) = record_two_legs(
        &e,
        codec,
        r#"{"legs":"both","silence_threshold_db":-40,"milliseconds_max_silence":60000}"#,
        |caller, other| {
            for f in a[..400 * FRAME].chunks(FRAME) {
                caller.feed(f, LONG).unwrap();
                std::thread::sleep(Duration::from_micros(300));
            }
            // Let the writer see the other leg 8 s behind.
            std::thread::sleep(Duration::from_millis(100));
            for (i, f) in b.chunks(FRAME).enumerate() {
                other.feed(f, LONG).unwrap();
                caller.feed(&a[(400 + i) * FRAME..][..FRAME], LONG).unwrap();
            }
        },
    );
    same(&ch1, &a[..ch1.len()], "caller");
    let at = ch2
        .windows(FRAME)
        .position(|w| w == &b[..FRAME])
        .expect("the other leg's audio is in its channel");
    assert!(at >= 300 * FRAME, "placed when it came back ({at})");
    same(&ch2[at..at + b.len()], &b, "the other leg, whole");
    assert!(ch2[..at].iter().all(|&x| x == codec.silence()));
    assert!(ch2[at + b.len()..].iter().all(|&x| x == codec.silence()));
    let legs = f.result.legs.unwrap();
    assert_eq!(legs.other.samples_filled, (ch2.len() - b.len()) as u64);
    assert_eq!(legs.other.frames_dropped, 0);
}

#[test]
fn shutdown_finalizes_an_open_two_leg_recording_with_everything_pushed() {
    let codec = Codec::Alaw;
    let dir = store("legs-shutdown");
    let e = engine(&dir);
    let a = sound(codec, 100, 0);
    let b = call(&[quiet(codec, 20, 1), sound(codec, 60, 4)]);
    let (mut caller, mut other) = e
        .record_call(
            &opts(r#"{"legs":"both","silence_threshold_db":-40,"milliseconds_max_silence":60000}"#),
            codec,
        )
        .unwrap();
    caller.feed(&a, LONG).unwrap();
    other.feed(&b, LONG).unwrap();
    other.feed(&b[..77], LONG).unwrap(); // a partial frame: kept too
    e.shutdown();
    assert_eq!(caller.status(), Status::Stopped(Reason::Other));
    let (f, _, bytes) = finished(&e);
    assert_eq!(f.result.reason, Reason::Other);
    let (ch1, ch2) = channels(&bytes, codec);
    same(&ch1, &a, "caller");
    let mut want = b.clone();
    want.extend(&b[..77]);
    same(&ch2, &padded(&want, a.len(), codec), "other");
    assert_eq!(
        f.result.legs.unwrap().other.samples_filled,
        (a.len() - want.len()) as u64
    );
    drop((caller, other));
}

#[test]
fn a_gap_during_an_unconfirmed_key_tone_does_not_mask_what_follows() {
    // With mask_dtmf, the caller's leg has a gap (a lost packet, push_at ahead) 30 ms into a
    // key tone, before the detector has confirmed it: what may be the key is masked, but the
    // speech after the gap is the caller's audio, not silence.
    let codec = Codec::Alaw;
    let dir = store("legs-mask-gap");
    let e = engine(&dir);
    let before = call(&[quiet(codec, 30, 1), sound(codec, 100, 30)]);
    let tone = key(codec, '5', 30);
    let after = sound(codec, 100, 150);
    let json = r#"{"legs":"both","silence_threshold_db":-40,"milliseconds_max_silence":60000,"mask_dtmf":true}"#;
    let (_, ch1, _) = record_two_legs(&e, codec, json, |caller, other| {
        caller.feed(&before, LONG).unwrap();
        caller.feed(&tone, LONG).unwrap();
        let resume = (before.len() + tone.len() + 1600) as u64;
        caller.push_at(resume, &after[..FRAME]).unwrap();
        caller.feed(&after[FRAME..], LONG).unwrap();
        let end = resume + after.len() as u64;
        other.push_at(end, &[]).unwrap();
    });
    assert!(ch1.len() >= after.len(), "{} samples", ch1.len());
    same(
        &ch1[ch1.len() - after.len()..],
        &after,
        "the caller after the gap",
    );
}

#[test]
fn push_at_further_than_a_day_is_refused_and_changes_nothing() {
    // A raw RTP timestamp given as the index: on one leg it would fill days of silence on the
    // media thread; on two legs it would push the leg past the end of the timeline.
    let codec = Codec::Alaw;
    let dir = store("legs-push-at-far");
    let e = engine(&dir);
    let (mut one, _) = e.record(&opts("{}"), codec).unwrap();
    let far = callrec::recorder::MAX_GAP_SAMPLES + 1;
    let refused = callrec::RecorderError::GapTooLong { samples: far };
    assert_eq!(one.push_at(far, &[0xD5; FRAME]), Err(refused));
    assert!(refused.to_string().contains("a day"), "{refused}");
    assert_eq!(
        one.push_at(u64::MAX, &[]),
        Err(callrec::RecorderError::GapTooLong { samples: u64::MAX })
    );
    one.hangup();
    drop(one);
    let (mut caller, other) = e.record_call(&opts(r#"{"legs":"both"}"#), codec).unwrap();
    caller.feed(&sound(codec, 10, 0), LONG).unwrap();
    assert!(matches!(
        caller.push_at(1600 + far, &[]),
        Err(callrec::RecorderError::GapTooLong { .. })
    ));
    caller.hangup();
    drop((caller, other));
}

/// One leg ahead of the other by three quarters of its ring, again and again (a host that
/// reads the two directions in blocks): the writer holds the leg that is ahead while the other
/// catches up, moving its oldest bytes out of the full ring, and both channels are exact, with
/// no fill and nothing dropped.
#[test]
fn a_leg_ahead_by_most_of_a_ring_keeps_every_sample() {
    let codec = Codec::Ulaw;
    let dir = store("legs-ahead");
    let e = engine_with_ring(&dir, 2000);
    let a = call(&[sound(codec, 600, 0)]); // 12 s
    let b = call(&[quiet(codec, 100, 2), sound(codec, 500, 9)]);
    let block = 12_000; // 1.5 s: three quarters of the 2 s ring, less than the 2 s lag
    let (f, ch1, ch2) = record_two_legs(
        &e,
        codec,
        r#"{"legs":"both","silence_threshold_db":-40,"milliseconds_max_silence":60000}"#,
        |caller, other| {
            for (x, y) in a.chunks(block).zip(b.chunks(block)) {
                caller.feed(x, LONG).unwrap();
                other.feed(y, LONG).unwrap();
            }
        },
    );
    same(&ch1, &a, "caller");
    same(&ch2, &b, "other");
    let legs = f.result.legs.unwrap();
    for leg in [&legs.caller, &legs.other] {
        assert_eq!((leg.samples_filled, leg.frames_dropped), (0, 0));
    }
}
