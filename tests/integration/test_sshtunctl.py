# sshtunctl against a live daemon: the status summary and table, JSON
# output, one node's details, and the exit codes (3 for an unreachable
# daemon, 64 for usage). check/drain/reconnect arrive with the next release.

import json
import os
import re
import subprocess

import pytest

import sshtund_testlib as tl


@pytest.fixture
def running(env):
    n1, n2 = env.sshd("n1"), env.sshd("n2")
    e1 = env.server(tl.EchoServer, addr=n1.addr)
    d = env.sshtund([n1, n2])
    d.wait_all_up(30)
    return d, n1, n2, e1


def ctl(d, *args, **kw):
    return d.sshtunctl(*args, **kw)


def test_status_summary_and_table(running):
    d, n1, n2, _ = running
    r = ctl(d, "status")
    assert r.returncode == 0, r.stderr
    assert re.search(r"\b2/2\b.*\bup\b", r.stdout, re.I), r.stdout
    lines = r.stdout.splitlines()
    header = [ln for ln in lines
              if re.search(r"\b(NODE|NAME)\b", ln) and re.search(r"\bSTATE\b", ln)]
    assert header, f"no table header with NODE and STATE:\n{r.stdout}"
    for node in (n1, n2):
        row = [ln for ln in lines if re.search(rf"^\s*{node.name}\s", ln)]
        assert row, f"no row for {node.name}:\n{r.stdout}"
        assert re.search(r"\bup\b", row[0]), row[0]
        assert node.addr in row[0], row[0]


def test_json_output_parses(running):
    d, n1, n2, _ = running
    r = ctl(d, "-o", "json", "status")
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    assert st["nodes_total"] == 2 and st["nodes_up"] == 2, st
    r = ctl(d, "-o", "json", "nodes")
    assert r.returncode == 0, r.stderr
    nodes = json.loads(r.stdout)
    nodes = nodes["nodes"] if isinstance(nodes, dict) else nodes
    assert sorted(n["name"] for n in nodes) == ["n1", "n2"]


def test_node_details(running):
    d, n1, _, _ = running
    r = ctl(d, "node", "n1")
    assert r.returncode == 0, r.stderr
    for want in ("n1", n1.addr, "up", n1.host_fingerprint):
        assert want in r.stdout, f"{want!r} missing:\n{r.stdout}"
    r = ctl(d, "-o", "json", "node", "n1")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    j = j.get("node", j)
    assert j["name"] == "n1" and j["state"] == "up" and j["host_key"] == n1.host_fingerprint


def test_unknown_node_is_an_error(running):
    d = running[0]
    r = ctl(d, "node", "no-such-node")
    assert r.returncode not in (0, 3, 64), (r.returncode, r.stdout, r.stderr)
    assert r.stderr.strip()


def test_socket_from_the_environment(running):
    d = running[0]
    env = dict(os.environ, SSHTUND_ADMIN_SOCKET=d.admin_sock)
    r = subprocess.run([tl.require_binary(tl.sshtunctl_binary()), "status"], capture_output=True,
                       text=True, timeout=30, env=env)
    assert r.returncode == 0, r.stderr
    assert "2/2" in r.stdout


@pytest.mark.parametrize("command", [["status"], ["nodes"], ["node", "n1"]])
def test_unreachable_daemon_exits_3(env, command):
    missing = os.path.join(env.dir, "no-such-admin.sock")
    r = subprocess.run([tl.require_binary(tl.sshtunctl_binary()), "-s", missing, *command],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 3, (r.returncode, r.stderr)
    assert r.stderr.strip()


@pytest.mark.parametrize("args", [["frobnicate"], ["-o", "xml", "status"], ["--bogus"]],
                         ids=["unknown-command", "bad-format", "bad-option"])
def test_usage_errors_exit_64(env, args):
    r = subprocess.run([tl.require_binary(tl.sshtunctl_binary()),
                        "-s", os.path.join(env.dir, "admin.sock"), *args],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 64, (r.returncode, r.stderr)
