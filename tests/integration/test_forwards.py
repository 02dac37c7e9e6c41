# Static forwards (`forwards = (...)`, ssh -L style): a TCP or Unix listener
# per entry, each connection carried through one fixed node to one fixed
# target, byte for byte and with half-close; a dead node, a refused target
# or a hung open close the client's connection promptly and the log says
# why; `sshtund -t` checks forward entries.

import os
import resource
import socket
import stat
import subprocess
import threading
import time

import pytest

import sshtund_testlib as tl


def forwards_conf(*entries):
    """entries: (listen, node, target) → the `forwards = (...)` text."""
    return tl.render_config({"forwards": tuple(
        {"listen": listen, "node": node, "target": target} for listen, node, target in entries)})


def tcp_listen(env):
    addr = env.addr()
    return addr, tl.free_port(addr)


def start(env, nodes, entries, wait_up=True, **kw):
    d = env.sshtund(nodes, extra_conf=forwards_conf(*entries), **kw)
    if wait_up:
        d.wait_all_up(30)
    return d


def dial(addr_or_path, port=None, timeout=15.0):
    if port is None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(addr_or_path)
        return s
    return socket.create_connection((addr_or_path, port), timeout=timeout)


def assert_closed_promptly(s, limit=1.0):
    """The daemon closes the connection without a byte, within 'limit' s."""
    t0 = time.monotonic()
    s.settimeout(limit + 5)
    try:
        data = s.recv(1)
    except ConnectionResetError:
        data = b""
    elapsed = time.monotonic() - t0
    assert data == b"", f"got {data!r} instead of a close"
    assert elapsed < limit, f"closed after {elapsed:.3f} s"
    return elapsed


def assert_through(conn, node):
    pids = conn.peer_pids()
    assert pids and all(tl.is_descendant(p, node.pid) for p in pids), \
        f"the target's peer is held by {pids}, not by a child of {node.name}'s sshd ({node.pid})"


@pytest.fixture
def one(env):
    """Node n1 with an echo server on its address, and a TCP forward to it."""
    n1 = env.sshd("n1")
    echo = env.server(tl.EchoServer, addr=n1.addr)
    addr, port = tcp_listen(env)
    return n1, echo, addr, port


