"""Every stop reason, every input buffer type, events, errors and misuse, through Python."""

import array
import json
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from conftest import FRAME, REPO, audio_of, finish, push_all, quiet, sound, speech_call, wav_audio

import callrec


def frames(audio, start, end):
    return audio[start * FRAME : end * FRAME]


def test_silence(engine):
    call = speech_call()
    with engine.record({"milliseconds_max_silence": 1000}) as rec:
        stop, status = push_all(rec, call)
    assert stop == 179 and status.phase == "stopped" and status.reason == "silence"
    result, _ = finish(engine)
    assert (result.reason, result.contains_sound, result.seconds_duration) == ("silence", True, 3.2)
    assert result.samples == 160 * 160 and result.barge_in_digit is None
    assert audio_of(engine, result) == frames(call, 20, 180)


def test_initial_silence(engine):
    rec = engine.record('{"milliseconds_max_initial_silence": 2000}', codec="ulaw")
    stop, status = push_all(rec, quiet(300, "ulaw"))
    assert stop == 99 and status.reason == "silence"
    result, _ = finish(engine)
    assert (result.contains_sound, result.samples, result.seconds_duration) == (False, 0, 0.0)
    assert audio_of(engine, result) == b""


def test_duration(engine):
    call = quiet(5) + sound(300, start=5)
    rec = engine.record({"seconds_max_duration": 2})
    stop, status = push_all(rec, call)
    assert stop == 99 and status.reason == "duration"
    result, _ = finish(engine)
    assert result.seconds_duration == 2.0 and audio_of(engine, result) == frames(call, 0, 100)


def test_bargein(engine):
    call = quiet(50) + sound(200, start=50)

    def press(i, rec):
        if i == 60:
            assert rec.digit("1").phase == "recording"  # not a barge-in digit
        if i == 80:
            assert rec.digit("*").reason == "bargein"

    rec = engine.record({"barge_in_digits": "#*"})
    stop, _ = push_all(rec, call, before=press)
    assert stop == 80
    result, _ = finish(engine)
    assert (result.reason, result.barge_in_digit) == ("bargein", "*")
    assert result.to_dict()["barge_in_digit"] == "*"
    assert audio_of(engine, result) == frames(call, 40, 80)


def test_filesize(engine):
    call = quiet(50) + sound(200, start=50)
    rec = engine.record({"max_file_bytes": 8059})
    stop, status = push_all(rec, call)
    assert stop == 89 and status.reason == "filesize"
    result, _ = finish(engine)
    assert audio_of(engine, result) == frames(call, 40, 90)


def test_hangup_keeps_a_partial_frame(engine):
    call = (quiet(50) + sound(101, start=50))[:-80]
    rec = engine.record()
    stop, status = push_all(rec, call)
    assert stop is None and rec.hangup().reason == "hangup"
    result, _ = finish(engine)
    assert audio_of(engine, result) == call[40 * FRAME :]


