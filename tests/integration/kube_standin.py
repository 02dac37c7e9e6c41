# A stand-in kube-apiserver for the integration tests: Node objects over
# HTTPS, as the real kubectl lists, watches and annotates them.
#
# What it serves (JSON only, the way kube-apiserver answers a client that
# does not ask for protobuf):
#   GET  /version, /api, /apis, /api/v1          discovery (legacy, not
#                                                 aggregated: kubectl falls back)
#   GET  /api/v1/nodes[?limit=&continue=&fieldSelector=metadata.name=X]
#   GET  /api/v1/nodes?watch=true[&resourceVersion=RV&timeoutSeconds=N]
#        chunked stream of {"type": ADDED|MODIFIED|DELETED|ERROR, "object": ...}
#        lines; no resourceVersion (or "0"): ADDED for every node first; an RV
#        older than the kept history: an ERROR event with a 410 Status
#   GET  /api/v1/nodes/NAME
#   PATCH /api/v1/nodes/NAME   merge-patch+json and strategic-merge-patch+json
#        (kubectl annotate sends the first), with resourceVersion preconditions
#   DELETE /api/v1/nodes/NAME
# Authentication: a bearer token (any user it names is an administrator) or a
# client certificate signed by its CA. A certificate for
# "system:node:NAME" (group system:nodes) gets what the Node authorizer and
# the NodeRestriction admission plugin give a kubelet: read every node,
# change only its own.
#
# The test side: add, modify and delete nodes, read annotations, stop, start
# and restart the server on the same port, close every open watch, push raw
# bytes into the open watches, make the next answers garbage; every request
# is recorded. Everything runs in threads of the test process.
#
# Run alone for a manual try: python3 kube_standin.py DIR [ADDR] (writes
# DIR/kubeconfig, serves until interrupted).

import base64
import copy
import json
import os
import select
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.0", "gitCommit": "0" * 40,
           "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
           "goVersion": "go1.23.8", "compiler": "gc", "platform": "linux/amd64"}
TOKEN = "sshtund-standin-admin-token"
# The real kubectl the tests drive against the stand-in (Debian: kubernetes-client).
KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"

NODE_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
API_V1_RESOURCES = {
    "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1",
    "resources": [
        {"name": "nodes", "singularName": "node", "namespaced": False, "kind": "Node",
         "verbs": NODE_VERBS, "shortNames": ["no"], "storageVersionHash": "XwShjMxG9Fs="},
        {"name": "nodes/proxy", "singularName": "", "namespaced": False, "kind": "NodeProxyOptions",
         "verbs": ["create", "delete", "get", "patch", "update"]},
        {"name": "nodes/status", "singularName": "", "namespaced": False, "kind": "Node",
         "verbs": ["get", "patch", "update"]},
    ],
}
CLOSE = object()  # queued to a watch: end the stream cleanly


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True,
                   stdin=subprocess.DEVNULL, timeout=60)


def _now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def make_node(name, addresses=None, pod_cidrs=None, annotations=None, labels=None):
    """A Node object as kube-apiserver returns it, with some of the noise
    real ones carry. addresses: [(type, address)], default one InternalIP."""
    if addresses is None:
        addresses = [("InternalIP", "10.0.0.1"), ("Hostname", name)]
    n = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                       **(labels or {})},
            "annotations": {"node.alpha.kubernetes.io/ttl": "0", **(annotations or {})},
        },
        "spec": {},
        "status": {
            "addresses": [{"type": t, "address": a} for t, a in addresses],
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "lastHeartbeatTime": _now()}],
            "nodeInfo": {"kubeletVersion": "v1.32.0", "osImage": "Debian GNU/Linux 12"},
            "images": [{"names": [f"registry.k8s.io/pause:3.{i}"], "sizeBytes": 300000 + i}
                       for i in range(8)],
        },
    }
    if pod_cidrs:
        n["spec"]["podCIDR"] = pod_cidrs[0]
        n["spec"]["podCIDRs"] = list(pod_cidrs)
    return n


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch (also what a strategic merge patch does to
    maps, the only thing kubectl annotate and label touch)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if k.startswith("$"):  # strategic-merge directives: not modelled
            continue
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def status(code, reason, message, name=None):
    s = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
         "message": message, "reason": reason, "code": code}
    if name is not None:
        s["details"] = {"name": name, "kind": "nodes"}
    return s


