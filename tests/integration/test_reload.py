# Reload (SIGHUP, sshtunctl reload, nodes_file changes): the difference is
# applied and nothing else moves. Unchanged nodes keep their sessions and
# streams, new nodes connect, removed ones drain, moved ones reconnect,
# listeners change without a gap, and a broken file changes nothing.

import os
import re
import shlex
import subprocess
import signal
import socket
import time

import pytest

import sshtund_testlib as tl


def echo_ok(s, data=b"still here"):
    s.sendall(data)
    return tl.recv_exactly(s, len(data), timeout=10) == data


def hup(d):
    os.kill(d.pid, signal.SIGHUP)


def wait_log(d, text, timeout=10):
    tl.wait_until(lambda: text in d.log_text(), timeout, f"{text!r} in the daemon log")


def node_names(d):
    return sorted(n["name"] for n in d.nodes_info())


def wait_node(d, name, state="up", timeout=20):
    """Wait for a node to appear (a reload adds it), then for its state."""
    tl.wait_until(lambda: name in node_names(d), timeout, f"node {name} in /v1/nodes")
    return d.wait_state(name, state, timeout)


def sshd_children(node):
    return {pid for pid, _ in node.children()}


@pytest.mark.alarm(150)
def test_add_remove_keep_on_sighup(env):
    n1, n2, n3 = env.sshd("n1"), env.sshd("n2"), env.sshd("n3")
    e1 = env.server(tl.EchoServer, addr=n1.addr)
    e2 = env.server(tl.EchoServer, addr=n2.addr)
    e3 = env.server(tl.EchoServer, addr=n3.addr)
    # known_hosts lists all three from the start: only the node list changes
    d = env.sshtund([n1, n2], known_hosts=[n.known_hosts_line() for n in (n1, n2, n3)])
    d.wait_all_up(30)

    s1 = d.tunnel(n1.addr, e1.port)
    assert echo_ok(s1)
    s2 = d.tunnel(n2.addr, e2.port)
    assert echo_ok(s2)
    children_before = sshd_children(n1)
    since_before = d.node_info("n1")["state_since"]

    d.sections["nodes"] = (n1.config_entry(), n3.config_entry())
    d.write_config()
    hup(d)
    wait_log(d, "Reloaded:")

    # n3 joins and carries streams
    wait_node(d, "n3")
    s3 = d.tunnel(n3.addr, e3.port)
    assert echo_ok(s3)
    # n1 was not touched: same sshd child, same stream, same state_since
    assert echo_ok(s1, b"across the reload")
    assert sshd_children(n1) == children_before
    assert d.node_info("n1")["state_since"] == since_before
    # n2 left the list at once, no new streams, but its open one finishes
    assert node_names(d) == ["n1", "n3"]
    r = d.connect(n2.addr, e2.port)
    assert r.status == 403, r  # not a node any more: outside "nodes"
    assert echo_ok(s2, b"draining but alive")
    s2.close()
    tl.wait_until(lambda: not sshd_children(n2), 10, "n2's session closed once its stream ended")
    assert "n2: removed: its last stream finished" in d.log_text()


@pytest.mark.alarm(150)
def test_broken_file_changes_nothing(env):
    n1 = env.sshd("n1")
    e1 = env.server(tl.EchoServer, addr=n1.addr)
    d = env.sshtund([n1])
    d.wait_all_up(30)
    s1 = d.tunnel(n1.addr, e1.port)

    good = open(d.config_path).read()
    with open(d.config_path, "w") as f:
        f.write(good + "proxy_typo = 1;\n")
    line = good.count("\n") + 1

    # sshtunctl reload reports it with file and line, exit 1
    p = d.sshtunctl("reload")
    assert p.returncode == 1, p
    assert f"{d.config_path}:{line}: proxy_typo: unknown key" in p.stderr, p.stderr
    # and SIGHUP logs it
    hup(d)
    wait_log(d, "Reload failed, the running configuration stays")
    assert d.node_info("n1")["state"] == "up"
    assert echo_ok(s1)
    s = d.tunnel(n1.addr, e1.port)
    assert echo_ok(s)

    # fixed again: reload works
    with open(d.config_path, "w") as f:
        f.write(good)
    p = d.sshtunctl("reload")
    assert p.returncode == 0, p
    assert "reloaded: 1 node" in p.stdout


