//! A two-leg recording killed with SIGKILL (DESIGN §13, §6): the next engine on the store
//! finalizes its `.part` as a stereo file, whole sample frames, plain and `aesctr` (no key
//! needed), each channel the start of what its leg pushed. The crash is real: this binary runs
//! itself as a child that records and is killed mid-recording.

mod common;
use callrec::cipher::{decrypt_stream, CipherSpec, Mode};
use callrec::{Codec, Engine, EngineConfig, EventKind, Reason, RecordOptions};
use common::*;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const KEY: &str = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4";
const IV: &str = "101112131415161718191a1b1c1d1e1f";
const FRAMES: usize = 250; // 5 s a leg

fn legs() -> (Vec<u8>, Vec<u8>) {
    (
        sound(Codec::Alaw, FRAMES, 0),
        call(&[
            quiet(Codec::Alaw, 40, 1),
            sound(Codec::Alaw, FRAMES - 40, 9),
        ]),
    )
}

fn options(mode: &str) -> RecordOptions {
    let cipher = match mode {
        "plain" => String::new(),
        m => format!(
            r#","encryption_cipher":{{"type":"{m}","key":"{KEY}","initialisation_vector":"{IV}"}}"#
        ),
    };
    RecordOptions::from_json(&format!(
        r#"{{"legs":"both","seconds_max_duration":3600,"milliseconds_max_silence":600000,"silence_threshold_db":-40{cipher}}}"#
    ))
    .unwrap()
}

/// The child: records 5 s on both legs, says where, and waits to be killed.
#[test]
fn child_process() {
    let (Ok(mode), Ok(dir)) = (
        std::env::var("CALLREC_LEGS_CHILD_MODE"),
        std::env::var("CALLREC_LEGS_CHILD_STORE"),
    ) else {
        return; // run as a normal test: nothing to do
    };
    let e = Engine::new(&dir, EngineConfig::default()).unwrap();
    let (mut caller, mut other) = e.record_call(&options(&mode), Codec::Alaw).unwrap();
    let (a, b) = legs();
    for i in 0..FRAMES {
        caller
            .feed(&a[i * FRAME..][..FRAME], Duration::from_secs(60))
            .unwrap();
        other
            .feed(&b[i * FRAME..][..FRAME], Duration::from_secs(60))
            .unwrap();
    }
    println!("RECORDING {}", caller.filename());
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn record_and_kill(mode: &str, dir: &Path) -> PathBuf {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CALLREC_LEGS_CHILD_MODE", mode)
        .env("CALLREC_LEGS_CHILD_STORE", dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let filename = loop {
        let line = lines.next().expect("the child's output").unwrap();
        if let Some(at) = line.find("RECORDING ") {
            break line[at + "RECORDING ".len()..].trim().to_owned();
        }
    };
    let part = PathBuf::from(format!(
        "{}.part",
        dir.join(filename.trim_start_matches('/')).display()
    ));
    // The writer holds back less than a second of each leg (see `callrec::call`): wait for the
    // file to hold at least the first 4 s of both legs and stop growing.
    let deadline = Instant::now() + Duration::from_secs(30);
    let len = || std::fs::metadata(&part).map_or(0, |m| m.len());
    let mut last = 0;
    loop {
        assert!(
            Instant::now() < deadline,
            "the writer never wrote the audio"
        );
        let now = len();
        if now >= (58 + 2 * 4 * 8000) as u64 && now == last {
            break;
        }
        last = now;
        std::thread::sleep(Duration::from_millis(100));
    }
    // SAFETY: sends SIGKILL to our own child process, still alive (not yet waited for).
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGKILL) }, 0);
    child.wait().unwrap();
    assert!(part.exists(), "the crash left the .part");
    part
}

fn recovered_as_stereo(mode: &str) {
    let dir = store(&format!("legs-kill-{mode}"));
    let part = record_and_kill(mode, &dir);
    let e = engine(&dir);
    let finished = e.next_event(Some(Duration::from_secs(30))).unwrap();
    assert_eq!(finished.kind, EventKind::Finished);
    assert_eq!(finished.result.reason, Reason::Other);
    assert!(finished.result.recovered);
    assert!(!part.exists());
    let path = dir.join(finished.result.filename.trim_start_matches('/'));
    let mut bytes = std::fs::read(&path).unwrap();
    if mode == "aesctr" {
        let spec = CipherSpec::from_hex(Mode::Ctr, KEY, IV).unwrap();
        let mut plain = Vec::new();
        decrypt_stream(&spec, &mut &bytes[..], &mut plain).unwrap();
        bytes = plain;
    }
    let info = callrec::wav::parse(&bytes).unwrap();
    assert_eq!((info.channels, info.format_tag), (2, 6));
    let data = &bytes[info.data.clone()];
    assert_eq!(data.len() % 2, 0, "whole sample frames");
    assert_eq!(info.fact_samples, Some(data.len() as u32 / 2));
    assert_eq!(finished.result.samples, data.len() as u64 / 2);
    let ch1: Vec<u8> = data.iter().step_by(2).copied().collect();
    let ch2: Vec<u8> = data.iter().skip(1).step_by(2).copied().collect();
    let (a, b) = legs();
    assert!(
        ch1.len() >= 4 * 8000,
        "at most a second lost: {} samples",
        ch1.len()
    );
    assert_eq!(ch1, a[..ch1.len()], "caller");
    assert_eq!(ch2, b[..ch2.len()], "other");
}

#[test]
fn a_killed_two_leg_recording_recovers_as_stereo() {
    recovered_as_stereo("plain");
}

#[test]
fn a_killed_encrypted_two_leg_recording_recovers_as_stereo_without_the_key() {
    recovered_as_stereo("aesctr");
}
