//! The durable webhook outbox: each record's page URLs and results on disk, so that a serve
//! killed mid-call (kill -9, power loss) and restarted on the same store still calls the app.
//!
//! Why in serve and per recording: the engine recovers an orphaned `.part` after a crash and
//! reports it (*finished*, then *available*, `"recovered": true`), and the publisher resumes
//! uploads and reports *available*, but neither knows the app's pages, which only the POST gave.
//! So before the `201`, serve writes `<store>/.callrec-webhooks/<key>.json` (fsynced with its
//! directory) holding the recording's `filename`, its page URLs and, per event, the result once
//! known and whether it was delivered. The key is the filename with its `/` made `-`: a
//! recording has one entry, and a restarted serve finds it by the `filename` of the engine's
//! event. An entry is updated (atomically: a temporary file, fsync, rename, fsync of the
//! directory) when a result arrives and when a delivery succeeds, and removed when every page it
//! names has been delivered. A delivery that gives up stays, so the next start delivers it again.
//!
//! At start ([`Outbox::open`]) every entry is read back: results stored but not delivered are
//! delivered again (same `Callrec-Delivery` id), and the rest wait for the engine's event. The
//! one gap the engine cannot close is a recording whose *finished* was stored but whose
//! *available* never came and never will (a store without publishing, after a crash between the
//! rename and the fsync): serve fsyncs the file and its directory itself and reports it available
//! with the stored result, `file_available` set.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The outbox directory inside the store root.
pub const OUTBOX_DIR: &str = ".callrec-webhooks";

/// The two events, each with its page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Page {
    /// *finished*, to `next_page`.
    Next,
    /// *available*, to `recording_available_page`.
    Available,
}

impl Page {
    /// The page's name in the record action.
    pub fn name(self) -> &'static str {
        match self {
            Page::Next => "next_page",
            Page::Available => "recording_available_page",
        }
    }

    /// The event's name in a delivery id.
    fn event(self) -> &'static str {
        match self {
            Page::Next => "finished",
            Page::Available => "available",
        }
    }
}

/// One page of an entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageState {
    /// Where the result is POSTed (none: nothing to deliver).
    pub url: Option<String>,
    /// The action result JSON, once the event came.
    pub result: Option<String>,
    /// True once the app answered 2xx.
    pub delivered: bool,
}

impl PageState {
    /// True when nothing is left to do for this page.
    fn done(&self) -> bool {
        self.url.is_none() || self.delivered
    }
}

/// One recording's webhooks, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The recording's `filename` (the key).
    pub filename: String,
    /// The record id the API gave it.
    pub record_id: String,
    /// *finished* and `next_page`.
    pub next_page: PageState,
    /// *available* and `recording_available_page`.
    pub recording_available_page: PageState,
}

impl Entry {
    /// A new entry for a recording that has just started.
    pub fn new(
        filename: &str,
        record_id: &str,
        next_page: Option<&str>,
        available_page: Option<&str>,
    ) -> Entry {
        Entry {
            filename: filename.to_string(),
            record_id: record_id.to_string(),
            next_page: PageState {
                url: next_page.map(str::to_string),
                ..PageState::default()
            },
            recording_available_page: PageState {
                url: available_page.map(str::to_string),
                ..PageState::default()
            },
        }
    }

    /// The state of `page`.
    pub fn page(&self, page: Page) -> &PageState {
        match page {
            Page::Next => &self.next_page,
            Page::Available => &self.recording_available_page,
        }
    }

    fn page_mut(&mut self, page: Page) -> &mut PageState {
        match page {
            Page::Next => &mut self.next_page,
            Page::Available => &mut self.recording_available_page,
        }
    }

    /// True when every page it names has been delivered.
    pub fn done(&self) -> bool {
        self.next_page.done() && self.recording_available_page.done()
    }

    /// Stored results not delivered yet, in order (next_page first).
    pub fn pending(&self) -> Vec<Page> {
        [Page::Next, Page::Available]
            .into_iter()
            .filter(|&p| {
                let s = self.page(p);
                s.url.is_some() && s.result.is_some() && !s.delivered
            })
            .collect()
    }
}

