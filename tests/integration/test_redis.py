"""The Redis connection (src/store/redis.c) and the shared-state primitives (src/store/redisstate.c)
against a real redis-server from Debian started here on 127.0.0.1 (a free port, a Unix
socket, a TLS port with a test CA made by openssl), driven through tests/tools/redis_probe:
AUTH (password, ACL user), SELECT, the GCRA limiter holding one rate for two connections
and two processes, the lock (owner, expiry, owner-only release, pub/sub wake-up), replica
counts, reconnection after redis-server is killed and restarted, the command timeout while
redis-server is stopped (SIGSTOP), replies that break the caps, and TLS verification.
Every redis-server is stopped at the end, also on failure (harness cleanup)."""
import os
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (SLOW, RedisServer, _procs, make_server_cert, make_test_ca,  # noqa: E402
                     run)

TOOLS = os.environ.get("EBSD_TOOLS_DIR", "build/tests/tools")
PROBE = os.path.join(TOOLS, "redis_probe")
PASSWORD = "t3st-Redis-pw"


class Probe:
    """One redis_probe process: ask() sends a request line and returns its answer."""

    def __init__(self, url, *opts):
        opts = list(opts)
        if "--command-timeout-ms" not in opts:
            # generous unless a test is about timeouts: 2 cores shared with other tests
            opts += ["--command-timeout-ms", str(int(1000 * SLOW))]
        self.p = subprocess.Popen([PROBE, url] + opts, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  bufsize=1)
        _procs.append(self.p)
        self.answers = queue.Queue()
        self.log = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            line = line.rstrip("\n")
            if line.startswith("= "):
                self.answers.put(line[2:])
            else:
                self.log.append(line)
        self.answers.put(None)

    def send(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()

    def answer(self, timeout=30):
        a = self.answers.get(timeout=timeout * SLOW)
        assert a is not None, "redis_probe exited:\n" + "\n".join(self.log[-20:])
        return a

    def ask(self, line, timeout=30):
        self.send(line)
        return self.answer(timeout)

    def stats(self, conn="a"):
        return dict(kv.split("=") for kv in self.ask("stats " + conn).split())

    def close(self):
        if self.p.poll() is None:
            try:
                self.send("quit")
                self.p.wait(timeout=10)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.p.kill()
                self.p.wait()
        assert self.p.returncode == 0, "redis_probe exit %s" % self.p.returncode


def password_file(text=PASSWORD + "\n"):
    fd, path = tempfile.mkstemp(prefix="ebsd-redis-pw-")
    os.write(fd, text.encode())
    os.close(fd)
    return path


def up_probe(url, *opts):
    p = Probe(url, *opts)
    assert p.ask("wait_up %d" % (5000 * SLOW)) == "up", "\n".join(p.log)
    return p


def test_tcp_unix_auth_select():
    srv = RedisServer(password=PASSWORD)
    pw = password_file()
    try:
        p = up_probe("redis://127.0.0.1:%d/2" % srv.port, "--password-file", pw)
        assert p.ask("cmd a SET greeting hello") == "ok OK"
        assert p.ask("cmd b GET greeting") == "ok hello"
        assert p.ask("cmd a CLIENT INFO").find(" db=2 ") > 0
        # SELECT 2 happened: db 0 does not have the key
        assert srv.cli("-n", "2", "GET", "greeting").strip() == "hello"
        assert srv.cli("GET", "greeting").strip() == ""
        assert p.ask("cmd a NOSUCHCOMMAND").startswith("err upstream error ERR unknown command")
        assert int(p.stats()["error_replies"]) == 1
        p.close()
        # a host name: resolved by c-ares (from /etc/hosts; localhost may list ::1 first,
        # where nothing listens, so this also tries the next address)
        n = up_probe("redis://localhost:%d/2" % srv.port, "--password-file", pw)
        assert n.ask("cmd a GET greeting") == "ok hello"
        n.close()
        u = up_probe("unix://" + srv.sock, "--password-file", pw)
        assert u.ask("cmd a GET greeting") == "ok (nil)"  # db 0
        assert u.ask("cmd a SET a b") == "ok OK"
        u.close()
        # the password never appears in the probe's logs
        assert not any(PASSWORD in line for line in p.log + u.log)
    finally:
        srv.stop()
        os.unlink(pw)


def test_auth_refused_and_acl_user():
    srv = RedisServer(password=PASSWORD, acl_users=[("ebsd", "acl-" + PASSWORD)])
    good, bad = password_file("acl-" + PASSWORD), password_file("wrong\n")
    try:
        p = up_probe("redis://ebsd@127.0.0.1:%d" % srv.port, "--password-file", good)
        assert p.ask("cmd a ACL WHOAMI") == "ok ebsd"
        p.close()
        q = Probe("redis://ebsd@127.0.0.1:%d" % srv.port, "--password-file", bad)
        assert q.ask("wait_up 1500") == "down"
        assert q.ask("cmd a PING") == "refused network error"
        s = q.stats()
        assert int(s["connects"]) == 0 and int(s["connect_failures"]) >= 2, s
        assert int(s["refused"]) == 1, s
        assert any("AUTH refused" in line for line in q.log), q.log
        assert not any("wrong" in line or PASSWORD in line for line in q.log)
        q.close()
    finally:
        srv.stop()
        os.unlink(good)
        os.unlink(bad)


def test_limiter_holds_one_rate_for_everyone():
    srv = RedisServer()
    try:
        url = "redis://127.0.0.1:%d" % srv.port
        p1, p2 = up_probe(url), up_probe(url)
        key = "ebsd:{123456789012:us-east-1}:budget:DescribeVolumes"
        # burst 5: five at once, then refused with the wait until the next token (1/20 s)
        for _ in range(5):
            assert p1.ask("limit a %s 20 5" % key).startswith("allowed 1")
        a = p1.ask("limit b %s 20 5" % key)
        assert a.startswith("allowed 0 wait="), a
        assert 1 <= int(a.split("=")[1]) <= 50, a
        time.sleep(0.06)
        assert p2.ask("limit a %s 20 5" % key).startswith("allowed 1")
        # two processes, two connections each, hammering one budget for 2 s together
        key2 = "ebsd:{123456789012:us-east-1}:budget:DescribeInstances"
        rate, burst, ms = 50, 10, 2000
        p1.send("limitrun %s %d %d %d" % (key2, rate, burst, ms))
        p2.send("limitrun %s %d %d %d" % (key2, rate, burst, ms))
        r1 = dict(kv.split("=") for kv in p1.answer().split())
        r2 = dict(kv.split("=") for kv in p2.answer().split())
        allowed = int(r1["allowed"]) + int(r2["allowed"])
        elapsed = max(int(r1["ms"]), int(r2["ms"])) / 1000.0
        want = burst + rate * elapsed
        print("  limiter: allowed %d in %.2f s (rate %d, burst %d: at most %.0f); each: %s, %s"
              % (allowed, elapsed, rate, burst, want, r1["allowed"], r2["allowed"]))
        assert r1["errors"] == "0" and r2["errors"] == "0"
        assert int(r1["allowed"]) > 0 and int(r2["allowed"]) > 0  # both shared it
        assert want - 0.15 * rate - 2 <= allowed <= want + 2, (allowed, want)
        # the key expires with its backlog: no state left behind for an idle target
        ttl = int(srv.cli("PTTL", key2))
        assert 0 < ttl <= 1000 * burst / rate + 50, ttl
        p1.close()
        p2.close()
    finally:
        srv.stop()


def test_lock_owner_expiry_release_and_wake():
    srv = RedisServer()
    try:
        url = "redis://127.0.0.1:%d" % srv.port
        p1, p2 = up_probe(url), up_probe(url)
        # a plain SUBSCRIBE channel next to the wake pattern: both processes hear it
        p1.send("waitmsg 3000")
        p2.send("waitmsg 3000")
        time.sleep(0.1)
        assert srv.cli("PUBLISH", "ebsd:probe", "hello").strip() == "2"
        assert p1.answer() == "msg hello" and p2.answer() == "msg hello"
        key = "ebsd:{123456789012:us-east-1}:flight:volumes_total"
        a = p1.ask("lock a %s 5000" % key)
        assert a.startswith("acquired "), a
        token = a.split()[1]
        assert srv.cli("GET", key).strip() == token
        h = p2.ask("lock a %s 5000" % key)
        assert h.startswith("held "), h
        assert 4000 < int(h.split()[1]) <= 5000, h
        # only the owner releases or extends
        assert p2.ask("release a %s %s" % (key, "0" * 32)) == "released 0"
        assert p2.ask("extend a %s %s 9000" % (key, "0" * 32)) == "extended 0"
        assert srv.cli("GET", key).strip() == token
        assert p1.ask("extend b %s %s 9000" % (key, token)) == "extended 1"
        assert 8000 < int(srv.cli("PTTL", key)) <= 9000
        # a waiter is woken by the owner's release (pub/sub), not by its own deadline
        p2.send("waitwake %s 5000" % key)
        time.sleep(0.2)
        assert p1.ask("release a %s %s" % (key, token)) == "released 1"
        w = p2.answer()
        assert w.startswith("woken ms="), w
        assert int(w.split("=")[1]) < 1000, w
        assert srv.cli("EXISTS", key).strip() == "0"
        # an owner that dies: the lock expires and the next one takes it
        a = p1.ask("lock a %s 300" % key)
        assert a.startswith("acquired ")
        assert p2.ask("lock b %s 300" % key).startswith("held ")
        time.sleep(0.4)
        assert p2.ask("lock b %s 300" % key).startswith("acquired ")
        assert p1.ask("release a %s %s" % (key, a.split()[1])) == "released 0"
        # no wake-up for a key nobody releases: the waiter's own deadline ends the wait
        assert p2.ask("waitwake ebsd:other 300") == "timeout"
        p1.close()
        p2.close()
    finally:
        srv.stop()


def test_replica_count():
    srv = RedisServer()
    try:
        p = up_probe("redis://127.0.0.1:%d" % srv.port)
        assert p.ask("announce a replica-1 600") == "count 1"
        assert p.ask("announce b replica-2 600") == "count 2"
        assert p.ask("announce a replica-1 600") == "count 2"
        assert p.ask("withdraw a replica-2") == "count 1"
        assert p.ask("announce b replica-3 300") == "count 2"
        time.sleep(0.4)  # replica-3 stopped announcing
        assert p.ask("announce a replica-1 600") == "count 1"
        assert 0 < int(srv.cli("PTTL", "ebsd:replicas")) <= 1200
        p.close()
    finally:
        srv.stop()


def test_reconnect_after_restart():
    srv = RedisServer()
    try:
        p = up_probe("redis://127.0.0.1:%d" % srv.port, "--command-timeout-ms", "200")
        assert p.ask("cmd a SET k 1") == "ok OK"
        srv.kill()
        assert p.ask("wait_down 3000") == "down"
        t0 = time.time()
        assert p.ask("cmd a GET k") == "refused network error"
        assert p.ask("limit a ebsd:{1:r}:budget:X 10 5") == "refused network error"
        assert time.time() - t0 < 0.5  # down means "fall back now", never a wait
        time.sleep(1.0)  # a few failed attempts, backoff growing
        srv.start()
        t0 = time.time()
        assert p.ask("wait_up 6000") == "up"
        print("  reconnected %.2f s after redis-server came back" % (time.time() - t0))
        assert time.time() - t0 < 5.0
        assert p.ask("cmd a SET k 2") == "ok OK"
        # the subscriber came back too and subscribed again (SUBSCRIBE and PSUBSCRIBE)
        assert p.ask("wait_up 6000") == "up"
        p.send("waitmsg 3000")
        time.sleep(0.1)
        assert srv.cli("PUBLISH", "ebsd:probe", "after-restart").strip() == "1"
        assert p.answer() == "msg after-restart"
        s = p.stats()
        assert int(s["disconnects"]) == 1 and int(s["connects"]) == 2, s
        assert int(s["connect_failures"]) >= 2, s
        p.close()
    finally:
        srv.stop()


def test_command_timeout_when_stopped():
    srv = RedisServer()
    try:
        p = up_probe("redis://127.0.0.1:%d" % srv.port, "--command-timeout-ms", "200")
        srv.pause()
        a = p.ask("timed a GET k")
        assert a.startswith("err timed out") and " ms=" in a, a
        ms = int(a.split("ms=")[1])
        print("  command failed after %d ms (timeout 200 ms)" % ms)
        assert 190 <= ms <= 200 + 150 * SLOW, a
        assert p.ask("state").startswith("a=0")
        assert p.ask("cmd a GET k") == "refused network error"
        # while stopped, connects hang in the handshake and time out (connect_timeout_ms)
        time.sleep(1.5)
        srv.resume()
        assert p.ask("wait_up 6000") == "up"
        assert p.ask("cmd a PING") == "ok PONG"
        s = p.stats()
        assert int(s["timeouts"]) == 1 and int(s["disconnects"]) == 1, s
        # the subscriber's keepalive noticed the stop too
        assert int(p.stats("sub")["disconnects"]) == 1
        p.close()
    finally:
        srv.stop()


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def test_waiting_for_a_slow_reply_costs_no_cpu():
    """A reply that takes longer than the 1 s keepalive (but less than the command
    timeout) is waited for on the loop, not by spinning."""
    srv = RedisServer()
    try:
        p = up_probe("redis://127.0.0.1:%d" % srv.port, "--command-timeout-ms", "5000")
        srv.pause()
        cpu0 = cpu_seconds(p.p.pid)
        p.send("timed a PING")
        time.sleep(2.5)
        srv.resume()
        a = p.answer()
        assert a.startswith("ok PONG ms="), a
        assert int(a.split("ms=")[1]) >= 2400, a
        used = cpu_seconds(p.p.pid) - cpu0
        print("  %.2f s of CPU while waiting 2.5 s for a reply" % used)
        assert used < 0.3 * SLOW, used
        p.close()
    finally:
        srv.stop()


def test_hostile_replies_are_capped():
    """A server that answers PING and then a reply past the caps: a protocol error that
    closes the connection, counted, and the process stays well."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(8)
    port = lst.getsockname()[1]
    evil = [b"*1000000\r\n", b"$99999999\r\n" + b"x" * 65536, b"!garbage\r\n"]
    served = []

    def serve():
        lst.settimeout(20)
        try:
            while len(served) < 30:
                c, _ = lst.accept()
                threading.Thread(target=one, args=(c,), daemon=True).start()
        except OSError:
            pass

    def one(c):
        c.settimeout(10)
        try:
            while True:
                data = c.recv(65536)
                if not data:
                    return
                if b"PING" in data:
                    c.sendall(b"+PONG\r\n")
                elif b"PSUBSCRIBE" in data:
                    pass
                else:
                    kind = len(served) % len(evil)
                    served.append(kind)
                    try:
                        while True:  # keep feeding until the client hangs up
                            c.sendall(evil[kind])
                            if kind != 1:
                                break
                    except OSError:
                        return
        except OSError:
            pass
        finally:
            c.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        # a 1 MiB reply cap (16 MiB by default), and a command timeout long enough for the
        # cap to be what ends the big reply
        p = up_probe("redis://127.0.0.1:%d" % port, "--command-timeout-ms", "10000",
                     "--max-reply-bytes", "1048576")
        for _ in range(3):
            a = p.ask("cmd a GET k")
            assert a.startswith("err network error"), a
            assert p.ask("wait_up 5000") == "up"
        s = p.stats()
        assert int(s["protocol_errors"]) == 3, s
        assert any("reply larger than the cap" in line for line in p.log), p.log
        assert any("protocol error" in line for line in p.log), p.log
        p.close()
    finally:
        lst.close()


def test_tls_verification():
    d = tempfile.mkdtemp(prefix="ebsd-redis-tls-")
    ca = make_test_ca(d)
    other_ca = make_test_ca(d, "other")
    cert = make_server_cert(d, ca)
    srv = RedisServer(password=PASSWORD, tls=cert)
    pw = password_file()
    try:
        for host in ("127.0.0.1", "localhost"):
            p = up_probe("rediss://%s:%d" % (host, srv.tls_port), "--ca-file", ca[0],
                         "--password-file", pw)
            assert p.ask("cmd a SET over tls") == "ok OK"
            assert p.ask("cmd b GET over") == "ok tls"
            p.close()
        # the wrong CA: never up, and the log says why
        q = Probe("rediss://127.0.0.1:%d" % srv.tls_port, "--ca-file", other_ca[0],
                  "--password-file", pw)
        assert q.ask("wait_up 1500") == "down"
        assert any("certificate verification failed" in line for line in q.log), q.log
        q.close()
        # the right CA but a name the certificate does not carry
        srv2_cert = make_server_cert(d, ca, san="DNS:redis.example", name="named")
        srv2 = RedisServer(tls=srv2_cert)
        try:
            q = Probe("rediss://127.0.0.1:%d" % srv2.tls_port, "--ca-file", ca[0])
            assert q.ask("wait_up 1500") == "down"
            assert any("certificate verification failed" in line for line in q.log), q.log
            q.close()
        finally:
            srv2.stop()
        # plain text to the TLS port is not mistaken for a connection
        q = Probe("redis://127.0.0.1:%d" % srv.tls_port, "--connect-timeout-ms", "300")
        assert q.ask("wait_up 1000") == "down"
        q.close()
    finally:
        srv.stop()
        os.unlink(pw)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    run(globals())
