//! The publisher's logic against an in-memory object store: *available* only after a verified
//! upload, retries, the age bound, the durable outbox across engines, exactly-once reporting.
//! (The S3 client itself is tested against a real S3 server by `scripts/test-publish`.)

mod common;
use callrec::publish::{ObjectSink, StoredObject, Upload, OUTBOX_DIR};
use callrec::{Codec, Engine, EngineConfig, Event, EventKind, PublishConfig, Reason};
use common::*;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// An object's bytes and metadata.
type Object = (Vec<u8>, HashMap<String, String>);

/// An object store in memory. Its checksum is the byte sum, computed from what it was sent.
#[derive(Default)]
struct MemorySink {
    objects: Mutex<HashMap<String, Object>>,
    down: AtomicBool,
    /// Failing puts left before the store works.
    failures_left: AtomicUsize,
    puts: AtomicUsize,
    /// Stores one byte less than sent (a corrupting store).
    truncate: AtomicBool,
}

fn checksum(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| b as u64).sum::<u64>().to_string()
}

impl ObjectSink for MemorySink {
    fn put(&self, upload: &Upload<'_>) -> Result<StoredObject, String> {
        self.puts.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err("connection refused".into());
        }
        if self
            .failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err("503 Slow Down".into());
        }
        let bytes = std::fs::read(upload.path).map_err(|e| e.to_string())?;
        let sent = StoredObject {
            size: bytes.len() as u64,
            checksum: Some(checksum(&bytes)),
        };
        let mut stored = bytes;
        if self.truncate.load(Ordering::SeqCst) {
            stored.pop();
        }
        let meta = upload
            .metadata
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        self.objects
            .lock()
            .unwrap()
            .insert(upload.key.to_string(), (stored, meta));
        Ok(sent)
    }

    fn head(&self, key: &str) -> Result<Option<StoredObject>, String> {
        if self.down.load(Ordering::SeqCst) {
            return Err("connection refused".into());
        }
        Ok(self
            .objects
            .lock()
            .unwrap()
            .get(key)
            .map(|(b, _)| StoredObject {
                size: b.len() as u64,
                checksum: Some(checksum(b)),
            }))
    }

    fn describe(&self) -> String {
        "mem://recordings".into()
    }
}

fn try_publishing(
    dir: &Path,
    sink: &Arc<MemorySink>,
    configure: impl FnOnce(&mut PublishConfig),
) -> Result<Engine, callrec::Error> {
    let mut publish = PublishConfig::new("s3://recordings/calls");
    configure(&mut publish);
    Engine::with_object_sink(
        dir,
        EngineConfig {
            poll_interval: Duration::from_millis(2),
            ring_milliseconds: 30_000,
            publish: Some(publish),
            ..EngineConfig::default()
        },
        sink.clone(),
    )
}

fn publishing(
    dir: &Path,
    sink: &Arc<MemorySink>,
    configure: impl FnOnce(&mut PublishConfig),
) -> Engine {
    try_publishing(dir, sink, configure).unwrap()
}

