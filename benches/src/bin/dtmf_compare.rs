//! callrec's in-band DTMF detector on the Q.24 battery and the talk-off corpus
//! (`core/tests/data/dtmf`), printing what `benches/c/spandsp_dtmf.c` prints for SpanDSP's
//! `dtmf_rx` on the same audio, for the side-by-side table in BENCHMARKS.md:
//!
//! ```text
//! battery_passed 151/151     cases whose digits are exactly the expected ones (A-law)
//! talkoff_speech 0           keys reported in the speech pieces
//! talkoff_music 7            keys reported in the music pieces
//! ns_per_frame 80.2          median over passes of the time per 160-sample A-law frame
//! ns_per_frame_portable 350  the same on the portable kernel (when another was picked)
//! kernel avx2                the kernel `DtmfDetector::new` picks here
//! ```
//!
//! Run: `cargo run --release -p callrec-benches --bin dtmf_compare`.

use callrec::dtmf::{detect, DtmfDetector, DtmfKernel};
use callrec::g711::{encode_into, Codec};
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../core/tests/data/dtmf")
        .join(name)
}

/// (name, expected, first, samples) or (name, kind, first, samples) lines of a manifest.
fn manifest(name: &str) -> Vec<(String, String, usize, usize)> {
    std::fs::read_to_string(data(name))
        .expect("manifest")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let n = |s: &str| s.parse::<usize>().expect("number");
            (f[0].to_owned(), f[1].to_owned(), n(f[2]), n(f[3]))
        })
        .collect()
}

fn main() {
    let pcm: Vec<i16> = std::fs::read(data("battery.s16"))
        .expect("battery")
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    let mut alaw = vec![0u8; pcm.len()];
    encode_into(Codec::Alaw, &pcm, &mut alaw);
    let cases = manifest("battery.tsv");
    let passed = cases
        .iter()
        .filter(|(_, expected, at, n)| {
            let got: String = detect(Codec::Alaw, &alaw[*at..at + n])
                .iter()
                .map(|s| s.digit)
                .collect();
            got == expected.replace('-', "")
        })
        .count();
    println!("battery_passed {passed}/{}", cases.len());

    let talkoff = std::fs::read(data("talkoff.alaw")).expect("talk-off corpus");
    for kind in ["speech", "music"] {
        let found: usize = manifest("talkoff.tsv")
            .iter()
            .filter(|p| p.1 == kind)
            .map(|(_, _, at, n)| detect(Codec::Alaw, &talkoff[*at..at + n]).len())
            .sum();
        println!("talkoff_{kind} {found}");
    }

    // Speed: the whole talk-off corpus in 160-sample frames, 21 passes, median; on the kernel
    // `DtmfDetector::new` picks, then on the portable one.
    let frames = talkoff.len() / 160;
    let mut kernels = vec![("ns_per_frame", DtmfKernel::detect())];
    if DtmfKernel::detect() != DtmfKernel::PORTABLE {
        kernels.push(("ns_per_frame_portable", DtmfKernel::PORTABLE));
    }
    for (name, kernel) in kernels {
        let mut per_frame: Vec<f64> = (0..21)
            .map(|_| {
                let mut d = DtmfDetector::with_kernel(kernel);
                let mut events = 0usize;
                let start = Instant::now();
                for frame in talkoff.chunks_exact(160) {
                    d.process(Codec::Alaw, black_box(frame), |_| events += 1);
                }
                let ns = start.elapsed().as_nanos() as f64 / frames as f64;
                black_box(events);
                ns
            })
            .collect();
        per_frame.sort_by(f64::total_cmp);
        println!("{name} {:.1}", per_frame[per_frame.len() / 2]);
    }
    println!("kernel {}", DtmfKernel::detect().name());
}
