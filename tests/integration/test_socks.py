# SOCKS5 on the front door: curl (remote and client-side resolution) through
# an OpenSSH and a dropbear node, IPv4, IPv6 and domain targets, every REP
# the proxy can give provoked for real, and 64 MiB byte for byte through a
# hand-written client. socat speaks only SOCKS4, so it is not used here.

import os
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import sshtund_testlib as tl

NO_AUTH = b"\x05\x01\x00"
REP_OK, REP_FAILURE, REP_NOT_ALLOWED, REP_HOST_UNREACHABLE, REP_REFUSED = 0, 1, 2, 4, 5
REP_COMMAND, REP_ATYP = 7, 8


def no_proxy_env():
    return {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}


def socks_request(host, port, cmd=1, atyp=None):
    """The request bytes for host:port; ATYP from the host's form unless
    given (1 IPv4, 4 IPv6, 3 a name)."""
    if atyp is None:
        for fam, a in ((socket.AF_INET, 1), (socket.AF_INET6, 4)):
            try:
                socket.inet_pton(fam, host)
                atyp = a
                break
            except OSError:
                pass
        else:
            atyp = 3
    if atyp == 1:
        addr = socket.inet_pton(socket.AF_INET, host)
    elif atyp == 4:
        addr = socket.inet_pton(socket.AF_INET6, host)
    else:
        addr = bytes([len(host)]) + host.encode()
    return bytes([5, cmd, 0, atyp]) + addr + port.to_bytes(2, "big")


def read_or_eof(s, n, timeout=15.0):
    """Up to n bytes; fewer only if the peer closed (or reset) first."""
    s.settimeout(timeout)
    out = bytearray()
    while len(out) < n:
        try:
            data = s.recv(n - len(out))
        except ConnectionResetError:
            break
        if not data:
            break
        out += data
    return bytes(out)


def closed(s, timeout=5.0):
    try:
        s.settimeout(timeout)
        return s.recv(1) == b""
    except ConnectionResetError:
        return True


class SocksReply:
    def __init__(self, rep, elapsed, sock):
        self.rep, self.elapsed, self.sock = rep, elapsed, sock

    def __repr__(self):
        return f"<SOCKS REP {self.rep} after {self.elapsed:.3f}s>"


def socks_connect(d, host, port, via="tcp", request=None, timeout=15.0):
    """Greet (no auth), send the request, read the 10-byte reply exactly;
    returns its REP with the socket (the tunnel when REP is 0)."""
    s = d.front_door(via, timeout)
    s.sendall(NO_AUTH)
    assert read_or_eof(s, 2) == b"\x05\x00", "no method selection for no-auth"
    t0 = time.monotonic()
    s.sendall(request if request is not None else socks_request(host, port))
    rep = read_or_eof(s, 10, timeout)
    elapsed = time.monotonic() - t0
    assert len(rep) == 10, f"reply cut short: {rep!r}"
    # VER 5, RSV 0, ATYP 1, BND 0.0.0.0:0
    assert rep[0] == 5 and rep[2:] == b"\x00\x01" + bytes(6), rep
    return SocksReply(rep[1], elapsed, s)


def socks_tunnel(d, host, port, via="tcp"):
    r = socks_connect(d, host, port, via)
    assert r.rep == REP_OK, r
    return r.sock


def assert_refused(r, rep):
    assert r.rep == rep, r
    assert closed(r.sock), f"the connection stayed open after REP {rep}"


def through(pids, node):
    return pids and all(tl.is_descendant(p, node.pid) for p in pids)


def curl(d, url, *proxy_args):
    return subprocess.run(["curl", "-sS", "--fail", "--max-time", "20", "--noproxy", "",
                           *proxy_args, url],
                          capture_output=True, timeout=30, env=no_proxy_env())


@pytest.fixture
def two(env):
    """Two sshd nodes with an echo server each."""
    n1, n2 = env.sshd("n1"), env.sshd("n2")
    e1, e2 = env.server(tl.EchoServer, addr=n1.addr), env.server(tl.EchoServer, addr=n2.addr)
    return n1, n2, e1, e2


def start(env, nodes, **proxy):
    d = env.sshtund(nodes, proxy=proxy)
    d.wait_all_up(30)
    return d


# --- real clients -----------------------------------------------------------