@dataclass
class Request:
    method: str
    path: str
    query: dict
    user: str
    content_type: str = ""
    body: bytes = b""
    status: int = 0


@dataclass
class _Watch:
    selector: str                      # a node name, or "" for all
    queue: list = field(default_factory=list)
    dead: bool = False                 # the server stopped: drop the connection


class KubeStandin:
    """One stand-in API server on addr:port (127.0.0.1 and a free port by
    default), with its CA, serving certificate and an admin kubeconfig
    under directory d."""

    def __init__(self, d, addr="127.0.0.1", port=None, token=TOKEN):
        self.dir = d
        self.addr = addr
        self.token = token
        self.port = port or _free_port(addr)
        self.cond = threading.Condition()
        self.nodes = {}              # name -> Node (the stored object)
        self.rv = 100                # the last resourceVersion handed out
        self.history = []            # [(rv, type, object)] every change, in order
        self.history_floor = 0       # a watch from an RV below this gets 410
        self.watches = []            # open _Watch streams
        self.requests = []           # every Request, in arrival order
        self.garbage = {}            # kind ("list", "watch", "get") -> replies left
        self._conns = set()
        self._httpd = None
        self._thread = None
        self._make_pki()
        self.kubeconfig = self.write_kubeconfig(os.path.join(d, "kubeconfig"))
        self.start()

    # --- certificates and kubeconfigs ----------------------------------------

    def _make_pki(self):
        d = self.dir
        self.ca_cert, self.ca_key = os.path.join(d, "ca.crt"), os.path.join(d, "ca.key")
        self.cert, self.key = os.path.join(d, "apiserver.crt"), os.path.join(d, "apiserver.key")
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        _openssl("req", "-x509", *ec, "-keyout", self.ca_key, "-out", self.ca_cert, "-days", "2",
                 "-subj", "/CN=sshtund-test-kubernetes-ca", cwd=d)
        ext = os.path.join(d, "apiserver.ext")
        with open(ext, "w") as f:
            f.write(f"subjectAltName=IP:{self.addr},DNS:localhost,DNS:kubernetes\n"
                    "extendedKeyUsage=serverAuth\n")
        csr = os.path.join(d, "apiserver.csr")
        _openssl("req", "-new", *ec, "-keyout", self.key, "-out", csr,
                 "-subj", "/CN=kube-apiserver", cwd=d)
        _openssl("x509", "-req", "-in", csr, "-CA", self.ca_cert, "-CAkey", self.ca_key,
                 "-CAcreateserial", "-out", self.cert, "-days", "2", "-extfile", ext, cwd=d)

    def client_cert(self, cn, org=None):
        """A client certificate and key signed by the CA: (cert, key)."""
        safe = cn.replace(":", "_")
        cert, key = os.path.join(self.dir, f"{safe}.crt"), os.path.join(self.dir, f"{safe}.key")
        csr = os.path.join(self.dir, f"{safe}.csr")
        subj = f"/O={org}/CN={cn}" if org else f"/CN={cn}"
        _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-keyout", key, "-out", csr, "-subj", subj, cwd=self.dir)
        ext = os.path.join(self.dir, f"{safe}.ext")
        with open(ext, "w") as f:
            f.write("extendedKeyUsage=clientAuth\n")
        _openssl("x509", "-req", "-in", csr, "-CA", self.ca_cert, "-CAkey", self.ca_key,
                 "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", ext, cwd=self.dir)
        return cert, key

    def write_kubeconfig(self, path, token=None, client_cert=None):
        """A kubeconfig for this server: the bearer token (default), another
        token, or client_cert=(cert, key) as a kubelet's kubelet.conf has."""
        if client_cert:
            user = {"client-certificate": client_cert[0], "client-key": client_cert[1]}
        else:
            user = {"token": token or self.token}
        cfg = {
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "standin", "cluster": {
                "server": self.url, "certificate-authority": self.ca_cert}}],
            "users": [{"name": "standin", "user": user}],
            "contexts": [{"name": "standin", "context": {"cluster": "standin", "user": "standin"}}],
            "current-context": "standin",
        }
        with open(path, "w") as f:
            json.dump(cfg, f, indent=2)  # JSON is YAML
        os.chmod(path, 0o600)
        return path

    @property
    def url(self):
        return f"https://{self.addr}:{self.port}"

    # --- the nodes ------------------------------------------------------------

    def _change(self, kind, obj):
        """Record a change (lock held): bump the RV, keep it in the history,
        queue it to each matching watch."""
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        snapshot = copy.deepcopy(obj)
        self.history.append((self.rv, kind, snapshot))
        line = _event_line(kind, snapshot)
        for w in self.watches:
            if not w.selector or w.selector == obj["metadata"]["name"]:
                w.queue.append(line)
        self.cond.notify_all()

    def add_node(self, name_or_obj, *args, **kw):
        """Create a node (a Node object, or make_node()'s arguments); ADDED."""
        obj = name_or_obj if isinstance(name_or_obj, dict) else make_node(name_or_obj, *args, **kw)
        obj = copy.deepcopy(obj)
        with self.cond:
            name = obj["metadata"]["name"]
            if name in self.nodes:
                raise ValueError(f"node {name} exists")
            obj["metadata"].setdefault("uid", str(uuid.uuid4()))
            obj["metadata"].setdefault("creationTimestamp", _now())
            self.nodes[name] = obj
            self._change("ADDED", obj)
            return copy.deepcopy(obj)

    def modify_node(self, name, fn):
        """fn(node) edits a copy in place; MODIFIED (even if nothing changed,
        as a kubelet's status update does)."""
        with self.cond:
            obj = copy.deepcopy(self.nodes[name])
            fn(obj)
            obj["metadata"]["name"] = name
            self.nodes[name] = obj
            self._change("MODIFIED", obj)
            return copy.deepcopy(obj)

    def set_addresses(self, name, addresses):
        def edit(n):
            n["status"]["addresses"] = [{"type": t, "address": a} for t, a in addresses]
        return self.modify_node(name, edit)

    def delete_node(self, name):
        with self.cond:
            obj = self.nodes.pop(name)
            self._change("DELETED", obj)

    def node(self, name):
        with self.cond:
            return copy.deepcopy(self.nodes.get(name))

    def annotations(self, name):
        n = self.node(name)
        return None if n is None else dict(n["metadata"].get("annotations") or {})

    def compact(self):
        """Forget the history, as etcd compaction does: a watch from any RV
        before now gets 410 Gone."""
        with self.cond:
            self.history.clear()
            self.history_floor = self.rv

    def requests_for(self, method=None, path=None, watch=None):
        """The recorded requests matching method, path (without query) and
        whether they were watches."""
        out = []
        for r in list(self.requests):
            if method and r.method != method:
                continue
            if path and r.path != path:
                continue
            if watch is not None and (r.query.get("watch") in ("true", "1")) != watch:
                continue
            out.append(r)
        return out

    def open_watches(self):
        with self.cond:
            return len(self.watches)

    def wait_watches(self, n, timeout=20.0):
        """Until at least n watches are open."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.watches) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(self.watches)} watches open after {timeout} s, "
                                         f"want {n}")
                self.cond.wait(left)

    # --- faults -----------------------------------------------------------------

    def close_watches(self):
        """End every open watch cleanly (the final chunk), as kube-apiserver
        does when a watch's timeout passes."""
        with self.cond:
            for w in self.watches:
                w.queue.append(CLOSE)
            self.cond.notify_all()

    def send_raw(self, data):
        """Queue raw bytes, as one chunk, to every open watch."""
        with self.cond:
            for w in self.watches:
                w.queue.append(bytes(data))
            self.cond.notify_all()

    def answer_garbage(self, kind, count=1):
        """The next count requests of kind "list", "watch" or "get" get 200
        with a body that is not JSON."""
        with self.cond:
            self.garbage[kind] = count

    def _take_garbage(self, kind):
        with self.cond:
            if self.garbage.get(kind, 0) > 0:
                self.garbage[kind] -= 1
                return True
            return False

    # --- the server -------------------------------------------------------------

    def start(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, self.key)
        ctx.load_verify_locations(self.ca_cert)
        ctx.verify_mode = ssl.CERT_OPTIONAL
        server = self

        class Httpd(ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True
            request_queue_size = 64

            def get_request(self):
                sock, peer = self.socket.accept()
                # The handshake in the handler's thread, not the accept loop.
                return ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), peer

        httpd = Httpd((self.addr, self.port), _handler(server))
        with self.cond:
            self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True, name="kube-standin")
        self._thread.start()

    def stop(self):
        """Stop as a crashed API server does: the listener closes, every
        connection (watches too) is dropped without a final chunk."""
        with self.cond:
            httpd, self._httpd = self._httpd, None
            for w in self.watches:
                w.dead = True
            self.cond.notify_all()
            conns = list(self._conns)
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(10)

    def restart(self, down=0.0):
        """stop(), down seconds of nothing listening, start() on the same port."""
        self.stop()
        if down:
            time.sleep(down)
        self.start()

    @property
    def running(self):
        return self._httpd is not None

    def close(self):
        self.stop()


