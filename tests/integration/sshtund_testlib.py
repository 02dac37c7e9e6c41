# The integration-test harness: real OpenSSH and dropbear nodes on private
# loopback addresses, the TCP servers they forward to, and a driver for the
# sshtund daemon (its config, its admin API, its CONNECT front door).
#
# Imported by tests/integration/test_*.py and by bench/. Every process it
# starts is killed when the test ends (TestEnv.close) or when the test
# process dies (PR_SET_PDEATHSIG through setpriv), and every wait has a
# deadline.

import base64
import getpass
import hashlib
import http.client
import json
import os
import pwd
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SRCDIR = os.environ.get("SSHTUND_SRCDIR") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BUILDDIR = os.environ.get("SSHTUND_BUILDDIR") or os.path.join(SRCDIR, "build")

SSHD = "/usr/sbin/sshd"
DROPBEAR = "/usr/sbin/dropbear"
SETPRIV = shutil.which("setpriv")

# The 200 reply kube-apiserver's HTTPConnect dialer expects, byte for byte.
CONNECT_OK = b"HTTP/1.1 200 Connection Established\r\n\r\n"

# Environments still open, for conftest's failure report (log tails).
ACTIVE_ENVS = []

_rng = random.SystemRandom()
_used_addresses = set()


class HarnessError(AssertionError):
    """The harness could not set up what a test asked for."""


def sshtund_binary():
    return os.path.join(BUILDDIR, "src", "sshtund")


def sshtunctl_binary():
    return os.path.join(BUILDDIR, "src", "sshtunctl")


def make_env():
    """The environment for a make of the test's own in the build tree:
    without the parent make's jobserver (its descriptors are not passed
    down), flags (-w would print directories into the output) and DESTDIR."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL",
                                                              "MAKEOVERRIDES", "DESTDIR")}
    env["LC_ALL"] = "C"
    return env


def make(*args, timeout=300, input=None):
    """make ARGS in the build tree; fails the test unless it succeeds."""
    r = subprocess.run(["make", "-C", BUILDDIR, "--no-print-directory", *args],
                       capture_output=True, text=True, timeout=timeout, env=make_env(),
                       input=input, stdin=None if input is not None else subprocess.DEVNULL)
    assert r.returncode == 0, f"make {' '.join(args)}: exit {r.returncode}\n{r.stdout[-3000:]}\n" \
                              f"{r.stderr[-3000:]}"
    return r


def make_variables(*names):
    """The build tree's Makefile variables, as make expands them."""
    rules = "print-vars:\n" + "".join(f"\t@echo '{n}=$({n})'\n" for n in names)
    r = make("-s", "-f", "Makefile", "-f", "-", "print-vars", input=rules)
    out = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
    for n in names:
        assert n in out, f"{n} not printed: {r.stdout!r}"
    return out


def require_binary(path):
    """Fail (never skip) when a program the test exercises was not built."""
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise HarnessError(f"{path} is missing or not executable: build it first "
                           f"(SSHTUND_BUILDDIR={BUILDDIR})")
    return path


_scripts = {}


def load_script(name):
    """scripts/NAME (a Python program without a .py suffix) as a module, so a
    test can call its functions; loaded once per test run."""
    if name not in _scripts:
        import importlib.machinery
        import importlib.util
        modname = name.replace("-", "_")
        loader = importlib.machinery.SourceFileLoader(modname, os.path.join(SRCDIR, "scripts", name))
        mod = importlib.util.module_from_spec(importlib.util.spec_from_loader(modname, loader))
        loader.exec_module(mod)
        _scripts[name] = mod
    return _scripts[name]


def is_root():
    return os.geteuid() == 0


def login_user():
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return getpass.getuser()


# --- addresses, ports, deadlines ---------------------------------------------

def loopback_address():
    """A fresh 127.R.R.R (each R in 1..254, so never 127.0.0.1): parallel
    tests pick different ones and their ports cannot collide."""
    while True:
        a = "127.%d.%d.%d" % (_rng.randint(1, 254), _rng.randint(1, 254), _rng.randint(1, 254))
        if a not in _used_addresses:
            _used_addresses.add(a)
            return a


def free_port(addr):
    """A port that nothing holds on addr right now (below the ephemeral range,
    so outgoing connections do not take it meanwhile)."""
    for _ in range(200):
        port = _rng.randint(20000, 32000)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((addr, port))
        except OSError:
            continue
        finally:
            s.close()
        return port
    raise HarnessError(f"no free port on {addr}")


def hostport(host, port):
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def wait_until(pred, timeout, what, interval=0.05):
    """Poll pred() until it returns a true value (returned) or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise HarnessError(f"timed out after {timeout:.1f} s waiting for {what}")
        time.sleep(interval)


def tail(path, lines=60):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 256 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError as e:
        return f"({path}: {e.strerror})"
    return "\n".join(data.splitlines()[-lines:])


def _spawn(argv, log_path, env=None):
    """Start argv with stdout+stderr appended to log_path; it gets SIGKILL if
    the test process dies (setpriv keeps the pid: it execs)."""
    if SETPRIV:
        argv = [SETPRIV, "--pdeathsig", "KILL", "--"] + list(argv)
    with open(log_path, "ab") as log:
        log.write(("### %s %s\n" % (time.strftime("%H:%M:%S"), " ".join(argv))).encode())
        log.flush()
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=env, close_fds=True)


# --- /proc: process trees and TCP sockets -------------------------------------

def _ppid_map():
    ppids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # comm may contain spaces and parentheses: split after the last ')'.
        fields = stat.rsplit(")", 1)[1].split()
        ppids[int(d)] = int(fields[1])
    return ppids


def descendants(pid):
    """Every live descendant of pid, parents before children."""
    ppids = _ppid_map()
    children = {}
    for p, pp in ppids.items():
        children.setdefault(pp, []).append(p)
    out, todo = [], [pid]
    while todo:
        p = todo.pop(0)
        for c in sorted(children.get(p, [])):
            out.append(c)
            todo.append(c)
    return out


def ancestry(pids):
    """{pid: [pid, parent, grandparent, ...]} taken now: a check made later
    must not depend on the processes still being alive."""
    ppids = _ppid_map()
    out = {}
    for pid in pids:
        chain, p = [], pid
        while p in ppids and p not in chain:
            chain.append(p)
            p = ppids[p]
        out[pid] = chain
    return out


def is_descendant(pid, ancestor):
    ppids = _ppid_map()
    seen = set()
    while pid in ppids and pid not in seen:
        if pid == ancestor:
            return True
        seen.add(pid)
        pid = ppids[pid]
    return pid == ancestor


@dataclass
class TcpSocket:
    local: tuple
    remote: tuple
    state: int  # kernel TCP state: 1 ESTABLISHED, 10 LISTEN
    inode: int

    ESTABLISHED = 1
    LISTEN = 10


def _hex_ipv4(h):
    ip, port = h.split(":")
    return socket.inet_ntoa(struct.pack("=I", int(ip, 16))), int(port, 16)


def tcp_sockets():
    """IPv4 TCP sockets of this network namespace, from /proc/net/tcp."""
    out = []
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            out.append(TcpSocket(_hex_ipv4(parts[1]), _hex_ipv4(parts[2]), int(parts[3], 16),
                                 int(parts[9])))
    return out


def is_listening(addr, port):
    return any(s.state == TcpSocket.LISTEN and s.local == (addr, port) for s in tcp_sockets())


def socket_owner_pids(inodes, pids=None):
    """inode -> set of pids holding a descriptor for that socket."""
    want = {f"socket:[{i}]": i for i in inodes if i}
    owners = {i: set() for i in inodes}
    if not want:
        return owners
    for p in (pids if pids is not None else [int(d) for d in os.listdir("/proc") if d.isdigit()]):
        try:
            fds = os.listdir(f"/proc/{p}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{p}/fd/{fd}")
            except OSError:
                continue
            if link in want:
                owners[want[link]].add(p)
    return owners


def tcp_endpoint_pids(local, remote):
    """Pids holding the TCP socket from 'local' to 'remote' ((ip, port)
    each): who is on the other end of a connection a test server accepted
    (local: the client's address, remote: the server's). Both ends count:
    Linux gives one local port to connections to different peers."""
    inodes = [s.inode for s in tcp_sockets() if s.local == tuple(local) and s.remote == tuple(remote)]
    pids = set()
    for v in socket_owner_pids(inodes).values():
        pids |= v
    return pids


# --- keys ----------------------------------------------------------------------

def ssh_keygen(path, key_type="ed25519"):
    """A passphrase-less key at path (+ .pub); returns the public line."""
    args = ["ssh-keygen", "-q", "-t", key_type, "-N", "", "-C", "sshtund-test", "-f", path]
    if key_type == "ecdsa":
        args[4:4] = ["-b", "256"]
    elif key_type == "rsa":
        args[4:4] = ["-b", "3072"]
    subprocess.run(args, check=True, stdin=subprocess.DEVNULL, timeout=60)
    with open(path + ".pub") as f:
        return f.read().strip()


def fingerprint(pub_line):
    """OpenSSH's SHA256:... fingerprint of a public key line."""
    blob = base64.b64decode(pub_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def ssh_keygen_fingerprint(pub_path):
    """The fingerprint as `ssh-keygen -lf` prints it (independent of ours)."""
    out = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", pub_path], check=True,
                         capture_output=True, text=True, timeout=30).stdout
    return out.split()[1]


