# `sshtund -t -c FILE`: 0 for a good file, 78 (EX_CONFIG) with
# "FILE:LINE: KEY: reason" for a bad one, never a network connection;
# `--version`, and 64 for usage errors.

import os
import re
import subprocess
import time

import sshtund_testlib as tl


def run_sshtund(*args, timeout=30):
    return subprocess.run([tl.require_binary(tl.sshtund_binary()), *args], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def package_version():
    path = os.path.join(tl.BUILDDIR, "config.h")
    with open(path) as f:
        m = re.search(r'^#define PACKAGE_VERSION "([^"]+)"', f.read(), re.M)
    assert m, f"no PACKAGE_VERSION in {path}"
    return m.group(1)


def good_config(env, node_addr="127.0.0.1", node_port=22, identity=None):
    """A complete valid file; returns its lines so tests can break one."""
    kh = os.path.join(env.dir, "known_hosts")
    open(kh, "w").close()
    return [
        "ssh = {",
        '  user = "sshtund";',
        f'  identity = "{identity or env.client_key}";',
        f'  known_hosts = "{kh}";',
        "  keepalive_interval = 2.0;",
        "  keepalive_count = 3;",
        "};",
        "proxy = {",
        f'  listen = [ "unix:{env.dir}/proxy.sock", "tcp:127.0.0.1:8131" ];',
        '  allow = [ "nodes", "10.96.0.0/12:443" ];',
        "  open_timeout = 5.0;",
        "};",
        'probe = { type = "none"; };',
        f'admin = {{ socket = "{env.dir}/admin.sock"; }};',
        'log = { level = "info"; target = "stderr"; };',
        "nodes = (",
        f'  {{ name = "n1"; address = "{node_addr}"; port = {node_port}; pod_cidr = "10.244.1.0/24"; }},',
        '  { name = "n2"; address = "node-2.example"; hostnames = [ "node-2" ]; }',
        ");",
    ]


def write(env, lines, name="sshtund.conf"):
    path = os.path.join(env.dir, name)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def assert_config_error(r, path, line=None, *words):
    assert r.returncode == 78, f"exit {r.returncode}, want 78; stderr: {r.stderr!r}"
    where = re.escape(path) + (f":{line}:" if line is not None else r"(:\d+)?:")
    m = re.search(where + r".*$", r.stderr, re.M)
    assert m, f"no {path}:{line}: in stderr: {r.stderr!r}"
    for w in words:
        assert re.search(w, m.group(0), re.I), f"{w!r} not in {m.group(0)!r}"


def test_good_file_exits_0_without_touching_the_network(env):
    # A node whose SSH port is a live listener: a check that connected would show.
    sink = env.server(tl.SinkServer)
    path = write(env, good_config(env, *sink.target))
    t0 = time.monotonic()
    r = run_sshtund("-t", "-c", path)
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - t0 < 10
    time.sleep(0.2)
    assert sink.conns == [], "sshtund -t connected to a node"
    assert not os.path.exists(os.path.join(env.dir, "proxy.sock")), "sshtund -t bound a listener"
    assert not os.path.exists(os.path.join(env.dir, "admin.sock"))


def test_unknown_key_names_file_line_and_key(env):
    lines = good_config(env)
    lines.insert(5, "  keepalive_intervall = 2.0;")
    path = write(env, lines)
    r = run_sshtund("-t", "-c", path)
    assert_config_error(r, path, 6, "keepalive_intervall")


def test_unknown_top_level_section(env):
    lines = good_config(env) + ["proxxy = { };"]
    path = write(env, lines)
    r = run_sshtund("-t", "-c", path)
    assert_config_error(r, path, len(lines), "proxxy")


def test_wrong_type_names_file_line_and_key(env):
    lines = good_config(env)
    lines[5] = '  keepalive_count = "three";'
    path = write(env, lines)
    r = run_sshtund("-t", "-c", path)
    assert_config_error(r, path, 6, "keepalive_count")


def test_duplicate_node_name(env):
    lines = good_config(env)
    # Every node on one line: the error's line is that of the second "n1"
    # whether it names the group or its name setting.
    lines[17] = '  { name = "n1"; address = "node-2.example"; }'
    path = write(env, lines)
    r = run_sshtund("-t", "-c", path)
    assert_config_error(r, path, 18, "n1")


def test_syntax_error_names_file_and_line(env):
    lines = good_config(env)
    lines[5] = "  keepalive_count = = 3;"
    path = write(env, lines)
    r = run_sshtund("-t", "-c", path)
    assert_config_error(r, path, 6)


def test_rsa_identity_is_refused_for_sha1(env):
    rsa = os.path.join(env.dir, "id_rsa")
    tl.ssh_keygen(rsa, "rsa")
    lines = good_config(env, identity=rsa)
    path = write(env, lines)
    r = run_sshtund("-t", "-c", path)
    assert r.returncode == 78, r.stderr
    assert re.search(r"SHA-?1", r.stderr, re.I), f"no SHA-1 reason: {r.stderr!r}"
    # It names the config (file:line of ssh.identity) or the key file.
    assert re.search(re.escape(path) + ":3:", r.stderr) or rsa in r.stderr, r.stderr


def test_missing_file_is_a_config_error(env):
    path = os.path.join(env.dir, "nonexistent.conf")
    r = run_sshtund("-t", "-c", path)
    assert r.returncode == 78, r.stderr
    assert path in r.stderr


def test_version():
    r = run_sshtund("--version")
    assert r.returncode == 0, r.stderr
    assert package_version() in r.stdout
    assert "sshtund" in r.stdout


def test_unknown_option_is_a_usage_error():
    r = run_sshtund("--no-such-option")
    assert r.returncode == 64, (r.returncode, r.stderr)
    assert r.stderr.strip(), "no usage message"


def test_stray_argument_is_a_usage_error(env):
    path = write(env, good_config(env))
    r = run_sshtund("-t", "-c", path, "extra")
    assert r.returncode == 64, (r.returncode, r.stderr)