def unit_exec_reload():
    """The built sshtund.service's ExecReload= command lines (programs
    mapped to the build tree) and its Environment= settings."""
    path = os.path.join(tl.BUILDDIR, "etc", "sshtund.service")
    if not os.path.exists(path):
        pytest.skip(f"{path} is not built")
    programs = {"sshtunctl": tl.sshtunctl_binary(), "sshtund": tl.sshtund_binary()}
    lines, environment = [], {}
    for line in open(path):
        key, _, value = line.strip().partition("=")
        if key == "ExecReload":
            argv = shlex.split(value)
            assert os.path.isabs(argv[0]), line
            argv[0] = programs[os.path.basename(argv[0])]
            lines.append(argv)
        elif key == "Environment":
            for word in shlex.split(value):
                k, _, v = word.partition("=")
                environment[k] = v
    return lines, environment


def run_exec_reload(d):
    """Runs the unit's ExecReload= lines in order as systemd does: the
    first failure fails the reload. Admin socket as a drop-in would set it."""
    lines, environment = unit_exec_reload()
    assert lines, "no ExecReload= in sshtund.service"
    env = {**os.environ, **environment, "SSHTUND_ADMIN_SOCKET": d.admin_sock}
    for argv in lines:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env,
                           stdin=subprocess.DEVNULL)
        if p.returncode != 0:
            return p
    return p


def test_unit_reload_waits_for_the_result(env):
    """systemctl reload runs ExecReload= and reports its exit status: it
    must fail, with the reason, when the daemon rejects the file, including
    a rejection `sshtund -t` cannot foresee (an address already bound)."""
    lines, environment = unit_exec_reload()
    # The unit names the admin socket sshtunctl and sshtund default to.
    assert environment.get("SSHTUND_ADMIN_SOCKET") == "/run/sshtund/admin.sock", environment
    assert not any(os.path.basename(a[0]) == "kill" for a in lines), lines

    n1 = env.sshd("n1")
    d = env.sshtund([n1])
    d.wait_all_up(30)
    good = open(d.config_path).read()

    p = run_exec_reload(d)
    assert p.returncode == 0, p
    assert "reloaded: 1 node" in p.stdout

    with open(d.config_path, "w") as f:
        f.write(good + "proxy_typo = 1;\n")
    line = good.count("\n") + 1
    p = run_exec_reload(d)
    assert p.returncode != 0, p
    assert f"{d.config_path}:{line}: proxy_typo: unknown key" in p.stderr, p.stderr

    blocker = socket.socket()
    blocker.bind((d.tcp_addr, 0))
    blocker.listen(1)
    busy = blocker.getsockname()
    try:
        with open(d.config_path, "w") as f:
            f.write(good)
        d.sections["proxy"]["listen"] = [f"unix:{d.proxy_sock}", f"tcp:{busy[0]}:{busy[1]}"]
        d.write_config()
        assert subprocess.run([tl.sshtund_binary(), "-t", "-c", d.config_path],
                              capture_output=True, timeout=30).returncode == 0
        p = run_exec_reload(d)
        assert p.returncode != 0, p
        assert re.search(r"proxy\.listen: cannot bind a new address: Address (already )?in use",
                         p.stderr), p.stderr
    finally:
        blocker.close()
    assert d.node_info("n1")["state"] == "up"
    wait_log(d, "Reload failed, the running configuration stays")


