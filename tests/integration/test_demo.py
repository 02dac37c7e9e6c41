# scripts/demo, the README's first command, against this build: it exits 0,
# shows every node up and the requests answered, logs no warning or error
# (what a new user sees first must not mislead), and leaves nothing behind.

import os
import re
import socket
import subprocess

import pytest

import sshtund_testlib as tl

pytestmark = pytest.mark.alarm(180)

DEMO = os.path.join(tl.SRCDIR, "scripts", "demo")


@pytest.mark.skipif(not os.access(tl.SSHD, os.X_OK), reason="OpenSSH sshd is not installed")
def test_demo_runs_clean():
    tl.require_binary(tl.sshtund_binary())
    tl.require_binary(tl.sshtunctl_binary())
    r = subprocess.run([DEMO], capture_output=True, text=True, timeout=150, stdin=subprocess.DEVNULL,
                       env={**os.environ, "BUILD_DIR": tl.BUILDDIR, "NO_COLOR": "1"})
    out = r.stdout
    assert r.returncode == 0, (out[-3000:], r.stderr[-3000:])
    assert "Front door open: 3/3 nodes up" in out, out[-3000:]
    assert "hello from the kubelet stand-in" in out, out[-3000:]
    assert "HTTP/1.1 403 Forbidden" in out and "HTTP/1.1 502 Bad Gateway" in out, out[-3000:]
    logged = [ln for ln in out.splitlines() if re.match(r"^\d{4}-\d\d-\d\dT\S+ sshtund: ", ln)]
    assert logged, out[-3000:]
    bad = [ln for ln in logged if re.search(r" sshtund: (warning|error|critical|alert|emergency): ", ln)]
    assert not bad, bad
    # stopped, and its directory gone
    for addr, port in (("127.0.66.1", 2222), ("127.0.66.20", 8131)):
        with pytest.raises(OSError):
            socket.create_connection((addr, port), timeout=2).close()
    for d in set(re.findall(r"/tmp/sshtund-demo\.\w+", out)):
        assert not os.path.exists(d), d
