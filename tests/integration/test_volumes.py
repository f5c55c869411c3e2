"""The volume endpoints against ec2sim (issue: fan-out): totals equal the simulator's truth,
per-instance answers, sequential == parallel, Lambda-style deadline and memory limit,
bounded children, crashed children, no zombies or descriptor leaks, upstream errors, and
responses that conform to openapi.yaml."""
import json
import os
import re
import signal
import threading
import time

from harness import (Ebsd, Sim, SLOW, SANITIZE, proc_children, proc_fds, run, sim_env,
                     write_config)
from schema import validate

NO_CACHE = {"Cache-Control": "no-cache"}
# Tests that force one fetch after another lift the bound on forced refreshes.
NO_REFRESH_BOUND = "cache:\n  min_refresh_s: 0\n"
# the volumes by instance ids after the listing, the plan the listing tests count
BY_IDS = "  volume_shares: \"off\"\n"


def fresh(e, path, **kw):
    """GET with the cache bypassed, so every call is a real fan-out."""
    return e.get_json(path, headers=NO_CACHE, **kw)


def check_total_matches_truth(n, seed=11):
    sim = Sim("--instances", str(n), "--seed", str(seed))
    e = Ebsd(sim=sim)
    truth = sim.truth()
    # the longest deadline allowed: sanitizer builds on a busy machine are slow
    st, hdrs, doc = e.get_json("/volumes/total?detail=instances&timeout_ms=29000")
    assert st == 200, (st, doc)
    validate(doc, "VolumesTotal")
    assert doc["total_gib"] == truth["total_gib"], (doc["total_gib"], truth["total_gib"])
    assert doc["instance_count"] == truth["instance_count"]
    assert doc["volume_count"] == truth["volume_count"]
    got = {i["instance_id"]: i["total_gib"] for i in doc["instances"]}
    assert got == truth["instances"], "per-instance totals differ from the truth"
    cnt = {i["instance_id"]: i["volume_count"] for i in doc["instances"]}
    assert cnt == truth["instance_volumes"]
    assert doc["source"]["cache"] == "miss"
    assert doc["source"]["ec2_calls"] >= 1 if n else True
    e.stop()
    sim.stop()
    return doc


def test_total_zero_instances():
    doc = check_total_matches_truth(0)
    assert doc["total_gib"] == 0 and doc["instance_count"] == 0


def test_total_one_instance():
    check_total_matches_truth(1)


def test_total_1000_instances():
    doc = check_total_matches_truth(1000)
    # grouped volume calls, not one per instance
    assert doc["source"]["ec2_calls"] <= 1 + 1000 // 200 + 5, doc["source"]


def test_total_10000_instances():
    check_total_matches_truth(10000, seed=5)


def test_multi_attach_volume_on_16_instances_counts_in_each():
    """EC2 multi-attach (io1/io2) attaches one volume to up to 16 instances: every one of them
    counts it in its own total (ebsd kept only 4 attachments once), the region total once."""
    sim = Sim("--instances", "600", "--seed", "4", "--multi-attach-max", "16")
    e = Ebsd(sim=sim)
    truth = sim.truth()
    wide = [v for v in sim.get_json("/_sim/fleet")["volumes"] if len(v["attachments"]) > 4]
    assert wide and max(len(v["attachments"]) for v in wide) == 16, "no volume on > 4 instances"
    st, _, doc = e.get_json("/volumes/total?detail=instances")
    assert st == 200, doc
    assert doc["total_gib"] == truth["total_gib"]
    got = {i["instance_id"]: i["total_gib"] for i in doc["instances"]}
    wrong = {k: (got.get(k), v) for k, v in truth["instances"].items() if got.get(k) != v}
    assert not wrong, (len(wrong), list(wrong.items())[:5])
    # the per-instance route lists the volume for its 16th instance too
    v = max(wide, key=lambda v: len(v["attachments"]))
    last = v["attachments"][-1]["instance"]
    st, _, one = e.get_json("/instances/%s/volumes" % last)
    assert st == 200 and v["id"] in [x["volume_id"] for x in one["volumes"]], one
    assert one["total_gib"] == truth["instances"][last]
    e.stop()
    sim.stop()


