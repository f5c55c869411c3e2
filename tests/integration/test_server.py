"""The HTTP surface and process model of ebsd (issue: foundation): health, routing errors,
HEAD, request ids, access log, config errors, SIGHUP reload, SIGTERM drain, one thread."""
import json
import os
import signal
import socket
import subprocess
import threading
import time

from harness import (EBSD_BIN, Ebsd, Sim, free_port, http_request, proc_children, proc_threads, run,
                     sim_env, write_config)


def error_shape(body, code):
    doc = json.loads(body)
    assert set(doc) == {"error"}, doc
    assert doc["error"]["code"] == code, doc
    assert doc["error"]["message"], doc
    assert doc["error"]["request_id"], doc
    return doc


def test_healthz_and_json():
    e = Ebsd()
    st, hdrs, body = e.get("/healthz")
    assert st == 200, st
    assert hdrs["content-type"].startswith("application/json")
    assert json.loads(body)["status"] == "ok"
    assert len(hdrs["x-request-id"]) >= 16
    e.stop()


def test_unknown_path_404_and_method_405():
    e = Ebsd()
    st, hdrs, body = e.get("/nope")
    assert st == 404, st
    error_shape(body, "NotFound")
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        st, hdrs, body = e.request(method, "/healthz", body=b"x" if method != "OPTIONS" else None)
        assert st == 405, (method, st)
        assert hdrs["allow"] == "GET, HEAD", hdrs
        error_shape(body, "MethodNotAllowed")
    e.stop()


def test_head_works_where_get_does():
    e = Ebsd()
    st, hdrs, body = e.request("HEAD", "/healthz")
    assert st == 200 and body == b"", (st, body)
    assert int(hdrs["content-length"]) > 0
    st, _, body = e.request("HEAD", "/openapi.yaml")
    assert st == 200 and body == b""
    e.stop()


def test_openapi_served():
    e = Ebsd()
    st, hdrs, body = e.get("/openapi.yaml")
    assert st == 200
    assert hdrs["content-type"].startswith("application/yaml")
    assert body.startswith(b"openapi: 3.1")
    e.stop()


def test_request_id_propagation():
    e = Ebsd()
    st, hdrs, body = e.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert hdrs["x-request-id"] == "abc-123"
    st, hdrs, body = e.get("/nope", headers={"X-Amzn-Trace-Id":
                                             "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"})
    assert hdrs["x-request-id"] == "1-5759e988-bd862e3fe1be46a994272793", hdrs
    assert json.loads(body)["error"]["request_id"] == hdrs["x-request-id"]
    # an id we will not echo (spaces, too long) is replaced by a generated one
    st, hdrs, _ = e.get("/healthz", headers={"X-Request-Id": "bad id\x7f" + "x" * 100})
    assert hdrs["x-request-id"] != "bad id"
    assert all(c in "0123456789abcdef" for c in hdrs["x-request-id"]), hdrs
    ids = {e.get("/healthz")[1]["x-request-id"] for _ in range(50)}
    assert len(ids) == 50
    e.stop()


def test_access_log_line():
    xff = {"X-Forwarded-For": "203.0.113.9, 10.0.0.1"}
    # without server.trusted_proxies anyone could write X-Forwarded-For: the peer is the client
    e = Ebsd()
    e.get("/healthz?x=1", headers=dict(xff, **{"X-Request-Id": "log-me"}))
    line = e.wait_line(lambda l: '"log-me"' in l and '"access"' in l)
    doc = json.loads(line)
    for k in ("time", "request_id", "method", "path", "status", "bytes", "duration_ms", "client"):
        assert k in doc, (k, doc)
    assert doc["status"] == 200 and doc["method"] == "GET" and doc["path"] == "/healthz"
    assert doc["client"] == "127.0.0.1", doc
    assert doc["bytes"] > 0
    e.stop()
    # from a trusted proxy, the right-most untrusted X-Forwarded-For address
    e = Ebsd("server:\n  trusted_proxies: [\"127.0.0.1\", \"10.0.0.0/8\"]\n")
    e.get("/healthz", headers=dict(xff, **{"X-Request-Id": "log-me-2"}))
    doc = json.loads(e.wait_line(lambda l: '"log-me-2"' in l and '"access"' in l))
    assert doc["client"] == "203.0.113.9", doc
    e.stop()


