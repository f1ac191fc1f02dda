//! SDP offer/answer (RFC 3264) for one recording: read a media server's offer, answer it.
//!
//! A media server that forks a call (rtpengine's `subscribe request`, a SIPREC or SIP client)
//! describes the leg it will send as an SDP offer, and takes the answer as it is: the answer
//! must use the offer's payload type numbers (a phone that negotiated telephone-event on 96
//! sends it on 96, and rtpengine refuses an answer with 101). Reading the offer here, instead of
//! asking the app to copy payload types into JSON, makes that impossible to get wrong.
//!
//! Only what a recording needs is read: the first audio stream's transport, formats, `rtpmap`s
//! and direction. The parse is strict (an offer callrec cannot record is refused, naming why) and
//! the answer is fixed: receive only, one G.711 format and telephone-events, RTCP on the port
//! the record reserves for it.

use callrec::Codec;
use std::fmt::Write as _;
use std::net::IpAddr;

/// The RTP profile of the offer's audio stream; the answer repeats it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// `RTP/AVP` (RFC 3551).
    Avp,
    /// `RTP/AVPF` (RFC 4585): the same RTP, with RTCP feedback.
    Avpf,
}

impl Profile {
    fn as_str(self) -> &'static str {
        match self {
            Profile::Avp => "RTP/AVP",
            Profile::Avpf => "RTP/AVPF",
        }
    }
}

/// What a recording takes from an SDP offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Offer {
    /// The G.711 law the offer lists first.
    pub codec: Codec,
    /// Its payload type, as the offer numbers it.
    pub payload_type: u8,
    /// The offer's `telephone-event/8000` payload type, if it has one.
    pub telephone_event_payload_type: Option<u8>,
    /// The audio stream's RTP profile.
    pub profile: Profile,
}

/// The longest offer read (an SDP for one call is a few hundred bytes; a long one is refused
/// rather than scanned).
pub const MAX_OFFER_BYTES: usize = 16 * 1024;