/// Records one short call with sound and hangs up; returns its filename.
fn record_call(engine: &Engine, id: &str) -> String {
    let (mut rec, _h) = engine
        .record_json(&format!(r#"{{"id":"{id}"}}"#), Codec::Alaw)
        .unwrap();
    let audio = call(&[quiet(Codec::Alaw, 10, 1), sound(Codec::Alaw, 50, 10)]);
    // 1.2 s of audio fits the 30 s ring: pushing never drops.
    for frame in audio.chunks(FRAME) {
        rec.push(frame).unwrap();
    }
    rec.hangup();
    rec.filename().to_string()
}

fn next(engine: &Engine) -> Event {
    engine
        .next_event(Some(Duration::from_secs(60)))
        .expect("an event within 60 s")
}

fn key(filename: &str) -> String {
    format!("calls{filename}")
}

#[test]
fn available_only_after_the_object_is_stored_and_verified() {
    let dir = store("publish-ok");
    let sink = Arc::new(MemorySink::default());
    let engine = publishing(&dir, &sink, |_| {});
    let filename = record_call(&engine, "call-1");
    let finished = next(&engine);
    assert_eq!(finished.kind, EventKind::Finished);
    assert!(!finished.result.file_available);
    // The outbox holds the recording once the host has heard it finished.
    let journal = std::fs::read_to_string(dir.join(OUTBOX_DIR).join("journal")).unwrap();
    assert!(journal.contains(&filename), "{journal}");
    let available = next(&engine);
    assert_eq!(available.kind, EventKind::Available);
    assert!(available.result.file_available);
    assert_eq!(available.result.reason, Reason::Hangup);
    assert_eq!(available.result.publish_error, None);
    let local = std::fs::read(dir.join(filename.trim_start_matches('/'))).unwrap();
    let objects = sink.objects.lock().unwrap();
    let (bytes, meta) = &objects[&key(&filename)];
    assert_eq!(bytes, &local);
    assert_eq!(meta["id"], "call-1");
    assert_eq!(meta["reason"], "hangup");
    assert_eq!(meta["contains_sound"], "true");
    assert_eq!(
        meta["seconds_duration"],
        format!("{:.1}", available.result.seconds_duration())
    );
    drop(objects);
    engine.shutdown();
    assert_eq!(engine.publish_metrics().unwrap().uploaded, 1);
    assert!(engine.next_event(Some(Duration::ZERO)).is_none());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_store_down_for_a_while_delays_available_and_loses_nothing() {
    let dir = store("publish-down");
    let sink = Arc::new(MemorySink::default());
    sink.down.store(true, Ordering::SeqCst);
    let engine = publishing(&dir, &sink, |p| p.keep_local = false);
    let filename = record_call(&engine, "down");
    assert_eq!(next(&engine).kind, EventKind::Finished);
    let local = std::fs::read(dir.join(filename.trim_start_matches('/'))).unwrap();
    // Nothing is available while the store is down, however long we look.
    while sink.puts.load(Ordering::SeqCst) < 2 {
        assert!(engine.next_event(Some(Duration::from_millis(50))).is_none());
    }
    assert!(engine.next_event(Some(Duration::ZERO)).is_none());
    sink.down.store(false, Ordering::SeqCst);
    let available = next(&engine);
    assert_eq!(available.kind, EventKind::Available);
    assert!(available.result.file_available);
    assert_eq!(sink.objects.lock().unwrap()[&key(&filename)].0, local);
    // keep_local = false: the verified upload replaced the local copy.
    assert!(!dir.join(filename.trim_start_matches('/')).exists());
    let m = engine.publish_metrics().unwrap();
    assert!(m.failed_attempts >= 2, "{m:?}");
    engine.shutdown();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn failures_past_the_age_bound_are_reported_as_errors_and_the_file_is_kept() {
    let dir = store("publish-error");
    let sink = Arc::new(MemorySink::default());
    sink.down.store(true, Ordering::SeqCst);
    let engine = publishing(&dir, &sink, |p| {
        p.max_age = Duration::from_millis(1500);
        p.keep_local = false;
    });
    let filename = record_call(&engine, "err");
    assert_eq!(next(&engine).kind, EventKind::Finished);
    let reported = next(&engine);
    assert_eq!(reported.kind, EventKind::Available);
    assert_eq!(reported.result.reason, Reason::Error);
    assert!(!reported.result.file_available);
    let message = reported.result.publish_error.clone().unwrap();
    assert!(message.contains("connection refused"), "{message}");
    assert!(
        message.contains("mem://recordings/calls/rest_api/"),
        "{message}"
    );
    assert!(reported
        .result
        .action_result_json()
        .contains(r#""reason":"error","publish_error":"upload to mem://"#));
    assert!(dir.join(filename.trim_start_matches('/')).exists());
    let m = engine.publish_metrics().unwrap();
    assert_eq!((m.gave_up, m.pending), (1, 0));
    // Every attempt failed and was counted (how many fit in the age bound depends on how busy
    // the machine is; retrying itself is `transient_failures_are_retried_with_backoff`).
    assert!(m.failed_attempts >= 1, "{m:?}");
    assert_eq!(m.failed_attempts, sink.puts.load(Ordering::SeqCst) as u64);
    engine.shutdown();
    // Reported once: nothing more comes, and a new engine has nothing to resume.
    assert!(engine.next_event(Some(Duration::ZERO)).is_none());
    sink.down.store(false, Ordering::SeqCst);
    let again = publishing(&dir, &sink, |_| {});
    again.shutdown();
    assert!(again.next_event(Some(Duration::ZERO)).is_none());
    assert!(sink.objects.lock().unwrap().is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_store_that_corrupts_the_upload_never_makes_it_available() {
    let dir = store("publish-corrupt");
    let sink = Arc::new(MemorySink::default());
    sink.truncate.store(true, Ordering::SeqCst);
    let engine = publishing(&dir, &sink, |p| p.max_age = Duration::from_millis(1200));
    record_call(&engine, "corrupt");
    assert_eq!(next(&engine).kind, EventKind::Finished);
    let reported = next(&engine);
    assert_eq!(reported.result.reason, Reason::Error);
    assert!(!reported.result.file_available);
    assert!(
        reported
            .result
            .publish_error
            .as_deref()
            .unwrap()
            .contains("bytes stored"),
        "{:?}",
        reported.result.publish_error
    );
    engine.shutdown();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn transient_failures_are_retried_with_backoff() {
    let dir = store("publish-retry");
    let sink = Arc::new(MemorySink::default());
    sink.failures_left.store(2, Ordering::SeqCst);
    let engine = publishing(&dir, &sink, |_| {});
    record_call(&engine, "retry");
    assert_eq!(next(&engine).kind, EventKind::Finished);
    let available = next(&engine);
    assert!(available.result.file_available);
    assert_eq!(sink.puts.load(Ordering::SeqCst), 3);
    assert_eq!(engine.publish_metrics().unwrap().failed_attempts, 2);
    engine.shutdown();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_new_engine_resumes_the_outbox_and_reports_each_recording_once() {
    let dir = store("publish-resume");
    let down = Arc::new(MemorySink::default());
    down.down.store(true, Ordering::SeqCst);
    let first = publishing(&dir, &down, |_| {});
    let names: Vec<String> = (0..3)
        .map(|i| record_call(&first, &format!("r{i}")))
        .collect();
    for _ in 0..3 {
        assert_eq!(next(&first).kind, EventKind::Finished);
    }
    // Shut down while the store is down: each gets its attempt, then stays in the outbox.
    first.shutdown();
    assert!(first.next_event(Some(Duration::ZERO)).is_none());
    assert_eq!(first.publish_metrics().unwrap().pending, 3);

    let up = Arc::new(MemorySink::default());
    let second = publishing(&dir, &up, |_| {});
    let mut reported = Vec::new();
    for _ in 0..3 {
        let ev = next(&second);
        assert_eq!(ev.kind, EventKind::Available);
        assert!(ev.result.file_available);
        reported.push(ev.result.filename.clone());
        let i = names.iter().position(|n| *n == ev.result.filename).unwrap();
        assert_eq!(ev.result.id, format!("r{i}"));
        assert_eq!(ev.result.reason, Reason::Hangup);
    }
    second.shutdown();
    assert!(second.next_event(Some(Duration::ZERO)).is_none());
    reported.sort();
    let mut expected = names.clone();
    expected.sort();
    assert_eq!(reported, expected);
    for name in &names {
        let local = std::fs::read(dir.join(name.trim_start_matches('/'))).unwrap();
        assert_eq!(up.objects.lock().unwrap()[&key(name)].0, local);
    }
    // A third engine has nothing left to publish.
    let third = publishing(&dir, &up, |_| {});
    third.shutdown();
    assert!(third.next_event(Some(Duration::ZERO)).is_none());
    assert_eq!(up.puts.load(Ordering::SeqCst), 3);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn one_engine_publishes_from_a_store_at_a_time() {
    let dir = store("publish-lock");
    let sink = Arc::new(MemorySink::default());
    let first = publishing(&dir, &sink, |_| {});
    // A second publishing engine on the store is refused: the message names the store and the
    // holder (this process), and nothing of it started.
    let e = try_publishing(&dir, &sink, |_| {}).unwrap_err();
    let message = e.to_string();
    assert!(
        matches!(&e, callrec::Error::Io { source, .. }
            if source.kind() == std::io::ErrorKind::ResourceBusy),
        "{message}"
    );
    assert!(message.contains(&dir.display().to_string()), "{message}");
    assert!(
        message.contains(&format!("pid {},", std::process::id())),
        "{message}"
    );
    assert!(message.contains("one engine per store"), "{message}");
    // Engines that do not publish still record into the store beside it.
    let plain = Engine::new(&dir, EngineConfig::default()).unwrap();
    let plain_name = record_call(&plain, "plain");
    assert_eq!(next(&plain).kind, EventKind::Finished);
    let plain_available = next(&plain);
    assert!(plain_available.result.file_available);
    assert_eq!(plain_available.result.filename, plain_name);
    plain.shutdown();
    // The first engine is untouched by the refused one: it publishes as before.
    let filename = record_call(&first, "first");
    assert_eq!(next(&first).kind, EventKind::Finished);
    let available = next(&first);
    assert!(available.result.file_available);
    assert!(sink.objects.lock().unwrap().contains_key(&key(&filename)));
    assert!(!sink.objects.lock().unwrap().contains_key(&key(&plain_name)));
    // Once it has shut down, the store is free for the next engine.
    first.shutdown();
    let next_engine = publishing(&dir, &sink, |_| {});
    next_engine.shutdown();
    assert!(next_engine.next_event(Some(Duration::ZERO)).is_none());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn publish_without_a_sink_is_a_config_error() {
    let dir = store("publish-nosink");
    let e = Engine::new(
        &dir,
        EngineConfig {
            publish: Some(PublishConfig::new("s3://recordings/calls")),
            ..EngineConfig::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("publish"), "{e}");
    let e = Engine::new(
        &dir,
        EngineConfig {
            publish: Some(PublishConfig::new("https://x")),
            ..EngineConfig::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("s3://"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
