# Back-pressure: a target that sends 512 MiB to a client that never reads
# must stall at the node, not pile up in sshtund. The daemon's memory stays
# within a per-stream bound, and once the client reads, every byte arrives
# in order.
#
# The bound: a stream holds at most two relay buffers of 256 KiB and one SSH
# receive window of 2 MiB inside libssh2, about 2.5 MiB. RSS_BOUND_MIB allows
# allocator slack and libssh2's packet buffers on top; a daemon without
# back-pressure blows through it within a second. Under AddressSanitizer the
# quarantine holds freed buffers, so it is capped and added to the bound.

import os
import time

import pytest

import sshtund_testlib as tl

SIZE = 512 << 20
RSS_BOUND_MIB = 32
ASAN_QUARANTINE_MIB = 16


def wait_stall(conn, d, baseline_kb, bound_kb, quiet=2.0, timeout=60.0):
    """Wait until the target has sent nothing for 'quiet' seconds; fails as
    soon as RSS passes the bound or the whole stream went through."""
    t0 = time.monotonic()
    last, since = conn.sent, time.monotonic()
    peak = 0
    while True:
        time.sleep(0.1)
        rss = d.rss_kb()
        peak = max(peak, rss)
        assert rss - baseline_kb < bound_kb, \
            f"RSS grew by {(rss - baseline_kb) // 1024} MiB with {conn.sent >> 20} MiB sent"
        assert conn.sent < SIZE, "the whole stream went through to a client that never reads"
        if conn.sent != last:
            last, since = conn.sent, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return last, peak
        assert time.monotonic() - t0 < timeout, "the stream never stalled"


@pytest.mark.alarm(240)
def test_a_client_that_never_reads_stalls_the_target(env):
    n1 = env.sshd("n1")
    cg = env.server(tl.ChargenServer, addr=n1.addr, size=SIZE)
    echo = env.server(tl.EchoServer, addr=n1.addr)
    bound_mib = RSS_BOUND_MIB
    env_vars = {}
    if tl.binary_has_asan(tl.sshtund_binary()):
        opts = os.environ.get("ASAN_OPTIONS", "")
        env_vars["ASAN_OPTIONS"] = (opts + ":" if opts else "") + \
            f"quarantine_size_mb={ASAN_QUARANTINE_MIB}"
        bound_mib += 2 * ASAN_QUARANTINE_MIB
    d = env.sshtund([n1], env_vars=env_vars)
    d.wait_all_up(30)

    # Warm up the data path once so the baseline includes its steady state.
    s = d.tunnel(n1.addr, echo.port)
    data = os.urandom(4 << 20)
    s.sendall(data[:1 << 20])
    assert tl.recv_exactly(s, 1 << 20) == data[:1 << 20]
    s.close()
    time.sleep(0.5)
    baseline = d.rss_kb()

    s = d.tunnel(n1.addr, cg.port)
    s.sendall(b"go")  # the client speaks: the target's bytes may flow now
    conn = cg.wait_connections(1)
    sent, peak = wait_stall(conn, d, baseline, bound_mib * 1024)
    growth = d.rss_kb() - baseline
    assert growth < bound_mib * 1024, f"RSS grew by {growth // 1024} MiB (bound {bound_mib})"
    time.sleep(2)
    assert d.rss_kb() - baseline < bound_mib * 1024
    assert conn.sent == sent, "the target kept sending"
    assert d.node_info("n1")["state"] == "up"

    # Reading resumes the flow, and the bytes are the target's, in order.
    got = tl.recv_exactly(s, sent + (8 << 20), timeout=60)
    assert got == cg.expected(0, len(got)), "bytes lost or reordered under back-pressure"
    assert conn.sent > sent
    s.close()
    tl.wait_until(lambda: d.node_info("n1")["streams"] == 0, 15, "the stream to end")
