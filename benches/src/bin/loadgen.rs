//! The channels-per-core load generator.
//!
//! N sessions on one media thread, as a host runs them, push 20 ms frames of real speech (the
//! bundled sample call, each session at its own offset) while the engine writes real files.
//!
//! ```text
//! loadgen --channels N --seconds S [--cipher aesctr|aescbc] [--store DIR] [--realtime]
//!         [--writers W] [--poll-ms MS] [--csv FILE] [--sweep [--max-channels M] [--plot FILE.svg]]
//!         [--dtmf on|off] [--legs caller|both|mixed] [--media-threads 1|2]
//! loadgen --churn CALLS_PER_S --channels N --seconds S [--publish s3://B/P [--upload-concurrency K]]
//!         [--dtmf on|off]
//! ```
//!
//! * `--dtmf` sets every session's in-band DTMF detection (`detect_dtmf`): `on` (the default,
//!   as the engine's) or `off`, to measure what the detector costs in channels per core.
//!
//! * `--legs both|mixed` makes each of the N channels a two-leg call (`Engine::record_call`,
//!   DESIGN §13): the caller's and the other party's recorder, each with its own ring, the other
//!   party's audio the same sample call at another offset. Both legs get a frame every tick
//!   (in `--realtime` one frame per leg per 20 ms). `caller` (the default) is today's one-leg
//!   recording. The writer emits a two-leg call's audio only once both legs have judged it.
//! * `--media-threads 2` runs two media threads on the same 20 ms ticks: with two legs, one
//!   pushes every call's caller leg and the other every call's other leg (as a media server that
//!   receives the two directions on different threads); with one leg, they split the channels.
//!   The default (1) pushes both legs of a call one after the other from the one thread.
//!
//! * With `--churn` N calls are up at once, in real time, and calls end and new ones start at
//!   CALLS_PER_S (each call lasts N / CALLS_PER_S seconds; the first ones are staggered so
//!   endings are spread evenly). Reported: calls made available per second, the
//!   *finished*→*available* latency (p50/p99/max, timestamped by a thread that only reads the
//!   events), frames dropped, late ticks. `--publish` publishes every call to an S3 store
//!   (environment as for `callrec record --publish`); otherwise *available* is the local fsync.
//!   Only calls that end during the run count, not the final hang-up of every open call.
//!
//! * Without `--realtime` frames are fed (`Recorder::feed`) as fast as the writer takes them
//!   (the media thread waits for ring space rather than drop), which measures throughput; the
//!   latency percentiles then include those waits.
//! * With `--realtime` every session gets one frame per 20 ms tick, as a media server would; a
//!   tick whose pushes end after the next tick's start means real time was lost.
//!
//! Reported: audio seconds processed per CPU second (user + system, all threads) and so the
//! channels (legs) one core sustains, calls per core (legs per core over the legs per call), dropped frames (must be 0), push latency percentiles from an
//! HDR histogram (each push timed with `Instant::now()`, whose own ~20 ns is included), peak
//! RSS and RSS per session. `--sweep` steps N up in real time until zero-drop or real time
//! fails and reports the knee; `--plot` draws CPU per channel and push latency against N.

use callrec::{Codec, Engine, EngineConfig, EventKind, Legs, Recorder};
use callrec_benches::{endless_options, sample_call, scratch_store, FRAME};
use hdrhistogram::Histogram;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

struct Args {
    channels: usize,
    seconds: f64,
    cipher: Option<String>,
    store: Option<PathBuf>,
    realtime: bool,
    writers: usize,
    csv: Option<PathBuf>,
    sweep: bool,
    max_channels: usize,
    plot: Option<PathBuf>,
    poll: Option<Duration>,
    churn: Option<f64>,
    publish: Option<String>,
    upload_concurrency: Option<usize>,
    /// In-band DTMF detection in every session (`detect_dtmf`).
    dtmf: bool,
    /// `Caller`: one leg per channel (today's recording); `Both`/`Mixed`: a two-leg call.
    legs: Legs,
    /// Media threads pushing (1 or 2).
    media_threads: usize,
}

