"""G.711 A-law and u-law on whole buffers (bit-exact with ITU-T G.711 and audioop).

PCM is 16-bit signed little-endian, two bytes per sample; G.711 is one byte per sample.
"""

from ._callrec import g711_decode as decode
from ._callrec import g711_encode as encode
from ._callrec import g711_transcode as transcode

__all__ = ["decode", "encode", "transcode"]
