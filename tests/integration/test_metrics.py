# Metrics, health and the stream audit log, against the real daemon: the
# exposition parsed by Prometheus's own promtool and checked series by
# series as nodes go down and up and streams run; /readyz flipping with the
# share of nodes up; metrics_listen serving nothing but /metrics, /healthz
# and /readyz; one audit line per finished stream.

import http.client
import os
import re
import resource
import shutil
import socket
import struct
import subprocess
import time

import pytest

import sshtund_testlib as tl

METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
TEST_NET = "192.0.2.1"  # outside every allowlist here (RFC 5737)


# --- the exposition -----------------------------------------------------------

def promtool():
    """promtool from Debian's prometheus package (scripts/check installs
    it): the test fails without it rather than skip."""
    path = shutil.which("promtool") or "/usr/bin/promtool"
    if not os.access(path, os.X_OK):
        raise tl.HarnessError("promtool is missing: apt-get install --no-install-recommends prometheus "
                              "(scripts/check does)")
    return path


def promtool_check(text):
    """`promtool check metrics` on 'text': the parser and the linter both
    must be content (exit 0, no problems printed)."""
    r = subprocess.run([promtool(), "check", "metrics"], input=text, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(), \
        f"promtool check metrics: exit {r.returncode}\n{r.stdout}{r.stderr}\n--- input:\n{text[:3000]}"


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)')


def _unescape(v):
    return re.sub(r'\\(.)', lambda m: "\n" if m.group(1) == "n" else m.group(1), v)


class Exposition:
    """One scrape: samples by (name, frozenset of labels) and the TYPE of
    each family."""

    def __init__(self, text):
        self.text = text
        self.samples = {}
        self.types = {}
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                _, _, name, typ = line.split(" ", 3)
                self.types[name] = typ
                continue
            if line.startswith("#") or not line:
                continue
            m = _SAMPLE.match(line)
            assert m, f"unparsable sample line {line!r}"
            labels, rest = {}, m.group(2) or ""
            while rest:
                lm = _LABEL.match(rest)
                assert lm, f"unparsable labels in {line!r}"
                labels[lm.group(1)] = _unescape(lm.group(2))
                rest = rest[lm.end():]
            key = (m.group(1), frozenset(labels.items()))
            assert key not in self.samples, f"duplicate series {line!r}"
            self.samples[key] = float(m.group(3))

    def get(self, name, **labels):
        key = (name, frozenset(labels.items()))
        if key not in self.samples:
            raise AssertionError(f"no series {name}{labels}; have "
                                 f"{sorted(str(k) for k in self.samples if k[0] == name)[:20]}")
        return self.samples[key]

    def series(self, name):
        return {k[1]: v for k, v in self.samples.items() if k[0] == name}


def scrape_admin(d):
    status, headers, body = d.admin_request("GET", "/metrics")
    assert status == 200, (status, body[:300])
    assert headers.get("content-type") == METRICS_TYPE, headers
    return Exposition(body.decode())


def http_get(addr, port, path, method="GET", timeout=10.0):
    conn = http.client.HTTPConnection(addr, port, timeout=timeout)
    try:
        conn.request(method, path)
        r = conn.getresponse()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
    finally:
        conn.close()


def wait_metric(d, pred, what, timeout=20.0):
    """Scrape until pred(exposition) holds; returns that scrape."""
    last = {}

    def check():
        last["e"] = scrape_admin(d)
        return last["e"] if pred(last["e"]) else None

    try:
        return tl.wait_until(check, timeout, what, interval=0.1)
    except tl.HarnessError as e:
        raise tl.HarnessError(f"{e}; last scrape:\n{last['e'].text[:4000] if 'e' in last else ''}") from None


def echo_roundtrip(d, node, echo, payload):
    s = d.tunnel(node.addr, echo.port)
    s.sendall(payload)
    got = tl.recv_exactly(s, len(payload))
    assert got == payload
    s.shutdown(socket.SHUT_WR)
    assert tl.recv_until_eof(s) == b""
    s.close()


# --- fixtures -------------------------------------------------------------------