/// Where the other party's audio starts in the sample call, relative to the caller's (frames),
/// so the two parties speak and pause at different times.
const OTHER_OFFSET: usize = 97;

fn usage(problem: &str) -> ! {
    eprintln!("loadgen: {problem}");
    eprintln!(
        "usage: loadgen --channels N --seconds S [--cipher aesctr|aescbc] [--store DIR] \
         [--realtime] [--writers W] [--csv FILE] [--sweep [--max-channels M] [--plot FILE.svg]] \
         [--dtmf on|off] [--legs caller|both|mixed] [--media-threads 1|2]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        channels: 100,
        seconds: 5.0,
        cipher: None,
        store: None,
        realtime: false,
        writers: 1,
        csv: None,
        sweep: false,
        max_channels: 60_000,
        plot: None,
        poll: None,
        churn: None,
        publish: None,
        upload_concurrency: None,
        dtmf: true,
        legs: Legs::Caller,
        media_threads: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        let number = |v: String| -> f64 {
            v.parse()
                .unwrap_or_else(|_| usage(&format!("{flag}: {v:?} is not a number")))
        };
        match flag.as_str() {
            "--channels" => a.channels = number(value()) as usize,
            "--seconds" => a.seconds = number(value()),
            "--cipher" => {
                let c = value();
                if c != "aesctr" && c != "aescbc" {
                    usage("--cipher must be aesctr or aescbc");
                }
                a.cipher = Some(c)
            }
            "--store" => a.store = Some(value().into()),
            "--realtime" => a.realtime = true,
            "--writers" => a.writers = number(value()) as usize,
            "--csv" => a.csv = Some(value().into()),
            "--sweep" => a.sweep = true,
            "--max-channels" => a.max_channels = number(value()) as usize,
            "--plot" => a.plot = Some(value().into()),
            "--poll-ms" => a.poll = Some(Duration::from_secs_f64(number(value()) / 1000.0)),
            "--churn" => a.churn = Some(number(value())),
            "--publish" => a.publish = Some(value()),
            "--upload-concurrency" => a.upload_concurrency = Some(number(value()) as usize),
            "--dtmf" => {
                a.dtmf = match value().as_str() {
                    "on" => true,
                    "off" => false,
                    _ => usage("--dtmf must be on or off"),
                }
            }
            "--legs" => {
                a.legs = match value().as_str() {
                    "caller" => Legs::Caller,
                    "both" => Legs::Both,
                    "mixed" => Legs::Mixed,
                    _ => usage("--legs must be caller, both or mixed"),
                }
            }
            "--media-threads" => {
                a.media_threads = match value().as_str() {
                    "1" => 1,
                    "2" => 2,
                    _ => usage("--media-threads must be 1 or 2"),
                }
            }
            other => usage(&format!("unknown argument {other}")),
        }
    }
    if a.channels == 0 || a.seconds.is_nan() || a.seconds <= 0.0 {
        usage("--channels and --seconds must be positive");
    }
    if a.churn.is_some() && (a.legs != Legs::Caller || a.media_threads != 1) {
        usage("--churn records one leg on one media thread");
    }
    a
}

/// One run's measurements.
#[derive(Clone, Debug)]
struct Run {
    channels: usize,
    seconds: f64,
    realtime: bool,
    cipher: String,
    dtmf: bool,
    legs: Legs,
    media_threads: usize,
    wall_seconds: f64,
    cpu_seconds: f64,
    audio_seconds: f64,
    frames_dropped: u64,
    /// Frames dropped as the results say (each leg's `frames_dropped` of a two-leg call).
    result_frames_dropped: u64,
    /// Recordings whose *finished* event arrived (one per call).
    finished: usize,
    late_ticks: u64,
    p50_ns: u64,
    p99_ns: u64,
    p999_ns: u64,
    max_ns: u64,
    peak_rss_kib: u64,
    rss_per_session_bytes: u64,
}

