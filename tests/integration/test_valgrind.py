"""The Release ebsd under valgrind memcheck for a short mixed run: cold and cached totals,
per-instance reads, unknown and malformed ids, EC2 faults (500, hang -> 504, reset,
truncated and malformed XML), a client that leaves before its answer, a SIGHUP reload,
/metrics and /readyz, then SIGTERM.

valgrind --tool=memcheck --leak-check=full --errors-for-leak-kinds=definite
         --error-exitcode=99 --trace-children=no --child-silent-after-fork=yes

How the workers are judged: ebsd forks its workers without exec, and valgrind keeps running
a forked child under memcheck (--trace-children is only about exec). With
--child-silent-after-fork=yes a child prints nothing, but an error in it (an invalid read or
write, a use of uninitialised memory, or a definite leak at its exit) still turns its exit
status into 99, which ebsd reports as `ChildFailed ... exited (status 99)` and a 502. So the
children are clean when no request of the run fails with ChildFailed and no log line names
status 99. The parent is judged by its own exit status (0, not 99) and by its log file:
`ERROR SUMMARY: 0 errors` and no non-zero "definitely lost".

Skipped (and counted as passed, with the reason printed) in the Sanitize build: ASan and
valgrind do not mix. Fails with a clear message when valgrind is not installed.
"""
import glob
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SANITIZE, Ebsd, Sim, run, sim_env  # noqa: E402

CONFIG = """\
routes:
  volumes_total:
    timeout_ms: 20000
    cache_ttl_s: 60
  instance_volumes:
    timeout_ms: 20000
    cache_ttl_s: 60
fanout:
  max_children: 8
  queue_timeout_ms: 10000
cache:
  min_refresh_s: 0
log:
  level: info
"""


def valgrind_argv(logdir):
    return ["valgrind", "--tool=memcheck", "--leak-check=full",
            "--errors-for-leak-kinds=definite", "--error-exitcode=99",
            "--trace-children=no", "--child-silent-after-fork=yes",
            "--log-file=" + os.path.join(logdir, "vg.%p.log")]


def test_valgrind_installed():
    if SANITIZE:
        print("skip: Sanitize build (ASan and valgrind do not mix); valgrind runs in Release")
        return
    assert shutil.which("valgrind"), (
        "valgrind is not installed: test_valgrind needs Debian's valgrind package "
        "(apt-get install valgrind)")


