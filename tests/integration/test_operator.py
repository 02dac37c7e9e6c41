# The operator's commands against a live daemon: `sshtunctl check` and each
# of its exit codes, drain with a stream in flight, reconnect, and
# `hostkeys scan` compared with what ssh-keygen says of the node's own key.

import os
import re
import subprocess
import time

import pytest

import sshtund_testlib as tl

CHECK_LINE = re.compile(r"^SSHTUND (OK|WARNING|CRITICAL|UNKNOWN) - [^\n|]+( \| [^\n]*)?\n$")


def check(d, **kw):
    r = d.sshtunctl("check", **kw)
    assert CHECK_LINE.match(r.stdout), f"not one plugin line: {r.stdout!r} (stderr {r.stderr!r})"
    return r


def echo_roundtrip(s, data):
    s.sendall(data)
    assert tl.recv_exactly(s, len(data), 10.0) == data


# --- check ---------------------------------------------------------------------

@pytest.mark.alarm(90)
def test_check_exit_codes(env):
    n1, n2, n3 = env.sshd("n1"), env.sshd("n2"), env.sshd("n3")
    d = env.sshtund([n1, n2, n3])
    d.wait_all_up(30)

    r = check(d)
    assert r.returncode == 0, r
    assert r.stdout.startswith("SSHTUND OK - 3/3 nodes up, 0 streams"), r.stdout
    assert "nodes_up=3;;;0;3" in r.stdout

    # draining: still carrying what it has, so a warning
    assert d.sshtunctl("drain", "n2").returncode == 0
    r = check(d)
    assert r.returncode == 1, r
    assert r.stdout.startswith("SSHTUND WARNING - 2/3 nodes up; draining: n2"), r.stdout

    # a node down outranks it
    n3.kill()
    d.wait_state("n3", lambda s: s not in ("up", "draining", "degraded"), 20)
    r = check(d)
    assert r.returncode == 2, r
    assert r.stdout.startswith("SSHTUND CRITICAL - 1/3 nodes up; down: n3 ("), r.stdout
    assert "draining: n2" in r.stdout

    # back to all up
    n3.start()
    assert d.sshtunctl("undrain", "n2").returncode == 0
    assert d.sshtunctl("reconnect", "n3").returncode == 0
    d.wait_all_up(20)
    assert check(d).returncode == 0

    # no daemon: UNKNOWN on stdout, where the monitoring system looks
    d.stop()
    r = check(d)
    assert r.returncode == 3, r
    assert r.stdout.startswith("SSHTUND UNKNOWN - cannot connect to "), r.stdout
    assert d.admin_sock in r.stdout


def test_check_degraded_warns_and_the_table_shows_the_probe(env):
    n1 = env.sshd("n1")
    kubelet = env.server(tl.EchoServer, addr=n1.addr)  # a TCP probe only connects
    probe = {"type": "tcp", "interval": 0.5, "timeout": 1.0}
    ok = env.sshtund([n1], name="ok", probe={**probe, "target": f"{kubelet.addr}:{kubelet.port}"})
    closed = tl.free_port(n1.addr)
    bad = env.sshtund([n1], name="bad", probe={**probe, "target": f"{n1.addr}:{closed}"})

    ok.wait_all_up(30)
    tl.wait_until(lambda: ok.node_info("n1")["probe"], 10, "a probe result")
    j = ok.node_info("n1")
    assert j["probe"]["ok"] is True and j["probe"]["error"] is None, j
    assert isinstance(j["probe"]["latency_ms"], (int, float)) and j["probe"]["at"], j
    row = [ln for ln in ok.sshtunctl("nodes").stdout.splitlines() if ln.startswith("n1 ")][0]
    assert re.search(r"\bok [0-9.]+ms\b", row), row
    assert check(ok).returncode == 0

    j = bad.wait_state("n1", "degraded", 20)
    assert j["probe"]["ok"] is False and j["probe"]["error"], j
    r = check(bad)
    assert r.returncode == 1, r
    assert r.stdout.startswith("SSHTUND WARNING - 0/1 nodes up; degraded: n1"), r.stdout
    row = [ln for ln in bad.sshtunctl("nodes").stdout.splitlines() if ln.startswith("n1 ")][0]
    assert re.search(r"\bdegraded\b.*\bfail\b.*probe: ", row), row


def test_check_refusal_is_critical(env):
    n1, n2 = env.sshd("n1"), env.sshd("n2")
    d = env.sshtund([n1, n2], known_hosts=[n1.known_hosts_line()])
    d.wait_state("n1", "up", 20)
    d.wait_state("n2", "hostkey-unknown", 20)
    r = check(d)
    assert r.returncode == 2, r
    assert "down: n2 (hostkey-unknown)" in r.stdout, r.stdout


def test_check_without_nodes_warns(env):
    d = env.sshtund([])
    r = check(d)
    assert r.returncode == 1, r
    assert r.stdout.startswith("SSHTUND WARNING - no nodes configured"), r.stdout


