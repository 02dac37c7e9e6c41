# The read-only admin socket (admin.readonly_socket): it answers every GET
# as admin.socket does, and 403 with a JSON reason to anything that changes
# state, which then has not changed. sshtunctl -s works on it for the
# commands that only look; a user of its group, refused by the root-only
# admin socket, gets it without -s. It follows reloads and can be handed
# over by the service manager.

import grp
import json
import os
import shutil
import stat
import subprocess

import pytest

import sshtund_testlib as tl

pytestmark = pytest.mark.alarm(180)

READS = ("/v1/status", "/v1/nodes", "/v1/nodes/n1", "/v1/migration", "/metrics", "/healthz",
         "/readyz")
WRITES = (("POST", "/v1/reload"), ("POST", "/v1/nodes/n1/drain"), ("POST", "/v1/nodes/n1/undrain"),
          ("POST", "/v1/nodes/n1/reconnect"), ("POST", "/v1/hostkeys/scan?target=n1"))


def ro_request(d, path, method="GET"):
    conn = tl._UnixHTTPConnection(d.readonly_sock, 10)
    try:
        conn.request(method, path)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def with_readonly(env, nodes, path=None, **admin):
    d = env.sshtund(nodes, start=False)
    d.readonly_sock = path or os.path.join(d.dir, "admin-readonly.sock")
    d.sections["admin"].update(readonly_socket=d.readonly_sock, **admin)
    d.write_config()
    d.start()
    return d


def test_gets_answer_and_changes_are_refused(env):
    n1 = env.sshd("n1")
    d = with_readonly(env, [n1])
    d.wait_all_up(30)
    st = os.stat(d.readonly_sock)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660, oct(st.st_mode)

    for path in READS:
        status, body = ro_request(d, path)
        assert status == 200, (path, status, body)
        full_status, _, _ = d.admin_request("GET", path)
        assert full_status == status, path
    status, body = ro_request(d, "/v1/nodes/n1")
    assert json.loads(body)["state"] == "up"

    before = d.node_info("n1")
    children = n1.children()  # the session's sshd processes
    assert children
    for method, path in WRITES:
        status, body = ro_request(d, path, method)
        assert status == 403, (method, path, status, body)
        assert "read-only" in json.loads(body)["error"], body
    # nothing moved: not drained, not reconnected, no reload logged
    after = d.node_info("n1")
    assert after["state"] == "up" and not after.get("draining")
    assert after["reconnects"] == before["reconnects"]
    assert n1.children() == children
    assert "Reloaded" not in d.log_text()


def test_sshtunctl_on_the_readonly_socket(env):
    n1 = env.sshd("n1")
    d = with_readonly(env, [n1])
    d.wait_all_up(30)
    for args, want in ((["status"], "1/1"), (["nodes"], "n1"), (["node", "n1"], "n1"),
                       (["check"], "OK"), (["migration"], "")):
        p = d.sshtunctl(*args, socket_path=d.readonly_sock)
        assert p.returncode == 0, (args, p)
        assert want in p.stdout, (args, p.stdout)
    for args in (["reload"], ["drain", "n1"], ["reconnect", "n1"], ["hostkeys", "scan", "n1"]):
        p = d.sshtunctl(*args, socket_path=d.readonly_sock)
        assert p.returncode != 0, (args, p)
        assert "read-only admin socket" in p.stderr, (args, p.stderr)
    assert d.node_info("n1")["state"] == "up"


def test_readonly_socket_follows_reload(env):
    n1 = env.sshd("n1")
    d = with_readonly(env, [n1])
    d.wait_all_up(30)
    old = d.readonly_sock
    new = os.path.join(d.dir, "monitor.sock")
    d.sections["admin"]["readonly_socket"] = new
    d.sections["admin"]["readonly_socket_mode"] = "0666"
    d.write_config()
    p = d.sshtunctl("reload")
    assert p.returncode == 0, p
    assert not os.path.exists(old)
    assert stat.S_IMODE(os.stat(new).st_mode) == 0o666
    d.readonly_sock = new
    assert ro_request(d, "/v1/status")[0] == 200

    # the same path with another mode: changed in place
    d.sections["admin"]["readonly_socket_mode"] = "0640"
    d.write_config()
    assert d.sshtunctl("reload").returncode == 0
    assert stat.S_IMODE(os.stat(new).st_mode) == 0o640

    # a group that does not exist: the reload fails, the socket stays
    d.sections["admin"]["readonly_socket_group"] = "sshtund-no-such-group"
    d.write_config()
    p = d.sshtunctl("reload")
    assert p.returncode == 1, p
    assert "admin.readonly_socket_group" in p.stderr, p.stderr
    assert ro_request(d, "/v1/status")[0] == 200

    # removed: the socket goes away
    del d.sections["admin"]["readonly_socket"]
    del d.sections["admin"]["readonly_socket_mode"]
    del d.sections["admin"]["readonly_socket_group"]
    d.write_config()
    assert d.sshtunctl("reload").returncode == 0
    assert not os.path.exists(new)


