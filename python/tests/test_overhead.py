"""The Python-side cost of a push, measured and reported (not asserted: speed is for benchmarks)."""

import time

from conftest import FRAME, sound


def test_push_overhead_is_reported(engine, capsys):
    audio = sound(50)
    frames = [audio[i : i + FRAME] for i in range(0, len(audio), FRAME)]
    # The fixed threshold: the sound starts at the first frame, with no line before it for the
    # adaptive detector to measure it against (see conftest.sound).
    rec = engine.record(
        {"seconds_max_duration": 86400, "milliseconds_max_silence": 3600000, "silence_threshold_db": -40}
    )
    n, batch, elapsed = 10_000, 1000, 0.0
    for first in range(0, n, batch):
        # Untimed: let the writer drain, so 1000 fast pushes never fill the ring.
        while rec.ring_free < batch * FRAME:
            time.sleep(0.001)
        started = time.perf_counter()
        for i in range(first, first + batch):
            status = rec.push(frames[i % len(frames)])
        elapsed += time.perf_counter() - started
    assert status.phase == "recording"
    rec.hangup()
    assert engine.next_event(timeout=10).frames_dropped == 0
    with capsys.disabled():
        print(f"\nPython push overhead: {elapsed / n * 1e9:.0f} ns per 160-byte push ({n} pushes)")
