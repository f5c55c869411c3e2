"""realip_client against nginx itself: Debian's nginx, started on 127.0.0.1 with the realip
module (set_real_ip_from, real_ip_header X-Forwarded-For, real_ip_recursive on) and
`return 200 $remote_addr`, is sent every case over a real socket from 127.0.0.1, and
tests/tools/realip_probe computes the same cases with ebsd's src/http/realip.c: the answers must
be equal, case for case (one documented difference: nginx reads octets with leading zeros,
inet_pton refuses them)."""
import os
import socket
import subprocess

from harness import SOURCE_DIR, Nginx, run

TOOLS = os.environ.get("EBSD_TOOLS_DIR", os.path.join(SOURCE_DIR, "build", "tests", "tools"))
TRUSTED = ["127.0.0.1", "10.0.0.0/8", "192.168.0.0/16", "fd00::/8"]

# One X-Forwarded-For header value per inner list entry; several entries are several headers.
CASES = [
    [],
    ["203.0.113.7"],
    ["203.0.113.7, 10.0.0.5"],
    ["198.51.100.1, 203.0.113.7, 10.0.0.5, 10.9.9.9"],
    ["10.0.0.1, 10.0.0.2"],
    ["10.0.0.1"],
    ["203.0.113.7,10.0.0.5"],
    ["203.0.113.7 10.0.0.5"],
    ["203.0.113.7 ,  10.0.0.5 , "],
    ["203.0.113.7,,,10.0.0.5,,"],
    ["203.0.113.7:5678"],
    ["203.0.113.7:65535, 10.0.0.5:80"],
    ["203.0.113.7:0"],
    ["203.0.113.7:70000"],
    ["203.0.113.7:"],
    ["2001:db8::7"],
    ["[2001:db8::7]:443"],
    ["2001:db8::7, fd12::3"],
    ["2001:DB8:0:0:0:0:0:7"],
    ["::ffff:198.51.100.1"],
    ["[::1]"],
    ["[::1]:80"],
    ["1.2.3.4, garbage"],
    ["1.2.3.4, garbage, 10.0.0.5"],
    ["unknown"],
    ["256.1.1.1"],
    ["1.2.3"],
    ["fe80::1%eth0"],
    [","],
    [",203.0.113.7"],
    [",10.0.0.2, 10.0.0.3"],
    ["1.1.1.1", "2.2.2.2, 10.0.0.3"],
    ["1.1.1.1", "10.0.0.3"],
    ["1.1.1.1, 10.0.0.4", "10.0.0.3"],
    ["garbage", "10.0.0.3"],
    ["1.1.1.1", "garbage"],
    ["10.0.0.1, 10.0.0.2", "10.0.0.3"],
    ["192.168.1.1, 10.1.1.1", "10.2.2.2", "192.168.3.3"],
    ["203.0.113.7;foo"],
    ["203.0.113.7x"],
]
# nginx's own octet parser reads "010" as 10; inet_pton refuses it, so ebsd stops the walk.
DIFFERENT = {("010.0.0.1",): ("10.0.0.1", "127.0.0.1")}


class RealipNginx(Nginx):
    """nginx with the realip module trusting TRUSTED, answering each request $remote_addr."""

    def __init__(self):
        super().__init__("".join("    set_real_ip_from %s;\n" % t for t in TRUSTED) +
                         "    real_ip_header X-Forwarded-For;\n    real_ip_recursive on;\n"
                         "    location / { default_type text/plain; return 200 $remote_addr; }\n")

    def client(self, headers):
        """$remote_addr for a request with these X-Forwarded-For values, over a raw socket so
        that every header goes out exactly as written."""
        req = "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
        req += "".join("X-Forwarded-For: %s\r\n" % h for h in headers) + "\r\n"
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(req.encode())
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), data
        return body.decode()


def ebsd_clients(cases):
    lines = "".join("\t".join(["127.0.0.1"] + c) + "\n" for c in cases)
    p = subprocess.run([os.path.join(TOOLS, "realip_probe")] + TRUSTED, input=lines,
                       capture_output=True, text=True, check=True, timeout=30)
    return p.stdout.splitlines()


def test_same_client_as_nginx():
    ngx = RealipNginx()
    try:
        want = [ngx.client(c) for c in CASES]
        got = ebsd_clients(CASES)
        diffs = [(c, w, g) for c, w, g in zip(CASES, want, got) if w != g]
        assert not diffs, "\n".join("XFF %r: nginx %s, ebsd %s" % d for d in diffs)
        # the cases exercise every outcome: peer kept, taken from the header, left-most
        assert "127.0.0.1" in want and "203.0.113.7" in want and "10.0.0.1" in want
        # the known difference, checked so it stays known
        for case, (ngx_says, ebsd_says) in DIFFERENT.items():
            assert ngx.client(list(case)) == ngx_says
            assert ebsd_clients([list(case)]) == [ebsd_says]
        print("    %d cases, %d distinct answers, all equal to %s's" % (
            len(CASES), len(set(want)), subprocess.run(["nginx", "-v"], capture_output=True,
                                                        text=True).stderr.strip()))
    finally:
        ngx.stop()


run(globals())
