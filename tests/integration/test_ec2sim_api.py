"""ec2sim through real AWS clients: boto3 paginators and the AWS CLI read exactly the fleet's
truth (N = 1,000 with small and default pages, N = 12,000 with large pages), SigV4 refusals
arrive as EC2's errors, and parameter errors use EC2's codes."""
import datetime
import json
import os
import shutil
import subprocess
from unittest import mock

import boto3
import botocore
import botocore.auth
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from harness import Sim, TEST_ACCESS_KEY, TEST_SECRET_KEY, http_request, run

COUNTED = ("attaching", "attached", "detaching")


def client(sim, secret=TEST_SECRET_KEY, key=TEST_ACCESS_KEY, token=None, retries=1):
    return boto3.client("ec2", region_name="us-east-1", endpoint_url=sim.url,
                        aws_access_key_id=key, aws_secret_access_key=secret,
                        aws_session_token=token,
                        config=Config(retries={"total_max_attempts": retries, "mode": "standard"}))


def read_all(c, page_size=None):
    """(instances by id, volumes) through the paginators."""
    cfg = {"PageSize": page_size} if page_size else {}
    insts = {}
    pages = 0
    for page in c.get_paginator("describe_instances").paginate(PaginationConfig=cfg):
        pages += 1
        for r in page["Reservations"]:
            for i in r["Instances"]:
                assert i["InstanceId"] not in insts, "instance seen twice"
                insts[i["InstanceId"]] = i
    vcfg = {"PageSize": min(page_size, 500)} if page_size else {}
    vols = []
    for page in c.get_paginator("describe_volumes").paginate(PaginationConfig=vcfg):
        pages += 1
        vols += page["Volumes"]
    assert len({v["VolumeId"] for v in vols}) == len(vols), "volume seen twice"
    return insts, vols, pages


def totals(insts, vols):
    """ebsd's counting rule, applied to what the client read."""
    total = 0
    per = {i: 0 for i in insts}
    nvol = 0
    for v in vols:
        atts = [a for a in v["Attachments"] if a["State"] in COUNTED and a["InstanceId"] in insts]
        if atts:
            total += v["Size"]
            nvol += 1
        for a in atts:
            per[a["InstanceId"]] += v["Size"]
    return total, per, nvol


def check_truth(sim, insts, vols):
    truth = sim.truth()
    total, per, nvol = totals(insts, vols)
    assert len(insts) == truth["instance_count"], (len(insts), truth["instance_count"])
    assert total == truth["total_gib"], (total, truth["total_gib"])
    assert nvol == truth["volume_count"]
    assert per == truth["instances"]
    assert len(vols) == truth["volumes_total"]


def test_boto3_small_and_default_pages_1000():
    sim = Sim("--instances", "1000", "--seed", "11")
    c = client(sim)
    for size in (5, 37, None):
        insts, vols, pages = read_all(c, size)
        check_truth(sim, insts, vols)
        if size == 5:
            assert pages > 200 + 400, pages
        if size is None:
            assert pages == 2, pages
    # the shapes ebsd and boto3 rely on
    some = next(i for i in insts.values() if i["State"]["Name"] == "running" and i["BlockDeviceMappings"])
    assert some["State"]["Code"] == 16
    assert some["BlockDeviceMappings"][0]["Ebs"]["VolumeId"].startswith("vol-")
    assert some["Placement"]["AvailabilityZone"].startswith("us-east-1")
    assert isinstance(some["LaunchTime"], datetime.datetime)
    states = {i["State"]["Name"] for i in insts.values()}
    assert {"pending", "running", "stopping", "stopped", "terminated"} <= states, states
    assert all(not i["BlockDeviceMappings"] for i in insts.values() if i["State"]["Name"] == "terminated")
    assert any(len(v["Attachments"]) == 2 and v["MultiAttachEnabled"] for v in vols)
    assert any(not v["Attachments"] for v in vols)
    assert any(a["State"] == "detaching" for v in vols for a in v["Attachments"])
    gp3 = next(v for v in vols if v["VolumeType"] == "gp3")
    assert gp3["Iops"] >= 3000 and gp3["Throughput"] >= 125 and "Encrypted" in gp3
    stats = sim.stats()
    assert stats["calls"]["DescribeInstances"] >= 200 and stats["calls"]["DescribeVolumes"] >= 400
    # a listing counts one first page (no NextToken), whatever its pages: three of each
    assert stats["first_pages"] == {"DescribeInstances": 3, "DescribeVolumes": 3}, stats
    sim.stop()


