"""ec2sim's latency, rate limit and injected faults, as a client sees them: 200 concurrent
slow calls overlap, each fault kind reaches boto3 or a raw socket, runs repeat with a seed,
the admin endpoints count it all, and HTTPS works with a test CA."""
import concurrent.futures
import http.client
import os
import json
import ssl as ssl_mod
import subprocess
import tempfile
import time

import boto3
import botocore
from botocore.config import Config

from harness import SLOW, Sim, TEST_ACCESS_KEY, TEST_SECRET_KEY, http_request, run

BODY = b"Action=DescribeVolumes&Version=2016-11-15&MaxResults=5"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def client(sim, retries=1, read_timeout=60, verify=None):
    return boto3.client("ec2", region_name="us-east-1", endpoint_url=sim.url,
                        aws_access_key_id=TEST_ACCESS_KEY, aws_secret_access_key=TEST_SECRET_KEY,
                        verify=verify,
                        config=Config(retries={"total_max_attempts": retries, "mode": "standard"},
                                      read_timeout=read_timeout, connect_timeout=5))


def raw(sim, timeout=10):
    """One unsigned call (the sim runs --no-auth): (status, body) or the exception raised."""
    try:
        st, _, data = http_request(sim.port, "POST", "/", body=BODY, headers=FORM, timeout=timeout)
        return st, data
    except Exception as e:  # noqa: BLE001 - the exception is the observation
        return None, e


def test_200_concurrent_slow_calls_overlap():
    sim = Sim("--instances", "100", "--no-auth", "--latency-ms", "50")
    sim.reset()
    def one(_):
        st, data = raw(sim, timeout=30)
        return st
    t0 = time.time()
    with concurrent.futures.ThreadPoolExecutor(200) as ex:
        sts = list(ex.map(one, range(200)))
    took = time.time() - t0
    assert sts == [200] * 200, sts
    print("    200 concurrent calls at 50 ms latency took %.0f ms" % (took * 1000))
    assert took < 2.0 * SLOW, took  # serialized would be >= 10 s
    stats = sim.stats()
    assert stats["calls"]["DescribeVolumes"] == 200
    # serialized calls would peak at 1; sanitizer builds start threads more slowly
    assert stats["peak_in_flight"] >= 50 / SLOW, stats
    sim.stop()


def test_latency_through_boto3_and_per_action():
    sim = Sim("--instances", "50", "--action-latency", "DescribeInstances=300:0")
    c = client(sim)
    t0 = time.time()
    c.describe_volumes(MaxResults=5)
    fast = time.time() - t0
    t0 = time.time()
    c.describe_instances(MaxResults=5)
    slow = time.time() - t0
    assert slow >= 0.3 and fast < 0.3, (fast, slow)
    sim.faults(latency={"DescribeVolumes": {"ms": 200, "jitter_ms": 0}})
    t0 = time.time()
    c.describe_volumes(MaxResults=5)
    assert time.time() - t0 >= 0.2
    sim.stop()


def test_rate_limit_throttles_like_ec2():
    sim = Sim("--instances", "20", "--rate-limit", "5:1")
    c = client(sim)
    ok = throttled = 0
    for _ in range(10):
        try:
            c.describe_volumes(MaxResults=5)
            ok += 1
        except botocore.exceptions.ClientError as e:
            assert e.response["Error"]["Code"] == "RequestLimitExceeded"
            assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 503
            throttled += 1
    assert ok >= 5 and throttled >= 4, (ok, throttled)
    assert sim.stats()["faults"]["throttle"] == throttled
    # boto3's standard retries ride it out once the bucket refills
    time.sleep(1.2)
    client(sim, retries=5).describe_volumes(MaxResults=5)
    sim.faults(rate_bucket=0)
    for _ in range(20):
        c.describe_volumes(MaxResults=5)
    sim.stop()


