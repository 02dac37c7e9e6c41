# The move to Konnectivity: nodes listed in konnectivity.nodes are routed
# through an HTTP CONNECT upstream with konnectivity-server's front-door
# contract (tinyproxy over tcp; a stand-in speaking konnectivity-server's
# exact replies over a Unix socket), the others over SSH; the upstream's
# error replies reach the client; a failing upstream path falls back to SSH
# and recovers; a rollback under load fails no request; and `sshtunctl
# migration` reports 0 %, partial and 100 % with the final switch.

import json
import os
import re
import socket
import threading
import time

import pytest

import sshtund_testlib as tl

# The upstream path is checked every probe.interval: short here.
PROBE = {"type": "tcp", "interval": 1.0, "timeout": 1.0}


def kubelet(env):
    """A kubelet stand-in on 0.0.0.0:PORT: the SSH probe reaches it as
    127.0.0.1:PORT from each node, the upstream check as NODE-ADDRESS:PORT."""
    return env.server(tl.EchoServer, addr="0.0.0.0")


def start(env, nodes, upstream, migrated, kube, fallback=True, **kw):
    """sshtund with a konnectivity section, the upstream checks and the SSH
    probes aimed at the kubelet stand-in."""
    k = {"upstream": upstream, "nodes": list(migrated), "fallback_to_ssh": fallback, "probe_port": kube.port}
    return env.sshtund(nodes, probe={**PROBE, "target": f"127.0.0.1:{kube.port}"}, top={"konnectivity": k}, **kw)


def set_migrated(d, names):
    """konnectivity.nodes = names, then sshtunctl reload."""
    d.sections["konnectivity"]["nodes"] = list(names)
    d.write_config()
    r = d.sshtunctl("reload")
    assert r.returncode == 0, r.stderr


def wait_route(d, name, route, timeout=20):
    def check():
        n = d.node_info(name)
        return n if n["route"] == route else None

    try:
        return tl.wait_until(check, timeout, f"{name} routed to {route}")
    except tl.HarnessError as e:
        raise tl.HarnessError(f"{e}; last: {d.node_info(name)}") from None


def wait_upstream_ok(d, name, timeout=20):
    def check():
        p = d.node_info(name).get("upstream_probe")
        return p and p["ok"]

    try:
        return tl.wait_until(check, timeout, f"{name}'s upstream check to pass")
    except tl.HarnessError as e:
        raise tl.HarnessError(f"{e}; last: {d.node_info(name)}") from None


def echo_through(d, host, port, data):
    """A tunnel, data echoed back; returns the still-open socket."""
    s = d.tunnel(host, port)
    s.sendall(data)
    assert tl.recv_exactly(s, len(data), timeout=10) == data
    return s


def carrier_pids(server, n):
    """Pids on the far side of the server's n-th connection (1-based),
    while it is open."""
    return server.wait_connections(n).peer_pids()


def through_node(pids, node):
    return bool(pids) and all(tl.is_descendant(p, node.pid) for p in pids)


REP_FAILURE, REP_HOST_UNREACHABLE, REP_REFUSED = 1, 4, 5


def socks_rep(d, host, port):
    """A SOCKS5 CONNECT (no authentication, IPv4 target): the reply's REP."""
    s = d.front_door("tcp")
    try:
        s.sendall(b"\x05\x01\x00")
        assert tl.recv_exactly(s, 2) == b"\x05\x00"
        s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton(host) + port.to_bytes(2, "big"))
        rep = tl.recv_exactly(s, 10)
        assert rep[0] == 5 and rep[2:] == b"\x00\x01" + bytes(6), rep
        return rep[1]
    finally:
        s.close()


def metric(d, name, node):
    text = d.admin_request("GET", "/metrics")[2].decode()
    m = re.search(r"^%s\{node=\"%s\"\} (\d+)$" % (re.escape(name), re.escape(node)), text, re.M)
    assert m, f"no {name} for {node}"
    return int(m.group(1))


# --- routing ----------------------------------------------------------------------

