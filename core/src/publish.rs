//! The publisher: makes finished recordings *available* in an object store, through a durable
//! outbox on local disk (DESIGN §12).
//!
//! Core has no network code (DESIGN §7), so this module holds everything about publishing except
//! the wire: the configuration ([`PublishConfig`], an `s3://bucket/prefix` URL), the
//! [`ObjectSink`] trait an object-store client implements, the outbox journal and the publisher
//! threads. The S3 client lives in the `callrec-publish` crate (Apache Arrow's `object_store`);
//! hosts (CLI, C, Python, serve) build the sink from the URL and start the engine with
//! [`crate::Engine::with_object_sink`] (or simply `callrec_publish::start_engine`).
//!
//! How a recording flows when publishing:
//! 1. The writer finalizes the file and sends *finished*; the engine routes the writers' and the
//!    sync thread's events through the publisher's coordinator thread instead of to the host.
//! 2. The coordinator appends the recording's result to the outbox journal
//!    (`<store>/.callrec-outbox/journal`) and fsyncs it, then forwards *finished* to the host:
//!    a recording the host has heard of is always in the outbox. Journal records are batched, so
//!    one `fdatasync` covers every recording finished in the same moment.
//! 3. The sync thread fsyncs the file locally as without publishing; its *available* is not
//!    forwarded but turned into an upload job.
//! 4. An upload worker (`concurrency` threads) puts the file at `prefix/` + filename (no leading
//!    `/`) with the result fields and a content checksum as object metadata, then reads the
//!    object's size and checksum back (HEAD) and compares them with the local file. Only then
//!    does the host get *available* (`file_available: true`); the local copy is removed when
//!    `keep_local` is false; the journal records the recording as done.
//! 5. A failed attempt is counted and retried with exponential backoff (1 s doubling to 30 s)
//!    until `max_age` has passed since the recording finished; then the host gets *available*
//!    with reason `error`, `file_available: false` and `publish_error` naming the cause, and the
//!    local file is kept.
//!
//! On engine start, every recording the journal holds as not done is uploaded again (a PUT of
//! the same bytes to the same key is harmless, so a crash between the PUT and the journal's
//! "done" costs only a second upload) and reported *available* once in this run; its *finished*
//! was already reported by the run that wrote it. On shutdown, every recording waiting gets at
//! least one attempt; those still failing stay in the outbox for the next engine on the store.
//!
//! One engine publishes from a store at a time: the journal has a single writer. The publisher
//! takes an exclusive lock (`flock`) on `<store>/.callrec-outbox/lock` before it reads the
//! journal and holds it until its thread ends (shutdown); the file names the holder (process id,
//! program, host) so that a second engine's error can say who has the store. The lock dies with
//! its process, so a crashed engine never blocks the next one. Engines that do not publish do not
//! take it: several processes may record into one store (each `.part` is locked on its own, see
//! [`crate::store`]).

use crate::result::{Event, EventKind, Reason, RecordingResult};
use crossbeam_channel::{select, Receiver, Sender};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where the outbox lives inside the store root.
pub const OUTBOX_DIR: &str = ".callrec-outbox";

/// The first retry waits this long; each next one twice as long, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A journal with nothing pending is emptied once it has grown past this.
const JOURNAL_COMPACT_BYTES: u64 = 1 << 20;
/// Error messages reported to the host are cut to this many characters.
const MAX_MESSAGE_CHARS: usize = 300;

/// Publishing to an S3-compatible object store (`EngineConfig::publish`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishConfig {
    /// `s3://bucket/prefix` (the prefix may be empty). Endpoint, region and credentials come
    /// from the standard S3 environment (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`; plain HTTP only with `AWS_ALLOW_HTTP=true`).
    pub url: String,
    /// Keep the local file after a verified upload. Default true.
    pub keep_local: bool,
    /// How long after *finished* a failing upload is retried before it is reported as an
    /// error. Default 1 hour.
    pub max_age: Duration,
    /// Uploads in flight at once. Default 32 (sized by the churn benchmark: uploads wait on
    /// the network and the store, not the CPU).
    pub concurrency: usize,
}

impl PublishConfig {
    /// Publishing to `url` with the defaults.
    pub fn new(url: impl Into<String>) -> PublishConfig {
        PublishConfig {
            url: url.into(),
            keep_local: true,
            max_age: Duration::from_secs(3600),
            concurrency: 32,
        }
    }

    /// Checks every field; the error names the field.
    pub fn validate(&self) -> Result<PublishTarget, String> {
        if self.concurrency == 0 || self.concurrency > 256 {
            return Err(format!(
                "publish concurrency must be 1..=256, not {}",
                self.concurrency
            ));
        }
        if self.max_age.is_zero() || self.max_age > Duration::from_secs(30 * 24 * 3600) {
            return Err("publish max_age must be between 0 and 30 days".into());
        }
        PublishTarget::parse(&self.url)
    }
}

