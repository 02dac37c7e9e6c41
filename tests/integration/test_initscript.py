# The SysV init script (etc/init.d/sshtund, as built), pointed at the build
# tree and a temporary configuration through its SSHTUND_* variables:
# start → status 0 → the admin socket answers and the node comes up →
# reload (synchronous, through sshtunctl reload) → restart (a new process) →
# stop → status 3; a bad
# file fails start, restart and reload with its FILE:LINE error and leaves a
# running daemon alone; a daemon that dies at start fails the start at once;
# start makes the state directory. With and without /lib/lsb/init-functions.

import ctypes
import os
import pwd
import re
import signal
import socket
import stat
import subprocess
import threading
import time

import pytest

import sshtund_testlib as tl

pytestmark = pytest.mark.alarm(240)

SCRIPT = os.path.join(tl.BUILDDIR, "etc", "init.d", "sshtund")
LSB = "/lib/lsb/init-functions"


class InitScript:
    """The script with its environment; every run has a deadline."""

    def __init__(self, env, nodes, lsb=True, start_timeout=30):
        self.env = env
        self.daemon = tl.Sshtund(env.dir, nodes, env.client_key, start=False, name="initd",
                                 tcp_listen=False)
        self.config = self.daemon.config_path
        self.pidfile = os.path.join(env.dir, "sshtund.pid")
        self.logfile = os.path.join(env.dir, "initd", "daemon.log")
        self.daemon.log_path = self.logfile  # for its sanitizer_report()
        self.defaults = os.path.join(env.dir, "default-sshtund")
        self.statedir = os.path.join(env.dir, "state", "sshtund")
        # The state directory goes to STATE_USER: ourselves, who can chown to it.
        self.state_user = pwd.getpwuid(os.getuid()).pw_name
        with open(self.defaults, "w") as f:
            f.write(f"# test defaults\nLOGFILE={self.logfile}\nSTART_TIMEOUT={start_timeout}\n"
                    f"STOP_TIMEOUT=15\nADMIN_SOCKET={self.daemon.admin_sock}\n"
                    f"STATE_USER={self.state_user}\n")
        self.vars = {
            "SSHTUND_DAEMON": tl.require_binary(tl.sshtund_binary()),
            "SSHTUND_CTL": tl.require_binary(tl.sshtunctl_binary()),
            "SSHTUND_DEFAULTS": self.defaults,
            "SSHTUND_CONFIG": self.config,
            "SSHTUND_PIDFILE": self.pidfile,
            "SSHTUND_STATEDIR": self.statedir,
            "SSHTUND_LSB_FUNCTIONS": LSB if lsb else os.path.join(env.dir, "no-init-functions"),
        }

    def run(self, action, timeout=90):
        env = dict(os.environ)
        env.update(self.vars)
        # The script's own process is called "sshtund" too: keep the
        # reaper off it.
        with _reaper_lock:
            p = subprocess.Popen([SCRIPT, action], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=env,
                                 stdin=subprocess.DEVNULL)
            _not_orphans.add(p.pid)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            raise
        finally:
            with _reaper_lock:
                _not_orphans.discard(p.pid)
        return subprocess.CompletedProcess(p.args, p.returncode, out, err)

    def pid(self):
        try:
            with open(self.pidfile) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def log(self):
        return self.daemon.log_text()

    def kill_leftover(self):
        """Whatever the test left running (a failed assertion midway)."""
        pid = self.pid()
        if pid and _is_sshtund(pid):
            os.kill(pid, signal.SIGKILL)


