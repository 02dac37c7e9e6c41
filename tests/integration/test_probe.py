# Kubelet probes through the tunnel: a stand-in kubelet on the node's side
# that the test switches between 200, 500, hanging and not listening; tcp,
# http and https probes (a test CA made with the openssl CLI, verified or
# not); degraded nodes still route; probes of many nodes spread over the
# interval; a probe in flight survives its session's death and a drain.

import os
import socket
import ssl
import subprocess
import threading
import time

import pytest

import sshtund_testlib as tl

INTERVAL = 0.5
TIMEOUT = 1.0


class Kubelet:
    """A kubelet stand-in on addr:port. mode: an HTTP status (200, 500) to
    answer every GET with, "hang" (accept, read, never answer), "eager"
    (answer 400 to the first bytes, whatever they are, and close) or
    "closed" (nothing listens). With 'tls' (an ssl.SSLContext) it speaks
    HTTPS.
    Each request is kept as (monotonic time, head bytes)."""

    REASONS = {200: "OK", 500: "Internal Server Error"}

    def __init__(self, addr, port=None, mode=200, tls=None):
        self.addr = addr
        self.port = port or tl.free_port(addr)
        self.tls = tls
        self.requests = []
        self.handshake_errors = []
        self.mode = None
        self._lock = threading.Lock()
        self._lsock = None
        self._conns = []
        self._stopping = False
        self.set(mode)

    @property
    def target(self):
        return f"{self.addr}:{self.port}"

    def set(self, mode):
        with self._lock:
            self.mode = mode
            if mode == "closed":
                self._close_listener()
            elif self._lsock is None:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((self.addr, self.port))
                s.listen(64)
                self._lsock = s
                threading.Thread(target=self._accept_loop, args=(s,), daemon=True).start()

    def _close_listener(self):
        if self._lsock is not None:
            try:
                self._lsock.shutdown(socket.SHUT_RDWR)  # wakes accept()
            except OSError:
                pass
            self._lsock.close()
            self._lsock = None

    def _accept_loop(self, lsock):
        while True:
            try:
                c, _ = lsock.accept()
            except OSError:
                return
            with self._lock:
                self._conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            c.settimeout(10)
            if self.tls:
                try:
                    c = self.tls.wrap_socket(c, server_side=True)
                except (ssl.SSLError, OSError) as e:
                    self.handshake_errors.append(str(e))
                    return
            if self.mode == "eager":
                c.recv(4096)
                c.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536:
                data = c.recv(4096)
                if not data:
                    return
                head += data
            self.requests.append((time.monotonic(), head))
            mode = self.mode
            if mode == "hang":
                while not self._stopping and self.mode == "hang":
                    time.sleep(0.05)
                return
            body = b"ok" if mode == 200 else b"[-]syncloop failed\nhealthz check failed\n"
            c.sendall(b"HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                      b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                      % (mode, self.REASONS.get(mode, "Status").encode(), len(body), body))
        except OSError:
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass

    def wait_requests(self, n, timeout=10.0):
        tl.wait_until(lambda: len(self.requests) >= n, timeout, f"{n} probe requests at {self.target}")

    def close(self):
        self._stopping = True
        with self._lock:
            self._close_listener()
            for c in self._conns:
                try:
                    c.close()
                except OSError:
                    pass


def kubelet(env, addr=None, **kw):
    k = Kubelet(addr or env.addr(), **kw)
    env.servers.append(k)
    return k


def probe_cfg(k, type_="http", **kw):
    return {"type": type_, "target": k.target, "interval": INTERVAL, "timeout": TIMEOUT, **kw}


def ctl_row(d, name):
    r = d.sshtunctl("nodes")
    assert r.returncode == 0, r.stderr
    rows = [ln for ln in r.stdout.splitlines() if ln.split()[:1] == [name]]
    assert rows, r.stdout
    return rows[0]


def echo_through(d, node, echo):
    s = d.tunnel(node.addr, echo.port)
    s.sendall(b"still routed")
    assert tl.recv_exactly(s, 12, timeout=10) == b"still routed"
    s.close()


# --- http ----------------------------------------------------------------------

@pytest.mark.alarm(120)
def test_http_probe_follows_the_kubelet(env):
    n1 = env.sshd("n1")
    echo = env.server(tl.EchoServer, addr=n1.addr)
    k = kubelet(env, mode=200)
    d = env.sshtund([n1], probe=probe_cfg(k, path="/healthz"))
    d.wait_all_up(30)

    # the request, as the kubelet sees it: from the node, plain HTTP/1.1
    k.wait_requests(1)
    head = k.requests[0][1].decode()
    assert head.startswith("GET /healthz HTTP/1.1\r\n"), head
    assert f"\r\nHost: {k.target}\r\n" in head, head
    assert "\r\nUser-Agent: sshtund/" in head and "\r\nConnection: close\r\n" in head, head
    assert d.node_info("n1")["state"] == "up"

    # 500: degraded, and still routed (the SSH path works)
    k.set(500)
    d.wait_state("n1", "degraded", 10)
    assert "degraded: probe failed: HTTP 500 Internal Server Error" in d.log_text()
    row = ctl_row(d, "n1")
    assert "degraded" in row and "HTTP 500" in row, row
    echo_through(d, n1, echo)

    # 200 again: up
    k.set(200)
    d.wait_state("n1", "up", 10)
    assert "up: probe passes again" in d.log_text()
    assert "up" in ctl_row(d, "n1").split()

    # nothing listens: the node's sshd cannot connect
    k.set("closed")
    d.wait_state("n1", "degraded", 10)
    tl.wait_until(lambda: f"cannot connect to {k.target} from the node" in d.log_text(), 5,
                  "the connect failure in the log")
    echo_through(d, n1, echo)
    k.set(200)
    d.wait_state("n1", "up", 10)


@pytest.mark.alarm(120)
def test_http_probe_timeout_is_bounded(env):
    n1 = env.sshd("n1")
    k = kubelet(env, mode="hang")
    d = env.sshtund([n1], probe=probe_cfg(k))
    tl.wait_until(lambda: d.node_info("n1")["state"] in ("up", "degraded"), 30, "n1 connected")
    d.wait_state("n1", "degraded", 10)
    assert "degraded: probe failed: timeout after 1 s" in d.log_text()
    # one probe in flight at a time: interval 0.5 s, timeout 1 s
    n = len(k.requests)
    time.sleep(2.0)
    assert len(k.requests) - n <= 3, len(k.requests) - n
    k.set(200)
    d.wait_state("n1", "up", 10)


# --- tcp -------------------------------------------------------------------------

@pytest.mark.alarm(120)
def test_tcp_probe(env):
    n1 = env.sshd("n1")
    k = kubelet(env, mode=200)
    d = env.sshtund([n1], probe=probe_cfg(k, "tcp"))
    d.wait_all_up(30)
    # a tcp probe only opens: no request reaches the kubelet
    time.sleep(2 * INTERVAL)
    assert d.node_info("n1")["state"] == "up"
    assert k.requests == []
    k.set("closed")
    d.wait_state("n1", "degraded", 10)
    assert f"degraded: probe failed: cannot connect to {k.target} from the node" in d.log_text()
    k.set(200)
    d.wait_state("n1", "up", 10)


# --- https -----------------------------------------------------------------------

def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(dirpath, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN={name}",
            cwd=dirpath)
    return os.path.join(dirpath, f"{name}.pem")


def make_cert(dirpath, ca, name, san):
    with open(os.path.join(dirpath, f"{name}.ext"), "w") as f:
        f.write(f"subjectAltName = {san}\nextendedKeyUsage = serverAuth\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", "/CN=kubelet", cwd=dirpath)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=dirpath)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(dirpath, f"{name}.pem"), os.path.join(dirpath, f"{name}.key"))
    return ctx


