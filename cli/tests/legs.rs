//! `callrec record` with both parties of a call (DESIGN §13): `--other OTHER.wav` and a stereo
//! input give a stereo file whose channels are the two inputs, sample-aligned; `"mixed"` gives
//! their saturated sum; a party that ends early or never speaks is filled with silence and
//! counted; contradictory arguments exit 2 naming the problem.
//!
//! The truth is by construction: the file's channel 1 must be a contiguous span of the caller's
//! input, and channel 2, at the same offset, the other party's input (A-law silence, 0xD5, where
//! that input has ended).

use callrec::g711::Codec;
use callrec::wav;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// G.711 A-law's code for 0 (what callrec fills a missing party with).
const ALAW_SILENCE: u8 = 0xD5;

fn callrec(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_callrec"))
        .args(args)
        .output()
        .unwrap()
}

/// The bundled example's A-law samples (a caller who speaks, with silence around).
fn hello() -> Vec<u8> {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/hello.wav"
    ))
    .expect("examples/hello.wav");
    bytes[wav::parse(&bytes).unwrap().data].to_vec()
}

/// Writes an A-law WAV of `channels` holding `data` (interleaved when stereo).
fn write_alaw(path: &Path, channels: u16, data: &[u8]) {
    let mut file = wav::header_channels(Codec::Alaw, channels, data.len() as u32).to_vec();
    file.extend_from_slice(data);
    std::fs::write(path, file).unwrap();
}

