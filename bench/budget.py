#!/usr/bin/env python3
"""EC2 calls per second against ebsd's EC2 budget under a mixed flood (issue 14).

For each build (./build/ebsd, and EBSD_BIN_OLD side by side when given) it starts ec2sim
(--instances, --latency-ms) and ebsd with ec2.rate_limit/rate_burst and cache.min_refresh_s: 0
(so forced refreshes reach the budget directly), then floods it for --duration seconds: one
sequential client sending `Cache-Control: no-cache` for the total, and --clients concurrent
clients mixing forced totals, per-instance misses, unknown instances (negative caching) and
plain polls (refresh ahead at a 2 s TTL). ec2sim's /_sim/stats is sampled every 0.5 s.
Prints a Markdown table: EC2 calls, average calls/s, the highest rate over any 1 s and 10 s
window, the budget's bound for the run (burst + rate x seconds), and the answers by status.

Usage: bench/budget.py [--duration 20] [--clients 50] [--rate 10] [--burst 50]
                       [--instances 300] [--latency-ms 20]
"""
import argparse
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
os.environ.setdefault("EBSD_BIN", os.path.join(ROOT, "build", "ebsd"))
os.environ.setdefault("EC2SIM_BIN", os.path.join(ROOT, "build", "tools", "ec2sim", "ec2sim"))
import harness  # noqa: E402
from harness import Ebsd, Sim  # noqa: E402


def calls(sim):
    c = sim.stats()["calls"]
    return c.get("DescribeInstances", 0) + c.get("DescribeVolumes", 0)


def ids_of(sim):
    """The fleet's instance ids, from the simulator's truth (no EC2 call)."""
    return sorted(sim.truth()["instances"])


def run_one(binary, a):
    harness.EBSD_BIN = binary
    sim = Sim("--instances", str(a.instances), "--seed", "42", "--latency-ms", str(a.latency_ms))
    ids = ids_of(sim)
    cfg = ("ec2:\n  rate_limit: %g\n  rate_burst: %g\ncache:\n  min_refresh_s: 0\n"
           "routes:\n  volumes_total:\n    cache_ttl_s: 2\n  instance_volumes:\n"
           "    cache_ttl_s: 2\nlog:\n  level: warn\n" % (a.rate, a.burst))
    e = Ebsd(config=cfg, sim=sim, log_path=os.path.join("/tmp", "bench-budget-%d.log" % os.getpid()))
    nc = {"Cache-Control": "no-cache"}
    paths = [("/volumes/total", nc), ("/volumes/total", None)]
    paths += [("/instances/%s/volumes" % i, nc) for i in ids[:150]]
    paths += [("/instances/%s/volumes" % i, None) for i in ids[150:160]]
    paths += [("/instances/i-%017x/volumes" % (0xbad00000 + k), None) for k in range(20)]
    statuses, lock = {}, threading.Lock()
    stop = time.time() + a.duration

    def client(k, plist):
        i = k
        while time.time() < stop:
            path, hdrs = plist[i % len(plist)]
            i += a.clients
            try:
                st = e.get(path, headers=hdrs, timeout=30)[0]
            except OSError:
                st = "error"
            with lock:
                statuses[st] = statuses.get(st, 0) + 1

    samples = []
    t0 = time.time()
    c0 = calls(sim)
    ts = [threading.Thread(target=client, args=(0, [("/volumes/total", nc)]))]
    ts += [threading.Thread(target=client, args=(k, paths)) for k in range(a.clients)]
    for t in ts:
        t.start()
    while time.time() < stop:
        samples.append((time.time() - t0, calls(sim) - c0))
        time.sleep(0.5)
    for t in ts:
        t.join()
    samples.append((time.time() - t0, calls(sim) - c0))
    e.stop()
    sim.stop()

    def peak(window):
        best = 0.0
        for i, (ti, ci) in enumerate(samples):
            for tj, cj in samples[i + 1:]:
                if tj - ti >= window:
                    best = max(best, (cj - ci) / (tj - ti))
                    break
        return best

    secs, total = samples[-1]
    return {"calls": total, "secs": secs, "avg": total / secs, "p1": peak(1.0), "p10": peak(10.0),
            "bound": a.burst + a.rate * secs, "statuses": statuses}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=20)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--rate", type=float, default=10)
    ap.add_argument("--burst", type=float, default=50)
    ap.add_argument("--instances", type=int, default=300)
    ap.add_argument("--latency-ms", type=int, default=20)
    a = ap.parse_args()
    builds = [("this build", os.environ["EBSD_BIN"])]
    if os.environ.get("EBSD_BIN_OLD"):
        builds.append(("EBSD_BIN_OLD", os.environ["EBSD_BIN_OLD"]))
    print("Mixed flood: %d s, 1 sequential + %d concurrent clients, %d instances at %d ms, "
          "ec2.rate_limit %g, rate_burst %g, cache.min_refresh_s 0\n"
          % (a.duration, a.clients, a.instances, a.latency_ms, a.rate, a.burst))
    print("| build | EC2 calls | seconds | calls/s | peak 1 s | peak 10 s | budget bound | "
          "within bound | answers |")
    print("|---|---:|---:|---:|---:|---:|---:|---|---|")
    for name, binary in builds:
        r = run_one(binary, a)
        ans = ", ".join("%s: %d" % (k, v) for k, v in sorted(r["statuses"].items(), key=str))
        print("| %s | %d | %.1f | %.1f | %.1f | %.1f | %.0f | %s | %s |" % (
            name, r["calls"], r["secs"], r["avg"], r["p1"], r["p10"], r["bound"],
            "yes" if r["calls"] <= r["bound"] else "**no**", ans), flush=True)


if __name__ == "__main__":
    main()