@pytest.mark.alarm(150)
def test_https_probe_verifies_the_kubelet_certificate(env):
    pki = os.path.join(env.dir, "pki")
    os.makedirs(pki)
    ca1 = make_ca(pki, "ca1")
    ca2 = make_ca(pki, "ca2")
    n1 = env.sshd("n1")
    echo = env.server(tl.EchoServer, addr=n1.addr)
    # the kubelet's certificate names the node, not the 127.x address the
    # probe dials from the node's side
    by_name = kubelet(env, tls=make_cert(pki, "ca1", "by-name", "DNS:n1"))
    by_ip_addr = env.addr()
    by_ip = kubelet(env, addr=by_ip_addr, tls=make_cert(pki, "ca1", "by-ip", f"IP:{by_ip_addr}"))
    other = kubelet(env, tls=make_cert(pki, "ca1", "other", "DNS:elsewhere.example"))

    good = env.sshtund([n1], name="good", probe=probe_cfg(by_name, "https", ca_file=ca1))
    ip = env.sshtund([n1], name="ip", probe=probe_cfg(by_ip, "https", ca_file=ca1))
    wrong_ca = env.sshtund([n1], name="wrongca", probe=probe_cfg(by_name, "https", ca_file=ca2))
    no_ca = env.sshtund([n1], name="noca", probe=probe_cfg(by_name, "https"))
    mismatch = env.sshtund([n1], name="mismatch", probe=probe_cfg(other, "https", ca_file=ca1))

    wrong_ca.wait_state("n1", "degraded", 30)
    assert ("degraded: probe failed: certificate verify failed: unable to get local issuer certificate"
            in wrong_ca.log_text())
    mismatch.wait_state("n1", "degraded", 30)
    text = mismatch.log_text()
    assert "degraded: probe failed: certificate verify failed: hostname mismatch" in text, text[-2000:]
    assert f"none of {other.addr}, n1, {n1.addr}" in text
    # degraded by the probe, routed all the same
    echo_through(wrong_ca, n1, echo)

    # the good ones pass, and keep passing, with requests actually answered
    by_ip.wait_requests(3)
    by_name.wait_requests(6)
    for d in (good, ip, no_ca):
        assert d.node_info("n1")["state"] == "up", d.log_text()[-2000:]
        assert "degraded" not in d.log_text()
    assert by_ip.requests[0][1].startswith(b"GET /healthz HTTP/1.1\r\n")
    assert other.requests == []  # never past the handshake

    # the kubelet stops answering 2xx: degraded over TLS too
    by_name.set(500)
    good.wait_state("n1", "degraded", 10)
    assert "degraded: probe failed: HTTP 500 Internal Server Error" in good.log_text()
    by_name.set(200)
    good.wait_state("n1", "up", 10)


