"""credential_process in the credential chain, driven through tests/tools/creds_probe: a
profile whose credential_process prints the SDKs' JSON gives those credentials with their
expiry; a failing helper stops the chain with an error that names the profile and the
program but never its stderr; a role_arn profile can take its source credentials from a
credential_process profile (the AssumeRole goes to a fake STS on 127.0.0.1). Static keys
in the same profile win, as in botocore (credentials file before credential_process)."""
import datetime
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import FakeHTTP, SLOW, run  # noqa: E402

TOOLS = os.environ.get("EBSD_TOOLS_DIR", "build/tests/tools")
PROBE = os.path.join(TOOLS, "creds_probe")
TMP = tempfile.mkdtemp(prefix="ebsd-credproc-")
SECRET = "procSECRETvalue"
STDERR_SECRET = "stderrSECRETvalue"


def write(name, text, mode=0o600):
    path = os.path.join(TMP, name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def helper(name, exp=None, exit_code=0, ak="AKIDPROC"):
    body = {"Version": 1, "AccessKeyId": ak, "SecretAccessKey": SECRET,
            "SessionToken": "procTOKEN"}
    if exp:
        body["Expiration"] = exp
    return write(name, "#!/bin/sh\necho %s >&2\necho '%s'\nexit %d\n"
                 % (STDERR_SECRET, json.dumps(body), exit_code), 0o700)


def probe(config, extra=None):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": TMP,
           "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": config,
           "AWS_SHARED_CREDENTIALS_FILE": os.path.join(TMP, "none")}
    for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
        if k in os.environ:
            env[k] = os.environ[k]
    env.update(extra or {})
    p = subprocess.run([PROBE, "--deadline-ms", "8000"], env=env, capture_output=True,
                       text=True, timeout=60 * SLOW)
    out = p.stdout + p.stderr
    assert SECRET not in out and STDERR_SECRET not in out, out
    return p.returncode, json.loads(p.stdout.splitlines()[-1])


def test_process_credentials_with_expiry():
    exp = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=3))
    h = helper("ok.sh", exp.strftime("%Y-%m-%dT%H:%M:%SZ"))
    cfg = write("config1", "[profile dev]\ncredential_process = %s --profile 'two words'\n" % h)
    rc, out = probe(cfg, {"AWS_PROFILE": "dev"})
    assert rc == 0, out
    assert out["source"] == "profile:dev" and out["access_key_id"] == "AKIDPROC", out
    assert out["has_session_token"] is True, out
    assert out["expiration"] == exp.strftime("%Y-%m-%dT%H:%M:%SZ"), out
    assert out["expiring"] is True, out  # within the 300 s margin: a refresh is due

    # static keys in the profile win over credential_process
    cfg = write("config2", "[default]\naws_access_key_id = AKIDSTATIC\n"
                "aws_secret_access_key = x\ncredential_process = %s\n" % h)
    rc, out = probe(cfg)
    assert rc == 0 and out["access_key_id"] == "AKIDSTATIC", out


def test_failing_helper_stops_the_chain():
    h = helper("fail.sh", exit_code=2)
    cfg = write("config3", "[default]\ncredential_process = %s\n" % h)
    rc, out = probe(cfg)
    assert rc == 1, out
    assert out["source"] == "profile:default", out
    assert "fail.sh" in out["error"] and "status 2" in out["error"], out
    assert out["status"] == "authentication error", out

    cfg = write("config4", "[default]\ncredential_process = /nonexistent/helper\n")
    rc, out = probe(cfg)
    assert rc == 1 and "not found" in out["error"], out


def test_role_from_process_source():
    sts_xml = ('<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
               "<AssumeRoleResult><Credentials><AccessKeyId>ASIAROLE</AccessKeyId>"
               "<SecretAccessKey>rolesecret</SecretAccessKey><SessionToken>roletoken"
               "</SessionToken><Expiration>2031-01-01T00:00:00Z</Expiration></Credentials>"
               "</AssumeRoleResult></AssumeRoleResponse>")
    fake = FakeHTTP(lambda m, p, h, b: (200, "text/xml", sts_xml))
    try:
        h = helper("src.sh", ak="AKIDSOURCE")
        cfg = write("config5", "[profile src]\ncredential_process = %s\n"
                    "[profile ops]\nrole_arn = arn:aws:iam::111122223333:role/r\n"
                    "source_profile = src\nregion = eu-west-1\n" % h)
        rc, out = probe(cfg, {"AWS_PROFILE": "ops", "AWS_ENDPOINT_URL_STS": fake.url})
        assert rc == 0 and out["access_key_id"] == "ASIAROLE", out
        auth = fake.requests[-1][2]["Authorization"]
        assert "Credential=AKIDSOURCE/" in auth, auth
    finally:
        fake.stop()


if __name__ == "__main__":
    run(globals())
