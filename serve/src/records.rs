//! The record table: what the control API knows about each recording, and how one starts.
//!
//! Starting a recording happens here, on the control side, because it allocates and makes
//! system calls: the options are validated by the core, the engine creates the file, a UDP port
//! is taken from the pool and bound, the RTP window is allocated, and the finished session is
//! handed to its receive thread. The engine's events find their record by `filename`. A record
//! with a page to call is written to the durable webhook outbox ([`crate::outbox`]) before the
//! API answers, so a crash cannot lose where its results go.

use crate::beep::BeepSender;
use crate::ingest::{Command, IngestThread, Phase, Session, SessionShared};
use crate::outbox::{Entry, Outbox};
use crate::stream::{RtpStream, StreamConfig};
use crate::webhook::{resolve, Destinations};
use callrec::{Codec, Engine, Reason, RecordOptions, RecorderHandle};
use crossbeam_channel::Receiver;
use serde_json::{Map, Value};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use url::Url;

/// A request the API refuses: HTTP status, the field at fault, and why.
#[derive(Debug)]
pub struct Refusal {
    /// The HTTP status.
    pub status: u16,
    /// The request field at fault (e.g. `record.seconds_max_duration`), when there is one.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl Refusal {
    /// A 400 naming `field`.
    pub fn bad(field: &str, message: impl Into<String>) -> Refusal {
        Refusal {
            status: 400,
            field: Some(field.to_string()),
            message: message.into(),
        }
    }

    /// Any status without a field.
    pub fn status(status: u16, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            field: None,
            message: message.into(),
        }
    }
}

/// The `media` object of a POST.
#[derive(Clone, Copy, Debug)]
pub struct Media {
    /// The call's codec.
    pub codec: Codec,
    /// The audio payload type.
    pub payload_type: u8,
    /// The telephone-event payload type.
    pub telephone_event_payload_type: Option<u8>,
}

impl Media {
    /// Parses `media` (absent: PCMA on payload type 8, telephone-events on 101).
    pub fn from_json(value: Option<&Value>) -> Result<Media, Refusal> {
        let empty = Map::new();
        let map = match value {
            None => &empty,
            Some(Value::Object(m)) => m,
            Some(_) => return Err(Refusal::bad("media", "must be a JSON object")),
        };
        let mut codec = Codec::Alaw;
        let mut payload_type = None;
        let mut event_pt = Some(101);
        for (key, value) in map {
            let field = format!("media.{}", printable(key));
            match key.as_str() {
                "codec" => {
                    codec = value
                        .as_str()
                        .and_then(Codec::from_name)
                        .ok_or_else(|| Refusal::bad(&field, "must be \"alaw\" or \"ulaw\""))?
                }
                "payload_type" => payload_type = Some(payload_type_of(value, &field)?),
                "telephone_event_payload_type" => {
                    event_pt = match value {
                        Value::Null => None,
                        v => Some(payload_type_of(v, &field)?),
                    }
                }
                _ => return Err(Refusal::bad(&field, "is not a media property")),
            }
        }
        let payload_type = payload_type.unwrap_or(match codec {
            Codec::Alaw => 8,
            Codec::Ulaw => 0,
        });
        if event_pt == Some(payload_type) {
            return Err(Refusal::bad(
                "media.telephone_event_payload_type",
                "must differ from payload_type",
            ));
        }
        Ok(Media {
            codec,
            payload_type,
            telephone_event_payload_type: event_pt,
        })
    }
}

fn payload_type_of(value: &Value, field: &str) -> Result<u8, Refusal> {
    value
        .as_u64()
        .filter(|&pt| pt <= 127)
        .map(|pt| pt as u8)
        .ok_or_else(|| Refusal::bad(field, "must be an RTP payload type, 0 to 127"))
}

/// A key as it may appear in a field name: bounded, control characters escaped.
fn printable(key: &str) -> String {
    callrec::json::printable(key, callrec::json::QUOTE_CHARS)
}

