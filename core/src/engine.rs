//! The engine: a store, writer threads, a sync thread and the events channel (DESIGN §3).
//!
//! [`Engine::record`] runs on the host's control thread: it validates the options, creates the
//! recording's directory and `.part` file, writes the WAV header, makes the session's ring and
//! hands the writer its end. Everything that allocates or makes a system call for a recording
//! happens here, before the real-time side sees it.

use crate::call::{CallFeed, CallShared, CALLER, OTHER};
use crate::cipher::{EncryptionPlan, Mode, UsedKeyIvs};
use crate::g711::Codec;
use crate::metrics::{EngineMetrics, MetricsSnapshot};
use crate::options::{Legs, OptionsError, RecordOptions};
use crate::publish::{ObjectSink, PublishConfig, PublishMetrics, PublishSnapshot};
use crate::recorder::{Recorder, RecorderHandle, SAMPLE_RATE};
use crate::recover::{run_recovery, RecoveryContext};
use crate::result::Event;
use crate::session::{audio_ring, SessionShared};
use crate::store::Store;
use crate::wav::WavFile;
use crate::writer::{run_syncer, run_writer, WriterContext, WriterSession};
use crossbeam_channel::{Receiver, Sender};
use rtrb::{Consumer, Producer};
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

/// Sync threads: files fsynced at once (see `writer`), sized by the churn benchmark
/// (BENCHMARKS.md, Publishing): one thread makes about 300 files a second durable here, eight
/// keep p99 *finished*→*available* flat past 500 calls a second.
const SYNC_THREADS: usize = 8;

/// How an engine runs. `EngineConfig::default()` suits most hosts.
///
/// This one type is the engine configuration everywhere: Rust hosts build it, C hosts pass it as
/// JSON to `callrec_engine_new`, Python hosts as keyword arguments to `Engine(store, **config)`,
/// all through [`EngineConfig::from_json`] / [`EngineConfig::from_map`], so the names, ranges and
/// messages are the same in every language. JSON names are the field names, except
/// `poll_interval`, which is `poll_milliseconds` (an integer) in JSON.
#[derive(Clone, Debug, PartialEq)]
pub struct EngineConfig {
    /// Writer threads (each serves its share of the sessions), 1..=256. Default 1.
    pub writers: usize,
    /// Audio each session's ring holds, in milliseconds (100..=60000): how long the writer may
    /// stall before frames are lost. Default 2000.
    pub ring_milliseconds: u32,
    /// How often a writer wakes (1..=1000 ms). Default 20 ms (one frame): each wake scans every
    /// session, so waking more often costs writer CPU at thousands of sessions and buys only a
    /// lower finalize latency.
    pub poll_interval: Duration,
    /// A ring is drained once it holds this many bytes (or its recording stopped), 1..=240000;
    /// capped at half the ring, so a small ring works with the default. Default 4096.
    pub batch_bytes: usize,
    /// Publish every finished recording to an S3-compatible object store before reporting it
    /// *available* (DESIGN §12). Default None: *available* means fsynced locally. The engine
    /// then needs an [`ObjectSink`]: see [`Engine::with_object_sink`].
    pub publish: Option<PublishConfig>,
}

/// Engine configuration ranges (inclusive), shared by every way of giving a configuration.
const WRITERS: (u64, u64) = (1, 256);
const RING_MILLISECONDS: (u64, u64) = (100, 60_000);
const POLL_MILLISECONDS: (u64, u64) = (1, 1000);
const BATCH_BYTES: (u64, u64) = (1, 240_000);

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            writers: 1,
            ring_milliseconds: 2000,
            poll_interval: Duration::from_millis(20),
            batch_bytes: 4096,
            publish: None,
        }
    }
}