/// Reads an SDP offer. The error says what is wrong with it, for the field `media.sdp`.
pub fn parse_offer(text: &str) -> Result<Offer, String> {
    if text.len() > MAX_OFFER_BYTES {
        return Err(format!("is longer than {MAX_OFFER_BYTES} bytes"));
    }
    let mut lines = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .enumerate()
        .filter(|(_, l)| !l.is_empty());
    match lines.next() {
        Some((_, "v=0")) => {}
        _ => return Err("is not an SDP (the first line must be v=0)".into()),
    }
    // The first audio stream with a port, and the attributes that apply to it.
    let mut session_direction = None;
    let mut any_media = false;
    let mut in_audio = false;
    let mut audio_seen = false;
    let mut audio: Option<(Profile, Vec<u8>)> = None;
    let mut rtpmaps: Vec<(u8, String)> = Vec::new();
    let mut direction = None;
    for (index, line) in lines {
        let number = index + 1;
        let (kind, value) = match line.as_bytes() {
            [k, b'=', ..] if k.is_ascii_lowercase() => (*k, &line[2..]),
            _ => return Err(format!("line {number} is not type=value")),
        };
        match kind {
            b'm' => {
                if audio.is_some() {
                    // Later streams do not concern the recording.
                    break;
                }
                any_media = true;
                in_audio = false;
                let mut fields = value.split(' ');
                if fields.next() != Some("audio") {
                    continue;
                }
                audio_seen = true;
                let port = fields.next().unwrap_or("");
                let port = port.split('/').next().unwrap_or("");
                let port: u16 = port
                    .parse()
                    .map_err(|_| format!("line {number}: the m=audio port is not a number"))?;
                if port == 0 {
                    continue;
                }
                let profile = match fields.next().unwrap_or("") {
                    "RTP/AVP" => Profile::Avp,
                    "RTP/AVPF" => Profile::Avpf,
                    p if p.contains("SAVP") => {
                        let p = bounded(p);
                        return Err(format!("line {number}: the audio stream is SRTP ({p})"));
                    }
                    p => {
                        return Err(format!(
                            "line {number}: the audio transport {} is not RTP/AVP",
                            bounded(p)
                        ))
                    }
                };
                let mut formats = Vec::new();
                for f in fields {
                    match f.parse::<u8>() {
                        Ok(pt) if pt <= 127 => formats.push(pt),
                        _ => {
                            return Err(format!(
                                "line {number}: the audio format {} is not an RTP payload type",
                                bounded(f)
                            ))
                        }
                    }
                }
                if formats.is_empty() {
                    return Err(format!("line {number}: the audio stream lists no format"));
                }
                audio = Some((profile, formats));
                in_audio = true;
            }
            b'a' => {
                let (name, arg) = value.split_once(':').unwrap_or((value, ""));
                let is_direction =
                    matches!(name, "sendrecv" | "sendonly" | "recvonly" | "inactive");
                if any_media && !in_audio {
                    // An attribute of a stream that is not the one recorded.
                    continue;
                }
                if is_direction {
                    if in_audio {
                        direction = Some(name);
                    } else {
                        session_direction = Some(name);
                    }
                } else if name == "rtpmap" && in_audio {
                    let (pt, encoding) = arg.split_once(' ').ok_or_else(|| {
                        format!("line {number}: a=rtpmap must be a=rtpmap:PT NAME/RATE")
                    })?;
                    let pt: u8 = pt.parse().ok().filter(|&pt| pt <= 127).ok_or_else(|| {
                        format!("line {number}: the rtpmap payload type is not 0 to 127")
                    })?;
                    if rtpmaps.iter().any(|(p, _)| *p == pt) {
                        return Err(format!("line {number}: payload type {pt} is mapped twice"));
                    }
                    rtpmaps.push((pt, encoding.trim().to_ascii_lowercase()));
                }
            }
            _ => {}
        }
    }
    let Some((profile, formats)) = audio else {
        return Err(if audio_seen {
            "its audio stream is disabled (port 0)".into()
        } else {
            "has no audio stream (m=audio)".into()
        });
    };
    if let Some(d @ ("recvonly" | "inactive")) = direction.or(session_direction) {
        return Err(format!("the offer does not send audio (a={d})"));
    }
    let encoding_of = |pt: u8| -> Option<&str> {
        rtpmaps
            .iter()
            .find(|(p, _)| *p == pt)
            .map(|(_, e)| e.as_str())
    };
    // The offer lists its formats in order of preference: the first G.711 one is taken.
    let g711 = formats.iter().find_map(|&payload_type| {
        let codec = match (encoding_of(payload_type), payload_type) {
            (Some(e), _) => match e {
                "pcma/8000" | "pcma/8000/1" => Codec::Alaw,
                "pcmu/8000" | "pcmu/8000/1" => Codec::Ulaw,
                _ => return None,
            },
            // RFC 3551's static types, valid without an rtpmap.
            (None, 8) => Codec::Alaw,
            (None, 0) => Codec::Ulaw,
            (None, _) => return None,
        };
        Some((codec, payload_type))
    });
    let Some((codec, payload_type)) = g711 else {
        return Err(
            "offers neither PCMA nor PCMU at 8000 Hz (G.711): callrec records G.711".into(),
        );
    };
    let telephone_event_payload_type = formats.iter().copied().find(|&pt| {
        matches!(
            encoding_of(pt),
            Some("telephone-event/8000" | "telephone-event/8000/1")
        )
    });
    Ok(Offer {
        codec,
        payload_type,
        telephone_event_payload_type,
        profile,
    })
}

/// The first characters of an offer's token, for an error message.
fn bounded(token: &str) -> String {
    let shown: String = token
        .chars()
        .take(24)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    format!("{shown:?}")
}

