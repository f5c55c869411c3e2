"""Secrets never leave ebsd: it runs with known secret values in every credential source it
may read, and every byte it writes (stdout and stderr log lines), every response body and
header and /metrics are searched for each secret (raw, URL-encoded, base64): none found.

Sources, one ebsd each (the chain stops at the first source that has credentials):
- environment: AWS_SECRET_ACCESS_KEY + AWS_SESSION_TOKEN (and, present but unused, a
  container authorization token and a shared credentials file);
- shared credentials file: aws_secret_access_key + aws_session_token of a profile;
- container credentials: a fake endpoint on 127.0.0.1 answering SecretAccessKey and Token,
  behind an AWS_CONTAINER_AUTHORIZATION_TOKEN;
plus bearer tokens for ebsd's own auth (security.auth_tokens_file), and a wrong secret for a
key the simulator knows (502 SignatureDoesNotMatch). Each run drives every route, the
error statuses (400, 401, 404, 502, 504), SIGHUP, /metrics and /readyz. `ebsd --once
volumes-total` is checked the same way.
"""
import base64
import datetime
import json
import os
import signal
import subprocess
import sys
import tempfile
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import EBSD_BIN, Ebsd, FakeHTTP, Sim, run  # noqa: E402


def iso(delta_s):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=delta_s)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def container(body, want_auth):
    """A fake container-credentials endpoint on 127.0.0.1: answers `body` to requests carrying
    Authorization == want_auth, 401 otherwise."""
    def route(method, path, headers, _body):
        ok = headers.get("Authorization") == want_auth
        return (200 if ok else 401, "application/json", body if ok else '{"message":"bad token"}')
    return FakeHTTP(route)


SECRETS = []


