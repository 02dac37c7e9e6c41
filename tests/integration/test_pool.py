# Connection pools: ssh.pool_size sessions per node, opened in parallel; a
# new stream goes to the ready session with the fewest streams; at
# ssh.max_streams_per_session a session takes no more (503 when all are
# full); when one session dies only its streams end and the node stays up.

import os
import signal

import pytest

import sshtund_testlib as tl


def peer_child(node, conn):
    """The node-side process (sshd child) that carried this target
    connection: the sshd process holding the connection's other end."""
    pids = set(conn.peer_pids())
    owners = pids & set(node.descendants())
    assert owners, f"no descendant of {node.name}'s sshd holds {conn.peer}"
    return min(owners)


def session_of(node, pid):
    """The TCP peer port (sshtund's side of one SSH session) of the sshd
    connection process 'pid' or of its parent (privilege separation)."""
    ports = dict(node.children())
    seen = pid
    for _ in range(3):
        if seen in ports:
            return ports[seen]
        with open(f"/proc/{seen}/stat") as f:
            seen = int(f.read().rsplit(")", 1)[1].split()[1])
    raise AssertionError(f"pid {pid} holds no session of {node.name}")


def echo_ok(s, data=b"ping"):
    s.sendall(data)
    return tl.recv_exactly(s, len(data), timeout=10) == data


@pytest.mark.alarm(120)
def test_streams_spread_over_the_pool(env):
    n1 = env.sshd("n1")
    echo = env.server(tl.EchoServer, addr=n1.addr)
    d = env.sshtund([n1], ssh={"pool_size": 3})
    d.wait_all_up(30)
    j = tl.wait_until(lambda: (lambda x: x if x["sessions_up"] == 3 else None)(d.node_info("n1")),
                      20, "all three sessions up")
    assert j["sessions_total"] == 3, j
    assert len({port for _, port in n1.children()}) == 3

    socks = [d.tunnel(n1.addr, echo.port) for _ in range(6)]
    for s in socks:
        assert echo_ok(s)
    echo.wait_connections(6)
    sessions = [session_of(n1, peer_child(n1, c)) for c in echo.conns[:6]]
    # least-loaded first: six streams over three sessions is two each
    counts = sorted(sessions.count(p) for p in set(sessions))
    assert counts == [2, 2, 2], sessions
    assert d.node_info("n1")["streams"] == 6


@pytest.mark.alarm(120)
def test_full_sessions_answer_503_and_say_why(env):
    n1 = env.sshd("n1")
    echo = env.server(tl.EchoServer, addr=n1.addr)
    d = env.sshtund([n1], ssh={"pool_size": 2, "max_streams_per_session": 2})
    tl.wait_until(lambda: d.node_info("n1")["sessions_up"] == 2, 30, "two sessions up")

    socks = [d.tunnel(n1.addr, echo.port) for _ in range(4)]
    r = d.connect(n1.addr, echo.port)
    assert r.status == 503, r
    assert b"max_streams_per_session" in r.body, r.body
    assert "ssh.max_streams_per_session" in d.log_text()
    # a freed slot is usable again
    socks.pop().close()
    tl.wait_until(lambda: d.node_info("n1")["streams"] == 3, 10, "stream count back to 3")
    s = d.tunnel(n1.addr, echo.port)
    assert echo_ok(s)
    for s in socks:
        assert echo_ok(s)


@pytest.mark.alarm(150)
def test_one_dead_session_leaves_the_others_working(env):
    n1 = env.sshd("n1")
    echo = env.server(tl.EchoServer, addr=n1.addr)
    d = env.sshtund([n1], ssh={"pool_size": 3})
    tl.wait_until(lambda: d.node_info("n1")["sessions_up"] == 3, 30, "three sessions up")

    socks = [d.tunnel(n1.addr, echo.port) for _ in range(6)]
    for i, s in enumerate(socks):
        assert echo_ok(s, b"stream-%d;" % i)
    echo.wait_connections(6)
    by_session = {}
    for c in echo.conns[:6]:
        i = int(bytes(c.received).split(b";")[0].split(b"-")[1])
        by_session.setdefault(session_of(n1, peer_child(n1, c)), []).append(socks[i])
    victim_port, victims = next(iter(by_session.items()))
    survivors = [s for p, ss in by_session.items() if p != victim_port for s in ss]

    # kill every sshd process of that one connection (monitor and child)
    pids = [pid for pid, port in n1.children() if port == victim_port]
    assert pids
    for pid in pids:
        os.kill(pid, signal.SIGKILL)

    for s in victims:
        s.settimeout(10)
        try:
            assert s.recv(1) == b""
        except ConnectionResetError:
            pass
    # the node stayed up the whole time and the other streams still echo
    assert d.node_info("n1")["state"] == "up"
    for s in survivors:
        assert echo_ok(s, b"still here")
    s = d.tunnel(n1.addr, echo.port)
    assert echo_ok(s)
    j = tl.wait_until(lambda: (lambda x: x if x["sessions_up"] == 3 else None)(d.node_info("n1")),
                      70, "the lost session reconnected")
    assert j["reconnects"] >= 1, j
