//! Recorder invariants under any sequence of calls, shared by the proptest property
//! (`core/tests/sequences.rs`, stable, every CI run) and the cargo-fuzz target
//! (`fuzz/fuzz_targets/recorder_sequence.rs`, nightly): one source, two drivers.
//!
//! Invariants checked after every sequence:
//! * no call panics; a push of at most one second never fails;
//! * once stopped, the status stays stopped with the same reason, whatever comes after;
//! * the finished result's `samples` equals the file's audio length, and the file is a valid
//!   G.711 WAV of the call's codec;
//! * the file's audio equals a span of the input, starting on a 20 ms frame boundary
//!   (nothing invented, reordered or lost inside the span);
//! * after a hangup the span ends where the input ended (nothing pushed is lost);
//! * with `mask_dtmf` (one of the decoded options), the same with a detected tone's bytes
//!   allowed to be G.711 silence;
//! * pause/resume never break the first three (the span checks apply to unpaused calls).
#![allow(dead_code)]

use callrec::g711::Codec;
use callrec::{Engine, EventKind, Reason, Status};
use std::path::Path;
use std::time::Duration;

/// One call on a recorder.
#[derive(Clone, Debug)]
pub enum Op {
    /// Push these bytes (at most 8000).
    Push(Vec<u8>),
    /// A digit from the host.
    Digit(char),
    /// The call ended.
    Hangup,
    /// Abort from the handle.
    Abort,
    /// Pause the recording.
    Pause,
    /// Resume it.
    Resume,
}

/// Decodes fuzzer bytes into options and a sequence of calls.
pub fn decode(data: &[u8]) -> (String, Codec, Vec<Op>) {
    let (head, mut rest) = data.split_at(data.len().min(2));
    let pick = |i: usize| head.get(i).copied().unwrap_or(0);
    let codec = if pick(0) & 1 == 0 {
        Codec::Alaw
    } else {
        Codec::Ulaw
    };
    let options = format!(
        r##"{{"barge_in_digits":"#5","milliseconds_max_silence":{},"seconds_max_duration":{},"format":"{}","pause_behavior":"{}","mask_dtmf":{}}}"##,
        200 + 100 * u32::from(pick(1) & 7),
        1 + (pick(1) >> 3) % 3,
        codec.name(),
        if pick(0) & 2 == 0 { "skip" } else { "silence" },
        pick(0) & 4 != 0
    );
    let mut ops = Vec::new();
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        match op % 10 {
            0..=4 if op >= 0xE0 => {
                // A key press in-band: 60 ms of a DTMF pair (a barge-in digit or not).
                let digit = [b'#', b'5', b'1', b'9'][usize::from(op >> 1) % 4];
                ops.push(Op::Push(dtmf_tone(codec, digit, 480)));
            }
            0..=4 => {
                let n = (usize::from(op) * 37 % 1200).min(rest.len());
                let (audio, tail) = rest.split_at(n);
                rest = tail;
                // Repeat the bytes so a short fuzz input still makes seconds of audio.
                let times = 1 + usize::from(op >> 5);
                let mut audio = audio.repeat(times);
                audio.truncate(callrec::recorder::MAX_PUSH_BYTES);
                ops.push(Op::Push(audio));
            }
            5 => ops.push(Op::Digit(
                ['1', '#', '5', 'x', '*'][usize::from(op >> 3) % 5],
            )),
            6 => ops.push(Op::Hangup),
            7 => ops.push(Op::Abort),
            8 => ops.push(Op::Pause),
            _ => ops.push(Op::Resume),
        }
    }
    (options, codec, ops)
}

/// `samples` of the key's two tones at −10 dBm0 each, in `codec`.
fn dtmf_tone(codec: Codec, digit: u8, samples: usize) -> Vec<u8> {
    let (low, high) = match digit {
        b'1' => (697.0, 1209.0),
        b'5' => (770.0, 1336.0),
        b'9' => (852.0, 1477.0),
        _ => (941.0, 1477.0), // '#'
    };
    // 3.14 dBm0 is a full-scale sine (G.711).
    let amplitude =
        32768.0 * 10f64.powf((-10.0 - callrec::energy::FULL_SCALE_SINE_DBM0 as f64) / 20.0);
    (0..samples)
        .map(|n| {
            let t = n as f64 / 8000.0;
            let x =
                (std::f64::consts::TAU * low * t).sin() + (std::f64::consts::TAU * high * t).sin();
            codec.encode((amplitude * x) as i16)
        })
        .collect()
}