def secret(tag, n=24):
    # '/' and '+' make the URL-encoded and base64 forms differ from the raw one.
    s = "%s/%s+%s" % (tag, os.urandom(n // 2).hex(), os.urandom(4).hex())
    SECRETS.append(s)
    return s


def forms(s):
    b = s.encode()
    out = {s, urllib.parse.quote(s, safe=""), urllib.parse.quote_plus(s),
           base64.b64encode(b).decode(), base64.urlsafe_b64encode(b).decode().rstrip("=")}
    # a leaked prefix is a leak too (a secret cut by a length cap); 16 chars is plenty
    out.add(s[:16])
    return out


TMP = tempfile.mkdtemp(prefix="ebsd-secrets-")


def write(name, text, mode=0o600):
    p = os.path.join(TMP, name)
    with open(p, "w") as f:
        f.write(text)
    os.chmod(p, mode)
    return p


def scrub_env(extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["HOME"] = TMP
    env["AWS_REGION"] = "us-east-1"
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    env.update(extra)
    return env


def find_leaks(where, data):
    if isinstance(data, str):
        data = data.encode("utf-8", "replace")
    leaks = []
    for s in SECRETS:
        for f in forms(s):
            if f.encode() in data:
                leaks.append("%s: %r (form %r)" % (where, s, f))
    return leaks


BEARER = None


def drive(e, sim, label):
    """Every route and error path; returns [(where, bytes)] of everything the client saw."""
    seen = []
    ids = sorted(sim.truth()["instances"])
    auth = {"Authorization": "Bearer " + BEARER}

    def get(path, headers=None, want=None):
        h = dict(auth)
        h.update(headers or {})
        st, hdrs, body = e.get(path, headers=h, timeout=30)
        seen.append(("%s %s -> %d" % (label, path, st),
                     body + b"\n" + "\n".join("%s: %s" % kv for kv in hdrs.items()).encode()))
        if want is not None:
            assert st in want, (label, path, st, body[:400])
        return st

    get("/volumes/total", want={200})
    get("/volumes/total?detail=instances", headers={"Cache-Control": "no-cache"}, want={200})
    get("/instances/%s/volumes" % ids[0], want={200})
    get("/instances/i-0000000000000dead/volumes", want={404})
    get("/instances/bogus/volumes", want={400})
    get("/volumes/total?region=xx-nowhere-1", want={400})
    get("/nope", want={404})
    # 401: no token, a wrong token, and a token that is a secret itself
    for h in ({"Authorization": ""}, {"Authorization": "Bearer " + secret("wrongbearer")},
              {"Authorization": "Basic " + base64.b64encode(BEARER.encode()).decode()}):
        get("/volumes/total", headers=h, want={401})
        get("/metrics", headers=h, want={401})
    st, hdrs, body = e.request("POST", "/volumes/total", body=b"x", headers=auth)
    seen.append((label + " POST", body + str(hdrs).encode()))
    # EC2 faults: 502 (500s, resets, malformed), 504 (hang)
    sim.faults(p_500=1.0)
    get("/volumes/total", headers={"Cache-Control": "no-cache"}, want={200, 502})
    sim.faults(clear=True, p_malformed=1.0)
    get("/instances/%s/volumes" % ids[1], want={502})
    sim.faults(clear=True, p_hang=1.0, hang_max_ms=20000)
    get("/instances/%s/volumes?timeout_ms=800" % ids[2], want={504})
    sim.faults(clear=True)
    n = len(e.lines)
    e.signal(signal.SIGHUP)
    e.wait_line(lambda l: "reload" in l or "config" in l, timeout=15, start=n)
    get("/readyz", want={200})
    get("/healthz", want={200})
    get("/openapi.yaml", want={200})
    get("/metrics", want={200})
    get("/volumes/total", headers={"Cache-Control": "no-cache"}, want={200})
    return seen


CONFIG = """\
security:
  auth_tokens_file: {tokens}
cache:
  min_refresh_s: 0
log:
  level: debug
"""


def boot_and_check(label, env, sim):
    tokens = write("tokens-%s" % label, BEARER + "\n")
    e = Ebsd(CONFIG.format(tokens=tokens), env=env)
    leaks = []
    try:
        seen = drive(e, sim, label)
        for where, data in seen:
            leaks += find_leaks(where, data)
    finally:
        rc = e.stop()
    leaks += find_leaks(label + " log", "\n".join(e.lines))
    assert rc == 0, (label, rc, e.lines[-10:])
    # the right source was used (so the secrets were really loaded)
    assert any("credentials" in l for l in e.lines), e.lines[:20]
    return leaks, e


def setup():
    global BEARER
    BEARER = secret("bearer")


def test_detector_finds_every_form():
    s = secret("selftest")
    for f in (s, urllib.parse.quote(s, safe=""), base64.b64encode(s.encode()).decode()):
        assert find_leaks("self", "x" + f + "y"), f
    SECRETS.remove(s)


def test_environment_and_files_present():
    setup()
    ak, sk, tok = "AKIDENVSECRETS01", secret("envsk"), secret("envtok")
    cred = write("credentials", "[default]\naws_access_key_id = AKIDFILEUNUSED\n"
                 "aws_secret_access_key = %s\naws_session_token = %s\n"
                 % (secret("unusedfilesk"), secret("unusedfiletok")))
    sim = Sim("--instances", "30", "--credentials", "%s:%s" % (ak, sk))
    env = scrub_env({"AWS_ACCESS_KEY_ID": ak, "AWS_SECRET_ACCESS_KEY": sk,
                     "AWS_SESSION_TOKEN": tok, "AWS_SHARED_CREDENTIALS_FILE": cred,
                     "AWS_CONTAINER_AUTHORIZATION_TOKEN": secret("unusedcontauth"),
                     "AWS_ENDPOINT_URL_EC2": sim.url})
    try:
        leaks, e = boot_and_check("env", env, sim)
        assert any("environment" in l for l in e.lines if "credentials" in l), e.lines[:10]
        # --once with the same environment
        p = subprocess.run([EBSD_BIN, "--once", "volumes-total"], env=env, capture_output=True,
                           timeout=60)
        assert p.returncode == 0, (p.returncode, p.stderr[-500:])
        assert b"total_gib" in p.stdout, p.stdout[:300]
        leaks += find_leaks("--once stdout", p.stdout) + find_leaks("--once stderr", p.stderr)
        # --once with a wrong secret: an error message, no secret
        bad = dict(env, AWS_SECRET_ACCESS_KEY=secret("wrongsk"))
        p = subprocess.run([EBSD_BIN, "--once", "volumes-total"], env=bad, capture_output=True,
                           timeout=60)
        assert p.returncode != 0 and b"SignatureDoesNotMatch" in (p.stdout + p.stderr), (
            p.returncode, p.stdout[-300:], p.stderr[-300:])
        leaks += find_leaks("--once (wrong) out", p.stdout + p.stderr)
    finally:
        sim.stop()
    assert not leaks, "\n".join(leaks[:20])


def test_shared_credentials_file():
    setup()
    ak, sk, tok = "AKIDFILESECRETS1", secret("filesk"), secret("filetok")
    cred = write("credentials2", "[default]\naws_access_key_id = %s\n"
                 "aws_secret_access_key = %s\naws_session_token = %s\n" % (ak, sk, tok))
    sim = Sim("--instances", "30", "--credentials", "%s:%s" % (ak, sk))
    env = scrub_env({"AWS_SHARED_CREDENTIALS_FILE": cred, "AWS_ENDPOINT_URL_EC2": sim.url,
                     "AWS_CONFIG_FILE": write("config", "[default]\nregion = us-east-1\n")})
    try:
        leaks, e = boot_and_check("file", env, sim)
        assert any("profile" in l for l in e.lines if "credentials" in l), e.lines[:10]
    finally:
        sim.stop()
    assert not leaks, "\n".join(leaks[:20])


def test_container_credentials():
    setup()
    ak, sk, tok = "ASIACONTSECRETS1", secret("contsk"), secret("conttok")
    auth = secret("contauth")
    body = json.dumps({"AccessKeyId": ak, "SecretAccessKey": sk, "Token": tok,
                       "Expiration": iso(3600)})
    c = container(body=body, want_auth=auth)
    sim = Sim("--instances", "30", "--credentials", "%s:%s" % (ak, sk))
    env = scrub_env({"AWS_CONTAINER_CREDENTIALS_FULL_URI": c.url + "/creds",
                     "AWS_CONTAINER_AUTHORIZATION_TOKEN": auth, "AWS_ENDPOINT_URL_EC2": sim.url})
    try:
        leaks, e = boot_and_check("container", env, sim)
        assert any("container" in l for l in e.lines if "credentials" in l), e.lines[:10]
        assert c.requests, "the container endpoint was never asked"
    finally:
        sim.stop()
        c.stop()
    assert not leaks, "\n".join(leaks[:20])


def test_wrong_secret_502():
    setup()
    ak, good, wrong = "AKIDWRONGSECRET1", secret("goodsk"), secret("wrongsk")
    sim = Sim("--instances", "10", "--credentials", "%s:%s" % (ak, good))
    env = scrub_env({"AWS_ACCESS_KEY_ID": ak, "AWS_SECRET_ACCESS_KEY": wrong,
                     "AWS_SESSION_TOKEN": secret("wrongtok"), "AWS_ENDPOINT_URL_EC2": sim.url})
    tokens = write("tokens-wrong", BEARER + "\n")
    e = Ebsd(CONFIG.format(tokens=tokens), env=env)
    leaks = []
    try:
        h = {"Authorization": "Bearer " + BEARER}
        for path in ("/volumes/total", "/instances/i-0123456789abcdef0/volumes", "/metrics",
                     "/readyz"):
            st, hdrs, body = e.get(path, headers=h)
            if path.startswith("/v") or path.startswith("/i"):
                assert st == 502 and b"SignatureDoesNotMatch" in body, (path, st, body[:300])
            leaks += find_leaks("wrong " + path, body + str(hdrs).encode())
    finally:
        e.stop()
        sim.stop()
    leaks += find_leaks("wrong log", "\n".join(e.lines))
    assert not leaks, "\n".join(leaks[:20])


run(globals())
