"""In-band DTMF detection (ITU-T Q.24) on G.711 audio, for hosts that only want the digits.

    import callrec.dtmf
    callrec.dtmf.detect(audio, "alaw")        # [("5", 2.0, 2.1), ("#", 4.0, 4.1)]

    d = callrec.dtmf.Detector("ulaw")           # streaming, any piece size
    for piece in pieces:
        for kind, digit, start, end in d.process(piece):
            ...                                  # ("pressed", "5", 2.0, None), ("released", ...)
    d.finish()
"""

from ._callrec import Detector
from ._callrec import dtmf_detect as detect

__all__ = ["Detector", "detect"]
