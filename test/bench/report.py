#!/usr/bin/python3
"""Prints the rrbench table (asyncrr, baseline, ratio) and writes the JSON.

report.py RESULTS.jsonl OUT.json REV   (run by test/bench/run.sh)
"""
import json
import os
import sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
out, rev = sys.argv[2], sys.argv[3]


def key(r):
    if r["test"] in ("roundtrip",):
        return (r["sync"], r["label"], r["R"], r["K"], r["W"])
    return (r["sync"], r["label"])


pairs = {}
order = []
for r in rows:
    k = key(r)
    if k not in pairs:
        pairs[k] = {}
        order.append(k)
    pairs[k][r["mode"]] = r


def ratio(a, b):
    return f"{a / b:.2f}" if a and b else "-"


def name(k, r):
    if r["test"] == "roundtrip":
        what = {"rt": "round trip", "waits": "round trip (sampled)"}.get(r["label"], r["label"])
        return f"{what} ({r['R']},{r['K']},{r['W']})"
    return r["label"]


hdr = (f"{'sync':4} {'test':32} {'asyncrr/s':>10} {'base/s':>9} {'ratio':>6}  "
       f"{'asyncrr p50/p90/p99/max ms':>28}  {'baseline p50/p90/p99/max ms':>28}")
print(hdr)
print("-" * len(hdr))


def lat(r):
    if not r or "p50_us" not in r:
        return ""
    return "/".join(f"{r[x] / 1000:.2f}" for x in ("p50_us", "p90_us", "p99_us")) + f"/{r['max_us'] / 1000:.1f}"


for k in order:
    p = pairs[k]
    a, b = p.get("asyncrr"), p.get("baseline")
    r = a or b
    if r["test"] == "idle":
        print(f"{r['sync']:4} {'idle worker CPU, ' + str(r['live']) + ' live':32} "
              f"{r['cpu_pct']:>9.3f}% of one core over {r['window_s']:.0f} s ({r['cpu_s']:.2f} s CPU)")
        continue
    print(f"{r['sync']:4} {name(k, r):32} {a['rps'] if a else 0:>10.0f} {b['rps'] if b else 0:>9.0f} "
          f"{ratio(a and a['rps'], b and b['rps']):>6}  {lat(a):>28}  {lat(b):>28}")

for k in order:
    p = pairs[k]
    for m in ("asyncrr", "baseline"):
        r = p.get(m)
        if r and "waits" in r and r["wait_samples"]:
            print(f"\nwait events, {m}, sync {r['sync']}, ({r['R']},{r['K']},{r['W']}), "
                  f"{r['wait_samples']} samples of active sessions (share of session-samples):")
            tot = sum(r["waits"].values())
            for w, n in sorted(r["waits"].items(), key=lambda x: -x[1])[:12]:
                print(f"  {100 * n / tot:5.1f}%  {w}")

os.makedirs(os.path.dirname(out), exist_ok=True)
with open(out, "w") as f:
    json.dump({"rev": rev, "nproc": os.cpu_count(), "results": rows}, f, indent=1)
print(f"\nwrote {out}")