impl Run {
    fn audio_per_cpu(&self) -> f64 {
        self.audio_seconds / self.cpu_seconds
    }
    fn legs_per_call(&self) -> usize {
        if self.legs == Legs::Caller {
            1
        } else {
            2
        }
    }
    /// Real-time calls one core sustains at this load (a two-leg call is two legs of audio).
    fn calls_per_core(&self) -> f64 {
        self.audio_per_cpu() / self.legs_per_call() as f64
    }
    /// Real-time channels one core sustains at this load.
    fn channels_per_core(&self) -> f64 {
        self.audio_per_cpu()
    }
    fn cpu_us_per_channel_second(&self) -> f64 {
        self.cpu_seconds * 1e6 / self.audio_seconds
    }
    fn held(&self) -> bool {
        self.frames_dropped == 0
            && self.result_frames_dropped == 0
            && (!self.realtime || self.late_ticks == 0)
    }
    const CSV_HEADER: &'static str = "channels,seconds,realtime,cipher,wall_s,cpu_s,audio_s,\
        audio_s_per_cpu_s,channels_per_core,cpu_us_per_channel_s,frames_dropped,late_ticks,\
        push_p50_ns,push_p99_ns,push_p999_ns,push_max_ns,peak_rss_kib,rss_per_session_bytes,dtmf,\
        legs,media_threads,calls,legs_total,calls_per_core,legs_per_core,cpu_us_per_leg_s,\
        result_frames_dropped,finished";
    fn csv(&self) -> String {
        format!(
            "{},{},{},{},{:.3},{:.3},{:.1},{:.1},{:.0},{:.2},{},{},{},{},{},{},{},{},{},{},{},{},{},\
             {:.0},{:.0},{:.2},{},{}",
            self.channels,
            self.seconds,
            self.realtime,
            self.cipher,
            self.wall_seconds,
            self.cpu_seconds,
            self.audio_seconds,
            self.audio_per_cpu(),
            self.channels_per_core(),
            self.cpu_us_per_channel_second(),
            self.frames_dropped,
            self.late_ticks,
            self.p50_ns,
            self.p99_ns,
            self.p999_ns,
            self.max_ns,
            self.peak_rss_kib,
            self.rss_per_session_bytes,
            if self.dtmf { "on" } else { "off" },
            self.legs.name(),
            self.media_threads,
            self.channels,
            self.channels * self.legs_per_call(),
            self.calls_per_core(),
            self.channels_per_core(),
            self.cpu_us_per_channel_second(),
            self.result_frames_dropped,
            self.finished
        )
    }
}

/// What one media thread measured.
struct Media {
    hist: Histogram<u64>,
    late_ticks: u64,
    rss_loaded: u64,
}

/// One media thread: every tick, one frame to each of `lane`'s recorders (each with its offset
/// in the sample call), on the 20 ms clock from `wall_start` in real time.
fn media_loop(
    args: &Args,
    lane: &mut [(Recorder, usize)],
    audio: &[u8],
    total_ticks: usize,
    wall_start: Instant,
    measure_rss: bool,
) -> Media {
    let frames_in_audio = audio.len() / FRAME;
    let mut hist = Histogram::<u64>::new_with_bounds(1, 1_000_000_000, 3).expect("histogram");
    let mut late_ticks = 0u64;
    let mut rss_loaded = 0;
    for tick in 0..total_ticks {
        if args.realtime {
            let due = wall_start + Duration::from_millis(20 * tick as u64);
            let now = Instant::now();
            if now > due + Duration::from_millis(20) {
                late_ticks += 1;
            } else {
                std::thread::sleep(due.saturating_duration_since(now));
            }
        }
        for (rec, offset) in lane.iter_mut() {
            let f = (*offset + tick) % frames_in_audio;
            let frame = &audio[f * FRAME..][..FRAME];
            let t0 = Instant::now();
            let _ = if args.realtime {
                rec.push(frame)
            } else {
                // As fast as the writer takes it: feed waits for ring space instead of dropping.
                rec.feed(frame, Duration::from_secs(60))
            };
            let ns = t0.elapsed().as_nanos() as u64;
            hist.record(ns.max(1)).ok();
        }
        if measure_rss && tick == total_ticks.saturating_sub(1).min(150) {
            rss_loaded = rss_bytes(); // after the rings have wrapped (3 s) or at the end
        }
    }
    Media {
        hist,
        late_ticks,
        rss_loaded,
    }
}