@pytest.fixture
def metrics_port():
    addr = tl.loopback_address()
    return addr, tl.free_port(addr)


def start(env, nodes, metrics_at=None, admin=None, **kw):
    """A daemon over 'nodes' with every node up; metrics_listen on
    'metrics_at' (addr, port) if given."""
    admin = dict(admin or {})
    if metrics_at:
        admin["metrics_listen"] = f"tcp:{metrics_at[0]}:{metrics_at[1]}"
    d = env.sshtund(nodes, admin=admin, **kw)
    d.wait_all_up(30)
    return d


# --- tests ------------------------------------------------------------------------

def test_scrape_is_valid_and_complete(env, metrics_port):
    n1, n2 = env.sshd("n1"), env.dropbear("n2")
    d = start(env, [n1, n2], metrics_port)

    status, headers, body = d.admin_request("GET", "/metrics")
    assert status == 200
    assert headers["content-type"] == METRICS_TYPE
    text = body.decode()
    promtool_check(text)
    e = Exposition(text)

    want_types = {
        "sshtund_build_info": "gauge", "sshtund_node_up": "gauge", "sshtund_node_state": "gauge",
        "sshtund_sessions": "gauge", "sshtund_streams_active": "gauge",
        "sshtund_streams_total": "counter", "sshtund_stream_bytes_total": "counter",
        "sshtund_stream_open_seconds": "histogram", "sshtund_ssh_connect_seconds": "histogram",
        "sshtund_reconnects_total": "counter", "sshtund_probe_seconds": "histogram",
        "sshtund_probe_failures_total": "counter", "sshtund_handshakes_in_flight": "gauge",
        "sshtund_frontdoor_requests_total": "counter",
    }
    for name, typ in want_types.items():
        assert e.types.get(name) == typ, (name, e.types.get(name))
        assert f"# HELP {name} " in text, name

    assert e.get("sshtund_build_info", version=d.status()["version"]) == 1
    for n in (n1, n2):
        assert e.get("sshtund_node_up", node=n.name) == 1
        assert e.get("sshtund_sessions", node=n.name) == 1
        assert e.get("sshtund_streams_active", node=n.name) == 0
        states = {dict(k)["state"]: v for k, v in e.series("sshtund_node_state").items()
                  if dict(k)["node"] == n.name}
        assert states["up"] == 1 and sum(states.values()) == 1, states
        assert {"connecting", "backoff", "hostkey-mismatch", "auth-failed", "draining",
                "disabled"} <= set(states), states
        for result in ("ok", "refused", "unavailable", "abandoned"):
            assert e.get("sshtund_streams_total", node=n.name, result=result) == 0
        for direction in ("up", "down"):
            assert e.get("sshtund_stream_bytes_total", node=n.name, direction=direction) == 0
    # two sessions came up: two connect times
    assert e.get("sshtund_ssh_connect_seconds_count") == 2
    assert e.get("sshtund_ssh_connect_seconds_bucket", le="+Inf") == 2
    assert e.get("sshtund_handshakes_in_flight") == 0
    assert e.get("sshtund_frontdoor_requests_total", code="403") == 0

    # the same exposition over TCP
    status, headers, body = http_get(*metrics_port, "/metrics")
    assert status == 200 and headers["content-type"] == METRICS_TYPE
    promtool_check(body.decode())
    assert Exposition(body.decode()).get("sshtund_node_up", node="n1") == 1


def test_metrics_listen_serves_only_health_and_metrics(env, metrics_port):
    n1 = env.sshd("n1")
    d = start(env, [n1], metrics_port)
    addr, port = metrics_port

    assert http_get(addr, port, "/healthz")[0] == 200
    status, headers, body = http_get(addr, port, "/readyz")
    assert status == 200, body
    assert headers["content-type"].startswith("text/plain")
    for path in ("/v1/status", "/v1/nodes", "/v1/nodes/n1", "/", "/metrics/x"):
        status, _, body = http_get(addr, port, path)
        assert status == 404, (path, status, body)
    for path in ("/v1/reload", "/v1/nodes/n1/drain", "/v1/nodes/n1/reconnect"):
        status, _, body = http_get(addr, port, path, method="POST")
        assert status == 404, (path, status, body)
    status, headers, _ = http_get(addr, port, "/metrics", method="POST")
    assert status == 405 and headers.get("allow") == "GET"
    # the POSTs did nothing
    assert d.node_info("n1")["state"] == "up"
    # the admin socket still serves the whole API, and /readyz
    assert d.status()["nodes_total"] == 1
    assert d.admin_request("GET", "/readyz")[0] == 200
    assert os.stat(d.admin_sock).st_mode & 0o777 == 0o600


