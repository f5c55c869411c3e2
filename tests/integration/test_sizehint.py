"""The size hint that survives restarts (issue 19, fanout.state_file): the first listing after
a start is split as the later ones are, because the last count was kept in a small state
file; a corrupted, oversized or hostile file is ignored with a log line; a small fleet keeps
one lister. The observable is ec2sim's DescribeInstances count: unsplit, a fleet of N
instances takes ceil(N / 1000) pages one after another; split (list_partitions: 0, auto),
one call per lister, one lister per 500 instances rounded up to a power of two, at most 16."""
import json
import os
import shutil
import stat
import tempfile

from harness import SLOW, Ebsd, RedisServer, Sim, SANITIZE, run

NO_CACHE = {"Cache-Control": "no-cache"}
FLEET = 2500 if SANITIZE else 10000
TARGET = "default/us-east-1"


def unsplit_calls(n):
    return (n + 999) // 1000


def split_calls(n):
    want = (n + 499) // 500
    p = 1
    while p < want:
        p *= 2
    return min(p, 16)


def config(path, volume_shares="off"):
    # volume_shares off: the volumes by instance ids, so the listers are plan_listers' alone
    return ("fanout:\n  state_file: %s\n  list_partitions: 0\n  volume_shares: %s\n"
            "cache:\n  min_refresh_s: 0\n"
            "refresh:\n  interval_s: 0\n"
            "ec2:\n  rate_limit: 0\n" % (path, volume_shares))   # no budget: back-to-back


