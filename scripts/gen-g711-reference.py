#!/usr/bin/env python3
"""Write core/tests/data/g711_reference.bin from CPython 3.11's audioop (an independent G.711).

Layout (little endian): 256 i16 A-law decodes, 256 i16 u-law decodes, then for every 16-bit
sample -32768..32767 in order one A-law byte (65,536 bytes) and one u-law byte (65,536 bytes).
Run with Python 3.11 or 3.12 (audioop was removed in 3.13).
"""
import array
import audioop
import pathlib
import sys

out = pathlib.Path(__file__).resolve().parent.parent / "core/tests/data/g711_reference.bin"
every_byte = bytes(range(256))
alaw_dec = audioop.alaw2lin(every_byte, 2)
ulaw_dec = audioop.ulaw2lin(every_byte, 2)
samples = array.array("h", range(-32768, 32768))
if sys.byteorder != "little":
    samples.byteswap()
alaw_enc = audioop.lin2alaw(samples.tobytes(), 2)
ulaw_enc = audioop.lin2ulaw(samples.tobytes(), 2)
if sys.byteorder != "little":
    raise SystemExit("run on a little-endian machine")
out.write_bytes(alaw_dec + ulaw_dec + alaw_enc + ulaw_enc)
print(f"wrote {out} ({out.stat().st_size} bytes)")
