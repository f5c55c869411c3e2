"""Cache, single flight and HTTP caching (issue: cache), against ec2sim: 1,000 concurrent
cold requests cost one fan-out; TTL expiry; refresh ahead keeps a polled key warm;
stale-if-error; 304; eviction under the byte bound; per-waiter deadlines in a shared fetch;
no-cache; negative caching; /metrics passes promtool and its counters move."""
import asyncio
import json
import subprocess
import threading
import time

from harness import Ebsd, Sim, SLOW, SANITIZE, ec2_calls, run, settled_calls
from schema import validate


async def _one(port, path, results):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path).encode())
    await w.drain()
    data = await r.read()
    w.close()
    head, _, body = data.partition(b"\r\n\r\n")
    results.append((int(head.split()[1]), head.decode(), body))


def concurrent_gets(port, path, n):
    results = []

    async def main():
        await asyncio.gather(*[_one(port, path, results) for _ in range(n)])
    asyncio.run(main())
    return results


# Tests that force one fetch after another lift the bound on forced refreshes.
NO_REFRESH_BOUND = "cache:\n  min_refresh_s: 0\n"
BIG_LIMITS = "server:\n  max_connections: 4000\n  max_connections_per_ip: 4000\n"


def test_single_flight_1000_concurrent_cold_requests():
    sim = Sim("--instances", "300", "--latency-ms", "400")
    e = Ebsd(config=BIG_LIMITS, sim=sim)
    # what one fan-out costs, measured on a second key of the same shape
    st, _, one = e.get_json("/volumes/total?detail=instances")
    assert st == 200
    cost = one["source"]["ec2_calls"]
    sim.reset()
    n = 300 if SANITIZE else 1000
    results = concurrent_gets(e.port, "/volumes/total", n)
    assert len(results) == n
    assert all(st == 200 for st, _, _ in results), {st for st, _, _ in results}
    assert ec2_calls(sim) == cost, (ec2_calls(sim), cost)
    bodies = [json.loads(b) for _, _, b in results]
    assert len({b["total_gib"] for b in bodies}) == 1
    labels = [b["source"]["cache"] for b in bodies]
    assert labels.count("miss") == 1, labels.count("miss")
    assert labels.count("coalesced") + labels.count("hit") == n - 1
    e.stop()
    sim.stop()


def cached_once(ttl_s):
    """ec2sim (20 instances) and ebsd with a volumes_total TTL of ttl_s and no
    stale-while-revalidate, after one miss: (sim, ebsd, EC2 calls of that miss)."""
    sim = Sim("--instances", "20")
    e = Ebsd(config="routes:\n  volumes_total:\n    cache_ttl_s: %d\ncache:\n"
                    "  stale_while_revalidate_s: 0\n" % ttl_s, sim=sim)
    st, _, d = e.get_json("/volumes/total")
    assert st == 200 and d["source"]["cache"] == "miss", d
    return sim, e, ec2_calls(sim)


def test_ttl_expiry():
    sim, e, after_miss = cached_once(1)
    st, h2, d2 = e.get_json("/volumes/total")
    assert d2["source"]["cache"] == "hit" and h2["x-cache"] == "hit"
    assert d2["source"]["ec2_calls"] == 0
    # On a slow build the hit above may fall in the last half of the 1 s TTL and start a
    # refresh ahead: let it land (its calls made and stopped) before the TTL clock starts,
    # or its fresh entry would still be fresh below.
    settled_calls(sim)
    time.sleep(1.3)
    calls = ec2_calls(sim)
    st, h3, d3 = e.get_json("/volumes/total")
    assert d3["source"]["cache"] == "miss", d3["source"]
    assert ec2_calls(sim) > calls
    e.stop()
    sim.stop()


