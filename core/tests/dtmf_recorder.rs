//! In-band DTMF in a recording (DESIGN §5): a barge-in key pressed as audio stops the recording
//! and its tone is cut from the file; with `mask_dtmf` every tone is silence in the file (plain
//! or encrypted) and nothing else changes; pause and resume stay exact with masking on.

mod common;
use callrec::cipher::{decrypt_stream, CipherSpec, Mode};
use callrec::dtmf::{key_frequencies, MARGIN};
use callrec::g711::Codec;
use callrec::{Reason, RecordOptions, Status};
use common::*;

fn opts(json: &str) -> RecordOptions {
    RecordOptions::from_json(json).unwrap()
}

/// `ms` of `digit`'s two tones at -10 dBm0 each.
fn key(codec: Codec, digit: char, ms: usize) -> Vec<u8> {
    let (r, c) = key_frequencies(digit).unwrap();
    let a = 32768.0 * 10f64.powf((-10.0 - callrec::energy::FULL_SCALE_SINE_DBM0 as f64) / 20.0);
    (0..ms * 8)
        .map(|n| {
            let t = n as f64 / 8000.0;
            let w = std::f64::consts::TAU;
            codec.encode((a * (w * r * t).sin() + a * (w * c * t + 0.7).sin()) as i16)
        })
        .collect()
}

/// 0.2 s quiet, sound until `at_s`, `digit` for `ms`, then sound until 6 s.
fn call_with_key(codec: Codec, at_s: f64, digit: char, ms: usize) -> Vec<u8> {
    let at = (at_s * 8000.0) as usize;
    let mut audio = call(&[quiet(codec, 10, 3), sound(codec, 290, 10)]);
    audio.splice(at..at + ms * 8, key(codec, digit, ms));
    audio
}

