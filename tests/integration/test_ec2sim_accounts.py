"""ec2sim with many accounts and regions, through botocore-signed requests: a fleet per
(account, region) chosen by the access key and the SigV4 scope, /_sim/truth per account and
region, the STS endpoint (AssumeRole with ExternalId checks, refused roles, DurationSeconds
and the cap, expiry, session tokens checked by EC2, GetCallerIdentity, the web identity
flavour) and faults scoped to one region."""
import datetime
import time
import urllib.parse

import boto3
import botocore
from botocore.config import Config

import os
import tempfile

from harness import Ebsd, Sim, TEST_ACCESS_KEY, TEST_SECRET_KEY, http_request, run, sim_env

COUNTED = ("attaching", "attached", "detaching")
HOME = "123456789012"
CFG = Config(retries={"total_max_attempts": 1, "mode": "standard"})


def ec2(sim, region="us-east-1", key=TEST_ACCESS_KEY, secret=TEST_SECRET_KEY, token=None,
        config=CFG):
    return boto3.client("ec2", region_name=region, endpoint_url=sim.url, aws_access_key_id=key,
                        aws_secret_access_key=secret, aws_session_token=token, config=config)


def sts(sim, region="us-east-1", key=TEST_ACCESS_KEY, secret=TEST_SECRET_KEY, token=None,
        validate=True):
    """An STS client; validate=False lets bad parameters through to the simulator."""
    cfg = CFG if validate else CFG.merge(Config(parameter_validation=False))
    return boto3.client("sts", region_name=region, endpoint_url=sim.url, aws_access_key_id=key,
                        aws_secret_access_key=secret, aws_session_token=token, config=cfg)


def read_totals(c):
    """(instance count, total GiB, volume count, owner ids, AZs) by ebsd's rule."""
    insts, owners, azs = set(), set(), set()
    for page in c.get_paginator("describe_instances").paginate(PaginationConfig={"PageSize": 1000}):
        for r in page["Reservations"]:
            owners.add(r["OwnerId"])
            for i in r["Instances"]:
                insts.add(i["InstanceId"])
                azs.add(i["Placement"]["AvailabilityZone"])
    total = nvol = 0
    for page in c.get_paginator("describe_volumes").paginate(PaginationConfig={"PageSize": 500}):
        for v in page["Volumes"]:
            if any(a["State"] in COUNTED and a["InstanceId"] in insts for a in v["Attachments"]):
                total += v["Size"]
                nvol += 1
    return len(insts), total, nvol, owners, azs


def truth(sim, account=None, region=None):
    q = {k: v for k, v in (("account", account), ("region", region)) if v}
    return sim.get_json("/_sim/truth" + ("?" + urllib.parse.urlencode(q) if q else ""))


def expect(fn, code, status):
    try:
        fn()
    except botocore.exceptions.ClientError as e:
        err = e.response["Error"]
        assert err["Code"] == code, (err, code)
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == status, e.response
        return err["Message"]
    raise AssertionError("expected " + code)


