"""openapi.yaml passes `redocly lint` (@redocly/cli pinned in tools/node, recommended rules),
and the responses it promises on the open endpoints are what a running ebsd answers."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SOURCE_DIR, Ebsd, run  # noqa: E402

import yaml  # noqa: E402

REDOCLY = os.path.join(SOURCE_DIR, "tools", "node", "node_modules", ".bin", "redocly")
SPEC = os.path.join(SOURCE_DIR, "openapi.yaml")
OPEN = ("/healthz", "/readyz", "/openapi.yaml")


def test_redocly_lint_is_clean():
    assert os.access(REDOCLY, os.X_OK), "%s missing: run scripts/deploy-tools" % REDOCLY
    p = subprocess.run([REDOCLY, "lint", "--format=stylish", SPEC], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL,
                       cwd=os.path.dirname(SPEC), timeout=120,
                       env=dict(os.environ, REDOCLY_TELEMETRY="off",
                                REDOCLY_SUPPRESS_UPDATE_NOTICE="true"))
    assert p.returncode == 0, p.stdout
    # Warnings do not fail redocly; they fail this test.
    assert "warning" not in p.stdout.lower(), p.stdout


def test_open_endpoints_are_declared_open_and_the_rest_take_the_bearer():
    with open(SPEC) as f:
        spec = yaml.safe_load(f)
    for path, item in spec["paths"].items():
        op = item["get"]
        if path in OPEN:
            assert op.get("security") == [], path
        else:
            assert {"bearer": []} in op.get("security", []), path
            assert "401" in op["responses"], path


def test_every_get_but_the_probes_declares_429():
    # server.c's per-client limit refuses any route but /healthz and /readyz
    with open(SPEC) as f:
        spec = yaml.safe_load(f)
    for path, item in spec["paths"].items():
        declared = "429" in item["get"]["responses"]
        assert declared == (path not in ("/healthz", "/readyz")), path


def test_open_endpoints_answer_414_as_declared():
    e = Ebsd()
    try:
        for path in OPEN:
            st, _, _ = e.get(path + "?" + "a" * 5000)
            assert st == 414, (path, st)
    finally:
        e.stop()


if __name__ == "__main__":
    run(globals())
