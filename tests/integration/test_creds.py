"""The credential chain, driven through tests/tools/creds_probe against fake instance
metadata, container and STS endpoints (http.server on 127.0.0.1, port 0, in threads).
Every probe runs with a scrubbed environment: no AWS_* from outside, HOME in a temporary
directory, IMDS disabled unless a test points it at the fake, STS at the fake. No traffic
leaves 127.0.0.1.
"""
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SLOW, run  # noqa: E402
from harness import FakeHTTP as Fake  # noqa: E402

TOOLS = os.environ.get("EBSD_TOOLS_DIR", "build/tests/tools")
PROBE = os.path.join(TOOLS, "creds_probe")

SECRETS = set()  # every secret and token handed out; none may ever be printed


def secret(tag):
    s = "SECRET%s%s" % (tag, os.urandom(8).hex())
    SECRETS.add(s)
    return s


def iso(delta_s):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=delta_s)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def creds_json(ak, exp_s=3600, **over):
    d = {"Code": "Success", "AccessKeyId": ak, "SecretAccessKey": secret("sk"),
         "Token": secret("tok"), "Expiration": iso(exp_s)}
    d.update(over)
    return json.dumps({k: v for k, v in d.items() if v is not None})


def imds(ak="ASIAIMDS", token_status=200, exp_s=3600, creds_body=None, creds_status=200):
    """A fake IMDS with role 'ebsd-role'. token_status None hangs the token PUT."""
    tok = secret("imdstoken")
    state = {"v1_used": False}

    def route(method, path, headers, body):
        if path == "/latest/api/token":
            if method != "PUT":
                return 405, "text/plain", ""
            if headers.get("X-aws-ec2-metadata-token-ttl-seconds") != "21600":
                return 400, "text/plain", "missing ttl"
            if token_status is None:
                return None
            return token_status, "text/plain", tok if token_status == 200 else ""
        given = headers.get("X-aws-ec2-metadata-token")
        if given is None:
            state["v1_used"] = True
        elif given != tok:
            return 401, "text/plain", ""
        if path == "/latest/meta-data/iam/security-credentials/":
            return 200, "text/plain", "ebsd-role"
        if path == "/latest/meta-data/iam/security-credentials/ebsd-role":
            if creds_body == "HANG":
                return None
            return creds_status, "application/json", (creds_body if creds_body is not None
                                                      else creds_json(ak, exp_s))
        return 404, "text/plain", ""

    f = Fake(route)
    f.state = state
    return f


def sts(ak="ASIASTS", exp_s=3600, status=200, body=None):
    def route(method, path, headers, raw):
        form = dict(urllib.parse.parse_qsl(raw.decode()))
        if body is not None:
            return status, "text/xml", body
        action = form.get("Action")
        return status, "text/xml", (
            '<%sResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><%sResult>'
            "<Credentials><AccessKeyId>%s</AccessKeyId><SecretAccessKey>%s</SecretAccessKey>"
            "<SessionToken>%s</SessionToken><Expiration>%s</Expiration></Credentials>"
            "</%sResult></%sResponse>" % (action, action, ak + "-" + action, secret("stssk"),
                                          secret("ststok"), iso(exp_s), action, action))
    return Fake(route)


def container(ak="ASIACONT", status=200, body=None, want_auth=None):
    def route(method, path, headers, raw):
        if want_auth is not None and headers.get("Authorization") != want_auth:
            return 401, "application/json", '{"message":"bad token"}'
        if body == "HANG":
            return None
        return status, "application/json", body if body is not None else creds_json(ak)
    return Fake(route)


TMP = tempfile.mkdtemp(prefix="ebsd-creds-")