def _event_line(kind, obj):
    return (json.dumps({"type": kind, "object": obj}, separators=(",", ":")) + "\n").encode()


def _free_port(addr):
    s = socket.socket()
    try:
        s.bind((addr, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def _handler(server):
    """The request handler class bound to one KubeStandin."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "kube-standin"

        def setup(self):
            super().setup()
            with server.cond:
                server._conns.add(self.connection)
            try:
                self.connection.do_handshake()
                self.tls_ok = True
            except (ssl.SSLError, OSError):
                self.tls_ok = False
                self.close_connection = True

        def finish(self):
            with server.cond:
                server._conns.discard(self.connection)
            try:
                super().finish()
            except OSError:
                pass

        def handle_one_request(self):
            if not self.tls_ok:
                self.close_connection = True
                return
            try:
                super().handle_one_request()
            except (ssl.SSLError, ConnectionError, OSError):
                self.close_connection = True

        def log_message(self, *args):
            pass

        # -- plumbing --

        def _user(self):
            auth = self.headers.get("Authorization") or ""
            if auth:
                if auth == f"Bearer {server.token}":
                    return "admin"
                return None
            cert = self.connection.getpeercert()
            if cert:
                for rdn in cert.get("subject", ()):
                    for k, v in rdn:
                        if k == "commonName":
                            return v
            return None

        def _send(self, code, body, content_type="application/json"):
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            self.rec.status = code

        def _chunk(self, data):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

        def _dispatch(self, method):
            parsed = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(parsed.query))
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length > 0 else b""
            user = self._user()
            self.rec = Request(method, parsed.path, query, user or "",
                               self.headers.get("Content-Type") or "", body)
            server.requests.append(self.rec)
            if user is None:
                self._send(401, status(401, "Unauthorized", "Unauthorized"))
                return
            path = parsed.path.rstrip("/") or "/"
            node_user = user[len("system:node:"):] if user.startswith("system:node:") else None
            if method == "GET" and path in ("/version", "/version/"):
                self._send(200, VERSION)
            elif method == "GET" and path == "/api":
                self._send(200, {"kind": "APIVersions", "versions": ["v1"],
                                 "serverAddressByClientCIDRs": [
                                     {"clientCIDR": "0.0.0.0/0",
                                      "serverAddress": f"{server.addr}:{server.port}"}]})
            elif method == "GET" and path == "/apis":
                self._send(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": []})
            elif method == "GET" and path == "/api/v1":
                self._send(200, API_V1_RESOURCES)
            elif path == "/api/v1/nodes" and method == "GET":
                if query.get("watch") in ("true", "1"):
                    self._watch(query)
                else:
                    self._list(query)
            elif path.startswith("/api/v1/nodes/") and path.count("/") == 4:
                name = path.rsplit("/", 1)[1]
                if method == "GET":
                    self._get(name)
                elif method == "PATCH":
                    self._patch(name, node_user)
                elif method == "DELETE":
                    if node_user is not None and node_user != name:
                        self._forbidden(name, node_user, "delete")
                        return
                    with server.cond:
                        obj = server.nodes.pop(name, None)
                        if obj is not None:
                            server._change("DELETED", obj)
                    if obj is None:
                        self._send(404, status(404, "NotFound", f'nodes "{name}" not found', name))
                    else:
                        self._send(200, obj)
                else:
                    self._send(405, status(405, "MethodNotAllowed",
                                           "the server does not allow this method on nodes"))
            else:
                self._send(404, status(404, "NotFound", "the server could not find the requested "
                                       "resource"))

        do_GET = lambda self: self._dispatch("GET")        # noqa: E731
        do_PATCH = lambda self: self._dispatch("PATCH")    # noqa: E731
        do_DELETE = lambda self: self._dispatch("DELETE")  # noqa: E731
        do_PUT = lambda self: self._dispatch("PUT")        # noqa: E731
        do_POST = lambda self: self._dispatch("POST")      # noqa: E731

        # -- resources --

        def _selector(self, query):
            sel = query.get("fieldSelector") or ""
            if sel and not sel.startswith("metadata.name="):
                return None
            return sel[len("metadata.name="):]

        def _list(self, query):
            if server._take_garbage("list"):
                self._send(200, b"<html><body>502 Bad Gateway</body></html>\n")
                return
            selector = self._selector(query)
            if selector is None:
                self._send(400, status(400, "BadRequest", "unsupported field selector"))
                return
            with server.cond:
                # As kube-apiserver lists them: without kind and apiVersion.
                items = [{k: copy.deepcopy(v) for k, v in server.nodes[n].items()
                          if k not in ("kind", "apiVersion")}
                         for n in sorted(server.nodes) if not selector or n == selector]
                rv = str(server.rv)
            meta = {"resourceVersion": rv}
            start = query.get("continue")
            if start:
                try:
                    token = json.loads(base64.b64decode(start))
                    rv, after = token["rv"], token["after"]
                except (ValueError, KeyError, TypeError):
                    self._send(400, status(400, "BadRequest", "invalid continue token"))
                    return
                meta["resourceVersion"] = rv
                items = [i for i in items if i["metadata"]["name"] > after]
            limit = int(query.get("limit") or 0)
            if limit > 0 and len(items) > limit:
                meta["continue"] = base64.b64encode(json.dumps(
                    {"rv": meta["resourceVersion"],
                     "after": items[limit - 1]["metadata"]["name"]}).encode()).decode()
                meta["remainingItemCount"] = len(items) - limit
                items = items[:limit]
            self._send(200, {"kind": "NodeList", "apiVersion": "v1", "metadata": meta,
                             "items": items})

        def _get(self, name):
            if server._take_garbage("get"):
                self._send(200, b"<html>oops</html>\n")
                return
            obj = server.node(name)
            if obj is None:
                self._send(404, status(404, "NotFound", f'nodes "{name}" not found', name))
            else:
                self._send(200, obj)

        def _forbidden(self, name, node_user, verb):
            self._send(403, status(403, "Forbidden",
                                   f'nodes "{name}" is forbidden: node "{node_user}" is not '
                                   f'allowed to modify node "{name}"', name))

        def _patch(self, name, node_user):
            if node_user is not None and node_user != name:
                self._forbidden(name, node_user, "patch")
                return
            ctype = self.rec.content_type.split(";")[0].strip()
            if ctype not in ("application/merge-patch+json",
                             "application/strategic-merge-patch+json"):
                self._send(415, status(415, "UnsupportedMediaType",
                                       "the body of the request was in an unknown format - "
                                       "accepted media types include: application/merge-patch+json, "
                                       "application/strategic-merge-patch+json"))
                return
            try:
                patch = json.loads(self.rec.body)
                if not isinstance(patch, dict):
                    raise ValueError("not an object")
            except ValueError as e:
                self._send(400, status(400, "BadRequest", f"invalid patch: {e}"))
                return
            with server.cond:
                cur = server.nodes.get(name)
                if cur is None:
                    code, body = 404, status(404, "NotFound", f'nodes "{name}" not found', name)
                else:
                    want_rv = (patch.get("metadata") or {}).get("resourceVersion")
                    if want_rv is not None and want_rv != cur["metadata"]["resourceVersion"]:
                        code, body = 409, status(409, "Conflict", f'Operation cannot be fulfilled '
                                                 f'on nodes "{name}": the object has been modified; '
                                                 f'please apply your changes to the latest version '
                                                 f'and try again', name)
                    else:
                        new = merge_patch(cur, patch)
                        new["metadata"]["name"] = name
                        new["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"]
                        if new != cur:  # a no-op patch changes nothing, RV included
                            server.nodes[name] = new
                            server._change("MODIFIED", new)
                        code, body = 200, copy.deepcopy(server.nodes[name])
            self._send(code, body)

        def _watch(self, query):
            selector = self._selector(query)
            if selector is None:
                self._send(400, status(400, "BadRequest", "unsupported field selector"))
                return
            timeout = float(query.get("timeoutSeconds") or 0)
            garbage = server._take_garbage("watch")
            w = _Watch(selector)
            rv = query.get("resourceVersion") or ""
            with server.cond:
                if garbage:
                    w.queue.append(b"<html>this is not a watch</html>\n")
                elif rv in ("", "0"):
                    for n in sorted(server.nodes):
                        if not selector or n == selector:
                            w.queue.append(_event_line("ADDED", server.nodes[n]))
                else:
                    try:
                        since = int(rv)
                    except ValueError:
                        since = -1
                    if since < server.history_floor:
                        w.queue.append(_event_line("ERROR", status(
                            410, "Expired", f"too old resource version: {rv} "
                            f"({server.history_floor + 1})")))
                        w.queue.append(CLOSE)
                    else:
                        for ev_rv, kind, obj in server.history:
                            if ev_rv > since and (not selector
                                                  or obj["metadata"]["name"] == selector):
                                w.queue.append(_event_line(kind, obj))
                server.watches.append(w)
                server.cond.notify_all()
            try:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.rec.status = 200
                deadline = time.monotonic() + timeout if timeout > 0 else None
                while True:
                    with server.cond:
                        while not w.queue and not w.dead:
                            left = None if deadline is None else deadline - time.monotonic()
                            if left is not None and left <= 0:
                                w.queue.append(CLOSE)
                                break
                            server.cond.wait(min(left, 0.2) if left is not None else 0.2)
                            # A client that went away (or speaks out of turn
                            # on a watch) ends it, as the request context
                            # does in kube-apiserver.
                            if select.select([self.connection], [], [], 0)[0]:
                                w.dead = True
                        if w.dead:
                            self.close_connection = True
                            return
                        items, w.queue = w.queue, []
                    for item in items:
                        if item is CLOSE:
                            self.wfile.write(b"0\r\n\r\n")
                            self.close_connection = True
                            return
                        self._chunk(item)
            finally:
                with server.cond:
                    if w in server.watches:
                        server.watches.remove(w)
                    server.cond.notify_all()

    return Handler


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: kube_standin.py DIR [ADDR]")
    s = KubeStandin(sys.argv[1], *(sys.argv[2:3]))
    for i in range(1, 4):
        s.add_node(f"n{i}", [("InternalIP", f"10.0.0.{i}"), ("Hostname", f"n{i}")],
                   [f"10.244.{i}.0/24"])
    print(f"serving {s.url}; KUBECONFIG={s.kubeconfig}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        s.close()