def _is_sshtund(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip() == "sshtund"
    except OSError:
        return False


def _gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie is gone too: it is not our child, init reaps it.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


PR_SET_CHILD_SUBREAPER = 36
ORPHANS = {"sshtund", "start-stop-daem"}
_reaper_lock = threading.Lock()
_not_orphans = set()  # pids of our own Popen children named like orphans


def _zombie_orphans():
    """Our exited children that start-stop-daemon's double fork left to
    us; not the script itself, nor the harness's children (sshd, ...)."""
    me = os.getpid()
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                head, _, rest = f.read().rpartition(")")
        except OSError:
            continue
        comm = head.split("(", 1)[1]
        fields = rest.split()
        if fields[0] == "Z" and int(fields[1]) == me and comm in ORPHANS \
                and int(d) not in _not_orphans:
            out.append(int(d))
    return out


def _live_orphans(comm):
    me = os.getpid()
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                head, _, rest = f.read().rpartition(")")
        except OSError:
            continue
        fields = rest.split()
        if head.split("(", 1)[1] == comm and int(fields[1]) == me and fields[0] != "Z":
            out.append(int(d))
    return out


@pytest.fixture(autouse=True)
def reaper():
    """The daemon is an orphan once start-stop-daemon has detached it. An
    init that does not reap orphans (PID 1 of some containers) would leave
    it a zombie that still answers kill -0, and stop would wait in vain:
    this process adopts such orphans (a child subreaper) and reaps them."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        yield
        return
    stop = threading.Event()

    def loop():
        while not stop.wait(0.02):
            with _reaper_lock:
                for pid in _zombie_orphans():
                    try:
                        os.waitpid(pid, os.WNOHANG)
                    except ChildProcessError:
                        pass

    t = threading.Thread(target=loop, daemon=True, name="reaper")
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join(5)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


@pytest.fixture
def script(env):
    tl.require_binary(SCRIPT)
    tl.require_binary(tl.sshtund_binary())
    made = []

    def make(nodes, **kw):
        s = InitScript(env, nodes, **kw)
        made.append(s)
        return s

    try:
        yield make
    finally:
        for s in made:
            s.kill_leftover()
            rep = s.daemon.sanitizer_report()
            assert not rep, f"sanitizer report in the daemon's log: {rep}"


def assert_ok(r, what):
    assert r.returncode == 0, f"{what}: exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"


@pytest.mark.parametrize("lsb", [True, False], ids=["lsb-functions", "plain"])
def test_lifecycle(env, script, lsb):
    if lsb and not os.path.exists(LSB):
        pytest.skip(f"{LSB} is not installed")
    node = env.sshd("n1")
    s = script([node], lsb=lsb)

    r = s.run("status")
    assert r.returncode == 3, r
    assert "not running" in r.stdout
    assert not os.path.exists(s.statedir)

    r = s.run("start")
    assert_ok(r, "start")
    # start made the state directory (systemd's tmpfiles.d does elsewhere)
    st = os.stat(s.statedir)
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o755, oct(st.st_mode)
    assert st.st_uid == os.getuid()
    pid = s.pid()
    assert pid and _is_sshtund(pid), f"pid file {s.pidfile}: {pid}"
    # Ready means bound: the admin socket answers at once.
    assert s.daemon.admin_get("/v1/status")["nodes_total"] == 1
    s.daemon.wait_all_up()

    r = s.run("status")
    assert r.returncode == 0, r
    assert f"running (pid {pid})" in r.stdout

    r = s.run("start")
    assert_ok(r, "start while running")
    assert "already running" in r.stdout
    assert s.pid() == pid

    # reload waits for the daemon's answer (sshtunctl reload)
    r = s.run("reload")
    assert_ok(r, "reload")
    assert "Reloaded: " in s.log()
    assert s.pid() == pid and _is_sshtund(pid)
    r = s.run("force-reload")
    assert_ok(r, "force-reload")

    r = s.run("restart")
    assert_ok(r, "restart")
    assert _gone(pid), "the old daemon still runs after restart"
    new = s.pid()
    assert new and new != pid and _is_sshtund(new)
    s.daemon.wait_all_up()

    r = s.run("stop")
    assert_ok(r, "stop")
    tl.wait_until(lambda: _gone(new), 10, "the daemon to exit")
    assert not os.path.exists(s.pidfile)
    assert "Stopped" in s.log()
    r = s.run("status")
    assert r.returncode == 3, r

    assert_ok(s.run("stop"), "stop when stopped")
    r = s.run("reload")
    assert r.returncode == 7, r

    r = s.run("try-restart")
    assert_ok(r, "try-restart when stopped")
    assert s.pid() is None


def test_bad_configuration(env, script):
    node = env.sshd("n1")
    s = script([node])
    good = open(s.config).read()

    with open(s.config, "a") as f:
        f.write("ssh = { port = 0; };\n")  # a second "ssh" group: a parse error
    r = s.run("start")
    assert r.returncode == 6, r
    assert re.search(re.escape(s.config) + r":\d+:", r.stderr), r.stderr
    assert "configuration check failed" in r.stderr
    assert s.pid() is None
    assert s.run("status").returncode == 3

    with open(s.config, "w") as f:
        f.write(good)
    assert_ok(s.run("start"), "start")
    pid = s.pid()

    # A broken file must neither stop nor signal the running daemon.
    with open(s.config, "w") as f:
        f.write(good.replace("ssh = {", "ssh = {\n  keepalive_count = -1;", 1))
    for action in ("restart", "reload"):
        r = s.run(action)
        assert r.returncode == 6, (action, r)
        assert re.search(re.escape(s.config) + r":\d+:.*keepalive_count", r.stderr), r.stderr
        assert s.pid() == pid and _is_sshtund(pid), action
    assert not re.search(r"SIGHUP|reload", s.log(), re.I)

    # A file `sshtund -t` passes but the daemon cannot apply (a listen
    # address already bound): reload fails with the daemon's reason.
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    busy = blocker.getsockname()
    try:
        s.daemon.sections["proxy"]["listen"] = [f"unix:{s.daemon.proxy_sock}",
                                                f"tcp:{busy[0]}:{busy[1]}"]
        s.daemon.write_config()
        r = s.run("reload")
        assert r.returncode == 1, r
        assert "proxy.listen: cannot bind a new address" in r.stderr, r.stderr
        assert "Reload failed, the running configuration stays" in s.log()
        assert s.pid() == pid and _is_sshtund(pid)
    finally:
        blocker.close()

    with open(s.config, "w") as f:
        f.write(good)
    assert_ok(s.run("stop"), "stop")
    tl.wait_until(lambda: _gone(pid), 10, "the daemon to exit")


def test_daemon_dying_at_start_fails_the_start_fast(env, script):
    # Another process accepts on the admin socket's path: sshtund refuses
    # to take it over and exits 1 after the configuration check passed.
    node = env.sshd("n1")
    s = script([node], start_timeout=6)
    squatter = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    squatter.bind(s.daemon.admin_sock)
    squatter.listen(1)
    try:
        t0 = time.monotonic()
        r = s.run("start")
        elapsed = time.monotonic() - t0
    finally:
        squatter.close()
    assert r.returncode == 1, r
    assert "exited during start" in r.stderr, r.stderr
    assert "admin" in r.stderr, "no tail of the daemon's log: " + r.stderr
    assert elapsed < 4, f"took {elapsed:.1f} s: the start waited for the notification timeout"
    assert s.pid() is None
    assert s.run("status").returncode == 3
    # start-stop-daemon, left waiting for READY=1, gives up at START_TIMEOUT
    # and removes its notification socket.
    tl.wait_until(lambda: not _live_orphans("start-stop-daem"), 15,
                  "the detached start-stop-daemon to time out")


def test_missing_daemon(env, script):
    node = env.sshd("n1")
    s = script([node])
    s.vars["SSHTUND_DAEMON"] = os.path.join(env.dir, "no-such-sshtund")
    assert s.run("start").returncode == 5
    assert s.run("status").returncode == 4
    assert s.run("stop").returncode == 0
    s.vars["SSHTUND_DAEMON"] = tl.sshtund_binary()
    r = s.run("bogus")
    assert r.returncode == 2 and "Usage:" in r.stderr