def write(name, text):
    path = os.path.join(TMP, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def probe(env=None, deadline_ms=8000, margin=300):
    e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.path.join(TMP, "home"),
         "AWS_EC2_METADATA_DISABLED": "true", "AWS_ENDPOINT_URL_STS": "http://127.0.0.1:9"}
    for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
        if k in os.environ:
            e[k] = os.environ[k]
    e.update(env or {})
    e = {k: v for k, v in e.items() if v is not None}
    t0 = time.time()
    p = subprocess.run([PROBE, "--deadline-ms", str(deadline_ms), "--margin-s", str(margin)],
                       env=e, capture_output=True, text=True, timeout=60 * SLOW)
    out = p.stdout + p.stderr
    for s in SECRETS:
        assert s not in out, "a secret was printed: %s" % out
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    assert lines, out
    res = json.loads(lines[-1])
    res["rc"] = p.returncode
    res["wall"] = time.time() - t0
    return res


def ok(res, source, ak=None):
    assert res["rc"] == 0 and res.get("source") == source, res
    if ak:
        assert res["access_key_id"] == ak, res
    return res


def fails(res, source, *words):
    assert res["rc"] == 1 and "error" in res, res
    assert res["source"] == source, res
    for w in words:
        assert w.lower() in res["error"].lower(), (w, res)
    return res


ENV_KEYS = {"AWS_ACCESS_KEY_ID": "AKIAENV", "AWS_SECRET_ACCESS_KEY": secret("env")}

# ---- each source ----------------------------------------------------------------------------


def test_environment():
    ok(probe(ENV_KEYS), "environment", "AKIAENV")
    r = ok(probe(dict(ENV_KEYS, AWS_SESSION_TOKEN=secret("envtok"))), "environment")
    assert r["has_session_token"] and r["expiration"] is None and not r["expiring"]
    fails(probe({"AWS_ACCESS_KEY_ID": "AKIAENV"}), "environment", "AWS_SECRET_ACCESS_KEY")


def test_web_identity():
    s = sts()
    jwt = secret("jwt")
    tf = write("token.jwt", jwt + "\n")
    try:
        r = ok(probe({"AWS_WEB_IDENTITY_TOKEN_FILE": tf, "AWS_ROLE_ARN": "arn:aws:iam::1:role/r",
                      "AWS_ROLE_SESSION_NAME": "sess1", "AWS_ENDPOINT_URL_STS": s.url}),
               "web-identity", "ASIASTS-AssumeRoleWithWebIdentity")
        assert r["has_session_token"] and r["expiration"]
        method, path, headers, body = s.requests[-1]
        form = dict(urllib.parse.parse_qsl(body.decode()))
        assert method == "POST" and form["Action"] == "AssumeRoleWithWebIdentity", form
        assert form["WebIdentityToken"] == jwt and form["RoleSessionName"] == "sess1", form
        assert form["RoleArn"] == "arn:aws:iam::1:role/r" and form["Version"] == "2011-06-15"
        assert "Authorization" not in headers  # unsigned call
        fails(probe({"AWS_WEB_IDENTITY_TOKEN_FILE": tf}), "web-identity", "AWS_ROLE_ARN")
        fails(probe({"AWS_WEB_IDENTITY_TOKEN_FILE": os.path.join(TMP, "nope"),
                     "AWS_ROLE_ARN": "arn:aws:iam::1:role/r", "AWS_ENDPOINT_URL_STS": s.url}),
              "web-identity", "open", "No such file")
    finally:
        s.stop()


def test_web_identity_sts_error():
    s = sts(status=400, body='<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            "<Error><Type>Sender</Type><Code>InvalidIdentityToken</Code><Message>Token is "
            "expired</Message></Error><RequestId>r1</RequestId></ErrorResponse>")
    tf = write("token2.jwt", secret("jwt"))
    try:
        fails(probe({"AWS_WEB_IDENTITY_TOKEN_FILE": tf, "AWS_ROLE_ARN": "arn:aws:iam::1:role/r",
                     "AWS_ENDPOINT_URL_STS": s.url}),
              "web-identity", "AssumeRoleWithWebIdentity", "HTTP 400", "InvalidIdentityToken")
    finally:
        s.stop()


