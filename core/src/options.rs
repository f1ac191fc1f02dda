//! The record action's options (DESIGN §1), parsed from JSON with the record action's property
//! names, and validated with errors that name the field.
//!
//! `next_page` and `recording_available_page` are accepted and ignored: the host makes the HTTP
//! requests. Any other unknown key is an error naming it.

use crate::cipher::{CipherSpec, Mode};
use crate::g711::Codec;
use serde_json::{Map, Value};
use std::fmt;

/// The longest recording callrec accepts, in seconds (24 hours).
pub const MAX_SECONDS_MAX_DURATION: u64 = 86_400;
/// The longest silence timer accepted, in milliseconds (one hour).
pub const MAX_SILENCE_MILLISECONDS: u64 = 3_600_000;
/// The longest `id` accepted, in bytes.
pub const MAX_ID_BYTES: usize = 1024;
/// The largest `max_file_bytes`: the RIFF format's 32-bit size limit.
pub const RIFF_MAX_FILE_BYTES: u64 = u32::MAX as u64;

/// A validated set of record options. Build one with [`RecordOptions::from_json`], or start from
/// `RecordOptions::default()` and set fields (the engine validates again before recording).
#[derive(Clone, Debug, PartialEq)]
pub struct RecordOptions {
    /// User string echoed in the result; never used to build a path.
    pub id: String,
    /// Digits that stop the recording (each one of `0-9 * # A-D`); empty means none.
    pub barge_in_digits: String,
    /// Stop with `duration` when the recording reaches this many seconds.
    pub seconds_max_duration: u64,
    /// Stop with `silence` after this much continuous silence once sound was heard.
    pub milliseconds_max_silence: u64,
    /// How long to wait for the first sound; 0 means `milliseconds_max_silence`.
    pub milliseconds_max_initial_silence: u64,
    /// The file's law; `None` means the call's input codec.
    pub format: Option<Codec>,
    /// Encrypt the whole file (`aescbc` or `aesctr`); None writes it in the clear.
    pub encryption_cipher: Option<CipherSpec>,
    /// Play a beep (pulled with `Recorder::playout`) before recording starts.
    pub beep_on_start: bool,
    /// Extension: stop with `filesize` when the file (header included) reaches this many bytes.
    pub max_file_bytes: Option<u64>,
    /// Extension: cut the silence after the last sound from the file.
    pub trim_trailing_silence: bool,
    /// Extension: a fixed sound threshold in dBm0 instead of the adaptive detector.
    pub silence_threshold_db: Option<f32>,
    /// Extension: beep frequency in Hz.
    pub beep_frequency_hz: u32,
    /// Extension: beep length in milliseconds.
    pub beep_milliseconds: u32,
    /// Extension: beep level in dBm0.
    pub beep_level_dbm0: f32,
    /// Extension: what a span between `Recorder::pause` and `Recorder::resume` leaves in the file.
    pub pause_behavior: PauseBehavior,
    /// Extension: detect DTMF in the audio (in-band); detected digits barge in like
    /// `Recorder::digit`, and a barge-in tone is cut from the file.
    pub detect_dtmf: bool,
    /// Extension: replace every detected DTMF tone in the file by silence (PCI DSS).
    pub mask_dtmf: bool,
    /// Extension (DESIGN §13): which parties the file holds. `"caller"` (the default) is the
    /// record action's one mono channel; `"both"` and `"mixed"` need a two-leg recording
    /// (`Engine::record_call`).
    pub legs: Legs,
}

/// Which parties of the call a recording holds (`legs`, DESIGN §13).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Legs {
    /// `"caller"`: one mono channel, the caller (the record action's own behaviour).
    #[default]
    Caller,
    /// `"both"`: a stereo G.711 WAV, channel 1 the caller, channel 2 the other party.
    Both,
    /// `"mixed"`: one mono channel, both parties summed (with saturation) in the linear domain.
    Mixed,
}

impl Legs {
    /// The option's JSON value: `"caller"`, `"both"` or `"mixed"`.
    pub fn name(self) -> &'static str {
        match self {
            Legs::Caller => "caller",
            Legs::Both => "both",
            Legs::Mixed => "mixed",
        }
    }

    /// Parses `"caller"`, `"both"` or `"mixed"`.
    pub fn from_name(name: &str) -> Option<Legs> {
        match name {
            "caller" => Some(Legs::Caller),
            "both" => Some(Legs::Both),
            "mixed" => Some(Legs::Mixed),
            _ => None,
        }
    }

    /// Channels in the file: 2 for `"both"`, else 1.
    pub fn channels(self) -> u16 {
        if self == Legs::Both {
            2
        } else {
            1
        }
    }
}

