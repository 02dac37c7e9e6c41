# Host keys for a fleet: `hostkeys scan --unknown` of 20 nodes (sshd, and
# dropbear as root) with an empty known_hosts, its "NODE SHA256:... TYPE"
# lines checked against the nodes' own keys and piped into `hostkeys trust
# --from -`: every node up at once, the keys in ssh.learned_hosts and
# known_hosts untouched. One wrong fingerprint trusts nothing for that node.
# Bad input (a malformed fingerprint, an unknown node, an unreachable one, a
# corrupt learned_hosts) is refused with a clear message and nothing
# written. accept-new writes learned_hosts only, with known_hosts read-only,
# and a daemon killed in the middle leaves a file that loads. `hostkeys
# list` shows which file holds which key. `hostkeys forget` takes a node's
# keys out of learned_hosts and cuts its sessions; the other nodes are not
# touched.

import base64
import json
import os
import re
import signal
import shutil
import time

import pytest

import sshtund_testlib as tl

pytestmark = pytest.mark.alarm(240)

N_NODES = 20


def fleet(env, n=N_NODES):
    """n nodes: a third of them dropbear when root can run it."""
    nodes = []
    for i in range(n):
        name = f"n{i:02d}"
        if tl.is_root() and shutil.which("dropbear") and i % 3 == 2:
            nodes.append(env.dropbear(name))
        else:
            nodes.append(env.sshd(name))
    return nodes


def ctl(d, *args, stdin=None):
    return d.sshtunctl(*args, input=stdin, timeout=120)  # a scan of the whole fleet


def states(d):
    return {n["name"]: n["state"] for n in d.nodes_info()}


def wait_states(d, want, timeout=30):
    tl.wait_until(lambda: all(states(d).get(k) == v for k, v in want.items()), timeout,
                  f"nodes in {want}")


def key_lines(path):
    """The lines of a known_hosts file, each checked the way a reader would:
    three fields, the key base64 that names its own type."""
    out = []
    with open(path) as f:
        for line in f.read().splitlines():
            if not line.strip() or line.startswith("#"):
                continue
            host, typ, b64 = line.split()
            blob = base64.b64decode(b64, validate=True)
            n = int.from_bytes(blob[:4], "big")
            assert blob[4:4 + n].decode() == typ, line
            out.append((host, typ, b64))
    return out


def scan_unknown(d, nodes):
    """`scan --unknown`: every node's real key among its stderr lines."""
    r = ctl(d, "hostkeys", "scan", "--unknown")
    assert r.returncode == 0, r
    seen = {}
    for line in r.stderr.splitlines():
        m = re.match(r"^(n\d\d) (SHA256:\S+) (\S+)$", line)
        if m:
            seen.setdefault(m.group(1), []).append((m.group(2), m.group(3)))
    for n in nodes:
        assert n.host_fingerprint in [fp for fp, _ in seen.get(n.name, [])], (n.name, seen.get(n.name))
    # stdout: one known_hosts line per key, ready to use
    assert len(r.stdout.splitlines()) == sum(len(v) for v in seen.values()), r.stdout
    for n in nodes:
        assert n.known_hosts_line() in r.stdout.splitlines()
    return r


