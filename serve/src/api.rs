//! The HTTP control API (axum): start recordings, control them, read them, download files.
//!
//! Every route but `/v1/health` needs `Authorization: Bearer <token>` when the server has a
//! token (the scheme in any case, RFC 9110 §11.1; the token compared in constant time). Errors
//! are JSON: `{"error": "...", "field": "..."}`, the field naming the request property at fault
//! (the record options' own messages); what axum, tower-http and the router answer on their own
//! (bad path, unknown route, wrong method, too large) is turned into the same shape by the
//! outermost layer, so a client never has to parse anything else. What one request may carry is
//! bounded here: the head (`--http-max-header-bytes`, at most [`MAX_HEADERS`] headers; 431), the
//! body (`--body-limit`; a `Content-Length` above it is 413 before the body is read, so
//! `Expect: 100-continue` never gets `100 Continue`), the time between body pieces
//! (`--http-body-timeout-ms`). Downloads follow no symlink ([`crate::store_file`]).
//! Each handler's `#[utoipa::path]` attribute and the body types of [`crate::openapi`] make
//! the API's document, served at `/v1/openapi.json`.

use crate::ingest::Command;
use crate::metrics;
use crate::openapi::{
    ActionAccepted, ControlAction, CreateRequest, Created, CreatedLegs, ErrorBody, Health,
    HealthStatus, LegEndpoint, LegsStatus, RecordStatus, RtpEndpoint, RtpStatus,
};
use crate::records::{parse_digit, phase_name, Record, Refusal, Starter};
use crate::server::AppState;
use crate::stream::StreamStats;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::Value;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use subtle::ConstantTimeEq;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::services::ServeFile;
use tower_http::timeout::RequestBodyTimeoutLayer;

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        let body = match self.field {
            Some(field) => ErrorBody {
                error: format!("{field}: {}", self.message),
                field: Some(field),
            },
            None => ErrorBody {
                error: self.message,
                field: None,
            },
        };
        (status, Json(body)).into_response()
    }
}

/// The most headers a request may carry (more gets 431).
pub const MAX_HEADERS: usize = 100;

/// The API's routes over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    let guarded = Router::new()
        .route("/v1/records", post(create))
        .route("/v1/records/{id}", get(status))
        .route("/v1/records/{id}/{action}", post(action))
        .route("/rest_api/recordings/{*path}", get(download))
        .route("/metrics", get(metrics_text))
        .route_layer(middleware::from_fn(json_content_type))
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize));
    let limits = state.config.http;
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/openapi.json", get(openapi_json))
        .merge(guarded)
        .fallback(|| async { Refusal::status(404, "no such endpoint") })
        .layer(DefaultBodyLimit::max(state.config.body_limit))
        .layer(RequestBodyLimitLayer::new(state.config.body_limit))
        .layer(RequestBodyTimeoutLayer::new(limits.body_timeout))
        .layer(middleware::from_fn_with_state(state.clone(), head_limit))
        .layer(middleware::map_response(json_errors))
        .with_state(state)
}

/// The field an error status is about, when the status alone says it.
fn field_of(status: StatusCode) -> Option<&'static str> {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE | StatusCode::REQUEST_TIMEOUT => Some("body"),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => Some("headers"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => Some("Content-Type"),
        _ => None,
    }
}

/// Turns any error response that is not JSON already (axum's rejections, tower-http's 413, the
/// router's 405) into `{"error": ..., "field": ...}`, keeping its status and headers (`Allow`).
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    // The frameworks' texts are short; a long one is replaced by the status's own words.
    let text = axum::body::to_bytes(body, 1024)
        .await
        .ok()
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| {
            status
                .canonical_reason()
                .unwrap_or("error")
                .to_ascii_lowercase()
        });
    let refusal = Refusal {
        status: status.as_u16(),
        field: field_of(status).map(str::to_string),
        message: text,
    };
    let mut response = refusal.into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            response.headers_mut().append(name, value.clone());
        }
    }
    response
}

