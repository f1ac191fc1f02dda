//! Issue 11's three reproductions, made sample for sample as its sox commands make them, run
//! through the real engine: a click-only call is silence (no recording), a 60 Hz hum is not
//! sound, and speech in white noise at 9 dB SNR stops after the speech ends, not in it.
//! (`scripts/test-detect` runs the same three through the CLI from sox and espeak-ng files.)

mod common;
use callrec::{Codec, Reason, RecordOptions, Status};
use common::*;
use std::f64::consts::TAU;

fn opts(json: &str) -> RecordOptions {
    RecordOptions::from_json(json).unwrap()
}

fn encode(codec: Codec, samples: &[f64]) -> Vec<u8> {
    samples
        .iter()
        .map(|&s| codec.encode((s * 32767.0).round().clamp(-32768.0, 32767.0) as i16))
        .collect()
}

/// `sox -R -n -r 8000 -c 1 -b 16 c.wav synth 0.004 sine 1000 vol 0.02 pad 0 0.996 repeat 19`:
/// twenty seconds, each a 4 ms 1 kHz click at 0.02 of full scale, then digital silence.
fn click_call() -> Vec<f64> {
    (0..20 * 8000)
        .map(|i| {
            let n = i % 8000;
            if n < 32 {
                0.02 * (TAU * 1000.0 * n as f64 / 8000.0).sin()
            } else {
                0.0
            }
        })
        .collect()
}

/// `sox -R -n -r 8000 -c 1 -b 16 h.wav synth 15 sine 60 vol 0.045`.
fn hum_call() -> Vec<f64> {
    (0..15 * 8000)
        .map(|i| 0.045 * (TAU * 60.0 * i as f64 / 8000.0).sin())
        .collect()
}

#[test]
fn a_click_only_call_is_silence_with_no_recording() {
    let dir = store("repro-clicks");
    let e = engine(&dir);
    for codec in [Codec::Alaw, Codec::Ulaw] {
        let input = encode(codec, &click_call());
        let o = run(&e, &RecordOptions::default(), codec, &input, |_, _| {});
        let r = &o.finished.result;
        assert_eq!(
            (r.reason, r.contains_sound, r.samples),
            (Reason::Silence, false, 0),
            "{codec:?}"
        );
        // The initial-silence timer (3 s by default) ran through the clicks.
        assert_eq!(o.stop_frame, Some(149));
        assert_audio(&o.audio, &[][..]);
        // With a long initial silence, twenty clicks still start nothing.
        let o = run(
            &e,
            &opts(r#"{"milliseconds_max_initial_silence":60000}"#),
            codec,
            &input,
            |_, _| {},
        );
        let r = &o.finished.result;
        assert_eq!(
            (r.reason, r.contains_sound, r.samples),
            (Reason::Hangup, false, 0)
        );
    }
}

#[test]
fn a_60_hz_hum_is_not_sound() {
    let dir = store("repro-hum");
    let e = engine(&dir);
    for codec in [Codec::Alaw, Codec::Ulaw] {
        let input = encode(codec, &hum_call());
        let o = run(&e, &RecordOptions::default(), codec, &input, |_, _| {});
        let r = &o.finished.result;
        assert_eq!(
            (r.reason, r.contains_sound, r.samples),
            (Reason::Silence, false, 0),
            "{codec:?}"
        );
        assert_eq!(o.stop_frame, Some(149));
    }
}

/// Speech-like sound: words of 2-4 syllables (voiced, 120 Hz with formant-like harmonics, level
/// rising and falling per syllable), 150-350 ms gaps between words; `seconds` long; unit RMS
/// while voiced. Returns the samples and the end of the last word (in samples).
fn speechlike(seconds: f64, seed: u64) -> (Vec<f64>, usize) {
    let mut x = seed | 1;
    let mut rand = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 11) as f64 / (1u64 << 53) as f64
    };
    let total = (seconds * 8000.0) as usize;
    let mut out = vec![0.0; total];
    let mut at = 0usize;
    let mut last_end = 0;
    loop {
        let syllables = 2 + (rand() * 3.0) as usize;
        let syllable_len = (0.18 + 0.08 * rand()) * 8000.0;
        let word_len = (syllables as f64 * syllable_len) as usize;
        if at + word_len > total {
            break;
        }
        let pitch = 100.0 + 40.0 * rand();
        for n in 0..word_len {
            let t = n as f64 / 8000.0;
            let envelope = (std::f64::consts::PI * (n as f64 % syllable_len) / syllable_len)
                .sin()
                .powi(2);
            let voiced: f64 = [(1, 0.5), (2, 0.8), (3, 1.0), (5, 0.6), (8, 0.4), (13, 0.25)]
                .iter()
                .map(|&(h, a)| a * (TAU * pitch * h as f64 * t).sin())
                .sum();
            out[at + n] = envelope * voiced;
        }
        last_end = at + word_len;
        at += word_len + ((0.15 + 0.2 * rand()) * 8000.0) as usize;
    }
    let active = &out[..last_end];
    let rms = (active.iter().map(|s| s * s).sum::<f64>() / active.len() as f64).sqrt();
    out.iter_mut().for_each(|s| *s /= rms);
    (out, last_end)
}

