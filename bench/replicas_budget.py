#!/usr/bin/env python3
"""EC2 calls per minute for 1, 3 and 6 replicas under the same polling load (issue 17).

One ec2sim (--instances at --latency-ms) and one redis-server, all on 127.0.0.1. For each
replica count N it starts N ebsd replicas (ec2.rate_limit --rate, rate_burst --burst, a
--ttl s cache) on that Redis (and, with --no-redis, N replicas without it for comparison),
waits until every replica has read N live replicas from Redis, then polls them round robin
for --duration seconds at a fixed --rps (spread over --clients threads, the same load for
every N): /volumes/total and /instances/{id}/volumes for --keys instances from the
simulator's truth. The load's misses ask more than the budget serves, so the calls are
the budget's. ec2sim's call counter is read at the start and once no call came in for
0.5 s after the end; calls per minute = calls x 60 / seconds. The goal: the same number for
every N with Redis (one budget), against N budgets without it.

Usage: bench/replicas_budget.py [--duration 20] [--replicas 1,3,6] [--rate 5] [--burst 5]
                                [--rps 30] [--clients 60] [--keys 200] [--ttl 2] [--no-redis]
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
from harness import Ebsd, RedisServer, Sim, settled_calls  # noqa: E402


def metric(e, name):
    _, _, data = e.get("/metrics")
    for line in data.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


def config(a, redis_url):
    text = ("ec2:\n  rate_limit: %g\n  rate_burst: %g\nrefresh:\n  interval_s: 0\n"
            "cache:\n  min_refresh_s: 0\nroutes:\n  volumes_total:\n    cache_ttl_s: %d\n"
            "  instance_volumes:\n    cache_ttl_s: %d\nlog:\n  level: warn\n"
            % (a.rate, a.burst, a.ttl, a.ttl))
    if redis_url:
        text += "redis:\n  url: \"%s\"\n" % redis_url
    return text


def run_one(a, sim, ids, n, srv):
    if srv:
        srv.cli("FLUSHALL")
    es = [Ebsd(config=config(a, "unix://" + srv.sock if srv else ""), sim=sim,
               log_path="/tmp/bench-replicas-%d-%d.log" % (os.getpid(), k)) for k in range(n)]
    try:
        if srv:
            end = time.time() + 15
            while time.time() < end and not all(
                    metric(e, "ebsd_redis_live_replicas") == n for e in es):
                time.sleep(0.1)
        paths = ["/volumes/total"] + ["/instances/%s/volumes" % i for i in ids[:a.keys]]
        statuses, lock = {}, threading.Lock()
        seq = [0]
        c0 = settled_calls(sim, quiet=0.5)
        t0 = time.time()
        stop = t0 + a.duration
        period = a.clients / a.rps  # each client's interval between two requests

        def client(k):
            due = t0 + k * period / a.clients
            while True:
                now = time.time()
                if now >= stop:
                    return
                if due > now:
                    time.sleep(due - now)
                due += period
                with lock:
                    i = seq[0]
                    seq[0] += 1
                e = es[i % n]
                try:
                    st = e.get(paths[i % len(paths)], timeout=30)[0]
                except OSError:
                    st = "error"
                with lock:
                    statuses[st] = statuses.get(st, 0) + 1

        ts = [threading.Thread(target=client, args=(k,)) for k in range(a.clients)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        secs = time.time() - t0
        calls = settled_calls(sim, quiet=0.5) - c0
    finally:
        for e in es:
            e.stop()
    return calls, secs, statuses


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=20)
    ap.add_argument("--replicas", default="1,3,6")
    ap.add_argument("--rate", type=float, default=5)
    ap.add_argument("--burst", type=float, default=5)
    ap.add_argument("--rps", type=float, default=30)
    ap.add_argument("--clients", type=int, default=60)
    ap.add_argument("--keys", type=int, default=200)
    ap.add_argument("--ttl", type=int, default=2)
    ap.add_argument("--instances", type=int, default=1000)
    ap.add_argument("--latency-ms", type=int, default=20)
    ap.add_argument("--no-redis", action="store_true",
                    help="also run each replica count without Redis, for comparison")
    a = ap.parse_args()
    counts = [int(x) for x in a.replicas.split(",")]
    sim = Sim("--instances", str(a.instances), "--seed", "17", "--latency-ms", str(a.latency_ms))
    ids = sorted(sim.truth()["instances"])
    srv = RedisServer()
    print("Polling load: %g requests/s round robin over the replicas for %g s, /volumes/total "
          "and %d instances (cache_ttl_s %d); ec2.rate_limit %g, rate_burst %g; ec2sim %d "
          "instances at %d ms; one budget allows %.0f calls/min\n"
          % (a.rps, a.duration, a.keys, a.ttl, a.rate, a.burst, a.instances, a.latency_ms,
             a.rate * 60))
    print("| replicas | Redis | EC2 calls | seconds | EC2 calls/min | answers |")
    print("|---:|---|---:|---:|---:|---|")
    try:
        for n in counts:
            for with_redis in ([True, False] if a.no_redis else [True]):
                calls, secs, st = run_one(a, sim, ids, n, srv if with_redis else None)
                ans = ", ".join("%s: %d" % (k, v) for k, v in sorted(st.items(), key=str))
                print("| %d | %s | %d | %.1f | %.0f | %s |" % (
                    n, "shared" if with_redis else "off", calls, secs, calls * 60.0 / secs,
                    ans), flush=True)
    finally:
        sim.stop()
        srv.stop()


if __name__ == "__main__":
    main()
