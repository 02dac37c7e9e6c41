# `make bench --scale N`: sshtund with N nodes served by the dropbear farm of
# tests/integration/dropbear_farm.py (the fixture test_scale.py uses), every
# figure of issue 14 item 2 against the target it prints. Imported by
# bench.py; run() returns a dict that rows() turns into the table.
#
# Phases, one daemon throughout (nodes in a nodes_file, per-node metrics off
# until the admin phase so that the loop-stall snapshots cost nothing):
#   storm    start -> every node up: wall time, CPU of sshtund, of dropbear and
#            of everything else on the machine; /healthz latency meanwhile;
#            the longest loop dispatches (sshtund_loop_dispatch_seconds)
#   idle     RSS per idle node against a daemon with no node
#   streams  S streams at once over the nodes, each echoing 4 KiB
#   admin    sshtunctl status, GET /v1/nodes, GET /metrics (per-node on and
#            off): wall time and size
#   reload   one node changed in the nodes_file, then all of them rewritten:
#            the reload's own time as the daemon logs it, and no other node
#            reconnected
# --handshakes A,B,... repeats the storm with each ssh.max_handshakes first.

import os
import re
import socket
import statistics
import subprocess
import threading
import time

TARGETS = {
        "all_up": ("<=", 12.0, "s"),
        "rss_per_node": ("<=", 64.0, "KiB"),
        "streams_time": ("<=", 3.0, "s"),
        "streams_errors": ("==", 0, ""),
        "status_ms": ("<=", 100.0, "ms"),
        "nodes_ms": ("<=", 100.0, "ms"),
        "metrics_ms": ("<=", 100.0, "ms"),
        "reload_one_ms": ("<=", 100.0, "ms"),
        "reload_reconnects": ("==", 0, ""),
        "stall_storm_ms": ("<=", 10.0, "ms"),
        "stall_streams_ms": ("<=", 10.0, "ms"),
        "healthz_p99_ms": ("<=", 20.0, "ms"),
}

# Priorities (see Scale.run): the farm's, and the daemon's and this
# client's. The machine is shared with other work and the farm's dropbears
# stand in for nodes that are other machines: neither may preempt the loop
# being measured mid-dispatch, or the stall and /healthz figures measure
# the run queue (64 handshakes in flight are 64 runnable dropbears).
FARM_NICE = 19
DAEMON_NICE = -10

LOOPSTALL = re.compile(r"^loopstall: t=([\d.]+) source=(\S+) wall_ms=([\d.]+) cpu_ms=([\d.]+)$", re.M)

RELOADED = re.compile(r"Reloaded: .*; \d+ nodes \(in ([\d.]+) ms: read ([\d.]+), apply ([\d.]+)\)")


def log(msg):
    import sys
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load():
    return os.getloadavg()[0]


