"""Many accounts and regions (issue 16) against ec2sim with 3 accounts x 3 regions: one target
by account= and region=, the aggregates (account=all, region=all) equal to the sums of the
simulator's truths, a refused role and a hanging region giving partial answers, credentials
of each account refreshed before expiry while requests flow, and no secret anywhere."""
import contextlib
import datetime
import json
import os
import re
import tempfile
import time
import urllib.parse

import schema
from harness import SLOW, Ebsd, RedisServer, Sim, TEST_SECRET_KEY, run, sim_env

REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2"]
HOME = "123456789012"
DEV = "111122223333"
EXT = "222233334444"
DENIED = "333344445555"
ACCOUNT_IDS = {"home": HOME, "dev": DEV, "ext": EXT}


def start_sim(*extra):
    return Sim("--instances", "60", "--seed", "7", "--regions", ",".join(REGIONS),
               "--accounts", ",".join([HOME, DEV, EXT, DENIED]),
               "--role-external-id", "arn:aws:iam::%s:role/ebsd-read=ext-1" % EXT,
               "--deny-role", "arn:aws:iam::%s:role/ebsd-read" % DENIED, *extra)


def config(denied=False, duration=900, extra=""):
    text = ("regions: [%s]\n" % ", ".join(REGIONS) +
            "accounts:\n"
            "  - name: home\n"
            "  - name: dev\n"
            "    role_arn: \"arn:aws:iam::%s:role/ebsd-read\"\n"
            "    duration_s: %d\n"
            "  - name: ext\n"
            "    role_arn: \"arn:aws:iam::%s:role/ebsd-read\"\n"
            "    external_id: \"ext-1\"\n"
            "    session_name: \"ebsd-test\"\n"
            "    duration_s: %d\n" % (DEV, duration, EXT, duration))
    if denied:
        text += ("  - name: denied\n"
                 "    role_arn: \"arn:aws:iam::%s:role/ebsd-read\"\n"
                 "    regions: [us-east-1, eu-west-1]\n" % DENIED)
    return text + extra


@contextlib.contextmanager
def started(sim_args=(), **kw):  # kw: config()'s
    """ec2sim and an ebsd on it (STS through the simulator too); both stopped after."""
    sim = start_sim(*sim_args)
    e = None
    try:
        e = Ebsd(config(**kw), env=sim_env(sim, {"AWS_ENDPOINT_URL_STS": sim.url}))
        yield sim, e
        # a clean exit (under the Sanitize build: no leak or error report)
        rc = e.stop()
        assert rc == 0, (rc, e.lines[-20:])
    finally:
        if e:
            e.stop()
        sim.stop()


def truth(sim, account, region):
    return sim.get_json("/_sim/truth?" + urllib.parse.urlencode({"account": account,
                                                                 "region": region}))


def get(e, path, **q):
    st, hdrs, body = e.get(path + ("?" + urllib.parse.urlencode(q) if q else ""))
    return st, json.loads(body) if body else None, body


def test_one_target_by_account_and_region():
    with started() as (sim, e):
        for name, acct in ACCOUNT_IDS.items():
            for region in REGIONS:
                st, doc, _ = get(e, "/volumes/total", account=name, region=region)
                t = truth(sim, acct, region)
                assert st == 200, doc
                assert doc["account"] == name and doc["account_id"] == acct, doc
                assert doc["region"] == region
                assert (doc["total_gib"], doc["instance_count"], doc["volume_count"]) == \
                    (t["total_gib"], t["instance_count"], t["volume_count"]), (name, region)
        # defaults: the first account, the default region
        st, doc, _ = get(e, "/volumes/total")
        t = truth(sim, HOME, "us-east-1")
        assert st == 200 and doc["account"] == "home" and doc["total_gib"] == t["total_gib"]
        # one instance of dev's eu-west-1 fleet, through its role
        t = truth(sim, DEV, "eu-west-1")
        iid, gib = next(iter(t["instances"].items()))
        st, doc, _ = get(e, "/instances/%s/volumes" % iid, account="dev", region="eu-west-1")
        assert st == 200 and doc["total_gib"] == gib and doc["account_id"] == DEV, doc
        # the same id is unknown in another account
        st, doc, _ = get(e, "/instances/%s/volumes" % iid, account="home", region="eu-west-1")
        assert st == 404, doc
        st, doc, _ = get(e, "/volumes/total", account="nope")
        assert st == 400 and doc["error"]["code"] == "InvalidAccount", doc
        st, doc, _ = get(e, "/volumes/total", account="dev", region="sa-east-1")
        assert st == 400 and doc["error"]["code"] == "InvalidRegion", doc


