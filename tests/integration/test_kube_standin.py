# The stand-in API server (kube_standin.py) against the real kubectl: what
# sshtund-sync-nodes and sshtund-publish-hostkey rely on must be what kubectl
# does with it - lists (paged too), watches with their events, annotate's
# GET and merge PATCH, a kubelet's client certificate limited to its own
# Node, 410 for a compacted resourceVersion, restarts on the same port and
# garbage answers.

import json
import os
import subprocess
import threading
import time

import pytest

import kube_standin as ks
import sshtund_testlib as tl

KUBECTL = ks.KUBECTL

pytestmark = [pytest.mark.skipif(not os.access(KUBECTL, os.X_OK), reason="kubectl is not installed"),
              pytest.mark.alarm(120)]


def kubectl(env, kubeconfig, *args, timeout=60):
    # HOME in the test directory: kubectl's discovery cache stays there.
    return subprocess.run([KUBECTL, f"--kubeconfig={kubeconfig}", *args], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                          env={**os.environ, "HOME": env.dir})


class WatchReader:
    """kubectl ... --watch in the background; its standard output decoded
    as the concatenated JSON objects it is, as they come."""

    def __init__(self, env, kubeconfig, *args):
        self.proc = subprocess.Popen([KUBECTL, f"--kubeconfig={kubeconfig}", *args],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env={**os.environ, "HOME": env.dir})
        self.objects = []
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        dec = json.JSONDecoder()
        buf = ""
        while True:
            data = self.proc.stdout.read1(65536)
            if not data:
                break
            buf += data.decode()
            while True:
                buf = buf.lstrip()
                try:
                    obj, end = dec.raw_decode(buf)
                except ValueError:
                    break
                buf = buf[end:]
                with self.cond:
                    self.objects.append(obj)
                    self.cond.notify_all()

    def wait(self, n, timeout=15.0):
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.objects) < n:
                left = deadline - time.monotonic()
                assert left > 0, f"{len(self.objects)} objects from kubectl, want {n}: " \
                                 f"{[summary(o) for o in self.objects]}"
                self.cond.wait(left)
            return list(self.objects)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self.thread.join(10)


def summary(o):
    if "type" in o:
        return (o["type"], o["object"]["metadata"]["name"])
    return o.get("metadata", {}).get("name")


