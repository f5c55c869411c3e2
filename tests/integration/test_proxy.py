"""ebsd behind a reverse proxy and under a misbehaving client, through the real ebsd and
ec2sim: Debian's nginx, started here on 127.0.0.1 (a free port) in front of ebsd, adds
X-Forwarded-For ($proxy_add_x_forwarded_for) and is stopped at the end, also on failure.

- 1,000 concurrent GET /volumes/total through nginx are all answered 200 with
  server.trusted_proxies naming nginx, although every connection comes from one address and
  max_connections_per_ip is far below 1,000; the access log names the clients behind nginx
  (several 127.0.0.x source addresses), not nginx. The same burst without trusted_proxies
  is refused in part: the control that shows the test can fail.
- The per-client limit applies to the client behind the proxy (requests in flight per
  client address): one client over it gets 429 with Retry-After while another client and
  /healthz through the same proxy are answered.
- A slowloris from one address (many connections trickling their headers) leaves /healthz,
  /readyz and another address's data requests answered (127.0.0.0/8 is all loopback)."""
import asyncio
import http.client
import json
import socket
import threading
import time

from harness import Ebsd, Nginx, Sim, run


def proxy_to(upstream):
    """nginx proxying everything to 127.0.0.1:upstream, adding X-Forwarded-For."""
    return Nginx("    location / {\n      proxy_pass http://127.0.0.1:%d;\n"
                 "      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
                 "      proxy_read_timeout 60s;\n    }\n" % upstream,
                 listen_opts=" backlog=2048", worker_connections=4096,
                 extra_main="worker_rlimit_nofile 8192;\n", error_level="error")


