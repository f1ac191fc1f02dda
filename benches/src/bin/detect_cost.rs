//! The per-frame cost of the sound/silence analysis in CPU time of this thread
//! (`CLOCK_THREAD_CPUTIME_ID`), so other load on the machine does not inflate it as it does a
//! wall-clock benchmark: the features (decode, exact SIMD energy, low band, speech band,
//! impulsiveness), the decision, and both together, over the sample call's frames in order.
//!
//! `detect_cost [FRAMES]` (default 2,000,000).

use callrec::detect::SoundDetector;
use callrec::energy::EnergyKernel;
use callrec::features::FrameFeatures;
use callrec::Codec;
use std::hint::black_box;

fn thread_cpu_seconds() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid, writable timespec; the clock id is a constant Linux supports.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    assert_eq!(rc, 0, "clock_gettime");
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

fn per_frame_ns(n: usize, mut f: impl FnMut(usize)) -> f64 {
    let start = thread_cpu_seconds();
    for i in 0..n {
        f(i);
    }
    (thread_cpu_seconds() - start) / n as f64 * 1e9
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("FRAMES is a number"))
        .unwrap_or(2_000_000);
    let audio = callrec_benches::sample_call();
    let frames: Vec<&[u8; 160]> = audio
        .chunks_exact(160)
        .map(|f| f.try_into().expect("frame"))
        .collect();
    let kernel = EnergyKernel::detect();
    let features: Vec<FrameFeatures> = frames
        .iter()
        .map(|f| FrameFeatures::of_frame(kernel, Codec::Alaw, f))
        .collect();
    let mut sink = 0f32;
    let feat = per_frame_ns(n, |i| {
        sink += FrameFeatures::of_frame(kernel, Codec::Alaw, black_box(frames[i % frames.len()]))
            .band_db;
    });
    let mut d = SoundDetector::new(None);
    let mut speech = 0u32;
    let decide = per_frame_ns(n, |i| {
        speech += d
            .classify(black_box(&features[i % features.len()]))
            .is_speech() as u32;
    });
    let mut d = SoundDetector::new(None);
    let both = per_frame_ns(n, |i| {
        let f = FrameFeatures::of_frame(kernel, Codec::Alaw, black_box(frames[i % frames.len()]));
        speech += d.classify(&f).is_speech() as u32;
    });
    black_box((sink, speech));
    println!(
        "kernel {} · features {feat:.1} ns · decision {decide:.1} ns · features + decision {both:.1} ns per frame (thread CPU time, {n} frames)",
        kernel.name()
    );
}