@pytest.mark.alarm(60)
def test_https_probe_without_tls_kubelet(env):
    # a plain HTTP port given to an https probe: a TLS error, not a timeout
    n1 = env.sshd("n1")
    k = kubelet(env, mode="eager")
    d = env.sshtund([n1], probe=probe_cfg(k, "https"))
    d.wait_state("n1", "degraded", 30)
    assert "degraded: probe failed: TLS handshake failed: " in d.log_text()


# --- scheduling ---------------------------------------------------------------------

@pytest.mark.alarm(180)
def test_probes_spread_over_the_interval(env):
    nodes = [env.sshd(f"n{i}") for i in range(10)]
    k = kubelet(env, mode=200)
    d = env.sshtund(nodes, probe=probe_cfg(k, interval=2.0))
    d.wait_all_up(60)
    k.wait_requests(10, 10)
    t0 = time.monotonic()
    time.sleep(4.0)
    times = [t for t, _ in k.requests if t0 <= t < t0 + 4.0]
    # every node about twice in 4 s: no node probes faster than its interval
    assert 15 <= len(times) <= 25, len(times)
    # all at once would fit within 100 ms, twice
    assert max(times) - min(times) > 1.0, times
    buckets = {int((t - t0) / 0.2) for t in times}
    assert len(buckets) >= 6, sorted(t - t0 for t in times)


@pytest.mark.alarm(120)
def test_probe_in_flight_when_the_session_dies(env):
    n1 = env.sshd("n1")
    k = kubelet(env, mode="hang")
    d = env.sshtund([n1], probe=probe_cfg(k, timeout=5.0))
    tl.wait_until(lambda: d.node_info("n1")["state"] in ("up", "degraded"), 30, "n1 connected")
    k.wait_requests(1)  # one is in flight now
    n1.kill()
    d.wait_state("n1", lambda s: s not in ("up", "degraded"), 15)
    k.set(200)
    n1.start()
    d.wait_state("n1", "up", 30)
    # the lost probe left no verdict: the node never went degraded
    assert "degraded" not in d.log_text()


@pytest.mark.alarm(120)
def test_drained_node_is_still_probed(env):
    """A probe checks the path, not a stream: draining does not stop it, and
    it counts as no stream (streams_total stays, drain finishes)."""
    n1 = env.sshd("n1")
    k = kubelet(env, mode=200)
    d = env.sshtund([n1], probe=probe_cfg(k))
    d.wait_all_up(30)
    k.wait_requests(2)
    assert d.node_info("n1")["streams_total"] == 0
    status, _, body = d.admin_request("POST", "/v1/nodes/n1/drain")
    assert status == 200, body
    d.wait_state("n1", "draining", 10)
    n = len(k.requests)
    k.wait_requests(n + 2)
    j = d.node_info("n1")
    assert j["streams_total"] == 0 and j["streams"] == 0, j
    assert j["probe"] and j["probe"]["ok"] is True, j
    status, _, body = d.admin_request("POST", "/v1/nodes/n1/undrain")
    assert status == 200, body
    d.wait_state("n1", "up", 10)