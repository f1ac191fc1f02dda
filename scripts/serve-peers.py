#!/usr/bin/env python3
"""Real peers for scripts/test-serve: a webhook receiver, RTP senders and file helpers.

Standard library only (the GStreamer sender also needs python3-gi). Subcommands:
  webhooks PORT LOG [SLOW_S]    answer webhooks (next_page 200, recording_available_page 204),
                                one JSON line per request in LOG (its Callrec-Delivery header
                                and the status answered); pages under /down/ answer 503 while
                                LOG.down exists, under /slow/ the first request of each
                                delivery id is answered after SLOW_S seconds (default 3)
  pcap-replay PCAP HOST PORT    resend a capture's RTP payloads at its own pace
  pcap-wav PCAP OUT             the capture's PCMA payloads, in order, as an A-law WAV
  lossy HOST PORT SRC SENT WAV  a call (raw A-law SRC, looped) with 5 % loss, 2 % reordered by
                                one packet and a 300 ms silence-suppression gap; SENT gets the
                                truth as JSON, WAV the timeline as the receiver should hear it
  speech HOST PORT FROM SRC FIRST N
                                packets FIRST..FIRST+N-1 of a 20 ms PCMA call (raw A-law SRC,
                                looped), sent from local port FROM (several runs, one source)
  gst-dtmf HOST PORT EVENT      a GStreamer rtpdtmfsrc pipeline pressing one key
  beep-call HOST PORT SRC RAW JSON
                                a caller for beep_on_start: sends SRC (raw A-law) as 20 ms PCMA
                                packets in real time from one socket while receiving on it;
                                the RTP that comes back is checked packet by packet (JSON) and
                                its payloads are written to RAW for sox
  wav-data FILE                 print the data chunk's length and a hex digest of it
"""
import hashlib
import http.server
import json
import random
import socket
import struct
import sys
import time


def webhooks(port, log, slow_seconds="3"):
    """Pages under /down/ answer 503 while LOG.down exists; under /slow/ the first request of
    each delivery id is answered after SLOW_SECONDS (after the client's timeout)."""
    import os
    import threading

    seen = set()
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            delivery = self.headers.get("Callrec-Delivery")
            status = 204 if "available" in self.path else 200
            late = False
            if "/down/" in self.path and os.path.exists(log + ".down"):
                status = 503
            if "/slow/" in self.path:
                with lock:
                    late = delivery not in seen
                    seen.add(delivery)
            with lock, open(log, "a") as f:
                f.write(json.dumps({"path": self.path, "delivery": delivery, "status": status,
                                    "late": late, "body": json.loads(body)}) + "\n")
            if late:
                time.sleep(float(slow_seconds))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), Handler).serve_forever()


def pcap_packets(path):
    """(seconds, RTP bytes) of every UDP packet in a classic pcap (Ethernet or Linux cooked)."""
    data = open(path, "rb").read()
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    link = struct.unpack(endian + "I", data[20:24])[0]
    l2 = {1: 14, 113: 16}[link]
    off, out = 24, []
    while off + 16 <= len(data):
        sec, usec, incl, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        pkt = data[off + 16:off + 16 + incl]
        off += 16 + incl
        ip = pkt[l2:]
        if ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        udp = ip[(ip[0] & 15) * 4:]
        length = struct.unpack(">H", udp[4:6])[0]
        out.append((sec + usec / 1e6, udp[8:length]))
    return out


def pcap_replay(path, host, port):
    packets = pcap_packets(path)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    start, t0 = time.monotonic(), packets[0][0]
    for t, rtp in packets:
        delay = start + (t - t0) - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sock.sendto(rtp, (host, int(port)))
    print(f"sent {len(packets)} packets", file=sys.stderr)


def write_alaw_wav(path, audio):
    fmt = struct.pack("<HHIIHHH", 6, 1, 8000, 8000, 1, 8, 0)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"fact" + struct.pack("<II", 4, len(audio))
    body += b"data" + struct.pack("<I", len(audio)) + audio + (b"\0" if len(audio) % 2 else b"")
    open(path, "wb").write(b"RIFF" + struct.pack("<I", len(body)) + body)


def pcap_wav(path, out):
    payloads = []
    for _, rtp in pcap_packets(path):
        if rtp[1] & 0x7F == 8:
            cc = rtp[0] & 15
            payloads.append((struct.unpack(">I", rtp[4:8])[0], rtp[12 + 4 * cc:]))
    payloads.sort()
    write_alaw_wav(out, b"".join(p for _, p in payloads))


def looped(source, start, n):
    audio = open(source, "rb").read()
    return bytes(audio[(start + i) % len(audio)] for i in range(n))