def known_hosts_name(addr, port):
    return addr if port == 22 else f"[{addr}]:{port}"


# --- nodes -------------------------------------------------------------------

class Node:
    """What sshd and dropbear nodes share: a listener process on addr:port,
    a host key, per-connection children, and freeze/kill/restart."""

    kind = "?"

    def __init__(self, tmp, name, addr, port, client_pubkey, host_key_type, pod_cidr):
        self.name = name
        self.addr = addr
        self.port = port
        self.client_pubkey = client_pubkey
        self.host_key_type = host_key_type
        self.pod_cidr = pod_cidr
        self.config_extra = {}  # more keys for this node's sshtund.conf entry ("hostnames")
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir, exist_ok=True)
        self.log_path = os.path.join(self.dir, f"{self.kind}.log")
        self.pid_file = os.path.join(self.dir, f"{self.kind}.pid")
        self.proc = None
        self._frozen = []

    # -- configuration for sshtund --
    def config_entry(self):
        e = {"name": self.name, "address": self.addr, "port": self.port}
        if self.pod_cidr:
            e["pod_cidr"] = self.pod_cidr
        e.update(self.config_extra)
        return e

    @property
    def host_key_blob(self):
        """'TYPE BASE64' of the host key."""
        return " ".join(self.host_pub.split()[:2])

    @property
    def host_fingerprint(self):
        return fingerprint(self.host_pub)

    def known_hosts_line(self, pub=None):
        """`[addr]:port TYPE B64` (`addr TYPE B64` on port 22), for this node's
        key or for another public line (a wrong key, for mismatch tests)."""
        blob = " ".join((pub or self.host_pub).split()[:2])
        return f"{known_hosts_name(self.addr, self.port)} {blob}"

    # -- process control --
    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def _argv(self):
        raise NotImplementedError

    def start(self, timeout=10.0):
        if self.alive():
            raise HarnessError(f"{self.name}: already running")
        self.proc = _spawn(self._argv(), self.log_path)

        def ready():
            if self.proc.poll() is not None:
                raise HarnessError(f"{self.kind} for {self.name} exited with {self.proc.returncode}:\n"
                                   + tail(self.log_path, 20))
            return is_listening(self.addr, self.port)

        wait_until(ready, timeout, f"{self.kind} {self.name} to listen on {self.addr}:{self.port}")
        return self

    def descendants(self):
        return descendants(self.pid) if self.alive() else []

    def _signal_all(self, sig, pids):
        for p in pids:
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass

    def freeze(self):
        """SIGSTOP the listener and every per-connection child: the kernel
        still accepts and ACKs, nothing answers (a hung node)."""
        if not self.alive():
            raise HarnessError(f"{self.name}: not running")
        self._signal_all(signal.SIGSTOP, [self.pid])
        pids = self.descendants()
        self._signal_all(signal.SIGSTOP, pids)
        self._frozen = [self.pid] + pids

    def thaw(self):
        pids = self._frozen + (self.descendants() if self.alive() else [])
        self._signal_all(signal.SIGCONT, reversed(pids))
        self._frozen = []

    def kill(self):
        """SIGKILL the listener and its children at once: a node that died.
        The tree is stopped first, down to the last child, so that nothing
        forks between the listing and the kill: sshd's monitor forks a
        session's user child right after authentication, and a child
        forked after a listing outlived its killed parent and kept the
        session up (seen with OpenSSH 10)."""
        if not self.alive():  # a reaped pid may belong to someone else now
            return
        stopped, pids = [], [self.pid]
        while pids:
            self._signal_all(signal.SIGSTOP, pids)
            stopped += pids
            pids = [p for p in descendants(self.pid) if p not in stopped]
        self._signal_all(signal.SIGKILL, stopped)
        self._reap(5.0)
        self._frozen = []

    def stop(self):
        """SIGTERM the listener and its children (killed after 5 s)."""
        if not self.alive():
            return
        if self._frozen:
            self.thaw()
        pids = [self.pid] + self.descendants()
        self._signal_all(signal.SIGTERM, pids)
        try:
            self.proc.wait(5.0)
        except subprocess.TimeoutExpired:
            pass
        self._signal_all(signal.SIGKILL, [p for p in pids if _pid_alive(p)])
        self._reap(5.0)

    def _reap(self, timeout):
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise HarnessError(f"{self.name}: {self.kind} did not die")

    def restart(self, timeout=10.0):
        if self.alive():
            self.stop()
        return self.start(timeout)

    def children(self):
        """[(pid, peer_port)] of per-connection processes holding an
        established connection to this node's listening port."""
        socks = [s for s in tcp_sockets()
                 if s.state == TcpSocket.ESTABLISHED and s.local == (self.addr, self.port)]
        owners = socket_owner_pids([s.inode for s in socks], self.descendants())
        out = []
        for s in socks:
            for p in sorted(owners.get(s.inode, ())):
                out.append((p, s.remote[1]))
        return out

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def ssh_w(self, client_key, known_hosts, target_host, target_port, data, timeout=20.0):
        """Run OpenSSH's `ssh -W target` through this node with data on stdin
        and return stdout: checks the node without sshtund."""
        argv = ["ssh", "-F", "/dev/null", "-i", client_key, "-o", "IdentitiesOnly=yes",
                "-o", f"UserKnownHostsFile={known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
                "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
                "-o", "ConnectTimeout=10", "-p", str(self.port),
                "-W", hostport(target_host, target_port), f"{login_user()}@{self.addr}"]
        r = subprocess.run(argv, input=data, capture_output=True, timeout=timeout)
        if r.returncode != 0:
            raise HarnessError(f"ssh -W through {self.name} failed ({r.returncode}): "
                               f"{r.stderr.decode(errors='replace')}")
        return r.stdout


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


class SshdNode(Node):
    """OpenSSH sshd as one node: its own config, host key and log."""

    kind = "sshd"

    def __init__(self, tmp, name, addr, port, client_pubkey, host_key_type="ed25519",
                 extra_config="", pod_cidr=None, log_level="VERBOSE", start=True):
        super().__init__(tmp, name, addr, port, client_pubkey, host_key_type, pod_cidr)
        self.host_key = os.path.join(self.dir, f"ssh_host_{host_key_type}_key")
        self.host_pub = ssh_keygen(self.host_key, host_key_type)
        self.authorized_keys = os.path.join(self.dir, "authorized_keys")
        with open(self.authorized_keys, "w") as f:
            f.write(client_pubkey.strip() + "\n")
        self.config_path = os.path.join(self.dir, "sshd_config")
        with open(self.config_path, "w") as f:
            f.write(f"""ListenAddress {addr}:{port}
HostKey {self.host_key}
PidFile {self.pid_file}
AuthorizedKeysFile {self.authorized_keys}
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowTcpForwarding yes
LogLevel {log_level}
MaxStartups 1000
MaxSessions 1000
PrintMotd no
UseDNS no
{extra_config}
""")
        if start:
            self.start()

    def _argv(self):
        if is_root():
            # The privilege-separation directory sshd insists on.
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        return [SSHD, "-D", "-e", "-f", self.config_path]


class DropbearNode(Node):
    """dropbear as one node. dropbear reads authorized_keys only from the
    login user's home, so it runs in a private mount namespace where a
    temporary home is bind-mounted over the real one (never touched)."""

    kind = "dropbear"

    def __init__(self, tmp, name, addr, port, client_pubkey, host_key_type="ed25519",
                 extra_args=(), pod_cidr=None, start=True):
        if not is_root():
            raise HarnessError("a dropbear node needs root (private mount namespace)")
        super().__init__(tmp, name, addr, port, client_pubkey, host_key_type, pod_cidr)
        self.extra_args = list(extra_args)
        self.host_key = os.path.join(self.dir, f"dropbear_{host_key_type}_host_key")
        args = ["dropbearkey", "-t", host_key_type, "-f", self.host_key]
        if host_key_type == "ecdsa":
            args += ["-s", "256"]
        subprocess.run(args, check=True, capture_output=True, timeout=60)
        out = subprocess.run(["dropbearkey", "-y", "-f", self.host_key], check=True,
                             capture_output=True, text=True, timeout=60).stdout
        pubs = [ln for ln in out.splitlines() if re.match(r"^(ssh-|ecdsa-)\S+ AAAA", ln)]
        if not pubs:
            raise HarnessError(f"no public key in dropbearkey -y output:\n{out}")
        self.host_pub = pubs[0].strip()
        self.home = os.path.join(self.dir, "home")
        ssh_dir = os.path.join(self.home, ".ssh")
        os.makedirs(ssh_dir, exist_ok=True)
        self.authorized_keys = os.path.join(ssh_dir, "authorized_keys")
        with open(self.authorized_keys, "w") as f:
            f.write(client_pubkey.strip() + "\n")
        os.chmod(self.home, 0o700)
        os.chmod(ssh_dir, 0o700)
        os.chmod(self.authorized_keys, 0o600)
        self.user_home = pwd.getpwuid(os.getuid()).pw_dir
        if start:
            self.start()

    def _argv(self):
        script = 'mount --bind "$1" "$2" && shift 2 && exec "$@"'
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
                self.home, self.user_home, DROPBEAR, "-F", "-E", "-s",
                "-p", f"{self.addr}:{self.port}", "-r", self.host_key, "-P", self.pid_file,
                *self.extra_args]


