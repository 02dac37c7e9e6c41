# Hostile clients and nodes. At the front door: 2,000 connections that never
# send a byte are closed with 408 at proxy.header_timeout, held to
# proxy.max_clients (the rest wait in the listen backlog), and a real
# client is served at once while there is room, and within the documented
# bound when there is not; clients that send one byte per second are cut at
# header_timeout. On the SSH side: "nodes" that send an endless banner, a
# huge packet length, or stall in the middle of the key exchange are
# dropped within ssh.connect_timeout with a last_error saying why, while a
# real node stays up and carries streams the whole time.

import math
import selectors
import socket
import threading
import time

import pytest

import sshtund_testlib as tl

N_IDLE = 2000


def echo_ok(s, data):
    s.sendall(data)
    return tl.recv_exactly(s, len(data), timeout=15) == data


def slack(d):
    """Timing slack for a shared 2-core machine, more under the sanitizers."""
    return 3.0 if tl.binary_has_asan(d.binary) else 1.5


# --- idle crowds at the front door ---------------------------------------------------

def dial_idle(d, n):
    """n front-door connections that send nothing; (socket, dialled at)."""
    out = []
    for _ in range(n):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(d.proxy_sock)  # completes in the backlog even when not accepted
        out.append((s, time.monotonic()))
    return out


def collect_replies(crowd, deadline):
    """Read every idle connection to its end. Returns [(head, seconds from
    dial to the end)] in the crowd's order; a connection still open at the
    deadline has head None."""
    sel = selectors.DefaultSelector()
    got = {}
    for i, (s, _) in enumerate(crowd):
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, i)
        got[i] = bytearray()
    ended = {}
    while len(ended) < len(crowd) and time.monotonic() < deadline:
        for key, _ in sel.select(0.2):
            i = key.data
            try:
                data = key.fileobj.recv(4096)
            except ConnectionResetError:
                data = b""
            except BlockingIOError:
                continue
            if data:
                got[i] += data
                continue
            sel.unregister(key.fileobj)
            ended[i] = time.monotonic() - crowd[i][1]
    sel.close()
    return [(bytes(got[i]), ended[i]) if i in ended else (None, None) for i in range(len(crowd))]


def check_all_408(replies, within):
    late = [i for i, (h, _) in enumerate(replies) if h is None]
    assert not late, f"{len(late)} idle connections still open {within:.1f} s after their dial"
    not408 = [h[:60] for h, _ in replies if not h.startswith(b"HTTP/1.1 408 ")]
    assert not not408, f"{len(not408)} idle connections ended without a 408: {not408[:5]}"


@pytest.mark.alarm(120)
def test_idle_crowd_does_not_delay_a_real_client(env):
    """Below proxy.max_clients (default 4096) 2,000 silent connections are
    all accepted: a real CONNECT is answered at once, and each silent one
    gets its 408 at header_timeout, not before."""
    header_timeout = 5.0
    tl.raise_nofile(N_IDLE + 1000)
    n1 = env.sshd("n1")
    echo = env.server(tl.EchoServer, addr=n1.addr)
    d = env.sshtund([n1], proxy={"header_timeout": header_timeout}, log={"level": "info"})
    d.wait_all_up(30)
    base_fds = tl.open_fds(d.pid)

    crowd = dial_idle(d, N_IDLE)
    try:
        tl.wait_until(lambda: tl.open_fds(d.pid) >= base_fds + N_IDLE - 3, header_timeout - 1,
                      f"the daemon to take all {N_IDLE} connections")
        r = d.connect(n1.addr, echo.port, timeout=10)
        assert r.status == 200, r
        assert r.elapsed < 2.0, f"a real CONNECT took {r.elapsed:.2f} s beside {N_IDLE} idle connections"
        assert echo_ok(r.sock, b"served beside the crowd")
        r.sock.close()
        print(f"real client answered in {r.elapsed * 1000:.0f} ms beside {N_IDLE} idle connections")

        replies = collect_replies(crowd, crowd[-1][1] + header_timeout + slack(d) + 5)
        check_all_408(replies, header_timeout + slack(d) + 5)
        took = sorted(t for _, t in replies)
        print(f"408 after {took[0]:.2f} .. {took[-1]:.2f} s (header_timeout {header_timeout})")
        assert took[0] >= header_timeout - 0.1, f"a 408 came {took[0]:.2f} s after the dial"
        assert took[-1] < header_timeout + slack(d) + 2, f"a 408 came {took[-1]:.2f} s after the dial"
    finally:
        for s, _ in crowd:
            s.close()
    tl.wait_fds_back(d.pid, base_fds)
    assert d.status()["streams"] == 0
    assert echo_ok(d.tunnel(n1.addr, echo.port), b"and after")


