//! The record table: what the control API knows about each recording, and how one starts.
//!
//! Starting a recording happens here, on the control side, because it allocates and makes
//! system calls: the options are validated by the core, the engine creates the file, a UDP port
//! is taken from the pool and bound, the RTP window is allocated, and the finished session is
//! handed to its receive thread. The engine's events find their record by `filename`. A record
//! with a page to call is written to the durable webhook outbox ([`crate::outbox`]) before the
//! API answers, so a crash cannot lose where its results go.

use crate::beep::BeepSender;
use crate::ingest::{CallLeg, Command, IngestThread, Phase, Session, SessionShared};
use crate::openapi::RecordPhase;
use crate::outbox::{Entry, Outbox};
use crate::stream::{RtpStream, SourceFilter, StreamConfig};
use crate::webhook::{resolve, Destinations};
use callrec::{Codec, Engine, Reason, RecordOptions, RecorderHandle};
use crossbeam_channel::Receiver;
use serde_json::{Map, Value};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
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
    /// The only source accepted (`media.source`: "address" or "address:port"); absent, the
    /// first source sending valid RTP of these payload types is latched.
    pub source: Option<SourceFilter>,
    /// The SDP offer the media came from (`media.sdp`), to be answered in the 201.
    pub offer: Option<crate::sdp::Offer>,
}

impl Media {
    /// Parses `media` (absent: PCMA on payload type 8, telephone-events on 101). `media.sdp`,
    /// an SDP offer, gives the codec and payload types instead of `codec`, `payload_type` and
    /// `telephone_event_payload_type`.
    pub fn from_json(value: Option<&Value>) -> Result<Media, Refusal> {
        Self::parse_at(value, "media")
    }

    /// [`Media::from_json`] of the object at `at` (`media`, or `media.legs[1]`), whose name
    /// prefixes the fields a refusal names.
    fn parse_at(value: Option<&Value>, at: &str) -> Result<Media, Refusal> {
        let empty = Map::new();
        let map = match value {
            None => &empty,
            Some(Value::Object(m)) => m,
            Some(_) => return Err(Refusal::bad(at, "must be a JSON object")),
        };
        let mut codec = Codec::Alaw;
        let mut payload_type = None;
        let mut event_pt = Some(101);
        let mut source = None;
        let mut offer = None;
        for (key, value) in map {
            let field = format!("{at}.{}", printable(key));
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
                "source" => source = Some(source_of(value, &field)?),
                "sdp" => {
                    let text = value
                        .as_str()
                        .ok_or_else(|| Refusal::bad(&field, "must be an SDP offer (a string)"))?;
                    offer =
                        Some(crate::sdp::parse_offer(text).map_err(|e| Refusal::bad(&field, e))?);
                }
                _ => return Err(Refusal::bad(&field, "is not a media property")),
            }
        }
        if let Some(offer) = offer {
            for key in ["codec", "payload_type", "telephone_event_payload_type"] {
                if map.contains_key(key) {
                    return Err(Refusal::bad(
                        &format!("{at}.{key}"),
                        "is taken from media.sdp (give one or the other)",
                    ));
                }
            }
            return Ok(Media {
                codec: offer.codec,
                payload_type: offer.payload_type,
                telephone_event_payload_type: offer.telephone_event_payload_type,
                source,
                offer: Some(offer),
            });
        }
        let payload_type = payload_type.unwrap_or(match codec {
            Codec::Alaw => 8,
            Codec::Ulaw => 0,
        });
        if event_pt == Some(payload_type) {
            return Err(Refusal::bad(
                &format!("{at}.telephone_event_payload_type"),
                "must differ from payload_type",
            ));
        }
        Ok(Media {
            codec,
            payload_type,
            telephone_event_payload_type: event_pt,
            source,
            offer: None,
        })
    }
}

