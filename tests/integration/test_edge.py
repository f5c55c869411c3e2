"""The edge through the real ebsd and ec2sim: CORS on data answers and preflights
(server.cors_origins), gzip of large answers (per-encoding ETag, Vary, If-None-Match against
the representation, the compressed copy kept in the cache, one gzip member that Python's
gzip and curl --compressed both decode), and GET / as JSON from the latest cached
answers without a fetch, behind bearer auth when tokens are configured."""
import gzip
import json
import os
import subprocess
import tempfile
import zlib

from harness import Ebsd, Sim, run
from schema import validate

ORIGIN = "https://grafana.example.com"


def metric(e, name):
    for line in e.get("/metrics")[2].decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def data_of(doc):
    """An answer without its per-response parts."""
    return {k: v for k, v in doc.items() if k not in ("source", "request_id")}


def test_cors_on_data_answers_and_preflight():
    sim = Sim("--instances", "20")
    e = Ebsd('server:\n  cors_origins: ["%s", "http://localhost:3000"]\n' % ORIGIN, sim=sim)
    try:
        st, h, _ = e.get("/volumes/total", headers={"Origin": ORIGIN})
        assert st == 200
        assert h["access-control-allow-origin"] == ORIGIN, h
        assert h["access-control-expose-headers"] == "ETag, Age, X-Cache, X-Request-Id"
        assert "Origin" in [v.strip() for v in h["vary"].split(",")], h
        # errors are data answers too: a browser must be able to read them
        st, h, _ = e.get("/instances/i-nope/volumes", headers={"Origin": ORIGIN})
        assert st == 400 and h["access-control-allow-origin"] == ORIGIN, (st, h)
        # an origin not listed: no grant, but Vary: Origin so no shared cache mixes them
        st, h, _ = e.get("/volumes/total", headers={"Origin": "https://evil.example"})
        assert st == 200 and "access-control-allow-origin" not in h and "Origin" in h["vary"]
        # the probes carry nothing
        st, h, _ = e.get("/healthz", headers={"Origin": ORIGIN})
        assert st == 200 and "access-control-allow-origin" not in h
        pre = {"Origin": ORIGIN, "Access-Control-Request-Method": "GET",
               "Access-Control-Request-Headers": "if-none-match"}
        for path in ("/volumes/total", "/instances/i-0123456789abcdef0/volumes", "/"):
            st, h, body = e.request("OPTIONS", path, headers=pre)
            assert st == 204 and body == b"", (path, st, body)
            assert h["access-control-allow-origin"] == ORIGIN
            assert h["access-control-allow-methods"] == "GET, HEAD, OPTIONS"
            for hdr in ("If-None-Match", "Cache-Control", "Authorization", "X-Request-Id"):
                assert hdr in h["access-control-allow-headers"], h
            assert int(h["access-control-max-age"]) > 0
        # a preflight from another origin, or for a method not offered: 403
        for bad in ({"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
                    {"Origin": ORIGIN, "Access-Control-Request-Method": "DELETE"}):
            st, h, body = e.request("OPTIONS", "/volumes/total", headers=bad)
            err = json.loads(body)["error"]
            assert st == 403 and err["code"] == "CorsPreflightRejected", (st, body)
            assert "access-control-allow-origin" not in h
        # OPTIONS that is not a preflight, and other methods, stay 405 with Allow
        st, h, _ = e.request("OPTIONS", "/volumes/total", headers={"Origin": ORIGIN})
        assert st == 405 and h["allow"] == "GET, HEAD", (st, h)
        st, h, _ = e.request("DELETE", "/volumes/total", headers={"Origin": ORIGIN})
        assert st == 405
    finally:
        e.stop()
    # CORS off (the default): no headers, OPTIONS 405
    e = Ebsd(sim=sim)
    try:
        st, h, _ = e.get("/volumes/total", headers={"Origin": ORIGIN})
        assert st == 200 and "access-control-allow-origin" not in h
        assert "Origin" not in h.get("vary", "")
        st, h, _ = e.request("OPTIONS", "/volumes/total",
                             headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"})
        assert st == 405 and h["allow"] == "GET, HEAD"
    finally:
        e.stop()
        sim.stop()


def test_gzip_answers():
    sim = Sim("--instances", "400")
    e = Ebsd(sim=sim)
    path = "/volumes/total?detail=instances"
    gz = {"Accept-Encoding": "gzip"}
    try:
        st, h, plain = e.get(path)
        assert st == 200 and "content-encoding" not in h
        assert "Accept-Encoding" in h["vary"], h  # the identity answer varies too
        ident_etag = h["etag"]
        ident = json.loads(plain)
        assert metric(e, "ebsd_gzip_bodies_compressed_total") == 0

        st, h, body = e.get(path, headers=gz)
        assert st == 200 and h["content-encoding"] == "gzip" and h["x-cache"] == "hit", h
        assert "Accept-Encoding" in h["vary"]
        assert h["etag"] == ident_etag[:-1] + '-gzip"', (h["etag"], ident_etag)
        assert int(h["content-length"]) == len(body) < len(plain) / 3, (len(body), len(plain))
        doc = validate(gzip.decompress(body), "VolumesTotal")
        assert data_of(doc) == data_of(ident)
        assert doc["request_id"] == h["x-request-id"] and doc["source"]["cache"] == "hit"
        # the cached body was compressed once; later hits reuse it, with their own tails
        assert metric(e, "ebsd_gzip_bodies_compressed_total") == 1
        ids = set()
        for _ in range(5):
            st, h2, b2 = e.get(path, headers={"Accept-Encoding": "br;q=1, gzip;q=0.5"})
            d2 = json.loads(gzip.decompress(b2))
            assert st == 200 and h2["etag"] == h["etag"] and data_of(d2) == data_of(ident)
            ids.add(d2["request_id"])
        assert len(ids) == 5
        assert metric(e, "ebsd_gzip_bodies_compressed_total") == 1
        assert metric(e, "ebsd_gzip_responses_total") == 6
        # the cached open stream closed with this answer's tail is one gzip member, which
        # curl's decoder (zlib) reads whole as well (curl 7.88 stops after a first member)
        z = zlib.decompressobj(wbits=31)
        assert data_of(json.loads(z.decompress(b2))) == data_of(ident)
        assert z.eof and z.unused_data == b"", len(z.unused_data)
        out = subprocess.run(["curl", "-sS", "--compressed", "-D", "-",
                              "http://127.0.0.1:%d%s" % (e.port, path)],
                             capture_output=True, check=True, timeout=30).stdout.decode()
        head, _, cbody = out.partition("\r\n\r\n")
        assert "content-encoding: gzip" in head.lower(), head
        assert data_of(json.loads(cbody)) == data_of(ident)

        # If-None-Match is compared with the representation's own ETag
        st, h3, b3 = e.get(path, headers=dict(gz, **{"If-None-Match": h["etag"]}))
        assert st == 304 and b3 == b"" and h3["etag"] == h["etag"], (st, h3)
        st, _, _ = e.get(path, headers={"If-None-Match": ident_etag})
        assert st == 304
        st, h4, _ = e.get(path, headers={"If-None-Match": h["etag"]})
        assert st == 200 and h4["etag"] == ident_etag  # the gzip tag is not the identity's
        st, h5, _ = e.get(path, headers=dict(gz, **{"If-None-Match": ident_etag}))
        assert st == 200 and h5["content-encoding"] == "gzip"
        # refused or not offered: identity
        for ae in ("gzip;q=0", "identity", "br", "x-gzip;q=0, *;q=0"):
            st, h6, b6 = e.get(path, headers={"Accept-Encoding": ae})
            assert st == 200 and "content-encoding" not in h6 and h6["etag"] == ident_etag, ae
            assert data_of(json.loads(b6)) == data_of(ident)
        # a small answer (under 1 KiB) goes out as it is, without Vary: Accept-Encoding
        st, h7, b7 = e.get("/volumes/total", headers=gz)
        assert st == 200 and len(b7) < 1024 and "content-encoding" not in h7, h7
        assert "Accept-Encoding" not in h7.get("vary", "")
        json.loads(b7)
        # a fresh fetch (miss) of a big answer is gzipped too, and cached compressed
        st, h8, b8 = e.get(path, headers=dict(gz, **{"Cache-Control": "no-cache"}))
        assert st == 200 and h8["content-encoding"] == "gzip"
        assert json.loads(gzip.decompress(b8))["total_gib"] == ident["total_gib"]
    finally:
        e.stop()
        sim.stop()


def tokens_file(text):
    fd, path = tempfile.mkstemp(prefix="ebsd-tokens.")
    os.write(fd, text.encode())
    os.close(fd)
    os.chmod(path, 0o600)
    return path


def test_home_json_from_the_cache_without_a_fetch():
    sim = Sim("--instances", "60")
    e = Ebsd("regions: [us-east-1, eu-west-1]\n", sim=sim)
    try:
        before = sim.stats()
        st, h, body = e.get("/")
        doc = validate(body, "Home")
        assert st == 200 and h["content-type"] == "application/json", h
        assert "Accept" in h["vary"]
        # no answer yet: no age (the page says "no data")
        assert [(t["account"], t["region"], t.get("age_s")) for t in doc["targets"]] == [
            ("default", "us-east-1", None), ("default", "eu-west-1", None)], doc
        assert sim.stats() == before, "GET / started an EC2 call"
        st, _, tb = e.get("/volumes/total?region=eu-west-1")
        total = json.loads(tb)
        calls = sim.stats()
        for accept in (None, "*/*", "application/json", "text/html;q=0.5, application/json"):
            st, h, body = e.get("/", headers={"Accept": accept} if accept else None)
            assert st == 200 and h["content-type"] == "application/json", (accept, h)
            t = {x["region"]: x for x in validate(body, "Home")["targets"]}
            assert "age_s" not in t["us-east-1"]
            eu = t["eu-west-1"]
            assert (eu["total_gib"], eu["instance_count"], eu["volume_count"]) == (
                total["total_gib"], total["instance_count"], total["volume_count"])
            assert 0 <= eu["age_s"] < 30
            # storage by volume type, as the gauges have it: it adds up to the total
            assert eu["by_type"] and abs(sum(eu["by_type"].values()) - total["total_gib"]) < 1e-6, eu
        assert sim.stats() == calls, "GET / started an EC2 call"
        # with the unattached volumes fetched, the page knows them too
        st, _, ub = e.get("/volumes/unattached?region=eu-west-1")
        assert st == 200, ub
        eu = {x["region"]: x for x in json.loads(e.get("/")[2])["targets"]}["eu-west-1"]
        assert eu["unattached_gib"] == json.loads(ub)["total_gib"], eu
        st, h, body = e.get("/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
        assert st == 200 and h["content-type"].startswith("text/html")
        assert h["content-security-policy"].startswith("default-src 'none'")
        assert b"eu-west-1" in body and b"<script" not in body
    finally:
        e.stop()
    path = tokens_file("s3cr3t-token-for-the-page\n")
    e = Ebsd("security:\n  auth_tokens_file: %s\n" % path, sim=sim)
    try:
        for accept in ("text/html", "application/json"):
            st, h, _ = e.get("/", headers={"Accept": accept})
            assert st == 401 and h["www-authenticate"].startswith("Bearer"), (accept, st)
        st, _, body = e.get("/", headers={"Authorization": "Bearer s3cr3t-token-for-the-page"})
        assert st == 200 and json.loads(body)["targets"]
    finally:
        e.stop()
        sim.stop()
        os.unlink(path)


run(globals())