fn after(status: Status, stopped: &mut Option<Reason>) {
    match (*stopped, status) {
        (Some(r), s) => assert_eq!(s, Status::Stopped(r), "a stopped recorder stays stopped"),
        (None, Status::Stopped(r)) => *stopped = Some(r),
        (None, _) => {}
    }
}

/// Runs `ops` on a new recorder of `engine` and checks every invariant (panics on a breach);
/// returns the reason it stopped.
pub fn check(engine: &Engine, store: &Path, options: &str, codec: Codec, ops: &[Op]) -> Reason {
    let (mut rec, handle) = engine.record_json(options, codec).expect("valid options");
    let filename = rec.filename().to_owned();
    let mut input = Vec::new(); // everything pushed before the stop
    let mut stopped: Option<Reason> = None;
    let mut hung_up = false;
    let mut paused_ever = false; // a pause splices the file: only the weaker invariants apply
    for op in ops.iter().chain(std::iter::once(&Op::Hangup)) {
        match op {
            Op::Push(audio) => {
                // Wait for ring space, as a faster-than-real-time host must.
                while stopped.is_none() && rec.ring_free_bytes() < audio.len() {
                    std::thread::sleep(Duration::from_micros(200));
                }
                let status = rec.push(audio).expect("a push of at most one second");
                if stopped.is_none() {
                    input.extend_from_slice(audio);
                }
                after(status, &mut stopped);
            }
            Op::Digit(d) => match rec.digit(*d) {
                Ok(status) => after(status, &mut stopped),
                Err(_) => assert!(!callrec::options::is_dtmf_digit(d.to_ascii_uppercase())),
            },
            Op::Hangup => {
                hung_up |= stopped.is_none();
                let status = rec.hangup();
                after(status, &mut stopped);
            }
            Op::Abort => {
                handle.abort();
                let status = rec.status();
                after(status, &mut stopped);
            }
            Op::Pause => {
                paused_ever |= stopped.is_none();
                let status = rec.pause();
                after(status, &mut stopped);
            }
            Op::Resume => {
                let status = rec.resume();
                after(status, &mut stopped);
            }
        }
    }
    let reason = stopped.expect("a hangup always stops the recording");
    drop(rec);
    let result = loop {
        let event = engine
            .next_event(Some(Duration::from_secs(30)))
            .expect("the finished event");
        if event.kind == EventKind::Finished && event.result.filename == filename {
            break event.result;
        }
    };
    assert_eq!(result.reason, reason);
    let bytes = std::fs::read(store.join(filename.trim_start_matches('/'))).expect("the file");
    let info = callrec::wav::parse(&bytes).expect("a valid WAV");
    assert_eq!(info.g711_codec(), Some(codec));
    let audio = &bytes[info.data.clone()];
    assert_eq!(
        audio.len() as u64,
        result.samples,
        "samples = the file's audio"
    );
    assert!(audio.len() <= input.len(), "nothing invented");
    if audio.is_empty() || paused_ever {
        return reason;
    }
    // With `mask_dtmf`, a detected tone (and its margin) is silence in the file.
    let masking = options.contains(r#""mask_dtmf":true"#);
    let silence = codec.silence();
    let matches = |span: &[u8]| {
        span.iter()
            .zip(audio)
            .all(|(&i, &a)| i == a || (masking && a == silence))
    };
    if hung_up && reason == Reason::Hangup {
        assert!(
            matches(&input[input.len() - audio.len()..]),
            "after a hangup the file ends with the last byte pushed"
        );
    }
    let span_found = (0..=input.len() - audio.len())
        .step_by(160)
        .any(|start| matches(&input[start..start + audio.len()]));
    assert!(span_found, "the file is a frame-aligned span of the input");
    reason
}