def test_check_unknown_on_a_missing_socket(env):
    r = subprocess.run([tl.require_binary(tl.sshtunctl_binary()), "-s",
                        os.path.join(env.dir, "nothing.sock"), "check"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 3, r
    assert CHECK_LINE.match(r.stdout) and r.stdout.startswith("SSHTUND UNKNOWN - "), r.stdout


# --- drain, undrain, reconnect ----------------------------------------------------

@pytest.mark.alarm(90)
def test_drain_lets_open_streams_finish_and_refuses_new_ones(env):
    n1, n2 = env.sshd("n1"), env.sshd("n2")
    e1 = env.server(tl.EchoServer, addr=n1.addr)
    d = env.sshtund([n1, n2])
    d.wait_all_up(30)

    s = d.tunnel(n1.addr, e1.port)
    echo_roundtrip(s, b"before the drain")

    r = d.sshtunctl("drain", "n1")
    assert r.returncode == 0, r
    assert r.stdout == "n1: draining, 1 stream left\n", r.stdout
    j = d.node_info("n1")
    assert j["state"] == "draining" and j["draining"] is True and j["streams"] == 1, j

    # the open stream carries on
    for i in range(20):
        echo_roundtrip(s, b"still flowing %d" % i)

    # a new one is refused, not carried by n2 though n2 is up: n1 owns the target
    r = d.connect(n1.addr, e1.port)
    assert r.status == 503, r
    assert b"draining" in r.body, r
    assert len(e1.conns) == 1

    st = d.sshtunctl("status")
    row = [ln for ln in st.stdout.splitlines() if ln.startswith("n1 ")]
    assert row and re.search(r"\bdraining\b", row[0]), st.stdout
    assert "1 draining" in st.stdout.splitlines()[0], st.stdout

    # the stream ends when its client is done, and the node stays drained
    s.shutdown(2)
    s.close()
    tl.wait_until(lambda: d.node_info("n1")["streams"] == 0, 10, "the drained stream to end")
    assert d.node_info("n1")["state"] == "draining"

    r = d.sshtunctl("undrain", "n1")
    assert r.returncode == 0, r
    assert r.stdout == "n1: undrained, now up\n", r.stdout
    j = d.node_info("n1")
    assert j["state"] == "up" and j["draining"] is False, j
    s2 = d.tunnel(n1.addr, e1.port)
    echo_roundtrip(s2, b"after the undrain")
    s2.close()


def test_node_actions_over_the_api(env):
    n1 = env.sshd("n1")
    d = env.sshtund([n1])
    d.wait_all_up(30)
    status, _, body = d.admin_request("POST", "/v1/nodes/n1/drain")
    assert status == 200, body
    status, headers, _ = d.admin_request("GET", "/v1/nodes/n1/drain")
    assert status == 405 and headers.get("allow") == "POST"
    status, _, body = d.admin_request("POST", "/v1/nodes/nope/drain")
    assert status == 404, body
    r = d.sshtunctl("drain", "nope")
    assert r.returncode == 1 and "no such node: nope" in r.stderr, r
    r = d.sshtunctl("-o", "json", "undrain", "n1")
    assert r.returncode == 0, r
    assert '"draining": false' in r.stdout


@pytest.mark.alarm(90)
def test_reconnect_replaces_the_session_at_once(env):
    n1 = env.sshd("n1")
    d = env.sshtund([n1])
    d.wait_all_up(30)
    before = {pid for pid, _ in n1.children()}
    assert before, "no sshd child for the session"

    t0 = time.monotonic()
    r = d.sshtunctl("reconnect", "n1")
    assert r.returncode == 0, r
    assert r.stdout.startswith("n1: reconnecting, now "), r.stdout
    d.wait_state("n1", "up", 10)
    took = time.monotonic() - t0
    # no backoff delay: a fresh session right away
    assert took < 3.0, took
    tl.wait_until(lambda: {p for p, _ in n1.children()} - before, 10, "a new sshd child")
    tl.wait_until(lambda: not ({p for p, _ in n1.children()} & before), 10, "the old child to go")


# --- hostkeys scan ----------------------------------------------------------------

def keygen_l(path):
    """`ssh-keygen -l` of a file, as it prints it."""
    return subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", path], check=True,
                          capture_output=True, text=True, timeout=30).stdout.strip()


def keygen_type(path):
    """The key type word of a .pub file ("ssh-ed25519", ...)."""
    with open(path) as f:
        return f.read().split()[0]


def assert_scan_matches(env, d, node, target):
    accepted = node.log_text().count("Accepted")
    with open(d.known_hosts_path, "rb") as f:
        known = f.read()
    r = d.sshtunctl("hostkeys", "scan", target)
    assert r.returncode == 0, r
    # stdout is exactly the line known_hosts needs
    assert r.stdout == node.known_hosts_line() + "\n", (r.stdout, node.known_hosts_line())
    # ssh-keygen reads that line as the node's own key
    path = os.path.join(env.dir, f"scanned-{node.name}")
    with open(path, "w") as f:
        f.write(r.stdout)
    fp = tl.ssh_keygen_fingerprint(node.host_key + ".pub")
    assert keygen_l(path).split()[1] == fp, (keygen_l(path), fp)
    # stderr leads with "TARGET SHA256:... TYPE", what `hostkeys trust --from` reads
    first = r.stderr.splitlines()[0]
    assert first == f"{target} {fp} {keygen_type(node.host_key + '.pub')}", (first, fp)
    assert "ssh-keygen -lf /etc/ssh/ssh_host_" in r.stderr
    # nothing was authenticated, nothing written
    time.sleep(0.2)
    assert node.log_text().count("Accepted") == accepted, node.log_text()
    with open(d.known_hosts_path, "rb") as f:
        assert f.read() == known
    assert not os.path.exists(d.learned_hosts_path)
    return r


def test_scan_by_name_and_by_address(env):
    n1 = env.sshd("n1")
    n2 = env.sshd("n2", host_key_type="ecdsa")
    d = env.sshtund([n1, n2])
    d.wait_all_up(30)
    for node in (n1, n2):
        r = assert_scan_matches(env, d, node, node.name)
        assert "already trusted (%s)" % d.known_hosts_path in r.stderr, r.stderr
        assert_scan_matches(env, d, node, f"{node.addr}:{node.port}")
    assert "ssh_host_ecdsa_key.pub" in assert_scan_matches(env, d, n2, f"[{n2.addr}]:{n2.port}").stderr

    # the JSON reply, for scripts
    r = d.sshtunctl("-o", "json", "hostkeys", "scan", "n1")
    assert r.returncode == 0, r
    assert '"fingerprint": "%s"' % n1.host_fingerprint in r.stdout


def test_scan_dropbear(env):
    if not tl.is_root():
        pytest.skip("dropbear nodes need root")
    n1 = env.dropbear("n1")
    d = env.sshtund([n1])
    d.wait_all_up(30)
    r = d.sshtunctl("hostkeys", "scan", "n1")
    assert r.returncode == 0, r
    assert r.stdout == n1.known_hosts_line() + "\n"
    assert r.stderr.split()[1] == n1.host_fingerprint


@pytest.mark.alarm(60)
def test_bootstrap_with_scan_and_trust(env):
    """The README's first install: scan, compare, trust; the node comes up
    at once, without waiting 30-60 s for the slow retry of a refusal."""
    n1 = env.sshd("n1")
    d = env.sshtund([n1], known_hosts=[])
    d.wait_state("n1", "hostkey-unknown", 20)
    r = assert_scan_matches(env, d, n1, "n1")
    assert "sshtunctl hostkeys trust n1 SHA256:" in r.stderr, r.stderr
    fp = r.stderr.split()[1]
    t0 = time.monotonic()
    r = d.sshtunctl("hostkeys", "trust", "n1", fp)
    assert r.returncode == 0, r
    assert f"n1: trusted {keygen_type(n1.host_key + '.pub')} {fp}, recorded in {d.learned_hosts_path}" \
        in r.stdout, r.stdout
    d.wait_state("n1", "up", 10)
    assert time.monotonic() - t0 < 10
    with open(d.learned_hosts_path) as f:
        assert f.read() == n1.known_hosts_line() + "\n"
    with open(d.known_hosts_path) as f:
        assert f.read() == ""
    r = d.sshtunctl("hostkeys", "scan", "n1")
    assert "already trusted (%s)" % d.learned_hosts_path in r.stderr, r.stderr


def test_scan_of_a_changed_key_warns(env):
    n1 = env.sshd("n1")
    wrong = tl.ssh_keygen(os.path.join(env.dir, "wrong_host_key"), "ed25519")
    d = env.sshtund([n1], known_hosts=[n1.known_hosts_line(wrong)])
    d.wait_state("n1", "hostkey-mismatch", 20)
    r = d.sshtunctl("hostkeys", "scan", "n1")
    assert r.returncode == 0, r
    assert r.stdout == n1.known_hosts_line() + "\n"
    assert "WARNING" in r.stderr and "different key" in r.stderr, r.stderr


def test_scan_errors(env):
    n1 = env.sshd("n1")
    d = env.sshtund([n1])
    d.wait_all_up(30)
    closed = tl.free_port(n1.addr)
    r = d.sshtunctl("hostkeys", "scan", f"{n1.addr}:{closed}")
    assert r.returncode == 1, r
    assert r.stdout == ""
    assert re.search(r"refused", r.stderr, re.I), r.stderr

    r = d.sshtunctl("hostkeys", "scan", "not a host")
    assert r.returncode == 1, r
    assert "not a node name" in r.stderr, r.stderr

    # a banner that is not SSH
    banner = env.server(tl.BannerServer, addr=n1.addr, banner=b"HTTP/1.0 400 nope\r\n\r\n")
    r = d.sshtunctl("hostkeys", "scan", f"{n1.addr}:{banner.port}")
    assert r.returncode == 1, r
    assert r.stderr.strip(), r

    # the daemon still serves, and leaked nothing it would report at exit
    assert d.sshtunctl("hostkeys", "scan", "n1").returncode == 0