def test_refresh_ahead_keeps_polled_key_warm():
    sim = Sim("--instances", "50", "--latency-ms", "300")
    e = Ebsd(config="routes:\n  volumes_total:\n    cache_ttl_s: 2\n", sim=sim)
    st, _, first = e.get_json("/volumes/total")
    assert first["source"]["cache"] == "miss"
    sim.reset()
    slow = []
    labels = []
    end = time.time() + 6
    while time.time() < end:
        t0 = time.time()
        st, hdrs, doc = e.get_json("/volumes/total")
        dt = time.time() - t0
        assert st == 200
        labels.append(doc["source"]["cache"])
        if dt > 0.15 * SLOW:
            slow.append(dt)
        time.sleep(0.2)
    assert not slow, "a poll waited on EC2: %s" % slow
    assert set(labels) == {"hit"}, set(labels)
    # the background refreshes did happen (the data was fetched again, more than once)
    assert sim.stats()["calls"].get("DescribeInstances", 0) >= 2, sim.stats()
    e.stop()
    sim.stop()


def test_short_ttl_refreshes_ahead_once_not_on_every_hit():
    # TTL 4 s: the refresh-ahead window is its last 2 s (half, as 5 s is more than half), so
    # polls in the first half cost no EC2 call and one in the second half starts one fetch.
    sim, e, after_miss = cached_once(4)
    t0 = time.time()
    while time.time() - t0 < 1.0:
        st, _, d = e.get_json("/volumes/total")
        assert d["source"]["cache"] == "hit"
        time.sleep(0.05)
    assert ec2_calls(sim) == after_miss, "a hit early in the TTL started a fetch"
    time.sleep(max(0.0, 2.5 - (time.time() - t0)))
    for _ in range(10):
        st, _, d = e.get_json("/volumes/total")
        assert d["source"]["cache"] == "hit"
    # ten polls in the window started one fetch (single flight): the miss's calls once more
    refreshed = settled_calls(sim) - after_miss
    assert refreshed == after_miss, (refreshed, after_miss)
    e.stop()
    sim.stop()


def test_stale_if_error():
    sim = Sim("--instances", "20")
    e = Ebsd(config="routes:\n  volumes_total:\n    cache_ttl_s: 1\ncache:\n"
                    "  stale_while_revalidate_s: 0\n  stale_if_error_s: 60\n"
                    "ec2:\n  max_attempts: 2\n", sim=sim)
    st, _, good = e.get_json("/volumes/total")
    assert st == 200
    sim.faults(p_500=1.0)
    time.sleep(1.2)
    st, hdrs, doc = e.get_json("/volumes/total")
    assert st == 200, (st, doc)
    validate(doc, "VolumesTotal")
    assert doc["source"]["cache"] == "stale" and hdrs["x-cache"] == "stale"
    assert doc["source"]["stale_reason"] == "InternalError", doc["source"]
    assert doc["total_gib"] == good["total_gib"]
    st, body = metric(e, 'ebsd_cache_requests_total{outcome="stale"}')
    assert body >= 1
    # without a stale entry the error comes through
    st, _, doc = e.get_json("/instances/i-0123456789abcdef0/volumes")
    assert st == 502, (st, doc)
    e.stop()
    sim.stop()


def test_etag_304_and_cache_headers():
    sim = Sim("--instances", "20")
    e = Ebsd(config=NO_REFRESH_BOUND, sim=sim)
    st, hdrs, doc = e.get_json("/volumes/total")
    etag = hdrs["etag"]
    assert etag.startswith('"') and etag.endswith('"') and len(etag) == 34
    assert "max-age=" in hdrs["cache-control"] and "stale-if-error=" in hdrs["cache-control"]
    assert "age" in hdrs
    st, h2, body = e.get("/volumes/total", headers={"If-None-Match": etag})
    assert st == 304, st
    assert body == b""
    assert h2["etag"] == etag and "max-age=" in h2["cache-control"] and "age" in h2
    st, _, _ = e.get("/volumes/total", headers={"If-None-Match": '"other", ' + etag})
    assert st == 304
    st, _, _ = e.get("/volumes/total", headers={"If-None-Match": '"other"'})
    assert st == 200
    # the same data gives the same ETag after a forced refresh
    st, h3, _ = e.get("/volumes/total", headers={"Cache-Control": "no-cache"})
    assert h3["etag"] == etag and h3["x-cache"] == "refreshed"
    e.stop()
    sim.stop()