/// 431 for a request head beyond `--http-max-header-bytes` or [`MAX_HEADERS`] headers (hyper's
/// own, larger limits behind it answer a bare 431 and close).
async fn head_limit(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    // As on the wire: "NAME: VALUE\r\n" per header, plus the request line.
    let bytes = request.uri().to_string().len()
        + request.method().as_str().len()
        + 12
        + headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 4)
            .sum::<usize>();
    let max = state.config.http.max_header_bytes;
    if bytes > max || headers.len() > MAX_HEADERS {
        return Refusal {
            status: 431,
            field: Some("headers".into()),
            message: format!(
                "the request head is larger than {max} bytes or {MAX_HEADERS} headers"
            ),
        }
        .into_response();
    }
    next.run(request).await
}

/// 415 for a POST whose `Content-Type` is not JSON. A body without one, or with curl's `-d`
/// default (`application/x-www-form-urlencoded`), is read as JSON.
async fn json_content_type(request: Request, next: Next) -> Response {
    if request.method() == axum::http::Method::POST {
        if let Some(value) = request.headers().get(header::CONTENT_TYPE) {
            let mime = value
                .to_str()
                .unwrap_or("")
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            let json = mime == "application/json"
                || (mime.starts_with("application/") && mime.ends_with("+json"))
                || mime == "application/x-www-form-urlencoded";
            if !json {
                return Refusal {
                    status: 415,
                    field: Some("Content-Type".into()),
                    message: "must be application/json".into(),
                }
                .into_response();
            }
        }
    }
    next.run(request).await
}

/// The token of an `Authorization` value with the `Bearer` scheme in any case.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start_matches(' '))
}

async fn authorize(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    if let Some(token) = &state.config.token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token)
            .unwrap_or("");
        if !bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
            let mut response =
                Refusal::status(401, "a valid bearer token is required").into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            return response;
        }
    }
    next.run(request).await
}

#[utoipa::path(
    get,
    path = "/v1/health",
    tag = "server",
    summary = "Whether the server answers (no token needed)",
    responses((status = 200, description = "The server answers", body = Health))
)]
async fn health() -> Json<Health> {
    Json(Health {
        status: HealthStatus::Ok,
    })
}

#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "server",
    summary = "This document, OpenAPI 3.1 (no token needed)",
    responses((status = 200, description = "The document", body = Object, content_type = "application/json"))
)]
async fn openapi_json() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::DOCUMENT.as_str(),
    )
        .into_response()
}

fn rtp_host(state: &AppState) -> String {
    state
        .config
        .rtp_advertise
        .clone()
        .unwrap_or_else(|| state.config.rtp_address.to_string())
}

