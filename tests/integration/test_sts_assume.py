"""STS AssumeRole for accounts, driven through tests/tools/sts_probe (sts_assume_role):

* the request ebsd sends is the request botocore sends for the same inputs (same body
  bytes, same signed headers, same signature at the same time), captured by a fake STS on
  127.0.0.1;
* against ec2sim's STS endpoint (docs/ec2sim.md, "STS API"): AssumeRole works and names the
  role's account, GetCallerIdentity names the base and the role's account, a wrong or missing ExternalId and a refused role are AccessDenied (no
  retry, EBSD_EAUTH), and the temporary credentials read the role's account's fleet through
  ebsd's EC2 client (tests/tools/ec2_probe) - the account's truth, not the home account's.
"""
import datetime
import json
import os
import subprocess
import sys
import time
from unittest import mock
from urllib.parse import parse_qsl

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import FakeHTTP, Sim, TEST_ACCESS_KEY, TEST_SECRET_KEY, run  # noqa: E402

import botocore.session  # noqa: E402

TOOLS = os.environ.get("EBSD_TOOLS_DIR", "build/tests/tools")
PROBE = os.path.join(TOOLS, "sts_probe")
EC2_PROBE = os.path.join(TOOLS, "ec2_probe")

ROLE_OK = "arn:aws:iam::111122223333:role/ebsd-read"
ROLE_EXT = "arn:aws:iam::222233334444:role/ebsd-read"
ROLE_DENIED = "arn:aws:iam::333344445555:role/ebsd-read"

OK_XML = ('<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
          "<AssumeRoleResult><Credentials><AccessKeyId>ASIAFAKE</AccessKeyId>"
          "<SecretAccessKey>fakesecret</SecretAccessKey><SessionToken>faketoken</SessionToken>"
          "<Expiration>2030-01-01T00:00:00Z</Expiration></Credentials><AssumedRoleUser>"
          "<AssumedRoleId>AROAFAKE:s</AssumedRoleId>"
          "<Arn>arn:aws:sts::111122223333:assumed-role/team/ebsd-read/s</Arn>"
          "</AssumedRoleUser></AssumeRoleResult><ResponseMetadata><RequestId>r</RequestId>"
          "</ResponseMetadata></AssumeRoleResponse>")


def frozen_botocore_time(when):
    """botocore's signing clock fixed at when: newer botocore reads get_current_datetime(),
    older releases (Debian's) datetime.datetime.utcnow(), as test_sigv4_botocore.py mocks."""
    import botocore.auth
    if hasattr(botocore.auth, "get_current_datetime"):
        return mock.patch("botocore.auth.get_current_datetime", return_value=when)
    m = mock.patch("botocore.auth.datetime")

    class Frozen:
        def __enter__(self):
            dt = m.__enter__()
            dt.datetime.utcnow.return_value = when.replace(tzinfo=None)
            dt.datetime.strptime = datetime.datetime.strptime
            return dt

        def __exit__(self, *exc):
            return m.__exit__(*exc)
    return Frozen()


def base_env(extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_ACCESS_KEY_ID": TEST_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": TEST_SECRET_KEY,
                "AWS_EC2_METADATA_DISABLED": "true"})
    env.update(extra or {})
    return env