def test_report_lines_of_hits_follow_the_log_level():
    """A REPORT line after every fan-out; after a cache hit (no worker, no EC2 call) only at
    level info, like the access line."""
    sim = Sim("--instances", "20")
    e = Ebsd(config="log:\n  level: warn\n" + NO_REFRESH_BOUND, sim=sim)
    assert e.get("/volumes/total", headers={"X-Request-Id": "rl-miss"})[0] == 200
    e.wait_line(lambda l: l.startswith("REPORT RequestId: rl-miss\t") and l.endswith("Cache: miss"))
    st, hdrs, doc = e.get_json("/volumes/total", headers={"X-Request-Id": "rl-hit"})
    assert st == 200 and hdrs["x-cache"] == "hit" and doc["request_id"] == "rl-hit"
    validate(doc, "VolumesTotal")
    e.get("/volumes/total", headers={"X-Request-Id": "rl-after", "Cache-Control": "no-cache"})
    # lines leave in order: once rl-after's is out, rl-hit's would have been before it
    e.wait_line(lambda l: l.startswith("REPORT RequestId: rl-after\t") and
                l.endswith("Cache: refreshed"))
    assert not [l for l in e.lines if "rl-hit" in l], [l for l in e.lines if "rl-hit" in l]
    e.stop()
    e = Ebsd(sim=sim)  # level info, the default
    e.get("/volumes/total")
    assert e.get("/volumes/total", headers={"X-Request-Id": "rl-hit2"})[0] == 200
    line = e.wait_line(lambda l: l.startswith("REPORT RequestId: rl-hit2\t"))
    assert line.endswith("\tChildren: 0\tEC2 Calls: 0\tCache: hit"), line
    e.wait_line(lambda l: '"rl-hit2"' in l and '"access"' in l)
    e.stop()
    sim.stop()


def test_no_cache_forces_fetch_at_most_once_per_min_refresh():
    """Cache-Control: no-cache (or max-age=0) fetches only an answer at least
    cache.min_refresh_s old; a younger one is served as it is, marked "limited"."""
    sim = Sim("--instances", "20")
    e = Ebsd(config="cache:\n  min_refresh_s: 2\n", sim=sim)
    st, _, first = e.get_json("/volumes/total")
    assert st == 200 and first["source"]["cache"] == "miss"
    calls = ec2_calls(sim)
    for cc in ("no-cache", "max-age=0", "no-store, max-age=0", "No-Cache"):
        st, hdrs, doc = e.get_json("/volumes/total", headers={"Cache-Control": cc})
        assert st == 200, (cc, st, doc)
        validate(doc, "VolumesTotal")
        assert doc["source"]["cache"] == "limited" and hdrs["x-cache"] == "limited", (cc, doc)
        assert doc["source"]["fetched_at"] == first["source"]["fetched_at"]
        assert doc["source"]["ec2_calls"] == 0
    # directives are compared whole
    for cc in ("max-age=05", "no-cachex", "max-age=10"):
        st, hdrs, doc = e.get_json("/volumes/total", headers={"Cache-Control": cc})
        assert hdrs["x-cache"] == "hit", (cc, hdrs["x-cache"])
    assert ec2_calls(sim) == calls
    assert metric(e, 'ebsd_cache_requests_total{outcome="limited"}')[1] == 4
    time.sleep(2.1)
    st, hdrs, doc = e.get_json("/volumes/total", headers={"Cache-Control": "no-cache"})
    assert doc["source"]["cache"] == "refreshed" and hdrs["x-cache"] == "refreshed"
    assert ec2_calls(sim) > calls
    e.stop()
    # 0 lifts the bound: every forced refresh fetches
    e = Ebsd(config=NO_REFRESH_BOUND, sim=sim)
    e.get_json("/volumes/total")
    for _ in range(3):
        calls = ec2_calls(sim)
        st, _, doc = e.get_json("/volumes/total", headers={"Cache-Control": "no-cache"})
        assert doc["source"]["cache"] == "refreshed" and ec2_calls(sim) > calls
    e.stop()
    sim.stop()


