"""Makes the two-leg conversation corpus: calls between two parties whose truth is known by
construction (DESIGN §13, issue 20 item 6).

Each party is one espeak-ng voice (the caller en-us, the other party en-gb+f3: two distinct
voices), resampled to 8 kHz by sox; an utterance's first and last sample above 1 % of its peak
are its true start and end (as benches/vad/make_corpus.py). Every leg is speech at -20 dBFS over
a -70 dBFS white line floor with its own seed, A-law coded: the floor is far under any detector
threshold but makes every 20 ms frame of the input distinct from another one and from callrec's
silence fill (0xD5), so a channel shifted by a frame, swapped, or filled where it should not be
cannot match by accident.

Scenarios (each over several lengths, 10 s to 10 min in the full corpus):
* turns: the parties take turns, gaps 0.2-1.2 s;
* overlap: the next speaker starts 0.3-1.0 s before the previous one ends;
* late: the other party's leg starts sending 3 s after the caller's (filled before);
* oneway-silent: the other party sends only its line floor (one-way audio);
* oneway-never: the other party never sends anything (its channel is all fill);
* lossy: the other party's leg loses 20 ms frames (random 3 % plus a 200 ms burst a minute):
  they are never pushed (push_at skips their index), so callrec must fill exactly those;
* monologue: one party talks for longer than max silence (turn after turn of its own, short
  gaps) while the other is silent, then the other does the same: the recording must NOT stop;
* both-silent: a conversation, then both parties silent for max silence + 1-4 s, then more
  speech: the recording must stop max silence after the last speech before that gap.
A call ends either by silence (a tail of max silence + 2-3 s after the last speech) or by a
hangup (its inputs end 0.3-1.0 s after the last speech, before max silence has passed).

Written per call: <id>.caller.wav / <id>.other.wav (A-law WAV, what each leg sends, starting at
its first pushed sample: a late leg's file starts with its first real frame) and the raw bytes
<id>.caller.al / <id>.other.al, plus one truth.json for the corpus listing, per call: the legs'
start index (samples since the recording began), input length, dropped frame indices, speech
segments (timeline samples), whether the leg must hold sound; the call's length (hangup point),
where the recording must start (the first speech on either leg), and the expected stop (reason,
sample) by the two-leg rule: the first moment both legs have been silent for max silence.
Deterministic for a given --seed.

    python make_corpus.py --out DIR [--size full|small] [--seed N]
"""

import argparse
import json
import os
import subprocess
import struct
import tempfile

import numpy as np

RATE = 8000
FRAME = 160
MAX_SILENCE_MS = 2000  # the corpus's milliseconds_max_silence
MS = MAX_SILENCE_MS * RATE // 1000
SPEECH_DBFS = -20.0
FLOOR_DBFS = -70.0

VOICES = {"caller": ("en-us", 170), "other": ("en-gb+f3", 175)}
SENTENCES = {
    "caller": [
        "Hello, I am calling about the order I placed last week.",
        "My account number is four seven two, nine one, five five.",
        "The delivery never arrived, and nobody answered the phone.",
        "Could you check where it is, please?",
        "Yes, that is the right address.",
        "I think there is a problem with the last payment.",
        "Thursday afternoon would suit me better.",
        "No, I have not had an email about it.",
        "Right, and how long will that take?",
        "Thanks very much, that is all I needed.",
    ],
    "other": [
        "Good morning, thank you for calling, how can I help?",
        "Can I take your account number, please?",
        "Let me have a look at that for you.",
        "I can see the parcel left the depot on Monday.",
        "It looks like the driver could not find the house.",
        "I will book a new delivery for you.",
        "Is there anything else I can help you with today?",
        "One moment while I check the system.",
        "Okay, that is all sorted now.",
        "You should get a text message tomorrow morning.",
    ],
}


def synth(text, voice, speed, tmp):
    wav, raw = os.path.join(tmp, "u.wav"), os.path.join(tmp, "u.raw")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", wav, text], check=True)
    subprocess.run(["sox", "-q", "-R", "-D", "-G", wav, "-r", str(RATE), "-c", "1", "-b", "16", "-e", "signed",
                    "-t", "raw", raw], check=True)
    x = np.fromfile(raw, dtype="<i2").astype(np.float64)
    loud = np.nonzero(np.abs(x) > 0.01 * np.abs(x).max())[0]
    x = x[loud[0]:loud[-1] + 1]
    return x * (32768 * 10 ** (SPEECH_DBFS / 20)) / np.sqrt(np.mean(x * x))