def test_list_get_and_pages(env, api):
    for i in (3, 1, 2):
        api.add_node(f"n{i}", [("InternalIP", f"10.0.0.{i}"), ("Hostname", f"n{i}.example")],
                     [f"10.244.{i}.0/24"])
    r = kubectl(env, api.kubeconfig, "get", "nodes", "-o", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [i["metadata"]["name"] for i in doc["items"]] == ["n1", "n2", "n3"]
    assert doc["items"][0]["kind"] == "Node"  # kubectl fills it in, as for a real server
    assert doc["items"][1]["status"]["addresses"][0] == {"type": "InternalIP",
                                                         "address": "10.0.0.2"}
    assert doc["items"][2]["spec"]["podCIDR"] == "10.244.3.0/24"

    # Pages of one, followed through their continue tokens.
    r = kubectl(env, api.kubeconfig, "get", "nodes", "-o", "json", "--chunk-size=1")
    assert r.returncode == 0, r.stderr
    assert [i["metadata"]["name"] for i in json.loads(r.stdout)["items"]] == ["n1", "n2", "n3"]
    lists = api.requests_for("GET", "/api/v1/nodes", watch=False)
    assert [q.query.get("limit") for q in lists[-3:]] == ["1", "1", "1"]
    assert "continue" in lists[-1].query

    # The raw list carries its resourceVersion; its items no kind.
    r = kubectl(env, api.kubeconfig, "get", "--raw", "/api/v1/nodes")
    raw = json.loads(r.stdout)
    assert raw["kind"] == "NodeList" and raw["metadata"]["resourceVersion"] == str(api.rv)
    assert "kind" not in raw["items"][0]

    r = kubectl(env, api.kubeconfig, "get", "node", "n2", "-o", "json")
    assert r.returncode == 0 and json.loads(r.stdout)["metadata"]["name"] == "n2"
    r = kubectl(env, api.kubeconfig, "get", "node", "n9", "-o", "json")
    assert r.returncode != 0 and '(NotFound): nodes "n9" not found' in r.stderr

    bad = api.write_kubeconfig(os.path.join(env.dir, "bad.kubeconfig"), token="wrong")
    r = kubectl(env, bad, "get", "nodes", "-o", "json")
    assert r.returncode != 0 and "Unauthorized" in r.stderr


@pytest.mark.parametrize("events", [True, False], ids=["output-watch-events", "objects"])
def test_watch_add_modify_delete_and_close(env, api, events):
    api.add_node("n1", [("InternalIP", "10.0.0.1")])
    args = ["get", "nodes", "--watch", "-o", "json"] + (["--output-watch-events"] if events else [])
    w = WatchReader(env, api.kubeconfig, *args)
    try:
        w.wait(1)
        api.wait_watches(1)
        api.add_node("n2", [("InternalIP", "10.0.0.2")])
        api.set_addresses("n2", [("InternalIP", "10.0.0.22")])
        api.delete_node("n1")
        got = w.wait(4)
        if events:
            assert [summary(o) for o in got] == [("ADDED", "n1"), ("ADDED", "n2"),
                                                 ("MODIFIED", "n2"), ("DELETED", "n1")]
            assert got[2]["object"]["status"]["addresses"][0]["address"] == "10.0.0.22"
        else:
            # Without the event types, a deletion looks like any change.
            assert [summary(o) for o in got] == ["n1", "n2", "n2", "n1"]
        # kubectl listed first, then watched from the list's resourceVersion.
        watch = api.requests_for("GET", "/api/v1/nodes", watch=True)[-1]
        assert watch.query["resourceVersion"] == "101"

        api.close_watches()
        assert w.proc.wait(15) == 0
    finally:
        w.close()


def test_raw_watch_stream_and_410(env, api):
    api.add_node("n1", [("InternalIP", "10.0.0.1")])
    rv = str(api.rv)
    api.add_node("n2", [("InternalIP", "10.0.0.2")])
    w = WatchReader(env, api.kubeconfig, "get", "--raw",
                    f"/api/v1/nodes?watch=true&resourceVersion={rv}")
    try:
        api.wait_watches(1)
        api.delete_node("n2")
        got = w.wait(2)
        assert [summary(o) for o in got] == [("ADDED", "n2"), ("DELETED", "n2")]
        api.close_watches()
        assert w.proc.wait(15) == 0
    finally:
        w.close()

    api.compact()
    r = kubectl(env, api.kubeconfig, "get", "--raw", f"/api/v1/nodes?watch=true&resourceVersion={rv}")
    ev = json.loads(r.stdout)
    assert ev["type"] == "ERROR" and ev["object"]["code"] == 410, r.stdout


def test_annotate_with_a_token_and_with_node_credentials(env, api):
    api.add_node("n1", [("InternalIP", "10.0.0.1")])
    api.add_node("n2", [("InternalIP", "10.0.0.2")])
    r = kubectl(env, api.kubeconfig, "annotate", "--overwrite", "node", "n1",
                "sshtund/host-key-fingerprints=SHA256:a SHA256:b")
    assert r.returncode == 0, r.stderr
    assert api.annotations("n1")["sshtund/host-key-fingerprints"] == "SHA256:a SHA256:b"
    patch = api.requests_for("PATCH", "/api/v1/nodes/n1")[-1]
    assert patch.content_type == "application/merge-patch+json"
    assert json.loads(patch.body) == {"metadata": {"annotations": {
        "sshtund/host-key-fingerprints": "SHA256:a SHA256:b"}}}
    rv = api.node("n1")["metadata"]["resourceVersion"]

    # Annotating again PATCHes "{}" and changes nothing, the RV included.
    r = kubectl(env, api.kubeconfig, "annotate", "--overwrite", "node", "n1",
                "sshtund/host-key-fingerprints=SHA256:a SHA256:b")
    assert r.returncode == 0, r.stderr
    assert api.requests_for("PATCH", "/api/v1/nodes/n1")[-1].body == b"{}"
    assert api.node("n1")["metadata"]["resourceVersion"] == rv

    # A kubelet's certificate: its own node, and no other.
    kubelet = api.write_kubeconfig(os.path.join(env.dir, "kubelet.conf"),
                                   client_cert=api.client_cert("system:node:n1", "system:nodes"))
    r = kubectl(env, kubelet, "annotate", "--overwrite", "node", "n1", "example/a=b")
    assert r.returncode == 0, r.stderr
    assert api.requests_for("PATCH", "/api/v1/nodes/n1")[-1].user == "system:node:n1"
    r = kubectl(env, kubelet, "annotate", "--overwrite", "node", "n2", "example/a=b")
    assert r.returncode != 0
    assert '(Forbidden): nodes "n2" is forbidden: node "n1" is not allowed to modify node "n2"' \
        in r.stderr
    assert "example/a" not in api.annotations("n2")
    r = kubectl(env, kubelet, "get", "nodes", "-o", "json")
    assert r.returncode == 0 and len(json.loads(r.stdout)["items"]) == 2


def test_restart_on_the_same_port_and_garbage(env, api):
    api.add_node("n1", [("InternalIP", "10.0.0.1")])
    port = api.port
    api.stop()
    r = kubectl(env, api.kubeconfig, "get", "nodes", "-o", "json", "--request-timeout=5s")
    assert r.returncode != 0 and "refused" in r.stderr, r.stderr
    api.add_node("n2", [("InternalIP", "10.0.0.2")])  # while down: kept, like etcd
    api.start()
    assert api.port == port
    r = kubectl(env, api.kubeconfig, "get", "nodes", "-o", "json")
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["items"]) == 2

    # A watch is cut without its final chunk when the server goes.
    w = WatchReader(env, api.kubeconfig, "get", "--raw", "/api/v1/nodes?watch=true")
    try:
        w.wait(2)
        api.restart()
        assert w.proc.wait(15) != 0
        assert "unexpected EOF" in w.proc.stderr.read().decode()
    finally:
        w.close()

    api.answer_garbage("list")
    r = kubectl(env, api.kubeconfig, "get", "--raw", "/api/v1/nodes")
    assert r.returncode == 0 and r.stdout.startswith("<html>")
    r = kubectl(env, api.kubeconfig, "get", "--raw", "/api/v1/nodes")
    assert json.loads(r.stdout)["kind"] == "NodeList"

    # Raw bytes pushed into an open watch arrive as they were sent.
    w = WatchReader(env, api.kubeconfig, "get", "--raw", "/api/v1/nodes?watch=true&resourceVersion="
                    + str(api.rv))
    try:
        api.wait_watches(1)
        api.send_raw(b'{"type":"MODIFIED","object":"x"}\n')
        assert w.wait(1) == [{"type": "MODIFIED", "object": "x"}]
    finally:
        w.close()
    assert tl.wait_until(lambda: api.open_watches() == 0, 10, "the watch gone")
