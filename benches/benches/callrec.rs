#![allow(missing_docs)] // criterion_group! generates an undocumented function
//! callrec's criterion benchmarks: G.711, energy per SIMD path, the detector, the per-frame
//! analysis (compared with SpanDSP by `benches/c/spandsp_bench.c`), `Recorder::push` in each
//! state, `push` per leg of a two-leg call (`push_two_legs`), the frame transport (rtrb vs ringbuf vs crossbeam's ArrayQueue), AES at the writer's
//! batch sizes, and the writer draining N sessions to files. `scripts/bench` runs them all and
//! writes BENCHMARKS.md.

use callrec::cipher::{ctr_to_cbc, CipherSpec, Mode};
use callrec::detect::SoundDetector;
use callrec::energy::{g711_sum_of_squares_table, sum_of_squares_scalar, EnergyKernel};
use callrec::features::FrameFeatures;
use callrec::g711::{decode_into, encode_into, transcode_into, Codec};
use callrec::{Engine, EngineConfig, EventKind, Legs, RecordOptions, Recorder, Status};
use callrec_benches::{endless_options, sample_call, scratch_store, FRAME};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::time::{Duration, Instant};

fn g711(c: &mut Criterion) {
    let audio = sample_call();
    let frame = &audio[8000..8000 + FRAME];
    let mut linear = [0i16; FRAME];
    decode_into(Codec::Alaw, frame, &mut linear);
    let mut out = [0u8; FRAME];
    let mut g = c.benchmark_group("g711");
    g.throughput(Throughput::Elements(FRAME as u64));
    g.bench_function("decode_frame", |b| {
        b.iter(|| decode_into(Codec::Alaw, black_box(frame), &mut linear))
    });
    g.bench_function("encode_frame", |b| {
        b.iter(|| encode_into(Codec::Ulaw, black_box(&linear), &mut out))
    });
    g.bench_function("transcode_frame", |b| {
        b.iter(|| transcode_into(Codec::Alaw, Codec::Ulaw, black_box(frame), &mut out))
    });
    g.finish();
}

fn energy(c: &mut Criterion) {
    let audio = sample_call();
    let mut linear = [0i16; FRAME];
    decode_into(Codec::Alaw, &audio[8000..8000 + FRAME], &mut linear);
    let mut g = c.benchmark_group("energy");
    g.throughput(Throughput::Elements(FRAME as u64));
    g.bench_function("reference_loop", |b| {
        b.iter(|| sum_of_squares_scalar(black_box(&linear)))
    });
    let frame = &audio[8000..8000 + FRAME];
    g.bench_function("g711_table", |b| {
        b.iter(|| g711_sum_of_squares_table(Codec::Alaw, black_box(frame)))
    });
    for kernel in EnergyKernel::available() {
        g.bench_function(format!("g711_{}", kernel.name()), |b| {
            b.iter(|| kernel.g711_sum_of_squares(Codec::Alaw, black_box(frame)))
        });
    }
    for kernel in EnergyKernel::available() {
        g.bench_function(kernel.name(), |b| {
            b.iter(|| kernel.sum_of_squares(black_box(&linear)))
        });
    }
    g.finish();
}

