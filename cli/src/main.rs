//! `callrec`: records a call from a WAV file the way a host would, and prints the two events.
//!
//! `callrec record INPUT` streams INPUT (a G.711 WAV, an 8 kHz 16-bit PCM WAV, or raw G.711
//! with `--raw`; a file, a FIFO, or `-` for standard input) to the engine in 20 ms frames; with
//! `--other OTHER` or a stereo INPUT, both parties of the call as a two-leg recording, as fast as the writer takes them (or paced at 20 ms with `--realtime`), in bounded
//! memory; applies scheduled digits, hangup and abort, treats the end of the input as a hangup,
//! and prints the *finished* and then the *available* action_result JSON lines (exactly two
//! lines on stdout: the events of other recordings, such as orphans a crashed process left in
//! the store and that the engine recovers at start, go to stderr, as does the path of each
//! orphaned `.part` the engine kept rather than recovered). SIGINT,
//! SIGTERM and SIGHUP end the call as a hangup: the recording is finalized and both lines are
//! printed before the exit.
//!
//! Exit status of `record`: 0 when the recording ended normally; 3 when its reason is `error`
//! (the file could not be written in full: what was written is kept; or, with `--publish`, the
//! upload still failed after `--publish-max-age`: the local file is kept); 130, 143 or 129 when
//! SIGINT, SIGTERM or SIGHUP ended it (after both lines); 2 for a bad option or an unreadable
//! input; 1 when the engine itself cannot run (e.g. the store cannot be created).
//! `callrec recover FILE` finalizes a crashed recording's `.part` (`--type aescbc --key --iv`
//! for an `.aescbc.part`): 0 done, 2 bad arguments, a wrong key or a file that is not callrec's
//! `.part` (left as it was), 1 an I/O error.

#![deny(missing_docs)]

mod decrypt;
mod input;
mod serve;

use callrec::cipher::Mode;
use callrec::{Codec, EngineConfig, EventKind, Legs, PublishConfig, Reason, RecordOptions, Status};
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    name = "callrec",
    version,
    about = "Record telephone calls like a record action"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Record INPUT and print the finished and available action results (one JSON line each).
    Record(RecordArgs),
    /// Decrypt an encrypted recording (streaming, any size), as `openssl enc -d` would.
    Decrypt(DecryptArgs),
    /// Record live calls over RTP: an HTTP control API, UDP ports, webhooks (see --help).
    Serve(serve::ServeArgs),
    /// Finalize a crashed recording's orphaned `.part` (an engine start does this for plain
    /// and aesctr ones; an aescbc `.aescbc.part` needs --type aescbc --key --iv). Prints the
    /// finished file's path and its seconds.
    Recover(RecoverArgs),
    /// Publish what a store's outbox still holds (e.g. after a crash or an object-store
    /// outage), printing an available line for each, then exit.
    Publish(PublishArgs),
}

#[derive(clap::Args)]
struct RecoverArgs {
    /// The `.part` (or `.aescbc.part`) file.
    file: PathBuf,
    /// The recording's cipher when it is aescbc (plain and aesctr need no key).
    #[arg(long = "type", value_name = "aescbc", value_parser = parse_mode)]
    mode: Option<Mode>,
    /// The aescbc key in hex (the record action's encryption_cipher.key).
    #[arg(long)]
    key: Option<String>,
    /// The aescbc initialisation vector in hex.
    #[arg(long)]
    iv: Option<String>,
}

#[derive(clap::Args)]
struct PublishArgs {
    /// The recording store's root directory.
    #[arg(long, default_value = "recordings")]
    store: PathBuf,
    /// The object store, e.g. s3://recordings/calls (environment as for `record --publish`).
    #[arg(long, value_name = "s3://BUCKET/PREFIX")]
    publish: String,
    /// Remove each local file once its upload is verified.
    #[arg(long)]
    publish_remove_local: bool,
    /// Retry a failing upload for this long (since the recording finished) before reporting
    /// `error`.
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    publish_max_age: Option<f64>,
}

