//! An encrypted recording whose writes fail stops with `error` but keeps what was written: a
//! valid encrypted file of the audio before the failure, reported by both events; plaintext
//! never reaches the disk, and the other sessions lose nothing. The failure is real:
//! RLIMIT_FSIZE makes `write` fail with EFBIG (one test per binary: the limit is per process;
//! the engine's threads block SIGXFSZ, so the process survives it).

mod common;
use callrec::cipher::decrypt_stream;
use callrec::{Codec, Event, EventKind, Reason, RecordOptions, Status};
use common::*;
use std::time::Duration;

#[test]
fn encrypted_write_error() {
    let dir = store("enc-error");
    let e = engine(&dir);
    // 80,000 bytes: more than the limit below. The call opens with 200 ms of line noise (the
    // detector's first look at the background), which the pre-roll records.
    let input = call(&[quiet(Codec::Alaw, 10, 1), sound(Codec::Alaw, 490, 10)]);
    let key = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4";
    let iv = "000102030405060708090a0b0c0d0e0f";
    limit_file_size(20_000);
    for mode in ["aesctr", "aescbc"] {
        let json = format!(
            r#"{{"milliseconds_max_silence":600000,"encryption_cipher":{{"type":"{mode}","key":"{key}","initialisation_vector":"{iv}"}}}}"#
        );
        let options = RecordOptions::from_json(&json).unwrap();
        let spec = options.encryption_cipher.as_ref().unwrap();
        // Its own IV: an engine refuses to reuse an aesctr key+IV pair.
        let rec_options =
            RecordOptions::from_json(&json.replace(iv, &iv.replace('0', "f"))).unwrap();
        let rec_spec = rec_options.encryption_cipher.as_ref().unwrap();
        // A second, short session runs alongside and must come out whole.
        let (mut other, _) = e.record(&options, Codec::Alaw).unwrap();
        let (mut rec, _) = e.record(&rec_options, Codec::Alaw).unwrap();
        let name = rec.filename().to_owned();
        let mut status = Status::Waiting;
        for (i, frame) in input.chunks(FRAME).enumerate() {
            if i < 60 {
                other.push(frame).unwrap();
            }
            status = rec.push(frame).unwrap();
            if let Status::Stopped(_) = status {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
            if i % 20 == 0 {
                assert_no_plaintext(&dir, &input);
            }
        }
        assert_eq!(status, Status::Stopped(Reason::Error), "{mode}");
        other.hangup();
        let other_name = other.filename().to_owned();
        let events: Vec<Event> = (0..4)
            .map(|_| {
                e.next_event(Some(Duration::from_secs(10)))
                    .expect("an event")
            })
            .collect();
        let of = |name: &str, kind| {
            events
                .iter()
                .find(|ev| ev.result.filename == name && ev.kind == kind)
                .unwrap_or_else(|| panic!("{mode}: no {kind:?} for {name}"))
                .clone()
        };
        // The failed recording: both events, reason error, its audio kept.
        let failed = of(&name, EventKind::Finished);
        assert_eq!(failed.result.reason, Reason::Error, "{mode}");
        let durable = of(&name, EventKind::Available);
        assert_eq!(durable.result.reason, Reason::Error);
        assert!(durable.result.file_available);
        assert_no_plaintext(&dir, &input);
        let bytes = std::fs::read(dir.join(name.trim_start_matches('/'))).unwrap();
        assert!(bytes.len() <= 20_000, "{mode}: {} bytes", bytes.len());
        let mut plain = Vec::new();
        decrypt_stream(rec_spec, &mut &bytes[..], &mut plain).unwrap();
        let info = callrec::wav::parse(&plain).unwrap();
        let audio = &plain[info.data];
        assert_eq!(audio.len() as u64, failed.result.samples);
        assert!(
            audio.len() > 10_000,
            "{mode}: only {} bytes kept",
            audio.len()
        );
        assert_eq!(
            audio,
            &input[..audio.len()],
            "{mode}: the audio written is kept"
        );
        // The other session lost nothing: all 60 frames, decrypted.
        let done = of(&other_name, EventKind::Finished);
        assert_eq!(done.result.reason, Reason::Hangup);
        assert!(of(&other_name, EventKind::Available).result.file_available);
        let bytes = std::fs::read(dir.join(other_name.trim_start_matches('/'))).unwrap();
        let mut plain = Vec::new();
        decrypt_stream(spec, &mut &bytes[..], &mut plain).unwrap();
        let info = callrec::wav::parse(&plain).unwrap();
        assert_eq!(&plain[info.data], &input[..60 * FRAME]);
    }
}
