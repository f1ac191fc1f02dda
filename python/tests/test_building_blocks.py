"""callrec.g711 and frame_energy_dbm0 against independent truth: CPython's audioop and theory."""

import math
import struct
import warnings

import pytest

import callrec

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # CPython 3.11/3.12: an independent G.711


EVERY_BYTE = bytes(range(256))
EVERY_SAMPLE = struct.pack("<65536h", *range(-32768, 32768))


@pytest.mark.parametrize("codec", ["alaw", "ulaw"])
def test_g711_matches_audioop(codec):
    to_lin = audioop.alaw2lin if codec == "alaw" else audioop.ulaw2lin
    from_lin = audioop.lin2alaw if codec == "alaw" else audioop.lin2ulaw
    assert callrec.g711.decode(EVERY_BYTE, codec) == to_lin(EVERY_BYTE, 2)
    assert callrec.g711.encode(EVERY_SAMPLE, codec) == from_lin(EVERY_SAMPLE, 2)
    other = "ulaw" if codec == "alaw" else "alaw"
    other_from_lin = audioop.lin2ulaw if codec == "alaw" else audioop.lin2alaw
    assert callrec.g711.transcode(EVERY_BYTE, codec, other) == other_from_lin(to_lin(EVERY_BYTE, 2), 2)
    assert callrec.g711.transcode(bytearray(EVERY_BYTE), codec, codec) == EVERY_BYTE


def test_g711_errors():
    with pytest.raises(ValueError, match="even"):
        callrec.g711.encode(b"\x00\x01\x02")
    with pytest.raises(ValueError, match="codec"):
        callrec.g711.decode(b"\x00", "gsm")


def test_frame_energy_levels():
    sine = struct.pack(
        "<8000h", *(round(32767 * math.sin(2 * math.pi * 1000 * i / 8000 + 0.3)) for i in range(8000))
    )
    # A full-scale sine is +3.14 dBm0 (through A-law's quantisation, within 0.1 dB).
    assert abs(callrec.frame_energy_dbm0(callrec.g711.encode(sine)) - 3.14) < 0.1
    quieter = struct.pack("<8000h", *(s // 10 for s in struct.unpack("<8000h", sine)))
    assert abs(callrec.frame_energy_dbm0(callrec.g711.encode(quieter, "ulaw"), "ulaw") - (3.14 - 20)) < 0.2
    assert callrec.frame_energy_dbm0(b"") == -100.0