/// A bucket and a key prefix, parsed from `s3://bucket/prefix`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishTarget {
    /// The bucket.
    pub bucket: String,
    /// The key prefix without leading or trailing `/` (may be empty).
    pub prefix: String,
}

impl PublishTarget {
    /// Parses `s3://bucket/prefix`. The error names the field and never echoes a long value.
    pub fn parse(url: &str) -> Result<PublishTarget, String> {
        let Some(rest) = url.strip_prefix("s3://") else {
            return Err("publish must be an s3://bucket/prefix URL".into());
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        // S3 bucket naming rules: 3-63 lower-case letters, digits, dots and hyphens.
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
            && bucket.as_bytes()[0].is_ascii_alphanumeric()
            && bucket.as_bytes()[bucket.len() - 1].is_ascii_alphanumeric();
        if !bucket_ok {
            return Err(
                "publish: the bucket must be 3-63 characters of a-z, 0-9, '.' and '-'".into(),
            );
        }
        let prefix = prefix.trim_matches('/');
        if prefix.len() > 512
            || prefix
                .chars()
                .any(|c| c.is_control() || c == '\\' || c == '?' || c == '#')
            || prefix
                .split('/')
                .any(|p| p.is_empty() || p == "." || p == "..")
                && !prefix.is_empty()
        {
            return Err(
                "publish: the prefix must be at most 512 printable characters in non-empty \
                 '/'-separated parts, without '.', '..', '\\', '?' or '#'"
                    .into(),
            );
        }
        Ok(PublishTarget {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }

    /// The object key of a recording: `prefix/` + its filename without the leading `/`.
    pub fn key(&self, filename: &str) -> String {
        let name = filename.trim_start_matches('/');
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.prefix)
        }
    }
}

/// One upload for an [`ObjectSink`].
#[derive(Debug)]
pub struct Upload<'a> {
    /// The object key (see [`PublishTarget::key`]).
    pub key: &'a str,
    /// The local file, uploaded as it is (encrypted recordings stay encrypted).
    pub path: &'a Path,
    /// The result fields to store as object metadata: `id`, `reason`, `seconds_duration`,
    /// `contains_sound` and, for `bargein`, `barge_in_digit`.
    pub metadata: &'a [(&'static str, String)],
}

/// What an object store holds under a key: its size and the content checksum stored with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredObject {
    /// The object's size in bytes.
    pub size: u64,
    /// The content checksum recorded with the object (the sink's choice of algorithm and
    /// spelling, e.g. hex SHA-256); None when the object carries none.
    pub checksum: Option<String>,
}

/// An object-store client, as the publisher uses it. Both calls block (they run on the
/// publisher's upload threads, never on a writer or the real-time side); an error is a short
/// message naming the cause (never a credential).
pub trait ObjectSink: Send + Sync {
    /// Uploads the file (multipart when large) with its metadata and a content checksum;
    /// returns the size and checksum of what was sent. Overwriting an existing object with the
    /// same key is expected (re-uploads after a crash are idempotent).
    fn put(&self, upload: &Upload<'_>) -> Result<StoredObject, String>;
    /// Reads the object's size and checksum back without its body (HEAD); None if absent.
    fn head(&self, key: &str) -> Result<Option<StoredObject>, String>;
    /// Where objects go, for messages, e.g. `s3://bucket` (keys are appended after a `/`).
    fn describe(&self) -> String;
}

/// The publisher's counters.
#[derive(Debug, Default)]
pub struct PublishMetrics {
    uploaded: AtomicU64,
    failed_attempts: AtomicU64,
    gave_up: AtomicU64,
    pending: AtomicU64,
    journal_unreadable: AtomicU64,
}

/// A snapshot of the publisher's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PublishSnapshot {
    /// Recordings uploaded, verified and reported available.
    pub uploaded: u64,
    /// Upload attempts that failed (each retry counts).
    pub failed_attempts: u64,
    /// Recordings reported as `error` after `max_age` of failures.
    pub gave_up: u64,
    /// Recordings in the outbox now.
    pub pending: u64,
    /// Outbox journal lines that could not be parsed (kept in `journal.unreadable`).
    pub journal_unreadable: u64,
}

impl PublishMetrics {
    /// The counters now.
    pub fn snapshot(&self) -> PublishSnapshot {
        PublishSnapshot {
            uploaded: self.uploaded.load(Ordering::Relaxed),
            failed_attempts: self.failed_attempts.load(Ordering::Relaxed),
            gave_up: self.gave_up.load(Ordering::Relaxed),
            pending: self.pending.load(Ordering::Relaxed),
            journal_unreadable: self.journal_unreadable.load(Ordering::Relaxed),
        }
    }
}

