# Which node carries a CONNECT: a node's name, address or hostnames
# (case-insensitively), the longest pod CIDR holding an IP, else
# proxy.fallback; the target reaches the node exactly as written; and every
# form of proxy.allow rule admits what it says and nothing else (403).
# The node that carried a stream is the one whose sshd process holds the
# other end of the target server's connection.

import os
import random
import re

import pytest

import sshtund_testlib as tl


def assert_error(r, status, *words):
    assert r.status == status, r
    assert r.head.startswith(f"HTTP/1.1 {status} ".encode()), r.head
    assert r.closed, f"the connection stayed open after {status}"
    for w in words:
        assert w.encode() in r.body, f"{status} body lacks {w!r}: {r.body!r}"


def echo_through(d, host, port, server, token=None):
    """Open a tunnel to host:port, echo a unique token, and return (the
    tunnel, the server's connection for it); both stay open."""
    token = token or b"tok-%s;" % os.urandom(6).hex().encode()
    s = d.tunnel(host, port)
    s.sendall(token)
    assert tl.recv_exactly(s, len(token), timeout=15) == token
    conn = tl.wait_until(lambda: next((c for c in server.conns if bytes(c.received).startswith(token)), None),
                         10, f"the target to see {token!r}")
    return s, conn


def carried_by(conn, nodes):
    return tl.carriers([conn], nodes)[0]


def require_root():
    if not tl.is_root():
        pytest.skip("nodes with their own /etc/hosts need root (private mount namespace)")


# --- name, address, hostnames --------------------------------------------------

@pytest.mark.alarm(120)
def test_names_addresses_and_hostnames_pick_their_node(env):
    """Every node resolves every name to one shared echo server, so only
    the carrier (the sshd holding the server's peer) tells the routes
    apart: each name, hostname and address goes through its own node."""
    require_root()
    echo_addr = env.addr()
    names = ["n1", "n2", "n3", "kubelet-a.example", "kubelet-b.example", "n3.internal"]
    hosts = {n: echo_addr for n in names}
    n1 = tl.sshd_with_hosts(env, "n1", hosts)
    n2 = tl.sshd_with_hosts(env, "n2", hosts)
    n3 = tl.sshd_with_hosts(env, "n3", hosts)
    n2.config_extra["hostnames"] = ["kubelet-a.example", "Kubelet-B.Example"]
    n3.config_extra["hostnames"] = ["n3.internal"]
    nodes = [n1, n2, n3]
    echo = env.server(tl.EchoServer, addr=echo_addr)
    own = {n.name: env.server(tl.EchoServer, addr=n.addr) for n in nodes}
    d = env.sshtund(nodes)
    d.wait_all_up(30)

    cases = [
        ("n1", echo, "n1"), ("n2", echo, "n2"), ("n3", echo, "n3"),
        ("N2", echo, "n2"),                       # names compare case-insensitively too
        ("kubelet-a.example", echo, "n2"),
        ("KUBELET-A.example", echo, "n2"),        # the client's case differs from the config
        ("kubelet-b.example", echo, "n2"),        # the config's case differs from the client
        ("Kubelet-B.Example", echo, "n2"),
        ("n3.internal", echo, "n3"),
        (n1.addr, own["n1"], "n1"), (n2.addr, own["n2"], "n2"), (n3.addr, own["n3"], "n3"),
    ]
    open_socks = []
    for host, server, want in cases:
        s, conn = echo_through(d, host, server.port, server)
        open_socks.append(s)
        got = carried_by(conn, nodes)
        assert got == want, f"CONNECT {host}: carried by {got}, want {want}"
    for s in open_socks:
        s.close()
    # a name no node lists is not a node's, whatever it resolves to
    assert_error(d.connect("kubelet-c.example", echo.port), 403, "proxy.allow")


@pytest.mark.alarm(120)
def test_pod_cidr_longest_prefix_wins(env):
    """Nested pod CIDRs in both orders: n1's /16 is listed before n2's /24
    inside it, n4's /12 holding both comes last; n3 has a /25 elsewhere in
    the /16. Each IP goes through the node with the longest block holding
    it, whatever the order of the nodes."""
    a = random.randint(1, 254)
    b = random.sample(range(1, 255), 3)
    net12 = f"127.{a & 0xF0}.0.0/12"
    far = f"127.{(a & 0xF0) + ((a & 0x0F) + 1) % 16}.5.77"  # in the /12, not in the /16
    n1 = env.sshd("n1", pod_cidr=f"127.{a}.0.0/16")
    n2 = env.sshd("n2", pod_cidr=f"127.{a}.{b[0]}.0/24")
    n3 = env.sshd("n3", pod_cidr=f"127.{a}.{b[1]}.128/25")
    n4 = env.sshd("n4", pod_cidr=net12)
    nodes = [n1, n2, n3, n4]
    inner = env.server(tl.EchoServer, addr=f"127.{a}.{b[0]}.77")
    outer = env.server(tl.EchoServer, addr=f"127.{a}.{b[2]}.77")
    deeper = env.server(tl.EchoServer, addr=f"127.{a}.{b[1]}.200")
    beside = env.server(tl.EchoServer, addr=f"127.{a}.{b[1]}.100")  # n3's /24 but not its /25
    farther = env.server(tl.EchoServer, addr=far)
    d = env.sshtund(nodes)
    d.wait_all_up(30)

    for server, want in [(inner, "n2"), (outer, "n1"), (deeper, "n3"), (beside, "n1"),
                         (farther, "n4"), (inner, "n2")]:
        s, conn = echo_through(d, server.addr, server.port, server)
        got = carried_by(conn, nodes)
        assert got == want, f"{server.addr}: carried by {got}, want {want}"
        s.close()


