# sshtunctl's bash completion (etc/bash-completion/sshtunctl), sourced in a
# bash of its own and asked as bash asks it (COMP_WORDS, COMP_CWORD): the
# commands, the options and their values, and the node names of a running
# daemon, reached through -s, --socket=, or $SSHTUND_ADMIN_SOCKET, within
# a bounded time when the daemon does not answer. And where make install
# puts it.

import os
import shlex
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

import sshtund_testlib as tl

COMPLETION = os.path.join(tl.SRCDIR, "etc", "bash-completion", "sshtunctl")
BASH = shutil.which("bash") or "/bin/bash"

COMMANDS = ["status", "nodes", "node", "check", "reload", "reconnect", "drain", "undrain", "migration",
            "hostkeys"]


def complete(*words, env=None, timeout=30):
    """What the completion offers for the command line 'words', the last
    one being the word under the cursor ("" for a new one)."""
    line = " ".join(words)
    script = f"""
source {shlex.quote(COMPLETION)} || exit 99
complete -p sshtunctl >/dev/null || exit 98
COMP_WORDS=({" ".join(shlex.quote(w) for w in words)})
COMP_CWORD={len(words) - 1}
COMP_LINE={shlex.quote(line)}
COMP_POINT={len(line)}
COMPREPLY=()
_sshtunctl sshtunctl {shlex.quote(words[-1])} {shlex.quote(words[-2] if len(words) > 1 else "")}
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    e = dict(env if env is not None else os.environ)
    # `sshtunctl` as the user types it: the one built here first on PATH
    e["PATH"] = os.path.dirname(tl.require_binary(tl.sshtunctl_binary())) + ":" + e.get("PATH", "/usr/bin:/bin")
    r = subprocess.run([BASH, "--norc", "--noprofile", "-c", script], capture_output=True, text=True,
                       timeout=timeout, env=e, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, (r.returncode, r.stderr)
    return sorted(w for w in r.stdout.split("\n") if w)


def env_without_socket():
    return {k: v for k, v in os.environ.items() if k != "SSHTUND_ADMIN_SOCKET"}


def test_commands_and_options():
    assert complete("sshtunctl", "") == sorted(COMMANDS)
    assert complete("sshtunctl", "re") == ["reconnect", "reload"]
    assert complete("sshtunctl", "-s", "/x", "-o", "json", "no") == ["node", "nodes"]
    opts = complete("sshtunctl", "--")
    for o in ("--socket", "--output", "--watch", "--no-headers", "--help", "--version"):
        assert o in opts, opts
    assert "-w" in complete("sshtunctl", "-") and "-o" in complete("sshtunctl", "-")
    # options after the command too, as getopt takes them
    assert "--no-headers" in complete("sshtunctl", "nodes", "--no")
    assert complete("sshtunctl", "hostkeys", "") == ["forget", "list", "scan", "trust"]
    # status takes no argument
    assert complete("sshtunctl", "status", "") == []


def test_option_values():
    assert complete("sshtunctl", "-o", "") == ["json", "name", "table", "wide"]
    assert complete("sshtunctl", "--output", "n") == ["name"]
    # "--output=w" reaches the function as "--output" "=" "w"
    assert complete("sshtunctl", "--output", "=", "w") == ["wide"]
    assert complete("sshtunctl", "--output", "=", "") == ["json", "name", "table", "wide"]
    # -w SECONDS: nothing to offer for the number, the commands after it
    assert complete("sshtunctl", "-w", "1") == []
    assert complete("sshtunctl", "-w", "2", "st") == ["status"]
    assert complete("sshtunctl", "--watch", "=", "2", "no") == ["node", "nodes"]


def test_socket_and_files_complete_as_paths():
    with tempfile.TemporaryDirectory(prefix="sshtund-compl-") as d:
        for name in ("admin.sock", "admin-other.sock", "nodes.keys"):
            open(os.path.join(d, name), "w").close()
        want = [os.path.join(d, "admin-other.sock"), os.path.join(d, "admin.sock")]
        assert complete("sshtunctl", "-s", os.path.join(d, "adm")) == want
        assert complete("sshtunctl", "--socket", os.path.join(d, "adm")) == want
        assert complete("sshtunctl", "--socket", "=", os.path.join(d, "adm")) == want
        assert complete("sshtunctl", "hostkeys", "trust", "--from", os.path.join(d, "no")) == \
            [os.path.join(d, "nodes.keys")]


@pytest.fixture
def daemon(env):
    nodes = [env.sshd(n) for n in ("alpha", "beta", "gamma")]
    d = env.sshtund(nodes)
    d.wait_all_up(30)
    return d


def test_node_names_from_the_daemon(daemon):
    sock, e = daemon.admin_sock, env_without_socket()
    names = ["alpha", "beta", "gamma"]
    for command in (["node"], ["reconnect"], ["drain"], ["undrain"], ["hostkeys", "scan"],
                    ["hostkeys", "trust"], ["hostkeys", "list"], ["hostkeys", "forget"]):
        assert complete("sshtunctl", "-s", sock, *command, "", env=e) == names, command
    assert complete("sshtunctl", "-s", sock, "drain", "b", env=e) == ["beta"]
    # the socket however it was given
    assert complete("sshtunctl", f"-s{sock}", "node", "", env=e) == names
    assert complete("sshtunctl", "--socket", "=", sock, "node", "g", env=e) == ["gamma"]
    assert complete("sshtunctl", "node", "", env=dict(e, SSHTUND_ADMIN_SOCKET=sock)) == names
    # -s wins over the environment
    assert complete("sshtunctl", "-s", sock, "node", "",
                    env=dict(e, SSHTUND_ADMIN_SOCKET="/nonexistent/admin.sock")) == names
    # one node name only, and trust's second argument is a fingerprint
    assert complete("sshtunctl", "-s", sock, "node", "alpha", "", env=e) == []
    assert complete("sshtunctl", "-s", sock, "hostkeys", "trust", "alpha", "", env=e) == []
    # options still complete where a node name could go
    assert "--from" in complete("sshtunctl", "-s", sock, "hostkeys", "trust", "--", env=e)


def test_no_daemon_no_names_and_no_wait(env):
    e = env_without_socket()
    missing = os.path.join(env.dir, "missing.sock")
    assert complete("sshtunctl", "-s", missing, "node", "", env=e) == []

    # a daemon that takes the connection and never answers: the completion
    # gives up after its own short timeout, not sshtunctl's 10 s
    path = os.path.join(env.dir, "silent.sock")
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.bind(path)
    silent.listen(16)
    try:
        t0 = time.monotonic()
        assert complete("sshtunctl", "-s", path, "drain", "", env=e) == []
        took = time.monotonic() - t0
    finally:
        silent.close()
    assert took < 5, took


def test_installed_where_bash_completion_looks():
    """make install puts it in $(bashcompletiondir), named after the
    command (bash-completion loads completions/NAME on first use)."""
    where = tl.make_variables("bashcompletiondir")["bashcompletiondir"].strip()
    if not where:
        pytest.skip("configured --without-bashcompletiondir")
    assert where.endswith("/bash-completion/completions"), where
    want = subprocess.run(["pkg-config", "--variable=completionsdir", "bash-completion"],
                          capture_output=True, text=True, timeout=30)
    if want.returncode == 0 and want.stdout.strip():
        assert where == want.stdout.strip(), (where, want.stdout)

    with tempfile.TemporaryDirectory(prefix="sshtund-destdir-", dir="/tmp") as dest:
        tl.make("-s", "install-dist_bashcompletionDATA", f"DESTDIR={dest}", timeout=60)
        installed = os.path.join(dest, where.lstrip("/"), "sshtunctl")
        with open(installed) as f, open(COMPLETION) as g:
            assert f.read() == g.read()
