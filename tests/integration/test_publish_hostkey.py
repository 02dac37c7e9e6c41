# sshtund-publish-hostkey against the stand-in API server with the real
# kubectl: the fingerprints are ssh-keygen's for ed25519, ECDSA and RSA host
# keys; the annotation is set with a kubelet's credentials on its own Node
# and on no other; a second run reads and does not PATCH; --dry-run asks the
# API server nothing; bad key files fail naming the file; failures that may
# pass are retried with backoff, and the others are not.

import base64
import os
import shutil
import subprocess
import sys
import time

import pytest

import kube_standin as ks
import sshtund_testlib as tl

SCRIPT = os.path.join(tl.SRCDIR, "scripts", "sshtund-publish-hostkey")
KUBECTL = ks.KUBECTL
ANNOTATION = "sshtund/host-key-fingerprints"

pytestmark = [pytest.mark.skipif(not os.access(KUBECTL, os.X_OK), reason="kubectl is not installed"),
              pytest.mark.alarm(120)]


def kubelet_conf(env, api, node):
    """A kubeconfig holding node's kubelet client certificate, as
    /etc/kubernetes/kubelet.conf does."""
    return api.write_kubeconfig(os.path.join(env.dir, f"kubelet-{node}.conf"),
                                client_cert=api.client_cert(f"system:node:{node}", "system:nodes"))


def host_keys(env, types=("ed25519", "ecdsa", "rsa"), name="ssh"):
    """A directory of host keys as ssh-keygen -A leaves /etc/ssh, plus
    files that are not host public keys; (dir, {type: .pub path})."""
    d = os.path.join(env.dir, name)
    os.makedirs(d, exist_ok=True)
    pubs = {}
    for t in types:
        path = os.path.join(d, f"ssh_host_{t}_key")
        if os.path.exists(path):
            os.unlink(path)
            os.unlink(path + ".pub")
        tl.ssh_keygen(path, t)
        pubs[t] = path + ".pub"
    for other in ("sshd_config", "moduli", "ssh_host_ed25519_key-cert.pub.disabled"):
        with open(os.path.join(d, other), "w") as f:
            f.write("not a key\n")
    return d, pubs


def expected(pubs):
    return " ".join(sorted(tl.ssh_keygen_fingerprint(p) for p in pubs.values()))


def publish(env, *args, timeout=90):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL,
                          env={**os.environ, "HOME": env.dir, "PATH": os.path.dirname(KUBECTL)
                               + ":" + os.environ.get("PATH", "/usr/bin:/bin")})


def test_fingerprints_are_those_ssh_keygen_prints(env):
    d, pubs = host_keys(env, ("ed25519", "ecdsa", "rsa"))
    # A second ECDSA key, 384 bits, and one written without a comment and
    # with CRLF line ends, as some tools leave them.
    subprocess.run(["ssh-keygen", "-q", "-t", "ecdsa", "-b", "384", "-N", "", "-f",
                    os.path.join(d, "ssh_host_ecdsa384_key")], check=True, timeout=60)
    pubs["ecdsa384"] = os.path.join(d, "ssh_host_ecdsa384_key.pub")
    with open(pubs["ed25519"]) as f:
        ktype, b64 = f.read().split()[:2]
    with open(os.path.join(d, "ssh_host_plain_key.pub"), "w", newline="") as f:
        f.write(f"{ktype} {b64}\r\n")  # the ed25519 key again: listed once

    r = publish(env, "--dry-run", "--host-keys-dir", d, "--verbose")
    assert r.returncode == 0, r.stderr
    want = expected(pubs)
    assert r.stdout == f"{ANNOTATION}={want}\n"
    assert len(want.split()) == 4 and all(fp.startswith("SHA256:") for fp in want.split())
    for t in ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ssh-rsa"):
        assert f": {t} SHA256:" in r.stderr  # --verbose names each file and key


