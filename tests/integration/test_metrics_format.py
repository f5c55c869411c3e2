"""The metrics module's exposition text passes `promtool check metrics` (Debian package
prometheus). Drives tests/tools/metrics_sample, which renders every metric kind."""
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import run  # noqa: E402

TOOLS_DIR = os.environ.get("EBSD_TOOLS_DIR", "build/tests/tools")


def promtool():
    path = shutil.which("promtool") or ("/usr/bin/promtool" if os.path.exists("/usr/bin/promtool") else None)
    assert path, ("promtool not found: install it with `apt-get install -y prometheus` "
                  "(it provides /usr/bin/promtool); this test does not skip")
    return path


def sample_text():
    tool = os.path.join(TOOLS_DIR, "metrics_sample")
    assert os.path.exists(tool), "%s missing: build the metrics_sample target" % tool
    p = subprocess.run([tool], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    assert p.returncode == 0, "metrics_sample exited %d: %s" % (p.returncode, p.stderr.decode())
    return p.stdout


def test_promtool_accepts_every_kind():
    text = sample_text()
    p = subprocess.run([promtool(), "check", "metrics"], input=text, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, "promtool check metrics exited %d:\n%s\n--- text ---\n%s" % (
        p.returncode, out, text.decode(errors="replace"))
    # promtool reports lint problems on stdout while exiting 0 only for warnings it does not
    # count as errors; hold the text to a clean report.
    assert out.strip() == "", "promtool reported problems:\n%s" % out


def test_sample_covers_every_kind():
    text = sample_text().decode()
    for needle in ("# TYPE ebsd_http_requests_total counter",
                   "# TYPE ebsd_http_inflight_requests gauge",
                   "# TYPE ebsd_http_request_duration_seconds histogram",
                   'ebsd_http_request_duration_seconds_bucket{route="total",le="+Inf"} 3',
                   'ebsd_ec2_call_duration_seconds_bucket{le="30"} 6',
                   "ebsd_ec2_call_duration_seconds_count 7",
                   '# HELP ebsd_sample_escaping Help with a \\\\ backslash and a\\nnewline.',
                   'ebsd_sample_escaping{value="back\\\\slash \\"quoted\\"\\nnew line"} 1',
                   'ebsd_sample_capped_total{id="other"} 2',
                   'ebsd_metrics_series_overflow_total{family="ebsd_sample_capped_total"} 2',
                   "# TYPE ebsd_sample_unused_total counter",
                   "ebsd_cache_bytes 123456",
                   "ebsd_cache_evictions_total 7"):
        assert needle in text, "missing %r in:\n%s" % (needle, text)
    assert text.endswith("\n")


run(globals())