def test_profile_static_and_files():
    long_token = secret("longtok") + "A" * 1500  # longer than libinih's 200-byte lines
    SECRETS.add(long_token)
    cred = write("credentials", "[default]\naws_access_key_id = AKIADEFAULT\n"
                 "aws_secret_access_key = %s\n\n[dev]\naws_access_key_id=AKIADEV\n"
                 "aws_secret_access_key=%s\naws_session_token = %s\n"
                 % (secret("def"), secret("dev"), long_token))
    conf = write("config", "# comment\n[default]\nregion = us-west-2\n\n[profile cfgonly]\n"
                 "aws_access_key_id = AKIACFG\naws_secret_access_key = %s\n" % secret("cfg"))
    files = {"AWS_SHARED_CREDENTIALS_FILE": cred, "AWS_CONFIG_FILE": conf}
    ok(probe(files), "profile:default", "AKIADEFAULT")
    r = ok(probe(dict(files, AWS_PROFILE="dev")), "profile:dev", "AKIADEV")
    assert r["has_session_token"]
    ok(probe(dict(files, AWS_PROFILE="cfgonly")), "profile:cfgonly", "AKIACFG")
    fails(probe(dict(files, AWS_PROFILE="missing")), "profile:missing", "neither")
    # Default locations under HOME.
    home = os.path.join(TMP, "home2")
    os.makedirs(os.path.join(home, ".aws"), exist_ok=True)
    with open(os.path.join(home, ".aws", "credentials"), "w") as f:
        f.write("[default]\naws_access_key_id=AKIAHOME\naws_secret_access_key=%s\n" % secret("h"))
    ok(probe({"HOME": home}), "profile:default", "AKIAHOME")
    # Partial keys and a malformed file are clear errors.
    bad = write("bad-credentials", "[default]\naws_access_key_id = AKIAX\n")
    fails(probe({"AWS_SHARED_CREDENTIALS_FILE": bad}), "profile:default",
          "aws_secret_access_key")
    broken = write("broken-config", "[default\nregion\n")
    fails(probe({"AWS_CONFIG_FILE": broken}), "profile:default", "line")


def test_profile_assume_role():
    s = sts()
    cred = write("credentials-role", "[base]\naws_access_key_id = AKIABASE\n"
                 "aws_secret_access_key = %s\n" % secret("base"))
    conf = write("config-role", "[profile ops]\nrole_arn = arn:aws:iam::2:role/ops\n"
                 "source_profile = base\nexternal_id = ext-1\nrole_session_name = ops-sess\n"
                 "region = eu-west-1\n\n[profile loop]\nrole_arn = arn:aws:iam::2:role/x\n"
                 "source_profile = loop2\n[profile loop2]\nrole_arn = arn:aws:iam::2:role/y\n"
                 "source_profile = loop\n")
    env = {"AWS_SHARED_CREDENTIALS_FILE": cred, "AWS_CONFIG_FILE": conf,
           "AWS_ENDPOINT_URL_STS": s.url}
    try:
        r = ok(probe(dict(env, AWS_PROFILE="ops")), "profile:ops", "ASIASTS-AssumeRole")
        assert r["has_session_token"] and r["expiration"]
        method, path, headers, body = s.requests[-1]
        form = dict(urllib.parse.parse_qsl(body.decode()))
        assert form["Action"] == "AssumeRole" and form["RoleArn"] == "arn:aws:iam::2:role/ops"
        assert form["ExternalId"] == "ext-1" and form["RoleSessionName"] == "ops-sess", form
        auth = headers.get("Authorization", "")
        assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIABASE/"), auth
        assert "/eu-west-1/sts/aws4_request" in auth and "x-amz-date" in auth, auth
        fails(probe(dict(env, AWS_PROFILE="loop")), "profile:loop", "chain")
    finally:
        s.stop()