/// The answer to `offer`: receive only, at `host` (an address or a name) and `port`, RTCP at
/// `rtcp_port` (`a=rtcp`, RFC 3605), the offer's payload type numbers. `session_id` fills the
/// `o=` line.
pub fn answer(
    offer: &Offer,
    host: &str,
    port: u16,
    rtcp_port: Option<u16>,
    session_id: u64,
) -> String {
    let address_type = match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(_)) => "IP6",
        _ => "IP4",
    };
    let name = match offer.codec {
        Codec::Alaw => "PCMA",
        Codec::Ulaw => "PCMU",
    };
    let mut sdp = String::with_capacity(256);
    // Writing to a String cannot fail.
    let _ = write!(
        sdp,
        "v=0\r\no=callrec {session_id} 1 IN {address_type} {host}\r\ns=callrec\r\n\
         c=IN {address_type} {host}\r\nt=0 0\r\nm=audio {port} {}",
        offer.profile.as_str()
    );
    let _ = write!(sdp, " {}", offer.payload_type);
    if let Some(te) = offer.telephone_event_payload_type {
        let _ = write!(sdp, " {te}");
    }
    let _ = write!(sdp, "\r\na=rtpmap:{} {name}/8000\r\n", offer.payload_type);
    if let Some(te) = offer.telephone_event_payload_type {
        // No fmtp: RFC 4733's default, events 0-15, is the DTMF digits callrec takes.
        let _ = write!(sdp, "a=rtpmap:{te} telephone-event/8000\r\n");
    }
    if let Some(rtcp) = rtcp_port {
        let _ = write!(sdp, "a=rtcp:{rtcp}\r\n");
    }
    sdp.push_str("a=recvonly\r\n");
    sdp
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What rtpengine 10.5 answered to `subscribe request` for a caller that offered PCMA and
    /// telephone-event on 96 (captured from `scripts/test-live`).
    const RTPENGINE_96: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
        t=0 0\r\nm=audio 50022 RTP/AVP 8 96\r\na=rtpmap:8 PCMA/8000\r\n\
        a=rtpmap:96 telephone-event/8000\r\na=sendonly\r\na=rtcp:50023\r\n";

    /// SIPp 3.6's `uac_pcap` scenario offer (`sipp -sd uac_pcap`), filled in.
    const SIPP_PCAP: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\n\
        c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n\
        a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-11,16\r\n\r\n";

    /// SIPp 3.6's `uac` scenario offer (`sipp -sd uac`), filled in: PCMU only, LF line ends.
    const SIPP_UAC: &str = "v=0\no=user1 53655765 2353687637 IN IP4 127.0.0.1\ns=-\n\
        c=IN IP4 127.0.0.1\nt=0 0\nm=audio 6000 RTP/AVP 0\na=rtpmap:0 PCMU/8000\n";

    #[test]
    fn rtpengine_offer_keeps_its_payload_types() {
        let offer = parse_offer(RTPENGINE_96).unwrap();
        assert_eq!(
            offer,
            Offer {
                codec: Codec::Alaw,
                payload_type: 8,
                telephone_event_payload_type: Some(96),
                profile: Profile::Avp,
            }
        );
        assert_eq!(
            answer(&offer, "127.0.0.1", 40000, Some(40001), 7),
            "v=0\r\no=callrec 7 1 IN IP4 127.0.0.1\r\ns=callrec\r\nc=IN IP4 127.0.0.1\r\n\
             t=0 0\r\nm=audio 40000 RTP/AVP 8 96\r\na=rtpmap:8 PCMA/8000\r\n\
             a=rtpmap:96 telephone-event/8000\r\na=rtcp:40001\r\na=recvonly\r\n"
        );
    }

    #[test]
    fn sipp_offers() {
        let offer = parse_offer(SIPP_PCAP).unwrap();
        assert_eq!(
            (
                offer.codec,
                offer.payload_type,
                offer.telephone_event_payload_type
            ),
            (Codec::Alaw, 8, Some(101))
        );
        let offer = parse_offer(SIPP_UAC).unwrap();
        assert_eq!(
            (
                offer.codec,
                offer.payload_type,
                offer.telephone_event_payload_type
            ),
            (Codec::Ulaw, 0, None)
        );
        let sdp = answer(&offer, "::1", 40002, None, 1);
        assert!(sdp.contains("\r\nc=IN IP6 ::1\r\n"), "{sdp}");
        assert!(
            sdp.contains("\r\nm=audio 40002 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=recvonly\r\n"),
            "{sdp}"
        );
        assert!(
            !sdp.contains("telephone-event") && !sdp.contains("a=rtcp"),
            "{sdp}"
        );
    }

    #[test]
    fn the_first_g711_in_the_offers_order_is_taken() {
        let sdp = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 7000 RTP/AVP 18 0 8 97 96\r\n\
            a=rtpmap:18 G729/8000\r\na=rtpmap:97 telephone-event/48000\r\n\
            a=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-15\r\n";
        let offer = parse_offer(sdp).unwrap();
        // PCMU (0, static) comes before PCMA; the 8 kHz telephone-event is the one taken.
        assert_eq!(
            (
                offer.codec,
                offer.payload_type,
                offer.telephone_event_payload_type
            ),
            (Codec::Ulaw, 0, Some(96))
        );
        // A dynamic number mapped to PCMA is G.711 too; upper or lower case.
        let offer = parse_offer("v=0\nm=audio 7000 RTP/AVPF 110 111\na=rtpmap:110 pcma/8000/1\na=rtpmap:111 TELEPHONE-EVENT/8000\n").unwrap();
        assert_eq!(
            (
                offer.codec,
                offer.payload_type,
                offer.telephone_event_payload_type,
                offer.profile
            ),
            (Codec::Alaw, 110, Some(111), Profile::Avpf)
        );
        assert!(answer(&offer, "192.0.2.1", 40000, Some(40001), 1)
            .contains("m=audio 40000 RTP/AVPF 110 111\r\n"));
    }

    #[test]
    fn only_the_first_live_audio_stream_counts() {
        // A disabled audio stream, then video, then the audio stream: its attributes only.
        let sdp = "v=0\r\na=sendrecv\r\nm=video 9000 RTP/AVP 31\r\na=recvonly\r\n\
            m=audio 0 RTP/AVP 0\r\na=recvonly\r\nm=audio 7000 RTP/AVP 8\r\n\
            m=audio 7002 RTP/AVP 0\r\na=recvonly\r\n";
        let offer = parse_offer(sdp).unwrap();
        assert_eq!((offer.codec, offer.payload_type), (Codec::Alaw, 8));
    }

    #[test]
    fn refusals_say_why() {
        let cases: &[(&str, &str)] = &[
            ("", "is not an SDP"),
            ("hello", "is not an SDP"),
            (
                "v=0\r\nc=IN IP4 1.2.3.4\r\n",
                "has no audio stream (m=audio)",
            ),
            ("v=0\r\nm=video 9000 RTP/AVP 31\r\n", "has no audio stream"),
            ("v=0\r\nm=audio 0 RTP/AVP 8\r\n", "disabled (port 0)"),
            (
                "v=0\r\nm=audio 7000 RTP/AVP 18 9\r\na=rtpmap:18 G729/8000\r\n",
                "neither PCMA nor PCMU",
            ),
            (
                "v=0\r\nm=audio 7000 RTP/AVP 96\r\na=rtpmap:96 PCMA/16000\r\n",
                "neither PCMA nor PCMU",
            ),
            (
                "v=0\r\nm=audio 7000 RTP/AVP 96\r\n",
                "neither PCMA nor PCMU",
            ),
            ("v=0\r\nm=audio 7000 RTP/SAVP 8\r\n", "SRTP"),
            ("v=0\r\nm=audio 7000 UDP/TLS/RTP/SAVPF 8\r\n", "SRTP"),
            ("v=0\r\nm=audio 7000 TCP/RTP/AVP 8\r\n", "is not RTP/AVP"),
            ("v=0\r\nm=audio 7000 RTP/AVP\r\n", "lists no format"),
            (
                "v=0\r\nm=audio 7000 RTP/AVP 8 200\r\n",
                "\"200\" is not an RTP payload type",
            ),
            ("v=0\r\nm=audio x RTP/AVP 8\r\n", "port is not a number"),
            (
                "v=0\r\nm=audio 7000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:8 PCMU/8000\r\n",
                "mapped twice",
            ),
            (
                "v=0\r\nm=audio 7000 RTP/AVP 8\r\na=rtpmap:8\r\n",
                "a=rtpmap must be",
            ),
            (
                "v=0\r\nm=audio 7000 RTP/AVP 8\r\nnot a line\r\n",
                "line 3 is not type=value",
            ),
            (
                "v=0\r\nm=audio 7000 RTP/AVP 8\r\na=recvonly\r\n",
                "does not send audio (a=recvonly)",
            ),
            (
                "v=0\r\na=inactive\r\nm=audio 7000 RTP/AVP 8\r\n",
                "does not send audio (a=inactive)",
            ),
        ];
        for (sdp, want) in cases {
            let got = parse_offer(sdp).expect_err(sdp);
            assert!(got.contains(want), "{sdp:?}: {got:?} lacks {want:?}");
        }
        // A media-level direction overrides the session's.
        assert!(
            parse_offer("v=0\r\na=inactive\r\nm=audio 7000 RTP/AVP 8\r\na=sendonly\r\n").is_ok()
        );
        let long = format!(
            "v=0\r\nm=audio 7000 RTP/AVP 8\r\n{}",
            "a=x\r\n".repeat(4000)
        );
        assert!(parse_offer(&long).unwrap_err().contains("longer than"));
        // Control characters in the offer are never echoed raw.
        let err = parse_offer("v=0\r\nm=audio 7000 RTP/\x1bAVP 8\r\n").unwrap_err();
        assert!(!err.contains('\x1b'), "{err:?}");
    }

    /// `media.sdp` in a `POST /v1/records` body: the offer gives the codec and payload types,
    /// and a refusal names `media.sdp` (or the field it conflicts with).
    #[test]
    fn a_request_with_an_sdp_offer() {
        use crate::records::{Media, RecordRequest};
        use serde_json::json;
        let media = Media::from_json(Some(&json!({ "sdp": RTPENGINE_96 }))).unwrap();
        assert_eq!(
            (
                media.codec,
                media.payload_type,
                media.telephone_event_payload_type
            ),
            (Codec::Alaw, 8, Some(96))
        );
        assert_eq!(media.offer, Some(parse_offer(RTPENGINE_96).unwrap()));
        let body = json!({"record": {"id": "x"}, "media": {"sdp": SIPP_UAC}}).to_string();
        let request = RecordRequest::parse(body.as_bytes(), None, &Default::default()).unwrap();
        assert_eq!(
            (
                request.media.codec,
                request.media.payload_type,
                request.media.telephone_event_payload_type
            ),
            (Codec::Ulaw, 0, None)
        );
        // The JSON form is unchanged and has no offer to answer.
        let media = Media::from_json(Some(&json!({"codec": "alaw"}))).unwrap();
        assert_eq!(media.offer, None);
        let refused = |media: serde_json::Value| Media::from_json(Some(&media)).unwrap_err();
        let r = refused(json!({"sdp": "v=0\r\nm=audio 7000 RTP/AVP 18\r\n"}));
        assert_eq!(r.field.as_deref(), Some("media.sdp"));
        assert!(r.message.contains("neither PCMA nor PCMU"), "{}", r.message);
        let r = refused(json!({"sdp": 5}));
        assert_eq!(
            (r.field.as_deref(), r.message.as_str()),
            (Some("media.sdp"), "must be an SDP offer (a string)")
        );
        for key in ["codec", "payload_type", "telephone_event_payload_type"] {
            let mut media = json!({"sdp": RTPENGINE_96, "codec": "alaw", "payload_type": 8, "telephone_event_payload_type": 101});
            let map = media.as_object_mut().unwrap();
            map.retain(|k, _| k == "sdp" || k == key);
            let r = refused(media);
            assert_eq!(r.field.as_deref(), Some(format!("media.{key}").as_str()));
            assert!(r.message.contains("media.sdp"), "{}", r.message);
        }
    }
}
