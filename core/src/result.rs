//! The recording result and the two events a recording produces (DESIGN §2).

use std::fmt;

/// Why a recording stopped: the record action's `reason` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// `seconds_max_duration` reached.
    Duration,
    /// A digit in `barge_in_digits` was pressed.
    Bargein,
    /// Max silence after sound, or max initial silence with no sound.
    Silence,
    /// `max_file_bytes` or the RIFF size limit reached.
    Filesize,
    /// The call ended.
    Hangup,
    /// The host aborted the action.
    Aborted,
    /// The file could not be written or finalized.
    Error,
    /// Anything else, e.g. the engine shut down or the recorder was dropped mid-recording.
    Other,
}

impl Reason {
    /// Every reason, in code order.
    pub const ALL: [Reason; 8] = [
        Reason::Duration,
        Reason::Bargein,
        Reason::Silence,
        Reason::Filesize,
        Reason::Hangup,
        Reason::Aborted,
        Reason::Error,
        Reason::Other,
    ];

    /// The JSON spelling: `"duration"`, `"bargein"`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Duration => "duration",
            Reason::Bargein => "bargein",
            Reason::Silence => "silence",
            Reason::Filesize => "filesize",
            Reason::Hangup => "hangup",
            Reason::Aborted => "aborted",
            Reason::Error => "error",
            Reason::Other => "other",
        }
    }

    /// A small non-zero code (1..=8), for atomics and the C ABI.
    pub fn code(self) -> u8 {
        Reason::ALL.iter().position(|&r| r == self).unwrap_or(7) as u8 + 1
    }

    /// The reason of a code made by [`Reason::code`].
    pub fn from_code(code: u8) -> Option<Reason> {
        Reason::ALL.get((code as usize).wrapping_sub(1)).copied()
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result of one recording, as the host forwards it to its web application.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordingResult {
    /// The user string from the options.
    pub id: String,
    /// The file's name in the store, e.g. `/rest_api/recordings/2026/11/23/14_35_03_<hex>.00001.wav`.
    pub filename: String,
    /// True in the *available* event (file and directory synced), false in *finished*.
    pub file_available: bool,
    /// Whether the recording holds sound above the background noise (speech, not a click).
    pub contains_sound: bool,
    /// The file's audio length in samples (8,000 per second).
    pub samples: u64,
    /// Why the recording stopped.
    pub reason: Reason,
    /// The digit that stopped it, when `reason` is `bargein`.
    pub barge_in_digit: Option<char>,
    /// Frames lost because the writer fell behind (extension; 0 on a healthy system).
    pub frames_dropped: u64,
    /// Why publishing to the object store failed (extension; only in an *available* event with
    /// reason `error` from the publisher, DESIGN §12).
    pub publish_error: Option<String>,
    /// True for a recording an engine finalized from the `.part` file a crashed process left
    /// (extension `"recovered": true`; reason `other`). Its `id` is unknown (empty) and its
    /// audio was not analysed, so `contains_sound` is false.
    pub recovered: bool,
    /// Per-party details of a two-leg recording (DESIGN §13; extension `"legs"`); None for a
    /// one-leg recording, whose JSON is unchanged.
    pub legs: Option<LegsResult>,
}

/// What a two-leg recording reports about each party (`"legs": {"caller": ..., "other": ...}`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LegsResult {
    /// The caller's leg (channel 1 of a `"both"` file).
    pub caller: LegResult,
    /// The other party's leg (channel 2 of a `"both"` file).
    pub other: LegResult,
}

/// One leg of a two-leg recording.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LegResult {
    /// Whether this leg holds speech (a run of it, not a click or noise).
    pub contains_sound: bool,
    /// Samples (8,000 a second) of this leg judged speech while the recording ran.
    pub speech_samples: u64,
    /// Samples of this leg's channel in the file that callrec filled with G.711 silence because
    /// the leg had no audio there (it started late, lost audio, fell behind, ended early or
    /// never sent).
    pub samples_filled: u64,
    /// Frames of this leg lost because its ring was full (the writer stalled).
    pub frames_dropped: u64,
}

impl LegResult {
    /// Seconds of speech rounded to one decimal (`seconds_of_speech`).
    pub fn seconds_of_speech(&self) -> f64 {
        (self.speech_samples as f64 / 800.0).round() / 10.0
    }

    fn json(&self) -> String {
        format!(
            "{{\"contains_sound\":{},\"seconds_of_speech\":{:.1},\"samples_filled\":{},\
             \"frames_dropped\":{}}}",
            self.contains_sound,
            self.seconds_of_speech(),
            self.samples_filled,
            self.frames_dropped
        )
    }
}

impl RecordingResult {
    /// The file's length in seconds rounded to one decimal, as the record action reports it.
    pub fn seconds_duration(&self) -> f64 {
        (self.samples as f64 / 800.0).round() / 10.0
    }