@pytest.mark.alarm(120)
def test_idle_crowd_beyond_max_clients_waits_its_turn(env):
    """With proxy.max_clients = 1000 the daemon holds at most 1,000 of 2,000
    silent connections; the rest and a real client wait in the backlog in
    the order they dialled, and header_timeout frees the slots a batch at a
    time: the real client is answered after at most ceil(dialled before
    it + 1, max_clients) header timeouts. Nothing better is promised at
    the limit (sshtund.conf(5), max_clients)."""
    header_timeout, max_clients = 3.0, 1000
    tl.raise_nofile(N_IDLE + 1000)
    n1 = env.sshd("n1")
    echo = env.server(tl.EchoServer, addr=n1.addr)
    d = env.sshtund([n1], proxy={"header_timeout": header_timeout, "max_clients": max_clients},
                    log={"level": "info"})
    d.wait_all_up(30)
    base_fds = tl.open_fds(d.pid)

    crowd = dial_idle(d, N_IDLE)
    peak = [0]
    stop = threading.Event()

    def sample():
        while not stop.wait(0.05):
            try:
                peak[0] = max(peak[0], tl.open_fds(d.pid) - base_fds)
            except OSError:
                return

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        tl.wait_until(lambda: "proxy.max_clients" in d.log_text(), 5, "the log to name proxy.max_clients")
        assert d.status()["nodes_up"] == 1  # the admin socket is not held
        t0 = time.monotonic()
        rounds = math.ceil((N_IDLE + 1) / max_clients)
        bound = rounds * header_timeout + slack(d) + 2
        r = d.connect(n1.addr, echo.port, timeout=bound + 5)
        waited = time.monotonic() - t0
        assert r.status == 200, r
        print(f"real client behind {N_IDLE} idle connections (max_clients {max_clients}, "
              f"header_timeout {header_timeout}): answered after {waited:.2f} s")
        assert waited < bound, f"answered after {waited:.2f} s, bound {bound:.1f} s"
        assert echo_ok(r.sock, b"my turn")
        r.sock.close()

        replies = collect_replies(crowd, time.monotonic() + header_timeout + slack(d) + 5)
        check_all_408(replies, rounds * header_timeout + slack(d) + 5)
    finally:
        stop.set()
        sampler.join(5)
        for s, _ in crowd:
            s.close()
    print(f"peak descriptors over the baseline: {peak[0]}")
    assert peak[0] <= max_clients + 5, f"{peak[0]} descriptors over the baseline with max_clients {max_clients}"
    assert peak[0] >= max_clients - 5, f"only {peak[0]} connections taken: max_clients not reached"
    tl.wait_fds_back(d.pid, base_fds)
    assert echo_ok(d.tunnel(n1.addr, echo.port), b"room again")


# --- clients too slow with their request ------------------------------------------------

