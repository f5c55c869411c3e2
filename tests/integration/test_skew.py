"""Clock skew and per-attempt timeouts against ec2sim (issue 15, items 2 and 3).

ebsd's clock is faked with the test-only hook EBSD_TEST_CLOCK_SKEW_S (the host's clock is not
touched); ec2sim refuses signatures more than 300 s off with RequestExpired and sends a Date
header, as EC2 does. Asserted: with ebsd's clock an hour ahead or behind, a data request
succeeds after one corrected, re-signed retry per worker; /metrics shows the offset, /readyz
says the clock is beyond the signature window, the log warns once; the next request needs no
retry at all (ec2sim's counters). A skew inside the window changes nothing. A hung first
attempt is abandoned at the read timeout and retried, and the request succeeds well inside its
deadline with the default bounds; with a fraction of calls hanging every answer is right."""
import re
import threading
import time

from harness import Ebsd, Sim, SLOW, run, sim_env
from schema import validate

NO_CACHE = {"Cache-Control": "no-cache"}


def metrics(e):
    st, _, body = e.get("/metrics")
    assert st == 200, st
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
            if "{" in name:  # per-target series (account, region) add up under the name
                base = name.split("{", 1)[0]
                out[base] = out.get(base, 0.0) + float(value)
    return out


def ec2_calls(stats):
    return sum(stats["calls"].values())


def skew_warnings(e):
    return [l for l in e.json_lines() if l.get("event") == "clock_skew"]


def check_skew(skew_s):
    sim = Sim("--instances", "20", "--seed", "3")
    truth = sim.truth()
    e = Ebsd(env=sim_env(sim, {"EBSD_TEST_CLOCK_SKEW_S": str(skew_s)}))
    # before any call: nothing learned, ready (the credentials are fine)
    st, _, doc = e.get_json("/readyz")
    assert st == 200 and "clock_offset_s" not in doc and "clock_skew" not in doc, doc
    assert metrics(e)["ebsd_clock_offset_seconds"] == 0

    sim.reset()
    t0 = time.time()
    st, _, doc = e.get_json("/volumes/total?detail=instances")
    assert st == 200, (st, doc)
    assert time.time() - t0 < 2.0 * SLOW  # corrected retries are not backed off
    validate(doc, "VolumesTotal")
    assert doc["total_gib"] == truth["total_gib"], (doc["total_gib"], truth["total_gib"])
    assert {i["instance_id"]: i["total_gib"] for i in doc["instances"]} == truth["instances"]
    stats = sim.stats()
    expired = stats["errors"].get("RequestExpired", 0)
    # every worker forked before the parent learned the offset made one refused call, then
    # one corrected call: exactly one retry per refused call, and nothing else went wrong
    assert expired >= 1, stats
    assert set(stats["errors"]) == {"RequestExpired"}, stats
    m = metrics(e)
    assert m["ebsd_ec2_retries_total"] == expired, (m["ebsd_ec2_retries_total"], stats)
    assert abs(m["ebsd_clock_offset_seconds"] + skew_s) <= 2, m["ebsd_clock_offset_seconds"]
    assert doc["source"]["ec2_calls"] == ec2_calls(stats), (doc["source"], stats)

    st, _, ready = e.get_json("/readyz")
    assert st == 200, ready
    validate(ready, "Ready")
    assert abs(ready["clock_offset_s"] + skew_s) <= 2, ready
    assert "signature window" in ready["clock_skew"], ready
    warns = skew_warnings(e)
    assert len(warns) == 1 and warns[0]["level"] == "warn", warns
    said = re.search(r"clock is (\d+) s (ahead of|behind) AWS's", warns[0]["msg"])
    assert said and abs(int(said.group(1)) - abs(skew_s)) <= 2, warns
    assert said.group(2) == ("ahead of" if skew_s > 0 else "behind"), warns

    # the next requests are signed right the first time: no refused call, no retry
    for path in ("/volumes/total", "/instances/%s/volumes" % sorted(truth["instances"])[0]):
        sim.reset()
        st, _, doc = e.get_json(path, headers=NO_CACHE)
        assert st == 200, (path, st, doc)
        stats = sim.stats()
        assert stats["errors"] == {}, (path, stats)
        assert ec2_calls(stats) >= 1
    assert metrics(e)["ebsd_ec2_retries_total"] == expired
    assert len(skew_warnings(e)) == 1
    e.stop()
    sim.stop()