/// What a paused span leaves in the file (`pause_behavior`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PauseBehavior {
    /// `"skip"`: the paused audio is left out; the file joins the audio either side of it.
    #[default]
    Skip,
    /// `"silence"`: the paused audio is replaced by G.711 silence of the same length.
    Silence,
}

impl PauseBehavior {
    /// The option's JSON value: `"skip"` or `"silence"`.
    pub fn name(self) -> &'static str {
        match self {
            PauseBehavior::Skip => "skip",
            PauseBehavior::Silence => "silence",
        }
    }

    /// Parses `"skip"` or `"silence"`.
    pub fn from_name(name: &str) -> Option<PauseBehavior> {
        match name {
            "skip" => Some(PauseBehavior::Skip),
            "silence" => Some(PauseBehavior::Silence),
            _ => None,
        }
    }
}

impl Default for RecordOptions {
    fn default() -> Self {
        RecordOptions {
            id: String::new(),
            barge_in_digits: "#".to_owned(),
            seconds_max_duration: 60,
            milliseconds_max_silence: 3000,
            milliseconds_max_initial_silence: 0,
            format: None,
            encryption_cipher: None,
            beep_on_start: false,
            max_file_bytes: None,
            trim_trailing_silence: false,
            silence_threshold_db: None,
            beep_frequency_hz: 1000,
            beep_milliseconds: 250,
            beep_level_dbm0: -12.0,
            pause_behavior: PauseBehavior::Skip,
            detect_dtmf: true,
            mask_dtmf: false,
            legs: Legs::Caller,
        }
    }
}

/// A bad option: which field, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptionsError {
    /// The JSON property at fault (or `"options"` when the document itself is bad).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl OptionsError {
    /// The field name is made printable and bounded here (it may be an unknown key from the
    /// input); messages quote input only through [`crate::json`]'s helpers.
    fn new(field: &str, message: impl Into<String>) -> Self {
        OptionsError {
            field: crate::json::printable(field, crate::json::QUOTE_CHARS),
            message: message.into(),
        }
    }
}

impl fmt::Display for OptionsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for OptionsError {}

/// True for the characters a DTMF digit can be: `0-9 * # A-D`.
pub fn is_dtmf_digit(c: char) -> bool {
    matches!(c, '0'..='9' | '*' | '#' | 'A'..='D')
}

impl RecordOptions {
    /// Parses and validates the options JSON object (an empty string means all defaults).
    pub fn from_json(json: &str) -> Result<RecordOptions, OptionsError> {
        if json.trim().is_empty() {
            return Ok(RecordOptions::default());
        }
        // Strict: a key given twice is refused (serde_json alone keeps the last one).
        let value = crate::json::parse(json).map_err(|e| match e {
            crate::json::JsonError::Duplicate(key) => OptionsError::new(&key, "given twice"),
            crate::json::JsonError::Syntax(m) => {
                OptionsError::new("options", format!("not valid JSON: {m}"))
            }
        })?;
        match value {
            Value::Object(map) => Self::from_map(&map),
            _ => Err(OptionsError::new("options", "must be a JSON object")),
        }
    }

    /// The options of a recording of both parties (`Engine::record_call`): as
    /// [`RecordOptions::from_json`], but `legs` defaults to `"both"`, and `"caller"` (one party)
    /// is refused. The bindings that start two-leg recordings (C, Python, the CLI) share this.
    pub fn from_json_two_legs(json: &str) -> Result<RecordOptions, OptionsError> {
        let options = Self::from_json(json)?;
        let legs_given = !json.trim().is_empty()
            && matches!(crate::json::parse(json), Ok(Value::Object(map)) if map.contains_key("legs"));
        options.for_two_legs(legs_given)
    }

    /// [`RecordOptions::from_json_two_legs`] for an already-decoded JSON object (`callrec
    /// serve`'s request with `media.legs`).
    pub fn from_map_two_legs(map: &Map<String, Value>) -> Result<RecordOptions, OptionsError> {
        Self::from_map(map)?.for_two_legs(map.contains_key("legs"))
    }