@pytest.mark.alarm(90)
def test_migrated_node_goes_through_tinyproxy_others_over_ssh(env):
    n1, n2 = env.sshd("n1"), env.sshd("n2")
    e1, e2 = env.server(tl.EchoServer, addr=n1.addr), env.server(tl.EchoServer, addr=n2.addr)
    kube = kubelet(env)
    tp = tl.Tinyproxy(env.dir, [kube.port, e1.port, e2.port])
    env.servers.append(tp)
    d = start(env, [n1, n2], tp.upstream, ["n1"], kube)
    wait_upstream_ok(d, "n1")
    wait_upstream_ok(d, "n2")  # checked too: ready to move
    d.wait_state("n2", "up")

    n1_info = wait_route(d, "n1", "konnectivity")
    assert n1_info["migrated"] is True and n1_info["falling_back"] is False, n1_info
    assert n1_info["upstream_probe"]["error"] is None, n1_info
    n2_info = d.node_info("n2")
    assert n2_info["route"] == "ssh" and n2_info["migrated"] is False, n2_info
    # fallback_to_ssh = true: n1's SSH session stays warm
    assert n1_info["sessions_up"] >= 1, n1_info

    # n1: through tinyproxy, not n1's sshd (sshtund's own 200 head, whatever
    # tinyproxy's "HTTP/1.0 200 Connection established" looked like)
    s1 = echo_through(d, n1.addr, e1.port, b"via the upstream")
    pids = carrier_pids(e1, 1)
    assert pids == {tp.pid}, (pids, tp.pid)
    assert f"{n1.addr}:{e1.port}" in tp.targets()
    # n2: through its sshd, never asked of tinyproxy
    s2 = echo_through(d, n2.addr, e2.port, b"via ssh")
    pids = carrier_pids(e2, 1)
    assert through_node(pids, n2), pids
    assert not any(t.endswith(f":{e2.port}") for t in tp.targets()), tp.targets()
    # the upstream checks asked for each node's kubelet port
    assert f"{n1.addr}:{kube.port}" in tp.targets() and f"{n2.addr}:{kube.port}" in tp.targets()
    s1.close()
    s2.close()

    # what an operator sees
    out = d.sshtunctl("nodes").stdout
    assert re.search(r"^n1\s+\S+\s+up\s+konnectivity\s", out, re.M), out
    assert re.search(r"^n2\s+\S+\s+up\s+ssh\s", out, re.M), out
    assert metric(d, "sshtund_node_migrated", "n1") == 1
    assert metric(d, "sshtund_upstream_probe_ok", "n1") == 1
    text = d.admin_request("GET", "/metrics")[2].decode()
    assert 'sshtund_node_route{node="n1",route="konnectivity"} 1' in text
    assert 'sshtund_node_route{node="n2",route="ssh"} 1' in text


# --- the upstream's answers --------------------------------------------------------

