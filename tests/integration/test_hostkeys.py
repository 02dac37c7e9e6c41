# Host keys are checked before anything is sent: an unknown or changed key
# puts the node in hostkey-unknown / hostkey-mismatch with the fingerprint
# it saw, no authentication ever reaches that sshd, CONNECTs routed there get
# 503, and the other nodes carry on. accept-new records unknown keys only.

import os
import time

import pytest

import sshtund_testlib as tl

RETRY_BOUND = 75.0  # the slowest refusal retry (60 s) plus slack


@pytest.fixture
def mixed(env):
    """n1 known; n2 absent from known_hosts; n3 listed with another key."""
    n1, n2, n3 = env.sshd("n1"), env.sshd("n2"), env.sshd("n3")
    wrong = tl.ssh_keygen(os.path.join(env.dir, "wrong_host_key"), "ed25519")
    echo = {n.name: env.server(tl.EchoServer, addr=n.addr) for n in (n1, n2, n3)}
    return n1, n2, n3, wrong, echo


def assert_never_authenticated(node):
    log = node.log_text()
    assert "Accepted publickey" not in log, f"{node.name}'s sshd accepted a login:\n{log}"
    assert "Accepted" not in log


def test_unknown_and_changed_keys_are_refused(env, mixed):
    n1, n2, n3, wrong, echo = mixed
    d = env.sshtund([n1, n2, n3], known_hosts=[n1.known_hosts_line(), n3.known_hosts_line(wrong)])

    j2 = d.wait_state("n2", "hostkey-unknown", 20)
    fp2 = tl.ssh_keygen_fingerprint(n2.host_key + ".pub")
    assert fp2 in (j2["last_error"] or ""), j2
    assert j2["host_key"] == fp2, j2

    j3 = d.wait_state("n3", "hostkey-mismatch", 20)
    fp3 = tl.ssh_keygen_fingerprint(n3.host_key + ".pub")
    assert fp3 in (j3["last_error"] or ""), j3
    assert j3["host_key"] == fp3, j3
    assert tl.fingerprint(wrong) not in (j3["host_key"] or "")

    d.wait_state("n1", "up", 20)
    st = d.status()
    assert st["nodes_up"] == 1 and st["nodes_total"] == 3, st

    for node in (n2, n3):
        r = d.connect(node.addr, echo[node.name].port)
        assert r.status == 503, r
        assert echo[node.name].conns == []

    # Stays refused: watch for a while, across retries.
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        states = {n["name"]: n["state"] for n in d.nodes_info()}
        assert states["n2"] != "up" and states["n3"] != "up", states
        assert states["n1"] == "up", states
        time.sleep(0.1)

    assert_never_authenticated(n2)
    assert_never_authenticated(n3)
    s = d.tunnel(n1.addr, echo["n1"].port)
    s.sendall(b"n1 unaffected")
    assert tl.recv_exactly(s, 13) == b"n1 unaffected"


@pytest.mark.alarm(150)
def test_the_node_comes_up_once_its_key_is_known(env, mixed):
    """Refusals are retried slowly (30-60 s apart) and known_hosts is re-read
    when it changes: adding the key brings the node up at the next retry."""
    n1, n2, n3, wrong, echo = mixed
    d = env.sshtund([n1, n2], known_hosts=[n1.known_hosts_line()])
    d.wait_state("n2", "hostkey-unknown", 20)
    with open(d.known_hosts_path, "a") as f:
        f.write(n2.known_hosts_line() + "\n")
    d.wait_state("n2", "up", RETRY_BOUND)
    s = d.tunnel(n2.addr, echo["n2"].port)
    s.sendall(b"ok")
    assert tl.recv_exactly(s, 2) == b"ok"


def test_accept_new_records_unknown_keys_but_never_changed_ones(env, mixed):
    n1, n2, n3, wrong, echo = mixed
    d = env.sshtund([n1, n2, n3], ssh={"host_key_policy": "accept-new"},
                    known_hosts=[n1.known_hosts_line(), n3.known_hosts_line(wrong)])
    d.wait_state("n2", "up", 20)
    d.wait_state("n1", "up", 20)
    j3 = d.wait_state("n3", "hostkey-mismatch", 20)
    assert j3["host_key"] == n3.host_fingerprint
    # recorded in learned_hosts, known_hosts untouched
    with open(d.known_hosts_path) as f:
        assert f.read().splitlines() == [n1.known_hosts_line(), n3.known_hosts_line(wrong)]
    tl.wait_until(lambda: os.path.exists(d.learned_hosts_path), 5, "learned_hosts written")
    with open(d.learned_hosts_path) as f:
        lines = [ln.split() for ln in f.read().splitlines() if ln.strip()]
    # n2 alone: the changed key was not recorded over the old one
    assert [ln[0] for ln in lines] == [tl.known_hosts_name(n2.addr, n2.port)], lines
    assert lines[0][1:3] == n2.host_pub.split()[:2], lines
    assert_never_authenticated(n3)
    assert d.connect(n3.addr, echo["n3"].port).status == 503