#[derive(clap::Args)]
struct DecryptArgs {
    /// The encrypted recording.
    file: PathBuf,
    /// The cipher: aescbc or aesctr.
    #[arg(long = "type", value_name = "aescbc|aesctr", value_parser = parse_mode)]
    mode: Mode,
    /// The key in hex: 32, 48 or 64 digits (AES-128, -192, -256).
    #[arg(long)]
    key: String,
    /// The initialisation vector in hex: 32 digits.
    #[arg(long)]
    iv: String,
    /// Where to write the plain WAV (default: standard output).
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    output: Option<PathBuf>,
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    Mode::from_name(s).ok_or_else(|| format!("{s:?} is not a cipher (use aescbc or aesctr)"))
}

#[derive(clap::Args)]
struct RecordArgs {
    /// A G.711 WAV (A-law or µ-law), an 8 kHz 16-bit PCM WAV, or raw G.711 with --raw; a file,
    /// a FIFO, or `-` for standard input. Read as a stream. Mono: the caller; stereo: both
    /// parties (channel 1 the caller, channel 2 the other party).
    input: PathBuf,
    /// The other party's audio (mono, same kinds as INPUT): record both parties of the call,
    /// INPUT being the caller's. `legs` defaults to "both" (a stereo file); "mixed" mixes them.
    /// The call ends when the longer input ends; the shorter is filled with silence.
    #[arg(long, value_name = "OTHER")]
    other: Option<PathBuf>,
    /// The input (and --other) is headerless G.711 in this law (e.g. from a pipe).
    #[arg(long, value_name = "alaw|ulaw", value_parser = parse_codec)]
    raw: Option<Codec>,
    /// The recording store's root directory.
    #[arg(long, default_value = "recordings")]
    store: PathBuf,
    /// The record action's options as JSON, e.g. '{"milliseconds_max_silence":2000}'.
    #[arg(long, default_value = "{}")]
    options: String,
    /// The call's codec: PCM input is encoded to it; G.711 input is transcoded if it differs.
    /// Default: the G.711 file's own law, or alaw for PCM input.
    #[arg(long, value_parser = parse_codec)]
    codec: Option<Codec>,
    /// Press DIGIT at SECONDS into the call (as an RFC 4733 event from the host). Repeatable.
    #[arg(long = "digit", value_name = "SECONDS:DIGIT", value_parser = parse_digit)]
    digits: Vec<(f64, char)>,
    /// Pause the recording at SECONDS (`pause_behavior` says what the file keeps). Repeatable;
    /// applied at the start of the 20 ms frame at or after SECONDS, like --digit.
    #[arg(long = "pause-at", value_name = "SECONDS", value_parser = parse_seconds)]
    pause_at: Vec<f64>,
    /// Resume a paused recording at SECONDS. Repeatable; applied like --pause-at.
    #[arg(long = "resume-at", value_name = "SECONDS", value_parser = parse_seconds)]
    resume_at: Vec<f64>,
    /// Hang up at SECONDS (default: when the input ends).
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    hangup_at: Option<f64>,
    /// Abort the record action at SECONDS (from another thread, as a host would).
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    abort_at: Option<f64>,
    /// Pace the frames at real time (20 ms each) instead of as fast as possible.
    #[arg(long)]
    realtime: bool,
    /// Publish the recording to an S3-compatible object store, e.g. s3://recordings/calls:
    /// *available* comes once the object is stored and verified. Endpoint, region and
    /// credentials come from AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY (plain HTTP only with AWS_ALLOW_HTTP=true).
    #[arg(long, value_name = "s3://BUCKET/PREFIX")]
    publish: Option<String>,
    /// With --publish: remove the local file once the upload is verified.
    #[arg(long, requires = "publish")]
    publish_remove_local: bool,
    /// With --publish: retry a failing upload for this long before reporting `error`.
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds, requires = "publish")]
    publish_max_age: Option<f64>,
}

fn parse_codec(s: &str) -> Result<Codec, String> {
    Codec::from_name(s).ok_or_else(|| format!("{s:?} is not a codec (use alaw or ulaw)"))
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("{s:?} is not a number of seconds (>= 0)")),
    }
}

