"""Scores sound/silence detectors on a corpus from make_corpus.py; prints Markdown tables.

Detectors:
* callrec: the real engine and recorder (the `vad_harness` binary), options
  `{"milliseconds_max_silence": 1000, "milliseconds_max_initial_silence": 15000}`;
  more callrec builds can be given with --harness-extra NAME=PATH (e.g. the previous detector).
* Silero VAD v6 (the `silero_vad.onnx` inside the installed PyPI `silero-vad` wheel, run with
  onnxruntime on one thread): 256-sample windows at 8 kHz, each with the previous window's last
  32 samples in front (the context) and the recurrent state carried, as the wheel's own
  OnnxWrapper does; a 20 ms frame is speech when the last window completed by the frame's end
  has probability >= 0.5 (causal, as a recorder would run it). Skipped, with a note, when
  onnxruntime or silero-vad is not importable.
* WebRTC VAD modes 0-3 (PyPI webrtcvad-wheels) on the same decoded 20 ms frames.
* Fixed mean-|x| thresholds as Asterisk (256) and FreeSWITCH (200) use.

Every baseline goes through the same stop rule as callrec: recording starts at the first speech
frame with the same 200 ms pre-roll, the silence timer resets on every speech frame, and the
recording stops once 1000 ms of frames have been silence. `contains_sound` for a baseline is a
run of five speech frames (100 ms).

Per call: the stop error (stop − ideal stop; ideal = end of the last speech before the first gap
>= max_silence, plus max_silence), "within" when |error| <= 100 ms; "premature" when the stop
comes before that speech has ended (the caller is cut off); "never" when no silence stop
happened before the call ended (>= 3 s after the ideal stop); "clipped" when the recording starts
after the first speech began (or never starts); contains_sound errors on speech calls (missed)
and on noise-only calls (false).

Every table is printed for the held-out part and for the tuning part of the corpus separately
(each call's `part` in truth.json; make_corpus.py says how the parts are drawn). Silero's and
WebRTC's CPU time per 20 ms frame (thread CPU time around the model calls only) is printed last.

    python evaluate.py CORPUS HARNESS [--harness-extra NAME=PATH]... [--json OUT] [--check]
                       [--no-baselines]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

from make_corpus import TABLE

FRAME = 160
PREROLL = 10
WITHIN = 0.100
WITHIN_WIDE = 0.250
SILERO_WINDOW = 256
SILERO_CONTEXT = 32
SILERO_THRESHOLD = 0.5
OPTIONS = '{"milliseconds_max_silence":1000,"milliseconds_max_initial_silence":15000}'


def run_harness(path, corpus, ids):
    out = subprocess.run([path, corpus, OPTIONS], input="\n".join(ids), text=True,
                         capture_output=True, check=True).stdout
    res = {}
    for line in out.splitlines():
        cid, stop, reason, contains, samples = line.split()
        res[cid] = {"stop_frame": int(stop), "reason": reason,
                    "contains": contains == "true", "samples": int(samples)}
    return res


def stop_rule(speech, max_silence_frames):
    """The recorder's rule on per-frame booleans: (stop_frame or -1, start_frame or None)."""
    start = None
    silent = 0
    for i, s in enumerate(speech):
        if start is None:
            if s:
                start = i
            continue
        silent = 0 if s else silent + 1
        if silent >= max_silence_frames:
            return i, start
    return -1, start


def baseline_result(speech, n_samples, max_silence_frames):
    stop, start = stop_rule(speech, max_silence_frames)
    runs, longest = 0, 0
    for s in speech:
        runs = runs + 1 if s else 0
        longest = max(longest, runs)
    if start is None:
        samples = 0
    else:
        first = max(0, start - PREROLL) * FRAME
        samples = ((stop + 1) * FRAME if stop >= 0 else n_samples) - first
    return {"stop_frame": stop, "reason": "silence" if stop >= 0 else "hangup",
            "contains": longest >= 5, "samples": samples}


def silero_session():
    """An onnxruntime session on the wheel's silero_vad.onnx (one thread), or None."""
    try:
        import importlib.util
        import onnxruntime
        spec = importlib.util.find_spec("silero_vad")
    except ImportError:
        spec = None
    if spec is None:
        print("onnxruntime or silero-vad not importable: Silero column skipped", file=sys.stderr)
        return None
    path = os.path.join(os.path.dirname(spec.origin), "data", "silero_vad.onnx")
    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"], sess_options=opts)