fn analysis(c: &mut Criterion) {
    let audio = sample_call();
    let frames: Vec<&[u8]> = audio.chunks_exact(FRAME).collect();
    let kernel = EnergyKernel::detect();
    let mut g = c.benchmark_group("analysis");
    let features: Vec<FrameFeatures> = frames
        .iter()
        .map(|f| FrameFeatures::of_frame(kernel, Codec::Alaw, (*f).try_into().expect("frame")))
        .collect();
    // The decision alone, on the sample call's features in order.
    g.bench_function("detector_classify", |b| {
        let mut d = SoundDetector::new(None);
        let mut i = 0;
        b.iter(|| {
            let f = &features[i % features.len()];
            i += 1;
            d.classify(black_box(f))
        })
    });
    // The features alone: decode, exact SIMD energy, band-pass, impulsiveness.
    g.bench_function("features", |b| {
        let mut i = 0;
        b.iter(|| {
            let frame: &[u8; FRAME] = frames[i % frames.len()].try_into().expect("frame");
            i += 1;
            FrameFeatures::of_frame(kernel, Codec::Alaw, black_box(frame))
        })
    });
    // What push does per frame before the ring (Recorder::analyse): features, then the
    // decision. This is the number compared with SpanDSP's G.711 decode + power meter.
    g.bench_function("frame", |b| {
        let mut d = SoundDetector::new(None);
        let mut i = 0;
        b.iter(|| {
            let frame: &[u8; FRAME] = frames[i % frames.len()].try_into().expect("frame");
            i += 1;
            d.classify(&FrameFeatures::of_frame(
                kernel,
                Codec::Alaw,
                black_box(frame),
            ))
        })
    });
    // The same with in-band DTMF on the decoded samples, as push does it without masking:
    // one decode for both detectors.
    g.bench_function("frame_with_dtmf", |b| {
        let mut d = SoundDetector::new(None);
        let mut dtmf = callrec::dtmf::DtmfDetector::new();
        let mut samples = [0i16; FRAME];
        let mut i = 0;
        b.iter(|| {
            let frame: &[u8; FRAME] = frames[i % frames.len()].try_into().expect("frame");
            i += 1;
            let f = FrameFeatures::decode_and_analyse(
                kernel,
                Codec::Alaw,
                black_box(frame),
                &mut samples,
            );
            dtmf.process_linear(&samples, |e| {
                black_box(e);
            });
            d.classify(&f)
        })
    });
    g.finish();
}

/// A recorder of `options` pushed (untimed) past the opening silence into the recording. Ten
/// minutes of audio at most: pushing some 5 million frames a second, the benchmark would
/// otherwise write gigabytes, and the disk's writeback would be what it measured. Finished
/// files are deleted here (untimed), long before the kernel would write them back.
fn recording(engine: &Engine, options: &RecordOptions, frames: &[&[u8]]) -> (Recorder, usize) {
    delete_finished(engine);
    let mut options = options.clone();
    options.seconds_max_duration = options.seconds_max_duration.min(600);
    let (mut rec, _) = engine.record(&options, Codec::Alaw).expect("record");
    let mut cursor = 0;
    while rec.push(frames[cursor]).expect("frame") != Status::Recording {
        cursor += 1;
    }
    (rec, cursor)
}

/// Pushes `n` frames, waiting (untimed) for the writer whenever the ring is short of room and
/// starting a new recording (untimed) when one reaches its duration limit (`options` makes
/// each one's options: an encrypted one needs a fresh IV).
fn timed_pushes(
    engine: &Engine,
    options: &dyn Fn() -> RecordOptions,
    rec: &mut Recorder,
    frames: &[&[u8]],
    n: u64,
    cursor: &mut usize,
) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = n;
    while left > 0 {
        if matches!(rec.status(), Status::Stopped(_)) {
            rec.hangup();
            (*rec, *cursor) = recording(engine, &options(), frames);
        }
        while rec.ring_free_bytes() < 64 * FRAME {
            std::thread::sleep(Duration::from_micros(200));
        }
        let batch = left.min(64);
        let start = Instant::now();
        for _ in 0..batch {
            black_box(rec.push(frames[*cursor % frames.len()]).expect("a frame"));
            *cursor += 1;
        }
        total += start.elapsed();
        left -= batch;
    }
    total
}