    fn for_two_legs(mut self, legs_given: bool) -> Result<RecordOptions, OptionsError> {
        match (legs_given, self.legs) {
            (false, _) => self.legs = Legs::Both,
            (true, Legs::Caller) => {
                return Err(OptionsError::new(
                    "legs",
                    "\"caller\" records one party, but both are given: use \"both\" or \"mixed\"",
                ))
            }
            (true, _) => {}
        }
        Ok(self)
    }

    /// Parses and validates an already-decoded JSON object.
    pub fn from_map(map: &Map<String, Value>) -> Result<RecordOptions, OptionsError> {
        let mut o = RecordOptions::default();
        for (key, value) in map {
            let f = key.as_str();
            match f {
                "id" => o.id = string(f, value)?.to_owned(),
                "barge_in_digits" => o.barge_in_digits = string(f, value)?.to_owned(),
                "seconds_max_duration" => o.seconds_max_duration = integer(f, value)?,
                "milliseconds_max_silence" => o.milliseconds_max_silence = integer(f, value)?,
                "milliseconds_max_initial_silence" => {
                    o.milliseconds_max_initial_silence = integer(f, value)?
                }
                "format" => {
                    let name = string(f, value)?;
                    o.format = Some(Codec::from_name(name).ok_or_else(|| {
                        OptionsError::new(
                            f,
                            format!(
                                "must be \"alaw\" or \"ulaw\", not {}",
                                crate::json::key(name)
                            ),
                        )
                    })?)
                }
                "beep_on_start" => o.beep_on_start = boolean(f, value)?,
                "max_file_bytes" => o.max_file_bytes = Some(integer(f, value)?),
                "trim_trailing_silence" => o.trim_trailing_silence = boolean(f, value)?,
                "silence_threshold_db" => {
                    o.silence_threshold_db = Some(number_in(f, value, -90.0, 0.0, "dBm0")?)
                }
                "beep_frequency_hz" => o.beep_frequency_hz = small_integer(f, value)?,
                "beep_milliseconds" => o.beep_milliseconds = small_integer(f, value)?,
                "beep_level_dbm0" => o.beep_level_dbm0 = number_in(f, value, -50.0, 3.0, "dBm0")?,
                "detect_dtmf" => o.detect_dtmf = boolean(f, value)?,
                "mask_dtmf" => o.mask_dtmf = boolean(f, value)?,
                "pause_behavior" => {
                    let name = string(f, value)?;
                    o.pause_behavior = PauseBehavior::from_name(name)
                        .ok_or_else(|| OptionsError::new(f, "must be \"skip\" or \"silence\""))?
                }
                "legs" => {
                    let name = string(f, value)?;
                    o.legs = Legs::from_name(name).ok_or_else(|| {
                        OptionsError::new(
                            f,
                            format!(
                                "must be \"caller\", \"both\" or \"mixed\", not {}",
                                crate::json::key(name)
                            ),
                        )
                    })?
                }
                "next_page" | "recording_available_page" => {}
                "encryption_cipher" => o.encryption_cipher = Some(cipher(value)?),
                _ => return Err(OptionsError::new(f, "unknown option")),
            }
        }
        o.validate()?;
        Ok(o)
    }

    /// Checks every field's range; the error names the first bad field.
    pub fn validate(&self) -> Result<(), OptionsError> {
        if self.id.len() > MAX_ID_BYTES {
            return Err(OptionsError::new(
                "id",
                format!("longer than {MAX_ID_BYTES} bytes"),
            ));
        }
        if let Some(c) = self.barge_in_digits.chars().find(|&c| !is_dtmf_digit(c)) {
            return Err(OptionsError::new(
                "barge_in_digits",
                format!("{c:?} is not a DTMF digit (use 0-9, *, #, A-D)"),
            ));
        }
        range(
            "seconds_max_duration",
            self.seconds_max_duration,
            1,
            MAX_SECONDS_MAX_DURATION,
        )?;
        range(
            "milliseconds_max_silence",
            self.milliseconds_max_silence,
            1,
            MAX_SILENCE_MILLISECONDS,
        )?;
        range(
            "milliseconds_max_initial_silence",
            self.milliseconds_max_initial_silence,
            0,
            MAX_SILENCE_MILLISECONDS,
        )?;
        if let Some(bytes) = self.max_file_bytes {
            let min = crate::wav::HEADER_BYTES as u64 + 1;
            range("max_file_bytes", bytes, min, RIFF_MAX_FILE_BYTES)?;
        }
        if let Some(db) = self.silence_threshold_db {
            range_f32("silence_threshold_db", db, -90.0, 0.0, "dBm0")?;
        }
        range(
            "beep_frequency_hz",
            self.beep_frequency_hz as u64,
            100,
            3800,
        )?;
        range("beep_milliseconds", self.beep_milliseconds as u64, 20, 5000)?;
        range_f32("beep_level_dbm0", self.beep_level_dbm0, -50.0, 3.0, "dBm0")?;
        if self.mask_dtmf && !self.detect_dtmf {
            return Err(OptionsError::new(
                "mask_dtmf",
                "needs detect_dtmf (tones must be detected to be masked)",
            ));
        }
        Ok(())
    }

