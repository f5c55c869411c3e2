"""Credential refresh through a running ebsd: a fake container-credentials endpoint on
127.0.0.1 hands out short-lived credentials (expiring ~14 s after they are fetched), then
fresh ones; ec2sim accepts both keys, and later only the new one.

Shown: ebsd fetches fresh credentials before the old ones expire (half their life ahead
of expiry when they live less than 10 minutes: here ~7 s after the first fetch), keeps
answering 200 across the rotation and past the old key's expiry, signs with the new key
(an ec2sim that knows only the new key, checked to refuse the old one, answers ebsd 200),
and /metrics and /readyz move: source "container", seconds to expiry ~14 then ~3600.
A failed refresh (500) is retried before expiry. No secret appears in ebsd's output.
"""
import datetime
import json
import os
import sys
import tempfile
import time

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Ebsd, FakeHTTP, Sim, run, sim_env  # noqa: E402

LIFE_S = 14  # life of the first credentials; ebsd refreshes them ~LIFE_S / 2 s later
SECRETS = []


def secret(tag):
    s = "%s/%s+%s" % (tag, os.urandom(10).hex(), os.urandom(4).hex())
    SECRETS.append(s)
    return s


def iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Provider:
    """The container endpoint: answers with keys[i] for the i-th fetch (the last one
    repeats); an entry None answers 500. Records when each fetch happened."""

    def __init__(self, keys):
        self.keys = keys
        self.fetches = []  # (wall time, answered key or None)
        self.auth = secret("authtok")

        def route(method, path, headers, body):
            if headers.get("Authorization") != self.auth:
                return 401, "application/json", '{"message":"bad token"}'
            k = self.keys[min(len(self.fetches), len(self.keys) - 1)]
            self.fetches.append((time.time(), k))
            if k is None:
                return 500, "application/json", '{"message":"try later"}'
            return 200, "application/json", json.dumps({
                "AccessKeyId": k["ak"], "SecretAccessKey": k["sk"], "Token": k["tok"],
                "Expiration": iso(time.time() + k["life"])})

        self.fake = FakeHTTP(route)

    def answered(self):
        return [(t, k) for t, k in self.fetches if k is not None]


def key(name, life):
    return {"ak": "ASIA" + name + os.urandom(4).hex().upper(), "sk": secret("sk" + name),
            "tok": secret("tok" + name), "life": life}


def sim_args(*keys):
    out = []
    for k in keys:
        out += ["--credentials", "%s:%s" % (k["ak"], k["sk"])]
    return out


def ebsd_env(sim, provider):
    env = sim_env(sim)
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        env.pop(k, None)
    env["HOME"] = tempfile.mkdtemp(prefix="ebsd-refresh-home-")  # no ~/.aws
    env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = provider.fake.url + "/v2/credentials"
    env["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = provider.auth
    return env


def creds_metrics(e):
    st, _, body = e.get("/metrics", timeout=10)
    assert st == 200, st
    source, expiry = None, None
    for line in body.decode().splitlines():
        if line.startswith("ebsd_credentials_info{") and line.endswith(" 1"):
            source = line.split('source="', 1)[1].split('"', 1)[0]
        elif line.startswith("ebsd_credentials_expiry_seconds "):
            expiry = float(line.split()[1])
    return source, expiry


def total(e):
    st, _, body = e.get("/volumes/total", headers={"Cache-Control": "no-cache"}, timeout=30)
    return st, body


def no_leaks(e, provider):
    out = "\n".join(e.lines)
    for s in SECRETS:
        assert s not in out, "a secret appears in ebsd's output"
    for _, k in provider.fetches:
        if k:
            assert k["sk"] not in out and k["tok"] not in out


def ec2(sim, k):
    return boto3.client("ec2", region_name="us-east-1", endpoint_url=sim.url,
                        aws_access_key_id=k["ak"], aws_secret_access_key=k["sk"],
                        aws_session_token=k["tok"],
                        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}))


def expect_auth_failure(sim, k):
    try:
        ec2(sim, k).describe_instances(MaxResults=5)
    except ClientError as err:
        assert err.response["Error"]["Code"] == "AuthFailure", err.response["Error"]
        return
    raise AssertionError("ec2sim accepted a key it was not given")


