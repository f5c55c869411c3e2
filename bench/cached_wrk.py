#!/usr/bin/env python3
"""Cached GET /volumes/total under wrk on loopback (keep-alive, 50 connections), next to
nginx (one worker) serving the same JSON bytes as a static file, in one run.
Prints a Markdown table of requests/s, p50 and p99.

Usage: bench/cached_wrk.py [--duration 10] [--connections 50] [--threads N] [--rounds 3]
                           [--log-level info] [--instances 1000] [--detail] [--gzip]
--detail asks for ?detail=instances (the per-instance breakdown: 100 bytes an instance);
--gzip sends Accept-Encoding: gzip to both: ebsd answers from its cached compressed copy,
nginx compresses every response on the fly (gzip on, gzip_comp_level 6, ebsd's level).
The bytes of one answer are printed with the table.
ebsd logs at --log-level (default info, ebsd's own default: an access and a REPORT line per
request; warn: no access lines and, cache hits being all there is here, no REPORT lines). Its stdout goes to a
file, as a log driver would take it, and is not read while wrk runs (a Python reader on the
same two cores would be measured instead of ebsd). nginx runs with access_log off at warn and
above; at info and below it writes a JSON access line per request to a file too, so both
servers do the same work (nginx with a 64 KiB log buffer, ebsd with its 4 KiB batch).
With --redis, a second ebsd shares its cache through a redis-server started here (Debian's
redis-server, on loopback) and is measured in the same interleaved rounds ("ebsd+redis"):
hits are served from the in-process L1 either way, so the two should be within noise.
Needs wrk and nginx (Debian packages wrk, nginx-light) and a build."""
import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
os.environ.setdefault("EBSD_BIN", os.path.join(ROOT, "build", "ebsd"))
os.environ.setdefault("EC2SIM_BIN", os.path.join(ROOT, "build", "tools", "ec2sim", "ec2sim"))
from harness import Ebsd, RedisServer, Sim  # noqa: E402


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wrk(url, a):
    hdr = ["-H", "Accept-Encoding: gzip"] if a.gzip else []
    out = subprocess.run(["wrk", "-t%d" % a.threads, "-c%d" % a.connections, "-d%ds" % a.duration,
                          "--latency"] + hdr + [url], capture_output=True, text=True,
                         check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def pct(p):
        m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s)\s*$" % p, out, re.M)
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000.0 if unit == "us" else v * 1000.0 if unit == "s" else v
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, pct(50), pct(99), int(errors.group(1)) if errors else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=50)
    # One core for the server under test, the others for wrk: on 2 cores, wrk -t1. More wrk
    # threads than free cores measure the scheduler (docs/PERFORMANCE.md shows -t2 too).
    ap.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--log-level", default="info", choices=["debug", "info", "warn", "error"])
    ap.add_argument("--redis", action="store_true",
                    help="also measure an ebsd sharing its cache through redis-server")
    ap.add_argument("--instances", type=int, default=1000)
    ap.add_argument("--detail", action="store_true")
    ap.add_argument("--gzip", action="store_true")
    a = ap.parse_args()
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool) and not os.path.exists("/usr/sbin/" + tool):
            sys.exit("%s is missing: apt-get install wrk nginx-light" % tool)

    sim = Sim("--instances", str(a.instances), "--seed", "42")
    path = "/volumes/total" + ("?detail=instances" if a.detail else "")
    tmp = tempfile.mkdtemp(prefix="ebsd-bench-")
    os.chmod(tmp, 0o755)  # nginx's worker runs unprivileged and must read the file
    e = Ebsd(config="routes:\n  volumes_total:\n    cache_ttl_s: 3600\nlog:\n  level: %s\n" % a.log_level,
             sim=sim, log_path=os.path.join(tmp, "ebsd.log"))
    st, _, body = e.get(path, timeout=120)
    assert st == 200
    st, hdrs, zbody = e.get(path, headers={"Accept-Encoding": "gzip"} if a.gzip else None)
    assert st == 200 and (not a.gzip or hdrs.get("content-encoding") == "gzip"), hdrs
    wire_bytes = len(zbody)
    rds = er = None
    if a.redis:
        rds = RedisServer()
        er = Ebsd(config="routes:\n  volumes_total:\n    cache_ttl_s: 3600\nlog:\n  level: %s\n"
                  "redis:\n  url: \"redis://127.0.0.1:%d\"\n" % (a.log_level, rds.port),
                  sim=sim, log_path=os.path.join(tmp, "ebsd-redis.log"))
        for _ in range(100):
            if er.get_json("/readyz")[2].get("redis") == "up":
                break
            time.sleep(0.05)
        st, _, _ = er.get(path, timeout=120)
        assert st == 200
    access = a.log_level in ("debug", "info")
    ngx_log = ("log_format j escape=json '{\"time\":\"$time_iso8601\",\"level\":\"info\","
               "\"event\":\"access\",\"request_id\":\"$request_id\",\"method\":\"$request_method\","
               "\"path\":\"$uri\",\"status\":$status,\"bytes\":$body_bytes_sent,"
               "\"duration_ms\":$request_time,\"client\":\"$remote_addr\"}'; "
               "access_log %s/nginx-access.log j buffer=64k flush=1s;" % tmp) if access else "access_log off;"
    with open(os.path.join(tmp, "total.json"), "wb") as f:
        f.write(body)
    port = free_port()
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write("""daemon off; worker_processes 1; pid %(t)s/nginx.pid; error_log %(t)s/error.log;
events { worker_connections 1024; }
http { %(log)s keepalive_requests 1000000; %(gzip)s
  types { application/json json; }
  server { listen 127.0.0.1:%(p)d; root %(t)s;
    location = /volumes/total { default_type application/json; try_files /total.json =404; } } }
""" % {"t": tmp, "p": port, "log": ngx_log,
       "gzip": "gzip on; gzip_types application/json; gzip_comp_level 6;" if a.gzip else ""})
    ngx = subprocess.Popen(["nginx", "-c", conf, "-p", tmp], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        results = {"ebsd": []}
        if er:
            results["ebsd+redis"] = []
        results["nginx"] = []
        for _ in range(a.rounds):  # interleaved rounds, so both see the same machine noise
            results["ebsd"].append(wrk("http://127.0.0.1:%d%s" % (e.port, path), a))
            if er:
                results["ebsd+redis"].append(wrk("http://127.0.0.1:%d%s" % (er.port, path), a))
            results["nginx"].append(wrk("http://127.0.0.1:%d%s" % (port, path), a))
        if any(r[3] for rs in results.values() for r in rs):
            sys.exit("a server answered non-2xx responses: the comparison is invalid")
        if access:  # both really logged every request
            def count(path, needle):
                with open(path, "rb") as f:
                    return sum(1 for line in f if needle in line)
            n_ebsd = count(os.path.join(tmp, "ebsd.log"), b'"event":"access"')
            if er:
                print("access lines written: ebsd+redis %d" % count(
                    os.path.join(tmp, "ebsd-redis.log"), b'"event":"access"'))
            n_ngx = count(os.path.join(tmp, "nginx-access.log"), b'"event":"access"')
            print("access lines written: ebsd %d, nginx %d\n" % (n_ebsd, n_ngx))
        print("| server | requests/s (median of %d) | p50 | p99 | non-2xx |" % a.rounds)
        print("|---|---:|---:|---:|---:|")
        med = {}
        for name, rs in results.items():
            rs.sort(key=lambda r: r[0])
            r = rs[len(rs) // 2]
            med[name] = r[0]
            print("| %s | %.0f | %.3f ms | %.3f ms | %d |" % (name, r[0], r[1], r[2], r[3]))
        print("\nebsd / nginx requests/s: %.2f (%s, %d instances, body %d bytes, %s %d bytes, "
              "%d connections, %d s, wrk -t%d, ebsd log level %s, access lines %s)" % (
                  med["ebsd"] / med["nginx"], path, a.instances, len(body),
                  "gzip" if a.gzip else "identity", wire_bytes, a.connections, a.duration,
                  a.threads,
                  a.log_level, "to a file from both" if access else "off in both"))
        if er:
            print("ebsd+redis / ebsd requests/s: %.2f" % (med["ebsd+redis"] / med["ebsd"]))
    finally:
        ngx.terminate()
        ngx.wait()
        if er:
            er.stop()
            rds.stop()
        e.stop()
        sim.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