/// The object metadata of a result (the Aculab fields a web app needs without the file).
pub fn result_metadata(result: &RecordingResult) -> Vec<(&'static str, String)> {
    let mut meta = vec![
        ("id", result.id.clone()),
        ("reason", result.reason.as_str().to_string()),
        (
            "seconds_duration",
            format!("{:.1}", result.seconds_duration()),
        ),
        ("contains_sound", result.contains_sound.to_string()),
    ];
    if let (Reason::Bargein, Some(d)) = (result.reason, result.barge_in_digit) {
        meta.push(("barge_in_digit", d.to_string()));
    }
    meta
}

fn reason_from_name(name: &str) -> Option<Reason> {
    Reason::ALL.into_iter().find(|r| r.as_str() == name)
}

/// A message for the host: bounded, without control characters.
fn clean_message(message: &str) -> String {
    message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_MESSAGE_CHARS)
        .collect()
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The lock file inside the outbox directory (see the module docs).
pub const LOCK_FILE: &str = "lock";
/// The holder description read from a lock file is cut to this many characters.
const MAX_HOLDER_CHARS: usize = 200;

/// Takes the store's outbox lock: the open lock file, locked exclusively until it is closed.
/// When another engine holds it, the error (kind `ResourceBusy`) names the store and the holder.
fn lock_outbox(store_root: &Path, dir: &Path) -> io::Result<File> {
    let path = dir.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = io::Read::read_to_string(&mut file, &mut holder);
            let holder = clean_message(holder.trim());
            let holder: String = holder.chars().take(MAX_HOLDER_CHARS).collect();
            let holder = if holder.is_empty() {
                "another engine".to_string()
            } else {
                format!("another engine ({holder})")
            };
            return Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                format!(
                    "the store {} is already publishing from {holder}: one engine per store \
                     publishes (its outbox has a single writer)",
                    store_root.display()
                ),
            ));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(e),
    }
    // Ours: say who holds it, for the next engine's message (best effort: the lock itself is
    // what excludes, not this text).
    let program = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let holder = format!(
        "pid {}, {program}, host {}\n",
        std::process::id(),
        host.trim()
    );
    file.set_len(0)?;
    io::Write::write_all(&mut &file, holder.as_bytes())?;
    Ok(file)
}

/// The outbox journal: one JSON line per record, `add` (fsynced before *finished*) and `done`.
struct Journal {
    dir: PathBuf,
    file: File,
    len: u64,
    /// The store's outbox lock, held as long as the journal is open.
    _lock: File,
}