def test_memcheck_mixed_run_clean():
    if SANITIZE:
        print("skip: Sanitize build (ASan and valgrind do not mix); valgrind runs in Release")
        return
    assert shutil.which("valgrind"), "valgrind is not installed (apt-get install valgrind)"
    logdir = tempfile.mkdtemp(prefix="ebsd-valgrind-")
    sim = Sim("--instances", "40", "--seed", "5", "--latency-ms", "5")
    # STS through the simulator too: a reload below adds accounts
    e = Ebsd(CONFIG, sim=sim, env=sim_env(sim, {"AWS_ENDPOINT_URL_STS": sim.url}),
             wrapper=valgrind_argv(logdir), first_line_timeout=90)
    ids = sorted(sim.truth()["instances"])
    T = "timeout_ms=20000"
    seen = []

    def get(path, headers=None, want=None):
        st, _, body = e.get(path, headers=headers, timeout=40)
        seen.append((path, st, body[:300]))
        if want is not None:
            assert st in want, (path, st, body[:500])
        return st, body

    # cold, cached, detail, per-instance, unknown, malformed, 404 path
    get("/volumes/total?" + T, want={200})
    get("/volumes/total?" + T, want={200})
    get("/volumes/total?detail=instances&" + T, want={200})
    for i in ids[:3]:
        get("/instances/%s/volumes?%s" % (i, T), want={200})
    get("/instances/%s/volumes?%s" % (ids[0], T), want={200})
    get("/instances/i-0000000000000dead/volumes?" + T, want={404})
    get("/instances/i-XYZ/volumes?" + T, want={400})
    get("/volumes/total?timeout_ms=0", want={400})
    get("/nope", want={404})
    # EC2 faults: 500s (retried, then 502), hang -> 504, reset/truncate/malformed -> 502
    sim.faults(p_500=1.0)
    get("/volumes/total?" + T, headers={"Cache-Control": "no-cache"}, want={200, 502})
    sim.faults(clear=True, p_hang=1.0, hang_max_ms=30000)
    get("/instances/%s/volumes?timeout_ms=2500" % ids[5], want={504})
    for kind in ("p_reset", "p_truncate", "p_malformed"):
        sim.faults(clear=True, **{kind: 1.0})
        get("/instances/%s/volumes?%s" % (ids[6], T), headers={"Cache-Control": "no-cache"},
            want={502, 503, 504})
    # faults at a realistic rate over a few cold fetches
    sim.faults(clear=True, p_500=0.1, p_503=0.1, p_reset=0.05, p_truncate=0.05,
               p_malformed=0.05, rate_bucket=5, rate_refill=5)
    for i in ids[8:14]:
        get("/instances/%s/volumes?%s" % (i, T), want={200, 502, 503, 504})
    sim.faults(clear=True, p_hang=1.0, hang_max_ms=30000)
    # a client that leaves before its (hanging) answer
    s = socket.create_connection(("127.0.0.1", e.port), timeout=5)
    s.sendall(b"GET /instances/%s/volumes?timeout_ms=20000 HTTP/1.1\r\nHost: x\r\n"
              b"X-Request-Id: vg-leaver\r\n\r\n" % ids[20].encode())
    time.sleep(1.5)
    s.close()
    time.sleep(1.5)
    sim.faults(clear=True)
    # reload
    n = len(e.lines)
    with open(e.config_path, "a") as f:
        f.write("# touched\n")
    e.signal(signal.SIGHUP)
    e.wait_line(lambda l: "reload" in l, timeout=30, start=n)
    get("/volumes/total?" + T, headers={"Cache-Control": "no-cache"}, want={200})
    # a reload that changes the accounts: "default" now learns its id (changed: fetched anew,
    # its answers dropped) and "second" is new; both are fetched in workers
    n = len(e.lines)
    with open(e.config_path, "a") as f:
        f.write("accounts:\n  - name: default\n  - name: second\n")
    e.signal(signal.SIGHUP)
    e.wait_line(lambda l: "accounts reloaded" in l, timeout=30, start=n)
    until = time.monotonic() + 60
    while b'"ready":true' not in get("/accounts", want={200})[1].split(b'"second"')[-1]:
        assert time.monotonic() < until, seen[-1]
        time.sleep(0.5)
    get("/volumes/total?account=second&" + T, want={200})
    get("/volumes/total?" + T, want={200})
    get("/metrics", want={200})
    get("/readyz", want={200})
    get("/healthz", want={200})
    rc = e.stop(timeout=120)
    sim.stop()
    logs = sorted(glob.glob(os.path.join(logdir, "vg.*.log")))
    parent = os.path.join(logdir, "vg.%d.log" % e.pid)
    assert os.path.exists(parent), "no valgrind log for the parent: %s" % logs
    text = open(parent).read()
    tail = "\n".join(text.splitlines()[-40:])
    assert rc == 0, "ebsd under valgrind exited %s (99: memcheck errors); log tail:\n%s" % (rc, tail)
    m = re.search(r"ERROR SUMMARY: (\d+) errors", text)
    assert m and m.group(1) == "0", "memcheck errors in the parent:\n" + tail
    dl = re.findall(r"definitely lost: ([\d,]+) bytes", text)
    assert all(x == "0" for x in dl), "definitely lost in the parent:\n" + tail
    # workers: an error in one makes it exit 99, which ebsd reports as ChildFailed
    child_failed = [x for x in seen if b"ChildFailed" in x[2]]
    assert not child_failed, "workers failed under memcheck: %s" % child_failed
    bad = [l for l in e.lines if "status 99" in l or "ChildFailed" in l]
    assert not bad, "workers failed under memcheck:\n" + "\n".join(bad[:10])
    # the leaver was noticed and logged once
    acc = [o for o in e.json_lines() if o.get("request_id") == "vg-leaver" and "status" in o]
    assert len(acc) <= 1, acc
    print("valgrind: parent log %s: %s; %d requests" % (
        parent, (m.group(0) if m else "?"), len(seen)))
    shutil.rmtree(logdir, ignore_errors=True)


run(globals())
