//! Runs every call of a sound/silence corpus (`benches/vad/make_corpus.py`: raw µ-law `<id>.ul`
//! files) through the real engine and recorder, as a host would, and prints one line per call:
//! `id stop_frame reason contains_sound recorded_samples` (`stop_frame` is the 0-based frame
//! whose push returned `Stopped`, or -1 when the call ended first and was hung up).
//!
//! `vad_harness CORPUS_DIR OPTIONS_JSON ID...` (ids on the command line, or on stdin if none).
//! Uses only the public engine API, so `scripts/bench-detect` builds it against the previous
//! detector too. `vad_trace` prints what the detector sees frame by frame.

use callrec::{Codec, Engine, EngineConfig, EventKind, RecordOptions, Status};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Duration;

const FRAME: usize = 160;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: vad_harness CORPUS_DIR OPTIONS_JSON [ID...]");
        std::process::exit(2);
    }
    let dir = PathBuf::from(&args[1]);
    let options = RecordOptions::from_json(&args[2]).unwrap_or_else(|e| {
        eprintln!("options: {e}");
        std::process::exit(2);
    });
    let ids: Vec<String> = if args.len() > 3 {
        args[3..].to_vec()
    } else {
        std::io::stdin()
            .lock()
            .lines()
            .map(|l| l.expect("stdin"))
            .collect()
    };
    let store = std::env::temp_dir().join(format!("callrec-vad-{}", std::process::id()));
    let engine = Engine::new(
        &store,
        EngineConfig {
            poll_interval: Duration::from_millis(2),
            ring_milliseconds: 60_000, // longer than any corpus call: nothing is dropped
            ..EngineConfig::default()
        },
    )
    .expect("engine");
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for id in ids.iter().filter(|id| !id.is_empty()) {
        let audio =
            std::fs::read(dir.join(format!("{id}.ul"))).unwrap_or_else(|e| panic!("{id}.ul: {e}"));
        let (mut rec, _handle) = engine.record(&options, Codec::Ulaw).expect("record");
        let mut stop_frame: i64 = -1;
        for (i, frame) in audio.chunks(FRAME).enumerate() {
            if let Status::Stopped(_) = rec.push(frame).expect("push") {
                stop_frame = i as i64;
                break;
            }
        }
        if stop_frame < 0 {
            rec.hangup();
        }
        drop(rec);
        let finished = engine
            .next_event(Some(Duration::from_secs(30)))
            .expect("finished event");
        assert_eq!(finished.kind, EventKind::Finished);
        let r = finished.result;
        writeln!(
            out,
            "{id} {stop_frame} {} {} {}",
            r.reason.as_str(),
            r.contains_sound,
            r.samples
        )
        .expect("stdout");
        let available = engine.next_event(Some(Duration::from_secs(30)));
        if available.is_some() {
            let _ = std::fs::remove_file(store.join(r.filename.trim_start_matches('/')));
        }
    }
    drop(engine);
    let _ = std::fs::remove_dir_all(&store);
}