def share_plan(n):
    """Listers and volume shares of a fleet of n instances known only by its size (a hint):
    2.5 volumes an instance, shares of nine tenths of a 500-volume page, at most 16; the
    fewest listers whose 1,000-instance pages are no more than a share's (plan.c)."""
    vols = n * 25 // 10
    shares = min(16, -(-vols // 450))
    pages = -(-(-(-vols // shares)) // 500)
    listers = 1
    while listers < 16 and -(-n // listers) > 1000 * pages:
        listers *= 2
    return listers, shares


def first_listing(e, sim, redis=None):
    """The DescribeInstances calls of one fresh total, checked against the truth."""
    truth = sim.truth()
    sim.reset()
    st, _, doc = e.get_json("/volumes/total?timeout_ms=29000", headers=NO_CACHE)
    if st != 200:
        # what it waited on: ebsd's lines up to the REPORT (children and EC2 calls), the
        # calls ec2sim saw, and the keys in Redis (a lock left behind by another replica?)
        try:
            e.wait_line(lambda l: l.startswith("REPORT"), timeout=5)
        except AssertionError:
            pass
        keys = redis.cli("KEYS", "*") if redis else None
        raise AssertionError((st, doc, sim.stats()["calls"], keys, e.lines[-40:]))
    assert doc["total_gib"] == truth["total_gib"]
    assert doc["instance_count"] == truth["instance_count"]
    assert doc["volume_count"] == truth["volume_count"]
    return sim.stats()["calls"].get("DescribeInstances")


def logged(e, text):
    return [l for l in e.json_lines() if l.get("event") == "sizehint" and text in l.get("msg", "")]


def read_state(path):
    with open(path) as f:
        return json.load(f)


def attached(truth):
    """The volumes a listing of attached volumes pages through: every volume with an
    attachment (one attached to an instance the answer does not count too)."""
    return truth["volumes_total"] - truth["unattached_volumes"]


def check_state(path, sim):
    """The file a complete listing of sim's fleet leaves: its instances, and the attached
    volumes the listing paged through. Listed by instance ids (volume_shares: off), a
    multi-attach volume whose instances fall in two groups is listed in both, so that count
    may pass the fleet's by the few such volumes (under 1 %); listed in shares, it is exact."""
    truth = sim.truth()
    state = read_state(path)
    volumes = state.get("volumes", {}).get(TARGET)
    assert state["version"] == 1 and state["targets"] == {TARGET: truth["instance_count"]}, state
    assert set(state) == {"version", "targets", "volumes"}, state
    assert attached(truth) <= volumes <= attached(truth) * 1.01, (state, attached(truth))
    return volumes


def test_first_request_after_restart_is_split():
    d = tempfile.mkdtemp(prefix="ebsd-sizehint-")
    path = os.path.join(d, "hint.json")
    sim = Sim("--instances", str(FLEET), "--seed", "19")
    try:
        e = Ebsd(config=config(path), sim=sim)
        assert logged(e, "no fanout.state_file"), e.lines[-10:]
        # nothing known yet: one lister pages through the fleet
        assert first_listing(e, sim) == unsplit_calls(FLEET)
        assert first_listing(e, sim) == split_calls(FLEET)
        e.stop()
        st = os.stat(path)
        assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
        check_state(path, sim)
        assert not os.path.exists(path + ".tmp")

        # a new process: its first listing is split from the start
        e = Ebsd(config=config(path), sim=sim)
        assert logged(e, "read fanout.state_file"), e.lines[-10:]
        assert first_listing(e, sim) == split_calls(FLEET)
        e.stop()
    finally:
        sim.stop()
        shutil.rmtree(d)


def test_first_request_after_restart_lists_volume_shares():
    """With volume shares (auto), the hint sizes them too: the first request after a restart
    lists the volumes side by side with the instances, not by instance ids after them."""
    d = tempfile.mkdtemp(prefix="ebsd-sizehint-")
    path = os.path.join(d, "hint.json")
    sim = Sim("--instances", str(FLEET), "--seed", "19")
    try:
        e = Ebsd(config=config(path, "auto"), sim=sim)
        assert first_listing(e, sim) == unsplit_calls(FLEET)  # by ids: nothing known yet
        e.stop()
        e = Ebsd(config=config(path, "auto"), sim=sim)
        assert logged(e, "read fanout.state_file"), e.lines[-10:]
        listers, shares = share_plan(FLEET)
        sim.reset()
        st, _, doc = e.get_json("/volumes/total?timeout_ms=29000", headers=NO_CACHE)
        assert st == 200, doc
        assert doc["volume_count"] == sim.truth()["volume_count"]
        # each share listed from its first page, by the threads of the listers' workers
        assert sim.stats()["first_pages"].get("DescribeVolumes") == shares, sim.stats()
        assert doc["source"]["children"] == listers, (listers, shares, doc["source"])
        e.stop()
    finally:
        sim.stop()
        shutil.rmtree(d)


def test_volume_count_sizes_the_first_shares():
    """The file keeps the attached volumes too, so the first request after a restart has as
    many volume shares as the later ones even when a fleet has far more than the 2.5 volumes
    an instance that a count of instances alone makes ebsd assume: 400 instances with 6
    volumes each want 6 shares (2,400 / 450), the assumption 3 (1,000 / 450)."""
    d = tempfile.mkdtemp(prefix="ebsd-sizehint-")
    path = os.path.join(d, "hint.json")
    fleet = os.path.join(d, "fleet.json")
    instances = ["i-%017x" % (0x5000 + i) for i in range(400)]
    with open(fleet, "w") as f:
        json.dump({"instances": [{"id": i, "state": "running"} for i in instances],
                   "volumes": [{"size": 10 + k, "attachments": [{"instance": i}]}
                               for i in instances for k in range(6)]}, f)
    sim = Sim("--fleet", fleet)
    try:
        assert sim.truth()["volume_count"] == 2400
        e = Ebsd(config=config(path, "auto"), sim=sim)
        first_listing(e, sim)  # by instance ids: nothing known yet
        e.stop()
        assert check_state(path, sim) == 2400

        def shares(e):
            """(volume shares, DescribeVolumes calls, workers) of a fresh total"""
            sim.reset()
            st, _, doc = e.get_json("/volumes/total?timeout_ms=29000", headers=NO_CACHE)
            assert st == 200 and doc["volume_count"] == 2400, doc
            stats = sim.stats()
            return (stats["first_pages"].get("DescribeVolumes"),
                    stats["calls"].get("DescribeVolumes"), doc["source"]["children"])

        e = Ebsd(config=config(path, "auto"), sim=sim)
        first, later = shares(e), shares(e)
        e.stop()
        # one lister, carrying the 6 shares in threads of its worker
        assert first == later == (6, 6, 1), (first, later)
        # a file with the instances alone (as written before the volumes were kept): the
        # assumption sizes the first shares, and the later ones are sized by what was found
        with open(path, "w") as f:
            json.dump({"version": 1, "targets": {TARGET: 400}}, f)
        e = Ebsd(config=config(path, "auto"), sim=sim)
        assert shares(e)[0] == 3
        assert shares(e) == (6, 6, 1)
        e.stop()
    finally:
        sim.stop()
        shutil.rmtree(d)


def test_bad_files_are_ignored():
    d = tempfile.mkdtemp(prefix="ebsd-sizehint-")
    path = os.path.join(d, "hint.json")
    sim = Sim("--instances", str(FLEET), "--seed", "19")
    good = json.dumps({"version": 1, "targets": {TARGET: FLEET}})
    bad = {
        "corrupted": b"\x00garbage{{{",
        "truncated": good[:-5].encode(),
        "wrong version": json.dumps({"version": 7, "targets": {TARGET: FLEET}}).encode(),
        "oversized": (good + " " * 70000).encode(),
    }
    try:
        for why, body in bad.items():
            with open(path, "wb") as f:
                f.write(body)
            e = Ebsd(config=config(path), sim=sim)
            assert logged(e, "ignoring fanout.state_file"), (why, e.lines[-10:])
            assert first_listing(e, sim) == unsplit_calls(FLEET), why
            e.stop()
            # the listing's count replaced the bad file
            check_state(path, sim)
        # absurd counts and unknown targets are skipped, not believed
        with open(path, "w") as f:
            json.dump({"version": 1, "targets": {TARGET: -5, "default/mars-north-1": 9000,
                                                 "default/us-east-1x": "10000"}}, f)
        e = Ebsd(config=config(path), sim=sim)
        assert logged(e, "read fanout.state_file"), e.lines[-10:]
        assert first_listing(e, sim) == unsplit_calls(FLEET)
        e.stop()
        # a symlink is not followed (nor written through: the file is replaced)
        target = os.path.join(d, "elsewhere.json")
        with open(target, "w") as f:
            f.write(good)
        os.unlink(path)
        os.symlink(target, path)
        e = Ebsd(config=config(path), sim=sim)
        assert logged(e, "ignoring fanout.state_file"), e.lines[-10:]
        assert first_listing(e, sim) == unsplit_calls(FLEET)
        e.stop()
        assert not os.path.islink(path)
        with open(target) as f:
            assert f.read() == good
        # and a good file, written by hand (or by another replica's deploy), is believed
        with open(path, "w") as f:
            f.write(good)
        os.chmod(path, 0o600)
        e = Ebsd(config=config(path), sim=sim)
        assert first_listing(e, sim) == split_calls(FLEET)
        e.stop()
    finally:
        sim.stop()
        shutil.rmtree(d)


def test_small_fleet_keeps_one_lister():
    d = tempfile.mkdtemp(prefix="ebsd-sizehint-")
    path = os.path.join(d, "hint.json")
    sim = Sim("--instances", "300", "--seed", "19")
    try:
        e = Ebsd(config=config(path), sim=sim)
        assert first_listing(e, sim) == 1
        e.stop()
        check_state(path, sim)
        assert read_state(path)["targets"][TARGET] == 300
        e = Ebsd(config=config(path), sim=sim)
        assert first_listing(e, sim) == 1   # a hint below 500 instances costs no extra call
        e.stop()
    finally:
        sim.stop()
        shutil.rmtree(d)


def test_new_replica_starts_split_from_redis():
    """Without a state file, a replica shares its count in Redis (PREFIX{ACCOUNT:REGION}:hint,
    for a day), and a new replica's first listing is split from it; a malformed value there
    is ignored with a log line."""
    srv = RedisServer()
    sim = Sim("--instances", str(FLEET), "--seed", "19")
    cfg = ("fanout:\n  list_partitions: 0\n  volume_shares: \"off\"\n"
           "cache:\n  min_refresh_s: 0\n"
           "refresh:\n  interval_s: 0\nec2:\n  rate_limit: 0\n"
           "redis:\n  url: \"redis://127.0.0.1:%d\"\n  key_prefix: \"t19:\"\n"
           "  command_timeout_ms: %d\n" % (srv.port, int(400 * SLOW)))
    key = "t19:{default:us-east-1}:hint"
    try:
        a = Ebsd(config=cfg, sim=sim)
        assert first_listing(a, sim, srv) == unsplit_calls(FLEET)
        a.stop()
        # a stopped replica leaves no single-flight lock behind (b would wait on it)
        assert ":flight:" not in srv.cli("KEYS", "*"), srv.cli("KEYS", "*")
        assert srv.cli("GET", key).strip() == str(FLEET)
        volumes = int(srv.cli("GET", key + ":volumes").strip())
        assert attached(sim.truth()) <= volumes <= attached(sim.truth()) * 1.01, volumes
        for k in (key, key + ":volumes"):
            ttl = int(srv.cli("TTL", k).strip())
            assert 86000 < ttl <= 86400, (k, ttl)
        b = Ebsd(config=cfg, sim=sim)
        line = b.wait_line(lambda l: '"sizehint"' in l and "from Redis" in l,
                           timeout=10 * SLOW)
        assert "%d instances and %d attached volumes" % (FLEET, volumes) in line, line
        assert first_listing(b, sim, srv) == split_calls(FLEET)
        b.stop()
        srv.cli("SET", key, "12e9")
        c = Ebsd(config=cfg, sim=sim)
        c.wait_line(lambda l: '"sizehint"' in l and "malformed size hint" in l,
                    timeout=10 * SLOW)
        assert first_listing(c, sim, srv) == unsplit_calls(FLEET)
        c.stop()
        # a malformed volume count is ignored alone: the instances still split the listing
        srv.cli("SET", key, str(FLEET))
        srv.cli("SET", key + ":volumes", "-3")
        d = Ebsd(config=cfg, sim=sim)
        d.wait_line(lambda l: '"sizehint"' in l and "malformed volume count" in l,
                    timeout=10 * SLOW)
        assert first_listing(d, sim, srv) == split_calls(FLEET)
        d.stop()
    finally:
        sim.stop()
        srv.stop()


if __name__ == "__main__":
    run(globals())