impl EngineConfig {
    /// Parses an engine configuration from JSON (an object; an empty string means all defaults).
    /// A key given twice or an unknown key is an error naming it.
    pub fn from_json(json: &str) -> Result<EngineConfig, Error> {
        if json.trim().is_empty() {
            return Ok(EngineConfig::default());
        }
        match crate::json::parse(json).map_err(|e| Error::Config(e.to_string()))? {
            serde_json::Value::Object(map) => EngineConfig::from_map(&map),
            _ => Err(Error::Config("must be a JSON object".into())),
        }
    }

    /// Builds a configuration from an already-decoded JSON object (defaults for absent keys).
    pub fn from_map(
        map: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<EngineConfig, Error> {
        let mut c = EngineConfig::default();
        for (key, value) in map {
            match key.as_str() {
                "writers" => c.writers = config_integer("writers", value, WRITERS)? as usize,
                "ring_milliseconds" => {
                    c.ring_milliseconds =
                        config_integer("ring_milliseconds", value, RING_MILLISECONDS)? as u32
                }
                "poll_milliseconds" => {
                    c.poll_interval = Duration::from_millis(config_integer(
                        "poll_milliseconds",
                        value,
                        POLL_MILLISECONDS,
                    )?)
                }
                "batch_bytes" => {
                    c.batch_bytes = config_integer("batch_bytes", value, BATCH_BYTES)? as usize
                }
                "publish" => c.publish = publish_config(value)?,
                _ => {
                    return Err(Error::Config(format!(
                        "{}: unknown setting",
                        crate::json::key(key)
                    )))
                }
            }
        }
        c.validate()?;
        Ok(c)
    }

    /// Checks every setting's range; the error names the first bad one.
    pub fn validate(&self) -> Result<(), Error> {
        config_range("writers", self.writers as u64, WRITERS)?;
        config_range(
            "ring_milliseconds",
            self.ring_milliseconds as u64,
            RING_MILLISECONDS,
        )?;
        let poll = self.poll_interval;
        if poll < Duration::from_millis(POLL_MILLISECONDS.0)
            || poll > Duration::from_millis(POLL_MILLISECONDS.1)
        {
            return Err(Error::Config(format!(
                "poll_milliseconds: must be {}..={}",
                POLL_MILLISECONDS.0, POLL_MILLISECONDS.1
            )));
        }
        config_range("batch_bytes", self.batch_bytes as u64, BATCH_BYTES)?;
        if let Some(publish) = &self.publish {
            publish.validate().map_err(Error::Config)?;
        }
        Ok(())
    }

    /// Bytes each session's ring holds.
    pub(crate) fn ring_bytes(&self) -> usize {
        self.ring_milliseconds as usize * SAMPLE_RATE as usize / 1000
    }

    /// The batch size in force: `batch_bytes`, at most half the ring.
    pub(crate) fn effective_batch_bytes(&self) -> usize {
        self.batch_bytes.min(self.ring_bytes() / 2)
    }
}

impl<'de> Deserialize<'de> for EngineConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = serde_json::Map::deserialize(d)?;
        EngineConfig::from_map(&map).map_err(serde::de::Error::custom)
    }
}

/// `"publish"`: null, an `s3://bucket/prefix` URL, or `{"url": ..., "keep_local": bool,
/// "max_age_seconds": n, "concurrency": n}`.
fn publish_config(v: &serde_json::Value) -> Result<Option<PublishConfig>, Error> {
    use serde_json::Value;
    let map = match v {
        Value::Null => return Ok(None),
        Value::String(url) => return Ok(Some(PublishConfig::new(url.as_str()))),
        Value::Object(map) => map,
        _ => {
            return Err(Error::Config(format!(
                "publish: must be an s3:// URL or an object, not {}",
                crate::json::describe(v)
            )))
        }
    };
    let Some(Value::String(url)) = map.get("url") else {
        return Err(Error::Config("publish.url: is required (a string)".into()));
    };
    let mut p = PublishConfig::new(url.as_str());
    for (key, value) in map {
        match key.as_str() {
            "url" => {}
            "keep_local" => {
                p.keep_local = value.as_bool().ok_or_else(|| {
                    Error::Config("publish.keep_local: must be true or false".into())
                })?
            }
            "max_age_seconds" => {
                p.max_age = Duration::from_secs(config_integer(
                    "publish.max_age_seconds",
                    value,
                    (1, 30 * 86_400),
                )?)
            }
            "concurrency" => {
                p.concurrency = config_integer("publish.concurrency", value, (1, 256))? as usize
            }
            _ => {
                return Err(Error::Config(format!(
                    "publish.{}: unknown setting",
                    crate::json::printable(key, crate::json::QUOTE_CHARS)
                )))
            }
        }
    }
    Ok(Some(p))
}

