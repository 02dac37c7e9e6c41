# The relay between a client socket and a channel: states where one side
# has finished and the other has not must cost nothing while they last.

import socket
import time

import pytest

import sshtund_testlib as tl


def cpu_over(pid, seconds):
    c0 = tl.cpu_seconds(pid)
    time.sleep(seconds)
    return tl.cpu_seconds(pid) - c0


@pytest.mark.alarm(90)
@pytest.mark.parametrize("via", ["unix", "tcp"])
def test_client_gone_while_the_target_stays_costs_no_cpu(env, via):
    """Regression: once the client had closed (epoll then reports HUP
    whatever we ask for) the relay kept its source on with no events and
    spun the loop until the node's EOF came, forever with a target that
    keeps its side open."""
    n1 = env.sshd("n1")
    hold = env.server(tl.HoldServer, addr=n1.addr)
    d = env.sshtund([n1])
    d.wait_all_up(30)

    socks = []
    for _ in range(4):
        s = d.tunnel(n1.addr, hold.port, via=via)
        s.sendall(b"bye")
        s.close()
        socks.append(s)
    for i in range(1, 5):
        conn = hold.wait_connections(i)
        assert conn.eof.wait(10), "the client's EOF never reached the target"
    assert d.node_info("n1")["streams"] == 4  # the target still holds them
    used = cpu_over(d.pid, 2.0)
    assert used < 0.3, f"sshtund used {used:.2f} s of CPU in 2 s with idle half-closed streams"


@pytest.mark.alarm(90)
def test_half_closed_client_still_hears_the_target(env):
    n1 = env.sshd("n1")
    hold = env.server(tl.HoldServer, addr=n1.addr)
    d = env.sshtund([n1])
    d.wait_all_up(30)

    s = d.tunnel(n1.addr, hold.port, via="tcp")
    s.sendall(b"question")
    s.shutdown(socket.SHUT_WR)
    conn = hold.wait_connections(1)
    assert conn.eof.wait(10)
    used = cpu_over(d.pid, 2.0)
    assert used < 0.3, f"sshtund used {used:.2f} s of CPU in 2 s"
    # the target's side is still open and reaches the client
    conn.sock.sendall(b"answer")
    assert tl.recv_exactly(s, 6, timeout=10) == b"answer"
    conn.sock.shutdown(socket.SHUT_WR)
    s.settimeout(10)
    assert s.recv(1) == b""


@pytest.mark.alarm(90)
def test_a_stream_cut_short_resets_a_tcp_client(env):
    """A stream whose far end fails must not look finished: a TCP client
    gets a reset, not an orderly EOF it could take for the end of the data."""
    n1 = env.sshd("n1")
    hold = env.server(tl.HoldServer, addr=n1.addr)
    d = env.sshtund([n1])
    d.wait_all_up(30)
    s = d.tunnel(n1.addr, hold.port, via="tcp")
    s.sendall(b"x")
    hold.wait_connections(1)
    n1.kill()  # the session, and every stream on it, dies
    s.settimeout(10)
    with pytest.raises(ConnectionResetError):
        while s.recv(4096):
            pass