fn cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a `rusage` into the valid, properly sized buffer we pass.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(usage.ru_utime) + t(usage.ru_stime)
}

fn peak_rss_kib() -> u64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: as in `cpu_seconds`.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    usage.ru_maxrss as u64
}

/// Resident set size now, in bytes (from /proc/self/statm).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64
}

/// Every open recording holds one file descriptor, so N sessions need N of them (a media
/// server sets `ulimit -n` accordingly). Raise the limit as far as the kernel allows
/// (`fs.nr_open`; raising the hard limit needs root), else the soft limit to the hard one.
fn raise_open_file_limit() {
    let nr_open: libc::rlim_t = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1 << 20);
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid pointers to properly sized rlimits.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return;
        }
        let wanted = libc::rlimit {
            rlim_cur: nr_open.max(lim.rlim_max),
            rlim_max: nr_open.max(lim.rlim_max),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) != 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn run_once(args: &Args, channels: usize, audio: &[u8]) -> Result<Run, String> {
    let dir = args
        .store
        .clone()
        .map(|d| d.join(format!("loadgen-{channels}")))
        .unwrap_or_else(|| scratch_store(&format!("loadgen-{channels}")));
    let _ = std::fs::remove_dir_all(&dir);
    let ring_ms = if args.realtime { 2000 } else { 4000 };
    let engine = Engine::new(
        &dir,
        EngineConfig {
            writers: args.writers,
            ring_milliseconds: ring_ms,
            poll_interval: args.poll.unwrap_or(EngineConfig::default().poll_interval),
            ..EngineConfig::default()
        },
    )
    .map_err(|e| e.to_string())?;
    let rss_before = rss_bytes();
    let frames_in_audio = audio.len() / FRAME;
    // Every recorder with its offset in the sample call, in push order: a two-leg call's caller
    // then its other party.
    let mut recorders: Vec<(Recorder, usize)> = Vec::with_capacity(channels * 2);
    for i in 0..channels {
        // Options per call: each encrypted call has its own IV, as a host must give.
        let mut options = endless_options(args.cipher.as_deref());
        options.detect_dtmf = args.dtmf;
        options.legs = args.legs;
        let offset = (i * 37) % frames_in_audio;
        let started = if args.legs == Legs::Caller {
            engine.record(&options, Codec::Alaw).map(|(rec, _)| {
                recorders.push((rec, offset));
            })
        } else {
            engine
                .record_call(&options, Codec::Alaw)
                .map(|(caller, other)| {
                    recorders.push((caller, offset));
                    recorders.push((other, (offset + OTHER_OFFSET) % frames_in_audio));
                })
        };
        if let Err(e) = started {
            drop(recorders);
            engine.shutdown();
            let _ = std::fs::remove_dir_all(&dir);
            return Err(format!("starting {channels} sessions: {e}"));
        }
    }
    let legs_per_call = if args.legs == Legs::Caller { 1 } else { 2 };
    // The media threads' lanes: one thread takes everything; two split the legs (caller legs
    // on one, other legs on the other) or, with one leg, the channels.
    let mut lanes: Vec<Vec<(Recorder, usize)>> =
        (0..args.media_threads).map(|_| Vec::new()).collect();
    for (k, entry) in recorders.into_iter().enumerate() {
        lanes[k % args.media_threads].push(entry);
    }
    let total_ticks = (args.seconds * 50.0).round() as usize;

    let cpu_start = cpu_seconds();
    let wall_start = Instant::now();
    let media: Vec<Media> = std::thread::scope(|scope| {
        let mut lanes_iter = lanes.iter_mut().enumerate();
        let (_, first) = lanes_iter.next().expect("one media thread at least");
        let others: Vec<_> = lanes_iter
            .map(|(_, lane)| {
                scope.spawn(move || media_loop(args, lane, audio, total_ticks, wall_start, false))
            })
            .collect();
        let mut media = vec![media_loop(
            args,
            first,
            audio,
            total_ticks,
            wall_start,
            true,
        )];
        media.extend(others.into_iter().map(|h| h.join().expect("media thread")));
        media
    });
    let wall_seconds = wall_start.elapsed().as_secs_f64();
    let cpu_seconds = cpu_seconds() - cpu_start;
    let frames_dropped = engine.metrics().frames_dropped;
    let mut hist = Histogram::<u64>::new_with_bounds(1, 1_000_000_000, 3).expect("histogram");
    let mut late_ticks = 0;
    let mut rss_loaded = 0;
    for m in &media {
        hist.add(&m.hist).expect("same bounds");
        late_ticks = late_ticks.max(m.late_ticks);
        rss_loaded = rss_loaded.max(m.rss_loaded);
    }
    for lane in &mut lanes {
        for (rec, _) in lane.iter_mut() {
            rec.hangup();
        }
    }
    drop(lanes);
    let peak = peak_rss_kib();
    engine.shutdown(); // finalizes and fsyncs every file (outside the measurement)
                       // What the results say was dropped: each leg's count of a two-leg call.
    let (mut result_frames_dropped, mut finished) = (0, 0);
    while let Some(event) = engine.next_event(Some(Duration::ZERO)) {
        if event.kind == EventKind::Finished {
            finished += 1;
            result_frames_dropped += match event.result.legs {
                Some(l) => l.caller.frames_dropped + l.other.frames_dropped,
                None => event.result.frames_dropped,
            };
        }
    }
    drop(engine);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Run {
        channels,
        seconds: args.seconds,
        realtime: args.realtime,
        cipher: args.cipher.clone().unwrap_or_else(|| "none".into()),
        dtmf: args.dtmf,
        legs: args.legs,
        media_threads: args.media_threads,
        wall_seconds,
        cpu_seconds,
        audio_seconds: (channels * legs_per_call * total_ticks) as f64 * 0.02,
        frames_dropped,
        result_frames_dropped,
        finished,
        late_ticks,
        p50_ns: hist.value_at_quantile(0.50),
        p99_ns: hist.value_at_quantile(0.99),
        p999_ns: hist.value_at_quantile(0.999),
        max_ns: hist.max(),
        peak_rss_kib: peak,
        rss_per_session_bytes: rss_loaded.saturating_sub(rss_before) / channels as u64,
    })
}

