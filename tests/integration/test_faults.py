# Fault injection in the relay: the daemon runs under tests/faults/faultfd.c
# (LD_PRELOAD), which makes its reads and writes on the front door and on the
# SSH connections short, EAGAIN, EINTR or reset at random. 1,000 streams
# through two nodes (two sessions each) each get back exactly the bytes they
# sent or fail cleanly (an error status, a close before the reply, an echo
# cut short), never a wrong byte and never a hang; without resets every one
# arrives. Afterwards no stream, descriptor or memory is left over, the nodes
# are back to full pools, and a sanitizer build has nothing to report.
#
# The shim's decisions follow FAULTFD_SEED (each test has its own default;
# set FAULTFD_SEED to rerun with another): the n-th call on each side always
# meets the same decision, but which call is the n-th depends on timing, so
# a seed narrows a failure down rather than replaying it exactly.

import hashlib
import os
import random
import socket
import threading
import time
from collections import Counter

import pytest

import sshtund_testlib as tl

N_STREAMS = 1000
CONCURRENCY = 50
MIN_SIZE, MAX_SIZE = 512, 16 * 1024
STREAM_TIMEOUT = 20.0  # no socket operation of a stream waits longer: a hang
RUN_TIMEOUT = 90.0     # all 1,000 streams
RSS_BOUND_MIB = 48
ASAN_QUARANTINE_MIB = 16

# Outcomes: "ok" is the only success; CLEAN ones are failures a client can
# see and handle; the rest are bugs.
CLEAN = {"refused", "no reply", "cut short", "send failed"}


def seed_for(default):
    v = os.environ.get("FAULTFD_SEED")
    return int(v, 0) if v else default


class Stream:
    def __init__(self, index, node, port, payload):
        self.index = index
        self.node = node
        self.port = port
        self.payload = payload
        self.outcome = None
        self.detail = ""

    def end(self, outcome, detail=""):
        self.outcome = outcome
        self.detail = detail


def run_stream(d, st):
    """One CONNECT, the payload out with our EOF after it, the echo back to
    the target's EOF; st.outcome says how it went."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(STREAM_TIMEOUT)
    try:
        try:
            s.connect(d.proxy_sock)
        except OSError as e:
            # not a fault the shim makes: the front door would be gone
            return st.end("front door", str(e))
        try:
            s.sendall(tl.connect_request(st.node.addr, st.port))
        except (BrokenPipeError, ConnectionResetError):
            pass  # reset while the daemon read the request: the reply tells
        head = tl.read_head(s)
        if not head.endswith(b"\r\n\r\n"):
            # closed before the head was complete: a dial that failed
            return st.end("no reply", f"{len(head)} bytes of a head")
        status, reason, _ = tl.parse_head(head)
        if status != 200:
            return st.end("refused", f"{status} {reason}")
        if head != tl.CONNECT_OK:
            return st.end("bad head", repr(head[:200]))
        try:
            s.sendall(st.payload)
            s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError) as e:
            # the stream died under us; what came back must still be a prefix
            st.end("send failed", str(e))
        got = bytearray()
        while True:
            try:
                data = s.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            got += data
            if len(got) > len(st.payload):
                break
        got = bytes(got)
        if got == st.payload:
            if st.outcome is None:
                st.end("ok")
        elif st.payload.startswith(got):
            if st.outcome is None:
                st.end("cut short", f"{len(got)} of {len(st.payload)} bytes")
        else:
            at = next((i for i, (a, b) in enumerate(zip(got, st.payload)) if a != b), len(st.payload))
            st.end("corrupt", f"{len(got)} bytes back for {len(st.payload)}, first difference at {at}: "
                   f"sha256 {hashlib.sha256(got).hexdigest()[:16]} != "
                   f"{hashlib.sha256(st.payload).hexdigest()[:16]}")
    except socket.timeout:
        st.end("hang", f"nothing for {STREAM_TIMEOUT:.0f} s")
    except tl.HarnessError as e:
        st.end("bad head", str(e))
    except OSError as e:
        st.end("client error", str(e))
    finally:
        s.close()


def run_streams(d, nodes, echo, seed):
    rng = random.Random(seed)
    streams = []
    for i in range(N_STREAMS):
        n = nodes[i % len(nodes)]
        streams.append(Stream(i, n, echo[n.name].port, rng.randbytes(rng.randint(MIN_SIZE, MAX_SIZE))))
    todo = list(reversed(streams))
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                if not todo:
                    return
                st = todo.pop()
            run_stream(d, st)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(CONCURRENCY)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, RUN_TIMEOUT - (time.monotonic() - t0)))
    stuck = sum(t.is_alive() for t in threads)
    assert stuck == 0, f"seed {seed}: {stuck} clients still busy after {RUN_TIMEOUT:.0f} s"
    return streams, time.monotonic() - t0


def start_under_faults(env, seed, reset, reset_inet=None):
    nodes = [env.sshd("n1"), env.sshd("n2")]
    echo = {n.name: env.server(tl.EchoServer, addr=n.addr) for n in nodes}
    for e in echo.values():
        e.sock.listen(1024)
    d = env.sshtund(nodes, start=False, ssh={"pool_size": 2},
                    proxy={"open_timeout": 10.0, "header_timeout": 10.0},
                    log={"level": "info"})
    d.env_vars.update(tl.faultfd_env(d, seed, reset=reset, reset_inet=reset_inet))
    asan = tl.binary_has_asan(d.binary)
    if asan:
        opts = os.environ.get("ASAN_OPTIONS", "")
        d.env_vars["ASAN_OPTIONS"] = (opts + ":" if opts else "") + \
            f"quarantine_size_mb={ASAN_QUARANTINE_MIB}"
    d.start()
    d.wait_all_up(60)
    wait_full_pools(d, nodes, 60)
    return d, nodes, echo, asan


def wait_full_pools(d, nodes, timeout):
    for n in nodes:
        tl.wait_until(lambda: d.node_info(n.name)["sessions_up"] == 2, timeout, f"{n.name}'s two sessions")


def summary(streams, seed):
    counts = Counter(st.outcome for st in streams)
    bad = [st for st in streams if st.outcome != "ok" and st.outcome not in CLEAN]
    lines = [f"seed {seed} (rerun with FAULTFD_SEED={seed}): {dict(counts)}"]
    lines += [f"  stream {st.index} via {st.node.name}, {len(st.payload)} bytes: {st.outcome}: {st.detail}"
              for st in bad[:20]]
    return counts, bad, "\n".join(lines)


def check_nothing_left(d, nodes, base_fds, base_rss_kb, asan, seed):
    tl.wait_until(lambda: d.status()["streams"] == 0, 30, f"seed {seed}: /v1/status streams back to 0")
    for n in nodes:
        assert d.node_info(n.name)["streams"] == 0, n.name
    # reset sessions come back; then every descriptor of the run is closed
    wait_full_pools(d, nodes, 60)
    tl.wait_fds_back(d.pid, base_fds, what=f"seed {seed}: ")
    bound = RSS_BOUND_MIB + (2 * ASAN_QUARANTINE_MIB if asan else 0)
    grown = (d.rss_kb() - base_rss_kb) // 1024
    assert grown < bound, f"seed {seed}: RSS grew by {grown} MiB over the run (bound {bound} MiB)"


def stop_and_count(d, seed):
    """Stops the daemon (clean exit, no sanitizer report) and returns the
    shim's counts."""
    rc = d.stop()
    assert rc == 0, f"seed {seed}: sshtund exited with {rc}"
    rep = d.sanitizer_report()
    assert rep is None, f"seed {seed}: {rep}"
    counts = tl.faultfd_counts(d.log_text(), d.proc.pid)
    assert counts, "no faultfd report in the daemon's log: the shim was not loaded"
    return counts


