"""In-band DTMF through Python: the standalone detector (whole buffer and streaming), and a
recording that an in-band key stops and that mask_dtmf keeps tones out of."""

import math
import struct

import pytest
from conftest import FRAME, audio_of, finish, push_all, quiet, sound

import callrec

KEYS = {"5": (770, 1336), "#": (941, 1477), "1": (697, 1209), "D": (941, 1633)}


def key(digit, ms, codec="alaw"):
    """A key's two tones at about -10 dBm0 each, made here (not by callrec)."""
    row, col = KEYS[digit]
    n = ms * 8
    pcm = [int(7200 * math.sin(2 * math.pi * row * i / 8000) + 7200 * math.sin(2 * math.pi * col * i / 8000)) for i in range(n)]
    return callrec.g711.encode(struct.pack(f"<{n}h", *pcm), codec)


def silence(ms, codec="alaw"):
    return callrec.g711.encode(b"\0\0" * ms * 8, codec)


@pytest.mark.parametrize("codec", ["alaw", "ulaw"])
def test_detect_whole_buffer(codec):
    audio = silence(100, codec) + key("5", 80, codec) + silence(60, codec) + key("D", 50, codec) + silence(50, codec)
    got = callrec.dtmf.detect(audio, codec)
    assert [d for d, _, _ in got] == ["5", "D"]
    (_, s0, e0), (_, s1, e1) = got
    assert abs(s0 - 0.100) <= 0.005 and abs(e0 - 0.180) <= 0.005
    assert abs(s1 - 0.240) <= 0.005 and abs(e1 - 0.290) <= 0.005
    # A 20 ms blip is not a key; noise-free silence and speech-like sound are not either.
    assert callrec.dtmf.detect(silence(50) + key("1", 20) + silence(50)) == []
    assert callrec.dtmf.detect(sound(100)) == []


def test_streaming_detector_any_piece_size():
    audio = silence(30) + key("#", 100) + silence(40) + key("#", 100) + silence(100)
    for size in (1, 33, 160, len(audio)):
        d = callrec.dtmf.Detector("alaw")
        events = []
        for i in range(0, len(audio), size):
            events += d.process(memoryview(audio)[i : i + size])
        events += d.finish()
        assert [(k, g) for k, g, _, _ in events] == [
            ("pressed", "#"),
            ("released", "#"),
            ("pressed", "#"),
            ("released", "#"),
        ]
        assert events[0][3] is None and events[1][3] is not None
    with pytest.raises(ValueError, match="codec"):
        callrec.dtmf.Detector("gsm")
    with pytest.raises(ValueError, match="codec"):
        callrec.dtmf.detect(b"", "gsm")


def test_in_band_bargein_and_masking(engine):
    call = quiet(10) + sound(90, start=10) + key("#", 100) + sound(100, start=105)
    rec = engine.record()
    stop, status = push_all(rec, call)
    assert status.reason == "bargein"
    result, _ = finish(engine)
    assert result.barge_in_digit == "#"
    assert audio_of(engine, result) == call[: 100 * FRAME]  # cut where the tone began

    call = quiet(10) + sound(90, start=10) + key("5", 100) + sound(100, start=105)
    rec = engine.record({"mask_dtmf": True})
    push_all(rec, call)
    rec.hangup()
    result, _ = finish(engine)
    audio = audio_of(engine, result)
    tone = slice(100 * FRAME, 105 * FRAME)
    assert len(audio) == len(call)
    assert audio[tone] == silence(100)
    assert audio[: 100 * FRAME - 80] == call[: 100 * FRAME - 80]
    assert audio[105 * FRAME + 80 :] == call[105 * FRAME + 80 :]
