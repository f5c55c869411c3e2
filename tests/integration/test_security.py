"""Secrets and privileges (issue: hardening): ebsd refuses to serve as root unless told to,
or drops to security.run_as_user after binding; the shipped deploy files run it
unprivileged; optional bearer-token auth on the data endpoints and /metrics (health,
readiness and the spec stay open), tokens from a file that must not be world-readable,
reloaded on SIGHUP and never logged."""
import json
import os
import re
import signal
import subprocess
import tempfile
import time

from harness import (EBSD_BIN, SOURCE_DIR, Ebsd, Proc, Sim, http_request, run, sim_env,
                     write_config)

IS_ROOT = os.geteuid() == 0
TOKEN = "t0k3n-" + "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6"
OTHER = "second-token-with-#-and-=-chars"


def status_ids(pid):
    """(real, effective, saved, fs) uids and gids of pid, from /proc/PID/status."""
    uids = gids = None
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                uids = [int(x) for x in line.split()[1:]]
            if line.startswith("Gid:"):
                gids = [int(x) for x in line.split()[1:]]
    return uids, gids


def start_plain(config, extra_args=(), sim=None):
    """ebsd without the harness's automatic --allow-root."""
    path = write_config(config)
    os.chmod(path, 0o644)  # readable after a privilege drop
    p = Proc([EBSD_BIN, "--listen", "127.0.0.1:0", "--config", path] + list(extra_args),
             env=sim_env(sim))
    line = p.wait_line(lambda l: '"listening"' in l)
    p.port = int(json.loads(line)["url"].rsplit(":", 1)[1])
    return p