def fresh_total_is_truth(e, sim):
    """A fresh total with detail, checked against the truth (totals, counts, each instance's
    total and volume count); returns it, the truth and the EC2 calls it made."""
    truth = sim.truth()
    sim.reset()
    st, _, doc = fresh(e, "/volumes/total?detail=instances&timeout_ms=29000")
    assert st == 200, (st, doc)
    validate(doc, "VolumesTotal")
    assert doc["total_gib"] == truth["total_gib"]
    assert doc["instance_count"] == truth["instance_count"]
    assert doc["volume_count"] == truth["volume_count"]
    assert {i["instance_id"]: i["total_gib"] for i in doc["instances"]} == truth["instances"]
    assert ({i["instance_id"]: i["volume_count"] for i in doc["instances"]} ==
            truth["instance_volumes"])
    return doc, truth, sim.stats()["calls"]


def check_listing(e, sim, want_calls):
    """A fresh total equals the truth, made with want_calls DescribeInstances calls."""
    doc, truth, calls = fresh_total_is_truth(e, sim)
    assert calls.get("DescribeInstances") == want_calls, calls
    # every instance's volumes asked for once, in groups of at most 200 ids
    n = truth["instance_count"]
    assert (n + 199) // 200 <= calls.get("DescribeVolumes", 0) <= (n + 199) // 200 + 8, calls


def test_split_listing_auto_config_and_off():
    """A large fleet is listed by several DescribeInstances listers side by side, each on a
    disjoint share of instance ids: sized from the last count (auto), fixed by
    fanout.list_partitions, or never (1). The answer is the truth every time."""
    sim = Sim("--instances", "2500", "--seed", "8")
    e = Ebsd(config="fanout:\n" + BY_IDS + NO_REFRESH_BOUND, sim=sim)
    check_listing(e, sim, 3)      # no count known yet: 3 pages of 1,000, one after another
    check_listing(e, sim, 8)      # 2,500 seen: 5 listers' worth, rounded up to 8
    check_listing(e, sim, 8)
    e.stop()
    e = Ebsd(config="fanout:\n  list_partitions: 1\n" + BY_IDS + NO_REFRESH_BOUND, sim=sim)
    check_listing(e, sim, 3)
    check_listing(e, sim, 3)
    e.stop()
    e = Ebsd(config="fanout:\n  list_partitions: 16\n" + BY_IDS + NO_REFRESH_BOUND, sim=sim)
    check_listing(e, sim, 16)
    e.stop()
    sim.stop()


def test_volume_groups_grow_to_one_wave():
    """Once ebsd knows the fleet is larger than max_children groups of group_size, groups grow
    so the volume work runs in one wave of workers (each worker pages on its own)."""
    sim = Sim("--instances", "2500", "--seed", "8")
    e = Ebsd(config="fanout:\n  max_children: 6\n  list_partitions: 2\n" + BY_IDS +
             NO_REFRESH_BOUND, sim=sim)
    truth = sim.truth()
    for want_children in (2 + 13, 2 + 4):   # 2,500 / 200 = 13 groups; then 2,500 / (6 - 2)
        st, _, doc = fresh(e, "/volumes/total?detail=instances&timeout_ms=29000")
        assert st == 200, doc
        assert doc["total_gib"] == truth["total_gib"]
        assert {i["instance_id"]: i["total_gib"] for i in doc["instances"]} == truth["instances"]
        assert doc["source"]["children"] == want_children, doc["source"]
    e.stop()
    sim.stop()


