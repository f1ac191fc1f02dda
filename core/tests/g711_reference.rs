//! G.711 against an independent reference: CPython 3.11's `audioop`, captured in
//! `tests/data/g711_reference.bin` by `scripts/gen-g711-reference.py`.

use callrec::g711::{decode_into, encode_into, transcode_into, Codec};

fn reference() -> Vec<u8> {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/g711_reference.bin"
    ))
    .expect("reference file");
    assert_eq!(bytes.len(), 512 + 512 + 65536 + 65536);
    bytes
}

fn i16s(bytes: &[u8]) -> Vec<i16> {
    bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

#[test]
fn every_decode_matches_audioop() {
    let r = reference();
    let every_byte: Vec<u8> = (0..=255).collect();
    for (codec, want) in [
        (Codec::Alaw, i16s(&r[0..512])),
        (Codec::Ulaw, i16s(&r[512..1024])),
    ] {
        let mut got = vec![0i16; 256];
        decode_into(codec, &every_byte, &mut got);
        assert_eq!(got, want, "{codec:?}");
    }
}

#[test]
fn every_encode_matches_audioop() {
    let r = reference();
    let every_sample: Vec<i16> = (i16::MIN..=i16::MAX).collect();
    for (codec, want) in [
        (Codec::Alaw, &r[1024..1024 + 65536]),
        (Codec::Ulaw, &r[1024 + 65536..]),
    ] {
        let mut got = vec![0u8; 65536];
        encode_into(codec, &every_sample, &mut got);
        let first_bad = got.iter().zip(want).position(|(g, w)| g != w);
        assert_eq!(
            first_bad,
            None,
            "{codec:?}: sample {:?}",
            first_bad.map(|i| every_sample[i])
        );
    }
}

#[test]
fn transcoding_equals_audioop_decode_then_encode() {
    let r = reference();
    let alaw_dec = i16s(&r[0..512]);
    let ulaw_dec = i16s(&r[512..1024]);
    let alaw_enc = &r[1024..1024 + 65536];
    let ulaw_enc = &r[1024 + 65536..];
    let idx = |s: i16| (s as i32 + 32768) as usize;
    let every_byte: Vec<u8> = (0..=255).collect();
    let mut out = vec![0u8; 256];
    transcode_into(Codec::Alaw, Codec::Ulaw, &every_byte, &mut out);
    for b in 0..256 {
        assert_eq!(out[b], ulaw_enc[idx(alaw_dec[b])], "A-law byte {b:#04x}");
    }
    transcode_into(Codec::Ulaw, Codec::Alaw, &every_byte, &mut out);
    for b in 0..256 {
        assert_eq!(out[b], alaw_enc[idx(ulaw_dec[b])], "µ-law byte {b:#04x}");
    }
    transcode_into(Codec::Alaw, Codec::Alaw, &every_byte, &mut out);
    assert_eq!(out, every_byte);
}
