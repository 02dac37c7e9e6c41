# Tunnels through real nodes: three OpenSSH nodes (one with an ECDSA host
# key) and one dropbear node (as root only) come up; CONNECT carries bytes exactly, both
# half-closes travel, and clients no one here wrote (curl, socat) work
# through the Unix and the TCP listener.

import os
import re
import socket
import subprocess
from types import SimpleNamespace

import pytest

import sshtund_testlib as tl

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


@pytest.fixture
def cluster(env):
    """n1, n2: sshd ed25519; n3: sshd ECDSA, with a pod CIDR holding an
    HTTP server; n4: dropbear. Each node has an echo server on its own
    address (as the kubelet listens on the node's IP)."""
    pod_addr = env.addr()
    nodes = [env.sshd("n1"), env.sshd("n2"),
             env.sshd("n3", host_key_type="ecdsa", pod_cidr=f"{pod_addr}/32")]
    if tl.is_root():  # dropbear needs a private mount namespace
        nodes.append(env.dropbear("n4"))
    echo = {n.name: env.server(tl.EchoServer, addr=n.addr) for n in nodes}
    http = env.server(tl.HttpServer, addr=pod_addr)
    d = env.sshtund(nodes)
    d.wait_all_up(30)
    return SimpleNamespace(env=env, d=d, nodes={n.name: n for n in nodes}, echo=echo, http=http)


def dropbear_or_skip(cluster):
    if "n4" not in cluster.nodes:
        pytest.skip("the dropbear node needs root")
    return cluster.nodes["n4"]


def no_proxy_env():
    return {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}


def test_every_node_comes_up_with_its_details(cluster):
    d = cluster.d
    total = len(cluster.nodes)
    st = d.status()
    assert st["nodes_total"] == total and st["nodes_up"] == total, st
    assert st["streams"] == 0, st
    assert isinstance(st["version"], str) and st["version"], st
    by_name = {n["name"]: n for n in d.nodes_info()}
    assert sorted(by_name) == sorted(cluster.nodes)
    for name, node in cluster.nodes.items():
        j = by_name[name]
        assert j["address"] == node.addr, j
        assert j["state"] == "up", j
        assert j["route"] == "ssh", j
        assert j["sessions_up"] >= 1 and j["sessions_total"] >= j["sessions_up"], j
        assert j["streams"] == 0, j
        assert j["reconnects"] == 0, j
        assert j["last_error"] is None, j
        assert j["host_key"] == node.host_fingerprint, j
        assert RFC3339.match(j["state_since"]), j
        assert d.node_info(name)["host_key"] == node.host_fingerprint
    r = d.sshtunctl("status")
    assert r.returncode == 0, r.stderr
    assert re.search(rf"\b{total}/{total}\b", r.stdout), r.stdout


def test_echo_round_trip_through_each_node(cluster):
    d = cluster.d
    for name, node in cluster.nodes.items():
        echo = cluster.echo[name]
        s = d.tunnel(node.addr, echo.port)
        data = os.urandom(64 * 1024)
        s.sendall(data)
        assert tl.recv_exactly(s, len(data)) == data, name
        # The echo server's peer is a process of this very node: the router
        # chose the node that owns the address.
        conn = echo.wait_connections(1)
        pids = conn.peer_pids()
        assert pids and all(tl.is_descendant(p, node.pid) for p in pids), \
            f"{name}: echo peer held by {pids}, not under {node.kind} {node.pid}"
        assert d.node_info(name)["streams"] == 1
        s.close()
        tl.wait_until(lambda: d.node_info(name)["streams"] == 0, 10, f"{name}'s stream to end")
        assert conn.closed.wait(10), f"{name}: the node-side connection stayed open"


@pytest.mark.alarm(300)
@pytest.mark.parametrize("name, size", [("n1", 64 << 20), ("n4", 8 << 20)])
def test_bytes_arrive_exactly(cluster, name, size):
    """size random bytes out and back through one node, compared by
    SHA-256; the sender's EOF ends the echo."""
    node = cluster.nodes[name] if name != "n4" else dropbear_or_skip(cluster)
    s = cluster.d.tunnel(node.addr, cluster.echo[name].port)
    tl.echo_exactly(s, size)
    s.close()


