from typing_extensions import Buffer

__all__ = ["decode", "encode", "transcode"]

def decode(data: Buffer, codec: str = "alaw") -> bytes:
    """Decodes G.711 bytes to 16-bit little-endian PCM bytes (two per sample)."""

def encode(pcm16: Buffer, codec: str = "alaw") -> bytes:
    """Encodes 16-bit little-endian PCM bytes to G.711 (one byte per sample)."""

def transcode(data: Buffer, from_codec: str, to_codec: str) -> bytes:
    """Transcodes G.711 bytes between "alaw" and "ulaw"."""
