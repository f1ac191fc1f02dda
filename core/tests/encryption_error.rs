//! An encrypted recording whose writes fail stops with `error`, leaves no file, never leaves
//! plaintext on disk, and costs the other sessions nothing. The failure is real: RLIMIT_FSIZE
//! makes `write` fail with EFBIG (one test per binary: the limit is per process).

mod common;
use callrec::cipher::decrypt_stream;
use callrec::{Codec, EventKind, Reason, RecordOptions, Status};
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
            r#"{{"encryption_cipher":{{"type":"{mode}","key":"{key}","initialisation_vector":"{iv}"}}}}"#
        );
        let options = RecordOptions::from_json(&json).unwrap();
        // Its own IV: an engine refuses to reuse an aesctr key+IV pair.
        let rec_options =
            RecordOptions::from_json(&json.replace(iv, &iv.replace('0', "f"))).unwrap();
        // A second, short session runs alongside and must come out whole.
        let (mut other, _) = e.record(&options, Codec::Alaw).unwrap();
        let (mut rec, _) = e.record(&rec_options, Codec::Alaw).unwrap();
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
        let failed = e.next_event(Some(Duration::from_secs(10))).unwrap();
        assert_eq!(
            (failed.kind, failed.result.reason),
            (EventKind::Finished, Reason::Error)
        );
        assert_eq!(failed.result.filename, rec.filename());
        other.hangup();
        let done = e.next_event(Some(Duration::from_secs(10))).unwrap();
        assert_eq!(
            (done.kind, done.result.reason),
            (EventKind::Finished, Reason::Hangup)
        );
        let available = e.next_event(Some(Duration::from_secs(10))).unwrap();
        assert_eq!(available.kind, EventKind::Available);
        assert_no_plaintext(&dir, &input);
        assert!(!dir
            .join(failed.result.filename.trim_start_matches('/'))
            .exists());
        // The other session lost nothing: all 60 frames, decrypted.
        let bytes = std::fs::read(dir.join(done.result.filename.trim_start_matches('/'))).unwrap();
        let mut plain = Vec::new();
        decrypt_stream(
            options.encryption_cipher.as_ref().unwrap(),
            &mut &bytes[..],
            &mut plain,
        )
        .unwrap();
        let info = callrec::wav::parse(&plain).unwrap();
        assert_eq!(&plain[info.data], &input[..60 * FRAME]);
    }
}