fn push(c: &mut Criterion) {
    let audio = sample_call();
    let frames: Vec<&[u8]> = audio.chunks_exact(FRAME).collect();
    let quiet = [0xD5u8; FRAME];
    let dir = scratch_store("push");
    // The largest ring and a short poll: pushing ~100,000 times faster than real time, a
    // smaller ring fills every few hundred frames and the timed loop then waits for the
    // writer's next poll (untimed), so every batch would start on a core that just idled.
    let engine = Engine::new(
        &dir,
        EngineConfig {
            ring_milliseconds: 60_000,
            poll_interval: Duration::from_millis(1),
            ..EngineConfig::default()
        },
    )
    .expect("engine");
    let mut g = c.benchmark_group("push");
    g.throughput(Throughput::Elements(1));

    // "recording" has in-band DTMF detection on (the default); the DTMF variants isolate it.
    for (state, cipher, dtmf) in [
        ("recording", None, None),
        ("recording_aesctr", Some("aesctr"), None),
        ("recording_no_dtmf", None, Some(false)),
        ("recording_mask_dtmf", None, Some(true)),
    ] {
        let options = || {
            let mut options = endless_options(cipher);
            match dtmf {
                Some(false) => options.detect_dtmf = false,
                Some(true) => options.mask_dtmf = true,
                None => {}
            }
            options
        };
        let (mut rec, mut cursor) = recording(&engine, &options(), &frames);
        g.bench_function(state, |b| {
            b.iter_custom(|n| timed_pushes(&engine, &options, &mut rec, &frames, n, &mut cursor))
        });
        rec.hangup();
    }

    let waiting = RecordOptions::from_json(r#"{"milliseconds_max_initial_silence":3600000}"#)
        .expect("options");
    // The initial-silence timer ends a waiting recording after an hour of audio (180,000
    // frames), so a fresh one is started, untimed, whenever it stops.
    let mut rec = engine.record(&waiting, Codec::Alaw).expect("record").0;
    g.bench_function("waiting", |b| {
        b.iter_custom(|n| {
            let mut total = Duration::ZERO;
            let mut left = n;
            while left > 0 {
                if rec.status() != Status::Waiting {
                    rec = engine.record(&waiting, Codec::Alaw).expect("record").0;
                }
                let batch = left.min(10_000);
                let start = Instant::now();
                for _ in 0..batch {
                    black_box(rec.push(black_box(&quiet)).expect("a frame"));
                }
                total += start.elapsed();
                left -= batch;
            }
            total
        })
    });
    drop(rec);

    let beeping = RecordOptions::from_json(r#"{"beep_on_start":true}"#).expect("options");
    let (mut rec, _) = engine.record(&beeping, Codec::Alaw).expect("record");
    g.bench_function("beeping", |b| b.iter(|| rec.push(black_box(&quiet))));
    drop(rec);

    let (mut rec, _) = engine
        .record(&RecordOptions::default(), Codec::Alaw)
        .expect("record");
    rec.hangup();
    g.bench_function("stopped", |b| b.iter(|| rec.push(black_box(&quiet))));
    drop(rec);
    g.finish();
    engine.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Deletes (untimed) the files of recordings that finished since the last call.
fn delete_finished(engine: &Engine) {
    while let Some(event) = engine.next_event(Some(Duration::ZERO)) {
        if event.kind == EventKind::Finished {
            let file = engine
                .store_root()
                .join(event.result.filename.trim_start_matches('/'));
            let _ = std::fs::remove_file(file);
        }
    }
}

/// Where the other party's audio starts in the sample call, relative to the caller's: the two
/// parties speak and pause at different times, as in a conversation.
const OTHER_OFFSET: usize = 97;

/// The frame `leg` pushes at `cursor`.
fn leg_frame<'a>(frames: &[&'a [u8]], leg: usize, cursor: usize) -> &'a [u8] {
    frames[(cursor + leg * OTHER_OFFSET) % frames.len()]
}

/// A two-leg call of `options` (`legs` both or mixed), pushed (untimed, caller then other) until
/// both legs are recording (or, for a `waiting` call, just started). Ten minutes at most, as
/// [`recording`].
fn two_leg_call(
    engine: &Engine,
    options: &RecordOptions,
    frames: &[&[u8]],
    until_recording: bool,
) -> ([Recorder; 2], usize) {
    delete_finished(engine);
    let mut options = options.clone();
    options.seconds_max_duration = options.seconds_max_duration.min(600);
    let (caller, other) = engine
        .record_call(&options, Codec::Alaw)
        .expect("record_call");
    let mut legs = [caller, other];
    let mut cursor = 0;
    while until_recording && !legs.iter_mut().all(|leg| leg.status() == Status::Recording) {
        for (i, leg) in legs.iter_mut().enumerate() {
            leg.push(leg_frame(frames, i, cursor)).expect("frame");
        }
        cursor += 1;
        assert!(cursor < 50_000, "the two-leg call never started recording");
    }
    (legs, cursor)
}