def lossy(host, port, source, sent_path, wav_path):
    rng = random.Random(13)
    packets = 500  # 10 s of 20 ms packets
    gap_at, gap_packets = 250, 15  # the sender goes quiet for 300 ms (timestamps jump)
    timeline = bytearray()
    plan = []  # (seq, ts, marker, payload)
    seq, ts = rng.randrange(65536), rng.randrange(1 << 32)
    for k in range(packets):
        if k == gap_at:
            timeline += b"\xd5" * (160 * gap_packets)
            ts = (ts + 160 * gap_packets) & 0xFFFFFFFF
        payload = looped(source, len(timeline), 160)
        plan.append((seq, ts, k == gap_at, payload))
        timeline += payload
        seq = (seq + 1) & 0xFFFF
        ts = (ts + 160) & 0xFFFFFFFF
    # 5 % lost (never the first or last packet, which bound the timeline); 2 % swapped with the
    # next packet (reordered by one).
    middle = list(range(1, packets - 2))
    lost = set(rng.sample(middle, packets * 5 // 100))
    swappable = [k for k in middle if k not in lost and k + 1 not in lost and k - 1 not in lost]
    swapped = set()
    while len(swapped) < packets * 2 // 100:
        k = rng.choice(swappable)
        if not {k - 1, k, k + 1} & swapped:
            swapped.add(k)
    order = [k for k in range(packets) if k not in lost]
    for k in sorted(swapped):
        i = order.index(k)
        order[i], order[i + 1] = order[i + 1], order[i]
    offset = lambda k: (k + (gap_packets if k >= gap_at else 0)) * 160
    silent = sorted(offset(k) for k in lost)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ssrc = rng.randrange(1 << 32)
    start = time.monotonic()
    for n, k in enumerate(order):
        s, t, marker, payload = plan[k]
        header = struct.pack(">BBHII", 0x80, (0x80 if marker else 0) | 8, s, t, ssrc)
        sock.sendto(header + payload, (host, int(port)))
        # Four times real time: quick, and gentle on the socket buffer and the writer's ring.
        delay = start + (n + 1) * 0.005 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    heard = bytes(0xD5 if any(o <= i < o + 160 for o in silent) else b for i, b in enumerate(timeline))
    write_alaw_wav(wav_path, heard)
    truth = {
        "timeline_samples": len(timeline),
        "lost": len(lost),
        "reordered": len(swapped),
        "concealed_samples": 160 * (len(lost) + gap_packets),
        "lost_offsets": silent,
    }
    json.dump(truth, open(sent_path, "w"))


def speech(host, port, from_port, source, first, count):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", int(from_port)))
    start = time.monotonic()
    for n, k in enumerate(range(int(first), int(first) + int(count))):
        header = struct.pack(">BBHII", 0x80, 8, k & 0xFFFF, (k * 160) & 0xFFFFFFFF, 0x5EED)
        sock.sendto(header + looped(source, k * 160, 160), (host, int(port)))
        delay = start + (n + 1) * 0.005 - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def gst_dtmf(host, port, event):
    import gi

    gi.require_version("Gst", "1.0")
    from gi.repository import Gst

    Gst.init(None)
    pipeline = Gst.parse_launch(
        f"rtpdtmfsrc name=dtmf pt=101 packet-redundancy=3 ! udpsink host={host} port={port} sync=true"
    )
    pipeline.set_state(Gst.State.PLAYING)
    src = pipeline.get_by_name("dtmf").get_static_pad("src")
    time.sleep(0.2)

    def press(start):
        s = Gst.Structure.new_empty("dtmf-event")
        s.set_value("type", 1)
        s.set_value("number", int(event))
        s.set_value("volume", 10)
        s.set_value("start", start)
        assert src.send_event(Gst.Event.new_custom(Gst.EventType.CUSTOM_UPSTREAM, s))

    press(True)
    time.sleep(0.25)
    press(False)
    time.sleep(0.3)
    pipeline.set_state(Gst.State.NULL)


def beep_call(host, port, source, raw_path, json_path):
    import threading

    audio = open(source, "rb").read()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    got = []
    done = threading.Event()

    def receive():
        while not done.is_set():
            try:
                data, sender = sock.recvfrom(2048)
            except socket.timeout:
                continue
            got.append((data, sender))

    receiver = threading.Thread(target=receive)
    receiver.start()
    start = time.monotonic()
    for k in range(len(audio) // 160):
        header = struct.pack(">BBHII", 0x80, 8, (1000 + k) & 0xFFFF, (k * 160) & 0xFFFFFFFF, 0xCA11)
        sock.sendto(header + audio[k * 160:(k + 1) * 160], (host, int(port)))
        delay = start + (k + 1) * 0.020 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    time.sleep(0.5)
    done.set()
    receiver.join()
    packets = []
    payload = b""
    for data, sender in got:
        v, m_pt, seq, ts, ssrc = struct.unpack(">BBHII", data[:12])
        packets.append({
            "from_port": sender[1], "version": v >> 6, "padding": bool(v & 0x20),
            "extension": bool(v & 0x10), "csrc_count": v & 0x0F, "marker": bool(m_pt & 0x80),
            "payload_type": m_pt & 0x7F, "sequence": seq, "timestamp": ts, "ssrc": ssrc,
            "payload_bytes": len(data) - 12,
        })
        payload += data[12:]
    open(raw_path, "wb").write(payload)
    json.dump(packets, open(json_path, "w"))


def wav_data(path):
    data = open(path, "rb").read()
    off = 12
    while off + 8 <= len(data):
        cid, size = data[off:off + 4], struct.unpack("<I", data[off + 4:off + 8])[0]
        if cid == b"data":
            audio = data[off + 8:off + 8 + size]
            print(len(audio), hashlib.sha256(audio).hexdigest())
            return
        off += 8 + size + (size & 1)
    raise SystemExit(f"{path}: no data chunk")


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    {
        "webhooks": webhooks,
        "pcap-replay": pcap_replay,
        "pcap-wav": pcap_wav,
        "lossy": lossy,
        "speech": speech,
        "gst-dtmf": gst_dtmf,
        "beep-call": beep_call,
        "wav-data": wav_data,
    }[command](*args)
