"""The C EC2 client (through tests/tools/ec2_probe) against the real ec2sim: a 12,000-instance
fleet read through pagination matches /_sim/truth; injected throttling, 5xx, resets, cut and
malformed bodies are retried the SDK standard way (calls = successes + retries, quota spent);
a deadline stops retries cleanly; a wrong secret fails at once without retries."""
import json
import os
import socket
import subprocess
import time

from harness import SLOW, Sim, TEST_ACCESS_KEY, TEST_SECRET_KEY, run

TOOLS = os.environ.get("EBSD_TOOLS_DIR", "build/tests/tools")
PROBE = os.path.join(TOOLS, "ec2_probe")


def probe(sim, *args, secret=TEST_SECRET_KEY, key=TEST_ACCESS_KEY, timeout=300):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["AWS_ACCESS_KEY_ID"] = key
    env["AWS_SECRET_ACCESS_KEY"] = secret
    argv = [PROBE, "--endpoint", sim.url, "--region", "us-east-1"] + [str(a) for a in args]
    t0 = time.time()
    p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    took = time.time() - t0
    assert p.stdout.startswith("{"), (p.returncode, p.stdout, p.stderr)
    out = json.loads(p.stdout)
    out["_rc"] = p.returncode
    out["_wall"] = took
    return out


