# scripts/sshtund-sync-nodes: `kubectl get nodes -o json` → the nodes file,
# exactly as expected, sorted, skipping what sshtund would refuse; written
# by rename only when it changes; accepted by `sshtund -t`.

import json
import os
import stat
import subprocess
import sys

import pytest

import sshtund_testlib as tl

SCRIPT = os.path.join(tl.SRCDIR, "scripts", "sshtund-sync-nodes")


def node(name, addresses, pod_cidrs=None, **extra):
    """One Node object as the API server returns it (trimmed to what
    matters, plus some of the noise real ones carry)."""
    n = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"},
            "resourceVersion": "4711",
            "uid": "5c1f2a9e-0000-4000-8000-%012d" % (abs(hash(name)) % 10**12),
        },
        "spec": {},
        "status": {
            "addresses": [{"type": t, "address": a} for t, a in addresses],
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
            "nodeInfo": {"kubeletVersion": "v1.29.3", "osImage": "Debian GNU/Linux 12"},
        },
    }
    if pod_cidrs:
        n["spec"]["podCIDR"] = pod_cidrs[0]
        n["spec"]["podCIDRs"] = list(pod_cidrs)
    n["spec"].update(extra)
    return n


def node_list(*items):
    return {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""},
            "items": list(items)}


# Out of order on purpose: the output is sorted by name.
N3_DUAL_STACK = node("n3", [("InternalIP", "10.0.0.13"), ("InternalIP", "fd00::13"),
                            ("Hostname", "n3")],
                     ["10.244.3.0/24", "fd00:10:244:3::/64"])
N2_EXTERNAL_ONLY = node("n2", [("ExternalIP", "203.0.113.12"), ("Hostname", "n2.example.com")],
                        ["10.244.2.0/24"])
N1 = node("n1", [("InternalIP", "10.0.0.11"), ("ExternalIP", "203.0.113.11"),
                 ("Hostname", "n1.example.internal")], ["10.244.1.0/24"])
BAD_NAME = node("Worker_1", [("InternalIP", "10.0.0.99")])

FIXTURE = node_list(N3_DUAL_STACK, N2_EXTERNAL_ONLY, N1, BAD_NAME)

EXPECTED = (
    "# Written by sshtund-sync-nodes from the cluster's Node objects;\n"
    "# the next run replaces any change made here.\n"
    "\n"
    "nodes = (\n"
    '  { name = "n1"; address = "10.0.0.11"; hostnames = [ "n1.example.internal" ];'
    ' pod_cidr = "10.244.1.0/24"; },\n'
    '  { name = "n3"; address = "10.0.0.13"; pod_cidr = "10.244.3.0/24"; }\n'
    ");\n"
)


def write_json(env, doc, name="nodes.json"):
    path = os.path.join(env.dir, name)
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)
    return path


def sync(*args, timeout=60):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def check_with_sshtund(env, nodes_text, name="full.conf"):
    """`sshtund -t` on a complete configuration holding nodes_text."""
    kh = os.path.join(env.dir, "known_hosts")
    open(kh, "a").close()
    conf = os.path.join(env.dir, name)
    with open(conf, "w") as f:
        f.write(tl.render_config({
            "ssh": {"user": "sshtund", "identity": env.client_key, "known_hosts": kh},
            "proxy": {"listen": [f"unix:{env.dir}/proxy.sock"]},
            "probe": {"type": "none"},
            "admin": {"socket": f"{env.dir}/admin.sock"},
        }))
        f.write(nodes_text)
    return subprocess.run([tl.require_binary(tl.sshtund_binary()), "-t", "-c", conf],
                          capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)


def test_output_is_exactly_the_expected_file(env):
    out = os.path.join(env.dir, "nodes.conf")
    r = sync("--from-file", write_json(env, FIXTURE), "--output", out)
    assert r.returncode == 0, r.stderr
    with open(out) as f:
        assert f.read() == EXPECTED
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o644
    assert r.stdout.strip() == f"{out}: added n1, n3 (2 nodes)"
    # What was left out, and why, goes to stderr.
    assert "skipping node n2: no InternalIP address" in r.stderr
    assert "'Worker_1'" in r.stderr and "DNS-1123" in r.stderr
    # No temporary file left next to it.
    assert not [n for n in os.listdir(env.dir) if n.startswith(".nodes.conf.")]