def test_container():
    tok = secret("ctok")
    c = container(want_auth=tok)
    try:
        full = c.url + "/v1/credentials"
        r = ok(probe({"AWS_CONTAINER_CREDENTIALS_FULL_URI": full,
                      "AWS_CONTAINER_AUTHORIZATION_TOKEN": tok}), "container", "ASIACONT")
        assert r["has_session_token"] and r["expiration"]
        tf = write("ctoken", tok + "\n")
        ok(probe({"AWS_CONTAINER_CREDENTIALS_FULL_URI": full,
                  "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": tf,
                  "AWS_CONTAINER_AUTHORIZATION_TOKEN": "ignored-when-file-set"}), "container")
        fails(probe({"AWS_CONTAINER_CREDENTIALS_FULL_URI": full,
                     "AWS_CONTAINER_AUTHORIZATION_TOKEN": "wrong"}), "container", "HTTP 401")
        # "localhost" is loopback too.
        ok(probe({"AWS_CONTAINER_CREDENTIALS_FULL_URI": full.replace("127.0.0.1", "localhost"),
                  "AWS_CONTAINER_AUTHORIZATION_TOKEN": tok}), "container")
    finally:
        c.stop()


def test_container_full_uri_refuses_remote_http():
    for url in ("http://example.com/creds", "http://10.0.0.1/creds", "http://169.254.169.254/x",
                "http://user@127.0.0.1/x", "ftp://127.0.0.1/x"):
        r = fails(probe({"AWS_CONTAINER_CREDENTIALS_FULL_URI": url}), "container")
        assert r["wall"] < 2 * SLOW, r  # refused before any connection attempt


def test_imds_v2():
    f = imds()
    try:
        r = ok(probe({"AWS_EC2_METADATA_DISABLED": None,
                      "AWS_EC2_METADATA_SERVICE_ENDPOINT": f.url + "/"}), "imds", "ASIAIMDS")
        assert r["has_session_token"] and r["expiration"]
        assert not f.state["v1_used"]
        assert [q[0] for q in f.requests] == ["PUT", "GET", "GET"], f.requests
    finally:
        f.stop()


def test_imds_v1_fallback_and_disabled():
    for code in (404, 405):
        f = imds(token_status=code)
        env = {"AWS_EC2_METADATA_DISABLED": None, "AWS_EC2_METADATA_SERVICE_ENDPOINT": f.url}
        try:
            ok(probe(env), "imds", "ASIAIMDS")
            assert f.state["v1_used"]
            fails(probe(dict(env, AWS_EC2_METADATA_V1_DISABLED="true")), "imds",
                  "IMDSv1 is disabled")
        finally:
            f.stop()
    # A hanging token call falls back to v1 after ~1 s.
    f = imds(token_status=None)
    try:
        r = ok(probe({"AWS_EC2_METADATA_DISABLED": None,
                      "AWS_EC2_METADATA_SERVICE_ENDPOINT": f.url}), "imds")
        assert f.state["v1_used"] and r["wall"] < 4 * SLOW, r
    finally:
        f.stop()
    # 403 on the token: no fallback.
    f = imds(token_status=403)
    try:
        fails(probe({"AWS_EC2_METADATA_DISABLED": None,
                     "AWS_EC2_METADATA_SERVICE_ENDPOINT": f.url}), "imds", "403")
        assert not f.state["v1_used"]
    finally:
        f.stop()


def test_imds_disabled_and_unreachable():
    r = fails(probe({}), "chain", "no credentials found", "AWS_EC2_METADATA_DISABLED")
    assert r["status"] == "not found"
    # Nothing listening: quick "not found", naming IMDS.
    f = Fake(lambda *a: (200, "text/plain", ""))
    port_url = f.url
    f.stop()
    r = fails(probe({"AWS_EC2_METADATA_DISABLED": None,
                     "AWS_EC2_METADATA_SERVICE_ENDPOINT": port_url}), "chain", "cannot connect")
    assert r["wall"] < 3 * SLOW, r


# ---- order -----------------------------------------------------------------------------------