impl Journal {
    /// Takes the store's outbox lock, opens the journal, returns the recordings not yet done
    /// (in finish order) and the number of lines it could not parse, and rewrites the journal
    /// to hold only the pending ones. A line it cannot parse (not JSON, an unknown `op`, a
    /// field missing or of the wrong type, or a torn last line from a crash mid-append) is
    /// never dropped: it is first appended, as it was, to `journal.unreadable` beside it
    /// (fsynced), and reported (a line on stderr and the `journal_unreadable` counter).
    #[allow(clippy::type_complexity)]
    fn open(store_root: &Path) -> io::Result<(Journal, Vec<(RecordingResult, SystemTime)>, u64)> {
        let dir = store_root.join(OUTBOX_DIR);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        let lock = lock_outbox(store_root, &dir)?;
        let path = dir.join("journal");
        let mut pending: Vec<(RecordingResult, SystemTime)> = Vec::new();
        let mut unreadable: Vec<Vec<u8>> = Vec::new();
        match File::open(&path) {
            Ok(f) => {
                let mut done = HashSet::new();
                let mut adds = Vec::new();
                for line in io::BufReader::new(f).split(b'\n') {
                    let line = line?;
                    if line.is_empty() {
                        continue;
                    }
                    let v = serde_json::from_slice::<serde_json::Value>(&line).ok();
                    let parsed = v.as_ref().and_then(|v| match v["op"].as_str() {
                        Some("add") => entry_from_json(v).map(|entry| adds.push(entry)),
                        Some("done") => v["filename"].as_str().map(|f| {
                            done.insert(f.to_string());
                        }),
                        _ => None,
                    });
                    if parsed.is_none() {
                        unreadable.push(line);
                    }
                }
                let mut seen = HashSet::new();
                for entry in adds {
                    if !done.contains(&entry.0.filename) && seen.insert(entry.0.filename.clone()) {
                        pending.push(entry);
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if !unreadable.is_empty() {
            let kept = dir.join("journal.unreadable");
            let mut out = OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .open(&kept)?;
            let mut text = Vec::new();
            for line in &unreadable {
                text.extend_from_slice(line);
                text.push(b'\n');
            }
            out.write_all(&text)?;
            out.sync_all()?;
            eprintln!(
                "callrec: the publish journal held {} line(s) it cannot parse; kept in {}",
                unreadable.len(),
                kept.display()
            );
        }
        // Rewrite the journal with what is pending, atomically.
        let tmp = dir.join("journal.tmp");
        let mut out = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        let mut text = String::new();
        for (result, since) in &pending {
            text.push_str(&add_line(result, *since));
        }
        out.write_all(text.as_bytes())?;
        out.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        File::open(&dir)?.sync_all()?;
        let file = OpenOptions::new().append(true).open(&path)?;
        Ok((
            Journal {
                dir,
                file,
                len: text.len() as u64,
                _lock: lock,
            },
            pending,
            unreadable.len() as u64,
        ))
    }

    /// Appends and makes durable (one `fdatasync` for the whole batch).
    fn append_durable(&mut self, text: &str) -> io::Result<()> {
        self.file.write_all(text.as_bytes())?;
        self.len += text.len() as u64;
        self.file.sync_data()
    }

    /// Appends without waiting for the disk: losing a `done` only costs a second upload.
    fn append(&mut self, text: &str) -> io::Result<()> {
        self.len += text.len() as u64;
        self.file.write_all(text.as_bytes())
    }

    /// Empties a long journal when nothing is pending.
    fn compact_if_idle(&mut self, pending: usize) -> io::Result<()> {
        if pending == 0 && self.len > JOURNAL_COMPACT_BYTES {
            self.file.set_len(0)?;
            self.len = 0;
            File::open(&self.dir)?.sync_all()?;
        }
        Ok(())
    }
}

fn add_line(result: &RecordingResult, since: SystemTime) -> String {
    let mut v = serde_json::json!({
        "op": "add",
        "filename": result.filename,
        "id": result.id,
        "contains_sound": result.contains_sound,
        "samples": result.samples,
        "reason": result.reason.as_str(),
        "frames_dropped": result.frames_dropped,
        "since_ms": unix_ms(since),
    });
    if let Some(d) = result.barge_in_digit {
        v["barge_in_digit"] = d.to_string().into();
    }
    if result.recovered {
        v["recovered"] = true.into();
    }
    if let Some(legs) = &result.legs {
        let leg = |l: &crate::result::LegResult| {
            serde_json::json!([
                l.contains_sound,
                l.speech_samples,
                l.samples_filled,
                l.frames_dropped
            ])
        };
        v["legs"] = serde_json::json!([leg(&legs.caller), leg(&legs.other)]);
    }
    let mut line = v.to_string();
    line.push('\n');
    line
}

fn done_line(filename: &str) -> String {
    let mut line = serde_json::json!({"op": "done", "filename": filename}).to_string();
    line.push('\n');
    line
}

/// A two-leg recording's per-leg fields as [`add_line`] stores them.
fn legs_from_json(v: &serde_json::Value) -> Option<crate::result::LegsResult> {
    let leg = |l: &serde_json::Value| {
        Some(crate::result::LegResult {
            contains_sound: l[0].as_bool()?,
            speech_samples: l[1].as_u64()?,
            samples_filled: l[2].as_u64()?,
            frames_dropped: l[3].as_u64()?,
        })
    };
    Some(crate::result::LegsResult {
        caller: leg(&v[0])?,
        other: leg(&v[1])?,
    })
}

fn entry_from_json(v: &serde_json::Value) -> Option<(RecordingResult, SystemTime)> {
    let result = RecordingResult {
        id: v["id"].as_str()?.to_string(),
        filename: v["filename"].as_str()?.to_string(),
        file_available: false,
        contains_sound: v["contains_sound"].as_bool()?,
        samples: v["samples"].as_u64()?,
        reason: reason_from_name(v["reason"].as_str()?)?,
        barge_in_digit: v["barge_in_digit"].as_str().and_then(|s| s.chars().next()),
        frames_dropped: v["frames_dropped"].as_u64().unwrap_or(0),
        publish_error: None,
        recovered: v["recovered"].as_bool().unwrap_or(false),
        legs: legs_from_json(&v["legs"]),
    };
    let since = UNIX_EPOCH + Duration::from_millis(v["since_ms"].as_u64()?);
    Some((result, since))
}

/// A recording in the outbox.
struct Entry {
    result: RecordingResult,
    since: SystemTime,
    attempts: u32,
    /// Ready to upload: its local fsync is done (or it came from the journal).
    synced: bool,
}

/// An upload job for a worker.
struct Job {
    filename: String,
    result: RecordingResult,
}

/// What a worker reports back.
struct Outcome {
    filename: String,
    result: Result<(), String>,
}

/// Starts the publisher: opens the outbox (resuming what it holds), spawns the coordinator and
/// the upload workers. Returns the sender the writers and the sync thread send their events to,
/// and the coordinator's thread (it ends once every such sender is gone and the outbox has had
/// its last attempts).
pub(crate) fn spawn(
    store_root: &Path,
    config: &PublishConfig,
    sink: Arc<dyn ObjectSink>,
    host_events: Sender<Event>,
    metrics: Arc<PublishMetrics>,
) -> io::Result<(Sender<Event>, JoinHandle<()>)> {
    let target = PublishTarget::parse(&config.url).map_err(io::Error::other)?;
    let (journal, resumed, unreadable) = Journal::open(store_root)?;
    metrics
        .journal_unreadable
        .fetch_add(unreadable, Ordering::Relaxed);
    let (intake_tx, intake_rx) = crossbeam_channel::unbounded();
    let (job_tx, job_rx) = crossbeam_channel::unbounded::<Job>();
    let (outcome_tx, outcome_rx) = crossbeam_channel::unbounded();
    let mut workers = Vec::with_capacity(config.concurrency);
    for n in 0..config.concurrency {
        let worker = Worker {
            jobs: job_rx.clone(),
            outcomes: outcome_tx.clone(),
            sink: sink.clone(),
            target: target.clone(),
            store_root: store_root.to_path_buf(),
            keep_local: config.keep_local,
        };
        workers.push(
            std::thread::Builder::new()
                .name(format!("callrec-upload-{n}"))
                .spawn(move || worker.run())?,
        );
    }
    drop(outcome_tx);
    let mut coordinator = Coordinator {
        journal,
        pending: HashMap::new(),
        retries: BinaryHeap::new(),
        in_flight: 0,
        host_events,
        jobs: Some(job_tx),
        metrics,
        max_age: config.max_age,
        closing: false,
    };
    for (result, since) in resumed {
        coordinator.admit(result, since, true);
    }
    // Set before the engine is handed out, so a host that waits for an empty outbox (e.g.
    // `callrec publish`) never sees zero before the resumed recordings are reported.
    coordinator
        .metrics
        .pending
        .store(coordinator.pending.len() as u64, Ordering::Relaxed);
    let thread = std::thread::Builder::new()
        .name("callrec-publisher".into())
        .spawn(move || {
            coordinator.run(intake_rx, outcome_rx);
            for w in workers {
                let _ = w.join();
            }
        })?;
    Ok((intake_tx, thread))
}

struct Coordinator {
    journal: Journal,
    pending: HashMap<String, Entry>,
    retries: BinaryHeap<Reverse<(Instant, String)>>,
    in_flight: usize,
    host_events: Sender<Event>,
    jobs: Option<Sender<Job>>,
    metrics: Arc<PublishMetrics>,
    max_age: Duration,
    closing: bool,
}

impl Coordinator {
    fn run(&mut self, intake: Receiver<Event>, outcomes: Receiver<Outcome>) {
        let never = crossbeam_channel::never();
        loop {
            let intake_rx = if self.closing { &never } else { &intake };
            let wait = self
                .retries
                .peek()
                .map(|Reverse((due, _))| due.saturating_duration_since(Instant::now()));
            let wait = match wait {
                Some(w) => w,
                // Closing with nothing to retry: only in-flight outcomes are left to wait for.
                None if self.closing && self.in_flight == 0 => break,
                None => Duration::from_secs(3600),
            };
            select! {
                recv(intake_rx) -> ev => match ev {
                    Ok(ev) => {
                        let mut batch = vec![ev];
                        batch.extend(intake.try_iter());
                        self.intake(batch);
                    }
                    Err(_) => self.closing = true,
                },
                recv(outcomes) -> outcome => {
                    if let Ok(outcome) = outcome {
                        self.outcome(outcome);
                    }
                }
                default(wait) => {}
            }
            self.start_due();
            let _ = self.journal.compact_if_idle(self.pending.len());
            self.metrics
                .pending
                .store(self.pending.len() as u64, Ordering::Relaxed);
        }
        self.jobs = None; // the workers end
    }

    /// Takes a batch of writer and sync-thread events.
    fn intake(&mut self, batch: Vec<Event>) {
        let mut adds = String::new();
        let mut finished = Vec::new();
        let now = SystemTime::now();
        for ev in batch {
            match ev.kind {
                // A file that could not be finalized has nothing to publish.
                EventKind::Finished if ev.result.reason == Reason::Error => finished.push(ev),
                EventKind::Finished => {
                    adds.push_str(&add_line(&ev.result, now));
                    self.admit(ev.result.clone(), now, false);
                    finished.push(ev);
                }
                EventKind::Available => {
                    let filename = ev.result.filename.clone();
                    match self.pending.get_mut(&filename) {
                        Some(entry) if ev.result.file_available => {
                            entry.synced = true;
                            self.schedule(filename, Instant::now());
                        }
                        // The local fsync failed: report it as the engine does without
                        // publishing; there is no durable file to publish.
                        _ => {
                            self.pending.remove(&filename);
                            let _ = self.journal.append(&done_line(&filename));
                            let _ = self.host_events.send(ev);
                        }
                    }
                }
            }
        }
        if !adds.is_empty() {
            // The outbox must hold a recording before the host hears it finished. If the
            // journal cannot be written the recording still publishes in this run; only a
            // crash before then would lose its upload, and the file itself stays on disk.
            let _ = self.journal.append_durable(&adds);
        }
        for ev in finished {
            let _ = self.host_events.send(ev);
        }
    }

    fn admit(&mut self, result: RecordingResult, since: SystemTime, synced: bool) {
        let filename = result.filename.clone();
        if self.pending.contains_key(&filename) {
            return;
        }
        self.pending.insert(
            filename.clone(),
            Entry {
                result,
                since,
                attempts: 0,
                synced,
            },
        );
        if synced {
            self.schedule(filename, Instant::now());
        }
    }

    fn schedule(&mut self, filename: String, due: Instant) {
        self.retries.push(Reverse((due, filename)));
    }

    /// Hands every due upload to the workers. When closing, an entry already tried once is
    /// left in the outbox for the next engine.
    fn start_due(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((due, _))) = self.retries.peek() {
            if *due > now && !self.closing {
                break;
            }
            let Some(Reverse((_, filename))) = self.retries.pop() else {
                break;
            };
            let Some(entry) = self.pending.get_mut(&filename) else {
                continue;
            };
            if self.closing && entry.attempts > 0 {
                continue;
            }
            entry.attempts += 1;
            let job = Job {
                filename,
                result: entry.result.clone(),
            };
            if let Some(jobs) = &self.jobs {
                if jobs.send(job).is_ok() {
                    self.in_flight += 1;
                }
            }
        }
    }

    fn outcome(&mut self, outcome: Outcome) {
        self.in_flight -= 1;
        let Some(entry) = self.pending.get(&outcome.filename) else {
            return;
        };
        match outcome.result {
            Ok(()) => {
                let mut result = entry.result.clone();
                result.file_available = true;
                self.metrics.uploaded.fetch_add(1, Ordering::Relaxed);
                self.finish(&outcome.filename, result);
            }
            Err(message) => {
                self.metrics.failed_attempts.fetch_add(1, Ordering::Relaxed);
                let age = entry.since.elapsed().unwrap_or_default();
                if age >= self.max_age {
                    let mut result = entry.result.clone();
                    result.reason = Reason::Error;
                    result.file_available = false;
                    result.publish_error = Some(clean_message(&message));
                    self.metrics.gave_up.fetch_add(1, Ordering::Relaxed);
                    self.finish(&outcome.filename, result);
                } else if !self.closing {
                    let backoff = FIRST_BACKOFF
                        .saturating_mul(1 << entry.attempts.saturating_sub(1).min(5))
                        .min(MAX_BACKOFF);
                    // The last retry happens at the age bound, not after it.
                    let backoff = backoff
                        .min(self.max_age - age)
                        .max(Duration::from_millis(10));
                    self.schedule(outcome.filename, Instant::now() + backoff);
                }
            }
        }
    }

    /// Reports a recording's last event. The counters are updated first, so a host that reads
    /// them after the event sees it counted.
    fn finish(&mut self, filename: &str, result: RecordingResult) {
        self.pending.remove(filename);
        self.metrics
            .pending
            .store(self.pending.len() as u64, Ordering::Relaxed);
        let _ = self.journal.append(&done_line(filename));
        let _ = self.host_events.send(Event {
            kind: EventKind::Available,
            result,
        });
    }
}

struct Worker {
    jobs: Receiver<Job>,
    outcomes: Sender<Outcome>,
    sink: Arc<dyn ObjectSink>,
    target: PublishTarget,
    store_root: PathBuf,
    keep_local: bool,
}

impl Worker {
    fn run(self) {
        for job in &self.jobs {
            let result = self.publish(&job.result);
            let _ = self.outcomes.send(Outcome {
                filename: job.filename,
                result,
            });
        }
    }

    /// Uploads and verifies one recording; removes the local copy when asked.
    fn publish(&self, result: &RecordingResult) -> Result<(), String> {
        let key = self.target.key(&result.filename);
        let path = self
            .store_root
            .join(result.filename.trim_start_matches('/'));
        let where_ = || format!("{}/{key}", self.sink.describe().trim_end_matches('/'));
        let local_size = match std::fs::metadata(&path) {
            Ok(m) => m.len(),
            // Removed after an earlier verified upload whose "done" did not reach the journal.
            Err(e) if e.kind() == io::ErrorKind::NotFound && !self.keep_local => {
                return match self.sink.head(&key) {
                    Ok(Some(_)) => Ok(()),
                    Ok(None) => Err(format!(
                        "{}: the local file is gone and the object is absent",
                        where_()
                    )),
                    Err(e) => Err(format!("{}: {e}", where_())),
                };
            }
            Err(e) => return Err(format!("cannot read {}: {e}", result.filename)),
        };
        let metadata = result_metadata(result);
        let sent = self
            .sink
            .put(&Upload {
                key: &key,
                path: &path,
                metadata: &metadata,
            })
            .map_err(|e| format!("upload to {}: {e}", where_()))?;
        let stored = self
            .sink
            .head(&key)
            .map_err(|e| format!("verify {}: {e}", where_()))?
            .ok_or_else(|| format!("verify {}: the object is absent after upload", where_()))?;
        if sent.size != local_size || stored.size != local_size {
            return Err(format!(
                "verify {}: {} bytes stored, {} sent, {local_size} local",
                where_(),
                stored.size,
                sent.size
            ));
        }
        if sent.checksum.is_none() || stored.checksum != sent.checksum {
            return Err(format!(
                "verify {}: the stored checksum differs from the file's",
                where_()
            ));
        }
        if !self.keep_local {
            std::fs::remove_file(&path)
                .map_err(|e| format!("remove the local copy of {}: {e}", result.filename))?;
        }
        Ok(())
    }
}

impl fmt::Display for PublishSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "uploaded {} failed attempts {} gave up {} pending {} journal lines unreadable {}",
            self.uploaded,
            self.failed_attempts,
            self.gave_up,
            self.pending,
            self.journal_unreadable
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outbox_keeps_a_two_leg_result() {
        let leg = |sound, speech, filled, dropped| crate::result::LegResult {
            contains_sound: sound,
            speech_samples: speech,
            samples_filled: filled,
            frames_dropped: dropped,
        };
        let mut r = RecordingResult {
            id: "x".into(),
            filename: "/rest_api/recordings/2026/11/23/a.wav".into(),
            file_available: false,
            contains_sound: true,
            samples: 8000,
            reason: Reason::Hangup,
            barge_in_digit: None,
            frames_dropped: 1,
            publish_error: None,
            recovered: false,
            legs: Some(crate::result::LegsResult {
                caller: leg(true, 4000, 0, 1),
                other: leg(false, 0, 8000, 0),
            }),
        };
        let since = UNIX_EPOCH + Duration::from_millis(1_700_000_000_000);
        for _ in 0..2 {
            let line = add_line(&r, since);
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(entry_from_json(&v), Some((r.clone(), since)));
            r.legs = None; // and a one-leg result stays without
        }
    }

    #[test]
    fn urls_parse_into_bucket_and_prefix() {
        let t = PublishTarget::parse("s3://recordings/test").unwrap();
        assert_eq!(
            (t.bucket.as_str(), t.prefix.as_str()),
            ("recordings", "test")
        );
        assert_eq!(
            t.key("/rest_api/recordings/2026/11/23/a.wav"),
            "test/rest_api/recordings/2026/11/23/a.wav"
        );
        let t = PublishTarget::parse("s3://recordings").unwrap();
        assert_eq!(t.key("/rest_api/x.wav"), "rest_api/x.wav");
        let t = PublishTarget::parse("s3://rec/a/b/").unwrap();
        assert_eq!(t.prefix, "a/b");
        for bad in [
            "http://recordings/x",
            "s3://",
            "s3://Rec/x",
            "s3://ab/x",
            "s3://rec/a//b",
            "s3://rec/../x",
            "s3://rec/a\nb",
        ] {
            let e = PublishTarget::parse(bad).unwrap_err();
            assert!(e.starts_with("publish"), "{bad:?}: {e}");
            assert!(!e.contains('\n'));
        }
    }

    #[test]
    fn config_fields_are_checked() {
        let mut c = PublishConfig::new("s3://recordings/test");
        assert!(c.validate().is_ok());
        c.concurrency = 0;
        assert!(c.validate().unwrap_err().contains("concurrency"));
        c.concurrency = 4;
        c.max_age = Duration::ZERO;
        assert!(c.validate().unwrap_err().contains("max_age"));
    }

    #[test]
    fn metadata_carries_the_result() {
        let r = RecordingResult {
            id: "call-7".into(),
            filename: "/rest_api/recordings/x.wav".into(),
            file_available: false,
            contains_sound: true,
            samples: 133_600,
            reason: Reason::Bargein,
            barge_in_digit: Some('#'),
            frames_dropped: 0,
            publish_error: None,
            recovered: false,
            legs: None,
        };
        let m: HashMap<_, _> = result_metadata(&r).into_iter().collect();
        assert_eq!(m["id"], "call-7");
        assert_eq!(m["reason"], "bargein");
        assert_eq!(m["seconds_duration"], "16.7");
        assert_eq!(m["contains_sound"], "true");
        assert_eq!(m["barge_in_digit"], "#");
    }

    #[test]
    fn journal_resumes_what_is_not_done_and_survives_a_torn_line() {
        // Removed on drop, whether the test passes or panics.
        let scratch = tempfile::Builder::new()
            .prefix("callrec-journal-")
            .tempdir()
            .unwrap();
        let root = scratch.path();
        let result = |name: &str| RecordingResult {
            id: "i".into(),
            filename: format!("/rest_api/recordings/{name}.wav"),
            file_available: false,
            contains_sound: false,
            samples: 8000,
            reason: Reason::Hangup,
            barge_in_digit: None,
            frames_dropped: 2,
            publish_error: None,
            recovered: false,
            legs: None,
        };
        {
            let (mut j, pending, _) = Journal::open(root).unwrap();
            assert!(pending.is_empty());
            let t = SystemTime::now();
            j.append_durable(&(add_line(&result("a"), t) + &add_line(&result("b"), t)))
                .unwrap();
            j.append(&done_line("/rest_api/recordings/a.wav")).unwrap();
            j.append("{\"op\":\"add\",\"filena").unwrap(); // a crash mid-append
        }
        let (_, pending, unreadable) = Journal::open(root).unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].0, result("b"));
        assert_eq!(unreadable, 1, "the torn line");
        // The rewrite kept exactly the pending one.
        let (_, again, unreadable) = Journal::open(root).unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(unreadable, 0);
    }

