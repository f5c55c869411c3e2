"""Spare workers (fanout.spare_workers) with the real ebsd and ec2sim: forked ahead while
nothing runs, a cold request's workers are former spares, the spares are forked again once
the request is done; the count is capped by fanout.max_children, follows a reload, is 0 when
off; a spare killed from outside is reaped, and the next requests still answer the truth.
And a worker starts warm: nothing is bound lazily by the dynamic linker in a spare or a
worker (each such lookup walks every loaded library's hash tables, page faults in a fresh
process): what they call was bound before the zygote was forked."""
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SANITIZE, Ebsd, Sim, proc_children, run, sim_env  # noqa: E402

COLD = "routes:\n  volumes_total:\n    cache_ttl_s: 0\n"


def spares(e):
    """Live spare workers of e (not zombies)."""
    return sorted(p for p, state in proc_children(e.pid, spares=True)
                  if state != "Z" and comm(p) == "ebsd-spare")


def comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return ""


def settled(fn, ok, timeout=5):
    """fn() once ok(fn()) holds, or its last value after timeout seconds."""
    deadline = time.monotonic() + timeout
    got = fn()
    while not ok(got) and time.monotonic() < deadline:
        time.sleep(0.02)
        got = fn()
    return got


def wait_spares(e, n, timeout=5):
    got = settled(lambda: spares(e), lambda v: len(v) == n, timeout)
    assert len(got) == n, (got, n)
    return got


def zombies(e):
    return [p for p, state in proc_children(e.pid, zygote=True, spares=True) if state == "Z"]


def test_a_cold_request_runs_on_spares_forked_before_it():
    sim = Sim("--instances", "600", "--seed", "5", "--latency-ms", "300")
    e = Ebsd(config=COLD + "ec2:\n  rate_limit: 0\n", sim=sim)
    try:
        before = wait_spares(e, 16)
        res = []
        t = threading.Thread(target=lambda: res.append(e.get_json("/volumes/total")))
        t.start()
        workers = settled(lambda: [p for p, st in proc_children(e.pid) if st != "Z"], bool)
        t.join()
        assert workers, "no worker seen during the request"
        # every worker of the request was a spare forked before it
        assert set(workers) <= set(before), (workers, before)
        st, _, doc = res[0]
        truth = sim.truth()
        assert st == 200, (st, doc)
        assert doc["instance_count"] == truth["instance_count"], doc
        assert doc["total_gib"] == truth["total_gib"], doc
        # nothing runs any more: the used spares are forked again (new pids)
        after = wait_spares(e, 16)
        assert set(after) - set(before), (before, after)
        assert not set(workers) & set(after)
        # the request still wrote its REPORT line
        rep = [l for l in e.lines if "REPORT" in l]
        assert rep, "no REPORT line"
    finally:
        e.stop()
        sim.stop()


def test_spares_capped_off_and_reloaded():
    sim = Sim("--instances", "40", "--seed", "6")
    e = Ebsd(config=COLD + "fanout:\n  max_children: 3\n", sim=sim)
    try:
        # more spares than workers may run at once would only hold memory: max_children caps
        wait_spares(e, 3)
        e.reload(COLD + "fanout:\n  spare_workers: 2\n")
        wait_spares(e, 2)
        e.reload(COLD + "fanout:\n  spare_workers: 0\n")
        wait_spares(e, 0)
        st, _, doc = e.get_json("/volumes/total")
        assert st == 200 and doc["instance_count"] == sim.truth()["instance_count"], (st, doc)
        time.sleep(0.3)
        assert spares(e) == []
        # the spares let go are reaped, like any child: no zombie is left
        assert settled(lambda: zombies(e), lambda z: not z) == []
        # a config that says too many is refused with the key named
        e.reload(COLD + "fanout:\n  spare_workers: 65\n", until="fanout.spare_workers")
        assert any("fanout.spare_workers" in l and "0..64" in l for l in e.lines), e.lines[-3:]
    finally:
        e.stop()
        sim.stop()