def test_fleet_per_account_and_region():
    sim = Sim("--instances", "200", "--seed", "9",
              "--credentials", "AKIDPROD111122223333:prodsecret",
              "--credentials", "AKIDMAPPED:mappedsecret:444455556666")
    default = sim.truth()
    assert default == truth(sim, HOME, "us-east-1"), "no params = the home account and region"
    assert default["account_id"] == HOME and default["region"] == "us-east-1"
    seen = {}
    for key, secret, account in ((TEST_ACCESS_KEY, TEST_SECRET_KEY, HOME),
                                 ("AKIDPROD111122223333", "prodsecret", "111122223333"),
                                 ("AKIDMAPPED", "mappedsecret", "444455556666")):
        for region in ("us-east-1", "eu-west-1", "ap-southeast-2"):
            n, total, nvol, owners, azs = read_totals(ec2(sim, region, key, secret))
            t = truth(sim, account, region)
            assert (n, total, nvol) == (t["instance_count"], t["total_gib"], t["volume_count"]), \
                (account, region, n, total, nvol, t["total_gib"])
            assert t["account_id"] == account and t["region"] == region
            assert owners == {account}, owners
            assert all(z.startswith(region) and len(z) == len(region) + 1 for z in azs), azs
            seen[(account, region)] = total
    # every (account, region) is a fleet of its own, the same on every run
    assert len(set(seen.values())) == len(seen), seen
    stats = sim.stats()
    assert stats["targets"]["111122223333/eu-west-1"] >= 2, stats["targets"]
    assert sim.get_json("/_sim/fleet?account=444455556666&region=eu-west-1")["region"] == "eu-west-1"
    acc = sim.get_json("/_sim/accounts")
    assert acc["home_account"] == HOME and acc["home_region"] == "us-east-1"
    built = {(x["account"], x["region"]): x["total_gib"] for x in acc["fleets"]}
    assert all(built[k] == v for k, v in seen.items()) and len(built) == 9, built
    sim.stop()
    again = Sim("--instances", "200", "--seed", "9")
    assert truth(again, "111122223333", "eu-west-1")["total_gib"] == seen[("111122223333", "eu-west-1")]
    assert again.truth()["total_gib"] == default["total_gib"]
    st, _, body = http_request(again.port, "GET", "/_sim/truth?account=12345")
    assert st == 400, body
    st, _, body = http_request(again.port, "GET", "/_sim/truth?region=EU_WEST")
    assert st == 400, body
    again.stop()


def test_regions_flag_refuses_other_regions():
    sim = Sim("--instances", "20", "--regions", "us-east-1,eu-west-1")
    assert ec2(sim, "eu-west-1").describe_volumes(MaxResults=5)["Volumes"]
    expect(lambda: ec2(sim, "us-west-2").describe_volumes(MaxResults=5), "AuthFailure", 401)
    st, _, _ = http_request(sim.port, "GET", "/_sim/truth?region=us-west-2")
    assert st == 400
    # STS answers in any region (its global endpoint signs for us-east-1 anyway)
    assert sts(sim, "us-west-2").get_caller_identity()["Account"] == HOME
    sim.stop()


def test_assume_role_and_use_the_credentials():
    role = "arn:aws:iam::111122223333:role/ebsd-read"
    sim = Sim("--instances", "100", "--seed", "5")
    c = sts(sim, "eu-west-1")
    before = datetime.datetime.now(datetime.timezone.utc)
    r = c.assume_role(RoleArn=role, RoleSessionName="ebsd-test", DurationSeconds=900)
    cr = r["Credentials"]
    assert cr["AccessKeyId"].startswith("ASIA") and len(cr["AccessKeyId"]) == 20
    assert len(cr["SecretAccessKey"]) == 40 and len(cr["SessionToken"]) > 100
    left = (cr["Expiration"] - before).total_seconds()
    assert 895 <= left <= 905, left
    assert r["AssumedRoleUser"]["Arn"] == "arn:aws:sts::111122223333:assumed-role/ebsd-read/ebsd-test"
    assert r["AssumedRoleUser"]["AssumedRoleId"].startswith("AROA")
    assert r["AssumedRoleUser"]["AssumedRoleId"].endswith(":ebsd-test")
    # default duration: one hour
    r2 = c.assume_role(RoleArn=role, RoleSessionName="s2")
    assert 3590 <= (r2["Credentials"]["Expiration"] - before).total_seconds() <= 3610
    # the temporary credentials read the role's account, in the region they sign for
    tmp = dict(key=cr["AccessKeyId"], secret=cr["SecretAccessKey"], token=cr["SessionToken"])
    n, total, nvol, owners, _ = read_totals(ec2(sim, "eu-west-1", **tmp))
    t = truth(sim, "111122223333", "eu-west-1")
    assert (n, total, nvol) == (t["instance_count"], t["total_gib"], t["volume_count"])
    assert owners == {"111122223333"}
    ident = sts(sim, **tmp).get_caller_identity()
    assert ident["Account"] == "111122223333" and ident["Arn"] == r["AssumedRoleUser"]["Arn"]
    assert ident["UserId"] == r["AssumedRoleUser"]["AssumedRoleId"]
    base = sts(sim).get_caller_identity()
    assert base["Account"] == HOME and base["Arn"] == "arn:aws:iam::%s:user/ec2sim" % HOME
    # the session token is checked: missing or another one is refused
    expect(lambda: ec2(sim, "eu-west-1", key=tmp["key"], secret=tmp["secret"]).describe_volumes(MaxResults=5),
           "AuthFailure", 401)
    expect(lambda: ec2(sim, "eu-west-1", key=tmp["key"], secret=tmp["secret"],
                       token=r2["Credentials"]["SessionToken"]).describe_volumes(MaxResults=5),
           "AuthFailure", 401)
    expect(lambda: ec2(sim, "eu-west-1", key=tmp["key"], secret="wrong", token=tmp["token"]).describe_volumes(MaxResults=5),
           "SignatureDoesNotMatch", 403)
    # no secret in the control endpoint
    doc = sim.get_json("/_sim/sts")
    assert doc["sessions_issued"] == 2 and doc["sessions_live"] == 2
    assert cr["SecretAccessKey"] not in str(doc) and cr["SessionToken"] not in str(doc)
    # expired on demand: EC2 says RequestExpired, STS says ExpiredToken
    sim.post_json("/_sim/sts", {"expire_sessions": True})
    expect(lambda: ec2(sim, "eu-west-1", **tmp).describe_volumes(MaxResults=5), "RequestExpired", 400)
    expect(lambda: sts(sim, **tmp).get_caller_identity(), "ExpiredToken", 400)
    assert sim.get_json("/_sim/sts")["sessions_live"] == 0
    sim.stop()