/// Waits (untimed) until both legs' rings have room for `frames` frames. The writer emits an
/// index only once both legs have judged it, so both legs are always pushed together here.
fn wait_for_room(legs: &[Recorder; 2], frames: usize) {
    let start = Instant::now();
    while legs.iter().any(|l| l.ring_free_bytes() < frames * FRAME) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the writer does not drain the two-leg call"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// `n` pushes of one 160-byte frame each, alternating caller and other (so the time per
/// iteration is the cost per leg push), waiting (untimed) for the writer whenever a ring is
/// short of room and starting a new call (untimed) when one stops (its duration limit, or a
/// waiting one that heard sound). `frame_at` gives the frame a leg pushes at a cursor.
#[allow(clippy::too_many_arguments)]
fn timed_leg_pushes(
    engine: &Engine,
    options: &dyn Fn() -> RecordOptions,
    state: Status,
    legs: &mut [Recorder; 2],
    frame_at: &dyn Fn(usize, usize) -> &'static [u8],
    frames: &[&[u8]],
    n: u64,
    cursor: &mut usize,
    turn: &mut usize,
) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = n;
    while left > 0 {
        if legs.iter_mut().any(|l| l.status() != state) {
            for leg in legs.iter_mut() {
                leg.hangup();
            }
            (*legs, *cursor) = two_leg_call(engine, &options(), frames, state == Status::Recording);
            *turn = 0;
        }
        wait_for_room(legs, 66);
        // An even batch ends on the other leg, so every call gets both legs of each frame.
        let batch = left.min(128);
        let start = Instant::now();
        for _ in 0..batch {
            let leg = *turn;
            black_box(legs[leg].push(frame_at(leg, *cursor)).expect("a frame"));
            *turn ^= 1;
            *cursor += leg;
        }
        total += start.elapsed();
        left -= batch;
    }
    total
}

