"""Replicas sharing one cache and one single flight through Redis (issue 17), against a real
redis-server from Debian and ec2sim (1,000 instances, 50 ms per call): three ebsd replicas
on one Redis answer a cold burst with one fan-out, one ETag and one fetched_at; polling them
round robin costs the fan-outs of one replica; killing redis-server mid-load gives no error
and no late answer, and sharing resumes after it restarts; a value corrupted by hand is a
counted miss; TLS through redis-server's tls-port with a test CA; no secret in Redis.

The polling test runs 12 s with a 3 s TTL instead of the issue's 30 s with a 5 s TTL, to
keep CI time down."""
import asyncio
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time

from harness import (SLOW, TEST_ACCESS_KEY, TEST_SECRET_KEY, Ebsd, RedisServer, Sim,
                     make_server_cert, make_test_ca, run, scraped as metric, settled_calls)

PASSWORD = "share-Redis-pw-7"
# A fixed listing split, so a fan-out costs the same EC2 calls cold and warm.
BASE = """server:
  max_connections: 4000
  max_connections_per_ip: 4000
fanout:
  list_partitions: 2
cache:
  min_refresh_s: 0
"""


def redis_block(url, password_file=None, ca_file=None, command_timeout_ms=None):
    # generous unless a test is about slowness: a fallback on a busy CI machine would be a
    # second fan-out where the tests count exactly one
    if command_timeout_ms is None:
        command_timeout_ms = int(400 * SLOW)
    text = "redis:\n  url: \"%s\"\n  command_timeout_ms: %d\n" % (url, command_timeout_ms)
    if password_file:
        text += "  password_file: \"%s\"\n" % password_file
    if ca_file:
        text += "  ca_file: \"%s\"\n" % ca_file
    return text


def ttl_block(ttl_s):
    return ("routes:\n  volumes_total:\n    cache_ttl_s: %d\n  instance_volumes:\n"
            "    cache_ttl_s: %d\n" % (ttl_s, ttl_s))


def pw_file(text=PASSWORD):
    fd, path = tempfile.mkstemp(prefix="ebsd-redis-pw-")
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")
    return path


def rcli(srv, *args):
    """redis-cli's raw output as bytes (values are binary)."""
    argv = ["redis-cli", "-s", srv.sock, "--no-auth-warning"]
    if srv.password:
        argv += ["-a", srv.password]
    return subprocess.run(argv + list(args), capture_output=True, timeout=10).stdout


async def _one(port, path, results):
    t0 = time.time()
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path).encode())
    await w.drain()
    data = await r.read()
    w.close()
    head, _, body = data.partition(b"\r\n\r\n")
    results.append((int(head.split()[1]), head.decode(), body, time.time() - t0))


def spread_gets(ports, path, n):
    """n concurrent GETs of path, spread round robin over ports."""
    results = []

    async def main():
        await asyncio.gather(*[_one(ports[i % len(ports)], path, results) for i in range(n)])
    asyncio.run(main())
    return results


def header(head, name):
    m = re.search(r"(?im)^%s:\s*(.*?)\r?$" % re.escape(name), head)
    return m.group(1) if m else None


def fetched_at(body):
    m = re.search(rb'"fetched_at":"([^"]+)"', body)
    return m.group(1).decode() if m else None


def replicas(n, sim, extra):
    return [Ebsd(config=BASE + extra, sim=sim) for _ in range(n)]


def readyz(e):
    st, _, doc = e.get_json("/readyz")
    return st, doc


def wait_redis(es, want, limit=10):
    end = time.time() + limit * SLOW
    while time.time() < end:
        if all(readyz(e)[1].get("redis") == want for e in es):
            return time.time()
        time.sleep(0.1)
    raise AssertionError("replicas never said redis: %s: %r" % (want, [readyz(e) for e in es]))


def cold_cost(sim, path, extra=""):
    """The EC2 calls of one cold fan-out of path, on a replica of its own without Redis."""
    e = Ebsd(config=BASE + extra, sim=sim)
    before = settled_calls(sim, quiet=0.5)
    st, _, _ = e.get(path)
    assert st == 200
    cost = settled_calls(sim, quiet=0.5) - before
    e.stop()
    assert cost > 0
    return cost