def busy_cpu_seconds():
    """CPU seconds the whole machine has been busy (every core), from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class HealthzPoller(threading.Thread):
    """GET /healthz on the admin socket every 'interval' until stop():
    the latency an operator's check sees while the daemon is busy."""

    def __init__(self, path, interval=0.01):
        super().__init__(daemon=True)
        self.path, self.interval = path, interval
        self.times, self.errors = [], 0
        self._halt = threading.Event()

    def run(self):
        req = b"GET /healthz HTTP/1.1\r\nHost: sshtund\r\nConnection: close\r\n\r\n"
        while not self._halt.is_set():
            t0 = time.perf_counter()
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(10)
                s.connect(self.path)
                s.sendall(req)
                while s.recv(4096):
                    pass
                s.close()
                self.times.append(time.perf_counter() - t0)
            except OSError:
                self.errors += 1
            self._halt.wait(self.interval)

    def stop(self):
        self._halt.set()
        self.join(30)
        v = sorted(self.times)
        if not v:
            return {"n": 0, "errors": self.errors}
        pick = lambda p: v[min(len(v) - 1, max(0, -(-p * len(v) // 100) - 1))]  # noqa: E731
        return {"n": len(v), "errors": self.errors, "p50": pick(50) * 1e3, "p99": pick(99) * 1e3,
                "max": v[-1] * 1e3}


def dispatch_histogram(d):
    """{le: cumulative count} of sshtund_loop_dispatch_seconds, and the max gauge."""
    _, _, body = d.admin_request("GET", "/metrics", timeout=60)
    hist, top = {}, None
    for ln in body.decode().splitlines():
        m = re.match(r'^sshtund_loop_dispatch_seconds_bucket\{le="([^"]+)"\} (\d+)$', ln)
        if m:
            hist[float(m.group(1))] = int(m.group(2))
        elif ln.startswith("sshtund_loop_dispatch_max_seconds "):
            top = float(ln.split()[1])
    return hist, top


def stall_between(h0, h1):
    """What the dispatches between two snapshots were: (the smallest bucket
    bound that holds the longest of them in ms, how many exceeded 10 ms,
    how many in all)."""
    if not h1:
        return None
    bounds = sorted(h1)
    delta = {b: h1[b] - h0.get(b, 0) for b in bounds}
    total = delta[bounds[-1]]
    longest = next((b for b in bounds if delta[b] == total), bounds[-1])
    over10 = total - max((delta[b] for b in bounds if b <= 0.010), default=0)
    return {"le_ms": longest * 1e3, "over_10ms": over10, "dispatches": total}


class Scale:
    def __init__(self, a, tl, env, df):
        self.a, self.tl, self.env, self.df = a, tl, env, df
        self.r = {"nodes": a.scale, "streams": a.scale_streams, "load": {}}

    # -- the daemon --
    def write_nodes(self, path, nodes, extra=None):
        """The nodes_file: every node, 'extra' (name -> dict) merged in."""
        entries = []
        for n in nodes:
            e = n.config_entry()
            e.update((extra or {}).get(n.name, {}))
            entries.append(e)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write("nodes = " + self.tl._lc(tuple(entries)) + ";\n")
        os.replace(tmp, path)

    def daemon(self, nodes, name, handshakes=None, per_node=False):
        tl = self.tl
        nodes_file = os.path.join(self.env.dir, f"{name}.nodes")
        self.write_nodes(nodes_file, nodes)
        ssh = {"connect_timeout": 60.0, "max_streams_per_session": 1024}
        if handshakes:
            ssh["max_handshakes"] = handshakes
        # at DAEMON_NICE, inherited from this process
        shim = os.path.join(self.a.builddir, "bench", "libloopstall.so")
        env_vars = {"LD_PRELOAD": shim, "LOOPSTALL_CPU_MS": "1", "LOOPSTALL_WALL_MS": "20"} \
            if os.path.exists(shim) else {}
        d = tl.NetnsSshtund(self.env.dir, [], self.env.client_key, self.farm, name=name, start=False,
                            env_vars=env_vars,
                            known_hosts=[n.known_hosts_line() for n in nodes],
                            log={"level": "info", "target": "stderr"}, ssh=ssh,
                            admin={"metrics_per_node": per_node},
                            proxy={"max_clients": self.a.scale_streams + 1000, "open_timeout": 60.0,
                                   "header_timeout": 60.0},
                            top={"nodes_file": nodes_file})
        d.nodes_file = nodes_file
        self.env.daemons.append(d)
        return d

    def storm(self, d, n):
        """Start d; returns the figures of its start to all n up."""
        tl, df = self.tl, self.df
        db0 = df.tree_cpu_seconds(self.farm.dropbear_pids())
        busy0 = busy_cpu_seconds()
        poller = HealthzPoller(d.admin_sock)
        t0 = time.monotonic()
        self.window = [t0, None]
        d.start()
        poller.start()
        marks = {}
        deadline = t0 + max(120.0, n / 40)
        status = {}
        while True:
            status = d.admin_get("/v1/status", timeout=60)
            up = status.get("nodes_up", 0)
            for q in (25, 50, 75, 100):
                if q not in marks and up * 100 >= q * n:
                    marks[q] = time.monotonic() - t0
            if up >= n or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        took = time.monotonic() - t0
        self.window[1] = time.monotonic()
        healthz = poller.stop()
        if status.get("nodes_up", 0) < n:
            raise self.tl.HarnessError(f"only {status.get('nodes_up')} of {n} nodes up after {took:.0f} s: {status}")
        cpu_tund = tl.cpu_seconds(d.pid)
        cpu_db = df.tree_cpu_seconds(self.farm.dropbear_pids()) - db0
        busy = busy_cpu_seconds() - busy0
        return {"all_up": took, "marks": marks, "cpu_tund": cpu_tund, "cpu_dropbear": cpu_db,
                "cpu_other": max(0.0, busy - cpu_tund - cpu_db), "healthz": healthz, "load": load()}

    def wait_farm_idle(self, timeout=60):
        """Until the per-connection dropbear children of a stopped daemon are gone."""
        self.tl.wait_until(lambda: len(self.farm.dropbear_pids()) <= self.farm.n_processes, timeout,
                           "the farm's per-connection processes to exit", interval=0.2)

    # -- phases --
    def run(self):
        prio = os.getpriority(os.PRIO_PROCESS, 0)
        try:
            return self.run_phases()
        finally:
            os.setpriority(os.PRIO_PROCESS, 0, prio)

    def run_phases(self):
        a, tl, df = self.a, self.tl, self.df
        n, s = a.scale, a.scale_streams
        t = time.monotonic()
        # the nodes are other machines: here their handshakes (64 dropbear
        # processes busy at once) must not take the CPU from the daemon
        # under test, or its loop stalls and /healthz measure the run queue
        self.farm = df.DropbearFarm(self.env, n, nice=FARM_NICE)
        self.echo = self.farm.echo_server()
        nodes = self.farm.nodes()
        self.r["farm_setup"] = time.monotonic() - t
        os.setpriority(os.PRIO_PROCESS, 0, DAEMON_NICE)  # the farm keeps its own
        log(f"scale: {n} nodes in {self.farm.n_processes} dropbear processes, set up in "
            f"{self.r['farm_setup']:.1f} s; load average {load():.1f}")

        d0 = self.daemon([], "tund0")
        d0.start()
        time.sleep(1.0)
        self.r["rss0"] = d0.rss_kb()
        d0.stop()

        sweep = []
        for hs in a.handshakes:
            log(f"scale: storm with ssh.max_handshakes = {hs}")
            dh = self.daemon(nodes, f"tund-hs{hs}", handshakes=hs)
            f = self.storm(dh, n)
            f["handshakes"] = hs
            sweep.append(f)
            log(f"  all up in {f['all_up']:.1f} s, sshtund CPU {f['cpu_tund']:.1f} s, dropbear "
                f"{f['cpu_dropbear']:.1f} s; load average {f['load']:.1f}")
            dh.stop()
            self.wait_farm_idle()
        self.r["sweep"] = sweep

        log(f"scale: storm, {n} nodes (ssh.max_handshakes {a.scale_handshakes or 'default'}); "
            f"load average {load():.1f}")
        d = self.daemon(nodes, "tundS", handshakes=a.scale_handshakes)
        st = self.storm(d, n)
        self.r["storm"] = st
        self.windows = {"storm": self.window}
        h_storm, _ = dispatch_histogram(d)
        st["stall"] = stall_between({}, h_storm)
        log(f"  all up in {st['all_up']:.1f} s ({', '.join(f'{q}% {v:.1f} s' for q, v in st['marks'].items())}); "
            f"CPU: sshtund {st['cpu_tund']:.1f} s, dropbear {st['cpu_dropbear']:.1f} s, other "
            f"{st['cpu_other']:.1f} s; load average {st['load']:.1f}")

        time.sleep(3.0)  # the first liveness round trips
        self.r["rss"] = d.rss_kb()
        self.r["rss_per_node"] = (self.r["rss"] - self.r["rss0"]) / n
        base_fds = tl.open_fds(d.pid)

        # a phase that fails is reported as such, and the next ones still run
        self.r["errors"] = {}
        for phase, fn in (("streams", lambda: self.streams(d, nodes, s, base_fds)), ("admin", lambda: self.admin(d)),
                          ("reload", lambda: self.reload(d, nodes))):
            try:
                fn()
            except Exception as e:  # noqa: BLE001  reported in the table
                self.r["errors"][phase] = f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"
                log(f"  {phase} failed: {self.r['errors'][phase]}")
        try:
            h_end, top = dispatch_histogram(d)
            self.r["stall_max_ms"] = top * 1e3 if top is not None else None
        except Exception as e:  # noqa: BLE001
            self.r["errors"]["metrics"] = f"{type(e).__name__}: {e}"[:160]
        self.r["loopstall"] = self.loopstall(d)
        rc = d.stop()
        if rc != 0:
            self.r["errors"]["stop"] = f"exit status after SIGTERM: {rc}"
            d.expect_clean_exit = False
        return self.r

    def loopstall(self, d):
        """Per phase, the dispatch that held the loop longest in CPU time
        and the one longest in wall time, from the shim's lines (None
        without the shim)."""
        lines = [(float(t), src, float(w), float(c)) for t, src, w, c in LOOPSTALL.findall(d.log_text())]
        if not d.env_vars:
            return None
        out = {}
        for phase, (t0, t1) in self.windows.items():
            inside = [x for x in lines if t0 <= x[0] <= (t1 or float("inf"))]
            cpu = max(inside, key=lambda x: x[3], default=None)
            wall = max(inside, key=lambda x: x[2], default=None)
            top = sorted(inside, key=lambda x: -x[3])[:4]
            out[phase] = {"cpu_ms": cpu[3] if cpu else 0.0, "cpu_source": cpu[1] if cpu else "-",
                          "wall_ms": wall[2] if wall else 0.0, "wall_source": wall[1] if wall else "-",
                          "wall_cpu_ms": wall[3] if wall else 0.0,
                          "top": [(x[0] - t0, x[1], x[3]) for x in top],
                          "over_10ms_cpu": sum(1 for x in inside if x[3] > 10.0)}
        return out

    def streams(self, d, nodes, s, base_fds):
        tl, df = self.tl, self.df
        log(f"scale: {s} streams at once over {len(nodes)} nodes, 4 KiB echoed on each; "
            f"load average {load():.1f}")
        h0, _ = dispatch_histogram(d)
        storm = df.StreamStorm(d.proxy_sock, nodes, self.echo.port, s, 4096)
        self.windows["streams"] = [time.monotonic(), None]
        c0 = tl.cpu_seconds(d.pid)
        db0 = df.tree_cpu_seconds(self.farm.dropbear_pids())
        e0 = df.tree_cpu_seconds([self.echo.proc.pid])
        busy0 = busy_cpu_seconds()
        t0 = time.monotonic()
        try:
            done = storm.run(time.monotonic() + max(120.0, s / 50))
            wall = time.monotonic() - t0
            self.windows["streams"][1] = time.monotonic()
            r = {"done": done, "wall": wall, "t_open": storm.t_open, "t_done": storm.t_done,
                 "errors": s - done, "summary": storm.summary(), "cpu_client": storm.cpu,
                 "cpu_tund": tl.cpu_seconds(d.pid) - c0,
                 "cpu_dropbear": df.tree_cpu_seconds(self.farm.dropbear_pids()) - db0,
                 "cpu_echo": df.tree_cpu_seconds([self.echo.proc.pid]) - e0,
                 "busy": busy_cpu_seconds() - busy0, "load": load()}
            r["status_streams"] = d.status().get("streams")
            r["rss"] = d.rss_kb()
        finally:
            storm.close()
        h1, _ = dispatch_histogram(d)
        r["stall"] = stall_between(h0, h1)
        tl.wait_until(lambda: d.status()["streams"] == 0, 60, "streams back to 0")
        try:
            r["fds_back"] = tl.wait_fds_back(d.pid, base_fds, timeout=30)
        except AssertionError as e:
            r["fds_back"] = str(e)
        self.r["streams_run"] = r
        log(f"  {done} of {s} echoed; all open after {r['t_open'] or float('nan'):.2f} s, all echoed after "
            f"{r['t_done'] or float('nan'):.2f} s; CPU: sshtund {r['cpu_tund']:.2f} s, dropbear "
            f"{r['cpu_dropbear']:.2f} s, echo {r['cpu_echo']:.2f} s, client {r['cpu_client']:.2f} s "
            f"(machine busy {r['busy']:.2f} s); load average {r['load']:.1f}")
        if done < s:
            log(f"  failures: {r['summary']}")

    def timed(self, fn, reps=5):
        out = []
        for _ in range(reps):
            t0 = time.perf_counter()
            size = fn()
            out.append((time.perf_counter() - t0) * 1e3)
        return {"median_ms": statistics.median(out), "max_ms": max(out), "size": size}

    def admin(self, d):
        log(f"scale: admin calls at {self.a.scale} nodes; load average {load():.1f}")
        ctl = [self.tl.sshtunctl_binary(), "-s", d.admin_sock]

        def sshtunctl_status():
            p = subprocess.run([*ctl, "status"], capture_output=True, timeout=60)
            if p.returncode != 0:
                raise self.tl.HarnessError(f"sshtunctl status: {p.returncode}: {p.stderr[:300]!r}")
            return len(p.stdout)

        def get(path):
            def fn():
                status, _, body = d.admin_request("GET", path, timeout=60)
                if status != 200:
                    raise self.tl.HarnessError(f"GET {path}: {status}")
                return len(body)
            return fn

        r = {"load": load()}
        r["status"] = self.timed(sshtunctl_status)
        r["v1_status"] = self.timed(get("/v1/status"))
        r["nodes"] = self.timed(get("/v1/nodes"))
        r["metrics_aggregate"] = self.timed(get("/metrics"))
        # per-node series on: a full reload that changes no node
        d.sections["admin"]["metrics_per_node"] = True
        d.write_config()
        r["full_reload"] = self.reload_and_wait(d, lambda: d.admin_request("POST", "/v1/reload", timeout=60))
        r["metrics"] = self.timed(get("/metrics"))
        self.r["admin"] = r
        for k in ("status", "v1_status", "nodes", "metrics_aggregate", "metrics"):
            log(f"  {k}: {r[k]['median_ms']:.1f} ms (max {r[k]['max_ms']:.1f}), {r[k]['size']} bytes")

    def reload_and_wait(self, d, trigger, timeout=60):
        """Run trigger(), wait for the daemon's next "Reloaded" line; its
        figures and the wall time from the trigger to the line."""
        before = len(RELOADED.findall(d.log_text()))
        t0 = time.perf_counter()
        trigger()
        found = self.tl.wait_until(lambda: RELOADED.findall(d.log_text())[before:] or None, timeout,
                                   "the daemon's \"Reloaded\" line", interval=0.01)
        wall = (time.perf_counter() - t0) * 1e3
        total, read, apply = found[0]
        return {"wall_ms": wall, "total_ms": float(total), "read_ms": float(read), "apply_ms": float(apply)}

    def reload(self, d, nodes):
        log(f"scale: reloads at {self.a.scale} nodes; load average {load():.1f}")
        before = {n["name"]: n for n in d.nodes_info()}
        one = nodes[0]
        # one node changes (a hostname more): the nodes_file's watch reads it
        r1 = self.reload_and_wait(d, lambda: self.write_nodes(
                d.nodes_file, nodes, {one.name: {"hostnames": [f"{one.name}.bench.example"]}}))
        time.sleep(2.0)  # any reconnect would show by now
        after = {n["name"]: n for n in d.nodes_info()}
        changed = [k for k, v in before.items()
                   if after.get(k, {}).get("reconnects") != v["reconnects"]
                   or after.get(k, {}).get("state_since") != v["state_since"]
                   or after.get(k, {}).get("state") != "up"]
        r1["others_changed"] = len([k for k in changed if k != one.name])
        r1["changed_names"] = changed[:5]
        # every entry rewritten (each node a hostname of its own)
        r2 = self.reload_and_wait(d, lambda: self.write_nodes(
                d.nodes_file, nodes, {n.name: {"hostnames": [f"{n.name}.all.example"]} for n in nodes}))
        time.sleep(2.0)
        after2 = {n["name"]: n for n in d.nodes_info()}
        r2["others_changed"] = sum(1 for k, v in before.items()
                                   if after2.get(k, {}).get("reconnects") != v["reconnects"]
                                   or after2.get(k, {}).get("state") != "up")
        self.r["reload_one"], self.r["reload_all"] = r1, r2
        log(f"  one node: {r1['total_ms']:.1f} ms in the loop (read {r1['read_ms']:.1f}, apply "
            f"{r1['apply_ms']:.1f}), {r1['wall_ms']:.0f} ms from the write; other nodes changed: "
            f"{r1['others_changed']}")
        log(f"  all {len(nodes)} rewritten: {r2['total_ms']:.1f} ms in the loop (read {r2['read_ms']:.1f}, "
            f"apply {r2['apply_ms']:.1f}), {r2['wall_ms']:.0f} ms from the write; nodes changed: "
            f"{r2['others_changed']}")


def run(a, tl, env):
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests",
                                    "integration"))
    import dropbear_farm as df
    return Scale(a, tl, env, df).run()


# --- the table ----------------------------------------------------------------------

def check(key, value):
    op, v, _ = TARGETS[key]
    if value is None:
        return f"{op} {v:g}", "MISS"
    ok = {"<=": value <= v, ">=": value >= v, "==": value == v}[op]
    return f"{op} {v:g}", "" if ok else "MISS"


def rows(r):
    """(label, value, target, miss) rows of the scale table."""
    out = []

    def row(label, value, key=None, fmt="{:.1f}"):
        target, miss = check(key, value) if key else ("", "")
        text = "-" if value is None else (value if isinstance(value, str) else fmt.format(value))
        out.append((label, text, target, miss))

    n, s = r["nodes"], r["streams"]
    st = r["storm"]
    row(f"all {n} nodes up, s", st["all_up"], "all_up")
    row("  sshtund CPU during the storm, s", st["cpu_tund"])
    row("  dropbear CPU during the storm, s", st["cpu_dropbear"])
    row("  other CPU on the machine meanwhile, s", st["cpu_other"])
    # the nodes' handshakes run on this machine's cores too: the start
    # cannot end before all of that CPU has run on them
    cores = os.cpu_count() or 1
    floor = (st["cpu_tund"] + st["cpu_dropbear"] + st["cpu_other"]) / cores
    row(f"  CPU floor (all of the above / {cores} cores), s", floor)
    row("  all up / CPU floor", st["all_up"] / floor if floor > 0 else None, fmt="{:.2f}")
    ls = r.get("loopstall") or {}
    if "storm" in ls:
        row(f"  longest loop dispatch in the storm, CPU ms ({ls['storm']['cpu_source']})",
            ls["storm"]["cpu_ms"], "stall_storm_ms", "{:.1f}")
    row("  longest loop dispatch in the storm, wall ms (bucket)", st["stall"] and st["stall"]["le_ms"],
        "stall_storm_ms", "<= {:g}")
    row("  /healthz p99 during the storm, ms", st["healthz"].get("p99"), "healthz_p99_ms")
    row("RSS per idle node, KiB", r["rss_per_node"], "rss_per_node", "{:.1f}")
    sr = r.get("streams_run")
    if not sr:
        out.append((f"{s} streams x 4 KiB echo", "failed", "", "MISS"))
        sr = {"errors": None, "t_open": None, "stall": None}
    row(f"{s} streams x 4 KiB echo: time to all echoed, s", sr.get("t_done"), "streams_time", "{:.2f}")
    row("  errors", sr.get("errors"), "streams_errors", "{:d}")
    row("  time to all open (200), s", sr.get("t_open"), None, "{:.2f}")
    if "streams" in ls:
        row(f"  longest loop dispatch, CPU ms ({ls['streams']['cpu_source']})", ls["streams"]["cpu_ms"],
            "stall_streams_ms", "{:.1f}")
    row("  longest loop dispatch, wall ms (bucket)", sr.get("stall") and sr["stall"]["le_ms"], "stall_streams_ms",
        "<= {:g}")
    ad = r.get("admin") or {}
    for key, label, target in (("status", "sshtunctl status, ms ({} B out)", "status_ms"),
                               ("nodes", "GET /v1/nodes, ms ({} B)", "nodes_ms"),
                               ("metrics", "GET /metrics per-node, ms ({} B)", "metrics_ms"),
                               ("metrics_aggregate", "GET /metrics aggregate only, ms ({} B)", "metrics_ms")):
        v = ad.get(key)
        row(label.format(v["size"] if v else "-"), v["median_ms"] if v else None, target)
    r1, r2 = r.get("reload_one") or {}, r.get("reload_all") or {}
    row("reload, one node changed: loop time, ms", r1.get("total_ms"), "reload_one_ms")
    row("  other nodes reconnected", r1.get("others_changed"), "reload_reconnects", "{:d}")
    row(f"nodes_file rewrite, {n} entries: read + apply, ms", r2.get("total_ms"))
    row("  from the write to applied (inotify), ms", r2.get("wall_ms"), None, "{:.0f}")
    row("full reload, no node changed: loop time, ms", (ad.get("full_reload") or {}).get("total_ms"))

    if r.get("stall_max_ms") is not None:
        row("longest loop dispatch since start, ms", r["stall_max_ms"])
    return out


def text(r):
    lines = []
    rs = rows(r)
    head = f"scale: {r['nodes']} nodes (dropbear farm at nice {FARM_NICE}, sshtund {DAEMON_NICE})"
    w0 = max(max(len(x[0]) for x in rs), len(head))
    w1 = max(len(x[1]) for x in rs)
    w2 = max(len(x[2]) for x in rs)
    lines.append(f"{head:<{w0}}   {'value':>{w1}}   target")
    for label, value, target, miss in rs:
        lines.append(f"{label:<{w0}}   {value:>{w1}}   {target:<{w2}}  {miss}".rstrip())
    st, sr = r["storm"], r.get("streams_run")
    lines.append("")
    lines.append(f"storm: up 25/50/75/100 % at {', '.join(f'{v:.1f}' for v in st['marks'].values())} s; "
                 f"/healthz {st['healthz'].get('n')} calls, p50 {st['healthz'].get('p50', 0):.1f} ms, "
                 f"max {st['healthz'].get('max', 0):.1f} ms; load average {st['load']:.1f} at all up")
    if sr:
        lines.append(f"streams: CPU sshtund {sr['cpu_tund']:.2f} s, dropbear {sr['cpu_dropbear']:.2f} s, "
                     f"echo {sr['cpu_echo']:.2f} s, client {sr['cpu_client']:.2f} s, machine busy "
                     f"{sr['busy']:.2f} s; {sr['status_streams']} streams in /v1/status while open; "
                     f"RSS {sr['rss']} KiB; descriptors back: {sr['fds_back']}; load average {sr['load']:.1f}")
    for phase, why in r.get("errors", {}).items():
        lines.append(f"FAILED: {phase}: {why}")
    if sr and sr["errors"]:
        lines.append(f"streams: {sr['summary']}")
    lines.append(f"RSS {r['rss0']} KiB with no node, {r['rss']} KiB with {r['nodes']} idle")
    for phase, v in (r.get("loopstall") or {}).items():
        lines.append(f"loop, {phase}: longest in CPU {v['cpu_ms']:.1f} ms ({v['cpu_source']}); longest in wall "
                     f"time {v['wall_ms']:.1f} ms ({v['wall_source']}, {v['wall_cpu_ms']:.1f} ms of it CPU); "
                     f"{v['over_10ms_cpu']} over 10 ms of CPU; the longest at "
                     + ", ".join(f"+{t:.1f} s {src} {c:.1f} ms" for t, src, c in v["top"]))
    for f in r.get("sweep", []):
        lines.append(f"ssh.max_handshakes {f['handshakes']:>4}: all up {f['all_up']:.1f} s, sshtund CPU "
                     f"{f['cpu_tund']:.1f} s, dropbear {f['cpu_dropbear']:.1f} s, other {f['cpu_other']:.1f} s, "
                     f"/healthz p99 {f['healthz'].get('p99', 0):.1f} ms; load average {f['load']:.1f}")
    return "\n".join(lines)
