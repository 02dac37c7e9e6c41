# What the journal hears of failing nodes, at the default level: the first
# failure of each node once, with its reason; the same reason again, never;
# a new reason, once more (with the attempts and the time since the first);
# the recovery, once (with how long and how many attempts). With 200 nodes
# refusing for many rounds of backoff (ssh.backoff_max shortened to 0.2 s
# so that the rounds take seconds), about 200 lines, not thousands.

import re
import socket
import time
from collections import Counter

import pytest

import sshtund_testlib as tl

N_NODES = 200
ROUNDS_SECONDS = 12.0


class RefusingNode:
    """A node entry whose address refuses every connection (nothing listens)."""

    def __init__(self, name):
        self.name = name
        self.addr = tl.loopback_address()
        self.port = tl.free_port(self.addr)

    def config_entry(self):
        return {"name": self.name, "address": self.addr, "port": self.port}

    def known_hosts_line(self):
        return f"[{self.addr}]:{self.port} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBAxDpbrYrnuOWfUt9E+vx6F2h/Ve60wChEbmxnZ2Ncn"


def node_lines(log, name):
    return [ln for ln in log.splitlines() if re.search(rf" sshtund: (?:\w+: )?{re.escape(name)}: ", ln)]


@pytest.mark.alarm(120)
def test_refusing_nodes_told_once(env):
    nodes = [RefusingNode(f"r{i:03d}") for i in range(N_NODES)]
    d = env.sshtund(nodes, debug=False, log={"level": "info"},
                    ssh={"backoff_max": 0.2, "max_handshakes": 256}, proxy={"max_clients": 64})
    t0 = time.monotonic()
    # many rounds of failures for every node
    tl.wait_until(lambda: all(n["state"] in ("backoff", "connecting") for n in d.nodes_info()), 20,
                  "every node failing")
    since = {n["name"]: n["state_since"] for n in d.nodes_info()}
    # (at least a second after 'since': rounds of 0.2 s backoff, however long the wait took)
    time.sleep(max(1.0, ROUNDS_SECONDS - (time.monotonic() - t0)))
    log = d.log_text()

    per_node = Counter()
    for n in nodes:
        lines = node_lines(log, n.name)
        per_node[n.name] = len(lines)
        assert len(lines) == 1, (n.name, lines)
        assert re.search(r" sshtund: warning: r\d+: cannot connect: connect to \S+: Connection refused$", lines[0]), lines
    total = sum(per_node.values())
    print(f"{N_NODES} nodes refusing for {ROUNDS_SECONDS:.0f} s (backoff_max 0.2 s): {total} node lines in the log")
    # and the nodes did try many times meanwhile: the quiet is not idleness
    info = d.nodes_info()
    assert all(n["reason"] == "connection refused" for n in info), info[:3]
    idle = [n for n in info if n["state_since"] == since[n["name"]]]
    assert not idle, f"{len(idle)} nodes stopped trying: {idle[:3]}"


@pytest.mark.alarm(120)
def test_reason_change_and_recovery(env):
    node = env.sshd("n1", start=False)
    d = env.sshtund([node], debug=False, log={"level": "info"}, ssh={"backoff_max": 0.2, "connect_timeout": 1.0})
    # refused for a while: one line
    tl.wait_until(lambda: "cannot connect" in d.log_text(), 10, "the first failure in the log")
    time.sleep(2)
    assert len(node_lines(d.log_text(), "n1")) == 1, d.log_text()

    # now something listens but never speaks SSH: a new reason (timed out)
    blackhole = socket.socket()
    blackhole.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blackhole.bind((node.addr, node.port))
    blackhole.listen(64)
    try:
        tl.wait_until(lambda: "still down, now:" in d.log_text(), 20, "the new reason in the log")
        line = [ln for ln in node_lines(d.log_text(), "n1") if "still down, now:" in ln][0]
        assert re.search(r"still down, now: no SSH session within connect_timeout .* \(\d+ attempts in \d+ s since "
                         r"the first failure\)$", line), line
    finally:
        blackhole.close()

    # the real sshd: up again, with the count and the time
    node.start()
    d.wait_state("n1", "up", timeout=20)
    lines = node_lines(d.log_text(), "n1")
    assert re.search(r" sshtund: n1: up again after [\d.]+ s and \d+ failed attempts \(host key SHA256:", lines[-1]), lines
    # between the black hole and sshd, a refusal may have come back: a
    # third reason, told once too
    assert 3 <= len(lines) <= 4, lines
    assert all("still down, now:" in ln for ln in lines[1:-1]), lines
    assert d.node_info("n1")["reason"] is None