@pytest.mark.skipif(not tl.is_root(), reason="needs root: another user, a mount namespace")
def test_monitoring_user_gets_the_readonly_socket_without_s(env):
    """As installed: /run/sshtund/admin.sock (0600, root) and
    admin-readonly.sock (0660, the monitoring group). A user of that group
    runs plain `sshtunctl status`; one outside it is refused by both."""
    for tool in ("unshare", "setpriv"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed")
    n1 = env.sshd("n1")
    run = os.path.join(env.dir, "run-sshtund")
    os.makedirs(run)
    os.chmod(run, 0o755)
    ctl = os.path.join(run, "sshtunctl")
    shutil.copy(tl.require_binary(tl.sshtunctl_binary()), ctl)
    os.chmod(ctl, 0o755)
    d = env.sshtund([n1], start=False)
    d.admin_sock = os.path.join(run, "admin.sock")
    d.readonly_sock = os.path.join(run, "admin-readonly.sock")
    d.sections["admin"].update(socket=d.admin_sock, readonly_socket=d.readonly_sock,
                               readonly_socket_group="nogroup")
    d.write_config()
    d.start()
    d.wait_all_up(30)
    st = os.stat(d.readonly_sock)
    assert st.st_gid == grp.getgrnam("nogroup").gr_gid
    assert stat.S_IMODE(os.stat(d.admin_sock).st_mode) == 0o600

    def as_nobody(group, *args):
        # /run/sshtund of a private mount namespace is the test's directory
        script = ('mount -t tmpfs tmpfs /run && mkdir /run/sshtund && mount --bind "$1" /run/sshtund '
                  '&& group=$2 && shift 2 && exec setpriv --reuid=nobody --regid="$group" '
                  '--clear-groups /run/sshtund/sshtunctl "$@"')
        envv = {k: v for k, v in os.environ.items() if k != "SSHTUND_ADMIN_SOCKET"}
        return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                               "sh", run, group, *args], capture_output=True, text=True,
                              timeout=30, env=envv)

    p = as_nobody("nogroup", "status")
    assert p.returncode == 0, p
    assert "1/1" in p.stdout
    p = as_nobody("nogroup", "check")
    assert p.returncode == 0, p
    p = as_nobody("nogroup", "drain", "n1")
    assert p.returncode != 0 and "read-only admin socket" in p.stderr, p
    assert d.node_info("n1")["state"] == "up"
    # not in the group: the root-only socket's refusal is what it sees
    p = as_nobody("daemon", "status")
    assert p.returncode == 3, p
    assert "ermission denied" in p.stderr, p.stderr


@pytest.mark.skipif(not shutil.which("systemd-socket-activate"),
                    reason="systemd-socket-activate is not installed (Debian: systemd)")
def test_readonly_socket_from_the_service_manager(env):
    """Handed over as systemd would (systemd-socket-activate, names "admin"
    and "admin-readonly"): sshtund serves the socket it was given, read-only,
    and leaves it in place."""
    n1 = env.sshd("n1")
    d = env.sshtund([n1], start=False)
    d.readonly_sock = os.path.join(d.dir, "admin-readonly.sock")
    d.sections["admin"]["readonly_socket"] = d.readonly_sock
    d.write_config()
    argv = d.argv
    d.argv = lambda: ["systemd-socket-activate", "-l", d.admin_sock, "-l", d.readonly_sock,
                      "--fdname=admin:admin-readonly", *argv()]
    d.start(wait_proxy=False)
    d.wait_all_up(30)
    ino = os.stat(d.readonly_sock).st_ino
    assert ro_request(d, "/v1/status")[0] == 200
    status, body = ro_request(d, "/v1/reload", "POST")
    assert status == 403, body
    assert "Read-only admin socket" in d.log_text()
    assert os.stat(d.readonly_sock).st_ino == ino
