//! A recording process killed with SIGKILL leaves a `.part`; the next engine on the store
//! finalizes it (plain and `aesctr`, no key needed) and reports it with reason `other` and
//! `"recovered": true`, or, for `aescbc`, keeps and lists it until `recover_aescbc` finishes it
//! with the user's key. The crash is real: this test binary runs itself as a child process
//! that records and is then killed with SIGKILL mid-recording.
//!
//! The child feeds 5 s of a known signal and then waits; the parent waits for the `.part` to
//! hold all but at most one writer batch (4,096 bytes, the loss bound) and kills it. The
//! recovered audio must equal the start of what was pushed, and be at least that long.

mod common;
use callrec::cipher::{decrypt_stream, CipherSpec, Mode};
use callrec::{Codec, Engine, EngineConfig, EventKind, Reason, RecordOptions};
use common::*;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const KEY: &str = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4";
const IV: &str = "000102030405060708090a0b0c0d0e0f";
const PUSHED: usize = 250 * FRAME; // 5 s
const BATCH: usize = 4096;
/// The record action's id, which the recovered results must echo (kept in the `.part`'s
/// extended attributes).
const ID: &str = r"call-9 \u00fc"; // a JSON escape: the id is "call-9 ü"

fn options(mode: &str) -> RecordOptions {
    let cipher = match mode {
        "plain" => String::new(),
        m => format!(
            r#","encryption_cipher":{{"type":"{m}","key":"{KEY}","initialisation_vector":"{IV}"}}"#
        ),
    };
    // The fixed threshold: the pushed sound starts at the first frame, with no line before it
    // for the adaptive detector to measure it against (see `common::sound`).
    RecordOptions::from_json(&format!(
        r#"{{"id":"{ID}","seconds_max_duration":3600,"milliseconds_max_silence":600000,"silence_threshold_db":-40{cipher}}}"#
    ))
    .unwrap()
}