#[test]
fn an_in_band_barge_in_key_stops_and_is_cut_from_the_file() {
    for codec in [Codec::Alaw, Codec::Ulaw] {
        let dir = store(&format!("dtmf-bargein-{}", codec.name()));
        let e = engine(&dir);
        let input = call_with_key(codec, 4.0, '#', 100);
        let o = run(&e, &opts("{}"), codec, &input, |_, _| {});
        let r = &o.finished.result;
        assert_eq!((r.reason, r.barge_in_digit), (Reason::Bargein, Some('#')));
        // Stopped on the frame that confirmed it: within 60 ms of the tone's start.
        let stop = o.stop_frame.expect("stopped by the key");
        assert!((200..203).contains(&stop), "stop frame {stop}");
        // The file is the input up to where the tone began (4.0 s), within one block.
        let audio = o.audio.as_deref().unwrap();
        assert!(
            audio.len().abs_diff(32_000) <= MARGIN as usize,
            "{}",
            audio.len()
        );
        assert_eq!(audio, &input[..audio.len()]);
        assert!(r
            .action_result_json()
            .contains(r##""reason":"bargein","barge_in_digit":"#""##));
    }
}

#[test]
fn keys_that_do_not_barge_in_are_kept_and_detection_can_be_off() {
    let dir = store("dtmf-kept");
    let e = engine(&dir);
    let codec = Codec::Alaw;
    let input = call_with_key(codec, 2.0, '5', 100);
    let o = run(&e, &opts("{}"), codec, &input, |_, _| {});
    assert_eq!(o.finished.result.reason, Reason::Hangup);
    assert_audio(&o.audio, &input);
    let input = call_with_key(codec, 2.0, '#', 100);
    let o = run(
        &e,
        &opts(r#"{"detect_dtmf":false}"#),
        codec,
        &input,
        |_, _| {},
    );
    assert_eq!(o.finished.result.reason, Reason::Hangup);
    assert_audio(&o.audio, &input);
}

/// The file equals `input` except that every tone (`[from, to)` in samples) is silence, with at most two
/// blocks (10 ms) of margin either side of each either silence or the input: the detector
/// places a tone within one block, and masking adds one more to be sure.
#[track_caller]
fn assert_masked(audio: &[u8], input: &[u8], tones: &[(usize, usize)], silence: u8) {
    let m = 2 * MARGIN as usize;
    assert_eq!(audio.len(), input.len(), "file length");
    for i in 0..audio.len() {
        let in_tone = tones.iter().any(|&(from, to)| from <= i && i < to);
        let in_margin = tones.iter().any(|&(from, to)| from - m <= i && i < to + m);
        if in_tone {
            assert_eq!(audio[i], silence, "sample {i} of a tone is not masked");
        } else if in_margin {
            assert!(audio[i] == silence || audio[i] == input[i], "sample {i}");
        } else {
            assert_eq!(audio[i], input[i], "sample {i} (no tone) differs");
        }
    }
}

#[test]
fn mask_dtmf_silences_every_tone_and_nothing_else() {
    for codec in [Codec::Alaw, Codec::Ulaw] {
        let dir = store(&format!("dtmf-mask-{}", codec.name()));
        let e = engine(&dir);
        let mut input = call_with_key(codec, 2.0, '5', 120);
        input.splice(28_003..28_003 + 480, key(codec, '9', 60));
        let o = run(&e, &opts(r#"{"mask_dtmf":true}"#), codec, &input, |_, _| {});
        assert_eq!(o.finished.result.reason, Reason::Hangup);
        let audio = o.audio.as_deref().unwrap();
        let silence = codec.silence();
        assert_masked(
            audio,
            &input,
            &[(16_000, 16_960), (28_003, 28_483)],
            silence,
        );
    }
}

#[test]
fn mask_dtmf_with_a_barge_in_key_and_odd_pushes() {
    let dir = store("dtmf-mask-bargein");
    let e = engine(&dir);
    let codec = Codec::Ulaw;
    let mut input = call_with_key(codec, 1.5, '1', 80);
    input.splice(32_000..32_800, key(codec, '#', 100));
    let (mut rec, _h) = e.record(&opts(r#"{"mask_dtmf":true}"#), codec).unwrap();
    let mut status = Status::Waiting;
    for piece in input.chunks(333) {
        status = rec.push(piece).unwrap();
        if let Status::Stopped(_) = status {
            break;
        }
    }
    assert_eq!(status, Status::Stopped(Reason::Bargein));
    drop(rec);
    let o = collect(&e, None, status);
    assert_eq!(o.finished.result.barge_in_digit, Some('#'));
    let audio = o.audio.as_deref().unwrap();
    // Ends where the masked span of '#' begins: within one block of 4.0 s.
    assert!(
        audio.len() <= 32_000 && audio.len() + 2 * MARGIN as usize >= 32_000,
        "{} bytes",
        audio.len()
    );
    assert_masked(
        audio,
        &input[..audio.len()],
        &[(12_000, 12_640)],
        codec.silence(),
    );
}

#[test]
fn mask_dtmf_keeps_tones_off_an_encrypted_disk() {
    let dir = store("dtmf-mask-encrypted");
    let e = engine(&dir);
    let codec = Codec::Alaw;
    let input = call_with_key(codec, 2.0, '5', 200);
    let key_hex = "000102030405060708090a0b0c0d0e0f";
    let json = format!(
        r#"{{"mask_dtmf":true,"encryption_cipher":{{"type":"aesctr","key":"{key_hex}","initialisation_vector":"{key_hex}"}}}}"#
    );
    let o = run(&e, &opts(&json), codec, &input, |_, _| {});
    let spec = CipherSpec::from_hex(Mode::Ctr, key_hex, key_hex).unwrap();
    let mut plain = Vec::new();
    decrypt_stream(
        &spec,
        &mut std::fs::File::open(&o.path).unwrap(),
        &mut plain,
    )
    .unwrap();
    let info = callrec::wav::parse(&plain).unwrap();
    assert_masked(
        &plain[info.data],
        &input,
        &[(16_000, 17_600)],
        codec.silence(),
    );
}

#[test]
fn pause_and_resume_stay_exact_with_masking() {
    for behavior in ["skip", "silence"] {
        let dir = store(&format!("dtmf-mask-pause-{behavior}"));
        let e = engine(&dir);
        let codec = Codec::Alaw;
        let input = call(&[quiet(codec, 10, 4), sound(codec, 300, 10)]);
        let json = format!(r#"{{"mask_dtmf":true,"pause_behavior":"{behavior}"}}"#);
        let (mut rec, _h) = e.record(&opts(&json), codec).unwrap();
        let (pause_at, resume_at) = (8_100, 12_345);
        let mut at = 0;
        for chunk in input.chunks(97) {
            let end = at + chunk.len();
            let cut = |from: usize, to: usize| &chunk[from - at..to - at];
            if at < pause_at && pause_at <= end {
                rec.push(cut(at, pause_at)).unwrap();
                rec.pause();
                assert!(rec.is_paused());
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
            vec![codec.silence(); resume_at - pause_at]
        };
        let want = [&input[..pause_at], &gap, &input[resume_at..]].concat();
        assert_audio(&o.audio, &want);
    }
}

#[test]
fn an_in_band_key_barges_in_while_paused() {
    for mask in [false, true] {
        let dir = store(&format!("dtmf-paused-{mask}"));
        let e = engine(&dir);
        let codec = Codec::Alaw;
        let input = call_with_key(codec, 3.0, '#', 100);
        let json = format!(r#"{{"mask_dtmf":{mask}}}"#);
        let o = run(&e, &opts(&json), codec, &input, |i, rec| {
            if i == 100 {
                rec.pause();
            }
        });
        assert_eq!(o.finished.result.reason, Reason::Bargein);
        assert_audio(&o.audio, frames(&input, 0, 100));
    }
}
