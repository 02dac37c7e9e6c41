# The front door under load and at its limits: 500 concurrent streams
# carried byte for byte with nothing left over afterwards (stream counts,
# descriptors); proxy.max_clients holding new dials in the backlog; running
# out of descriptors without spinning; and a client too slow with its head
# cut at header_timeout while others are served.

import os
import re
import resource
import selectors
import socket
import threading
import time

import pytest

import sshtund_testlib as tl


def echo_ok(s, data):
    s.sendall(data)
    return tl.recv_exactly(s, len(data), timeout=15) == data


def no_reply_within(s, seconds):
    """True when nothing at all arrives on s for 'seconds'."""
    s.settimeout(seconds)
    try:
        data = s.recv(1)
    except socket.timeout:
        return True
    raise AssertionError(f"expected no reply yet, got {data!r}")


# --- 500 concurrent streams ------------------------------------------------------

class Stream:
    def __init__(self, sock, payload):
        self.sock = sock
        self.payload = payload
        self.head = bytearray()
        self.sent = 0
        self.got = bytearray()
        self.state = "head"  # head → wait (200 read) → data → done (echo compared)


def pump(streams, deadline):
    """Read every stream's reply head through one selector; each must be
    the exact 200 head. Returns when all are open."""
    sel = selectors.DefaultSelector()
    for st in streams:
        st.sock.setblocking(False)
        sel.register(st.sock, selectors.EVENT_READ, st)
    opened = 0
    while opened < len(streams):
        if time.monotonic() > deadline:
            raise AssertionError(f"only {opened} of {len(streams)} tunnels opened in time")
        for key, _ in sel.select(1.0):
            st = key.data
            data = st.sock.recv(4096)
            if not data:
                raise AssertionError(f"a tunnel closed before its reply: {bytes(st.head)!r}")
            st.head += data
            if st.head.endswith(b"\r\n\r\n"):
                assert bytes(st.head) == tl.CONNECT_OK, bytes(st.head)
                st.state = "wait"
                sel.unregister(st.sock)
                opened += 1
            elif len(st.head) > 4096:
                raise AssertionError(f"reply head too long: {bytes(st.head[:200])!r}")
    sel.close()
    return opened


def transfer(streams, deadline):
    sel = selectors.DefaultSelector()
    for st in streams:
        st.state = "data"
        sel.register(st.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, st)
    left = len(streams)
    while left:
        if time.monotonic() > deadline:
            done = sum(1 for st in streams if st.state == "done")
            raise AssertionError(f"only {done} of {len(streams)} streams echoed everything in time")
        for key, ev in sel.select(1.0):
            st = key.data
            if ev & selectors.EVENT_WRITE and st.sent < len(st.payload):
                try:
                    st.sent += st.sock.send(st.payload[st.sent:st.sent + 65536])
                except BlockingIOError:
                    pass
                if st.sent == len(st.payload):
                    sel.modify(st.sock, selectors.EVENT_READ, st)
            if ev & selectors.EVENT_READ:
                try:
                    data = st.sock.recv(65536)
                except BlockingIOError:
                    continue
                if not data:
                    raise AssertionError(f"a stream ended after {len(st.got)} of {len(st.payload)} bytes")
                st.got += data
                if len(st.got) >= len(st.payload):
                    assert bytes(st.got) == st.payload, "echoed bytes differ"
                    st.state = "done"
                    sel.unregister(st.sock)
                    left -= 1
    sel.close()