# --- TCP servers the nodes forward to ----------------------------------------

class Conn:
    """One accepted connection, as a test server saw it."""

    def __init__(self, sock, peer):
        self.sock = sock
        self.peer = peer
        self.received = bytearray()
        self.nreceived = 0
        self.sent = 0
        self.eof = threading.Event()     # the client's FIN arrived
        self.closed = threading.Event()  # the handler is done
        self.error = None

    def peer_pids(self):
        """Who holds the other end (an sshd or dropbear child): call while
        the connection is open."""
        return tcp_endpoint_pids(self.peer, self.sock.getsockname()[:2])


class TcpServer:
    """Listens on addr:port; handle(conn) runs in a thread per connection."""

    def __init__(self, addr, port=None):
        self.addr = addr
        self.port = port or free_port(addr)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((addr, self.port))
        self.sock.listen(128)
        self.conns = []
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._accept_loop, daemon=True,
                                        name=f"{type(self).__name__}-{addr}:{self.port}")
        self._thread.start()

    @property
    def target(self):
        return (self.addr, self.port)

    def _accept_loop(self):
        while not self._stopping:
            try:
                s, peer = self.sock.accept()
            except OSError:
                return
            c = Conn(s, peer)
            with self._cond:
                self.conns.append(c)
                self._cond.notify_all()
            threading.Thread(target=self._run, args=(c,), daemon=True).start()

    def _run(self, c):
        try:
            self.handle(c)
        except OSError as e:
            c.error = e
        finally:
            try:
                c.sock.close()
            except OSError:
                pass
            c.closed.set()

    def handle(self, c):
        raise NotImplementedError

    def wait_connections(self, n, timeout=10.0):
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.conns) >= n, timeout):
                raise HarnessError(f"{type(self).__name__}: {len(self.conns)} connections, "
                                   f"wanted {n}")
            return self.conns[n - 1]

    def close(self):
        self._stopping = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for c in list(self.conns):
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class EchoServer(TcpServer):
    """Echoes every byte; on the client's EOF, echoes what is left, then
    shutdown(SHUT_WR) and close (half-close travels both ways). The first
    64 bytes received are kept in conn.received, to tell streams apart."""

    def handle(self, c):
        while True:
            data = c.sock.recv(256 * 1024)
            if not data:
                c.eof.set()
                c.sock.shutdown(socket.SHUT_WR)
                return
            if len(c.received) < 64:
                c.received += data[:64 - len(c.received)]
            c.sock.sendall(data)
            c.sent += len(data)


class SinkServer(TcpServer):
    """Reads and discards forever; counts the bytes."""

    def handle(self, c):
        while True:
            data = c.sock.recv(256 * 1024)
            if not data:
                c.eof.set()
                return
            c.nreceived += len(data)  # counted, not kept: memory stays flat


class BannerServer(TcpServer):
    """Speaks first (like an SMTP or SSH server), then echoes."""

    def __init__(self, addr, port=None, banner=b"BANNER\r\n"):
        self.banner = banner
        super().__init__(addr, port)

    def handle(self, c):
        c.sock.sendall(self.banner)
        c.sent += len(self.banner)
        EchoServer.handle(self, c)


class HalfCloseServer(TcpServer):
    """Waits for the client's first bytes, answers 'reply', shuts its write
    side, then keeps reading until the client's EOF: the node closes first
    and the client still talks."""

    def __init__(self, addr, port=None, reply=b"server done\n"):
        self.reply = reply
        super().__init__(addr, port)

    def handle(self, c):
        first = c.sock.recv(65536)
        c.received += first
        c.sock.sendall(self.reply)
        c.sock.shutdown(socket.SHUT_WR)
        while True:
            data = c.sock.recv(65536)
            if not data:
                c.eof.set()
                return
            c.received += data


class ChargenServer(TcpServer):
    """Sends 'size' bytes of a deterministic pseudo-random stream as fast as
    the connection takes them, then closes; conn.sent counts progress. The
    pattern's period is prime so misplaced bytes never line up by chance."""

    PERIOD = 1048573

    def __init__(self, addr, port=None, size=512 << 20, seed=1):
        self.size = size
        self.block = random.Random(seed).randbytes(self.PERIOD)
        self._wrapped = memoryview(self.block + self.block[:256 * 1024])
        super().__init__(addr, port)

    def expected(self, offset, n):
        out = bytearray()
        while n > 0:
            o = offset % self.PERIOD
            k = min(n, self.PERIOD - o)
            out += self.block[o:o + k]
            offset += k
            n -= k
        return bytes(out)

    def handle(self, c):
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 256 * 1024)
        while c.sent < self.size:
            o = c.sent % self.PERIOD
            n = min(256 * 1024, self.size - c.sent)
            c.sent += c.sock.send(self._wrapped[o:o + n])
        c.sock.shutdown(socket.SHUT_WR)


class HttpServer:
    """A tiny HTTP/1.1 server (GET answers 'body'), recording who asked."""

    def __init__(self, addr, port=None, body=b"hello from the node side\n"):
        self.addr = addr
        self.port = port or free_port(addr)
        self.body = body
        self.requests = []  # (path, peer, peer_pids)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                server.requests.append((self.path, self.client_address,
                                        tcp_endpoint_pids(self.client_address,
                                                          self.connection.getsockname()[:2])))
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                self.wfile.write(server.body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer((addr, self.port), Handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        daemon=True)
        self._thread.start()

    @property
    def target(self):
        return (self.addr, self.port)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# --- the front door: CONNECT by hand ----------------------------------------

def read_head(sock, limit=65536):
    """Read one HTTP response head, byte by byte so that not one byte after
    it is consumed. Returns the head (b'' if the peer closed first)."""
    head = bytearray()
    while not head.endswith(b"\r\n\r\n"):
        try:
            b = sock.recv(1)
        except ConnectionResetError:
            b = b""
        if not b:
            return bytes(head)
        head += b
        if len(head) > limit:
            raise HarnessError(f"response head over {limit} bytes")
    return bytes(head)


def parse_head(head):
    """(status, reason, {lowercased name: value}) of a response head."""
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"^HTTP/1\.[01] (\d{3}) ?(.*)$", lines[0])
    if not m:
        raise HarnessError(f"not an HTTP response head: {head[:200]!r}")
    headers = {}
    for ln in lines[1:]:
        if ln:
            k, _, v = ln.partition(":")
            headers[k.strip().lower()] = v.strip()
    return int(m.group(1)), m.group(2), headers


def echo_exactly(s, size, timeout=60):
    """Send size random bytes through s (connected to an echo target) from
    a thread while reading the echo, then EOF; assert the same bytes came
    back, compared by SHA-256."""
    sent, got = hashlib.sha256(), hashlib.sha256()
    errors = []

    def sender():
        try:
            left = size
            while left:
                chunk = os.urandom(min(1 << 20, left))
                sent.update(chunk)
                s.sendall(chunk)
                left -= len(chunk)
            s.shutdown(socket.SHUT_WR)
        except OSError as e:
            errors.append(e)

    t = threading.Thread(target=sender, daemon=True)
    t.start()
    n = 0
    s.settimeout(timeout)
    while True:
        data = s.recv(1 << 20)
        if not data:
            break
        got.update(data)
        n += len(data)
    t.join(timeout)
    assert not errors, errors
    assert n == size, f"{n} bytes echoed of {size}"
    assert got.hexdigest() == sent.hexdigest(), "the echo differs from what was sent"


def recv_until_eof(sock, limit=None, timeout=10.0):
    """Everything until EOF (or a reset); raises on a timeout."""
    sock.settimeout(timeout)
    out = bytearray()
    while limit is None or len(out) < limit:
        try:
            data = sock.recv(1 << 20)
        except ConnectionResetError:
            break
        if not data:
            break
        out += data
    return bytes(out)


def recv_exactly(sock, n, timeout=30.0):
    sock.settimeout(timeout)
    out = bytearray()
    while len(out) < n:
        data = sock.recv(min(1 << 20, n - len(out)))
        if not data:
            raise HarnessError(f"EOF after {len(out)} of {n} bytes")
        out += data
    return bytes(out)


@dataclass
class ProxyReply:
    status: int            # 0 if the daemon closed without a reply
    reason: str
    head: bytes
    headers: dict
    body: bytes
    elapsed: float         # request sent → end of the reply head
    sock: socket.socket = None  # the tunnel, for a 200; closed otherwise
    closed: bool = False   # not a 200: the daemon closed the connection after the body

    def __repr__(self):
        return (f"<ProxyReply {self.status} {self.reason!r} after {self.elapsed:.3f}s "
                f"body={self.body[:200]!r}>")


