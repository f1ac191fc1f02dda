"""Pause and resume through Python: the file is the expected splice for both behaviours."""

import pytest
from conftest import FRAME, audio_of, finish, push_all, quiet, sound

import callrec


def frames(audio, start, end):
    return audio[start * FRAME : end * FRAME]


@pytest.mark.parametrize("behavior", ["skip", "silence"])
@pytest.mark.parametrize("codec", ["alaw", "ulaw"])
def test_pause_splices_the_file(engine, behavior, codec):
    call = quiet(10, codec) + sound(200, codec, start=10)

    def control(i, rec):
        if i == 50:
            assert rec.pause().phase == "recording"
            assert rec.paused
        if i == 90:
            rec.resume()
            assert not rec.paused

    rec = engine.record({"pause_behavior": behavior}, codec=codec)
    stop, _ = push_all(rec, call, before=control)
    assert stop is None
    rec.hangup()
    result, _ = finish(engine)
    silence = callrec.g711.encode(b"\0\0" * 40 * FRAME, codec)
    gap = b"" if behavior == "skip" else silence
    assert audio_of(engine, result) == frames(call, 0, 50) + gap + frames(call, 90, 210)


def test_barge_in_while_paused(engine):
    call = quiet(10) + sound(200, start=10)

    def control(i, rec):
        if i == 30:
            rec.pause()
        if i == 60:
            assert rec.digit("#").reason == "bargein"

    rec = engine.record()
    stop, _ = push_all(rec, call, before=control)
    assert stop == 60
    result, _ = finish(engine)
    assert (result.reason, result.barge_in_digit) == ("bargein", "#")
    assert audio_of(engine, result) == frames(call, 0, 30)


def test_bad_pause_behavior_names_the_field(engine):
    with pytest.raises(ValueError, match="pause_behavior"):
        engine.record({"pause_behavior": "mute"})