def test_assume_role_refusals_and_validation():
    role = "arn:aws:iam::222233334444:role/needs-ext"
    sim = Sim("--instances", "20", "--role-external-id", role + "=ext-123",
              "--deny-role", "arn:aws:iam::555566667777:role/blocked")
    c = sts(sim)
    m = expect(lambda: c.assume_role(RoleArn=role, RoleSessionName="s1"), "AccessDenied", 403)
    assert "is not authorized to perform: sts:AssumeRole on resource: " + role in m, m
    assert "arn:aws:iam::%s:user/ec2sim" % HOME in m
    expect(lambda: c.assume_role(RoleArn=role, RoleSessionName="s1", ExternalId="wrong"), "AccessDenied", 403)
    assert c.assume_role(RoleArn=role, RoleSessionName="s1", ExternalId="ext-123")["Credentials"]
    expect(lambda: c.assume_role(RoleArn="arn:aws:iam::555566667777:role/blocked", RoleSessionName="s1"),
           "AccessDenied", 403)
    # other roles of that account are fine until the whole account is refused at runtime
    assert c.assume_role(RoleArn="arn:aws:iam::555566667777:role/other", RoleSessionName="s1")
    sim.post_json("/_sim/sts", {"deny": ["555566667777"]})
    expect(lambda: c.assume_role(RoleArn="arn:aws:iam::555566667777:role/other", RoleSessionName="s1"),
           "AccessDenied", 403)
    sim.post_json("/_sim/sts", {"allow": ["555566667777", "arn:aws:iam::555566667777:role/blocked"]})
    assert c.assume_role(RoleArn="arn:aws:iam::555566667777:role/blocked", RoleSessionName="s1")
    # parameters are validated as STS does (botocore's own checks off, to reach it)
    c = sts(sim, validate=False)
    expect(lambda: c.assume_role(RoleArn="arn:aws:iam::5555:role/x", RoleSessionName="s1"), "ValidationError", 400)
    expect(lambda: c.assume_role(RoleArn=role, RoleSessionName="s1", DurationSeconds=899,
                                 ExternalId="ext-123"), "ValidationError", 400)
    expect(lambda: c.assume_role(RoleArn=role, RoleSessionName="bad name!", ExternalId="ext-123"),
           "ValidationError", 400)
    # signature failures use STS's codes
    expect(lambda: sts(sim, secret="wrong").get_caller_identity(), "SignatureDoesNotMatch", 403)
    expect(lambda: sts(sim, key="AKIDNOBODY").get_caller_identity(), "InvalidClientTokenId", 403)
    st, _, body = http_request(sim.port, "POST", "/",
                               body=b"Action=GetCallerIdentity&Version=2011-06-15",
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert st == 403 and b"<Code>MissingAuthenticationToken</Code>" in body, (st, body)
    assert b"<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">" in body, body
    st, _, _ = http_request(sim.port, "POST", "/_sim/sts", body=b'{"max_duration_s": -1}')
    assert st == 400
    assert sim.stats()["calls"]["AssumeRole"] >= 9
    sim.stop()


def test_duration_cap_and_web_identity():
    sim = Sim("--instances", "20", "--sts-max-duration", "30")
    before = datetime.datetime.now(datetime.timezone.utc)
    cr = sts(sim).assume_role(RoleArn="arn:aws:iam::111122223333:role/r", RoleSessionName="s1",
                              DurationSeconds=3600)["Credentials"]
    left = (cr["Expiration"] - before).total_seconds()
    assert 25 <= left <= 35, left
    sim.post_json("/_sim/sts", {"max_duration_s": 0})
    cr = sts(sim).assume_role(RoleArn="arn:aws:iam::111122223333:role/r", RoleSessionName="s1",
                              DurationSeconds=1800)["Credentials"]
    assert 1790 <= (cr["Expiration"] - before).total_seconds() <= 1810
    # AssumeRoleWithWebIdentity is unsigned and gives the role's account as well
    anon = boto3.client("sts", region_name="us-east-1", endpoint_url=sim.url,
                        config=Config(signature_version=botocore.UNSIGNED, retries={"total_max_attempts": 1}))
    r = anon.assume_role_with_web_identity(RoleArn="arn:aws:iam::666677778888:role/web",
                                           RoleSessionName="pod", WebIdentityToken="eyJhbGciOi.x.y")
    c = r["Credentials"]
    ident = sts(sim, key=c["AccessKeyId"], secret=c["SecretAccessKey"], token=c["SessionToken"]).get_caller_identity()
    assert ident["Account"] == "666677778888"
    sim.stop()


def test_fault_scoped_to_one_region_hangs_only_there():
    sim = Sim("--instances", "30", "--hang-max-ms", "5000", "--credentials", "AKIDX111122223333:xsecret")
    doc = sim.faults(region="eu-west-1", p_hang=1.0)
    assert doc["scopes"] == [dict(doc["scopes"][0], account="", region="eu-west-1", p_hang=1.0)]
    fast = Config(retries={"total_max_attempts": 1}, read_timeout=1, connect_timeout=1)
    t0 = time.monotonic()
    try:
        ec2(sim, "eu-west-1", config=fast).describe_volumes(MaxResults=5)
        raise AssertionError("eu-west-1 should hang")
    except botocore.exceptions.ReadTimeoutError:
        pass
    assert 0.9 <= time.monotonic() - t0 < 3
    for region in ("us-east-1", "us-west-2"):
        assert ec2(sim, region, config=fast).describe_volumes(MaxResults=5)["Volumes"]
    # one account's region not enabled: AuthFailure there only, at once
    sim.faults(account="111122223333", region="us-west-2", region_disabled=True)
    other = dict(key="AKIDX111122223333", secret="xsecret")
    expect(lambda: ec2(sim, "us-west-2", config=fast, **other).describe_volumes(MaxResults=5), "AuthFailure", 401)
    assert ec2(sim, "us-east-1", config=fast, **other).describe_volumes(MaxResults=5)["Volumes"]
    assert ec2(sim, "us-west-2", config=fast).describe_volumes(MaxResults=5)["Volumes"]
    assert sim.stats()["faults"]["disabled"] == 1
    # an account-and-region scope wins over the region's
    sim.faults(account=HOME, region="eu-west-1", p_hang=0.0)
    assert ec2(sim, "eu-west-1", config=fast).describe_volumes(MaxResults=5)["Volumes"]
    sim.faults(account=HOME, region="eu-west-1", remove=True)
    # a global clear drops the scopes
    doc = sim.faults(clear=True)
    assert doc["scopes"] == []
    assert ec2(sim, "eu-west-1", config=fast).describe_volumes(MaxResults=5)["Volumes"]
    assert sim.stats()["faults"]["hang"] == 1
    st, _, _ = http_request(sim.port, "POST", "/_sim/faults", body=b'{"region": "eu-west-1", "seed": 3}')
    assert st == 400
    sim.stop()


def test_ebsd_assumes_a_role_through_the_simulator():
    """ebsd's own STS client (a profile with role_arn and external_id) reads the role's
    account: the simulator's AssumeRole answer is one it parses, and its credentials work."""
    role = "arn:aws:iam::111122223333:role/ebsd-read"
    sim = Sim("--instances", "150", "--seed", "8", "--role-external-id", role + "=ext-9")
    d = tempfile.mkdtemp(prefix="ec2sim-acc-")
    cred, conf = os.path.join(d, "credentials"), os.path.join(d, "config")
    with open(cred, "w") as f:
        f.write("[base]\naws_access_key_id = %s\naws_secret_access_key = %s\n"
                % (TEST_ACCESS_KEY, TEST_SECRET_KEY))
    with open(conf, "w") as f:
        f.write("[profile ops]\nrole_arn = %s\nsource_profile = base\nexternal_id = ext-9\n"
                "region = us-east-1\n" % role)
    env = sim_env(sim, {"AWS_SHARED_CREDENTIALS_FILE": cred, "AWS_CONFIG_FILE": conf,
                        "AWS_PROFILE": "ops", "AWS_ENDPOINT_URL_STS": sim.url})
    del env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
    e = Ebsd(env=env)
    st, _, doc = e.get_json("/volumes/total?timeout_ms=20000")
    assert st == 200, (st, doc)
    t = truth(sim, "111122223333", "us-east-1")
    assert doc["total_gib"] == t["total_gib"] and doc["instance_count"] == t["instance_count"], \
        (doc["total_gib"], t["total_gib"])
    assert doc["total_gib"] != sim.truth()["total_gib"]
    stats = sim.stats()
    assert stats["calls"]["AssumeRole"] >= 1 and "111122223333/us-east-1" in stats["targets"]
    assert "%s/us-east-1" % HOME not in stats["targets"], stats["targets"]
    e.stop()
    sim.stop()


def test_accounts_prebuilt_and_first_calls_in_parallel():
    """--accounts builds accounts x --regions at start-up; first calls to new pairs from many
    threads at once each get the one fleet of their pair."""
    import concurrent.futures
    import os as _os
    import subprocess
    sim = Sim("--instances", "300", "--seed", "6", "--accounts", "111122223333,444455556666",
              "--regions", "us-east-1,eu-west-1,ap-southeast-2")
    built = {(x["account"], x["region"]) for x in sim.get_json("/_sim/accounts")["fleets"]}
    assert built == {(HOME, "us-east-1")} | {(a, r) for a in ("111122223333", "444455556666")
                                              for r in ("us-east-1", "eu-west-1", "ap-southeast-2")}, built
    assert sim.stats()["targets"] == {}
    pairs = [("7777%08d" % i, r) for i in range(4) for r in ("eu-west-1", "ap-southeast-2")]

    def first(pair):
        return pair, truth(sim, *pair)["total_gib"]
    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        got = list(ex.map(first, pairs * 2))
    by_pair = {}
    for pair, total in got:
        by_pair.setdefault(pair, set()).add(total)
    assert all(len(v) == 1 for v in by_pair.values()), by_pair
    assert len(sim.get_json("/_sim/accounts")["fleets"]) == 7 + len(pairs)
    sim.stop()
    again = Sim("--instances", "300", "--seed", "6")
    assert all(truth(again, *p)["total_gib"] in by_pair[p] for p in pairs)
    again.stop()
    r = subprocess.run([_os.environ.get("EC2SIM_BIN", "build/tools/ec2sim/ec2sim"), "--accounts", "12345"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "12 digits" in r.stderr, r.stderr


run(globals())