def test_sets_the_annotation_with_kubelet_credentials_once(env, api):
    api.add_node("n1", [("InternalIP", "10.0.0.1")], annotations={"other/kept": "yes"})
    d, pubs = host_keys(env)
    kc = kubelet_conf(env, api, "n1")
    r = publish(env, "--node", "n1", "--host-keys-dir", d, "--kubeconfig", kc)
    assert r.returncode == 0, r.stderr
    want = expected(pubs)
    assert r.stdout == f"node n1: {ANNOTATION} set: {want}\n"
    ann = api.annotations("n1")
    assert ann[ANNOTATION] == want and ann["other/kept"] == "yes"
    patches = api.requests_for("PATCH", "/api/v1/nodes/n1")
    assert len(patches) == 1 and patches[0].user == "system:node:n1"

    # Nothing changed: read, and no PATCH.
    r = publish(env, "--node", "n1", "--host-keys-dir", d, "--kubeconfig", kc)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"node n1: {ANNOTATION} unchanged: {want}\n"
    assert len(api.requests_for("PATCH", "/api/v1/nodes/n1")) == 1
    assert len(api.requests_for("GET", "/api/v1/nodes/n1")) >= 2

    # A new host key: the annotation follows it.
    _, new = host_keys(env, ("ed25519",))
    pubs.update(new)
    r = publish(env, "--node", "n1", "--host-keys-dir", d, "--kubeconfig", kc)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"node n1: {ANNOTATION} updated: ")
    assert api.annotations("n1")[ANNOTATION] == expected(pubs) != want
    assert len(api.requests_for("PATCH", "/api/v1/nodes/n1")) == 2


def test_dry_run_asks_the_api_server_nothing(env, api):
    api.add_node("n1", [("InternalIP", "10.0.0.1")])
    d, pubs = host_keys(env, ("ed25519",))
    r = publish(env, "--dry-run", "--node", "n1", "--host-keys-dir", d,
                "--kubeconfig", kubelet_conf(env, api, "n1"))
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"{ANNOTATION}={expected(pubs)}\n"
    assert api.requests == []
    assert ANNOTATION not in api.annotations("n1")


def test_bad_host_key_files_fail_naming_the_file(env, api):
    api.add_node("n1", [("InternalIP", "10.0.0.1")])
    kc = kubelet_conf(env, api, "n1")
    good_dir, pubs = host_keys(env, ("ed25519",), name="good")
    with open(pubs["ed25519"]) as f:
        ktype, b64 = f.read().split()[:2]
    blob = base64.b64decode(b64)
    private = os.path.join(good_dir, "ssh_host_ed25519_key")
    with open(private) as f:
        private_text = f.read()

    def case(name, content, mode="w"):
        d = os.path.join(env.dir, "bad-" + name)
        os.makedirs(d)
        shutil.copy(pubs["ed25519"], d)  # a good key beside it changes nothing
        path = os.path.join(d, "ssh_host_ecdsa_key.pub")
        with open(path, mode) as f:
            f.write(content)
        return d, path

    cases = [
        (case("base64", f"{ktype} AAAA!!notbase64 c\n"), ":1: the ssh-ed25519 key is not valid base64"),
        (case("type", f"ssh-rsa {b64} c\n"),
         ":1: not a public key (the key data does not start with its type ssh-rsa)"),
        (case("truncated", f"{ktype} {base64.b64encode(blob[:15]).decode()}\n"),
         ":1: not a public key (the ssh-ed25519 key data is empty)"),
        (case("onefield", "# a comment\n\nssh-ed25519\n"), ":3: not a public key (want"),
        (case("private", private_text), ":1: not a public key (want"),
        (case("empty", ""), ": no public key in the file"),
        (case("binary", b"\x00\x01\xff" * 10, "wb"), ": not a public key file (not ASCII text)"),
    ]
    for (d, path), message in cases:
        r = publish(env, "--node", "n1", "--host-keys-dir", d, "--kubeconfig", kc)
        assert r.returncode == 1, (path, r.stdout, r.stderr)
        assert f"sshtund-publish-hostkey: {path}{message}" in r.stderr, r.stderr
        assert r.stdout == ""

    empty = os.path.join(env.dir, "no-keys")
    os.makedirs(empty)
    r = publish(env, "--node", "n1", "--host-keys-dir", empty, "--kubeconfig", kc)
    assert r.returncode == 1 and f"no host public keys (ssh_host_*_key.pub) in {empty}" in r.stderr
    r = publish(env, "--node", "n1", "--host-keys-dir", empty + "-missing", "--kubeconfig", kc)
    assert r.returncode == 1 and f"{empty}-missing: no such directory" in r.stderr
    r = publish(env, "--node", "n1", "--host-keys-dir", good_dir,
                "--kubeconfig", os.path.join(env.dir, "missing.conf"))
    assert r.returncode == 1 and "missing.conf: no such file (--kubeconfig)" in r.stderr

    assert api.requests == [], "the API server was asked despite bad input"
    assert ANNOTATION not in api.annotations("n1")