def test_scan_unknown_then_trust_from(env):
    nodes = fleet(env)
    d = env.sshtund(nodes, known_hosts=[])
    wait_states(d, {n.name: "hostkey-unknown" for n in nodes})
    r = scan_unknown(d, nodes)

    # the operator keeps the lines whose fingerprints the nodes vouch for
    # (here: the keys the test made), as `scan` printed them
    real = {n.name: n.host_fingerprint for n in nodes}
    vetted = "".join(ln + "\n" for ln in r.stderr.splitlines()
                     if re.match(r"^n\d\d ", ln) and ln.split()[1] == real[ln.split()[0]])
    t0 = time.monotonic()
    r = ctl(d, "hostkeys", "trust", "--from", "-", stdin=vetted)
    assert r.returncode == 0, r
    for n in nodes:
        assert re.search(rf"^{n.name}: trusted \S+ {re.escape(n.host_fingerprint)}, recorded in ",
                         r.stdout, re.M), r.stdout
    wait_states(d, {n.name: "up" for n in nodes}, 20)
    print(f"\n{len(nodes)} nodes up {time.monotonic() - t0:.2f} s after the trust")

    learned = key_lines(d.learned_hosts_path)
    assert sorted(h for h, _, _ in learned) == sorted(tl.known_hosts_name(n.addr, n.port) for n in nodes)
    assert os.path.getsize(d.known_hosts_path) == 0

    # the same again changes nothing
    st = os.stat(d.learned_hosts_path)
    r = ctl(d, "hostkeys", "trust", "--from", "-", stdin=vetted)
    assert r.returncode == 0, r
    assert "already trusted" in r.stdout
    assert os.stat(d.learned_hosts_path).st_ino == st.st_ino

    # list: every node, its key, and where it is written
    r = ctl(d, "hostkeys", "list")
    assert r.returncode == 0, r
    rows = r.stdout.splitlines()
    assert rows[0].split() == ["NODE", "STATE", "TYPE", "FINGERPRINT", "FILE"]
    for n in nodes:
        row = [ln for ln in rows if ln.startswith(n.name + " ")]
        assert len(row) == 1, (n.name, row)
        assert n.host_fingerprint in row[0] and d.learned_hosts_path + ":" in row[0], row
    r = ctl(d, "-o", "name", "hostkeys", "list")
    assert r.stdout.split() == [n.name for n in nodes]


def test_one_wrong_fingerprint_trusts_nothing_for_that_node(env):
    nodes = fleet(env, 6)
    other = tl.ssh_keygen(os.path.join(env.dir, "other_key"), "ed25519")
    d = env.sshtund(nodes, known_hosts=[])
    wait_states(d, {n.name: "hostkey-unknown" for n in nodes})
    victim = nodes[3]
    lines = [f"{n.name} {tl.fingerprint(other) if n is victim else n.host_fingerprint}" for n in nodes]
    r = ctl(d, "hostkeys", "trust", "--from", "-", stdin="\n".join(lines) + "\n")
    assert r.returncode == 1, r
    assert re.search(rf"{victim.name}: node {victim.name} presents .*{re.escape(victim.host_fingerprint)}"
                     r".*nothing trusted", r.stderr), r.stderr
    wait_states(d, {n.name: "up" for n in nodes if n is not victim}, 20)
    assert states(d)[victim.name] == "hostkey-unknown"
    hosts = [h for h, _, _ in key_lines(d.learned_hosts_path)]
    assert tl.known_hosts_name(victim.addr, victim.port) not in hosts
    assert len(hosts) == len(nodes) - 1

    # -o json: one result per node, the refusal with its HTTP status
    r = ctl(d, "-o", "json", "hostkeys", "trust", victim.name, tl.fingerprint(other))
    assert r.returncode == 1
    res = json.loads(r.stdout)["results"]
    assert res[0]["node"] == victim.name and res[0]["http_status"] == 409, res


