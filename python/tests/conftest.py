"""Synthetic calls whose right answer is known by construction, and helpers."""

import math
import pathlib
import struct

import pytest

import callrec

FRAME = 160
REPO = pathlib.Path(__file__).resolve().parents[2]


def pcm16(samples):
    return struct.pack(f"<{len(samples)}h", *samples)


def sound(frames, codec="alaw", start=0):
    """Speech-like sound: a two-tone signal at about -15 dBm0 whose level rises and falls by
    14 dB every 240 ms like syllables (a steady tone is background to the detector), as the
    Rust tests' `common::sound`."""
    n0 = start * FRAME

    def at(n):
        t = n / 8000
        syllables = 0.6 + 0.4 * math.sin(2 * math.pi * t / 0.24)
        return int(syllables * (4000 * math.sin(2 * math.pi * 440 * t) + 2500 * math.sin(2 * math.pi * 1100 * t)))

    samples = [at(n0 + i) for i in range(frames * FRAME)]
    return callrec.g711.encode(pcm16(samples), codec)


def quiet(frames, codec="alaw", seed=1):
    """Low pseudo-random noise around -60 dBm0: silence."""
    x = seed
    samples = []
    for _ in range(frames * FRAME):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        samples.append((x >> 16) % 64 - 32)
    return callrec.g711.encode(pcm16(samples), codec)


def speech_call(codec="alaw"):
    """0.6 s quiet, 2 s sound, 4 s quiet: first sound at frame 30, last at 129."""
    return quiet(30, codec) + sound(100, codec, 30) + quiet(200, codec, 2)


def wav_audio(path):
    """(format tag, audio bytes) of a RIFF WAV, read independently of callrec."""
    data = pathlib.Path(path).read_bytes()
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    at, tag = 12, None
    while at + 8 <= len(data):
        cid, size = data[at : at + 4], struct.unpack_from("<I", data, at + 4)[0]
        if cid == b"fmt ":
            tag = struct.unpack_from("<H", data, at + 8)[0]
        if cid == b"data":
            return tag, data[at + 8 : at + 8 + size]
        at += 8 + size + (size & 1)
    raise AssertionError("no data chunk")


def push_all(rec, audio, size=FRAME, before=None):
    """Feeds audio in `size` pieces (feed waits for ring space, as a faster-than-real-time host
    must); returns (index of the piece whose feed returned stopped, status)."""
    status = rec.status
    for i in range(0, len(audio), size):
        if before:
            before(i // size, rec)
        piece = audio[i : i + size]
        status = rec.feed(piece)
        if status.stopped:
            return i // size, status
    return None, status


def finish(engine, expect_available=True):
    """The finished and available results of the next recording, checked against each other."""
    finished = engine.next_event(timeout=10)
    assert finished is not None and finished.kind == "finished" and not finished.file_available
    if not expect_available:
        return finished, None
    available = engine.next_event(timeout=10)
    assert available is not None and available.kind == "available" and available.file_available
    a, f = available.to_dict(), finished.to_dict()
    assert a.pop("file_available") is True and f.pop("file_available") is False
    assert a == f
    return finished, available


@pytest.fixture
def engine(tmp_path):
    with callrec.Engine(tmp_path / "store", ring_seconds=30) as e:
        yield e


def audio_of(engine, result):
    return wav_audio(pathlib.Path(engine.store) / result.filename.lstrip("/"))[1]
