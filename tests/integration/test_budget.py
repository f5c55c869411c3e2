"""The EC2 call budget (issue 14, items 1 and 4): ebsd's EC2 call rate, as ec2sim counts it,
stays within ec2.rate_limit/rate_burst under floods; an exhausted budget answers 503
RequestLimitExceeded with Retry-After at once, never 504 at the deadline; REPORT lines and
/metrics count the work of workers killed at the deadline or from outside."""
import os
import re
import signal
import threading
import time

from harness import Ebsd, Sim, SLOW, proc_children, run

NO_CACHE = {"Cache-Control": "no-cache"}


def sim_calls(sim):
    c = sim.stats()["calls"]
    return c.get("DescribeInstances", 0) + c.get("DescribeVolumes", 0)


def metric(e, name, _absent=0.0, **labels):
    """The sum of the /metrics samples of name whose labels include labels (_absent when
    there is none)."""
    st, _, body = e.get("/metrics")
    assert st == 200
    want = set('%s="%s"' % kv for kv in labels.items())
    found = None
    for line in body.decode().splitlines():
        m = re.match(r'^(\w+)(?:\{([^}]*)\})? (\S+)$', line)
        if not m or m.group(1) != name:
            continue
        if want <= set((m.group(2) or "").split(",")):
            found = (found or 0.0) + float(m.group(3))
    return _absent if found is None else found


def instance_ids(sim):
    """The fleet's instance ids, from the simulator's truth (no EC2 call)."""
    return sorted(sim.truth()["instances"])


def flood(e, paths, clients, seconds, headers=None):
    """clients threads GET paths round-robin for seconds (a path ending in "#plain" is asked
    without headers); returns [(status, retry_after, seconds, path)]."""
    out, lock = [], threading.Lock()
    stop = time.time() + seconds

    def client(k):
        i = k
        while time.time() < stop:
            path = paths[i % len(paths)]
            i += clients
            t0 = time.time()
            plain = path.endswith("#plain")
            st, hdrs, _ = e.get(path[:-6] if plain else path, headers=None if plain else headers,
                                timeout=30)
            with lock:
                out.append((st, hdrs.get("retry-after"), time.time() - t0, path))

    ts = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


def check_rate(samples, rate, burst, slack=3):
    """samples: [(asked, answered, calls)] from ec2sim; every window, measured from the
    first sample's asking to the last one's answer (the widest it can be), is within
    burst + rate x its length (slack: calls in flight between ebsd's token and ec2sim)."""
    for i in range(len(samples)):
        for j in range(i + 1, len(samples)):
            (t0, _, c0), (_, t1, c1) = samples[i], samples[j]
            allowed = burst + rate * (t1 - t0) + slack
            assert c1 - c0 <= allowed, (c1 - c0, allowed, t1 - t0, samples)


def sample_calls(sim, seconds, out):
    end = time.time() + seconds
    while time.time() < end:
        t0 = time.time()
        n = sim_calls(sim)
        out.append((t0, time.time(), n))
        time.sleep(0.5)


