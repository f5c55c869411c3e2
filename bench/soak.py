#!/usr/bin/env python3
"""Fault-injection soak: ec2sim with throttling, 5xx, hangs, truncated/malformed XML and
connection resets; a mixed client load against ebsd (cold fetches, cached reads with
If-None-Match, per-instance reads, unknown instances, bad requests, clients that send a
cold request and close before the answer). Every request carries ?timeout_ms= and its own
X-Request-Id; the client measures each answer and calls it late when it arrives after the
deadline + 100 ms. Prints a table: requests by kind and status, latency p50/p99/max, late
answers, descriptors and RSS of ebsd at the (warmed-up) start and at the end, zombies seen,
children left after the load, access-log lines.

Usage: bench/soak.py [--duration 300] [--concurrency 16] [--instances 150]
                     [--p-500 .02] [--p-503 .02] [--p-hang .01] [--p-truncate .01]
                     [--p-malformed .01] [--p-reset .01] [--rate-bucket 40 --rate-refill 40]
                     [--latency-ms 15 --jitter-ms 25] [--warmup 8] [--seed 7]
Exits 1 when an assertion of the soak fails (late answer, unexpected status, crash, zombie,
children left, descriptor or RSS growth, access log mismatch). Loopback only; it stops by
itself; every process it starts is stopped at exit.

tests/integration/test_soak.py imports this module for the short form."""
import argparse
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
os.environ.setdefault("EBSD_BIN", os.path.join(ROOT, "build", "ebsd"))
os.environ.setdefault("EC2SIM_BIN", os.path.join(ROOT, "build", "tools", "ec2sim", "ec2sim"))
from harness import (Ebsd, Sim, proc_children, proc_fds, proc_status,  # noqa: E402
                     write_config)

ALLOWED = {200, 304, 400, 404, 502, 503, 504}
LATE_MS = 100.0
# The client runs on the same CPUs as ebsd: on a loaded machine it can itself be scheduled
# late by a few tens of milliseconds after ebsd has sent the answer. ebsd's own view (its
# access-log duration, from the request's arrival to the last byte handed to the kernel) is
# held to deadline + LATE_MS exactly; the client's view gets this much slack on top, so that
# a starved client is not counted against ebsd while a late ebsd still fails both.
CLIENT_SLACK_MS = 150.0
DEADLINES_MS = (300, 600, 1000, 2000, 4000)
# kind: weight
MIX = {"cold": 10, "cached": 30, "etag": 8, "instance": 25, "unknown": 5, "bad": 10,
       "leaver": 7, "health": 5}
# Statuses each kind may get; all must also be in ALLOWED.
EXPECT = {
    "cold": {200, 502, 503, 504},
    "cached": {200, 502, 503, 504},
    "etag": {200, 304, 502, 503, 504},
    "instance": {200, 502, 503, 504},
    "unknown": {404, 502, 503, 504},
    "bad": {400, 404},
    "health": {200},
}

# Short TTLs keep refresh-ahead (background fetches nobody waits for) busy; the routes'
# own timeout_ms (700 ms) bounds those background fetches, so "no child left 1 s after the
# load" is strict: every request of the load sets its own ?timeout_ms.
CONFIG = """\
ec2:
  rate_limit: {rate_limit}
  rate_burst: {rate_burst}
routes:
  volumes_total:
    timeout_ms: 700
    cache_ttl_s: 5
  instance_volumes:
    timeout_ms: 700
    cache_ttl_s: 5
cache:
  min_refresh_s: 0
  stale_if_error_s: 30
  stale_while_revalidate_s: 2
  negative_ttl_s: 2
fanout:
  max_children: 24
  queue_timeout_ms: 1000
"""


def run_delay_ms(pid):
    """Time the process spent runnable but waiting for a CPU (/proc/PID/schedstat)."""
    try:
        with open("/proc/%d/schedstat" % pid) as f:
            return int(f.read().split()[1]) / 1e6
    except (OSError, IndexError, ValueError):
        return -1.0


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def pct(sorted_vals, p):
    if not sorted_vals:
        return 0.0
    k = min(len(sorted_vals) - 1, max(0, int(round(p / 100.0 * (len(sorted_vals) - 1)))))
    return sorted_vals[k]