@pytest.mark.parametrize("kind", ["sshd", "dropbear"])
def test_curl_socks5_hostname_through_each_node_kind(env, kind):
    if kind == "dropbear" and not tl.is_root():
        pytest.skip("a dropbear node needs root")
    other = env.sshd("other")
    node = env.sshd("n1") if kind == "sshd" else env.dropbear("n1")
    http = env.server(tl.HttpServer, addr=node.addr)
    d = start(env, [other, node])
    r = curl(d, f"http://{node.addr}:{http.port}/via-{kind}",
             "--socks5-hostname", f"{d.tcp_addr}:{d.tcp_port}")
    assert r.returncode == 0, r.stderr
    assert r.stdout == http.body
    path, _, pids = http.requests[-1]
    assert path == f"/via-{kind}"
    assert through(pids, node), f"the request did not come from {kind} {node.pid}: {pids}"
    tl.wait_until(lambda: d.node_info("n1")["streams"] == 0, 10, "the stream to end")
    assert d.node_info("n1")["streams_total"] >= 1
    assert d.node_info("other")["streams_total"] == 0


def test_curl_socks5_resolves_on_the_client(env, two):
    """--socks5 resolves the name itself (here with --resolve) and sends an
    IPv4 address: the name never reaches sshtund, which could not route
    it."""
    n1, n2 = two[0], two[1]
    http = env.server(tl.HttpServer, addr=n2.addr)
    d = start(env, [n1, n2], fallback="none")
    url = f"http://web.test:{http.port}/resolved-here"
    r = curl(d, url, "--socks5", f"{d.tcp_addr}:{d.tcp_port}",
             "--resolve", f"web.test:{http.port}:{n2.addr}")
    assert r.returncode == 0, r.stderr
    assert r.stdout == http.body
    _, _, pids = http.requests[-1]
    assert through(pids, n2)
    # The same name sent as a name (ATYP 3) is no node's: not admitted.
    r = curl(d, url, "--socks5-hostname", f"{d.tcp_addr}:{d.tcp_port}")
    assert r.returncode != 0
    assert len(http.requests) == 1


def test_a_hostname_target_goes_through_its_node(env):
    """A domain (ATYP 3) routes like a CONNECT host: to the node that lists
    it as a hostname, which resolves it ("localhost", whose HTTP server
    sits on 127.0.0.1 for this one test)."""
    n1, n2 = env.sshd("n1"), env.sshd("n2")
    n2.config_extra["hostnames"] = ["localhost"]
    http = env.server(tl.HttpServer, addr="127.0.0.1")
    d = env.sshtund([n1, n2])
    d.wait_all_up(30)
    r = curl(d, f"http://localhost:{http.port}/by-name", "--socks5-hostname",
             f"{d.tcp_addr}:{d.tcp_port}")
    assert r.returncode == 0, r.stderr
    assert r.stdout == http.body
    _, _, pids = http.requests[-1]
    assert through(pids, n2), "the name was not routed to the node that lists it"
    assert d.node_info("n1")["streams_total"] == 0


# --- IPv6: an sshd node on ::1 ------------------------------------------------

def free_port6():
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
        s.bind(("::1", 0))
        return s.getsockname()[1]


def listening6(port):
    want = "00000000000000000000000001000000:%04X" % port  # ::1 as /proc shows it
    with open("/proc/net/tcp6") as f:
        return any(ln.split()[1] == want and ln.split()[3] == "0A" for ln in list(f)[1:])


class Sshd6Node(tl.SshdNode):
    """An sshd node on [::1]: the harness's readiness check reads only
    /proc/net/tcp, and sshd needs the address bracketed."""

    def __init__(self, tmp, name, port, client_pub):
        super().__init__(tmp, name, "::1", port, client_pub, start=False)
        with open(self.config_path) as f:
            text = f.read().replace(f"ListenAddress ::1:{port}", f"ListenAddress [::1]:{port}")
        with open(self.config_path, "w") as f:
            f.write(text)

    def start(self, timeout=10.0):
        self.proc = tl._spawn(self._argv(), self.log_path)

        def ready():
            if self.proc.poll() is not None:
                raise tl.HarnessError(f"sshd on [::1] exited:\n{tl.tail(self.log_path, 20)}")
            return listening6(self.port)

        tl.wait_until(ready, timeout, f"sshd to listen on [::1]:{self.port}")
        return self


class Http6Server:
    """GET answers 'body', on [::1]; records the paths asked for."""

    body = b"hello over IPv6\n"

    def __init__(self, port):
        self.port = port
        self.requests = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                server.requests.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                self.wfile.write(server.body)

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            address_family = socket.AF_INET6
            daemon_threads = True

        self.httpd = Server(("::1", port), Handler)
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                         daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Echo6Server(tl.EchoServer):
    def __init__(self, port):
        self.addr, self.port = "::1", port
        self.sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("::1", port))
        self.sock.listen(16)
        self.conns = []
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()


def ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def test_ipv6_target_through_an_ipv6_node(env):
    """ATYP 4, from a hand-written client and from curl: ::1 routes to the
    node whose address it is, not to the IPv4 node beside it."""
    if not ipv6_loopback():
        pytest.skip("no IPv6 loopback")
    n1 = env.sshd("n1")
    n6 = Sshd6Node(env.dir, "n6", free_port6(), env.client_pub)
    env.nodes.append(n6)
    n6.start()
    echo = Echo6Server(free_port6())
    env.servers.append(echo)
    d = start(env, [n1, n6])

    req = socks_request("::1", echo.port)
    assert req[3] == 4 and len(req) == 22
    s = socks_tunnel(d, "::1", echo.port)
    s.sendall(b"over IPv6")
    assert tl.recv_exactly(s, 9) == b"over IPv6"
    assert d.node_info("n6")["streams"] == 1
    assert d.node_info("n1")["streams_total"] == 0
    s.close()

    # curl sends an IPv6 literal as ATYP 4, even with --socks5-hostname
    http = Http6Server(free_port6())
    env.servers.append(http)
    r = curl(d, f"http://[::1]:{http.port}/v6", "--socks5-hostname", f"{d.tcp_addr}:{d.tcp_port}")
    assert r.returncode == 0, r.stderr
    assert r.stdout == http.body
    assert http.requests == ["/v6"]
    tl.wait_until(lambda: d.node_info("n6")["streams_total"] == 2, 10, "curl's stream via n6")
    assert d.node_info("n1")["streams_total"] == 0


# --- every REP ------------------------------------------------------------------

@pytest.mark.parametrize("target", [("198.51.100.1", 80), ("example.com", 443), "other-loopback"])
def test_denied_target_gets_rep_2(env, two, target):
    d = start(env, two[:2])
    echo = None
    if target == "other-loopback":
        echo = env.server(tl.EchoServer)
        target = echo.target
    assert_refused(socks_connect(d, *target), REP_NOT_ALLOWED)
    if echo:
        assert echo.conns == [], "a forbidden target was reached"


def test_refused_port_gets_rep_5(env, two):
    n1, _, e1, _ = two
    d = start(env, two[:2])
    r = socks_connect(d, n1.addr, tl.free_port(n1.addr))
    assert_refused(r, REP_REFUSED)
    assert r.elapsed < 5.0
    assert d.node_info("n1")["state"] == "up"
    s = socks_tunnel(d, n1.addr, e1.port)
    s.sendall(b"still fine")
    assert tl.recv_exactly(s, 10) == b"still fine"


def test_prohibited_by_the_node_gets_rep_2(env):
    """sshd's "administratively prohibited" (PermitOpen) is a ruleset too."""
    addr = env.addr()
    n1 = env.sshd("n1")
    n2 = env.sshd("n2", addr=addr, extra_config=f"PermitOpen {addr}:{tl.free_port(addr)}")
    e2 = env.server(tl.EchoServer, addr=n2.addr)
    d = start(env, [n1, n2])
    assert_refused(socks_connect(d, n2.addr, e2.port), REP_NOT_ALLOWED)
    assert e2.conns == []
    assert d.node_info("n2")["state"] == "up"


def test_killed_node_gets_rep_1_fast(env, two):
    n1, n2, e1, e2 = two
    d = start(env, [n1, n2])  # open_timeout stays 10 s: the answer must not wait for it
    n1.kill()
    d.wait_state("n1", lambda s: s != "up", timeout=10)
    r = socks_connect(d, n1.addr, e1.port)
    assert_refused(r, REP_FAILURE)
    assert r.elapsed < 1.0, f"REP 1 took {r.elapsed:.3f} s"
    s = socks_tunnel(d, n2.addr, e2.port)
    s.sendall(b"n2 alive")
    assert tl.recv_exactly(s, 8) == b"n2 alive"


def test_hung_node_gets_rep_4_after_open_timeout(env, two):
    n1, n2, e1, _ = two
    d = start(env, [n1, n2], open_timeout=1.0)
    n1.freeze()
    r = socks_connect(d, n1.addr, e1.port)
    assert_refused(r, REP_HOST_UNREACHABLE)
    assert 0.95 <= r.elapsed < 3.0, f"REP 4 after {r.elapsed:.2f} s with open_timeout = 1"
    n1.thaw()


@pytest.mark.parametrize("cmd", [2, 3, 9], ids=["bind", "udp-associate", "unassigned"])
def test_commands_other_than_connect_get_rep_7(env, two, cmd):
    n1, _, e1, _ = two
    d = start(env, two[:2])
    r = socks_connect(d, None, None, request=socks_request(n1.addr, e1.port, cmd=cmd))
    assert_refused(r, REP_COMMAND)
    assert e1.conns == []


def test_unknown_address_type_gets_rep_8(env, two):
    d = start(env, two[:2])
    assert_refused(socks_connect(d, None, None, request=b"\x05\x01\x00\x05" + bytes(8)), REP_ATYP)


