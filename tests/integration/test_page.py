"""The human page at GET /: rendered by the real page module (tests/tools/page_render) from a
fixed JSON input, served on 127.0.0.1 with the Content-Security-Policy the module returns,
and opened in headless Chromium (Debian's package): the numbers in the DOM Chromium builds
equal the input, Chromium reports no CSP violation (and does report one for a page whose
style does not match the hash, so the check can fail), and a screenshot is taken.
Then the same from a running ebsd: Chromium loads GET / (it asks for text/html), and the
numbers on the page equal ebsd's JSON answer, without the page starting an EC2 call."""
import html.parser
import http.server
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading

from harness import SOURCE_DIR, SLOW, Ebsd, Sim, run

TOOLS = os.environ.get("EBSD_TOOLS_DIR", os.path.join(SOURCE_DIR, "build", "tests", "tools"))
INPUT = os.path.join(SOURCE_DIR, "tests", "tools", "page_input.json")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
WORK = tempfile.mkdtemp(prefix="test_page.")


def render():
    """Writes page.html and page.csp from the fixed input; returns (html path, csp)."""
    out, csp = os.path.join(WORK, "page.html"), os.path.join(WORK, "page.csp")
    subprocess.run([os.path.join(TOOLS, "page_render"), INPUT, out, csp], check=True,
                   timeout=30)
    with open(csp) as f:
        return out, f.read()


class Server:
    """Serves files of WORK on 127.0.0.1 with the page's CSP header, as ebsd will."""

    def __init__(self, csp):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                path = os.path.join(WORK, os.path.basename(self.path))
                if not os.path.isfile(path):
                    self.send_error(404)
                    return
                with open(path, "rb") as f:
                    body = f.read()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Security-Policy", csp)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, name):
        return "http://127.0.0.1:%d/%s" % (self.port, name)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def chromium(*args):
    """Runs headless Chromium; returns (stdout, stderr). Console messages go to stderr."""
    profile = tempfile.mkdtemp(prefix="chromium.", dir=WORK)
    argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--user-data-dir=" + profile, "--enable-logging=stderr", "--v=0"] + list(args)
    p = subprocess.run(argv, capture_output=True, text=True, timeout=120 * SLOW)
    return p.stdout, p.stderr


def csp_violations(stderr):
    return [l for l in stderr.splitlines()
            if "Content Security Policy" in l or "Content-Security-Policy" in l]


class Dom(html.parser.HTMLParser):
    """Text of the cells of each target row, of the summary cards and of the chart's bars."""

    def __init__(self):
        super().__init__()
        self.rows, self.cards, self.bars = [], {}, []
        self._cell = self._card = None
        self._text = []
        self._bar = None
        self._svg_text = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        cls = (a.get("class") or "").split()
        if tag == "tr" and "target" in cls:
            self.rows.append({})
        elif tag == "td" and self.rows and self._cell is None:
            self._cell = [c for c in cls if c not in ("num", "err", "ok")][0]
            self._text = []
        elif tag == "div" and "value" in cls and a.get("id"):
            self._card = a["id"]
            self._text = []
        elif tag == "g" and "bar" in cls:
            self._bar = {}
            self.bars.append(self._bar)
        elif tag == "text" and self._bar is not None:
            self._svg_text = cls[0]
            self._text = []
        elif tag == "rect" and self._bar is not None:
            self._bar["width"] = float(a["width"])
            self._bar["fill"] = a["fill"]

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.rows[-1][self._cell] = "".join(self._text).strip()
            self._cell = None
        elif tag == "div" and self._card is not None:
            self.cards[self._card] = "".join(self._text).strip()
            self._card = None
        elif tag == "text" and self._svg_text is not None:
            self._bar[self._svg_text] = "".join(self._text).strip()
            self._svg_text = None
        elif tag == "g":
            self._bar = None

    def handle_data(self, data):
        self._text.append(data)


def number(text):
    """'12,345.5 GiB' -> 12345.5"""
    m = re.fullmatch(r"([0-9][0-9,]*(?:\.[0-9])?)(?: GiB)?", text)
    assert m, "not a figure: %r" % text
    return float(m.group(1).replace(",", ""))


def age_bounds(text):
    """'5 min 5 s' -> (305, 305); '2 h 1 min' -> (7260, 7319): what the shown age allows."""
    units = {"s": 1, "min": 60, "h": 3600, "d": 86400}
    parts = re.findall(r"(\d+) (s|min|h|d)", text)
    assert parts and " ".join("%s %s" % p for p in parts) == text, "not an age: %r" % text
    lo = sum(int(n) * units[u] for n, u in parts)
    return lo, lo + units[parts[-1][1]] - 1


def load_dom():
    page, csp = render()
    srv = Server(csp)
    try:
        out, err = chromium("--dump-dom", srv.url("page.html"))
    finally:
        srv.close()
    assert "<table" in out, "Chromium dumped no DOM:\n%s" % err[-3000:]
    dom = Dom()
    dom.feed(out)
    return dom, out, err, csp


