# kubectl as a real client of the front door: a stand-in API server (HTTPS,
# a certificate made here, /version and minimal discovery) on a node's side,
# reached through sshtund with the kubeconfig's proxy-url set to http:// (HTTP
# CONNECT) and to socks5://, by address and by a hostname routed to its node.

import json
import os
import shutil
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import sshtund_testlib as tl

KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"
VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.0", "gitCommit": "0" * 40,
           "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.23.8",
           "compiler": "gc", "platform": "linux/amd64"}
TOKEN = "sshtund-test-token"

pytestmark = pytest.mark.skipif(not os.access(KUBECTL, os.X_OK), reason="kubectl is not installed")


def make_cert(d, addr, names):
    """A self-signed certificate for addr and names; returns (cert, key)."""
    cert, key = os.path.join(d, "apiserver.crt"), os.path.join(d, "apiserver.key")
    san = ",".join([f"IP:{addr}"] + [f"DNS:{n}" for n in names])
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=kube-apiserver",
                    "-addext", f"subjectAltName={san}"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


class ApiServer:
    """HTTPS on addr: GET /version, /api and /apis as kube-apiserver answers
    them (enough for kubectl version and get --raw), recording each request
    with the pids holding the client's end of the connection."""

    def __init__(self, addr, cert, key):
        self.addr = addr
        self.port = tl.free_port(addr)
        self.requests = []  # (method, path, authorization, {peer pid: its ancestry})
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                server.requests.append(("GET", self.path, self.headers.get("Authorization"),
                                        tl.ancestry(tl.tcp_endpoint_pids(
                                            self.client_address, self.connection.getsockname()[:2]))))
                path = self.path.split("?")[0]
                if path == "/version":
                    body = VERSION
                elif path == "/api":
                    body = {"kind": "APIVersions", "versions": ["v1"],
                            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                                            "serverAddress": f"{addr}:{server.port}"}]}
                elif path == "/apis":
                    body = {"kind": "APIGroupList", "apiVersion": "v1", "groups": []}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.httpd = ThreadingHTTPServer((addr, self.port), Handler)
        self.httpd.daemon_threads = True
        # the handshake happens in the connection's thread, not in accept
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True,
                                            do_handshake_on_connect=False)
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                         daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def kubeconfig(path, server, ca, proxy_url):
    # JSON is YAML: no YAML library needed
    cfg = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "test", "cluster": {"server": server, "certificate-authority": ca,
                                                  "proxy-url": proxy_url}}],
        "users": [{"name": "test", "user": {"token": TOKEN}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
        "current-context": "test",
    }
    with open(path, "w") as f:
        json.dump(cfg, f)
    return path


def kubectl(env, kcfg, *args):
    home = os.path.join(env.dir, "home")
    os.makedirs(home, exist_ok=True)
    e = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    e.update(KUBECONFIG=kcfg, HOME=home)
    return subprocess.run([KUBECTL, "--request-timeout=20s", *args], capture_output=True, text=True,
                          timeout=60, env=e)


@pytest.mark.parametrize("scheme", ["http", "socks5"])
@pytest.mark.parametrize("by", ["address", "hostname"])
def test_kubectl_through_the_front_door(env, scheme, by):
    n1, n2 = env.sshd("n1"), env.sshd("n2")
    if by == "hostname":
        # "localhost" names n2: the node resolves it, its sshd dials 127.0.0.1
        n2.config_extra["hostnames"] = ["localhost"]
        addr, host = "127.0.0.1", "localhost"
    else:
        addr = host = n2.addr
    cert, key = make_cert(env.dir, addr, ["localhost"])
    api = ApiServer(addr, cert, key)
    env.servers.append(api)
    d = env.sshtund([n1, n2])
    d.wait_all_up(30)
    before = d.node_info("n2")["streams_total"]

    kcfg = kubeconfig(os.path.join(env.dir, "kubeconfig"), f"https://{host}:{api.port}", cert,
                      f"{scheme}://{d.tcp_addr}:{d.tcp_port}")
    r = kubectl(env, kcfg, "version", "-o", "json")
    assert r.returncode == 0, f"kubectl version failed:\n{r.stderr}"
    out = json.loads(r.stdout)
    assert out["serverVersion"]["gitVersion"] == VERSION["gitVersion"], out

    r = kubectl(env, kcfg, "get", "--raw", "/version")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["gitVersion"] == VERSION["gitVersion"]

    paths = [p.split("?")[0] for _, p, _, _ in api.requests]
    assert paths.count("/version") >= 2, api.requests
    for method, path, auth, pids in api.requests:
        # TLS went end to end: the token arrived, through n2's sshd
        assert auth == f"Bearer {TOKEN}", (path, auth)
        assert pids and all(n2.pid in chain for chain in pids.values()), \
            f"{path} came from {pids}, not from under sshd {n2.pid} (n1's is {n1.pid})"
    assert d.node_info("n2")["streams_total"] > before
    assert d.node_info("n1")["streams_total"] == 0