def test_one_thread_while_serving():
    sim = Sim("--instances", "50", "--latency-ms", "300")
    e = Ebsd(sim=sim)
    results = []
    t = threading.Thread(target=lambda: results.append(e.get("/volumes/total")))
    t.start()
    time.sleep(0.15)
    assert proc_threads(e.pid) == 1, proc_threads(e.pid)
    t.join()
    assert results[0][0] == 200, results
    assert proc_threads(e.pid) == 1
    e.stop()
    sim.stop()


BAD_CONFIGS = [
    ("unknown key", "listen: \"127.0.0.1:0\"\nbogus_key: 1\n", 2, "bogus_key"),
    ("nested unknown key", "server:\n  idle_timeout_s: 30\n  nope: 2\n", 3, "server.nope"),
    ("wrong type", "server:\n  max_connections: lots\n", 2, "server.max_connections"),
    ("out of range", "fanout:\n  max_children: 0\n", 2, "fanout.max_children"),
    ("invalid yaml", "server:\n  idle_timeout_s: [1,\n", 3, "invalid YAML"),
]


def test_check_config_good_and_bad():
    good = os.path.join(os.environ.get("EBSD_SOURCE_DIR", "."), "config", "ebsd.yaml")
    r = subprocess.run([EBSD_BIN, "--check-config", good], capture_output=True, text=True)
    assert r.returncode == 0, (r.stdout, r.stderr)
    for name, text, line, key in BAD_CONFIGS:
        path = write_config(text)
        r = subprocess.run([EBSD_BIN, "--check-config", path], capture_output=True, text=True)
        assert r.returncode == 2, (name, r.returncode, r.stderr)
        assert path in r.stderr, (name, r.stderr)
        assert (":%d" % line) in r.stderr, (name, line, r.stderr)
        assert key in r.stderr, (name, key, r.stderr)
        # and the same file stops start-up with status 2
        r = subprocess.run([EBSD_BIN, "--config", path, "--listen", "127.0.0.1:0"],
                           capture_output=True, text=True, timeout=10)
        assert r.returncode == 2, (name, r.returncode)
        assert path in r.stderr and key in r.stderr, (name, r.stderr)
    r = subprocess.run([EBSD_BIN, "--check-config", "/nonexistent/ebsd.yaml"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "/nonexistent/ebsd.yaml" in r.stderr, r.stderr


def test_version_and_help():
    r = subprocess.run([EBSD_BIN, "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("ebsd "), r.stdout
    r = subprocess.run([EBSD_BIN, "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--check-config" in r.stdout
    r = subprocess.run([EBSD_BIN, "--no-such-flag"], capture_output=True, text=True)
    assert r.returncode == 2


def test_sighup_reload_good_and_bad():
    e = Ebsd(config='log:\n  level: info\nregions: [us-east-1]\n')
    st, _, body = e.get("/volumes/total?region=eu-west-1")
    assert st == 400, st
    _, n = e.reload("regions: [us-east-1, eu-west-1]\n")
    # --listen overrides a file without a listen key: a reload changes no address
    assert not [l for l in e.lines[n:] if "listen address" in l], e.lines[n:]
    # the new region is now allowed (it fails later for lack of an endpoint, not with 400)
    st, _, body = e.get("/volumes/total?region=eu-west-1&timeout_ms=200")
    assert st != 400, (st, body)
    line, _ = e.reload("regions: [us-east-1]\nserver:\n  bogus: 1\n",
                       until="keeping the running configuration")
    assert "server.bogus" in line and ":3" in line, line
    st, _, _ = e.get("/healthz")
    assert st == 200
    st, _, body = e.get("/volumes/total?region=eu-west-1&timeout_ms=200")
    assert st != 400, (st, body)  # the good config is still running
    e.stop()


def test_reload_reaches_workers_through_the_same_zygote():
    # the workers are forked by a zygote started once; what a reload changes (here the EC2
    # endpoint and the log level) reaches them in their messages
    a = Sim("--instances", "30", "--seed", "1")
    b = Sim("--instances", "70", "--seed", "2")
    cold = "routes:\n  volumes_total:\n    cache_ttl_s: 0\n"
    e = Ebsd(config="ec2:\n  endpoint: %s\nlog:\n  level: info\n%s" % (a.url, cold))
    zygote = [p for p, _ in proc_children(e.pid, zygote=True)]
    assert len(zygote) == 1, zygote
    hdrs = {"Cache-Control": "no-cache"}
    st, _, doc = e.get_json("/volumes/total", headers=hdrs)
    assert st == 200 and doc["instance_count"] == a.truth()["instance_count"], (st, doc)
    e.reload("ec2:\n  endpoint: %s\nlog:\n  level: debug\n%s" % (b.url, cold))
    # b's clock an hour ahead: the first worker learns the offset from a refused call, and
    # says so at debug level (a line only a worker writes)
    b.post_json("/_sim/clock", {"offset_s": 3600})

    def skew_lines(start):
        return [l for l in e.lines[start:] if '"clock_skew"' in l and '"debug"' in l]
    n = len(e.lines)
    st, _, doc = e.get_json("/volumes/total", headers=hdrs)
    assert st == 200 and doc["instance_count"] == b.truth()["instance_count"], (st, doc)
    assert doc["volume_count"] == b.truth()["volume_count"], doc
    e.wait_line(lambda l: '"clock_skew"' in l and '"debug"' in l, start=n)
    first_calls = doc["source"]["ec2_calls"]
    # the parent adopted the offset: the next workers get it in their messages, sign right
    # at once, and learn nothing
    time.sleep(0.2)
    n = len(e.lines)
    st, _, doc = e.get_json("/volumes/total", headers=hdrs)
    assert st == 200 and doc["instance_count"] == b.truth()["instance_count"], (st, doc)
    assert doc["source"]["ec2_calls"] < first_calls, (doc["source"], first_calls)
    time.sleep(0.2)
    assert skew_lines(n) == [], skew_lines(n)
    assert [p for p, _ in proc_children(e.pid, zygote=True)
            if p not in [w for w, _ in proc_children(e.pid)]] == zygote
    e.stop()
    a.stop()
    b.stop()


def test_workers_answer_with_stdout_closed():
    # a daemon may run with stdout and stderr closed: a worker's pipe must never land in its
    # stdout slot, where its log lines would be read as frames (here a worker logs at debug
    # level, as it learns the simulator's clock offset)
    sim = Sim("--instances", "40", "--seed", "3")
    sim.post_json("/_sim/clock", {"offset_s": 3600})
    port = free_port()
    cfg = write_config("log:\n  level: debug\n")
    argv = ["sh", "-c", 'exec "$0" "$@" 1>&- 2>&-', EBSD_BIN, "--config", cfg, "--listen",
            "127.0.0.1:%d" % port]
    if os.geteuid() == 0:
        argv.append("--allow-root")
    p = subprocess.Popen(argv, env=sim_env(sim), stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                if http_request(port, "GET", "/healthz", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.05)
        st, _, body = http_request(port, "GET", "/volumes/total")
        doc = json.loads(body)
        assert st == 200, (st, doc)
        assert doc["instance_count"] == sim.truth()["instance_count"], doc
        assert doc["volume_count"] == sim.truth()["volume_count"], doc
    finally:
        p.terminate()
        p.wait(30)
        sim.stop()


def test_sigterm_drains_in_flight_then_exits():
    sim = Sim("--instances", "20", "--latency-ms", "700")
    e = Ebsd(sim=sim)
    result = {}

    def slow():
        result["r"] = e.get("/volumes/total")

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.3)
    e.signal(signal.SIGTERM)
    e.wait_line(lambda l: "draining" in l)
    # new connections are refused once draining has begun
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", e.port))
        refused = False
    except ConnectionRefusedError:
        refused = True
    finally:
        s.close()
    assert refused, "new connection accepted while draining"
    t.join(30)
    st, hdrs, body = result["r"]
    assert st == 200, (st, body)
    assert e.p.wait(30) == 0
    sim.stop()


def test_sigterm_with_a_refresh_in_flight_exits_clean():
    # the drain waits for requests, not for the refresher's fetches: one still running at the
    # stop is dropped with everything it holds (the Sanitize build's leak check and the
    # valgrind run judge the exit; its status is 0 in every build)
    sim = Sim("--instances", "20", "--latency-ms", "4000")
    e = Ebsd(config="refresh:\n  interval_s: 2\n", sim=sim)
    try:
        deadline = time.time() + 10
        while sim.stats()["in_flight"] == 0 and time.time() < deadline:
            time.sleep(0.05)
        assert sim.stats()["in_flight"] > 0, sim.stats()
        e.signal(signal.SIGTERM)
        assert e.p.wait(30) == 0, e.lines[-20:]
    finally:
        e.stop()
        sim.stop()


if __name__ == "__main__":
    run(globals())
