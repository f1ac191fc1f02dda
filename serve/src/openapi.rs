//! The API's OpenAPI 3.1 document (`GET /v1/openapi.json`), made from the handlers' own types.
//!
//! Operators generate clients from this document and `scripts/test-openapi` checks the running
//! server against it (schemathesis), so it must not drift from the code:
//! - every response body the handlers send is one of the types here (they serialize these, not
//!   ad-hoc JSON), so a field added to an answer is a field added to the document;
//! - every route carries its `#[utoipa::path]` attribute beside its handler in [`crate::api`],
//!   and a test compares the router's routes with the document's paths;
//! - request bodies are parsed by hand (strict JSON: a key given twice is refused; the core's
//!   messages name the field), so their types here describe what that parser accepts, and a test
//!   holds every body the parser accepts to them. The parser's cross-field rules, which derive
//!   macros cannot state, are added in [`document`] as JSON Schema `not` clauses.

use crate::api;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::LazyLock;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// The download route as documented: the store name's segments (the router has one wildcard
/// route, `/rest_api/recordings/{*path}`; a path parameter cannot hold a `/`).
pub const DOWNLOAD: &str = "/rest_api/recordings/{year}/{month}/{day}/{name}";

/// The name of the bearer security scheme in the document.
pub const BEARER: &str = "bearer";

/// Every error answer's body: what is wrong, and the request property at fault when there is one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// What is wrong (starts with the field's name when there is one).
    pub error: String,
    /// The request property at fault, e.g. `record.seconds_max_duration` or `media.codec`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub field: Option<String>,
}