def alaw_table():
    """The 256 G.711 A-law decoded values (ITU-T G.711, 16-bit scale)."""
    out = []
    for code in range(256):
        a = code ^ 0x55
        sign, exponent, mantissa = a & 0x80, (a >> 4) & 7, a & 0x0F
        magnitude = (mantissa << 4) + 8 if exponent == 0 else ((mantissa << 4) + 0x108) << (exponent - 1)
        out.append(magnitude if sign else -magnitude)
    return np.array(out, dtype=np.int64)


TABLE = alaw_table()
ORDER = np.argsort(TABLE, kind="stable")
SORTED = TABLE[ORDER]
ALAW_SILENCE = 0xD5  # A-law code of 0 (+8): callrec's fill


def to_alaw(x):
    """Nearest A-law code for each sample (what a G.711 encoder sends)."""
    x = np.clip(np.round(x), -32768, 32767)
    i = np.clip(np.searchsorted(SORTED, x), 1, len(SORTED) - 1)
    lower_closer = (x - SORTED[i - 1]) <= (SORTED[i] - x)
    return ORDER[np.where(lower_closer, i - 1, i)].astype(np.uint8)


def write_alaw_wav(path, codes):
    """A mono A-law WAV (format tag 6, with the fact chunk non-PCM formats carry)."""
    data = codes.tobytes()
    fmt = struct.pack("<HHIIHHH", 6, 1, RATE, RATE, 1, 8, 0)
    body = (b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"fact" + struct.pack("<II", 4, len(data))
            + b"data" + struct.pack("<I", len(data)) + data + (b"\0" if len(data) & 1 else b""))
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", len(body)) + body)


def conversation(rng, pools, seconds, kind):
    """Places utterances on the timeline. Returns {leg: [(start, utterance)]}, the last speech end
    of the part a recorder must record, and speech placed after a both-silent gap (or None)."""
    placed = {"caller": [], "other": []}
    at = int(rng.uniform(0.4, 1.2) * RATE)
    speaker = "caller"
    target = int(seconds * RATE)
    silent_gap_at = None
    if kind == "both-silent":
        silent_gap_at = int(target * rng.uniform(0.4, 0.6))
    turn = 0
    while True:
        if kind == "monologue":
            # Blocks of several utterances by one party (short gaps), longer than max silence, so
            # the other party is silent for longer than max silence while the block lasts.
            block = 2 if seconds < 10 else int(rng.integers(2, 5))
        else:
            block = 1
        for b in range(block):
            u = pools[speaker][int(rng.integers(len(pools[speaker])))]
            placed[speaker].append((at, u))
            at += len(u)
            if b < block - 1:
                at += int(rng.uniform(0.2, 0.8) * RATE)
        turn += 1
        if silent_gap_at is not None and at >= silent_gap_at and turn >= 2:
            # Both silent for longer than max silence; then one more exchange the recorder must
            # not wait for.
            end = at
            at += MS + int(rng.uniform(1.0, 4.0) * RATE)
            for s in ("other", "caller") if seconds >= 10 else ("caller",):
                u = pools[s][int(rng.integers(len(pools[s])))]
                placed[s].append((at, u))
                at += len(u) + int(0.5 * RATE)
            return placed, end, at
        if at >= target - 2 * RATE and turn >= 2:
            break
        if not kind.startswith("oneway"):  # one-way audio: only the caller is heard
            speaker = "other" if speaker == "caller" else "caller"
        if kind == "overlap":
            at -= int(rng.uniform(0.3, 1.0) * RATE)
        else:
            at += int(rng.uniform(0.2, 1.2) * RATE)
    return placed, at, None


def ideal_stop(segments, total):
    """The two-leg rule: the first moment both legs have been silent for max silence once sound
    has been heard, as (reason, sample, end of the speech before it); ("hangup", total, ...) when
    the call ends first."""
    merged = []
    for s, e in sorted(segments):
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    for i, (s, e) in enumerate(merged):
        nxt = merged[i + 1][0] if i + 1 < len(merged) else total
        if nxt - e >= MS:
            return "silence", e + MS, e
    return "hangup", total, merged[-1][1]