def pages(n, size):
    return max(1, -(-n // size))


def assert_matches_truth(out, truth):
    assert out["ok"] and out["_rc"] == 0, out   # rc also catches sanitizer reports (leaks)
    assert out["instance_count"] == truth["instance_count"], (out, truth["instance_count"])
    assert out["duplicate_instances"] == 0
    assert out["volume_count"] == truth["volume_count"], (out["volume_count"], truth["volume_count"])
    assert out["total_gib"] == truth["total_gib"], (out["total_gib"], truth["total_gib"])


def assert_accounting(out, sim_stats):
    """What the client counted agrees with what the simulator served."""
    s = out["stats"]
    assert s["calls"] == s["describe_instances"] + s["describe_volumes"], s
    assert s["calls"] == sim_stats["requests"], (s, sim_stats)
    served = sim_stats["calls"]
    assert s["describe_instances"] == served.get("DescribeInstances", 0), (s, served)
    assert s["describe_volumes"] == served.get("DescribeVolumes", 0), (s, served)


def test_12000_instances_match_truth():
    sim = Sim("--instances", "12000", "--seed", "7")
    truth = sim.truth()
    sim.reset()
    out = probe(sim)
    assert_matches_truth(out, truth)
    assert out["volumes_listed"] == truth["volumes_total"]
    s = out["stats"]
    # default pages: 1000 instances, 500 volumes; nothing failed, nothing retried
    assert s["describe_instances"] == pages(12000, 1000), s
    assert s["describe_volumes"] == pages(truth["volumes_total"], 500), s
    assert s["retries"] == 0 and s["errors"] == 0 and s["throttled"] == 0, s
    assert s["retry_quota"] == 500
    assert_accounting(out, sim.stats())
    print("    12,000 instances + %d volumes: %d calls in %d ms" % (
        truth["volumes_total"], s["calls"], out["elapsed_ms"]))
    sim.stop()


def test_small_pages_and_filtered_groups():
    sim = Sim("--instances", "1500", "--seed", "11")
    truth = sim.truth()
    sim.reset()
    out = probe(sim, "--page-size", 50)
    assert_matches_truth(out, truth)
    assert out["stats"]["describe_instances"] == pages(1500, 50)
    assert_accounting(out, sim.stats())
    # volumes through attachment.instance-id, 200 ids per call (multi-attach counted once)
    sim.reset()
    out = probe(sim, "--group", 200, "--page-size", 100)
    assert_matches_truth(out, truth)
    assert out["volumes_listed"] == truth["volume_count"]
    assert_accounting(out, sim.stats())
    sim.stop()


def test_one_instance_and_unknown_instance():
    sim = Sim("--instances", "300", "--seed", "3")
    truth = sim.truth()
    iid = max(truth["instance_volumes"], key=lambda k: truth["instance_volumes"][k])
    out = probe(sim, "--instance", iid)
    assert out["ok"] and out["found"], out
    assert out["total_gib"] == truth["instances"][iid], (out, truth["instances"][iid])
    assert out["volume_count"] == truth["instance_volumes"][iid]
    for v in out["volumes"]:
        assert any(a["instance_id"] == iid for a in v["attachments"])
    # a well-formed id EC2 does not know: an EC2 error (kept), no retry
    out = probe(sim, "--instance", "i-0123456789abcdef0")
    if out["ok"]:
        assert out["instance_count"] == 0
    else:
        assert out["error"]["code"] == "InvalidInstanceID.NotFound", out
        assert out["stats"]["retries"] == 0
    # a malformed id never reaches the wire
    sim.reset()
    out = probe(sim, "--instance", "i-XYZ")
    assert out["_rc"] == 2 and sim.stats()["requests"] == 0
    sim.stop()


def test_throttling_is_retried():
    sim = Sim("--instances", "3000", "--seed", "5")
    truth = sim.truth()
    sim.reset()
    # EC2-like bucket: 3 calls at once, refilled at 8/s; the probe needs ~20 calls
    sim.faults(rate_bucket=3, rate_refill=8)
    out = probe(sim, "--page-size", 500, "--max-attempts", 10)
    assert_matches_truth(out, truth)
    s = out["stats"]
    st = sim.stats()
    assert_accounting(out, st)
    assert s["throttled"] == st["faults"]["throttle"] and s["throttled"] > 0, (s, st)
    assert s["retries"] == s["throttled"], s   # every throttle answered with a retry
    ops = pages(3000, 500) + pages(truth["volumes_total"], 500)
    assert s["calls"] == ops + s["retries"], (s, ops)   # calls = successes + retries
    # the quota: 5 per retry, back on success after retries
    assert 500 - 5 * s["retries"] <= s["retry_quota"] <= 500, s
    print("    throttled %d times, %d retries, quota %d, %d ms" % (
        s["throttled"], s["retries"], s["retry_quota"], out["elapsed_ms"]))
    sim.stop()


def test_5xx_resets_and_bad_bodies_are_retried():
    sim = Sim("--instances", "2000", "--seed", "9", "--fault-seed", "21")
    truth = sim.truth()
    sim.reset()
    sim.faults(p_500=0.15, p_503=0.15, p_reset=0.05, p_truncate=0.05, p_malformed=0.05)
    out = probe(sim, "--page-size", 250, "--max-attempts", 12)
    assert_matches_truth(out, truth)
    s = out["stats"]
    st = sim.stats()
    f = st["faults"]
    injected = f["500"] + f["503"] + f["reset"] + f["truncate"] + f["malformed"]
    assert injected > 0, f
    # every injected fault costs one retry, except that libcurl itself re-sends (once, on a
    # fresh connection) a request whose reused connection was reset before any answer byte
    assert injected - f["reset"] <= s["retries"] <= injected, (s, f)
    assert st["requests"] - s["calls"] == injected - s["retries"], (s, st)
    assert s["throttled"] == 0 and s["errors"] == 0, s
    ops = pages(2000, 250) + pages(truth["volumes_total"], 250)
    assert s["calls"] == ops + s["retries"], (s, ops)
    print("    %d injected faults -> %d retries in %d ms" % (injected, s["retries"], out["elapsed_ms"]))
    sim.stop()


def test_retries_stop_at_max_attempts_and_spend_quota():
    sim = Sim("--instances", "50")
    sim.faults(p_503=1.0)
    out = probe(sim, "--list-instances", "--deterministic")
    assert not out["ok"] and out["_rc"] == 1
    assert out["error"]["code"] == "Unavailable" and out["error"]["http_status"] == 503, out
    s = out["stats"]
    assert s["calls"] == 3 and s["retries"] == 2 and s["errors"] == 1, s
    assert s["retry_quota"] == 490, s       # two retries at 5, nothing given back
    # deterministic backoff sleeps the caps: 1 s then 2 s
    assert 3.0 <= out["elapsed_ms"] / 1000.0 < 3.0 + 2 * SLOW, out["elapsed_ms"]
    sim.stop()


def test_deadline_stops_retries_cleanly():
    sim = Sim("--instances", "50")
    sim.faults(p_503=1.0)
    # deterministic: attempt 1 fails at ~0 s, sleeps 1 s, attempt 2 fails at ~1 s; the next
    # backoff (2 s) would end past the 1.8 s deadline, so it stops with EC2's error
    out = probe(sim, "--list-instances", "--deterministic", "--max-attempts", 10,
                "--deadline-ms", 1800)
    assert not out["ok"], out
    assert out["status"] != "timed out" and out["error"]["code"] == "Unavailable", out
    assert out["stats"]["calls"] == 2 and out["stats"]["retries"] == 1, out
    assert out["elapsed_ms"] < 1800, out
    # jittered: whatever the draws, never past the deadline
    for _ in range(3):
        out = probe(sim, "--list-instances", "--max-attempts", 10, "--deadline-ms", 1500)
        assert not out["ok"] and out["elapsed_ms"] < 1500 + 200 * SLOW, out
        assert out["status"] in ("upstream error", "timed out"), out
    # a hang: the transfer itself is cut at the deadline -> timed out, no retry after it
    sim.faults(clear=True, p_hang=1.0)
    out = probe(sim, "--list-instances", "--max-attempts", 10, "--deadline-ms", 700)
    assert not out["ok"] and out["status"] == "timed out", out
    assert out["stats"]["calls"] == 1 and out["stats"]["retries"] == 0, out
    assert 650 <= out["elapsed_ms"] < 700 + 300 * SLOW, out
    sim.stop()


def test_wrong_secret_fails_without_retries():
    sim = Sim("--instances", "50")
    sim.reset()
    out = probe(sim, "--list-instances", secret="not-the-secret")
    assert not out["ok"] and out["_rc"] == 1
    assert out["error"]["code"] in ("SignatureDoesNotMatch", "AuthFailure"), out
    assert out["error"]["http_status"] in (401, 403), out
    assert out["error"]["request_id"], out
    assert out["stats"]["calls"] == 1 and out["stats"]["retries"] == 0, out
    assert sim.stats()["requests"] == 1
    out = probe(sim, "--list-instances", key="AKIDUNKNOWN0000000000")
    assert not out["ok"] and out["error"]["code"] in ("AuthFailure", "InvalidClientTokenId"), out
    assert out["stats"]["calls"] == 1 and out["stats"]["retries"] == 0, out
    sim.stop()


def test_client_rate_limit_paces_calls():
    sim = Sim("--instances", "2000", "--seed", "2")
    truth = sim.truth()
    # 11 calls at 5/s with a burst of 2: at least (11 - 2) / 5 = 1.8 s
    out = probe(sim, "--page-size", 500, "--rate", 5, "--burst", 2)
    assert_matches_truth(out, truth)
    calls = out["stats"]["calls"]
    assert out["elapsed_ms"] >= (calls - 2) / 5.0 * 1000 - 50, out
    # a deadline shorter than the wait for a token: a clean throttled error, no call lost
    out = probe(sim, "--page-size", 500, "--rate", 1, "--burst", 1, "--deadline-ms", 500)
    assert not out["ok"] and out["status"] == "throttled", out
    assert out["elapsed_ms"] < 600, out
    sim.stop()


def test_unreachable_endpoint():
    # a loopback port held bound but not listening: every connection is refused, and no other
    # test's server (they run side by side) can take the port meanwhile, as one did once
    # with the port of a stopped simulator; connection errors are retried, then ENETWORK
    hold = socket.socket()
    hold.bind(("127.0.0.1", 0))
    url = "http://127.0.0.1:%d" % hold.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["AWS_ACCESS_KEY_ID"] = TEST_ACCESS_KEY
    env["AWS_SECRET_ACCESS_KEY"] = TEST_SECRET_KEY
    try:
        p = subprocess.run([PROBE, "--endpoint", url, "--region", "us-east-1",
                            "--list-instances", "--deterministic", "--max-attempts", "2"],
                           env=env, capture_output=True, text=True, timeout=60)
    finally:
        hold.close()
    out = json.loads(p.stdout)
    assert not out["ok"] and out["status"] == "network error", out
    assert out["stats"]["calls"] == 2 and out["stats"]["retries"] == 1, out


run(globals())