def test_tcp_forward_carries_socat(env, one):
    n1, echo, addr, port = one
    start(env, [n1], [(f"tcp:{addr}:{port}", "n1", tl.hostport(*echo.target))])
    payload = os.urandom(48 * 1024)
    r = subprocess.run(["socat", "-t", "10", "-", f"TCP:{addr}:{port}"], input=payload,
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout == payload
    conn = echo.wait_connections(1)
    assert conn.eof.wait(10), "socat's EOF did not reach the target"


@pytest.mark.alarm(180)
def test_tcp_forward_16_mib_byte_for_byte(env, one):
    n1, echo, addr, port = one
    d = start(env, [n1], [(f"tcp:{addr}:{port}", "n1", tl.hostport(*echo.target))])
    size = 16 << 20
    data = os.urandom(size)
    s = dial(addr, port)
    errors = []

    def sender():
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError as e:
            errors.append(e)

    t = threading.Thread(target=sender, daemon=True)
    t.start()
    got = tl.recv_until_eof(s, timeout=60)
    t.join(60)
    assert not errors, errors
    assert len(got) == size
    assert got == data, "the bytes came back different"
    s.close()
    tl.wait_until(lambda: d.node_info("n1")["streams"] == 0, 10, "the stream to end")


def test_unix_forward_carries_socat_and_is_removed_on_stop(env, one):
    n1, echo, _, _ = one
    path = os.path.join(env.dir, "fwd.sock")
    d = start(env, [n1], [(f"unix:{path}", "n1", tl.hostport(*echo.target))])
    st = os.stat(path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660, oct(st.st_mode)  # proxy.socket_mode's default
    payload = b"through a unix forward\n" * 100
    r = subprocess.run(["socat", "-t", "10", "-", f"UNIX-CONNECT:{path}"], input=payload,
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout == payload
    conn = echo.wait_connections(1)
    assert conn.eof.wait(10)
    assert d.stop() == 0
    assert not os.path.exists(path), "the forward's socket outlived the daemon"


def test_two_forwards_take_their_own_nodes(env):
    """One target outside the allowlist, reached by two forwards through two
    nodes: each connection comes out of its own node's sshd, and the front
    door still refuses that target (forwards bypass proxy.allow by design)."""
    n1, n2 = env.sshd("n1"), env.sshd("n2")
    echo = env.server(tl.EchoServer)  # on an address no node owns
    (a1, p1), (a2, p2) = tcp_listen(env), tcp_listen(env)
    target = tl.hostport(*echo.target)
    d = start(env, [n1, n2], [(f"tcp:{a1}:{p1}", "n1", target), (f"tcp:{a2}:{p2}", "n2", target)],
              proxy={"fallback": "none"})
    for i, (addr, port, node) in enumerate([(a1, p1, n1), (a2, p2, n2), (a1, p1, n1)]):
        s = dial(addr, port)
        msg = f"via {node.name} #{i}".encode()
        s.sendall(msg)
        assert tl.recv_exactly(s, len(msg)) == msg
        assert_through(echo.wait_connections(i + 1), node)
        s.close()
    r = d.connect(*echo.target)
    assert r.status == 403, r


def test_a_target_that_speaks_first_is_heard_at_once(env, one):
    """Unlike the front door, a forward has no dialer to protect: the banner
    arrives before the client says anything, as with ssh -L."""
    n1 = one[0]
    banner = env.server(tl.BannerServer, addr=n1.addr, banner=b"SSH-2.0-banner\r\n")
    addr, port = one[2], one[3]
    start(env, [n1], [(f"tcp:{addr}:{port}", "n1", tl.hostport(*banner.target))])
    s = dial(addr, port)
    assert tl.recv_exactly(s, 16, timeout=10) == b"SSH-2.0-banner\r\n"
    s.sendall(b"and then echo")
    assert tl.recv_exactly(s, 13) == b"and then echo"
    s.close()


def test_half_close_both_ways(env, one):
    n1, echo, addr, port = one
    srv = env.server(tl.HalfCloseServer, addr=n1.addr)
    a2, p2 = tcp_listen(env)
    start(env, [n1], [(f"tcp:{addr}:{port}", "n1", tl.hostport(*echo.target)),
                      (f"tcp:{a2}:{p2}", "n1", tl.hostport(*srv.target))])
    # The client closes first: its EOF reaches the target, the echo comes back.
    s = dial(addr, port)
    s.sendall(b"half-close from the client\n")
    s.shutdown(socket.SHUT_WR)
    assert tl.recv_until_eof(s, timeout=10) == b"half-close from the client\n"
    assert echo.wait_connections(1).eof.wait(10), "the target never saw the client's EOF"
    s.close()
    # The target closes first: the client still talks afterwards.
    s = dial(a2, p2)
    s.sendall(b"ping\n")
    assert tl.recv_until_eof(s, timeout=10) == b"server done\n"
    s.sendall(b"after the target's EOF\n")
    s.shutdown(socket.SHUT_WR)
    conn = srv.wait_connections(1)
    assert conn.eof.wait(10), "the target never saw the client's EOF"
    assert bytes(conn.received) == b"ping\nafter the target's EOF\n"
    s.close()


def test_node_down_closes_promptly_and_logs_the_forward(env):
    n1, n2 = env.sshd("n1"), env.sshd("n2")
    echo = env.server(tl.EchoServer, addr=n1.addr)
    addr, port = tcp_listen(env)
    d = start(env, [n1, n2], [(f"tcp:{addr}:{port}", "n1", tl.hostport(*echo.target))])
    n1.kill()
    d.wait_state("n1", lambda s: s != "up", timeout=10)
    s = dial(addr, port)
    assert_closed_promptly(s, 1.0)
    s.close()
    # No fallback: n2 was ready and took nothing.
    assert echo.conns == []
    assert d.node_info("n2")["streams"] == 0
    tl.wait_until(lambda: f"forwards[0] (tcp:{addr}:{port})" in d.log_text(), 5,
                  "the log line naming the forward")
    line = [ln for ln in d.log_text().splitlines() if f"forwards[0] (tcp:{addr}:{port})" in ln
            and "closed" in ln][-1]
    assert "n1" in line and "not ready" in line, line


def test_refused_target_closes_promptly(env, one):
    n1, echo, addr, port = one
    dead = tl.free_port(n1.addr)
    d = start(env, [n1], [(f"tcp:{addr}:{port}", "n1", f"{n1.addr}:{dead}")])
    s = dial(addr, port)
    assert_closed_promptly(s, 1.0)
    s.close()
    assert d.node_info("n1")["state"] == "up", "a refused target is not a dead node"
    tl.wait_until(lambda: "could not open the target" in d.log_text(), 5, "the reason in the log")


def test_hung_node_closes_at_open_timeout(env):
    n1, n2 = env.sshd("n1"), env.sshd("n2")
    echo = env.server(tl.EchoServer, addr=n1.addr)
    addr, port = tcp_listen(env)
    d = start(env, [n1, n2], [(f"tcp:{addr}:{port}", "n1", tl.hostport(*echo.target))],
              proxy={"open_timeout": 1.0})
    # Liveness at its defaults (5 s x 3) keeps the frozen node "up".
    n1.freeze()
    s = dial(addr, port)
    t0 = time.monotonic()
    s.settimeout(10)
    assert s.recv(1) == b""
    elapsed = time.monotonic() - t0
    assert 0.9 <= elapsed < 3.0, f"closed after {elapsed:.2f} s with open_timeout = 1"
    s.close()
    n1.thaw()
    assert "proxy.open_timeout" in d.log_text()


def test_client_leaving_during_the_open_drops_it(env):
    """A unix client that hangs up while its channel opens is dropped at
    once, not at open_timeout."""
    n1 = env.sshd("n1")
    echo = env.server(tl.EchoServer, addr=n1.addr)
    path = os.path.join(env.dir, "fwd.sock")
    d = start(env, [n1], [(f"unix:{path}", "n1", tl.hostport(*echo.target))],
              proxy={"open_timeout": 8.0})
    n1.freeze()
    s = dial(path)
    time.sleep(0.3)
    s.close()
    tl.wait_until(lambda: "left before the channel opened" in d.log_text(), 3,
                  "the daemon to drop the departed client")
    n1.thaw()
    # The session is fine afterwards and the forward still serves.
    s = dial(path)
    s.sendall(b"after")
    assert tl.recv_exactly(s, 5, timeout=20) == b"after"
    s.close()
    assert "open_timeout" not in d.log_text()


def _cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_out_of_descriptors_rests_instead_of_spinning(env):
    """With RLIMIT_NOFILE at the brim, a backlog of connections the daemon
    cannot accept must not spin the loop; accepting resumes once
    descriptors free up."""
    n1 = env.sshd("n1")
    echo = env.server(tl.EchoServer, addr=n1.addr)
    path = os.path.join(env.dir, "fwd.sock")
    d = start(env, [n1], [(f"unix:{path}", "n1", tl.hostport(*echo.target))])
    limit = _open_fds(d.pid) + 4
    soft, hard = resource.prlimit(d.pid, resource.RLIMIT_NOFILE)
    n1.freeze()  # opens stay pending: each held client keeps its descriptor
    try:
        resource.prlimit(d.pid, resource.RLIMIT_NOFILE, (limit, hard))
        socks = [dial(path) for _ in range(12)]
        tl.wait_until(lambda: "cannot accept connections" in d.log_text(), 5, "the EMFILE warning")
        cpu0 = _cpu_seconds(d.pid)
        time.sleep(2.0)
        used = _cpu_seconds(d.pid) - cpu0
        assert used < 0.5, f"the daemon used {used:.2f} s of CPU in 2 s while out of descriptors"
        # Room again: the connections still in the backlog are taken.
        resource.prlimit(d.pid, resource.RLIMIT_NOFILE, (soft, hard))
    finally:
        n1.thaw()
    for i, s in enumerate(socks):
        msg = f"client {i}".encode()
        s.sendall(msg)
        assert tl.recv_exactly(s, len(msg), timeout=30) == msg
        s.close()


# --- sshtund -t ------------------------------------------------------------------

def check_file(env, text):
    kh = os.path.join(env.dir, "known_hosts")
    open(kh, "w").close()
    path = os.path.join(env.dir, "check.conf")
    with open(path, "w") as f:
        f.write(f'ssh = {{ identity = "{env.client_key}"; known_hosts = "{kh}"; }};\n'
                f'proxy = {{ listen = [ "unix:{env.dir}/proxy.sock" ]; }};\n'
                f'admin = {{ socket = "{env.dir}/admin.sock"; }};\n'
                'probe = { type = "none"; };\n'
                'nodes = ( { name = "n1"; address = "127.0.0.1"; } );\n' + text)
    r = subprocess.run([tl.require_binary(tl.sshtund_binary()), "-t", "-c", path],
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    return path, r


def test_config_check_accepts_forwards(env):
    path, r = check_file(env, forwards_conf(
        ("tcp:127.0.0.1:10001", "n1", "127.0.0.1:10250"),
        (f"unix:{env.dir}/f.sock", "n1", "[::1]:22"),
        ("tcp:[::1]:10002", "n1", "kubelet.example:10250")))
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(f"{env.dir}/f.sock"), "sshtund -t bound a forward"


def test_config_check_refuses_a_forward_to_an_unknown_node(env):
    path, r = check_file(env, 'forwards = (\n'
                              '  { listen = "tcp:127.0.0.1:10001";\n'
                              '    node = "n9"; target = "127.0.0.1:10250"; }\n'
                              ');\n')
    assert r.returncode == 78, f"exit {r.returncode}: {r.stderr!r}"
    # line 8: the file's preamble is five lines, the entry's node key is on the third
    assert f"{path}:8: forwards[0].node: " in r.stderr, r.stderr
    assert "n9" in r.stderr