/// `GET /v1/health`.
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` while the server answers.
    pub status: HealthStatus,
}

/// The only health status.
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Answering.
    Ok,
}

/// Where the call's RTP goes.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RtpEndpoint {
    /// The host or address to send RTP to (`--rtp-advertise`, else `--rtp-address`).
    pub host: String,
    /// The UDP port, from `--rtp-ports` (even).
    pub port: u16,
    /// The port for the call's RTCP: the RTP port + 1.
    pub rtcp_port: u16,
}

/// `201` to `POST /v1/records`: the recording has started and waits for its RTP.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Created {
    /// The recording's path under the server: `GET` it once the recording is finished.
    #[schema(
        pattern = r"^/rest_api/recordings/[0-9]{4}/[0-9]{2}/[0-9]{2}/[0-9]{2}_[0-9]{2}_[0-9]{2}_[0-9a-f]{16}\.[0-9]{5}\.wav$"
    )]
    pub filename: String,
    /// The record id (`GET /v1/records/{id}`).
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub record_id: String,
    /// Where to send the call's RTP.
    pub rtp: RtpEndpoint,
    /// The SDP answer to hand to the media server, when the request gave `media.sdp`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub sdp: Option<String>,
    /// A two-leg recording's endpoints, one per party (`rtp` and `sdp` above are the caller's).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub legs: Option<CreatedLegs>,
}

/// Where each party's RTP goes.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct CreatedLegs {
    /// The caller's (channel 1).
    pub caller: LegEndpoint,
    /// The other party's (channel 2).
    pub other: LegEndpoint,
}

/// One party's endpoint.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct LegEndpoint {
    /// Where to send this party's RTP.
    pub rtp: RtpEndpoint,
    /// The SDP answer for this leg, when its media gave `sdp`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub sdp: Option<String>,
}

/// Where a recording is: the RTP side's phase, then finished and available.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RecordPhase {
    /// Created, no RTP yet.
    Starting,
    /// Playing the beep to the caller.
    Beeping,
    /// Waiting for the first sound.
    Waiting,
    /// Recording.
    Recording,
    /// Stopped; the file is being finalized.
    Stopping,
    /// Finalized: `action_result` holds the *finished* result.
    Finished,
    /// Available: `action_result` holds the *available* result.
    Available,
}

/// A recording's RTP side: where it listens and what it received.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RtpStatus {
    /// Beep packets sent to the caller.
    pub beep_packets_sent: u64,
    /// Digits taken from RFC 4733 telephone-events.
    pub digits: u64,
    /// The host or address RTP is sent to.
    pub host: String,
    /// Valid RTP packets received.
    pub packets: u64,
    /// Duplicates ignored.
    pub packets_duplicate: u64,
    /// Packets from a source other than the call's, ignored.
    pub packets_foreign: u64,
    /// Datagrams that are not RTP of the negotiated payload types.
    pub packets_invalid: u64,
    /// Packets whose time had already been released, dropped.
    pub packets_late: u64,
    /// Packets never received (their time became G.711 silence).
    pub packets_lost: u64,
    /// Packets put back in order within the jitter window.
    pub packets_reordered: u64,
    /// The UDP port.
    pub port: u16,
    /// RTCP packets received (on the RTCP port, or multiplexed on the RTP port), ignored.
    pub rtcp_packets: u64,
    /// The port for the call's RTCP.
    pub rtcp_port: u16,
    /// Samples released to the recorder (8,000 a second).
    pub samples: u64,
    /// Samples of G.711 silence put where packets were lost or absent.
    pub samples_concealed: u64,
    /// SSRC changes (the timeline continues).
    pub ssrc_changes: u64,
    /// Timestamp jumps that started a new timeline.
    pub timestamp_jumps: u64,
}

/// `GET /v1/records/{id}`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RecordStatus {
    /// The *available* result once available, else the *finished* result once finished, else
    /// null: `{"action": "record", "result": {...}}` as posted to the record's pages.
    #[schema(value_type = Option<Object>)]
    pub action_result: Option<Value>,
    /// The recording's path under the server.
    pub filename: String,
    /// Whether the recording is paused.
    pub paused: bool,
    /// Where the recording is.
    pub phase: RecordPhase,
    /// The record id.
    pub record_id: String,
    /// The RTP side.
    pub rtp: RtpStatus,
    /// Seconds of audio received, to a tenth (a two-leg call: the furthest leg's).
    #[schema(minimum = 0)]
    pub seconds: f64,
    /// A two-leg recording's RTP side, per party (`rtp` above is the caller's).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub legs: Option<LegsStatus>,
}

/// Each party's RTP side.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct LegsStatus {
    /// The caller's.
    pub caller: RtpStatus,
    /// The other party's.
    pub other: RtpStatus,
}

/// The control actions of `POST /v1/records/{id}/{action}` (`digit` has its own path: it takes
/// a body).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ControlAction {
    /// The call ended: stop with `hangup`.
    Hangup,
    /// Stop with `abort` (the file is deleted, as the record action's abort does).
    Abort,
    /// Pause recording (`pause_behavior` says what the paused span leaves in the file).
    Pause,
    /// Resume recording.
    Resume,
}

/// `202` to a control action: it was handed to the recording's receive thread.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ActionAccepted {
    /// The action, as given in the path (`hangup`, `abort`, `pause`, `resume`, `digit`).
    #[schema(pattern = "^(hangup|abort|pause|resume|digit)$")]
    pub action: String,
    /// The record id.
    pub record_id: String,
}

/// The body of `POST /v1/records/{id}/digit`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DigitRequest {
    /// One DTMF digit: `0-9`, `*`, `#`, `A-D` (lower case is taken as upper case).
    #[schema(pattern = "^[0-9*#A-Da-d]$")]
    pub digit: String,
}

/// The body of `POST /v1/records`: the caller's side of the call, or both sides (DESIGN §13).
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum CreateRequest {
    /// Records the caller: one RTP stream, one port.
    OneLeg(OneLegRequest),
    /// Records both parties: one RTP stream and port per leg.
    TwoLegs(TwoLegRequest),
}

/// A recording of the caller.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OneLegRequest {
    /// The record action's options (DESIGN §1), its pages included.
    pub record: RecordAction<OneLeg>,
    /// The call's media (absent: PCMA on payload type 8, telephone-events on 101).
    #[schema(nullable = false)]
    pub media: Option<MediaRequest>,
}

/// A recording of both parties of the call: a stereo file (channel 1 the caller, channel 2 the
/// other party) or both mixed into one channel.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TwoLegRequest {
    /// The record action's options (DESIGN §1), its pages included; `legs` defaults to `both`.
    pub record: RecordAction<TwoLegs>,
    /// Each party's media.
    pub media: TwoLegMedia,
}

/// The media of a two-leg recording.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TwoLegMedia {
    /// The caller's media, then the other party's: each gets its own RTP port. Both use the
    /// same codec (one file, one law).
    #[schema(min_items = 2, max_items = 2)]
    pub legs: Vec<MediaRequest>,
}