def connect_request(host, port):
    hp = hostport(host, port)
    return f"CONNECT {hp} HTTP/1.1\r\nHost: {hp}\r\n\r\n".encode()


# --- the daemon ----------------------------------------------------------------

def _lc(v, indent="  "):
    """A Python value as libconfig text (floats always carry a point)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        s = repr(v)
        return s if ("." in s or "e" in s) else s + ".0"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[ " + ", ".join(_lc(x) for x in v) + " ]"
    if isinstance(v, tuple):  # a list of groups
        if not v:
            return "( )"
        return "(\n" + ",\n".join(indent + "  " + _lc(x, indent + "  ") for x in v) + "\n" + indent + ")"
    if isinstance(v, dict):
        return "{ " + " ".join(f"{k} = {_lc(x, indent)};" for k, x in v.items()) + " }"
    raise TypeError(f"no libconfig form for {v!r}")


def render_config(sections):
    """{'ssh': {...}, 'nodes': (..), 'user': ''} → sshtund.conf text, one
    top-level setting per line (groups spread over lines)."""
    out = []
    for k, v in sections.items():
        if isinstance(v, dict):
            out.append(f"{k} = {{")
            for kk, vv in v.items():
                out.append(f"  {kk} = {_lc(vv)};")
            out.append("};")
        else:
            out.append(f"{k} = {_lc(v)};")
    return "\n".join(out) + "\n"


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


def binary_has_asan(path):
    try:
        out = subprocess.run(["ldd", path], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "libasan" in out


class Sshtund:
    """One sshtund daemon under test: writes its config from the nodes, runs
    `sshtund -d -c FILE`, talks to its admin socket and front door.

    Sections are dicts of keys as DESIGN.md names them; they are merged over
    the test defaults (probe off, short timeouts where harmless, everything
    under the test's own directory)."""

    def __init__(self, tmp, nodes, client_key, *, ssh=None, proxy=None, probe=None, admin=None,
                 log=None, extra_conf="", known_hosts=None, tcp_listen=True, start=True,
                 env_vars=None, name="sshtund", top=None, debug=True):
        self.debug = debug  # -d: debug lines in the log (a benchmark leaves them out)
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir, exist_ok=True)
        self.nodes = list(nodes)
        self.binary = sshtund_binary()
        self.config_path = os.path.join(self.dir, "sshtund.conf")
        self.log_path = os.path.join(self.dir, "sshtund.log")
        self.known_hosts_path = os.path.join(self.dir, "known_hosts")
        self.learned_hosts_path = os.path.join(self.dir, "learned_hosts")
        self.proxy_sock = os.path.join(self.dir, "proxy.sock")
        self.admin_sock = os.path.join(self.dir, "admin.sock")
        self.tcp_addr = loopback_address() if tcp_listen else None
        self.tcp_port = free_port(self.tcp_addr) if tcp_listen else None
        self.proc = None
        self.returncode = None
        self.expect_clean_exit = True
        self.env_vars = dict(env_vars or {})
        self.sockets = []

        lines = known_hosts if known_hosts is not None else [n.known_hosts_line() for n in self.nodes]
        with open(self.known_hosts_path, "w") as f:
            f.write("".join(ln + "\n" for ln in lines))

        listen = [f"unix:{self.proxy_sock}"]
        if tcp_listen:
            listen.append(f"tcp:{self.tcp_addr}:{self.tcp_port}")
        self.sections = {
            "ssh": {"user": login_user(), "identity": client_key,
                    "known_hosts": self.known_hosts_path, "learned_hosts": self.learned_hosts_path,
                    "connect_timeout": 5.0,
                    **(ssh or {})},
            "proxy": {"listen": listen, "allow": ["nodes"], **(proxy or {})},
            "probe": {"type": "none", **(probe or {})},
            "admin": {"socket": self.admin_sock, **(admin or {})},
            "log": {"level": "debug", "target": "stderr", **(log or {})},
            "nodes": tuple(n.config_entry() for n in self.nodes),
            # stop() waits 10 s: streams a test leaves open must not hold the
            # shutdown longer than this
            **{"drain_timeout": 3.0, **(top or {})},
        }
        self.write_config(extra_conf)
        if start:
            self.start()

    def write_config(self, extra_conf=""):
        with open(self.config_path, "w") as f:
            f.write(render_config(self.sections) + extra_conf)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def argv(self):
        """The command line that start() runs."""
        return [self.binary] + (["-d"] if self.debug else []) + ["-c", self.config_path]

    def start(self, timeout=20.0, wait_proxy=True):
        require_binary(self.binary)
        env = dict(os.environ)
        env.update(self.env_vars)
        self.proc = _spawn(self.argv(), self.log_path, env)

        def ready():
            if self.proc.poll() is not None:
                raise HarnessError(f"sshtund exited with {self.proc.returncode} at start:\n"
                                   + tail(self.log_path, 40))
            if not os.path.exists(self.admin_sock):
                return False
            try:
                status, _, _ = self.admin_request("GET", "/healthz", timeout=2.0)
            except (OSError, http.client.HTTPException):
                return False
            return status > 0

        wait_until(ready, timeout, "sshtund's admin socket")
        if wait_proxy:
            wait_until(lambda: os.path.exists(self.proxy_sock), timeout, "sshtund's proxy socket")
        return self

    def stop(self, timeout=10.0):
        """SIGTERM, then SIGKILL after 'timeout'; returns the exit status
        (negative: killed by that signal)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                self.returncode = "killed: no exit within %.0f s of SIGTERM" % timeout
                return self.returncode
        self.returncode = self.proc.returncode
        return self.returncode

    def kill(self):
        self.expect_clean_exit = False
        if self.alive():
            self.proc.kill()
            self.proc.wait(10)

    def rss_kb(self):
        with open(f"/proc/{self.pid}/status") as f:
            for ln in f:
                if ln.startswith("VmRSS:"):
                    return int(ln.split()[1])
        raise HarnessError("no VmRSS")

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def sanitizer_report(self):
        """The first sanitizer report in the log, or None."""
        text = self.log_text()
        m = re.search(r"^.*(ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:).*$", text, re.M)
        return m.group(0) if m else None

    # -- admin API --
    def admin_request(self, method, path, body=None, timeout=10.0):
        conn = _UnixHTTPConnection(self.admin_sock, timeout)
        try:
            conn.request(method, path, body=body)
            r = conn.getresponse()
            return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
        finally:
            conn.close()

    def admin_get(self, path, timeout=10.0):
        status, headers, body = self.admin_request("GET", path, timeout=timeout)
        if status != 200:
            raise HarnessError(f"GET {path}: {status} {body[:300]!r}")
        try:
            return json.loads(body)
        except ValueError as e:
            raise HarnessError(f"GET {path}: not JSON ({e}): {body[:300]!r}")

    def status(self):
        return self.admin_get("/v1/status")

    def nodes_info(self):
        """The node objects of GET /v1/nodes (a JSON array, or an object
        holding one under "nodes")."""
        j = self.admin_get("/v1/nodes")
        if isinstance(j, dict):
            j = j.get("nodes")
        if not isinstance(j, list):
            raise HarnessError(f"GET /v1/nodes: no node list in {j!r}")
        return j

    def node_info(self, name):
        j = self.admin_get(f"/v1/nodes/{name}")
        if isinstance(j, dict) and "node" in j and isinstance(j["node"], dict):
            j = j["node"]
        return j

    def wait_state(self, name, states, timeout=20.0):
        """Wait until node 'name' is in one of 'states' (a name, a list of
        names, or a predicate on the state); returns its object."""
        if isinstance(states, str):
            states = [states]
        pred = states if callable(states) else (lambda s: s in states)
        last = {}

        def check():
            last["node"] = self.node_info(name)
            return last["node"] if pred(last["node"].get("state")) else None

        try:
            return wait_until(check, timeout, f"node {name} to reach {states}", interval=0.05)
        except HarnessError as e:
            raise HarnessError(f"{e}; last seen: {last.get('node')}") from None

    def wait_all_up(self, timeout=30.0):
        last = {}

        def check():
            last["nodes"] = self.nodes_info()
            return len(last["nodes"]) == len(self.nodes) and \
                all(n.get("state") == "up" for n in last["nodes"])

        try:
            wait_until(check, timeout, "every node to be up", interval=0.05)
        except HarnessError as e:
            states = {n.get("name"): (n.get("state"), n.get("last_error"))
                      for n in last.get("nodes", [])}
            raise HarnessError(f"{e}; states: {states}") from None
        return last["nodes"]

    # -- front door --
    def front_door(self, via="unix", timeout=15.0):
        """A socket connected to the front door, nothing sent yet."""
        if via == "unix":
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout)
            s.connect(self.proxy_sock)
        elif via == "tcp":
            s = socket.create_connection((self.tcp_addr, self.tcp_port), timeout=timeout)
        else:
            raise ValueError(via)
        self.sockets.append(s)
        return s

    def connect(self, host, port, via="unix", timeout=15.0, request=None):
        """Send CONNECT host:port (or 'request' verbatim) and read the reply
        head exactly; a 200 leaves the tunnel open in reply.sock, anything
        else reads the body and closes."""
        s = self.front_door(via, timeout)
        t0 = time.monotonic()
        s.sendall(request if request is not None else connect_request(host, port))
        return self.read_reply(s, t0, timeout)

    def read_reply(self, s, t0, timeout=15.0):
        s.settimeout(timeout)
        head = read_head(s)
        elapsed = time.monotonic() - t0
        if not head:
            s.close()
            return ProxyReply(0, "(closed without a reply)", b"", {}, b"", elapsed)
        status, reason, headers = parse_head(head)
        if status == 200:
            return ProxyReply(status, reason, head, headers, b"", elapsed, s)
        body, closed = b"", False
        try:
            n = int(headers.get("content-length", "-1"))
            if n >= 0:
                body = recv_exactly(s, n, 5.0)
                s.settimeout(2.0)
                closed = s.recv(1) == b""
            else:
                body = recv_until_eof(s, timeout=5.0)
                closed = True
        except ConnectionResetError:
            closed = True
        except (OSError, HarnessError):
            pass
        s.close()
        return ProxyReply(status, reason, head, headers, body, elapsed, None, closed)

    def tunnel(self, host, port, via="unix", timeout=15.0):
        """An open tunnel (asserts 200 with nothing but the status line)."""
        r = self.connect(host, port, via, timeout)
        if r.status != 200:
            raise AssertionError(f"CONNECT {hostport(host, port)} via {via}: {r}")
        if r.head != CONNECT_OK:
            raise AssertionError(f"200 head is not exactly {CONNECT_OK!r}: {r.head!r}")
        return r.sock

    def sshtunctl(self, *args, socket_path=None, timeout=30.0, input=None):
        argv = [require_binary(sshtunctl_binary()), "-s", socket_path or self.admin_sock, *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input)


# --- one test's world ---------------------------------------------------------

class TestEnv:
    """Everything one test starts, under one temporary directory, torn down
    in close() whatever happened. The directory is kept when the test failed
    (its path is printed with the log tails)."""

    __test__ = False  # not a pytest class

    def __init__(self, name="test"):
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:24]
        # Short: Unix socket paths must fit in sun_path.
        self.dir = tempfile.mkdtemp(prefix=f"sshtund-{safe}-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.failed = False
        self.nodes = []
        self.servers = []
        self.daemons = []
        self._client_key = None
        self._client_pub = None
        ACTIVE_ENVS.append(self)

    # -- pieces --
    def addr(self):
        return loopback_address()

    @property
    def client_key(self):
        if self._client_key is None:
            path = os.path.join(self.dir, "id_ed25519")
            self._client_pub = ssh_keygen(path, "ed25519")
            self._client_key = path
        return self._client_key

    def use_client_key(self, path, pub):
        """sshtund's identity from now on: nodes made afterwards authorize
        'pub', daemons made afterwards use 'path'."""
        self._client_key, self._client_pub = path, pub

    @property
    def client_pub(self):
        self.client_key  # noqa: B018  (generates it)
        return self._client_pub

    def sshd(self, name, addr=None, port=None, pod_cidr=None, start=True, **kw):
        """An sshd node, started unless start=False (then node.start() later)."""
        addr = addr or self.addr()
        n = SshdNode(self.dir, name, addr, port or free_port(addr), self.client_pub,
                     pod_cidr=pod_cidr, start=False, **kw)
        self.nodes.append(n)
        return n.start() if start else n

    def dropbear(self, name, addr=None, port=None, pod_cidr=None, start=True, **kw):
        addr = addr or self.addr()
        n = DropbearNode(self.dir, name, addr, port or free_port(addr), self.client_pub,
                         pod_cidr=pod_cidr, start=False, **kw)
        self.nodes.append(n)
        return n.start() if start else n

    def server(self, cls, addr=None, **kw):
        s = cls(addr or self.addr(), **kw)
        self.servers.append(s)
        return s

    def known_hosts_file(self, nodes, name="known_hosts.client"):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write("".join(n.known_hosts_line() + "\n" for n in nodes))
        return path

    def sshtund(self, nodes, start=True, **kw):
        kw.setdefault("name", f"sshtund{len(self.daemons) or ''}")
        d = Sshtund(self.dir, nodes, self.client_key, start=False, **kw)
        self.daemons.append(d)
        return d.start() if start else d

    def log_files(self):
        out = [(f"{d.dir}/sshtund.log", d.log_path, 80) for d in self.daemons]
        out += [(f"{n.name} {n.kind}.log", n.log_path, 25) for n in self.nodes]
        return out

    def log_tails(self):
        out = [("test directory", self.dir)]
        for label, path, n in self.log_files():
            out.append((label, tail(path, n)))
        return out

    # -- teardown --
    def close(self):
        """Thaw, close clients, stop the daemons (their exit status is
        checked: SIGTERM must give 0 and no sanitizer report), stop nodes
        and servers. Raises AssertionError after cleaning up if a daemon
        did not stop cleanly."""
        signal.alarm(0)  # every step below has its own deadline
        problems = []
        for n in self.nodes:
            try:
                if n._frozen:
                    n.thaw()
            except Exception as e:  # noqa: BLE001  keep cleaning up
                problems.append(f"thaw {n.name}: {e}")
        for d in self.daemons:
            for s in d.sockets:
                try:
                    s.close()
                except OSError:
                    pass
            try:
                rc = d.stop()
            except Exception as e:  # noqa: BLE001
                problems.append(f"stop sshtund: {e}")
                continue
            if d.expect_clean_exit and rc is not None and rc != 0:
                problems.append(f"sshtund exit status after SIGTERM: {rc} (want 0)")
            rep = d.sanitizer_report() if d.proc else None
            if rep:
                problems.append(f"sanitizer report in sshtund's log: {rep}")
        for n in self.nodes:
            try:
                n.stop()
            except Exception as e:  # noqa: BLE001
                problems.append(f"stop {n.name}: {e}")
        for s in self.servers:
            try:
                s.close()
            except Exception as e:  # noqa: BLE001
                problems.append(f"close server: {e}")
        if self in ACTIVE_ENVS:
            ACTIVE_ENVS.remove(self)
        if problems:
            self.failed = True
            details = "\n\n".join(f"--- {label} ---\n{text}" for label, text in self.log_tails())
            raise AssertionError("teardown: " + "; ".join(problems) + "\n" + details)
        # Kept for a failure worth reading; not when the daemon never ran
        # (not built), which would only litter /tmp run after run.
        if not self.failed or any(d.proc is None for d in self.daemons):
            shutil.rmtree(self.dir, ignore_errors=True)



# --- routing and limits: helpers appended for test_routing and test_limits ----

class HostsSshdNode(SshdNode):
    """An sshd node that resolves names through its own hosts file: it runs
    in a private mount namespace where 'hosts' (name → address) is bound
    over /etc/hosts, so that a node name or hostname sent as a direct-tcpip
    target resolves on that node (and only there). Needs root."""

    def __init__(self, tmp, name, addr, port, client_pubkey, hosts, **kw):
        if not is_root():
            raise HarnessError("a node with its own /etc/hosts needs root (private mount namespace)")
        os.makedirs(os.path.join(tmp, name), exist_ok=True)
        self.hosts_path = os.path.join(tmp, name, "hosts")
        with open(self.hosts_path, "w") as f:
            f.write("127.0.0.1 localhost\n")
            for host, a in hosts.items():
                f.write(f"{a} {host}\n")
        super().__init__(tmp, name, addr, port, client_pubkey, **kw)

    def _argv(self):
        script = 'mount --bind "$1" /etc/hosts && shift && exec "$@"'
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
                self.hosts_path, *super()._argv()]


def sshd_with_hosts(env, name, hosts, addr=None, port=None, pod_cidr=None, **kw):
    """env.sshd() for a HostsSshdNode: started, and torn down with env."""
    addr = addr or env.addr()
    n = HostsSshdNode(env.dir, name, addr, port or free_port(addr), env.client_pub, hosts,
                      pod_cidr=pod_cidr, start=False, **kw)
    env.nodes.append(n)
    return n.start()


def carriers(conns, nodes):
    """For each accepted test-server connection (still open), the name of
    the node whose sshd process holds its other end, or None: which node
    carried the stream. One pass over /proc for the lot."""
    by_local = {}
    for s in tcp_sockets():
        by_local.setdefault(s.local, []).append(s.inode)
    tree = {n.name: set(n.descendants()) for n in nodes}
    every = set().union(*tree.values()) if tree else set()
    inodes = [i for c in conns for i in by_local.get(tuple(c.peer[:2]), [])]
    owners = socket_owner_pids(inodes, every)
    out = []
    for c in conns:
        pids = set()
        for i in by_local.get(tuple(c.peer[:2]), []):
            pids |= owners.get(i, set())
        names = [name for name, t in tree.items() if pids & t]
        out.append(names[0] if len(names) == 1 else None)
    return out


class EchoServer6(EchoServer):
    """EchoServer on an IPv6 address (such as ::1)."""

    def __init__(self, addr="::1", port=None):
        self.addr = addr
        self.sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        for _ in range(200):
            self.port = port or _rng.randint(20000, 32000)
            try:
                self.sock.bind((addr, self.port))
                break
            except OSError:
                if port:
                    raise
        else:
            raise HarnessError(f"no free port on {addr}")
        self.sock.listen(128)
        self.conns = []
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._accept_loop, daemon=True,
                                        name=f"EchoServer6-[{addr}]:{self.port}")
        self._thread.start()


def cpu_seconds(pid):
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_fds_back(pid, base, timeout=20, what="", slack=3):
    """Wait until pid has base +- slack descriptors open; returns how many.
    Raises AssertionError (a test's failure, not the harness's) if not."""
    last = {}

    def back():
        last["fds"] = open_fds(pid)
        return abs(last["fds"] - base) <= slack

    try:
        wait_until(back, timeout, "the daemon's descriptors back to the baseline")
    except HarnessError as e:
        raise AssertionError(f"{what}{e}: {last['fds']} open, baseline {base}") from None
    return last["fds"]


class HoldServer(TcpServer):
    """Reads until the client's EOF, then keeps its side open (it neither
    writes nor closes) until the test ends: a target that outlives the
    client's half of the stream."""

    def handle(self, c):
        while True:
            data = c.sock.recv(256 * 1024)
            if not data:
                c.eof.set()
                break
            c.nreceived += len(data)
        while not self._stopping:
            time.sleep(0.05)


