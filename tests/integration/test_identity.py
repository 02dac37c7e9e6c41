# Every identity type sshtund accepts authenticates against real nodes, and
# the node saw that very key: ed25519 and ECDSA nistp256/384/521 in the
# OpenSSH format, and ECDSA in PEM ("EC PRIVATE KEY"), against OpenSSH sshd
# and dropbear. sshtund signs with the key it parsed at start (not libssh2's
# key-file path), so this is the test of its signatures.

import os
import subprocess

import pytest

import sshtund_testlib as tl

KEYS = {
    "ed25519": ["-t", "ed25519"],
    "ecdsa-256": ["-t", "ecdsa", "-b", "256"],
    "ecdsa-384": ["-t", "ecdsa", "-b", "384"],
    "ecdsa-521": ["-t", "ecdsa", "-b", "521"],
    "ecdsa-256-pem": ["-t", "ecdsa", "-b", "256", "-m", "PEM"],
}


def make_identity(env, key):
    path = os.path.join(env.dir, f"id_{key}")
    subprocess.run(["ssh-keygen", "-q", *KEYS[key], "-N", "", "-C", "sshtund-test", "-f", path],
                   check=True, stdin=subprocess.DEVNULL, timeout=60)
    with open(path + ".pub") as f:
        pub = f.read().strip()
    if key.endswith("-pem"):
        with open(path) as f:
            assert f.read().startswith("-----BEGIN EC PRIVATE KEY-----")
    env.use_client_key(path, pub)
    return pub


@pytest.mark.alarm(120)
@pytest.mark.parametrize("server", ["sshd", "dropbear"])
@pytest.mark.parametrize("key", list(KEYS))
def test_identity_authenticates(env, server, key):
    pub = make_identity(env, key)
    node = getattr(env, server)("n1")
    echo = env.server(tl.EchoServer, addr=node.addr)
    d = env.sshtund([node])
    d.wait_all_up(30)

    def auths():
        # each node names the key it accepted: sshd "Accepted publickey for
        # root ... ECDSA SHA256:...", dropbear "Pubkey auth succeeded ... SHA256:..."
        lines = tl.tail(node.log_path, 400).splitlines()
        return [ln for ln in lines if "Accepted publickey" in ln or "auth succeeded" in ln]

    def streams(tag):
        for i in range(3):
            r = d.connect(node.addr, echo.port, timeout=10)
            assert r.status == 200, r
            data = b"signed by %s, %s #%d" % (key.encode(), tag, i)
            r.sock.sendall(data)
            assert tl.recv_exactly(r.sock, len(data), timeout=10) == data
            r.sock.close()

    streams(b"first session")
    # a fresh session signs again
    assert d.sshtunctl("reconnect", "n1").returncode == 0
    tl.wait_until(lambda: len(auths()) >= 2, 15, "a second authentication")
    d.wait_state("n1", "up", 15)
    streams(b"second session")

    fp = tl.fingerprint(pub)
    assert all(fp in ln for ln in auths()), (fp, auths())