fn parse_digit(s: &str) -> Result<(f64, char), String> {
    let (at, digit) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?} is not SECONDS:DIGIT"))?;
    let mut chars = digit.chars();
    match (chars.next(), chars.next()) {
        (Some(d), None) if callrec::options::is_dtmf_digit(d.to_ascii_uppercase()) => {
            Ok((parse_seconds(at)?, d.to_ascii_uppercase()))
        }
        _ => Err(format!(
            "{digit:?} is not a DTMF digit (use 0-9, *, #, A-D)"
        )),
    }
}

/// How long a feed may wait for the writer before the CLI gives up: a writer that takes no
/// audio for this long is stuck (a healthy one drains every 20 ms).
const FEED_TIMEOUT: Duration = Duration::from_secs(60);

/// A failure and the exit status it earns.
struct Failure(u8, String);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match &cli.command {
        Command::Record(args) => match record(args) {
            Ok(0) => Ok(()),
            Ok(code) => return ExitCode::from(code),
            Err(f) => Err(f),
        },
        Command::Recover(args) => recover(args),
        Command::Decrypt(args) => decrypt(args),
        Command::Serve(args) => serve::serve(args).map_err(|(code, m)| Failure(code, m)),
        Command::Publish(args) => publish_outbox(args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(code, message)) => {
            eprintln!("callrec: {message}");
            ExitCode::from(code)
        }
    }
}

/// Decrypts and verifies (see `decrypt.rs`).
fn decrypt(args: &DecryptArgs) -> Result<(), Failure> {
    decrypt::run(args)
}

fn publish_config(
    url: &str,
    remove_local: bool,
    max_age: Option<f64>,
) -> Result<PublishConfig, Failure> {
    let mut p = PublishConfig::new(url);
    p.keep_local = !remove_local;
    if let Some(s) = max_age {
        p.max_age = Duration::from_secs_f64(s.min(30.0 * 24.0 * 3600.0));
    }
    p.validate().map_err(|e| Failure(2, format!("--{e}")))?;
    Ok(p)
}

/// Prints another recording's event (a recovered orphan's, or one an earlier run left in the
/// outbox) as a JSON line on stderr: stdout holds only the recording's own two lines.
fn print_other_event(event: &callrec::Event) {
    eprintln!("{}", event.result.action_result_json());
}

/// Names on stderr every orphaned `.part` the engine kept rather than recovered (an `aescbc`
/// one, which needs the key, or one that is not callrec's).
fn report_kept_orphans(engine: &callrec::Engine) {
    for path in engine.kept_orphans() {
        eprintln!(
            "callrec: orphaned {} kept, not recovered (aescbc: `callrec recover` with the key; \
             otherwise not callrec's)",
            path.display()
        );
    }
}

/// Prints one event as a JSON line. A closed stdout (`| head -1`) must not stop the recording
/// from becoming available.
fn print_event(event: &callrec::Event) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{}", event.result.action_result_json()).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Failure(1, format!("stdout: {e}")))
        }
        _ => Ok(()),
    }
}

fn publish_outbox(args: &PublishArgs) -> Result<(), Failure> {
    let publish = publish_config(
        &args.publish,
        args.publish_remove_local,
        args.publish_max_age,
    )?;
    let config = EngineConfig {
        publish: Some(publish),
        ..EngineConfig::default()
    };
    let engine = callrec_publish::start_engine(&args.store, config)
        .map_err(|e| Failure(1, e.to_string()))?;
    // Every resumed recording ends with exactly one available event (stored, or `error` after
    // max_age); the outbox count drops after its event is sent.
    loop {
        if let Some(event) = engine.next_event(Some(Duration::from_millis(100))) {
            print_event(&event)?;
            continue;
        }
        if engine.publish_metrics().is_some_and(|m| m.pending == 0) {
            break;
        }
    }
    engine.shutdown();
    while let Some(event) = engine.next_event(Some(Duration::ZERO)) {
        print_event(&event)?;
    }
    Ok(())
}

/// The signal that ended the call (0: none yet), set by [`on_signal`].
static SIGNALLED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(signal: libc::c_int) {
    // Async-signal-safe: one atomic store.
    SIGNALLED.store(signal, Ordering::SeqCst);
}