/// Parses a request body as strict JSON: a key given twice anywhere is refused (DESIGN §1), as
/// the core does for options.
fn parse_body(body: &[u8]) -> Result<Value, Refusal> {
    let text = std::str::from_utf8(body).map_err(|_| Refusal::bad("body", "is not valid UTF-8"))?;
    callrec::json::parse(text).map_err(|e| match e {
        callrec::json::JsonError::Duplicate(key) => {
            Refusal::bad("body", format!("the key {key} is given twice"))
        }
        callrec::json::JsonError::Syntax(m) => Refusal::bad("body", format!("not valid JSON: {m}")),
    })
}

/// One recording as the control API sees it.
#[derive(Debug)]
pub struct Record {
    /// The record id (random, URL-safe).
    pub id: String,
    /// The store filename.
    pub filename: String,
    /// The UDP port its RTP goes to.
    pub port: u16,
    /// Its receive thread.
    pub thread: usize,
    /// Stops it from any thread.
    pub handle: RecorderHandle,
    /// Phase and RTP counters.
    pub shared: Arc<SessionShared>,
    /// Where *finished* is POSTed.
    pub next_page: Option<Url>,
    /// Where *available* is POSTed.
    pub available_page: Option<Url>,
    /// The *finished* action result JSON, once finished.
    pub finished: Option<String>,
    /// The *available* action result JSON, once available.
    pub available: Option<String>,
    /// The stop reason, once finished.
    pub reason: Option<Reason>,
}

/// Every record, by id and by filename.
#[derive(Debug, Default)]
pub struct Table {
    /// By record id.
    pub by_id: HashMap<String, Record>,
    /// Record id by filename.
    pub by_filename: HashMap<String, String>,
    /// Finished records, oldest first (forgotten beyond the limit).
    pub done: VecDeque<String>,
}

impl Table {
    /// Forgets the oldest finished records beyond `keep`.
    pub fn prune(&mut self, keep: usize) {
        while self.done.len() > keep {
            if let Some(id) = self.done.pop_front() {
                if let Some(r) = self.by_id.remove(&id) {
                    self.by_filename.remove(&r.filename);
                }
            }
        }
    }
}

/// The pool of RTP ports.
#[derive(Debug)]
pub struct Ports {
    free: Mutex<VecDeque<u16>>,
    freed: Receiver<u16>,
    first: u16,
    per_thread: usize,
}

impl Ports {
    /// Ports `first..=last`, split into `threads` consecutive blocks; `freed` returns them.
    pub fn new(first: u16, last: u16, threads: usize, freed: Receiver<u16>) -> Ports {
        let count = (last - first) as usize + 1;
        Ports {
            free: Mutex::new((first..=last).collect()),
            freed,
            first,
            per_thread: count.div_ceil(threads),
        }
    }

    /// The receive thread serving `port`.
    pub fn thread_of(&self, port: u16) -> usize {
        (port - self.first) as usize / self.per_thread
    }

    /// Ports per thread (the last block may be shorter).
    pub fn per_thread(&self) -> usize {
        self.per_thread
    }

    /// Binds a free port on `address` (a port another program holds is skipped and retried later).
    pub fn bind(&self, address: IpAddr) -> Result<(u16, UdpSocket), Refusal> {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        free.extend(self.freed.try_iter());
        for _ in 0..free.len() {
            let Some(port) = free.pop_front() else { break };
            match UdpSocket::bind(SocketAddr::new(address, port)) {
                Ok(socket) => {
                    socket.set_nonblocking(true).map_err(|e| {
                        Refusal::status(500, format!("cannot set up the RTP socket: {e}"))
                    })?;
                    return Ok((port, socket));
                }
                Err(e) => {
                    tracing::warn!(port, error = %e, "RTP port unavailable; skipping it");
                    free.push_back(port);
                }
            }
        }
        Err(Refusal::status(503, "no RTP port is free (--rtp-ports)"))
    }