def test_bad_input_writes_nothing(env):
    n1, n2 = env.sshd("n1"), env.sshd("n2")
    closed = tl.free_port(n2.addr)
    gone = dict(n2.config_entry(), name="gone", port=closed)
    d = env.sshtund([n1, n2], known_hosts=[], start=False)
    d.sections["nodes"] = (n1.config_entry(), n2.config_entry(), gone)
    d.write_config()
    d.start()
    wait_states(d, {"n1": "hostkey-unknown", "n2": "hostkey-unknown"})

    # a malformed fingerprint anywhere: exit 64, FILE:LINE, nothing sent
    bad = os.path.join(env.dir, "fps.txt")
    with open(bad, "w") as f:
        f.write(f"# fleet\nn1 {n1.host_fingerprint}\nn2 SHA256:tooshort\nn3\n")
    r = ctl(d, "hostkeys", "trust", "--from", bad)
    assert r.returncode == 64, r
    assert f"{bad}:3: not a fingerprint: SHA256:tooshort" in r.stderr, r.stderr
    assert f"{bad}:4: no fingerprint for node n3" in r.stderr, r.stderr
    assert "nothing was sent" in r.stderr
    assert not os.path.exists(d.learned_hosts_path)
    assert states(d)["n1"] == "hostkey-unknown"

    # an unknown node; an unreachable one
    r = ctl(d, "hostkeys", "trust", "nobody", n1.host_fingerprint)
    assert r.returncode == 1 and "no node nobody" in r.stderr, r
    r = ctl(d, "hostkeys", "trust", "gone", n1.host_fingerprint)
    assert r.returncode == 1 and re.search(r"gone: .*refused", r.stderr, re.I), r
    r = ctl(d, "hostkeys", "scan", "n1", "gone")
    assert r.returncode == 1, r
    assert r.stdout == n1.known_hosts_line() + "\n"
    assert re.search(r"gone: .*refused", r.stderr, re.I), r.stderr
    assert not os.path.exists(d.learned_hosts_path)

    # a corrupt learned_hosts: refused with its line, left as it is
    with open(d.learned_hosts_path, "w") as f:
        f.write("this is not a known_hosts line\n")
    r = ctl(d, "hostkeys", "trust", "n1", n1.host_fingerprint)
    assert r.returncode == 1, r
    assert f"{d.learned_hosts_path}:1: a line that does not parse" in r.stderr, r.stderr
    with open(d.learned_hosts_path) as f:
        assert f.read() == "this is not a known_hosts line\n"
    assert states(d)["n1"] == "hostkey-unknown"
    # the daemon carries on
    os.unlink(d.learned_hosts_path)
    r = ctl(d, "hostkeys", "trust", "n1", n1.host_fingerprint)
    assert r.returncode == 0, r
    wait_states(d, {"n1": "up"}, 10)


def readonly_known_hosts(d):
    """Runs the daemon with the directory of known_hosts mounted read-only
    (root: a mount namespace of its own), else with the file and directory
    not writable."""
    etc = os.path.join(d.dir, "etc")
    os.makedirs(etc, exist_ok=True)
    path = os.path.join(etc, "known_hosts")
    shutil.move(d.known_hosts_path, path)
    d.known_hosts_path = path
    d.sections["ssh"]["known_hosts"] = path
    d.write_config()
    if tl.is_root() and shutil.which("unshare"):
        argv = d.argv
        d.argv = lambda: ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                          'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"', etc, *argv()]
    else:
        os.chmod(path, 0o444)
        os.chmod(etc, 0o555)


def test_accept_new_writes_only_learned_hosts(env):
    n1, n2, n3 = env.sshd("n1"), env.sshd("n2"), env.sshd("n3")
    wrong = tl.ssh_keygen(os.path.join(env.dir, "wrong_host_key"), "ed25519")
    d = env.sshtund([n1, n2, n3], ssh={"host_key_policy": "accept-new"},
                    known_hosts=[n1.known_hosts_line(), n3.known_hosts_line(wrong)], start=False)
    readonly_known_hosts(d)
    with open(d.known_hosts_path) as f:
        before = f.read()
    d.start()
    d.wait_state("n1", "up", 20)
    d.wait_state("n2", "up", 20)
    d.wait_state("n3", "hostkey-mismatch", 20)
    tl.wait_until(lambda: os.path.exists(d.learned_hosts_path), 5, "learned_hosts written")
    assert key_lines(d.learned_hosts_path) == [tuple(n2.known_hosts_line().split())]
    with open(d.known_hosts_path) as f:
        assert f.read() == before
    assert "recorded new host key" in d.log_text()

    # restarted strict: the learned key is enough
    d.stop()
    d.sections["ssh"]["host_key_policy"] = "strict"
    d.write_config()
    d.start()
    d.wait_state("n2", "up", 20)