fn report(r: &Run) {
    println!(
        "channels {:>6}  {}  cipher {:<6}  dtmf {:<3}  legs {:<6} media threads {}  audio/cpu {:>9.1} s/s  \
         => {:>7.0} channels/core ({:.0} calls/core)  cpu {:>6.2} us/channel-s  dropped {} \
         (results {}, {} finished)  late ticks {}  push p50 {} ns p99 {} ns p99.9 {} ns max {} ns  \
         peak RSS {} MiB  RSS/session {} B  {}",
        r.channels,
        if r.realtime { "realtime" } else { "fast    " },
        r.cipher,
        if r.dtmf { "on" } else { "off" },
        r.legs.name(),
        r.media_threads,
        r.audio_per_cpu(),
        r.channels_per_core(),
        r.calls_per_core(),
        r.cpu_us_per_channel_second(),
        r.frames_dropped,
        r.result_frames_dropped,
        r.finished,
        r.late_ticks,
        r.p50_ns,
        r.p99_ns,
        r.p999_ns,
        r.max_ns,
        r.peak_rss_kib / 1024,
        r.rss_per_session_bytes,
        if r.held() { "OK" } else { "FAILED" }
    );
}

fn plot(path: &PathBuf, runs: &[Run]) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    let root = SVGBackend::new(path, (900, 700)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(350);
    let max_n = runs.iter().map(|r| r.channels).max().unwrap_or(1) as f64 * 1.05;
    let cpu_max = runs
        .iter()
        .map(|r| r.cpu_us_per_channel_second())
        .fold(0.0, f64::max)
        * 1.2;
    let mut chart = ChartBuilder::on(&top)
        .caption(
            "CPU per channel (µs of CPU per second of audio)",
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..max_n, 0f64..cpu_max.max(1.0))?;
    chart
        .configure_mesh()
        .x_desc("channels")
        .y_desc("µs / channel-s")
        .draw()?;
    chart.draw_series(LineSeries::new(
        runs.iter()
            .map(|r| (r.channels as f64, r.cpu_us_per_channel_second())),
        &BLUE,
    ))?;
    let lat_max = runs.iter().map(|r| r.p99_ns).max().unwrap_or(1) as f64 * 1.3;
    let mut chart = ChartBuilder::on(&bottom)
        .caption("push latency (ns)", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..max_n, 0f64..lat_max.max(1.0))?;
    chart
        .configure_mesh()
        .x_desc("channels")
        .y_desc("ns")
        .draw()?;
    chart
        .draw_series(LineSeries::new(
            runs.iter().map(|r| (r.channels as f64, r.p50_ns as f64)),
            &BLUE,
        ))?
        .label("p50")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    chart
        .draw_series(LineSeries::new(
            runs.iter().map(|r| (r.channels as f64, r.p99_ns as f64)),
            &RED,
        ))?
        .label("p99")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    chart.configure_series_labels().border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}