/// The child: records 5 s, says where, and waits to be killed.
#[test]
fn child_process() {
    let (Ok(mode), Ok(dir)) = (
        std::env::var("CALLREC_CHILD_MODE"),
        std::env::var("CALLREC_CHILD_STORE"),
    ) else {
        return; // run as a normal test: nothing to do
    };
    let e = Engine::new(&dir, EngineConfig::default()).unwrap();
    let (mut rec, _h) = e.record(&options(&mode), Codec::Alaw).unwrap();
    rec.feed(&sound(Codec::Alaw, 250, 0), Duration::from_secs(60))
        .unwrap();
    println!("RECORDING {}", rec.filename());
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Runs the child, waits for its `.part` to hold the pushed audio (less one batch), kills it
/// with SIGKILL; returns the `.part` path.
fn record_and_kill(mode: &str, dir: &Path) -> PathBuf {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CALLREC_CHILD_MODE", mode)
        .env("CALLREC_CHILD_STORE", dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let filename = loop {
        let line = lines.next().expect("the child's output").unwrap();
        // libtest prints "test child_process ... " on the same line.
        if let Some(at) = line.find("RECORDING ") {
            break line[at + "RECORDING ".len()..].trim().to_owned();
        }
    };
    let suffix = if mode == "aescbc" {
        ".aescbc.part"
    } else {
        ".part"
    };
    let part = PathBuf::from(format!(
        "{}{suffix}",
        dir.join(filename.trim_start_matches('/')).display()
    ));
    // Wait for the writer to catch up: the recording starts within the first 20 frames (the
    // detector decides), and the last batch it cannot drain is under 4,096 bytes, so the file
    // reaches at least this and then stops growing. (Waiting for `PUSHED - BATCH` alone, as
    // before, never ended when the start and the undrained rest added up to more than a batch.)
    let deadline = Instant::now() + Duration::from_secs(30);
    let len = || std::fs::metadata(&part).map_or(0, |m| m.len());
    let mut last = 0;
    loop {
        assert!(
            Instant::now() < deadline,
            "the writer never wrote the audio"
        );
        let now = len();
        if now >= (58 + PUSHED - BATCH - 20 * FRAME) as u64 && now == last {
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

/// The file's audio is the pushed audio from where the recording started (the sound detector
/// decides that, within the first frames) to at most one batch before the end.
fn check_audio(audio: &[u8]) {
    let pushed = sound(Codec::Alaw, 250, 0);
    let start = (0..20 * FRAME)
        .step_by(FRAME)
        .find(|&at| pushed[at..].starts_with(&audio[..FRAME]))
        .expect("the file starts within the first 20 frames pushed");
    assert_eq!(audio, &pushed[start..start + audio.len()]);
    assert!(
        start + audio.len() >= PUSHED - BATCH,
        "lost more than one batch: the file ends at {} of {PUSHED}",
        start + audio.len()
    );
}

fn recovered_on_start(mode: &str) {
    let dir = store(&format!("recover-{mode}"));
    let part = record_and_kill(mode, &dir);
    let e = engine(&dir);
    let finished = e.next_event(Some(Duration::from_secs(30))).unwrap();
    let available = e.next_event(Some(Duration::from_secs(30))).unwrap();
    assert_eq!(finished.kind, EventKind::Finished);
    assert_eq!(available.kind, EventKind::Available);
    for ev in [&finished, &available] {
        assert_eq!(ev.result.reason, Reason::Other);
        assert!(ev.result.recovered);
        assert_eq!(ev.result.id, "call-9 \u{fc}");
        assert!(ev.result.contains_sound, "5 s of speech-like sound");
        assert!(ev
            .result
            .action_result_json()
            .contains(r#""recovered":true"#));
    }
    assert!(available.result.file_available);
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
    assert_eq!(info.fact_samples, Some(info.data.len() as u32));
    assert_eq!(finished.result.samples, info.data.len() as u64);
    check_audio(&bytes[info.data]);
    assert_eq!(e.metrics().recordings_recovered, 1);
    // Recovery happens once: a second engine finds nothing to do.
    drop(e);
    let again = engine(&dir);
    assert!(again.next_event(Some(Duration::from_millis(500))).is_none());
}

#[test]
fn plain_is_recovered_on_engine_start() {
    recovered_on_start("plain");
}

#[test]
fn aesctr_is_recovered_without_the_key() {
    recovered_on_start("aesctr");
}

#[test]
fn aescbc_is_kept_and_recovered_with_the_key() {
    let dir = store("recover-aescbc");
    let part = record_and_kill("aescbc", &dir);
    let e = engine(&dir);
    let deadline = Instant::now() + Duration::from_secs(30);
    while e.kept_orphans().is_empty() {
        assert!(Instant::now() < deadline, "the orphan was never reported");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(e.kept_orphans(), vec![part.clone()]);
    assert_eq!(e.metrics().orphans_kept, 1);
    assert!(part.exists(), "kept, never deleted");
    let cbc = CipherSpec::from_hex(Mode::Cbc, KEY, IV).unwrap();
    // A wrong key changes nothing.
    let wrong = CipherSpec::from_hex(Mode::Cbc, &KEY.replace('6', "7"), IV).unwrap();
    let err = callrec::recover::recover_aescbc(&part, &wrong).unwrap_err();
    assert!(err.to_string().contains("wrong key"), "{err}");
    assert!(part.exists());
    let done = callrec::recover::recover_aescbc(&part, &cbc).unwrap();
    assert!(!part.exists());
    let bytes = std::fs::read(&done.path).unwrap();
    assert_eq!(bytes.len() % 16, 0);
    let mut plain = Vec::new();
    decrypt_stream(&cbc, &mut &bytes[..], &mut plain).unwrap();
    let info = callrec::wav::parse(&plain).unwrap();
    assert_eq!(done.samples, info.data.len() as u64);
    assert_eq!(done.id, "call-9 \u{fc}");
    assert!(done.contains_sound);
    check_audio(&plain[info.data]);
}

/// Issue 19 (reproduction 16): engine start recovers only `.part` files named as the store names
/// them and holding callrec's header; anything else is reported (kept, counted, listed) and
/// left byte for byte as it was, neither renamed nor deleted.
#[test]
fn engine_start_leaves_foreign_parts_alone() {
    let dir = store("recover-foreign");
    let day = dir.join("rest_api/recordings/2020/01/02");
    std::fs::create_dir_all(&day).unwrap();
    // Reproducible garbage (xorshift64).
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let garbage: Vec<u8> = (0..5000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    let audio = sound(Codec::Alaw, 50, 0);
    let mut real = callrec::wav::header(Codec::Alaw, callrec::wav::OPEN_DATA_BYTES).to_vec();
    real.extend_from_slice(&audio);
    let foreign = [
        // callrec's name, not callrec's bytes
        (
            day.join("01_02_03_0123456789abcdef.00001.wav.part"),
            &garbage,
        ),
        // callrec's bytes, not callrec's name
        (day.join("g.wav.part"), &real),
        (day.join("01_02_03_0123456789ABCDEF.00001.wav.part"), &real),
        (day.join("1_02_03_0123456789abcdef.00001.wav.part"), &real),
    ];
    for (path, bytes) in &foreign {
        std::fs::write(path, bytes).unwrap();
    }
    let orphan = day.join("01_02_04_0123456789abcdef.00002.wav");
    std::fs::write(day.join("01_02_04_0123456789abcdef.00002.wav.part"), &real).unwrap();

    let e = engine(&dir);
    let finished = e.next_event(Some(Duration::from_secs(30))).unwrap();
    let available = e.next_event(Some(Duration::from_secs(30))).unwrap();
    for ev in [&finished, &available] {
        assert!(ev.result.recovered);
        assert_eq!(
            ev.result.filename,
            "/rest_api/recordings/2020/01/02/01_02_04_0123456789abcdef.00002.wav"
        );
        assert_eq!(ev.result.samples, audio.len() as u64);
    }
    let bytes = std::fs::read(&orphan).unwrap();
    assert_eq!(
        &bytes[callrec::wav::parse(&bytes).unwrap().data],
        &audio[..]
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while e.kept_orphans().len() < foreign.len() {
        assert!(
            Instant::now() < deadline,
            "not every foreign .part was reported"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut kept = e.kept_orphans();
    kept.sort();
    let mut expected: Vec<PathBuf> = foreign.iter().map(|(p, _)| p.clone()).collect();
    expected.sort();
    assert_eq!(kept, expected);
    assert_eq!(e.metrics().orphans_kept, foreign.len() as u64);
    assert_eq!(e.metrics().recordings_recovered, 1);
    drop(e);
    for (path, bytes) in &foreign {
        assert_eq!(&std::fs::read(path).unwrap(), *bytes, "{}", path.display());
    }
    let mut names: Vec<String> = std::fs::read_dir(&day)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), foreign.len() + 1, "{names:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