def test_exhausted_budget_answers_503_with_retry_after_never_504():
    """rate_limit 2, burst 4, 20 concurrent cold per-instance requests (timeout_ms=5000, two
    calls each): those the budget cannot serve within queue_timeout_ms get 503
    RequestLimitExceeded with Retry-After well before the deadline; none gets 504."""
    sim = Sim("--instances", "40", "--seed", "3", "--latency-ms", "20")
    e = Ebsd(config="ec2:\n  rate_limit: 2\n  rate_burst: 4\nfanout:\n  queue_timeout_ms: 1000\n",
             sim=sim)
    ids = instance_ids(sim)[:20]
    res, lock = [], threading.Lock()
    t_start = time.time()

    def one(i):
        t0 = time.time()
        st, hdrs, body = e.get("/instances/%s/volumes?timeout_ms=5000" % i, timeout=30)
        with lock:
            res.append((st, hdrs.get("retry-after"), time.time() - t0, body))

    ts = [threading.Thread(target=one, args=(i,)) for i in ids]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    elapsed = time.time() - t_start
    codes = sorted(r[0] for r in res)
    assert 504 not in codes, res
    assert set(codes) <= {200, 503}, codes
    # the burst serves one or two requests (two calls each); on a busy machine the second
    # may miss its queue_timeout_ms wait and be refused too
    assert codes.count(200) >= 1 and codes.count(503) >= 5, codes
    for st, ra, took, body in res:
        if st == 503:
            assert b"RequestLimitExceeded" in body, body
            assert ra is not None and 1 <= int(ra) <= 5, ra
            assert took < 1.0 + 1.5 * SLOW, (took, body)  # queue_timeout_ms, not the deadline
    # EC2 saw no more than the budget allows: 4 at once plus 2 per second
    assert sim_calls(sim) <= 4 + 2 * elapsed + 1, (sim_calls(sim), elapsed)
    assert metric(e, "ebsd_ec2_budget_refusals_total", account="default", region="us-east-1",
                  action="Describe") >= codes.count(503)
    tokens = metric(e, "ebsd_ec2_budget_tokens", _absent=None, account="default",
                    region="us-east-1", action="Describe")
    assert tokens is not None and tokens <= 4, tokens
    # ebsd's own refusals are not EC2 errors (the EC2-throttling alert reads those)
    assert metric(e, "ebsd_ec2_errors_total", code="RequestLimitExceeded") == 0
    assert metric(e, "ebsd_ec2_errors_total", code="throttled") == 0
    e.stop()
    sim.stop()


def test_budget_refusal_serves_stale_and_computes_retry_after():
    """With a budget of 2 calls and one more every 10 s: the first total spends it; a forced
    refresh then gets the cached answer, marked stale, instead of an error; a key with
    nothing cached gets 503 RequestLimitExceeded with a Retry-After from the budget (several
    seconds, not a constant 1)."""
    sim = Sim("--instances", "5", "--seed", "9")
    e = Ebsd(config="ec2:\n  rate_limit: 0.1\n  rate_burst: 2\ncache:\n  min_refresh_s: 0\n"
             "fanout:\n  queue_timeout_ms: 200\n", sim=sim)
    st, _, first = e.get_json("/volumes/total")
    assert st == 200, first
    spent = sim_calls(sim)
    assert spent == 2, sim.stats()
    st, hdrs, doc = e.get_json("/volumes/total", headers=NO_CACHE)
    assert st == 200 and hdrs.get("x-cache") == "stale", (st, hdrs, doc)
    assert doc["total_gib"] == first["total_gib"]
    st, hdrs, doc = e.get_json("/instances/i-0123456789abcdef0/volumes")
    assert st == 503 and doc["error"]["code"] == "RequestLimitExceeded", (st, doc)
    assert 5 <= int(hdrs["retry-after"]) <= 10, hdrs
    assert sim_calls(sim) == spent  # nothing was sent to EC2
    e.stop()
    sim.stop()


def test_no_cache_flood_holds_the_budget():
    """min_refresh_s: 0 lets no-cache requests reach the budget directly: one sequential
    client and then 50 concurrent ones, with totals, per-instance misses, unknown instances
    (negative caching) and refresh-ahead mixed in, keep EC2's call rate within rate_limit 10,
    burst 20; every answer is 200 or 503 with Retry-After."""
    sim = Sim("--instances", "120", "--seed", "5", "--latency-ms", "10")
    ids = instance_ids(sim)
    e = Ebsd(config="ec2:\n  rate_limit: 10\n  rate_burst: 20\ncache:\n  min_refresh_s: 0\n"
             "routes:\n  volumes_total:\n    cache_ttl_s: 2\n"
             "  instance_volumes:\n    cache_ttl_s: 2\n", sim=sim)
    # forced refreshes of the total, per-instance misses, unknown instances (negative
    # caching), and plain polls of the total and a few instances (refresh ahead at ttl 2 s)
    paths = ["/volumes/total", "/volumes/total#plain"] + \
        ["/instances/%s/volumes" % i for i in ids[:60]] + \
        ["/instances/%s/volumes#plain" % i for i in ids[60:65]] + \
        ["/instances/i-%017x/volumes" % (0xdead0000 + k) for k in range(10)]
    samples = []
    sampler = threading.Thread(target=sample_calls, args=(sim, 16, samples))
    sampler.start()
    out = flood(e, ["/volumes/total"], 1, 5, headers=NO_CACHE)
    out += flood(e, paths, 50, 10, headers=NO_CACHE)
    sampler.join()
    check_rate(samples, 10, 20)
    assert len(out) > 100, len(out)
    for st, ra, took, path in out:
        assert st in (200, 404) or (st == 503 and ra), (st, ra, took, path)
        assert st != 404 or "dead" in path, path
    assert sum(1 for o in out if o[0] == 200) > 0
    e.stop()
    sim.stop()


