"""Breakdowns, unattached volumes and the storage gauges (issue 18) against ec2sim: every
/volumes/total?group_by= equals /_sim/truth?group_by=, /volumes/unattached equals the
truth's unattached block, the gauges on /metrics equal the JSON answers, a scrape starts no
EC2 call, the background refresher keeps the data fresh within the EC2 budget, and label
sets stay bounded on a 10,000-instance fleet with 500 tag values."""
import datetime
import re
import shutil
import subprocess
import time
import urllib.parse

from harness import Ebsd, Sim, SANITIZE, ec2_calls, run
from schema import validate

NO_CACHE = {"Cache-Control": "no-cache"}
GIB = 1 << 30
STORAGE = ("ebsd_storage_attached_bytes", "ebsd_storage_attached_volumes",
           "ebsd_storage_unattached_bytes", "ebsd_storage_unattached_volumes",
           "ebsd_instances", "ebsd_storage_data_age_seconds")
# The refresher off unless a test turns it on: call counts then belong to the test alone.
QUIET = "refresh:\n  interval_s: 0\n"


def query(keys):
    return "&".join("group_by=" + urllib.parse.quote(k, safe=":") for k in keys)


def scrape(e):
    st, _, body = e.get("/metrics")
    assert st == 200
    series = {}
    for line in body.decode().splitlines():
        m = re.match(r"^(ebsd_[a-z_]+)\{([^}]*)\} (\S+)$", line)
        if m and m.group(1) in STORAGE:
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2)))
            series.setdefault(m.group(1), []).append((labels, float(m.group(3))))
    return series, body


