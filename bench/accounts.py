#!/usr/bin/env python3
"""The cold time of an aggregate over many targets against one target's (issue 16's goal:
account=all&region=all over 9 targets within 1.5x of one target), side by side in one run.

ec2sim serves 3 accounts x 3 regions (one account through the base credentials, two through
STS AssumeRole); ebsd caches nothing (TTL 0) and has no client rate limit, so every request
is a cold fetch. The requests alternate between one target and the aggregate, so both see the
same machine noise. Prints a Markdown table (times: medians of --repeat), with the CPU seconds
each request cost ebsd (parent and its reaped children) and ec2sim (means of --repeat): on a small machine the
aggregate's floor is its CPU divided by the cores, whatever the concurrency.

With a list of fleet sizes (--instances 20,1000) it shows where the aggregate stops being
bound by the round trips and becomes bound by CPU.

The last column is a floor no build of ebsd can go below on this machine: one target's
pages (fetched from ec2sim as ebsd's listing asks for them, signed with botocore) parsed by
expat alone, with no handler at all (pyexpat, the same C library ebsd uses), nine times over
the cores, and the simulator's own CPU for nine targets beside it: the aggregate needs at
least max(latency + 9 parses / cores, 9 (parse + simulator) / cores), whatever ebsd does
around the parser.

Usage: bench/accounts.py [--instances 1000[,N...]] [--latency 50] [--repeat 5]
Needs a build (build/ebsd, build/tools/ec2sim/ec2sim). Only loopback traffic; every process
it starts is stopped at exit."""
import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
os.environ.setdefault("EBSD_BIN", os.path.join(ROOT, "build", "ebsd"))
os.environ.setdefault("EC2SIM_BIN", os.path.join(ROOT, "build", "tools", "ec2sim", "ec2sim"))
from harness import Ebsd, Sim, sim_env  # noqa: E402

REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2"]
ACCOUNTS = {"home": "123456789012", "dev": "111122223333", "ops": "222233334444"}
ONE = "/volumes/total?account=home&region=us-east-1"
ALL = "/volumes/total?account=all&region=all"