def ok_with(sim, k):
    assert "Reservations" in ec2(sim, k).describe_instances(MaxResults=5)


def test_refresh_before_expiry_and_rotation():
    old, new = key("OLD", LIFE_S), key("NEW", 3600)
    provider = Provider([old, new])
    sim = Sim("--instances", "12", *sim_args(old, new))
    e = None
    try:
        e = Ebsd(config="cache:\n  min_refresh_s: 0\n", sim=sim, env=ebsd_env(sim, provider))
        assert len(provider.answered()) == 1, provider.fetches
        t_first = provider.fetches[0][0]
        old_expiry = t_first + LIFE_S - 1  # Expiration is whole seconds: at most 1 s earlier
        source, exp = creds_metrics(e)
        assert source == "container" and 0 < exp <= LIFE_S, (source, exp)
        st, _, ready = e.get_json("/readyz")
        assert st == 200 and 0 < ready["credentials_expire_in_s"] <= LIFE_S, ready

        # Keep asking across the refresh and past the old credentials' expiry: always 200.
        answers, exps = [], []
        while time.time() < old_expiry + 2:
            st, body = total(e)
            answers.append(st)
            assert st == 200, (st, body[:300], provider.fetches)
            exps.append(creds_metrics(e)[1])
            time.sleep(0.25)
        assert len(provider.answered()) == 2, provider.fetches
        t_refresh = provider.fetches[1][0]
        # Half the life ahead of expiry (LIFE_S / 2 after the first fetch), give or take
        # the second granularity of Expiration and a slow (sanitizer) worker start.
        assert t_first + LIFE_S / 2 - 2 <= t_refresh <= old_expiry - 2, \
            (t_refresh - t_first, LIFE_S)
        # Seconds to expiry counted down, then jumped to the new credentials' life.
        assert exps[0] <= LIFE_S and min(exps) < LIFE_S - 3, exps
        assert exps[-1] > 3500, exps
        source, exp = creds_metrics(e)
        assert source == "container" and 3500 < exp <= 3600, (source, exp)
        st, _, ready = e.get_json("/readyz")
        assert st == 200 and ready["credentials_expire_in_s"] > 3500, ready

        # An ec2sim that knows only the new key, on the same port: it refuses the old key
        # (checked with botocore), and ebsd's new workers are answered.
        port = sim.port
        sim.stop()
        sim = Sim("--listen", "127.0.0.1:%d" % port, "--instances", "12", *sim_args(new))
        assert sim.port == port
        expect_auth_failure(sim, old)
        ok_with(sim, new)
        st, body = total(e)
        assert st == 200, (st, body[:300])
        assert json.loads(body)["instance_count"] == 12
    finally:
        if e:
            no_leaks(e, provider)
            assert e.stop() == 0
        if sim:
            sim.stop()
        provider.fake.stop()


def test_failed_refresh_retried_before_expiry():
    """The provider fails the first refresh (500): ebsd keeps the old credentials, says
    so in its log, and tries again (half the remaining life ahead) before they expire."""
    old, new = key("OLD", LIFE_S), key("NEW", 3600)
    provider = Provider([old, None, new])
    sim = Sim("--instances", "5", *sim_args(old, new))
    e = None
    try:
        e = Ebsd(config="cache:\n  min_refresh_s: 0\n", sim=sim, env=ebsd_env(sim, provider))
        t_first = provider.fetches[0][0]
        old_expiry = t_first + LIFE_S - 1
        while time.time() < old_expiry + 1:
            st, body = total(e)
            assert st == 200, (st, body[:300], provider.fetches)
            time.sleep(0.25)
        assert len(provider.fetches) == 3 and provider.fetches[1][1] is None, provider.fetches
        assert provider.fetches[2][0] <= old_expiry - 0.5, \
            [round(t - t_first, 2) for t, _ in provider.fetches]
        assert any("credential refresh failed" in l for l in e.lines), e.lines[-20:]
        assert creds_metrics(e)[1] > 3500
    finally:
        if e:
            no_leaks(e, provider)
            assert e.stop() == 0
        sim.stop()
        provider.fake.stop()


run(globals())