def test_client_half_close_reaches_the_target_and_back(cluster):
    node = cluster.nodes["n2"]
    echo = cluster.echo["n2"]
    s = cluster.d.tunnel(node.addr, echo.port)
    s.sendall(b"half-close from the client\n")
    s.shutdown(socket.SHUT_WR)
    assert tl.recv_until_eof(s, timeout=10) == b"half-close from the client\n"
    assert echo.wait_connections(1).eof.wait(10), "the target never saw the client's EOF"
    s.close()


def test_node_side_half_close_keeps_the_other_direction(cluster, env):
    node = cluster.nodes["n2"]
    srv = env.server(tl.HalfCloseServer, addr=node.addr)
    s = cluster.d.tunnel(node.addr, srv.port)
    s.sendall(b"ping\n")
    assert tl.recv_until_eof(s, timeout=10) == b"server done\n"
    # The target closed its side; the client's side still carries bytes.
    s.sendall(b"after the target's EOF\n")
    s.shutdown(socket.SHUT_WR)
    conn = srv.wait_connections(1)
    assert conn.eof.wait(10), "the target never saw the client's EOF"
    assert bytes(conn.received) == b"ping\nafter the target's EOF\n"
    s.close()


def test_curl_through_the_tcp_listener_by_pod_cidr(cluster):
    d, http = cluster.d, cluster.http
    url = f"http://{http.addr}:{http.port}/hello"
    r = subprocess.run(["curl", "-sS", "--fail", "--max-time", "20", "--noproxy", "",
                        "-p", "-x", f"http://{d.tcp_addr}:{d.tcp_port}", url],
                       capture_output=True, timeout=30, env=no_proxy_env())
    assert r.returncode == 0, r.stderr
    assert r.stdout == http.body
    path, _, pids = http.requests[-1]
    assert path == "/hello"
    n3 = cluster.nodes["n3"]
    assert pids and all(tl.is_descendant(p, n3.pid) for p in pids), \
        "the pod-CIDR target was not reached through the node owning the CIDR"


def test_socat_by_hand_through_the_unix_listener(cluster):
    """The head and the first tunnel bytes in one write: bytes after the
    head belong to the tunnel; socat's EOF is half-closed end to end."""
    node = dropbear_or_skip(cluster)
    echo = cluster.echo["n4"]
    payload = b"hello through dropbear\n"
    r = subprocess.run(["socat", "-t", "10", "-", f"UNIX-CONNECT:{cluster.d.proxy_sock}"],
                       input=tl.connect_request(node.addr, echo.port) + payload,
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout == tl.CONNECT_OK + payload


def test_socat_proxy_address_through_the_tcp_listener(cluster):
    """socat's PROXY: address speaks HTTP/1.0 CONNECT without a Host header."""
    d = cluster.d
    node = cluster.nodes["n1"]
    echo = cluster.echo["n1"]
    payload = b"hello through socat PROXY\n"
    r = subprocess.run(["socat", "-t", "10", "-",
                        f"PROXY:{d.tcp_addr}:{node.addr}:{echo.port},proxyport={d.tcp_port}"],
                       input=payload, capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout == payload


def test_many_streams_share_a_session(cluster):
    """32 tunnels at once through one node, each with its own bytes."""
    d = cluster.d
    node = cluster.nodes["n1"]
    echo = cluster.echo["n1"]
    socks = [d.tunnel(node.addr, echo.port) for _ in range(32)]
    assert d.node_info("n1")["streams"] == 32
    payloads = [os.urandom(4096 + i) for i in range(len(socks))]
    for s, p in zip(socks, payloads):
        s.sendall(p)
    for s, p in zip(socks, payloads):
        assert tl.recv_exactly(s, len(p)) == p
    for s in socks:
        s.close()
    tl.wait_until(lambda: d.node_info("n1")["streams"] == 0, 10, "the streams to end")


def test_a_hostname_target_goes_through_its_node(env):
    """The API server dials kubelets by node hostname: the name routes to
    its node, and the node resolves it (here "localhost", whose echo server
    sits on 127.0.0.1 for this one test)."""
    n1, n2 = env.sshd("n1"), env.sshd("n2")
    n2.config_extra["hostnames"] = ["localhost"]
    echo = env.server(tl.EchoServer, addr="127.0.0.1")
    d = env.sshtund([n1, n2])
    d.wait_all_up(30)
    s = d.tunnel("localhost", echo.port)
    s.sendall(b"by name")
    assert tl.recv_exactly(s, 7) == b"by name"
    pids = echo.wait_connections(1).peer_pids()
    assert pids and all(tl.is_descendant(p, n2.pid) for p in pids), \
        "the hostname was not routed to the node that lists it"
    s.close()