def cpu_s(pid):
    """CPU seconds of pid and its reaped children (utime, stime, cutime, cstime)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def pages_of_one_target(sim):
    """The XML pages of the target `home` / us-east-1, as ebsd lists them (DescribeInstances
    1,000 a page, DescribeVolumes 500 a page), signed with botocore as a client would."""
    import urllib.parse
    import urllib.request
    import xml.etree.ElementTree as ET
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    env = sim_env(sim)
    cred = Credentials(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"])
    pages = []
    for action, size in (("DescribeInstances", 1000), ("DescribeVolumes", 500)):
        token = None
        while True:
            body = "Action=%s&Version=2016-11-15&MaxResults=%d" % (action, size)
            if token:
                body += "&NextToken=" + urllib.parse.quote(token, safe="")
            r = AWSRequest(method="POST", url=sim.url + "/", data=body, headers={
                "Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
            SigV4Auth(cred, "ec2", "us-east-1").add_auth(r)
            req = urllib.request.Request(sim.url + "/", data=body.encode(),
                                         headers=dict(r.headers), method="POST")
            with urllib.request.urlopen(req, timeout=60) as resp:
                page = resp.read()
            pages.append(page)
            token = next((el.text for el in ET.fromstring(page).iter()
                          if el.tag.endswith("nextToken") and el.text), None)
            if not token:
                break
    return pages


def expat_alone_s(pages, repeat=7):
    """The fastest of repeat parses of pages by expat with no handler (pyexpat)."""
    import pyexpat
    best = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        for page in pages:
            pyexpat.ParserCreate().Parse(page, True)
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    return best


def measure(n, a):
    """(one target's time, the aggregate's, {path: (ebsd CPU, ec2sim CPU)}) for fleets of n."""
    sim = Sim("--instances", str(n), "--seed", "42", "--latency-ms", str(a.latency),
              "--regions", ",".join(REGIONS), "--accounts", ",".join(ACCOUNTS.values()))
    config = ("regions: [%s]\n" % ", ".join(REGIONS) +
              "ec2:\n  rate_limit: 0\n"
              "routes:\n  volumes_total:\n    cache_ttl_s: 0\n    timeout_ms: 29000\n"
              "accounts:\n  - name: home\n" +
              "".join("  - name: %s\n    role_arn: \"arn:aws:iam::%s:role/ebsd-read\"\n" % (m, i)
                      for m, i in ACCOUNTS.items() if m != "home"))
    e = Ebsd(config, env=sim_env(sim, {"AWS_ENDPOINT_URL_STS": sim.url}))
    try:
        # the first fetch of each target lists it unsplit (its size is not known yet)
        for path in (ONE, ALL):
            st, _, doc = e.get_json(path, timeout=120)
            assert st == 200 and doc.get("complete", True), (st, doc)
        times = {ONE: [], ALL: []}
        cpu = {ONE: [], ALL: []}
        want = {}
        for _ in range(a.repeat):
            for path in (ONE, ALL):
                c0 = (cpu_s(e.p.pid), cpu_s(sim.p.pid))
                t0 = time.time()
                st, _, doc = e.get_json(path, timeout=120)
                times[path].append(time.time() - t0)
                time.sleep(0.2)  # the last children reaped
                c1 = (cpu_s(e.p.pid), cpu_s(sim.p.pid))
                cpu[path].append((c1[0] - c0[0], c1[1] - c0[1]))
                assert st == 200 and doc.get("complete", True), (st, doc)
                want.setdefault(path, doc["total_gib"])
                assert doc["total_gib"] == want[path], (path, doc["total_gib"], want[path])
        # CPU as the mean over the repeats: /proc counts in clock ticks (10 ms), too coarse
        # for the median of single requests of a small fleet
        med = {p: (statistics.mean(c[0] for c in cpu[p]), statistics.mean(c[1] for c in cpu[p]))
               for p in cpu}
        parse = expat_alone_s(pages_of_one_target(sim))
        return statistics.median(times[ONE]), statistics.median(times[ALL]), med, parse
    finally:
        e.stop()
        sim.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--instances", default="1000",
                    help="per target; a comma-separated list gives a pair of rows for each")
    ap.add_argument("--latency", type=int, default=50, help="ms per EC2 call")
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    sizes = [int(x) for x in a.instances.split(",")]
    ncpu = os.cpu_count() or 1
    print("## cold /volumes/total, %d ms per EC2 call, median of %d; %d cores"
          % (a.latency, a.repeat, ncpu))
    print()
    print("| instances per target | request | targets | seconds | vs one target | ebsd CPU s "
          "| ec2sim CPU s | CPU floor on %d cores | goal (1.5x) | expat alone, a target "
          "| floor with expat alone |" % ncpu)
    print("|---:|---|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    targets = len(ACCOUNTS) * len(REGIONS)
    for n in sizes:
        one, agg, med, parse = measure(n, a)
        print("| %d | `account=home&region=us-east-1` | 1 | %.3f | 1.00x | %.3f | %.3f | | | | |"
              % ((n, one) + med[ONE]))
        floor = (med[ALL][0] + med[ALL][1]) / ncpu
        # the simulator's CPU for one target: the one-target request's, the cleanest measure
        bare = max(a.latency / 1000.0 + targets * parse / ncpu,
                   targets * (parse + med[ONE][1]) / ncpu)
        print("| %d | `account=all&region=all` | %d | %.3f | %.2fx | %.3f | %.3f | %.3f s (%.2fx) "
              "| %s | %.1f ms | %.3f s (%.2fx) |"
              % ((n, targets, agg, agg / one) + med[ALL] +
                 (floor, floor / one, "met" if agg <= 1.5 * one else "missed",
                  parse * 1000, bare, bare / one)),
              flush=True)


if __name__ == "__main__":
    main()