# --- fallback --------------------------------------------------------------------

@pytest.mark.alarm(180)
def test_fallback_any_spreads_over_the_up_nodes(env):
    """An IP no node owns, admitted by a CIDR rule, goes through some up
    node; over many streams every up node carries some (weighted random);
    a node that is down carries none and its own targets get 503."""
    nodes = [env.sshd("n1"), env.sshd("n2"), env.sshd("n3")]
    svc = env.server(tl.EchoServer)
    own3 = env.server(tl.EchoServer, addr=nodes[2].addr)
    d = env.sshtund(nodes, proxy={"allow": ["nodes", f"{svc.addr}/32"], "fallback": "any"})
    d.wait_all_up(30)

    socks, conns = [], []
    for i in range(60):
        s, c = echo_through(d, svc.addr, svc.port, svc)
        socks.append(s)
        conns.append(c)
    got = tl.carriers(conns, nodes)
    counts = {n.name: got.count(n.name) for n in nodes}
    assert None not in got, f"streams carried by no node (or several): {got}"
    # P(some node gets none of 60 at 1/3 each) is 3 * (2/3)^60, about 1e-10
    assert all(counts.values()), f"fallback streams per node: {counts}"
    for s in socks:
        s.close()
    tl.wait_until(lambda: d.status()["streams"] == 0, 15, "the fallback streams to end")

    # n3 goes down: its own address is not rerouted, and fallback avoids it
    n3 = nodes[2]
    n3.kill()
    d.wait_state("n3", lambda st: st != "up", timeout=15)
    r = d.connect(n3.addr, own3.port)
    assert_error(r, 503)
    assert own3.conns == [], "the down node's target was reached through another node"
    socks, conns = [], []
    for i in range(20):
        s, c = echo_through(d, svc.addr, svc.port, svc)
        socks.append(s)
        conns.append(c)
    got = tl.carriers(conns, nodes[:2])
    assert None not in got and set(got) <= {"n1", "n2"}, got
    for s in socks:
        s.close()


@pytest.mark.alarm(120)
def test_fallback_none_answers_503_and_says_so(env):
    n1 = env.sshd("n1")
    svc = env.server(tl.EchoServer)
    own = env.server(tl.EchoServer, addr=n1.addr)
    d = env.sshtund([n1], proxy={"allow": ["nodes", f"{svc.addr}/32"], "fallback": "none"})
    d.wait_all_up(30)
    r = d.connect(svc.addr, svc.port)
    assert_error(r, 503, "fallback", "none", svc.addr)
    assert svc.conns == []
    # owned targets are not affected
    s, conn = echo_through(d, n1.addr, own.port, own)
    assert carried_by(conn, [n1]) == "n1"
    s.close()


@pytest.mark.alarm(120)
def test_a_down_nodes_name_and_pod_cidr_get_503(env):
    """With fallback "any", a target a down node owns (by name, address or
    pod CIDR) is answered 503, never sent through another node."""
    pod = env.addr()
    n1 = env.sshd("n1")
    n2 = env.sshd("n2", pod_cidr=f"{pod}/32")
    n2.config_extra["hostnames"] = ["localhost"]
    pod_echo = env.server(tl.EchoServer, addr=pod)
    lo_echo = env.server(tl.EchoServer, addr="127.0.0.1")
    d = env.sshtund([n1, n2], proxy={"fallback": "any", "allow": ["nodes", "127.0.0.0/8"]})
    d.wait_all_up(30)
    n2.kill()
    d.wait_state("n2", lambda st: st != "up", timeout=15)
    for host, port in [(pod, pod_echo.port), ("localhost", lo_echo.port), ("n2", lo_echo.port),
                       (n2.addr, 22)]:
        r = d.connect(host, port)
        assert_error(r, 503, "n2")
    assert pod_echo.conns == [] and lo_echo.conns == []