    /// The initial-silence timeout actually in force, in milliseconds.
    pub fn effective_initial_silence_ms(&self) -> u64 {
        if self.milliseconds_max_initial_silence == 0 {
            self.milliseconds_max_silence
        } else {
            self.milliseconds_max_initial_silence
        }
    }
}

/// `{"type": "aescbc" | "aesctr", "key": HEX, "initialisation_vector": HEX}`.
fn cipher(v: &Value) -> Result<CipherSpec, OptionsError> {
    const FIELD: &str = "encryption_cipher";
    let Value::Object(map) = v else {
        return Err(OptionsError::new(
            FIELD,
            "must be an object with type, key and initialisation_vector",
        ));
    };
    if let Some(k) = map
        .keys()
        .find(|k| !matches!(k.as_str(), "type" | "key" | "initialisation_vector"))
    {
        return Err(OptionsError::new(&format!("{FIELD}.{k}"), "unknown field"));
    }
    let member = |name: &str| -> Result<&str, OptionsError> {
        let field = format!("{FIELD}.{name}");
        match map.get(name) {
            None => Err(OptionsError::new(&field, "is required")),
            Some(v) => string(&field, v),
        }
    };
    let kind = member("type")?;
    let mode = Mode::from_name(kind).ok_or_else(|| {
        OptionsError::new(
            &format!("{FIELD}.type"),
            format!(
                "must be \"aescbc\" or \"aesctr\", not {}",
                crate::json::key(kind)
            ),
        )
    })?;
    CipherSpec::from_hex(mode, member("key")?, member("initialisation_vector")?)
        .map_err(|e| OptionsError::new(&format!("{FIELD}.{}", e.field), e.message))
}

// Wrong-type messages name the JSON type, never the value: it may be long (a 120 KB array) or
// secret (a key given as an object).
fn string<'a>(field: &str, v: &'a Value) -> Result<&'a str, OptionsError> {
    v.as_str().ok_or_else(|| {
        OptionsError::new(
            field,
            format!("must be a string, not {}", crate::json::describe(v)),
        )
    })
}

fn boolean(field: &str, v: &Value) -> Result<bool, OptionsError> {
    v.as_bool().ok_or_else(|| {
        OptionsError::new(
            field,
            format!("must be true or false, not {}", crate::json::describe(v)),
        )
    })
}

fn number(field: &str, v: &Value) -> Result<f64, OptionsError> {
    v.as_f64().ok_or_else(|| {
        OptionsError::new(
            field,
            format!("must be a number, not {}", crate::json::describe(v)),
        )
    })
}

/// A number checked against its range as given (f64), before it is narrowed to f32: narrowing
/// first would let `-90.000001` round to `-90.0` and pass.
fn number_in(field: &str, v: &Value, min: f64, max: f64, unit: &str) -> Result<f32, OptionsError> {
    let n = number(field, v)?;
    if !(min..=max).contains(&n) {
        return Err(OptionsError::new(
            field,
            format!(
                "{} is out of range (allowed {min}..={max} {unit})",
                crate::json::printable(&n.to_string(), 24)
            ),
        ));
    }
    // `-0` is zero.
    Ok(if n == 0.0 { 0.0 } else { n as f32 })
}