def test_another_nodes_object_is_forbidden_and_not_retried(env, api):
    api.add_node("n1", [("InternalIP", "10.0.0.1")])
    api.add_node("n2", [("InternalIP", "10.0.0.2")])
    d, _ = host_keys(env, ("ed25519",))
    t0 = time.monotonic()
    r = publish(env, "--node", "n2", "--host-keys-dir", d, "--kubeconfig", kubelet_conf(env, api, "n1"))
    assert r.returncode == 1
    assert 'Error from server (Forbidden): nodes "n2" is forbidden: node "n1" is not allowed to ' \
           'modify node "n2"' in r.stderr
    assert "retrying" not in r.stderr and time.monotonic() - t0 < 20
    assert len(api.requests_for("PATCH", "/api/v1/nodes/n2")) == 1
    assert ANNOTATION not in api.annotations("n2")

    bad = api.write_kubeconfig(os.path.join(env.dir, "bad.conf"), token="not-the-token")
    r = publish(env, "--node", "n1", "--host-keys-dir", d, "--kubeconfig", bad)
    assert r.returncode == 1 and "Unauthorized" in r.stderr and "retrying" not in r.stderr


def test_retries_until_the_api_server_and_the_node_are_there(env, api):
    d, pubs = host_keys(env, ("ed25519",))
    kc = kubelet_conf(env, api, "n1")
    api.stop()
    # Bounded: two retries, then a failure naming the attempts.
    r = publish(env, "--node", "n1", "--host-keys-dir", d, "--kubeconfig", kc, "--retries", "2")
    assert r.returncode == 1
    assert r.stderr.count("retrying in") == 2 and "(gave up after 3 attempts)" in r.stderr
    assert "refused" in r.stderr

    # At boot: the API server comes up, then the kubelet registers its node.
    log = os.path.join(env.dir, "publish.log")
    p = tl._spawn([sys.executable, SCRIPT, "--node", "n1", "--host-keys-dir", d, "--kubeconfig", kc],
                  log, env={**os.environ, "HOME": env.dir})
    try:
        time.sleep(1.5)
        api.start()
        tl.wait_until(lambda: api.requests_for("GET", "/api/v1/nodes/n1"), 20, "a GET of n1")
        time.sleep(0.5)
        api.add_node("n1", [("InternalIP", "10.0.0.1")])
        assert p.wait(60) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)
    with open(log) as f:
        text = f.read()
    assert "refused" in text and '(NotFound): nodes "n1" not found; retrying in' in text
    assert api.annotations("n1")[ANNOTATION] == expected(pubs)


@pytest.mark.skipif(not (tl.is_root() and shutil.which("unshare")),
                    reason="needs root and unshare for a host name of its own")
def test_the_node_name_defaults_to_the_host_name_lower_cased(env, api):
    api.add_node("node-7.example", [("InternalIP", "10.0.0.7")])
    d, pubs = host_keys(env, ("ed25519",))
    kc = kubelet_conf(env, api, "node-7.example")
    r = subprocess.run(["unshare", "--uts", "sh", "-c", 'hostname Node-7.Example && exec "$@"', "sh",
                        sys.executable, SCRIPT, "--host-keys-dir", d, "--kubeconfig", kc],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                       env={**os.environ, "HOME": env.dir})
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"node node-7.example: {ANNOTATION} set: ")
    assert api.annotations("node-7.example")[ANNOTATION] == expected(pubs)


def test_usage_errors(env):
    for args in (["--node", "Bad_Name"], ["--retries", "-1"], ["--timeout", "0"], ["--bogus"]):
        r = publish(env, *args)
        assert r.returncode == 64, (args, r.stderr)
        assert "sshtund-publish-hostkey:" in r.stderr
    r = publish(env, "--help")
    assert r.returncode == 0 and "--host-keys-dir" in r.stdout