/// The `media` of a POST: one stream (the caller's), or `{"legs": [caller, other]}`, one stream
/// per party of a two-leg recording (DESIGN §13), each its own port, payload types and source.
pub fn call_media(value: Option<&Value>) -> Result<(Media, Option<Media>), Refusal> {
    let Some(legs) = value.and_then(Value::as_object).and_then(|m| m.get("legs")) else {
        return Ok((Media::from_json(value)?, None));
    };
    if let Some(key) = value
        .and_then(Value::as_object)
        .and_then(|m| m.keys().find(|k| *k != "legs"))
    {
        return Err(Refusal::bad(
            &format!("media.{}", printable(key)),
            "goes in each leg of media.legs",
        ));
    }
    let [caller, other] = legs.as_array().map(Vec::as_slice).unwrap_or_default() else {
        return Err(Refusal::bad(
            "media.legs",
            "must be an array of two media objects: [caller, other party]",
        ));
    };
    let caller = Media::parse_at(Some(caller), "media.legs[0]")?;
    let other = Media::parse_at(Some(other), "media.legs[1]")?;
    if other.codec != caller.codec {
        // One file, one law: transcoding one leg is not offered.
        return Err(Refusal::bad(
            "media.legs[1].codec",
            format!("must be the caller's codec ({})", caller.codec.name()),
        ));
    }
    Ok((caller, Some(other)))
}

/// Reads `media.source`: an IP address, or an IP address and port (`192.0.2.7:4000`,
/// `[2001:db8::7]:4000`).
fn source_of(value: &Value, field: &str) -> Result<SourceFilter, Refusal> {
    const WHAT: &str = "must be an IP address or address:port of the RTP sender";
    let text = value.as_str().ok_or_else(|| Refusal::bad(field, WHAT))?;
    let (ip, port) = match text.parse::<SocketAddr>() {
        Ok(a) if a.port() == 0 => return Err(Refusal::bad(field, "port must be 1 to 65535")),
        Ok(a) => (a.ip(), Some(a.port())),
        Err(_) => (
            text.parse::<IpAddr>()
                .map_err(|_| Refusal::bad(field, WHAT))?,
            None,
        ),
    };
    if ip.is_unspecified() || ip.is_multicast() {
        return Err(Refusal::bad(field, "must be a unicast address"));
    }
    Ok(SourceFilter { ip, port })
}

fn payload_type_of(value: &Value, field: &str) -> Result<u8, Refusal> {
    // A whole number written with a fraction (`8.0`) is that integer, as in JSON Schema.
    let whole = |f: f64| (f.fract() == 0.0 && (0.0..=127.0).contains(&f)).then_some(f as u64);
    value
        .as_u64()
        .or_else(|| value.as_f64().and_then(whole))
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
    /// The SDP offer of the request, answered in the 201 (`media.sdp`).
    pub offer: Option<crate::sdp::Offer>,
    /// The other party's leg of a two-leg recording (`port`, `shared` and `offer` above are
    /// the caller's).
    pub other: Option<OtherLeg>,
}

