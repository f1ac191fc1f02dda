from typing import final

from typing_extensions import Buffer

__all__ = ["Detector", "detect"]

def detect(data: Buffer, codec: str = "alaw") -> list[tuple[str, float, float]]:
    """Every key press in a whole G.711 buffer: [(digit, start_s, end_s), ...]."""

@final
class Detector:
    """A streaming in-band DTMF detector; events are (kind, digit, start_s, end_s)."""

    def __new__(cls, codec: str = "alaw") -> Detector: ...
    def process(self, data: Buffer) -> list[tuple[str, str, float, float | None]]:
        """Feeds G.711 bytes (any length) and returns the events they completed."""
    def finish(self) -> list[tuple[str, str, float, float | None]]:
        """The end of the stream: releases a key still sounding; starts again at 0."""
    @property
    def seconds(self) -> float:
        """Seconds of audio given so far."""
