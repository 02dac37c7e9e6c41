# sshtunctl against a live daemon: the status summary and table, its
# columns and colours, JSON output, one node's details, and the exit codes
# (3 for an unreachable daemon, 64 for usage); the table's short LAST ERROR
# (also from a stand-in admin socket sending what a daemon may send),
# --no-headers, -o name and --watch. The operator's commands (check, drain,
# reconnect, hostkeys scan) are in test_operator.py; the bash completion in
# test_completion.py.

import json
import os
import pty
import re
import signal
import socket
import socketserver
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler

import pytest

import sshtund_testlib as tl

# The most characters the table's LAST ERROR takes (src/table.h).
REASON_MAX = 40


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


def test_table_columns(running):
    d, n1, n2, _ = running
    r = ctl(d, "nodes")
    assert r.returncode == 0, r.stderr
    header = r.stdout.splitlines()[0].split()
    assert header == ["NODE", "ADDRESS", "STATE", "ROUTE", "SESSIONS", "STREAMS", "PROBE", "SINCE",
                      "LAST", "ERROR"], header
    row = [ln for ln in r.stdout.splitlines() if ln.startswith("n1 ")][0].split()
    # probes are off in the test config: no result yet
    assert row[2:5] == ["up", "ssh", "1/1"] and row[6] == "-", row

    r = ctl(d, "-o", "wide", "nodes")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert re.search(r"\bPROBE\s+SINCE\s+HOST KEY\s+RECONNECTS\s+LAST ERROR$", lines[0]), lines[0]
    row = [ln for ln in lines if ln.startswith("n1 ")][0]
    assert n1.host_fingerprint in row, row


def test_colour_only_on_a_terminal(running):
    d = running[0]
    plain = ctl(d, "status")
    assert "\033[" not in plain.stdout

    # the same command with a terminal as stdout
    leader, follower = pty.openpty()
    try:
        env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
        env["TERM"] = "xterm"
        p = subprocess.run([tl.require_binary(tl.sshtunctl_binary()), "-s", d.admin_sock, "status"],
                           stdout=follower, stderr=subprocess.PIPE, env=env, timeout=30)
        os.close(follower)
        follower = None
        out = read_pty(leader)
    finally:
        if follower is not None:
            os.close(follower)
        os.close(leader)
    assert p.returncode == 0, p.stderr
    assert b"\033[32mup\033[0m" in out, out


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


@pytest.mark.parametrize("command", [["status"], ["nodes"], ["node", "n1"], ["check"], ["drain", "n1"],
                                     ["undrain", "n1"], ["reconnect", "n1"], ["hostkeys", "scan", "n1"]])
