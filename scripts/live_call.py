#!/usr/bin/env python3
"""A two-party call through rtpengine, forked to `callrec serve`, for scripts/test-live.

Standard library only. Two Python "phones" set up a call with rtpengine's ng protocol
(bencode over UDP), the caller's leg is forked to a callrec record with `subscribe request` /
`subscribe answer`, and the caller streams a known call: examples/hello.wav as 20 ms PCMA, with
an RFC 4733 '#' at a known packet. What everyone got is written as JSON for the script to check.

  call NG_PORT API TOKEN_FILE WAV OUT --event-pt PT --answer serve|template
      serve:    POST /v1/records with "media": {"sdp": <the subscribe request's SDP>} and hand
                callrec's SDP answer to `subscribe answer` (what the README recommends);
      template: POST with "media": {"codec": "alaw", "payload_type": 8,
                "telephone_event_payload_type": 101} and answer with a hand-written SDP with
                8 and 101 (rtpengine refuses it when the phones negotiated another number).
      OUT gets: the ng replies, callrec's status and result, and the comparisons of the
      recording and of what the callee heard with what the caller sent.

  both NG_PORT API TOKEN_FILE WAV OTHER_WAV OUT
      Both sides of the call (DESIGN §13): the callee talks too (OTHER_WAV from 2.5 s, where its
      speech starts), each party's leg is forked with its own `subscribe request` (one per
      from-tag), one two-leg record takes both ("media": {"legs": [caller's SDP, callee's
      SDP]}), and each channel of the stereo file is compared with what that phone sent.
"""
import argparse
import json
import os
import socket
import struct
import threading
import time
import urllib.error
import urllib.request

PACKET = 160  # 20 ms of 8 kHz G.711
PACKETS = 250  # 5 s
DIGIT_AT = 150  # the '#' starts with audio packet 150 (3.0 s), timestamp ts0 + 150 * 160
DIGIT_EVENT = 11  # '#' in RFC 4733


# --- bencode and the ng protocol ---------------------------------------------------------
def bencode(x):
    if isinstance(x, int):
        return b"i%de" % x
    if isinstance(x, str):
        x = x.encode()
    if isinstance(x, bytes):
        return b"%d:%s" % (len(x), x)
    if isinstance(x, list):
        return b"l" + b"".join(bencode(i) for i in x) + b"e"
    if isinstance(x, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, v) for k, v in x.items())
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"
    raise TypeError(f"cannot bencode {type(x).__name__}")


def bdecode(data, i=0):
    """(value, next index); strings come back as str when they are UTF-8."""
    c = data[i:i + 1]
    if c == b"i":
        end = data.index(b"e", i)
        return int(data[i + 1:end]), end + 1
    if c in (b"l", b"d"):
        i += 1
        items = []
        while data[i:i + 1] != b"e":
            v, i = bdecode(data, i)
            items.append(v)
        if c == b"l":
            return items, i + 1
        return dict(zip(items[::2], items[1::2])), i + 1
    colon = data.index(b":", i)
    n = int(data[i:colon])
    raw = data[colon + 1:colon + 1 + n]
    try:
        return raw.decode(), colon + 1 + n
    except UnicodeDecodeError:
        return raw, colon + 1 + n


def ng(port, message):
    """Sends one ng command to rtpengine on loopback; its reply dictionary."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(5)
    cookie = os.urandom(8).hex().encode()
    sock.sendto(cookie + b" " + bencode(message), ("127.0.0.1", port))
    while True:
        reply = sock.recv(65536)
        if reply.startswith(cookie + b" "):
            return bdecode(reply, len(cookie) + 1)[0]


def phone_sdp(port, event_pt):
    """A phone's offer or answer: PCMA and telephone-event on `event_pt`."""
    return "\r\n".join([
        "v=0", f"o=phone {port} 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
        f"m=audio {port} RTP/AVP 8 {event_pt}", "a=rtpmap:8 PCMA/8000",
        f"a=rtpmap:{event_pt} telephone-event/8000", f"a=fmtp:{event_pt} 0-16", "a=ptime:20",
        "a=sendrecv", "",
    ])


def template_answer(port):
    """The hand-written answer of the README's JSON form: PCMA on 8, telephone-event on 101."""
    return "\r\n".join([
        "v=0", "o=app 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
        f"m=audio {port} RTP/AVP 8 101", "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000", "a=recvonly", "",
    ])


def sdp_port(sdp):
    for line in sdp.splitlines():
        if line.startswith("m=audio "):
            return int(line.split()[1])
    raise ValueError("no m=audio in the SDP")


