//! Both sides of the call through `callrec serve` (DESIGN §13): `media.legs` gives one RTP
//! port per party; each party's packets, sent in real time from its own socket and thread,
//! land on its own channel of the stereo file, placed by when they arrived; a party that
//! starts late or never sends is silence, and never hangs up or holds up the call.
//!
//! The truth is by construction: each party sends bytes no other party sends and that are
//! never the silence byte, so each channel is checked byte for byte (as sox decodes the file)
//! and the offset between the parties against when they started sending.

mod common;

use common::Server;
use serde_json::Value;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

const SILENCE: u8 = 0xD5;
/// Every sent frame is sound (-50 dBm0 threshold); no in-band DTMF; a stop after 1 s of both
/// parties' silence.
const RECORD: &str = r#""silence_threshold_db":-50,"milliseconds_max_silence":1000,"milliseconds_max_initial_silence":60000,"seconds_max_duration":60,"detect_dtmf":false"#;

/// The byte party `mark` sends at sample `n` (never the silence byte).
fn sample(mark: u8, n: usize) -> u8 {
    let b = ((n % 251) as u8) ^ mark;
    if b == SILENCE {
        b ^ 1
    } else {
        b
    }
}

fn rtp(seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, 8];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// Sends `packets` 20 ms packets of party `mark` to `port`, one per 20 ms from `start + delay`,
/// from its own thread; joins to what was sent.
fn talk(
    port: u16,
    mark: u8,
    start: Instant,
    delay: Duration,
    packets: usize,
) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut sent = Vec::new();
        for i in 0..packets {
            let due = start + delay + Duration::from_millis(20 * i as u64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let payload: Vec<u8> = (0..160).map(|k| sample(mark, i * 160 + k)).collect();
            let packet = rtp(
                i as u16,
                1000 + 160 * i as u32,
                0x5000 + u32::from(mark),
                &payload,
            );
            socket.send_to(&packet, ("127.0.0.1", port)).unwrap();
            sent.extend_from_slice(&payload);
        }
        sent
    })
}

fn post(server: &Server, body: &str) -> common::Reply {
    server.request(
        "POST",
        "/v1/records",
        &[&Server::auth(), "Content-Type: application/json"],
        body.as_bytes(),
    )
}

