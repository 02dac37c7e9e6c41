#!/usr/bin/env python3
# `make bench`: sshtund and OpenSSH `ssh -N -L` over the same sshd, in one run,
# side by side; prints the ratios and writes them into bench/RESULTS.md.
#
# Everything it starts (sshd, the target servers, sshtund, ssh, the network
# namespace of the memory and scale measurements) lives on fresh 127.R.R.R
# addresses and is stopped at the end, also on failure or Ctrl-C.

import argparse
import asyncio
import datetime
import os
import platform
import re
import resource
import selectors
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.path.dirname(HERE)
RESULTS_PATH = os.path.join(HERE, "RESULTS.md")
RESULTS_MARKER = "<!-- Everything below is written by bench/bench.py: edit above this line. -->"

CIPHER = "aes128-ctr"
MAC = "hmac-sha2-256"

# Bulk protocol of the bench's target server: one command byte and a
# big-endian byte count. BULK_DOWN: the server sends that many bytes and
# closes; BULK_UP: it reads that many and answers one ACK byte.
BULK_DOWN = b"D"
BULK_UP = b"U"
ACK = b"K"
CHUNK = 1 << 20

MB = 1e6  # throughput is in MB/s (10^6 bytes), sizes in MiB

# What each ratio (sshtund / reference) should be; see RESULTS.md.
TARGETS = {
        "throughput": (">=", 0.8),
        "bare": (">=", 0.9),          # single stream against the bare libssh2 read loop
        "latency_p50": ("<=", 1.1),
        "latency_p99": ("<=", 1.2),
        "concurrent_time": ("<=", 1.5),
        "concurrent_errors": ("==", 0),
        "rss": ("<=", 0.25),
        "cpu": ("<=", 1.2),
}

SECTIONS = ("single", "bare", "parallel", "latency", "concurrent", "memory", "scale")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- the target server (a process of its own: the client and the server do not
# share one interpreter lock) ------------------------------------------------

class _ServerConn:
    __slots__ = ("sock", "kind", "hdr", "left", "out", "eof", "state")

    def __init__(self, sock, kind):
        self.sock = sock
        self.kind = kind
        self.hdr = b""
        self.left = 0
        self.out = bytearray()
        self.eof = False
        self.state = kind if kind in ("echo", "http") else "hdr"


def serve(addr, echo_port, bulk_port, http_port=0):
    """Echo on echo_port; the bulk protocol on bulk_port; on http_port (if
    set) "200 ok" to any request, the kubelet healthz the busy config's
    probe asks for. One epoll loop: 1,000 concurrent connections cost no
    threads."""
    block = memoryview(os.urandom(CHUNK))
    sink = bytearray(CHUNK)
    sel = selectors.DefaultSelector()

    def listener(port, kind):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port))
        s.listen(4096)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, ("listen", kind))

    def close(c):
        sel.unregister(c.sock)
        c.sock.close()

    def want(c, events):
        sel.modify(c.sock, events, ("conn", c))

    def on_echo(c, ev):
        if ev & selectors.EVENT_READ and not c.eof:
            data = c.sock.recv(256 * 1024)
            if data:
                c.out += data
            else:
                c.eof = True
        if c.out:
            try:
                n = c.sock.send(c.out)
                del c.out[:n]
            except BlockingIOError:
                pass
        if c.eof and not c.out:
            try:
                c.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            close(c)
            return
        events = 0
        if not c.eof and len(c.out) < CHUNK:
            events |= selectors.EVENT_READ
        if c.out:
            events |= selectors.EVENT_WRITE
        want(c, events)

    def on_http(c, ev):
        data = c.sock.recv(65536)
        c.hdr += data
        if data and b"\r\n\r\n" not in c.hdr:
            return
        try:
            c.sock.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        except OSError:
            pass
        close(c)

    def on_bulk(c, ev):
        if c.state == "hdr":
            data = c.sock.recv(9 - len(c.hdr))
            if not data:
                close(c)
                return
            c.hdr += data
            if len(c.hdr) < 9:
                return
            c.left = struct.unpack(">Q", c.hdr[1:])[0]
            if c.hdr[:1] == BULK_DOWN:
                c.state = "down"
                want(c, selectors.EVENT_WRITE)
            elif c.hdr[:1] == BULK_UP:
                c.state = "up"
            else:
                close(c)
            return
        if c.state == "down":
            while c.left > 0:
                try:
                    n = c.sock.send(block[:min(c.left, CHUNK)])
                except BlockingIOError:
                    return
                c.left -= n
            c.sock.shutdown(socket.SHUT_WR)
            close(c)
        elif c.state == "up":
            n = c.sock.recv_into(sink, min(c.left, CHUNK))
            if n == 0:
                close(c)
                return
            c.left -= n
            if c.left == 0:
                c.sock.send(ACK)
                close(c)

    listener(echo_port, "echo")
    listener(bulk_port, "bulk")
    if http_port:
        listener(http_port, "http")
    print("ready", flush=True)
    while True:
        for key, ev in sel.select():
            what, arg = key.data
            if what == "listen":
                while True:
                    try:
                        s, _ = key.fileobj.accept()
                    except (BlockingIOError, ConnectionAbortedError):
                        break
                    s.setblocking(False)
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    sel.register(s, selectors.EVENT_READ, ("conn", _ServerConn(s, arg)))
                continue
            try:
                {"echo": on_echo, "http": on_http}.get(arg.kind, on_bulk)(arg, ev)
            except OSError:
                try:
                    close(arg)
                except (KeyError, ValueError, OSError):
                    pass


# --- ways to reach the targets -------------------------------------------------

def recv_head(s, limit=8192):
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        data = s.recv(limit)
        if not data:
            raise ConnectionError(f"front door closed after {head!r}")
        head += data
        if len(head) > limit:
            raise ConnectionError("reply head too long")
    return head


