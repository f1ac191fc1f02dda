"""Makes the sound/silence corpus: synthetic calls whose truth is known by construction.

Speech is espeak-ng (several voices and speeds) resampled to 8 kHz by sox; each utterance's
first and last sample above 1 % of its peak are its true start and end. A call is line noise
from its first sample, a lead-in, two to four utterances separated by pauses shorter than the
silence limit, sometimes a pause longer than the limit followed by one more utterance (which a
recorder must not wait for), and a tail. The ideal stop is the end of the last utterance before
the first gap >= max_silence, plus max_silence.

Noise (8 kinds): white, pink (1/f), brown (1/f^2), 50 Hz and 60 Hz hum with harmonics, babble of
six other voices, a pink floor that steps up 15 dB in the middle of the speech (the SNR is the
one after the step), and clicks (1-5 ms tone bursts or decaying pops, one to three a second, on a
-70 dBFS line; the SNR is the speech level over the click's own level, less 6 dB, so clicks
at SNR 0 are 6 dB louder than the speech). SNR is active speech RMS over noise RMS. Plus
clean-line calls (speech at -10..-55 dBFS on a -80 dBFS line) and noise-only calls (each noise
at -20..-45 dBFS, no speech). Levels are dBFS of RMS against a full-scale square wave.

Every call is quantised to G.711 mu-law and written as raw mu-law bytes (`<id>.ul`, what a
recorder receives); `truth.json` lists each call's truth. Deterministic for a given --seed.

    python make_corpus.py --out DIR [--size full|small] [--seed N]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

RATE = 8000
MAX_SILENCE = 1.0  # seconds: the corpus's milliseconds_max_silence

SENTENCES = [
    "Hello, I am calling about the order I placed last week.",
    "Could you please call me back when you get this message?",
    "My account number is four seven two, nine one, five five.",
    "The delivery never arrived, and nobody answered the phone.",
    "I would like to change my appointment to Thursday afternoon.",
    "Thanks very much, that is all I needed to say.",
    "We are running about twenty minutes late, sorry about that.",
    "Please send the invoice to the accounts department.",
    "It is raining here, so the engineer could not finish the roof.",
    "Give me a ring on my mobile any time after six.",
    "The meeting has been moved to the second floor.",
    "I think there is a problem with the last payment.",
    "Yes, tomorrow morning is fine for me.",
    "She said the parcel would be left with a neighbour.",
    "Can you confirm the booking for two people on Friday?",
    "This is just a quick reminder about the dentist.",
]
VOICES = [
    "en-us", "en-gb", "en-us+f3", "en-gb+f2", "en-gb-scotland", "en-us+m3",
    "en-gb-x-rp+f4", "en-029", "en-us+f5", "en-gb-x-gbclan",
]
SPEEDS = [120, 140, 160, 175, 190]
NOISES = ["white", "pink", "brown", "hum50", "hum60", "babble", "step", "clicks"]
SNRS = [30, 20, 15, 10, 5, 0]


def synth(text, voice, speed, tmp):
    wav = os.path.join(tmp, "u.wav")
    raw = os.path.join(tmp, "u.raw")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", wav, text], check=True)
    subprocess.run(["sox", "-q", "-R", "-D", "-G", wav, "-r", str(RATE), "-c", "1", "-b", "16", "-e", "signed",
                    "-t", "raw", raw], check=True)
    x = np.fromfile(raw, dtype="<i2").astype(np.float64)
    loud = np.nonzero(np.abs(x) > 0.01 * np.abs(x).max())[0]
    x = x[loud[0]:loud[-1] + 1]
    return x / np.sqrt(np.mean(x * x))  # unit active RMS


def shaped(n, rng, exponent):
    """Gaussian noise with power spectrum 1/f^exponent above 20 Hz, unit RMS."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / RATE)
    gain = np.where(f < 20, 0.0, 1.0 / np.maximum(f, 20) ** (exponent / 2))
    x = np.fft.irfft(spec * gain, n)
    return x / np.sqrt(np.mean(x * x))


def hum(n, rng, mains):
    t = np.arange(n) / RATE
    amps = {1: 1.0, 2: 0.3, 3: 0.5, 4: 0.1, 5: 0.25, 7: 0.12, 9: 0.06}
    x = sum(a * np.sin(2 * np.pi * mains * h * t + rng.uniform(0, 2 * np.pi))
            for h, a in amps.items())
    return x / np.sqrt(np.mean(x * x))


def babble(n, rng, pool):
    x = np.zeros(n)
    for _ in range(6):
        stream = np.concatenate([pool[i] for i in rng.permutation(len(pool))])
        while len(stream) < 2 * n:
            stream = np.concatenate([stream, stream])
        start = rng.integers(0, len(stream) - n)
        x += stream[start:start + n]
    return x / np.sqrt(np.mean(x * x))


