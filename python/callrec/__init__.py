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

import atexit as _atexit
import threading as _threading

from . import dtmf, g711
from ._callrec import _shutdown_all
from ._callrec import (
    Engine,
    Events,
    OptionsError,
    Recorder,
    Result,
    Status,
    __version__,
    frame_energy_dbm0,
    recover_aescbc,
)

__all__ = [
    "Engine",
    "Events",
    "OptionsError",
    "Recorder",
    "Result",
    "Status",
    "__version__",
    "dtmf",
    "frame_energy_dbm0",
    "g711",
    "recover_aescbc",
]


def _register_exit_hook() -> None:
    """Finalizes every engine's open recordings when the interpreter exits.

    ``threading._register_atexit`` runs before the interpreter joins non-daemon threads, so a
    consumer thread waiting in ``Engine.events()`` sees the engine shut down and ends instead of
    blocking the exit; plain ``atexit`` (the fallback) runs after that join, which is still in
    time for daemon threads. Both run before the interpreter begins finalizing, which is what
    ``_shutdown_all`` needs: it returns once no thread is inside a GIL-released call of callrec
    (a thread taking the GIL back during finalization is ended by CPython before 3.14 with
    ``pthread_exit``), and from then on callrec's calls keep the GIL.
    """
    register = getattr(_threading, "_register_atexit", None)
    if register is not None:
        try:
            register(_shutdown_all)
            return
        except RuntimeError:  # imported while the interpreter is already shutting down
            pass
    _atexit.register(_shutdown_all)


_register_exit_hook()