class DirectPath:
    name = "direct TCP"

    def __init__(self, targets):
        self.targets = targets  # "echo"/"bulk" -> (addr, port)

    def open(self, which, timeout=60.0):
        s = socket.create_connection(self.targets[which], timeout=timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    async def aopen(self, which):
        return await asyncio.open_connection(*self.targets[which])


class SshLPath(DirectPath):
    """ssh -N -L: one local port per target; the channel opens on connect."""
    name = "ssh -L"

    def __init__(self, forwards, proc):
        super().__init__(forwards)
        self.pid = proc.pid


class SshtundPath:
    """CONNECT through sshtund's front door, 200 before any payload."""

    def __init__(self, daemon, targets, via="unix"):
        self.daemon = daemon
        self.targets = targets
        self.via = via
        self.name = f"sshtund ({via})"
        self.pid = daemon.pid

    def _request(self, which):
        host, port = self.targets[which]
        return f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()

    def open(self, which, timeout=60.0):
        if self.via == "unix":
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout)
            s.connect(self.daemon.proxy_sock)
        else:
            s = socket.create_connection((self.daemon.tcp_addr, self.daemon.tcp_port),
                                         timeout=timeout)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(self._request(which))
        head = recv_head(s)
        if not head.startswith(b"HTTP/1.1 200"):
            s.close()
            raise ConnectionError(head.split(b"\r\n")[0].decode(errors="replace"))
        return s

    async def aopen(self, which):
        if self.via == "unix":
            r, w = await asyncio.open_unix_connection(self.daemon.proxy_sock)
        else:
            r, w = await asyncio.open_connection(self.daemon.tcp_addr, self.daemon.tcp_port)
        w.write(self._request(which))
        head = await r.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            w.close()
            raise ConnectionError(head.split(b"\r\n")[0].decode(errors="replace"))
        return r, w


# --- CPU time of a process -------------------------------------------------------

def cpu_ns(pid):
    """On-CPU nanoseconds of every thread of pid (schedstat: exact, unlike
    utime+stime's clock ticks)."""
    total = 0
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                total += int(f.read().split()[0])
        return total
    except (OSError, ValueError, IndexError):
        pass
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 10**9 // os.sysconf("SC_CLK_TCK")


def tree_cpu_ns(pid):
    """CPU time of pid and of its children it has reaped (utime, stime,
    cutime, cstime), in nanoseconds; 0 for a process gone meanwhile."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return sum(int(x) for x in fields[11:15]) * 10**9 // os.sysconf("SC_CLK_TCK")


def proc_mem_kib(pid):
    """{VmRSS, RssAnon, Pss} in KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for ln in f:
            k, _, v = ln.partition(":")
            if k in ("VmRSS", "RssAnon"):
                out[k] = int(v.split()[0])
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for ln in f:
                if ln.startswith("Pss:"):
                    out["Pss"] = int(ln.split()[1])
    except OSError:
        pass
    return out


# --- measurements ----------------------------------------------------------------

def transfer_down(path, nbytes):
    s = path.open("bulk")
    buf = memoryview(bytearray(CHUNK))
    got = 0
    t0 = time.perf_counter()
    s.sendall(BULK_DOWN + struct.pack(">Q", nbytes))
    while got < nbytes:
        n = s.recv_into(buf)
        if n == 0:
            raise ConnectionError(f"{path.name}: EOF after {got} of {nbytes} bytes")
        got += n
    dt = time.perf_counter() - t0
    s.close()
    return dt


_UP_BLOCK = memoryview(os.urandom(CHUNK))


def transfer_up(path, nbytes):
    s = path.open("bulk")
    left = nbytes
    t0 = time.perf_counter()
    s.sendall(BULK_UP + struct.pack(">Q", nbytes))
    while left > 0:
        n = min(left, CHUNK)
        s.sendall(_UP_BLOCK[:n])
        left -= n
    if s.recv(1) != ACK:
        raise ConnectionError(f"{path.name}: no ACK after the upload")
    dt = time.perf_counter() - t0
    s.close()
    return dt