def test_clock_an_hour_ahead():
    check_skew(3600)


def test_clock_an_hour_behind():
    check_skew(-3600)


def test_skew_inside_the_window_changes_nothing():
    sim = Sim("--instances", "20", "--seed", "3")
    e = Ebsd(env=sim_env(sim, {"EBSD_TEST_CLOCK_SKEW_S": "-120"}))
    sim.reset()
    st, _, doc = e.get_json("/volumes/total")
    assert st == 200, (st, doc)
    assert sim.stats()["errors"] == {}, sim.stats()
    m = metrics(e)
    assert m["ebsd_clock_offset_seconds"] == 0 and m["ebsd_ec2_retries_total"] == 0, m
    st, _, ready = e.get_json("/readyz")
    assert st == 200 and "clock_offset_s" not in ready and "clock_skew" not in ready, ready
    assert skew_warnings(e) == []
    e.stop()
    sim.stop()


def test_hung_first_attempt_is_retried_within_the_deadline():
    # the default bounds (read_timeout_ms 2500) and deadline (10 s)
    sim = Sim("--instances", "20", "--seed", "4")
    truth = sim.truth()
    e = Ebsd(sim=sim)
    sim.reset()
    sim.faults(p_hang=1.0, hang_max_ms=60000)
    out = {}

    def call():
        t0 = time.time()
        out["answer"] = e.get_json("/volumes/total")
        out["s"] = time.time() - t0

    th = threading.Thread(target=call)
    th.start()
    # exactly one call hangs: the fault is lifted as soon as ec2sim has drawn it (the retry
    # comes 2.5 s later, after the read timeout)
    end = time.time() + 5
    while sim.stats()["faults"]["hang"] < 1:
        assert time.time() < end, sim.stats()
        time.sleep(0.01)
    sim.faults(p_hang=0)
    th.join(30)
    st, _, doc = out["answer"]
    assert st == 200, (st, doc)
    assert doc["total_gib"] == truth["total_gib"]
    # read timeout 2.5 s + a backoff of at most 1 s, far inside the 10 s deadline
    assert 2.4 <= out["s"] < 4.0 + 0.5 * SLOW, out["s"]
    stats = sim.stats()
    assert stats["faults"]["hang"] == 1, stats
    assert metrics(e)["ebsd_ec2_retries_total"] == 1
    line = e.wait_line(lambda l: l.startswith("REPORT") and doc["request_id"] in l)
    assert "EC2 Calls: %d" % ec2_calls(stats) in line, (line, stats)
    e.stop()
    sim.stop()


def test_a_fraction_of_hung_calls_never_fails_a_request():
    sim = Sim("--instances", "200", "--seed", "6")
    truth = sim.truth()
    e = Ebsd(config="ec2:\n  read_timeout_ms: 300\n  max_attempts: 6\n"
                    "cache:\n  min_refresh_s: 0\n", sim=sim)
    sim.faults(p_hang=0.2, hang_max_ms=60000, seed=9)
    for _ in range(8):
        t0 = time.time()
        st, _, doc = e.get_json("/volumes/total?timeout_ms=10000", headers=NO_CACHE)
        assert st == 200, (st, doc)
        assert doc["total_gib"] == truth["total_gib"]
        assert time.time() - t0 < 10.0
    assert sim.stats()["faults"]["hang"] >= 1, sim.stats()
    assert metrics(e)["ebsd_ec2_retries_total"] >= sim.stats()["faults"]["hang"]
    e.stop()
    sim.stop()


run(globals())