#[utoipa::path(
    post,
    path = "/v1/records",
    tag = "records",
    summary = "Start a recording: the answer names the UDP port to send the call's RTP to",
    request_body(content = CreateRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Started; waiting for RTP", body = Created,
            headers(("Location" = String, description = "`/v1/records/{record_id}`"))),
        (status = 400, description = "A bad request property, named in `field`", body = ErrorBody),
        (status = 401, description = "A valid bearer token is required", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 409, description = "Refused for what the server already did: an `aesctr` key and IV used before (`field` names it)", body = ErrorBody),
        (status = 413, description = "The body is over `--body-limit`", body = ErrorBody),
        (status = 500, description = "The file could not be created (see the server log)", body = ErrorBody),
        (status = 503, description = "No RTP port is free, the server is out of file descriptors, or it is shutting down", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn create(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, Refusal> {
    let body = body.map_err(|e| Refusal::status(e.status().as_u16(), e.body_text()))?;
    if !crate::limits::room_for_a_call(state.config.http.max_connections) {
        tracing::warn!("recording refused: out of file descriptors");
        return Err(out_of_descriptors());
    }
    let state2 = state.clone();
    // Starting creates a file and binds a socket: off the async workers.
    let created = tokio::task::spawn_blocking(move || {
        let state = state2;
        let starter = Starter {
            engine: &state.engine,
            ports: &state.ports,
            threads: &state.threads,
            rtp_address: state.config.rtp_address,
            window_samples: state.config.jitter_ms * 8,
            app_url: state.config.app_url.as_ref(),
            destinations: &state.webhooks.destinations,
            outbox: &state.outbox,
        };
        // The table is held while the recording starts, so its events find it.
        let mut table = state.table();
        let record = starter.start(&body)?;
        let answer = (
            record.id.clone(),
            record.filename.clone(),
            (record.port, record.offer),
            record.other.as_ref().map(|o| (o.port, o.offer)),
        );
        table
            .by_filename
            .insert(record.filename.clone(), record.id.clone());
        table.by_id.insert(record.id.clone(), record);
        Ok::<_, Refusal>(answer)
    })
    .await
    .map_err(|_| Refusal::status(500, "the request failed"))??;
    let (id, filename, caller, other) = created;
    let host = rtp_host(&state);
    // RTCP goes to the port after the RTP port (RFC 3550's convention; the answer says it
    // explicitly with a=rtcp so that no media server guesses).
    let endpoint = |(port, offer): (u16, Option<crate::sdp::Offer>)| {
        let session_id = u64::from_str_radix(&id[..15], 16).unwrap_or(0);
        LegEndpoint {
            rtp: RtpEndpoint {
                host: host.clone(),
                port,
                rtcp_port: port + 1,
            },
            sdp: offer.map(|offer| {
                crate::sdp::answer(&offer, &host, port, port.checked_add(1), session_id)
            }),
        }
    };
    let caller = endpoint(caller);
    let legs = other.map(|other| CreatedLegs {
        caller: caller.clone(),
        other: endpoint(other),
    });
    let body = Created {
        record_id: id.clone(),
        rtp: caller.rtp,
        filename,
        sdp: caller.sdp,
        legs,
    };
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/v1/records/{id}"))],
        Json(body),
    )
        .into_response())
}

/// One leg's RTP side for the API.
fn rtp_status(host: String, port: u16, s: &StreamStats) -> RtpStatus {
    let n = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    RtpStatus {
        host,
        port,
        rtcp_port: port + 1,
        rtcp_packets: n(&s.rtcp_packets),
        packets: n(&s.packets),
        packets_lost: n(&s.packets_lost),
        packets_late: n(&s.packets_late),
        packets_reordered: n(&s.packets_reordered),
        packets_duplicate: n(&s.packets_duplicate),
        packets_foreign: n(&s.packets_foreign),
        packets_invalid: n(&s.packets_invalid),
        samples: n(&s.samples),
        samples_concealed: n(&s.samples_concealed),
        digits: n(&s.digits),
        ssrc_changes: n(&s.ssrc_changes),
        timestamp_jumps: n(&s.timestamp_jumps),
        beep_packets_sent: n(&s.beep_packets_sent),
    }
}

fn status_json(state: &AppState, record: &Record) -> RecordStatus {
    let host = rtp_host(state);
    let rtp = rtp_status(host.clone(), record.port, &record.shared.stats);
    let legs = record.other.as_ref().map(|other| LegsStatus {
        caller: rtp.clone(),
        other: rtp_status(host, other.port, &other.shared.stats),
    });
    let samples = legs
        .as_ref()
        .map_or(rtp.samples, |l| l.caller.samples.max(l.other.samples));
    let result = record
        .available
        .as_ref()
        .or(record.finished.as_ref())
        .and_then(|j| serde_json::from_str::<Value>(j).ok());
    RecordStatus {
        record_id: record.id.clone(),
        phase: phase_name(record),
        paused: record.shared.paused(),
        seconds: (samples as f64 / 800.0).round() / 10.0,
        filename: record.filename.clone(),
        rtp,
        legs,
        action_result: result,
    }
}