@pytest.mark.alarm(150)
def test_changed_address_reconnects(env):
    n1, n1b = env.sshd("n1"), env.sshd("n1b")
    e = env.server(tl.EchoServer, addr=n1b.addr)
    d = env.sshtund([n1], known_hosts=[n1.known_hosts_line(), n1b.known_hosts_line()])
    d.wait_all_up(30)
    assert sshd_children(n1b) == set()

    entry = dict(n1b.config_entry(), name="n1")  # same name, another machine
    d.sections["nodes"] = (entry,)
    d.write_config()
    p = d.sshtunctl("reload")
    assert p.returncode == 0, p
    tl.wait_until(lambda: d.node_info("n1")["address"] == n1b.addr and d.node_info("n1")["state"] == "up",
                  20, "n1 up at its new address")
    tl.wait_until(lambda: not sshd_children(n1), 10, "the old address's session closed")
    assert sshd_children(n1b)
    s = d.tunnel(n1b.addr, e.port)
    assert echo_ok(s)


@pytest.mark.alarm(150)
def test_listener_change_binds_before_it_closes(env):
    n1 = env.sshd("n1")
    e1 = env.server(tl.EchoServer, addr=n1.addr)
    d = env.sshtund([n1])
    d.wait_all_up(30)
    old_tcp = (d.tcp_addr, d.tcp_port)
    s = d.tunnel(n1.addr, e1.port, via="tcp")

    new_addr = tl.loopback_address()
    new_port = tl.free_port(new_addr)
    d.sections["proxy"]["listen"] = [f"unix:{d.proxy_sock}", f"tcp:{new_addr}:{new_port}"]
    d.write_config()
    p = d.sshtunctl("reload")
    assert p.returncode == 0, p

    # the new address serves, the old one is closed, the unix socket stayed
    c = socket.create_connection((new_addr, new_port), timeout=5)
    c.sendall(tl.connect_request(n1.addr, e1.port))
    assert tl.read_head(c).startswith(b"HTTP/1.1 200 ")
    c.close()
    with pytest.raises(OSError):
        socket.create_connection(old_tcp, timeout=2)
    assert echo_ok(d.tunnel(n1.addr, e1.port))
    # a stream accepted on the old listener is unaffected
    assert echo_ok(s)

    # an address that cannot be bound: the reload fails, nothing changes
    blocker = socket.socket()
    blocker.bind((new_addr, 0))
    blocker.listen(1)
    busy = blocker.getsockname()
    d.sections["proxy"]["listen"] = [f"unix:{d.proxy_sock}", f"tcp:{busy[0]}:{busy[1]}"]
    d.write_config()
    p = d.sshtunctl("reload")
    assert p.returncode == 1, p
    assert "cannot bind" in p.stderr, p.stderr
    c = socket.create_connection((new_addr, new_port), timeout=5)
    c.close()
    blocker.close()


@pytest.mark.alarm(150)
def test_nodes_file_replaced_by_rename_is_picked_up(env):
    n1, n2 = env.sshd("n1"), env.sshd("n2")
    e2 = env.server(tl.EchoServer, addr=n2.addr)
    nodes_dir = os.path.join(env.dir, "nodes.d")
    os.makedirs(nodes_dir)
    nodes_file = os.path.join(nodes_dir, "nodes.conf")

    def write_nodes(nodes):
        tmp = nodes_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(tl.render_config({"nodes": tuple(n.config_entry() for n in nodes)}))
        os.rename(tmp, nodes_file)  # as sshtund-sync-nodes does

    write_nodes([n1])
    d = env.sshtund([], known_hosts=[n1.known_hosts_line(), n2.known_hosts_line()],
                    top={"nodes_file": nodes_file})
    wait_node(d, "n1", timeout=30)
    children = sshd_children(n1)

    write_nodes([n1, n2])
    wait_node(d, "n2")
    assert echo_ok(d.tunnel(n2.addr, e2.port))
    assert sshd_children(n1) == children  # untouched
    assert "(node list)" in d.log_text()

    # a broken nodes_file changes nothing either
    with open(nodes_file + ".tmp", "w") as f:
        f.write("nodes = ( { name = ; } );\n")
    os.rename(nodes_file + ".tmp", nodes_file)
    wait_log(d, f"{nodes_file}:1:")
    assert node_names(d) == ["n1", "n2"]

    os.unlink(nodes_file)
    tl.wait_until(lambda: node_names(d) == [], 20, "the nodes gone with the file")