fn main() {
    let mut args = parse_args();
    raise_open_file_limit();
    let audio = sample_call();
    if let Some(rate) = args.churn {
        if !(rate > 0.0 && rate <= 100_000.0) {
            usage("--churn must be 0..=100000 calls per second");
        }
        match churn::run(&args, rate, &audio) {
            Ok(r) => {
                r.report();
                if let Some(path) = &args.csv {
                    let text = format!("{}\n{}\n", churn::Churn::CSV_HEADER, r.csv());
                    if let Err(e) = std::fs::write(path, text) {
                        eprintln!("loadgen: {}: {e}", path.display());
                        std::process::exit(1);
                    }
                }
                if r.frames_dropped > 0 || r.errors > 0 {
                    std::process::exit(1);
                }
            }
            Err(e) => {
                eprintln!("loadgen: {e}");
                std::process::exit(1);
            }
        }
        return;
    }
    let mut runs = Vec::new();
    if args.sweep {
        args.realtime = true;
        let mut n = args.channels;
        loop {
            let r = match run_once(&args, n, &audio) {
                Ok(r) => r,
                Err(e) => {
                    println!("channels {n:>6}  could not run: {e}");
                    break;
                }
            };
            report(&r);
            let held = r.held();
            runs.push(r);
            if !held || n >= args.max_channels {
                break;
            }
            n = (n * 3 / 2).min(args.max_channels).max(n + 1);
        }
        match runs.iter().rev().find(|r| r.held()) {
            Some(knee) => println!(
                "knee: {} channels held real time with 0 dropped frames ({} run{})",
                knee.channels,
                if knee.channels >= args.max_channels {
                    "the largest"
                } else {
                    "the last good"
                },
                if knee.channels >= args.max_channels {
                    ", the sweep's ceiling"
                } else {
                    ""
                }
            ),
            None => println!(
                "knee: even {} channels did not hold real time",
                args.channels
            ),
        }
        if let Some(path) = &args.plot {
            if let Err(e) = plot(path, &runs) {
                eprintln!("loadgen: plot: {e}");
            }
        }
    } else {
        let r = run_once(&args, args.channels, &audio).unwrap_or_else(|e| {
            eprintln!("loadgen: {e}");
            std::process::exit(1)
        });
        report(&r);
        runs.push(r);
    }
    if let Some(path) = &args.csv {
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(path)?;
            writeln!(f, "{}", Run::CSV_HEADER)?;
            for r in &runs {
                writeln!(f, "{}", r.csv())?;
            }
            Ok(())
        };
        if let Err(e) = write() {
            eprintln!("loadgen: {}: {e}", path.display());
            std::process::exit(1);
        }
    }
    if runs
        .iter()
        .any(|r| r.frames_dropped > 0 || r.result_frames_dropped > 0)
        && !args.sweep
    {
        std::process::exit(1);
    }
}