/// SIGINT, SIGTERM and SIGHUP set [`SIGNALLED`] instead of killing the process. Without
/// SA_RESTART, so a read blocked on a FIFO or a terminal returns and the call can end.
fn catch_hangup_signals() {
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: an all-zero sigaction is a valid value to fill in.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // SAFETY: `action.sa_mask` is a valid, writable sigset_t.
        unsafe { libc::sigemptyset(&mut action.sa_mask) };
        // SAFETY: a valid signal number and an initialised action whose handler only stores
        // to an atomic; a NULL old-action pointer is allowed.
        unsafe { libc::sigaction(signal, &action, std::ptr::null_mut()) };
    }
}

/// `callrec recover`.
fn recover(args: &RecoverArgs) -> Result<(), Failure> {
    let done = match args.mode {
        None if args.key.is_none() && args.iv.is_none() => {
            callrec::recover::recover_part(&args.file)
        }
        Some(Mode::Cbc) => {
            let (Some(key), Some(iv)) = (&args.key, &args.iv) else {
                return Err(Failure(2, "--type aescbc needs --key and --iv".into()));
            };
            let spec = callrec::cipher::CipherSpec::from_hex(Mode::Cbc, key, iv).map_err(|e| {
                Failure(
                    2,
                    format!(
                        "--{}: {}",
                        if e.field == "key" { "key" } else { "iv" },
                        e.message
                    ),
                )
            })?;
            callrec::recover::recover_aescbc(&args.file, &spec)
        }
        _ => {
            return Err(Failure(
                2,
                "--type: only aescbc needs a key (plain and aesctr .part files need none)".into(),
            ))
        }
    };
    match done {
        Ok(r) => {
            println!("{} {:.1}", r.path.display(), r.samples as f64 / 8000.0);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
            Err(Failure(2, format!("{}: {e}", args.file.display())))
        }
        Err(e) => Err(Failure(1, format!("{}: {e}", args.file.display()))),
    }
}

/// The parties' inputs: one (the caller), two files, or one stereo file.
struct Parties {
    caller: input::Source,
    /// The other party's own input (`--other`); None when there is none or INPUT is stereo.
    other: Option<input::Source>,
    /// Whether the caller's input has ended (the other may go on).
    caller_ended: bool,
}

impl Parties {
    fn two_legs(&self) -> bool {
        self.other.is_some() || self.caller.channels == 2
    }

    /// The next 20 ms of each party: the samples read for the caller and for the other party
    /// (0 for an input that has ended, or for the other party of a one-leg call).
    fn next(
        &mut self,
        args: &RecordArgs,
        caller: &mut [u8; 160],
        other: &mut [u8; 160],
        signalled: &dyn Fn() -> bool,
    ) -> Result<(usize, usize), Failure> {
        let failed =
            |path: &PathBuf, e: std::io::Error| Failure(2, format!("{}: {e}", path.display()));
        if self.caller.channels == 2 {
            let n = self
                .caller
                .next_frames(caller, other, signalled)
                .map_err(|e| failed(&args.input, e))?;
            return Ok((n, n));
        }
        let n0 = if self.caller_ended {
            0
        } else {
            let n = self
                .caller
                .next_frame(caller, signalled)
                .map_err(|e| failed(&args.input, e))?;
            // A signal interrupts a read with nothing read: that is no end of the input.
            self.caller_ended = n == 0 && !signalled();
            if signalled() {
                // Hang up now rather than block on the other input (a quiet FIFO).
                return Ok((n, 0));
            }
            n
        };
        let n1 = match (&mut self.other, &args.other) {
            (Some(source), Some(path)) => source
                .next_frame(other, signalled)
                .map_err(|e| failed(path, e))?,
            _ => 0,
        };
        Ok((n0, n1))
    }
}