/// `push` per leg of a two-leg call (`legs` both and mixed), in the states of `push/*`: the
/// caller's and the other party's 160-byte frames pushed alternately on one thread, so each
/// iteration is one leg's push and compares with `push/<state>` directly. Both legs' rings are
/// drained by the writer as in `push/*` (largest ring, 1 ms poll).
fn push_two_legs(c: &mut Criterion) {
    // 'static frames for the closure that picks them (leaked once per benchmark run).
    let audio: &'static [u8] = Box::leak(sample_call().into_boxed_slice());
    let frames: Vec<&'static [u8]> = audio.chunks_exact(FRAME).collect();
    let quiet: &'static [u8] = Box::leak(Box::new([0xD5u8; FRAME]));
    let dir = scratch_store("push-two-legs");
    let engine = Engine::new(
        &dir,
        EngineConfig {
            ring_milliseconds: 60_000,
            poll_interval: Duration::from_millis(1),
            ..EngineConfig::default()
        },
    )
    .expect("engine");
    let mut g = c.benchmark_group("push_two_legs");
    g.throughput(Throughput::Elements(1));
    let speech = |leg: usize, cursor: usize| leg_frame(&frames, leg, cursor);
    let silence = |_: usize, _: usize| quiet;
    for (name, legs_option, state, cipher, dtmf) in [
        ("recording", Legs::Both, Status::Recording, None, true),
        (
            "recording_aesctr",
            Legs::Both,
            Status::Recording,
            Some("aesctr"),
            true,
        ),
        (
            "recording_no_dtmf",
            Legs::Both,
            Status::Recording,
            None,
            false,
        ),
        ("waiting", Legs::Both, Status::Waiting, None, true),
        (
            "mixed_recording",
            Legs::Mixed,
            Status::Recording,
            None,
            true,
        ),
        (
            "mixed_recording_no_dtmf",
            Legs::Mixed,
            Status::Recording,
            None,
            false,
        ),
        ("mixed_waiting", Legs::Mixed, Status::Waiting, None, true),
    ] {
        let options = || {
            let mut options = if state == Status::Waiting {
                RecordOptions::from_json(r#"{"milliseconds_max_initial_silence":3600000}"#)
                    .expect("options")
            } else {
                endless_options(cipher)
            };
            options.legs = legs_option;
            options.detect_dtmf = dtmf;
            options
        };
        let frame_at: &dyn Fn(usize, usize) -> &'static [u8] = if state == Status::Waiting {
            &silence
        } else {
            &speech
        };
        let (mut legs, mut cursor) =
            two_leg_call(&engine, &options(), &frames, state == Status::Recording);
        let mut turn = 0;
        g.bench_function(name, |b| {
            b.iter_custom(|n| {
                timed_leg_pushes(
                    &engine,
                    &options,
                    state,
                    &mut legs,
                    frame_at,
                    &frames,
                    n,
                    &mut cursor,
                    &mut turn,
                )
            })
        });
        for leg in legs.iter_mut() {
            leg.hangup();
        }
    }
    g.finish();
    engine.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The in-band DTMF detector on one 20 ms frame of the sample call (speech, with its pauses),
/// per kernel: `frame_<kernel>` from the 160 A-law bytes (decode included: what `push` adds
/// with `detect_dtmf`, and what SpanDSP's `dtmf_rx` does after its own decode in BENCHMARKS.md's
/// DTMF section), `frame_linear_<kernel>` from the 160 decoded samples (the analysis alone).
/// `detector_frame` is the kernel `DtmfDetector::new` picks, on the bytes.
fn dtmf(c: &mut Criterion) {
    use callrec::dtmf::{DtmfDetector, DtmfKernel};
    let audio = sample_call();
    let frames: Vec<&[u8]> = audio.chunks_exact(FRAME).collect();
    let linear: Vec<[i16; FRAME]> = frames
        .iter()
        .map(|f| {
            let mut out = [0i16; FRAME];
            decode_into(Codec::Alaw, f, &mut out);
            out
        })
        .collect();
    let mut g = c.benchmark_group("dtmf");
    g.throughput(Throughput::Elements(1));
    let mut kernels: Vec<(String, DtmfKernel)> = DtmfKernel::available()
        .into_iter()
        .map(|k| (k.name().to_owned(), k))
        .collect();
    kernels.push(("detector".to_owned(), DtmfKernel::detect()));
    for (name, kernel) in kernels {
        let id = if name == "detector" {
            "detector_frame".to_owned()
        } else {
            format!("frame_{name}")
        };
        let mut d = DtmfDetector::with_kernel(kernel);
        let mut i = 0;
        g.bench_function(id, |b| {
            b.iter(|| {
                let frame = frames[i % frames.len()];
                i += 1;
                d.process(Codec::Alaw, black_box(frame), |e| {
                    black_box(e);
                });
            })
        });
        if name == "detector" {
            continue;
        }
        let mut d = DtmfDetector::with_kernel(kernel);
        let mut i = 0;
        g.bench_function(format!("frame_linear_{name}"), |b| {
            b.iter(|| {
                let frame = &linear[i % linear.len()];
                i += 1;
                d.process_linear(black_box(frame), |e| {
                    black_box(e);
                });
            })
        });
    }
    g.finish();
}

/// One 160-byte frame in and out of each SPSC transport, on one thread: the cost of the ring
/// operations themselves (the engine's choice of ring is justified by this).
fn transport(c: &mut Criterion) {
    use ringbuf::traits::{Consumer as _, Producer as _, Split};
    let frame = [0x55u8; FRAME];
    let mut out = [0u8; FRAME];
    let mut g = c.benchmark_group("transport");
    g.throughput(Throughput::Bytes(FRAME as u64));
    g.bench_function("rtrb", |b| {
        let (mut p, mut c) = rtrb::RingBuffer::<u8>::new(16_000);
        b.iter(|| {
            p.push_entire_slice(black_box(&frame)).expect("room");
            let chunk = c.read_chunk(FRAME).expect("a frame");
            let (a, b2) = chunk.as_slices();
            out[..a.len()].copy_from_slice(a);
            out[a.len()..].copy_from_slice(b2);
            chunk.commit_all();
            black_box(&out);
        })
    });
    g.bench_function("ringbuf", |b| {
        let (mut p, mut c) = ringbuf::HeapRb::<u8>::new(16_000).split();
        b.iter(|| {
            assert_eq!(p.push_slice(black_box(&frame)), FRAME);
            assert_eq!(c.pop_slice(&mut out), FRAME);
            black_box(&out);
        })
    });
    g.bench_function("crossbeam_array_queue", |b| {
        let q = crossbeam_queue::ArrayQueue::<[u8; FRAME]>::new(100);
        b.iter(|| {
            q.push(black_box(frame)).expect("room");
            out = q.pop().expect("a frame");
            black_box(&out);
        })
    });
    g.finish();
}

fn cipher(c: &mut Criterion) {
    let key = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4";
    let iv = "000102030405060708090a0b0c0d0e0f";
    let ctr_spec = CipherSpec::from_hex(Mode::Ctr, key, iv).expect("spec");
    let cbc_spec = CipherSpec::from_hex(Mode::Cbc, key, iv).expect("spec");
    let mut g = c.benchmark_group("cipher");
    for size in [4096usize, 16384, 65536] {
        let mut data = vec![0x55u8; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("aes256_ctr", size), &size, |b, _| {
            let mut ctr = ctr_spec.ctr();
            b.iter(|| ctr.apply(black_box(&mut data)))
        });
        // CBC runs once per recording, at finalize: decrypt the ephemeral CTR `.part`, encrypt CBC.
        g.bench_with_input(
            BenchmarkId::new("aes256_ctr_to_cbc", size),
            &size,
            |b, _| {
                let mut out = Vec::with_capacity(size + 16);
                b.iter(|| {
                    out.clear();
                    ctr_to_cbc(&ctr_spec, &mut black_box(&data[..]), &cbc_spec, &mut out)
                        .expect("cbc")
                })
            },
        );
    }
    g.finish();
}

/// The writer draining N sessions: one second of audio pushed to each, timed until the writer
/// has written it all (the push itself is included; it is small next to the writes).
fn writer(c: &mut Criterion) {
    let audio = sample_call();
    let mut g = c.benchmark_group("writer");
    g.sample_size(10);
    for sessions in [10usize, 100, 1000] {
        g.throughput(Throughput::Bytes((sessions * 8000) as u64));
        g.bench_with_input(
            BenchmarkId::new("drain_1s_per_session", sessions),
            &sessions,
            |b, &n| {
                let dir = scratch_store(&format!("writer-{n}"));
                let engine = Engine::new(
                    &dir,
                    EngineConfig {
                        poll_interval: Duration::from_millis(1),
                        ..EngineConfig::default()
                    },
                )
                .expect("engine");
                let mut recs: Vec<Recorder> = (0..n)
                    .map(|_| {
                        engine
                            .record(&endless_options(None), Codec::Alaw)
                            .expect("record")
                            .0
                    })
                    .collect();
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let before = engine.metrics().bytes_written;
                        let start = Instant::now();
                        let mut pushed = 0u64;
                        for (i, rec) in recs.iter_mut().enumerate() {
                            let second = &audio[(i * 1600) % 40_000..][..8000];
                            rec.push(second).expect("one second");
                            pushed += match rec.status() {
                                Status::Recording => 8000,
                                _ => 0,
                            };
                        }
                        // Nothing is lost, so wait for every recorded byte less what is below a batch.
                        while engine.metrics().bytes_written + (n as u64) * 4096 < before + pushed {
                            std::hint::spin_loop();
                        }
                        total += start.elapsed();
                    }
                    total
                });
                for rec in &mut recs {
                    rec.hangup();
                }
                drop(recs);
                engine.shutdown();
                let _ = std::fs::remove_dir_all(&dir);
            },
        );
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = g711, energy, analysis, dtmf, push, push_two_legs, transport, cipher, writer
}
criterion_main!(benches);
