"""The Python host's publish path: Engine(store, publish=URL) records a G.711 WAV and prints
the finished and available action results, one JSON line each (run by s3_e2e.py, which checks
the object against the local file with an independent S3 client).

Usage: host_python.py STORE S3_URL INPUT.wav
"""

import sys
import time

import callrec

store, url, wav = sys.argv[1:4]
data = open(wav, "rb").read()
audio = data[data.index(b"data") + 8:]
with callrec.Engine(store, publish=url) as engine:
    with engine.record({"id": "python-host"}, codec="alaw") as rec:
        for at in range(0, len(audio), 160):
            frame = audio[at:at + 160]
            while rec.ring_free < len(frame):
                time.sleep(0.001)  # faster than real time: wait for the writer
            if rec.push(frame).stopped:
                break
        rec.hangup()
        filename = rec.filename
    for result in engine.events(timeout=120):
        print(result.action_result_json(), flush=True)
        if result.kind == "available" and result.filename == filename:
            break