@pytest.mark.alarm(60)
def test_one_byte_per_second_clients_are_cut_at_header_timeout(env):
    """HTTP on the Unix and the TCP listener gets 408; SOCKS5 (greeting and
    request one byte a second) gets its method reply, then a close; all at
    header_timeout, while a real client is served meanwhile."""
    header_timeout = 4.0
    n1 = env.sshd("n1")
    echo = env.server(tl.EchoServer, addr=n1.addr)
    d = env.sshtund([n1], proxy={"header_timeout": header_timeout})
    d.wait_all_up(30)
    http = tl.connect_request(n1.addr, echo.port)
    socks = bytes([5, 1, 0]) + bytes([5, 1, 0, 1]) + socket.inet_aton(n1.addr) + echo.port.to_bytes(2, "big")
    slow = [("http unix", d.front_door("unix"), http), ("http tcp", d.front_door("tcp"), http),
            ("socks5 unix", d.front_door("unix"), socks), ("socks5 tcp", d.front_door("tcp"), socks)]
    t0 = time.monotonic()
    stop = threading.Event()

    def dribble(s, data):
        for b in data:
            try:
                s.send(bytes([b]))
            except OSError:
                return
            if stop.wait(1.0):
                return

    threads = [threading.Thread(target=dribble, args=(s, data), daemon=True) for _, s, data in slow]
    for t in threads:
        t.start()
    try:
        time.sleep(1.5)
        s = d.tunnel(n1.addr, echo.port, timeout=5)
        assert echo_ok(s, b"not held up by the slow ones")
        s.close()
        assert time.monotonic() - t0 < header_timeout - 0.5, "the real client was not served first"
        for label, s, _ in slow:
            s.settimeout(header_timeout + 10)
            got = bytearray()
            while True:
                try:
                    data = s.recv(4096)
                except ConnectionResetError:
                    data = b""
                if not data:
                    break
                got += data
            took = time.monotonic() - t0
            if label.startswith("http"):
                assert got.startswith(b"HTTP/1.1 408 "), (label, bytes(got[:80]))
            else:
                assert bytes(got) == bytes([5, 0]), (label, bytes(got))
            assert header_timeout - 0.1 <= took < header_timeout + slack(d) + 1, \
                f"{label}: cut after {took:.2f} s with header_timeout {header_timeout}"
    finally:
        stop.set()
        for t in threads:
            t.join(5)
    assert len(echo.conns) == 1, "a slow client's partial request reached a target"


# --- hostile nodes --------------------------------------------------------------------

CONNECT_TIMEOUT = 3.0
ATTEMPTS = 3

# What last_error must say about each: a protocol error, or the timeout.
EXPECTED_ERROR = {
    "banner-endless": ("key exchange failed", "connect_timeout"),
    "banner-slow": ("connect_timeout",),
    "lines-endless": ("key exchange failed", "connect_timeout", "banner"),
    "huge-packet": ("key exchange failed",),
    "stall-kex": ("connect_timeout",),
}


def stuck_report(d, bad, behaviour, e):
    """Why the daemon stopped answering, as far as can be seen from outside."""
    cpu = tl.cpu_seconds(d.pid) if d.alive() else None
    age = time.monotonic() - bad.server.conns[0].t_accept if bad.server.conns else 0.0
    conns = [(c.sent, c.nreceived, getattr(c, "how", None)) for c in list(bad.server.conns)]
    return (f"{behaviour}: the daemon stopped answering its admin socket ({type(e).__name__}: {e}); "
            f"alive: {d.alive()}, CPU used in all: {cpu} s, {age:.1f} s after the hostile node's first "
            f"connection; the hostile node's connections (bytes sent to the daemon, bytes received, "
            f"how they ended): {conns}; a peer that keeps the daemon reading must not hold its event "
            f"loop: connect_timeout can only fire when the loop turns")