def test_cold_burst_over_three_replicas_is_one_fanout():
    srv = RedisServer()
    sim = Sim("--instances", "1000", "--latency-ms", "50")
    try:
        one = cold_cost(sim, "/volumes/total")
        es = replicas(3, sim, redis_block("redis://127.0.0.1:%d" % srv.port))
        wait_redis(es, "up")
        before = settled_calls(sim, quiet=0.5)
        res = spread_gets([e.port for e in es], "/volumes/total", 300)
        spent = settled_calls(sim, quiet=0.5) - before
        assert [r[0] for r in res] == [200] * 300, sorted(set(r[0] for r in res))
        etags = {header(r[1], "ETag") for r in res}
        stamps = {fetched_at(r[2]) for r in res}
        assert len(etags) == 1 and None not in etags, etags
        assert len(stamps) == 1 and None not in stamps, stamps
        assert spent == one, "300 cold requests over 3 replicas cost %d EC2 calls, one " \
            "fan-out costs %d" % (spent, one)
        # the owner fetched once; the other two took the answer from Redis
        owners = sum(metric(e, "ebsd_redis_shared_total", '{outcome="owner"}') for e in es)
        values = sum(metric(e, "ebsd_redis_shared_total", '{outcome="value"}') for e in es)
        assert owners == 1 and values >= 2, (owners, values)
        # a replica that took the answer from Redis serves it byte for byte: same ETag,
        # and without the per-request source block the same bytes
        bodies = set()
        for e in es:
            st, h, b = e.get("/volumes/total")
            assert st == 200 and h.get("x-cache") == "hit", (st, h)
            bodies.add((h.get("etag"), re.sub(rb',"source":.*', b"", b)))
        assert len(bodies) == 1
        for e in es:
            st, doc = readyz(e)
            assert st == 200 and doc["redis"] == "up"
            assert metric(e, "ebsd_redis_up") == 1
    finally:
        srv.stop()


def test_round_robin_polling_costs_one_replica():
    srv = RedisServer()
    sim = Sim("--instances", "1000", "--latency-ms", "50")
    ttl, duration = 3, 12.0
    try:
        one = cold_cost(sim, "/volumes/total", ttl_block(ttl))
        es = replicas(3, sim, ttl_block(ttl) + redis_block("redis://127.0.0.1:%d" % srv.port))
        wait_redis(es, "up")
        before = settled_calls(sim, quiet=0.5)
        end, i, seen = time.time() + duration, 0, {}
        statuses = set()
        newest, regressions = "", 0
        while time.time() < end:
            e = es[i % 3]
            st, h, b = e.get("/volumes/total")
            statuses.add(st)
            stamp = fetched_at(b)
            seen.setdefault(stamp, set()).add(h.get("etag"))
            # coherence: once any replica served a newer answer, the others serve it too
            # (the refresher's wake message updates their in-process caches)
            if stamp < newest:
                regressions += 1
            newest = max(newest, stamp)
            i += 1
            time.sleep(0.05)
        print("polling: %d requests, %d answers older than one already served" % (
            i, regressions))
        spent = settled_calls(sim, quiet=0.5) - before
        assert statuses == {200}, statuses
        # one ETag per fetched_at: the replicas never disagree about an answer
        assert all(len(t) == 1 for t in seen.values()), seen
        fanouts = spent / one
        # One replica: the first fetch, then a refresh ahead each time the entry enters its
        # refresh window (the last half of a 3 s TTL: docs/ARCHITECTURE.md, "Life of a
        # request"), so one fetch per (ttl - window) s. Three replicas on their own would
        # cost three times that.
        window = max(ttl / 5.0, min(ttl / 2.0, 5.0))
        one_replica = duration / (ttl - window) + 1
        assert fanouts <= one_replica + 1, \
            "%d requests cost %.1f fan-outs (one replica's: %.0f)" % (i, fanouts, one_replica)
        assert fanouts >= duration / ttl - 1, fanouts  # refresh ahead did run
        assert regressions <= 2, regressions
    finally:
        srv.stop()