    /// The `{"action":"record","result":{...}}` JSON of DESIGN §2, compact, in Aculab's key order.
    /// `barge_in_digit` appears only for `bargein`; `frames_dropped` only when frames were lost.
    pub fn action_result_json(&self) -> String {
        let quote = |s: &str| serde_json::to_string(s).expect("a string always serializes");
        let mut json = format!(
            "{{\"action\":\"record\",\"result\":{{\"id\":{},\"filename\":{},\"file_available\":{},\
             \"contains_sound\":{},\"seconds_duration\":{:.1},\"reason\":\"{}\"",
            quote(&self.id),
            quote(&self.filename),
            self.file_available,
            self.contains_sound,
            self.seconds_duration(),
            self.reason.as_str(),
        );
        if let (Reason::Bargein, Some(d)) = (self.reason, self.barge_in_digit) {
            json.push_str(&format!(",\"barge_in_digit\":\"{d}\""));
        }
        if self.frames_dropped > 0 {
            json.push_str(&format!(",\"frames_dropped\":{}", self.frames_dropped));
        }
        if self.recovered {
            json.push_str(",\"recovered\":true");
        }
        if let Some(legs) = &self.legs {
            json.push_str(&format!(
                ",\"legs\":{{\"caller\":{},\"other\":{}}}",
                legs.caller.json(),
                legs.other.json()
            ));
        }
        if let Some(e) = &self.publish_error {
            json.push_str(&format!(",\"publish_error\":{}", quote(e)));
        }
        json.push_str("}}");
        json
    }
}

/// Which of a recording's two events this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The file is complete at its final name; the host calls its `next_page`.
    Finished,
    /// The file and its directory are synced to disk; the host calls `recording_available_page`.
    Available,
}

/// An event from the engine's writer.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Finished or available.
    pub kind: EventKind,
    /// The recording's result (`file_available` is true exactly in the available event).
    pub result: RecordingResult,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RecordingResult {
        RecordingResult {
            id: String::new(),
            filename: "/rest_api/recordings/2026/11/23/14_35_03_04f01fb92e8913a8.62100.wav".into(),
            file_available: false,
            contains_sound: true,
            samples: 133_600,
            reason: Reason::Silence,
            barge_in_digit: None,
            frames_dropped: 0,
            publish_error: None,
            recovered: false,
            legs: None,
        }
    }

    #[test]
    fn legs_appear_only_for_two_leg_recordings() {
        let mut r = sample();
        assert!(!r.action_result_json().contains("legs"));
        r.legs = Some(LegsResult {
            caller: LegResult {
                contains_sound: true,
                speech_samples: 12_345,
                samples_filled: 0,
                frames_dropped: 0,
            },
            other: LegResult {
                contains_sound: false,
                speech_samples: 0,
                samples_filled: 24_000,
                frames_dropped: 2,
            },
        });
        let v: serde_json::Value = serde_json::from_str(&r.action_result_json()).unwrap();
        let legs = &v["result"]["legs"];
        assert_eq!(legs["caller"]["contains_sound"], true);
        assert_eq!(legs["caller"]["seconds_of_speech"], 1.5);
        assert_eq!(legs["other"]["samples_filled"], 24_000);
        assert_eq!(legs["other"]["frames_dropped"], 2);
        assert_eq!(v["result"]["seconds_duration"], 16.7);
    }

    #[test]
    fn json_is_exactly_the_design_example() {
        assert_eq!(
            sample().action_result_json(),
            r#"{"action":"record","result":{"id":"","filename":"/rest_api/recordings/2026/11/23/14_35_03_04f01fb92e8913a8.62100.wav","file_available":false,"contains_sound":true,"seconds_duration":16.7,"reason":"silence"}}"#
        );
    }

    #[test]
    fn bargein_digit_dropped_frames_and_escaping() {
        let mut r = sample();
        r.reason = Reason::Bargein;
        r.barge_in_digit = Some('#');
        r.id = "a\"b".into();
        r.samples = 0;
        r.frames_dropped = 3;
        let v: serde_json::Value = serde_json::from_str(&r.action_result_json()).unwrap();
        assert_eq!(v["result"]["barge_in_digit"], "#");
        assert_eq!(v["result"]["id"], "a\"b");
        assert_eq!(v["result"]["frames_dropped"], 3);
        assert!(v["result"].get("publish_error").is_none());
        r.publish_error = Some("upload: \"403\"".into());
        let v: serde_json::Value = serde_json::from_str(&r.action_result_json()).unwrap();
        assert_eq!(v["result"]["publish_error"], "upload: \"403\"");
        r.publish_error = None;
        assert!(r.action_result_json().contains("\"seconds_duration\":0.0,"));
        // A digit is never reported for another reason.
        r.reason = Reason::Hangup;
        assert!(!r.action_result_json().contains("barge_in_digit"));
    }

    #[test]
    fn reason_codes_round_trip() {
        for r in Reason::ALL {
            assert_eq!(Reason::from_code(r.code()), Some(r));
        }
        assert_eq!(Reason::from_code(0), None);
        assert_eq!(Reason::from_code(9), None);
    }
}