def test_stream_counters(env):
    n1, n2 = env.sshd("n1"), env.sshd("n2")
    e1 = env.server(tl.EchoServer, addr=n1.addr)
    d = start(env, [n1, n2])
    before = scrape_admin(d)

    payload = os.urandom(100_000)
    echo_roundtrip(d, n1, e1, payload)

    after = wait_metric(d, lambda e: e.get("sshtund_stream_bytes_total", node="n1", direction="down")
                        == len(payload), "the stream's bytes to be counted")
    assert after.get("sshtund_streams_total", node="n1", result="ok") == 1
    assert after.get("sshtund_streams_total", node="n2", result="ok") == 0
    assert after.get("sshtund_stream_bytes_total", node="n1", direction="up") == len(payload)
    assert after.get("sshtund_stream_bytes_total", node="n2", direction="up") == 0
    assert after.get("sshtund_streams_active", node="n1") == 0
    assert after.get("sshtund_frontdoor_requests_total", code="200") == \
        before.get("sshtund_frontdoor_requests_total", code="200") + 1
    assert after.get("sshtund_stream_open_seconds_count") == \
        before.get("sshtund_stream_open_seconds_count") + 1
    assert after.get("sshtund_stream_open_seconds_bucket", le="+Inf") == \
        after.get("sshtund_stream_open_seconds_count")
    assert after.get("sshtund_stream_open_seconds_sum") > 0

    # an open stream is active
    s = d.tunnel(n1.addr, e1.port)
    wait_metric(d, lambda e: e.get("sshtund_streams_active", node="n1") == 1, "one active stream")
    s.close()
    wait_metric(d, lambda e: e.get("sshtund_streams_active", node="n1") == 0, "no active stream")

    # a denied request is counted by its status, and opens nothing
    r = d.connect(TEST_NET, 80)
    assert r.status == 403, r
    e = wait_metric(d, lambda e: e.get("sshtund_frontdoor_requests_total", code="403") ==
                    before.get("sshtund_frontdoor_requests_total", code="403") + 1, "the 403 counted")
    assert e.get("sshtund_streams_total", node="n1", result="ok") == 2
    promtool_check(e.text)

    # a target the node cannot reach: refused by the node
    dead = tl.free_port(n1.addr)
    r = d.connect(n1.addr, dead)
    assert r.status == 502, r
    wait_metric(d, lambda e: e.get("sshtund_streams_total", node="n1", result="refused") == 1,
                "the refusal counted")


def test_node_up_follows_the_node(env):
    n1, n2 = env.sshd("n1"), env.sshd("n2")
    d = start(env, [n1, n2], ssh={"keepalive_interval": 0.5, "keepalive_count": 2})

    n2.kill()
    e = wait_metric(d, lambda e: e.get("sshtund_node_up", node="n2") == 0, "n2 down in the metrics")
    assert e.get("sshtund_node_up", node="n1") == 1
    assert e.get("sshtund_sessions", node="n2") == 0
    assert e.get("sshtund_node_state", node="n2", state="up") == 0
    current = [dict(k)["state"] for k, v in e.series("sshtund_node_state").items()
               if dict(k)["node"] == "n2" and v == 1]
    assert len(current) == 1 and current[0] not in ("up", "degraded"), current
    promtool_check(e.text)

    n2.start()
    e = wait_metric(d, lambda e: e.get("sshtund_node_up", node="n2") == 1, "n2 up again", timeout=90)
    assert e.get("sshtund_node_state", node="n2", state="up") == 1
    assert e.get("sshtund_reconnects_total", node="n2") >= 1
    assert e.get("sshtund_reconnects_total", node="n1") == 0
    assert e.get("sshtund_ssh_connect_seconds_count") >= 3