def silero_frames(session, pcm, n_frames, cpu):
    """Per-20 ms-frame speech booleans from Silero v6 at 8 kHz (see the module doc)."""
    x = pcm.astype(np.float32) / 32768.0
    state = np.zeros((2, 1, 128), dtype=np.float32)
    context = np.zeros((1, SILERO_CONTEXT), dtype=np.float32)
    sr = np.array(8000, dtype=np.int64)
    probs = []
    t0 = time.thread_time()
    for i in range(len(x) // SILERO_WINDOW):
        w = x[i * SILERO_WINDOW:(i + 1) * SILERO_WINDOW].reshape(1, SILERO_WINDOW)
        inp = np.concatenate([context, w], axis=1)
        out, state = session.run(None, {"input": inp, "state": state, "sr": sr})
        context = inp[:, -SILERO_CONTEXT:]
        probs.append(float(out[0][0]))
    cpu["silero"][0] += time.thread_time() - t0
    cpu["silero"][1] += len(probs)
    speech = []
    for j in range(n_frames):
        done = (j + 1) * FRAME // SILERO_WINDOW  # windows completed by the end of frame j
        speech.append(done > 0 and probs[done - 1] >= SILERO_THRESHOLD)
    return speech


def baselines(corpus, calls, max_silence_frames, cpu):
    session = silero_session()
    try:
        import webrtcvad
    except ImportError:
        webrtcvad = None
        print("webrtcvad not importable: WebRTC columns skipped", file=sys.stderr)
    names = ((["silero"] if session else []) + ([f"webrtc{m}" for m in range(4)] if webrtcvad else [])
             + ["asterisk256", "freeswitch200"])
    out = {n: {} for n in names}
    vads = [webrtcvad.Vad(m) for m in range(4)] if webrtcvad else []
    for c in calls:
        codes = np.fromfile(os.path.join(corpus, c["id"] + ".ul"), dtype=np.uint8)
        pcm = TABLE[codes].astype(np.int16)
        n = len(pcm) // FRAME
        frames = pcm[: n * FRAME].reshape(n, FRAME)
        if session:
            speech = silero_frames(session, pcm, n, cpu)
            out["silero"][c["id"]] = baseline_result(speech, len(pcm), max_silence_frames)
        for m, vad in enumerate(vads):
            blobs = [f.tobytes() for f in frames]
            t0 = time.thread_time()
            speech = [vad.is_speech(b, 8000) for b in blobs]
            cpu[f"webrtc{m}"][0] += time.thread_time() - t0
            cpu[f"webrtc{m}"][1] += len(blobs)
            out[f"webrtc{m}"][c["id"]] = baseline_result(speech, len(pcm), max_silence_frames)
        mean_abs = np.abs(frames.astype(np.int32)).mean(axis=1)
        for name, t in (("asterisk256", 256), ("freeswitch200", 200)):
            out[name][c["id"]] = baseline_result(list(mean_abs >= t), len(pcm), max_silence_frames)
    return out


def score(call, r, rate):
    """Per-call verdicts for one detector."""
    v = {}
    if call["has_speech"]:
        stop_t = (r["stop_frame"] + 1) * FRAME / rate if r["reason"] == "silence" else None
        ideal = call["ideal_stop"] / rate
        v["never"] = stop_t is None
        v["error"] = None if stop_t is None else stop_t - ideal
        v["within"] = stop_t is not None and abs(stop_t - ideal) <= WITHIN + 1e-9
        v["within_wide"] = stop_t is not None and abs(stop_t - ideal) <= WITHIN_WIDE + 1e-9
        v["premature"] = stop_t is not None and stop_t < call["ideal_end"] / rate
        end = (r["stop_frame"] + 1) * FRAME if r["reason"] == "silence" else call["samples"]
        start = end - r["samples"] if r["samples"] > 0 else None
        v["clipped"] = start is None or start > call["segments"][0][0]
        v["cs_error"] = not r["contains"]
    else:
        v["cs_error"] = r["contains"]
        v["started"] = r["samples"] > 0
    return v


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus")
    ap.add_argument("harness")
    ap.add_argument("--harness-extra", action="append", default=[], metavar="NAME=PATH")
    ap.add_argument("--json")
    ap.add_argument("--no-baselines", action="store_true",
                    help="score callrec builds only (a fast loop while tuning: no Silero, WebRTC "
                         "or fixed thresholds)")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 unless callrec meets the regression thresholds")
    a = ap.parse_args()
    truth = json.load(open(os.path.join(a.corpus, "truth.json")))
    rate, calls = truth["rate"], truth["calls"]
    max_silence_frames = truth["max_silence_ms"] // 20
    ids = [c["id"] for c in calls]
    results = {"callrec": run_harness(a.harness, a.corpus, ids)}
    for extra in a.harness_extra:
        name, path = extra.split("=", 1)
        results[name] = run_harness(path, a.corpus, ids)
    cpu = {n: [0.0, 0] for n in ["silero"] + [f"webrtc{m}" for m in range(4)]}
    if not a.no_baselines:
        results.update(baselines(a.corpus, calls, max_silence_frames, cpu))
    names = list(results)
    verdicts = {n: {c["id"]: score(c, results[n][c["id"]], rate) for c in calls} for n in names}
    kind = "real recorded speech" if truth.get("speech") == "real" else "espeak-ng speech"
    print(f"Corpus: {len(calls)} calls of {kind}; max_silence {truth['max_silence_ms']} ms; "
          f"within = stop within ±100 ms of the ideal point, wide = within ±250 ms.\n")
    summary = {}
    parts = [p for p in ("held-out", "tuning") if any(c.get("part") == p for c in calls)]
    if not parts:
        summary["all"] = report(calls, names, verdicts, "all calls")
    for part in parts:
        summary[part] = report([c for c in calls if c.get("part") == part], names, verdicts,
                               f"{part} part")
    costs = {n: 1e9 * t / k for n, (t, k) in cpu.items() if k}
    if costs:
        print("**Baselines' CPU time per 20 ms frame** (thread CPU time around the model calls, "
              "Python call overhead included; Silero runs one 32 ms window per call, so its cost "
              "per 20 ms is its cost per window × 20/32)\n")
        print("| detector | calls | CPU per call | CPU per 20 ms of audio |")
        print("|---|---:|---:|---:|")
        for n, ns in costs.items():
            per20 = ns * FRAME / SILERO_WINDOW if n == "silero" else ns
            print(f"| {n} | {cpu[n][1]} | {ns / 1000:.2f} µs | {per20 / 1000:.2f} µs |")
        print()
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"summary": summary, "results": results, "cpu_ns_per_call": costs}, f)
    if a.check:
        sys.exit(check(calls, verdicts))


