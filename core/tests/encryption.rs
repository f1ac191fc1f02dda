//! Whole-file encryption: every mode and key size, decrypted by the `openssl` command line and by
//! callrec itself, gives back byte for byte the file the same call makes without a cipher; and
//! no file the engine writes ever holds the plaintext header or a 64-byte run of the audio.

mod common;
use callrec::cipher::{decrypt_stream, CipherSpec, Mode};
use callrec::{Codec, Engine, EventKind, RecordOptions, Status};
use common::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const IV: &str = "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf";

fn key(bits: usize) -> String {
    "00112233445566778899aabbccddeeff0123456789abcdeffedcba9876543210"[..bits / 4].to_owned()
}

fn cipher_json(mode: &str, bits: usize) -> String {
    format!(
        r#""encryption_cipher":{{"type":"{mode}","key":"{}","initialisation_vector":"{IV}"}}"#,
        key(bits)
    )
}

/// 0.6 s quiet, 1.6 s sound, 0.3 s quiet and half a frame more: odd length, hangup.
fn odd_call() -> Vec<u8> {
    let mut input = call(&[
        quiet(Codec::Alaw, 30, 1),
        sound(Codec::Alaw, 80, 30),
        quiet(Codec::Alaw, 16, 2),
    ]);
    input.truncate(input.len() - 79);
    input
}

fn record_file(e: &Engine, options: &str, input: &[u8]) -> (Outcome, Vec<u8>) {
    let o = run(
        e,
        &RecordOptions::from_json(options).unwrap(),
        Codec::Alaw,
        input,
        |_, _| {},
    );
    let bytes = std::fs::read(&o.path).unwrap();
    (o, bytes)
}

fn openssl_decrypt(mode: &str, bits: usize, file: &Path) -> Vec<u8> {
    let cipher = format!("-aes-{bits}-{}", &mode[3..]);
    let out = Command::new("openssl")
        .args(["enc", "-d", &cipher, "-K", &key(bits), "-iv", IV, "-in"])
        .arg(file)
        .output()
        .expect("openssl is installed (scripts/test installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn openssl_decrypts_every_mode_and_key_size_to_the_plain_recording() {
    let dir = store("openssl");
    let input = odd_call();
    for trim in [false, true] {
        // An engine per pass: one engine refuses an aesctr key+IV pair it has already used.
        let e = engine(&dir);
        let base = format!(r#""milliseconds_max_silence":5000,"trim_trailing_silence":{trim}"#);
        let (plain_outcome, plain) = record_file(&e, &format!("{{{base}}}"), &input);
        assert_eq!(&plain[..4], b"RIFF");
        assert_eq!(
            plain_outcome.audio.as_ref().unwrap().len() % 2,
            usize::from(!trim)
        );
        for mode in ["aescbc", "aesctr"] {
            for bits in [128, 192, 256] {
                let options = format!("{{{base},{}}}", cipher_json(mode, bits));
                let (o, encrypted) = record_file(&e, &options, &input);
                assert_eq!(
                    o.finished.result.samples,
                    plain_outcome.finished.result.samples
                );
                assert_ne!(&encrypted[..4], b"RIFF", "{mode} {bits}");
                let what = format!("{mode}-{bits} trim={trim}");
                assert_eq!(
                    openssl_decrypt(mode, bits, &o.path),
                    plain,
                    "openssl, {what}"
                );
                let spec =
                    CipherSpec::from_hex(Mode::from_name(mode).unwrap(), &key(bits), IV).unwrap();
                let mut ours = Vec::new();
                decrypt_stream(&spec, &mut &encrypted[..], &mut ours).unwrap();
                assert_eq!(ours, plain, "callrec, {what}");
                let expected_len = match mode {
                    "aescbc" => (plain.len() / 16 + 1) * 16,
                    _ => plain.len(),
                };
                assert_eq!(encrypted.len(), expected_len, "{what}");
            }
        }
    }
}

#[test]
fn no_plaintext_on_disk_during_and_after_encrypted_recordings() {
    for mode in ["aesctr", "aescbc"] {
        let dir = store(&format!("scan-{mode}"));
        let e = engine(&dir);
        let input = call(&[quiet(Codec::Alaw, 10, 3), sound(Codec::Alaw, 400, 10)]);
        let options = RecordOptions::from_json(&format!(
            r#"{{"trim_trailing_silence":true,{}}}"#,
            cipher_json(mode, 256)
        ))
        .unwrap();
        let (mut rec, _h) = e.record(&options, Codec::Alaw).unwrap();
        for frame in input.chunks(FRAME).take(250) {
            rec.push(frame).unwrap();
        }
        while e.metrics().bytes_written < 20_000 {
            std::thread::sleep(Duration::from_millis(2));
        }
        // Mid-recording: the .part file exists and holds only ciphertext.
        let parts = all_files(&dir);
        assert!(parts
            .iter()
            .any(|(p, _)| p.to_string_lossy().ends_with(".part")));
        assert!(assert_no_plaintext(&dir, &input) >= 1);
        for frame in input.chunks(FRAME).skip(250) {
            assert_eq!(rec.push(frame).unwrap(), Status::Recording);
        }
        rec.hangup();
        let finished = e.next_event(Some(Duration::from_secs(10))).unwrap();
        assert_eq!(finished.kind, EventKind::Finished);
        assert_eq!(
            assert_no_plaintext(&dir, &input),
            1,
            "only the final file is left"
        );
        let available = e.next_event(Some(Duration::from_secs(10))).unwrap();
        assert_eq!(available.kind, EventKind::Available);
        assert_eq!(assert_no_plaintext(&dir, &input), 1);
        // And it really is the recording.
        let path = dir.join(finished.result.filename.trim_start_matches('/'));
        let spec = options.encryption_cipher.clone().unwrap();
        let mut plain = Vec::new();
        decrypt_stream(&spec, &mut &std::fs::read(path).unwrap()[..], &mut plain).unwrap();
        let info = callrec::wav::parse(&plain).unwrap();
        assert_eq!(&plain[info.data], &input[..]);
    }
}
