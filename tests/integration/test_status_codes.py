# Every reply of the front door's table in DESIGN.md, each provoked for
# real: 400, 405, 431, 408, 403, 502, 503, 504, and the 200 that is followed
# by nothing until the client speaks. Time bounds here are correctness
# bounds (a dead node must cost the API server a fast answer), not speed.

import socket
import time

import pytest

import sshtund_testlib as tl


def start(env, nodes, **proxy):
    d = env.sshtund(nodes, proxy=proxy)
    d.wait_all_up(30)
    return d


@pytest.fixture
def two(env):
    """Two sshd nodes with an echo server each, default timeouts."""
    n1, n2 = env.sshd("n1"), env.sshd("n2")
    e1, e2 = env.server(tl.EchoServer, addr=n1.addr), env.server(tl.EchoServer, addr=n2.addr)
    return n1, n2, e1, e2


def assert_error(r, status):
    assert r.status == status, r
    assert r.head.startswith(f"HTTP/1.1 {status} ".encode()), r.head
    assert r.closed, f"the connection stayed open after {status}"


@pytest.mark.parametrize("request_bytes", [
    b"garbage\r\n\r\n",
    b"CONNECT\r\n\r\n",
    b"CONNECT 127.0.0.1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",          # no port
    b"CONNECT 127.0.0.1:99999 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",    # port out of range
    b"CONNECT 127.0.0.1:80 HTTP/1.1\nHost: 127.0.0.1\n\n",             # bare LF
    b"CONNECT 127.0.0.1:80 HTTP/2.0\r\nHost: 127.0.0.1\r\n\r\n",       # version
], ids=["garbage", "no-target", "no-port", "bad-port", "bare-lf", "http2"])
def test_400_malformed(env, two, request_bytes):
    d = start(env, two[:2])
    assert_error(d.connect(None, None, request=request_bytes), 400)


@pytest.mark.parametrize("method", ["GET", "POST", "PUT"])
def test_405_other_methods(env, two, method):
    d = start(env, two[:2])
    n1, e1 = two[0], two[2]
    req = f"{method} http://{n1.addr}:{e1.port}/ HTTP/1.1\r\nHost: {n1.addr}\r\n\r\n".encode()
    assert_error(d.connect(None, None, request=req), 405)
    assert e1.conns == [], "a refused request reached the target"


@pytest.mark.parametrize("via", ["unix", "tcp"])
def test_431_head_over_8_kib(env, two, via):
    d = start(env, two[:2])
    n1, e1 = two[0], two[2]
    hp = tl.hostport(n1.addr, e1.port)
    req = (f"CONNECT {hp} HTTP/1.1\r\nHost: {hp}\r\nX-Pad: ".encode() + b"a" * 9216
           + b"\r\n\r\n")
    assert_error(d.connect(None, None, via=via, request=req), 431)
    assert e1.conns == []


def test_431_too_many_headers(env, two):
    d = start(env, two[:2])
    n1, e1 = two[0], two[2]
    hp = tl.hostport(n1.addr, e1.port)
    req = f"CONNECT {hp} HTTP/1.1\r\nHost: {hp}\r\n".encode()
    req += b"".join(b"X-H%d: 1\r\n" % i for i in range(100)) + b"\r\n"
    assert len(req) < 8192
    assert_error(d.connect(None, None, request=req), 431)


@pytest.mark.parametrize("sent", [b"", b"CONNECT 127.0.0.1:80 HTTP/1.1\r\n"],
                         ids=["silent", "partial-head"])
def test_408_head_not_complete_within_header_timeout(env, two, sent):
    d = start(env, two[:2], header_timeout=1.0)
    s = d.front_door()
    t0 = time.monotonic()
    if sent:
        s.sendall(sent)
    r = d.read_reply(s, t0, timeout=10)
    assert_error(r, 408)
    assert 0.9 <= r.elapsed < 3.0, f"408 after {r.elapsed:.2f} s with header_timeout = 1"


@pytest.mark.parametrize("target", [("198.51.100.1", 80), ("example.com", 443), "other-loopback"])
def test_403_outside_the_allowlist(env, two, target):
    d = start(env, two[:2])
    if target == "other-loopback":
        # A loopback address that no node owns: reachable, but not allowed.
        echo = env.server(tl.EchoServer)
        target = echo.target
    r = d.connect(*target)
    assert_error(r, 403)
    if target[0].startswith("127."):
        assert echo.conns == [], "a forbidden target was reached"


def test_403_port_outside_a_cidr_rule(env, two):
    echo = env.server(tl.EchoServer)
    d = start(env, two[:2], allow=["nodes", f"{echo.addr}/32:{echo.port + 1}"])
    assert_error(d.connect(*echo.target), 403)
    assert echo.conns == []


