# Node health: a node whose sshd dies or hangs leaves `up` quickly (its
# streams end, CONNECTs get a fast 503), the other nodes are untouched, and
# the node comes back by itself once its sshd is back (backoff: full
# jitter, base 1 s, cap 60 s, hence the generous recovery bound).

import socket
import time

import pytest

import sshtund_testlib as tl

RECOVERY_BOUND = 70.0  # one full backoff cap (60 s) plus slack


def stream_ended(s, timeout):
    """True if the tunnel socket sees EOF or a reset within timeout."""
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


@pytest.fixture
def pair(env):
    n1, n2 = env.sshd("n1"), env.sshd("n2")
    e1, e2 = env.server(tl.EchoServer, addr=n1.addr), env.server(tl.EchoServer, addr=n2.addr)
    return n1, n2, e1, e2


def round_trip(d, node, echo, data=b"alive?"):
    s = d.tunnel(node.addr, echo.port)
    s.sendall(data)
    assert tl.recv_exactly(s, len(data)) == data
    s.close()


@pytest.mark.alarm(180)
def test_killed_node_fails_fast_and_comes_back(env, pair):
    n1, n2, e1, e2 = pair
    d = env.sshtund([n1, n2])
    d.wait_all_up(30)
    s = d.tunnel(n1.addr, e1.port)

    n1.kill()
    t0 = time.monotonic()
    j = d.wait_state("n1", lambda st: st != "up", timeout=10)
    assert time.monotonic() - t0 < 10
    assert isinstance(j["last_error"], str) and j["last_error"], j
    assert stream_ended(s, 10), "the stream through the dead node stayed open"
    r = d.connect(n1.addr, e1.port)
    assert r.status == 503, r
    assert r.elapsed < 1.0, f"503 took {r.elapsed:.3f} s"
    assert d.node_info("n2")["state"] == "up"
    round_trip(d, n2, e2)

    time.sleep(1.0)  # let a reconnect attempt or two fail
    assert d.node_info("n1")["state"] != "up"
    n1.restart()
    j = d.wait_state("n1", "up", timeout=RECOVERY_BOUND)
    assert j["reconnects"] >= 1, j
    round_trip(d, n1, e1)


@pytest.mark.alarm(180)
def test_hung_node_is_detected_by_liveness(env, pair):
    n1, n2, e1, e2 = pair
    interval, count = 1.0, 3
    d = env.sshtund([n1, n2], ssh={"keepalive_interval": interval, "keepalive_count": count})
    d.wait_all_up(30)

    # Liveness that answers must never mark a node down.
    before = {n["name"]: n for n in d.nodes_info()}
    time.sleep(interval * count + 2)
    after = {n["name"]: n for n in d.nodes_info()}
    for name in ("n1", "n2"):
        assert after[name]["state"] == "up", after[name]
        assert after[name]["state_since"] == before[name]["state_since"], (before[name], after[name])
        assert after[name]["reconnects"] == 0, after[name]

    s = d.tunnel(n1.addr, e1.port)
    n1.freeze()
    t0 = time.monotonic()
    while True:
        states = {n["name"]: n["state"] for n in d.nodes_info()}
        assert states["n2"] == "up", f"the healthy node left up: {states}"
        if states["n1"] != "up":
            break
        assert time.monotonic() - t0 < 10, "a hung node stayed up for 10 s " \
            f"(keepalive_interval {interval}, keepalive_count {count})"
        time.sleep(0.1)
    detected = time.monotonic() - t0
    assert detected >= interval, f"left up after {detected:.2f} s: too eager"
    assert stream_ended(s, 5), "the stream through the hung node stayed open"
    r = d.connect(n1.addr, e1.port)
    assert r.status == 503, r
    assert r.elapsed < 1.0, f"503 took {r.elapsed:.3f} s"
    round_trip(d, n2, e2)

    n1.thaw()
    d.wait_state("n1", "up", timeout=RECOVERY_BOUND)
    round_trip(d, n1, e1)
