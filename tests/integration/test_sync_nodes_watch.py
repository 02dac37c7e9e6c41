# sshtund-sync-nodes --watch against the stand-in API server with the real
# kubectl, and the real sshtund reading the nodes file it writes: nodes that
# join one by one are in the file within 2 s each (the latencies are printed),
# a changed address and a deleted node too; a watch the server ends, an API
# server restart (with changes made while it was down), malformed events and
# garbage answers lose nothing; an empty list is refused; SIGTERM ends it
# with status 0 and its kubectl; the file is never seen half-written.

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

import kube_standin as ks
import sshtund_testlib as tl

SCRIPT = os.path.join(tl.SRCDIR, "scripts", "sshtund-sync-nodes")
KUBECTL = ks.KUBECTL
LATENCY_LIMIT = 2.0  # seconds from a change in the API server to the file

pytestmark = pytest.mark.skipif(not os.access(KUBECTL, os.X_OK), reason="kubectl is not installed")


sync_nodes = tl.load_script("sshtund-sync-nodes")


class SyncWatch:
    """sshtund-sync-nodes --watch, logging to its own file (shown with the
    other logs when a test fails); killed at teardown if still running."""

    def __init__(self, env, api, output, *extra):
        self.log_path = os.path.join(env.dir, f"sync-nodes-{len(env.servers)}.log")
        self.output = output
        argv = [sys.executable, SCRIPT, "--watch", "--verbose", "--kubectl", KUBECTL,
                "--kubeconfig", api.kubeconfig, "--output", output, *extra]
        self.proc = tl._spawn(argv, self.log_path, env={**os.environ, "HOME": env.dir})
        env.servers.append(self)  # closed with the test's servers
        files = env.log_files
        env.log_files = lambda: files() + [("sshtund-sync-nodes", self.log_path, 60)]

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def wait_log(self, text, timeout=15.0, count=1):
        return tl.wait_until(lambda: self.log().count(text) >= count, timeout,
                             f"{text!r} x{count} in sshtund-sync-nodes' output")

    def stop(self, timeout=10.0):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return None


def nodes_in(path):
    """{name: line} of the nodes file (empty when there is none)."""
    return sync_nodes.entries_by_name(read(path) or "")


_NODE_LINE = re.compile(r'^  \{ name = "[^"]+"; address = "[^"]+";( port = \d+;)?'
                        r'( hostnames = \[ [^]]* \];)?( pod_cidr = "[^"]+";)? \},?$')


def complete(text):
    """A whole nodes file: the header, the list, every line whole."""
    lines = text.split("\n")
    if not text.startswith(sync_nodes.HEADER + "\nnodes = (\n") or not text.endswith("\n);\n"):
        return False
    body = lines[4:-2]
    return all(_NODE_LINE.match(ln) for ln in body) and \
        all(ln.endswith(",") for ln in body[:-1]) and (not body or not body[-1].endswith(","))


