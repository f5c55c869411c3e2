#!/usr/bin/env python3
"""What a cold GET /volumes/total costs the machine: CPU time and page faults per request,
split between the simulator, ebsd's parent, its workers and its zygote (from /proc/PID/stat
around the requests; workers are counted once reaped; the zygote's column holds the zygote
and the intermediate processes it forks and reaps for each worker, and is 0 for a build
without one). Prints a Markdown table.

Usage: bench/cold_cost.py [--sizes 1000,10000] [--latency 50] [--repeat 8]
Needs a build (build/ebsd, build/tools/ec2sim/ec2sim). Only loopback traffic; every process
it starts is stopped at exit. Compare two builds by running it with EBSD_BIN set to each."""
import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
os.environ.setdefault("EBSD_BIN", os.path.join(ROOT, "build", "ebsd"))
os.environ.setdefault("EC2SIM_BIN", os.path.join(ROOT, "build", "tools", "ec2sim", "ec2sim"))
from harness import Ebsd, Sim  # noqa: E402

TICK_MS = 1000.0 / os.sysconf("SC_CLK_TCK")


def stat(pid):
    """minflt, cminflt, utime, stime, cutime, cstime of /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as f:
        v = f.read().rsplit(")", 1)[1].split()
    return [int(v[i]) for i in (7, 8, 11, 12, 13, 14)]


def zygote(pid):
    """The pid of ebsd's child named ebsd-zygote, or None."""
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            kids = [int(x) for x in f.read().split()]
    except OSError:
        return None
    for k in kids:
        try:
            with open("/proc/%d/comm" % k) as f:
                if f.read().strip() == "ebsd-zygote":
                    return k
        except OSError:
            pass
    return None


def one_size(n, latency, repeat):
    sim = Sim("--instances", str(n), "--seed", "42", "--latency-ms", str(latency))
    # nothing cached (TTL 0): every request is a cold fetch, in any build compared
    e = Ebsd(config="ec2:\n  rate_limit: 0\nroutes:\n  volumes_total:\n    cache_ttl_s: 0\n",
             sim=sim)
    path = "/volumes/total?timeout_ms=29000"
    hdrs = {"Cache-Control": "no-cache"}
    e.get_json(path, headers=hdrs)  # the first listing is not split; later ones are
    zy = zygote(e.pid)
    s0, e0 = stat(sim.pid), stat(e.pid)
    z0 = stat(zy) if zy else [0] * 6
    times = []
    for _ in range(repeat):
        t0 = time.time()
        st, _, doc = e.get_json(path, headers=hdrs, timeout=120)
        times.append(time.time() - t0)
        assert st == 200, doc
    time.sleep(0.5)  # the last workers reaped, so their counts are in
    s1, e1 = stat(sim.pid), stat(e.pid)
    z1 = stat(zy) if zy else [0] * 6
    e.stop()
    sim.stop()

    def per(a, b, i, scale=1.0):
        return (b[i] - a[i]) * scale / repeat
    sim_cpu = per(s0, s1, 2, TICK_MS) + per(s0, s1, 3, TICK_MS)
    parent_cpu = per(e0, e1, 2, TICK_MS) + per(e0, e1, 3, TICK_MS)
    worker_cpu = per(e0, e1, 4, TICK_MS) + per(e0, e1, 5, TICK_MS)
    zy_cpu = sum(per(z0, z1, i, TICK_MS) for i in (2, 3, 4, 5))
    ebsd_cpu = parent_cpu + worker_cpu + zy_cpu
    print("| %d @ %d ms | %.3f s | %.0f ms | %.0f ms | %.0f ms | %.0f ms | %.0f ms | %.0f ms "
          "| %.0f | %.0f |" % (
              n, latency, statistics.median(times), sim_cpu, parent_cpu, worker_cpu, zy_cpu,
              ebsd_cpu, sim_cpu + ebsd_cpu, per(e0, e1, 0),
              per(e0, e1, 1) + per(z0, z1, 0) + per(z0, z1, 1)), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--latency", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=8)
    a = ap.parse_args()
    print("| fleet @ latency | median time | CPU: ec2sim | CPU: ebsd parent | CPU: workers "
          "| CPU: zygote | CPU: ebsd | CPU: all | page faults: parent "
          "| page faults: workers + zygote |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in [int(x) for x in a.sizes.split(",")]:
        one_size(n, a.latency, a.repeat)
    print("\nper cold request, %d requests each; ebsd %s" % (a.repeat, os.environ["EBSD_BIN"]))


if __name__ == "__main__":
    main()