def report(calls, names, verdicts, label):
    """Prints the tables for one part of the corpus; returns its summary."""

    def group(pred):
        return [c for c in calls if pred(c)]

    def agg(name, cs):
        vs = [verdicts[name][c["id"]] for c in cs]
        errs = [v["error"] for v in vs if v.get("error") is not None]
        return {
            "n": len(vs),
            "within": 100.0 * sum(v["within"] for v in vs) / max(1, len(vs)),
            "within_wide": 100.0 * sum(v["within_wide"] for v in vs) / max(1, len(vs)),
            "median_ms": 1000 * statistics.median(errs) if errs else None,
            "worst_ms": 1000 * max(errs, key=abs) if errs else None,
            "premature": sum(v["premature"] for v in vs),
            "never": sum(v["never"] for v in vs),
            "clipped": sum(v["clipped"] for v in vs),
            "cs_missed": sum(v["cs_error"] for v in vs),
        }

    order = ["white", "pink", "brown", "hum50", "hum60", "babble", "step", "clicks"]
    noises = sorted({c["noise"] for c in calls if c["set"] == "noise"}, key=order.index)
    snrs = sorted({c["snr"] for c in calls if c["set"] == "noise"}, reverse=True)
    summary = {"per_noise_snr": {}, "per_noise": {}, "clean": {}, "noise_only": {}}

    def fmt_ms(x):
        return "—" if x is None else f"{x:+.0f}"

    print(f"#### {label} ({len(calls)} calls)\n")
    print(f"**{label}: stopped within ±100 ms of the ideal point, % of calls, per noise type and SNR**\n")
    print("| noise | SNR dB | n | " + " | ".join(names) + " |")
    print("|---|---:|---:|" + "---:|" * len(names))
    for k in noises:
        for snr in snrs:
            cs = group(lambda c: c["set"] == "noise" and c["noise"] == k and c["snr"] == snr)
            if not cs:
                continue
            row = {n: agg(n, cs) for n in names}
            summary["per_noise_snr"][f"{k}/{snr}"] = row
            best = max(row[n]["within"] for n in names)
            cells = [(f"**{row[n]['within']:.0f}**" if row[n]["within"] == best else f"{row[n]['within']:.0f}")
                     for n in names]
            print(f"| {k} | {snr} | {len(cs)} | " + " | ".join(cells) + " |")
    print()
    for bucket, pred in (("SNR ≥ 10 dB", lambda c: c["snr"] >= 10), ("all SNRs", lambda c: True)):
        print(f"**{label}, per noise type, {bucket}: within ±100 ms % / ±250 ms % · median / worst "
              "error ms · premature stops · never stopped · onset clipped**\n")
        print("| noise | n | " + " | ".join(names) + " |")
        print("|---|---:|" + "---|" * len(names))
        for k in noises + ["all noises"]:
            cs = group(lambda c: c["set"] == "noise" and (k == "all noises" or c["noise"] == k) and pred(c))
            row = {n: agg(n, cs) for n in names}
            summary["per_noise"][f"{k}/{bucket}"] = row
            best = max(row[n]["within"] for n in names)
            cells = [f"{'**' if r['within'] == best else ''}{r['within']:.0f}%{'**' if r['within'] == best else ''}"
                     f" / {r['within_wide']:.0f}% · {fmt_ms(r['median_ms'])}/{fmt_ms(r['worst_ms'])} · "
                     f"{r['premature']}p {r['never']}n {r['clipped']}c" for r in row.values()]
            print(f"| {k} | {len(cs)} | " + " | ".join(cells) + " |")
        print()
    print(f"**{label}, clean line, speech level: within ±100 ms % · missed speech (contains_sound "
          "false) · onset clipped**\n")
    print("| speech dBFS | n | " + " | ".join(names) + " |")
    print("|---:|---:|" + "---|" * len(names))
    levels = sorted({c["speech_dbfs"] for c in calls if c["set"] == "clean"}, reverse=True)
    for level in levels + ["all"]:
        cs = group(lambda c: c["set"] == "clean" and (level == "all" or c["speech_dbfs"] == level))
        row = {n: agg(n, cs) for n in names}
        summary["clean"][str(level)] = row
        cells = [f"{r['within']:.0f}% · {r['cs_missed']}m {r['clipped']}c" for r in row.values()]
        print(f"| {level} | {len(cs)} | " + " | ".join(cells) + " |")
    print()
    print(f"**{label}, noise-only calls (8 s, no speech): `contains_sound` true / a recording "
          "started**\n")
    print("| noise | dBFS | " + " | ".join(names) + " |")
    print("|---|---:|" + "---|" * len(names))
    totals = {n: [0, 0] for n in names}
    for k in noises:
        for level in sorted({c["noise_dbfs"] for c in calls if c["set"] == "noise-only"}, reverse=True):
            cs = group(lambda c: c["set"] == "noise-only" and c["noise"] == k and c["noise_dbfs"] == level)
            if not cs:
                continue
            vs = {n: [verdicts[n][c["id"]] for c in cs] for n in names}
            summary["noise_only"][f"{k}/{level}"] = {
                n: {"contains": sum(v["cs_error"] for v in vs[n]), "started": sum(v["started"] for v in vs[n])}
                for n in names}
            for n in names:
                totals[n][0] += sum(v["cs_error"] for v in vs[n])
                totals[n][1] += sum(v["started"] for v in vs[n])
            cells = [("sound" if any(v["cs_error"] for v in vs[n]) else
                      ("started" if any(v["started"] for v in vs[n]) else "ok")) for n in names]
            print(f"| {k} | {level} | " + " | ".join(cells) + " |")
    n_only = len(group(lambda c: c["set"] == "noise-only"))
    print(f"| **calls with `contains_sound` true / a recording started, of {n_only}** | | "
          + " | ".join(f"{t[0]} / {t[1]}" for t in totals.values()) + " |")
    summary["noise_only"]["total"] = {n: {"contains": t[0], "started": t[1]} for n, t in totals.items()}
    print()
    return summary


def check(calls, verdicts):
    """The regression thresholds scripts/test-detect holds callrec to (see that script)."""
    v = verdicts["callrec"]
    failures = []
    for c in calls:
        r = v[c["id"]]
        if c["set"] == "noise" and c["snr"] >= 10 and c["noise"] != "babble":
            if r["premature"]:
                failures.append(f"{c['id']}: premature stop")
            if r["never"]:
                failures.append(f"{c['id']}: never stopped")
        if c["set"] == "clean" and (r["cs_error"] or r["clipped"]):
            failures.append(f"{c['id']}: speech missed or onset clipped")
        if c["set"] == "noise-only" and r["cs_error"]:
            failures.append(f"{c['id']}: contains_sound on noise only")
        # Babble excepted: a call that opens on a dip of babble starts a recording (no
        # contains_sound) before the first 160 ms of background are measured.
        if c["set"] == "noise-only" and c["noise"] != "babble" and r["started"]:
            failures.append(f"{c['id']}: a recording started on noise only")
    for line in failures:
        print("FAIL", line)
    print(f"{len(failures)} threshold failures")
    return 1 if failures else 0


if __name__ == "__main__":
    main()
