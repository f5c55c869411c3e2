"""ec2sim's fleets for breakdowns: volume types, AZs, instance types and states, tags on
instances and volumes (some untagged, --tag-values for cardinality) and unattached volumes,
as boto3 reads them from DescribeInstances/DescribeVolumes, agree with /_sim/truth's groups
(?group_by=KEY, repeatable) and its unattached block, recomputed here from what boto3 read."""
import collections
import re

import boto3
from botocore.config import Config

from harness import Sim, TEST_ACCESS_KEY, TEST_SECRET_KEY, http_request, run

COUNTED = ("attaching", "attached", "detaching")


def client(sim, region="us-east-1"):
    return boto3.client("ec2", region_name=region, endpoint_url=sim.url,
                        aws_access_key_id=TEST_ACCESS_KEY, aws_secret_access_key=TEST_SECRET_KEY,
                        config=Config(retries={"total_max_attempts": 1}))


def read(c):
    insts = {}
    for page in c.get_paginator("describe_instances").paginate(PaginationConfig={"PageSize": 1000}):
        for r in page["Reservations"]:
            for i in r["Instances"]:
                insts[i["InstanceId"]] = i
    vols = []
    for page in c.get_paginator("describe_volumes").paginate(PaginationConfig={"PageSize": 500}):
        vols += page["Volumes"]
    return insts, vols


def tags(obj):
    return {t["Key"]: t["Value"] for t in obj.get("Tags", [])}


def value(key, v, owner):
    """A key's value for a counted volume and the instance of its first counted attachment."""
    if key == "volume_type":
        return v["VolumeType"]
    if key == "availability_zone":
        return v["AvailabilityZone"]
    if key == "instance_state":
        return owner["State"]["Name"]
    if key == "instance_type":
        return owner["InstanceType"]
    if key.startswith("instance_tag:"):
        return tags(owner).get(key[13:])
    return tags(v).get(key[11:])


def groups(insts, vols, keys):
    acc = collections.defaultdict(lambda: [0, 0, set()])
    for v in vols:
        atts = [a for a in v["Attachments"] if a["State"] in COUNTED and a["InstanceId"] in insts]
        if not atts:
            continue
        k = tuple(value(key, v, insts[atts[0]["InstanceId"]]) for key in keys)
        g = acc[k]
        g[0] += v["Size"]
        g[1] += 1
        g[2].update(a["InstanceId"] for a in atts)
    return {k: (g[0], g[1], len(g[2])) for k, g in acc.items()}


def truth_groups(sim, keys, region=None):
    q = "&".join("group_by=" + k for k in keys) + ("&region=" + region if region else "")
    doc = sim.get_json("/_sim/truth?" + q)
    assert doc["group_by"] == list(keys)
    got = {}
    for g in doc["groups"]:
        k = tuple(g["key"][key] for key in keys)
        assert k not in got
        got[k] = (g["total_gib"], g["volume_count"], g["instance_count"])
    sizes = [g["total_gib"] for g in doc["groups"]]
    assert sizes == sorted(sizes, reverse=True), "groups are sorted by size"
    assert sum(sizes) == doc["total_gib"], "the groups add up to the total"
    return got, doc


def test_groups_equal_what_boto3_reads():
    sim = Sim("--instances", "800", "--seed", "13")
    insts, vols = read(client(sim))
    for keys in (["volume_type"], ["availability_zone"], ["instance_state"], ["instance_type"],
                 ["instance_tag:team"], ["volume_tag:team"], ["volume_tag:env"],
                 ["volume_type", "instance_state"], ["instance_tag:team", "volume_type"]):
        got, _ = truth_groups(sim, keys)
        assert got == groups(insts, vols, keys), keys
    got, _ = truth_groups(sim, ["volume_type"])
    assert {k[0] for k in got} == {"gp2", "gp3", "io1", "io2", "st1", "sc1", "standard"}
    got, doc = truth_groups(sim, ["instance_state"])
    assert {"running", "stopped"} <= {k[0] for k in got}
    # every instance by state, those without volumes too
    assert doc["instance_states"] == dict(collections.Counter(i["State"]["Name"] for i in insts.values()))
    # untagged storage is a group of its own (null)
    got, _ = truth_groups(sim, ["volume_tag:team"])
    assert (None,) in got and len(got) >= 3
    got, _ = truth_groups(sim, ["instance_tag:team"])
    assert (None,) in got
    # tags on volumes as EC2 writes them, and the tag filter
    assert any(tags(v) for v in vols) and any(not tags(v) for v in vols)
    c = client(sim)
    plat = c.describe_volumes(Filters=[{"Name": "tag:team", "Values": ["platform"]}])["Volumes"]
    assert plat and len(plat) == sum(1 for v in vols if tags(v).get("team") == "platform")
    # bad keys
    for bad in ("size", "instance_tag:", "volume_type&group_by=a&group_by=b&group_by=c&group_by=d"):
        st, _, _ = http_request(sim.port, "GET", "/_sim/truth?group_by=" + bad)
        assert st == 400, bad
    sim.stop()