fn unknown(id: &str) -> Refusal {
    let shown: String = id
        .chars()
        .take(64)
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    Refusal::status(404, format!("no record {shown:?}"))
}

#[utoipa::path(
    get,
    path = "/v1/records/{id}",
    tag = "records",
    summary = "A recording's phase, RTP counters and, once finished, its result",
    params(("id" = String, Path, description = "The record id", pattern = "^[0-9a-f]{32}$")),
    responses(
        (status = 200, description = "The record", body = RecordStatus),
        (status = 401, description = "A valid bearer token is required", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 404, description = "No such record (or forgotten: `--records-kept`)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn status(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<RecordStatus>, Refusal> {
    let table = state.table();
    let record = table.by_id.get(&id).ok_or_else(|| unknown(&id))?;
    Ok(Json(status_json(&state, record)))
}

#[utoipa::path(
    post,
    path = "/v1/records/{id}/{action}",
    tag = "records",
    summary = "Control a recording: hangup, abort, pause, resume (`digit` has its own path)",
    params(
        ("id" = String, Path, description = "The record id", pattern = "^[0-9a-f]{32}$"),
        ("action" = ControlAction, Path, description = "The action"),
    ),
    responses(
        (status = 202, description = "Handed to the recording", body = ActionAccepted),
        (status = 401, description = "A valid bearer token is required", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 404, description = "No such record, or no such action", body = ErrorBody),
        (status = 409, description = "The recording has already stopped", body = ErrorBody),
        (status = 413, description = "The body is over `--body-limit`", body = ErrorBody),
        (status = 503, description = "The server is shutting down", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn action(
    State(state): State<Arc<AppState>>,
    Path((id, action)): Path<(String, String)>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, Refusal> {
    let body = body.map_err(|e| Refusal::status(e.status().as_u16(), e.body_text()))?;
    let (port, thread, handle, stopped) = {
        let table = state.table();
        let record = table.by_id.get(&id).ok_or_else(|| unknown(&id))?;
        (
            record.port,
            record.thread,
            record.handle.clone(),
            record.handle.stopped().is_some() || record.finished.is_some(),
        )
    };
    let command = match action.as_str() {
        "abort" => None,
        "hangup" => Some(Command::Hangup(port)),
        "digit" => Some(Command::Digit(port, parse_digit(&body)?)),
        "pause" => Some(Command::Pause(port)),
        "resume" => Some(Command::Resume(port)),
        _ => {
            return Err(Refusal::status(
                404,
                "no such action (use hangup, abort, pause, resume, digit)",
            ))
        }
    };
    if stopped {
        return Err(Refusal::status(409, "the recording has already stopped"));
    }
    match command {
        None => {
            if !handle.abort() {
                return Err(Refusal::status(409, "the recording has already stopped"));
            }
        }
        Some(command) => {
            state.threads[thread]
                .send(command)
                .map_err(|_| Refusal::status(503, "the server is shutting down"))?;
        }
    }
    tracing::info!(record_id = %id, action, "control action");
    Ok((
        StatusCode::ACCEPTED,
        Json(ActionAccepted {
            record_id: id,
            action,
        }),
    )
        .into_response())
}

/// True when `path` is exactly a store name: `YYYY/MM/DD/HH_MM_SS_<16 hex>.<5 digits>.wav`.
/// Nothing else reaches the file system, so no path can leave the store.
pub fn is_recording_path(path: &str) -> bool {
    const SHAPE: &[u8] = b"dddd/dd/dd/dd_dd_dd_hhhhhhhhhhhhhhhh.ddddd.wav";
    path.len() == SHAPE.len()
        && path.bytes().zip(SHAPE).all(|(c, &s)| match s {
            b'd' => c.is_ascii_digit(),
            b'h' => c.is_ascii_hexdigit() && !c.is_ascii_uppercase(),
            s => c == s,
        })
}

#[utoipa::path(
    get,
    path = "/rest_api/recordings/{year}/{month}/{day}/{name}",
    tag = "records",
    summary = "Download a finished recording (the `filename` a record was created with)",
    params(
        ("year" = String, Path, description = "`YYYY`", pattern = "^[0-9]{4}$"),
        ("month" = String, Path, description = "`MM`", pattern = "^[0-9]{2}$"),
        ("day" = String, Path, description = "`DD`", pattern = "^[0-9]{2}$"),
        ("name" = String, Path, description = "`HH_MM_SS_<16 hex>.<5 digits>.wav`",
            pattern = r"^[0-9]{2}_[0-9]{2}_[0-9]{2}_[0-9a-f]{16}\.[0-9]{5}\.wav$"),
    ),
    responses(
        (status = 200, description = "The WAV file", body = Vec<u8>, content_type = "audio/wav"),
        (status = 206, description = "The range a `Range: bytes=...` header asked for (RFC 9110)", body = Vec<u8>, content_type = "audio/wav"),
        (status = 401, description = "A valid bearer token is required", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 404, description = "No such recording, or not finished yet", body = ErrorBody),
        (status = 416, description = "The `Range` header cannot be satisfied (or is malformed)"),
        (status = 500, description = "The recording could not be read", body = ErrorBody),
        (status = 503, description = "The server is out of file descriptors", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn download(
    State(state): State<Arc<AppState>>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    if !is_recording_path(&path) {
        return Err(Refusal::status(404, "no such recording"));
    }
    let root = state
        .engine
        .store_root()
        .join(callrec::store::RECORDINGS_DIR);
    // Only a finished file has its final name (a recording in progress is a `.part`).
    let opened = tokio::task::spawn_blocking(move || {
        crate::store_file::open_beneath(&root, &path, crate::store_file::Resolve::Openat2)
    })
    .await
    .map_err(|_| Refusal::status(500, "cannot read the recording"))?;
    let fd = match opened {
        Ok(fd) => fd,
        Err(e) if crate::limits::is_out_of_descriptors(&e) => {
            return Err(out_of_descriptors());
        }
        Err(e) => {
            tracing::debug!(error = %e, "download refused");
            return Err(Refusal::status(
                404,
                "no such recording (or not finished yet)",
            ));
        }
    };
    // Served from the descriptor just opened (through its /proc link, which names that open
    // file, not a path), so nothing can be swapped in after the checks.
    let file = std::path::PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    let mut request = axum::http::Request::builder()
        .uri("/")
        .body(Body::empty())
        .map_err(|_| Refusal::status(500, "request"))?;
    for name in [
        header::RANGE,
        header::IF_RANGE,
        header::IF_MODIFIED_SINCE,
        header::IF_UNMODIFIED_SINCE,
    ] {
        if let Some(v) = headers.get(&name) {
            request.headers_mut().insert(name, v.clone());
        }
    }
    let mime = "audio/wav".parse().expect("a valid MIME type");
    let response = ServeFile::new_with_mime(&file, &mime)
        .try_call(request)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "cannot read a recording");
            Refusal::status(500, "cannot read the recording")
        })?;
    drop(fd);
    Ok(response.map(Body::new))
}

/// The 503 for a process out of file descriptors.
pub fn out_of_descriptors() -> Refusal {
    Refusal::status(
        503,
        "the server is out of file descriptors (raise its nofile limit)",
    )
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "server",
    summary = "The server's counters, Prometheus text format 0.0.4",
    responses(
        (status = 200, description = "The counters", body = String, content_type = "text/plain"),
        (status = 401, description = "A valid bearer token is required", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
    ),
    security(("bearer" = []))
)]
async fn metrics_text(State(state): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics::render(&state),
    )
        .into_response()
}
