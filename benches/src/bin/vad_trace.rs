//! Prints, per 20 ms frame of corpus calls (raw µ-law `<id>.ul`), what the sound/silence
//! detector sees and decides: the features, the verdict and the background estimate (the same
//! analysis the recorder runs). For tuning and diagnosis.
//!
//! `vad_trace CORPUS_DIR OPTIONS_JSON ID...`

use callrec::detect::SoundDetector;
use callrec::energy::EnergyKernel;
use callrec::features::FrameFeatures;
use callrec::{Codec, RecordOptions};

const FRAME: usize = 160;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: vad_trace CORPUS_DIR OPTIONS_JSON ID...");
        std::process::exit(2);
    }
    let dir = std::path::PathBuf::from(&args[1]);
    let options = RecordOptions::from_json(&args[2]).unwrap_or_else(|e| {
        eprintln!("options: {e}");
        std::process::exit(2);
    });
    for id in &args[3..] {
        trace(&dir, id, &options);
    }
}

fn trace(dir: &std::path::Path, id: &str, options: &RecordOptions) {
    let audio = std::fs::read(dir.join(format!("{id}.ul"))).expect("call");
    let mut detector = SoundDetector::new(options.silence_threshold_db);
    let kernel = EnergyKernel::detect();
    for (i, frame) in audio.chunks_exact(FRAME).enumerate() {
        let f = FrameFeatures::of_frame(kernel, Codec::Ulaw, frame.try_into().expect("frame"));
        let v = detector.classify(&f);
        println!(
            "{id} {i} t={:.2} level={:.1} low={:.1} band={:.1} peak={:.2} {:?} floor={:.1}",
            i as f64 * 0.02,
            f.level_dbm0,
            f.low_db,
            f.band_db,
            f.peak_block_share,
            v,
            detector.low_band_floor_db().unwrap_or(f32::NAN)
        );
    }
}