fn white_noise(n: usize, seed: u64) -> Vec<f64> {
    // Box-Muller over xorshift: Gaussian, unit RMS.
    let mut x = seed | 1;
    let mut uniform = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| (-2.0 * uniform().ln()).sqrt() * (TAU * uniform()).cos())
        .collect()
}

#[test]
fn speech_at_9_db_snr_in_white_noise_stops_after_the_speech_ends() {
    speech_in_white_noise_stops_after_the_speech_ends(9.0, "repro-snr9");
}

/// At 4 dB SNR a voiced word stands only a few dB above white noise in the broadband level, but
/// 5-8 dB more above it below 1 kHz, where its harmonics are: the low band hears every word.
/// (Judged on the broadband level, as before issue 21, this call had no sound at all.)
#[test]
fn speech_at_4_db_snr_in_white_noise_is_heard_in_the_low_band() {
    speech_in_white_noise_stops_after_the_speech_ends(4.0, "repro-snr4");
}

fn speech_in_white_noise_stops_after_the_speech_ends(snr_db: f64, name: &str) {
    let dir = store(name);
    let e = engine(&dir);
    // 0.5 s of noise (the initial-silence limit is the 1 s max silence), speech to about
    // 14.7 s, then noise to 20 s: speech at -20 dBFS, the noise `snr_db` below it.
    let lead = 4000;
    let (speech, speech_len) = speechlike(14.6, 42);
    let speech_end = lead + speech_len;
    let noise = white_noise(20 * 8000, 7);
    let speech_rms = 10f64.powf(-20.0 / 20.0);
    let noise_rms = speech_rms * 10f64.powf(-snr_db / 20.0);
    let samples: Vec<f64> = (0..20 * 8000)
        .map(|i| {
            let s = if (lead..lead + speech.len()).contains(&i) {
                speech[i - lead] * speech_rms
            } else {
                0.0
            };
            s + noise[i] * noise_rms
        })
        .collect();
    assert!(speech_end > 14 * 8000, "{speech_end}");
    for codec in [Codec::Alaw, Codec::Ulaw] {
        let input = encode(codec, &samples);
        let o = run(
            &e,
            &opts(r#"{"milliseconds_max_silence":1000}"#),
            codec,
            &input,
            |_, _| {},
        );
        let r = &o.finished.result;
        assert_eq!(o.stop_status, Status::Stopped(Reason::Silence), "{codec:?}");
        assert!(r.contains_sound);
        // The stop is 1 s after the last word, to within 100 ms (the ideal stop), never in it.
        let stop = (o.stop_frame.unwrap() + 1) * FRAME;
        let ideal = speech_end + 8000;
        assert!(
            stop.abs_diff(ideal) <= 800,
            "{codec:?}: stopped at {stop}, ideal {ideal}"
        );
        // The recording starts before the first word (pre-roll) and holds all of the speech.
        let start = stop - r.samples as usize;
        assert!(start <= lead, "{codec:?}: recording starts at {start}");
        assert_audio(&o.audio, &input[start..stop]);
    }
}