def test_500_and_503_reach_boto3():
    sim = Sim("--instances", "20")
    c = client(sim)
    for kind, code, status in (("p_500", "InternalError", 500), ("p_503", "Unavailable", 503)):
        sim.faults(clear=True, **{kind: 1.0})
        try:
            c.describe_instances()
            raise AssertionError("no error")
        except botocore.exceptions.ClientError as e:
            assert e.response["Error"]["Code"] == code, e.response
            assert e.response["ResponseMetadata"]["HTTPStatusCode"] == status
    sim.faults(clear=True)
    c.describe_instances()
    f = sim.stats()["faults"]
    assert f["500"] == 1 and f["503"] == 1, f
    sim.stop()


def test_hang_until_client_gives_up():
    sim = Sim("--instances", "20", "--no-auth", "--p-hang", "1")
    c = client(sim, read_timeout=1)
    t0 = time.time()
    try:
        c.describe_volumes()
        raise AssertionError("no timeout")
    except botocore.exceptions.ReadTimeoutError:
        pass
    assert 0.9 <= time.time() - t0 < 10
    # the held connection is released when the client goes away
    deadline = time.time() + 5 * SLOW
    while sim.stats()["in_flight"] and time.time() < deadline:
        time.sleep(0.1)
    assert sim.stats()["in_flight"] == 0
    # bounded hangs end by closing the connection
    sim.faults(hang_max_ms=300)
    st, err = raw(sim, timeout=10)
    assert st is None and isinstance(err, (http.client.RemoteDisconnected, ConnectionError)), err
    sim.stop()


def test_truncated_and_malformed_xml():
    sim = Sim("--instances", "200", "--no-auth", "--p-truncate", "1")
    st, err = raw(sim)
    assert st is None and isinstance(err, http.client.IncompleteRead), err
    sim.stop()
    sim = Sim("--instances", "200", "--p-malformed", "1")
    try:
        client(sim).describe_volumes(MaxResults=50)
        raise AssertionError("parsed a malformed document")
    except botocore.exceptions.ClientError:
        raise
    except Exception as e:  # botocore's ResponseParserError
        assert "Unable to parse" in str(e) or "parse" in type(e).__name__.lower(), repr(e)
    assert sim.stats()["faults"]["malformed"] == 1
    sim.stop()


def test_connection_reset():
    sim = Sim("--instances", "20", "--no-auth", "--p-reset", "1")
    st, err = raw(sim)
    assert st is None and isinstance(err, (ConnectionResetError, http.client.RemoteDisconnected)), err
    # boto3 sees a connection error
    sim2 = Sim("--instances", "20", "--p-reset", "1")
    try:
        client(sim2).describe_volumes()
        raise AssertionError("no error")
    except (botocore.exceptions.ConnectionClosedError, botocore.exceptions.EndpointConnectionError):
        pass
    assert sim2.stats()["faults"]["reset"] >= 1
    sim.stop()
    sim2.stop()


def test_faults_repeat_with_a_seed():
    def sequence():
        sim = Sim("--instances", "20", "--no-auth", "--fault-seed", "77", "--p-500", "0.3", "--p-503", "0.2")
        out = [raw(sim)[0] for _ in range(40)]
        sim.stop()
        return out
    a, b = sequence(), sequence()
    assert a == b, (a, b)
    assert set(a) == {200, 500, 503}, a


def test_stats_reset_and_admin():
    sim = Sim("--instances", "20", "--no-auth")
    for _ in range(3):
        raw(sim)
    http_request(sim.port, "POST", "/", body=b"Action=Frobnicate&Version=2016-11-15", headers=FORM)
    s = sim.stats()
    assert s["calls"] == {"DescribeVolumes": 3, "Frobnicate": 1}, s
    assert s["errors"] == {"InvalidAction": 1}
    sim.reset()
    s = sim.stats()
    assert s["calls"] == {} and s["requests"] == 0 and all(v == 0 for v in s["faults"].values())
    st, _, data = http_request(sim.port, "POST", "/_sim/faults", body=b'{"p_500": 2}')
    assert st == 400, data
    st, _, data = http_request(sim.port, "GET", "/_sim/nope")
    assert st == 404
    f = sim.get_json("/_sim/faults")
    assert f["p_500"] == 0 and f["hang_max_ms"] == 120000
    sim.stop()