def sums(sim, pairs):
    out = [0, 0, 0]
    for acct, region in pairs:
        t = truth(sim, acct, region)
        out[0] += t["total_gib"]
        out[1] += t["instance_count"]
        out[2] += t["volume_count"]
    return out


def test_aggregates_equal_the_sum_of_truths():
    with started() as (sim, e):
        cases = [({"account": "all", "region": "all"},
                  [(a, r) for a in ACCOUNT_IDS.values() for r in REGIONS]),
                 ({"account": "all", "region": "eu-west-1"},
                  [(a, "eu-west-1") for a in ACCOUNT_IDS.values()]),
                 ({"account": "ext", "region": "all"}, [(EXT, r) for r in REGIONS]),
                 ({"region": "all"}, [(HOME, r) for r in REGIONS])]
        for q, pairs in cases:
            st, doc, _ = get(e, "/volumes/total", **q)
            assert st == 200, doc
            assert doc["complete"] is True, doc
            assert [doc["total_gib"], doc["instance_count"], doc["volume_count"]] == \
                sums(sim, pairs), q
            got = sorted((t["account_id"], t["region"]) for t in doc["targets"])
            assert got == sorted(pairs), (q, got)
            for t in doc["targets"]:
                tr = truth(sim, t["account_id"], t["region"])
                assert t["total_gib"] == tr["total_gib"] and "error" not in t, t
                assert t["source"]["cache"] in ("hit", "miss", "coalesced")
        # a second ask is served from the per-target cache
        st, doc, _ = get(e, "/volumes/total", account="all", region="all")
        assert st == 200 and all(t["source"]["cache"] == "hit" for t in doc["targets"])
        # detail=instances: every instance with its account and region
        st, doc, _ = get(e, "/volumes/total", account="all", region="all", detail="instances")
        assert st == 200
        assert len(doc["instances"]) == doc["instance_count"]
        for i in doc["instances"][:50]:
            acct = ACCOUNT_IDS[i["account"]]
            assert truth(sim, acct, i["region"])["instances"][i["instance_id"]] == i["total_gib"]
        # aggregates are for totals
        st, doc, _ = get(e, "/instances/i-0123456789abcdef0/volumes", account="all")
        assert st == 400 and doc["error"]["code"] == "InvalidParameter"


NAMES = {v: k for k, v in ACCOUNT_IDS.items()}
ALL_PAIRS = [(a, r) for a in ACCOUNT_IDS.values() for r in REGIONS]


def truth_groups(sim, account, region, keys):
    q = [("account", account), ("region", region)] + [("group_by", k) for k in keys]
    return sim.get_json("/_sim/truth?" + urllib.parse.urlencode(q))["groups"]


def sort_key(keys, g):
    """answer.c's order of groups: by size (largest first), then by the values, each as
    'v' + value or 'n' for null, ended by 0x1f."""
    enc = "".join(("n" if g["key"][k] is None else "v" + g["key"][k]) + "\x1f" for k in keys)
    return (-g["total_gib"], enc)


def summed_groups(sim, pairs, keys):
    """The simulator's groups of every target of pairs, summed by key."""
    out = {}
    for acct, region in pairs:
        for g in truth_groups(sim, acct, region, keys):
            s = out.setdefault(tuple(g["key"][k] for k in keys), [0, 0, 0])
            s[0] += g["total_gib"]
            s[1] += g["volume_count"]
            s[2] += g["instance_count"]
    return out


def check_groups(sim, doc, pairs, keys):
    schema.validate(doc, "VolumesTotal")
    assert doc["group_by"] == keys, doc.get("group_by")
    got = {tuple(g["key"][k] for k in keys): [g["total_gib"], g["volume_count"],
                                              g["instance_count"]] for g in doc["groups"]}
    assert len(got) == len(doc["groups"]), "a key given twice"
    assert got == summed_groups(sim, pairs, keys), keys
    assert sum(g["total_gib"] for g in doc["groups"]) == doc["total_gib"]
    assert sum(g["volume_count"] for g in doc["groups"]) == doc["volume_count"]
    assert [sort_key(keys, g) for g in doc["groups"]] == \
        sorted(sort_key(keys, g) for g in doc["groups"])
    ok = sorted((t["account_id"], t["region"]) for t in doc["targets"] if "error" not in t)
    assert ok == sorted(pairs), ok