fn integer(field: &str, v: &Value) -> Result<u64, OptionsError> {
    if let Some(n) = v.as_u64() {
        return Ok(n);
    }
    // A whole number written with a fraction (`60.0`, `-0`) is that integer, as in JSON Schema's
    // `integer`; the range check then says what it means for the field.
    if let Some(f) = v.as_f64() {
        if f.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(&f) {
            return Ok(if f == 0.0 { 0 } else { f as u64 });
        }
    }
    let why = match v {
        Value::Number(n) if n.as_i64().is_some() => format!("must not be negative, got {n}"),
        Value::Number(n) => format!(
            "must be a whole number, got {}",
            crate::json::printable(&n.to_string(), 24)
        ),
        _ => format!("must be an integer, not {}", crate::json::describe(v)),
    };
    Err(OptionsError::new(field, why))
}

fn small_integer(field: &str, v: &Value) -> Result<u32, OptionsError> {
    let n = integer(field, v)?;
    u32::try_from(n).map_err(|_| OptionsError::new(field, format!("{n} is absurdly large")))
}

fn range(field: &str, v: u64, min: u64, max: u64) -> Result<(), OptionsError> {
    if v < min || v > max {
        return Err(OptionsError::new(
            field,
            format!("{v} is out of range (allowed {min}..={max})"),
        ));
    }
    Ok(())
}