@pytest.mark.alarm(90)
def test_upstream_error_replies_are_passed_on(env):
    n1 = env.sshd("n1")
    n1.config_extra["hostnames"] = ["n1-kubelet.example"]
    kube = kubelet(env)
    ports = {code: tl.free_port(n1.addr) for code in (500, 502, 503, 504)}
    replies = {f"{n1.addr}:{p}": code for code, p in ports.items()}
    replies["n1-kubelet.example:10250"] = 500
    hang = tl.free_port(n1.addr)
    replies[f"{n1.addr}:{hang}"] = "hang"
    k = tl.KonnectivityStandIn(os.path.join(env.dir, "konnectivity.sock"), replies=replies)
    env.servers.append(k)
    d = start(env, [n1], k.upstream, ["n1"], kube, proxy={"open_timeout": 2.0})
    wait_upstream_ok(d, "n1")
    wait_route(d, "n1", "konnectivity")
    # the check sent what kube-apiserver sends, byte for byte
    assert k.heads[0] == f"CONNECT {n1.addr}:{kube.port} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode(), k.heads
    children = {pid for pid, _ in n1.children()}

    want = {500: ("Internal Server Error", "currently no tunnels available: No agent available"),
            502: ("Bad Gateway", "Failed to tunnel dial request"),
            503: ("Service Unavailable", "no agent connected yet"),
            504: ("Gateway Timeout", "Backend dial timeout")}
    for code, port in ports.items():
        r = d.connect(n1.addr, port)
        assert r.status == code, (code, r)
        assert r.reason == want[code][0], r
        assert want[code][1].encode() in r.body, r
        assert r.closed, r
        assert k.count(f"{n1.addr}:{port}") == 1

    # SOCKS5 clients get the nearest REP
    reps = {500: REP_FAILURE, 502: REP_REFUSED, 503: REP_FAILURE, 504: REP_HOST_UNREACHABLE}
    for code, port in ports.items():
        assert socks_rep(d, n1.addr, port) == reps[code], code
        assert k.count(f"{n1.addr}:{port}") == 2

    # no answer from the upstream: 504 at proxy.open_timeout, not a hang
    r = d.connect(n1.addr, hang)
    assert r.status == 504, r
    assert 1.5 < r.elapsed < 5, r
    assert k.count(f"{n1.addr}:{hang}") == 1

    # a hostname goes upstream as the client wrote it (konnectivity-server's
    # destHost strategy matches it against the agents' identifiers)
    r = d.connect("n1-kubelet.example", 10250)
    assert r.status == 500, r
    assert k.heads[-1] == b"CONNECT n1-kubelet.example:10250 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", k.heads[-1]

    # the upstream answered: no fallback to SSH, and no channel on n1's sshd
    assert d.node_info("n1")["fallbacks"] == 0
    assert {pid for pid, _ in n1.children()} == children
    text = d.admin_request("GET", "/metrics")[2].decode()
    for code in ports:
        assert re.search(r'^sshtund_frontdoor_requests_total\{code="%d"\} [1-9]' % code, text, re.M), code


@pytest.mark.alarm(90)
def test_stand_in_tunnel_carries_bytes_and_ends_on_client_eof(env):
    n1 = env.sshd("n1")
    e1 = env.server(tl.EchoServer, addr=n1.addr)
    kube = kubelet(env)
    k = tl.KonnectivityStandIn(os.path.join(env.dir, "konnectivity.sock"))
    env.servers.append(k)
    d = start(env, [n1], k.upstream, ["n1"], kube)
    wait_upstream_ok(d, "n1")
    wait_route(d, "n1", "konnectivity")

    data = os.urandom(1 << 20)
    s = d.tunnel(n1.addr, e1.port)
    s.sendall(data)
    assert tl.recv_exactly(s, len(data), timeout=20) == data
    assert k.count(f"{n1.addr}:{e1.port}") == 1
    assert k.heads[-1] == f"CONNECT {n1.addr}:{e1.port} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    # konnectivity-server ends the whole stream at the client's EOF
    s.shutdown(1)
    assert tl.recv_until_eof(s, timeout=10) == b""
    s.close()
    e1.wait_connections(1).closed.wait(10)
    assert e1.wait_connections(1).closed.is_set()


# --- a failing upstream path ----------------------------------------------------------