/// Opens the inputs and decides the recording's legs: two parties (`--other`, or a stereo
/// INPUT) make a two-leg recording, "both" unless the options say "mixed".
fn open_parties(args: &RecordArgs, options: &mut RecordOptions) -> Result<Parties, Failure> {
    let caller = input::open(&args.input, args.codec, args.raw)
        .map_err(|e| Failure(2, format!("{}: {e}", args.input.display())))?;
    let other = match &args.other {
        Some(path) => {
            // The other leg is transcoded to the caller's codec: one call, one codec.
            let source = input::open(path, Some(caller.codec), args.raw)
                .map_err(|e| Failure(2, format!("{}: {e}", path.display())))?;
            if source.channels != 1 || caller.channels != 1 {
                return Err(Failure(
                    2,
                    "--other: give each party's audio as a mono input (a stereo INPUT already \
                     holds both parties)"
                        .into(),
                ));
            }
            Some(source)
        }
        None => None,
    };
    let parties = Parties {
        caller,
        other,
        caller_ended: false,
    };
    if parties.two_legs() {
        *options = RecordOptions::from_json_two_legs(&args.options)
            .map_err(|e| Failure(2, format!("--options: {e}")))?;
    } else if options.legs != Legs::Caller {
        return Err(Failure(
            2,
            format!(
                "--options: legs \"{}\" records both parties: give the other party's audio with \
                 --other OTHER.wav, or a stereo input",
                options.legs.name()
            ),
        ));
    }
    Ok(parties)
}

