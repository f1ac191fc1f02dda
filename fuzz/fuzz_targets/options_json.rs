//! The record action's options JSON: never a panic; a refusal is one short printable line that
//! names a field; anything accepted is valid.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../../core/tests/common/messages.rs"]
mod messages;

fuzz_target!(|data: &[u8]| {
    let Ok(json) = std::str::from_utf8(data) else {
        return;
    };
    match callrec::RecordOptions::from_json(json) {
        Ok(options) => assert!(options.validate().is_ok()),
        Err(e) => messages::check(&e.to_string(), json),
    }
});