# --- fault injection: helpers appended for test_faults --------------------------

def faultfd_library():
    """The LD_PRELOAD shim built from tests/faults/faultfd.c by `make check`."""
    return os.path.join(BUILDDIR, "tests", "faults", "libfaultfd.so")


def asan_runtime(path):
    """The ASan runtime the program at 'path' links (from ldd), or None."""
    try:
        out = subprocess.run(["ldd", path], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"^\s*libasan\S*\s+=>\s+(\S+)", out, re.M)
    return m.group(1) if m else None


def faultfd_env(daemon, seed, short=0.3, eagain=0.1, eintr=0.05, reset=0.0005, reset_inet=None):
    """Environment for an Sshtund not yet started that runs it under the
    fault shim: the front door's Unix socket and every TCP socket (the SSH
    side) faulted, the admin socket not; 'reset_inet', if given, is the
    reset probability on the TCP side instead of 'reset'. The shim must come after the ASan
    runtime in the link map: a sanitizer build preloads that first, and its
    interceptors then call through to the shim."""
    lib = faultfd_library()
    if not os.path.isfile(lib):
        raise HarnessError(f"{lib} is missing: `make check` builds it "
                           f"(or `make tests/faults/libfaultfd.so` in {BUILDDIR})")
    preload = [lib]
    asan = asan_runtime(daemon.binary)
    if asan:
        preload.insert(0, asan)
    env = {
        "LD_PRELOAD": " ".join(preload),
        "FAULTFD_SEED": str(seed),
        "FAULTFD_SHORT": repr(float(short)),
        "FAULTFD_EAGAIN": repr(float(eagain)),
        "FAULTFD_EINTR": repr(float(eintr)),
        "FAULTFD_RESET": repr(float(reset)),
        "FAULTFD_UNIX_PATH": daemon.proxy_sock,
    }
    if reset_inet is not None:
        env["FAULTFD_RESET_INET"] = repr(float(reset_inet))
    return env