# --- the target goes to the node as written -----------------------------------

@pytest.mark.alarm(120)
def test_the_target_host_reaches_the_node_as_written(env):
    """The node's sshd permits only "localhost:PORT": CONNECT localhost:PORT
    opens (had sshtund resolved or rewritten it, sshd would refuse), while
    127.0.0.1:PORT, the same socket by address, and LOCALHOST:PORT, the
    same name in another case, are refused by sshd as prohibited."""
    echo = env.server(tl.EchoServer, addr="127.0.0.1")
    n1 = env.sshd("n1")
    n2 = env.sshd("n2", pod_cidr="127.0.0.1/32", extra_config=f"PermitOpen localhost:{echo.port}")
    n2.config_extra["hostnames"] = ["localhost"]
    d = env.sshtund([n1, n2])
    d.wait_all_up(30)

    s, conn = echo_through(d, "localhost", echo.port, echo)
    assert carried_by(conn, [n1, n2]) == "n2"
    s.close()
    for host in ["127.0.0.1", "LOCALHOST"]:
        r = d.connect(host, echo.port)
        assert_error(r, 502, "prohibited")
    assert len(echo.conns) == 1
    assert d.node_info("n2")["state"] == "up"
    assert "denied" in n2.log_text() and f"127.0.0.1 port {echo.port}" in n2.log_text(), \
        "sshd did not log the refused 127.0.0.1 request"


# --- the allowlist -------------------------------------------------------------

class World:
    """One node n1 and echo servers: on n1's address N at ports P..P+4, on
    C and C2 (two IPs of a /24, NET, that no node owns) at Q..Q+4, and on
    O (outside NET) at Q..Q+4. As root n1 resolves its own name "n1" to N."""

    def __init__(self, env):
        self.N = env.addr()
        if tl.is_root():
            self.n1 = tl.sshd_with_hosts(env, "n1", {"n1": self.N}, addr=self.N)
        else:
            self.n1 = env.sshd("n1", addr=self.N)
        a, b = random.randint(1, 254), random.randint(1, 253)
        y = random.sample(range(1, 255), 2)
        self.NET = f"127.{a}.{b}.0/24"
        self.C, self.C2 = f"127.{a}.{b}.{y[0]}", f"127.{a}.{b}.{y[1]}"
        self.O = f"127.{a}.{b + 1}.{y[0]}"
        self.servers = {}
        self.P = self._run(env, self.N)
        self.Q = self._run(env, self.C)
        for addr in (self.C2, self.O):
            for k in range(5):
                self.servers[(addr, self.Q + k)] = env.server(tl.EchoServer, addr=addr, port=self.Q + k)

    def _run(self, env, addr, n=5):
        """n echo servers at consecutive ports on addr; the first port."""
        for _ in range(100):
            base = tl.free_port(addr)
            got = []
            try:
                for k in range(n):
                    got.append(tl.EchoServer(addr, base + k))
            except OSError:
                for s in got:
                    s.close()
                continue
            for k, s in enumerate(got):
                env.servers.append(s)
                self.servers[(addr, base + k)] = s
            return base
        raise tl.HarnessError(f"no {n} consecutive free ports on {addr}")


# (rules, [(host, port, status)]): hosts and ports are names of World's
# attributes, a port optionally "+k"; rules are format strings over them.
ALLOW_CASES = {
    "default-is-nodes": (None, [
        ("N", "P", 200), ("N", "P+4", 200), ("n1", "P", 200), ("C", "Q", 403)]),
    "nodes": (["nodes"], [
        ("N", "P+1", 200), ("C", "Q", 403), ("localhost", "P", 403)]),
    "nodes-port": (["nodes:{P}"], [
        ("N", "P", 200), ("N", "P+1", 403), ("C", "P", 403)]),
    "nodes-ports": (["nodes:{P},{P2}"], [
        ("N", "P", 200), ("N", "P+2", 200), ("N", "P+1", 403), ("N", "P+3", 403)]),
    "nodes-range": (["nodes:{P1}-{P3}"], [
        ("N", "P+1", 200), ("N", "P+2", 200), ("N", "P+3", 200), ("N", "P", 403), ("N", "P+4", 403)]),
    "cidr": (["{NET}"], [
        ("C", "Q", 200), ("C2", "Q+4", 200), ("O", "Q", 403),
        ("N", "P", 403),            # a node's address outside the block, no "nodes" rule
        ("n1", "P", 403),           # a CIDR rule admits IP addresses only
        ("localhost", "Q", 403)]),
    "cidr-port": (["{NET}:{Q1}"], [
        ("C", "Q+1", 200), ("C2", "Q+1", 200), ("C", "Q", 403), ("C", "Q+2", 403), ("O", "Q+1", 403)]),
    "cidr-ports-and-range": (["{NET}:{Q},{Q1},{Q3}-{Q4}"], [
        ("C", "Q", 200), ("C", "Q+1", 200), ("C", "Q+3", 200), ("C2", "Q+4", 200),
        ("C", "Q+2", 403), ("O", "Q", 403), ("N", "P", 403)]),
    "bare-ip": (["{C}"], [
        ("C", "Q", 200), ("C", "Q+3", 200), ("C2", "Q", 403), ("N", "P", 403)]),
    "bare-ip-port": (["{C}:{Q2}"], [
        ("C", "Q+2", 200), ("C", "Q", 403), ("C2", "Q+2", 403)]),
    "combined": (["nodes:{P}", "{C2}/32:{Q1}", "{NET}:{Q2}"], [
        ("N", "P", 200), ("C2", "Q+1", 200), ("C", "Q+2", 200), ("C2", "Q+2", 200),
        ("N", "P+1", 403),          # the node rule's port list
        ("C", "Q+1", 403),          # only C2 has Q+1
        ("O", "Q+2", 403),          # outside the block
        ("C2", "Q+3", 403),         # a port in no list
        ("N", "Q+2", 403)]),
}