def tokens_file(text, mode=0o600):
    fd, path = tempfile.mkstemp(prefix="ebsd-tokens-")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def test_root_refused_without_flag():
    if not IS_ROOT:
        print("    (not root: nothing to refuse; checked by CI, which runs as root)")
        return
    r = subprocess.run([EBSD_BIN, "--listen", "127.0.0.1:0"], capture_output=True, text=True,
                       env=sim_env(), timeout=20)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "refusing to run as root" in r.stderr, r.stderr
    assert "run_as_user" in r.stderr and "--allow-root" in r.stderr, r.stderr
    path = write_config("security:\n  allow_root: false\n")
    r = subprocess.run([EBSD_BIN, "--listen", "127.0.0.1:0", "--config", path],
                       capture_output=True, text=True, env=sim_env(), timeout=20)
    assert r.returncode == 2 and "refusing to run as root" in r.stderr, r.stderr
    # --check-config does not serve, so it does not care
    r = subprocess.run([EBSD_BIN, "--check-config", path], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_root_allowed_by_config_or_flag():
    if not IS_ROOT:
        return
    p = start_plain("security:\n  allow_root: true\n")
    assert http_request(p.port, "GET", "/healthz")[0] == 200
    assert status_ids(p.pid)[0][1] == 0
    p.stop()
    p = start_plain("log: {level: info}\n", ["--allow-root"])
    assert http_request(p.port, "GET", "/healthz")[0] == 200
    p.stop()


def test_run_as_user_nobody_drops_and_serves():
    if not IS_ROOT:
        print("    (not root: cannot switch users)")
        return
    import pwd
    nobody = pwd.getpwnam("nobody")
    sim = Sim("--instances", "30", "--seed", "5")
    p = start_plain("security:\n  run_as_user: nobody\n", sim=sim)
    uids, gids = status_ids(p.pid)
    assert uids == [nobody.pw_uid] * 4, uids
    assert gids == [nobody.pw_gid] * 4, gids
    with open("/proc/%d/status" % p.pid) as f:
        st = f.read()
    assert re.search(r"^NoNewPrivs:\s+1$", st, re.M), "no_new_privs not set"
    assert re.search(r"^CapEff:\s+0+$", st, re.M), "capabilities kept"
    assert any("running as user nobody" in l for l in p.lines), p.lines[-5:]
    # still serves, including the forked workers that call EC2
    st, _, body = http_request(p.port, "GET", "/volumes/total")
    assert st == 200, body[:300]
    assert json.loads(body)["total_gib"] == sim.truth()["total_gib"]
    p.stop()
    sim.stop()


def test_run_as_unknown_user_refused():
    if not IS_ROOT:
        return
    path = write_config("security:\n  run_as_user: no-such-user-ebsd\n")
    r = subprocess.run([EBSD_BIN, "--listen", "127.0.0.1:0", "--config", path],
                       capture_output=True, text=True, env=sim_env(), timeout=20)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "no user 'no-such-user-ebsd'" in r.stderr, r.stderr


def test_shipped_deploy_files_run_unprivileged():
    d = os.path.join(SOURCE_DIR, "deploy")
    unit = open(os.path.join(d, "systemd", "ebsd.service")).read()
    assert re.search(r"^(DynamicUser=yes|User=(?!root)\S+)", unit, re.M), "systemd runs as root"
    docker = open(os.path.join(d, "docker", "Dockerfile")).read()
    users = re.findall(r"^USER\s+(\S+)", docker, re.M)
    assert users and not users[-1].startswith(("0", "root")), users
    k8s = open(os.path.join(d, "kubernetes", "deployment.yaml")).read()
    m = re.search(r"runAsUser:\s*(\d+)", k8s)
    assert m and int(m.group(1)) != 0, "kubernetes runs as root"
    ecs = json.load(open(os.path.join(d, "ecs", "task-definition.json")))
    for c in ecs["containerDefinitions"]:
        assert c.get("user") and not c["user"].startswith(("0", "root")), c.get("user")
    for root, _, files in os.walk(d):
        for f in files:
            with open(os.path.join(root, f), errors="replace") as fh:
                text = fh.read()
            assert "--allow-root" not in text, os.path.join(root, f)
            assert not re.search(r"allow_root:\s*true", text), os.path.join(root, f)
    assert re.search(r"^  allow_root: false$", open(os.path.join(SOURCE_DIR, "config",
                                                               "ebsd.yaml")).read(), re.M)


def check_401(st, hdrs, body):
    assert st == 401, (st, body[:200])
    assert hdrs.get("www-authenticate") == 'Bearer realm="ebsd"', hdrs
    e = json.loads(body)["error"]
    assert e["code"] == "Unauthorized" and e["request_id"] == hdrs["x-request-id"], e


def test_bearer_auth():
    sim = Sim("--instances", "10", "--seed", "7")
    path = tokens_file("# ebsd tokens\n\n%s\n  %s  \n" % (TOKEN, OTHER))
    e = Ebsd("security:\n  auth_tokens_file: %s\n" % path, sim=sim)
    iid = sorted(sim.truth()["instances"])[0]
    good = {"Authorization": "Bearer " + TOKEN}
    # open: probes and the spec
    for p in ("/healthz", "/readyz", "/openapi.yaml"):
        assert e.get(p)[0] == 200, p
    sim.reset()
    protected = ["/volumes/total", "/instances/%s/volumes" % iid, "/metrics",
                 "/instances/not-an-id/volumes", "/volumes/total?bogus=1"]
    bad_headers = [None, {"Authorization": "Bearer"}, {"Authorization": "Bearer wrong"},
                   {"Authorization": "Bearer " + TOKEN[:-1]},
                   {"Authorization": "Bearer " + TOKEN + "x"},
                   {"Authorization": "Basic " + TOKEN}, {"Authorization": TOKEN},
                   {"Authorization": "Bearer " + TOKEN.upper()},
                   {"X-Authorization": "Bearer " + TOKEN}]
    for p in protected:
        for h in bad_headers:
            check_401(*e.get(p, headers=h))
        st, hdrs, _ = e.request("HEAD", p)
        assert st == 401 and hdrs.get("www-authenticate") == 'Bearer realm="ebsd"', (p, st)
    # nothing reached EC2 without a token
    assert sum(sim.stats()["calls"].values()) == 0, sim.stats()["calls"]
    st, _, body = e.get("/volumes/total", headers=good)
    assert st == 200, body[:200]
    st, _, body = e.get("/instances/%s/volumes" % iid, headers={"Authorization": "bearer " + OTHER})
    assert st == 200, body[:200]
    st, _, body = e.get("/metrics", headers=good)
    assert st == 200 and b"# TYPE" in body
    assert e.get("/instances/not-an-id/volumes", headers=good)[0] == 400
    # tokens never logged
    time.sleep(0.2)
    for line in e.lines:
        assert TOKEN not in line and OTHER not in line, line
    e.stop()
    sim.stop()
    os.unlink(path)


def test_auth_token_file_must_not_be_world_readable():
    path = tokens_file(TOKEN + "\n", mode=0o644)
    cfg = write_config("security:\n  auth_tokens_file: %s\n" % path)
    args = ["--allow-root"] if IS_ROOT else []
    r = subprocess.run([EBSD_BIN, "--listen", "127.0.0.1:0", "--config", cfg] + args,
                       capture_output=True, text=True, env=sim_env(), timeout=20)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert path in r.stderr and "readable by every user" in r.stderr, r.stderr
    assert TOKEN not in r.stderr + r.stdout
    r = subprocess.run([EBSD_BIN, "--check-config", cfg], capture_output=True, text=True)
    assert r.returncode == 2 and path in r.stderr, r.stderr
    for text, want in [("", "no tokens"), ("# none\n", "no tokens"),
                       ("two words\n", "may not contain blanks")]:
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o600)
        r = subprocess.run([EBSD_BIN, "--check-config", cfg], capture_output=True, text=True)
        assert r.returncode == 2 and want in r.stderr, r.stderr
    os.unlink(path)
    r = subprocess.run([EBSD_BIN, "--check-config", cfg], capture_output=True, text=True)
    assert r.returncode == 2 and "No such file" in r.stderr, r.stderr


def test_auth_tokens_reload_on_sighup():
    path = tokens_file(TOKEN + "\n")
    e = Ebsd("security:\n  auth_tokens_file: %s\n" % path)
    old = {"Authorization": "Bearer " + TOKEN}
    new = {"Authorization": "Bearer " + OTHER}
    assert e.get("/metrics", headers=old)[0] == 200
    with open(path, "w") as f:
        f.write(OTHER + "\n")
    n = len(e.lines)
    e.signal(signal.SIGHUP)
    e.wait_line(lambda l: "configuration reloaded" in l, start=n)
    assert e.get("/metrics", headers=old)[0] == 401
    assert e.get("/metrics", headers=new)[0] == 200
    # A world-readable file on reload: logged, running tokens kept.
    os.chmod(path, 0o644)
    n = len(e.lines)
    e.signal(signal.SIGHUP)
    line = e.wait_line(lambda l: "keeping the running configuration" in l, start=n)
    assert path in line and OTHER not in line, line
    assert e.get("/metrics", headers=new)[0] == 200
    e.stop()
    os.unlink(path)


def test_auth_off_by_default():
    e = Ebsd()
    assert e.get("/metrics")[0] == 200
    st, hdrs, _ = e.get("/instances/not-an-id/volumes")
    assert st == 400 and "www-authenticate" not in hdrs
    e.stop()


run(globals())