def test_unattached_and_xml_shapes():
    sim = Sim("--instances", "600", "--seed", "2")
    insts, vols = read(client(sim))
    free = [v for v in vols
            if not any(a["State"] in COUNTED and a["InstanceId"] in insts for a in v["Attachments"])]
    u = sim.truth()["unattached"]
    assert u["volume_count"] == len(free) > 0 and u["total_gib"] == sum(v["Size"] for v in free)
    assert {v["State"] for v in free} <= {"available", "creating"}
    by_type = collections.defaultdict(lambda: [0, 0])
    by_az = collections.defaultdict(lambda: [0, 0])
    for v in free:
        by_type[v["VolumeType"]][0] += v["Size"]
        by_type[v["VolumeType"]][1] += 1
        by_az[v["AvailabilityZone"]][0] += v["Size"]
        by_az[v["AvailabilityZone"]][1] += 1
    assert {k: [g["total_gib"], g["volume_count"]] for k, g in u["by_volume_type"].items()} == dict(by_type)
    assert {k: [g["total_gib"], g["volume_count"]] for k, g in u["by_availability_zone"].items()} == dict(by_az)
    largest = sorted(free, key=lambda v: (-v["Size"], v["VolumeId"]))[:10]
    assert [x["volume_id"] for x in u["largest"]] == [v["VolumeId"] for v in largest]
    oldest = sorted(free, key=lambda v: (v["CreateTime"], v["VolumeId"]))[:10]
    assert [x["volume_id"] for x in u["oldest"]] == [v["VolumeId"] for v in oldest]
    assert u["largest"][0]["tags"] == tags(largest[0])
    # the raw XML uses EC2's element names
    st, _, body = http_request(sim.port, "GET", "/?Action=DescribeVolumes&Version=2016-11-15&MaxResults=500",
                               headers={})
    assert st in (401, 403)  # signed only
    sim.stop()
    sim = Sim("--instances", "50", "--seed", "2", "--no-auth")
    st, _, body = http_request(sim.port, "GET", "/?Action=DescribeVolumes&Version=2016-11-15")
    assert st == 200
    for el in (b"<volumeType>", b"<availabilityZone>", b"<createTime>", b"<tagSet><item><key>team</key><value>"):
        assert el in body, el
    assert re.search(rb"<status>available</status><createTime>\d{4}-\d\d-\d\dT", body)
    st, _, body = http_request(sim.port, "GET", "/?Action=DescribeInstances&Version=2016-11-15")
    for el in (b"<instanceState><code>16</code><name>running</name></instanceState>",
               b"<instanceType>", b"<availabilityZone>", b"<tagSet><item><key>Name</key>"):
        assert el in body, el
    sim.stop()


def test_tag_cardinality_and_other_regions():
    sim = Sim("--instances", "3000", "--seed", "4", "--tag-values", "500")
    got, doc = truth_groups(sim, ["instance_tag:team"])
    values = [k[0] for k in got if k[0] is not None]
    assert all(re.fullmatch(r"team-\d{4}", v) for v in values), values[:5]
    assert 450 <= len(values) <= 500, len(values)
    assert (None,) in got
    plain = Sim("--instances", "3000", "--seed", "4")
    # the flag changes tags only: the attached totals stay the fleet's
    assert plain.truth()["total_gib"] == doc["total_gib"]
    plain.stop()
    insts, vols = read(client(sim, "eu-west-1"))
    got, _ = truth_groups(sim, ["availability_zone", "volume_tag:team"], region="eu-west-1")
    assert got == groups(insts, vols, ["availability_zone", "volume_tag:team"])
    assert {k[0] for k in got} == {"eu-west-1a", "eu-west-1b", "eu-west-1c"}
    sim.stop()


run(globals())
