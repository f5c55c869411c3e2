"""Short fault-injection soak (the long form is bench/soak.py, which this imports): ec2sim
throttles, fails with 500/503, hangs, truncates, sends broken XML and resets connections at
a few percent each; a mixed load (cold, cached, If-None-Match, per-instance, unknown
instance, bad requests, health probes, clients that send a cold request and close before the
answer) runs for ~35 s in Release (~20 s at lower concurrency under Sanitize).

Asserted: every answer leaves ebsd by its ?timeout_ms= deadline + 100 ms (ebsd's access-log
duration, from the request's arrival to the last byte written), and reaches the client by
deadline + 250 ms (connect to the last body byte; the client shares ebsd's CPUs and gets
150 ms for its own scheduling), with no exception for a loaded machine; only
200/304/400/404/502/503/504, and the statuses each kind of request may get; no client error;
ebsd alive and exiting 0 on SIGTERM; no zombie lingering (sampled every 250 ms); no child
left 1 s after the load stops; descriptors and VmRSS at the end within a small margin of
the warmed-up start; exactly one access-log line per answered request, at most one per
client that left.

What keeps the deadline check honest on a shared machine (docs/SOAK.md): CTest runs this
test alone (RUN_SERIAL), and when allowed (root) the test re-runs itself in a session of
its own and raises that session's scheduling group (autogroup nice -10) and its own nice
value, so ebsd, ec2sim and this client get the CPU ahead of unrelated jobs. Inside that
group ebsd's own workers still compete with its loop: that is what is judged.
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
AUTOGROUP = "/proc/self/autogroup"


def own_session():
    """With autogroup scheduling (CONFIG_SCHED_AUTOGROUP, and no cpu cgroup of our own),
    the kernel shares the CPU between sessions first and weighs nice values only inside a
    session, so os.nice alone does not help against other sessions' jobs. Re-executes this
    test in a new session (setsid -w, which forks only when it must and passes the exit
    status back) once; returns only in the new session, or when that is not possible."""
    if os.environ.get("EBSD_SOAK_SESSION") or os.geteuid() != 0 or not os.path.exists(AUTOGROUP):
        return
    setsid = "/usr/bin/setsid"
    if not os.path.exists(setsid):
        return
    os.environ["EBSD_SOAK_SESSION"] = "1"
    sys.stdout.flush()
    os.execv(setsid, [setsid, "-w", sys.executable] + sys.argv)


def raise_priority():
    """On a shared machine (fuzzers, other sessions) the deadlines would measure the
    neighbours' load: when allowed (root), this session's autogroup and this process (so
    ec2sim and ebsd started from it) get nice -10. Threads and children inherit it; ebsd's
    workers then run at -10 + 10 = 0. Returns what was raised."""
    done = []
    if os.environ.get("EBSD_SOAK_SESSION"):
        try:
            with open(AUTOGROUP, "w") as f:
                f.write("-10")
            done.append("autogroup")
        except OSError:
            pass
    try:
        os.nice(-10)
        done.append("nice")
    except OSError:
        pass
    return done


def test_soak_with_faults():
    raised = raise_priority()
    print("priority raised (-10): %s" % (raised or "no (not root)"), flush=True)
    # ec2sim and this client stand in for remote machines, but here they share ebsd's CPUs:
    # when allowed, ebsd's loop runs 5 nice levels above them (its workers, as always, 10
    # below the loop, so still below the client), so that what is judged is ebsd against
    # its own workers, not against the test's stand-ins.
    wrapper = ["nice", "-n", "-5"] if "nice" in raised else None
    res = soak.run_soak(duration=DURATION, concurrency=CONCURRENCY, instances=120,
                        warmup=4 if SANITIZE else 6, seed=11, sighup_at=DURATION / 2,
                        ebsd_wrapper=wrapper)
    problems, s = soak.check(res)
    print(soak.table(s), flush=True)
    # Not judged, only shown: how long ebsd's loop was runnable but not running.
    print("ebsd's loop waited %.1f s of %.1f s for a CPU (load average %s)"
          % (s["run_delay"] / 1000, s["wall"], s["load1"]), flush=True)
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


own_session()
run(globals())
