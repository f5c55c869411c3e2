#!/usr/bin/env python3
"""Cold GET /volumes/total, side by side on one simulated fleet: ebsd parallel, ebsd
sequential (?mode=sequential), and the seed article's two Python strategies (boto3), for
several fleet sizes and simulated EC2 latencies. Prints a Markdown table.

"ebsd parallel" is the median of --repeat cold requests on a running ebsd; "first request" is
the first one after start, whose listing is not split yet. With --state-file PATH (builds that
know fanout.state_file only: older ones refuse the key), ebsd keeps its size hint in PATH
and is started twice per fleet: once to leave the hint (one request, then stopped), and again
to measure, so "first request" is the first one after a restart. --first-repeat N restarts
it N times and shows the median of the N first requests (one sample is noisy, and the
simulator, which is not restarted, serves its very first split listing slower than any later
one: real EC2 has no such warm-up).

Usage: bench/cold_total.py [--sizes 100,1000,10000] [--latencies 20,50] [--repeat 3]
                           [--seed-max 1000] [--seq-max 1000] [--state-file PATH]
                           [--first-repeat N]
Needs a build (build/ebsd, build/tools/ec2sim/ec2sim) and Debian's python3-boto3.
Only loopback traffic; every process it starts is stopped at exit."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
os.environ.setdefault("EBSD_BIN", os.path.join(ROOT, "build", "ebsd"))
os.environ.setdefault("EC2SIM_BIN", os.path.join(ROOT, "build", "tools", "ec2sim", "ec2sim"))
from harness import Ebsd, Sim, proc_status, sim_env  # noqa: E402

# The simulated EC2 does not throttle, so neither does ebsd here; everything else is default.
# No client rate limit, and nothing cached (TTL 0), so every request is a cold fetch in any
# build being compared (a forced refresh alone is bounded by cache.min_refresh_s).
CONFIG = "ec2:\n  rate_limit: 0\nroutes:\n  volumes_total:\n    cache_ttl_s: 0\n"


def calls(sim):
    return sum(sim.stats()["calls"].values())


def run_ebsd(e, sim, mode, repeat):
    times, ncalls, mem = [], [], []
    for _ in range(repeat):
        before = calls(sim)
        t0 = time.time()
        st, _, doc = e.get_json("/volumes/total?mode=%s&timeout_ms=29000" % mode,
                                headers={"Cache-Control": "no-cache"}, timeout=120)
        times.append(time.time() - t0)
        assert st == 200, doc
        ncalls.append(calls(sim) - before)
        line = e.wait_line(lambda l: l.startswith("REPORT RequestId: " + doc["request_id"]))
        child_mb = int(line.split("Max Memory Used: ")[1].split(" MB")[0])
        mem.append(proc_status(e.pid, "VmHWM") / 1024.0 + child_mb)
    return statistics.median(times), statistics.median(ncalls), max(mem), doc["total_gib"]


def run_seed(sim, mode):
    before = calls(sim)
    env = sim_env(sim)
    r = subprocess.run(["/usr/bin/python3", os.path.join(HERE, "seed_lambda.py"), mode, sim.url],
                       env=env, capture_output=True, text=True, timeout=3600)
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-2000:])
    doc = json.loads(r.stdout.strip().splitlines()[-1])
    return doc["seconds"], calls(sim) - before, doc["peak_rss_mb"], doc["total_gib"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100,1000,10000")
    ap.add_argument("--latencies", default="20,50")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed-max", type=int, default=1000,
                    help="largest fleet the seed's strategies run on (they fork one process "
                         "per instance / make one call per instance)")
    ap.add_argument("--seq-max", type=int, default=1000,
                    help="largest fleet ebsd's sequential mode runs on")
    ap.add_argument("--state-file", default="",
                    help="fanout.state_file for ebsd (an absolute path; removed before each "
                         "fleet): the first request is then measured after a restart")
    ap.add_argument("--first-repeat", type=int, default=1,
                    help="with --state-file: restarts whose first request is measured (the "
                         "median is shown); 1 = one sample, as before. The simulator is not "
                         "restarted, so from the second restart on it is as warm as EC2")
    a = ap.parse_args()
    config = CONFIG
    if a.state_file:
        a.state_file = os.path.abspath(a.state_file)
        config += "fanout:\n  state_file: \"%s\"\n" % a.state_file
    print("| instances | EC2 latency | strategy | cold time | × latency | EC2 calls | peak memory | vs ebsd parallel |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|")
    for n in [int(x) for x in a.sizes.split(",")]:
        for lat in [int(x) for x in a.latencies.split(",")]:
            sim = Sim("--instances", str(n), "--seed", "42", "--latency-ms", str(lat))
            truth = sim.truth()["total_gib"]
            if a.state_file:
                # a run before the restart leaves the size hint
                if os.path.exists(a.state_file):
                    os.unlink(a.state_file)
                e = Ebsd(config=config, sim=sim)
                run_ebsd(e, sim, "parallel", 1)
                e.stop()
            firsts = []
            for k in range(max(1, a.first_repeat) if a.state_file else 1):
                if k:
                    e.stop()
                e = Ebsd(config=config, sim=sim)
                # The first listing after start is made by one lister (ebsd has not seen the
                # fleet yet); later ones are split by the count it saw (fanout.list_partitions)
                # or, after a restart, by the state file's.
                firsts.append(run_ebsd(e, sim, "parallel", 1))
                assert firsts[-1][3] == truth, (firsts[-1][3], truth)
            t1 = statistics.median(f[0] for f in firsts)
            c1 = statistics.median(f[1] for f in firsts)
            m1 = max(f[2] for f in firsts)
            results = []
            t, c, m, total = run_ebsd(e, sim, "parallel", a.repeat)
            assert total == truth, (total, truth)
            base = t
            results.append(("ebsd parallel", t, c, m))
            results.append(("ebsd parallel, first request", t1, c1, m1))
            # one call after another must fit in routes.max_timeout_ms (29 s)
            if n <= a.seq_max and n * (lat + 5) < 27000:
                t, c, m, total = run_ebsd(e, sim, "sequential", 1)
                assert total == truth
                results.append(("ebsd sequential", t, c, m))
            if n <= a.seed_max:
                for mode in ("sequential", "parallel"):
                    t, c, m, _ = run_seed(sim, mode)
                    results.append(("seed %s (Python)" % mode, t, c, m))
            for name, t, c, m in results:
                print("| %d | %d ms | %s | %.3f s | %.1f | %d | %.0f MB | %.1f× |" % (
                    n, lat, name, t, t * 1000.0 / lat, c, m, t / base), flush=True)
            e.stop()
            sim.stop()


if __name__ == "__main__":
    main()