/// `legs` of a one-leg recording.
#[derive(Clone, Copy, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OneLeg {
    /// The caller only (the default).
    Caller,
}

/// `legs` of a two-leg recording.
#[derive(Clone, Copy, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TwoLegs {
    /// A stereo file: channel 1 the caller, channel 2 the other party (the default).
    Both,
    /// One channel: both parties summed with saturation.
    Mixed,
}

/// A page the server POSTs a result to: `{"url": ...}` (other properties are ignored).
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct Page {
    /// An http or https URL, or a URL relative to `--app-url`.
    pub url: String,
}

/// G.711 law names.
#[derive(Clone, Copy, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CodecName {
    /// A-law (PCMA).
    Alaw,
    /// µ-law (PCMU).
    Ulaw,
}

/// `pause_behavior` values.
#[derive(Clone, Copy, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PauseBehaviorName {
    /// The paused audio is left out.
    Skip,
    /// The paused audio is replaced by G.711 silence of the same length.
    Silence,
}

/// `encryption_cipher.type` values.
#[derive(Clone, Copy, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CipherName {
    /// AES-CBC.
    Aescbc,
    /// AES-CTR (a key and IV are never accepted twice by one server).
    Aesctr,
}

/// `encryption_cipher`: encrypt the whole file.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EncryptionCipher {
    /// The cipher.
    #[serde(rename = "type")]
    pub kind: CipherName,
    /// The AES key: 32, 48 or 64 hex digits.
    #[schema(pattern = "^([0-9a-fA-F]{32}|[0-9a-fA-F]{48}|[0-9a-fA-F]{64})$")]
    pub key: String,
    /// The IV: 32 hex digits.
    #[schema(pattern = "^[0-9a-fA-F]{32}$")]
    pub initialisation_vector: String,
}

/// The record action's options (DESIGN §1); every one is optional. The bounds are the core's
/// (`callrec::options`).
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordAction<L: ToSchema> {
    /// Which parties are recorded: `caller` with one media stream, `both` or `mixed` with
    /// `media.legs`.
    #[schema(nullable = false)]
    pub legs: Option<L>,
    /// Echoed in the result (at most 1024 bytes of UTF-8).
    #[schema(nullable = false, max_length = 1024)]
    pub id: Option<String>,
    /// Digits that stop the recording; empty for none (default `#`).
    #[schema(nullable = false, pattern = "^[0-9*#A-D]*$")]
    pub barge_in_digits: Option<String>,
    /// Stop with `duration` after this many seconds (default 60).
    #[schema(nullable = false, minimum = 1, maximum = 86400)]
    pub seconds_max_duration: Option<u64>,
    /// Stop with `silence` after this much silence once sound was heard (default 3000).
    #[schema(nullable = false, minimum = 1, maximum = 3600000)]
    pub milliseconds_max_silence: Option<u64>,
    /// How long to wait for the first sound; 0 means `milliseconds_max_silence` (default 0).
    #[schema(nullable = false, minimum = 0, maximum = 3600000)]
    pub milliseconds_max_initial_silence: Option<u64>,
    /// The file's law (default: the call's).
    #[schema(nullable = false)]
    pub format: Option<CodecName>,
    /// Play a beep to the caller before recording (default false).
    #[schema(nullable = false)]
    pub beep_on_start: Option<bool>,
    /// Stop with `filesize` when the file reaches this many bytes, header included.
    #[schema(nullable = false, minimum = 59, maximum = 4294967295_u64)]
    pub max_file_bytes: Option<u64>,
    /// Cut the silence after the last sound from the file (default false).
    #[schema(nullable = false)]
    pub trim_trailing_silence: Option<bool>,
    /// A fixed sound threshold in dBm0 instead of the adaptive detector.
    #[schema(nullable = false, minimum = -90.0, maximum = 0.0)]
    pub silence_threshold_db: Option<f64>,
    /// The beep's frequency in Hz (default 1000).
    #[schema(nullable = false, minimum = 100, maximum = 3800)]
    pub beep_frequency_hz: Option<u32>,
    /// The beep's length in milliseconds (default 250).
    #[schema(nullable = false, minimum = 20, maximum = 5000)]
    pub beep_milliseconds: Option<u32>,
    /// The beep's level in dBm0 (default -12).
    #[schema(nullable = false, minimum = -50.0, maximum = 3.0)]
    pub beep_level_dbm0: Option<f64>,
    /// Detect in-band DTMF: a barge-in tone stops the recording and is cut (default true).
    #[schema(nullable = false)]
    pub detect_dtmf: Option<bool>,
    /// Replace every detected DTMF tone in the file by silence; needs `detect_dtmf` (default
    /// false).
    #[schema(nullable = false)]
    pub mask_dtmf: Option<bool>,
    /// What a paused span leaves in the file (default `skip`).
    #[schema(nullable = false)]
    pub pause_behavior: Option<PauseBehaviorName>,
    /// Encrypt the whole file.
    #[schema(nullable = false)]
    pub encryption_cipher: Option<EncryptionCipher>,
    /// Where the *finished* result is POSTed.
    #[schema(nullable = true)]
    pub next_page: Option<Page>,
    /// Where the *available* result is POSTed.
    #[schema(nullable = true)]
    pub recording_available_page: Option<Page>,
}