class FileReader(threading.Thread):
    """Reads the nodes file over and over while the test runs; keeps any
    read that is not a complete file."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path = path
        self.reads = 0
        self.bad = []
        self.done = threading.Event()
        self.start()

    def run(self):
        while not self.done.is_set():
            text = read(self.path)
            if text is not None:
                self.reads += 1
                if not complete(text):
                    self.bad.append(text)
            time.sleep(0.001)

    def stop(self):
        self.done.set()
        self.join(10)
        assert self.reads > 100, f"only {self.reads} reads of {self.path}"
        assert not self.bad, f"{len(self.bad)} incomplete reads, the first:\n{self.bad[0]}"


def wait_file(path, pred, what, timeout=LATENCY_LIMIT):
    """Until pred(nodes_in(path)); the seconds it took."""
    t0 = time.monotonic()
    try:
        tl.wait_until(lambda: pred(nodes_in(path)), timeout, what, interval=0.01)
    except tl.HarnessError:
        raise AssertionError(f"{what}: not in {path} within {timeout} s:\n{read(path)}") from None
    return time.monotonic() - t0


def has(*names):
    return lambda nodes: all(n in nodes for n in names)


def lacks(*names):
    return lambda nodes: not any(n in nodes for n in names)


def new_watch_opened(api, before, timeout=20.0):
    tl.wait_until(lambda: len(api.requests_for("GET", "/api/v1/nodes", watch=True)) > before
                  and api.open_watches() >= 1, timeout, "a new watch")


# --- joining, changing, leaving, with sshtund reading the file -----------------

@pytest.mark.alarm(240)
def test_twenty_nodes_join_one_by_one_then_change_and_leave(env, api, capsys):
    # Two real sshd nodes on one port (sync-nodes writes one --port for all);
    # the others are addresses where nothing listens.
    a0, a1 = env.addr(), env.addr()
    port = tl.free_port(a0)
    real = [env.sshd("n00", addr=a0, port=port), env.sshd("n01", addr=a1, port=port)]
    out_dir = os.path.join(env.dir, "nodes.d")
    os.makedirs(out_dir)
    out = os.path.join(out_dir, "nodes.conf")
    d = env.sshtund([], known_hosts=[n.known_hosts_line() for n in real],
                    top={"nodes_file": out})

    api.add_node("n00", [("InternalIP", a0), ("Hostname", "n00")], ["10.244.0.0/24"])
    sync = SyncWatch(env, api, out, "--port", str(port))
    wait_file(out, has("n00"), "the first node", timeout=20)
    reader = FileReader(out)
    tl.wait_until(lambda: d.nodes_info(), 20, "sshtund to read the nodes file")
    d.wait_state("n00", "up", timeout=30)

    latencies = []
    for i in range(1, 21):
        name = f"n{i:02d}"
        addr = a1 if i == 1 else env.addr()
        t0 = time.monotonic()
        api.add_node(name, [("InternalIP", addr), ("Hostname", f"{name}.example")],
                     [f"10.244.{i}.0/24"])
        wait_file(out, has(name), f"node {name}")
        latencies.append(time.monotonic() - t0)
        time.sleep(random.uniform(0, 0.2))
    with capsys.disabled():
        print("\nsshtund-sync-nodes --watch, join latency per node (s): "
              + " ".join(f"n{i:02d}={t:.3f}" for i, t in enumerate(latencies, 1))
              + f"\n  max {max(latencies):.3f} s, mean {sum(latencies) / len(latencies):.3f} s")
    assert max(latencies) < LATENCY_LIMIT

    names = {f"n{i:02d}" for i in range(21)}
    tl.wait_until(lambda: {n["name"] for n in d.nodes_info()} == names, 20,
                  "sshtund to have all 21 nodes")
    d.wait_state("n01", "up", timeout=30)
    assert d.node_info("n05")["address"] == nodes_in(out)["n05"].split('"')[3]

    # A changed address.
    moved = env.addr()
    t0 = time.monotonic()
    api.set_addresses("n05", [("InternalIP", moved)])
    wait_file(out, lambda n: f'address = "{moved}"' in n.get("n05", ""), "n05's new address")
    changed = time.monotonic() - t0
    tl.wait_until(lambda: d.node_info("n05")["address"] == moved, 20, "sshtund to move n05")

    # A node deleted: gone from the file and from sshtund (n00 was up).
    t0 = time.monotonic()
    api.delete_node("n00")
    wait_file(out, lacks("n00"), "n00 deleted")
    deleted = time.monotonic() - t0
    tl.wait_until(lambda: "n00" not in {n["name"] for n in d.nodes_info()}, 20,
                  "sshtund to drop n00")
    with capsys.disabled():
        print(f"  address change {changed:.3f} s, deletion {deleted:.3f} s")

    reader.stop()
    assert sync.stop() == 0
    log = sync.log()
    assert f"{out}: added n05 (6 nodes)" in log
    assert f"{out}: changed n05 (21 nodes)" in log
    assert f"{out}: removed n00 (20 nodes)" in log
    assert "Reload failed" not in d.log_text()
    # One list and one watch did it all.
    assert len(api.requests_for("GET", "/api/v1/nodes", watch=False)) == 1
    assert len(api.requests_for("GET", "/api/v1/nodes", watch=True)) == 1


# --- watches end, API servers restart -----------------------------------------------

@pytest.mark.alarm(150)
def test_survives_closed_watches_and_an_api_server_restart(env, api):
    out = os.path.join(env.dir, "nodes.conf")
    api.add_node("n1", [("InternalIP", "127.1.0.1")])
    api.add_node("n2", [("InternalIP", "127.1.0.2")])
    sync = SyncWatch(env, api, out)
    wait_file(out, has("n1", "n2"), "n1 and n2", timeout=20)
    reader = FileReader(out)
    api.wait_watches(1)
    inode = os.stat(out).st_ino

    # The server ends the watch, as it does after timeoutSeconds: a full
    # list, then a new watch; the unchanged file is left alone.
    api.close_watches()
    new_watch_opened(api, 1)
    sync.wait_log("the watch ended after")
    assert len(api.requests_for("GET", "/api/v1/nodes", watch=False)) == 2
    assert os.stat(out).st_ino == inode
    api.add_node("n3", [("InternalIP", "127.1.0.3")])
    wait_file(out, has("n3"), "n3 after a closed watch")

    # The server goes away; meanwhile a node leaves, one joins, one moves,
    # and the history is compacted (its old resourceVersions are gone).
    watches = len(api.requests_for("GET", "/api/v1/nodes", watch=True))
    api.stop()
    sync.wait_log("the watch broke")
    api.delete_node("n1")
    api.add_node("n4", [("InternalIP", "127.1.0.4")])
    api.set_addresses("n2", [("InternalIP", "127.1.0.22")])
    api.compact()
    sync.wait_log("cannot list the nodes", timeout=20)
    before = read(out)
    assert set(nodes_in(out)) == {"n1", "n2", "n3"}
    api.start()
    wait_file(out, lambda n: set(n) == {"n2", "n3", "n4"} and "127.1.0.22" in n["n2"],
              "the changes made while the server was down", timeout=40)
    assert read(out) != before
    sync.wait_log(f"{out}: added n4; removed n1; changed n2 (3 nodes)")
    new_watch_opened(api, watches)
    api.add_node("n5", [("InternalIP", "127.1.0.5")])
    wait_file(out, has("n5"), "n5 after the restart")

    reader.stop()
    assert sync.stop() == 0


# --- the empty list -------------------------------------------------------------------

@pytest.mark.alarm(120)
def test_an_empty_list_is_refused(env, api):
    out = os.path.join(env.dir, "nodes.conf")
    sync = SyncWatch(env, api, out)
    sync.wait_log("no usable node", timeout=20)
    assert read(out) is None
    api.wait_watches(1)

    api.add_node("n1", [("InternalIP", "127.1.0.1")])
    wait_file(out, has("n1"), "n1")
    # n2 has no InternalIP: left out, and said so once however often it changes.
    api.add_node("n2", [("ExternalIP", "127.2.0.2")])
    for i in range(3):
        api.set_addresses("n2", [("ExternalIP", f"127.2.0.{10 + i}")])
    api.delete_node("n1")
    sync.wait_log("no usable node", count=2)
    time.sleep(1.0)
    assert set(nodes_in(out)) == {"n1"}, "an empty list was written"
    assert sync.log().count("skipping node n2: no InternalIP address") == 1

    api.set_addresses("n2", [("InternalIP", "127.1.0.2")])
    wait_file(out, lambda n: set(n) == {"n2"}, "n2 alone")
    assert sync.stop() == 0

    # --allow-empty writes it.
    sync = SyncWatch(env, api, out, "--allow-empty")
    api.wait_watches(1)
    time.sleep(0.5)
    api.delete_node("n2")
    wait_file(out, lambda n: not n, "the empty list")
    assert read(out).endswith("nodes = (\n);\n")
    assert sync.stop() == 0


# --- what makes no sense --------------------------------------------------------------

def event(kind, obj):
    return (json.dumps({"type": kind, "object": obj}) + "\n").encode()


@pytest.mark.alarm(180)
def test_malformed_events_and_garbage_drop_nothing(env, api):
    out = os.path.join(env.dir, "nodes.conf")
    for i in (1, 2, 3):
        api.add_node(f"n{i}", [("InternalIP", f"127.1.0.{i}")])
    sync = SyncWatch(env, api, out, "--backoff-max", "2")
    wait_file(out, has("n1", "n2", "n3"), "the nodes", timeout=20)
    reader = FileReader(out)
    api.wait_watches(1)
    inode = os.stat(out).st_ino
    text = read(out)

    def unchanged():
        assert os.stat(out).st_ino == inode and read(out) == text

    # Well-formed JSON that is not a sensible event: a warning each, and
    # the watch goes on.
    for raw, warning in (
            (event("MODIFIED", "x"), "ignoring a malformed MODIFIED event (not an object)"),
            (b'{"object": {"kind": "Node", "metadata": {"name": "n1"}}}\n',
             "ignoring a malformed watch event"),
            (event("DELETED", {"kind": "Node", "metadata": {}}),
             "ignoring a malformed DELETED event (no metadata.name)"),
            (event("DELETED", {"kind": "Pod", "metadata": {"name": "n1"}}),
             "ignoring a malformed DELETED event (kind 'Pod', not Node)"),
            (event("MODIFIED", {"kind": "Node", "metadata": "n2"}),
             "ignoring a malformed MODIFIED event (no metadata.name)"),
            (event("SURPRISE", {}), "ignoring a watch event of type 'SURPRISE'"),
            (event("BOOKMARK", {"kind": "Node", "metadata": {"resourceVersion": "12345"}}), None)):
        api.send_raw(raw)
        if warning:
            sync.wait_log(warning)
    time.sleep(1.0)
    unchanged()
    assert len(api.requests_for("GET", "/api/v1/nodes", watch=True)) == 1
    assert "BOOKMARK" not in sync.log()
    api.add_node("n4", [("InternalIP", "127.1.0.4")])
    wait_file(out, has("n4"), "n4 through the same watch")
    inode, text = os.stat(out).st_ino, read(out)

    # A stream that is not JSON at all: a warning, a new list and watch,
    # nothing lost. Likewise a structurally whole object that is not JSON,
    # an error event, and an event cut off by the server going away.
    steps = (
        (b"<html><body>502 Bad Gateway</body></html>\n", "malformed watch stream (not a JSON object"),
        (b'{"type": MODIFIED, "object": {}}\n', "malformed watch stream (Expecting value"),
        (event("ERROR", ks.status(500, "InternalError", "etcd is sad")),
         "the watch reported an error: etcd is sad"),
        (event("ERROR", ks.status(410, "Expired", "too old resource version: 1 (5)")),
         "watch expired (too old resource version"),
    )
    for raw, warning in steps:
        watches = len(api.requests_for("GET", "/api/v1/nodes", watch=True))
        api.wait_watches(1)
        api.send_raw(raw)
        sync.wait_log(warning)
        new_watch_opened(api, watches)
        unchanged()
    assert "sshtund-sync-nodes: watch expired" not in sync.log()  # 410 is routine, no warning

    watches = len(api.requests_for("GET", "/api/v1/nodes", watch=True))
    api.send_raw(b'{"type":"ADDED","object":{"kind":"Node","metadata":{"name":"n9"')
    time.sleep(0.5)
    api.restart()
    sync.wait_log("the watch broke")
    new_watch_opened(api, watches)
    unchanged()

    # Garbage instead of a list (twice), and instead of a watch.
    watches = len(api.requests_for("GET", "/api/v1/nodes", watch=True))
    api.answer_garbage("list", 2)
    api.close_watches()
    sync.wait_log("the node list is not JSON", count=2, timeout=30)
    new_watch_opened(api, watches, timeout=40)
    unchanged()
    watches = len(api.requests_for("GET", "/api/v1/nodes", watch=True))
    api.answer_garbage("watch")
    api.close_watches()
    sync.wait_log("malformed watch stream (not a JSON object: <html>this is not a watch")
    new_watch_opened(api, watches + 1, timeout=40)
    unchanged()

    api.add_node("n5", [("InternalIP", "127.1.0.5")])
    wait_file(out, has("n1", "n2", "n3", "n4", "n5"), "n5 after all that")
    reader.stop()
    assert sync.stop() == 0


# --- stopping -------------------------------------------------------------------------

@pytest.mark.alarm(120)
def test_sigterm_ends_it_and_its_kubectl(env, api):
    out = os.path.join(env.dir, "nodes.conf")
    api.add_node("n1", [("InternalIP", "127.1.0.1")])
    sync = SyncWatch(env, api, out, "--debounce", "5")
    wait_file(out, has("n1"), "n1", timeout=20)
    api.wait_watches(1)
    children = tl.descendants(sync.proc.pid)
    assert children, "no kubectl under sshtund-sync-nodes"
    # A change still waiting for its debounce is written on the way out.
    api.add_node("n2", [("InternalIP", "127.1.0.2")])
    time.sleep(0.5)
    assert "n2" not in nodes_in(out)
    t0 = time.monotonic()
    assert sync.stop() == 0
    assert time.monotonic() - t0 < 5
    assert "n2" in nodes_in(out)
    tl.wait_until(lambda: not any(os.path.exists(f"/proc/{p}") for p in children), 10,
                  "its kubectl to be gone")
    assert "stopped" in sync.log()

    # Also while waiting to retry an API server that is down.
    api.stop()
    sync = SyncWatch(env, api, out)
    sync.wait_log("retrying in", timeout=20)
    t0 = time.monotonic()
    assert sync.stop() == 0
    assert time.monotonic() - t0 < 5


def test_usage_errors():
    for args in (["--watch", "--from-file", "x.json"], ["--watch", "--debounce", "11"],
                 ["--watch", "--watch-timeout", "5"], ["--watch", "--backoff-max", "0"]):
        r = subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True,
                           timeout=30, stdin=subprocess.DEVNULL)
        assert r.returncode == 64, (args, r.stderr)


# --- the stream splitter --------------------------------------------------------------

def test_json_object_stream_whatever_the_read_boundaries():
    objs = [{"type": "ADDED", "object": {"kind": "Node", "metadata": {"name": "n1"},
                                         "x": 'br{ces} and "quotes" \\ and \\"'}},
            {"type": "MODIFIED", "object": {"a": [1, {"b": "}"}], "u": "\u00e9\u2603"}},
            {"empty": {}}]
    for indent in (None, 4):  # a watch's lines; kubectl -o json's pretty objects
        data = "".join(json.dumps(o, indent=indent) + "\n" for o in objs).encode()
        for size in (1, 2, 3, 7, 64, len(data)):
            s = sync_nodes.JsonObjectStream()
            got = []
            for i in range(0, len(data), size):
                got += [json.loads(t) for t in s.feed(data[i:i + size])]
            assert got == objs, (indent, size)
            assert s.depth == 0 and not s.buf
    for bad in (b"<html>", b"[1]", b'{"a": 1} x', b"null"):
        s = sync_nodes.JsonObjectStream()
        with pytest.raises(sync_nodes.StreamError):
            s.feed(bad)
    s = sync_nodes.JsonObjectStream(limit=100)
    with pytest.raises(sync_nodes.StreamError):
        s.feed(b'{"a": "' + b"x" * 200)
