# `sshtund -T -c FILE`: the effective configuration, every key with its
# value and the defaults filled in, in the syntax -t reads back: written to
# a file, -t passes on it and -T prints the same text again. Strings come
# back escaped as libconfig wants them, the nodes_file stays named with its
# nodes shown as comments, defaults follow configure's directories, and a
# bad file fails as with -t.

import os
import re
import subprocess

import sshtund_testlib as tl
from test_config_check import build_dirs, openssl


def run_sshtund(*args):
    return subprocess.run([tl.require_binary(tl.sshtund_binary()), *args], capture_output=True,
                          text=True, timeout=30, stdin=subprocess.DEVNULL)


def write(env, text, name):
    path = os.path.join(env.dir, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def print_config(path):
    r = run_sshtund("-T", "-c", path)
    assert r.returncode == 0, f"-T: exit {r.returncode}: {r.stderr}"
    assert r.stderr == "", r.stderr
    return r.stdout


def round_trip(env, path):
    """-T, then -t and -T on what it printed: the same text again."""
    first = print_config(path)
    again = write(env, first, "printed.conf")
    r = run_sshtund("-t", "-c", again)
    assert r.returncode == 0, f"-t on the -T output: {r.stderr}\n--- output:\n{first}"
    second = print_config(again)
    assert second == first, f"-T differs on its own output:\n{first}\n---\n{second}"
    return first


def settings(text):
    """'section.key' (or 'key') -> the value's text, from -T's layout: one
    setting a line, sections opened by 'name = {' and closed by '};'."""
    out, section = {}, None
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        m = re.match(r"^(\w+) = \{$", line)
        if m:
            section = m.group(1)
            continue
        if line == "};":
            section = None
            continue
        m = re.match(r"^\s*(\w+) = (.*);$", line)
        if m:
            out[f"{section}.{m.group(1)}" if section else m.group(1)] = m.group(2)
    return out


def base(env):
    kh = write(env, "", "known_hosts")
    return (f'ssh = {{ identity = "{env.client_key}"; known_hosts = "{kh}"; }};\n'
            f'proxy = {{ listen = [ "unix:{env.dir}/proxy.sock" ]; }};\n'
            f'admin = {{ socket = "{env.dir}/admin.sock"; }};\n')


def test_defaults_filled_in(env):
    text = round_trip(env, write(env, base(env), "sshtund.conf"))
    s = settings(text)
    assert s["ssh.port"] == "22"
    assert s["ssh.connect_timeout"] == "10.0"
    assert s["ssh.host_key_policy"] == '"strict"'
    assert s["proxy.allow"] == '[ "nodes" ]'
    assert s["proxy.socket_mode"] == '"0660"'
    assert s["probe.type"] == '"none"'
    assert s["probe.target"] == '"127.0.0.1:10248"'
    assert s["admin.ready_min_fraction"] == "0.5"
    assert s["admin.metrics_per_node"] == "true"
    assert s["log.level"] == '"info"'
    assert s["user"] == '""'
    assert s["nodes"] == "( )" and s["forwards"] == "( )"
    assert "# konnectivity: no section" in text
    # every key of every section, the new ones too
    for key in ("ssh.learned_hosts", "admin.readonly_socket", "admin.readonly_socket_mode",
                "admin.readonly_socket_group", "admin.metrics_per_node", "admin.metrics_listen",
                "proxy.max_clients", "drain_timeout", "nodes_file"):
        assert key in s, f"{key} not printed:\n{text}"


def test_defaults_follow_configure(env):
    # only the identity given: the defaults of known_hosts and learned_hosts
    # are configure's, whatever this build was given
    dirs = build_dirs()
    path = write(env, f'ssh = {{ identity = "{env.client_key}"; }};\n'
                      f'proxy = {{ listen = [ "unix:{env.dir}/proxy.sock" ]; }};\n'
                      f'admin = {{ socket = "{env.dir}/admin.sock"; }};\n', "sshtund.conf")
    r = run_sshtund("-T", "-c", path)
    if r.returncode != 0:
        # the default known_hosts exists on this host and cannot be read
        assert "ssh.known_hosts" in r.stderr or "ssh.learned_hosts" in r.stderr, r.stderr
        return
    s = settings(r.stdout)
    assert s["ssh.known_hosts"] == '"%s/sshtund/known_hosts"' % dirs["sysconfdir"]
    assert s["ssh.learned_hosts"] == '"%s/lib/sshtund/known_hosts"' % dirs["localstatedir"]


def test_every_key_round_trips(env):
    # every key away from its default
    for args in (["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                  "-days", "2", "-subj", "/CN=ca", "-keyout", "ca.key", "-out", "ca.crt"],
                 ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                  "-days", "2", "-subj", "/CN=client", "-keyout", "client.key", "-out", "client.crt"]):
        openssl(*args, cwd=env.dir)
    d = env.dir
    kh = write(env, "", "known_hosts")
    # a user other than root can check only a file that names itself
    user = "root" if tl.is_root() else tl.login_user()
    text = f'''
ssh = {{ user = "tunnel"; identity = "{env.client_key}"; known_hosts = "{kh}"; learned_hosts = "{d}/learned";
        host_key_policy = "accept-new"; port = 2200; connect_timeout = 2.5; keepalive_interval = 0.25;
        keepalive_count = 7; pool_size = 3; backoff_max = 12.5; max_streams_per_session = 100; max_handshakes = 9;
        ciphers = "aes256-ctr,aes128-gcm@openssh.com"; macs = "hmac-sha2-512"; }};
proxy = {{ listen = [ "unix:{d}/proxy.sock", "tcp:127.0.0.1:8131", "tcp:[::1]:8131" ];
          socket_mode = "0640"; socket_group = "root"; open_timeout = 3; header_timeout = 4.75;
          allow = [ "nodes:10250,10248", "10.96.0.0/12:443", "[fd00::/8]:1-1024" ]; fallback = "none";
          max_clients = 77; }};
probe = {{ type = "https"; target = "[fd00::1]:10250"; path = "/livez?verbose"; interval = 30;
          timeout = 1.5; ca_file = "{d}/ca.crt"; }};
admin = {{ socket = "{d}/admin.sock"; readonly_socket = "{d}/ro.sock"; readonly_socket_mode = "0600";
          readonly_socket_group = "root"; metrics_listen = "tcp:127.0.0.1:9464"; ready_min_fraction = 0.3;
          metrics_per_node = false; }};
log = {{ level = "debug"; target = "syslog"; }};
user = "{user}";
drain_timeout = 0.5;
nodes = (
  {{ name = "node-1"; address = "10.0.0.11"; hostnames = [ "node-1.example", "n1" ];
    pod_cidr = "10.244.1.0/24"; }},
  {{ name = "node-2"; address = "Node-2.Example.com"; port = 22; pod_cidr = "fd00:244:2::/64"; }}
);
forwards = (
  {{ listen = "tcp:127.0.0.1:10001"; node = "node-1"; target = "127.0.0.1:10250"; }},
  {{ listen = "unix:{d}/f.sock"; node = "node-2"; target = "[::1]:22"; }}
);
konnectivity = {{ upstream = "tcp:konnectivity.example:8132"; nodes = [ "node-1" ];
                 fallback_to_ssh = false; ca_file = "{d}/ca.crt"; cert_file = "{d}/client.crt";
                 key_file = "{d}/client.key"; server_name = "konnectivity.internal"; probe_port = 10255; }};
'''
    out = round_trip(env, write(env, text, "sshtund.conf"))
    s = settings(out)
    assert s["ssh.keepalive_interval"] == "0.25"
    assert s["proxy.open_timeout"] == "3.0"
    assert s["proxy.allow"] == '[ "nodes:10250,10248", "10.96.0.0/12:443", "[fd00::/8]:1-1024" ]'
    assert s["proxy.listen"] == f'[ "unix:{d}/proxy.sock", "tcp:127.0.0.1:8131", "tcp:[::1]:8131" ]'
    assert s["probe.target"] == '"[fd00::1]:10250"'
    assert s["ssh.learned_hosts"] == '"%s/learned"' % d
    assert s["ssh.backoff_max"] == "12.5"
    assert s["ssh.ciphers"] == '"aes256-ctr,aes128-gcm@openssh.com"'
    assert s["konnectivity.server_name"] == '"konnectivity.internal"'
    assert s["admin.metrics_per_node"] == "false"
    assert s["log.target"] == '"syslog"'
    # the nodes' ports filled in from ssh.port where they had none
    assert '{ name = "node-1"; address = "10.0.0.11"; port = 2200; ' \
           'hostnames = [ "node-1.example", "n1" ]; pod_cidr = "10.244.1.0/24"; }' in out, out
    assert '{ listen = "unix:%s/f.sock"; node = "node-2"; target = "[::1]:22"; }' % d in out, out


def test_strings_are_escaped(env):
    # Paths are free-form: a quote, a backslash, a newline, a tab, a control
    # byte and UTF-8. Files that do not exist are empty known_hosts files.
    odd = os.path.join(env.dir, 'a "quoted" \\ back\nslash\ttab\x01 é')
    text = base(env).replace("ssh = {", 'ssh = { learned_hosts = "%s";' % (
        odd.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
        .replace("\x01", "\\x01")), 1)
    out = round_trip(env, write(env, text, "sshtund.conf"))
    s = settings(out)
    assert s["ssh.learned_hosts"] == '"%s"' % (
        odd.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
        .replace("\x01", "\\x01")), out


def test_nodes_file_stays_named(env):
    nodes = write(env, 'nodes = (\n  { name = "n3"; address = "10.0.0.13"; pod_cidr = "10.244.3.0/24"; },\n'
                       '  { name = "n4"; address = "10.0.0.14"; port = 2222; }\n);\n', "nodes.conf")
    text = base(env) + ('nodes = ( { name = "n1"; address = "10.0.0.11"; } );\n'
                        f'nodes_file = "{nodes}";\n'
                        'forwards = ( { listen = "tcp:127.0.0.1:10001"; node = "n3"; target = "127.0.0.1:1"; } );\n')
    out = round_trip(env, write(env, text, "sshtund.conf"))
    s = settings(out)
    assert s["nodes_file"] == f'"{nodes}"'
    # the main file's nodes inline, the nodes file's as comments, once each
    assert re.search(r'^nodes = \(\n  \{ name = "n1"; ', out, re.M), out
    body = out.split(f'nodes_file = "{nodes}";\n', 1)[1]
    assert re.search(r'^#\s+\{ name = "n3"; address = "10.0.0.13"; port = 22; hostnames = \[ \]; '
                     r'pod_cidr = "10.244.3.0/24"; \}', body, re.M), out
    assert re.search(r'^#\s+\{ name = "n4"; .*port = 2222;', body, re.M), out
    assert out.count('name = "n3"') == 1 and out.count('name = "n1"') == 1
    assert not re.search(r'^\s+\{ name = "n3"', out, re.M), "a nodes_file node printed inline"
    r = run_sshtund("-t", "-c", os.path.join(env.dir, "printed.conf"))
    assert "(3 nodes)" in r.stdout, r.stdout

    # a nodes file that does not exist yet: named, and said so
    os.unlink(nodes)
    out = round_trip(env, write(env, text.replace("node = \"n3\"", "node = \"n1\""), "sshtund.conf"))
    assert f'nodes_file = "{nodes}";\n# It does not exist (yet)' in out, out


def test_bad_file_fails_as_with_check(env):
    path = write(env, base(env).replace("ssh = {", "ssh = { port = 0;", 1), "bad.conf")
    t = run_sshtund("-t", "-c", path)
    p = run_sshtund("-T", "-c", path)
    assert t.returncode == 78 and p.returncode == 78, (t, p)
    assert p.stderr == t.stderr and f"{path}:1: ssh.port: " in p.stderr, p.stderr
    assert p.stdout == ""


def test_every_documented_key_is_printed(env):
    # sshtund.conf(5) lists the keys section by section, each as
    # .BR key " (type, default ...)": each one is in -T's output.
    with open(os.path.join(tl.SRCDIR, "man", "sshtund.conf.5")) as f:
        man = f.read()
    documented = set()
    for part in re.split(r"^\.SH ", man, flags=re.M):
        title = part.split("\n", 1)[0]
        m = re.match(r"SECTION (\w+)", title)
        if not (m or title.startswith("TOP-LEVEL KEYS")):
            continue
        # (not the values of log.level: ".BR error " (or " err ),")
        for line in re.findall(r'^\.BR (\w+(?: ", " \w+)*) " \((?!or )', part, re.M):
            for key in line.split('", "'):
                documented.add(key.strip('" '))
    assert len(documented) > 40, documented
    nodes = write(env, 'nodes = ( { name = "n2"; address = "10.0.0.12"; } );\n', "nodes.conf")
    text = base(env) + ('nodes = ( { name = "n1"; address = "10.0.0.11"; } );\n'
                        f'nodes_file = "{nodes}";\n'
                        'forwards = ( { listen = "tcp:127.0.0.1:10001"; node = "n1"; target = "h:1"; } );\n'
                        'konnectivity = { upstream = "unix:/run/k.sock"; };\n')
    out = print_config(write(env, text, "sshtund.conf"))
    printed = set(re.findall(r"\b(\w+) = ", out))
    assert documented - printed == set(), f"documented, not printed: {documented - printed}"