def test_no_cache_flood_at_default_min_refresh_is_all_200():
    """At the default cache.min_refresh_s, no-cache requests of one key cannot turn into EC2
    calls faster than one fetch per 10 s: a sequential and a 50-client flood of the total all
    get 200, and the budget is never near."""
    sim = Sim("--instances", "120", "--seed", "5", "--latency-ms", "10")
    e = Ebsd(sim=sim)
    out = flood(e, ["/volumes/total"], 1, 3, headers=NO_CACHE)
    out += flood(e, ["/volumes/total"], 50, 5, headers=NO_CACHE)
    assert out and all(o[0] == 200 for o in out), [o for o in out if o[0] != 200][:5]
    assert sim_calls(sim) <= 50, sim_calls(sim)
    e.stop()
    sim.stop()


def test_sequential_killed_at_deadline_reports_its_calls_and_memory():
    """A ?mode=sequential request answered 504 at its deadline: the REPORT line counts the
    calls its worker made before it was killed and that worker's peak memory."""
    sim = Sim("--instances", "400", "--seed", "2", "--latency-ms", "20")
    e = Ebsd(config="ec2:\n  rate_limit: 0\n  instance_page_size: 5\n", sim=sim)
    st, _, doc = e.get_json("/volumes/total?mode=sequential&timeout_ms=1500",
                            headers={"X-Request-Id": "seq-killed"})
    assert st == 504, (st, doc)
    line = e.wait_line(lambda l: l.startswith("REPORT RequestId: seq-killed\t"))
    calls = int(re.search(r"EC2 Calls: (\d+)", line).group(1))
    mem = int(re.search(r"Max Memory Used: (\d+) MB", line).group(1))
    assert calls > 5 and mem > 0, line
    # a call is counted when its budget token is taken, just before it is sent: a worker
    # killed in between has one call counted that EC2 never saw
    assert sim_calls(sim) >= calls - 1, (sim_calls(sim), calls)
    # /metrics counts them too, once the killed worker is reaped
    deadline = time.time() + 5
    while time.time() < deadline:
        here = {"account": "default", "region": "us-east-1"}  # the one target's labels
        got = metric(e, "ebsd_ec2_calls_total", action="DescribeInstances", **here) + \
            metric(e, "ebsd_ec2_calls_total", action="DescribeVolumes", **here)
        if got >= calls:
            break
        time.sleep(0.1)
    # the same boundary: counted at the token by the REPORT, at the send by a worker that
    # answered its own deadline with the counts of its EC2 client
    assert got >= calls - 1, (got, calls)
    e.stop()
    sim.stop()


def test_worker_killed_from_outside_is_counted_by_signal():
    """SIGKILL to a worker by someone else (an operator, the OOM killer): the request fails,
    /metrics counts it under reason="signal" and signal="KILL", and it is logged once."""
    sim = Sim("--instances", "20", "--latency-ms", "3000")
    e = Ebsd(config="ec2:\n  rate_limit: 0\n", sim=sim)
    res = []
    t = threading.Thread(target=lambda: res.append(e.get("/volumes/total?timeout_ms=20000")))
    t.start()
    kids = []
    deadline = time.time() + 10
    while not kids and time.time() < deadline:
        kids = [p for p, state in proc_children(e.pid) if state != "Z"]
        time.sleep(0.05)
    assert kids
    os.kill(kids[0], signal.SIGKILL)
    t.join()
    assert res[0][0] == 502, res
    assert metric(e, "ebsd_children_killed_total", reason="signal") == 1
    assert metric(e, "ebsd_children_killed_by_signal_total", signal="KILL") == 1
    assert metric(e, "ebsd_children_killed_total", reason="deadline") == 0
    logged = [l for l in e.lines if "killed from outside" in l]
    assert len(logged) == 1, logged
    e.stop()
    sim.stop()


if __name__ == "__main__":
    run(globals())