def test_unreachable_daemon_exits_3(env, command):
    missing = os.path.join(env.dir, "no-such-admin.sock")
    r = subprocess.run([tl.require_binary(tl.sshtunctl_binary()), "-s", missing, *command],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 3, (r.returncode, r.stderr)
    if command == ["check"]:  # a monitoring plugin says it on stdout, in one line
        assert r.stdout.startswith("SSHTUND UNKNOWN - ") and r.stdout.count("\n") == 1, r.stdout
    else:
        assert r.stderr.strip() and not r.stdout


@pytest.mark.parametrize("args", [["frobnicate"], ["-o", "xml", "status"], ["--bogus"], ["drain"],
                                  ["drain", "a", "b"], ["hostkeys"], ["hostkeys", "frob"],
                                  ["hostkeys", "scan"], ["check", "extra"], ["-w", "check"],
                                  ["--watch", "node", "n1"], ["-w", "0", "status"], ["--watch=abc", "nodes"],
                                  ["-w", "1e9", "nodes"], ["-o", "name", "reload"],
                                  ["hostkeys", "trust", "n1"], ["hostkeys", "trust", "n1", "SHA256:bad"],
                                  ["hostkeys", "scan", "--unknown", "n1"], ["--unknown", "status"],
                                  ["hostkeys", "list", "a", "b"], ["hostkeys", "trust", "--from", "/nonexistent"]],
                         ids=["unknown-command", "bad-format", "bad-option", "drain-no-name",
                              "drain-two-names", "hostkeys-alone", "hostkeys-frob", "scan-no-target",
                              "check-extra", "watch-check", "watch-node", "watch-zero", "watch-not-a-number",
                              "watch-too-long", "name-reload", "trust-no-fingerprint", "trust-bad-fingerprint",
                              "scan-unknown-and-target", "unknown-not-hostkeys", "list-two", "trust-from-missing"])
def test_usage_errors_exit_64(env, args):
    r = subprocess.run([tl.require_binary(tl.sshtunctl_binary()),
                        "-s", os.path.join(env.dir, "admin.sock"), *args],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 64, (r.returncode, r.stderr)


# --- the LAST ERROR column: a short reason; the full text in wide and node ---

def last_error_cells(stdout):
    """The LAST ERROR column of a table: {node: cell}, the cell as printed."""
    lines = stdout.splitlines()
    header = [ln for ln in lines if ln.startswith("NODE ")][0]
    col = header.index("LAST ERROR")
    return {ln.split()[0]: ln[col:] for ln in lines[lines.index(header) + 1:] if ln.strip()}, col


def test_table_width_with_a_long_last_error(env):
    n1, n2, n3 = env.sshd("n1"), env.sshd("n2"), env.sshd("n3")
    # n2's key is unknown, n3 refuses connections (its sshd is gone)
    n3.stop()
    d = env.sshtund([n1, n2, n3], known_hosts=[n1.known_hosts_line(), n3.known_hosts_line()])
    d.wait_state("n1", "up", 20)
    d.wait_state("n2", "hostkey-unknown", 20)
    tl.wait_until(lambda: "Connection refused" in (d.node_info("n3")["last_error"] or ""), 20,
                  "n3's connection refused")
    long_error = d.node_info("n2")["last_error"]
    # what the table must not print: a sentence with its how-to hint
    assert len(long_error) > 150 and "sshtunctl hostkeys trust n2" in long_error, long_error

    r = ctl(d, "nodes")
    assert r.returncode == 0, r.stderr
    cells, col = last_error_cells(r.stdout)
    assert cells == {"n1": "-", "n2": "host key unknown", "n3": "connection refused"}, r.stdout
    for line in r.stdout.splitlines():
        # the reason never takes more than REASON_MAX columns past the
        # fixed ones, however long the daemon's text
        assert len(line) <= col + REASON_MAX, line
    assert "known_hosts" not in r.stdout and "hostkeys scan" not in r.stdout, r.stdout
    r = ctl(d, "status")
    assert r.returncode == 0, r.stderr
    assert last_error_cells(r.stdout)[0]["n2"] == "host key unknown", r.stdout

    # the whole text, with its hint, where there is room for it
    r = ctl(d, "-o", "wide", "nodes")
    assert r.returncode == 0, r.stderr
    assert long_error in r.stdout, r.stdout
    assert re.search(r"connect to \S+: Connection refused", r.stdout), r.stdout
    r = ctl(d, "node", "n2")
    assert r.returncode == 0, r.stderr
    assert re.search(r"^last_error:\s+" + re.escape(long_error) + "$", r.stdout, re.M), r.stdout


class FakeAdmin:
    """An admin socket that answers GET /v1/status and /v1/nodes with the
    node objects it is given: what a daemon may send (a "reason" member,
    200-character errors), without one to provoke it."""

    def __init__(self, path, nodes):
        fake = self
        self.path = path
        self.nodes = nodes

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                if self.path == "/v1/nodes":
                    body = {"nodes": fake.nodes}
                elif self.path == "/v1/status":
                    up = sum(n["state"] == "up" for n in fake.nodes)
                    body = {"version": "fake", "nodes_total": len(fake.nodes), "nodes_up": up,
                            "streams": 0, "states": {"up": up}}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.server = socketserver.ThreadingUnixStreamServer(path, Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        os.unlink(self.path)


def fake_node(name, state, last_error=None, **kw):
    n = {"name": name, "address": "10.0.0.11", "port": 22, "state": state, "route": "ssh",
         "sessions_up": 1 if state in ("up", "degraded") else 0, "sessions_total": 1, "streams": 0,
         "reconnects": 0, "last_error": last_error, "host_key": None, "probe": None,
         "state_since": "2026-01-01T00:00:00Z"}
    n.update(kw)
    return n


@pytest.fixture
def fake_admin(env):
    servers = []

    def make(nodes):
        s = FakeAdmin(os.path.join(env.dir, f"fake{len(servers)}.sock"), nodes)
        servers.append(s)
        return s
    yield make
    for s in servers:
        s.close()


def run_ctl(sock, *args, timeout=30, **kw):
    return subprocess.run([tl.require_binary(tl.sshtunctl_binary()), "-s", sock, *args],
                          capture_output=True, text=True, timeout=timeout, **kw)


def test_reason_from_the_daemon_or_derived(fake_admin):
    hint = ("host key ssh-ed25519 SHA256:" + "x" * 43 + " is not in /etc/sshtund/known_hosts (get its line "
            "with `sshtunctl hostkeys scan n2`, compare the fingerprint with ssh-keygen -lf on the node, "
            "then add the line)")
    odd = "y" * 200  # no phrase the client knows: cut as a last resort
    a = fake_admin([
        fake_node("n1", "up"),
        # a daemon that sends "reason": used as it comes
        fake_node("n2", "hostkey-unknown", hint, reason="unknown key (daemon)"),
        # one that sends an overlong one: still bounded
        fake_node("n3", "backoff", "whatever", reason="r" * 60),
        # none sent, or null: derived here
        fake_node("n4", "backoff", "connect to 10.0.0.14:22: Connection refused"),
        fake_node("n5", "backoff", "cannot resolve n5.example: Name or service not known", reason=None),
        fake_node("n6", "backoff", odd),
        fake_node("n7", "degraded", None, probe={"ok": False, "latency_ms": None, "at": None,
                                                 "error": "HTTP 500 Internal Server Error"}),
        fake_node("n8", "auth-failed", "public key authentication as \"sshtund\" refused (key x)"),
        # an empty one says nothing: derived too
        fake_node("n9", "backoff", "connection lost: Connection reset by peer", reason=""),
    ])
    r = run_ctl(a.path, "nodes")
    assert r.returncode == 0, r.stderr
    cells, col = last_error_cells(r.stdout)
    assert cells["n1"] == "-"
    assert cells["n2"] == "unknown key (daemon)"
    assert cells["n3"] == "r" * (REASON_MAX - 3) + "..."
    assert cells["n4"] == "connection refused"
    assert cells["n5"] == "DNS: name not found"
    assert cells["n6"] == "y" * (REASON_MAX - 3) + "..."
    assert cells["n7"] == "probe: HTTP 500 Internal Server Error"
    assert cells["n8"] == "auth refused"
    assert cells["n9"] == "connection reset"
    for line in r.stdout.splitlines():
        assert len(line) <= col + REASON_MAX, line

    # wide: the whole text
    r = run_ctl(a.path, "-o", "wide", "nodes")
    assert r.returncode == 0, r.stderr
    assert hint in r.stdout and odd in r.stdout, r.stdout


# --- --no-headers and -o name ---------------------------------------------------

def test_no_headers(running):
    d = running[0]
    r = ctl(d, "--no-headers", "nodes")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert [ln.split()[0] for ln in lines] == ["n1", "n2"], r.stdout
    assert "NODE" not in r.stdout and "LAST ERROR" not in r.stdout
    assert lines[0].split()[2] == "up", lines

    r = ctl(d, "status", "--no-headers")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert re.match(r"2/2 nodes up", lines[0]), r.stdout  # the summary stays
    assert "NODE" not in r.stdout and [ln.split()[0] for ln in lines[2:]] == ["n1", "n2"], r.stdout

    r = ctl(d, "--no-headers", "-o", "wide", "nodes")
    assert r.returncode == 0, r.stderr
    assert "HOST KEY" not in r.stdout and len(r.stdout.splitlines()) == 2, r.stdout

    r = ctl(d, "--no-headers", "migration")
    assert r.returncode == 0, r.stderr
    assert "ROUTE" not in r.stdout and re.search(r"^n1\s+ssh\s", r.stdout, re.M), r.stdout

    # with the header, for comparison
    r = ctl(d, "nodes")
    assert r.stdout.splitlines()[0].startswith("NODE "), r.stdout


def test_output_name(running):
    d = running[0]
    for command in (["nodes"], ["status"], ["migration"]):
        r = ctl(d, "-o", "name", *command)
        assert r.returncode == 0, r.stderr
        assert r.stdout == "n1\nn2\n", (command, r.stdout)
    r = ctl(d, "-o", "name", "node", "n2")
    assert r.returncode == 0 and r.stdout == "n2\n", (r.stdout, r.stderr)
    r = ctl(d, "-o", "name", "node", "nope")
    assert r.returncode == 1 and not r.stdout, (r.returncode, r.stdout)

    # what it is for: a shell loop over the nodes
    loop = ('for n in $("$CTL" -s "$SOCK" -o name nodes); do '
            '"$CTL" -s "$SOCK" -o json node "$n" | grep -c \'"state": "up"\'; done')
    r = subprocess.run(["sh", "-c", loop], capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, CTL=tl.sshtunctl_binary(), SOCK=d.admin_sock))
    assert r.returncode == 0 and r.stdout == "1\n1\n", (r.stdout, r.stderr)


# --- --watch --------------------------------------------------------------------

class Watch:
    """sshtunctl --watch with stdout a pipe, its lines collected as they come."""

    def __init__(self, sock, *args):
        self.proc = subprocess.Popen([tl.require_binary(tl.sshtunctl_binary()), "-s", sock, *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def count(self, pattern):
        return sum(bool(re.search(pattern, ln)) for ln in list(self.lines))

    def stop(self, sig=signal.SIGINT, timeout=5):
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        rc = self.proc.wait(timeout)
        took = time.monotonic() - t0
        self.reader.join(5)
        return rc, took

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_watch_through_a_pipe(running, sig):
    d = running[0]
    w = Watch(d.admin_sock, "-w", "0.5", "status")
    try:
        tl.wait_until(lambda: w.count(r"^2/2 nodes up") >= 3, 10, "three rounds")
        rc, _ = w.stop(sig)
    finally:
        w.kill()
    assert rc == 0, (rc, w.proc.stderr.read())
    text = "\n".join(w.lines)
    assert "\033[" not in text, text  # not a terminal: no redrawing
    # each round headed by its time, after a blank line
    heads = [i for i, ln in enumerate(w.lines) if ln.startswith("Every 0.5s: sshtunctl status")]
    assert len(heads) >= 3 and all(w.lines[i - 1] == "" for i in heads[1:]), text
    assert w.count(r"^n1\s.*\bup\b") >= 3 and w.count(r"^NODE\s") >= 3, text


def test_watch_keeps_trying_while_the_daemon_is_away(running):
    d = running[0]
    w = Watch(d.admin_sock, "--watch", "0.3", "nodes")
    try:
        tl.wait_until(lambda: w.count(r"^n2\s") >= 1, 10, "a first frame")
        d.stop()
        tl.wait_until(lambda: w.count(r"cannot connect to .*admin\.sock") >= 2, 10,
                      "frames that say the daemon is away")
        assert w.proc.poll() is None, "watch gave up"
        seen = len(w.lines)
        d.start()
        d.wait_all_up(30)
        tl.wait_until(lambda: any(re.match(r"n2\s.*\bup\b", ln) for ln in w.lines[seen:]), 10,
                      "the table back")
        rc, _ = w.stop()
    finally:
        w.kill()
    assert rc == 0


def test_watch_interrupt_does_not_wait_for_a_reply(env):
    # a socket that takes the connection and never answers: each round
    # waits for its 10 s deadline, but Ctrl-C ends the watch at once
    path = os.path.join(env.dir, "silent.sock")
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.bind(path)
    silent.listen(16)
    try:
        w = Watch(path, "-w", "1", "nodes")
        try:
            time.sleep(1.5)
            assert w.proc.poll() is None
            rc, took = w.stop(signal.SIGINT)
        finally:
            w.kill()
    finally:
        silent.close()
    assert rc == 0 and took < 2, (rc, took)


def read_pty(fd, limit=1 << 20):
    out = b""
    while len(out) < limit:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the other side is closed
            break
        if not chunk:
            break
        out += chunk
    return out


def test_watch_on_a_terminal_redraws_in_place(running):
    d = running[0]
    leader, follower = pty.openpty()
    out = []
    reader = threading.Thread(target=lambda: out.append(read_pty(leader)), daemon=True)
    try:
        env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
        env["TERM"] = "xterm"
        p = subprocess.Popen([tl.require_binary(tl.sshtunctl_binary()), "-s", d.admin_sock, "--watch=0.5",
                              "nodes"], stdout=follower, stderr=subprocess.PIPE, env=env)
        os.close(follower)
        follower = None
        reader.start()
        time.sleep(2.2)
        p.send_signal(signal.SIGINT)
        rc = p.wait(5)
        reader.join(5)
    finally:
        if follower is not None:
            os.close(follower)
        os.close(leader)
    data = out[0] if out else b""
    assert rc == 0, (rc, p.stderr.read())
    # the screen cleared once, then each frame drawn from the top left
    # corner over the last, with what is left of each line and of the
    # screen cleared
    assert data.startswith(b"\033[H\033[2J"), data[:200]
    frames = data.split(b"\033[H")[1:]
    assert len(frames) >= 3, data
    for f in frames:
        assert b"Every 0.5s: sshtunctl nodes" in f and b"\033[32mup\033[0m" in f, f
        assert f.endswith(b"\033[J"), f
        assert b"\033[K" in f
    assert data.count(b"\033[2J") == 1, data