def test_boto3_12000_large_pages():
    sim = Sim("--instances", "12000", "--seed", "3")
    c = client(sim)
    insts, vols, pages = read_all(c, 1000)
    check_truth(sim, insts, vols)
    assert pages >= 12 + 50, pages
    truth = sim.truth()
    assert truth["instance_count"] == 12000
    sim.stop()


def test_aws_cli_agrees():
    aws = "/usr/bin/aws" if os.path.exists("/usr/bin/aws") else shutil.which("aws")
    assert aws, "the AWS CLI is needed (Debian package awscli)"
    sim = Sim("--instances", "300", "--seed", "5")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=TEST_ACCESS_KEY, AWS_SECRET_ACCESS_KEY=TEST_SECRET_KEY,
               AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true",
               AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null",
               AWS_PAGER="")
    def cli(*args):
        out = subprocess.run([aws, "ec2"] + list(args) + ["--endpoint-url", sim.url, "--output", "json"],
                             env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)
    vols = cli("describe-volumes", "--page-size", "50")["Volumes"]
    insts = {i["InstanceId"]: i for r in cli("describe-instances", "--page-size", "100")["Reservations"]
             for i in r["Instances"]}
    check_truth(sim, insts, vols)
    # a filter through the CLI
    inuse = cli("describe-volumes", "--filters", "Name=status,Values=in-use")["Volumes"]
    assert inuse and all(v["State"] == "in-use" for v in inuse)
    assert len(inuse) == sum(1 for v in vols if v["State"] == "in-use")
    sim.stop()


def expect_error(fn, code, status=None):
    try:
        fn()
    except botocore.exceptions.ClientError as e:
        got = e.response["Error"]["Code"]
        assert got == code, (got, code, e.response["Error"])
        if status:
            assert e.response["ResponseMetadata"]["HTTPStatusCode"] == status, e.response
        assert e.response["ResponseMetadata"]["RequestId"]
        return e.response["Error"]["Message"]
    raise AssertionError("expected %s" % code)