def test_external_addresses_port_and_dual_stack_second_family(env):
    out = os.path.join(env.dir, "nodes.conf")
    r = sync("--from-file", write_json(env, FIXTURE), "--output", out,
             "--address-type", "ExternalIP", "--port", "2222")
    assert r.returncode == 0, r.stderr
    with open(out) as f:
        text = f.read()
    assert '{ name = "n1"; address = "203.0.113.11"; port = 2222; ' in text
    assert '{ name = "n2"; address = "203.0.113.12"; port = 2222; ' \
           'hostnames = [ "n2.example.com" ]; pod_cidr = "10.244.2.0/24"; }' in text
    assert '"n3"' not in text  # no ExternalIP
    assert "skipping node n3: no ExternalIP address" in r.stderr

    # A dual-stack node listed IPv6 first (an IPv6-primary cluster): its
    # first InternalIP and its first pod CIDR.
    v6 = node("n6", [("InternalIP", "fd00::16"), ("InternalIP", "10.0.0.16")],
              ["fd00:10:244:6::/64", "10.244.6.0/24"])
    r = sync("--from-file", write_json(env, node_list(v6), "v6.json"), "--output", out)
    assert r.returncode == 0, r.stderr
    with open(out) as f:
        text = f.read()
    assert '{ name = "n6"; address = "fd00::16"; pod_cidr = "fd00:10:244:6::/64"; }' in text
    assert r.stdout.strip() == f"{out}: added n6; removed n1, n2 (1 node)"


def test_unchanged_result_does_not_touch_the_file(env):
    out = os.path.join(env.dir, "nodes.conf")
    src = write_json(env, FIXTURE)
    assert sync("--from-file", src, "--output", out).returncode == 0
    before = os.stat(out)
    r = sync("--from-file", src, "--output", out)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    after = os.stat(out)
    assert (after.st_ino, after.st_mtime_ns, after.st_ctime_ns) == \
        (before.st_ino, before.st_mtime_ns, before.st_ctime_ns)
    r = sync("--from-file", src, "--output", out, "--verbose")
    assert r.returncode == 0 and "unchanged (2 nodes)" in r.stdout


def test_a_change_replaces_the_file_by_rename(env):
    out = os.path.join(env.dir, "nodes.conf")
    assert sync("--from-file", write_json(env, FIXTURE), "--output", out).returncode == 0
    os.chmod(out, 0o640)  # the administrator's choice survives the rewrite
    before = os.stat(out)
    n1_moved = node("n1", [("InternalIP", "10.0.0.111"), ("Hostname", "n1.example.internal")],
                    ["10.244.1.0/24"])
    n4 = node("n4", [("InternalIP", "10.0.0.14")], ["10.244.4.0/24"])
    r = sync("--from-file", write_json(env, node_list(n4, n1_moved), "v2.json"), "--output", out)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"{out}: added n4; removed n3; changed n1 (2 nodes)"
    after = os.stat(out)
    assert after.st_ino != before.st_ino, "rewritten in place, not renamed"
    assert stat.S_IMODE(after.st_mode) == 0o640
    with open(out) as f:
        text = f.read()
    assert '"10.0.0.111"' in text and '"n4"' in text and '"n3"' not in text
    assert not [n for n in os.listdir(env.dir) if n.startswith(".nodes.conf.")]


def test_sshtund_accepts_the_generated_nodes(env):
    out = os.path.join(env.dir, "nodes.conf")
    assert sync("--from-file", write_json(env, FIXTURE), "--output", out).returncode == 0
    with open(out) as f:
        r = check_with_sshtund(env, f.read())
    assert r.returncode == 0, r.stderr
    assert "(2 nodes)" in r.stdout

    r = sync("--from-file", write_json(env, FIXTURE), "--output", out, "--address-type",
             "ExternalIP", "--port", "2222")
    assert r.returncode == 0, r.stderr
    with open(out) as f:
        r = check_with_sshtund(env, f.read(), "full2.conf")
    assert r.returncode == 0, r.stderr
    assert "(2 nodes)" in r.stdout