def test_502_when_the_node_prohibits_the_target(env):
    addr = env.addr()
    n1 = env.sshd("n1")
    n2 = env.sshd("n2", addr=addr,
                  extra_config=f"PermitOpen {addr}:{tl.free_port(addr)}")
    e2 = env.server(tl.EchoServer, addr=n2.addr)
    d = start(env, [n1, n2])
    r = d.connect(n2.addr, e2.port)
    assert_error(r, 502)
    assert r.body.strip(), "502 without a reason in the body"
    assert e2.conns == []
    # A refused channel is not a dead node.
    assert d.node_info("n2")["state"] == "up"
    assert d.node_info("n1")["state"] == "up"


def test_502_when_nothing_listens_on_the_target(env, two):
    d = start(env, two[:2])
    n1 = two[0]
    r = d.connect(n1.addr, tl.free_port(n1.addr))
    assert_error(r, 502)
    assert r.body.strip(), "502 without a reason in the body"
    assert r.elapsed < 5.0
    assert d.node_info("n1")["state"] == "up"
    # The session still carries streams.
    s = d.tunnel(n1.addr, two[2].port)
    s.sendall(b"still fine")
    assert tl.recv_exactly(s, 10) == b"still fine"


def test_503_fast_when_the_node_is_dead(env, two):
    n1, n2, e1, e2 = two
    d = start(env, [n1, n2])  # open_timeout stays 10 s: 503 must not wait for it
    n1.kill()
    d.wait_state("n1", lambda s: s != "up", timeout=10)
    r = d.connect(n1.addr, e1.port)
    assert_error(r, 503)
    assert r.elapsed < 1.0, f"503 took {r.elapsed:.3f} s"
    # The other node still serves.
    s = d.tunnel(n2.addr, e2.port)
    s.sendall(b"n2 alive")
    assert tl.recv_exactly(s, 8) == b"n2 alive"


def test_504_when_the_node_hangs(env, two):
    n1, n2, e1, e2 = two
    # Liveness at its defaults (5 s x 3) keeps the frozen node "up" long
    # enough for the open to hit open_timeout.
    d = start(env, [n1, n2], open_timeout=1.0)
    n1.freeze()
    r = d.connect(n1.addr, e1.port)
    assert_error(r, 504)
    assert 0.95 <= r.elapsed < 3.0, f"504 after {r.elapsed:.2f} s with open_timeout = 1"
    n1.thaw()


def test_a_client_that_leaves_while_its_channel_opens_is_let_go(env, two):
    """A client that hangs up while its node is slow to open the channel
    costs nothing until open_timeout: its socket goes at once."""
    n1, n2, e1, e2 = two
    d = start(env, [n1, n2], open_timeout=30.0)
    # the baseline once the start-up checks' admin connections are gone
    time.sleep(0.5)
    base = tl.open_fds(d.pid)
    n1.freeze()
    try:
        socks = []
        for _ in range(20):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(5)
            s.connect(d.proxy_sock)
            s.sendall(tl.connect_request(n1.addr, e1.port))
            socks.append(s)
        held = {}

        def holding():
            held["fds"] = tl.open_fds(d.pid)
            return held["fds"] >= base + 18

        try:
            tl.wait_until(holding, 10, "the clients held while their opens wait")
        except tl.HarnessError as e:
            raise AssertionError(f"{e}: {held['fds']} descriptors open, {base} before the 20 clients") from None
        for s in socks:
            s.close()
        tl.wait_fds_back(d.pid, base, timeout=5)  # open_timeout is 30 s
        r = d.connect(n2.addr, e2.port)
        assert r.status == 200, r
        r.sock.close()
    finally:
        n1.thaw()


def test_nothing_follows_the_200_head(env, two):
    """kube-apiserver fails the dial if any byte follows the head before it
    speaks: the 200 is the whole reply, no body, no stray bytes."""
    n1, _, e1, _ = two
    d = start(env, two[:2])
    for via in ("unix", "tcp"):
        r = d.connect(n1.addr, e1.port, via=via)
        assert r.status == 200, r
        assert r.head == tl.CONNECT_OK
        r.sock.settimeout(0.5)
        with pytest.raises(socket.timeout):
            r.sock.recv(1)
        r.sock.sendall(b"then the client speaks")
        assert tl.recv_exactly(r.sock, 22) == b"then the client speaks"
        r.sock.close()


def test_a_target_that_speaks_first_waits_for_the_client(env, two):
    """DESIGN: sshtund "sends nothing after the head until the client does",
    so even a target that talks first (a banner) must wait for the client."""
    n1 = two[0]
    banner = env.server(tl.BannerServer, addr=n1.addr, banner=b"SPEAKS-FIRST\r\n")
    d = start(env, two[:2])
    for via in ("unix", "tcp"):
        r = d.connect(n1.addr, banner.port, via=via)
        assert r.status == 200, r
        assert r.head == tl.CONNECT_OK
        s = r.sock
        # The target has spoken by now; the client must still see nothing.
        banner.wait_connections(1 if via == "unix" else 2)
        time.sleep(0.3)
        s.settimeout(0.5)
        with pytest.raises(socket.timeout):
            s.recv(1)
        s.sendall(b"hi")
        assert tl.recv_exactly(s, len(banner.banner) + 2) == banner.banner + b"hi"
        s.close()
