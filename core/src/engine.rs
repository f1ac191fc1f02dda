//! The engine: a store, writer threads, a sync thread and the events channel (DESIGN §3).
//!
//! [`Engine::record`] runs on the host's control thread: it validates the options, creates the
//! recording's directory and `.part` file, writes the WAV header, makes the session's ring and
//! hands the writer its end. Everything that allocates or makes a system call for a recording
//! happens here, before the real-time side sees it.

use crate::cipher::{CipherSpec, Mode};
use crate::g711::Codec;
use crate::metrics::{EngineMetrics, MetricsSnapshot};
use crate::options::{OptionsError, RecordOptions};
use crate::publish::{ObjectSink, PublishConfig, PublishMetrics, PublishSnapshot};
use crate::recorder::{Recorder, RecorderHandle, SAMPLE_RATE};
use crate::result::Event;
use crate::session::{audio_ring, SessionShared};
use crate::store::Store;
use crate::wav::WavFile;
use crate::writer::{run_syncer, run_writer, WriterContext, WriterSession};
use crossbeam_channel::{Receiver, Sender};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

/// How an engine runs. `EngineConfig::default()` suits most hosts.
#[derive(Clone, Debug, PartialEq)]
pub struct EngineConfig {
    /// Writer threads (each serves its share of the sessions). Default 1.
    pub writers: usize,
    /// Audio each session's ring holds, in milliseconds: how long the writer may stall before
    /// frames are lost. Default 2000.
    pub ring_milliseconds: u32,
    /// How often a writer wakes. Default 20 ms (one frame): each wake scans every session, so
    /// waking more often costs writer CPU at thousands of sessions and buys only a lower
    /// finalize latency.
    pub poll_interval: Duration,
    /// A ring is drained once it holds this many bytes (or its recording stopped). Default 4096.
    pub batch_bytes: usize,
    /// Publish every finished recording to an S3-compatible object store before reporting it
    /// *available* (DESIGN §12). Default None: *available* means fsynced locally. The engine
    /// then needs an [`ObjectSink`]: see [`Engine::with_object_sink`].
    pub publish: Option<PublishConfig>,
}

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
            Error::Config(m) => write!(f, "engine config: {m}"),
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
    closing: Arc<AtomicBool>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    publish_metrics: Option<Arc<PublishMetrics>>,
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
        if config.writers == 0 || config.writers > 256 {
            return Err(Error::Config(format!(
                "writers must be 1..=256, not {}",
                config.writers
            )));
        }
        if !(100..=60_000).contains(&config.ring_milliseconds) {
            return Err(Error::Config(format!(
                "ring_milliseconds must be 100..=60000, not {}",
                config.ring_milliseconds
            )));
        }
        let ring_bytes = config.ring_milliseconds as usize * SAMPLE_RATE as usize / 1000;
        if config.batch_bytes == 0 || config.batch_bytes > ring_bytes / 2 {
            return Err(Error::Config(format!(
                "batch_bytes must be 1..={} (half the ring), not {}",
                ring_bytes / 2,
                config.batch_bytes
            )));
        }
        if config.poll_interval.is_zero() || config.poll_interval > Duration::from_secs(1) {
            return Err(Error::Config(
                "poll_interval must be between 0 and 1 s".into(),
            ));
        }
        let store = Store::open(&store_root).map_err(|source| Error::Io {
            context: format!("cannot create the store {}", store_root.display()),
            source,
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
                            context: format!(
                                "cannot open the publish outbox in {}",
                                store_root.display()
                            ),
                            source,
                        },
                    )?;
                publisher = Some(thread);
                publish_metrics = Some(pm);
                intake
            }
            _ => event_tx,
        };
        let sync_events = event_tx.clone();
        threads.push(
            std::thread::Builder::new()
                .name("callrec-sync".into())
                .spawn(move || run_syncer(sync_rx, sync_events))
                .map_err(spawn_error)?,
        );
        for n in 0..config.writers {
            let (tx, rx) = crossbeam_channel::unbounded();
            let ctx = WriterContext {
                new_sessions: rx,
                closing: closing.clone(),
                metrics: metrics.clone(),
                events: event_tx.clone(),
                sync_jobs: sync_tx.clone(),
                poll_interval: config.poll_interval,
                batch_bytes: config.batch_bytes,
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
        drop(event_tx);
        threads.extend(publisher);
        Ok(Engine {
            store,
            config,
            metrics,
            events,
            writers: Mutex::new(Some(writers)),
            next_writer: AtomicUsize::new(0),
            closing,
            threads: Mutex::new(threads),
            publish_metrics,
        })
    }

    /// The store's root directory.
    pub fn store_root(&self) -> &Path {
        self.store.root()
    }

    /// Starts a recording of a call whose audio is in `input_codec`. Control thread only: this
    /// validates, creates the file and allocates. Returns the real-time [`Recorder`] and a
    /// [`RecorderHandle`] for aborting from other threads.
    pub fn record(
        &self,
        options: &RecordOptions,
        input_codec: Codec,
    ) -> Result<(Recorder, RecorderHandle), Error> {
        options.validate()?;
        let writers = self.writers.lock().unwrap_or_else(|p| p.into_inner());
        let Some(writers) = writers.as_ref() else {
            return Err(Error::ShutDown);
        };
        let (paths, file) = self
            .store
            .create(SystemTime::now())
            .map_err(|source| Error::Io {
                context: format!(
                    "cannot create a recording under {}",
                    self.store.root().display()
                ),
                source,
            })?;
        let file_codec = options.format.unwrap_or(input_codec);
        // CTR encrypts the file as it is written; CBC writes an ephemeral-key CTR `.part` and
        // re-encrypts it at finalize (see `cipher`).
        let (crypt, reencrypt) = match &options.encryption_cipher {
            None => (None, None),
            Some(spec) if spec.mode() == Mode::Ctr => (Some(spec.ctr()), None),
            Some(spec) => {
                let ephemeral = CipherSpec::ephemeral_ctr().map_err(|source| Error::Io {
                    context: "cannot draw an ephemeral key".into(),
                    source,
                })?;
                (Some(ephemeral.ctr()), Some((ephemeral, spec.clone())))
            }
        };
        let wav = WavFile::start(file, file_codec, crypt).map_err(|source| {
            let _ = std::fs::remove_file(&paths.part_path);
            Error::Io {
                context: format!("cannot write {}", paths.part_path.display()),
                source,
            }
        })?;
        let ring_bytes = self.config.ring_milliseconds as usize * SAMPLE_RATE as usize / 1000;
        let (producer, consumer) = audio_ring(ring_bytes);
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
            reencrypt,
        };
        let n = self.next_writer.fetch_add(1, Ordering::Relaxed) % writers.len();
        if let Err(e) = writers[n].send(session) {
            let _ = std::fs::remove_file(&e.into_inner().paths.part_path);
            return Err(Error::ShutDown);
        }
        self.metrics.start_recording();
        Ok(Recorder::new(
            options,
            input_codec,
            filename,
            shared,
            self.metrics.clone(),
            producer,
        ))
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