def test_no_cache_flood_costs_one_fetch_per_min_refresh():
    """Sequential and 50 concurrent no-cache clients for 6 s: at most one fetch per key per
    min_refresh_s (2 s here), and every answer 200."""
    sim = Sim("--instances", "50", "--latency-ms", "10")
    e = Ebsd(config=BIG_LIMITS + "cache:\n  min_refresh_s: 2\n", sim=sim)
    st, _, first = e.get_json("/volumes/total")
    cost = first["source"]["ec2_calls"]
    sim.reset()
    statuses, stop = [], time.time() + 6

    def client():
        while time.time() < stop:
            st, _, body = e.get("/volumes/total", headers={"Cache-Control": "no-cache"})
            statuses.append(st if st == 200 else (st, body[:200]))
    threads = [threading.Thread(target=client) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    calls = settled_calls(sim)
    assert statuses and set(statuses) == {200}, set(statuses)
    # 6 s / 2 s = 3 refreshes (4 if one lands right at an edge)
    assert calls <= 4 * cost, (calls, cost, len(statuses))
    assert calls >= 2 * cost, (calls, cost)
    e.stop()
    sim.stop()


def test_stale_answer_at_the_deadline_when_ec2_hangs():
    """A request whose refresh hangs gets the stale-if-error answer at its deadline (200,
    X-Cache: stale, stale_reason TaskTimedOut) instead of 504; the fetch goes on for the
    cache. Without a usable entry the deadline still answers 504."""
    sim = Sim("--instances", "20")
    e = Ebsd(config="routes:\n  volumes_total:\n    cache_ttl_s: 1\ncache:\n"
                    "  stale_while_revalidate_s: 0\n  stale_if_error_s: 60\n", sim=sim)
    st, _, good = e.get_json("/volumes/total")
    assert st == 200
    sim.faults(p_hang=1.0, hang_max_ms=3000)
    time.sleep(1.2)
    t0 = time.time()
    st, hdrs, doc = e.get_json("/volumes/total?timeout_ms=800")
    took = time.time() - t0
    assert st == 200, (st, doc)
    validate(doc, "VolumesTotal")
    assert hdrs["x-cache"] == "stale" and doc["source"]["cache"] == "stale"
    assert doc["source"]["stale_reason"] == "TaskTimedOut", doc["source"]
    assert doc["total_gib"] == good["total_gib"]
    assert 0.75 < took < 0.8 + 0.3 * SLOW, took
    # the same for a no-cache refresh and for a waiter that joined the hung fetch
    st, hdrs, doc = e.get_json("/volumes/total?timeout_ms=500",
                               headers={"Cache-Control": "no-cache"})
    assert st == 200 and hdrs["x-cache"] == "stale", (st, doc)
    # no entry at all: 504 at the deadline, as before
    st, _, doc = e.get_json("/instances/i-0123456789abcdef0/volumes?timeout_ms=500")
    assert st == 504 and doc["error"]["code"] == "TaskTimedOut", (st, doc)
    # the fetch went on for the cache: once EC2 answers again the entry is fresh again
    sim.faults(clear=True)
    deadline = time.time() + 15 * SLOW
    while time.time() < deadline:
        st, hdrs, doc = e.get_json("/volumes/total?timeout_ms=5000")
        if hdrs.get("x-cache") in ("hit", "miss"):
            break
        time.sleep(0.3)
    assert st == 200 and hdrs["x-cache"] in ("hit", "miss"), hdrs
    e.stop()
    sim.stop()


def test_eviction_under_byte_bound():
    sim = Sim("--instances", "40")
    e = Ebsd(config="cache:\n  max_bytes: 3000\n", sim=sim)
    ids = list(sim.truth()["instances"])[:12]
    for iid in ids:
        st, _, _ = e.get_json("/instances/%s/volumes" % iid)
        assert st == 200
    assert metric(e, "ebsd_cache_evictions_total")[1] >= 1
    assert metric(e, "ebsd_cache_bytes")[1] <= 3000
    # the first key was evicted: asking again is a miss
    st, _, doc = e.get_json("/instances/%s/volumes" % ids[0])
    assert doc["source"]["cache"] == "miss"
    e.stop()
    sim.stop()


def test_per_waiter_deadline_in_shared_fetch():
    sim = Sim("--instances", "20", "--latency-ms", "1500")
    e = Ebsd(sim=sim)
    out = {}

    def long_wait():
        out["long"] = e.get_json("/volumes/total?timeout_ms=8000")

    t = threading.Thread(target=long_wait)
    t.start()
    time.sleep(0.2)
    t0 = time.time()
    st, _, doc = e.get_json("/volumes/total?timeout_ms=500")
    dt = time.time() - t0
    assert st == 504 and doc["error"]["message"] == "Task timed out after 0.50 seconds", doc
    assert dt < 0.5 + 0.2 * SLOW, dt
    t.join(20)
    st, _, doc = out["long"]
    assert st == 200, (st, doc)
    assert doc["source"]["cache"] == "miss"
    st, _, doc = e.get_json("/volumes/total")
    assert doc["source"]["cache"] == "hit"  # the shared fetch filled the cache
    e.stop()
    sim.stop()


def test_negative_cache_404():
    sim = Sim("--instances", "5")
    e = Ebsd(sim=sim)
    st, _, _ = e.get_json("/instances/i-0123456789abcdef0/volumes")
    assert st == 404
    calls = ec2_calls(sim)
    st, hdrs, doc = e.get_json("/instances/i-0123456789abcdef0/volumes")
    assert st == 404 and hdrs["x-cache"] == "hit", hdrs
    validate(doc, "Error")
    assert ec2_calls(sim) == calls
    e.stop()
    sim.stop()


def metric(e, name):
    st, _, body = e.get("/metrics")
    for line in body.decode().splitlines():
        if line.split(" ")[0] == name:
            return st, float(line.rsplit(" ", 1)[1])
    return st, 0.0


def test_metrics_promtool_and_counters_move():
    sim = Sim("--instances", "20")
    e = Ebsd(config=NO_REFRESH_BOUND, sim=sim)
    e.get_json("/volumes/total")
    e.get_json("/volumes/total")
    st, hdrs, body = e.get("/metrics")
    assert st == 200 and hdrs["content-type"].startswith("text/plain; version=0.0.4")
    r = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True)
    assert r.returncode == 0, (r.stdout, r.stderr)
    text = body.decode()
    for name in ("ebsd_http_requests_total", "ebsd_http_request_duration_seconds_bucket",
                 "ebsd_cache_requests_total", "ebsd_children_forked_total",
                 "ebsd_ec2_calls_total", "ebsd_credentials_info", "ebsd_build_info",
                 "ebsd_cache_entries", "ebsd_fetches_in_flight", "ebsd_ec2_retry_quota_remaining"):
        assert name in text, name
    hits0 = metric(e, 'ebsd_cache_requests_total{outcome="hit"}')[1]
    forked0 = metric(e, "ebsd_children_forked_total")[1]
    e.get_json("/volumes/total")
    e.get_json("/volumes/total", headers={"Cache-Control": "no-cache"})
    assert metric(e, 'ebsd_cache_requests_total{outcome="hit"}')[1] == hits0 + 1
    assert metric(e, "ebsd_children_forked_total")[1] > forked0
    assert metric(e, 'ebsd_http_requests_total{route="/volumes/total",status="200"}')[1] >= 4
    assert metric(e, 'ebsd_credentials_info{source="environment"}')[1] == 1
    e.stop()
    sim.stop()


if __name__ == "__main__":
    run(globals())