@pytest.mark.alarm(90)
@pytest.mark.parametrize("behaviour", tl.HostileSshServer.BEHAVIOURS)
def test_hostile_node_is_dropped_within_connect_timeout(env, behaviour):
    real = env.sshd("real")
    echo = env.server(tl.EchoServer, addr=real.addr)
    bad = tl.HostileNode(env, "hostile", behaviour)
    d = env.sshtund([real, bad], start=False, ssh={"connect_timeout": CONNECT_TIMEOUT,
                                                   "keepalive_interval": 1.0, "keepalive_count": 3})
    try:
        d.start(timeout=10 + 2 * CONNECT_TIMEOUT)
        d.wait_state("real", "up", timeout=30)
    except (tl.HarnessError, OSError) as e:
        raise AssertionError(stuck_report(d, bad, behaviour, e)) from None
    before = d.node_info("real")
    bound = CONNECT_TIMEOUT + slack(d)

    # the real node carries one stream after another the whole time
    stop = threading.Event()
    trips = {"ok": 0, "failed": [], "slowest": 0.0}

    def traffic():
        i = 0
        while not stop.is_set():
            i += 1
            data = b"round trip %d" % i
            t = time.monotonic()
            try:
                r = d.connect(real.addr, echo.port, timeout=5)
                if r.status != 200:
                    trips["failed"].append(f"#{i}: {r}")
                else:
                    ok = echo_ok(r.sock, data)
                    r.sock.close()
                    if not ok:
                        trips["failed"].append(f"#{i}: wrong echo")
                    else:
                        trips["ok"] += 1
            except (OSError, tl.HarnessError) as e:
                trips["failed"].append(f"#{i}: {type(e).__name__}: {e}")
            trips["slowest"] = max(trips["slowest"], time.monotonic() - t)
            stop.wait(0.1)

    # the front door opens once every node had its first attempt (start-up
    # grace, at most connect_timeout + 1 s): the first dial may wait for that
    tl.wait_until(lambda: any(x is not None for x, _ in bad.server.sessions()), bound + 5,
                  "the hostile node's first attempt to end")
    r = d.connect(real.addr, echo.port, timeout=bound + 5)
    assert r.status == 200, r
    r.sock.close()
    t = threading.Thread(target=traffic, daemon=True)
    t0, cpu0 = time.monotonic(), tl.cpu_seconds(d.pid)
    t.start()
    states = set()
    try:
        # a few attempts, each one dropped (backoff: at most 1 + 2 s between them)
        deadline = t0 + ATTEMPTS * bound + 1 + 2 + 4 + 5
        while True:
            try:
                j = d.admin_get("/v1/nodes/hostile", timeout=2.0)
                j = j.get("node", j)
            except (OSError, tl.HarnessError) as e:
                raise AssertionError(stuck_report(d, bad, behaviour, e)) from None
            states.add(j["state"])
            assert j["state"] != "up", j
            sessions = bad.server.sessions()
            now = time.monotonic()
            held = [now - c.t_accept for c in list(bad.server.conns)
                    if getattr(c, "t_end", 1) is None and hasattr(c, "t_accept")]
            assert all(h < bound for h in held), \
                f"{behaviour}: a connection held for {max(held):.1f} s (connect_timeout {CONNECT_TIMEOUT})"
            if sum(1 for x, _ in sessions if x is not None) >= ATTEMPTS:
                break
            assert now < deadline, f"{behaviour}: only {sessions} by now"
            time.sleep(0.2)
        # a peer that is dropped at once can use up its attempts in well
        # under a second: let the real node's traffic run for a few round
        # trips all the same (the hostile node keeps retrying meanwhile)
        end = time.monotonic() + bound + 5
        while trips["ok"] < 5 and not trips["failed"] and time.monotonic() < end:
            time.sleep(0.1)
    finally:
        stop.set()
        t.join(10)
    elapsed = time.monotonic() - t0
    cpu = tl.cpu_seconds(d.pid) - cpu0

    sessions = bad.server.sessions()
    ended = [x for x, _ in sessions if x is not None]
    print(f"{behaviour}: connections dropped after {', '.join(f'{x:.2f}' for x in ended)} s; states {states}; "
          f"last_error {j['last_error']!r}; {trips['ok']} round trips on the real node, slowest "
          f"{trips['slowest']:.2f} s; daemon CPU {cpu:.2f} s in {elapsed:.1f} s")
    assert all(x < bound for x in ended), f"{behaviour}: held for {max(ended):.2f} s"
    assert j["last_error"] and any(k in j["last_error"] for k in EXPECTED_ERROR[behaviour]), j
    assert states <= {"connecting", "handshaking", "backoff"}, states

    assert not trips["failed"], f"the real node's streams failed: {trips['failed'][:10]}"
    assert trips["ok"] >= 5, trips
    assert trips["slowest"] < bound, f"a round trip on the real node took {trips['slowest']:.2f} s"
    after = d.node_info("real")
    assert after["state"] == "up" and after["state_since"] == before["state_since"], (before, after)
    assert after["reconnects"] == 0, after
    assert cpu < 0.5 * elapsed, f"the daemon used {cpu:.1f} s of CPU in {elapsed:.1f} s"