/// Call churn: calls starting and ending at a rate, and how soon each is available.
mod churn {
    use super::{cpu_seconds, Args};
    use callrec::{Codec, EngineConfig, EventKind, PublishConfig, Reason, Recorder};
    use callrec_benches::{scratch_store, FRAME};
    use hdrhistogram::Histogram;
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// One churn run's measurements.
    pub struct Churn {
        pub rate: f64,
        pub channels: usize,
        pub seconds: f64,
        pub publish: bool,
        pub calls_ended: u64,
        pub calls_available: u64,
        pub errors: u64,
        pub frames_dropped: u64,
        pub late_ticks: u64,
        pub cpu_seconds: f64,
        pub p50_ms: f64,
        pub p99_ms: f64,
        pub max_ms: f64,
    }

    impl Churn {
        pub const CSV_HEADER: &'static str = "rate,channels,seconds,publish,calls_ended,\
            calls_available,errors,frames_dropped,late_ticks,cpu_seconds,p50_ms,p99_ms,max_ms";

        pub fn csv(&self) -> String {
            format!(
                "{},{},{},{},{},{},{},{},{},{:.2},{:.1},{:.1},{:.1}",
                self.rate,
                self.channels,
                self.seconds,
                self.publish,
                self.calls_ended,
                self.calls_available,
                self.errors,
                self.frames_dropped,
                self.late_ticks,
                self.cpu_seconds,
                self.p50_ms,
                self.p99_ms,
                self.max_ms
            )
        }

        pub fn report(&self) {
            println!(
                "churn {:>5} calls/s  channels {:>5}  {}  ended {} ({:.0}/s)  available {} \
                 ({:.0}/s)  errors {}  finished->available p50 {:.1} ms p99 {:.1} ms max {:.1} ms  \
                 dropped {}  late ticks {}  cpu {:.2} s",
                self.rate,
                self.channels,
                if self.publish { "publish" } else { "local  " },
                self.calls_ended,
                self.calls_ended as f64 / self.seconds,
                self.calls_available,
                self.calls_available as f64 / self.seconds,
                self.errors,
                self.p50_ms,
                self.p99_ms,
                self.max_ms,
                self.frames_dropped,
                self.late_ticks,
                self.cpu_seconds
            );
        }
    }

    struct Slot {
        recorder: Recorder,
        frames_left: usize,
        offset: usize,
    }