_FAULTFD_REPORT = re.compile(r"^faultfd: pid=(\d+) seed=(\d+) unix: (.*?) inet: (.*)$", re.M)


def faultfd_counts(log_text, pid=None):
    """The shim's exit report in a log (of process 'pid', if given) as
    {"unix": {"calls": N, "short": N, ...}, "inet": {...}}, or None."""
    found = None
    for m in _FAULTFD_REPORT.finditer(log_text):
        if pid is not None and int(m.group(1)) != pid:
            continue
        found = {side: {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", text)}
                 for side, text in (("unix", m.group(3)), ("inet", m.group(4)))}
    return found


# --- chaos, hostile peers and scale: helpers appended for test_chaos,
# test_hostile, test_scale and bench/ --------------------------------------------

import resource  # noqa: E402  (appended section)
import select  # noqa: E402
import selectors  # noqa: E402
import sys  # noqa: E402


def raise_nofile(want):
    """Raise this process's RLIMIT_NOFILE to at least 'want' descriptors,
    the hard limit too when allowed (root), so that the daemons and nodes
    started afterwards inherit it. Returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return soft
    if hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return want
        except (ValueError, OSError):
            pass
    soft = min(max(soft, want), hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft


def rss_kib(pid):
    """VmRSS of a process in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1])
    raise HarnessError(f"no VmRSS for pid {pid}")


def serve_echo(addr, port, ready=None):
    """An echo server for thousands of connections in one epoll loop (no
    thread per connection): run in a process of its own by EchoProcess.
    Echoes every byte; on the client's EOF, what is left, then closes."""
    sel = selectors.DefaultSelector()
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, port))
    ls.listen(65535)
    ls.setblocking(False)
    sel.register(ls, selectors.EVENT_READ, None)
    pending = {}  # sock -> bytearray not yet echoed
    if ready:
        print(ready, flush=True)

    def close(s):
        sel.unregister(s)
        pending.pop(s, None)
        s.close()

    while True:
        for key, ev in sel.select():
            s = key.fileobj
            if s is ls:
                for _ in range(256):
                    try:
                        c, _ = ls.accept()
                    except (BlockingIOError, ConnectionAbortedError):
                        break
                    except OSError:  # EMFILE: the next round retries
                        break
                    c.setblocking(False)
                    pending[c] = bytearray()
                    sel.register(c, selectors.EVENT_READ, None)
                continue
            out = pending[s]
            try:
                if ev & selectors.EVENT_READ:
                    data = s.recv(65536)
                    if not data:
                        if out:
                            s.setblocking(True)
                            s.settimeout(10)
                            s.sendall(out)
                        close(s)
                        continue
                    out += data
                if out:
                    try:
                        del out[:s.send(out)]
                    except BlockingIOError:
                        pass
            except OSError:
                close(s)
                continue
            sel.modify(s, selectors.EVENT_WRITE if out else selectors.EVENT_READ, None)


class EchoProcess:
    """serve_echo() in a child process (optionally inside a NetnsSshd's
    namespace, through 'prefix'); close() stops it."""

    def __init__(self, log_dir, addr, port, prefix=(), listening=None):
        self.addr, self.port = addr, port
        self.log_path = os.path.join(log_dir, f"echo-{addr}-{port}.log")
        code = ("import sys; sys.path.insert(0, %r); import sshtund_testlib as tl; "
                "tl.serve_echo(%r, %d)" % (os.path.dirname(os.path.abspath(__file__)), addr, port))
        self.proc = _spawn([*prefix, sys.executable, "-c", code], self.log_path)
        check = listening or (lambda: is_listening(addr, port))

        def ready():
            if self.proc.poll() is not None:
                raise HarnessError(f"the echo server exited with {self.proc.returncode}:\n"
                                   + tail(self.log_path, 20))
            return check()

        wait_until(ready, 15, f"the echo server on {addr}:{port}")

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def _netns_inode(pid):
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


class NetnsNode:
    """One node of a NetnsSshd: an address on the namespace's loopback,
    port 22, the shared host key."""

    kind = "netns"

    def __init__(self, netns, name, addr):
        self.netns = netns
        self.name = name
        self.addr = addr
        self.port = 22
        self.pod_cidr = None
        self.config_extra = {}

    def config_entry(self):
        e = {"name": self.name, "address": self.addr, "port": self.port}
        e.update(self.config_extra)
        return e

    def known_hosts_line(self):
        return f"{self.addr} {self.netns.host_key_blob}"


