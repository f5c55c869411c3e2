"""Shared helpers for integration tests: boot the real ec2sim and ebsd on 127.0.0.1 with
port 0, talk HTTP to them, and fail loudly. Every process started here is stopped at exit.

A test file is a plain script: it defines functions named test_*, and calls run(globals())
at the bottom, which prints one line per test and 'N passed, N failed'.
"""
import atexit
import http.client
import http.server
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

EBSD_BIN = os.environ.get("EBSD_BIN", "build/ebsd")
EC2SIM_BIN = os.environ.get("EC2SIM_BIN", "build/tools/ec2sim/ec2sim")
SOURCE_DIR = os.environ.get("EBSD_SOURCE_DIR", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SHARED_DIR = os.environ.get("EBSD_SHARED_DIR", os.path.join(SOURCE_DIR, "..", "shared"))
SANITIZE = os.environ.get("EBSD_BUILD_TYPE", "") == "Sanitize"
# Sanitizer builds run slower: timing assertions widen by this factor.
SLOW = 3.0 if SANITIZE else 1.0

TEST_ACCESS_KEY = "AKIDEXAMPLE"
TEST_SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

_procs = []


def _cleanup():
    for p in _procs:
        if p.poll() is None:
            p.kill()
            p.wait()


atexit.register(_cleanup)


class Proc:
    """A started binary with its stdout collected line by line in the background, or, given
    log_path, written to that file (as a log driver would) and read only when asked for."""

    def __init__(self, argv, env=None, first_line_timeout=20, log_path=None):
        self.argv = argv
        self.lines = []
        self._cond = threading.Condition()
        self._t = None
        self._log = open(log_path, "w+b") if log_path else None
        self._pos = 0
        self.p = subprocess.Popen(argv, stdout=self._log or subprocess.PIPE,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                  text=self._log is None, bufsize=1 if self._log is None else -1)
        _procs.append(self.p)
        if self._log is None:
            self._t = threading.Thread(target=self._reader, daemon=True)
            self._t.start()

    def _reader(self):
        for line in self.p.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def _catch_up(self):
        """With log_path: takes the complete lines written since the last call."""
        if self._log is None:
            return
        with open(self._log.name, "rb") as f:
            f.seek(self._pos)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self._pos += end
        with self._cond:
            self.lines.extend(l.decode("utf-8", "replace") for l in data[:end].split(b"\n")[:-1])

    def wait_line(self, pred, timeout=20, start=0):
        """Waits for an output line (from index start) for which pred(line) is true."""
        end = time.time() + timeout * SLOW
        i = start
        with self._cond:
            while True:
                self._catch_up()
                while i < len(self.lines):
                    if pred(self.lines[i]):
                        return self.lines[i]
                    i += 1
                if self.p.poll() is not None and i >= len(self.lines):
                    self._catch_up()
                    if i < len(self.lines):
                        continue
                    raise AssertionError("%s exited (%s) before the awaited line; output:\n%s" % (
                        self.argv[0], self.p.returncode, "\n".join(self.lines[-40:])))
                left = end - time.time()
                if left <= 0:
                    raise AssertionError("timed out waiting for a line from %s; output:\n%s" % (
                        self.argv[0], "\n".join(self.lines[-40:])))
                self._cond.wait(min(left, 0.2 if self._log is None else 0.05))

    def json_lines(self):
        self._catch_up()
        out = []
        for l in list(self.lines):
            if l.startswith("{"):
                try:
                    out.append(json.loads(l))
                except ValueError:
                    pass
        return out

    def signal(self, sig):
        self.p.send_signal(sig)

    def reload(self, config=None, until="configuration reloaded"):
        """Writes config (if given) over the config file, sends SIGHUP and returns the first
        line from then on that contains until, and the index the reload's lines start at."""
        if config is not None:
            with open(self.config_path, "w") as f:
                f.write(config)
        n = len(self.lines)
        self.signal(signal.SIGHUP)
        return self.wait_line(lambda l: until in l, start=n), n

    def stop(self, timeout=30):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        if self._t:
            self._t.join(5)
        if self._log:
            self._log.close()  # lines are read when asked for (wait_line, json_lines)
        return self.p.returncode

    @property
    def pid(self):
        return self.p.pid


class Sim(Proc):
    """ec2sim on 127.0.0.1:0; .url is the URL from its first stdout line."""

    def __init__(self, *args):
        super().__init__([EC2SIM_BIN, "--listen", "127.0.0.1:0"] + list(args))
        self.url = self.wait_line(lambda l: l.startswith("http")).strip()
        self.host, self.port = self.url.split("//")[1].rstrip("/").split(":")
        self.port = int(self.port)

    def get_json(self, path):
        return json.loads(http_request(self.port, "GET", path)[2])

    def post_json(self, path, obj=None):
        body = json.dumps(obj or {}).encode()
        st, _, data = http_request(self.port, "POST", path, body=body,
                                   headers={"Content-Type": "application/json"})
        assert st == 200, (st, data)
        return json.loads(data) if data else None

    def truth(self):
        return self.get_json("/_sim/truth")

    def stats(self):
        return self.get_json("/_sim/stats")

    def reset(self):
        return self.post_json("/_sim/reset")

    def faults(self, **kw):
        return self.post_json("/_sim/faults", kw)


class FakeHTTP:
    """A tiny HTTP server on 127.0.0.1, port 0, in threads (fake IMDS, container and STS
    endpoints): route(method, path, headers, body) -> (status, content_type, body)
    or None to hang for `hang` seconds. Records every request."""

    def __init__(self, route):
        self.route = route
        self.requests = []
        self.hang = 5.0
        fake = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _any(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                fake.requests.append((self.command, self.path, dict(self.headers), body))
                ans = fake.route(self.command, self.path, self.headers, body)
                if ans is None:
                    time.sleep(fake.hang)
                    return
                st, ctype, data = ans
                data = data.encode() if isinstance(data, str) else data
                self.send_response(st)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = _any

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


def write_config(text, suffix=".yaml"):
    fd, path = tempfile.mkstemp(suffix=suffix, prefix="ebsd-test-")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def sim_env(sim=None, extra=None):
    """An environment for ebsd with the test credentials and, if given, the sim endpoint."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["AWS_ACCESS_KEY_ID"] = TEST_ACCESS_KEY
    env["AWS_SECRET_ACCESS_KEY"] = TEST_SECRET_KEY
    env["AWS_REGION"] = "us-east-1"
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    if sim is not None:
        env["AWS_ENDPOINT_URL_EC2"] = sim.url
    if extra:
        env.update(extra)
    return env


class Ebsd(Proc):
    """ebsd on 127.0.0.1:0 with the given YAML config text (or none)."""

    def __init__(self, config=None, args=(), env=None, sim=None, wrapper=None, first_line_timeout=20,
                 log_path=None):
        # wrapper: an optional command prefix (e.g. ["valgrind", "--tool=memcheck", ...]);
        # the wrapped process's pid is then the wrapper's (valgrind runs ebsd in place).
        argv = [EBSD_BIN, "--listen", "127.0.0.1:0"]
        self.config_path = None
        if config is not None:
            self.config_path = write_config(config)
            argv += ["--config", self.config_path]
        argv += list(args)
        # ebsd refuses to serve as root unless told to; test machines often run as root.
        if os.geteuid() == 0 and "--allow-root" not in argv:
            argv.append("--allow-root")
        if wrapper:
            argv = list(wrapper) + argv
        super().__init__(argv, env=env if env is not None else sim_env(sim), log_path=log_path)
        line = self.wait_line(lambda l: '"listening"' in l or " listening " in l,
                              timeout=first_line_timeout)
        if line.startswith("{"):
            self.url = json.loads(line)["url"]
        else:
            self.url = [w for w in line.split() if w.startswith("url=")][0][4:]
        self.port = int(self.url.rsplit(":", 1)[1].rstrip("/"))

    def request(self, method, path, body=None, headers=None, timeout=60):
        return http_request(self.port, method, path, body=body, headers=headers, timeout=timeout)

    def get(self, path, headers=None, timeout=60):
        return self.request("GET", path, headers=headers, timeout=timeout)

    def get_json(self, path, headers=None, timeout=60):
        st, hdrs, data = self.get(path, headers=headers, timeout=timeout)
        return st, hdrs, (json.loads(data) if data else None)


def http_request(port, method, path, body=None, headers=None, timeout=60, host="127.0.0.1"):
    """One request on a fresh connection: (status, {lowercased header: value}, body bytes)."""
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        c.close()


def proc_status(pid, field):
    """A numeric field of /proc/PID/status ("Threads", "VmRSS" in KiB, ...); -1 if absent."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def proc_threads(pid):
    return proc_status(pid, "Threads")


def proc_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def proc_children(pid, zygote=False, spares=False):
    """(pid, state) of the processes whose parent is pid (zombies included): ebsd's workers.
    Its zygote, a helper that lives as long as ebsd, only when zygote is true; its spare
    workers (fanout.spare_workers: forked ahead, waiting for a request) only when spares is
    true."""
    kids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                comm, rest = f.read().split(" (", 1)[1].rsplit(")", 1)
            parts = rest.split()
            if int(parts[1]) == pid and (zygote or comm != "ebsd-zygote") and \
                    (spares or comm != "ebsd-spare"):
                kids.append((int(d), parts[0]))
        except (OSError, IndexError, ValueError):
            pass
    return kids


def run(namespace):
    """Runs every test_* function of a module; prints 'N passed, N failed'; exits 1 on failure."""
    only = sys.argv[1:]
    tests = [(n, f) for n, f in namespace.items() if n.startswith("test_") and callable(f)]
    tests.sort(key=lambda nf: nf[1].__code__.co_firstlineno)
    passed = failed = 0
    for name, fn in tests:
        if only and name not in only:
            continue
        t0 = time.time()
        try:
            fn()
            passed += 1
            print("ok   %s (%.2fs)" % (name, time.time() - t0), flush=True)
        except Exception:
            failed += 1
            print("FAIL %s (%.2fs)" % (name, time.time() - t0), flush=True)
            traceback.print_exc()
            sys.stdout.flush()
    _cleanup()
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed or not passed else 0)


# ---- Redis (tests/integration/test_redis.py; docs/ARCHITECTURE.md "Redis")

def scraped(e, name, labels=""):
    """The value of one series of ebsd's /metrics (labels as rendered, e.g.
    '{outcome="owner"}'), or None when it is not there."""
    _, _, data = e.get("/metrics")
    for line in data.decode().splitlines():
        if line.startswith(name + labels + " "):
            return float(line.split()[-1])
    return None


def ec2_calls(sim):
    """EC2 calls ec2sim has served since its last reset (every action)."""
    return sum(sim.stats()["calls"].values())


def settled_calls(sim, quiet=0.4, limit=20):
    """ec2sim's call count once no call has come in for `quiet` seconds (at most `limit`
    seconds, scaled by SLOW)."""
    seen, end = ec2_calls(sim), time.time() + limit * SLOW
    while time.time() < end:
        time.sleep(quiet)
        now = ec2_calls(sim)
        if now == seen:
            break
        seen = now
    return seen


class Nginx:
    """Debian's nginx in the foreground on 127.0.0.1:<free port>, with one server block:
    server_body is its directives after `listen` (e.g. a location). Stopped by stop()."""

    def __init__(self, server_body, listen_opts="", worker_connections=64, extra_main="",
                 error_level="warn"):
        import shutil
        import socket
        exe = shutil.which("nginx") or "/usr/sbin/nginx"
        assert os.path.exists(exe), "nginx is missing (Debian package nginx; scripts/deps.sh)"
        self.dir = tempfile.mkdtemp(prefix="nginx.")
        self.port = free_port()
        temp = "".join("  %s_temp_path %s/%s;\n" % (k, self.dir, k)
                       for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write("daemon off;\nmaster_process off;\nworker_processes 1;\n%s"
                    "error_log stderr %s;\npid %s/nginx.pid;\n"
                    "events { worker_connections %d; }\n"
                    "http {\n  access_log off;\n%s"
                    "  server {\n    listen 127.0.0.1:%d%s;\n%s  }\n}\n"
                    % (extra_main, error_level, self.dir, worker_connections, temp, self.port,
                       listen_opts, server_body))
        self.p = subprocess.Popen([exe, "-p", self.dir, "-c", conf], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.p.poll() is not None:
                    out = self.p.stdout.read().decode()
                    self.stop()
                    raise AssertionError("nginx exited: " + out)
                time.sleep(0.05)
        self.stop()
        raise AssertionError("nginx did not start")

    def stop(self):
        import shutil
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now (redis-server's --port 0
    means "no TCP", so it cannot pick its own)."""
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def make_test_ca(d, name="ca"):
    """A self-signed test CA in directory d: returns (cert path, key path)."""
    crt, key = os.path.join(d, name + ".crt"), os.path.join(d, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=ebsd test " + name, "-keyout", key, "-out", crt],
                   check=True, capture_output=True)
    return crt, key


def make_server_cert(d, ca, san="IP:127.0.0.1,DNS:localhost", name="server"):
    """A server certificate signed by ca = (cert, key), with subjectAltName san."""
    crt, key, csr = (os.path.join(d, name + ext) for ext in (".crt", ".key", ".csr"))
    ext = os.path.join(d, name + ".ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=%s\nbasicConstraints=CA:FALSE\n" % san)
    subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + name,
                    "-keyout", key, "-out", csr], check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1],
                    "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", crt],
                   check=True, capture_output=True)
    return crt, key


class RedisServer:
    """Debian's redis-server on 127.0.0.1 (a free port) and a Unix socket in its own temp
    directory, without persistence; optional requirepass, ACL users and a TLS port. Stopped
    at exit like every other process here (also when a test fails)."""

    def __init__(self, password=None, acl_users=(), tls=None):
        self.dir = tempfile.mkdtemp(prefix="ebsd-redis-")
        self.port = free_port()
        self.sock = os.path.join(self.dir, "redis.sock")
        self.password = password
        self.tls_port = free_port() if tls else None
        conf = ["port %d" % self.port, "bind 127.0.0.1", "unixsocket " + self.sock,
                "unixsocketperm 700", "save \"\"", "appendonly no", "dir " + self.dir,
                "logfile " + os.path.join(self.dir, "redis.log")]
        if password:
            conf.append("requirepass " + password)
        for user, pw in acl_users:
            conf.append("user %s on >%s ~* &* +@all" % (user, pw))
        if tls:
            conf += ["tls-port %d" % self.tls_port, "tls-cert-file " + tls[0],
                     "tls-key-file " + tls[1], "tls-auth-clients no"]
        self.conf = os.path.join(self.dir, "redis.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(conf) + "\n")
        self.p = None
        self.start()

    def start(self):
        self.p = subprocess.Popen(["redis-server", self.conf], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        _procs.append(self.p)
        deadline = time.time() + 10 * SLOW
        while time.time() < deadline:
            if self.p.poll() is not None:
                raise RuntimeError("redis-server exited: see " + self.dir + "/redis.log")
            if os.path.exists(self.sock) and self.cli("PING").strip() == "PONG":
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not answer PING")

    def cli(self, *args):
        """Runs redis-cli over the Unix socket (authenticated); returns its stdout."""
        argv = ["redis-cli", "-s", self.sock, "--no-auth-warning"]
        if self.password:
            argv += ["-a", self.password]
        r = subprocess.run(argv + list(args), capture_output=True, text=True, timeout=10)
        return r.stdout

    def kill(self):
        if self.p and self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        if os.path.exists(self.sock):
            os.unlink(self.sock)

    def pause(self):
        self.p.send_signal(signal.SIGSTOP)

    def resume(self):
        self.p.send_signal(signal.SIGCONT)

    def stop(self):
        """Stops the server (also a paused one) and removes its directory."""
        import shutil
        if self.p and self.p.poll() is None:
            self.p.send_signal(signal.SIGCONT)
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