/// The call's media.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MediaRequest {
    /// The call's law (default `alaw`).
    #[schema(nullable = false)]
    pub codec: Option<CodecName>,
    /// The audio's RTP payload type (default 8 for alaw, 0 for ulaw).
    #[schema(nullable = false, minimum = 0, maximum = 127)]
    pub payload_type: Option<u8>,
    /// The RFC 4733 telephone-event payload type, or null for none (default 101); never the
    /// audio's.
    #[schema(minimum = 0, maximum = 127, nullable = true)]
    pub telephone_event_payload_type: Option<u8>,
    /// The only RTP sender accepted: an IP address, or `address:port`. Absent, the first
    /// source that sends valid RTP of these payload types is latched.
    #[schema(
        nullable = false,
        pattern = r"^(127\.0\.0\.|192\.0\.2\.)([0-9]|[1-9][0-9])(:[1-9][0-9]{3})?$"
    )]
    pub source: Option<String>,
    /// The media server's SDP offer, instead of `codec` and the payload types: the answer comes
    /// back in the 201's `sdp`. The document describes a small family of offers; any offer with
    /// an RTP/AVP audio stream carrying PCMA or PCMU is accepted.
    #[schema(
        nullable = false,
        pattern = r"^v=0\r\no=- [1-9][0-9]{0,8} 1 IN IP4 127\.0\.0\.1\r\ns=-\r\nc=IN IP4 127\.0\.0\.1\r\nt=0 0\r\nm=audio [1-9][0-9]{3} RTP/AVP (0|8)( 101)?\r\n(a=rtpmap:101 telephone-event/8000\r\n)?$"
    )]
    pub sdp: Option<String>,
}

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The document as utoipa derives it from the handlers' attributes and the types above.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "callrec serve",
        description = "Record live calls from any media server over RTP; results go to the web \
                       app's pages. Every operation but health and this document needs \
                       `Authorization: Bearer TOKEN` when the server has a token. Errors are \
                       `{\"error\": ..., \"field\": ...}`."
    ),
    paths(
        api::health,
        api::openapi_json,
        api::create,
        api::status,
        api::action,
        digit,
        api::download,
        api::metrics_text
    ),
    components(schemas(ErrorBody, CreateRequest, DigitRequest, ControlAction)),
    modifiers(&Security),
    tags(
        (name = "records", description = "Start, watch and control recordings"),
        (name = "server", description = "Health, metrics and this document")
    )
)]
pub struct ApiDoc;