@pytest.mark.alarm(240)
def test_500_concurrent_streams_leave_nothing_behind(env):
    n_streams, size = 500, 64 * 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4 * n_streams:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8 * n_streams), hard))
    nodes = [env.sshd("n1"), env.sshd("n2")]
    echo = {n.name: env.server(tl.EchoServer, addr=n.addr) for n in nodes}
    for e in echo.values():
        e.sock.listen(1024)
    d = env.sshtund(nodes, ssh={"pool_size": 2}, proxy={"open_timeout": 60.0, "header_timeout": 60.0})
    d.wait_all_up(30)
    for n in nodes:
        tl.wait_until(lambda: d.node_info(n.name)["sessions_up"] == 2, 30, f"{n.name}'s two sessions")
    base_fds = tl.open_fds(d.pid)

    streams = []
    try:
        for i in range(n_streams):
            n = nodes[i % 2]
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(15)
            s.connect(d.proxy_sock)
            st = Stream(s, os.urandom(size))
            streams.append(st)
            s.sendall(tl.connect_request(n.addr, echo[n.name].port))
        deadline = time.monotonic() + 120
        pump(streams, deadline)
        # every stream is open at once, half on each node
        per_node = {n.name: d.node_info(n.name)["streams"] for n in nodes}
        assert per_node == {"n1": n_streams // 2, "n2": n_streams // 2}, per_node
        assert d.status()["streams"] == n_streams
        transfer(streams, deadline)
    finally:
        for st in streams:
            st.sock.close()

    tl.wait_until(lambda: all(d.node_info(n.name)["streams"] == 0 for n in nodes), 30,
                  "every node's stream count back to 0")
    assert d.status()["streams"] == 0
    tl.wait_fds_back(d.pid, base_fds)
    # and it still serves
    s = d.tunnel(nodes[0].addr, echo["n1"].port)
    assert echo_ok(s, b"after the crowd")
    s.close()


# --- proxy.max_clients ------------------------------------------------------------

@pytest.mark.alarm(120)
def test_max_clients_holds_new_dials_in_the_backlog(env):
    n1 = env.sshd("n1")
    echo = env.server(tl.EchoServer, addr=n1.addr)
    d = env.sshtund([n1], proxy={"max_clients": 10, "header_timeout": 60.0})
    d.wait_all_up(30)

    idle = [d.front_door() for _ in range(10)]
    time.sleep(0.3)  # let the daemon take them all
    s11 = d.front_door()  # the kernel completes the dial; the daemon does not accept it
    t0 = time.monotonic()
    s11.sendall(tl.connect_request(n1.addr, echo.port))
    assert no_reply_within(s11, 1.0)
    tl.wait_until(lambda: "proxy.max_clients" in d.log_text(), 5, "the log to name proxy.max_clients")
    # the TCP listener is held as well
    st = d.front_door(via="tcp")
    st.sendall(tl.connect_request(n1.addr, echo.port))
    assert no_reply_within(st, 0.5)
    assert echo.conns == []

    # one leaves: the 11th is taken and answered
    idle.pop().close()
    t1 = time.monotonic()
    r = d.read_reply(s11, t0, timeout=10)
    assert r.status == 200, r
    assert time.monotonic() - t1 < 3.0, "the held dial was taken late"
    assert echo_ok(r.sock, b"eleventh")
    # 9 idle + 1 tunnel: full again, tunnels count too, so the TCP dial still waits
    assert no_reply_within(st, 1.0)
    r.sock.close()
    r2 = d.read_reply(st, time.monotonic(), timeout=10)
    assert r2.status == 200, r2
    assert echo_ok(r2.sock, b"twelfth")
    r2.sock.close()
    for s in idle:
        s.close()
    # below the limit again: dials are answered at once
    socks = [d.tunnel(n1.addr, echo.port) for _ in range(5)]
    for i, s in enumerate(socks):
        assert echo_ok(s, b"later %d" % i)
        s.close()


# --- out of descriptors -----------------------------------------------------------

@pytest.mark.alarm(120)
def test_front_door_out_of_descriptors_rests_and_recovers(env):
    """With RLIMIT_NOFILE (soft and hard) a few above what the daemon holds,
    idle clients use up the descriptors: accept fails, the daemon must not
    spin, and once the clients go new CONNECTs are served again."""
    n1 = env.sshd("n1")
    echo = env.server(tl.EchoServer, addr=n1.addr)
    d = env.sshtund([n1], proxy={"header_timeout": 60.0})
    d.wait_all_up(30)
    limit = tl.open_fds(d.pid) + 6
    # both limits: the daemon could raise a soft limit back to the hard one
    resource.prlimit(d.pid, resource.RLIMIT_NOFILE, (limit, limit))

    extra = [d.front_door() for _ in range(20)]
    tl.wait_until(lambda: "cannot accept connections" in d.log_text(), 10, "the EMFILE warning")
    assert tl.open_fds(d.pid) <= limit
    cpu0 = tl.cpu_seconds(d.pid)
    time.sleep(2.0)
    used = tl.cpu_seconds(d.pid) - cpu0
    assert used < 0.5, f"the daemon used {used:.2f} s of CPU in 2 s while out of descriptors"

    for s in extra:
        s.close()
    d.sockets = [s for s in d.sockets if s not in extra]
    t0 = time.monotonic()
    r = d.connect(n1.addr, echo.port, timeout=10)
    assert r.status == 200, r
    assert time.monotonic() - t0 < 5.0, f"a new CONNECT took {time.monotonic() - t0:.2f} s"
    assert echo_ok(r.sock, b"room again")
    more = [d.tunnel(n1.addr, echo.port) for _ in range(3)]
    for i, s in enumerate(more):
        assert echo_ok(s, b"and more %d" % i)
    for s in more + [r.sock]:
        s.close()
    assert d.alive()


# --- out of descriptors for the nodes ----------------------------------------------

@pytest.mark.alarm(120)
def test_nodes_out_of_descriptors_said_once_and_survived(env):
    """With descriptors for only a few of its nodes, the daemon brings up
    what it can, says once that it is out of descriptors (not once per
    node: 5,000 nodes would be 5,000 warnings), and every node comes up
    once the limit allows."""
    nodes = [env.sshd(f"n{i}", start=False) for i in range(20)]
    d = env.sshtund(nodes, debug=False, log={"level": "info", "target": "stderr"}, ssh={"backoff_max": 2.0})
    tl.wait_until(lambda: d.log_text().count("cannot connect") >= len(nodes), 20, "every node refused")
    soft, hard = resource.prlimit(d.pid, resource.RLIMIT_NOFILE)
    resource.prlimit(d.pid, resource.RLIMIT_NOFILE, (tl.open_fds(d.pid) + 5, hard))  # a few sessions' worth
    for n in nodes:
        n.start()
    # every descriptor freed goes to a node's next try: the log says how it goes
    tl.wait_until(lambda: "Out of file descriptors" in d.log_text(), 20, "the warning")
    # the admin socket keeps a descriptor in reserve: the operator can still
    # ask, one connection at a time, while the nodes take every other one
    t_end = time.monotonic() + 4.0  # retries meanwhile, with backoff_max 2 s
    asked = 0
    while time.monotonic() < t_end:
        r = d.sshtunctl("status", timeout=10)
        assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
        assert "n0" in r.stdout
        asked += 1
        time.sleep(0.3)
    assert asked >= 5
    text = d.log_text()
    up = len(set(re.findall(r" (n\d+): up .*host key", text)))
    assert 0 < up < len(nodes), up
    assert d.alive()
    assert text.count("Out of file descriptors") == 1, text
    per_node = [ln for ln in text.splitlines() if "Too many open files" in ln
                and "Out of file descriptors" not in ln and "cannot accept connections" not in ln]
    assert not per_node, per_node[:3]

    resource.prlimit(d.pid, resource.RLIMIT_NOFILE, (soft, hard))
    d.wait_all_up(30)
    echo = env.server(tl.EchoServer, addr=nodes[-1].addr)
    s = d.tunnel(nodes[-1].addr, echo.port)
    assert echo_ok(s, b"room again")
    s.close()


# --- a client too slow with its head ------------------------------------------------

@pytest.mark.alarm(60)
def test_one_byte_per_second_is_cut_at_header_timeout(env):
    n1 = env.sshd("n1")
    echo = env.server(tl.EchoServer, addr=n1.addr)
    d = env.sshtund([n1], proxy={"header_timeout": 4.0})
    d.wait_all_up(30)

    slow = d.front_door()
    t0 = time.monotonic()
    request = tl.connect_request(n1.addr, echo.port)
    stop = threading.Event()

    def dribble():
        for b in request:
            if stop.wait(1.0):
                return
            try:
                slow.send(bytes([b]))
            except OSError:
                return

    t = threading.Thread(target=dribble, daemon=True)
    t.start()
    try:
        time.sleep(1.2)
        # meanwhile a normal client is served at once
        s = d.tunnel(n1.addr, echo.port, timeout=5)
        assert echo_ok(s, b"not held up by the slow one")
        s.close()
        assert time.monotonic() - t0 < 3.9, "the normal client was not served before the slow one's timeout"

        r = d.read_reply(slow, t0, timeout=10)
        assert r.status == 408, r
        assert r.closed
        assert 3.9 <= r.elapsed < 6.0, f"408 after {r.elapsed:.2f} s with header_timeout = 4"
    finally:
        stop.set()
        t.join(5)
    assert len(echo.conns) == 1, "the slow client's partial request reached a target"