def test_listers_fetch_their_own_volumes_once_groups_match_shares():
    """When the last count says each lister's share fits one page and the volume groups would
    have grown to a share anyway, each lister looks up its own share's volumes: as many
    workers as listers, and the same answer."""
    sim = Sim("--instances", "2500", "--seed", "8")
    e = Ebsd(config="fanout:\n  max_children: 8\n  list_partitions: 4\n" + BY_IDS +
             NO_REFRESH_BOUND, sim=sim)
    truth = sim.truth()
    # first: size unknown, 4 listers hand 13 groups of 200 to workers of their own;
    # then 4 shares of 625 = the grown group (2,500 / (8 - 4)): the listers do it all
    for want_children in (4 + 13, 4):
        sim.reset()
        st, _, doc = fresh(e, "/volumes/total?detail=instances&timeout_ms=29000")
        assert st == 200, doc
        assert doc["total_gib"] == truth["total_gib"]
        assert doc["volume_count"] == truth["volume_count"]
        assert {i["instance_id"]: i["total_gib"] for i in doc["instances"]} == truth["instances"]
        assert doc["source"]["children"] == want_children, doc["source"]
        calls = sim.stats()["calls"]
        assert calls.get("DescribeInstances") == 4, calls
        assert doc["source"]["ec2_calls"] == sum(calls.values()), (doc["source"], calls)
    e.stop()
    sim.stop()