def test_https_with_test_ca():
    d = tempfile.mkdtemp(prefix="ec2sim-tls-")
    def ssl(*args):
        subprocess.run(["openssl"] + list(args), check=True, capture_output=True, cwd=d)
    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=ec2sim test CA")
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr",
        "-subj", "/CN=127.0.0.1")
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    ssl("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "srv.pem", "-days", "2", "-extfile", "ext.cnf")
    sim = Sim("--instances", "100", "--tls-cert", os.path.join(d, "srv.pem"),
              "--tls-key", os.path.join(d, "srv.key"))
    assert sim.url.startswith("https://127.0.0.1:")
    c = client(sim, verify=os.path.join(d, "ca.pem"))
    vols = []
    for page in c.get_paginator("describe_volumes").paginate(PaginationConfig={"PageSize": 50}):
        vols += page["Volumes"]
    ctx = ssl_mod.create_default_context(cafile=os.path.join(d, "ca.pem"))
    conn = http.client.HTTPSConnection("127.0.0.1", sim.port, context=ctx, timeout=30)
    conn.request("GET", "/_sim/truth")
    truth = json.loads(conn.getresponse().read())
    conn.close()
    assert len(vols) == truth["volumes_total"]
    # without the test CA the certificate is refused
    try:
        client(sim, verify=True).describe_volumes(MaxResults=5)
        raise AssertionError("an unknown CA was accepted")
    except botocore.exceptions.SSLError:
        pass
    sim.stop()


def _signed(sim, shift_s=0, region="us-east-1"):
    """A DescribeVolumes request signed by botocore with its clock moved by shift_s:
    (status, headers, body) as ec2sim answers it."""
    import datetime as dt
    from unittest import mock
    import botocore.auth
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    body = "Action=DescribeVolumes&Version=2016-11-15&MaxResults=5"
    req = AWSRequest(method="POST", url=sim.url + "/", data=body,
                     headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})

    class Shifted(dt.datetime):
        @classmethod
        def utcnow(cls):
            return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) + dt.timedelta(seconds=shift_s)
    with mock.patch.object(botocore.auth.datetime, "datetime", Shifted):
        SigV4Auth(Credentials(TEST_ACCESS_KEY, TEST_SECRET_KEY), "ec2", region).add_auth(req)
    return http_request(sim.port, "POST", "/", body=body.encode(), headers=dict(req.headers.items()))


def _date_of(hdrs):
    import email.utils
    assert "date" in hdrs, hdrs
    return email.utils.parsedate_to_datetime(hdrs["date"]).timestamp()