/// The other party's leg of a two-leg recording, as the control API sees it.
#[derive(Debug)]
pub struct OtherLeg {
    /// The UDP port its RTP goes to (on the caller's receive thread).
    pub port: u16,
    /// Phase and RTP counters.
    pub shared: Arc<SessionShared>,
    /// Its SDP offer (`media.legs[1].sdp`).
    pub offer: Option<crate::sdp::Offer>,
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

/// The socket receive buffer asked for on every RTP and RTCP socket, in bytes. A foreign flood
/// or a scheduling hiccup of the receive thread must not overflow the kernel's queue before the
/// thread drains it: 256 KiB holds about 1,500 20 ms G.711 packets. The kernel caps it at
/// `net.core.rmem_max` (Linux doubles what is asked for its own bookkeeping).
pub const RTP_RECEIVE_BUFFER: usize = 256 * 1024;

/// A port pair handed back by a receive thread when its session ended.
#[derive(Clone, Copy, Debug)]
pub struct Freed {
    /// The RTP port (even; the RTCP port is the next).
    pub port: u16,
    /// When the session ended: the pair rests for the quarantine from here.
    pub at: Instant,
    /// The source the ended call latched, if any: the next call on the pair never latches it.
    pub source: Option<SocketAddr>,
}

/// A bound RTP/RTCP port pair for a new record.
#[derive(Debug)]
pub struct BoundPair {
    /// The RTP port (even).
    pub port: u16,
    /// The RTP socket (non-blocking).
    pub rtp: UdpSocket,
    /// The RTCP socket on `port + 1` (non-blocking).
    pub rtcp: UdpSocket,
    /// The source the previous call on this pair latched: never latched again without
    /// `media.source` naming it.
    pub previous_source: Option<SocketAddr>,
}

#[derive(Debug)]
struct PortState {
    /// Pairs ready for a new record, by RTP port.
    free: Vec<u16>,
    /// Pairs whose call ended less than a quarantine ago.
    resting: Vec<(u16, Instant)>,
    /// The source the last call on each pair latched.
    last_source: HashMap<u16, SocketAddr>,
}

/// The pool of RTP ports: even RTP ports with the next odd port for their RTCP (RFC 3550 §11),
/// drawn at random, and resting for a quarantine after their call ends, so that media still
/// flowing from a finished call cannot land in the next call's file and ports are not
/// predictable.
#[derive(Debug)]
pub struct Ports {
    state: Mutex<PortState>,
    freed: Receiver<Freed>,
    /// The first even port of the range.
    base: u16,
    pairs: usize,
    per_thread: usize,
    quarantine: Duration,
}

impl Ports {
    /// The pairs (even port, port + 1) inside `first..=last`, split into `threads` consecutive
    /// blocks; `freed` returns them, and each rests for `quarantine` before it is drawn again.
    pub fn new(
        first: u16,
        last: u16,
        threads: usize,
        quarantine: Duration,
        freed: Receiver<Freed>,
    ) -> Ports {
        let base = first.saturating_add(first % 2);
        let pairs = Self::pairs_in(first, last);
        Ports {
            state: Mutex::new(PortState {
                free: (0..pairs).map(|i| base + 2 * i as u16).collect(),
                resting: Vec::new(),
                last_source: HashMap::new(),
            }),
            freed,
            base,
            pairs,
            per_thread: pairs.div_ceil(threads.max(1)).max(1),
            quarantine,
        }
    }

    /// How many RTP/RTCP pairs `first..=last` holds.
    pub fn pairs_in(first: u16, last: u16) -> usize {
        let base = u32::from(first) + u32::from(first % 2);
        if u32::from(last) < base + 1 {
            0
        } else {
            (u32::from(last) - base).div_ceil(2) as usize
        }
    }

    /// The receive thread serving `port`.
    pub fn thread_of(&self, port: u16) -> usize {
        usize::from(port - self.base) / 2 / self.per_thread
    }

    /// Each receive thread's block: its first RTP port and how many pairs it holds.
    pub fn blocks(&self) -> Vec<(u16, usize)> {
        (0..self.pairs)
            .step_by(self.per_thread)
            .map(|start| {
                (
                    self.base + 2 * start as u16,
                    self.per_thread.min(self.pairs - start),
                )
            })
            .collect()
    }

    /// Binds a free pair on `address`, drawn at random (a pair another program holds is
    /// skipped and retried later). Refused with 503 saying why when none is free.
    pub fn bind(&self, address: IpAddr) -> Result<BoundPair, Refusal> {
        let mut pairs = self.bind_pairs(address, 1)?;
        Ok(pairs.remove(0))
    }