class NetnsHost:
    """A network namespace held by a holder process (self.holder) and the
    processes run inside it (self.procs, each entering it with nsenter):
    what NetnsSshd and dropbear_farm.DropbearFarm share. A subclass sets
    dir, nice, holder and procs."""

    @property
    def prefix(self):
        """argv prefix that runs a program inside the namespace (the
        host's file system still)."""
        return ["nsenter", f"--net=/proc/{self.holder.pid}/ns/net", "--"]

    def run(self, argv, **kw):
        kw.setdefault("timeout", 30)
        return subprocess.run([*self.prefix, *argv], check=True, capture_output=True, **kw)

    def spawn(self, argv, log_path, env=None):
        p = _spawn([*self.prefix, *argv], log_path, env)
        self.procs.append(p)
        return p

    def _tcp_table(self):
        """The namespace's /proc/net/tcp and tcp6 rows, split."""
        rows = []
        for name in ("tcp", "tcp6"):
            try:
                with open(f"/proc/{self.holder.pid}/net/{name}") as f:
                    next(f)
                    rows += [ln.split() for ln in f]
            except (OSError, StopIteration):
                pass
        return rows

    def listening(self, addr, port):
        """Whether something in the namespace listens on addr:port."""
        want = "%08X:%04X" % (struct.unpack("=I", socket.inet_aton(addr))[0], port)
        return any(r[1] == want and r[3] == "0A" for r in self._tcp_table())

    def echo_server(self, port=None):
        """An EchoProcess on 0.0.0.0:port inside the namespace: port on
        every node address."""
        port = port or _rng.randint(20000, 32000)
        nice = ["nice", "-n", str(self.nice)] if self.nice else []
        e = EchoProcess(self.dir, "0.0.0.0", port, [*self.prefix, *nice],
                        lambda: self.listening("0.0.0.0", port))
        self.procs.append(e.proc)
        return e

    def hostile_servers(self, specs, port=22):
        """serve_hostile(specs, port) in a process inside the namespace:
        a HostileSshServer on each (address, behaviour) of specs; returns
        the process (close() stops it)."""
        log_path = os.path.join(self.dir, f"hostile-{port}.log")
        code = ("import sys; sys.path.insert(0, %r); import sshtund_testlib as tl; "
                "tl.serve_hostile(%r, %d)" % (os.path.dirname(os.path.abspath(__file__)), list(specs), port))
        p = self.spawn([sys.executable, "-c", code], log_path)

        def ready():
            if p.poll() is not None:
                raise HarnessError(f"the hostile servers exited with {p.returncode}:\n" + tail(log_path, 20))
            return all(self.listening(addr, port) for addr, _ in specs)

        wait_until(ready, 15, f"{len(specs)} hostile servers in the namespace")
        return p

    def pids(self):
        """Every process inside the namespace but the holder."""
        ino = _netns_inode(self.holder.pid) if self.holder else None
        if ino is None:
            return []
        out = []
        for d in os.listdir("/proc"):
            if d.isdigit() and int(d) != self.holder.pid and _netns_inode(int(d)) == ino:
                out.append(int(d))
        return out

    def close(self):
        # what runs inside first, the per-connection children of the
        # servers too (they have no death signal; a few rounds, for those
        # forked meanwhile), then what this object started, the holder last
        for _ in range(3):
            pids = self.pids()
            if not pids:
                break
            for p in pids:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
        for p in self.procs + ([self.holder] if self.holder else []):
            if p.poll() is None:
                p.kill()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                pass