@pytest.mark.alarm(120)
def test_upstream_down_falls_back_to_ssh_and_recovers(env):
    n1, n2 = env.sshd("n1"), env.sshd("n2")
    e1 = env.server(tl.EchoServer, addr=n1.addr)
    kube = kubelet(env)
    k = tl.KonnectivityStandIn(os.path.join(env.dir, "konnectivity.sock"))
    env.servers.append(k)
    d = start(env, [n1, n2], k.upstream, ["n1"], kube)
    wait_upstream_ok(d, "n1")
    wait_route(d, "n1", "konnectivity")
    d.wait_state("n1", "up")
    target = f"{n1.addr}:{e1.port}"

    s = echo_through(d, n1.addr, e1.port, b"upstream")
    assert k.count(target) == 1
    s.close()

    # konnectivity-server goes away: once the check fails, n1's new streams
    # go over SSH, logged and counted
    k.stop()
    info = wait_route(d, "n1", "ssh", timeout=10)
    assert info["migrated"] is True and info["falling_back"] is True, info
    assert info["upstream_probe"]["ok"] is False and info["upstream_probe"]["error"], info
    assert "upstream path failing" in d.log_text()
    before = d.node_info("n1")["fallbacks"]
    socks = []
    for i in range(3):
        socks.append(echo_through(d, n1.addr, e1.port, b"over ssh %d" % i))
        assert through_node(carrier_pids(e1, 2 + i), n1)
    assert k.count(target) == 1
    after = d.node_info("n1")["fallbacks"]
    counted = metric(d, "sshtund_konnectivity_fallbacks_total", "n1")
    assert metric(d, "sshtund_upstream_probe_ok", "n1") == 0
    for s in socks:
        s.close()
    # n2 was never routed upstream and is untouched
    assert d.node_info("n2")["route"] == "ssh"

    # back again: the next check passes and n1's streams return upstream
    k.start()
    wait_route(d, "n1", "konnectivity", timeout=10)
    assert d.node_info("n1")["falling_back"] is False
    assert "upstream path back" in d.log_text()
    s = echo_through(d, n1.addr, e1.port, b"upstream again")
    assert k.count(target) == 2
    s.close()

    # each of the three streams sent over SSH while the path failed counts
    assert counted == after
    assert after >= before + 3, f"fallbacks {before} -> {after}: the streams over SSH were not counted"


@pytest.mark.alarm(90)
def test_no_fallback_keeps_no_ssh_and_answers_502(env):
    n1 = env.sshd("n1")
    e1 = env.server(tl.EchoServer, addr=n1.addr)
    kube = kubelet(env)
    k = tl.KonnectivityStandIn(os.path.join(env.dir, "konnectivity.sock"))
    env.servers.append(k)
    d = start(env, [n1], k.upstream, ["n1"], kube, fallback=False)
    wait_upstream_ok(d, "n1")
    info = d.wait_state("n1", "up")
    # no SSH session at all: the upstream path is the node's health
    assert info["sessions_total"] == 0 and info["sessions_up"] == 0, info
    assert info["route"] == "konnectivity", info
    assert not n1.children()
    s = echo_through(d, n1.addr, e1.port, b"upstream only")
    assert k.count(f"{n1.addr}:{e1.port}") == 1
    s.close()

    k.stop()
    # at once (the check has not noticed yet) and after the check failed
    r = d.connect(n1.addr, e1.port)
    assert r.status == 502, r
    assert b"unreachable" in r.body, r
    tl.wait_until(lambda: d.node_info("n1")["upstream_probe"]["ok"] is False, 10, "the check to fail")
    info = d.node_info("n1")
    assert info["route"] == "konnectivity" and info["falling_back"] is False, info
    assert info["state"] == "degraded", info
    r = d.connect(n1.addr, e1.port)
    assert r.status == 502, r
    assert info["fallbacks"] == 0 and not n1.children()
    assert len(e1.conns) == 1


# --- rollback ---------------------------------------------------------------------

class SteadyLoad:
    """CONNECT + echo to one target about 20 times a second from a thread,
    each a new tunnel through the front door; every failure recorded."""

    def __init__(self, d, host, port, rate=20.0):
        self.d, self.host, self.port, self.rate = d, host, port, rate
        self.done, self.failures = 0, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="steady-load")
        self._thread.start()

    def _one(self, i):
        data = b"request %d\n" % i
        s = None
        try:
            r = self.d.connect(self.host, self.port, timeout=10)
            if r.status != 200 or r.head != tl.CONNECT_OK:
                return f"#{i}: {r}"
            s = r.sock
            s.sendall(data)
            got = tl.recv_exactly(s, len(data), timeout=10)
            return None if got == data else f"#{i}: echoed {got!r}"
        except (OSError, tl.HarnessError) as e:
            return f"#{i}: {e!r}"
        finally:
            if s is not None:
                s.close()

    def _run(self):
        i = 0
        while not self._stop.is_set():
            t0 = time.monotonic()
            err = self._one(i)
            if err:
                self.failures.append(err)
            self.done += 1
            i += 1
            self._stop.wait(max(0.0, 1.0 / self.rate - (time.monotonic() - t0)))

    def stop(self):
        self._stop.set()
        self._thread.join(30)
        assert not self._thread.is_alive(), "the load thread hung"