def parallel(path, fn, nstreams, nbytes):
    """Aggregate seconds for nstreams transfers started together."""
    # Open every stream first: the clock measures bytes, not channel opens.
    socks = []
    real_open = path.open

    for _ in range(nstreams):
        socks.append(real_open("bulk"))
    it = iter(socks)
    lock = threading.Lock()

    class Preopened:
        name = path.name

        @staticmethod
        def open(which):
            with lock:
                return next(it)

    barrier = threading.Barrier(nstreams + 1)
    errors = []

    def run():
        barrier.wait()
        try:
            fn(Preopened, nbytes)
        except Exception as e:  # noqa: BLE001  reported below
            errors.append(e)

    threads = [threading.Thread(target=run, daemon=True) for _ in range(nstreams)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join(300)
    dt = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return dt


def latency_trials(path, trials):
    """Seconds from connect to the echoed byte, one stream at a time."""
    out = []
    for _ in range(trials):
        t0 = time.perf_counter()
        s = path.open("echo", timeout=10.0)
        s.sendall(b"x")
        if s.recv(1) != b"x":
            raise ConnectionError(f"{path.name}: echo failed")
        out.append(time.perf_counter() - t0)
        s.close()
    return out


def percentile(values, p):
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(-(-p * len(v) // 100)) - 1))  # nearest rank
    return v[k]


def concurrent_streams(path, n, payload_size, timeout=60.0):
    """Open n streams at once, each echoes payload_size bytes. Returns
    (seconds until the last finished, {error: count})."""
    payload = os.urandom(payload_size)
    errors = {}

    async def one():
        r, w = await path.aopen("echo")
        try:
            w.write(payload)
            await w.drain()
            data = await r.readexactly(len(payload))
            if data != payload:
                raise ConnectionError("echo differs")
        finally:
            w.close()

    async def guarded():
        try:
            await asyncio.wait_for(one(), timeout)
        except Exception as e:  # noqa: BLE001  counted by kind
            k = type(e).__name__ + (f": {e}" if isinstance(e, ConnectionError) else "")
            errors[k[:80]] = errors.get(k[:80], 0) + 1

    async def main():
        t0 = time.perf_counter()
        await asyncio.gather(*(guarded() for _ in range(n)))
        return time.perf_counter() - t0

    return asyncio.run(main()), errors


# --- the world: sshd, targets, sshtund, ssh -L --------------------------------------

def ssh_base_argv(key, known_hosts, log_file=None):
    argv = ["ssh", "-F", "/dev/null", "-i", key, "-o", "IdentitiesOnly=yes",
            "-o", f"UserKnownHostsFile={known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
            "-o", "ControlMaster=no", "-o", "ControlPath=none",
            "-o", "HostKeyAlgorithms=ssh-ed25519", "-c", CIPHER, "-m", MAC, "-N"]
    if log_file:
        argv += ["-o", "LogLevel=VERBOSE", "-E", log_file]
    return argv


def stop_proc(proc, timeout=5.0):
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


# --- the run ---------------------------------------------------------------------

class Bench:
    def __init__(self, args, tl):
        self.a = args
        self.tl = tl
        self.procs = []     # everything started outside the TestEnv
        self.ns = None      # the network namespace's sshd (NetnsSshd), once made
        self.rss0 = None    # sshtund's memory with no node
        self.env = None
        self.r = {}         # results

    # -- setup --
    def setup(self):
        tl = self.tl
        self.env = tl.TestEnv("bench")
        env = self.env
        log(f"work directory {env.dir}")
        self.node = env.sshd("node", log_level="ERROR",
                             extra_config=f"Ciphers {CIPHER}\nMACs {MAC}\n"
                                          "HostKeyAlgorithms ssh-ed25519\n")
        # The targets listen on the node's own address: the default
        # allowlist ("nodes") admits them and the router sends them there.
        addr = self.node.addr
        echo_port, bulk_port, http_port = tl.free_port(addr), tl.free_port(addr), tl.free_port(addr)
        server_log = os.path.join(env.dir, "server.log")
        srv = tl._spawn([sys.executable, os.path.abspath(__file__), "--serve",
                         addr, str(echo_port), str(bulk_port), str(http_port)], server_log)
        self.procs.append(srv)
        tl.wait_until(lambda: all(tl.is_listening(addr, p) for p in (echo_port, bulk_port, http_port)),
                      10, "the target server")
        self.targets = {"echo": (addr, echo_port), "bulk": (addr, bulk_port)}

        self.known_hosts = env.known_hosts_file([self.node])
        # without -d: debug logging would be measured too
        d = tl.Sshtund(env.dir, [self.node], env.client_key, start=False, debug=False,
                       log={"level": "info", "target": "stderr"},
                       ssh={"max_streams_per_session": 2048})
        env.daemons.append(d)
        self.daemon = d.start(30.0)
        d.wait_all_up(30)

        # The busy configuration of issue 14 item 4: two sessions, a probe
        # every second, liveness every second, a static forward, info logging.
        faddr = tl.loopback_address()
        forward = (f'forwards = ( {{ listen = "tcp:{faddr}:{tl.free_port(faddr)}"; node = "{self.node.name}"; '
                   f'target = "{addr}:{echo_port}"; }} );\n')
        b = tl.Sshtund(env.dir, [self.node], env.client_key, start=False, debug=False, name="busy",
                       log={"level": "info", "target": "stderr"},
                       ssh={"max_streams_per_session": 2048, "pool_size": 2, "keepalive_interval": 1.0},
                       probe={"type": "http", "target": f"{addr}:{http_port}", "path": "/healthz",
                              "interval": 1.0, "timeout": 1.0},
                       extra_conf=forward)
        env.daemons.append(b)
        self.busy_daemon = b.start(30.0)
        b.wait_all_up(30)

        laddr = tl.loopback_address()
        fwd = {"echo": (laddr, tl.free_port(laddr)), "bulk": (laddr, tl.free_port(laddr))}
        argv = ssh_base_argv(env.client_key, self.known_hosts, os.path.join(env.dir, "ssh-L.log"))
        for k in ("echo", "bulk"):
            argv += ["-L", f"{fwd[k][0]}:{fwd[k][1]}:{self.targets[k][0]}:{self.targets[k][1]}"]
        argv += ["-o", "ExitOnForwardFailure=yes", "-p", str(self.node.port),
                 f"{tl.login_user()}@{self.node.addr}"]
        ssh = tl._spawn(argv, os.path.join(env.dir, "ssh-L.out"))
        self.procs.append(ssh)

        def ssh_ready():
            if ssh.poll() is not None:
                raise tl.HarnessError(f"ssh -L exited with {ssh.returncode}:\n"
                                      + tl.tail(os.path.join(env.dir, "ssh-L.log"), 20))
            return all(tl.is_listening(*fwd[k]) for k in fwd)

        tl.wait_until(ssh_ready, 20, "ssh -L's forwards")

        self.direct = DirectPath(self.targets)
        self.sshl = SshLPath(fwd, ssh)
        self.tund = SshtundPath(self.daemon, self.targets, "unix")
        self.tund_tcp = SshtundPath(self.daemon, self.targets, "tcp")
        self.busy = SshtundPath(self.busy_daemon, self.targets, "unix")
        self.busy_tcp = SshtundPath(self.busy_daemon, self.targets, "tcp")
        # One stream each way through both, before anything is timed.
        for p in (self.tund, self.sshl):
            transfer_down(p, 1 << 20)
            transfer_up(p, 1 << 20)

    # -- 1 and 6: single stream, with CPU per byte --
    def single_stream(self):
        """Downloads and uploads through each path in turn; downloads
        alternate with a run of the bare libssh2 loop too, so that its
        ratio compares runs made at the same time (run after run, the
        machine's speed drifts by a quarter)."""
        n = self.a.size_mib << 20
        log(f"single stream: {self.a.size_mib} MiB x {self.a.reps} each way, with the bare libssh2 loop")
        res = {}
        bare_cpu, bare_mbs = [], []
        for direction, fn in (("down", transfer_down), ("up", transfer_up)):
            times = {"tund": [], "sshl": []}
            cpu = {"tund": 0, "sshl": 0}
            for _ in range(self.a.reps):
                for key, p in (("tund", self.tund), ("sshl", self.sshl)):
                    c0 = cpu_ns(p.pid)
                    times[key].append(fn(p, n))
                    cpu[key] += cpu_ns(p.pid) - c0
                if direction == "down":
                    c, m = self.bare_once(n)
                    bare_cpu.append(c)
                    bare_mbs.append(m)
            for key in times:
                res[(direction, key)] = n / statistics.median(times[key]) / MB
                res[("cpu_" + direction, key)] = cpu[key] / (n * self.a.reps)
        res["load"] = os.getloadavg()[0]
        self.r["single"] = res
        self.r["bare"] = {"cpu": statistics.median(bare_cpu), "mbs": statistics.median(bare_mbs),
                          "load": os.getloadavg()[0]}

    def bare_once(self, n):
        """One run of bench/libssh2-read over the same sshd and cipher:
        (CPU ns per byte, MB/s)."""
        prog = os.path.join(self.a.builddir, "bench", "libssh2-read")
        out = subprocess.run([prog, self.node.addr, str(self.node.port), self.tl.login_user(),
                              self.env.client_key, *map(str, self.targets["bulk"]), str(n), CIPHER, MAC],
                             capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise self.tl.HarnessError(f"libssh2-read failed: {out.stderr.strip()}")
        f = dict(kv.split("=") for kv in out.stdout.split())
        return int(f["cpu_ns"]) / int(f["bytes"]), int(f["bytes"]) / (int(f["wall_ns"]) / 1e9) / MB

    def bare_libssh2(self):
        if "bare" in self.r:
            return  # measured along with the single stream
        n = self.a.size_mib << 20
        log(f"bare libssh2 read loop: {self.a.size_mib} MiB x {self.a.reps}")
        runs = [self.bare_once(n) for _ in range(self.a.reps)]
        self.r["bare"] = {"cpu": statistics.median(c for c, _ in runs), "mbs": statistics.median(m for _, m in runs),
                          "load": os.getloadavg()[0]}

    # -- 2 --
    def parallel_streams(self):
        k, n = self.a.streams, self.a.par_mib << 20
        log(f"{k} parallel streams: {self.a.par_mib} MiB each, x {self.a.par_reps} each way")
        res = {}
        for direction, fn in (("down", transfer_down), ("up", transfer_up)):
            times = {"tund": [], "sshl": []}
            for _ in range(self.a.par_reps):
                for key, p in (("tund", self.tund), ("sshl", self.sshl)):
                    times[key].append(parallel(p, fn, k, n))
            for key in times:
                res[(direction, key)] = k * n / statistics.median(times[key]) / MB
        res["load"] = os.getloadavg()[0]
        self.r["parallel"] = res

    # -- 3 --
    def latency(self):
        """Open + first echo byte, one stream at a time, through every path:
        blocks of BLOCK trials, the paths in turn, so that other work on
        the machine falls on all of them alike while each path stays warm
        within a block, as the old sequential runs did. (Alternating trial
        by trial makes every path cold: every process on it has slept
        meanwhile, and sshtund pays two more wake-ups than ssh -L, the
        client's for the 200 and its own for the first byte, which ssh -L
        pipelines behind the channel open.)"""
        BLOCK = 100
        t = self.a.trials
        paths = [("direct", self.direct), ("sshl", self.sshl), ("tund", self.tund),
                 ("tund_tcp", self.tund_tcp), ("busy", self.busy), ("busy_tcp", self.busy_tcp)]
        rounds = max(1, t // BLOCK)
        log(f"open + first echo byte: {t} trials per path in {rounds} rounds of blocks of {BLOCK} "
            f"(default and busy configuration); load average {os.getloadavg()[0]:.1f}")
        times = {k: [] for k, _ in paths}
        cpu = {k: 0 for k, _ in paths}
        for _, p in paths:
            latency_trials(p, 20)  # warm-up, not counted
        for i in range(rounds):
            n = t // rounds + (1 if i < t % rounds else 0)
            for key, p in paths[i % len(paths):] + paths[:i % len(paths)]:
                pid = getattr(p, "pid", None)
                c0 = cpu_ns(pid) if pid else 0
                times[key] += latency_trials(p, n)
                if pid:
                    cpu[key] += cpu_ns(pid) - c0
        res = {}
        for key, _ in paths:
            v = times[key]
            res[key] = (percentile(v, 50) * 1e3, percentile(v, 99) * 1e3,
                        cpu[key] / len(v) / 1e3 if key != "direct" else None, percentile(v, 99.9) * 1e3,
                        percentile(v, 90) * 1e3)
        res["load"] = os.getloadavg()[0]
        self.r["latency"] = res

    # -- 4 --
    def concurrent(self):
        n, size = self.a.concurrent, 4096
        log(f"{n} concurrent streams, {size} bytes echoed each")
        res = {}
        for key, p in (("tund", self.tund), ("sshl", self.sshl)):
            dt, errors = concurrent_streams(p, n, size)
            res[key] = (dt, errors)
            # Let the last channels close before anything else is timed.
            time.sleep(1.0)
        if not self.daemon.alive():
            raise self.tl.HarnessError("sshtund died during the concurrent streams")
        res["load"] = os.getloadavg()[0]
        self.r["concurrent"] = res

    # -- 5 and 7: one sshd in a network namespace serves every idle node --
    def netns(self):
        """The namespace of the memory and scale measurements, made once:
        one sshd on 0.0.0.0:22 there, each 127.1.x.y address a node. It
        does not re-execute itself per connection (-r): for 1,000 nodes
        that would cost the one sshd 15 ms of CPU each, most of the time to
        all up on 2 cores, where real nodes each pay for their own."""
        if self.ns is None:
            self.ns = self.tl.NetnsSshd(self.env, name="netns", max_startups=max(1000, 2 * self.a.scale),
                                        max_sessions=1000, sshd_args=("-r",),
                                        extra_config=f"Ciphers {CIPHER}\nMACs {MAC}\n"
                                                     "HostKeyAlgorithms ssh-ed25519\n")
        return self.ns

    def netns_daemon(self, nodes, name):
        """sshtund in the namespace, without -d, until all of 'nodes' are up;
        returns (daemon, seconds from its start to all up)."""
        tl = self.tl
        d = tl.NetnsSshtund(self.ns.dir, nodes, self.env.client_key, self.ns, name=name, start=False,
                            log={"level": "info", "target": "stderr"},
                            ssh={"connect_timeout": 30.0})
        self.env.daemons.append(d)
        t0 = time.monotonic()
        d.start()
        if nodes:
            tl.wait_until(lambda: d.admin_get("/v1/status", timeout=30).get("nodes_up") == len(nodes),
                          max(60, len(nodes) / 5), f"{len(nodes)} nodes up", 0.1)
        return d, time.monotonic() - t0

    def empty_rss(self):
        """sshtund's memory with no node at all, measured once."""
        if self.rss0 is None:
            d, _ = self.netns_daemon([], "tund0")
            time.sleep(1.0)
            self.rss0 = proc_mem_kib(d.pid)
            d.stop()
        return self.rss0

    def memory(self):
        if os.geteuid() != 0:
            msg = "skipped: needs root (a network namespace with one sshd on port 22)"
            log(f"memory with {self.a.nodes} idle nodes: {msg}")
            self.r["memory"] = msg
            return
        tl, env = self.tl, self.env
        nnodes = self.a.nodes
        log(f"memory: sshtund with {nnodes} idle nodes against {nnodes} ssh processes")
        ns = self.netns()
        nodes = ns.nodes(nnodes)
        kh = os.path.join(ns.dir, "known_hosts")
        with open(kh, "w") as f:
            f.write("".join(n.known_hosts_line() + "\n" for n in nodes))

        base = self.empty_rss()
        d, _ = self.netns_daemon(nodes, "tundN")
        time.sleep(1.0)  # the first keepalives and liveness opens
        full = proc_mem_kib(d.pid)
        d.stop()

        sshs = []
        try:
            for n in nodes:
                lf = os.path.join(ns.dir, f"ssh-{n.name}.log")
                argv = ssh_base_argv(env.client_key, kh, lf) + [f"{tl.login_user()}@{n.addr}"]
                sshs.append((ns.spawn(argv, os.path.join(ns.dir, f"ssh-{n.name}.out")), lf))

            def all_authenticated():
                done = 0
                for p, lf in sshs:
                    if p.poll() is not None:
                        raise tl.HarnessError(f"ssh exited with {p.returncode}:\n" + tl.tail(lf, 10))
                    try:
                        with open(lf, errors="replace") as f:
                            done += "Authenticated to" in f.read()
                    except OSError:
                        pass
                return done == len(sshs)

            tl.wait_until(all_authenticated, 60, f"{nnodes} ssh processes to authenticate", 0.2)
            time.sleep(1.0)
            mems = [proc_mem_kib(p.pid) for p, _ in sshs]
        finally:
            for p, _ in sshs:
                stop_proc(p)
        self.r["memory"] = {
                "nodes": nnodes,
                "tund0": base, "tundN": full,
                "ssh_sum": {k: sum(m.get(k, 0) for m in mems) for k in ("VmRSS", "RssAnon", "Pss")},
                "ssh_per": {k: statistics.median(m.get(k, 0) for m in mems) for k in ("VmRSS", "RssAnon", "Pss")},
        }

    def scale(self):
        """--scale nodes served by the dropbear farm: every figure of
        bench/scale.py (time to all up, memory, streams, admin calls,
        reloads, loop stalls)."""
        n = self.a.scale
        if n <= 0:
            return
        if os.geteuid() != 0:
            msg = "skipped: needs root (network and mount namespaces)"
            log(f"scale with {n} nodes: {msg}")
            self.r["scale"] = msg
            return
        sys.path.insert(0, HERE)
        import scale as scale_bench
        self.r["scale"] = scale_bench.run(self.a, self.tl, self.env)

    # -- optional: where sshtund's time goes --
    def profile(self):
        perf = shutil.which("perf")
        if not perf:
            self.r["perf"] = "skipped: perf not installed (apt-get install linux-perf)"
            return
        n = self.a.size_mib << 20
        out = {}
        log("perf: profiling one download through each")
        targets = [("sshtund", self.tund), ("ssh -L", self.sshl)]
        for label, p in targets:
            data = os.path.join(self.env.dir, f"perf-{p.pid}.data")
            rec = subprocess.Popen([perf, "record", "-q", "-F", "4999", "-e", "cpu-clock",
                                    "-p", str(p.pid), "-o", data],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(0.5)
            transfer_down(p, n * 2)
            rec.send_signal(signal.SIGINT)
            rec.wait(30)
            out[label] = self.perf_top(perf, data)
        data = os.path.join(self.env.dir, "perf-bare.data")
        prog = os.path.join(self.a.builddir, "bench", "libssh2-read")
        subprocess.run([perf, "record", "-q", "-F", "4999", "-e", "cpu-clock", "-o", data, "--",
                        prog, self.node.addr, str(self.node.port), self.tl.login_user(),
                        self.env.client_key, *map(str, self.targets["bulk"]), str(n * 2)],
                       capture_output=True, timeout=120)
        out["bare libssh2"] = self.perf_top(perf, data)
        self.r["perf"] = out

    @staticmethod
    def perf_top(perf, data, top=15):
        """(share per DSO, top symbols): the distro's libcrypto and libssh2
        are stripped, so their unnamed addresses count as one row each."""
        rep = subprocess.run([perf, "report", "-i", data, "--stdio", "--no-children",
                              "-F", "overhead,dso,sym"], capture_output=True, text=True, timeout=120)
        dsos, syms = {}, {}
        for ln in rep.stdout.splitlines():
            m = re.match(r"^\s+([\d.]+)%\s+(\S+)\s+\[[.k]\]\s+(.*?)\s*$", ln)
            if not m:
                continue
            pct, dso, sym = float(m.group(1)), m.group(2), m.group(3)
            if sym.startswith("0x"):
                sym = "(stripped: unnamed code)"
            dsos[dso] = dsos.get(dso, 0.0) + pct
            syms[(dso, sym)] = syms.get((dso, sym), 0.0) + pct
        top_dsos = sorted(dsos.items(), key=lambda x: -x[1])[:6]
        top_syms = sorted(((v, d, sy) for (d, sy), v in syms.items()), reverse=True)[:top]
        return top_dsos, top_syms

    # -- teardown --
    def close(self):
        for p in reversed(self.procs):
            try:
                stop_proc(p)
            except Exception as e:  # noqa: BLE001  keep cleaning up
                log(f"cleanup: {e}")
        if self.env:
            self.env.failed = self.env.failed or self.a.keep
            try:
                self.env.close()
            except AssertionError as e:
                log(f"cleanup: {str(e).splitlines()[0]}")


# --- output ------------------------------------------------------------------------

def check(kind, ratio):
    op, v = TARGETS[kind]
    ok = {">=": ratio >= v, "<=": ratio <= v, "==": ratio == v}[op]
    return f"{op} {v:g}", "" if ok else "MISS"


def table(r, a):
    rows = []

    def row(label, tund, ref, ratio, kind=None, fmt="{:.1f}"):
        target, miss = check(kind, ratio) if kind and ratio is not None else ("", "")
        f = (lambda x: x if isinstance(x, str) else fmt.format(x))
        rows.append((label, f(tund), f(ref), "" if ratio is None else f"{ratio:.2f}", target, miss))

    s, b = r.get("single"), r.get("bare")
    if s:
        for d in ("down", "up"):
            row(f"single stream {d} MB/s", s[(d, "tund")], s[(d, "sshl")],
                s[(d, "tund")] / s[(d, "sshl")], "throughput")
        if b:
            row("  down vs bare libssh2 read MB/s", s[("down", "tund")], f"{b['mbs']:.1f} (bare)",
                s[("down", "tund")] / b["mbs"], "bare")
    p = r.get("parallel")
    if p:
        for d in ("down", "up"):
            row(f"{a.streams} streams {d} MB/s", p[(d, "tund")], p[(d, "sshl")],
                p[(d, "tund")] / p[(d, "sshl")], "throughput")
    lat = r.get("latency")
    if lat:
        for key, label in (("tund", "open+echo"), ("tund_tcp", "  tcp front door"),
                           ("busy", "busy config: open+echo"), ("busy_tcp", "  busy, tcp front door")):
            for i, q in ((0, "p50"), (1, "p99")):
                row(f"{label} {q} ms", lat[key][i], lat["sshl"][i], lat[key][i] / lat["sshl"][i],
                    f"latency_{q}", "{:.3f}")
        for key, label in (("tund", "  CPU us per open+echo"), ("busy", "  busy: CPU us per open+echo")):
            row(label, lat[key][2], lat["sshl"][2], lat[key][2] / lat["sshl"][2], None, "{:.0f}")
        for i, q in ((0, "p50"), (1, "p99")):
            row(f"  vs direct TCP {q} ms", lat["tund"][i], f"{lat['direct'][i]:.3f} (direct)",
                lat["tund"][i] / lat["direct"][i], None, "{:.3f}")
    c = r.get("concurrent")
    if c:
        row(f"{a.concurrent} concurrent: time s", c["tund"][0], c["sshl"][0],
            c["tund"][0] / c["sshl"][0], "concurrent_time", "{:.2f}")
        et, es = sum(c["tund"][1].values()), sum(c["sshl"][1].values())
        row(f"{a.concurrent} concurrent: errors", str(et), str(es), None)
        rows[-1] = rows[-1][:4] + check("concurrent_errors", et)
    m = r.get("memory")
    if isinstance(m, dict):
        n = m["nodes"]
        per = (m["tundN"]["VmRSS"] - m["tund0"]["VmRSS"]) / n
        per_anon = (m["tundN"]["RssAnon"] - m["tund0"]["RssAnon"]) / n
        row("RSS per node KiB", per, m["ssh_per"]["VmRSS"], per / m["ssh_per"]["VmRSS"], "rss", "{:.0f}")
        row("  anon per node KiB", per_anon, m["ssh_per"]["RssAnon"],
            per_anon / m["ssh_per"]["RssAnon"], None, "{:.0f}")
        row(f"RSS total, {n} nodes MiB", m["tundN"]["VmRSS"] / 1024, m["ssh_sum"]["VmRSS"] / 1024,
            m["tundN"]["VmRSS"] / m["ssh_sum"]["VmRSS"], None)
        row(f"  PSS total, {n} nodes MiB", m["tundN"].get("Pss", 0) / 1024, m["ssh_sum"]["Pss"] / 1024,
            m["tundN"].get("Pss", 0) / max(1, m["ssh_sum"]["Pss"]), None)
    if s and b:
        row("CPU ns/byte down", s[("cpu_down", "tund")], s[("cpu_down", "sshl")],
            s[("cpu_down", "tund")] / s[("cpu_down", "sshl")], None, "{:.2f}")
        row("  vs bare libssh2 read", s[("cpu_down", "tund")], f"{b['cpu']:.2f} (bare)",
            s[("cpu_down", "tund")] / b["cpu"], "cpu", "{:.2f}")
        row("CPU ns/byte up", s[("cpu_up", "tund")], s[("cpu_up", "sshl")],
            s[("cpu_up", "tund")] / s[("cpu_up", "sshl")], None, "{:.2f}")
    elif b:
        row("bare libssh2 read MB/s", "", f"{b['mbs']:.1f} (bare)", None)

    lines = []
    if rows:
        head = ("", "sshtund", "ssh -L", "ratio", "target", "")
        w = [max(len(x[i]) for x in rows + [head]) for i in range(6)]
        lines.append(f"{head[0]:<{w[0]}}   {head[1]:>{w[1]}}   {head[2]:>{w[2]}}   {head[3]:>{w[3]}}   "
                     f"{head[4]:<{w[4]}}".rstrip())
        for x in rows:
            lines.append(f"{x[0]:<{w[0]}}   {x[1]:>{w[1]}}   {x[2]:>{w[2]}}   {x[3]:>{w[3]}}   "
                         f"{x[4]:<{w[4]}}  {x[5]}".rstrip())
    if isinstance(m, str):
        lines.append(f"RSS with {a.nodes} idle nodes: {m}")
    if isinstance(r.get("scale"), str):
        lines.append(f"scale with {a.scale} nodes: {r['scale']}")
    elif isinstance(r.get("scale"), dict):
        sys.path.insert(0, HERE)
        import scale as scale_bench
        if lines:
            lines.append("")
        lines.append(scale_bench.text(r["scale"]))
    return "\n".join(lines)


def details(r, a):
    out = []
    c = r.get("concurrent")
    for key, label in (("tund", "sshtund"), ("sshl", "ssh -L")):
        if c and c[key][1]:
            errs = ", ".join(f"{v} x {k}" for k, v in sorted(c[key][1].items()))
            out.append(f"{a.concurrent} concurrent, {label} errors: {errs}")
    m = r.get("memory")
    if isinstance(m, dict):
        out.append(f"sshtund RSS: {m['tund0']['VmRSS']} KiB with 0 nodes, {m['tundN']['VmRSS']} KiB "
                   f"with {m['nodes']} (anon {m['tund0']['RssAnon']} -> {m['tundN']['RssAnon']} KiB); "
                   f"{m['nodes']} ssh: {m['ssh_sum']['VmRSS']} KiB RSS, {m['ssh_sum']['Pss']} KiB PSS in all")
    lat = r.get("latency")
    if lat:
        out.append("latency p50/p90/p99/p99.9 ms: " + ", ".join(
                f"{k} {v[0]:.3f}/{v[4]:.3f}/{v[1]:.3f}/{v[3]:.3f}" for k, v in
                (("direct", lat["direct"]), ("ssh -L", lat["sshl"]), ("sshtund unix", lat["tund"]),
                 ("sshtund tcp", lat["tund_tcp"]), ("busy unix", lat["busy"]), ("busy tcp", lat["busy_tcp"])))
                + f"; load average {lat['load']:.1f} at the end")
    for key, label in (("single", "single stream"), ("bare", "bare libssh2"), ("parallel", "parallel"),
                       ("concurrent", "concurrent")):
        if isinstance(r.get(key), dict) and "load" in r[key]:
            out.append(f"{label}: load average {r[key]['load']:.1f} at the end")
    return "\n".join(out)


def perf_text(r):
    p = r.get("perf")
    if p is None:
        return ""
    if isinstance(p, str):
        return f"perf: {p}"
    out = []
    for label, (dsos, syms) in p.items():
        out.append(f"{label}: perf record -e cpu-clock during one download")
        out.append("  by object: " + ", ".join(f"{d} {v:.1f}%" for d, v in dsos))
        for pct, dso, sym in syms:
            out.append(f"  {pct:6.2f}%  {dso:<20} {sym}")
    return "\n".join(out)


def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for ln in f:
                if ln.startswith("model name"):
                    cpu = ln.split(":", 1)[1].strip()
                    break
    except OSError:
        pass

    def run(argv, stream="stdout"):
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            return (getattr(p, stream) or "").strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"

    return {
            "cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
            "libssh2": run(["pkg-config", "--modversion", "libssh2"]),
            "openssh": run(["ssh", "-V"], "stderr"),
            "python": platform.python_version(),
    }


def sshtund_version(builddir):
    try:
        v = subprocess.run([os.path.join(builddir, "src", "sshtund"), "--version"],
                           capture_output=True, text=True, timeout=10).stdout.strip()
    except OSError:
        v = "?"
    # Read-only git: no index refresh (GIT_OPTIONAL_LOCKS=0, plain diff).
    env = dict(os.environ, GIT_OPTIONAL_LOCKS="0")
    try:
        rev = subprocess.run(["git", "-C", SRCDIR, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10, env=env).stdout.strip()
        if rev and subprocess.run(["git", "-C", SRCDIR, "diff", "--quiet", "HEAD", "--", "src"],
                                  capture_output=True, timeout=10, env=env).returncode == 1:
            rev += " + local changes in src/"
    except (OSError, subprocess.TimeoutExpired):
        rev = ""
    return f"{v} (git {rev})" if rev else v


def write_results(text):
    try:
        with open(RESULTS_PATH) as f:
            old = f.read()
    except FileNotFoundError:
        old = "# Benchmark results\n\n"
    head = old.split(RESULTS_MARKER, 1)[0].rstrip("\n") + "\n\n"
    try:
        with open(RESULTS_PATH + ".tmp", "w") as f:
            f.write(head + RESULTS_MARKER + "\n\n" + text)
        os.replace(RESULTS_PATH + ".tmp", RESULTS_PATH)
    except OSError as e:
        log(f"cannot write {RESULTS_PATH}: {e.strerror}")
        return
    log(f"results written to {RESULTS_PATH}")


def main():
    global CIPHER, MAC
    ap = argparse.ArgumentParser(description="sshtund against ssh -N -L over one sshd: throughput, latency, concurrency, memory, CPU per byte")
    ap.add_argument("--builddir", default=os.path.join(SRCDIR, "build"))
    ap.add_argument("--size-mib", type=int, default=64, help="single-stream transfer size")
    ap.add_argument("--reps", type=int, default=5, help="single-stream repetitions (median)")
    ap.add_argument("--streams", type=int, default=8)
    ap.add_argument("--par-mib", type=int, default=16, help="size per parallel stream")
    ap.add_argument("--par-reps", type=int, default=3)
    ap.add_argument("--trials", type=int, default=1000, help="latency trials per path")
    ap.add_argument("--concurrent", type=int, default=1000)
    ap.add_argument("--nodes", type=int, default=100, help="idle nodes in the memory test")
    ap.add_argument("--scale", type=int, default=None,
                    help="nodes of the scale run, served by a dropbear farm in a network namespace "
                         "(default 1000, 50 with --quick; 0: skip; root only)")
    ap.add_argument("--scale-streams", type=int, default=None,
                    help="streams at once in the scale run (default 2.4 per node: 12,000 for 5,000)")
    ap.add_argument("--scale-handshakes", type=int, default=None,
                    help="ssh.max_handshakes of the scale run (default: the daemon's)")
    ap.add_argument("--handshakes", default="",
                    help="comma-separated ssh.max_handshakes values: time to all up with each first")
    ap.add_argument("--only", default="",
                    help=f"comma-separated sections to run, of {', '.join(SECTIONS)} (default: all)")
    ap.add_argument("--perf", action="store_true", help="also profile sshtund with perf record")
    ap.add_argument("--quick", action="store_true", help="small sizes, to check the bench itself")
    ap.add_argument("--no-write", action="store_true", help="do not update bench/RESULTS.md")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs) afterwards")
    ap.add_argument("--cipher", default=CIPHER,
                    help=f"the one cipher the bench's sshd offers (default {CIPHER}; for example "
                         "aes128-gcm@openssh.com, with libssh2 1.11)")
    ap.add_argument("--mac", default=MAC, help=f"the one MAC it offers (default {MAC}; unused with GCM)")
    ap.add_argument("--serve", nargs=4, metavar=("ADDR", "ECHO_PORT", "BULK_PORT", "HTTP_PORT"),
                    help=argparse.SUPPRESS)
    a = ap.parse_args()
    CIPHER, MAC = a.cipher, a.mac
    if a.serve:
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        return serve(a.serve[0], int(a.serve[1]), int(a.serve[2]), int(a.serve[3]))
    if a.quick:
        a.size_mib, a.reps, a.par_mib, a.par_reps, a.trials, a.concurrent, a.nodes = 8, 3, 2, 1, 100, 100, 10
        a.scale = 50 if a.scale is None else a.scale
    a.scale = 1000 if a.scale is None else a.scale
    if a.scale_streams is None:
        a.scale_streams = round(2.4 * a.scale)
    a.handshakes = [int(x) for x in a.handshakes.split(",") if x.strip()]
    a.only = [x.strip() for x in a.only.split(",") if x.strip()] or list(SECTIONS)
    for x in a.only:
        if x not in SECTIONS:
            ap.error(f"--only: no section {x!r} (sections: {', '.join(SECTIONS)})")
    a.builddir = os.path.abspath(a.builddir)

    os.environ["SSHTUND_BUILDDIR"] = a.builddir
    os.environ.setdefault("SSHTUND_SRCDIR", SRCDIR)
    sys.path.insert(0, os.path.join(SRCDIR, "tests", "integration"))
    import sshtund_testlib as tl

    for prog in ("src/sshtund", "bench/libssh2-read"):
        tl.require_binary(os.path.join(a.builddir, prog))
    # 1,000 streams hold 2,000+ descriptors in sshtund, ssh, sshd and the
    # target server: every child inherits the raised limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(soft, min(hard, 65536))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < 4 * a.concurrent + 100:
        log(f"warning: RLIMIT_NOFILE is {want}: {a.concurrent} concurrent streams may fail")

    # SIGTERM/SIGHUP unwind through the finally below like Ctrl-C does.
    def on_signal(sig, _frame):
        raise KeyboardInterrupt(f"signal {sig}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    load_start = os.getloadavg()[0]
    if load_start > 0.5 * (os.cpu_count() or 1):
        log(f"warning: load average {load_start:.1f} on {os.cpu_count()} cores: "
            "other work will skew the figures")
    t_start = time.monotonic()
    b = Bench(a, tl)
    try:
        b.setup()
        for section in SECTIONS:
            if section in a.only:
                getattr(b, {"single": "single_stream", "bare": "bare_libssh2",
                            "parallel": "parallel_streams"}.get(section, section))()
        if a.perf:
            b.profile()
    finally:
        b.close()
    elapsed = time.monotonic() - t_start

    mach = machine()
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    tbl = table(b.r, a)
    det = details(b.r, a)
    prof = perf_text(b.r)
    setup = (f"{sshtund_version(a.builddir)}; {mach['openssh']}; libssh2 {mach['libssh2']}\n"
             f"{mach['cpu']}, {mach['cores']} cores, Linux {mach['kernel']}; {date}\n"
             f"cipher {CIPHER}, MAC {MAC}, ed25519 keys; single stream {a.size_mib} MiB x {a.reps}, "
             f"{a.streams} streams x {a.par_mib} MiB x {a.par_reps}, {a.trials} latency trials, "
             f"{a.concurrent} concurrent x 4 KiB, {a.nodes} idle nodes, {a.scale} nodes and "
             f"{a.scale_streams} streams at scale; sections: {', '.join(a.only)}; {elapsed:.0f} s, "
             f"load average {load_start:.1f} before, {os.getloadavg()[0]:.1f} after")
    print()
    print(setup)
    print()
    print(tbl)
    print()
    print(det)
    if prof:
        print()
        print(prof)
    if not a.no_write and not a.quick and set(a.only) == set(SECTIONS):
        body = f"## Last run\n\n```\n{setup}\n\n{tbl}\n\n{det}\n```\n"
        if prof:
            body += f"\n### Profile\n\n```\n{prof}\n```\n"
        write_results(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