@pytest.mark.alarm(240)
def test_readyz_flips_with_nodes(env, metrics_port):
    nodes = [env.sshd(f"n{i}") for i in range(1, 5)]
    d = start(env, nodes, metrics_port)
    addr, port = metrics_port

    def readyz():
        # both listeners give the same answer; while nodes are changing
        # state the two requests may straddle a change, so ask again
        for _ in range(50):
            status, headers, body = d.admin_request("GET", "/readyz")
            assert headers["content-type"].startswith("text/plain")
            tcp = http_get(addr, port, "/readyz")
            if tcp[0] == status:
                break
            time.sleep(0.1)
        assert tcp[0] == status, (tcp, status, body)
        return status, body.decode()

    status, body = readyz()
    assert status == 200, body
    assert "4/4" in body

    # 2 of 4 is still half
    nodes[3].kill()
    nodes[2].kill()
    d.wait_state("n3", lambda s: s not in ("up", "degraded"))
    d.wait_state("n4", lambda s: s not in ("up", "degraded"))
    status, body = readyz()
    assert status == 200, body

    # 1 of 4 is not
    nodes[1].kill()
    tl.wait_until(lambda: readyz()[0] == 503, 20, "/readyz to turn 503")
    status, body = readyz()
    assert body.strip() == "not ready: 1/4 nodes up or degraded, need 50%", body
    # /healthz does not care: the loop turns
    assert d.admin_request("GET", "/healthz")[0] == 200
    assert http_get(addr, port, "/healthz")[0] == 200

    for n in nodes[1:]:
        n.start()
    tl.wait_until(lambda: readyz()[0] == 200, 90, "/readyz to turn 200 again")
    d.wait_all_up(90)
    assert readyz() == (200, "ready: 4/4 nodes up or degraded, need 50%\n")


def test_ready_min_fraction(env):
    n1, n2 = env.sshd("n1"), env.sshd("n2")
    d = start(env, [n1, n2], admin={"ready_min_fraction": 1.0})
    assert d.admin_request("GET", "/readyz")[0] == 200

    n2.kill()
    tl.wait_until(lambda: d.admin_request("GET", "/readyz")[0] == 503, 20, "/readyz to turn 503")
    body = d.admin_request("GET", "/readyz")[2].decode()
    assert body == "not ready: 1/2 nodes up or degraded, need 100%\n", body


def test_readyz_without_nodes(env):
    d = env.sshtund([])
    status, _, body = d.admin_request("GET", "/readyz")
    assert status == 200 and body == b"ready: no nodes configured\n", body
    e = scrape_admin(d)
    promtool_check(e.text)
    assert e.series("sshtund_node_up") == {}


