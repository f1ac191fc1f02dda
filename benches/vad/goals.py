"""Issue 21's goals, judged on the held-out parts: reads evaluate.py --json outputs, prints Markdown.

    python goals.py SYNTHETIC.json REAL.json
"""

import json
import sys

NOISES = ["white", "pink", "brown", "hum50", "hum60", "babble", "step", "clicks"]


def load(path):
    return json.load(open(path))


def pct(x):
    return f"{x:.0f} %"


def main():
    corpora = [("synthetic", load(sys.argv[1])), ("real speech", load(sys.argv[2]))]
    print("**Headline, held-out parts: stopped within ±100 ms, % of calls, SNRs pooled (0–30 dB)**\n")
    print("| noise | " + " | ".join(f"{c}: callrec | {c}: Silero v6 | {c}: best WebRTC" for c, _ in corpora) + " |")
    print("|---|" + "---:|---:|---:|" * len(corpora))
    for k in NOISES + ["all noises"]:
        cells = []
        for _, d in corpora:
            row = d["summary"]["held-out"]["per_noise"][f"{k}/all SNRs"]
            web = max((row[n]["within"], n) for n in row if n.startswith("webrtc"))
            cells += [pct(row["callrec"]["within"]), pct(row["silero"]["within"]), f"{pct(web[0])} ({web[1]})"]
        print(f"| {k} | " + " | ".join(cells) + " |")
    print()
    print("**The goals of issue 21, on the held-out parts** (✔ met, ✘ not met)\n")
    print("| goal | " + " | ".join(c for c, _ in corpora) + " |")
    print("|---|" + "---|" * len(corpora))

    def line(goal, judge):
        print(f"| {goal} | " + " | ".join(judge(d["summary"]["held-out"]) for _, d in corpora) + " |")

    def per_noise(s):
        lost = []
        for k in NOISES:
            row = s["per_noise"][f"{k}/all SNRs"]
            web = max(row[n]["within"] for n in row if n.startswith("webrtc"))
            c, si = row["callrec"]["within"], row["silero"]["within"]
            if c < si or c < web:
                lost.append(f"{k} {c:.0f} vs Silero {si:.0f} / WebRTC {web:.0f}")
        return "✔ every type" if not lost else "✘ " + "; ".join(lost)

    def wide(s):
        row = s["per_noise"]["all noises/all SNRs"]
        c, si = row["callrec"]["within_wide"], row["silero"]["within_wide"]
        return f"{'✔' if c >= si else '✘'} {c:.0f} % vs {si:.0f} %"

    def premature(s):
        row = s["per_noise"]["all noises/SNR ≥ 10 dB"]
        c, si = row["callrec"]["premature"], row["silero"]["premature"]
        clean = s["clean"]["all"]["callrec"]["premature"]
        ok = (c < si or c == 0) and clean == 0
        return (f"{'✔' if ok else '✘'} {c} vs Silero {si} (of {row['callrec']['n']}); "
                f"clean line {clean}")

    def noise_only(s):
        t = s["noise_only"]["total"]
        return (f"callrec {t['callrec']['contains']} contains_sound / {t['callrec']['started']} started; "
                f"Silero {t['silero']['contains']} / {t['silero']['started']}; WebRTC "
                + ", ".join(f"{t[n]['contains']}" for n in t if n.startswith("webrtc")))

    def quiet(s):
        c = s["clean"]["all"]["callrec"]
        return f"{'✔' if c['cs_missed'] == 0 else '✘'} {c['cs_missed']} missed of {c['n']} clean-line calls"

    line("callrec ≥ Silero and ≥ the best WebRTC mode at ±100 ms on every noise type", per_noise)
    line("callrec ≥ Silero at ±250 ms overall (all noises, all SNRs)", wide)
    line("fewer premature stops than Silero at SNR ≥ 10 dB (none where Silero has none), none on clean lines",
         premature)
    line("noise-only calls: `contains_sound` true / a recording started", noise_only)
    line("no quiet-speech miss (clean line, −10 to −55 dBFS)", quiet)
    print()


if __name__ == "__main__":
    main()