@pytest.mark.alarm(120)
@pytest.mark.parametrize("fallback", [True, False], ids=["fallback", "no-fallback"])
def test_rollback_under_load_fails_nothing(env, fallback):
    n1, n2 = env.sshd("n1"), env.sshd("n2")
    e1 = env.server(tl.EchoServer, addr=n1.addr)
    kube = kubelet(env)
    target = f"{n1.addr}:{e1.port}"
    if fallback:
        up = tl.Tinyproxy(env.dir, [kube.port, e1.port])
        upstream_streams = lambda: up.targets().count(target)  # noqa: E731
    else:
        up = tl.KonnectivityStandIn(os.path.join(env.dir, "konnectivity.sock"))
        upstream_streams = lambda: up.count(target)  # noqa: E731
    env.servers.append(up)
    d = start(env, [n1, n2], up.upstream, ["n1"], kube, fallback=fallback)
    wait_upstream_ok(d, "n1")
    wait_route(d, "n1", "konnectivity")
    d.wait_state("n1", "up")
    assert d.node_info("n1")["sessions_total"] == (1 if fallback else 0)

    load = SteadyLoad(d, n1.addr, e1.port)
    try:
        tl.wait_until(lambda: load.done >= 20, 10, "20 requests before the rollback")
        first = len(e1.conns)
        set_migrated(d, [])
        wait_route(d, "n1", "ssh", timeout=15)
        mark = len(e1.conns)
        tl.wait_until(lambda: load.done >= mark + 20, 10, "20 requests after the rollback")
    finally:
        load.stop()
    assert not load.failures, f"{len(load.failures)} of {load.done} failed: {load.failures[:5]}"
    assert first >= 1 and load.done >= 40
    info = d.node_info("n1")
    assert info["migrated"] is False and info["route"] == "ssh" and info["falling_back"] is False, info
    assert "n1: route: ssh" in d.log_text()

    # the streams before the rollback went upstream, none after the route
    # turned to SSH (but the one request in flight then)
    assert first <= upstream_streams() <= mark + 1, (first, upstream_streams(), mark, len(e1.conns))
    # and now n1's streams go over SSH
    s = echo_through(d, n1.addr, e1.port, b"over ssh now")
    assert through_node(e1.conns[-1].peer_pids(), n1)
    s.close()


# --- sshtunctl migration -----------------------------------------------------------

FINAL_YAML = """apiVersion: apiserver.k8s.io/v1beta1
kind: EgressSelectorConfiguration
egressSelections:
- name: cluster
  connection:
    proxyProtocol: HTTPConnect
    transport:
      uds:
        udsName: {path}
"""


def migration_rows(out):
    """NODE -> the row's cells (split on runs of 3+ spaces)."""
    rows = {}
    for line in out.splitlines()[1:]:
        if not line.strip():
            break
        cells = re.split(r"\s{3,}", line.strip())
        rows[cells[0]] = cells
    return rows


def report(d, *args):
    r = d.sshtunctl(*args, "migration")
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    return r.stdout