def when(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def same_volume(got, want):
    assert got["volume_id"] == want["volume_id"], (got, want)
    for k in ("size_gib", "volume_type", "availability_zone", "tags"):
        assert got[k] == want[k], (k, got, want)
    assert when(got["create_time"]) == when(want["create_time"]), (got, want)


KEYS = [["volume_type"], ["availability_zone"], ["instance_state"], ["instance_type"],
        ["instance_tag:team"], ["volume_tag:team"], ["volume_tag:env"], ["instance_tag:absent"],
        ["volume_type", "instance_state"], ["instance_tag:team", "volume_tag:env"],
        ["availability_zone", "instance_type"], ["instance_tag:env", "volume_type"]]


def test_every_breakdown_equals_the_truth():
    sim = Sim("--instances", "400", "--seed", "18", "--regions", "us-east-1,eu-west-1")
    e = Ebsd(config=QUIET + "regions: [us-east-1, eu-west-1]\n", sim=sim)
    _, _, plain = e.get_json("/volumes/total")
    for keys in KEYS:
        st, hdrs, doc = e.get_json("/volumes/total?" + query(keys))
        assert st == 200, (keys, doc)
        validate(doc, "VolumesTotal")
        truth = sim.get_json("/_sim/truth?" + query(keys))
        assert doc["group_by"] == keys
        assert doc["groups"] == truth["groups"], keys
        assert doc["total_gib"] == truth["total_gib"] == plain["total_gib"]
        assert sum(g["total_gib"] for g in doc["groups"]) == doc["total_gib"], keys
        assert sum(g["volume_count"] for g in doc["groups"]) == doc["volume_count"], keys
        sizes = [g["total_gib"] for g in doc["groups"]]
        assert sizes == sorted(sizes, reverse=True)
        for g in doc["groups"]:
            assert list(g["key"]) == keys
    # untagged storage is a group of its own, with a null value
    _, _, doc = e.get_json("/volumes/total?group_by=instance_tag:team")
    assert any(g["key"]["instance_tag:team"] is None for g in doc["groups"])
    _, _, doc = e.get_json("/volumes/total?group_by=instance_tag:absent")
    assert [g["key"] for g in doc["groups"]] == [{"instance_tag:absent": None}]
    # another region's fleet has its own breakdown
    keys = ["volume_type", "instance_state"]
    st, _, doc = e.get_json("/volumes/total?region=eu-west-1&" + query(keys))
    assert st == 200, doc
    truth = sim.get_json("/_sim/truth?region=eu-west-1&" + query(keys))
    assert doc["groups"] == truth["groups"]
    home = sim.get_json("/_sim/truth?" + query(keys))
    assert truth["groups"] != home["groups"]
    e.stop()
    sim.stop()


def test_grouping_is_part_of_the_cache_key():
    sim = Sim("--instances", "50", "--seed", "3")
    e = Ebsd(config=QUIET, sim=sim)
    a = e.get_json("/volumes/total?group_by=volume_type")[2]
    b = e.get_json("/volumes/total?group_by=instance_state")[2]
    c = e.get_json("/volumes/total?group_by=instance_state&group_by=volume_type")[2]
    d = e.get_json("/volumes/total")[2]
    assert [x["source"]["cache"] for x in (a, b, c, d)] == ["miss"] * 4
    assert "groups" not in d and "group_by" not in d
    again = e.get_json("/volumes/total?group_by=volume_type")[2]
    assert again["source"]["cache"] == "hit" and again["groups"] == a["groups"]
    # with detail=instances too: the groups ride along
    st, _, doc = e.get_json("/volumes/total?detail=instances&group_by=volume_type")
    assert st == 200 and doc["groups"] == a["groups"] and len(doc["instances"]) == 50
    e.stop()
    sim.stop()


def test_bad_keys_are_refused_before_any_call():
    sim = Sim("--instances", "5")
    e = Ebsd(config=QUIET, sim=sim)
    sim.reset()
    for q, named in [("group_by=bogus", "bogus"), ("group_by=instance_tag:", "instance_tag:"),
                     ("group_by=tag:team", "tag:team"),
                     ("group_by=volume_type&group_by=volume_type", "volume_type"),
                     ("group_by=a&group_by=b&group_by=c", "group_by")]:
        st, _, doc = e.get_json("/volumes/total?" + q)
        assert st == 400, (q, st, doc)
        validate(doc, "Error")
        assert doc["error"]["code"] == "InvalidParameter", doc
        assert named in doc["error"]["message"], doc
    st, _, doc = e.get_json("/instances/i-0123456789abcdef0/volumes?group_by=volume_type")
    assert st == 400 and doc["error"]["code"] == "InvalidParameter"
    for q in ("limit=0", "limit=101", "limit=x", "group_by=volume_type"):
        st, _, doc = e.get_json("/volumes/unattached?" + q)
        assert st == 400 and doc["error"]["code"] == "InvalidParameter", (q, doc)
    st, _, doc = e.get_json("/volumes/total?limit=5")
    assert st == 400
    assert ec2_calls(sim) == 0
    e.stop()
    sim.stop()


def test_unattached_equals_the_truth():
    sim = Sim("--instances", "600", "--seed", "7")
    e = Ebsd(config=QUIET, sim=sim)
    truth = sim.truth()["unattached"]
    st, hdrs, doc = e.get_json("/volumes/unattached")
    assert st == 200, doc
    validate(doc, "VolumesUnattached")
    assert doc["total_gib"] == truth["total_gib"] and doc["volume_count"] == truth["volume_count"]
    assert doc["by_type"] == truth["by_volume_type"]
    assert doc["by_availability_zone"] == truth["by_availability_zone"]
    assert doc["limit"] == 10
    assert len(doc["largest"]) == len(truth["largest"]) == 10
    for got, want in zip(doc["largest"], truth["largest"]):
        same_volume(got, want)
    for got, want in zip(doc["oldest"], truth["oldest"]):
        same_volume(got, want)
    assert hdrs["etag"] and hdrs["x-cache"] == doc["source"]["cache"] == "miss"
    # ?limit= shortens the lists and has its own cache entry
    st, _, short = e.get_json("/volumes/unattached?limit=3")
    assert st == 200 and short["source"]["cache"] == "miss"
    assert [v["volume_id"] for v in short["largest"]] == [v["volume_id"] for v in truth["largest"][:3]]
    assert [v["volume_id"] for v in short["oldest"]] == [v["volume_id"] for v in truth["oldest"][:3]]
    assert e.get_json("/volumes/unattached")[2]["source"]["cache"] == "hit"
    # one paginated listing with the status filter: a few DescribeVolumes calls, nothing else
    sim.reset()
    st, _, doc = e.get_json("/volumes/unattached?limit=5", headers=NO_CACHE)
    assert st == 200
    got = sim.stats()["calls"]
    assert set(got) == {"DescribeVolumes"} and got["DescribeVolumes"] >= 1, got
    e.stop()
    sim.stop()


def test_unattached_needs_the_token_when_auth_is_on():
    import os
    import tempfile
    sim = Sim("--instances", "5")
    fd, path = tempfile.mkstemp()
    os.write(fd, b"sekrit-token-0123456789abcdef\n")
    os.close(fd)
    e = Ebsd(config=QUIET + "security:\n  auth_tokens_file: %s\n" % path, sim=sim)
    st, hdrs, doc = e.get_json("/volumes/unattached")
    assert st == 401 and doc["error"]["code"] == "Unauthorized"
    st, _, doc = e.get_json("/volumes/unattached",
                            headers={"Authorization": "Bearer sekrit-token-0123456789abcdef"})
    assert st == 200, doc
    e.stop()
    sim.stop()
    os.unlink(path)


def check_gauges(e, sim, region="us-east-1"):
    """The gauges of one target equal the JSON answers and the truth."""
    everything, _ = scrape(e)
    series = {n: [(l, v) for l, v in rows if l["region"] == region]
              for n, rows in everything.items()}
    truth = sim.truth()
    by_type = e.get_json("/volumes/total?group_by=volume_type")[2]
    un = e.get_json("/volumes/unattached")[2]
    att = {l["volume_type"]: v for l, v in series["ebsd_storage_attached_bytes"] if l["region"] == region}
    attn = {l["volume_type"]: v for l, v in series["ebsd_storage_attached_volumes"] if l["region"] == region}
    want = {g["key"]["volume_type"]: g for g in by_type["groups"]}
    assert att == {k: g["total_gib"] * GIB for k, g in want.items()}, (att, want)
    assert attn == {k: g["volume_count"] for k, g in want.items()}
    assert sum(att.values()) == truth["total_gib"] * GIB
    un_b = {l["volume_type"]: v for l, v in series["ebsd_storage_unattached_bytes"]}
    un_n = {l["volume_type"]: v for l, v in series["ebsd_storage_unattached_volumes"]}
    assert un_b == {k: g["total_gib"] * GIB for k, g in un["by_type"].items()}
    assert un_n == {k: g["volume_count"] for k, g in un["by_type"].items()}
    states = {l["state"]: v for l, v in series["ebsd_instances"]}
    assert states == truth["instance_states"], (states, truth["instance_states"])
    for name, rows in series.items():
        for labels, _ in rows:
            assert labels["account"] == "default" and labels["region"] == region
    return series


def test_gauges_equal_the_json_and_a_scrape_calls_nothing():
    sim = Sim("--instances", "300", "--seed", "9")
    e = Ebsd(config=QUIET, sim=sim)
    series, body = scrape(e)
    assert series == {}, "no answer yet: no storage series"
    e.get_json("/volumes/total")
    e.get_json("/volumes/unattached")
    series = check_gauges(e, sim)
    age = series["ebsd_storage_data_age_seconds"]
    assert len(age) == 1 and 0 <= age[0][1] < 30, age
    # a scrape never starts a fetch, however many and however stale
    sim.reset()
    for _ in range(20):
        scrape(e)
    time.sleep(1.1)
    later, _ = scrape(e)
    assert later["ebsd_storage_data_age_seconds"][0][1] > age[0][1]
    st = sim.stats()
    assert sum(st["calls"].values()) == 0 and st["requests"] == 0, st
    e.stop()
    sim.stop()


def test_refresher_keeps_data_fresh_within_the_budget():
    # 2 regions x 2 answers every 2 s (a total is 2 EC2 calls at 40 instances, the unattached
    # volumes 1) within a budget of 2 calls per second per target (burst 2): the refresher
    # must stay within the budget, and keep the data younger than 3 intervals. (At 1 call per
    # second a round of 3 calls per target did not fit in its 2 s, and the ages drifted.)
    sim = Sim("--instances", "40", "--seed", "4", "--regions", "us-east-1,eu-west-1")
    cfg = ("regions: [us-east-1, eu-west-1]\nrefresh:\n  interval_s: 2\n"
           "ec2:\n  rate_limit: 2\n  rate_burst: 2\n")
    e = Ebsd(config=cfg, sim=sim)
    t0 = time.time()
    sim.reset()
    time.sleep(7)
    elapsed = time.time() - t0
    st = sim.stats()
    n = sum(st["calls"].values())
    # the budget counts every EC2 call, per target: burst + rate x time for each of the two
    assert n <= 2 * (2 + 2 * elapsed) + 2, (n, elapsed, st)
    assert n >= 4, ("the refresher made no calls", st)
    series, body = scrape(e)
    ages = {l["region"]: v for l, v in series["ebsd_storage_data_age_seconds"]}
    assert set(ages) == {"us-east-1", "eu-west-1"}, body.decode()[-2000:]
    assert all(a < 3 * 2 for a in ages.values()), ages
    assert set(st["targets"]) >= {"123456789012/us-east-1", "123456789012/eu-west-1"}, st
    started = re.search(r'^ebsd_refresh_total\{outcome="started"\} (\d+)$', body.decode(), re.M)
    assert started and int(started.group(1)) >= 4, body.decode()[-600:]
    # a request someone waits for is still answered
    code, _, doc = e.get_json("/volumes/total?region=eu-west-1")
    assert code == 200, doc
    check_gauges(e, sim)
    e.stop()
    sim.stop()


def test_labels_stay_bounded_on_a_big_fleet():
    if SANITIZE:
        n, values = 2000, 500
    else:
        n, values = 10000, 500
    sim = Sim("--instances", str(n), "--seed", "21", "--tag-values", str(values))
    e = Ebsd(config=QUIET, sim=sim)
    st, _, doc = e.get_json("/volumes/total?group_by=instance_tag:team&timeout_ms=29000")
    assert st == 200, doc
    truth = sim.get_json("/_sim/truth?group_by=instance_tag:team")
    assert doc["groups"] == truth["groups"]
    assert len(doc["groups"]) > 100  # the tag values are there, in the JSON ...
    assert e.get_json("/volumes/unattached?timeout_ms=29000")[0] == 200
    series, body = scrape(e)
    text = body.decode()
    # ... and not in the labels: no tag value, no id
    assert "team-" not in text and "vol-" not in text and "i-0" not in text
    total = 0
    for name in STORAGE:
        rows = series.get(name, [])
        total += len(rows)
        for labels, _ in rows:
            extra = set(labels) - {"account", "region"}
            assert extra <= {"volume_type", "state"} and len(extra) <= 1, labels
        assert len(rows) <= 17, (name, len(rows))
    assert total <= 6 * 17
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing (Debian package prometheus)"
    p = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=60)
    out = (p.stdout + p.stderr).decode()
    assert p.returncode == 0 and out.strip() == "", out
    e.stop()
    sim.stop()


run(globals())