    pub fn run(args: &Args, rate: f64, audio: &[u8]) -> Result<Churn, String> {
        let n = args.channels;
        let call_frames = ((n as f64 / rate) * 50.0).round().max(1.0) as usize;
        let dir = args
            .store
            .clone()
            .map(|d| d.join("loadgen-churn"))
            .unwrap_or_else(|| scratch_store("loadgen-churn"));
        let _ = std::fs::remove_dir_all(&dir);
        let publish = args.publish.as_ref().map(|url| {
            let mut p = PublishConfig::new(url.clone());
            if let Some(k) = args.upload_concurrency {
                p.concurrency = k;
            }
            p
        });
        let config = EngineConfig {
            writers: args.writers,
            ring_milliseconds: 2000,
            poll_interval: args.poll.unwrap_or(EngineConfig::default().poll_interval),
            publish,
            ..EngineConfig::default()
        };
        let engine = callrec_publish::start_engine(&dir, config).map_err(|e| e.to_string())?;
        let mut options = callrec::RecordOptions::from_json(
            r#"{"seconds_max_duration":86400,"milliseconds_max_silence":3600000}"#,
        )
        .expect("valid options");
        options.detect_dtmf = args.dtmf;

        // The event reader: timestamps each event as it arrives.
        let counting = Arc::new(AtomicBool::new(true));
        let events = engine.events().clone();
        let counting_reader = counting.clone();
        let reader = std::thread::spawn(move || {
            let mut finished: HashMap<String, Instant> = HashMap::new();
            let mut hist = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("hist");
            let (mut available, mut errors) = (0u64, 0u64);
            for ev in events.iter() {
                let now = Instant::now();
                match ev.kind {
                    EventKind::Finished => {
                        if counting_reader.load(Ordering::Acquire) {
                            finished.insert(ev.result.filename, now);
                        }
                    }
                    EventKind::Available => {
                        if let Some(t) = finished.remove(&ev.result.filename) {
                            if ev.result.file_available && ev.result.reason != Reason::Error {
                                available += 1;
                                hist.record(now.duration_since(t).as_micros().max(1) as u64)
                                    .ok();
                            } else {
                                errors += 1;
                            }
                        }
                    }
                }
            }
            (hist, available, errors)
        });

        let frames_in_audio = audio.len() / FRAME;
        let start = |seed: usize| -> Result<Slot, String> {
            let (recorder, _) = engine
                .record(&options, Codec::Alaw)
                .map_err(|e| format!("starting a call: {e}"))?;
            Ok(Slot {
                recorder,
                frames_left: call_frames,
                offset: (seed * 37) % frames_in_audio,
            })
        };
        let mut slots: Vec<Option<Slot>> = Vec::with_capacity(n);
        for i in 0..n {
            let mut slot = start(i)?;
            // Staggered first calls: one slot's call ends every 1/rate seconds from the start.
            slot.frames_left = ((i + 1) * call_frames).div_ceil(n).max(1);
            slots.push(Some(slot));
        }
        let total_ticks = (args.seconds * 50.0).round() as usize;
        let mut late_ticks = 0u64;
        let mut ended = 0u64;
        let cpu_start = cpu_seconds();
        let wall_start = Instant::now();
        // Calls start on a control thread, as in a host: creating a file is not media work.
        let (want_tx, want_rx) = std::sync::mpsc::channel::<usize>();
        let (got_tx, got_rx) = std::sync::mpsc::channel::<(usize, Slot)>();
        std::thread::scope(|scope| -> Result<(), String> {
            let control = scope.spawn(move || -> Result<(), String> {
                for (k, i) in want_rx.iter().enumerate() {
                    let _ = got_tx.send((i, start(n + k)?));
                }
                Ok(())
            });
            for tick in 0..total_ticks {
                let due = wall_start + Duration::from_millis(20 * tick as u64);
                let now = Instant::now();
                if now > due + Duration::from_millis(20) {
                    late_ticks += 1;
                } else {
                    std::thread::sleep(due.saturating_duration_since(now));
                }
                for (i, slot) in got_rx.try_iter() {
                    slots[i] = Some(slot);
                }
                for (i, entry) in slots.iter_mut().enumerate() {
                    let Some(slot) = entry else { continue };
                    let f = (slot.offset + tick) % frames_in_audio;
                    let _ = slot.recorder.push(&audio[f * FRAME..][..FRAME]);
                    slot.frames_left -= 1;
                    if slot.frames_left == 0 {
                        // The caller hangs up; the host starts the next call on this channel.
                        slot.recorder.hangup();
                        ended += 1;
                        *entry = None;
                        let _ = want_tx.send(i);
                    }
                }
            }
            drop(want_tx);
            control.join().map_err(|_| "control thread panicked")??;
            for (i, slot) in got_rx.try_iter() {
                slots[i] = Some(slot);
            }
            Ok(())
        })?;
        let wall = wall_start.elapsed().as_secs_f64();
        // Calls still open are hung up together: a burst that is not churn, so not counted.
        counting.store(false, Ordering::Release);
        // Give the calls that ended during the run time to become available: the outbox empties
        // (publishing), or the sync thread catches up (a few seconds at most when it keeps up).
        let drain_until = Instant::now() + Duration::from_secs(60);
        while Instant::now() < drain_until
            && engine.publish_metrics().is_some_and(|m| m.pending > 0)
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_secs(2));
        let frames_dropped = engine.metrics().frames_dropped;
        for slot in slots.iter_mut().flatten() {
            slot.recorder.hangup();
        }
        drop(slots);
        let cpu = cpu_seconds() - cpu_start;
        engine.shutdown();
        drop(engine);
        let (hist, available, errors) = reader.join().map_err(|_| "event reader panicked")?;
        let _ = std::fs::remove_dir_all(&dir);
        let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
        Ok(Churn {
            rate,
            channels: n,
            seconds: wall,
            publish: args.publish.is_some(),
            calls_ended: ended,
            calls_available: available,
            errors,
            frames_dropped,
            late_ticks,
            cpu_seconds: cpu,
            p50_ms: ms(0.5),
            p99_ms: ms(0.99),
            max_ms: hist.max() as f64 / 1000.0,
        })
    }
}