# --- the phones -----------------------------------------------------------------------------
class Phone:
    """A UDP socket on loopback that keeps every RTP packet it receives."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.received = []  # (payload type, marker, sequence, timestamp, payload)
        self.running = True
        self.thread = threading.Thread(target=self._receive, daemon=True)
        self.thread.start()

    def _receive(self):
        while self.running:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            if len(data) >= 12 and data[0] >> 6 == 2:
                cc = data[0] & 15
                self.received.append((data[1] & 0x7F, data[1] >> 7,
                                      struct.unpack(">H", data[2:4])[0],
                                      struct.unpack(">I", data[4:8])[0], data[12 + 4 * cc:]))

    def stop(self):
        self.running = False
        self.thread.join()

    def audio(self, payload_type):
        """The received audio payloads of `payload_type` in sequence order, joined."""
        packets = sorted((seq, p) for pt, _, seq, _, p in self.received if pt == payload_type)
        return b"".join(p for _, p in packets)


def rtp(pt, marker, seq, ts, ssrc, payload):
    return struct.pack(">BBHII", 0x80, (marker << 7) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


def stream(caller, caller_to, callee, callee_to, audio, event_pt, back_audio=None):
    """The call: the caller sends `audio` in 20 ms PCMA packets in real time, with a '#' press
    (RFC 4733: start, 4 updates, 3 end packets) from packet DIGIT_AT, audio going on during it;
    the callee sends its own audio back, in the same loop iteration as the caller's packet
    (`back_audio`, or a quiet pattern). Returns the caller's packets as sent."""
    ssrc_a, ssrc_b = 0x1A2B3C4D, 0x5E6F7081
    seq, ts0 = 1000, 80000
    back = bytes((0xD5 ^ (i & 0x0F)) for i in range(PACKET))  # quiet, for the caller to get
    sent = []
    start = time.monotonic()
    for i in range(PACKETS):
        delay = start + i * 0.02 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        payload = audio[i * PACKET:(i + 1) * PACKET]
        packet = rtp(8, int(i == 0), seq, ts0 + i * PACKET, ssrc_a, payload)
        caller.sock.sendto(packet, caller_to)
        sent.append({"pt": 8, "seq": seq, "ts": ts0 + i * PACKET, "payload": payload})
        seq += 1
        step = i - DIGIT_AT
        if 0 <= step <= 5:
            end = step == 5
            duration = PACKET * (step + 1)
            event = struct.pack(">BBH", DIGIT_EVENT, (0x80 if end else 0) | 10, duration)
            for _ in range(3 if end else 1):
                packet = rtp(event_pt, int(step == 0), seq, ts0 + DIGIT_AT * PACKET, ssrc_a, event)
                caller.sock.sendto(packet, caller_to)
                sent.append({"pt": event_pt, "seq": seq, "ts": ts0 + DIGIT_AT * PACKET, "payload": event})
                seq += 1
        reply = back if back_audio is None else back_audio[i * PACKET:(i + 1) * PACKET]
        callee.sock.sendto(rtp(8, int(i == 0), 7000 + i, 3000 + i * PACKET, ssrc_b, reply), callee_to)
    time.sleep(0.5)
    return sent, back