def probe(env, *args):
    p = subprocess.run([PROBE] + list(args), env=env, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode in (0, 1), (p.returncode, p.stderr)
    return p.returncode, json.loads(p.stdout)


def test_request_matches_botocore():
    # botocore's clock is frozen at ebsd's signing second; should the freeze not take (a
    # botocore that reads its clock elsewhere), the two signings can straddle a second: the
    # whole exchange is tried again, and one attempt must match byte for byte
    for attempt in range(3):
        if request_matches_botocore(last=attempt == 2):
            return


def request_matches_botocore(last):
    fake = FakeHTTP(lambda m, path, h, body: (200, "text/xml", OK_XML))
    try:
        role = "arn:aws:iam::111122223333:role/team/ebsd-read"
        inputs = {"RoleArn": role, "RoleSessionName": "ebsd-host.example",
                  "DurationSeconds": 1800, "ExternalId": "ext:1/a=b"}
        env = base_env({"AWS_SESSION_TOKEN": "base-session-token",
                        "AWS_ENDPOINT_URL_STS": fake.url})
        rc, out = probe(env, "--region", "eu-west-1", "--role-arn", role, "--session-name",
                        inputs["RoleSessionName"], "--duration-s", "1800", "--external-id",
                        inputs["ExternalId"])
        assert rc == 0, out
        assert out["account_id"] == "111122223333", out
        assert out["assumed_role_arn"].endswith("assumed-role/team/ebsd-read/s"), out
        assert "secret_access_key" not in out and "session_token" not in out
        assert len(fake.requests) == 1, fake.requests
        e_method, e_path, e_headers, e_body = fake.requests[0]

        # botocore, at ebsd's signing time, against the same fake
        when = datetime.datetime.strptime(e_headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.timezone.utc)
        sess = botocore.session.get_session()
        client = sess.create_client("sts", region_name="eu-west-1", endpoint_url=fake.url,
                                    aws_access_key_id=TEST_ACCESS_KEY,
                                    aws_secret_access_key=TEST_SECRET_KEY,
                                    aws_session_token="base-session-token")
        with frozen_botocore_time(when):
            r = client.assume_role(**inputs)
        assert r["Credentials"]["AccessKeyId"] == "ASIAFAKE"
        assert len(fake.requests) == 2
        b_method, b_path, b_headers, b_body = fake.requests[1]

        assert (e_method, e_path) == (b_method, b_path) == ("POST", "/")
        assert e_body == b_body, (e_body, b_body)
        form = dict(parse_qsl(e_body.decode()))
        assert form == {"Action": "AssumeRole", "Version": "2011-06-15", "RoleArn": role,
                        "RoleSessionName": "ebsd-host.example", "DurationSeconds": "1800",
                        "ExternalId": "ext:1/a=b"}, form
        if e_headers.get("X-Amz-Date") != b_headers.get("X-Amz-Date") and not last:
            return False
        for h in ("Content-Type", "X-Amz-Date", "X-Amz-Security-Token", "Authorization"):
            assert e_headers.get(h) == b_headers.get(h), (h, e_headers.get(h), b_headers.get(h))
        assert "/eu-west-1/sts/aws4_request" in e_headers["Authorization"]
        return True
    finally:
        fake.stop()


def test_default_session_name():
    fake = FakeHTTP(lambda m, path, h, body: (200, "text/xml", OK_XML))
    try:
        rc, out = probe(base_env({"AWS_ENDPOINT_URL_STS": fake.url}), "--region", "us-east-1",
                        "--role-arn", ROLE_OK)
        assert rc == 0, out
        form = dict(parse_qsl(fake.requests[0][3].decode()))
        name = form["RoleSessionName"]
        assert name.startswith("ebsd-") and 2 <= len(name) <= 64, name
        assert all(c.isalnum() or c in "_+=,.@-" for c in name), name
        assert "DurationSeconds" not in form and "ExternalId" not in form, form
    finally:
        fake.stop()


def sim_for_roles():
    return Sim("--instances", "40", "--seed", "11", "--regions", "us-east-1,eu-west-1",
               "--role-external-id", ROLE_EXT + "=ext-1", "--deny-role", ROLE_DENIED)


def test_against_ec2sim():
    sim = sim_for_roles()
    try:
        env = base_env({"AWS_ENDPOINT_URL_STS": sim.url})
        rc, out = probe(env, "--region", "eu-west-1", "--role-arn", ROLE_OK, "--duration-s",
                        "900", "--print-secrets")
        assert rc == 0, out
        assert out["status"] == "ok" and out["http_status"] == 200, out
        assert out["account_id"] == "111122223333", out
        assert out["access_key_id"].startswith("ASIA"), out
        assert 800 <= out["expiration"] - time.time() <= 1000, out

        # GetCallerIdentity: the base credentials' account, then the role's
        rc, me = probe(env, "--region", "eu-west-1", "--caller-identity")
        assert rc == 0 and me["account_id"] == "123456789012", me
        rc, me = probe(base_env({"AWS_ENDPOINT_URL_STS": sim.url,
                                 "AWS_ACCESS_KEY_ID": out["access_key_id"],
                                 "AWS_SECRET_ACCESS_KEY": out["secret_access_key"],
                                 "AWS_SESSION_TOKEN": out["session_token"]}),
                       "--region", "eu-west-1", "--caller-identity")
        assert rc == 0 and me["account_id"] == "111122223333", me
        assert ":assumed-role/ebsd-read/" in me["assumed_role_arn"], me

        # the temporary credentials read the role's account's fleet in eu-west-1
        ec2_env = base_env({"AWS_ACCESS_KEY_ID": out["access_key_id"],
                            "AWS_SECRET_ACCESS_KEY": out["secret_access_key"],
                            "AWS_SESSION_TOKEN": out["session_token"]})
        p = subprocess.run([EC2_PROBE, "--endpoint", sim.url, "--region", "eu-west-1"],
                           env=ec2_env, capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, (p.stdout, p.stderr)
        got = json.loads(p.stdout)
        truth = sim.get_json("/_sim/truth?account=111122223333&region=eu-west-1")
        home = sim.get_json("/_sim/truth?account=123456789012&region=eu-west-1")
        assert got["total_gib"] == truth["total_gib"], (got["total_gib"], truth["total_gib"])
        assert got["volume_count"] == truth["volume_count"], (got, truth)
        assert truth["total_gib"] != home["total_gib"], "fleets per account should differ"

        # without the session token the temporary key is refused
        del ec2_env["AWS_SESSION_TOKEN"]
        p = subprocess.run([EC2_PROBE, "--endpoint", sim.url, "--region", "eu-west-1"],
                           env=ec2_env, capture_output=True, text=True, timeout=60)
        assert p.returncode == 1, p.stdout
    finally:
        sim.stop()


def test_external_id_and_refused_role():
    sim = sim_for_roles()
    try:
        env = base_env({"AWS_ENDPOINT_URL_STS": sim.url})
        rc, out = probe(env, "--region", "us-east-1", "--role-arn", ROLE_EXT,
                        "--external-id", "ext-1")
        assert rc == 0 and out["account_id"] == "222233334444", out
        for args in (["--role-arn", ROLE_EXT, "--external-id", "ext-2"],
                     ["--role-arn", ROLE_EXT],
                     ["--role-arn", ROLE_DENIED]):
            rc, out = probe(env, "--region", "us-east-1", *args)
            assert rc == 1, out
            assert out["code"] == "AccessDenied", out
            assert out["http_status"] == 403 and out["attempts"] == 1, out
            assert out["status"] == "authentication error", out
            assert "AccessDenied" in out["error"] and "HTTP 403" in out["error"], out
            assert TEST_SECRET_KEY not in out["error"]
        # the same through AWS_ENDPOINT_URL when no STS-specific variable is set, and not
        # at all when configured endpoints are ignored (then the real STS would be called:
        # here the deadline is short and nothing may reach the simulator)
        before = sim.stats()["calls"].get("AssumeRole", 0)
        rc, out = probe(base_env({"AWS_ENDPOINT_URL": sim.url}), "--region", "us-east-1",
                        "--role-arn", ROLE_OK)
        assert rc == 0 and out["account_id"] == "111122223333", out
        assert sim.stats()["calls"].get("AssumeRole", 0) == before + 1
        rc, out = probe(base_env({"AWS_ENDPOINT_URL_STS": sim.url,
                                  "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true",
                                  "https_proxy": "http://127.0.0.1:9",
                                  "HTTPS_PROXY": "http://127.0.0.1:9"}),
                        "--region", "us-east-1", "--role-arn", ROLE_OK, "--deadline-ms", "1500",
                        "--max-attempts", "1")
        assert rc == 1, out
        assert "sts.us-east-1.amazonaws.com" in out["error"], out
        assert sim.stats()["calls"].get("AssumeRole", 0) == before + 1
    finally:
        sim.stop()


def test_account_credentials():
    """acctcreds_fetch, what the credentials service calls per configured account."""
    sim = sim_for_roles()
    try:
        env = base_env({"AWS_ENDPOINT_URL_STS": sim.url})
        rc, out = probe(env, "--region", "eu-west-1", "--account", "prod", "--role-arn",
                        ROLE_EXT, "--external-id", "ext-1")
        assert rc == 0, out
        assert out["source"] == "assume-role:prod" and out["account_id"] == "222233334444", out
        assert out["access_key_id"].startswith("ASIA") and out["expiration"] > time.time(), out
        # no role: the base credentials, their account from GetCallerIdentity
        calls = sim.stats()["calls"].get("GetCallerIdentity", 0)
        rc, out = probe(env, "--region", "eu-west-1", "--account", "default")
        assert rc == 0, out
        assert out["source"] == "environment" and out["account_id"] == "123456789012", out
        assert out["access_key_id"] == TEST_ACCESS_KEY, out
        assert sim.stats()["calls"].get("GetCallerIdentity", 0) == calls + 1
        # a refused role: EAUTH, the code for the target's error object, the account named
        rc, out = probe(env, "--region", "eu-west-1", "--account", "audit", "--role-arn",
                        ROLE_DENIED)
        assert rc == 1 and out["status"] == "authentication error", out
        assert out["code"] == "AccessDenied" and out["account_id"] == "", out
        assert out["error"].startswith("account audit: ") and out["error_source"] == "account:audit", out
        # no base credentials at all
        bare = {k: v for k, v in base_env({"AWS_ENDPOINT_URL_STS": sim.url}).items()
                if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
        bare.update({"HOME": "/nonexistent", "AWS_CONFIG_FILE": "/nonexistent",
                     "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"})
        rc, out = probe(bare, "--region", "eu-west-1", "--account", "prod", "--role-arn",
                        ROLE_OK, "--deadline-ms", "3000")
        assert rc == 1 and out["code"] == "CredentialsUnavailable", out
        assert "base credentials" in out["error"], out
    finally:
        sim.stop()


if __name__ == "__main__":
    run(globals())
