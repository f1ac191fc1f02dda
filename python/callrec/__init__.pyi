"""callrec: record telephone calls the way a cloud telephony platform's record action does."""

import os
from pathlib import Path
from typing_extensions import Buffer
from types import TracebackType
from typing import Any, final

from . import dtmf as dtmf
from . import g711 as g711

__version__: str
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

class OptionsError(ValueError):
    """A record option is invalid. `field` names the option (e.g. "seconds_max_duration")."""

    field: str

@final
class Status:
    """Where a recording is: `phase` and, once stopped, `reason`."""

    @property
    def phase(self) -> str:
        """"beeping", "waiting", "recording" or "stopped"."""
    @property
    def reason(self) -> str | None:
        """Why the recording stopped ("silence", "bargein", ...), or None while it runs."""
    @property
    def stopped(self) -> bool:
        """True once the recording has stopped."""
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...
    __hash__: None  # type: ignore[assignment]

@final
class Result:
    """One *finished* or *available* event: the recording's result."""

    @property
    def kind(self) -> str:
        """"finished" or "available"."""
    @property
    def id(self) -> str:
        """The user string from the options."""
    @property
    def filename(self) -> str:
        """The file's name in the store (under the engine's store directory)."""
    @property
    def file_available(self) -> bool:
        """True in the available event."""
    @property
    def contains_sound(self) -> bool:
        """Whether the recording holds sound above the background noise."""
    @property
    def seconds_duration(self) -> float:
        """The file's audio length in seconds, rounded to one decimal."""
    @property
    def reason(self) -> str:
        """"duration", "bargein", "silence", "filesize", "hangup", "aborted", "error" or "other"."""
    @property
    def barge_in_digit(self) -> str | None:
        """The digit that stopped the recording when `reason` is "bargein", else None."""
    @property
    def samples(self) -> int:
        """The file's audio length in samples (8000 per second)."""
    @property
    def frames_dropped(self) -> int:
        """Frames lost because the writer fell behind (0 on a healthy system)."""
    @property
    def legs(self) -> dict[str, dict[str, Any]] | None:
        """Each party of a two-leg recording ({"caller": {...}, "other": {...}}), else None."""
    @property
    def publish_error(self) -> str | None:
        """Why publishing gave up (an available event with reason "error"), else None."""
    def action_result_json(self) -> str:
        """The record action's {"action":"record","result":{...}} JSON."""
    def to_dict(self) -> dict[str, Any]:
        """The `result` object of the JSON as a dict (same keys, same order)."""

@final
class Recorder:
    """The real-time side of one recording."""

    def push(self, frame: Buffer) -> Status:
        """Feeds the caller's audio (G.711 in the call's codec, up to 8000 bytes)."""
    def push_at(self, at: int, frame: Buffer) -> Status:
        """Places audio at sample index `at` since the recording began: a gap is filled with
        silence, audio for indices already taken is dropped (both counted per party on a
        two-leg recording); ValueError for an `at` more than a day ahead."""
    @property
    def leg(self) -> str | None:
        """"caller" or "other" on a two-leg recording, None on a one-leg one."""
    def feed(self, frame: Buffer, timeout: float | None = None) -> Status:
        """Feeds audio of any length faster than real time, waiting for ring space instead of
        dropping; TimeoutError (with `fed`) after `timeout` seconds of waiting (None: no limit)."""
    def digit(self, digit: str) -> Status:
        """A digit from the host: stops with "bargein" when it is one of barge_in_digits."""
    def hangup(self) -> Status:
        """The call ended: stops with "hangup"."""
    def pause(self) -> Status:
        """Pauses: the audio is left out ("skip") or silenced ("silence"); timers stop."""
    def resume(self) -> Status:
        """Resumes a paused recording."""
    @property
    def paused(self) -> bool:
        """True between pause() and resume()."""
    def abort(self) -> bool:
        """Aborts the recording (reason "aborted"); True if this call stopped it. Any thread."""
    def playout(self, buffer: Buffer) -> int:
        """Pulls the beep into a writable byte buffer; returns the bytes written."""
    @property
    def status(self) -> Status:
        """The current status."""
    @property
    def ring_free(self) -> int:
        """Free space in the ring to the writer, in bytes."""
    @property
    def filename(self) -> str:
        """The recording's filename (as the result will report it)."""
    @property
    def closed(self) -> bool:
        """True once close() was called."""
    def close(self) -> None:
        """Releases the recorder; if it is still running the recording stops with "other"."""
    def __enter__(self) -> Recorder: ...
    def __exit__(
        self,
        *_args: type[BaseException] | BaseException | TracebackType | None,
    ) -> None: ...

@final
class Events:
    """The iterator returned by Engine.events()."""

    def __iter__(self) -> Events: ...
    def __next__(self) -> Result: ...

@final
class Engine:
    """A recording engine writing under a store directory."""

    def __new__(
        cls,
        store: str | os.PathLike[str],
        *,
        writers: int = ...,
        ring_milliseconds: int = ...,
        ring_seconds: float = ...,
        poll_milliseconds: int = ...,
        batch_bytes: int = ...,
        publish: str | dict[str, Any] | None = ...,
        **config: Any,
    ) -> Engine: ...
    def record(self, options: dict[str, Any] | str | None = None, codec: str = "alaw") -> Recorder:
        """Starts a recording of a call whose audio is `codec` ("alaw" or "ulaw")."""
    def record_call(
        self, options: dict[str, Any] | str | None = None, codec: str = "alaw"
    ) -> tuple[Recorder, Recorder]:
        """Starts one recording of both parties (legs "both", the default here, or "mixed"):
        returns the (caller, other) recorders."""
    def next_event(self, timeout: float | None = None) -> Result | None:
        """The next event, waiting up to `timeout` seconds (forever when None)."""
    def events(self, timeout: float | None = None) -> Events:
        """Iterates over events as they come."""
    def metrics(self) -> dict[str, int]:
        """The engine's counters, the publisher's included (publish_uploaded,
        publish_failed_attempts, publish_gave_up, publish_pending; 0 when not publishing)."""
    def kept_orphans(self) -> list[Path]:
        """Orphaned `.part` files this engine kept (an `.aescbc.part` needs its key)."""
    @property
    def store(self) -> Path:
        """The store's root directory."""
    def shutdown(self) -> None:
        """Finalizes every open recording (reason "other") and stops the engine."""
    def __enter__(self) -> Engine: ...
    def __exit__(
        self,
        *_args: type[BaseException] | BaseException | TracebackType | None,
    ) -> None: ...

def frame_energy_dbm0(frame: Buffer, codec: str = "alaw") -> float:
    """The level of a frame of G.711 audio in dBm0."""

def recover_aescbc(part: str | os.PathLike[str], key: str, iv: str) -> tuple[Path, int]:
    """Finishes a crashed aescbc recording's `.aescbc.part` with its key: (path, samples)."""