    /// Binds `n` (1 or 2) free pairs served by one receive thread: the legs of a two-leg call,
    /// which that thread follows together (inactivity, hangup and pause are the call's).
    pub fn bind_pairs(&self, address: IpAddr, n: usize) -> Result<Vec<BoundPair>, Refusal> {
        let mut state = self.lock();
        let mut held = 0;
        let mut skipped = Vec::new();
        let mut bound: Vec<(u16, UdpSocket, UdpSocket)> = Vec::new();
        // Free pairs per receive thread: the first pair comes from a thread with room for all.
        let mut free_in = vec![0usize; self.pairs.div_ceil(self.per_thread).max(1)];
        for &port in &state.free {
            free_in[self.thread_of(port)] += 1;
        }
        while bound.len() < n {
            let thread = bound.first().map(|b| self.thread_of(b.0));
            let candidates: Vec<usize> = (0..state.free.len())
                .filter(|&i| {
                    let t = self.thread_of(state.free[i]);
                    thread.map_or(free_in[t] >= n, |want| t == want)
                })
                .collect();
            if candidates.is_empty() {
                break;
            }
            let mut random = [0u8; 4];
            getrandom::fill(&mut random).expect("the OS random source works");
            let i = candidates[u32::from_ne_bytes(random) as usize % candidates.len()];
            let port = state.free.swap_remove(i);
            free_in[self.thread_of(port)] -= 1;
            match bind_pair(address, port) {
                Ok((rtp, rtcp)) => bound.push((port, rtp, rtcp)),
                Err(e) if crate::limits::is_out_of_descriptors(&e) => {
                    // Not the pair's fault: it stays free, and no other pair is tried (each
                    // would fail the same way).
                    state.free.push(port);
                    state.free.extend(skipped);
                    state.free.extend(bound.iter().map(|b| b.0));
                    tracing::warn!(error = %e, "cannot bind an RTP port: out of file descriptors");
                    return Err(crate::api::out_of_descriptors());
                }
                Err(e) => {
                    tracing::warn!(port, error = %e, "RTP port pair unavailable; skipping it");
                    held += 1;
                    skipped.push(port);
                }
            }
        }
        state.free.extend(skipped);
        if bound.len() == n {
            return Ok(bound
                .into_iter()
                .map(|(port, rtp, rtcp)| BoundPair {
                    port,
                    rtp,
                    rtcp,
                    previous_source: state.last_source.get(&port).copied(),
                })
                .collect());
        }
        // Not enough: what was bound goes back (it never received anything).
        state.free.extend(bound.iter().map(|b| b.0));
        drop(bound);
        let resting = state.resting.len();
        let in_use = self.pairs - state.free.len() - resting;
        let what = if n == 1 {
            "no RTP port is free".to_string()
        } else {
            format!("no receive thread has {n} RTP ports free for the legs")
        };
        Err(Refusal::status(
            503,
            format!(
                "{what} (--rtp-ports): {in_use} in calls, {resting} resting after their call \
                 (--rtp-port-quarantine-ms), {held} held by other programs"
            ),
        ))
    }

    /// Gives back a pair that was bound but never received anything (no quarantine).
    pub fn give_back(&self, port: u16) {
        self.lock().free.push(port);
    }

    /// Pairs free now (quarantine over).
    pub fn free_count(&self) -> usize {
        self.lock().free.len()
    }

    /// The state, with the pairs given back since and those whose quarantine is over moved in.
    fn lock(&self) -> std::sync::MutexGuard<'_, PortState> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        for freed in self.freed.try_iter() {
            match freed.source {
                Some(s) => state.last_source.insert(freed.port, s),
                None => state.last_source.remove(&freed.port),
            };
            state.resting.push((freed.port, freed.at));
        }
        let now = Instant::now();
        let quarantine = self.quarantine;
        let PortState { free, resting, .. } = &mut *state;
        resting.retain(|&(port, at)| {
            let rested = now.saturating_duration_since(at) >= quarantine;
            if rested {
                free.push(port);
            }
            !rested
        });
        state
    }
}