class Load:
    """The mixed client load. One Load runs phases (warm-up, main) with `concurrency`
    threads, each doing one request at a time on a fresh connection until the phase ends."""

    def __init__(self, ebsd, instances, seed=7, mix=None, deadlines=DEADLINES_MS):
        self.ebsd = ebsd
        self.port = ebsd.port
        self.instances = instances
        self.unknown = ["i-%017x" % (0xdead0000 + i) for i in range(8)]
        self.mix = list((mix or MIX).items())
        self.deadlines = deadlines
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.results = []  # (kind, status, elapsed_ms, deadline_ms, request_id)
        self.errors = []   # client-side failures (connection errors, unexpected closes)
        self.leavers = []  # request ids of clients that closed early
        self.etag = None
        self.seq = 0

    def _rid(self, kind):
        with self.lock:
            self.seq += 1
            return "soak-%s-%d-%06d" % (kind, os.getpid(), self.seq)

    def _pick(self, rng):
        total = sum(w for _, w in self.mix)
        x = rng.uniform(0, total)
        for k, w in self.mix:
            x -= w
            if x <= 0:
                return k
        return self.mix[-1][0]

    def one(self, rng):
        kind = self._pick(rng)
        dl = rng.choice(self.deadlines)
        rid = self._rid(kind)
        hdrs = {"X-Request-Id": rid}
        if kind == "cold":
            path = "/volumes/total?timeout_ms=%d%s" % (dl, rng.choice(["", "&detail=instances"]))
            hdrs["Cache-Control"] = "no-cache"
        elif kind == "cached":
            path = "/volumes/total?timeout_ms=%d" % dl
        elif kind == "etag":
            path = "/volumes/total?timeout_ms=%d" % dl
            if self.etag:
                hdrs["If-None-Match"] = self.etag
        elif kind == "instance":
            path = "/instances/%s/volumes?timeout_ms=%d" % (rng.choice(self.instances), dl)
        elif kind == "unknown":
            path = "/instances/%s/volumes?timeout_ms=%d" % (rng.choice(self.unknown), dl)
        elif kind == "bad":
            path = rng.choice(["/instances/i-XYZ/volumes?timeout_ms=%d" % dl,
                               "/volumes/total?timeout_ms=0",
                               "/volumes/total?timeout_ms=%d&bogus=1" % dl,
                               "/volumes/total?region=xx-nowhere-9&timeout_ms=%d" % dl,
                               "/no/such/path?timeout_ms=%d" % dl])
        elif kind == "health":
            path = rng.choice(["/healthz", "/readyz"])
        else:  # leaver: a cold request, closed before the answer
            path = "/instances/%s/volumes?timeout_ms=%d" % (rng.choice(self.instances), dl)
            return self._leaver(rng, path, rid)
        t0 = time.monotonic()
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=dl / 1000.0 + 5)
            try:
                c.request("GET", path, headers=hdrs)
                r = c.getresponse()
                body = r.read()
                st = r.status
                et = r.getheader("ETag")
            finally:
                c.close()
        except Exception as e:  # noqa: BLE001
            with self.lock:
                self.errors.append((kind, path, repr(e), (time.monotonic() - t0) * 1000))
            return
        ms = (time.monotonic() - t0) * 1000.0
        if st == 200 and et and kind in ("cached", "etag", "cold") and "detail" not in path:
            self.etag = et
        with self.lock:
            self.results.append((kind, st, ms, dl, rid, path, body[:200] if st >= 500 else b""))

    def _leaver(self, rng, path, rid):
        hdrs = "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-Id: %s\r\n" \
               "Cache-Control: no-cache\r\n\r\n" % (path, rid)
        try:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            s.sendall(hdrs.encode())
            time.sleep(rng.uniform(0.005, 0.08))
            s.close()
        except OSError as e:
            with self.lock:
                self.errors.append(("leaver", path, repr(e), 0))
            return
        with self.lock:
            self.leavers.append(rid)

    def phase(self, seconds, concurrency, max_requests=None, hooks=()):
        """Runs the load for `seconds` (or until max_requests); hooks: [(at_s, fn)]."""
        end = time.monotonic() + seconds
        count = [0]
        lk = threading.Lock()

        def worker(i):
            rng = random.Random(self.rng.random())
            while time.monotonic() < end:
                with lk:
                    if max_requests is not None and count[0] >= max_requests:
                        return
                    count[0] += 1
                self.one(rng)

        ts = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
        t0 = time.monotonic()
        for t in ts:
            t.start()
        pending = sorted(hooks, key=lambda h: h[0])
        while any(t.is_alive() for t in ts):
            now = time.monotonic() - t0
            while pending and pending[0][0] <= now:
                pending.pop(0)[1]()
            time.sleep(0.05)
        for t in ts:
            t.join(max(self.deadlines) / 1000.0 + 10)
        return count[0]