/// Records `args` (after `record`) into `store`; returns the finished result, the file's
/// channel count and its audio bytes.
fn record(store: &Path, args: &[&str]) -> (Value, u16, Vec<u8>) {
    let mut all = vec!["record", "--store", store.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = callrec(&all);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    let finished: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let name = finished["result"]["filename"].as_str().unwrap();
    let bytes = std::fs::read(store.join(name.trim_start_matches('/'))).unwrap();
    let info = wav::parse(&bytes).unwrap();
    assert_eq!(info.format_tag, wav::FORMAT_ALAW);
    (
        finished["result"].clone(),
        info.channels,
        bytes[info.data].to_vec(),
    )
}

fn position(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Splits a stereo file's bytes into its two channels.
fn channels(audio: &[u8]) -> (Vec<u8>, Vec<u8>) {
    assert_eq!(audio.len() % 2, 0, "whole sample frames");
    (
        audio.iter().step_by(2).copied().collect(),
        audio.iter().skip(1).step_by(2).copied().collect(),
    )
}

/// Checks that `left` is `caller` and `right` is `other` from one common offset (silence
/// where an input has ended); returns the samples filled on each side.
fn check_aligned(left: &[u8], right: &[u8], caller: &[u8], other: &[u8]) -> (u64, u64) {
    let start = position(caller, &left[..4000]).expect("channel 1 comes from the caller");
    assert!(start.is_multiple_of(160), "start {start}");
    let mut filled = (0, 0);
    for k in 0..left.len() {
        let want_left = caller.get(start + k).copied();
        let want_right = other.get(start + k).copied();
        assert_eq!(
            Some(left[k]),
            Some(want_left.unwrap_or(ALAW_SILENCE)),
            "channel 1 at {k}"
        );
        assert_eq!(
            Some(right[k]),
            Some(want_right.unwrap_or(ALAW_SILENCE)),
            "channel 2 at {k} (aligned with channel 1)"
        );
        filled.0 += u64::from(want_left.is_none());
        filled.1 += u64::from(want_right.is_none());
    }
    filled
}

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Files {
        Files {
            dir: tempfile::Builder::new()
                .prefix("callrec-cli-legs-")
                .tempdir()
                .unwrap(),
        }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn arg(&self, name: &str) -> String {
        self.path(name).to_str().unwrap().to_owned()
    }
}

/// The other party: 3 s of silence, then the same speech (a reply that starts late and ends
/// after the caller's input has ended).
fn late_reply(caller: &[u8]) -> Vec<u8> {
    let mut other = vec![ALAW_SILENCE; 24_000];
    other.extend_from_slice(caller);
    other
}

#[test]
fn other_gives_a_stereo_file_whose_channels_are_the_two_inputs_aligned() {
    let f = Files::new();
    let caller = hello();
    let other = late_reply(&caller);
    write_alaw(&f.path("caller.wav"), 1, &caller);
    write_alaw(&f.path("other.wav"), 1, &other);
    let (r, channel_count, audio) = record(
        &f.path("store"),
        &[
            &f.arg("caller.wav"),
            "--other",
            &f.arg("other.wav"),
            "--options",
            r#"{"milliseconds_max_silence":4000}"#,
        ],
    );
    assert_eq!(channel_count, 2);
    let (left, right) = channels(&audio);
    let filled = check_aligned(&left, &right, &caller, &other);
    assert!(
        filled.0 > 0,
        "the caller's input ends first: its channel is filled"
    );
    assert_eq!(r["legs"]["caller"]["samples_filled"], filled.0);
    assert_eq!(r["legs"]["other"]["samples_filled"], filled.1);
    assert_eq!(r["legs"]["caller"]["contains_sound"], true);
    assert_eq!(r["legs"]["other"]["contains_sound"], true);
    assert_eq!(r["contains_sound"], true);
    assert_eq!(
        r["seconds_duration"].as_f64().unwrap(),
        (left.len() as f64 / 800.0).round() / 10.0,
        "seconds_duration is the per-channel length"
    );

    // The same two parties as one stereo input give the same file.
    let mut stereo = Vec::new();
    for (k, &b) in other.iter().enumerate() {
        stereo.push(caller.get(k).copied().unwrap_or(ALAW_SILENCE));
        stereo.push(b);
    }
    write_alaw(&f.path("stereo.wav"), 2, &stereo);
    let (r2, channel_count, audio2) = record(
        &f.path("store2"),
        &[
            &f.arg("stereo.wav"),
            "--options",
            r#"{"milliseconds_max_silence":4000}"#,
        ],
    );
    assert_eq!(channel_count, 2);
    let (left2, right2) = channels(&audio2);
    // The stereo input has no end for the caller's channel: it holds silence where the caller
    // had ended, so nothing is filled; the audio is the same.
    check_aligned(&left2, &right2, &caller, &other);
    assert_eq!(
        (left2.len(), r2["reason"].clone()),
        (left.len(), r["reason"].clone())
    );
    assert!(left2 == left && right2 == right, "the same audio");
    assert_eq!(r2["legs"]["caller"]["samples_filled"], 0);
}

#[test]
fn mixed_is_the_saturated_sum_of_the_two_parties() {
    let f = Files::new();
    let caller = hello();
    let other = late_reply(&caller);
    write_alaw(&f.path("caller.wav"), 1, &caller);
    write_alaw(&f.path("other.wav"), 1, &other);
    let (r, channel_count, audio) = record(
        &f.path("store"),
        &[
            &f.arg("caller.wav"),
            "--other",
            &f.arg("other.wav"),
            "--options",
            r#"{"legs":"mixed","milliseconds_max_silence":4000}"#,
        ],
    );
    assert_eq!(channel_count, 1);
    assert!(r["legs"].is_object(), "{r}");
    let law = Codec::Alaw;
    let sum = |k: usize| {
        let a = i32::from(law.decode(caller.get(k).copied().unwrap_or(ALAW_SILENCE)));
        let b = i32::from(law.decode(other.get(k).copied().unwrap_or(ALAW_SILENCE)));
        law.encode((a + b).clamp(-32768, 32767) as i16)
    };
    let mixed: Vec<u8> = (0..other.len()).map(sum).collect();
    let start = position(&mixed, &audio[..4000]).expect("the file is the mix of the inputs");
    assert_eq!(&mixed[start..start + audio.len()], &audio[..]);
}

#[test]
fn a_party_that_never_speaks_still_gives_both_channels() {
    let f = Files::new();
    let caller = hello();
    write_alaw(&f.path("caller.wav"), 1, &caller);
    write_alaw(&f.path("quiet.wav"), 1, &vec![ALAW_SILENCE; 4000]);
    let (r, channel_count, audio) = record(
        &f.path("store"),
        &[&f.arg("caller.wav"), "--other", &f.arg("quiet.wav")],
    );
    assert_eq!(channel_count, 2);
    let (left, right) = channels(&audio);
    let quiet = vec![ALAW_SILENCE; 4000];
    let filled = check_aligned(&left, &right, &caller, &quiet);
    assert_eq!(r["legs"]["other"]["contains_sound"], false);
    assert_eq!(r["legs"]["caller"]["contains_sound"], true);
    assert_eq!(r["legs"]["other"]["samples_filled"], filled.1);
    assert!(filled.1 > 0);
}

#[test]
fn contradictory_parties_exit_2_naming_the_problem() {
    let f = Files::new();
    let caller = hello();
    write_alaw(&f.path("caller.wav"), 1, &caller);
    let stereo: Vec<u8> = caller.iter().flat_map(|&b| [b, b]).collect();
    write_alaw(&f.path("stereo.wav"), 2, &stereo);
    let store = f.arg("store");
    let cases: [(&[&str], &str); 3] = [
        (
            &[&f.arg("caller.wav"), "--options", r#"{"legs":"mixed"}"#],
            "legs \"mixed\" records both parties",
        ),
        (
            &[
                &f.arg("caller.wav"),
                "--other",
                &f.arg("caller.wav"),
                "--options",
                r#"{"legs":"caller"}"#,
            ],
            "legs: \"caller\" records one party",
        ),
        (
            &[&f.arg("caller.wav"), "--other", &f.arg("stereo.wav")],
            "mono input",
        ),
    ];
    for (args, message) in cases {
        let mut all = vec!["record", "--store", &store];
        all.extend_from_slice(args);
        let out = callrec(&all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty());
    }
    assert!(!f.path("store").exists(), "a refused call creates no store");
}