@pytest.mark.parametrize("request_bytes", [
    b"\x05\x01\x01\x01\x7f\x00\x00\x01\x00\x50",  # RSV 1
    b"\x04\x01\x00\x01\x7f\x00\x00\x01\x00\x50",  # VER 4
    b"\x05\x01\x00\x03\x00\x00\x50",              # empty domain
    b"\x05\x01\x00\x03\x05no\x00de\x00\x50",      # NUL in the domain
], ids=["rsv", "version", "empty-domain", "nul-in-domain"])
def test_malformed_request_gets_rep_1(env, two, request_bytes):
    d = start(env, two[:2])
    assert_refused(socks_connect(d, None, None, request=request_bytes), REP_FAILURE)


def test_client_without_no_auth_gets_ff_and_close(env, two):
    """Username/password only (as curl --socks5 user:pw@ offers): 0xFF."""
    d = start(env, two[:2])
    for greeting in (b"\x05\x01\x02", b"\x05\x02\x01\x02"):
        s = d.front_door("tcp")
        s.sendall(greeting)
        assert read_or_eof(s, 2) == b"\x05\xff"
        assert closed(s)


def test_garbage_greeting_is_closed_without_a_reply(env, two):
    """No methods at all: no method can be chosen, so no reply can be
    framed either."""
    d = start(env, two[:2])
    s = d.front_door("tcp")
    s.sendall(b"\x05\x00\x05\x01\x00\x01")
    assert read_or_eof(s, 1, timeout=5) == b""


@pytest.mark.parametrize("sent", [b"\x05", b"\x05\x01", NO_AUTH, NO_AUTH + b"\x05\x01\x00\x01\x7f"],
                         ids=["first-byte-only", "partial-greeting", "greeting", "partial-request"])
def test_unfinished_negotiation_is_closed_after_header_timeout(env, two, sent):
    """The whole negotiation has proxy.header_timeout; then just a close (a
    client that never finished asking is not waiting for an answer)."""
    d = start(env, two[:2], header_timeout=1.0)
    s = d.front_door("tcp")
    t0 = time.monotonic()
    s.sendall(sent)
    got = read_or_eof(s, 3, timeout=10)
    elapsed = time.monotonic() - t0
    assert got == (b"\x05\x00" if sent.startswith(NO_AUTH) else b""), got
    assert 0.9 <= elapsed < 3.0, f"closed after {elapsed:.2f} s with header_timeout = 1"


# --- the stream -------------------------------------------------------------------

def test_everything_in_one_write_over_the_unix_listener(env, two):
    """Greeting, request and the first tunnel bytes pipelined in one write:
    the bytes after the request belong to the tunnel."""
    n1, _, e1, _ = two
    d = start(env, two[:2])
    s = d.front_door("unix")
    s.sendall(NO_AUTH + socks_request(n1.addr, e1.port) + b"early bytes")
    assert read_or_eof(s, 12) == b"\x05\x00" + b"\x05\x00\x00\x01" + bytes(6)
    assert tl.recv_exactly(s, 11) == b"early bytes"
    s.shutdown(socket.SHUT_WR)
    assert tl.recv_until_eof(s, timeout=10) == b""


def test_a_target_that_speaks_first_is_heard_at_once(env, two):
    """Unlike the CONNECT path (kube-apiserver's dialer), SOCKS5 clients of
    talk-first servers wait for the banner: it must reach them before they
    send anything."""
    n1 = two[0]
    banner = env.server(tl.BannerServer, addr=n1.addr, banner=b"220 SPEAKS-FIRST\r\n")
    d = start(env, two[:2])
    s = socks_tunnel(d, n1.addr, banner.port)
    assert tl.recv_exactly(s, len(banner.banner), timeout=10) == banner.banner
    s.sendall(b"HELO")
    assert tl.recv_exactly(s, 4) == b"HELO"


@pytest.mark.alarm(300)
def test_64_mib_byte_for_byte(env, two):
    n1, _, e1, _ = two
    d = start(env, two[:2])
    s = socks_tunnel(d, n1.addr, e1.port)
    size = 64 << 20
    tl.echo_exactly(s, size)
    s.close()
    tl.wait_until(lambda: d.node_info("n1")["streams"] == 0, 10, "the stream to end")


def test_http_connect_still_served_beside_socks(env, two):
    """The first byte decides: both protocols on one listener, at once."""
    n1, n2, e1, e2 = two
    d = start(env, two[:2])
    a = socks_tunnel(d, n1.addr, e1.port)
    b = d.tunnel(n2.addr, e2.port, via="tcp")
    a.sendall(b"socks")
    b.sendall(b"connect")
    assert tl.recv_exactly(a, 5) == b"socks"
    assert tl.recv_exactly(b, 7) == b"connect"