/// The stable id of the delivery of `page` for the recording `filename` (the
/// `Callrec-Delivery` header): the same on every retry and after every restart.
pub fn delivery_id(filename: &str, page: Page) -> String {
    let key = key_of(filename);
    let stem = key.strip_suffix(".wav").unwrap_or(&key);
    format!("{stem}-{}", page.event())
}

/// A filename as a file name: the store prefix dropped, `/` made `-`, anything unexpected `_`.
fn key_of(filename: &str) -> String {
    let relative = filename
        .trim_start_matches('/')
        .trim_start_matches(callrec::store::RECORDINGS_DIR.trim_start_matches('/'))
        .trim_start_matches('/');
    relative
        .chars()
        .map(|c| match c {
            '/' => '-',
            c if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-' => c,
            _ => '_',
        })
        .collect()
}

/// The outbox: the entries on disk, and in memory by filename.
#[derive(Debug)]
pub struct Outbox {
    dir: PathBuf,
    entries: Mutex<HashMap<String, Entry>>,
}

impl Outbox {
    /// Opens (creating, 0700) `<store_root>/.callrec-webhooks` and reads every entry back. An
    /// entry that cannot be read is reported and left where it is, never deleted.
    pub fn open(store_root: &Path) -> io::Result<(Outbox, Vec<Entry>)> {
        let dir = store_root.join(OUTBOX_DIR);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        let mut loaded = Vec::new();
        for item in fs::read_dir(&dir)? {
            let path = item?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.ends_with(".tmp") {
                // A write that a crash interrupted: the entry it replaced is still in place.
                let _ = fs::remove_file(&path);
                continue;
            }
            if !name.ends_with(".json") {
                continue;
            }
            let read = fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|bytes| {
                    serde_json::from_slice::<Entry>(&bytes).map_err(|e| e.to_string())
                });
            match read {
                Ok(entry) if format!("{}.json", key_of(&entry.filename)) == name => {
                    loaded.push(entry)
                }
                Ok(_) => {
                    tracing::error!(path = %path.display(), "webhook outbox entry names another recording; left in place")
                }
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "cannot read a webhook outbox entry; left in place")
                }
            }
        }
        loaded.sort_by(|a, b| a.filename.cmp(&b.filename));
        let entries = loaded
            .iter()
            .map(|e| (e.filename.clone(), e.clone()))
            .collect();
        Ok((
            Outbox {
                dir,
                entries: Mutex::new(entries),
            },
            loaded,
        ))
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn path_of(&self, filename: &str) -> PathBuf {
        self.dir.join(format!("{}.json", key_of(filename)))
    }

    /// Writes `entry` durably (a temporary file, fsync, rename, fsync of the directory).
    fn write(&self, entry: &Entry) -> io::Result<()> {
        let path = self.path_of(&entry.filename);
        let tmp = path.with_extension("json.tmp");
        let json = serde_json::to_vec(entry).map_err(io::Error::other)?;
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(&json)?;
        file.sync_all()?;
        fs::rename(&tmp, &path)?;
        File::open(&self.dir)?.sync_all()
    }

    /// Removes an entry's file, durably.
    fn remove(&self, filename: &str) -> io::Result<()> {
        match fs::remove_file(self.path_of(filename)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        File::open(&self.dir)?.sync_all()
    }

    /// Stores a new recording's entry, durably (before the API answers `201`).
    pub fn add(&self, entry: Entry) -> io::Result<()> {
        self.write(&entry)?;
        self.entries().insert(entry.filename.clone(), entry);
        Ok(())
    }

    /// Forgets an entry (its recording did not start after all).
    pub fn discard(&self, filename: &str) -> io::Result<()> {
        self.entries().remove(filename);
        self.remove(filename)
    }

    /// Stores the result of `page`'s event, durably; the entry as it is now, or None when the
    /// recording has no entry (not started by this serve, or no page to call). A result already
    /// stored is kept (the engine reports an event once; a second one is a restart's repeat).
    pub fn set_result(&self, filename: &str, page: Page, result: &str) -> Option<Entry> {
        let mut entries = self.entries();
        let entry = entries.get_mut(filename)?;
        let state = entry.page_mut(page);
        if state.result.is_none() {
            state.result = Some(result.to_string());
            if let Err(e) = self.write(entry) {
                // Delivery still happens in this run; only a crash before it would lose it.
                tracing::error!(filename, error = %e, "cannot save a result in the webhook outbox");
            }
        }
        Some(entry.clone())
    }

    /// Records a successful delivery, durably; removes the entry once every page is delivered.
    pub fn delivered(&self, filename: &str, page: Page) {
        let mut entries = self.entries();
        let Some(entry) = entries.get_mut(filename) else {
            return;
        };
        entry.page_mut(page).delivered = true;
        let saved = if entry.done() {
            entries.remove(filename);
            self.remove(filename)
        } else {
            self.write(entry)
        };
        if let Err(e) = saved {
            // The worst case is a second delivery after a restart, with the same delivery id.
            tracing::error!(filename, error = %e, "cannot update the webhook outbox");
        }
    }

    /// Gives up `page` for good (its event will never come); removes the entry when nothing
    /// else is left.
    pub fn drop_page(&self, filename: &str, page: Page) {
        let mut entries = self.entries();
        let Some(entry) = entries.get_mut(filename) else {
            return;
        };
        entry.page_mut(page).url = None;
        let saved = if entry.done() {
            entries.remove(filename);
            self.remove(filename)
        } else {
            self.write(entry)
        };
        if let Err(e) = saved {
            tracing::error!(filename, error = %e, "cannot update the webhook outbox");
        }
    }

    /// The entry of `filename`, if any.
    pub fn get(&self, filename: &str) -> Option<Entry> {
        self.entries().get(filename).cloned()
    }

    /// Entries on disk (for `/metrics` and tests).
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    /// True when no entry is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The *available* result derived from a stored *finished* one: the same with `file_available`
/// true. Used only for a recording that finished (and was stored) before a crash without
/// publishing, after serve has fsynced its file and directory; None when the result is not
/// the engine's (it always writes `"file_available":false` exactly once).
pub fn available_from_finished(finished: &str) -> Option<String> {
    const FALSE: &str = "\"file_available\":false";
    (finished.matches(FALSE).count() == 1)
        .then(|| finished.replacen(FALSE, "\"file_available\":true", 1))
}

/// The *finished* result derived from an *available* one (`file_available` false): for a
/// recording whose *finished* event reached the publisher's journal but not this outbox before
/// a crash (the publisher then reports only *available* after the restart).
pub fn finished_from_available(available: &str) -> Option<String> {
    const TRUE: &str = "\"file_available\":true";
    (available.matches(TRUE).count() == 1)
        .then(|| available.replacen(TRUE, "\"file_available\":false", 1))
}

/// Makes a finished recording durable: fsyncs the file and its directory (as the engine does
/// before *available*). For an entry whose *available* the crashed run never reported.
pub fn sync_recording(store_root: &Path, filename: &str) -> io::Result<()> {
    let path = store_root.join(filename.trim_start_matches('/'));
    File::open(&path)?.sync_all()?;
    match path.parent() {
        Some(dir) => File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_store(name: &str) -> PathBuf {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).expect("random");
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let dir = std::env::temp_dir().join(format!("callrec-outbox-{name}-{hex}"));
        fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    const FILE: &str = "/rest_api/recordings/2026/11/23/14_35_03_04f01fb92e8913a8.62100.wav";
    const FINISHED: &str = r#"{"action":"record","result":{"id":"","filename":"x","file_available":false,"contains_sound":true,"seconds_duration":1.0,"reason":"other","recovered":true}}"#;

    #[test]
    fn delivery_ids_are_stable_and_distinct_per_event() {
        assert_eq!(
            delivery_id(FILE, Page::Next),
            "2026-11-23-14_35_03_04f01fb92e8913a8.62100-finished"
        );
        assert_eq!(
            delivery_id(FILE, Page::Available),
            "2026-11-23-14_35_03_04f01fb92e8913a8.62100-available"
        );
    }

    #[test]
    fn an_entry_survives_a_restart_until_both_pages_are_delivered() {
        let store = temp_store("restart");
        let (outbox, loaded) = Outbox::open(&store).expect("open");
        assert!(loaded.is_empty());
        outbox
            .add(Entry::new(
                FILE,
                "r1",
                Some("http://a/n"),
                Some("http://a/v"),
            ))
            .expect("add");
        // A crash here: the reopened outbox has the URLs and no result yet.
        let (outbox, loaded) = Outbox::open(&store).expect("reopen");
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].next_page.url.as_deref(), Some("http://a/n"));
        assert!(loaded[0].pending().is_empty());
        let entry = outbox
            .set_result(FILE, Page::Next, FINISHED)
            .expect("known");
        assert_eq!(entry.pending(), vec![Page::Next]);
        // A crash before the delivery: the result is back, pending.
        let (outbox, loaded) = Outbox::open(&store).expect("reopen");
        assert_eq!(loaded[0].pending(), vec![Page::Next]);
        assert_eq!(loaded[0].next_page.result.as_deref(), Some(FINISHED));
        outbox.delivered(FILE, Page::Next);
        let (outbox, loaded) = Outbox::open(&store).expect("reopen");
        assert!(loaded[0].next_page.delivered);
        assert!(loaded[0].pending().is_empty());
        let available = available_from_finished(FINISHED).expect("engine JSON");
        outbox.set_result(FILE, Page::Available, &available);
        outbox.delivered(FILE, Page::Available);
        assert!(outbox.is_empty());
        let (_, loaded) = Outbox::open(&store).expect("reopen");
        assert!(loaded.is_empty(), "both delivered: the entry is gone");
        assert_eq!(
            fs::read_dir(store.join(OUTBOX_DIR)).expect("dir").count(),
            0
        );
        fs::remove_dir_all(&store).expect("cleanup");
    }

    #[test]
    fn a_page_without_url_needs_no_delivery() {
        let store = temp_store("nourl");
        let (outbox, _) = Outbox::open(&store).expect("open");
        outbox
            .add(Entry::new(FILE, "r1", Some("http://a/n"), None))
            .expect("add");
        outbox.set_result(FILE, Page::Next, FINISHED);
        outbox.delivered(FILE, Page::Next);
        assert!(outbox.is_empty());
        fs::remove_dir_all(&store).expect("cleanup");
    }

    #[test]
    fn a_dropped_page_removes_an_entry_with_nothing_else_left() {
        let store = temp_store("drop");
        let (outbox, _) = Outbox::open(&store).expect("open");
        outbox
            .add(Entry::new(
                FILE,
                "r1",
                Some("http://a/n"),
                Some("http://a/v"),
            ))
            .expect("add");
        outbox.set_result(FILE, Page::Next, FINISHED);
        outbox.delivered(FILE, Page::Next);
        assert_eq!(Outbox::open(&store).expect("reopen").1.len(), 1);
        outbox.drop_page(FILE, Page::Available);
        assert!(outbox.is_empty());
        assert!(Outbox::open(&store).expect("reopen").1.is_empty());
        fs::remove_dir_all(&store).expect("cleanup");
    }

    #[test]
    fn an_unreadable_entry_is_kept_and_a_torn_write_removed() {
        let store = temp_store("garbage");
        let dir = store.join(OUTBOX_DIR);
        fs::create_dir_all(&dir).expect("dir");
        fs::write(dir.join("junk.json"), b"{not json").expect("write");
        fs::write(dir.join("x.json.tmp"), b"{").expect("write");
        let (outbox, loaded) = Outbox::open(&store).expect("open");
        assert!(loaded.is_empty());
        assert!(outbox.is_empty());
        assert!(dir.join("junk.json").exists(), "never deleted");
        assert!(!dir.join("x.json.tmp").exists());
        fs::remove_dir_all(&store).expect("cleanup");
    }

    #[test]
    fn results_are_derived_only_from_the_engines_json() {
        let available = available_from_finished(FINISHED).expect("derived");
        assert!(available.contains("\"file_available\":true"));
        assert!(!available.contains("\"file_available\":false"));
        assert_eq!(
            finished_from_available(&available).as_deref(),
            Some(FINISHED)
        );
        assert_eq!(available_from_finished("{}"), None);
    }
}