def get_from(src, port, path, timeout=30):
    """GET path on 127.0.0.1:port from source address src: (status, headers, body)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(src, 0))
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


async def _one(src, port, path):
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(src, 0))
    writer.write(("GET %s HTTP/1.1\r\nHost: ebsd\r\nConnection: close\r\n\r\n" % path).encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    line = data.split(b"\r\n", 1)[0].split()
    return int(line[1]) if len(line) > 1 else 0


def burst(port, path, sources, n):
    """n concurrent GETs, spread over the source addresses: the list of statuses."""
    async def main():
        return await asyncio.gather(*(_one(sources[i % len(sources)], port, path)
                                      for i in range(n)), return_exceptions=True)
    return [r if isinstance(r, int) else repr(r) for r in asyncio.run(main())]


def access_lines(e, path):
    return [d for d in e.json_lines() if d.get("event") == "access" and d.get("path") == path]


SOURCES = ["127.0.0.%d" % i for i in range(10, 30)]


def test_burst_of_1000_through_nginx_all_200():
    # EC2 takes a while, so the burst is in flight at once: 1,000 upstream connections from
    # nginx's one address, ten times max_connections_per_ip
    sim = Sim("--instances", "200", "--latency-ms", "700")
    conf = "server:\n  max_connections_per_ip: 100\n%s"
    e = Ebsd(conf % '  trusted_proxies: ["127.0.0.1"]\n', sim=sim)
    ngx = proxy_to(e.port)
    try:
        t0 = time.time()
        got = burst(ngx.port, "/volumes/total", SOURCES, 1000)
        took = time.time() - t0
        bad = [s for s in got if s != 200]
        assert not bad, "%d of 1000 not 200: %s" % (len(bad), sorted(set(map(str, bad))))
        time.sleep(0.5)
        lines = [d for d in access_lines(e, "/volumes/total")]
        assert len(lines) == 1000, len(lines)
        clients = {d["client"] for d in lines}
        assert clients == set(SOURCES), clients  # the clients behind nginx, not nginx
        e._catch_up()
        reports = [l for l in e.lines if "REPORT RequestId" in l]
        waited = sum(1 for l in reports if "Cache: coalesced" in l or "Cache: miss" in l)
        # most waited on the one fetch together: far more than 100 connections were open
        assert waited > 300, waited
        print("    1000 x 200 through nginx in %.2f s, %d waited on one fetch, clients %d"
              % (took, waited, len(clients)))
    finally:
        ngx.stop()
        e.stop()
    # the control: nginx not trusted, so it is one client with 1,000 connections
    e = Ebsd(conf % "", sim=sim)
    ngx = proxy_to(e.port)
    try:
        got = burst(ngx.port, "/volumes/total", SOURCES, 1000)
        refused = sum(1 for s in got if s == 503)
        assert refused > 100, sorted(set(map(str, got)))
        time.sleep(0.5)
        assert {d["client"] for d in access_lines(e, "/volumes/total")} == {"127.0.0.1"}
        print("    without trusted_proxies: %d of 1000 refused" % refused)
    finally:
        ngx.stop()
        e.stop()
        sim.stop()


def test_per_client_limit_applies_behind_the_proxy():
    sim = Sim("--instances", "50", "--latency-ms", "1500")
    e = Ebsd('server:\n  max_connections_per_ip: 20\n  trusted_proxies: ["127.0.0.1"]\n',
             sim=sim)
    ngx = proxy_to(e.port)
    try:
        flood = []
        th = threading.Thread(target=lambda: flood.extend(
            burst(ngx.port, "/volumes/total", ["127.0.0.5"], 60)))
        th.start()
        time.sleep(0.8)  # the flood is in flight, waiting on EC2
        t0 = time.time()
        st, _, body = get_from("127.0.0.5", ngx.port, "/healthz", timeout=5)
        assert st == 200 and json.loads(body)["status"] == "ok"
        st, h, body = get_from("127.0.0.5", ngx.port, "/volumes/total", timeout=5)
        assert st == 429 and h["retry-after"] == "1", (st, h, body)
        assert json.loads(body)["error"]["code"] == "TooManyRequests"
        assert time.time() - t0 < 2
        other = get_from("127.0.0.6", ngx.port, "/volumes/total", timeout=10)
        assert other[0] == 200, other
        th.join(30)
        assert sorted(set(flood)) == [200, 429], flood
        assert flood.count(200) == 20 and flood.count(429) == 40, (
            flood.count(200), flood.count(429))
        m = e.get("/metrics")[2].decode()
        assert 'ebsd_http_client_refused_total{reason="requests"} 41' in m, \
            [l for l in m.splitlines() if "refused" in l]
    finally:
        ngx.stop()
        e.stop()
        sim.stop()


def test_slowloris_from_one_address_leaves_others_answered():
    sim = Sim("--instances", "30")
    e = Ebsd("server:\n  max_connections: 200\n  max_connections_per_ip: 50\n"
             "  header_timeout_s: 20\n", sim=sim)
    socks = []
    stop = threading.Event()
    try:
        for _ in range(150):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            s.connect(("127.0.0.1", e.port))
            s.sendall(b"GET /volumes/total HTTP/1.1\r\nHost: x\r\n")
            socks.append(s)

        def trickle():
            while not stop.wait(0.5):
                for s in socks:
                    try:
                        s.send(b"X")
                    except OSError:
                        pass
        th = threading.Thread(target=trickle, daemon=True)
        th.start()
        time.sleep(1.0)
        # the connections beyond the per-address limit were answered 503 and closed
        refused = 0
        for s in socks:
            s.setblocking(False)
            try:
                data = s.recv(4096)
                if data.startswith(b"HTTP/1.1 503") or data == b"":
                    refused += 1
            except BlockingIOError:
                pass
        assert refused == 100, refused
        for src in ("127.0.0.2", "127.0.0.3"):
            for path in ("/healthz", "/readyz"):
                t0 = time.time()
                st, _, _ = get_from(src, e.port, path, timeout=5)
                assert st == 200 and time.time() - t0 < 1, (src, path, st)
        t0 = time.time()
        st, _, body = get_from("127.0.0.4", e.port, "/volumes/total", timeout=10)
        assert st == 200 and json.loads(body)["instance_count"] == 30
        assert time.time() - t0 < 5
        m = get_from("127.0.0.2", e.port, "/metrics", timeout=5)[2].decode()
        assert 'ebsd_http_client_refused_total{reason="connections"} 100' in m, \
            [l for l in m.splitlines() if "refused" in l]
    finally:
        stop.set()
        for s in socks:
            s.close()
        e.stop()
        sim.stop()


run(globals())