fn config_integer(name: &str, v: &serde_json::Value, bounds: (u64, u64)) -> Result<u64, Error> {
    let n = match v {
        serde_json::Value::Number(n) => match (n.as_u64(), n.as_f64()) {
            (Some(u), _) => Some(u),
            // `-0` and `0.0` are zero; any other fraction or sign is refused below.
            (None, Some(f)) => (f == 0.0).then_some(0),
            _ => None,
        },
        _ => None,
    };
    let Some(n) = n else {
        return Err(Error::Config(format!(
            "{name}: must be a whole number {}..={}, not {}",
            bounds.0,
            bounds.1,
            crate::json::describe(v)
        )));
    };
    config_range(name, n, bounds)?;
    Ok(n)
}

fn config_range(name: &str, n: u64, (min, max): (u64, u64)) -> Result<(), Error> {
    if n < min || n > max {
        return Err(Error::Config(format!(
            "{name}: must be {min}..={max}, not {n}"
        )));
    }
    Ok(())
}

/// What can go wrong outside the real-time path.
#[derive(Debug)]
pub enum Error {
    /// A bad option (the field is named).
    Options(OptionsError),
    /// A bad engine setting.
    Config(String),
    /// The store or a recording's file could not be created.
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The engine has been shut down.
    ShutDown,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Options(e) => write!(f, "{e}"),
            Error::Config(m) => write!(f, "engine configuration: {m}"),
            Error::Io { context, source } => write!(f, "{context}: {source}"),
            Error::ShutDown => f.write_str("the engine has been shut down"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Options(e) => Some(e),
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<OptionsError> for Error {
    fn from(e: OptionsError) -> Self {
        Error::Options(e)
    }
}

/// Session start as a transaction: the new `.part` is removed when anything fails before the
/// writer has taken the session.
struct PartGuard(Option<PathBuf>);

impl PartGuard {
    fn commit(&mut self) {
        self.0 = None;
    }
}

impl Drop for PartGuard {
    fn drop(&mut self) {
        if let Some(part) = self.0.take() {
            let _ = std::fs::remove_file(part);
        }
    }
}

/// A session opened but not yet handed to a writer.
struct Opened {
    session: WriterSession,
    filename: String,
    shared: Arc<SessionShared>,
    guard: PartGuard,
    producers: [Option<Producer<u8>>; 2],
    consumers: [Option<Consumer<u8>>; 2],
}

/// The recording engine. Shut it down (or drop it) to finalize every open recording.
pub struct Engine {
    store: Store,
    config: EngineConfig,
    metrics: Arc<EngineMetrics>,
    events: Receiver<Event>,
    /// Writers' session queues; `None` once shut down. Held while registering a session so
    /// shutdown cannot slip between the check and the send.
    writers: Mutex<Option<Vec<Sender<WriterSession>>>>,
    next_writer: AtomicUsize,
    used_key_ivs: Mutex<UsedKeyIvs>,
    closing: Arc<AtomicBool>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    publish_metrics: Option<Arc<PublishMetrics>>,
    kept_orphans: Arc<Mutex<Vec<PathBuf>>>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("store", &self.store.root())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Starts an engine writing under `store_root` (created 0700 if missing). With
    /// `config.publish` set, use [`Engine::with_object_sink`] instead (core has no network code).
    pub fn new(store_root: impl Into<PathBuf>, config: EngineConfig) -> Result<Engine, Error> {
        Engine::start(store_root.into(), config, None)
    }

    /// Starts an engine that publishes every recording through `sink` (`config.publish` must be
    /// set): uploads resume from the store's outbox, and *available* means stored and verified
    /// in the object store (see [`crate::publish`]). `callrec_publish::start_engine` builds the
    /// S3 sink from the URL.
    pub fn with_object_sink(
        store_root: impl Into<PathBuf>,
        config: EngineConfig,
        sink: Arc<dyn ObjectSink>,
    ) -> Result<Engine, Error> {
        Engine::start(store_root.into(), config, Some(sink))
    }

    fn start(
        store_root: PathBuf,
        config: EngineConfig,
        sink: Option<Arc<dyn ObjectSink>>,
    ) -> Result<Engine, Error> {
        match (&config.publish, &sink) {
            (Some(p), _) => {
                p.validate().map_err(Error::Config)?;
            }
            (None, Some(_)) => {
                return Err(Error::Config(
                    "an object sink was given without publish".into(),
                ))
            }
            (None, None) => {}
        }
        if config.publish.is_some() && sink.is_none() {
            return Err(Error::Config(
                "publish needs an object-store client: start the engine with \
                 Engine::with_object_sink (callrec_publish::start_engine builds one)"
                    .into(),
            ));
        }
        config.validate()?;
        let ring_bytes = config.ring_bytes();
        if store_root.as_os_str().is_empty() {
            // An empty root would put `rest_api/...` in whatever the current directory is.
            return Err(Error::Io {
                context: "store".into(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "must not be empty (give a directory; \".\" is the current one)",
                ),
            });
        }
        let store = Store::open(&store_root).map_err(|source| {
            let not_a_directory = std::fs::metadata(&store_root).is_ok_and(|m| !m.is_dir());
            Error::Io {
                context: format!("cannot create the store {}", store_root.display()),
                source: if not_a_directory {
                    std::io::Error::new(
                        std::io::ErrorKind::AlreadyExists,
                        "it exists and is not a directory",
                    )
                } else {
                    source
                },
            }
        })?;
        let metrics = Arc::new(EngineMetrics::default());
        let closing = Arc::new(AtomicBool::new(false));
        let (event_tx, events) = crossbeam_channel::unbounded();
        let (sync_tx, sync_rx) = crossbeam_channel::unbounded();
        let mut threads = Vec::new();
        let mut writers = Vec::new();
        let spawn_error = |source| Error::Io {
            context: "cannot start an engine thread".into(),
            source,
        };
        // Publishing: the writers' and the sync thread's events go through the publisher,
        // which forwards *finished* once the outbox holds the recording and sends *available*
        // after a verified upload. Its thread is joined last, after the threads feeding it.
        let mut publisher = None;
        let mut publish_metrics = None;
        let event_tx = match (&config.publish, sink) {
            (Some(p), Some(sink)) => {
                let pm = Arc::new(PublishMetrics::default());
                let (intake, thread) =
                    crate::publish::spawn(&store_root, p, sink, event_tx, pm.clone()).map_err(
                        |source| Error::Io {
                            // Another engine publishes from this store: the message says so.
                            context: if source.kind() == std::io::ErrorKind::ResourceBusy {
                                "publish".into()
                            } else {
                                format!(
                                    "cannot open the publish outbox in {}",
                                    store_root.display()
                                )
                            },
                            source,
                        },
                    )?;
                publisher = Some(thread);
                publish_metrics = Some(pm);
                intake
            }
            _ => event_tx,
        };
        // fsync waits on the disk, not the CPU: several in flight let the filesystem commit
        // them together, so *available* keeps up with hundreds of calls ending per second.
        for n in 0..SYNC_THREADS {
            let (jobs, sync_events) = (sync_rx.clone(), event_tx.clone());
            threads.push(
                std::thread::Builder::new()
                    .name(format!("callrec-sync-{n}"))
                    .spawn({
                        let metrics = metrics.clone();
                        move || run_syncer(jobs, sync_events, metrics)
                    })
                    .map_err(spawn_error)?,
            );
        }
        drop(sync_rx);
        for n in 0..config.writers {
            let (tx, rx) = crossbeam_channel::unbounded();
            let ctx = WriterContext {
                new_sessions: rx,
                closing: closing.clone(),
                metrics: metrics.clone(),
                events: event_tx.clone(),
                sync_jobs: sync_tx.clone(),
                poll_interval: config.poll_interval,
                batch_bytes: config.effective_batch_bytes(),
                ring_bytes,
            };
            let spawned = std::thread::Builder::new()
                .name(format!("callrec-writer-{n}"))
                .spawn(move || run_writer(ctx));
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => {
                    closing.store(true, Ordering::Release);
                    return Err(spawn_error(e));
                }
            }
            writers.push(tx);
        }
        // Orphans of a crashed process: finalized on a thread of their own so that neither
        // `Engine::new` nor the sync thread waits for a store's worth of directories.
        let kept_orphans = Arc::new(Mutex::new(Vec::new()));
        let recovery = RecoveryContext {
            root: store_root.clone(),
            events: event_tx.clone(),
            metrics: metrics.clone(),
            kept: kept_orphans.clone(),
            closing: closing.clone(),
        };
        match std::thread::Builder::new()
            .name("callrec-recover".into())
            .spawn(move || run_recovery(recovery))
        {
            Ok(t) => threads.push(t),
            Err(e) => {
                closing.store(true, Ordering::Release);
                return Err(spawn_error(e));
            }
        }
        drop(event_tx);
        threads.extend(publisher);
        Ok(Engine {
            store,
            config,
            metrics,
            events,
            writers: Mutex::new(Some(writers)),
            next_writer: AtomicUsize::new(0),
            used_key_ivs: Mutex::new(UsedKeyIvs::new()),
            closing,
            threads: Mutex::new(threads),
            publish_metrics,
            kept_orphans,
        })
    }

    /// The orphaned `.part` files found at start that this engine kept rather than finalized:
    /// `aescbc` ones (finish them with [`crate::recover::recover_aescbc`] and the key) and any
    /// that could not be fixed. Filled by the recovery thread as it goes.
    pub fn kept_orphans(&self) -> Vec<PathBuf> {
        self.kept_orphans
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The store's root directory.
    pub fn store_root(&self) -> &Path {
        self.store.root()
    }

    /// Starts a recording of a call whose audio is in `input_codec`. Control thread only: this
    /// validates, creates the file and allocates. Returns the real-time [`Recorder`] and a
    /// [`RecorderHandle`] for aborting from other threads. `legs` must be `"caller"` (the
    /// default): the other values need both parties, through [`Engine::record_call`].
    pub fn record(
        &self,
        options: &RecordOptions,
        input_codec: Codec,
    ) -> Result<(Recorder, RecorderHandle), Error> {
        options.validate()?;
        if options.legs != Legs::Caller {
            return Err(Error::Options(OptionsError {
                field: "legs".into(),
                message: format!(
                    "\"{}\" records both parties: start it with record_call (two legs)",
                    options.legs.name()
                ),
            }));
        }
        let mut opened = self.open(options, input_codec, 1)?;
        let ring = opened.producers[0].take().expect("one leg, one ring");
        let shared = opened.shared.clone();
        let filename = opened.filename.clone();
        self.register(opened)?;
        Ok(Recorder::new(
            options,
            input_codec,
            filename,
            shared,
            self.metrics.clone(),
            ring,
        ))
    }

    /// Starts one recording of both parties of a call (DESIGN §13; `legs` must be `"both"` or
    /// `"mixed"`), whose audio is in `input_codec` on both legs. Returns the two real-time
    /// [`Recorder`]s, the caller's first: each has its own ring and may be pushed from its own
    /// thread, at the same time as the other. Each leg's samples are placed by their index since
    /// this call ([`Recorder::push`] continues where the leg is; [`Recorder::push_at`] places
    /// audio at an index, leaving a gap of silence). `hangup`, `digit`, `pause`/`resume` and
    /// dropping act on the whole recording from either leg; the beep is the caller's; in-band
    /// barge-in listens to the caller. Either recorder's [`Recorder::handle`] aborts it.
    /// Control thread only.
    pub fn record_call(
        &self,
        options: &RecordOptions,
        input_codec: Codec,
    ) -> Result<(Recorder, Recorder), Error> {
        options.validate()?;
        if options.legs == Legs::Caller {
            return Err(Error::Options(OptionsError {
                field: "legs".into(),
                message: "a two-leg recording needs \"both\" or \"mixed\"".into(),
            }));
        }
        let mut opened = self.open(options, input_codec, options.legs.channels())?;
        let call = Arc::new(CallShared::new(options, opened.shared.clone()));
        let (Some(p0), Some(p1), Some(c0), Some(c1)) = (
            opened.producers[0].take(),
            opened.producers[1].take(),
            opened.consumers[0].take(),
            opened.consumers[1].take(),
        ) else {
            unreachable!("open makes a ring per leg");
        };
        opened.session.call = Some(Box::new(CallFeed::new(
            call.clone(),
            [c0, c1],
            self.config.ring_bytes(),
            input_codec,
            opened.session.file_codec,
        )));
        let filename = opened.filename.clone();
        self.register(opened)?;
        let caller = Recorder::new_leg(
            options,
            input_codec,
            filename.clone(),
            call.clone(),
            CALLER,
            self.metrics.clone(),
            p0,
        );
        let other = Recorder::new_leg(
            options,
            input_codec,
            filename,
            call,
            OTHER,
            self.metrics.clone(),
            p1,
        );
        Ok((caller, other))
    }

    /// [`Engine::record_call`] from the options JSON, read as the bindings read it
    /// ([`RecordOptions::from_json_two_legs`]: `legs` defaults to `"both"`).
    pub fn record_call_json(
        &self,
        options_json: &str,
        input_codec: Codec,
    ) -> Result<(Recorder, Recorder), Error> {
        self.record_call(
            &RecordOptions::from_json_two_legs(options_json)?,
            input_codec,
        )
    }

    /// Session start shared by one- and two-leg recordings: checks the cipher, creates the
    /// `.part` and its header (`channels` of them), and makes the rings (one per channel's leg:
    /// two when `channels` is 2 or the options mix two legs).
    fn open(
        &self,
        options: &RecordOptions,
        input_codec: Codec,
        channels: u16,
    ) -> Result<Opened, Error> {
        if let Some(spec) = &options.encryption_cipher {
            let reused = self
                .used_key_ivs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .reused(spec);
            match spec.mode() {
                Mode::Ctr if reused => {
                    return Err(Error::Options(OptionsError {
                        field: "encryption_cipher.initialisation_vector".into(),
                        message: "this key and IV were already used for an aesctr recording by \
                                  this engine; reusing them exposes both calls' audio (use a \
                                  fresh random IV for every recording)"
                            .into(),
                    }))
                }
                Mode::Cbc if reused => {
                    self.metrics.add_cbc_key_iv_reused();
                }
                _ => {}
            }
        }
        if self.closing.load(Ordering::Acquire) {
            return Err(Error::ShutDown);
        }
        let plan = EncryptionPlan::new(options.encryption_cipher.as_ref());
        let (paths, file) = self
            .store
            .create(SystemTime::now(), plan.is_cbc())
            .map_err(|source| Error::Io {
                context: format!(
                    "cannot create a recording under {}",
                    self.store.root().display()
                ),
                source,
            })?;
        // From here the `.part` is removed on any error path, unless the writer takes it.
        let guard = PartGuard(Some(paths.part_path.clone()));
        if !options.id.is_empty() {
            // For recovery after a crash; a filesystem without user xattrs only loses that.
            let _ = crate::store::set_xattr(&file, crate::store::ID_XATTR, options.id.as_bytes());
        }
        if channels == 2 {
            // Recovery fixes an encrypted stereo `.part`'s header by it (no key needed).
            let _ = crate::store::set_xattr(&file, crate::store::CHANNELS_XATTR, b"2");
        }
        let file_codec = options.format.unwrap_or(input_codec);
        let wav = WavFile::start_channels(file, file_codec, channels, plan.part_stream()).map_err(
            |source| Error::Io {
                context: format!("cannot write {}", paths.part_path.display()),
                source,
            },
        )?;
        let ring_bytes = self.config.ring_bytes();
        let two = options.legs != Legs::Caller;
        let (producer, consumer) = audio_ring(if two { 1 } else { ring_bytes });
        let mut producers = [Some(producer), None];
        let mut consumers = [None, None];
        if two {
            for leg in 0..2 {
                let (p, c) = audio_ring(ring_bytes);
                producers[leg] = Some(p);
                consumers[leg] = Some(c);
            }
        }
        let shared = Arc::new(SessionShared::new(options.trim_trailing_silence));
        let filename = paths.filename.clone();
        let session = WriterSession {
            shared: shared.clone(),
            ring: consumer,
            wav,
            input_codec,
            file_codec,
            paths,
            id: options.id.clone(),
            failed: false,
            sound_marked: false,
            plan,
            call: None,
        };
        Ok(Opened {
            session,
            filename,
            shared,
            guard,
            producers,
            consumers,
        })
    }

    /// Hands a started session to a writer (the `.part` is the writer's from here).
    fn register(&self, opened: Opened) -> Result<(), Error> {
        let Opened {
            session, mut guard, ..
        } = opened;
        // The lock is held only to register: shutdown cannot slip between the check and the send.
        {
            let writers = self.writers.lock().unwrap_or_else(|p| p.into_inner());
            let Some(writers) = writers.as_ref() else {
                return Err(Error::ShutDown);
            };
            let n = self.next_writer.fetch_add(1, Ordering::Relaxed) % writers.len();
            if writers[n].send(session).is_err() {
                return Err(Error::ShutDown);
            }
        }
        guard.commit();
        self.metrics.start_recording();
        Ok(())
    }

    /// [`Engine::record`] from the options JSON of the record action.
    pub fn record_json(
        &self,
        options_json: &str,
        input_codec: Codec,
    ) -> Result<(Recorder, RecorderHandle), Error> {
        self.record(&RecordOptions::from_json(options_json)?, input_codec)
    }

    /// The events channel: *finished* and *available* for every recording. Use `recv`,
    /// `recv_timeout` or `try_recv`; events stay readable after shutdown.
    pub fn events(&self) -> &Receiver<Event> {
        &self.events
    }

    /// The next event: waits up to `timeout` (forever when None); None on timeout, or when the
    /// engine is shut down and every event has been read.
    pub fn next_event(&self, timeout: Option<Duration>) -> Option<Event> {
        match timeout {
            None => self.events.recv().ok(),
            Some(t) if t.is_zero() => self.events.try_recv().ok(),
            Some(t) => self.events.recv_timeout(t).ok(),
        }
    }

    /// The engine's counters.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.metrics.snapshot()
    }

    /// The publisher's counters (uploads, failed attempts, ...); None when not publishing.
    pub fn publish_metrics(&self) -> Option<PublishSnapshot> {
        self.publish_metrics.as_ref().map(|m| m.snapshot())
    }

    /// Stops accepting recordings, stops every open one with `other` (keeping all audio already
    /// pushed), finalizes them, waits for their files to be synced, and joins the threads.
    /// Their events stay in the channel. Idempotent; control thread only.
    pub fn shutdown(&self) {
        // Taking the queues under the lock means no `record` is half-way through registering.
        let queues = self
            .writers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if queues.is_none() {
            return;
        }
        self.closing.store(true, Ordering::Release);
        drop(queues);
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown();
    }
}