def test_order():
    s, c, f = sts(), container(), imds()
    tf = write("token-order.jwt", secret("jwt"))
    cred = write("credentials-order", "[default]\naws_access_key_id=AKIAFILE\n"
                 "aws_secret_access_key=%s\n" % secret("file"))
    layers = [
        ("environment", ENV_KEYS),
        ("web-identity", {"AWS_WEB_IDENTITY_TOKEN_FILE": tf,
                          "AWS_ROLE_ARN": "arn:aws:iam::1:role/r"}),
        ("profile:default", {"AWS_SHARED_CREDENTIALS_FILE": cred}),
        ("container", {"AWS_CONTAINER_CREDENTIALS_FULL_URI": c.url + "/creds"}),
        ("imds", {"AWS_EC2_METADATA_DISABLED": None, "AWS_EC2_METADATA_SERVICE_ENDPOINT": f.url}),
    ]
    try:
        for i, (want, _) in enumerate(layers):
            env = {"AWS_ENDPOINT_URL_STS": s.url}
            for _, e in layers[i:]:
                env.update(e)
            ok(probe(env), want)
    finally:
        s.stop(), c.stop(), f.stop()


# ---- refresh and bad answers ----------------------------------------------------------------


def test_expiring_credentials():
    c = container(body=creds_json("ASIASOON", exp_s=120))
    try:
        env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": c.url + "/x"}
        assert ok(probe(env, margin=300), "container")["expiring"] is True
        assert ok(probe(env, margin=60), "container")["expiring"] is False
    finally:
        c.stop()
    f = imds(exp_s=200)
    try:
        r = ok(probe({"AWS_EC2_METADATA_DISABLED": None,
                      "AWS_EC2_METADATA_SERVICE_ENDPOINT": f.url}), "imds")
        assert r["expiring"] is True
    finally:
        f.stop()


def test_container_bad_answers():
    cases = [
        (dict(body="{not json"), "not a JSON object"),
        (dict(body=json.dumps({"AccessKeyId": "A", "Token": "t"})), "lacks SecretAccessKey"),
        (dict(body=creds_json("ASIAOLD", exp_s=-60)), "expired"),
        (dict(body=creds_json("ASIAX", Expiration="tomorrow")), "RFC 3339"),
        (dict(status=500, body='{"message":"%s"}' % secret("leak")), "HTTP 500"),
    ]
    for kw, words in cases:
        c = container(**kw)
        try:
            fails(probe({"AWS_CONTAINER_CREDENTIALS_FULL_URI": c.url + "/x"}), "container",
                  words)
        finally:
            c.stop()
    c = container(body="HANG")
    try:
        r = fails(probe({"AWS_CONTAINER_CREDENTIALS_FULL_URI": c.url + "/x"}, deadline_ms=1500),
                  "container", "deadline")
        assert r["wall"] < 4 * SLOW, r
    finally:
        c.stop()


def test_imds_bad_answers():
    cases = [
        (dict(creds_body="<html>"), "not a JSON object"),
        (dict(creds_body=creds_json("ASIAX", Token=None)), "lacks Token"),
        (dict(creds_body=creds_json("ASIAX", Code="AssumeRoleUnauthorizedAccess")), "Code"),
        (dict(exp_s=-10), "expired"),
        (dict(creds_status=500), "HTTP 500"),
        (dict(creds_body="HANG"), "deadline"),
    ]
    for kw, words in cases:
        f = imds(**kw)
        try:
            r = fails(probe({"AWS_EC2_METADATA_DISABLED": None,
                             "AWS_EC2_METADATA_SERVICE_ENDPOINT": f.url}), "imds", words)
            assert r["wall"] < 4 * SLOW, r
        finally:
            f.stop()


def test_sts_bad_answers():
    tf = write("token3.jwt", secret("jwt"))
    for kw, words in [(dict(body="not xml"), "not XML"),
                      (dict(body="<AssumeRoleWithWebIdentityResponse/>"), "lacks"),
                      (dict(exp_s=-5), "expired"),
                      (dict(status=500, body="<x/>"), "HTTP 500")]:
        s = sts(**kw)
        try:
            fails(probe({"AWS_WEB_IDENTITY_TOKEN_FILE": tf, "AWS_ROLE_ARN": "arn:aws:iam::1:role/r",
                         "AWS_ENDPOINT_URL_STS": s.url}), "web-identity", words)
        finally:
            s.stop()


run(globals())