def test_metrics_listen_must_be_tcp(env):
    n1 = env.sshd("n1")
    d = tl.Sshtund(env.dir, [n1], env.client_key, start=False,
                   admin={"metrics_listen": f"unix:{env.dir}/metrics.sock"})
    r = subprocess.run([tl.require_binary(tl.sshtund_binary()), "-t", "-c", d.config_path],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 78, r
    assert "admin.metrics_listen" in r.stderr and "is not a TCP address" in r.stderr, r.stderr


# --- the audit log -----------------------------------------------------------------

AUDIT = re.compile(r'^\S+ sshtund: (?P<node>\S+): stream client="(?P<client>[^"]*)" target="(?P<target>[^"]*)" '
                   r'result="(?P<result>[^"]*)"(?: error="(?P<error>[^"]*)")? bytes_up=(?P<up>\d+) '
                   r'bytes_down=(?P<down>\d+) duration=(?P<duration>\d+\.\d{3})s$', re.M)


def audit_lines(d):
    return [m.groupdict() for m in AUDIT.finditer(d.log_text())]


def wait_audit(d, n, timeout=20.0):
    def check():
        lines = audit_lines(d)
        return lines if len(lines) >= n else None

    return tl.wait_until(check, timeout, f"{n} stream audit lines in the daemon log")


def test_audit_line_per_stream(env):
    n1, n2 = env.sshd("n1"), env.sshd("n2")
    e1 = env.server(tl.EchoServer, addr=n1.addr)
    e2 = env.server(tl.EchoServer, addr=n2.addr)
    d = start(env, [n1, n2], log={"level": "info"})

    # done: both sides closed in order
    echo_roundtrip(d, n1, e1, b"x" * 1000)
    a = wait_audit(d, 1)[0]
    assert a["node"] == "n1" and a["result"] == "done" and a["error"] is None, a
    assert a["target"] == f"{n1.addr}:{e1.port}"
    assert a["client"].startswith("unix:pid="), a
    assert a["up"] == "1000" and a["down"] == "1000", a
    assert float(a["duration"]) < 20

    # reset by client: an RST instead of a FIN (TCP: unix sockets have none)
    s = d.tunnel(n2.addr, e2.port, via="tcp")
    s.sendall(b"y" * 300)
    assert tl.recv_exactly(s, 300) == b"y" * 300
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    a = wait_audit(d, 2)[1]
    assert a["node"] == "n2" and a["result"] == "reset by client", a
    assert re.fullmatch(r"127\.\d+\.\d+\.\d+:\d+", a["client"]), a
    assert a["up"] == "300" and a["down"] == "300", a

    # node closed: the node dies under an open stream; the relay's own
    # counts survive the channel
    s = d.tunnel(n2.addr, e2.port)
    s.sendall(b"z" * 77)
    assert tl.recv_exactly(s, 77) == b"z" * 77
    n2.kill()
    a = wait_audit(d, 3, timeout=30)[2]
    assert a["node"] == "n2" and a["result"] == "node closed", a
    assert a["up"] == "77" and a["down"] == "77", a
    s.close()


@pytest.mark.alarm(180)
def test_audit_lines_are_rate_limited(env):
    n1 = env.sshd("n1")
    e1 = env.server(tl.EchoServer, addr=n1.addr)
    d = start(env, [n1], log={"level": "info"})

    # 110 streams end within a moment: 100 lines, 10 held back
    socks = [d.tunnel(n1.addr, e1.port) for _ in range(110)]
    for s in socks:
        s.close()
    e = wait_metric(d, lambda e: e.get("sshtund_streams_active", node="n1") == 0 and
                    e.get("sshtund_stream_log_suppressed_total") == 10, "10 lines held back", timeout=30)
    assert e.get("sshtund_stream_log_suppressed_total") == 10
    assert len(audit_lines(d)) == 100
    assert "stream lines suppressed" not in d.log_text()

    # the first line of the next window says how many were dropped
    time.sleep(10.5)
    echo_roundtrip(d, n1, e1, b"after")
    wait_audit(d, 101)
    log = d.log_text()
    assert re.search(r"^\S+ sshtund: 10 stream lines suppressed$", log, re.M), log[-2000:]
    assert log.index("10 stream lines suppressed") < log.index('result="done" bytes_up=5 ')


# --- the figures SREs alert on (each made to move) --------------------------------

@pytest.mark.alarm(120)
def test_frontdoor_connections_and_stream_durations(env):
    n1 = env.sshd("n1")
    echo = env.server(tl.EchoServer, addr=n1.addr)
    d = env.sshtund([n1], proxy={"max_clients": 77})
    d.wait_all_up()
    e = scrape_admin(d)
    assert e.get("sshtund_frontdoor_connections_max") == 77
    base = e.get("sshtund_frontdoor_connections")
    done0 = e.get("sshtund_stream_duration_seconds_count", result="done")

    socks = [d.tunnel(n1.addr, echo.port) for _ in range(3)]
    e = wait_metric(d, lambda e: e.get("sshtund_frontdoor_connections") == base + 3, "3 connections")
    # a request still being read counts too
    idle = socket.socket(socket.AF_UNIX)
    idle.connect(d.proxy_sock)
    wait_metric(d, lambda e: e.get("sshtund_frontdoor_connections") == base + 4, "the idle request")
    idle.close()
    for s in socks:
        s.sendall(b"x")
        assert tl.recv_exactly(s, 1) == b"x"
        s.shutdown(socket.SHUT_WR)
        assert tl.recv_until_eof(s) == b""
        s.close()
    e = wait_metric(d, lambda e: e.get("sshtund_frontdoor_connections") == base
                    and e.get("sshtund_stream_duration_seconds_count", result="done") == done0 + 3,
                    "the streams ended, as done")
    assert e.get("sshtund_stream_duration_seconds_bucket", result="done", le="+Inf") == done0 + 3
    assert e.get("sshtund_stream_duration_seconds_sum", result="done") > 0


@pytest.mark.alarm(120)
def test_channel_opens_pending(env):
    n1 = env.sshd("n1")
    echo = env.server(tl.EchoServer, addr=n1.addr)
    d = env.sshtund([n1], proxy={"open_timeout": 30.0}, ssh={"keepalive_interval": 30.0})
    d.wait_all_up()
    assert scrape_admin(d).get("sshtund_channel_opens_pending", node="n1") == 0
    # the node's sshd stops answering: opens queue on its session
    n1.freeze()
    try:
        socks = []
        for _ in range(4):
            s = socket.socket(socket.AF_UNIX)
            s.connect(d.proxy_sock)
            s.sendall(tl.connect_request(n1.addr, echo.port))
            socks.append(s)
        wait_metric(d, lambda e: e.get("sshtund_channel_opens_pending", node="n1") == 4, "4 opens waiting")
    finally:
        n1.thaw()
    wait_metric(d, lambda e: e.get("sshtund_channel_opens_pending", node="n1") == 0, "the queue drained")
    for s in socks:
        s.close()


@pytest.mark.alarm(120)
def test_reload_status(env):
    n1 = env.sshd("n1")
    d = env.sshtund([n1])
    e = scrape_admin(d)
    assert e.get("sshtund_config_last_reload_successful") == 1
    t_start = e.get("sshtund_config_last_reload_success_timestamp_seconds")
    assert abs(t_start - time.time()) < 60

    good = open(d.config_path).read()
    with open(d.config_path, "a") as f:
        f.write("proxy = 1;\n")
    r = d.sshtunctl("reload")
    assert r.returncode != 0
    e = scrape_admin(d)
    assert e.get("sshtund_config_last_reload_successful") == 0
    assert e.get("sshtund_config_last_reload_success_timestamp_seconds") == t_start

    with open(d.config_path, "w") as f:
        f.write(good)
    time.sleep(0.01)
    r = d.sshtunctl("reload")
    assert r.returncode == 0, r.stderr
    e = scrape_admin(d)
    assert e.get("sshtund_config_last_reload_successful") == 1
    assert e.get("sshtund_config_last_reload_success_timestamp_seconds") > t_start


@pytest.mark.alarm(120)
def test_process_metrics(env):
    n1 = env.sshd("n1")
    echo = env.server(tl.EchoServer, addr=n1.addr)
    d = env.sshtund([n1])
    d.wait_all_up()
    e = scrape_admin(d)
    assert e.get("process_max_fds") == resource.prlimit(d.pid, resource.RLIMIT_NOFILE)[0] >= 1024
    assert 0 < e.get("process_resident_memory_bytes") < 1 << 30
    assert e.get("process_start_time_seconds") <= time.time()
    assert abs(e.get("process_start_time_seconds") - time.time()) < 120
    cpu0 = e.get("process_cpu_seconds_total")
    fds0 = e.get("process_open_fds")
    assert abs(fds0 - tl.open_fds(d.pid)) <= 2

    socks = [d.tunnel(n1.addr, echo.port) for _ in range(10)]
    e = wait_metric(d, lambda e: e.get("process_open_fds") >= fds0 + 10, "descriptors for 10 streams")
    for s in socks:
        s.sendall(b"y" * 100000)
    for s in socks:
        assert tl.recv_exactly(s, 100000) == b"y" * 100000
        s.close()
    e = wait_metric(d, lambda e: e.get("process_cpu_seconds_total") > cpu0, "CPU time spent")
    assert e.get("sshtund_loop_dispatch_max_seconds") > 0
    promtool_check(e.text)