def clicks(n, rng):
    """Unit-RMS-per-click bursts; returns the signal (click RMS 1 within each click)."""
    x = np.zeros(n)
    at = int(rng.uniform(0.1, 0.6) * RATE)
    while at < n - 80:
        length = int(rng.uniform(0.001, 0.005) * RATE)
        t = np.arange(length)
        if rng.random() < 0.5:
            burst = np.sin(2 * np.pi * rng.uniform(500, 2500) * t / RATE)
        else:
            burst = rng.standard_normal(length) * np.exp(-t / (length / 3))
        burst /= np.sqrt(np.mean(burst * burst))
        x[at:at + length] += burst
        at += int(rng.uniform(0.3, 1.0) * RATE)
    return x


def mulaw_table():
    """The 256 G.711 mu-law decoded values (ITU-T G.711, 16-bit scale)."""
    out = []
    for code in range(256):
        u = ~code & 0xFF
        sign, exponent, mantissa = u & 0x80, (u >> 4) & 7, u & 0x0F
        magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
        out.append(-magnitude if sign else magnitude)
    return np.array(out, dtype=np.int64)


TABLE = mulaw_table()
ORDER = np.argsort(TABLE, kind="stable")
SORTED = TABLE[ORDER]


def to_mulaw(x):
    """Nearest mu-law code for each sample (what a G.711 encoder sends)."""
    x = np.clip(np.round(x), -32768, 32767)
    i = np.clip(np.searchsorted(SORTED, x), 1, len(SORTED) - 1)
    lower_closer = (x - SORTED[i - 1]) <= (SORTED[i] - x)
    return ORDER[np.where(lower_closer, i - 1, i)].astype(np.uint8)


def dbfs_scale(db):
    return 32768.0 * 10 ** (db / 20)


def speech_call(rng, pool, speech_db):
    """Returns (speech signal at speech_db, segments [(start, end) samples], ideal stop, end)."""
    pieces, segments = [], []
    at = int(rng.uniform(0.4, 1.2) * RATE)
    count = int(rng.integers(2, 5))
    long_pause_before = int(rng.integers(1, count)) if (rng.random() < 0.35 and count > 2) else None
    for k in range(count):
        u = pool[rng.integers(len(pool))]
        if k > 0:
            if k == long_pause_before:
                gap = rng.uniform(MAX_SILENCE + 0.4, MAX_SILENCE + 1.5)
            else:
                gap = rng.uniform(0.15, 0.8) * MAX_SILENCE
            at += int(gap * RATE)
        segments.append((at, at + len(u)))
        pieces.append((at, u))
        at += len(u)
    # The end of the last utterance before the first gap of max_silence or more.
    ideal_end = segments[0][1]
    for i in range(1, len(segments)):
        if segments[i][0] - segments[i - 1][1] >= MAX_SILENCE * RATE:
            break
        ideal_end = segments[i][1]
    total = at + int((MAX_SILENCE + 3.0) * RATE)
    total = max(total, ideal_end + int((MAX_SILENCE + 3.0) * RATE))
    x = np.zeros(total)
    for start, u in pieces:
        x[start:start + len(u)] += u * dbfs_scale(speech_db)
    return x, segments, ideal_end, total


def noise_of(kind, n, rng, pool, segments):
    if kind == "white":
        return rng.standard_normal(n)
    if kind == "pink":
        return shaped(n, rng, 1.0)
    if kind == "brown":
        return shaped(n, rng, 2.0)
    if kind == "hum50":
        return hum(n, rng, 50) + 0.003 * rng.standard_normal(n)
    if kind == "hum60":
        return hum(n, rng, 60) + 0.003 * rng.standard_normal(n)
    if kind == "babble":
        return babble(n, rng, pool)
    if kind == "step":
        x = shaped(n, rng, 1.0)
        lo, hi = (segments[0][0], segments[-1][1]) if segments else (0, n)
        step_at = int(lo + rng.uniform(0.3, 0.7) * (hi - lo))
        x[:step_at] *= 10 ** (-15 / 20)
        return x
    if kind == "clicks":
        return clicks(n, rng)
    raise ValueError(kind)


PARTS = ("tuning", "held-out")

