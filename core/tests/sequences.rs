//! Properties on stable (every CI run), the same invariants the nightly cargo-fuzz targets
//! check: the recorder under any push/digit/hangup/abort sequence (`common/sequence.rs`), and
//! the options / engine configuration parsers' refusals (`common/messages.rs`).

mod common;
#[path = "common/messages.rs"]
mod messages;
#[path = "common/sequence.rs"]
mod sequence;

use callrec::{Engine, EngineConfig, RecordOptions};
use proptest::prelude::*;
use std::sync::OnceLock;
use std::time::Duration;

static SHARED: OnceLock<(Engine, common::TestDir)> = OnceLock::new();

/// A static is never dropped: the shared store's temporary directory is removed at exit.
extern "C" fn remove_shared_store() {
    if let Some((_, dir)) = SHARED.get() {
        if let Some(root) = dir.parent() {
            let _ = std::fs::remove_dir_all(root);
        }
    }
}

fn shared() -> &'static (Engine, common::TestDir) {
    SHARED.get_or_init(|| {
        // SAFETY: registers a plain extern "C" fn with no arguments, as atexit(3) requires.
        let registered = unsafe { libc::atexit(remove_shared_store) };
        assert_eq!(registered, 0, "atexit");
        let dir = common::store("sequences");
        let config = EngineConfig {
            ring_milliseconds: 60_000,
            poll_interval: Duration::from_millis(1),
            ..EngineConfig::default()
        };
        (Engine::new(&dir, config).unwrap(), dir)
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn recorder_invariants_hold_for_any_call_sequence(data in proptest::collection::vec(any::<u8>(), 0..3000)) {
        let (engine, dir) = shared();
        let (options, codec, ops) = sequence::decode(&data);
        sequence::check(engine, dir, &options, codec, &ops);
    }

    #[test]
    fn option_refusals_are_short_and_printable(json in "\\PC{0,300}") {
        if let Err(e) = RecordOptions::from_json(&json) {
            messages::check(&e.to_string(), &json);
        }
        if let Err(e) = EngineConfig::from_json(&json) {
            messages::check(&e.to_string(), &json);
        }
    }

    #[test]
    fn option_values_never_leak_into_messages(
        key in "[a-z_\\x00-\\x1f\\x7f]{1,80}",
        value in "[ -~\\x1b\\n]{0,400}",
    ) {
        let json = serde_json::json!({ key.clone(): value.clone() }).to_string();
        if let Err(e) = RecordOptions::from_json(&json) {
            messages::check(&e.to_string(), &json);
        }
        let nested = serde_json::json!({"encryption_cipher": {"type": "aesctr", "key": {"hex": value}, "initialisation_vector": "000102030405060708090a0b0c0d0e0f"}}).to_string();
        let e = RecordOptions::from_json(&nested).unwrap_err();
        prop_assert_eq!(e.to_string(), "encryption_cipher.key: must be a string, not an object");
    }
}

/// The sequences' in-band key presses are real ones: a `#` (a barge-in digit in every decoded
/// option set) stops the call with `bargein`, with masking and without, and the invariants
/// (the file a span of the input, tone bytes silence when masked) still hold.
#[test]
fn in_band_key_presses_in_a_sequence_barge_in_with_and_without_masking() {
    let (engine, dir) = shared();
    for head in [0x00u8, 0x04] {
        let (options, codec, ops) = sequence::decode(&[head, 0x00, 0xE0]);
        assert!(
            matches!(&ops[..], [sequence::Op::Push(tone)] if tone.len() == 480),
            "{ops:?}"
        );
        let reason = sequence::check(engine, dir, &options, codec, &ops);
        assert_eq!(reason, callrec::Reason::Bargein, "{options}");
    }
}