def test_an_empty_result_is_refused_unless_allowed(env):
    out = os.path.join(env.dir, "nodes.conf")
    with open(out, "w") as f:
        f.write("# kept\n")
    src = write_json(env, node_list(N2_EXTERNAL_ONLY, BAD_NAME))
    r = sync("--from-file", src, "--output", out)
    assert r.returncode == 1
    assert "no usable node" in r.stderr
    with open(out) as f:
        assert f.read() == "# kept\n"

    r = sync("--from-file", src, "--output", out, "--allow-empty")
    assert r.returncode == 0, r.stderr
    with open(out) as f:
        text = f.read()
    assert "nodes = (\n);\n" in text
    r = check_with_sshtund(env, text)
    assert r.returncode == 0, r.stderr
    assert "(0 nodes)" in r.stdout


def test_kubectl_is_run_and_its_failure_leaves_the_file(env):
    out = os.path.join(env.dir, "nodes.conf")
    fixture = write_json(env, FIXTURE)
    args_log = os.path.join(env.dir, "kubectl.args")
    fake = os.path.join(env.dir, "kubectl")
    with open(fake, "w") as f:
        f.write(f'#!/bin/sh\necho "$@" > {args_log}\n'
                f'[ -n "$FAIL" ] && {{ echo "connection refused" >&2; exit 1; }}\n'
                f'exec cat {fixture}\n')
    os.chmod(fake, 0o755)
    kubeconfig = os.path.join(env.dir, "kubeconfig")
    r = sync("--kubectl", fake, "--kubeconfig", kubeconfig, "--output", out)
    assert r.returncode == 0, r.stderr
    with open(args_log) as f:
        assert f.read().split() == ["get", "nodes", "-o", "json", "--request-timeout=30s",
                                    f"--kubeconfig={kubeconfig}"]
    with open(out) as f:
        assert f.read() == EXPECTED

    before = os.stat(out)
    r = subprocess.run([sys.executable, SCRIPT, "--kubectl", fake, "--output", out],
                       capture_output=True, text=True, timeout=60, env={**os.environ, "FAIL": "1"})
    assert r.returncode == 1
    assert "connection refused" in r.stderr
    assert os.stat(out).st_ino == before.st_ino

    r = sync("--kubectl", os.path.join(env.dir, "no-such-kubectl"), "--output", out)
    assert r.returncode == 1 and "not found" in r.stderr

    with open(fixture, "w") as f:
        f.write("{ not json")
    r = sync("--from-file", fixture, "--output", out)
    assert r.returncode == 1
    with open(out) as f:
        assert f.read() == EXPECTED


def test_usage_errors_exit_64():
    for args in (["--port", "0"], ["--address-type", "Nope"], ["--bogus"], ["--port", "x"]):
        r = sync(*args)
        assert r.returncode == 64, (args, r.stderr)
        assert "sshtund-sync-nodes:" in r.stderr
    r = sync("--help")
    assert r.returncode == 0 and "--address-type" in r.stdout


def test_libconfig_string_escapes():
    m = tl.load_script("sshtund-sync-nodes")
    assert m.lc_string('a"b\\c') == '"a\\"b\\\\c"'
    assert m.lc_string("tab\tnl\n\x01") == '"tab\\tnl\\n\\x01"'
    assert m.is_dns1123_subdomain("node-1.example")
    for bad in ("Node-1", "-n", "n-", "a..b", "a" * 64, "x_y"):
        assert not m.is_dns1123_subdomain(bad), bad


@pytest.mark.parametrize("value", ['x"y', "back\\slash", "quote\"and\\both"])
def test_escaped_strings_read_back_by_libconfig(env, value):
    # sshtund's own parser reads the escaped literal: an account name may
    # hold both characters, and a wrong escape is a syntax error.
    m = tl.load_script("sshtund-sync-nodes")
    kh = os.path.join(env.dir, "known_hosts")
    open(kh, "a").close()
    conf = os.path.join(env.dir, "esc.conf")
    with open(conf, "w") as f:
        f.write(f"ssh = {{ user = {m.lc_string(value)}; identity = {m.lc_string(env.client_key)};"
                f" known_hosts = {m.lc_string(kh)}; }};\n"
                f'proxy = {{ listen = [ "unix:{env.dir}/p.sock" ]; }};\n'
                f'admin = {{ socket = "{env.dir}/a.sock"; }};\n'
                'probe = { type = "none"; };\n' + m.render([]))
    r = subprocess.run([tl.require_binary(tl.sshtund_binary()), "-t", "-c", conf],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