# The real-speech corpus: recordings that Debian's codec2-examples package ships (LGPL-2.1,
# David Rowe's codec2 test material; 8 kHz 16-bit raw). The package names no speakers: each
# entry is one voice (file, or a 6 s quarter of hts.raw, which holds four), its sex from its
# measured median F0, its style, and its part. Split by speaker: no voice is in both parts.
REAL_SPEAKERS = [
    # name, file, first s, last s (None: to the end), sex, style, part
    ("hts1", "raw/hts.raw", 0, 6, "m", "read", "tuning"),
    ("hts2", "raw/hts.raw", 6, 12, "f", "read", "tuning"),
    ("forig", "raw/forig.raw", 0, None, "f", "read", "tuning"),
    ("cross", "raw/cross.raw", 0, None, "m", "read", "tuning"),
    ("kristoff", "raw/kristoff.raw", 0, None, "m", "read", "tuning"),
    ("ve9qrp", "raw/ve9qrp.raw", 0, None, "m", "spontaneous, HF radio", "tuning"),
    ("hts3", "raw/hts.raw", 12, 18, "m", "read", "held-out"),
    ("hts4", "raw/hts.raw", 18, 24, "f", "read", "held-out"),
    ("morig", "raw/morig.raw", 0, None, "m", "read", "held-out"),
    ("speech16k", "raw/speech_orig_16k.wav", 0, None, "f", "read", "held-out"),
    ("big_dog", "raw/big_dog.raw", 0, None, "m", "read", "held-out"),
    ("vk5qi", "raw/vk5qi.raw", 0, None, "m", "spontaneous, HF radio", "held-out"),
    ("cq_ref", "raw/cq_ref.raw", 0, None, "m", "spontaneous, HF radio", "held-out"),
    ("g3plx", "raw/g3plx.raw", 0, None, "m", "spontaneous, HF radio", "held-out"),
]
TRUTH_FRAME = 80           # 10 ms
TRUTH_MARGIN_DB = 15.0     # a frame is speech when this far above the recording's own floor
TRUTH_BRIDGE = 0.300       # s: shorter gaps inside speech are bridged (one utterance)
TRUTH_MIN_RUN = 0.060      # s: shorter runs (after bridging) are dropped
MAX_UTTERANCES = 12        # per speaker (ve9qrp alone has ~100)


def real_truth(x):
    """The truth rule on a clean recording: [(start, end)] samples of its utterances.

    10 ms frames; the floor is the 10th percentile of the frames' energy (dB); a frame is speech
    when its energy is at least TRUTH_MARGIN_DB above that floor; gaps shorter than TRUTH_BRIDGE
    are bridged, runs shorter than TRUTH_MIN_RUN dropped. Each remaining run is one utterance.
    """
    n = len(x) // TRUTH_FRAME
    e = 10 * np.log10(np.mean(x[: n * TRUTH_FRAME].reshape(n, TRUTH_FRAME) ** 2, axis=1) + 1e-3)
    speech = e >= np.percentile(e, 10) + TRUTH_MARGIN_DB
    runs, i = [], 0
    while i < n:
        if speech[i]:
            j = i
            while j < n and speech[j]:
                j += 1
            runs.append([i, j])
            i = j
        else:
            i += 1
    bridged = []
    for r in runs:
        if bridged and (r[0] - bridged[-1][1]) * TRUTH_FRAME < TRUTH_BRIDGE * RATE:
            bridged[-1][1] = r[1]
        else:
            bridged.append(r)
    return [(s * TRUTH_FRAME, e * TRUTH_FRAME) for s, e in bridged
            if (e - s) * TRUTH_FRAME >= TRUTH_MIN_RUN * RATE]