def test_sigv4_refusals():
    sim = Sim("--instances", "20", "--credentials", "AKIDOTHER:othersecret")
    expect_error(lambda: client(sim, secret="wrong").describe_instances(), "SignatureDoesNotMatch", 403)
    expect_error(lambda: client(sim, key="AKIDNOBODY").describe_volumes(), "AuthFailure", 401)
    # configured extra credentials and session tokens are accepted
    assert client(sim, key="AKIDOTHER", secret="othersecret").describe_volumes(MaxResults=5)["Volumes"]
    assert client(sim, token="FQoGZXIvYXdzE//token+=").describe_instances(MaxResults=5)["Reservations"]
    # unsigned
    st, _, body = http_request(sim.port, "POST", "/", body=b"Action=DescribeInstances&Version=2016-11-15",
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert st in (400, 401, 403) and b"<Code>MissingAuthenticationToken</Code>" in body, (st, body)
    # signed 10 minutes ago: RequestExpired
    body = "Action=DescribeVolumes&Version=2016-11-15"
    req = AWSRequest(method="POST", url=sim.url + "/", data=body,
                     headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    auth = SigV4Auth(Credentials(TEST_ACCESS_KEY, TEST_SECRET_KEY), "ec2", "us-east-1")
    class TenMinutesAgo(datetime.datetime):
        @classmethod
        def utcnow(cls):
            return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - datetime.timedelta(minutes=10)
    with mock.patch.object(botocore.auth.datetime, "datetime", TenMinutesAgo):
        auth.add_auth(req)
    hdrs = dict(req.headers.items())
    st, _, data = http_request(sim.port, "POST", "/", body=body.encode(), headers=hdrs)
    assert b"<Code>RequestExpired</Code>" in data, (st, data[:300])
    assert st == 400
    # the same request signed now is fine (sanity check of the hand-signed path)
    req = AWSRequest(method="POST", url=sim.url + "/", data=body,
                     headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    auth.add_auth(req)
    st, _, data = http_request(sim.port, "POST", "/", body=body.encode(), headers=dict(req.headers.items()))
    assert st == 200 and b"<DescribeVolumesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">" in data, data[:300]
    stats = sim.stats()
    assert stats["errors"]["SignatureDoesNotMatch"] == 1 and stats["errors"]["RequestExpired"] == 1
    sim.stop()


def test_get_query_string_and_xml_shape():
    sim = Sim("--instances", "30", "--no-auth")
    st, hdrs, data = http_request(sim.port, "GET", "/?Action=DescribeVolumes&Version=2016-11-15&MaxResults=5")
    assert st == 200, data
    assert hdrs["content-type"] == "text/xml;charset=UTF-8"
    assert b"<requestId>" in data and b"<nextToken>" in data and data.count(b"<volumeId>") >= 5
    st, _, data = http_request(sim.port, "GET", "/?Action=RunInstances&Version=2016-11-15")
    assert st == 400 and b"<Code>InvalidAction</Code>" in data and b"<RequestID>" in data
    sim.stop()


def test_rendered_records_are_the_same_every_time():
    """Each record's XML is written once and kept (fleet.h): pages fetched by threads racing to
    render the same records on a fresh simulator, and again later from what they kept, are
    byte for byte the same but for the request id, and a page filtered down to some records
    holds exactly their bytes from the full page."""
    import re
    import threading
    sim = Sim("--instances", "300", "--seed", "5", "--no-auth")
    paths = {"i": "/?Action=DescribeInstances&Version=2016-11-15&MaxResults=1000",
             "v": "/?Action=DescribeVolumes&Version=2016-11-15&MaxResults=500"}
    got = {k: [] for k in paths}
    lock = threading.Lock()

    def fetch(k):
        st, _, data = http_request(sim.port, "GET", paths[k])
        assert st == 200, data[:300]
        with lock:
            got[k].append(re.sub(rb"<requestId>[^<]*</requestId>", b"", data))

    threads = [threading.Thread(target=fetch, args=(k,)) for _ in range(6) for k in paths]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in paths:
        fetch(k)
    for k in paths:
        assert len(got[k]) == 7 and len(set(got[k])) == 1, k
    assert got["i"][0].count(b"<instanceId>") >= 300
    assert got["v"][0].count(b"<size>") == 500
    items = re.findall(rb"<item><volumeId>.*?<multiAttachEnabled>\w+</multiAttachEnabled></item>",
                       got["v"][0])
    assert len(items) == 500
    vid = re.search(rb"<volumeId>([^<]+)</volumeId>", items[7]).group(1).decode()
    st, _, data = http_request(sim.port, "GET", paths["v"] + "&Filter.1.Name=volume-id&Filter.1.Value.1=" + vid)
    assert st == 200 and items[7] in data and data.count(b"<size>") == 1, data[:500]
    sim.stop()


def test_parameter_errors():
    sim = Sim("--instances", "50", "--seed", "9")
    c = client(sim)
    truth = sim.truth()
    some = sorted(truth["instances"])[:2]
    msg = expect_error(lambda: c.describe_instances(InstanceIds=["i-0123456789abcdef0"]),
                       "InvalidInstanceID.NotFound", 400)
    assert msg == "The instance ID 'i-0123456789abcdef0' does not exist", msg
    expect_error(lambda: c.describe_instances(InstanceIds=["bogus"]), "InvalidInstanceID.Malformed", 400)
    expect_error(lambda: c.describe_instances(InstanceIds=some, MaxResults=5), "InvalidParameterCombination", 400)
    expect_error(lambda: c.describe_instances(MaxResults=4), "InvalidParameterValue", 400)
    expect_error(lambda: c.describe_instances(MaxResults=1001), "InvalidParameterValue", 400)
    expect_error(lambda: c.describe_volumes(MaxResults=2), "InvalidParameterValue", 400)
    expect_error(lambda: c.describe_instances(MaxResults=5, NextToken="AAAAtampered/token=="), "InvalidParameterValue", 400)
    # a genuine token edited by one character is refused
    tok = c.describe_volumes(MaxResults=5)["NextToken"]
    bad = ("B" if tok[0] != "B" else "C") + tok[1:]
    expect_error(lambda: c.describe_volumes(MaxResults=5, NextToken=bad), "InvalidParameterValue", 400)
    # a volume token does not work for instances, nor with other filters
    expect_error(lambda: c.describe_instances(MaxResults=5, NextToken=tok), "InvalidParameterValue", 400)
    expect_error(lambda: c.describe_volumes(MaxResults=5, NextToken=tok,
                                            Filters=[{"Name": "status", "Values": ["in-use"]}]),
                 "InvalidParameterValue", 400)
    expect_error(lambda: c.describe_volumes(Filters=[{"Name": "no-such-filter", "Values": ["x"]}]),
                 "InvalidParameterValue", 400)
    # MaxResults over 500 on volumes is served as 500
    vols = c.describe_volumes(MaxResults=1000)["Volumes"]
    assert len(vols) == min(500, truth["volumes_total"])
    # ids and filters
    r = c.describe_instances(InstanceIds=some)
    got = sorted(i["InstanceId"] for res in r["Reservations"] for i in res["Instances"])
    assert got == some
    r = c.describe_instances(Filters=[{"Name": "instance-id", "Values": some}])
    assert sorted(i["InstanceId"] for res in r["Reservations"] for i in res["Instances"]) == some
    r = c.describe_instances(Filters=[{"Name": "instance-state-name", "Values": ["stopped", "terminated"]}])
    states = {i["State"]["Name"] for res in r["Reservations"] for i in res["Instances"]}
    assert states and states <= {"stopped", "terminated"}
    inst = next(i for i, g in truth["instances"].items() if g > 0)
    vols = c.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [inst]},
                                       {"Name": "attachment.status", "Values": list(COUNTED)}])["Volumes"]
    assert sum(v["Size"] for v in vols) == truth["instances"][inst]
    vid = vols[0]["VolumeId"]
    assert c.describe_volumes(VolumeIds=[vid])["Volumes"][0]["VolumeId"] == vid
    assert c.describe_volumes(Filters=[{"Name": "volume-id", "Values": [vid]}])["Volumes"][0]["VolumeId"] == vid
    expect_error(lambda: c.describe_volumes(VolumeIds=["vol-0123456789abcdef0"]), "InvalidVolume.NotFound", 400)
    # wildcards on volume ids, as ebsd's volume shares send them: "*a" ends in a (the suffix
    # fast path), "*a?" and "vol-*" take the general matcher; shares are disjoint and cover
    every = {v["VolumeId"] for v in c.get_paginator("describe_volumes").paginate().build_full_result()["Volumes"]}
    assert len(every) == truth["volumes_total"]

    def ids(*values):
        pages = c.get_paginator("describe_volumes").paginate(
            Filters=[{"Name": "volume-id", "Values": list(values)}])
        return {v["VolumeId"] for v in pages.build_full_result()["Volumes"]}
    shares = [ids("*%x" % d) for d in range(16)]
    assert all(v.endswith("%x" % d) for d, share in enumerate(shares) for v in share)
    assert sum(len(x) for x in shares) == len(every) and set().union(*shares) == every
    assert ids("*a?") == {v for v in every if v[-2] == "a"}
    assert ids("vol-*") == every and ids("*") == every
    assert ids("*" + vid[-5:]) == {v for v in every if v.endswith(vid[-5:])}
    sim.stop()


