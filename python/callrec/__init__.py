"""callrec: record telephone calls the way a cloud telephony platform's record action does.

A host's media loop pushes the caller's 20 ms G.711 frames into a :class:`Recorder`; callrec
decides when the recording starts and stops, writes a G.711 WAV file (optionally encrypted) from
its own writer thread, and reports each recording twice through :meth:`Engine.events`:
*finished* and then *available*.

    import callrec
    with callrec.Engine("recordings") as engine:
        with engine.record({"milliseconds_max_silence": 2000}, codec="alaw") as rec:
            for frame in frames:          # 160-byte G.711 frames
                if rec.push(frame).stopped:
                    break
            else:
                rec.hangup()
        for result in engine.events(timeout=5):
            print(result.action_result_json())
"""

from . import g711
from ._callrec import (
    Engine,
    Events,
    OptionsError,
    Recorder,
    Result,
    Status,
    __version__,
    frame_energy_dbm0,
)

__all__ = [
    "Engine",
    "Events",
    "OptionsError",
    "Recorder",
    "Result",
    "Status",
    "__version__",
    "frame_energy_dbm0",
    "g711",
]
