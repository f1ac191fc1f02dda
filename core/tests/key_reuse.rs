//! An engine refuses an `aesctr` recording whose key and IV it already used (the same keystream
//! twice exposes both calls' audio), and counts `aescbc` reuse in its metrics (issue 10).

mod common;

use callrec::{Codec, Error};

const KEY: &str = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4";

fn options(mode: &str, iv: &str) -> String {
    format!(
        r#"{{"encryption_cipher":{{"type":"{mode}","key":"{KEY}","initialisation_vector":"{iv}"}}}}"#
    )
}

#[test]
fn ctr_key_iv_reuse_is_refused_and_cbc_reuse_counted() {
    let dir = common::store("key-reuse");
    let engine = common::engine(&dir);
    let iv1 = "000102030405060708090a0b0c0d0e0f";
    let iv2 = "0f0e0d0c0b0a09080706050403020100";
    let (first, _) = engine
        .record_json(&options("aesctr", iv1), Codec::Alaw)
        .unwrap();
    let err = engine
        .record_json(&options("aesctr", iv1), Codec::Alaw)
        .unwrap_err();
    let Error::Options(e) = &err else {
        panic!("{err}")
    };
    assert_eq!(e.field, "encryption_cipher.initialisation_vector");
    assert!(!err.to_string().contains("603deb") && !err.to_string().contains("0001020304"));
    // The same key with another IV, or the same IV with upper-case hex (same bytes: refused).
    let (second, _) = engine
        .record_json(&options("aesctr", iv2), Codec::Alaw)
        .unwrap();
    assert!(engine
        .record_json(&options("aesctr", &iv2.to_uppercase()), Codec::Alaw)
        .is_err());
    assert_eq!(engine.metrics().cbc_key_iv_reused, 0);
    // CBC: allowed, counted.
    let (a, _) = engine
        .record_json(&options("aescbc", iv1), Codec::Alaw)
        .unwrap();
    assert_eq!(
        engine.metrics().cbc_key_iv_reused,
        0,
        "the CTR use is another mode"
    );
    let (b, _) = engine
        .record_json(&options("aescbc", iv1), Codec::Alaw)
        .unwrap();
    assert_eq!(engine.metrics().cbc_key_iv_reused, 1);
    drop((first, second, a, b));
    // Another engine has its own memory (the host's job across processes: a fresh IV each time).
    let other_dir = common::store("key-reuse-2");
    let other = common::engine(&other_dir);
    assert!(other
        .record_json(&options("aesctr", iv1), Codec::Alaw)
        .is_ok());
}