def resolve(w, host, port):
    h = getattr(w, host) if host in ("N", "C", "C2", "O") else host
    base, _, k = port.partition("+")
    return h, getattr(w, base) + int(k or 0)


def rule_fields(w):
    f = {"NET": w.NET, "C": w.C, "C2": w.C2}
    for k in range(5):
        f[f"P{k}" if k else "P"] = w.P + k
        f[f"Q{k}" if k else "Q"] = w.Q + k
    return f


@pytest.mark.alarm(120)
@pytest.mark.parametrize("case", list(ALLOW_CASES))
def test_allow_rule(env, case):
    rules, checks = ALLOW_CASES[case]
    w = World(env)
    if not tl.is_root():
        checks = [c for c in checks if c[0] != "n1"]  # n1 cannot resolve its name
    if rules is None:
        # the daemon's own default: no allow key at all
        d = tl.Sshtund(env.dir, [w.n1], env.client_key, start=False, name="sshtund")
        env.daemons.append(d)
        del d.sections["proxy"]["allow"]
        d.write_config()
        assert not re.search(r"^\s*allow\s*=", open(d.config_path).read(), re.M)
        d.start()
    else:
        fields = rule_fields(w)
        d = env.sshtund([w.n1], proxy={"allow": [r.format(**fields) for r in rules], "fallback": "any"})
    d.wait_all_up(30)

    for host, port, status in checks:
        h, p = resolve(w, host, port)
        server = w.servers.get((h if h != "n1" else w.N, p))
        before = len(server.conns) if server else 0
        if status == 200:
            assert server, (host, port)
            s, conn = echo_through(d, h, p, server)
            s.close()
        else:
            r = d.connect(h, p)
            assert r.status == status, f"{case}: CONNECT {h}:{p} ({host}:{port}): {r}"
            assert_error(r, status, "proxy.allow")
            if server:
                assert len(server.conns) == before, f"{h}:{p} was reached although refused"


@pytest.mark.alarm(120)
def test_ipv6_targets_are_parsed_and_checked(env):
    """A bracketed IPv6 target is parsed: outside the allowlist it gets 403
    (not 400); an IPv6 rule, bracketed with ports or bare without, admits
    it and the stream goes through."""
    n1 = env.sshd("n1")
    echo6 = env.server(tl.EchoServer6, addr="::1")
    d = env.sshtund([n1])
    d.wait_all_up(30)
    for host, port in [("::1", echo6.port), ("fd00::7", 10250), ("2001:db8::1", 443)]:
        assert_error(d.connect(host, port), 403, "proxy.allow")
    assert echo6.conns == []

    d2 = env.sshtund([n1], name="sshtund-v6", proxy={"allow": ["nodes", f"[::1]:{echo6.port}"]})
    d2.wait_all_up(30)
    s, _ = echo_through(d2, "::1", echo6.port, echo6)
    s.close()
    assert_error(d2.connect("::1", echo6.port + 1), 403, "proxy.allow")
    assert_error(d2.connect("::2", echo6.port), 403, "proxy.allow")
    # the same address in another spelling is the same address
    s, _ = echo_through(d2, "0:0:0:0:0:0:0:1", echo6.port, echo6)
    s.close()

    d3 = env.sshtund([n1], name="sshtund-v6b", proxy={"allow": ["::/127"]})
    d3.wait_all_up(30)
    s, _ = echo_through(d3, "::1", echo6.port, echo6)
    s.close()
    assert_error(d3.connect("::2", echo6.port), 403, "proxy.allow")
    assert_error(d3.connect(n1.addr, 22), 403, "proxy.allow")