def test_group_by_aggregates_equal_the_sum_of_truths():
    with started() as (sim, e):
        for keys in (["volume_type"], ["instance_tag:team"], ["volume_type", "instance_state"]):
            q = [("account", "all"), ("region", "all")] + [("group_by", k) for k in keys]
            st, _, doc = e.get_json("/volumes/total?" + urllib.parse.urlencode(q))
            assert st == 200, doc
            assert doc["complete"] is True and len(doc["targets"]) == 9, doc
            assert [doc["total_gib"], doc["instance_count"], doc["volume_count"]] == \
                sums(sim, ALL_PAIRS)
            check_groups(sim, doc, ALL_PAIRS, keys)
            if keys == ["instance_tag:team"]:  # the untagged groups of 9 targets: one group
                assert [g["key"] for g in doc["groups"]].count({"instance_tag:team": None}) == 1
        # one account's regions, through the same per-target cache (a second ask: all hits)
        q = {"account": "dev", "region": "all", "group_by": "volume_type"}
        for cache in (None, "hit"):
            st, doc, _ = get(e, "/volumes/total", **q)
            assert st == 200 and doc["complete"] is True, doc
            check_groups(sim, doc, [(DEV, r) for r in REGIONS], ["volume_type"])
            if cache:
                assert all(t["source"]["cache"] == cache for t in doc["targets"]), doc
        # with detail=instances as well: the instances and the groups
        st, doc, _ = get(e, "/volumes/total", account="all", region="eu-west-1",
                         group_by="volume_type", detail="instances")
        assert st == 200 and len(doc["instances"]) == doc["instance_count"], doc
        check_groups(sim, doc, [(a, "eu-west-1") for a in ACCOUNT_IDS.values()],
                     ["volume_type"])


def merged_unattached(sim, pairs, limit):
    """The simulator's unattached blocks of pairs merged: sums, tallies, and the limit
    largest and oldest (ties of id by account name, then region), as (id, account, region)."""
    out = {"total_gib": 0, "volume_count": 0, "by_type": {}, "by_availability_zone": {}}
    largest, oldest = [], []
    for acct, region in pairs:
        u = truth(sim, acct, region)["unattached"]
        out["total_gib"] += u["total_gib"]
        out["volume_count"] += u["volume_count"]
        for mine, theirs in (("by_type", "by_volume_type"),
                             ("by_availability_zone", "by_availability_zone")):
            for k, v in u[theirs].items():
                s = out[mine].setdefault(k, {"total_gib": 0, "volume_count": 0})
                s["total_gib"] += v["total_gib"]
                s["volume_count"] += v["volume_count"]
        for v in u["largest"]:
            largest.append(((-v["size_gib"], v["volume_id"], NAMES[acct], region),
                            (v["volume_id"], NAMES[acct], region)))
        for v in u["oldest"]:
            oldest.append(((when(v["create_time"]), v["volume_id"], NAMES[acct], region),
                           (v["volume_id"], NAMES[acct], region)))
    out["largest"] = [x[1] for x in sorted(largest)[:limit]]
    out["oldest"] = [x[1] for x in sorted(oldest)[:limit]]
    return out