@pytest.mark.alarm(120)
def test_migration_report_at_0_partial_and_100_percent(env):
    n1, n2 = env.sshd("n1"), env.sshd("n2")
    kube = kubelet(env)
    k = tl.KonnectivityStandIn(os.path.join(env.dir, "konnectivity.sock"),
                               replies={f"{n2.addr}:{kube.port}": 500})
    env.servers.append(k)
    d = start(env, [n1, n2], k.upstream, [], kube)
    d.wait_all_up(30)
    tl.wait_until(lambda: all(n.get("upstream_probe") and (n.get("probe") or {}).get("ok")
                              for n in d.nodes_info()), 15, "both checks and probes")

    # 0 %: nothing moved; n1's path works, n2 has no agent yet
    out = report(d)
    assert out.splitlines()[0].split() == ["NODE", "ROUTE", "UPSTREAM", "SSH", "PROBE", "READY"], out
    rows = migration_rows(out)
    assert rows["n1"][1] == "ssh" and re.fullmatch(r"ok [\d.]+ms", rows["n1"][2]), rows
    assert re.fullmatch(r"ok [\d.]+ms", rows["n1"][3]) and rows["n1"][4] == "yes", rows
    assert rows["n2"][1:3] == ["ssh", "fail"] and rows["n2"][4] == "no", rows
    assert "\n0/2 nodes on konnectivity, 1 ready\n" in out, out
    assert "EgressSelectorConfiguration" not in out
    wide = report(d, "-o", "wide")
    assert "UPSTREAM ERROR" in wide and "currently no tunnels available" in wide, wide
    j = json.loads(report(d, "-o", "json"))
    assert j["upstream"] == k.upstream and j["fallback_to_ssh"] is True, j
    assert (j["nodes_total"], j["nodes_on_konnectivity"], j["nodes_ready"]) == (2, 0, 1), j
    assert j["final_switch"] is None
    by = {n["name"]: n for n in j["nodes"]}
    assert set(by["n1"]) == {"name", "route", "migrated", "upstream_probe", "probe", "ready"}
    assert by["n2"]["upstream_probe"]["ok"] is False
    assert "currently no tunnels available" in by["n2"]["upstream_probe"]["error"]

    # n2's agent connects; n1 moves: partial
    k.replies.clear()
    set_migrated(d, ["n1"])
    wait_route(d, "n1", "konnectivity")
    tl.wait_until(lambda: d.node_info("n2")["upstream_probe"]["ok"], 10, "n2's path to pass")
    out = report(d)
    rows = migration_rows(out)
    assert rows["n1"][1] == "konnectivity" and rows["n1"][4] == "yes", rows
    assert rows["n2"][1] == "ssh" and rows["n2"][4] == "yes", rows
    assert "\n1/2 nodes on konnectivity, 1 ready\n" in out, out
    assert "EgressSelectorConfiguration" not in out

    # 100 %: every node moved and passing: the final switch
    set_migrated(d, ["*"])
    wait_route(d, "n2", "konnectivity")
    tl.wait_until(lambda: json.loads(report(d, "-o", "json"))["final_switch"], 10, "the final switch")
    j = json.loads(report(d, "-o", "json"))
    assert (j["nodes_on_konnectivity"], j["nodes_ready"]) == (2, 0), j
    yaml_text = j["final_switch"]["egress_selector_configuration"]
    assert yaml_text == FINAL_YAML.format(path=k.path), yaml_text
    flags = j["final_switch"]["konnectivity_server_flags"]
    assert flags == (f"--mode=http-connect --uds-name={k.path} --server-port=0 "
                     "--proxy-strategies=destHost"), flags
    try:
        import yaml
    except ImportError:
        yaml = None
    if yaml is not None:
        doc = yaml.safe_load(yaml_text)
        conn = doc["egressSelections"][0]["connection"]
        assert doc["kind"] == "EgressSelectorConfiguration"
        assert doc["egressSelections"][0]["name"] == "cluster"
        assert conn == {"proxyProtocol": "HTTPConnect", "transport": {"uds": {"udsName": k.path}}}

    out = report(d)
    assert "\n2/2 nodes on konnectivity, 0 ready\n" in out, out
    assert yaml_text in out and ("\n" + flags + "\n") in out, out

    # a node whose path fails takes the final switch away again
    k.replies[f"{n2.addr}:{kube.port}"] = 503
    tl.wait_until(lambda: json.loads(report(d, "-o", "json"))["final_switch"] is None, 10,
                  "the final switch to go")
    assert "EgressSelectorConfiguration" not in report(d)