@pytest.mark.alarm(120)
def test_notify_protocol(env):
    """READY, STATUS, RELOADING, STOPPING and WATCHDOG, as systemd sees them
    on NOTIFY_SOCKET."""
    n1 = env.sshd("n1")
    path = os.path.join(env.dir, "notify.sock")
    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ns.bind(path)
    ns.settimeout(0.2)
    msgs = []

    def drain(until, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                msgs.append(ns.recv(4096).decode())
            except socket.timeout:
                pass
            if until():
                return
        raise AssertionError(f"notify messages so far: {msgs}")

    def seen(prefix):
        return any(line.startswith(prefix) for m in msgs for line in m.split("\n"))

    d = env.sshtund([n1], env_vars={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000"}, start=False)
    d.start()
    drain(lambda: seen("READY=1"), 30)
    # READY only once the node had its chance: it is up by then
    assert d.node_info("n1")["state"] == "up"
    drain(lambda: seen("STATUS="), 10)
    drain(lambda: sum(m.count("WATCHDOG=1") for m in msgs) >= 2, 5)
    assert any("1/1 nodes up" in m for m in msgs), msgs

    msgs.clear()
    hup(d)
    drain(lambda: seen("RELOADING=1") and seen("READY=1"), 10)
    msgs.clear()
    d.stop()
    drain(lambda: seen("STOPPING=1"), 5)


@pytest.mark.alarm(120)
def test_sigterm_lets_a_stream_finish(env):
    n1 = env.sshd("n1")
    e1 = env.server(tl.EchoServer, addr=n1.addr)
    d = env.sshtund([n1], top={"drain_timeout": 20.0})
    d.wait_all_up(30)
    s = d.tunnel(n1.addr, e1.port)
    assert echo_ok(s)

    os.kill(d.pid, signal.SIGTERM)
    wait_log(d, "Waiting up to 20.0 s (drain_timeout) for 1 streams to finish")
    # no new requests, but the stream in flight carries on
    with pytest.raises(OSError):
        d.connect(n1.addr, e1.port, timeout=2)
    for i in range(3):
        assert echo_ok(s, b"draining %d" % i)
        time.sleep(0.3)
    assert d.proc.poll() is None
    s.close()
    assert d.proc.wait(timeout=10) == 0
    assert "All streams finished" in d.log_text()


@pytest.mark.alarm(120)
def test_privileges_are_dropped(env):
    if not tl.is_root():
        pytest.skip("dropping privileges needs root")
    n1 = env.sshd("n1")
    e1 = env.server(tl.EchoServer, addr=n1.addr)
    # the key stays 0600 root: it is read before the drop
    d = env.sshtund([n1], top={"user": "nobody"})
    d.wait_all_up(30)
    status = open(f"/proc/{d.pid}/status").read()
    fields = {ln.split(":")[0]: ln.split(":")[1].split() for ln in status.splitlines() if ":" in ln}
    import pwd
    nobody = pwd.getpwnam("nobody")
    assert fields["Uid"] == [str(nobody.pw_uid)] * 4, fields["Uid"]
    assert fields["Gid"] == [str(nobody.pw_gid)] * 4, fields["Gid"]
    assert fields.get("Groups", []) == [str(nobody.pw_gid)], fields.get("Groups")
    assert "Running as user nobody" in d.log_text()
    assert oct(os.stat(d.admin_sock).st_mode & 0o777) == "0o600"
    assert os.stat(d.admin_sock).st_uid == nobody.pw_uid
    # it still works as nobody: sessions reconnect, streams flow
    s = d.tunnel(n1.addr, e1.port)
    assert echo_ok(s)


def test_world_readable_identity_is_refused_as_root(env):
    if not tl.is_root():
        pytest.skip("the refusal applies to root")
    n1 = env.sshd("n1")
    os.chmod(env.client_key, 0o644)
    try:
        d = env.sshtund([n1], start=False)
        import subprocess
        p = subprocess.run([tl.sshtund_binary(), "-c", d.config_path], capture_output=True, text=True,
                           timeout=20)
        assert p.returncode == 78, p
        assert "readable by everyone" in p.stderr, p.stderr
    finally:
        os.chmod(env.client_key, 0o600)
