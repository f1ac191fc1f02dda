//! The engine configuration JSON (C's `callrec_engine_new`, Python's keywords): never a panic;
//! a refusal is one short printable line; anything accepted validates.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../../core/tests/common/messages.rs"]
mod messages;

fuzz_target!(|data: &[u8]| {
    let Ok(json) = std::str::from_utf8(data) else {
        return;
    };
    match callrec::EngineConfig::from_json(json) {
        Ok(config) => assert!(config.validate().is_ok()),
        Err(e) => messages::check(&e.to_string(), json),
    }
});