/// Records; returns the exit status (see the module docs).
fn record(args: &RecordArgs) -> Result<u8, Failure> {
    let mut options = RecordOptions::from_json(&args.options)
        .map_err(|e| Failure(2, format!("--options: {e}")))?;
    catch_hangup_signals();
    let mut parties = open_parties(args, &mut options)?;
    let publish = args
        .publish
        .as_ref()
        .map(|url| publish_config(url, args.publish_remove_local, args.publish_max_age))
        .transpose()?;
    // Without publishing, *available* follows within seconds; with it, after the upload,
    // which may be retried for up to max_age while the object store is down.
    let event_wait = Duration::from_secs(60)
        + publish
            .as_ref()
            .map(|p| p.max_age + Duration::from_secs(60))
            .unwrap_or_default();
    let config = EngineConfig {
        publish,
        ..EngineConfig::default()
    };
    let engine = callrec_publish::start_engine(&args.store, config)
        .map_err(|e| Failure(1, e.to_string()))?;
    let codec = parties.caller.codec;
    // The caller's recorder; with two parties, the other's too. Digits, pauses, hangup and
    // abort go through the caller's: on a two-leg recording they act on the whole call.
    let (mut recorder, mut other_recorder, handle) = if parties.two_legs() {
        let (caller, other) = engine
            .record_call(&options, codec)
            .map_err(|e| Failure(1, e.to_string()))?;
        let handle = caller.handle();
        (caller, Some(other), handle)
    } else {
        let (caller, handle) = engine
            .record(&options, codec)
            .map_err(|e| Failure(1, e.to_string()))?;
        (caller, None, handle)
    };

    let at_sample = |seconds: f64| (seconds * 8000.0).round() as u64;
    let mut digits: Vec<(u64, char)> = args
        .digits
        .iter()
        .map(|&(s, d)| (at_sample(s), d))
        .collect();
    digits.sort_by_key(|&(at, _)| at);
    let mut digits = digits.into_iter().peekable();
    // Pauses and resumes in time order (a pause and a resume at the same time: pause first).
    let mut pauses: Vec<(u64, bool)> = (args.pause_at.iter().map(|&s| (at_sample(s), true)))
        .chain(args.resume_at.iter().map(|&s| (at_sample(s), false)))
        .collect();
    pauses.sort_by_key(|&(at, pause)| (at, !pause));
    let mut pauses = pauses.into_iter().peekable();
    let hangup_at = args.hangup_at.map(at_sample);
    let mut abort = args.abort_at.map(|s| (at_sample(s), handle));
    let frame_len = callrec::recorder::FRAME_SAMPLES;
    let started = Instant::now();
    let mut status = Status::Waiting;
    let mut beep = [0u8; 160];
    let mut buf = [0u8; 160];
    let mut other_buf = [0u8; 160];
    let signalled = || SIGNALLED.load(Ordering::SeqCst) != 0;
    for i in 0.. {
        if signalled() {
            status = recorder.hangup(); // the caller (the terminal, the supervisor) hung up
            break;
        }
        let (n, other_n) = parties.next(args, &mut buf, &mut other_buf, &signalled)?;
        if n == 0 && other_n == 0 {
            if signalled() {
                continue; // hang up at the top of the loop
            }
            break;
        }
        let now = (i * frame_len) as u64;
        while let Some(&(at, d)) = digits.peek() {
            if at > now {
                break;
            }
            digits.next();
            status = recorder
                .digit(d)
                .map_err(|e| Failure(2, format!("--digit: {e}")))?;
        }
        while let Some(&(at, pause)) = pauses.peek() {
            if at > now {
                break;
            }
            pauses.next();
            status = if pause {
                recorder.pause()
            } else {
                recorder.resume()
            };
        }
        if let Some((at, h)) = &abort {
            if *at <= now {
                // The host aborts from its control thread, not the media thread.
                let h = h.clone();
                std::thread::spawn(move || h.abort()).join().ok();
                abort = None;
            }
        }
        if hangup_at.is_some_and(|at| at <= now) {
            status = recorder.hangup();
        }
        if let Status::Stopped(_) = status {
            break;
        }
        // The host sends the beep to the caller; here it has nowhere to go.
        recorder.playout(&mut beep);
        if args.realtime {
            let due = started + Duration::from_millis(20 * i as u64);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        // Faster than real time, feed waits for the writer rather than overflow the ring. A
        // party whose input has ended sends nothing more; its leg is moved on with the call's
        // time (a gap: callrec fills it with silence, counts it, and hears it as silence), as
        // a host's clock moves on a leg whose packets have stopped.
        let until = now + n.max(other_n) as u64;
        let legs = [(&mut recorder, &buf[..n])]
            .into_iter()
            .chain(other_recorder.as_mut().map(|o| (o, &other_buf[..other_n])));
        for (leg, frame) in legs {
            if matches!(status, Status::Stopped(_)) {
                break;
            }
            status = if frame.is_empty() {
                leg.push_at(until, frame)
            } else {
                leg.feed(frame, FEED_TIMEOUT)
            }
            .map_err(|e| Failure(1, e.to_string()))?;
        }
        if let Status::Stopped(_) = status {
            break;
        }
    }
    if !matches!(status, Status::Stopped(_)) {
        recorder.hangup(); // the input ended: the caller hung up
    }
    drop(other_recorder);
    let filename = recorder.filename().to_string();
    drop(recorder);
    let mut reason = None;
    let publishing = engine.publish_metrics().is_some();
    let mut finished = false;
    let deadline = Instant::now() + event_wait;

    loop {
        // Signalled while the upload waits (the object store may be down for up to max_age):
        // the engine's shutdown gives it one more attempt and otherwise keeps it in the store's
        // outbox for `callrec publish` or the next engine, so a supervisor's stop is not held
        // up; what the shutdown produced is printed.
        if publishing && finished && signalled() {
            engine.shutdown();
            while let Some(event) = engine.next_event(Some(Duration::ZERO)) {
                if event.result.filename == filename {
                    print_event(&event)?;
                    reason = Some(event.result.reason);
                } else {
                    print_other_event(&event);
                }
            }
            break;
        }
        // A short wait, so that a signal is seen while no event comes.
        let Some(event) = engine.next_event(Some(Duration::from_millis(100))) else {
            if Instant::now() >= deadline {
                return Err(Failure(
                    1,
                    format!("the engine sent no event within {} s", event_wait.as_secs()),
                ));
            }
            continue;
        };
        if event.result.filename == filename {
            print_event(&event)?;
            reason = Some(event.result.reason);
            finished |= event.kind == EventKind::Finished;
        } else {
            print_other_event(&event);
        }
        // A file that could not be finalized gets no *available*. With publishing, recordings
        // an earlier run left in the store's outbox may be reported first.
        let failed = event.kind == EventKind::Finished
            && event.result.reason == Reason::Error
            && !args
                .store
                .join(event.result.filename.trim_start_matches('/'))
                .exists();
        if event.result.filename == filename && (event.kind == EventKind::Available || failed) {
            break;
        }
    }
    engine.shutdown();
    // What the recovery thread finished meanwhile (shutdown joined it).
    while let Some(event) = engine.next_event(Some(Duration::ZERO)) {
        print_other_event(&event);
    }
    report_kept_orphans(&engine);
    // A lost (partly written) recording is an error a script must see, signal or not.
    if reason == Some(Reason::Error) {
        return Ok(3);
    }
    Ok(match SIGNALLED.load(Ordering::SeqCst) {
        0 => 0,
        signal => (128 + signal) as u8,
    })
}