@pytest.mark.alarm(300)
def test_kill_during_accept_new_leaves_a_file_that_loads(env):
    nodes = fleet(env)
    d = env.sshtund(nodes, ssh={"host_key_policy": "accept-new"}, known_hosts=[], start=False)
    d.expect_clean_exit = False
    for delay in (0.05, 0.15, 0.3, 0.5, 0.8):
        d.start(wait_proxy=False)
        time.sleep(delay)
        os.kill(d.pid, signal.SIGKILL)
        d.proc.wait(10)
        if os.path.exists(d.learned_hosts_path):
            lines = key_lines(d.learned_hosts_path)
            assert len(lines) == len(set(lines)), lines
        # no temporary file is left in a state that matters: the file loads
    # what a kill in the middle of a write leaves beside the file: one an
    # hour old (cleared at the next start), one just made (kept: it could
    # be another writer's)
    old = os.path.join(d.dir, ".learned_hosts.Ab9xYz")
    fresh = os.path.join(d.dir, ".learned_hosts.Qq1234")
    for path in (old, fresh):
        with open(path, "w") as f:
            f.write("half a file")
    t = time.time() - 3600
    os.utime(old, (t, t))
    d.expect_clean_exit = True
    d.start()
    tl.wait_until(lambda: all(s == "up" for s in states(d).values()), 60, "every node up")
    tl.wait_until(lambda: len(key_lines(d.learned_hosts_path)) == len(nodes), 10, "every key written")
    assert not os.path.exists(old)
    assert os.path.exists(fresh)
    assert "removed 1 temporary file left by an interrupted write" in d.log_text()


def test_forget_cuts_the_node_and_leaves_the_others(env):
    nodes = fleet(env, 4)
    d = env.sshtund(nodes, known_hosts=[])
    wait_states(d, {n.name: "hostkey-unknown" for n in nodes})
    vetted = "".join(f"{n.name} {n.host_fingerprint}\n" for n in nodes)
    r = ctl(d, "hostkeys", "trust", "--from", "-", stdin=vetted)
    assert r.returncode == 0, r
    wait_states(d, {n.name: "up" for n in nodes}, 20)
    gone, kept = nodes[0], nodes[1:]
    before = {n["name"]: n["reconnects"] for n in d.nodes_info()}

    r = ctl(d, "hostkeys", "forget", gone.name)
    assert r.returncode == 0, r
    assert r.stdout == f"{gone.name}: forgotten (removed from {d.learned_hosts_path}), reconnecting\n", r.stdout
    # its session ends: the key it was made with is no longer trusted
    wait_states(d, {gone.name: "hostkey-unknown"}, 20)
    hosts = [h for h, _, _ in key_lines(d.learned_hosts_path)]
    assert tl.known_hosts_name(gone.addr, gone.port) not in hosts
    assert sorted(hosts) == sorted(tl.known_hosts_name(n.addr, n.port) for n in kept)
    assert os.path.getsize(d.known_hosts_path) == 0
    assert f"{gone.name}: host keys forgotten" in d.log_text()
    time.sleep(1.0)
    after = {n["name"]: n for n in d.nodes_info()}
    for n in kept:
        assert after[n.name]["state"] == "up", after[n.name]
        assert after[n.name]["reconnects"] == before[n.name], (n.name, before, after[n.name])

    # again: nothing left to remove, said so, exit 0
    r = ctl(d, "hostkeys", "forget", gone.name)
    assert r.returncode == 0, r
    assert "no key of it in" in r.stdout, r.stdout

    # a key in the operator's known_hosts stays, and is named
    with open(d.known_hosts_path, "w") as f:
        f.write(gone.known_hosts_line() + "\n")
    r = ctl(d, "hostkeys", "forget", gone.name)
    assert r.returncode == 0, r
    assert re.search(rf"^{gone.name}: still known: \S+ {re.escape(gone.host_fingerprint)} in "
                     rf"{re.escape(d.known_hosts_path)}:1$", r.stdout, re.M), r.stdout
    wait_states(d, {gone.name: "up"}, 20)

    # bad input: a node that does not exist, several at once with one of them
    # wrong (the others done), no node, options it does not take
    r = ctl(d, "hostkeys", "forget", "nobody")
    assert r.returncode == 1 and "no node nobody" in r.stderr, r
    r = ctl(d, "hostkeys", "forget", kept[0].name, "nobody")
    assert r.returncode == 1 and "no node nobody" in r.stderr, r
    assert f"{kept[0].name}: forgotten" in r.stdout, r.stdout
    for args in (["hostkeys", "forget"], ["hostkeys", "forget", "--all"]):
        r = ctl(d, *args)
        assert r.returncode == 64, (args, r)
    # -o json: one object per node
    r = ctl(d, "-o", "json", "hostkeys", "forget", kept[1].name)
    assert r.returncode == 0, r
    assert kept[1].name in r.stdout and '"changed": true' in r.stdout, r.stdout
