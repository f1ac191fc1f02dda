//! The in-place, journaled `aescbc` conversion (callrec::convert) survives a crash at every
//! point: for each durable step of a conversion (each chunk's journal written, a torn journal
//! write, a torn chunk write, the final cut) the conversion is stopped there, exactly as a killed
//! process would leave the file, and `recover_aescbc` with the user's key must then finish it
//! into the CBC file that `openssl enc -d -aes-256-cbc` decrypts to the plain WAV, byte for
//! byte. Also: two crashes in a row, a wrong key on a half-converted file (refused, nothing
//! changed), and a `.part` whose recording never finished (open-ended header).
//!
//! The `.part` files are made as the writer makes them: the plain WAV (callrec's header and a
//! known signal) CTR-encrypted under the part key derived from the user's key.

mod common;
use callrec::cipher::{CipherSpec, Mode};
use callrec::convert::{convert_with_crash, CrashAt};
use callrec::recover::recover_aescbc;
use callrec::wav::{header, OPEN_DATA_BYTES};
use callrec::Codec;
use common::*;
use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Command;

const KEY: &str = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4";
const IV: &str = "000102030405060708090a0b0c0d0e0f";

fn cipher() -> CipherSpec {
    CipherSpec::from_hex(Mode::Cbc, KEY, IV).unwrap()
}

/// The plain WAV a recording of `samples` bytes of known sound makes (pad byte included).
fn plain_wav(samples: usize) -> Vec<u8> {
    let audio = sound(Codec::Alaw, samples.div_ceil(FRAME), 0);
    let mut wav = header(Codec::Alaw, samples as u32).to_vec();
    wav.extend_from_slice(&audio[..samples]);
    if samples % 2 == 1 {
        wav.push(0);
    }
    wav
}

/// Writes `plain` CTR-encrypted under the part key as `<dir>/<name>.wav.aescbc.part`.
fn write_part(dir: &Path, name: &str, plain: &[u8]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let mut bytes = plain.to_vec();
    cipher().part_spec().ctr().apply(&mut bytes);
    let path = dir.join(format!("{name}.wav.aescbc.part"));
    std::fs::write(&path, bytes).unwrap();
    path
}

fn openssl_cbc(file: &Path) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(["enc", "-d", "-aes-256-cbc", "-K", KEY, "-iv", IV, "-in"])
        .arg(file)
        .output()
        .expect("openssl is installed (scripts/test installs it)");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Stops a conversion of `part` at `crash` (a second crash on an already interrupted one
/// resumes first, as recovery would).
fn crash_at(part: &Path, crash: CrashAt) {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(part)
        .unwrap();
    let e = convert_with_crash(&file, &cipher(), crash).unwrap_err();
    assert!(e.to_string().contains("injected"), "{crash:?}: {e}");
}

/// Recovers `part` with the key and checks the CBC file against `plain`.
fn recover_and_check(part: &Path, plain: &[u8], samples: usize, what: &str) {
    let r = recover_aescbc(part, &cipher()).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(!part.exists(), "{what}: the .part is gone");
    assert_eq!(r.samples, samples as u64, "{what}");
    let len = std::fs::metadata(&r.path).unwrap().len();
    assert_eq!(
        len,
        (plain.len() as u64 / 16 + 1) * 16,
        "{what}: no journal left"
    );
    assert!(
        openssl_cbc(&r.path) == plain,
        "{what}: openssl decrypts the plain WAV"
    );
    std::fs::remove_file(&r.path).unwrap();
}

/// 60,001 samples: 60,060 bytes with the pad byte, four 16 KiB chunks, the last one partial;
/// 32,710 samples: exactly two chunks (the padded block lands in the room past the audio).
const SIZES: [usize; 2] = [60_001, 32_768 - 58];
const CHUNK: usize = 16 * 1024;

#[test]
fn a_crash_at_every_step_of_a_conversion_is_recovered_with_the_key() {
    let dir = store("cbc-crash");
    for samples in SIZES {
        let plain = plain_wav(samples);
        let chunks = plain.len().div_ceil(CHUNK) as u64;
        let mut points: Vec<CrashAt> = (0..chunks)
            .flat_map(|k| {
                [
                    CrashAt::TornJournal(k),
                    CrashAt::Journal(k),
                    CrashAt::TornChunk(k),
                ]
            })
            .collect();
        points.push(CrashAt::Cut);
        for crash in points {
            let what = format!("{samples} samples, crash at {crash:?}");
            let part = write_part(&dir, "crash", &plain);
            crash_at(&part, crash);
            assert!(part.exists(), "{what}");
            recover_and_check(&part, &plain, samples, &what);
        }
        // Never interrupted.
        let part = write_part(&dir, "whole", &plain);
        recover_and_check(&part, &plain, samples, "no crash");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn crashes_during_recovery_are_recovered_too() {
    let dir = store("cbc-crash-twice");
    let samples = SIZES[0];
    let plain = plain_wav(samples);
    let part = write_part(&dir, "twice", &plain);
    crash_at(&part, CrashAt::TornChunk(1));
    crash_at(&part, CrashAt::Journal(2));
    crash_at(&part, CrashAt::TornJournal(3));
    recover_and_check(&part, &plain, samples, "three crashes");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_wrong_key_changes_nothing_in_a_half_converted_file() {
    let dir = store("cbc-wrong-key");
    let samples = SIZES[0];
    let plain = plain_wav(samples);
    let part = write_part(&dir, "wrong", &plain);
    crash_at(&part, CrashAt::TornChunk(2));
    let before = std::fs::read(&part).unwrap();
    let wrong = CipherSpec::from_hex(Mode::Cbc, &KEY.replace('6', "7"), IV).unwrap();
    let e = recover_aescbc(&part, &wrong).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(
        std::fs::read(&part).unwrap() == before,
        "the file is unchanged"
    );
    recover_and_check(&part, &plain, samples, "then the right key");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unfinished_recording_is_converted_with_its_odd_last_sample_dropped() {
    let dir = store("cbc-open");
    let samples: usize = 20_001;
    let audio = sound(Codec::Alaw, samples.div_ceil(FRAME), 0);
    // What a killed recording leaves: the open-ended header and the audio written so far.
    let mut open = header(Codec::Alaw, OPEN_DATA_BYTES).to_vec();
    open.extend_from_slice(&audio[..samples]);
    let part = write_part(&dir, "open", &open);
    let mut want = header(Codec::Alaw, (samples - 1) as u32).to_vec();
    want.extend_from_slice(&audio[..samples - 1]);
    recover_and_check(&part, &want, samples - 1, "open-ended header");
    let _ = std::fs::remove_dir_all(&dir);
}