def assert_faults_happened(counts, kinds):
    for side in ("unix", "inet"):
        for k in kinds:
            assert counts[side][k] > 0, f"no {k} faults on the {side} side: {counts}"


@pytest.mark.alarm(180)
def test_short_eagain_eintr_lose_nothing(env):
    """Without resets, every fault is one a correct relay absorbs: all
    1,000 streams come back byte for byte."""
    seed = seed_for(1)
    d, nodes, echo, asan = start_under_faults(env, seed, reset=0.0)
    base_fds, base_rss = tl.open_fds(d.pid), d.rss_kb()

    streams, took = run_streams(d, nodes, echo, seed)
    counts, bad, text = summary(streams, seed)
    print(f"{text}; {took:.1f} s")
    assert not bad, text
    assert counts["ok"] == N_STREAMS, text
    assert sum(d.node_info(n.name)["reconnects"] for n in nodes) == 0

    check_nothing_left(d, nodes, base_fds, base_rss, asan, seed)
    faults = stop_and_count(d, seed)
    print(f"faults: {faults}")
    assert_faults_happened(faults, ("short", "eagain", "eintr"))
    assert faults["unix"]["reset"] == faults["inet"]["reset"] == 0, faults


@pytest.mark.alarm(180)
def test_resets_fail_streams_cleanly(env):
    """With resets, some streams fail and an SSH session dies; every
    failure is one a client can see, the rest arrive exactly, and the node
    reconnects. A reset on the front door ends one stream, one on the SSH
    side every stream of a session: the SSH side gets fewer. Each side has
    its own sequence of decisions, so the default seed fixes how many land
    where: one on the SSH side at its 2,778th call (a run makes some 8,000)
    and seven on the front door within its first 9,000."""
    seed = seed_for(49)
    d, nodes, echo, asan = start_under_faults(env, seed, reset=0.001, reset_inet=0.0002)
    base_fds, base_rss = tl.open_fds(d.pid), d.rss_kb()
    reconnects0 = sum(d.node_info(n.name)["reconnects"] for n in nodes)

    streams, took = run_streams(d, nodes, echo, seed)
    counts, bad, text = summary(streams, seed)
    reconnects = sum(d.node_info(n.name)["reconnects"] for n in nodes) - reconnects0
    print(f"{text}; {took:.1f} s; {reconnects} reconnects")
    assert not bad, text
    assert counts["ok"] > N_STREAMS // 2, text

    check_nothing_left(d, nodes, base_fds, base_rss, asan, seed)
    faults = stop_and_count(d, seed)
    print(f"faults: {faults}")
    assert_faults_happened(faults, ("short", "eagain", "eintr"))
    assert faults["unix"]["reset"] + faults["inet"]["reset"] > 0, \
        f"seed {seed}: no reset injected, choose another seed: {faults}"
    assert counts["ok"] < N_STREAMS, f"seed {seed}: resets were injected but every stream succeeded: {faults}"
    # every session was up when the streams began: a reset there is a reconnect
    if faults["inet"]["reset"]:
        assert reconnects >= 1, f"seed {seed}: {faults['inet']['reset']} SSH-side resets, no reconnect"