    /// Gives back a port that was bound but not used.
    pub fn give_back(&self, port: u16) {
        self.free
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(port);
    }

    /// Ports free now.
    pub fn free_count(&self) -> usize {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        free.extend(self.freed.try_iter());
        free.len()
    }
}

/// What starting a recording needs.
pub struct Starter<'a> {
    /// The engine.
    pub engine: &'a Engine,
    /// The port pool.
    pub ports: &'a Ports,
    /// The receive threads.
    pub threads: &'a [IngestThread],
    /// Where RTP sockets bind.
    pub rtp_address: IpAddr,
    /// The jitter window in samples.
    pub window_samples: u32,
    /// The app's base URL.
    pub app_url: Option<&'a Url>,
    /// Where webhooks may go.
    pub destinations: &'a Destinations,
    /// The durable webhook outbox: a record with a page is in it before the API answers.
    pub outbox: &'a Outbox,
}

/// Reads a page object's `url` (`{"url": ...}`), resolved.
fn page_url(
    record: &Map<String, Value>,
    page: &str,
    app_url: Option<&Url>,
    destinations: &Destinations,
) -> Result<Option<Url>, Refusal> {
    let field = format!("record.{page}.url");
    match record.get(page) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => match m.get("url") {
            Some(Value::String(u)) => resolve(app_url, u)
                .and_then(|url| destinations.check(&url).map(|()| Some(url)))
                .map_err(|e| Refusal::bad(&field, e)),
            _ => Err(Refusal::bad(&field, "must be a string")),
        },
        Some(_) => Err(Refusal::bad(
            &format!("record.{page}"),
            "must be an object {\"url\": ...}",
        )),
    }
}

/// A `POST /v1/records` body, parsed and validated: nothing is started yet.
#[derive(Debug)]
pub struct RecordRequest {
    /// The record action's options, validated by the core.
    pub options: RecordOptions,
    /// The call's media.
    pub media: Media,
    /// Where *finished* is POSTed, resolved.
    pub next_page: Option<Url>,
    /// Where *available* is POSTed, resolved.
    pub available_page: Option<Url>,
}

impl RecordRequest {
    /// Parses a POST body (`{"record": {...}, "media": {...}}`); relative page URLs resolve
    /// against `app_url`, and a page whose destination is refused (a literal private, loopback,
    /// link-local... address, see [`Destinations::check`]) is refused. A refusal names the field
    /// at fault.
    pub fn parse(
        body: &[u8],
        app_url: Option<&Url>,
        destinations: &Destinations,
    ) -> Result<RecordRequest, Refusal> {
        let value = parse_body(body)?;
        let Value::Object(body) = value else {
            return Err(Refusal::bad("body", "must be a JSON object"));
        };
        for key in body.keys() {
            if key != "record" && key != "media" {
                return Err(Refusal::bad(
                    &printable(key),
                    "is not a request property (use record and media)",
                ));
            }
        }
        let record = match body.get("record") {
            Some(Value::Object(m)) => m,
            Some(_) => return Err(Refusal::bad("record", "must be a JSON object")),
            None => return Err(Refusal::bad("record", "is required")),
        };
        let options = RecordOptions::from_map(record)
            .map_err(|e| Refusal::bad(&format!("record.{}", e.field), e.message))?;
        let media = Media::from_json(body.get("media"))?;
        let next_page = page_url(record, "next_page", app_url, destinations)?;
        let available_page = page_url(record, "recording_available_page", app_url, destinations)?;
        Ok(RecordRequest {
            options,
            media,
            next_page,
            available_page,
        })
    }
}