/// Binds `port` for RTP and `port + 1` for RTCP, non-blocking, with a large receive buffer.
fn bind_pair(address: IpAddr, port: u16) -> std::io::Result<(UdpSocket, UdpSocket)> {
    let rtp = UdpSocket::bind(SocketAddr::new(address, port))?;
    let rtcp = UdpSocket::bind(SocketAddr::new(address, port + 1))?;
    for socket in [&rtp, &rtcp] {
        socket.set_nonblocking(true)?;
        // Best effort: the kernel caps it at net.core.rmem_max, and a smaller buffer still works.
        let _ = socket2::SockRef::from(socket).set_recv_buffer_size(RTP_RECEIVE_BUFFER);
    }
    Ok((rtp, rtcp))
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
    /// The call's media (the caller's leg of a two-leg call).
    pub media: Media,
    /// The other party's media (`media.legs[1]`): a two-leg recording.
    pub other: Option<Media>,
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
        let (media, other) = call_media(body.get("media"))?;
        let options = if other.is_some() {
            RecordOptions::from_map_two_legs(record)
        } else {
            RecordOptions::from_map(record)
        }
        .map_err(|e| Refusal::bad(&format!("record.{}", e.field), e.message))?;
        if other.is_none() && options.legs != callrec::Legs::Caller {
            return Err(Refusal::bad(
                "media.legs",
                "is required to record both parties: one media object per leg",
            ));
        }
        let next_page = page_url(record, "next_page", app_url, destinations)?;
        let available_page = page_url(record, "recording_available_page", app_url, destinations)?;
        Ok(RecordRequest {
            options,
            media,
            other,
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
            other,
            next_page,
            available_page,
        } = RecordRequest::parse(body, self.app_url, self.destinations)?;
        let mut pairs = self
            .ports
            .bind_pairs(self.rtp_address, 1 + usize::from(other.is_some()))?;
        let ports: Vec<u16> = pairs.iter().map(|p| p.port).collect();
        let give_back = |pairs: Vec<BoundPair>| {
            drop(pairs);
            for &port in &ports {
                self.ports.give_back(port);
            }
        };
        let started = match other {
            None => self
                .engine
                .record(&options, media.codec)
                .map(|(recorder, handle)| (recorder, None, handle)),
            Some(_) => self
                .engine
                .record_call(&options, media.codec)
                .map(|(caller, other)| {
                    let handle = caller.handle();
                    (caller, Some(other), handle)
                }),
        };
        // Index 0 of a two-leg call's timeline: the legs are placed by arrival from here.
        let origin = Instant::now();
        let (recorder, other_recorder, handle) = match started {
            Ok(r) => r,
            Err(e) => {
                give_back(pairs);
                return Err(match e {
                    // The options passed the core's validation in `parse`: what the engine
                    // refuses now depends on what it already did (an aesctr key and IV used
                    // before), a conflict with the server's state, not a malformed request.
                    callrec::Error::Options(e) => Refusal {
                        status: 409,
                        field: Some(format!("record.{}", e.field)),
                        message: e.message,
                    },
                    callrec::Error::ShutDown => Refusal::status(503, "the server is shutting down"),
                    callrec::Error::Io { source, .. }
                        if crate::limits::is_out_of_descriptors(&source) =>
                    {
                        crate::api::out_of_descriptors()
                    }
                    e => {
                        tracing::error!(error = %e, "cannot start a recording");
                        Refusal::status(500, "cannot start the recording (see the server log)")
                    }
                });
            }
        };
        let id = new_record_id();
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
                // The recorders, dropped here, stop the recording (`other`); no page is called.
                drop((recorder, other_recorder));
                let _ = self.outbox.discard(&filename);
                give_back(pairs);
                return Err(Refusal::status(
                    500,
                    "cannot save the record's webhooks (see the server log)",
                ));
            }
        }
        let thread = self.ports.thread_of(ports[0]);
        let other_pair = (pairs.len() == 2).then(|| pairs.remove(1));
        let caller_pair = pairs.remove(0);
        let leg = |partner_port: u16| CallLeg {
            origin,
            partner_port,
            // Longer than the jitter window and any stall of a sender (or of a loaded host's
            // scheduler) in mid-talkspurt: a leg moved on is placed again by arrival when it
            // resumes, and a stall mistaken for a pause would shift its audio by the stall's
            // rounding (the live test once saw one sample after a 260 ms limit).
            quiet_after: Duration::from_millis(u64::from(self.window_samples / 8) + 1000),
        };
        let caller_shared = Arc::new(SessionShared::default());
        let caller = self.session(
            caller_pair,
            &media,
            recorder,
            caller_shared.clone(),
            &id,
            options.beep_on_start,
            other_pair.as_ref().map(|p| leg(p.port)),
        );
        let mut other_leg = None;
        let mut sessions = vec![caller];
        if let (Some(pair), Some(media), Some(recorder)) = (other_pair, other, other_recorder) {
            let shared = Arc::new(SessionShared::default());
            other_leg = Some(OtherLeg {
                port: pair.port,
                shared: shared.clone(),
                offer: media.offer,
            });
            // The beep is played to the caller only (DESIGN §13).
            let partner = leg(ports[0]);
            sessions.push(self.session(pair, &media, recorder, shared, &id, false, Some(partner)));
        }
        for session in sessions {
            if self.threads[thread].send(Command::Start(session)).is_err() {
                // The thread is gone (shutting down): the recorder dropped with the command
                // stops with `other`, and its events still come.
                return Err(Refusal::status(503, "the server is shutting down"));
            }
        }
        tracing::info!(record_id = %id, port = ports[0], other_port = ?ports.get(1), %filename,
            codec = media.codec.name(), "recording started");
        Ok(Record {
            id,
            filename,
            port: ports[0],
            thread,
            handle,
            shared: caller_shared,
            next_page,
            available_page,
            finished: None,
            available: None,
            reason: None,
            offer: media.offer,
            other: other_leg,
        })
    }

    /// One leg's receive session, ready for its thread.
    #[allow(clippy::too_many_arguments)]
    fn session(
        &self,
        pair: BoundPair,
        media: &Media,
        recorder: callrec::Recorder,
        shared: Arc<SessionShared>,
        id: &str,
        beep: bool,
        leg: Option<CallLeg>,
    ) -> Box<Session> {
        let stream = RtpStream::new(StreamConfig {
            codec: media.codec,
            payload_type: media.payload_type,
            telephone_event_payload_type: media.telephone_event_payload_type,
            window_samples: self.window_samples,
        })
        .accepting(media.source, pair.previous_source);
        Box::new(Session {
            socket: pair.rtp,
            rtcp: pair.rtcp,
            port: pair.port,
            stream,
            recorder,
            shared,
            record_id: id.to_string(),
            beep: beep.then(|| BeepSender::new(media.codec, media.payload_type)),
            leg,
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
pub fn phase_name(record: &Record) -> RecordPhase {
    if record.available.is_some() {
        RecordPhase::Available
    } else if record.finished.is_some() {
        RecordPhase::Finished
    } else {
        // A two-leg call is as far as its furthest leg (one may not have sent yet).
        let phase = match &record.other {
            Some(other) if other.shared.phase() as u8 > record.shared.phase() as u8 => {
                other.shared.phase()
            }
            _ => record.shared.phase(),
        };
        match phase {
            Phase::Starting => RecordPhase::Starting,
            Phase::Beeping => RecordPhase::Beeping,
            Phase::Waiting => RecordPhase::Waiting,
            Phase::Recording => RecordPhase::Recording,
            Phase::Stopped => RecordPhase::Stopping,
        }
    }
}