def test_redis_killed_mid_load_then_restarted():
    srv = RedisServer()
    sim = Sim("--instances", "1000", "--latency-ms", "50")
    try:
        ids = sorted(sim.truth()["instances"])
        # The load below asks ~100 EC2 calls a second: more than one EC2 budget serves, and
        # since the replicas share one, the default budget would answer 503s. This test is
        # about the cache and the single flight, so its budget is far above its load (the
        # shared budget's own tests are in test_redis_budget.py).
        es = replicas(3, sim, redis_block("redis://127.0.0.1:%d" % srv.port) +
                      "ec2:\n  rate_limit: 1000\n  rate_burst: 3000\n")
        wait_redis(es, "up")
        st, _, _ = es[0].get("/volumes/total")
        assert st == 200
        timeout_s = 3.0 * SLOW
        results, stop = [], threading.Event()

        def load(k):
            n = k
            while not stop.is_set():
                e = es[n % 3]
                # hits on the total, and misses on instances nobody asked for yet
                path = "/volumes/total" if n % 2 else "/instances/%s/volumes" % ids[n % len(ids)]
                t0 = time.time()
                st, _, b = e.get(path + ("&" if "?" in path else "?") +
                                 "timeout_ms=%d" % int(timeout_s * 1000), timeout=30)
                results.append((st, time.time() - t0, path))
                n += 7
        threads = [threading.Thread(target=load, args=(k,)) for k in range(6)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        srv.kill()
        time.sleep(2.0)
        stop.set()
        for t in threads:
            t.join()
        bad = [r for r in results if r[0] != 200]
        late = [r for r in results if r[1] > timeout_s + 0.5 * SLOW]
        assert results and not bad, bad[:5]
        assert not late, late[:5]
        for e in es:
            st, doc = readyz(e)
            assert st == 200 and doc["redis"] == "down", (st, doc)
            assert metric(e, "ebsd_redis_up") == 0
        assert sum(metric(e, "ebsd_redis_fallbacks_total") for e in es) > 0
        # down: misses are fetched locally, within their deadline
        t0 = time.time()
        st, _, _ = es[1].get("/instances/%s/volumes" % ids[-1])
        assert st == 200 and time.time() - t0 < timeout_s
        srv.start()
        t_up = time.time()
        wait_redis(es, "up", limit=10)
        assert time.time() - t_up < 5.0 * SLOW, "sharing resumed after %.1f s" % (
            time.time() - t_up)
        # sharing again: one cold instance asked of all three costs one replica's calls
        one = cold_cost(sim, "/instances/%s/volumes" % ids[1])
        before = settled_calls(sim, quiet=0.5)
        res = spread_gets([e.port for e in es], "/instances/%s/volumes" % ids[2], 30)
        assert {r[0] for r in res} == {200}
        assert settled_calls(sim, quiet=0.5) - before == one
        assert len({header(r[1], "ETag") for r in res}) == 1
    finally:
        srv.stop()


def test_owner_dies_lock_expires_each_waiter_keeps_its_deadline():
    """The replica that holds a key's lock is killed mid-fetch: the other replica's waiters
    are not woken by anyone; the one with a short deadline gets its 504 at that deadline,
    the one with a long deadline gets the answer once the dead owner's lock has expired and
    its own replica has fetched it."""
    srv = RedisServer()
    sim = Sim("--instances", "1000", "--latency-ms", "400")
    try:
        a, b = replicas(2, sim, redis_block("redis://127.0.0.1:%d" % srv.port))
        wait_redis([a, b], "up")
        out = {}

        def ask(name, e, timeout_ms):
            t0 = time.time()
            try:
                st, _, _ = e.get("/volumes/total?timeout_ms=%d" % timeout_ms, timeout=30)
            except (ConnectionError, OSError):
                st = None  # the killed owner's own client
            out[name] = (st, time.time() - t0)
        owner = threading.Thread(target=ask, args=("a", a, 1500))
        owner.start()
        time.sleep(0.3)  # a holds the lock (1.5 s + 1 s) and is fetching
        lock = srv.cli("--scan", "--pattern", "ebsd:*flight*").split()
        assert lock, "a took no lock"
        long_w = threading.Thread(target=ask, args=("long", b, 8000))
        short_w = threading.Thread(target=ask, args=("short", b, 1000))
        long_w.start()
        time.sleep(0.05)
        short_w.start()
        time.sleep(0.2)
        a.p.kill()
        for t in (owner, long_w, short_w):
            t.join()
        assert out["short"][0] == 504 and out["short"][1] < 1.0 + 0.3 * SLOW, out
        st, took = out["long"]
        assert st == 200 and took < 8.0, out
        # it waited for the lock's expiry (a's deadline + 1 s after a started), not less
        assert took > 1.5, out
        assert metric(b, "ebsd_redis_shared_total", '{outcome="waited"}') >= 1
        assert metric(b, "ebsd_redis_shared_total", '{outcome="owner"}') == 1
    finally:
        srv.stop()


def test_replica_stopped_right_after_a_fetch_releases_its_lock():
    """A replica stopped just after a fetch, while its lock's release still waits in Redis
    (paused) and Redis' script cache is empty (EVALSHA answered NOSCRIPT, then EVAL): it
    waits for those replies before it exits (at most command_timeout_ms), so no lock is left
    behind for the next replica to wait on for a whole fetch deadline. The CI run of
    test_sizehint that found it: a new replica's first request 504 after 29 s."""
    srv = RedisServer()
    sim = Sim("--instances", "100", "--latency-ms", "300")
    try:
        a = Ebsd(config=BASE + redis_block("unix://" + srv.sock,
                                           command_timeout_ms=int(4000 * SLOW)), sim=sim)
        wait_redis([a], "up")
        srv.cli("SCRIPT", "FLUSH")
        out = []
        t = threading.Thread(target=lambda: out.append(a.get("/volumes/total", timeout=30)))
        t.start()
        time.sleep(0.15)  # a holds the lock; its fetch takes two 300 ms calls
        assert srv.cli("--scan", "--pattern", "ebsd:*flight*").split(), "a took no lock"
        srv.cli("CLIENT", "PAUSE", str(int(1500 * SLOW)), "ALL")  # every command waits
        t.join()
        assert out[0][0] == 200, out  # answered without waiting on Redis
        assert a.stop() == 0
        keys = srv.cli("KEYS", "*")
        assert ":flight:" not in keys and ":cache:" in keys, keys
    finally:
        sim.stop()
        srv.stop()


def test_aggregate_waiting_on_another_replica_gets_the_shared_value():
    """account=all on replica b while replica a fetches the same target: b's aggregate waits
    on a's lock and is answered from the value a wrote (it crashed b once: an aggregate's
    target has no request of its own to resume)."""
    srv = RedisServer()
    sim = Sim("--instances", "1000", "--latency-ms", "300")
    try:
        a, b = replicas(2, sim, redis_block("redis://127.0.0.1:%d" % srv.port))
        wait_redis([a, b], "up")
        out = {}

        def ask(name, e, path):
            st, _, body = e.get_json(path, timeout=30)
            out[name] = (st, body)
        owner = threading.Thread(target=ask, args=("a", a, "/volumes/total?timeout_ms=8000"))
        owner.start()
        time.sleep(0.2)  # a holds the lock and is fetching
        assert srv.cli("--scan", "--pattern", "ebsd:*flight*").split(), "a took no lock"
        ask("b", b, "/volumes/total?account=all&timeout_ms=8000")
        owner.join()
        assert out["a"][0] == 200 and out["b"][0] == 200, out
        assert out["b"][1]["total_gib"] == out["a"][1]["total_gib"] == sim.truth()["total_gib"]
        assert metric(b, "ebsd_redis_shared_total", '{outcome="value"}') >= 1
        assert metric(b, "ebsd_redis_shared_total", '{outcome="owner"}') in (None, 0)
        assert readyz(b)[0] == 200
        assert b.stop() == 0, b.lines[-20:]
    finally:
        srv.stop()


def test_redis_stopped_is_slow_not_fatal():
    """redis-server stopped (SIGSTOP): commands get no answer. Hits stay local and fast,
    a miss waits at most a command timeout before it is fetched locally, and sharing comes
    back once the server runs again."""
    srv = RedisServer()
    sim = Sim("--instances", "100", "--latency-ms", "20")
    try:
        ids = sorted(sim.truth()["instances"])
        es = replicas(3, sim, redis_block("redis://127.0.0.1:%d" % srv.port,
                                          command_timeout_ms=200))
        wait_redis(es, "up")
        for e in es:
            assert e.get("/volumes/total")[0] == 200
        srv.pause()
        try:
            for k, e in enumerate(es):
                t0 = time.time()
                st, h, _ = e.get("/volumes/total")
                assert st == 200 and h["x-cache"] == "hit" and time.time() - t0 < 0.1 * SLOW
                t0 = time.time()
                st, _, _ = e.get("/instances/%s/volumes?timeout_ms=2000" % ids[k])
                took = time.time() - t0
                assert st == 200 and took < 2.0, took
            wait_redis(es, "down", limit=5)
            assert sum(metric(e, "ebsd_redis_errors_total", '{kind="command"}')
                       for e in es) >= 1
        finally:
            srv.resume()
        wait_redis(es, "up", limit=10)
        one = cold_cost(sim, "/instances/%s/volumes" % ids[10])
        before = settled_calls(sim, quiet=0.5)
        res = spread_gets([e.port for e in es], "/instances/%s/volumes" % ids[11], 30)
        assert {r[0] for r in res} == {200}
        assert settled_calls(sim, quiet=0.5) - before == one
    finally:
        srv.stop()


def test_corrupted_value_is_a_counted_miss():
    srv = RedisServer()
    sim = Sim("--instances", "50", "--latency-ms", "5")
    try:
        a, b, c = replicas(3, sim, redis_block("redis://127.0.0.1:%d" % srv.port))
        wait_redis([a, b, c], "up")
        st, ha, _ = a.get("/volumes/total")
        assert st == 200
        keys = [k for k in srv.cli("--scan", "--pattern", "ebsd:*cache*").split() if k]
        assert keys == ["ebsd:{default:us-east-1}:cache:total|-|parallel"], keys
        real = rcli(srv, "GET", keys[0]).rstrip(b"\n")
        assert real.startswith(b"EBSD") and ha["etag"].encode() in real
        # garbage: refused by the decoder, one miss, counted once
        srv.cli("SET", keys[0], "EBSD garbage that is not a value")
        before = settled_calls(sim, quiet=0.5)
        rejected0 = metric(b, "ebsd_redis_rejected_total")
        st, hb, body = b.get("/volumes/total")
        assert st == 200 and hb["x-cache"] == "miss" and b'"total' in body
        assert metric(b, "ebsd_redis_rejected_total") == rejected0 + 1
        assert settled_calls(sim, quiet=0.5) > before  # b fetched it itself
        # a well-formed value whose body is not the one its ETag names: refused too
        good = rcli(srv, "GET", keys[0]).rstrip(b"\n")
        assert good.startswith(b"EBSD")
        at = good.rindex(b"}") - 1
        tampered = good[:at] + bytes([good[at] ^ 1]) + good[at + 1:]
        subprocess.run(["redis-cli", "-s", srv.sock, "-x", "SET", keys[0]], input=tampered,
                       check=True, capture_output=True)
        rejected0 = metric(c, "ebsd_redis_rejected_total")
        before = settled_calls(sim, quiet=0.5)
        st, hc, body = c.get("/volumes/total")
        assert st == 200 and hc["x-cache"] == "miss"
        assert metric(c, "ebsd_redis_rejected_total") == rejected0 + 1
        assert settled_calls(sim, quiet=0.5) > before
    finally:
        srv.stop()


def test_tls_and_password_and_no_secret_in_redis():
    d = tempfile.mkdtemp(prefix="ebsd-share-tls-")
    ca = make_test_ca(d)
    cert = make_server_cert(d, ca)
    srv = RedisServer(password=PASSWORD, tls=cert)
    sim = Sim("--instances", "200", "--latency-ms", "5")
    pw = pw_file()
    try:
        block = redis_block("rediss://127.0.0.1:%d" % srv.tls_port, password_file=pw,
                            ca_file=ca[0], command_timeout_ms=int(500 * SLOW))
        a, b = replicas(2, sim, block)
        wait_redis([a, b], "up")
        ids = sorted(sim.truth()["instances"])
        st, ha, ba = a.get("/volumes/total?detail=instances")
        assert st == 200
        st, _, _ = a.get("/instances/%s/volumes" % ids[0])
        assert st == 200
        before = settled_calls(sim, quiet=0.5)
        st, hb, bb = b.get("/volumes/total?detail=instances")
        assert st == 200 and hb["etag"] == ha["etag"] and fetched_at(bb) == fetched_at(ba)
        assert settled_calls(sim, quiet=0.5) == before, "b fetched what a had stored"
        # SIGHUP re-reads the password file: a new password, then a reconnect with it
        srv.cli("CONFIG", "SET", "requirepass", PASSWORD + "-2")
        srv.password = PASSWORD + "-2"
        with open(pw, "w") as f:
            f.write(PASSWORD + "-2\n")
        for e in (a, b):
            e.signal(__import__("signal").SIGHUP)
        time.sleep(0.5)
        srv.cli("CLIENT", "KILL", "TYPE", "normal")
        srv.cli("CLIENT", "KILL", "TYPE", "pubsub")
        wait_redis([a, b], "up")
        # no secret in Redis: every key, every value
        secrets = [TEST_ACCESS_KEY, TEST_SECRET_KEY, PASSWORD, "AWS_SESSION_TOKEN",
                   "X-Amz-Security-Token"]
        keys = [k for k in srv.cli("--scan").split("\n") if k]
        assert any(":cache:" in k for k in keys), keys
        for k in keys:
            kind = srv.cli("TYPE", k).strip()
            if kind == "string":
                value = rcli(srv, "GET", k)
            elif kind == "zset":
                value = rcli(srv, "ZRANGE", k, "0", "-1", "WITHSCORES")
            else:
                value = rcli(srv, "DUMP", k)
            for s in secrets:
                assert s not in k and s.encode() not in value, (k, s)
    finally:
        srv.stop()
        os.unlink(pw)
        shutil.rmtree(d, ignore_errors=True)


def test_elasticache_iam_auth_through_tls():
    """redis.iam_auth: ebsd AUTHs as the ElastiCache user with a SigV4 token made from its
    own credentials (redis-server's ACL user takes any password here, as ElastiCache takes
    a valid token); replicas share through it, and the token is neither in Redis nor in
    ebsd's log."""
    d = tempfile.mkdtemp(prefix="ebsd-share-iam-")
    ca = make_test_ca(d)
    cert = make_server_cert(d, ca)
    srv = RedisServer(tls=cert)
    srv.cli("ACL", "SETUSER", "ebsd-iam", "on", "nopass", "~*", "&*", "+@all")
    sim = Sim("--instances", "50", "--latency-ms", "5")
    try:
        block = ("redis:\n  url: \"rediss://127.0.0.1:%d\"\n  ca_file: \"%s\"\n"
                 "  command_timeout_ms: %d\n  iam_auth:\n    user: ebsd-iam\n"
                 "    cache: ebsd-group\n" % (srv.tls_port, ca[0], int(500 * SLOW)))
        logs = [os.path.join(d, "a.log"), os.path.join(d, "b.log")]
        a, b = [Ebsd(config=BASE + block, sim=sim, log_path=p) for p in logs]
        wait_redis([a, b], "up")
        clients = srv.cli("CLIENT", "LIST")
        assert clients.count("user=ebsd-iam") >= 4, clients  # 2 connections per replica
        st, ha, _ = a.get("/volumes/total")
        assert st == 200
        before = settled_calls(sim, quiet=0.5)
        st, hb, _ = b.get("/volumes/total")
        assert st == 200 and hb["etag"] == ha["etag"] and settled_calls(sim, quiet=0.5) == before
        a.stop()
        b.stop()
        for k in [k for k in srv.cli("--scan").split("\n") if k]:
            v = rcli(srv, "DUMP", k)
            assert b"X-Amz-Signature" not in v and TEST_ACCESS_KEY.encode() not in v, k
        for p in logs:
            with open(p, "rb") as f:
                text = f.read()
            assert b"X-Amz-Signature" not in text and b"Action=connect" not in text, p
            assert TEST_SECRET_KEY.encode() not in text, p
    finally:
        srv.stop()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    run(globals())
