# The harness itself, without sshtund: the sshd and dropbear nodes carry
# OpenSSH's own `ssh -W` to the test servers, and the servers behave as the
# daemon tests assume. A failure here is the test bed, not the daemon.

import socket
import subprocess
import threading
import time

import pytest

import sshtund_testlib as tl


def test_sshd_node_carries_ssh_w_to_an_echo_server(env):
    node = env.sshd("n1")
    echo = env.server(tl.EchoServer)
    kh = env.known_hosts_file([node])
    data = tl.os.urandom(100_000)
    assert node.ssh_w(env.client_key, kh, *echo.target, data) == data
    assert "Accepted publickey for %s" % tl.login_user() in node.log_text()


def test_ecdsa_sshd_node_and_its_known_hosts_line(env):
    node = env.sshd("n1", host_key_type="ecdsa")
    assert node.host_pub.startswith("ecdsa-sha2-nistp256 ")
    line = node.known_hosts_line()
    assert line.startswith(f"[{node.addr}]:{node.port} ecdsa-sha2-nistp256 AAAA")
    assert node.host_fingerprint == tl.ssh_keygen_fingerprint(node.host_key + ".pub")
    echo = env.server(tl.EchoServer)
    assert node.ssh_w(env.client_key, env.known_hosts_file([node]), *echo.target, b"x\n") == b"x\n"


def test_dropbear_node_carries_ssh_w_without_touching_the_real_home(env):
    if not tl.is_root():
        pytest.skip("a dropbear node needs root (private mount namespace)")
    home = tl.pwd.getpwuid(tl.os.getuid()).pw_dir
    before = sorted(tl.os.listdir(home))
    node = env.dropbear("db1")
    echo = env.server(tl.EchoServer)
    data = tl.os.urandom(50_000)
    assert node.ssh_w(env.client_key, env.known_hosts_file([node]), *echo.target, data) == data
    assert "Pubkey auth succeeded" in node.log_text()
    assert sorted(tl.os.listdir(home)) == before


def test_node_children_freeze_kill_restart(env):
    node = env.sshd("n1")
    echo = env.server(tl.EchoServer)
    kh = env.known_hosts_file([node])
    argv = ["ssh", "-F", "/dev/null", "-i", env.client_key, "-o", "IdentitiesOnly=yes",
            "-o", f"UserKnownHostsFile={kh}", "-o", "BatchMode=yes", "-p", str(node.port),
            "-W", tl.hostport(*echo.target), f"{tl.login_user()}@{node.addr}"]
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        p.stdin.write(b"ping\n")
        p.stdin.flush()
        assert p.stdout.readline() == b"ping\n"
        kids = node.children()
        assert kids, "no per-connection sshd child found"
        # The echo server's peer is one of the node's processes.
        conn = echo.wait_connections(1)
        assert any(tl.is_descendant(pid, node.pid) for pid in conn.peer_pids())

        node.freeze()
        p.stdin.write(b"frozen\n")
        p.stdin.flush()
        got = []
        t = threading.Thread(target=lambda: got.append(p.stdout.readline()), daemon=True)
        t.start()
        t.join(1.0)
        assert not got, "a frozen node answered"
        node.thaw()
        t.join(5.0)
        assert got == [b"frozen\n"]
    finally:
        p.kill()
        p.wait(5)

    node.kill()
    assert not node.alive()
    with pytest.raises(OSError):
        socket.create_connection((node.addr, node.port), timeout=2).close()
    node.restart()
    assert node.ssh_w(env.client_key, kh, *echo.target, b"again\n") == b"again\n"


def test_echo_server_half_close():
    echo = tl.EchoServer(tl.loopback_address())
    try:
        s = socket.create_connection(echo.target, timeout=5)
        s.sendall(b"half")
        s.shutdown(socket.SHUT_WR)
        assert tl.recv_until_eof(s, timeout=5) == b"half"
        assert echo.wait_connections(1).eof.wait(5)
        s.close()
    finally:
        echo.close()


def test_chargen_stream_is_reproducible_and_stalls_without_a_reader():
    cg = tl.ChargenServer(tl.loopback_address(), size=64 << 20)
    try:
        s = socket.create_connection(cg.target, timeout=5)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        head = tl.recv_exactly(s, 3 << 20)
        assert head == cg.expected(0, 3 << 20)
        conn = cg.wait_connections(1)
        time.sleep(0.5)
        sent = conn.sent
        time.sleep(0.5)
        assert conn.sent == sent < 64 << 20, "chargen did not stall on a non-reading client"
        s.close()
    finally:
        cg.close()


def test_config_rendering():
    text = tl.render_config({"ssh": {"user": 'a"b', "keepalive_interval": 1.0, "port": 22},
                             "proxy": {"listen": ["unix:/x"]},
                             "nodes": ({"name": "n1", "port": 2},), "user": ""})
    assert 'user = "a\\"b";' in text
    assert "keepalive_interval = 1.0;" in text
    assert 'listen = [ "unix:/x" ];' in text
    assert '{ name = "n1"; port = 2; }' in text
    assert 'user = "";' in text