def when(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def check_unattached(sim, doc, pairs, limit):
    schema.validate(doc, "VolumesUnattached")
    want = merged_unattached(sim, pairs, limit)
    for k in ("total_gib", "volume_count", "by_type", "by_availability_zone"):
        assert doc[k] == want[k], (k, doc[k], want[k])
    assert doc["limit"] == limit
    for k in ("largest", "oldest"):
        assert [(v["volume_id"], v["account"], v["region"]) for v in doc[k]] == want[k], k
    ok = sorted((t["account_id"], t["region"]) for t in doc["targets"] if "error" not in t)
    assert ok == sorted(pairs), ok
    for t in doc["targets"]:
        if "error" not in t:
            u = truth(sim, t["account_id"], t["region"])["unattached"]
            assert (t["total_gib"], t["volume_count"]) == (u["total_gib"], u["volume_count"])


def test_unattached_aggregates_equal_the_merged_truths():
    with started() as (sim, e):
        st, doc, _ = get(e, "/volumes/unattached", account="all", region="all")
        assert st == 200, doc
        assert doc["complete"] is True and len(doc["targets"]) == 9
        assert doc["account"] == "all" and doc["region"] == "all"
        check_unattached(sim, doc, ALL_PAIRS, 10)
        st, doc, _ = get(e, "/volumes/unattached", account="all", region="all", limit="3")
        assert st == 200 and len(doc["largest"]) == 3, doc
        check_unattached(sim, doc, ALL_PAIRS, 3)
        st, doc, _ = get(e, "/volumes/unattached", region="all", limit="25")
        assert st == 200, doc
        check_unattached(sim, doc, [(HOME, r) for r in REGIONS], 25)
        # a second ask: every target from the per-target cache
        st, doc, _ = get(e, "/volumes/unattached", account="all", region="all", limit="3")
        assert st == 200 and all(t["source"]["cache"] == "hit" for t in doc["targets"]), doc
        # aggregates stay for totals and unattached volumes
        st, doc, _ = get(e, "/instances/i-0123456789abcdef0/volumes", region="all")
        assert st == 400 and doc["error"]["code"] == "InvalidParameter", doc


def per_target(m, name):
    """{"account_id/region": summed value} of the samples of name in metrics text m."""
    got = {}
    for acct, region, v in re.findall(r'^%s\{account="([^"]+)",region="([^"]+)"[^}]*\} (\S+)$'
                                       % name, m, re.M):
        key = "%s/%s" % (ACCOUNT_IDS[acct], region)
        got[key] = got.get(key, 0) + float(v)
    return got


def test_ec2_calls_are_counted_per_target():
    with started(extra="refresh:\n  interval_s: 0\n") as (sim, e):
        # dev in eu-west-1: one call throttled, the next a 500, each retried
        sim.faults(account=DEV, region="eu-west-1", next=["throttle", "500"])
        st, doc, _ = get(e, "/volumes/total", account="all", region="all")
        assert st == 200 and doc["complete"] is True
        st, doc, _ = get(e, "/volumes/total", account="dev", region="eu-west-1",
                         group_by="volume_type")
        assert st == 200
        m = e.get("/metrics")[2].decode()
        got = per_target(m, "ebsd_ec2_calls_total")
        served = sim.stats()["targets"]  # EC2 calls the simulator served, per target
        assert got == {k: float(v) for k, v in served.items()}, (got, served)
        assert len(got) == 9 and got["%s/eu-west-1" % DEV] > got["%s/us-east-1" % DEV]
        assert {k for k, v in per_target(m, "ebsd_ec2_throttled_total").items() if v} == \
            {"%s/eu-west-1" % DEV}, m
        retried = {k: v for k, v in per_target(m, "ebsd_ec2_retries_total").items() if v}
        assert retried == {"%s/eu-west-1" % DEV: 2.0}, retried
        assert per_target(m, "ebsd_ec2_errors_total") == {}, m  # retried, then answered
        # dev in us-east-1: every attempt a 500, so a call fails after its retries; the
        # error is counted for that target, by code, and for no other
        sim.faults(account=DEV, region="us-east-1", next=["500"] * 12)
        st, doc, _ = get(e, "/volumes/total", account="dev", region="us-east-1",
                         group_by="availability_zone")
        assert st == 502 and doc["error"]["code"] == "InternalError", doc
        m = e.get("/metrics")[2].decode()
        failed = per_target(m, "ebsd_ec2_errors_total")
        assert list(failed) == ["%s/us-east-1" % DEV] and failed["%s/us-east-1" % DEV] >= 1, m
        assert re.search(r'^ebsd_ec2_errors_total\{account="dev",region="us-east-1",'
                         r'code="InternalError"\} [1-9]', m, re.M), m


def accounts_when(e, ready, timeout=15):
    """GET /accounts once ready(by name) holds (a reload's new credentials land in a worker)."""
    until = time.monotonic() + timeout
    while True:
        st, doc, _ = get(e, "/accounts")
        assert st == 200, doc
        by = {a["name"]: a for a in doc["accounts"]}
        if ready(by):
            return by
        assert time.monotonic() < until, by
        time.sleep(0.1)


def test_reload_applies_account_changes():
    """SIGHUP re-reads `accounts:` too. An unchanged account keeps its credentials (no new
    fetch); a new one is fetched in a worker and answers once its credentials land; a
    changed one (here dev's role now in another account) is fetched anew and its cached
    answers are dropped, so the old role's data is never served under its name; a removed
    one is an InvalidAccount and leaves /accounts and the metrics. A reload the config
    refuses changes nothing."""
    with started(denied=True, extra="refresh:\n  interval_s: 0\n") as (sim, e):
        st, doc, _ = get(e, "/volumes/total", account="dev", region="eu-west-1")
        assert st == 200 and doc["account_id"] == DEV, doc
        home_before = accounts_when(e, lambda by: True)["home"]
        later = ("  - name: later\n"
                 "    role_arn: \"arn:aws:iam::%s:role/ebsd-read\"\n"
                 "    external_id: \"ext-1\"\n" % EXT)
        text = config(extra=later).replace(
            "    role_arn: \"arn:aws:iam::%s:role/ebsd-read\"\n    duration_s" % DEV,
            "    role_arn: \"arn:aws:iam::%s:role/ebsd-read\"\n    external_id: \"ext-1\"\n"
            "    duration_s" % EXT, 1)
        assert text.count(EXT) == 3, text
        _, n = e.reload(text)
        assert any("accounts reloaded: 2 kept, 1 added, 1 changed, 1 removed" in l
                   for l in e.lines[n:]), e.lines[n:]
        by = accounts_when(e, lambda by: by.get("later", {}).get("account_id") == EXT and
                           by["dev"]["account_id"] == EXT)
        assert list(by) == ["home", "dev", "ext", "later"], by
        assert by["home"] == {**home_before, "credentials": by["home"]["credentials"]}, \
            (home_before, by["home"])  # not fetched again
        assert by["later"]["credentials"]["source"] == "assume-role:later"
        for name in ("later", "dev"):
            for region in ("us-east-1", "eu-west-1"):
                # no Cache-Control: a cached answer of dev's old role would be served here
                st, doc, _ = get(e, "/volumes/total", account=name, region=region)
                assert st == 200 and doc["account_id"] == EXT, doc
                assert [doc["total_gib"], doc["instance_count"], doc["volume_count"]] == \
                    sums(sim, [(EXT, region)]), (name, region, doc)
        st, doc, _ = get(e, "/volumes/total", account="denied")
        assert st == 400 and doc["error"]["code"] == "InvalidAccount", doc
        m = e.get("/metrics")[2].decode()
        assert 'account="denied"' not in m and 'account="later"' in m
        assert TEST_SECRET_KEY not in "\n".join(e.lines)
        # a config refused as a whole (a repeated account name) changes nothing
        line, _ = e.reload(text + "  - name: later\n", until="keeping the running configuration")
        assert "later" in line, line
        st, doc, _ = get(e, "/volumes/total", account="later", region="us-east-1")
        assert st == 200 and doc["account_id"] == EXT, doc
        # fewer regions and accounts at once: what is gone is a 400, what is left answers
        e.reload("regions: [us-east-1, ap-southeast-2]\naccounts:\n  - name: home\n")
        st, doc, _ = get(e, "/volumes/total", account="home", region="eu-west-1")
        assert st == 400 and doc["error"]["code"] == "InvalidRegion", doc
        st, doc, _ = get(e, "/volumes/total", account="ext")
        assert st == 400 and doc["error"]["code"] == "InvalidAccount", doc
        st, doc, _ = get(e, "/volumes/total", account="home", region="ap-southeast-2")
        assert st == 200 and [doc["total_gib"], doc["instance_count"], doc["volume_count"]] == \
            sums(sim, [(HOME, "ap-southeast-2")]), doc


def test_replicas_that_name_another_account_share_nothing():
    """Two replicas share Redis, and both have an account `dev`, but one reaches it through a
    role in 111122223333 and the other through a role in 222233334444 (a rolling config
    change). A role's AWS account is part of the cache and flight keys, so neither is served
    what the other fetched: each answers its own account's truth, while a role-less account
    (home, the same on both) is still fetched once and shared."""
    srv = RedisServer()
    sim = start_sim()
    es = []
    try:
        redis = ("redis:\n  url: \"redis://127.0.0.1:%d\"\n  command_timeout_ms: %d\n"
                 % (srv.port, int(400 * SLOW)))
        other = config().replace(
            "    role_arn: \"arn:aws:iam::%s:role/ebsd-read\"\n    duration_s" % DEV,
            "    role_arn: \"arn:aws:iam::%s:role/ebsd-read\"\n    external_id: \"ext-1\"\n"
            "    duration_s" % EXT, 1)
        for text in (config(), other):
            es.append(Ebsd(text + redis, env=sim_env(sim, {"AWS_ENDPOINT_URL_STS": sim.url})))
        for e in es:
            until = time.monotonic() + 10 * SLOW
            while get(e, "/readyz")[1].get("redis") != "up":
                assert time.monotonic() < until, get(e, "/readyz")
                time.sleep(0.1)
        for e, acct in zip(es, (DEV, EXT)):
            st, doc, _ = get(e, "/volumes/total", account="dev", region="us-east-1")
            assert st == 200 and doc["account_id"] == acct, doc
            assert [doc["total_gib"], doc["instance_count"], doc["volume_count"]] == \
                sums(sim, [(acct, "us-east-1")]), doc
        keys = srv.cli("KEYS", "*:cache:*").split()
        assert sorted(k for k in keys if "{dev:" in k) == [
            "ebsd:{dev:us-east-1}:cache:@%s|total|-|parallel" % a for a in (DEV, EXT)], keys
        st, a, _ = get(es[0], "/volumes/total", account="home", region="us-east-1")
        st, b, _ = get(es[1], "/volumes/total", account="home", region="us-east-1")
        assert a["account_id"] == b["account_id"] == HOME and a["source"]["fetched_at"] == \
            b["source"]["fetched_at"], (a, b)  # one fetch, shared
        for e in es:
            assert e.stop() == 0, e.lines[-20:]
    finally:
        for e in es:
            e.stop()
        sim.stop()
        srv.stop()


def test_refused_role_gives_a_partial_answer():
    with started(denied=True) as (sim, e):
        st, doc, _ = get(e, "/volumes/total", account="all", region="all")
        assert st == 200, doc
        assert doc["complete"] is False
        denied = [t for t in doc["targets"] if t["account"] == "denied"]
        assert len(denied) == 2  # its own two regions
        for t in denied:
            assert t["error"]["code"] == "AccessDenied", t
            assert t["total_gib"] == 0 and "source" not in t
        ok = [(t["account_id"], t["region"]) for t in doc["targets"] if "error" not in t]
        assert len(ok) == 9
        assert [doc["total_gib"], doc["instance_count"], doc["volume_count"]] == sums(sim, ok)
        # one target of the denied account: its STS error, no EC2 call
        st, doc, _ = get(e, "/volumes/total", account="denied", region="eu-west-1")
        assert st == 502 and doc["error"]["code"] == "AccessDenied", doc
        assert "account denied" in doc["error"]["message"]
        # the breakdown and the unattached volumes: the same partial answer
        st, doc, _ = get(e, "/volumes/total", account="all", region="all",
                         group_by="instance_tag:team")
        assert st == 200 and doc["complete"] is False, doc
        assert [t["error"]["code"] for t in doc["targets"] if "error" in t] == ["AccessDenied"] * 2
        check_groups(sim, doc, ok, ["instance_tag:team"])
        assert [doc["total_gib"], doc["instance_count"], doc["volume_count"]] == sums(sim, ok)
        st, doc, _ = get(e, "/volumes/unattached", account="all", region="all")
        assert st == 200 and doc["complete"] is False, doc
        assert [t["error"]["code"] for t in doc["targets"] if "error" in t] == ["AccessDenied"] * 2
        check_unattached(sim, doc, ok, 10)
        for q in ({"group_by": "volume_type"}, {}):
            path = "/volumes/total" if q else "/volumes/unattached"
            st, doc, _ = get(e, path, account="denied", region="all", **q)
            assert st == 502 and doc["error"]["code"] == "AllTargetsFailed", doc
        # only the denied account: nobody answered
        st, doc, _ = get(e, "/volumes/total", account="denied", region="all")
        assert st == 502 and doc["error"]["code"] == "AllTargetsFailed", doc
        assert "AccessDenied" in doc["error"]["message"]


def test_hanging_region_times_out_alone():
    with started() as (sim, e):
        sim.faults(region="ap-southeast-2", p_hang=1)
        t0 = time.monotonic()
        st, doc, _ = get(e, "/volumes/total", account="all", region="all", timeout_ms="2000")
        took = time.monotonic() - t0
        assert st == 200, doc
        assert 1.9 <= took < 3.0, took
        assert doc["complete"] is False
        for t in doc["targets"]:
            if t["region"] == "ap-southeast-2":
                assert t["error"]["code"] == "TaskTimedOut", t
            else:
                assert "error" not in t, t
                assert t["total_gib"] == truth(sim, t["account_id"], t["region"])["total_gib"]
        # the other regions answer on time, with nothing hanging in them
        t0 = time.monotonic()
        st, doc, _ = get(e, "/volumes/total", account="all", region="eu-west-1",
                         timeout_ms="2000")
        assert st == 200 and doc["complete"] is True and time.monotonic() - t0 < 1.0


def test_hanging_region_serves_its_stale_answer_at_the_deadline():
    # the route's bound (2 s) ends the hanging fetches that go on for the cache, so that
    # none is left at shutdown (volumes.c does not free a running background fetch then)
    extra = ("routes:\n  volumes_total: {cache_ttl_s: 1, timeout_ms: 2000}\n"
             "cache: {stale_while_revalidate_s: 0, stale_if_error_s: 300}\n")
    with started(extra=extra) as (sim, e):
        st, doc, _ = get(e, "/volumes/total", account="all", region="all")
        assert st == 200 and doc["complete"] is True
        sim.faults(region="ap-southeast-2", p_hang=1)
        time.sleep(1.5)  # every entry is past its TTL, within stale-if-error
        t0 = time.monotonic()
        st, doc, _ = get(e, "/volumes/total", account="all", region="all", timeout_ms="1500")
        assert st == 200 and time.monotonic() - t0 < 2.5, doc
        assert doc["complete"] is False
        for t in doc["targets"]:
            tr = truth(sim, t["account_id"], t["region"])
            assert t["total_gib"] == tr["total_gib"], t
            if t["region"] == "ap-southeast-2":
                assert t["source"]["cache"] == "stale", t
                assert t["source"]["stale_reason"] == "TaskTimedOut"
                assert t["error"]["code"] == "TaskTimedOut"
            else:
                assert "error" not in t and t["source"]["cache"] == "miss", t
        assert [doc["total_gib"], doc["instance_count"], doc["volume_count"]] == sums(
            sim, [(t["account_id"], t["region"]) for t in doc["targets"]])
        time.sleep(1.5)  # past the hanging fetches' bound


def test_credentials_refresh_before_expiry_while_requests_flow():
    # STS caps the roles' credentials at 6 s: each account must refresh every ~3 s
    with started(("--sts-max-duration", "6")) as (sim, e):
        end = time.monotonic() + 14
        n = 0
        while time.monotonic() < end:
            st, _, doc = e.get("/volumes/total?account=all&region=us-east-1",
                               headers={"Cache-Control": "no-cache"})
            doc = json.loads(doc)
            assert st == 200 and doc["complete"] is True, doc
            n += 1
            time.sleep(0.3)
        assert n > 20
        for name in ("dev", "ext"):
            loads = [l for l in e.lines if "credentials of account %s loaded" % name in l]
            assert len(loads) >= 3, (name, len(loads))
        assert not any("credential refresh failed" in l for l in e.lines)


def test_accounts_endpoint():
    with started(denied=True) as (sim, e):
        st, _, doc = e.get_json("/accounts")
        assert st == 200, doc
        schema.validate(doc, "Accounts")
        by = {a["name"]: a for a in doc["accounts"]}
        assert list(by) == ["home", "dev", "ext", "denied"]
        assert by["home"]["account_id"] == HOME and "role_arn" not in by["home"]
        assert by["home"]["credentials"]["source"] == "environment"
        assert by["dev"]["account_id"] == DEV
        assert by["dev"]["credentials"]["source"] == "assume-role:dev"
        assert 800 < by["dev"]["credentials"]["expires_in_s"] <= 900
        assert by["dev"]["last_fetch"]["outcome"] == "ok"
        assert by["dev"]["regions"] == REGIONS
        d = by["denied"]
        assert d["regions"] == ["us-east-1", "eu-west-1"]
        assert d["credentials"]["ready"] is False and d["credentials"]["source"] == "none"
        assert d["last_fetch"]["outcome"] == "AccessDenied" and d["last_fetch"]["failures"] >= 1
        assert TEST_SECRET_KEY not in json.dumps(doc)
        # the same, per account, in the metrics
        m = e.get("/metrics")[2].decode()
        assert ('ebsd_account_credentials_info{account="dev",account_id="%s",'
                'source="assume-role:dev"} 1' % DEV) in m, m
        assert 'ebsd_account_credentials_info{account="denied",account_id="",source="none"} 0' in m
        assert 'ebsd_account_credentials_fetches_total{account="denied",outcome="error"} ' in m
        exp = [l for l in m.splitlines()
               if l.startswith('ebsd_account_credentials_expiry_seconds{account="ext"}')]
        assert len(exp) == 1 and 800 < float(exp[0].split()[1]) <= 900, exp
    # behind the bearer token like the data routes
    with tempfile.NamedTemporaryFile("w", suffix=".tokens", delete=False) as f:
        f.write("s3cret-token-for-accounts\n")
    sim = start_sim()
    try:
        e = Ebsd(config() + "security:\n  auth_tokens_file: %s\n" % f.name,
                 env=sim_env(sim, {"AWS_ENDPOINT_URL_STS": sim.url}))
        st, hdrs, _ = e.get("/accounts")
        assert st == 401
        st, _, doc = e.get_json("/accounts",
                                headers={"Authorization": "Bearer s3cret-token-for-accounts"})
        assert st == 200 and len(doc["accounts"]) == 3
        assert e.stop() == 0, e.lines[-20:]
    finally:
        sim.stop()
        os.unlink(f.name)


def test_refresher_and_page_cover_every_account_and_region():
    # 3 accounts x 3 regions, refreshed every 3 s: each target is fetched in its own account
    # (through its role), its storage gauges carry its account, and the page lists it
    with started(extra="refresh:\n  interval_s: 3\n") as (sim, e):
        want = {(name, region) for name in ACCOUNT_IDS for region in REGIONS}
        deadline = time.time() + 20
        while True:
            m = e.get("/metrics")[2].decode()
            aged = set(re.findall(r'^ebsd_storage_data_age_seconds\{account="([^"]+)",'
                                  r'region="([^"]+)"\} ', m, re.M))
            if aged >= want or time.time() > deadline:
                break
            time.sleep(0.5)
        assert aged == want, (sorted(want - aged), m[-1500:])
        fetched = set(sim.stats()["targets"])
        assert fetched >= {"%s/%s" % (ACCOUNT_IDS[a], r) for a, r in want}, fetched
        for name, region in want:
            t = truth(sim, ACCOUNT_IDS[name], region)
            got = re.findall(r'^ebsd_storage_attached_bytes\{account="%s",region="%s",[^}]*\} '
                             r'(\S+)$' % (name, region), m, re.M)
            assert sum(float(v) for v in got) == t["total_gib"] * 2**30, (name, region, got)
        st, _, page = e.get_json("/")  # the page's data (HTML with Accept: text/html)
        assert st == 200, page
        rows = {(t["account"], t["region"]): t for t in page["targets"]}
        assert set(rows) == want, sorted(rows)
        for (name, region), row in rows.items():
            assert row["total_gib"] == truth(sim, ACCOUNT_IDS[name], region)["total_gib"], row


def test_no_secret_in_logs_bodies_or_metrics():
    with started(denied=True) as (sim, e):
        bodies = []
        for q in ("account=all&region=all", "account=dev", "account=denied&region=all",
                  "account=all&region=all&detail=instances"):
            bodies.append(e.get("/volumes/total?" + q)[2])
        bodies.append(e.get("/metrics")[2])
        bodies.append(e.get("/readyz")[2])
        text = "\n".join(b.decode() if isinstance(b, bytes) else b for b in bodies)
        text += "\n".join(e.lines)
        assert TEST_SECRET_KEY not in text
        assert "SessionToken" not in text and "SecretAccessKey" not in text


if __name__ == "__main__":
    run(globals())