fn range_f32(field: &str, v: f32, min: f32, max: f32, unit: &str) -> Result<(), OptionsError> {
    if !(min..=max).contains(&v) {
        return Err(OptionsError::new(
            field,
            format!("{v} is out of range (allowed {min}..={max} {unit})"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(json: &str) -> OptionsError {
        RecordOptions::from_json(json).unwrap_err()
    }

    #[test]
    fn defaults_match_the_record_action() {
        let o = RecordOptions::from_json("{}").unwrap();
        assert_eq!(o, RecordOptions::default());
        assert_eq!(o.barge_in_digits, "#");
        assert_eq!(o.seconds_max_duration, 60);
        assert_eq!(o.milliseconds_max_silence, 3000);
        assert_eq!(o.effective_initial_silence_ms(), 3000);
        assert_eq!(o.format, None);
        assert!(!o.beep_on_start);
    }

    #[test]
    fn a_full_record_action_passes_through() {
        let o = RecordOptions::from_json(
            r##"{"id":"call-7","barge_in_digits":"#*1","seconds_max_duration":30,
                "milliseconds_max_silence":2000,"milliseconds_max_initial_silence":5000,
                "format":"ulaw","beep_on_start":true,"next_page":{"url":"next"},
                "recording_available_page":{"url":"avail"},"max_file_bytes":100000,
                "trim_trailing_silence":true,"silence_threshold_db":-40}"##,
        )
        .unwrap();
        assert_eq!(o.id, "call-7");
        assert_eq!(o.format, Some(Codec::Ulaw));
        assert_eq!(o.effective_initial_silence_ms(), 5000);
        assert_eq!(o.max_file_bytes, Some(100000));
        assert_eq!(o.silence_threshold_db, Some(-40.0));
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(err(r#"{"colour":1}"#).field, "colour");
        assert_eq!(
            err(r#"{"seconds_max_duration":-1}"#).field,
            "seconds_max_duration"
        );
        assert!(err(r#"{"seconds_max_duration":-1}"#)
            .message
            .contains("negative"));
        assert!(err(r#"{"seconds_max_duration":0}"#)
            .message
            .contains("out of range"));
        assert!(err(r#"{"seconds_max_duration":1.5}"#)
            .message
            .contains("whole"));
        assert!(err(r#"{"seconds_max_duration":"60"}"#)
            .message
            .contains("integer"));
        assert_eq!(
            err(r#"{"seconds_max_duration":1e30}"#).field,
            "seconds_max_duration"
        );
        assert_eq!(
            err(r#"{"milliseconds_max_silence":0}"#).field,
            "milliseconds_max_silence"
        );
        assert_eq!(
            err(r##"{"barge_in_digits":"#x"}"##).field,
            "barge_in_digits"
        );
        assert_eq!(err(r#"{"format":"gsm"}"#).field, "format");
        assert_eq!(err(r#"{"beep_on_start":"yes"}"#).field, "beep_on_start");
        assert_eq!(err(r#"{"max_file_bytes":10}"#).field, "max_file_bytes");
        assert_eq!(
            err(r#"{"max_file_bytes":5000000000}"#).field,
            "max_file_bytes"
        );
        assert_eq!(
            err(r#"{"silence_threshold_db":10}"#).field,
            "silence_threshold_db"
        );
        assert_eq!(
            err(r#"{"beep_frequency_hz":99999999999}"#).field,
            "beep_frequency_hz"
        );
        assert_eq!(
            err(r#"{"id":"x","detect_dtmfs":true}"#).field,
            "detect_dtmfs"
        );
        assert_eq!(
            err(r#"{"detect_dtmf":false,"mask_dtmf":true}"#).field,
            "mask_dtmf"
        );
        assert_eq!(err(r#"{"mask_dtmf":1}"#).field, "mask_dtmf");
        assert_eq!(err("[1]").field, "options");
        assert_eq!(err("{").field, "options");
        assert_eq!(err(r#"{"colour":1}"#).to_string(), "colour: unknown option");
    }

    #[test]
    fn encryption_cipher_is_checked_field_by_field() {
        let key = "000102030405060708090a0b0c0d0e0f";
        let ok = |json: &str| {
            RecordOptions::from_json(json)
                .unwrap()
                .encryption_cipher
                .unwrap()
        };
        let c = ok(&format!(
            r#"{{"encryption_cipher":{{"type":"aescbc","key":"{key}{key}","initialisation_vector":"{key}"}}}}"#
        ));
        assert_eq!((c.mode(), c.key_bits()), (Mode::Cbc, 256));
        let c = ok(&format!(
            r#"{{"encryption_cipher":{{"type":"aesctr","key":"{}","initialisation_vector":"{key}"}}}}"#,
            &format!("{key}{key}")[..48].to_uppercase()
        ));
        assert_eq!((c.mode(), c.key_bits()), (Mode::Ctr, 192));
        let bad = |inner: &str| err(&format!(r#"{{"encryption_cipher":{inner}}}"#));
        let e = bad(&format!(
            r#"{{"type":"aesgcm","key":"{key}","initialisation_vector":"{key}"}}"#
        ));
        assert_eq!(e.field, "encryption_cipher.type");
        let e = bad(&format!(
            r#"{{"type":"aescbc","key":"{key}0","initialisation_vector":"{key}"}}"#
        ));
        assert_eq!(e.field, "encryption_cipher.key");
        assert!(e.message.contains("odd"));
        let e = bad(&format!(
            r#"{{"type":"aescbc","key":"{key}00","initialisation_vector":"{key}"}}"#
        ));
        assert!(e.message.contains("136 bits"), "{e}");
        let e = bad(&format!(
            r#"{{"type":"aescbc","key":"{key}","initialisation_vector":"xx{key}"}}"#
        ));
        assert_eq!(e.field, "encryption_cipher.initialisation_vector");
        let e = bad(&format!(
            r#"{{"type":"aescbc","key":"{key}","initialisation_vector":"{key}00"}}"#
        ));
        assert!(e.message.contains("must be 128"));
        let e = bad(&format!(r#"{{"type":"aescbc","key":"{key}"}}"#));
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            ("encryption_cipher.initialisation_vector", "is required")
        );
        let e = bad(&format!(
            r#"{{"type":"aescbc","key":"{key}","initialisation_vector":"{key}","mode":1}}"#
        ));
        assert_eq!(e.field, "encryption_cipher.mode");
        assert_eq!(bad("true").field, "encryption_cipher");
        // The key never appears in an error or a debug print.
        assert!(!format!("{:?}", ok(&format!(
            r#"{{"encryption_cipher":{{"type":"aesctr","key":"{key}","initialisation_vector":"{key}"}}}}"#
        ))).contains("0102"));
    }

    #[test]
    fn pause_behavior_is_skip_or_silence() {
        assert_eq!(
            RecordOptions::from_json(r#"{"pause_behavior":"silence"}"#)
                .unwrap()
                .pause_behavior,
            PauseBehavior::Silence
        );
        assert_eq!(
            RecordOptions::from_json(r#"{"pause_behavior":"skip"}"#)
                .unwrap()
                .pause_behavior,
            PauseBehavior::Skip
        );
        let e = err(r#"{"pause_behavior":"mute"}"#);
        assert_eq!(e.field, "pause_behavior");
        assert!(!e.message.contains("mute"), "the value is not echoed");
        assert_eq!(err(r#"{"pause_behavior":1}"#).field, "pause_behavior");
    }

    #[test]
    fn empty_barge_in_digits_is_allowed() {
        assert_eq!(
            RecordOptions::from_json(r#"{"barge_in_digits":""}"#)
                .unwrap()
                .barge_in_digits,
            ""
        );
    }
}