/// `POST /v1/records/{id}/digit` is answered by [`api::action`] (the router has one route for
/// every action); this function only carries the digit's own documentation, which has a body.
#[utoipa::path(
    post,
    path = "/v1/records/{id}/digit",
    tag = "records",
    operation_id = "digit",
    summary = "Give the recording a DTMF digit (a barge-in digit stops it)",
    params(("id" = String, Path, description = "The record id", pattern = "^[0-9a-f]{32}$")),
    request_body(content = DigitRequest, content_type = "application/json"),
    responses(
        (status = 202, description = "Handed to the recording", body = ActionAccepted),
        (status = 400, description = "Not one digit (`field`: `digit`) or not JSON (`body`)", body = ErrorBody),
        (status = 401, description = "A valid bearer token is required", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 404, description = "No such record", body = ErrorBody),
        (status = 409, description = "The recording has already stopped", body = ErrorBody),
        (status = 413, description = "The body is over `--body-limit`", body = ErrorBody),
        (status = 503, description = "The server is shutting down", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[allow(dead_code)]
fn digit() {}

/// The `not` clauses that state the request parser's cross-field rules.
fn cross_field_rules(doc: &mut Value) {
    let schemas = &mut doc["components"]["schemas"];
    // The core: `mask_dtmf` needs `detect_dtmf` (callrec::options::RecordOptions::validate).
    for record in ["RecordAction_OneLeg", "RecordAction_TwoLegs"] {
        schemas[record]["not"] = json!({
            "required": ["mask_dtmf", "detect_dtmf"],
            "properties": {"mask_dtmf": {"const": true}, "detect_dtmf": {"const": false}},
        });
    }
    // `media.legs`: both legs in one law (one file, one codec). A leg is µ-law when it says
    // so or its offer's first format is 0; A-law otherwise.
    let ulaw_leg = json!({"anyOf": [
        {"required": ["codec"], "properties": {"codec": {"const": "ulaw"}}},
        {"required": ["sdp"], "properties": {"sdp": {"pattern": "RTP/AVP 0"}}},
    ]});
    schemas["TwoLegMedia"]["not"] = json!({
        "properties": {"legs": {"allOf": [
            {"contains": ulaw_leg},
            {"contains": {"not": ulaw_leg}},
        ]}},
    });
    // `media`: the telephone-event payload type must differ from the audio's, whether each is
    // given or is its default (audio 8 for alaw, 0 for ulaw; events 101).
    let equal: Vec<Value> = (0..=127)
        .map(|pt| {
            json!({"properties": {
                "payload_type": {"const": pt},
                "telephone_event_payload_type": {"const": pt},
            }})
        })
        .collect();
    let absent = |name: &str| json!({"not": {"required": [name]}});
    let alaw_or_absent = json!({"anyOf": [
        absent("codec"),
        {"properties": {"codec": {"const": "alaw"}}},
    ]});
    // `media.sdp` replaces `codec` and the payload types.
    let with_sdp = |name: &str| json!({"not": {"required": ["sdp", name]}});
    schemas["MediaRequest"]["allOf"] = json!([
        with_sdp("codec"),
        with_sdp("payload_type"),
        with_sdp("telephone_event_payload_type"),
        {"not": {
            "required": ["payload_type", "telephone_event_payload_type"],
            "anyOf": equal,
        }},
        {"not": {"allOf": [
            absent("telephone_event_payload_type"),
            {"required": ["payload_type"], "properties": {"payload_type": {"const": 101}}},
        ]}},
        {"not": {"allOf": [
            absent("payload_type"),
            alaw_or_absent,
            {"required": ["telephone_event_payload_type"],
             "properties": {"telephone_event_payload_type": {"const": 8}}},
        ]}},
        {"not": {"allOf": [
            absent("payload_type"),
            {"required": ["codec"], "properties": {"codec": {"const": "ulaw"}}},
            {"required": ["telephone_event_payload_type"],
             "properties": {"telephone_event_payload_type": {"const": 0}}},
        ]}},
    ]);
}

/// The whole document, as JSON.
pub fn document() -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the document serializes");
    cross_field_rules(&mut doc);
    doc
}

/// The document's bytes, made once.
pub static DOCUMENT: LazyLock<String> = LazyLock::new(|| document().to_string());

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Every `.route("PATH", METHOD(handler)...)` in the crate's sources, as (method, path) with
    /// axum's `{*rest}` written as OpenAPI's `{rest}`.
    fn router_routes() -> BTreeSet<(String, String)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut routes = BTreeSet::new();
        for entry in std::fs::read_dir(&dir).expect("serve/src") {
            let path = entry.expect("a directory entry").path();
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("a source file");
            // Code only: a comment may mention a route.
            let text: String = text
                .lines()
                .filter(|line| !line.trim_start().starts_with("//"))
                .map(|line| format!("{line}\n"))
                .collect();
            for (at, _) in text.match_indices(".route(\"") {
                let rest = &text[at + ".route(\"".len()..];
                let end = rest.find('"').expect("the path's closing quote");
                let route = rest[..end].replace("{*", "{");
                // The method router: up to the call's closing parenthesis, `get(x).post(y)`.
                let call = &rest[end..rest.find("))").map_or(rest.len(), |e| e + 2)];
                let mut found = false;
                for method in ["get", "post", "put", "delete", "patch", "head", "options"] {
                    if call.contains(&format!(" {method}("))
                        || call.contains(&format!(".{method}("))
                    {
                        routes.insert((method.to_string(), route.clone()));
                        found = true;
                    }
                }
                assert!(found, "{}: no method for the route {route}", path.display());
            }
        }
        routes
    }

    fn documented(doc: &Value) -> BTreeSet<(String, String)> {
        let mut ops = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("a path item").keys() {
                ops.insert((method.clone(), path.clone()));
            }
        }
        ops
    }

    #[test]
    fn every_route_the_router_has_is_documented_and_nothing_else() {
        let routes = router_routes();
        assert!(
            routes.len() >= 7,
            "the route scan found too little: {routes:?}"
        );
        let mut documented = documented(&document());
        // The digit's documentation is its own path (it has a body); the router serves it with
        // the `{action}` route.
        assert!(documented.remove(&("post".into(), "/v1/records/{id}/digit".into())));
        // The download's one wildcard route is documented as the store name's four segments.
        assert!(documented.remove(&("get".into(), DOWNLOAD.into())));
        documented.insert(("get".into(), "/rest_api/recordings/{path}".into()));
        assert_eq!(
            routes, documented,
            "the router's routes (left) and the document's operations (right) differ"
        );
    }

    #[test]
    fn the_route_scan_sees_a_route_added_without_documentation() {
        // The scan above is what catches an undocumented route: it must see every route form
        // the router uses.
        let doc = documented(&document());
        let routes = router_routes();
        for expected in [
            ("get", "/v1/health"),
            ("get", "/v1/openapi.json"),
            ("post", "/v1/records"),
            ("get", "/v1/records/{id}"),
            ("post", "/v1/records/{id}/{action}"),
            ("get", "/rest_api/recordings/{path}"),
            ("get", "/metrics"),
        ] {
            let op = (expected.0.to_string(), expected.1.to_string());
            assert!(routes.contains(&op), "the scan missed {op:?}");
            let documented_as = match expected.1 {
                "/rest_api/recordings/{path}" => ("get".to_string(), DOWNLOAD.to_string()),
                _ => op.clone(),
            };
            assert!(doc.contains(&documented_as), "not documented: {op:?}");
        }
    }

    #[test]
    fn openapi_3_1_with_bearer_on_every_operation_but_health_and_the_document() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(
            doc["components"]["securitySchemes"][BEARER],
            json!({"type": "http", "scheme": "bearer"})
        );
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let open = matches!(path.as_str(), "/v1/health" | "/v1/openapi.json");
                let security = &op["security"];
                if open {
                    assert!(security.is_null(), "{method} {path} must need no token");
                } else {
                    assert_eq!(
                        security,
                        &json!([{BEARER: []}]),
                        "{method} {path} needs the token"
                    );
                    assert!(
                        op["responses"]["401"].is_object(),
                        "{method} {path}: no 401"
                    );
                }
            }
        }
    }

    fn refs(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, v) in map {
                    match v {
                        Value::String(r) if key == "$ref" => out.push(r.clone()),
                        v => refs(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_resolves() {
        let doc = document();
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(all.len() > 20);
        for r in all {
            let name = r
                .strip_prefix("#/components/schemas/")
                .expect("a schema ref");
            assert!(
                doc["components"]["schemas"][name].is_object(),
                "{r} resolves to nothing"
            );
        }
    }

    #[test]
    fn every_error_status_has_the_json_error_body() {
        let doc = document();
        let mut errors = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                for (status, response) in op["responses"].as_object().unwrap() {
                    // 416 comes from the file server (tower-http), with no body.
                    if status.starts_with('2') || status == "416" {
                        continue;
                    }
                    errors += 1;
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{method} {path} {status}"
                    );
                }
            }
        }
        assert!(errors >= 20, "{errors} error responses");
        assert_eq!(
            doc["components"]["schemas"]["ErrorBody"]["required"],
            json!(["error"])
        );
    }

    #[test]
    fn refusals_serialize_as_the_documented_error_body() {
        use crate::records::Refusal;
        use axum::response::IntoResponse;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        for (refusal, expected) in [
            (
                Refusal::bad("media.codec", "must be \"alaw\" or \"ulaw\""),
                json!({"error": "media.codec: must be \"alaw\" or \"ulaw\"", "field": "media.codec"}),
            ),
            (
                Refusal::status(404, "no such endpoint"),
                json!({"error": "no such endpoint"}),
            ),
        ] {
            let response = refusal.into_response();
            let body = runtime
                .block_on(axum::body::to_bytes(response.into_body(), 1 << 16))
                .unwrap();
            let value: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(value, expected);
            let parsed: ErrorBody = serde_json::from_value(value).unwrap();
            assert_eq!(parsed.error, expected["error"]);
        }
    }

    #[test]
    fn an_integer_written_with_a_zero_fraction_is_that_integer() {
        // JSON Schema's `integer` (and JSON itself) makes 79.0 the integer 79: the document's
        // integers must be the parser's.
        let body = br#"{"record": {"seconds_max_duration": 60.0, "beep_milliseconds": 20.0},
            "media": {"payload_type": 79.0, "telephone_event_payload_type": 6.0}}"#;
        let parsed = crate::records::RecordRequest::parse(body, None, &Default::default())
            .unwrap_or_else(|e| panic!("{:?}: {}", e.field, e.message));
        assert_eq!(parsed.options.seconds_max_duration, 60);
        assert_eq!(parsed.options.beep_milliseconds, 20);
        assert_eq!(parsed.media.payload_type, 79);
        assert_eq!(parsed.media.telephone_event_payload_type, Some(6));
        for bad in [
            r#"{"record": {}, "media": {"payload_type": 79.5}}"#,
            r#"{"record": {}, "media": {"payload_type": 128.0}}"#,
            r#"{"record": {"seconds_max_duration": 1.5}}"#,
        ] {
            assert_eq!(
                crate::records::RecordRequest::parse(bad.as_bytes(), None, &Default::default())
                    .map(|_| ())
                    .map_err(|e| e.status),
                Err(400),
                "{bad}"
            );
        }
    }

    #[test]
    fn bodies_the_parser_accepts_fit_the_request_types() {
        let url = url::Url::parse("http://127.0.0.1:9/app/").unwrap();
        for body in [
            json!({"record": {}}),
            json!({"record": {"id": "x", "barge_in_digits": "", "seconds_max_duration": 1,
                "milliseconds_max_silence": 3600000, "milliseconds_max_initial_silence": 0,
                "format": "ulaw", "beep_on_start": true, "max_file_bytes": 59,
                "trim_trailing_silence": true, "silence_threshold_db": -90,
                "beep_frequency_hz": 3800, "beep_milliseconds": 20, "beep_level_dbm0": 3,
                "detect_dtmf": true, "mask_dtmf": true, "pause_behavior": "silence",
                "encryption_cipher": {"type": "aesctr", "key": "00".repeat(32),
                    "initialisation_vector": "ff".repeat(16)},
                "next_page": {"url": "next", "method": "POST"},
                "recording_available_page": null}}),
            json!({"record": {}, "media": {"codec": "ulaw", "payload_type": 96,
                "telephone_event_payload_type": null}}),
        ] {
            let text = body.to_string();
            // The app's own origin (`--app-url`, here on loopback) is always an allowed destination.
            let allowed = crate::webhook::Destinations::new(&Default::default(), Some(&url))
                .expect("the app's origin is allowed");
            crate::records::RecordRequest::parse(text.as_bytes(), Some(&url), &allowed)
                .unwrap_or_else(|e| panic!("{text}: {}", e.message));
            let typed: Result<CreateRequest, _> = serde_json::from_value(body);
            assert!(typed.is_ok(), "{text}: {typed:?}");
        }
        crate::records::parse_digit(br#"{"digit": "d"}"#).unwrap();
        let typed: DigitRequest = serde_json::from_str(r#"{"digit": "d"}"#).unwrap();
        assert_eq!(typed.digit, "d");
    }
}