def test_a_spare_killed_from_outside_is_reaped():
    sim = Sim("--instances", "40", "--seed", "7")
    e = Ebsd(config=COLD + "fanout:\n  spare_workers: 4\n", sim=sim)
    try:
        sp = wait_spares(e, 4)
        for p in sp[:2]:
            os.kill(p, signal.SIGKILL)
        left = settled(lambda: (zombies(e), spares(e)), lambda v: not v[0] and len(v[1]) == 2)
        assert left == ([], sp[2:]), (left, sp)
        truth = sim.truth()
        for _ in range(3):
            st, _, doc = e.get_json("/volumes/total")
            assert st == 200 and doc["total_gib"] == truth["total_gib"], (st, doc)
        # idle again: back to 4, none of them the killed ones
        now = wait_spares(e, 4)
        assert not set(now) & set(sp[:2])
        # they end with ebsd
        e.stop()
        assert settled(lambda: [p for p in now if comm(p) == "ebsd-spare"], lambda v: not v) == []
    finally:
        e.stop()
        sim.stop()


def test_draining_lets_the_spares_go():
    # SIGTERM: no request will come that a spare could serve; the one in flight still
    # finishes (on a worker), and no spare is forked when the engine is idle after it
    sim = Sim("--instances", "40", "--seed", "9", "--latency-ms", "1500")
    e = Ebsd(config=COLD, sim=sim)
    try:
        wait_spares(e, 16)
        res = []
        t = threading.Thread(target=lambda: res.append(e.get_json("/volumes/total")))
        t.start()
        settled(lambda: [p for p, st in proc_children(e.pid) if st != "Z"], bool)
        e.signal(signal.SIGTERM)
        wait_spares(e, 0, timeout=1)
        assert t.is_alive(), "the request ended before the spares were let go"
        t.join()
        st, _, doc = res[0]
        assert st == 200 and doc["instance_count"] == sim.truth()["instance_count"], (st, doc)
        assert spares(e) == []
        assert e.p.wait(10) == 0
    finally:
        e.stop()
        sim.stop()


def test_nothing_is_bound_lazily_in_spares_or_workers():
    if SANITIZE:
        print("skipped: the sanitizer runtime binds its own symbols as it goes")
        return
    regions = ["us-east-1", "eu-west-1"]
    sim = Sim("--instances", "20", "--seed", "8", "--regions", ",".join(regions),
              "--accounts", "123456789012,111122223333")
    cfg = ("regions: [%s]\n" % ", ".join(regions) + COLD +
           "accounts:\n  - name: home\n  - name: dev\n"
           "    role_arn: \"arn:aws:iam::111122223333:role/ebsd-read\"\n")
    e = Ebsd(config=cfg, env=sim_env(sim, {"AWS_ENDPOINT_URL_STS": sim.url,
                                           "LD_DEBUG": "bindings"}))
    try:
        wait_spares(e, 16)
        zygote = [p for p, _ in proc_children(e.pid, zygote=True) if comm(p) == "ebsd-zygote"]
        for _ in range(3):  # the first runs on spares, the later ones on their successors
            st, _, doc = e.get_json("/volumes/total?account=all&region=all")
            assert st == 200 and doc["complete"], (st, doc)
            wait_spares(e, 16)
        e.stop()
        pids = {}
        for line in e.lines:
            head, _, rest = line.partition(":")
            if "binding file" in rest and head.strip().isdigit():
                pids.setdefault(int(head), []).append(rest.strip())
        assert e.pid in pids, "LD_DEBUG gave no binding line at all: the check checks nothing"
        others = {p: v for p, v in pids.items() if p != e.pid and p not in zygote}
        assert not others, others
    finally:
        e.stop()
        sim.stop()


if __name__ == "__main__":
    run(globals())