def make_call(cid, kind, seconds, ending, rng, pools, out):
    placed, last_end, after = conversation(rng, pools, seconds, kind)
    if after is not None:
        total = after + int(rng.uniform(0.5, 1.0) * RATE)
    elif ending == "silence":
        total = last_end + MS + int(rng.uniform(1.0, 1.5) * RATE)
    else:
        total = last_end + int(rng.uniform(0.3, 1.0) * RATE)
    total = (total + FRAME - 1) // FRAME * FRAME
    if kind in ("oneway-silent", "oneway-never"):
        placed["other"] = []
    legs, segments = {}, []
    for leg in ("caller", "other"):
        x = rng.standard_normal(total) * (32768 * 10 ** (FLOOR_DBFS / 20))
        segs = []
        for s, u in placed[leg]:
            x[s:s + len(u)] += u
            segs.append([s, s + len(u)])
        start, length, dropped = 0, total, []
        if leg == "other" and kind == "late":
            start = 3 * RATE  # the other leg's first packet comes 3 s after the caller's
            segs = [[max(s, start), e] for s, e in segs if e > start]
            length = total - start
        if leg == "other" and kind == "oneway-never":
            length = 0
        if leg == "other" and kind == "lossy":
            n = total // FRAME
            lost = rng.random(n) < 0.03
            for minute in range(0, n, 3000):  # a 200 ms burst a minute
                b = minute + int(rng.integers(0, min(3000, n) - 10))
                lost[b:b + 10] = True
            dropped = [int(i) for i in np.nonzero(lost)[0]]
            # An utterance whose last frames are lost ends (for the truth) where its last
            # received frame ends: that is the last speech the recorder hears.
            for seg in segs:
                while seg[1] > seg[0] and lost[(seg[1] - 1) // FRAME]:
                    seg[1] = (seg[1] - 1) // FRAME * FRAME
        codes = to_alaw(x[start:start + length])
        write_alaw_wav(os.path.join(out, f"{cid}.{leg}.wav"), codes)
        codes.tofile(os.path.join(out, f"{cid}.{leg}.al"))
        # Speech the leg sends: a dropped frame inside an utterance does not end it (the truth
        # for sound is the talkspurt; the detector bridges a 20 ms hole like a short pause).
        segments += [tuple(s) for s in segs]
        legs[leg] = {"start": start, "length": int(length), "dropped_frames": dropped, "speech": segs}
    reason, stop, speech_end = ideal_stop(segments, total)
    first = min(s for s, _ in segments)
    for leg in legs.values():
        # A leg holds sound when it speaks before the stop (speech after the stop is by
        # construction at least 1 s after it, see conversation()).
        leg["contains_sound"] = any(s < stop for s, _ in leg["speech"])
    return {"id": cid, "kind": kind, "seconds": total / RATE, "samples": total, "ending": ending,
            "first_speech": first, "stop_reason": reason, "stop": stop, "speech_end": speech_end,
            "python_only": kind in ("late", "lossy"), "legs": legs}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--size", choices=["full", "small"], default="full")
    ap.add_argument("--seed", type=int, default=20)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(a.seed)
    with tempfile.TemporaryDirectory() as tmp:
        pools = {leg: [synth(t, *VOICES[leg], tmp) for t in SENTENCES[leg]] for leg in VOICES}
    kinds = ["turns", "overlap", "late", "oneway-silent", "oneway-never", "lossy", "monologue", "both-silent"]
    if a.size == "small":
        # Six scenarios once, short (about a minute of audio in all): the subset scripts/test
        # runs. turns and oneway-silent are left to the full corpus (overlap and oneway-never
        # cover the same rules).
        plan = [("overlap", 4, "silence"), ("late", 4, "hangup"), ("oneway-never", 4, "silence"),
                ("lossy", 4, "hangup"), ("monologue", 4, "silence"), ("both-silent", 4, "hangup")]
    else:
        plan = []
        for k in kinds:
            lengths = [10, 30, 60, 180, 600] if k != "both-silent" else [10, 30, 60, 180]
            for i, s in enumerate(lengths):
                plan.append((k, s, "silence" if i % 2 == 0 else "hangup"))
    calls = []
    for n, (kind, seconds, ending) in enumerate(plan):
        calls.append(make_call(f"{n:02d}-{kind}-{seconds}s-{ending}", kind, seconds, ending, rng, pools, a.out))
    truth = {"rate": RATE, "milliseconds_max_silence": MAX_SILENCE_MS, "seed": a.seed, "size": a.size,
             "calls": calls}
    with open(os.path.join(a.out, "truth.json"), "w") as f:
        json.dump(truth, f, indent=1)
    print(f"{len(calls)} calls, {sum(c['seconds'] for c in calls):.0f} s of audio in {a.out}")


if __name__ == "__main__":
    main()