    /// Issue 19 (reproduction 19): a journal line that cannot be parsed is neither skipped
    /// silently nor rewritten away: it is kept, byte for byte, in `journal.unreadable`, and
    /// counted; the lines around it still count.
    #[test]
    fn journal_keeps_and_reports_lines_it_cannot_parse() {
        let scratch = tempfile::Builder::new()
            .prefix("callrec-journal-bad-")
            .tempdir()
            .unwrap();
        let root = scratch.path();
        std::fs::create_dir_all(root.join(OUTBOX_DIR)).unwrap();
        let result = |name: &str| RecordingResult {
            id: "i".into(),
            filename: format!("/rest_api/recordings/{name}.wav"),
            file_available: false,
            contains_sound: true,
            samples: 16000,
            reason: Reason::Silence,
            barge_in_digit: None,
            frames_dropped: 0,
            publish_error: None,
            recovered: false,
            legs: None,
        };
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_000);
        let bad = [
            "not json at all",
            r#"{"op":"add","filename":"/rest_api/recordings/c.wav","samples":"many"}"#,
            r#"{"op":"launch","filename":"/rest_api/recordings/d.wav"}"#,
            r#"{"op":"done"}"#,
        ];
        let text = format!(
            "{}{}\n{}\n{}{}\n{}\n{}",
            add_line(&result("a"), t),
            bad[0],
            bad[1],
            add_line(&result("b"), t),
            bad[2],
            bad[3],
            done_line("/rest_api/recordings/a.wav"),
        );
        std::fs::write(root.join(OUTBOX_DIR).join("journal"), text).unwrap();
        let (_, pending, unreadable) = Journal::open(root).unwrap();
        assert_eq!(unreadable, 4);
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].0, result("b"));
        assert_eq!(pending[0].1, t);
        let kept =
            std::fs::read_to_string(root.join(OUTBOX_DIR).join("journal.unreadable")).unwrap();
        assert_eq!(
            kept,
            bad.iter().map(|l| format!("{l}\n")).collect::<String>()
        );
        // Kept once: the next open finds the journal clean and the kept lines still there.
        let (_, again, unreadable) = Journal::open(root).unwrap();
        assert_eq!((again.len(), unreadable), (1, 0));
        let still =
            std::fs::read_to_string(root.join(OUTBOX_DIR).join("journal.unreadable")).unwrap();
        assert_eq!(still, kept);
    }
}