# --- callrec serve's API --------------------------------------------------------------------
def api_call(api, token, method, path, body=None):
    request = urllib.request.Request(api + path, method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            data = response.read()
            json_type = response.headers.get_content_type() == "application/json"
            return json.loads(data) if json_type else data
    except urllib.error.HTTPError as e:
        raise SystemExit(f"{method} {path}: {e.code} {e.read().decode(errors='replace')}")


def wav_audio(data):
    off = 12
    while off + 8 <= len(data):
        cid, size = data[off:off + 4], struct.unpack("<I", data[off + 4:off + 8])[0]
        if cid == b"data":
            return data[off + 8:off + 8 + size]
        off += 8 + size + (size & 1)
    raise ValueError("no data chunk")


def alignment(sent, got, probe=320):
    """Where `got` starts in `sent`: its first 40 ms located in what was sent (the audio never
    repeats, so a match is unique), then whether all of `got` is exactly sent[offset:...]."""
    offset = sent.find(got[:probe])
    if offset < 0:
        return {"offset": None, "exact": False, "unique": False}
    return {"offset": offset,
            "unique": sent.find(got[:probe], offset + 1) < 0,
            "exact": sent[offset:offset + len(got)] == got}


def call(args):
    token = open(args.token_file).read().strip()
    audio = wav_audio(open(args.wav, "rb").read())[:PACKETS * PACKET]
    assert len(audio) == PACKETS * PACKET, "the source is shorter than the call"
    out = {"event_pt": args.event_pt, "answer_mode": args.answer, "ng": {}}
    caller, callee = Phone(), Phone()
    call_id = "live-" + os.urandom(6).hex()
    from_tag, to_tag = "caller-" + os.urandom(4).hex(), "callee-" + os.urandom(4).hex()
    offer = {"command": "offer", "call-id": call_id, "from-tag": from_tag,
             "sdp": phone_sdp(caller.port, args.event_pt)}
    reply = ng(args.ng_port, offer)
    out["ng"]["offer"] = {"sent": offer, "reply": reply}
    answer = {"command": "answer", "call-id": call_id, "from-tag": from_tag, "to-tag": to_tag,
              "sdp": phone_sdp(callee.port, args.event_pt)}
    reply2 = ng(args.ng_port, answer)
    out["ng"]["answer"] = {"sent": answer, "reply": reply2}
    # The callee sends to what the offer's rewritten SDP says, the caller to the answer's.
    callee_to = ("127.0.0.1", sdp_port(reply["sdp"]))
    caller_to = ("127.0.0.1", sdp_port(reply2["sdp"]))

    subscribe = {"command": "subscribe request", "call-id": call_id, "from-tag": from_tag}
    sub = ng(args.ng_port, subscribe)
    out["ng"]["subscribe request"] = {"sent": subscribe, "reply": sub}
    record = {"milliseconds_max_silence": 60000, "seconds_max_duration": 60}
    if args.answer == "serve":
        media = {"sdp": sub["sdp"]}
    else:
        media = {"codec": "alaw", "payload_type": 8, "telephone_event_payload_type": 101}
    created = api_call(args.api, token, "POST", "/v1/records", {"record": record, "media": media})
    out["created"] = created
    port = created["rtp"]["port"]
    their_answer = created["sdp"] if args.answer == "serve" else template_answer(port)
    sub_answer = {"command": "subscribe answer", "call-id": call_id, "to-tag": sub["to-tag"],
                  "sdp": their_answer}
    out["ng"]["subscribe answer"] = {"sent": sub_answer, "reply": ng(args.ng_port, sub_answer)}
    if out["ng"]["subscribe answer"]["reply"].get("result") != "ok":
        # The fork was refused: nothing will reach the record; end it and report.
        api_call(args.api, token, "POST", f"/v1/records/{created['record_id']}/abort")
        caller.stop()
        callee.stop()
        json.dump(out, open(args.out, "w"), indent=1)
        return

    sent, back = stream(caller, caller_to, callee, callee_to, audio, args.event_pt)
    caller.stop()
    callee.stop()
    ng(args.ng_port, {"command": "delete", "call-id": call_id, "from-tag": from_tag})

    status = None
    for _ in range(300):
        status = api_call(args.api, token, "GET", f"/v1/records/{created['record_id']}")
        if status["phase"] == "available":
            break
        time.sleep(0.1)
    out["status"] = status
    result = (status.get("action_result") or {}).get("result") or {}
    recording = wav_audio(api_call(args.api, token, "GET", created["filename"]))
    sent_audio = b"".join(p["payload"] for p in sent if p["pt"] == 8)
    heard = callee.audio(8)
    out["caller_sent"] = {"audio_packets": PACKETS, "audio_bytes": len(sent_audio),
                          "digit_sample": DIGIT_AT * PACKET,
                          "event_packets": sum(1 for p in sent if p["pt"] != 8)}
    out["recording"] = dict(alignment(sent_audio, recording), samples=len(recording),
                            reason=result.get("reason"), digit=result.get("barge_in_digit"))
    events = [p for pt, _, _, _, p in callee.received if pt == args.event_pt]
    out["callee"] = dict(alignment(sent_audio, heard), samples=len(heard),
                         audio_packets=sum(1 for r in callee.received if r[0] == 8),
                         event_packets=len(events),
                         events=sorted({e[0] for e in events}))
    got_back = caller.audio(8)
    out["caller_heard"] = {"samples": len(got_back),
                           "all_callee_audio": got_back == back * (len(got_back) // PACKET)}
    json.dump(out, open(args.out, "w"), indent=1)


def both(args):
    """Both sides of the call in one two-leg record: one subscription per party."""
    token = open(args.token_file).read().strip()
    audio = wav_audio(open(args.wav, "rb").read())[:PACKETS * PACKET]
    # The other party's example starts with 2.5 s of silence: its speech from there.
    back_audio = wav_audio(open(args.other_wav, "rb").read())[20000:20000 + PACKETS * PACKET]
    assert len(audio) == len(back_audio) == PACKETS * PACKET, "a source is shorter than the call"
    out = {"ng": {}}
    caller, callee = Phone(), Phone()
    call_id = "live2-" + os.urandom(6).hex()
    from_tag, to_tag = "caller-" + os.urandom(4).hex(), "callee-" + os.urandom(4).hex()
    reply = ng(args.ng_port, {"command": "offer", "call-id": call_id, "from-tag": from_tag,
                              "sdp": phone_sdp(caller.port, 101)})
    reply2 = ng(args.ng_port, {"command": "answer", "call-id": call_id, "from-tag": from_tag,
                               "to-tag": to_tag, "sdp": phone_sdp(callee.port, 101)})
    callee_to = ("127.0.0.1", sdp_port(reply["sdp"]))
    caller_to = ("127.0.0.1", sdp_port(reply2["sdp"]))
    # One subscription per party: what the caller sends (its from-tag), what the callee sends.
    subs = {}
    for leg, tag in (("caller", from_tag), ("other", to_tag)):
        request = {"command": "subscribe request", "call-id": call_id, "from-tag": tag}
        subs[leg] = ng(args.ng_port, request)
        out["ng"][f"subscribe request {leg}"] = {"sent": request, "reply": subs[leg]}
    record = {"milliseconds_max_silence": 60000, "seconds_max_duration": 60, "legs": "both"}
    media = {"legs": [{"sdp": subs["caller"]["sdp"]}, {"sdp": subs["other"]["sdp"]}]}
    created = api_call(args.api, token, "POST", "/v1/records", {"record": record, "media": media})
    out["created"] = created
    for leg in ("caller", "other"):
        answer = {"command": "subscribe answer", "call-id": call_id,
                  "to-tag": subs[leg]["to-tag"], "sdp": created["legs"][leg]["sdp"]}
        out["ng"][f"subscribe answer {leg}"] = {"sent": answer, "reply": ng(args.ng_port, answer)}
    if any(out["ng"][f"subscribe answer {leg}"]["reply"].get("result") != "ok"
           for leg in ("caller", "other")):
        api_call(args.api, token, "POST", f"/v1/records/{created['record_id']}/abort")
        caller.stop()
        callee.stop()
        json.dump(out, open(args.out, "w"), indent=1)
        return
    sent, _ = stream(caller, caller_to, callee, callee_to, audio, 101, back_audio)
    caller.stop()
    callee.stop()
    ng(args.ng_port, {"command": "delete", "call-id": call_id, "from-tag": from_tag})
    status = None
    for _ in range(300):
        status = api_call(args.api, token, "GET", f"/v1/records/{created['record_id']}")
        if status["phase"] == "available":
            break
        time.sleep(0.1)
    out["status"] = status
    result = (status.get("action_result") or {}).get("result") or {}
    data = wav_audio(api_call(args.api, token, "GET", created["filename"]))
    ch1, ch2 = data[0::2], data[1::2]
    sent_audio = b"".join(p["payload"] for p in sent if p["pt"] == 8)
    out["recording"] = {"channels_equal_length": len(data) % 2 == 0 and len(ch1) == len(ch2),
                        "samples": len(ch1), "reason": result.get("reason"),
                        "digit": result.get("barge_in_digit"), "legs": result.get("legs")}
    # Each channel: G.711 silence until that phone's first packet reached callrec (and, for
    # the callee, after its last one before the press), and exactly what the phone sent.
    lead1 = len(ch1) - len(ch1.lstrip(b"\xd5"))
    lead2 = len(ch2) - len(ch2.lstrip(b"\xd5"))
    out["caller"] = dict(alignment(sent_audio, ch1[lead1:]), lead=lead1)
    out["other"] = dict(alignment(back_audio, ch2[lead2:].rstrip(b"\xd5")), lead=lead2)
    # Both phones sent packet i in the same loop iteration: the same instant of the call. A
    # phone's sample x is at file index lead + x - offset.
    if out["caller"]["offset"] is not None and out["other"]["offset"] is not None:
        out["skew_samples"] = ((lead2 - out["other"]["offset"])
                               - (lead1 - out["caller"]["offset"]))
    out["digit_sample"] = DIGIT_AT * PACKET
    json.dump(out, open(args.out, "w"), indent=1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("call")
    c.add_argument("ng_port", type=int)
    c.add_argument("api")
    c.add_argument("token_file")
    c.add_argument("wav")
    c.add_argument("out")
    c.add_argument("--event-pt", type=int, default=101)
    c.add_argument("--answer", choices=["serve", "template"], default="serve")
    b = sub.add_parser("both")
    b.add_argument("ng_port", type=int)
    b.add_argument("api")
    b.add_argument("token_file")
    b.add_argument("wav")
    b.add_argument("other_wav")
    b.add_argument("out")
    parsed = parser.parse_args()
    both(parsed) if parsed.command == "both" else call(parsed)