def load_real(source, tmp):
    """{speaker: [unit-active-RMS utterances]} from the codec2-examples recordings."""
    out = {}
    for name, rel, first, last, _sex, _style, _part in REAL_SPEAKERS:
        path = os.path.join(source, rel)
        if rel.endswith(".wav"):
            raw = os.path.join(tmp, name + ".raw")
            subprocess.run(["sox", "-q", "-R", "-D", path, "-r", str(RATE), "-c", "1", "-b", "16", "-e", "signed",
                            "-t", "raw", raw], check=True)
            path = raw
        x = np.fromfile(path, dtype="<i2").astype(np.float64)
        x = x[int(first * RATE): None if last is None else int(last * RATE)]
        x = x - x.mean()
        utts = []
        for s, e in real_truth(x)[:MAX_UTTERANCES]:
            u = x[s:e].copy()
            ramp = np.linspace(0.0, 1.0, 40)  # 5 ms: no click at the cut
            u[:40] *= ramp
            u[-40:] *= ramp[::-1]
            utts.append(u / np.sqrt(np.mean(u * u)))  # unit active RMS
        out[name] = utts
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--size", choices=["full", "small"], default="full")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--speech", choices=["espeak", "real"], default="espeak",
                    help="espeak-ng synthetic speech, or real recordings (codec2-examples)")
    ap.add_argument("--source", default="/usr/share/codec2",
                    help="where codec2-examples is installed (--speech real)")
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    os.makedirs(a.out, exist_ok=True)
    small = a.size == "small"
    real = a.speech == "real"

    with tempfile.TemporaryDirectory() as tmp:
        if real:
            by_speaker = load_real(a.source, tmp)
        else:
            pool = []
            n_utts = 16 if small else 40
            for i in range(n_utts):
                text = SENTENCES[i % len(SENTENCES)]
                voice = VOICES[i % len(VOICES)]
                speed = SPEEDS[(i * 3) % len(SPEEDS)]
                pool.append(synth(text, voice, speed, tmp))
    if real:
        speakers = {p: [s[0] for s in REAL_SPEAKERS if s[6] == p] for p in PARTS}
        turn = {p: 0 for p in PARTS}

        def choose(part):
            """(speaker, its utterances, babble from the part's other voices): one caller a call,
            the part's speakers in turn."""
            names = speakers[part]
            who = names[turn[part] % len(names)]
            turn[part] += 1
            return who, by_speaker[who], [u for n in names if n != who for u in by_speaker[n]]

        def only_babble(part):
            return [u for n in speakers[part] for u in by_speaker[n]]
    else:
        # Babble is made of other voices than the call's: split the pool.
        speech_pool, babble_pool = pool[: len(pool) // 2], pool[len(pool) // 2:]

        def choose(_part):
            return None, speech_pool, babble_pool

        def only_babble(_part):
            return babble_pool

    calls = []

    def emit(cid, x, meta):
        codes = to_mulaw(x)
        codes.tofile(os.path.join(a.out, cid + ".ul"))
        meta["id"] = cid
        meta["samples"] = int(len(codes))
        calls.append(meta)

    # The tuning and held-out parts: synthetic calls alternate by repetition (every cell of the
    # tables is in both parts; the espeak voices are shared, so this split is by draw, not by
    # voice); real-speech calls alternate the same way and each part has its own speakers.
    # Noise-only calls alternate over noise type and level.
    reps = 2 if small else 8
    snrs = [20, 10] if small else SNRS
    for kind in NOISES:
        for snr in snrs:
            for r in range(reps):
                part = PARTS[r % 2]
                who, speech_pool, babble_pool = choose(part)
                speech_db = rng.uniform(-30, -18)
                x, segments, ideal_end, total = speech_call(rng, speech_pool, speech_db)
                noise = noise_of(kind, total, rng, babble_pool, segments)
                noise_db = speech_db - snr
                if kind == "clicks":
                    noise = noise * dbfs_scale(noise_db + 6) + rng.standard_normal(total) * dbfs_scale(-70)
                else:
                    noise = noise * dbfs_scale(noise_db)
                emit(f"{kind}-snr{snr}-{r}", x + noise, {
                    "set": "noise", "noise": kind, "snr": snr, "speech_dbfs": round(speech_db, 1),
                    "segments": segments, "ideal_end": ideal_end,
                    "ideal_stop": ideal_end + int(MAX_SILENCE * RATE), "has_speech": True,
                    "part": part, "speaker": who,
                })
    levels = [-25, -55] if small else [-10, -15, -20, -25, -30, -35, -40, -45, -50, -55]
    for level in levels:
        for r in range(2 if small else 4):
            part = PARTS[r % 2]
            who, speech_pool, _ = choose(part)
            x, segments, ideal_end, total = speech_call(rng, speech_pool, level)
            x = x + rng.standard_normal(total) * dbfs_scale(-80)
            emit(f"clean{level}-{r}", x, {
                "set": "clean", "noise": "clean", "snr": None, "speech_dbfs": level,
                "segments": segments, "ideal_end": ideal_end,
                "ideal_stop": ideal_end + int(MAX_SILENCE * RATE), "has_speech": True,
                "part": part, "speaker": who,
            })
    noise_levels = [-35] if small else [-20, -25, -30, -35, -40, -45]
    for ki, kind in enumerate(NOISES):
        for li, level in enumerate(noise_levels):
            part = PARTS[(ki + li) % 2]
            total = 8 * RATE
            noise = noise_of(kind, total, rng, only_babble(part), [])
            if kind == "clicks":
                noise = noise * dbfs_scale(level) + rng.standard_normal(total) * dbfs_scale(-70)
            else:
                noise = noise * dbfs_scale(level)
            emit(f"only-{kind}{level}", noise, {
                "set": "noise-only", "noise": kind, "snr": None, "noise_dbfs": level,
                "segments": [], "ideal_end": None, "ideal_stop": None, "has_speech": False,
                "part": part,
            })
    with open(os.path.join(a.out, "truth.json"), "w") as f:
        json.dump({"rate": RATE, "max_silence_ms": int(MAX_SILENCE * 1000), "speech": a.speech,
                   "calls": calls}, f)
    print(f"{len(calls)} calls in {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
