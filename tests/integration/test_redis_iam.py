"""ElastiCache IAM auth tokens (src/store/redisiam.c) held to botocore's presigner, the one AWS's
own ElastiCache IAM examples use (RequestSigner.generate_presigned_url for service
elasticache, GET http://CACHE/?Action=connect&User=USER[&ResourceType=ServerlessCache],
900 s, "http://" stripped), for the same inputs and a frozen clock; and the renewer
re-authenticating a live connection against a real redis-server."""
import datetime
import os
import random
import subprocess
import sys
import time
from unittest import mock
from urllib.parse import parse_qsl, urlencode

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SLOW, RedisServer, run  # noqa: E402

from botocore.compat import HAS_CRT  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402
from botocore.hooks import HierarchicalEmitter  # noqa: E402
from botocore.model import ServiceId  # noqa: E402
from botocore.signers import RequestSigner  # noqa: E402

TOOLS = os.environ.get("EBSD_TOOLS_DIR", "build/tests/tools")
TOOL = os.path.join(TOOLS, "redis_iam_tool")
PROBE = os.path.join(TOOLS, "redis_probe")
EMITTER = HierarchicalEmitter()  # RequestSigner holds it by weak reference only


def botocore_token(user, cache, region, when, akid, secret, token, serverless):
    query = {"Action": "connect", "User": user}
    if serverless:
        query["ResourceType"] = "ServerlessCache"
    signer = RequestSigner(ServiceId("elasticache"), region, "elasticache", "v4",
                           Credentials(akid, secret, token), EMITTER)
    fixed = datetime.datetime.utcfromtimestamp(when)
    # botocore signs with awscrt when it is installed (Debian's python3-botocore has it) and
    # in Python otherwise: freeze the clock both read.
    with mock.patch("botocore.auth.datetime") as dt, \
            mock.patch("botocore.crt.auth.datetime" if HAS_CRT else "botocore.auth.datetime") as dt2:
        dt.datetime.utcnow.return_value = fixed
        dt2.datetime.utcnow.return_value = fixed
        dt2.timezone = datetime.timezone
        url = signer.generate_presigned_url(
            {"method": "GET", "url": "http://%s/?%s" % (cache, urlencode(query)), "body": {},
             "headers": {}, "context": {}},
            operation_name="connect", expires_in=900, region_name=region)
    assert url.startswith("http://")
    return url[len("http://"):]


def ebsd_token(user, cache, region, when, akid, secret, token, serverless):
    r = subprocess.run([TOOL, user, cache, region, str(when), akid, secret, token or "-",
                        "1" if serverless else "0"], capture_output=True, text=True, check=True)
    return r.stdout.strip()


def split(token):
    """host/path and the query as a dict: botocore and ebsd put X-Amz-Expires and
    X-Amz-SignedHeaders in a different order, which a presigned URL allows (the canonical
    query is sorted); every parameter and the signature itself must be equal."""
    base, _, query = token.partition("?")
    pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    d = dict(pairs)
    assert len(d) == len(pairs), "a repeated parameter in " + token
    return base, d


def test_token_matches_botocore():
    rng = random.Random(20261202)
    cases = [("ebsd-user", "my-cache", "us-east-1", 1764000000, "AKIDEXAMPLE",
              "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", None, False),
             ("ebsd-user", "my-serverless", "eu-west-1", 1764000000, "AKIDEXAMPLE",
              "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "FwoGZXIvYXdzE+/token==", True)]
    for _ in range(40):
        user = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789-_.")
                       for _ in range(rng.randint(1, 40)))
        cache = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789-")
                        for _ in range(rng.randint(1, 40)))
        region = rng.choice(["us-east-1", "us-west-2", "eu-central-1", "ap-southeast-2"])
        when = rng.randint(1500000000, 1900000000)
        akid = "AKIA" + "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16))
        secret = "".join(rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/")
                         for _ in range(40))
        token = None if rng.random() < 0.5 else "".join(
            rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/=")
            for _ in range(rng.randint(20, 600)))
        cases.append((user, cache, region, when, akid, secret, token, rng.random() < 0.3))
    for c in cases:
        mine, theirs = ebsd_token(*c), botocore_token(*c)
        b1, q1 = split(mine)
        b2, q2 = split(theirs)
        assert b1 == b2 == c[1] + "/", (b1, b2)
        assert q1 == q2, "\n  ebsd:     %s\n  botocore: %s" % (mine, theirs)
        assert q1["X-Amz-Expires"] == "900" and q1["Action"] == "connect"
        assert q1["X-Amz-Credential"].endswith("/%s/elasticache/aws4_request" % c[2])
        assert ("ResourceType" in q1) == c[7]
        # the parts in front come in the order AWS documents: Action, User, [ResourceType]
        assert mine.startswith(c[1] + "/?Action=connect&User=")
    print("  %d tokens equal to botocore's" % len(cases))


def test_renewer_reauthenticates_live_connections():
    # "nopass": the ACL user accepts any password, so every fresh token authenticates; the
    # server's own AUTH counter shows the renewer's re-AUTHs on the live connections.
    srv = RedisServer(acl_users=[])
    try:
        srv.cli("ACL", "SETUSER", "iamuser", "on", "nopass", "~*", "&*", "+@all")
        env = dict(os.environ, AWS_ACCESS_KEY_ID="AKIDEXAMPLE",
                   AWS_SECRET_ACCESS_KEY="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
        p = subprocess.Popen([PROBE, "redis://127.0.0.1:%d" % srv.port, "--iam",
                              "iamuser:my-cache:us-east-1:300"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        try:
            p.stdin.write("wait_up %d\ncmd a ACL WHOAMI\n" % (5000 * SLOW))
            p.stdin.flush()
            answers = []
            while len(answers) < 2:
                line = p.stdout.readline()
                assert line, "redis_probe exited"
                if line.startswith("= "):
                    answers.append(line[2:].strip())
            assert answers == ["up", "ok iamuser"], answers

            def auths():
                for line in srv.cli("INFO", "commandstats").splitlines():
                    if line.startswith("cmdstat_auth:"):
                        return int(line.split("calls=")[1].split(",")[0])
                return 0
            first = auths()
            assert first == 3  # a, b and the subscriber, once each at connect
            time.sleep(1.1)
            later = auths()
            # a and b re-AUTH every 300 ms (the subscriber keeps its token for reconnects)
            assert later >= first + 2 * 2, (first, later)
            p.stdin.write("state\nquit\n")
            p.stdin.flush()
            out = p.communicate(timeout=10)[0]
            assert "= a=1 b=1 sub=1" in out, out
            assert "Signature" not in out and "wJalr" not in out  # no token in the logs
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
    finally:
        srv.stop()


if __name__ == "__main__":
    run(globals())