def check_shares(e, sim, listers, shares, list_calls=None):
    """A fresh total with detail equals the truth, each volume once, from listers
    DescribeInstances listers (list_calls calls: one page each by default) and DescribeVolumes
    shares side by side (shares: a count, or a range when the count is estimated), each share
    paging on its own: at most one partial page a share."""
    lo, hi = shares if isinstance(shares, tuple) else (shares, shares)
    doc, truth, calls = fresh_total_is_truth(e, sim)
    assert calls.get("DescribeInstances") == (list_calls or listers), calls
    shares = sim.stats()["first_pages"].get("DescribeVolumes", 0)
    assert lo <= shares <= hi, (shares, doc["source"])
    # the listers carry the shares, each in a thread of its worker (engine.c)
    assert doc["source"]["children"] == listers, (listers, shares, doc["source"])
    pages = -(-truth["volume_count"] // 500)
    assert pages <= calls.get("DescribeVolumes", 0) <= pages + shares, (pages, calls)
    assert doc["source"]["ec2_calls"] == sum(calls.values()), (doc["source"], calls)


def test_volume_shares_beside_the_listing():
    """Once a target's size is known, its attached volumes are listed in shares of volume ids
    side by side with the instance listing, instead of by instance ids after it: the same
    answer (multi-attach volumes on many instances included), one round trip less."""
    sim = Sim("--instances", "2500", "--seed", "8", "--multi-attach-max", "16")
    vols = sim.truth()["volume_count"]
    e = Ebsd(config=NO_REFRESH_BOUND, sim=sim)
    check_listing(e, sim, 3)  # size unknown: by instance ids, as before
    # auto: shares of nine tenths of a 500-volume page of the volumes the last listing
    # found (a multi-attach volume it found through two groups counts twice: an estimate);
    # listers that keep up in one page
    want = -(-vols // 450)
    check_shares(e, sim, 4, (want, want + 3))
    check_shares(e, sim, 4, want)  # counted by the shares this time: each volume once
    e.stop()
    # a fixed count, one that does not divide 16 (the last two hex digits), from the first
    # request on: one lister then, its 3 pages one after another
    e = Ebsd(config="fanout:\n  volume_shares: 3\n" + NO_REFRESH_BOUND, sim=sim)
    check_shares(e, sim, 1, 3, list_calls=3)
    # known size, shares of 4 pages: one lister keeps up, its 3 pages fewer than a share's
    check_shares(e, sim, 1, 3, list_calls=3)
    e.stop()
    sim.stop()


def test_listers_carry_the_volume_shares():
    """A lister lists its volume shares in threads of its own worker: one process for the
    whole cold request, the same answer; a share's pages are its own (here the only share
    pages through every attached volume while the lister pages once); a share's failure is
    the request's; at the deadline the many-threaded worker is killed like any; and shares
    past 16 a lister get workers of their own."""
    sim = Sim("--instances", "300", "--seed", "12")
    e = Ebsd(config="ec2:\n  max_attempts: 1\n  read_timeout_ms: 400\n" + NO_REFRESH_BOUND,
             sim=sim)
    check_listing(e, sim, 1)  # size unknown: by instance ids
    doc, truth, calls = fresh_total_is_truth(e, sim)
    # shares of nine tenths of a page of what the first listing counted (by instance ids: a
    # multi-attach volume once per instance), each one page; no worker of the lister's own
    want = -(-truth["volume_count"] // 450)
    shares = sim.stats()["first_pages"].get("DescribeVolumes")
    assert 2 <= want <= shares <= want + 1, (want, sim.stats())
    assert calls == {"DescribeInstances": 1, "DescribeVolumes": shares}, calls
    assert doc["source"]["children"] == 1, doc["source"]
    e.stop()

    # 20 shares: the lister carries 16, the other 4 are workers of their own
    e = Ebsd(config="fanout:\n  volume_shares: 20\n" + NO_REFRESH_BOUND, sim=sim)
    for _ in range(2):
        doc, truth, calls = fresh_total_is_truth(e, sim)
        assert sim.stats()["first_pages"].get("DescribeVolumes") == 20, sim.stats()
        assert doc["source"]["children"] == 1 + 4, doc["source"]
    e.stop()

    no_stale = "  stale_if_error_s: 0\n"  # under cache:, after NO_REFRESH_BOUND
    e = Ebsd(config="ec2:\n  max_attempts: 1\n  read_timeout_ms: 400\n  volume_page_size: 100\n"
             "fanout:\n  volume_shares: 1\n" + NO_REFRESH_BOUND + no_stale, sim=sim)
    for _ in range(2):
        doc, truth, calls = fresh_total_is_truth(e, sim)
        assert doc["source"]["children"] == 1, doc["source"]
        pages = -(-truth["volume_count"] // 100)
        assert calls == {"DescribeInstances": 1, "DescribeVolumes": pages}, (pages, calls)

    # the carried share's calls time out: the listing's success does not hide it
    sim.faults(latency={"DescribeVolumes": 1500})
    st, _, doc = fresh(e, "/volumes/total?timeout_ms=8000")
    assert st in (502, 504) and "error" in doc, (st, doc)
    assert sim.stats()["calls"].get("DescribeInstances", 0) >= 1

    # a deadline before the share's answer: answered at the deadline, the worker killed
    sim.faults(latency={"DescribeVolumes": 6000})
    e2 = Ebsd(config="ec2:\n  max_attempts: 1\n  read_timeout_ms: 9000\nfanout:\n"
              "  volume_shares: 1\n" + NO_REFRESH_BOUND + "  max_entries: 0\n", sim=sim)
    fresh(e2, "/volumes/total?timeout_ms=20000")  # the size, for the next plan (no cache)
    t0 = time.monotonic()
    st, _, doc = fresh(e2, "/volumes/total?timeout_ms=1000")
    took = time.monotonic() - t0
    assert st == 504 and took < 3, (st, took, doc)
    deadline = time.monotonic() + 5
    while proc_children(e2.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc_children(e2.pid) == [], proc_children(e2.pid)

    sim.faults(clear=True)
    doc, _, _ = fresh_total_is_truth(e, sim)
    assert doc["source"]["children"] == 1, doc["source"]
    e.stop()
    e2.stop()
    sim.stop()


def test_split_falls_back_without_filter_wildcards():
    """Against an endpoint without filter wildcards (ec2sim --no-wildcards) the split listing
    and the volume shares find nothing: the request asks once more unsplit and answers the
    truth, and later requests are unsplit from the start."""
    sim = Sim("--instances", "2500", "--seed", "8", "--no-wildcards")
    e = Ebsd(config=NO_REFRESH_BOUND, sim=sim)
    check_listing(e, sim, 3)  # size unknown: unsplit, volumes by instance ids (exact values)
    truth = sim.truth()
    pages = -(-truth["volume_count"] // 500)
    for split in (True, False):
        doc, _, calls = fresh_total_is_truth(e, sim)
        if split:   # 4 listers and the shares found nothing, then 3 pages and one share
            assert calls.get("DescribeInstances") == 4 + 3, calls
            # the listers carried the shares; then one lister and one share, unsplit
            assert doc["source"]["children"] == 4 + 2, doc["source"]
            shares = sim.stats()["first_pages"].get("DescribeVolumes") - 1
            assert shares > 1 and calls.get("DescribeVolumes") == shares + pages, (doc, calls)
            e.wait_line(lambda l: "one share from now on" in l)
            warned = [l["msg"] for l in e.json_lines() if "no filter wildcards?" in l.get("msg", "")]
            assert len(warned) == 2 and "listing unsplit from now on" in warned[0], warned
        else:       # unsplit from the start: one lister, carrying the one share
            assert calls == {"DescribeInstances": 3, "DescribeVolumes": pages}, calls
            assert doc["source"]["children"] == 1, doc["source"]
    e.stop()
    # the same with the volumes by instance ids: 8 listers find nothing, then 3 pages
    e = Ebsd(config="fanout:\n" + BY_IDS + NO_REFRESH_BOUND, sim=sim)
    for want_calls in (3, 8 + 3, 3):
        check_listing(e, sim, want_calls)
    e.stop()
    sim.stop()


def test_without_detail_has_no_instances_and_conforms():
    sim = Sim("--instances", "30")
    e = Ebsd(sim=sim)
    st, hdrs, doc = e.get_json("/volumes/total")
    assert st == 200
    validate(doc, "VolumesTotal")
    assert "instances" not in doc
    assert doc["request_id"] == hdrs["x-request-id"]
    e.stop()
    sim.stop()


def test_sequential_and_parallel_agree():
    sim = Sim("--instances", "300", "--seed", "3")
    e = Ebsd(config="ec2:\n  rate_limit: 0\n", sim=sim)
    st, _, par = fresh(e, "/volumes/total?detail=instances")
    st2, _, seq = fresh(e, "/volumes/total?detail=instances&mode=sequential&timeout_ms=29000")
    assert st == 200 and st2 == 200, (par, seq)
    for k in ("total_gib", "instance_count", "volume_count", "instances"):
        assert par[k] == seq[k], k
    assert seq["source"]["children"] == 1
    # the seed's strategy: one DescribeVolumes per instance
    assert seq["source"]["ec2_calls"] >= 300
    assert par["source"]["ec2_calls"] < seq["source"]["ec2_calls"]
    e.stop()
    sim.stop()


def fleet_doc(sim):
    return sim.get_json("/_sim/fleet")


def test_per_instance_every_kind():
    sim = Sim("--instances", "400", "--seed", "9")
    e = Ebsd(sim=sim)
    truth = sim.truth()
    fleet = fleet_doc(sim)
    instances = fleet["instances"]
    volumes = fleet["volumes"]
    by_state = {}
    for inst in instances:
        by_state.setdefault(inst["state"], inst["id"])
    multi = [v for v in volumes if len(v.get("attachments", [])) > 1]
    assert multi, "the fleet has no multi-attach volume"
    with_none = [i for i, gib in truth["instances"].items() if truth["instance_volumes"][i] == 0]
    picks = list(by_state.values()) + [multi[0]["attachments"][0]["instance"],
                                       multi[0]["attachments"][1]["instance"]] + with_none[:1]
    assert "terminated" in by_state and "stopped" in by_state, by_state.keys()
    for iid in picks:
        st, hdrs, doc = e.get_json("/instances/%s/volumes" % iid)
        assert st == 200, (iid, st, doc)
        validate(doc, "InstanceVolumes")
        assert doc["instance_id"] == iid
        assert doc["total_gib"] == truth["instances"][iid], (iid, doc["total_gib"])
        assert doc["volume_count"] == truth["instance_volumes"][iid]
        assert sum(v["size_gib"] for v in doc["volumes"]) == doc["total_gib"]
        for v in doc["volumes"]:
            assert re.match(r"^vol-[0-9a-f]{17}$", v["volume_id"]), v
    # the multi-attach volume shows in both instances, flagged
    for k in (0, 1):
        iid = multi[0]["attachments"][k]["instance"]
        st, _, doc = e.get_json("/instances/%s/volumes" % iid)
        vol = [v for v in doc["volumes"] if v["volume_id"] == multi[0]["id"]]
        assert vol and vol[0]["multi_attach"] is True, doc
    e.stop()
    sim.stop()


def test_malformed_id_400_before_any_call_and_unknown_404():
    sim = Sim("--instances", "10")
    e = Ebsd(sim=sim)
    sim.reset()
    for bad in ("i-123", "i-0123456789ABCDEF0", "x-0123456789abcdef0", "i-0123456789abcdef0a",
                "i-0123456789abcdef", "i-0123456789abcdef0%26Action%3DTerminateInstances"):
        st, _, doc = e.get_json("/instances/%s/volumes" % bad)
        assert st == 400, (bad, st, doc)
        validate(doc, "Error")
        assert doc["error"]["code"] == "InvalidInstanceID.Malformed"
    assert sum(sim.stats()["calls"].values()) == 0, sim.stats()
    st, _, doc = e.get_json("/instances/i-0123456789abcdef0/volumes")
    assert st == 404, (st, doc)
    validate(doc, "Error")
    assert doc["error"]["code"] == "NotFound"
    st, _, doc = e.get_json("/instances/i-01234567/volumes")
    assert st == 404, (st, doc)
    e.stop()
    sim.stop()


def test_bad_parameters_400():
    sim = Sim("--instances", "10")
    e = Ebsd(sim=sim)
    sim.reset()
    for q in ("region=mars-north-1", "detail=yes", "mode=fast", "timeout_ms=0",
              "timeout_ms=99999999", "timeout_ms=abc", "bogus=1", "region=us-east-1&region=us-east-1"):
        st, _, doc = e.get_json("/volumes/total?" + q)
        assert st == 400, (q, st, doc)
        validate(doc, "Error")
    assert sum(sim.stats()["calls"].values()) == 0
    e.stop()
    sim.stop()


def children_of(pid):
    return [c for c in proc_children(pid)]


def test_deadline_kills_children_and_answers_504():
    sim = Sim("--instances", "50", "--latency-ms", "5000")
    e = Ebsd(sim=sim)
    t0 = time.time()
    st, _, doc = e.get_json("/volumes/total?timeout_ms=1000")
    dt = time.time() - t0
    assert st == 504, (st, doc)
    validate(doc, "Error")
    assert doc["error"]["code"] == "TaskTimedOut"
    assert doc["error"]["message"] == "Task timed out after 1.00 seconds", doc
    assert 1.0 <= dt <= 1.0 + 0.1 * SLOW, dt
    time.sleep(0.2)
    assert children_of(e.pid) == [], children_of(e.pid)
    line = e.wait_line(lambda l: l.startswith("REPORT") and doc["error"]["request_id"] in l)
    assert "Children: 1" in line, line
    e.stop()
    sim.stop()


def test_memory_limit_trips():
    # 400 instances with 50 tags each, kept because the query groups by one: a worker holds
    # about 10 MB of tag records for one DescribeInstances page, which a worker limited to
    # 4 MB cannot (the body itself is parsed as it arrives, never held whole)
    fleet = {"region": "us-east-1", "instances": [
        {"id": "i-%017x" % (i + 1), "state": "running",
         "tags": {"k%02d" % k: "v%d" % i for k in range(50)}}
        for i in range(400)], "volumes": []}
    path = write_config(json.dumps(fleet), suffix=".json")
    sim = Sim("--fleet", path)
    q = "/volumes/total?group_by=instance_tag:k00"
    e = Ebsd(config="routes:\n  volumes_total:\n    memory_mb: 4\n", sim=sim)
    st, _, doc = e.get_json(q)
    assert st == 502, (st, doc)
    validate(doc, "Error")
    assert doc["error"]["code"] == "MemoryLimitExceeded", doc
    assert "memory limit" in doc["error"]["message"]
    # the service goes on, and the same query works with room to spare
    st, _, _ = e.get_json("/healthz")
    assert st == 200
    e2 = Ebsd(config="routes:\n  volumes_total:\n    memory_mb: 128\n", sim=sim)
    st, _, doc = e2.get_json(q)
    assert st == 200 and doc["instance_count"] == 400, (st, doc)
    e.stop()
    e2.stop()
    sim.stop()


def test_max_children_never_exceeded():
    sim = Sim("--instances", "1000", "--latency-ms", "30")
    e = Ebsd(config="fanout:\n  max_children: 4\n  group_size: 10\nec2:\n  rate_limit: 0\n", sim=sim)
    sim.reset()
    st, _, doc = e.get_json("/volumes/total")
    assert st == 200, doc
    assert doc["total_gib"] == sim.truth()["total_gib"]
    assert doc["source"]["children"] >= 100
    peak = sim.stats()["peak_in_flight"]
    assert 2 <= peak <= 4, peak
    e.stop()
    sim.stop()


def nice_of(pid):
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[16])


def test_workers_run_at_the_configured_nice():
    """fanout.worker_nice: each worker's nice is ebsd's plus the setting (capped at 19),
    10 by default; ebsd's own stays."""
    for config, step in ((None, 10), ("fanout:\n  worker_nice: 4\n", 4),
                         ("fanout:\n  worker_nice: 0\n", 0)):
        sim = Sim("--instances", "20", "--latency-ms", "1500")
        e = Ebsd(config=config, sim=sim)
        parent = nice_of(e.pid)
        result = {}
        t = threading.Thread(target=lambda: result.update(r=e.get_json("/volumes/total")))
        t.start()
        deadline = time.time() + 5 * SLOW
        kids = []
        while time.time() < deadline and not kids:
            kids = [k for k, state in children_of(e.pid) if state != "Z"]
            time.sleep(0.05)
        assert kids, "no worker appeared"
        nices = set()
        for k in kids:
            try:
                nices.add(nice_of(k))
            except OSError:
                pass  # ended meanwhile
        t.join(20)
        assert result["r"][0] == 200, result
        assert nices == {min(19, parent + step)}, (config, parent, nices)
        assert nice_of(e.pid) == parent
        e.stop()
        sim.stop()


def test_killed_child_fails_only_its_request():
    sim = Sim("--instances", "20", "--latency-ms", "1500")
    e = Ebsd(sim=sim)
    result = {}
    t = threading.Thread(target=lambda: result.update(r=e.get_json("/volumes/total")))
    t.start()
    deadline = time.time() + 5
    kids = []
    while time.time() < deadline and not kids:
        kids = children_of(e.pid)
        time.sleep(0.05)
    assert kids, "no worker appeared"
    os.kill(kids[0][0], signal.SIGKILL)
    t.join(20)
    st, _, doc = result["r"]
    assert st == 502, (st, doc)
    assert doc["error"]["code"] == "ChildFailed", doc
    sim.faults(latency_ms=0)
    st, _, doc = fresh(e, "/volumes/total")
    assert st == 200, doc
    e.stop()
    sim.stop()


def test_500_requests_no_zombies_no_fd_growth():
    sim = Sim("--instances", "5")
    e = Ebsd(sim=sim)
    fresh(e, "/volumes/total")
    time.sleep(0.2)
    fds0 = proc_fds(e.pid)
    n = 200 if SANITIZE else 500
    for i in range(n):
        path = "/volumes/total" if i % 2 else "/instances/i-0123456789abcdef0/volumes"
        st, _, _ = e.get(path, headers=NO_CACHE)
        assert st in (200, 404), st
    time.sleep(0.3)
    assert children_of(e.pid) == [], children_of(e.pid)
    fds1 = proc_fds(e.pid)
    assert fds1 <= fds0 + 2, (fds0, fds1)
    e.stop()
    sim.stop()


def test_upstream_auth_failure_502_keeps_code():
    sim = Sim("--instances", "5")
    env = sim_env(sim, {"AWS_SECRET_ACCESS_KEY": "not-the-secret"})
    e = Ebsd(sim=sim, env=env)
    st, _, doc = e.get_json("/volumes/total")
    assert st == 502, (st, doc)
    validate(doc, "Error")
    assert doc["error"]["code"] in ("SignatureDoesNotMatch", "AuthFailure"), doc
    assert "not-the-secret" not in json.dumps(doc)
    env = sim_env(sim, {"AWS_ACCESS_KEY_ID": "AKIDUNKNOWN"})
    e2 = Ebsd(sim=sim, env=env)
    st, _, doc = e2.get_json("/volumes/total")
    assert st == 502 and doc["error"]["code"] == "AuthFailure", doc
    e.stop()
    e2.stop()
    sim.stop()


def test_throttled_after_retries_503_with_retry_after():
    sim = Sim("--instances", "5", "--rate-limit", "1:0.01")
    e = Ebsd(sim=sim)
    fresh(e, "/volumes/total")  # drains the bucket
    st, hdrs, doc = fresh(e, "/volumes/total")
    assert st == 503, (st, doc)
    validate(doc, "Error")
    assert doc["error"]["code"] == "RequestLimitExceeded", doc
    assert int(hdrs["retry-after"]) >= 1
    e.stop()
    sim.stop()


def test_unreachable_ec2_502():
    env = sim_env(None, {"AWS_ENDPOINT_URL_EC2": "http://127.0.0.1:9"})
    e = Ebsd(env=env)
    st, _, doc = e.get_json("/volumes/total")
    assert st == 502, (st, doc)
    assert doc["error"]["code"] == "UpstreamUnreachable", doc
    e.stop()


def test_report_line():
    sim = Sim("--instances", "100")
    e = Ebsd(sim=sim)
    st, hdrs, doc = e.get_json("/volumes/total", headers={"X-Request-Id": "report-me"})
    assert st == 200
    line = e.wait_line(lambda l: l.startswith("REPORT RequestId: report-me"))
    m = re.match(r"^REPORT RequestId: report-me\tDuration: (\d+\.\d\d) ms\tBilled Duration: (\d+) ms\t"
                 r"Memory Size: 128 MB\tMax Memory Used: (\d+) MB\tChildren: (\d+)\tEC2 Calls: (\d+)\t"
                 r"Cache: miss$", line)
    assert m, line
    dur, billed, mem, kids, calls = float(m[1]), int(m[2]), int(m[3]), int(m[4]), int(m[5])
    assert billed >= dur and billed - dur < 1.0 + 1e-9
    assert mem >= 1
    assert kids == doc["source"]["children"] and calls == doc["source"]["ec2_calls"]
    e.stop()
    sim.stop()


def test_once_mode():
    import subprocess
    from harness import EBSD_BIN
    sim = Sim("--instances", "25", "--seed", "4")
    r = subprocess.run([EBSD_BIN, "--once", "volumes-total"], env=sim_env(sim),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, (r.stdout, r.stderr)
    doc = json.loads(r.stdout)  # stdout is the document alone (`| jq`); the log is on stderr
    assert any(json.loads(l).get("event") for l in r.stderr.splitlines() if l.startswith("{"))
    assert doc["total_gib"] == sim.truth()["total_gib"]
    iid = next(iter(sim.truth()["instances"]))
    r = subprocess.run([EBSD_BIN, "--once", "instance-volumes", iid], env=sim_env(sim),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["total_gib"] == sim.truth()["instances"][iid]
    sim.stop()


if __name__ == "__main__":
    run(globals())