/// Parses the body of `POST /v1/records/{id}/digit` (`{"digit": "#"}`): the digit, upper case.
pub fn parse_digit(body: &[u8]) -> Result<char, Refusal> {
    let value = parse_body(body)?;
    let digit = value
        .as_object()
        .filter(|m| m.len() == 1)
        .and_then(|m| m.get("digit"))
        .ok_or_else(|| Refusal::bad("digit", "the body must be {\"digit\": \"#\"}"))?;
    let mut chars = digit.as_str().unwrap_or("").chars();
    match (chars.next(), chars.next()) {
        (Some(d), None) if callrec::options::is_dtmf_digit(d.to_ascii_uppercase()) => {
            Ok(d.to_ascii_uppercase())
        }
        _ => Err(Refusal::bad("digit", "must be one of 0-9, *, #, A-D")),
    }
}

impl Starter<'_> {
    /// Parses a POST body and starts its recording; the record is returned for the table.
    pub fn start(&self, body: &[u8]) -> Result<Record, Refusal> {
        let RecordRequest {
            options,
            media,
            next_page,
            available_page,
        } = RecordRequest::parse(body, self.app_url, self.destinations)?;
        let (port, socket) = self.ports.bind(self.rtp_address)?;
        let started = self.engine.record(&options, media.codec);
        let (recorder, handle) = match started {
            Ok(r) => r,
            Err(e) => {
                self.ports.give_back(port);
                return Err(match e {
                    callrec::Error::Options(e) => {
                        Refusal::bad(&format!("record.{}", e.field), e.message)
                    }
                    callrec::Error::ShutDown => Refusal::status(503, "the server is shutting down"),
                    e => {
                        tracing::error!(error = %e, "cannot start a recording");
                        Refusal::status(500, "cannot start the recording (see the server log)")
                    }
                });
            }
        };
        let id = new_record_id();
        let shared = Arc::new(SessionShared::default());
        let filename = recorder.filename().to_string();
        if next_page.is_some() || available_page.is_some() {
            // Durable before the 201: after a crash, the restarted serve still knows the pages.
            let entry = Entry::new(
                &filename,
                &id,
                next_page.as_ref().map(Url::as_str),
                available_page.as_ref().map(Url::as_str),
            );
            if let Err(e) = self.outbox.add(entry) {
                tracing::error!(%filename, error = %e, "cannot save the webhook outbox entry");
                // The recorder, dropped here, stops the recording (`other`); no page is called.
                drop(recorder);
                let _ = self.outbox.discard(&filename);
                self.ports.give_back(port);
                return Err(Refusal::status(
                    500,
                    "cannot save the record's webhooks (see the server log)",
                ));
            }
        }
        let stream = RtpStream::new(StreamConfig {
            codec: media.codec,
            payload_type: media.payload_type,
            telephone_event_payload_type: media.telephone_event_payload_type,
            window_samples: self.window_samples,
        });
        let thread = self.ports.thread_of(port);
        let session = Box::new(Session {
            socket,
            port,
            stream,
            recorder,
            shared: shared.clone(),
            record_id: id.clone(),
            beep: options
                .beep_on_start
                .then(|| BeepSender::new(media.codec, media.payload_type)),
        });
        if self.threads[thread].send(Command::Start(session)).is_err() {
            // The thread is gone (shutting down): the recorder dropped with the command stops
            // with `other`, and its events still come.
            return Err(Refusal::status(503, "the server is shutting down"));
        }
        tracing::info!(record_id = %id, port, %filename, codec = media.codec.name(), "recording started");
        Ok(Record {
            id,
            filename,
            port,
            thread,
            handle,
            shared,
            next_page,
            available_page,
            finished: None,
            available: None,
            reason: None,
        })
    }
}

/// 128 random bits, hex.
fn new_record_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The phase as the API reports it: the RTP side's, then finished and available.
pub fn phase_name(record: &Record) -> &'static str {
    if record.available.is_some() {
        "available"
    } else if record.finished.is_some() {
        "finished"
    } else {
        match record.shared.phase() {
            Phase::Stopped => "stopping",
            p => p.as_str(),
        }
    }
}