/// The started record: its id, filename and each leg's RTP port.
fn start(server: &Server, body: &str) -> (String, String, u16, u16) {
    let reply = post(server, body);
    assert_eq!(
        reply.status,
        201,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let v = reply.json();
    let port = |leg: &str| v["legs"][leg]["rtp"]["port"].as_u64().unwrap() as u16;
    let (caller, other) = (port("caller"), port("other"));
    assert_eq!(v["rtp"]["port"].as_u64(), Some(u64::from(caller)));
    assert!(caller % 2 == 0 && other % 2 == 0 && caller != other);
    (
        v["record_id"].as_str().unwrap().to_string(),
        v["filename"].as_str().unwrap().to_string(),
        caller,
        other,
    )
}

/// Waits for the record to finish; its status.
fn finished(server: &Server, id: &str) -> Value {
    let deadline = Instant::now() + common::GUARD;
    loop {
        let v = server
            .get(&format!("/v1/records/{id}"), &[&Server::auth()])
            .json();
        if !v["action_result"].is_null() {
            return v;
        }
        assert!(Instant::now() < deadline, "the recording never finished");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The file's two channels as raw A-law, decoded by sox (an independent WAV reader).
fn channels(server: &Server, filename: &str) -> (Vec<u8>, Vec<u8>) {
    let reply = server.get(filename, &[&Server::auth()]);
    assert_eq!(reply.status, 200);
    let path = common::temp_dir("legs").join("call.wav");
    std::fs::write(&path, &reply.body).unwrap();
    let out = std::process::Command::new("sox")
        .arg(&path)
        .args(["-t", "al", "-"])
        .output()
        .expect("sox runs (apt-get install sox)");
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for pair in out.stdout.chunks_exact(2) {
        a.push(pair[0]);
        b.push(pair[1]);
    }
    (a, b)
}

/// Where `sent` is in `channel`: the channel is silence, then exactly `sent`, then silence.
fn placed(channel: &[u8], sent: &[u8], who: &str) -> usize {
    let at = channel
        .iter()
        .position(|&b| b != SILENCE)
        .unwrap_or_else(|| panic!("{who}'s channel is all silence"));
    let held = &channel[at..channel.len().min(at + sent.len())];
    let differ = held.iter().zip(sent).position(|(a, b)| a != b);
    assert!(
        held.len() == sent.len() && differ.is_none(),
        "{who}'s channel holds what {who} sent, whole and in order: from sample {at} of {}, \
         {} of {} sent samples held, the first differing at {differ:?}",
        channel.len(),
        held.len(),
        sent.len()
    );
    assert!(
        channel[at + sent.len()..].iter().all(|&b| b == SILENCE),
        "{who}'s channel holds nothing after what {who} sent"
    );
    at
}

fn result(status: &Value) -> &Value {
    &status["action_result"]["result"]
}

/// Both parties talk, the other party 1.5 s after the caller (longer than the 1 s silence
/// limit, so the caller talking alone must not stop it); each channel is its party, the
/// offset between them is when they started, and the stop comes once both are silent.
#[test]
fn each_party_on_its_channel_placed_by_arrival() {
    let server = Server::start(64, |_| {});
    let body = format!(r#"{{"record":{{{RECORD}}},"media":{{"legs":[{{}},{{}}]}}}}"#);
    let (id, filename, caller_port, other_port) = start(&server, &body);
    let t0 = Instant::now();
    let caller = talk(caller_port, 0x00, t0, Duration::ZERO, 100);
    let other = talk(other_port, 0x80, t0, Duration::from_millis(1500), 100);
    let (caller, other) = (caller.join().unwrap(), other.join().unwrap());
    let status = finished(&server, &id);
    let r = result(&status);
    assert_eq!(r["reason"], "silence", "{r}");
    assert_eq!(r["legs"]["caller"]["contains_sound"], true);
    assert_eq!(r["legs"]["other"]["contains_sound"], true);
    let (ch1, ch2) = channels(&server, &filename);
    let c = placed(&ch1, &caller, "the caller");
    let o = placed(&ch2, &other, "the other party");
    // Sent 1.5 s apart from two threads, paced by sleeps: placed 12,000 samples apart, within
    // the scheduling jitter of this machine.
    let offset = o as i64 - c as i64;
    assert!(
        (offset - 12_000).abs() <= 400,
        "the other party is {offset} samples after the caller, not about 12,000"
    );
    // Per leg status and metrics.
    assert_eq!(status["legs"]["caller"]["packets"], 100);
    assert_eq!(status["legs"]["other"]["packets"], 100);
    let metrics = String::from_utf8(server.get("/metrics", &[&Server::auth()]).body).unwrap();
    for leg in ["caller", "other"] {
        let line = format!("callrec_rtp_leg_packets_total{{leg=\"{leg}\"}} 100");
        assert!(metrics.contains(&line), "/metrics has {line}");
    }
    assert!(metrics.contains("callrec_rtp_packets_total 200"));
}

/// One-way audio: the caller never sends (its first-packet timeout is 1 s), the other party
/// talks for 3 s. The call is not hung up by the silent caller, the file has both channels
/// (the caller's all filled silence, counted), and it stops on silence after the talker.
#[test]
fn one_way_audio_is_a_whole_call() {
    let server = Server::start(64, |c| {
        c.timeouts.first_packet = Duration::from_secs(1);
        c.timeouts.inactivity = Duration::from_secs(4);
    });
    let body = format!(r#"{{"record":{{{RECORD}}},"media":{{"legs":[{{}},{{}}]}}}}"#);
    let (id, filename, _caller_port, other_port) = start(&server, &body);
    let other = talk(other_port, 0x80, Instant::now(), Duration::ZERO, 150);
    let other = other.join().unwrap();
    let status = finished(&server, &id);
    let r = result(&status);
    assert_eq!(
        r["reason"], "silence",
        "the silent caller did not hang up the call: {r}"
    );
    let (ch1, ch2) = channels(&server, &filename);
    assert_eq!(ch1.len(), ch2.len());
    assert!(
        ch1.iter().all(|&b| b == SILENCE),
        "the caller's channel is silence"
    );
    placed(&ch2, &other, "the other party");
    assert_eq!(r["legs"]["caller"]["contains_sound"], false);
    assert_eq!(r["legs"]["other"]["contains_sound"], true);
    assert_eq!(
        r["legs"]["caller"]["samples_filled"].as_u64(),
        Some(ch1.len() as u64),
        "every sample of the caller's channel is counted as filled"
    );
    assert_eq!(status["legs"]["caller"]["packets"], 0);
    assert_eq!(status["legs"]["other"]["packets"], 150);
}

/// A hangup ends both legs at once; the other leg's port is not left receiving. With four
/// receive threads, both legs' ports are still one thread's (it follows the call).
#[test]
fn hangup_ends_both_legs() {
    let server = Server::start(64, |c| c.rtp_threads = 4);
    let body = format!(
        r#"{{"record":{{{RECORD},"legs":"mixed"}},"media":{{"legs":[{{"codec":"alaw"}},{{"payload_type":8}}]}}}}"#
    );
    let (id, filename, caller_port, other_port) = start(&server, &body);
    let t0 = Instant::now();
    let a = talk(caller_port, 0x00, t0, Duration::ZERO, 50);
    let b = talk(other_port, 0x80, t0, Duration::ZERO, 50);
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    let reply = server.request(
        "POST",
        &format!("/v1/records/{id}/hangup"),
        &[&Server::auth()],
        b"",
    );
    assert_eq!(reply.status, 202);
    let status = finished(&server, &id);
    assert_eq!(result(&status)["reason"], "hangup");
    assert!(status["phase"] == "finished" || status["phase"] == "available");
    // Mixed: one channel, as long as the call was heard (both parties' 1 s, placed together).
    let wav = server.get(&filename, &[&Server::auth()]).body;
    assert_eq!(u16::from_le_bytes([wav[22], wav[23]]), 1, "mixed is mono");
    assert!(!a.is_empty() && !b.is_empty());
}

/// `media.legs` and `record.legs` must agree; each leg is checked like `media`, and a refusal
/// names the leg's field.
#[test]
fn two_leg_requests_are_checked() {
    let server = Server::start(16, |_| {});
    let cases: &[(&str, &str)] = &[
        (r#"{"record":{"legs":"both"}}"#, "media.legs"),
        (
            r#"{"record":{"legs":"mixed"},"media":{"codec":"alaw"}}"#,
            "media.legs",
        ),
        (
            r#"{"record":{"legs":"caller"},"media":{"legs":[{},{}]}}"#,
            "record.legs",
        ),
        (r#"{"record":{},"media":{"legs":[{}]}}"#, "media.legs"),
        (r#"{"record":{},"media":{"legs":{}}}"#, "media.legs"),
        (r#"{"record":{},"media":{"legs":[{},{},{}]}}"#, "media.legs"),
        (
            r#"{"record":{},"media":{"legs":[{},{}],"codec":"alaw"}}"#,
            "media.codec",
        ),
        (
            r#"{"record":{},"media":{"legs":[{},{"codec":"ulaw"}]}}"#,
            "media.legs[1].codec",
        ),
        (
            r#"{"record":{},"media":{"legs":[{"payload_type":300},{}]}}"#,
            "media.legs[0].payload_type",
        ),
        (
            r#"{"record":{},"media":{"legs":[{},{"bogus":1}]}}"#,
            "media.legs[1].bogus",
        ),
    ];
    for (body, field) in cases {
        let reply = post(&server, body);
        assert_eq!(reply.status, 400, "{body}");
        assert_eq!(reply.json()["field"], *field, "{body}");
    }
    // Nothing was started: every port is still free.
    let metrics = String::from_utf8(server.get("/metrics", &[&Server::auth()]).body).unwrap();
    assert!(
        metrics.contains("callrec_sessions_started_total 0"),
        "{metrics}"
    );
}
