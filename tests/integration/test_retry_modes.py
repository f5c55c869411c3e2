"""AWS_RETRY_MODE through ebsd's EC2 client (tests/tools/ec2_probe applies the retry settings
as ebsd does at start): against ec2sim with a small request bucket (--rate-limit), the
adaptive mode's CUBIC rate limiter draws far fewer RequestLimitExceeded answers than the
standard mode for the same listing, and both list every volume. AWS_MAX_ATTEMPTS reaches
the client."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SLOW, Sim, TEST_ACCESS_KEY, TEST_SECRET_KEY, run  # noqa: E402

TOOLS = os.environ.get("EBSD_TOOLS_DIR", "build/tests/tools")
PROBE = os.path.join(TOOLS, "ec2_probe")


def list_volumes(sim, extra_env, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_ACCESS_KEY_ID": TEST_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": TEST_SECRET_KEY,
                "AWS_CONFIG_FILE": "/nonexistent"})
    env.update(extra_env)
    p = subprocess.run([PROBE, "--endpoint", sim.url, "--region", "us-east-1",
                        "--list-volumes", "--page-size", "5", "--deadline-ms", "120000"]
                       + list(args), env=env, capture_output=True, text=True,
                       timeout=180 * SLOW)
    return p.returncode, json.loads(p.stdout), p.stderr


def test_adaptive_draws_fewer_throttles():
    sim = Sim("--instances", "120", "--seed", "5", "--rate-limit", "2:30")
    try:
        truth = sim.truth()
        got = {}
        for mode in ("standard", "adaptive"):
            sim.reset()
            rc, out, err = list_volumes(sim, {"AWS_RETRY_MODE": mode, "AWS_MAX_ATTEMPTS": "10"})
            assert rc == 0, (out, err)
            assert out["retry_mode"] == mode and out["max_attempts"] == 10, out
            assert out["volume_count"] == truth["volume_count"], (out, truth)
            got[mode] = sim.stats()["faults"]["throttle"]
        assert got["standard"] >= 10, got  # the bucket really throttles a greedy client
        assert got["adaptive"] * 2 < got["standard"], got
    finally:
        sim.stop()


def test_max_attempts_and_bad_mode():
    sim = Sim("--instances", "10", "--p-500", "1")
    try:
        rc, out, err = list_volumes(sim, {"AWS_MAX_ATTEMPTS": "2", "AWS_RETRY_MODE": "legacy"})
        assert rc == 1, out
        assert out["max_attempts"] == 2 and out["retry_mode"] == "standard", out
        assert sim.stats()["calls"]["DescribeVolumes"] == 2, sim.stats()
        sim.reset()
        rc, out, err = list_volumes(sim, {"AWS_MAX_ATTEMPTS": "zero", "AWS_RETRY_MODE": "fast"})
        assert out["max_attempts"] == 3 and out["retry_mode"] == "standard", out
        assert "AWS_MAX_ATTEMPTS" in err and "AWS_RETRY_MODE" in err, err
        assert sim.stats()["calls"]["DescribeVolumes"] == 3, sim.stats()
    finally:
        sim.stop()


if __name__ == "__main__":
    run(globals())