def test_numbers_in_the_dom_equal_the_input():
    with open(INPUT) as f:
        want = json.load(f)
    dom, _, err, _ = load_dom()
    targets = want["targets"]
    assert len(dom.rows) == len(targets), dom.rows
    for row, t in zip(dom.rows, targets):
        assert row["account"] == t["account"], (row, t)  # escaped in HTML, text again in DOM
        assert row["region"] == t["region"]
        assert number(row["total"]) == t["total_gib"], (row, t)
        assert number(row["instances"]) == t["instance_count"]
        assert number(row["volumes"]) == t["volume_count"]
        if "unattached_gib" in t:
            assert number(row["unattached"]) == t["unattached_gib"], (row, t)
        else:
            assert row["unattached"] == "unknown"
        lo, hi = age_bounds(row["age"])
        assert lo <= t["age_s"] <= hi, (row["age"], t["age_s"])
        assert row["status"] == (t.get("error") or "ok"), row
    # summary cards: sums over targets
    assert number(dom.cards["sum-attached"]) == sum(t["total_gib"] for t in targets)
    assert number(dom.cards["sum-unattached"]) == sum(t.get("unattached_gib", 0) for t in targets)
    assert number(dom.cards["sum-instances"]) == sum(t["instance_count"] for t in targets)
    assert number(dom.cards["sum-volumes"]) == sum(t["volume_count"] for t in targets)
    lo, hi = age_bounds(dom.cards["sum-age"])
    assert lo <= max(t["age_s"] for t in targets) <= hi
    # the chart: one bar per type, summed over targets, largest first, widths proportional
    by_type = {}
    for t in targets:
        for k, v in t["by_type"].items():
            by_type[k] = by_type.get(k, 0) + v
    shown = [(b["type"], number(b["gib"])) for b in dom.bars]
    assert shown == sorted(by_type.items(), key=lambda kv: (-kv[1], kv[0])), shown
    widest = dom.bars[0]["width"]
    for b in dom.bars:
        assert abs(b["width"] / widest - number(b["gib"]) / shown[0][1]) < 0.01 or b["width"] == 2
    print("    %d targets, %d bars, cards %s" % (len(dom.rows), len(dom.bars), dom.cards))


def test_no_csp_violation_and_no_script():
    dom, out, err, csp = load_dom()
    assert csp.startswith("default-src 'none';") and "'sha256-" in csp and "unsafe" not in csp
    assert not csp_violations(err), csp_violations(err)
    assert "<script" not in out


def test_a_style_that_does_not_match_the_hash_is_reported():
    """The control for the test above: the same CSP over a changed style is a violation that
    this way of reading Chromium's console does see."""
    page, csp = render()
    with open(page) as f:
        text = f.read()
    with open(os.path.join(WORK, "tampered.html"), "w") as f:
        f.write(text.replace("<style>", "<style>p{}", 1))
    srv = Server(csp)
    try:
        _, err = chromium("--dump-dom", srv.url("tampered.html"))
    finally:
        srv.close()
    v = csp_violations(err)
    assert v and "style-src" in v[0], err[-3000:]


def test_screenshot():
    page, csp = render()
    shot = os.path.join(os.environ.get("EBSD_PAGE_SCREENSHOT_DIR", WORK), "page.png")
    srv = Server(csp)
    try:
        _, err = chromium("--window-size=1280,1000", "--screenshot=" + shot, srv.url("page.html"))
    finally:
        srv.close()
    with open(shot, "rb") as f:
        png = f.read()
    assert png[:8] == b"\x89PNG\r\n\x1a\n", err[-2000:]
    assert len(png) > 20000, "a blank screenshot is a few KiB: %d bytes" % len(png)
    assert not csp_violations(err), csp_violations(err)
    print("    screenshot %s (%d bytes)" % (shot, len(png)))


def test_page_from_a_running_ebsd():
    sim = Sim("--instances", "120")
    e = Ebsd("regions: [us-east-1, eu-west-1]\n", sim=sim)
    try:
        st, _, body = e.get("/volumes/total")
        assert st == 200
        total = json.loads(body)
        calls = sim.stats()
        url = "http://127.0.0.1:%d/" % e.port
        out, err = chromium("--dump-dom", url)
        assert "<table" in out, "Chromium dumped no DOM:\n%s" % err[-3000:]
        assert not csp_violations(err), csp_violations(err)
        dom = Dom()
        dom.feed(out)
        rows = {r["region"]: r for r in dom.rows}
        assert set(rows) == {"us-east-1", "eu-west-1"}, dom.rows
        us = rows["us-east-1"]
        assert us["account"] == "default"
        assert number(us["total"]) == total["total_gib"], (us, total)
        assert number(us["instances"]) == total["instance_count"] == 120
        assert number(us["volumes"]) == total["volume_count"]
        lo, hi = age_bounds(us["age"])
        assert 0 <= lo <= 30, us
        assert rows["eu-west-1"]["age"] == "no data", rows["eu-west-1"]
        assert number(dom.cards["sum-attached"]) == total["total_gib"]
        # the page is read from the cache: Chromium's requests started no EC2 call
        assert sim.stats() == calls
        shot = os.path.join(os.environ.get("EBSD_PAGE_SCREENSHOT_DIR", WORK), "ebsd.png")
        _, err = chromium("--window-size=1280,1000", "--screenshot=" + shot, url)
        with open(shot, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n", err[-2000:]
        assert not csp_violations(err)
        access = [d for d in e.json_lines() if d.get("event") == "access" and d.get("path") == "/"]
        assert access and all(d["status"] == 200 for d in access), access
        print("    ebsd's page: %s GiB on %d instances, as the JSON" % (
            us["total"], total["instance_count"]))
    finally:
        e.stop()
        sim.stop()


try:
    run(globals())
finally:
    shutil.rmtree(WORK, ignore_errors=True)