def test_multi_attach_up_to_16():
    """--multi-attach-max 16: io1/io2 volumes attached to up to 16 instances of one AZ, as EC2
    allows; boto3 reads them and the truth counts each once, and once per instance. Without the flag the fleet is the same as before (2 at most)."""
    sim = Sim("--instances", "600", "--seed", "4", "--multi-attach-max", "16")
    insts, vols, _ = read_all(client(sim), 200)
    check_truth(sim, insts, vols)
    shared = [v for v in vols if len(v["Attachments"]) > 2]
    assert shared and max(len(v["Attachments"]) for v in shared) == 16, [len(v["Attachments"]) for v in shared]
    for v in shared:
        assert v["MultiAttachEnabled"] and v["VolumeType"] in ("io1", "io2"), v
        ids = [a["InstanceId"] for a in v["Attachments"]]
        assert len(set(ids)) == len(ids)
        assert {insts[i]["Placement"]["AvailabilityZone"] for i in ids} == {v["AvailabilityZone"]}
    sim.stop()
    # the default fleet of the same seed is the old one: at most 2 attachments
    plain = Sim("--instances", "600", "--seed", "4")
    _, pvols, _ = read_all(client(plain), 500)
    assert max(len(v["Attachments"]) for v in pvols) == 2
    plain.stop()
    for bad in ("1", "17", "x"):
        r = subprocess.run([os.environ.get("EC2SIM_BIN", "build/tools/ec2sim/ec2sim"),
                            "--multi-attach-max", bad], capture_output=True, text=True, timeout=10)
        assert r.returncode == 2 and "--multi-attach-max" in r.stderr, (bad, r.stderr)


run(globals())
