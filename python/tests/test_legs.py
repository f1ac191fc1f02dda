"""Both parties of a call through Python (DESIGN §13): Engine.record_call gives two recorders,
pushed from two threads at once; the stereo file's channels are the two parties' audio,
sample-aligned; "mixed" is their saturated sum; push_at leaves gaps that are filled and
counted; contradictory options are refused."""

import pathlib
import struct
import threading

import pytest
from conftest import FRAME, finish, quiet, sound, speech_call

import callrec

ALAW_SILENCE = 0xD5


def wav_channels_and_audio(path):
    """(channels, audio bytes) of a RIFF WAV, read independently of callrec."""
    data = pathlib.Path(path).read_bytes()
    at, channels = 12, None
    while at + 8 <= len(data):
        cid, size = data[at : at + 4], struct.unpack_from("<I", data, at + 4)[0]
        if cid == b"fmt ":
            channels = struct.unpack_from("<H", data, at + 10)[0]
        if cid == b"data":
            return channels, data[at + 8 : at + 8 + size]
        at += 8 + size + (size & 1)
    raise AssertionError("no data chunk")


def file_of(engine, result):
    return pathlib.Path(engine.store) / result.filename.lstrip("/")


def other_party():
    """Quiet 1.2 s, 1.2 s of sound, quiet: the reply, overlapping the caller's speech."""
    return quiet(60, seed=7) + sound(60, start=60) + quiet(210, seed=9)


def push_in_thread(rec, audio):
    def run():
        for i in range(0, len(audio), FRAME):
            if rec.feed(audio[i : i + FRAME]).stopped:
                return

    t = threading.Thread(target=run)
    t.start()
    return t


def check_aligned(left, right, caller, other):
    """Channel 1 is a contiguous span of the caller's audio; channel 2, at the same offset, the
    other party's (A-law silence past its end). Returns the offset."""
    start = caller.find(left[:4000])
    assert start >= 0 and start % FRAME == 0, start
    pad = lambda audio, n: audio[start : start + n] + bytes([ALAW_SILENCE]) * max(0, start + n - len(audio))
    assert left == pad(caller, len(left))
    assert right == pad(other, len(right))
    return start


def test_two_threads_give_a_stereo_file_whose_channels_are_the_parties(engine):
    caller_audio, other_audio = speech_call(), other_party()
    caller, other = engine.record_call({"milliseconds_max_silence": 1000})
    assert (caller.leg, other.leg) == ("caller", "other")
    assert caller.filename == other.filename
    with caller, other:
        threads = [push_in_thread(caller, caller_audio), push_in_thread(other, other_audio)]
        for t in threads:
            t.join()
        status = caller.status
    assert status.reason == "silence", status
    result, _ = finish(engine)
    channels, audio = wav_channels_and_audio(file_of(engine, result))
    assert channels == 2 and len(audio) % 2 == 0
    left, right = audio[0::2], audio[1::2]
    check_aligned(left, right, caller_audio, other_audio)
    assert result.legs["caller"]["contains_sound"] and result.legs["other"]["contains_sound"]
    assert result.legs["caller"]["samples_filled"] == 0 == result.legs["other"]["samples_filled"]
    assert result.to_dict()["legs"] == result.legs
    assert result.samples == len(left)


def test_mixed_is_the_saturated_sum(engine):
    caller_audio, other_audio = speech_call(), other_party()
    caller, other = engine.record_call({"legs": "mixed", "milliseconds_max_silence": 1000})
    with caller, other:
        for i in range(0, len(caller_audio), FRAME):
            if caller.feed(caller_audio[i : i + FRAME]).stopped:
                break
            if other.feed(other_audio[i : i + FRAME]).stopped:
                break
    result, _ = finish(engine)
    channels, audio = wav_channels_and_audio(file_of(engine, result))
    assert channels == 1 and result.legs is not None
    a = struct.unpack(f"<{len(caller_audio)}h", callrec.g711.decode(caller_audio, "alaw"))
    b = struct.unpack(f"<{len(other_audio)}h", callrec.g711.decode(other_audio, "alaw"))
    summed = [max(-32768, min(32767, x + y)) for x, y in zip(a, b)]
    mixed = callrec.g711.encode(struct.pack(f"<{len(summed)}h", *summed), "alaw")
    start = mixed.find(audio[:4000])
    assert start >= 0 and mixed[start : start + len(audio)] == audio


def test_push_at_leaves_a_gap_that_is_filled_and_counted(engine):
    call = speech_call()
    caller, other = engine.record_call()
    with caller, other:
        for i in range(0, len(call), FRAME):
            caller.push(call[i : i + FRAME])
        # The other party's first packet arrives 1 s into the call, then it stops.
        other.push_at(8000, sound(10, start=50))
        assert other.push_at(4000, sound(1)).phase == "recording"  # late: dropped
        caller.hangup()
    result, _ = finish(engine)
    channels, audio = wav_channels_and_audio(file_of(engine, result))
    right = audio[1::2]
    assert channels == 2 and result.reason == "hangup"
    filled = result.legs["other"]["samples_filled"]
    assert filled == len(right) - 10 * FRAME, (filled, len(right))
    assert right.count(ALAW_SILENCE) >= filled
    assert result.legs["caller"]["samples_filled"] == 0
    assert result.legs["other"]["frames_dropped"] == 1


def test_contradictory_legs_are_refused(engine):
    with pytest.raises(callrec.OptionsError, match='legs: "caller" records one party'):
        engine.record_call({"legs": "caller"})
    with pytest.raises(ValueError, match="record_call"):
        engine.record({"legs": "both"})
    with engine.record() as rec:
        assert rec.leg is None
