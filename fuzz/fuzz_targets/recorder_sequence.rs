//! push/digit/hangup/abort sequences against the recorder's invariants (see the shared checker
//! in core/tests/common/sequence.rs, which the stable proptest property also runs).
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

#[path = "../../core/tests/common/sequence.rs"]
mod sequence;

struct Shared {
    engine: callrec::Engine,
    store: std::path::PathBuf,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let store =
            std::env::temp_dir().join(format!("callrec-fuzz-sequence-{}", std::process::id()));
        let config = callrec::EngineConfig {
            ring_milliseconds: 60_000,
            poll_interval: std::time::Duration::from_millis(1),
            ..callrec::EngineConfig::default()
        };
        let engine = callrec::Engine::new(&store, config).expect("an engine");
        Shared { engine, store }
    })
}

fuzz_target!(|data: &[u8]| {
    let s = shared();
    let (options, codec, ops) = sequence::decode(data);
    sequence::check(&s.engine, &s.store, &options, codec, &ops);
});