def test_date_header_and_request_expired_on_skew():
    """Every answer carries Date; a signature more than 5 minutes from ec2sim's clock is EC2's
    RequestExpired (400), and --clock-offset / POST /_sim/clock move that clock so a client
    can find its skew from Date and sign again."""
    sim = Sim("--instances", "20")
    now = time.time()
    st, hdrs, data = _signed(sim)
    assert st == 200 and abs(_date_of(hdrs) - now) < 5
    for shift in (-310, 301, 3600):
        st, hdrs, data = _signed(sim, shift)
        assert st == 400 and b"<Code>RequestExpired</Code>" in data, (shift, st, data[:200])
        assert abs(_date_of(hdrs) - time.time()) < 5
    assert _signed(sim, 290)[0] == 200 and _signed(sim, -290)[0] == 200
    for path in ("/_sim/health", "/_sim/truth"):
        assert "date" in http_request(sim.port, "GET", path)[1]
    st, hdrs, _ = http_request(sim.port, "POST", "/", body=BODY, headers=FORM)
    assert st == 401 and "date" in hdrs
    # the server's clock an hour ahead: Date says so, and only a request signed on it passes
    sim.post_json("/_sim/clock", {"offset_s": 3600})
    st, hdrs, data = _signed(sim)
    assert st == 400 and b"<Code>RequestExpired</Code>" in data
    skew = _date_of(hdrs) - time.time()
    assert 3590 < skew < 3610, skew
    assert _signed(sim, round(skew))[0] == 200
    assert sim.get_json("/_sim/clock")["offset_s"] == 3600
    st, _, _ = http_request(sim.port, "POST", "/_sim/clock", body=b'{"offset_s": "x"}')
    assert st == 400
    sim.stop()
    sim = Sim("--instances", "20", "--clock-offset", "-400", "--no-auth", "--p-truncate", "1")
    st, hdrs, _ = http_request(sim.port, "GET", "/_sim/health")
    assert -410 < _date_of(hdrs) - time.time() < -390
    # a truncated answer carries Date too (read the head only)
    c = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=10)
    c.request("POST", "/", body=BODY, headers=FORM)
    r = c.getresponse()
    assert r.getheader("Date") and r.status == 200
    c.close()
    sim.stop()


def test_hang_a_fraction_of_calls():
    """p_hang 0.02 hangs about 2 % of the calls (bounded by hang_max_ms, then closed without
    an answer); the rest answer at once. The draw is seeded: the same run twice hangs the
    same calls."""
    seen = []
    for _ in range(2):
        sim = Sim("--instances", "10", "--no-auth", "--p-hang", "0.02", "--hang-max-ms", "100",
                  "--fault-seed", "5")
        hung = [i for i in range(800) if raw(sim, timeout=5)[0] != 200]
        stats = sim.stats()
        assert stats["faults"]["hang"] == len(hung), (stats["faults"], len(hung))
        assert 6 <= len(hung) <= 32, len(hung)
        seen.append(hung)
        sim.stop()
    assert seen[0] == seen[1]


def test_next_calls_fates_in_order():
    """"next": the fates of the next calls, in order, before any draw: a hung first attempt
    that a retrying client survives, then a 500, then normal answers; per scope too."""
    sim = Sim("--instances", "20", "--hang-max-ms", "3000")
    doc = sim.faults(next=["hang", "500"])
    assert doc["next"] == ["hang", "500"]
    c = client(sim, retries=3, read_timeout=1)
    t0 = time.monotonic()
    assert c.describe_volumes(MaxResults=5)["Volumes"]  # hang (timeout), 500, then the answer
    assert 0.9 < time.monotonic() - t0 < 8  # a 1 s read timeout, then botocore's backoffs
    st = sim.stats()
    assert st["faults"]["hang"] == 1 and st["faults"]["500"] == 1 and st["calls"]["DescribeVolumes"] == 3
    assert sim.get_json("/_sim/faults")["next"] == []
    # scoped: only eu-west-1's next call fails
    sim.faults(region="eu-west-1", next=["503"])
    assert client(sim).describe_volumes(MaxResults=5)["Volumes"]
    eu = boto3.client("ec2", region_name="eu-west-1", endpoint_url=sim.url,
                      aws_access_key_id=TEST_ACCESS_KEY, aws_secret_access_key=TEST_SECRET_KEY,
                      config=Config(retries={"total_max_attempts": 1}))
    try:
        eu.describe_volumes(MaxResults=5)
        raise AssertionError("eu-west-1's next call is a 503")
    except botocore.exceptions.ClientError as e:
        assert e.response["Error"]["Code"] == "Unavailable"
    assert eu.describe_volumes(MaxResults=5)["Volumes"]
    for bad in (b'{"next": ["nope"]}', b'{"next": "hang"}', b'{"next": ["disabled"]}'):
        assert http_request(sim.port, "POST", "/_sim/faults", body=bad)[0] == 400, bad
    sim.stop()


run(globals())
