"""Short fault-injection soak (the long form is bench/soak.py, which this imports): ec2sim
throttles, fails with 500/503, hangs, truncates, sends broken XML and resets connections at
a few percent each; a mixed load (cold, cached, If-None-Match, per-instance, unknown
instance, bad requests, health probes, clients that send a cold request and close before the
answer) runs for ~35 s in Release (~20 s at lower concurrency under Sanitize).

Asserted: every answer arrives by its ?timeout_ms= deadline + 100 ms (measured by the
client, from connect to the last body byte); only 200/304/400/404/502/503/504, and the
statuses each kind of request may get; no client error; ebsd alive and exiting 0 on
SIGTERM; no zombie lingering (sampled every 250 ms); no child left 1 s after the load
stops (lateness and zombies are not judged when the machine is so loaded that ebsd's
loop waits for a CPU more than 5 % of the time; the test prints that); descriptors and VmRSS at the end within a small margin of the warmed-up start;
exactly one access-log line per answered request, at most one per client that left.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "bench"))
from harness import SANITIZE, run  # noqa: E402
import soak  # noqa: E402

DURATION = 20 if SANITIZE else 35
CONCURRENCY = 4 if SANITIZE else 10
FD_MARGIN = 2
RSS_MARGIN_KIB = 3072
STARVED = 0.05  # ebsd runnable but not running for more than 5 % of the soak


def raise_priority():
    """On a shared machine (fuzzers, parallel ctest) the deadlines would measure the
    neighbours' load: when allowed (root), this process, and so ec2sim and ebsd started
    from it, run at nice -10. Threads and children inherit it."""
    try:
        os.nice(-10)
        return True
    except OSError:
        return False


def test_soak_with_faults():
    print("priority raised (nice -10): %s" % raise_priority(), flush=True)
    res = soak.run_soak(duration=DURATION, concurrency=CONCURRENCY, instances=120,
                        warmup=4 if SANITIZE else 6, seed=11, sighup_at=DURATION / 2)
    problems, s = soak.check(res)
    print(soak.table(s), flush=True)
    # A machine so loaded that ebsd's own loop waits for a CPU (run-queue time from
    # /proc/PID/schedstat) cannot show whether ebsd keeps its deadlines: then a late answer
    # or a zombie seen in two 250 ms samples is reported, not failed, and the rest holds.
    starved = s["run_delay"] > STARVED * s["wall"] * 1000
    if starved:
        soft = [p for p in problems if "late answers" in p or "zombies lingered" in p]
        problems = [p for p in problems if p not in soft]
        print("NOTE: machine overloaded (load %s; ebsd waited %.1f s of %.1f s for a CPU): "
              "not judged: %s" % (s["load1"], s["run_delay"] / 1000, s["wall"],
                                  [p[:300] for p in soft]), flush=True)
    if abs(s["fd1"] - s["fd0"]) > FD_MARGIN:
        problems.append("descriptors %d at start, %d at the end" % (s["fd0"], s["fd1"]))
    if SANITIZE:
        # ASan keeps freed memory in its quarantine (up to 256 MiB), so VmRSS grows by
        # design there; LeakSanitizer checks leaks at exit instead.
        print("NOTE: VmRSS not judged under ASan (quarantine): %d -> %d KiB"
              % (s["rss0"], s["rss1"]))
    elif s["rss1"] > s["rss0"] + RSS_MARGIN_KIB:
        problems.append("VmRSS %d KiB at start, %d KiB at the end" % (s["rss0"], s["rss1"]))
    # The load must really have exercised the paths.
    by = s["by"]
    if sum(by.get("cold", {}).values()) < 20 or s["leavers"] < 10:
        problems.append("too little load: %s, %d leavers" % (by, s["leavers"]))
    faults = s["sim_faults"] or {}
    if sum(faults.values()) < 10:
        problems.append("too few faults injected: %s" % faults)
    assert not problems, "\n".join(p[:1500] for p in problems)


run(globals())
