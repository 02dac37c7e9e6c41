# `sshtund -t -c FILE`: 0 for a good file, 78 (EX_CONFIG) with
# "FILE:LINE: KEY: reason" for a bad one, never a network connection;
# the start failing alike on every check it makes; `--version`, `--help`,
# and 64 for usage errors.

import os
import pwd
import re
import socket
import subprocess
import time

import pytest

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


# --- every check the start makes, -t makes too ----------------------------------
#
# Each case breaks one thing of a valid file and runs `sshtund -t -c F` and
# `sshtund -c F` (the start): both exit 78 with the same message. The start
# must fail before it binds or dials anything: the sockets it would bind are
# held already (a bind would end in exit 1, "already in use"; see the
# control case) and its one node is a listener that records connections.

NO_USER = "sshtund-no-such-user"
NO_GROUP = "sshtund-no-such-group"


def openssl(*args, cwd):
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"openssl {' '.join(args)}: {r.stderr}"


class StartCase:
    """A valid configuration in a directory of its own, the sockets it names
    held, and -t and the start run on it (as `run_as` through setpriv when
    given: the directory and the identity are then that user's)."""

    def __init__(self, env, run_as=None):
        self.env = env
        self.run_as = run_as
        self.dir = os.path.join(env.dir, "case")
        os.makedirs(self.dir)
        self.identity = self.file("id_ed25519", open(env.client_key).read(), 0o600)
        self.known_hosts = self.file("known_hosts", "")
        self.sink = env.server(tl.SinkServer)
        self.tcp = (env.addr(), None)
        self.tcp = (self.tcp[0], tl.free_port(self.tcp[0]))
        self.proxy_sock = os.path.join(self.dir, "proxy.sock")
        self.admin_sock = os.path.join(self.dir, "admin.sock")
        self.sections = {
            "ssh": {"identity": self.identity, "known_hosts": self.known_hosts,
                    "learned_hosts": os.path.join(self.dir, "learned_hosts")},
            "proxy": {"listen": [f"unix:{self.proxy_sock}", f"tcp:{self.tcp[0]}:{self.tcp[1]}"]},
            "probe": {"type": "none"},
            "admin": {"socket": self.admin_sock},
            "log": {"level": "debug", "target": "stderr"},
            "nodes": ({"name": "n1", "address": self.sink.target[0], "port": self.sink.target[1]},),
        }
        self.path = os.path.join(self.dir, "sshtund.conf")
        self.held = []

    def file(self, name, text, mode=0o644):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def certificates(self):
        """ca.crt, server.crt with server.key, and other.key: a key of no
        certificate here."""
        for args in (["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                      "-nodes", "-days", "2", "-subj", "/CN=test-ca", "-keyout", "ca.key", "-out", "ca.crt"],
                     ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                      "-subj", "/CN=sshtund", "-keyout", "server.key", "-out", "server.csr"],
                     ["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                      "-CAcreateserial", "-days", "2", "-out", "server.crt"],
                     ["genpkey", "-algorithm", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                      "-out", "other.key"]):
            openssl(*args, cwd=self.dir)
        return {n: os.path.join(self.dir, n) for n in ("ca.crt", "server.crt", "server.key", "other.key")}

    def write(self, top=None):
        with open(self.path, "w") as f:
            f.write(tl.render_config({**self.sections, **(top or {})}))
        if self.run_as:
            pw = pwd.getpwnam(self.run_as)
            for d, _, names in os.walk(self.dir):
                for p in [d] + [os.path.join(d, n) for n in names]:
                    os.lchown(p, pw.pw_uid, pw.pw_gid)

    def hold_sockets(self):
        for path in (self.proxy_sock, self.admin_sock):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind(path)
            s.listen(8)
            self.held.append(s)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(self.tcp)
        s.listen(8)
        self.held.append(s)

    def run(self, *args):
        argv = [tl.require_binary(tl.sshtund_binary()), *args, "-c", self.path]
        if self.run_as:
            argv = [tl.SETPRIV, f"--reuid={self.run_as}", f"--regid={pwd.getpwnam(self.run_as).pw_gid}",
                    "--clear-groups", *argv]
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=20,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{' '.join(argv)} did not exit: the check passed and it ran") from None

    def close(self):
        for s in self.held:
            s.close()


def unprivileged():
    """Who the cases that need a file this process cannot read run as:
    nobody through setpriv under root, else the test's own user."""
    if not tl.is_root():
        return None
    if not tl.SETPRIV:
        pytest.skip("as root, an unreadable file needs another user: setpriv is missing")
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("as root, an unreadable file needs another user: there is no user nobody")
    return "nobody"


def case_unknown_user(c):
    return {"user": NO_USER}, "user", "no such user"


def case_unknown_socket_group(c):
    c.sections["proxy"]["socket_group"] = NO_GROUP
    return {}, "proxy.socket_group", "no such group"


def case_unknown_readonly_socket_group(c):
    c.sections["admin"]["readonly_socket_group"] = NO_GROUP
    return {}, "admin.readonly_socket_group", "no such group"


def case_user_cannot_be_switched_to(c):
    # as nobody (or the test's user), switching to root is not possible
    return {"user": "root"}, "user", "not running as root"


def case_world_readable_identity_as_root(c):
    if not tl.is_root():
        pytest.skip("the refusal without `user` is for root; the case with `user` runs as anyone")
    os.chmod(c.identity, 0o644)
    return {}, "ssh.identity", "readable by everyone"


def case_world_readable_identity_with_user(c):
    # `user` is for a start as root: held to root's standard whoever checks
    os.chmod(c.identity, 0o644)
    return {"user": "nobody" if tl.is_root() else tl.login_user()}, "ssh.identity", "readable by everyone"


def case_group_writable_identity(c):
    os.chmod(c.identity, 0o620)
    return {}, "ssh.identity", "writable by its group"


def case_unreadable_known_hosts(c):
    os.chmod(c.known_hosts, 0)
    return {}, "ssh.known_hosts", "Permission denied"


def case_known_hosts_is_a_directory(c):
    os.unlink(c.known_hosts)
    os.mkdir(c.known_hosts)
    return {}, "ssh.known_hosts", "Is a directory"


def case_unreadable_learned_hosts(c):
    c.file("learned_hosts", "", 0)
    return {}, "ssh.learned_hosts", "Permission denied"


def case_unreadable_ca_file(c):
    certs = c.certificates()
    os.chmod(certs["ca.crt"], 0)
    c.sections["probe"] = {"type": "https", "target": "127.0.0.1:10250", "ca_file": certs["ca.crt"]}
    return {}, "probe.ca_file", "Permission denied"


def case_ca_file_without_certificates(c):
    junk = c.file("ca.crt", "not a certificate\n")
    c.sections["probe"] = {"type": "https", "target": "127.0.0.1:10250", "ca_file": junk}
    return {}, "probe.ca_file", "no usable CA certificate"


def case_konnectivity_ca_file_without_certificates(c):
    certs = c.certificates()
    k = {"upstream": "tcp:127.0.0.1:8132", "nodes": [], "ca_file": certs["server.key"]}
    return {"konnectivity": k}, "konnectivity.ca_file", "no usable CA certificate"


def case_cert_key_mismatch(c):
    certs = c.certificates()
    k = {"upstream": "tcp:127.0.0.1:8132", "nodes": [], "ca_file": certs["ca.crt"],
         "cert_file": certs["server.crt"], "key_file": certs["other.key"]}
    return {"konnectivity": k}, "konnectivity.key_file", "does not match"


def case_nodes_file_syntax_error(c):
    # the error names the nodes file and its line: there is no key to name
    bad = c.file("nodes.conf", 'nodes = (\n  { name = "n2"; address = ; }\n);\n')
    return {"nodes_file": bad}, None, "syntax error"


def case_unreadable_nodes_file(c):
    bad = c.file("nodes.conf", "nodes = ( );\n", 0)
    return {"nodes_file": bad}, None, "Permission denied"


def case_socket_directory_under_a_regular_file(c):
    c.file("afile", "")
    c.sections["proxy"]["listen"][0] = f"unix:{c.dir}/afile/sub/proxy.sock"
    return {}, r"proxy\.listen\[0\]", "is not a directory"


def case_socket_path_is_a_regular_file(c):
    c.sections["admin"]["readonly_socket"] = c.file("ro.sock", "")
    return {}, "admin.readonly_socket", "exists and is not a socket"


def case_socket_directory_not_writable(c):
    # outside the case's directory, so it stays the test's own: read-only
    ro = os.path.join(c.env.dir, "read-only")
    os.mkdir(ro, 0o555)
    os.chmod(ro, 0o555)
    c.sections["admin"]["socket"] = os.path.join(ro, "run", "admin.sock")
    return {}, "admin.socket", "Permission denied"


# name: (case, run as an unprivileged user when root)
START_CASES = {
    "unknown user": (case_unknown_user, False),
    "unknown socket_group": (case_unknown_socket_group, False),
    "unknown readonly_socket_group": (case_unknown_readonly_socket_group, False),
    "user cannot be switched to": (case_user_cannot_be_switched_to, True),
    "world-readable identity as root": (case_world_readable_identity_as_root, False),
    "world-readable identity with user": (case_world_readable_identity_with_user, False),
    "group-writable identity": (case_group_writable_identity, False),
    "unreadable known_hosts": (case_unreadable_known_hosts, True),
    "known_hosts is a directory": (case_known_hosts_is_a_directory, False),
    "unreadable learned_hosts": (case_unreadable_learned_hosts, True),
    "unreadable CA file": (case_unreadable_ca_file, True),
    "CA file without certificates": (case_ca_file_without_certificates, False),
    "konnectivity CA file without certificates": (case_konnectivity_ca_file_without_certificates, False),
    "cert/key mismatch": (case_cert_key_mismatch, False),
    "nodes_file with a syntax error": (case_nodes_file_syntax_error, False),
    "unreadable nodes_file": (case_unreadable_nodes_file, True),
    "socket directory under a regular file": (case_socket_directory_under_a_regular_file, False),
    "socket path is a regular file": (case_socket_path_is_a_regular_file, False),
    "socket directory not writable": (case_socket_directory_not_writable, True),
}


@pytest.fixture
def start_case(env):
    cases = []

    def make(run_as=None):
        c = StartCase(env, run_as)
        cases.append(c)
        return c

    yield make
    for c in cases:
        c.close()


@pytest.mark.parametrize("name", START_CASES)
def test_check_and_start_fail_alike(start_case, name):
    case, unprivileged_case = START_CASES[name]
    c = start_case(unprivileged() if unprivileged_case else None)
    top, key, words = case(c)
    c.write(top)
    c.hold_sockets()

    t = c.run("-t")
    start = c.run()
    assert t.returncode == 78, f"-t: exit {t.returncode}, want 78; stderr: {t.stderr!r}"
    assert start.returncode == 78, f"start: exit {start.returncode}, want 78; stderr: {start.stderr!r}"
    assert start.stderr == t.stderr, f"-t and the start differ:\n{t.stderr}\n{start.stderr}"
    lines = t.stderr.strip().splitlines()
    assert len(lines) == 1, t.stderr
    if key is None:  # an error of the nodes file itself
        where = re.escape(top["nodes_file"]) + r"(:\d+)?: "
    else:
        where = re.escape(c.path) + r"(:\d+)?: " + key + ": "
    assert re.match(where, lines[0]), f"not {where!r}: {lines[0]!r}"
    assert re.search(words, lines[0], re.I), f"{words!r} not in {lines[0]!r}"
    time.sleep(0.2)
    assert c.sink.conns == [], "the start dialled a node"


def test_start_control_case_reaches_the_bind(start_case):
    # The same setup with nothing broken: -t passes, and the start gets as far
    # as binding, where the held sockets stop it with exit 1 (not a
    # configuration error), before any node is dialled.
    c = start_case()
    c.write()
    c.hold_sockets()
    t = c.run("-t")
    assert t.returncode == 0, t.stderr
    start = c.run()
    assert start.returncode == 1, f"start: exit {start.returncode}, want 1; stderr: {start.stderr!r}"
    assert re.search(r"already in use", start.stderr, re.I), start.stderr
    assert c.sink.conns == []


def test_help_shows_the_default_config_path():
    r = run_sshtund("--help")
    assert r.returncode == 0, r.stderr
    m = re.search(r"configuration file \(default (\S+)\)", r.stdout)
    assert m, r.stdout
    assert m.group(1) == os.path.join(build_dirs()["sysconfdir"], "sshtund", "sshtund.conf")


def build_dirs():
    """prefix, sysconfdir and localstatedir as the build's Makefile has them."""
    with open(os.path.join(tl.BUILDDIR, "Makefile")) as f:
        text = f.read()
    raw = dict(re.findall(r"^(prefix|exec_prefix|sysconfdir|localstatedir) = (.*)$", text, re.M))
    out = {}
    for k in ("prefix", "sysconfdir", "localstatedir"):
        v = raw[k]
        for _ in range(4):
            v = re.sub(r"\$[{(](\w+)[})]", lambda m: raw.get(m.group(1), m.group(0)), v)
        out[k] = v
    return out
