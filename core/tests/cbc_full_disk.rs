//! An `aescbc` recording that ended on a full disk still becomes a CBC file: when not even the
//! in-place conversion's smallest journal (about 1.2 KB) fits, its last audio is cut, 4 KiB at a
//! time, until it does; a recording that did not fail is never cut (the conversion fails and
//! leaves the `.part` as it was, for `callrec recover`). The full disk is real: RLIMIT_FSIZE
//! (EFBIG), one test in this binary since the limit is per process.

mod common;
use callrec::cipher::{decrypt_stream, CipherSpec, Mode};
use callrec::convert::convert_finished;
use callrec::wav::header;
use callrec::Codec;
use common::*;
use std::fs::OpenOptions;

const KEY: &str = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4";
const IV: &str = "000102030405060708090a0b0c0d0e0f";

#[test]
fn a_full_disk_cuts_the_last_audio_to_make_room_for_the_journal() {
    let dir = store("cbc-full");
    std::fs::create_dir_all(&dir).unwrap();
    let cipher = CipherSpec::from_hex(Mode::Cbc, KEY, IV).unwrap();
    let samples: usize = 30_001;
    let audio = sound(Codec::Alaw, samples.div_ceil(FRAME), 0);
    let mut plain = header(Codec::Alaw, samples as u32).to_vec();
    plain.extend_from_slice(&audio[..samples]);
    plain.push(0); // the RIFF pad byte
    let mut part = plain.clone();
    cipher.part_spec().ctr().apply(&mut part);
    let path = dir.join("full.wav.aescbc.part");
    std::fs::write(&path, &part).unwrap();
    // 40 bytes more than the file: no journal fits, nor even CBC's padding block.
    let limit = part.len() as u64 + 40;
    limit_file_size(limit);
    let open = || {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap()
    };

    let e = convert_finished(&open(), &cipher, false).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EFBIG), "{e}");
    assert!(
        std::fs::read(&path).unwrap() == part,
        "unchanged when not allowed to cut"
    );

    let kept = convert_finished(&open(), &cipher, true).unwrap() as usize;
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() as u64 <= limit);
    assert!(
        kept.is_multiple_of(2) && kept < samples && kept + 4096 + 2 > samples,
        "{kept} samples kept of {samples}: at most one 4 KiB cut"
    );
    let mut got = Vec::new();
    decrypt_stream(&cipher, &mut &bytes[..], &mut got).unwrap();
    let mut want = header(Codec::Alaw, kept as u32).to_vec();
    want.extend_from_slice(&audio[..kept]);
    assert!(
        got == want,
        "the CBC file is the recording's first {kept} samples"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