class ZombieWatch:
    """Samples ebsd's children every `period` s; a zombie seen with the same pid in two
    samples in a row lingered at least `period` s (SIGCHLD reaping is immediate)."""

    def __init__(self, pid, period=0.25):
        self.pid = pid
        self.period = period
        self.lingering = set()
        self.max_children = 0
        self.samples = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        prev = set()
        while not self._stop.wait(self.period):
            try:
                kids = proc_children(self.pid)
            except OSError:
                return
            self.samples += 1
            self.max_children = max(self.max_children, len(kids))
            z = {p for p, st in kids if st == "Z"}
            self.lingering |= (z & prev)
            prev = z

    def stop(self):
        self._stop.set()
        self._t.join(5)


def quiesce(ebsd, settle=1.0):
    time.sleep(settle)
    return proc_fds(ebsd.pid), proc_status(ebsd.pid, "VmRSS"), proc_children(ebsd.pid)


def soak_config(text):
    """The soak's config for the ebsd under test. Its cold requests force refreshes, so it
    lifts cache.min_refresh_s; a build from before that key (EBSD_BIN pointing at an older
    build, for a side-by-side soak) gets the config without it."""
    path = write_config(text)
    try:
        ok = subprocess.run([os.environ["EBSD_BIN"], "--check-config", path],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
    finally:
        os.unlink(path)
    return text if ok else text.replace("  min_refresh_s: 0\n", "")


def run_soak(duration=300, concurrency=16, instances=150, warmup=8, seed=7,
             faults=None, rate_limit=0, rate_burst=90, sighup_at=None, log=print,
             ebsd_wrapper=None):
    """Boots ec2sim + ebsd, warms up, measures, soaks, measures again. Returns a dict."""
    f = dict(p_500=0.02, p_503=0.02, p_hang=0.01, p_truncate=0.01, p_malformed=0.01,
             p_reset=0.01, hang_max_ms=10000, rate_bucket=40, rate_refill=40,
             latency_ms=15, jitter_ms=25)
    f.update(faults or {})
    sim = Sim("--instances", str(instances), "--seed", str(seed))
    ebsd = Ebsd(soak_config(CONFIG.format(rate_limit=rate_limit, rate_burst=rate_burst)),
                sim=sim, wrapper=ebsd_wrapper)
    try:
        truth = sim.truth()
        ids = sorted(truth["instances"])
        load = Load(ebsd, ids, seed=seed)
        # Warm-up without faults: every key of the key space once, then mixed load with
        # faults so that the allocator, cache and descriptor tables reach their steady state.
        for i in ids + load.unknown:
            ebsd.get("/instances/%s/volumes" % i)
        ebsd.get("/volumes/total")
        ebsd.get("/volumes/total?detail=instances")
        sim.faults(**f)
        load.phase(warmup, concurrency)
        fd0, rss0, kids0 = quiesce(ebsd)
        warm_n = len(load.results)
        warm_leavers = len(load.leavers)
        sim.reset()
        zw = ZombieWatch(ebsd.pid)
        rd0 = run_delay_ms(ebsd.pid)
        t0 = time.monotonic()
        hooks = []
        if sighup_at is not None:
            hooks.append((sighup_at, lambda: ebsd.signal(signal.SIGHUP)))
        load.phase(duration, concurrency, hooks=hooks)
        wall = time.monotonic() - t0
        rdelay = run_delay_ms(ebsd.pid) - rd0
        load1 = loadavg()
        zw.stop()
        alive = ebsd.p.poll() is None
        fd1, rss1, kids1 = quiesce(ebsd)
        health = ebsd.get("/healthz", timeout=5)[0] if alive else None
        metrics = ebsd.get("/metrics", timeout=5)[2].decode() if alive else ""
        stats = sim.stats()
        rc = ebsd.stop(timeout=40)
        kids_after = [k for k in kids1]
        return dict(load=load, warm_n=warm_n, warm_leavers=warm_leavers, fd0=fd0, fd1=fd1,
                    rss0=rss0, rss1=rss1, kids0=kids0, kids1=kids_after, zombies=zw.lingering,
                    max_children=zw.max_children, alive=alive, health=health, rc=rc,
                    wall=wall, run_delay=rdelay, load1=load1, sim_stats=stats, ebsd=ebsd, metrics=metrics, faults=f)
    finally:
        ebsd.stop(timeout=40)
        sim.stop()


def access_lines(ebsd):
    out = {}
    for o in ebsd.json_lines():
        if o.get("msg") == "access" or o.get("event") == "access" or o.get("message") == "access":
            rid = o.get("request_id")
            out.setdefault(rid, []).append(o)
    return out


def check(res):
    """Assertions of the soak; returns (problems, summary dict)."""
    load = res["load"]
    problems = []
    results = load.results[res["warm_n"]:]
    leavers = load.leavers[res["warm_leavers"]:]
    acc = access_lines(res["ebsd"])
    # late by ebsd's own clock (strict), or by the client's beyond its own scheduling slack
    srv_late = [r for r in results if any((o.get("duration_ms") or 0) > r[3] + LATE_MS
                                          for o in acc.get(r[4], []))]
    late = [r for r in results if r[2] > r[3] + LATE_MS + CLIENT_SLACK_MS or r in srv_late]
    client_over = [r for r in results if r[2] > r[3] + LATE_MS]
    bad_status = [r for r in results if r[1] not in ALLOWED or r[1] not in EXPECT.get(r[0], ALLOWED)]
    if late:
        ex = [(r[0], r[1], round(r[2], 1), r[3], r[5],
               [o.get("duration_ms") for o in acc.get(r[4], [])]) for r in late[:8]]
        problems.append("%d late answers (%d late by ebsd's own access-log duration), e.g. "
                        "(kind, status, client ms, deadline, path, ebsd ms): %s"
                        % (len(late), len(srv_late), ex))
    if bad_status:
        problems.append("%d unexpected statuses, e.g. %s" % (len(bad_status),
                                                             [r[:7] for r in bad_status[:5]]))
    errs = load.errors
    if errs:
        problems.append("%d client errors, e.g. %s" % (len(errs), errs[:5]))
    if not res["alive"]:
        problems.append("ebsd died during the soak (exit %s)" % res["rc"])
    if res["rc"] != 0:
        problems.append("ebsd exit status %s after SIGTERM" % res["rc"])
    if res["zombies"]:
        problems.append("zombies lingered: %s" % sorted(res["zombies"]))
    if res["kids1"]:
        problems.append("children left 1 s after the load: %s" % res["kids1"])
    # A worker that crashes (or trips ASan/UBSan) fails its request with 502 ChildFailed,
    # which the status check alone would let through.
    crashy = [l for l in res["ebsd"].lines
              if "ChildFailed" in l or "Sanitizer" in l or "runtime error" in l]
    crashy += [r[6].decode("utf-8", "replace") for r in load.results if b"ChildFailed" in r[6]]
    if crashy:
        problems.append("%d worker failures / sanitizer reports, e.g. %s"
                        % (len(crashy), [c[:300] for c in crashy[:5]]))
    # Access log: one line per answered request; at most one per leaver (499).
    missing = [r[4] for r in load.results if len(acc.get(r[4], [])) != 1]
    if missing:
        problems.append("%d answered requests without exactly one access line, e.g. %s"
                        % (len(missing), missing[:5]))
    dup_leavers = [rid for rid in load.leavers if len(acc.get(rid, [])) > 1]
    if dup_leavers:
        problems.append("leavers with several access lines: %s" % dup_leavers[:5])
    leaver_lines = [acc[rid][0] for rid in leavers if rid in acc]
    leaver_st = {}
    for o in leaver_lines:
        leaver_st[o.get("status")] = leaver_st.get(o.get("status"), 0) + 1
    lat = sorted(r[2] for r in results)
    # Answers that ended at their deadline (504): how far past it they reached the client,
    # and how far past it ebsd itself logged them (access-log duration_ms).
    over = sorted(r[2] - r[3] for r in results if r[1] == 504)
    srv_over = sorted(o["duration_ms"] - r[3] for r in results if r[1] == 504
                      for o in acc.get(r[4], [])[:1] if o.get("duration_ms") is not None)
    by = {}
    for r in results:
        by.setdefault(r[0], {}).setdefault(r[1], 0)
        by[r[0]][r[1]] += 1
    summary = dict(requests=len(results), leavers=len(leavers), leaver_status=leaver_st,
                   by=by, p50=pct(lat, 50), p99=pct(lat, 99), max=lat[-1] if lat else 0,
                   late=len(late), client_over=len(client_over), srv_late=len(srv_late),
                   worst_over=max([r[2] - r[3] for r in results] or [0]),
                   n504=len(over), over=[pct(over, p) for p in (50, 90, 99, 100)],
                   srv_over=[pct(srv_over, p) for p in (50, 90, 99, 100)],
                   errors=len(errs), fd0=res["fd0"], fd1=res["fd1"], rss0=res["rss0"],
                   rss1=res["rss1"], zombies=len(res["zombies"]), kids_left=len(res["kids1"]),
                   max_children=res["max_children"], wall=res["wall"], rc=res["rc"],
                   run_delay=res["run_delay"], load1=res["load1"],
                   access_lines=sum(len(v) for v in acc.values()),
                   sim_faults=res["sim_stats"].get("faults"),
                   sim_requests=res["sim_stats"].get("requests"))
    return problems, summary


def table(s):
    statuses = sorted({st for d in s["by"].values() for st in d})
    out = ["| kind | " + " | ".join(str(x) for x in statuses) + " | total |",
           "|---|" + "---:|" * (len(statuses) + 1)]
    tot = {}
    for k in sorted(s["by"]):
        d = s["by"][k]
        out.append("| %s | %s | %d |" % (k, " | ".join(str(d.get(x, "")) for x in statuses),
                                         sum(d.values())))
        for x, n in d.items():
            tot[x] = tot.get(x, 0) + n
    out.append("| **all** | %s | %d |" % (" | ".join(str(tot.get(x, "")) for x in statuses),
                                          sum(tot.values())))
    out.append("")
    rows = [
        ("wall time", "%.1f s" % s["wall"]),
        ("requests answered", "%d (%.0f/s)" % (s["requests"], s["requests"] / max(s["wall"], 1e-9))),
        ("clients that left early", "%d (access-log statuses %s)" % (s["leavers"], s["leaver_status"])),
        ("latency p50 / p99 / max", "%.1f / %.1f / %.1f ms" % (s["p50"], s["p99"], s["max"])),
        ("late answers (ebsd > deadline + 100 ms, or client > deadline + 250 ms)",
         "%d (worst at the client: %+.1f ms vs deadline)" % (s["late"], s["worst_over"])),
        ("answers past deadline + 100 ms at the client / in ebsd's log",
         "%d / %d" % (s["client_over"], s["srv_late"])),
        ("504s: ms past the deadline at the client, p50 / p90 / p99 / max",
         "%d: %s" % (s["n504"], " / ".join("%+.1f" % x for x in s["over"]))),
        ("504s: ms past the deadline in ebsd's access log, p50 / p90 / p99 / max",
         " / ".join("%+.1f" % x for x in s["srv_over"])),
        ("client errors (no answer)", str(s["errors"])),
        ("ebsd fds start / end", "%d / %d" % (s["fd0"], s["fd1"])),
        ("ebsd VmRSS start / end", "%d / %d KiB" % (s["rss0"], s["rss1"])),
        ("zombies lingering", str(s["zombies"])),
        ("peak children seen", str(s["max_children"])),
        ("children left 1 s after load", str(s["kids_left"])),
        ("access-log lines", str(s["access_lines"])),
        ("EC2 requests / faults injected", "%s / %s" % (s["sim_requests"], s["sim_faults"])),
        ("ebsd exit after SIGTERM", str(s["rc"])),
        ("ebsd parent waiting for a CPU / load average at end",
         "%.0f ms / %s" % (s["run_delay"], s["load1"])),
    ]
    out += ["| measure | value |", "|---|---|"] + ["| %s | %s |" % r for r in rows]
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=300)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--instances", type=int, default=150)
    ap.add_argument("--warmup", type=float, default=8)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--rate-limit", type=float, default=0, help="ebsd's own EC2 rate (0: off)")
    for name, d in (("p-500", .02), ("p-503", .02), ("p-hang", .01), ("p-truncate", .01),
                    ("p-malformed", .01), ("p-reset", .01)):
        ap.add_argument("--" + name, type=float, default=d)
    ap.add_argument("--rate-bucket", type=int, default=40)
    ap.add_argument("--rate-refill", type=int, default=40)
    ap.add_argument("--latency-ms", type=int, default=15)
    ap.add_argument("--jitter-ms", type=int, default=25)
    ap.add_argument("--rss-margin-kib", type=int, default=4096)
    ap.add_argument("--ebsd-nice", type=int, default=None,
                    help="run ebsd under nice -n N (e.g. -10 on a shared, loaded machine, to "
                         "tell ebsd's own lateness from CPU starvation; needs root)")
    a = ap.parse_args()
    faults = dict(p_500=a.p_500, p_503=a.p_503, p_hang=a.p_hang, p_truncate=a.p_truncate,
                  p_malformed=a.p_malformed, p_reset=a.p_reset, rate_bucket=a.rate_bucket,
                  rate_refill=a.rate_refill, latency_ms=a.latency_ms, jitter_ms=a.jitter_ms)
    res = run_soak(duration=a.duration, concurrency=a.concurrency, instances=a.instances,
                   warmup=a.warmup, seed=a.seed, faults=faults, rate_limit=a.rate_limit,
                   sighup_at=a.duration / 2,
                   ebsd_wrapper=(["nice", "-n", str(a.ebsd_nice)] if a.ebsd_nice is not None
                                 else None))
    problems, s = check(res)
    if abs(s["fd1"] - s["fd0"]) > 2:
        problems.append("descriptors %d -> %d" % (s["fd0"], s["fd1"]))
    if s["rss1"] > s["rss0"] + a.rss_margin_kib:
        problems.append("VmRSS %d -> %d KiB" % (s["rss0"], s["rss1"]))
    print("## ebsd soak: %.0f s, concurrency %d, %d instances, faults %s\n"
          % (a.duration, a.concurrency, a.instances, json.dumps(res["faults"], sort_keys=True)))
    print(table(s))
    if problems:
        print("\nPROBLEMS:")
        for p in problems:
            print("- " + p[:2000])
        sys.exit(1)
    print("\nno problems")


if __name__ == "__main__":
    main()