def test_abort_from_another_thread(engine):
    call = quiet(10) + sound(3000, start=10)
    # A fixed threshold keeps the steady tone "sound" forever: only the abort can stop this.
    rec = engine.record({"silence_threshold_db": -40})
    pushed = []
    started = threading.Event()

    def abort():
        started.wait()
        assert rec.abort() is True

    t = threading.Thread(target=abort)
    t.start()
    i = 0
    while True:
        if len(pushed) == 50:
            started.set()
        status = rec.push(call[i : i + FRAME])
        if status.stopped:
            break
        pushed.append(i)
        i = (i + FRAME) % len(call)
        if started.is_set():
            time.sleep(0.0005)  # give the aborting thread the GIL
    t.join()
    assert status.reason == "aborted" and rec.abort() is False
    result, _ = finish(engine)
    assert result.reason == "aborted"
    want = (call * (len(pushed) * FRAME // len(call) + 1))[: len(pushed) * FRAME]
    assert audio_of(engine, result) == want


def test_close_and_shutdown_are_other(tmp_path):
    call = speech_call()
    engine = callrec.Engine(tmp_path)
    rec = engine.record()
    push_all(rec, call[: 70 * FRAME])
    rec.close()
    assert rec.closed
    with pytest.raises(RuntimeError, match="closed"):
        rec.push(call[:FRAME])
    with pytest.raises(RuntimeError, match="closed"):
        _ = rec.status
    result, _ = finish(engine)
    assert result.reason == "other" and audio_of(engine, result) == frames(call, 20, 70)
    rec = engine.record()
    push_all(rec, call[: 120 * FRAME])
    engine.shutdown()
    assert rec.push(call[:FRAME]).reason == "other"
    result, _ = finish(engine)
    assert result.reason == "other" and audio_of(engine, result) == frames(call, 20, 120)
    with pytest.raises(RuntimeError, match="shut down"):
        engine.record()
    engine.shutdown()  # idempotent


def test_error_reason_in_a_process_with_a_file_size_limit(tmp_path):
    # RLIMIT_FSIZE makes the writer's write fail (EFBIG); a child process keeps it contained.
    # SIGXFSZ keeps its default action (kill): the engine's threads block it, so the process
    # lives, and the audio written before the failure is kept as a valid file.
    script = textwrap.dedent(
        f"""
        import resource, sys
        sys.path.insert(0, {str(REPO / "python" / "tests")!r})
        from conftest import sound, push_all, finish
        import callrec
        engine = callrec.Engine({str(tmp_path)!r})
        # The fixed threshold: sound from the first frame, so the file is the pushed audio
        # from its first byte (the adaptive detector takes a call's first frame as background).
        rec = engine.record({{"silence_threshold_db": -40}})
        resource.setrlimit(resource.RLIMIT_FSIZE, (20000, resource.RLIM_INFINITY))
        import time
        status = rec.status
        for i in range(0, 500 * 160, 160):
            status = rec.push(sound(500)[i:i + 160]) if i == 0 else rec.push(audio[i:i + 160])
            if i == 0:
                audio = sound(500)
            time.sleep(0.001)
            if status.stopped:
                break
        result, available = finish(engine)
        assert status.reason == "error", status
        assert result.reason == "error" and available.reason == "error"
        print("ok", result.filename, result.samples)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    _, name, samples = out.stdout.split()
    tag, audio = wav_audio(tmp_path / name.lstrip("/"))
    assert tag == 6 and len(audio) == int(samples) > 10_000
    assert audio == sound(500)[: len(audio)]


@pytest.mark.parametrize(
    "make",
    [
        bytes,
        bytearray,
        memoryview,
        lambda b: array.array("B", b),
        lambda b: memoryview(b"xx" + b + b"yy")[2:-2],  # a slice of a bigger buffer
    ],
    ids=["bytes", "bytearray", "memoryview", "array", "memoryview-slice"],
)
def test_every_buffer_type(engine, make):
    call = speech_call()
    rec = engine.record({"milliseconds_max_silence": 1000})
    for i in range(0, len(call), FRAME):
        if rec.push(make(call[i : i + FRAME])).stopped:
            break
    result, _ = finish(engine)
    assert audio_of(engine, result) == frames(call, 20, 180)


def test_bad_buffers_and_arguments(engine):
    rec = engine.record()
    with pytest.raises((BufferError, ValueError), match="contiguous"):
        rec.push(memoryview(bytes(320))[::2])
    with pytest.raises((BufferError, ValueError)):
        rec.push(array.array("h", [0] * 160))  # not bytes
    with pytest.raises(TypeError):
        rec.push("text")
    with pytest.raises(ValueError, match="8000"):
        rec.push(bytes(8001))
    with pytest.raises(ValueError, match="DTMF"):
        rec.digit("x")
    with pytest.raises(ValueError, match="one character"):
        rec.digit("12")
    with pytest.raises(ValueError, match="writable"):
        rec.playout(bytes(160))
    with pytest.raises(ValueError, match="codec"):
        engine.record(codec="gsm")
    with pytest.raises(TypeError):
        engine.record(["not", "options"])
    with pytest.raises(ValueError, match="timeout"):
        engine.next_event(timeout=-1)
    with pytest.raises(ValueError, match="ring_seconds"):
        callrec.Engine(engine.store, ring_seconds=0)
    assert rec.push(b"").phase == "waiting"  # empty input is a no-op
    rec.close()


@pytest.mark.parametrize(
    "options, field",
    [
        ({"seconds_max_duration": -1}, "seconds_max_duration"),
        ({"colour": "red"}, "colour"),
        ({"barge_in_digits": "#x"}, "barge_in_digits"),
        ({"format": "gsm"}, "format"),
        ('{"milliseconds_max_silence": 0}', "milliseconds_max_silence"),
        ({"encryption_cipher": {"type": "aescbc", "key": "00", "initialisation_vector": "00"}}, "encryption_cipher.key"),
        ("{not json", "options"),
    ],
)
def test_option_errors_name_the_field(engine, options, field):
    with pytest.raises(callrec.OptionsError) as info:
        engine.record(options)
    assert info.value.field == field
    assert str(info.value).startswith(field + ":")
    assert isinstance(info.value, ValueError)


def test_beep_playout(engine):
    rec = engine.record({"beep_on_start": True})
    assert rec.status.phase == "beeping"
    beep, buf = bytearray(), bytearray(100)
    while n := rec.playout(buf):
        beep += buf[:n]
        rec.push(quiet(1))
    assert len(beep) == 2000  # 250 ms
    # The beep is a tone at about -12 dBm0 (level measured away from its ramps).
    assert abs(callrec.frame_energy_dbm0(beep[400:1600]) + 12) < 0.3
    rec.hangup()
    finish(engine)


def test_events_with_timeout_and_iteration(engine):
    assert engine.next_event(timeout=0) is None
    assert engine.next_event(timeout=0.05) is None
    assert list(engine.events(timeout=0.05)) == []
    for _ in range(3):
        rec = engine.record()
        push_all(rec, sound(10))
        rec.hangup()
    got = [e.kind for e in engine.events(timeout=5)]
    assert sorted(got) == ["available"] * 3 + ["finished"] * 3
    assert engine.metrics()["recordings_finished"] == 3


def test_waiting_for_an_event_releases_the_gil(engine):
    # The waiting thread blocks in next_event; if it held the GIL, this thread could not push
    # the frames that produce the event, and the wait would time out.
    got = []
    waiter = threading.Thread(target=lambda: got.append(engine.next_event(timeout=20)))
    waiter.start()
    rec = engine.record()
    push_all(rec, sound(20))
    rec.hangup()
    waiter.join()
    assert got[0] is not None and got[0].kind == "finished"


def callrec_cli():
    """The callrec command-line tool: $CALLREC_CLI (scripts/test sets it: the wheel's venv has no
    cargo), else the workspace's release build; skipped, saying why, when there is neither."""
    given = os.environ.get("CALLREC_CLI")
    if given:
        assert os.path.isfile(given), f"CALLREC_CLI={given} is not a file"
        return given
    built = REPO / "target" / "release" / "callrec"
    if not built.is_file():
        pytest.skip("no callrec CLI: build it (cargo build --release -p callrec-cli) or set CALLREC_CLI")
    return str(built)


def test_results_equal_the_cli_for_the_same_input(tmp_path):
    example = REPO / "examples" / "hello.wav"
    options = {"id": "py-1", "milliseconds_max_silence": 2000, "format": "ulaw"}
    cli = subprocess.run(
        [callrec_cli(), "record", str(example), "--store", str(tmp_path / "cli"),
         "--options", json.dumps(options)],
        capture_output=True, text=True, check=True,
    )
    cli_lines = [json.loads(line) for line in cli.stdout.splitlines()]
    tag, audio = wav_audio(example)
    assert tag == 6
    with callrec.Engine(tmp_path / "py") as engine:
        rec = engine.record(options, codec="alaw")
        stop, _ = push_all(rec, audio)
        if stop is None:
            rec.hangup()
        ours = [json.loads(r.action_result_json()) for r in (engine.next_event(10), engine.next_event(10))]
    for a, b in zip(ours, cli_lines):
        a["result"].pop("filename"), b["result"].pop("filename")
    assert ours == cli_lines
    assert ours[0]["result"]["id"] == "py-1"


def test_repr_and_status_equality(engine):
    rec = engine.record()
    assert repr(rec.status) == "Status(phase='waiting')"
    assert rec.status == rec.status
    stopped = rec.hangup()
    assert repr(stopped) == "Status(phase='stopped', reason='hangup')" and stopped.stopped
    result, _ = finish(engine)
    assert "reason='hangup'" in repr(result)


def test_feed_waits_for_the_writer_and_loses_nothing(tmp_path):
    # 10 s of audio in one call, five times the (default 2 s) ring: feed must wait for the writer.
    # These tests record from the first sample: the fixed threshold makes the first frame sound
    # (the adaptive detector takes a call's first frame as the line's background).
    call = sound(500)
    with callrec.Engine(tmp_path) as engine:
        rec = engine.record({"seconds_max_duration": 3600, "milliseconds_max_silence": 600000, "silence_threshold_db": -40})
        assert rec.feed(memoryview(call)).phase == "recording"
        rec.hangup()
        result, _ = finish(engine)
        assert result.frames_dropped == 0 and audio_of(engine, result) == call


def test_feed_timeout_says_how_much_was_fed(tmp_path):
    call = sound(500)
    with callrec.Engine(tmp_path) as engine:
        rec = engine.record({"seconds_max_duration": 3600, "milliseconds_max_silence": 600000, "silence_threshold_db": -40})
        with pytest.raises(TimeoutError) as caught:
            rec.feed(call, timeout=0)
        fed = caught.value.fed
        assert 0 < fed < len(call)
        rec.feed(call[fed:], timeout=60)
        rec.hangup()
        result, _ = finish(engine)
        assert audio_of(engine, result) == call
        with pytest.raises(ValueError, match="timeout"):
            rec.feed(call, timeout=-1)


@pytest.mark.parametrize("end", ["close", "shutdown"])
def test_close_and_shutdown_keep_a_partial_frame(tmp_path, end):
    call = sound(11)[:1700]  # sound from the first sample: the file must hold every byte
    engine = callrec.Engine(tmp_path)
    rec = engine.record({"seconds_max_duration": 3600, "milliseconds_max_silence": 600000, "silence_threshold_db": -40})
    for i in range(0, len(call), 170):
        rec.push(call[i : i + 170])
    if end == "close":
        rec.close()
    else:
        engine.shutdown()
    result, _ = finish(engine)
    assert result.reason == "other" and audio_of(engine, result) == call
    engine.shutdown()


def test_a_crashed_aescbc_recording_is_kept_listed_and_recovered_with_the_key(tmp_path):
    """A recording process killed with SIGKILL (a real crash) leaves an `.aescbc.part`: the next
    engine keeps and lists it (kept_orphans, metrics), recover_aescbc refuses a wrong key and
    changes nothing, and with the right key makes the CBC file that openssl decrypts to a run
    of the pushed audio."""
    import os
    import signal
    import time

    key = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4"
    iv = "000102030405060708090a0b0c0d0e0f"
    store = tmp_path / "store"
    audio = quiet(10) + sound(90, start=10)
    script = f"""
import pathlib, sys, time, callrec
engine = callrec.Engine({str(store)!r})
rec = engine.record({{"milliseconds_max_silence": 600000, "encryption_cipher":
    {{"type": "aescbc", "key": {key!r}, "initialisation_vector": {iv!r}}}}})
rec.feed(pathlib.Path({str(tmp_path / "audio")!r}).read_bytes())
part = pathlib.Path({str(store)!r} + rec.filename + ".aescbc.part")
while part.stat().st_size < 58 + 4096:  # until the writer has written a batch
    time.sleep(0.01)
print("ready", flush=True)
time.sleep(3600)
"""
    (tmp_path / "audio").write_bytes(audio)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL

    with callrec.Engine(store) as engine:
        deadline = time.monotonic() + 60  # a bound on the wait, not a timing check
        while not engine.kept_orphans() and time.monotonic() < deadline:
            time.sleep(0.01)  # the engine's recovery thread is walking the store
        kept = engine.kept_orphans()
        assert len(kept) == 1 and kept[0].name.endswith(".wav.aescbc.part")
        assert engine.metrics()["orphans_kept"] == 1
        assert engine.metrics()["recordings_recovered"] == 0
    part = kept[0]
    before = part.read_bytes()
    with pytest.raises(ValueError, match="key"):
        callrec.recover_aescbc(part, key.replace("6", "7"), iv)
    with pytest.raises(ValueError, match="key"):
        callrec.recover_aescbc(part, "xyz", iv)
    with pytest.raises(ValueError, match="aescbc"):
        callrec.recover_aescbc(tmp_path / "audio", key, iv)
    assert part.read_bytes() == before
    path, samples = callrec.recover_aescbc(os.fspath(part), key, iv)
    assert path == part.with_name(part.name[: -len(".aescbc.part")]) and not part.exists()
    assert 4096 <= samples <= len(audio)
    plain = tmp_path / "plain.wav"
    subprocess.run(
        ["openssl", "enc", "-d", "-aes-256-cbc", "-K", key, "-iv", iv, "-in", path, "-out", plain],
        check=True,
    )
    tag, got = wav_audio(plain)
    assert tag == 6 and len(got) == samples and got in audio