class NetnsSshd(NetnsHost):
    """One OpenSSH sshd on 0.0.0.0:22 in a network namespace of its own. In a
    fresh namespace all of 127.0.0.0/8 is the loopback, so every 127.x.y.z
    address is one more node that the one sshd serves (nodes(n)): a
    thousand nodes for the price of one listener.

    The namespace belongs to a holder process (`unshare --net sleep`) and
    every process run inside it (spawn(), run()) enters it with nsenter;
    all of them die with the test process (PR_SET_PDEATHSIG), so nothing,
    the namespace included, outlives even a killed test. close() kills
    what still runs inside. Needs root. Create it from the main thread:
    the death signal follows the thread that started a process."""

    def __init__(self, env, name="netns", client_pub=None, max_startups=2000, max_sessions=1000,
                 extra_config="", log_level="ERROR", nice=0, sshd_args=()):
        if not is_root():
            raise HarnessError("a network namespace needs root")
        self.dir = os.path.join(env.dir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.nice = nice
        self.sshd_args = list(sshd_args)
        self.procs = []
        self.holder = None
        self.sshd = None
        self.host_key = os.path.join(self.dir, "ssh_host_ed25519_key")
        self.host_pub = ssh_keygen(self.host_key)
        self.host_key_blob = " ".join(self.host_pub.split()[:2])
        self.authorized_keys = os.path.join(self.dir, "authorized_keys")
        with open(self.authorized_keys, "w") as f:
            f.write((client_pub or env.client_pub).strip() + "\n")
        self.config_path = os.path.join(self.dir, "sshd_config")
        self.log_path = os.path.join(self.dir, "sshd.log")
        with open(self.config_path, "w") as f:
            f.write(f"""ListenAddress 0.0.0.0:22
HostKey {self.host_key}
PidFile {self.dir}/sshd.pid
AuthorizedKeysFile {self.authorized_keys}
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowTcpForwarding yes
LogLevel {log_level}
MaxStartups {max_startups}
MaxSessions {max_sessions}
PrintMotd no
UseDNS no
{extra_config}
""")
        env.servers.append(self)  # closed by env.close(), after the daemons
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    def _start(self):
        self.holder = _spawn(["unshare", "--net", "--", "sleep", "infinity"],
                             os.path.join(self.dir, "holder.log"))
        base = _netns_inode(os.getpid())
        wait_until(lambda: self.holder.poll() is None and _netns_inode(self.holder.pid) not in (None, base),
                   10, "the namespace holder")
        self.run(["ip", "link", "set", "lo", "up"])
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        nice = ["nice", "-n", str(self.nice)] if self.nice else []
        self.sshd = self.spawn([*nice, SSHD, "-D", "-e", *self.sshd_args, "-f", self.config_path],
                               self.log_path)

        def ready():
            if self.sshd.poll() is not None:
                raise HarnessError(f"sshd in the namespace exited with {self.sshd.returncode}:\n"
                                   + tail(self.log_path, 20))
            return self.listening("0.0.0.0", 22)

        wait_until(ready, 15, "sshd in the namespace")

    @staticmethod
    def address(i):
        """The i-th node address (0-based): 127.1.0.1, ... 127.1.0.250,
        127.1.1.1, ... (up to 64,000 of them)."""
        return "127.1.%d.%d" % (i // 250, i % 250 + 1)

    def nodes(self, n, prefix="n"):
        return [NetnsNode(self, f"{prefix}{i + 1}", self.address(i)) for i in range(n)]

    def sshd_children(self):
        return [p for p in descendants(self.sshd.pid)] if self.sshd and self.sshd.poll() is None else []


class NetnsSshtund(Sshtund):
    """An Sshtund run inside a NetnsSshd's namespace (its sockets are files:
    the test reaches them from outside). Without -d unless debug: a
    thousand nodes' debug lines would be measured too. 'nice' lowers its
    priority, for a test that shares the machine with others."""

    def __init__(self, tmp, nodes, client_key, netns, debug=False, nice=0, **kw):
        self.netns = netns
        self.nice = nice
        kw.setdefault("tcp_listen", False)
        super().__init__(tmp, nodes, client_key, debug=debug, **kw)

    def argv(self):
        nice = ["nice", "-n", str(self.nice)] if self.nice else []
        return [*self.netns.prefix, *nice, *super().argv()]

    def start(self, timeout=30.0):
        # the front door opens once every node had its first attempt: a
        # thousand nodes' worth; the caller waits for what it needs
        return super().start(timeout, wait_proxy=False)


# --- hostile "nodes": SSH servers that misbehave in the transport -------------

SSH_BANNER = b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"


def ssh_string(b):
    if isinstance(b, str):
        b = b.encode()
    return struct.pack(">I", len(b)) + b


def ssh_packet(payload, block=8):
    """An unencrypted SSH binary packet (RFC 4253 section 6) around payload."""
    pad = block - (5 + len(payload)) % block
    if pad < 4:
        pad += block
    return struct.pack(">IB", 1 + len(payload) + pad, pad) + payload + os.urandom(pad)


def ssh_kexinit():
    """A server KEXINIT offering what libssh2 and OpenSSH agree on."""
    lists = ["curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256",
             "ssh-ed25519", "aes128-ctr", "aes128-ctr", "hmac-sha2-256", "hmac-sha2-256",
             "none", "none", "", ""]
    return ssh_packet(bytes([20]) + os.urandom(16) + b"".join(ssh_string(x) for x in lists)
                      + b"\x00" + struct.pack(">I", 0))


class HostileSshServer(TcpServer):
    """A "node" that misbehaves in the SSH transport, per 'behaviour':

      banner-endless  "SSH-2.0-" and then bytes without end, never a newline
      banner-slow     "SSH-2.0-" and then one byte every 0.2 s, never a newline
      lines-endless   line after line without end, never the version line
      huge-packet     a valid banner, then a packet length of 0xFFFFFFF0
      stall-kex       a valid banner and KEXINIT, then silence

    Each connection records when it was accepted (conn.t_accept), when the
    client gave up - EOF or reset - (conn.t_end, conn.how) and the bytes
    each way; it never closes first."""

    BEHAVIOURS = ("banner-endless", "banner-slow", "lines-endless", "huge-packet", "stall-kex")

    def __init__(self, addr, behaviour, port=None):
        if behaviour not in self.BEHAVIOURS:
            raise ValueError(behaviour)
        self.behaviour = behaviour
        super().__init__(addr, port)

    def _script(self):
        """(bytes to send, seconds to wait before the next) pairs; None as
        bytes: stop sending, keep listening."""
        b = self.behaviour
        if b == "banner-endless":
            yield b"SSH-2.0-", 0
            while True:
                yield b"x" * 16384, 0
        elif b == "banner-slow":
            yield b"SSH-2.0-", 0.2
            while True:
                yield b"y", 0.2
        elif b == "lines-endless":
            while True:
                yield b"this is not the version line, nor is the next one\r\n" * 256, 0
        elif b == "huge-packet":
            yield SSH_BANNER, 0.05
            yield struct.pack(">I", 0xFFFFFFF0) + os.urandom(64), 0
            yield None, 0
        elif b == "stall-kex":
            yield SSH_BANNER, 0
            yield ssh_kexinit(), 0
            yield None, 0

    def handle(self, c):
        c.t_accept = time.monotonic()
        c.t_end = None
        c.how = None
        c.client_banner = b""
        sock = c.sock
        sock.setblocking(False)
        script = self._script()
        pending, next_at, done = b"", time.monotonic(), False
        try:
            while not self._stopping:
                now = time.monotonic()
                if not pending and not done and now >= next_at:
                    data, wait = next(script)
                    if data is None:
                        done = True
                    else:
                        pending, next_at = data, now + wait
                timeout = 0.05 if done or pending else max(0.0, min(0.05, next_at - now))
                r, w, _ = select.select([sock], [sock] if pending else [], [], timeout)
                if r:
                    try:
                        data = sock.recv(65536)
                    except ConnectionResetError:
                        c.how = "reset"
                        return
                    except BlockingIOError:
                        data = None
                    if data == b"":
                        c.how = "eof"
                        return
                    if data:
                        c.nreceived += len(data)
                        if len(c.client_banner) < 256:
                            c.client_banner += data[:256 - len(c.client_banner)]
                if w and pending:
                    try:
                        n = sock.send(pending)
                    except BlockingIOError:
                        n = 0
                    except (BrokenPipeError, ConnectionResetError):
                        c.how = "reset"
                        return
                    pending = pending[n:]
                    c.sent += n
        finally:
            c.t_end = time.monotonic()
            if c.how is None:
                c.how = "still open"

    def sessions(self):
        """[(seconds from accept to the client's hang-up or None, how)]."""
        with self._cond:
            conns = list(self.conns)
        return [((c.t_end - c.t_accept) if getattr(c, "t_end", None) and c.how in ("eof", "reset")
                 else None, getattr(c, "how", None)) for c in conns]


def serve_hostile(specs, port):
    """A HostileSshServer on each (address, behaviour) of specs, port
    'port', until killed: run in a process of its own by
    NetnsHost.hostile_servers()."""
    servers = [HostileSshServer(addr, behaviour, port) for addr, behaviour in specs]
    print(f"{len(servers)} hostile servers on port {port}", flush=True)
    while True:
        time.sleep(3600)


class HostileNode:
    """A HostileSshServer as a node of sshtund.conf (known_hosts holds some
    key for it: it never gets that far)."""

    kind = "hostile"

    def __init__(self, env, name, behaviour, addr=None):
        self.name = name
        self.server = env.server(HostileSshServer, addr=addr or env.addr(), behaviour=behaviour)
        self.addr, self.port = self.server.addr, self.server.port
        self.behaviour = behaviour
        self.pod_cidr = None
        self.config_extra = {}
        self._blob = " ".join(env.client_pub.split()[:2])

    def config_entry(self):
        return {"name": self.name, "address": self.addr, "port": self.port}

    def known_hosts_line(self):
        return f"{known_hosts_name(self.addr, self.port)} {self._blob}"


# --- Konnectivity upstreams: helpers appended for test_konnectivity -------------

TINYPROXY = "/usr/bin/tinyproxy"


class Tinyproxy:
    """Debian's tinyproxy as a tcp Konnectivity upstream: the same front-door
    contract as konnectivity-server in http-connect mode (CONNECT host:port,
    one reply head, then raw bytes). CONNECT is limited to the ports given
    (tinyproxy's default is 443 and 563 only); its log (LogLevel Info) names
    every target it was asked for."""

    _REQUEST = re.compile(r"Request \(file descriptor \d+\): CONNECT (\S+) HTTP/1\.[01]")

    def __init__(self, tmp, connect_ports, addr=None, port=None, name="tinyproxy"):
        require_binary(TINYPROXY)
        self.addr = addr or loopback_address()
        self.port = port or free_port(self.addr)
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir, exist_ok=True)
        self.config_path = os.path.join(self.dir, "tinyproxy.conf")
        self.log_path = os.path.join(self.dir, "tinyproxy.log")
        self.out_path = os.path.join(self.dir, "tinyproxy.out")
        self.proc = None
        lines = [f"Port {self.port}", f"Listen {self.addr}", "Timeout 60", "MaxClients 200",
                 "Allow 127.0.0.0/8", f'LogFile "{self.log_path}"', "LogLevel Info"]
        lines += [f"ConnectPort {p}" for p in sorted(set(connect_ports))]
        with open(self.config_path, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.start()

    @property
    def upstream(self):
        """The value for konnectivity.upstream."""
        return f"tcp:{self.addr}:{self.port}"

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout=10.0):
        self.proc = _spawn([TINYPROXY, "-d", "-c", self.config_path], self.out_path)

        def ready():
            if self.proc.poll() is not None:
                raise HarnessError(f"tinyproxy exited with {self.proc.returncode}:\n" + tail(self.out_path, 20)
                                   + "\n" + tail(self.log_path, 20))
            return is_listening(self.addr, self.port)

        wait_until(ready, timeout, f"tinyproxy to listen on {self.addr}:{self.port}")
        return self

    def stop(self):
        if not self.alive():
            return
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    close = stop

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def targets(self):
        """Every CONNECT target ("host:port") it was asked for, in order."""
        return self._REQUEST.findall(self.log_text())


class KonnectivityStandIn:
    """konnectivity-server's HTTP CONNECT front door on a Unix socket, as its
    pkg/server/tunnel.go answers: "200 Connection Established" once the
    target is dialed, then raw bytes until either side ends (the client's
    EOF ends the whole tunnel: no half-close through it); or, per target
    ("host:port" → "hang": no answer at all; or a status), its error replies
    byte for byte: 500 "currently
    no tunnels available" (no agent for that host), 502 and 504 (the dial to
    the agent failed or timed out), and a 503 for other front doors. Each
    error reply has no Content-Length: the close ends its body. Every
    target asked for is recorded in .targets."""

    REPLIES = {
        500: (b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\n"
              b"currently no tunnels available: No agent available"),
        502: (b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
              b"Failed to tunnel dial request: rpc error: code = Unavailable desc = transport is closing\r\n"),
        503: (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
              b"no agent connected yet\r\n"),
        504: (b"HTTP/1.1 504 Gateway Timeout\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
              b"Backend dial timeout: dial timeout, backend dial timeout\r\n"),
    }
    OK = b"HTTP/1.1 200 Connection Established\r\n\r\n"

    def __init__(self, path, replies=None, default="dial"):
        self.path = path
        self.replies = dict(replies or {})  # "host:port" -> "dial" or a status in REPLIES
        self.default = default
        self.targets = []
        self.heads = []
        self._lock = threading.Lock()
        self._open = []
        self.sock = None
        self.start()

    @property
    def upstream(self):
        return f"unix:{self.path}"

    def start(self):
        if self.sock is not None:
            raise HarnessError("the stand-in is already listening")
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(self.path)
        s.listen(128)
        self.sock = s
        threading.Thread(target=self._accept_loop, args=(s,), daemon=True,
                         name=f"KonnectivityStandIn-{self.path}").start()
        return self

    def stop(self):
        """konnectivity-server goes away: the socket closes and its file is
        removed, and open tunnels end."""
        s, self.sock = self.sock, None
        if s is not None:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        with self._lock:
            conns, self._open = self._open, []
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    close = stop

    def _accept_loop(self, listener):
        while True:
            try:
                c, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def count(self, target):
        with self._lock:
            return self.targets.count(target)

    def _serve(self, c):
        far = None
        try:
            c.settimeout(10)
            head = read_head(c, limit=16384)
            m = re.match(rb"^CONNECT (\S+) HTTP/1\.1\r\n", head)
            if not m:
                c.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
                          b"this proxy only supports CONNECT passthrough\n")
                return
            target = m.group(1).decode("latin-1")
            with self._lock:
                self.targets.append(target)
                self.heads.append(head)
            what = self.replies.get(target, self.default)
            if what == "hang":
                # an agent that never answers the dial: no reply at all
                c.settimeout(60)
                while c.recv(4096):
                    pass
                return
            if what != "dial":
                c.sendall(self.REPLIES[what])
                return
            host, _, port = target.rpartition(":")
            try:
                far = socket.create_connection((host.strip("[]"), int(port)), timeout=5)
            except OSError as e:
                c.sendall(self.REPLIES[502].split(b"\r\n\r\n")[0] + b"\r\n\r\n"
                          + f"Failed to tunnel dial request: {e}\r\n".encode())
                return
            c.sendall(self.OK)
            with self._lock:
                self._open.append(c)
            self._relay(c, far)
        except OSError:
            pass
        finally:
            for s in (c, far):
                if s is not None:
                    try:
                        s.close()
                    except OSError:
                        pass

    @staticmethod
    def _relay(a, b):
        import select
        a.settimeout(None)
        b.settimeout(None)
        while True:
            r, _, _ = select.select([a, b], [], [], 30)
            if not r:
                return
            for s in r:
                data = s.recv(65536)
                if not data:
                    # either side's EOF ends the tunnel, as CLOSE_REQ does
                    return
                (b if s is a else a).sendall(data)
