# Thousands of SSH nodes on one machine, for test_scale.py and `make bench
# --scale N`: dropbear in a network and mount namespace of their own, each
# node its own address in 198.18.0.0/15, an echo service behind them, and a
# client that opens thousands of streams through sshtund's front door at once.
#
# Why it is built this way (measured on a 2-core machine):
#  - dropbear, not OpenSSH: one process per connection (about 116 KiB of
#    private memory) where sshd needs two; 5,000 sshd sessions do not fit.
#  - One dropbear per DROPBEAR_ADDRESSES addresses: dropbear listens on at
#    most 10 addresses and admits 30 unauthenticated connections per
#    process (5 per source address). Node i is served by process i mod P,
#    so the handshakes in flight at once land on as many processes.
#  - The whole 198.18.0.0/15 is a local route on the namespace's loopback
#    (ip route add local): every address in it can be bound and dialled
#    without adding 5,000 addresses, and a connection's source is its
#    destination, so dropbear's per-source limit never bites.
#  - /proc/timer_list is masked by an empty file in the mount namespace:
#    dropbear seeds its random pool from it on every connection, and it
#    grows with every process (thousands of dropbear children make each
#    new handshake slower and slower).
#  - dropbear reads authorized_keys from the login user's home only: a
#    temporary home is bind-mounted over it, in the namespace only.
#
# Everything runs inside the namespace's holder process tree or enters it
# with nsenter; every process started here gets SIGKILL when the test
# process dies (PR_SET_PDEATHSIG through setpriv), close() kills whatever
# still runs inside (the per-connection dropbear children too), and every
# wait has a deadline. Needs root.

import ipaddress
import os
import pwd
import select
import socket
import subprocess
import time

import sshtund_testlib as tl

DROPBEAR = "/usr/sbin/dropbear"
FARM_NETWORK = ipaddress.ip_network("198.18.0.0/15")
# dropbear's DROPBEAR_MAX_PORTS: listen addresses per process
DROPBEAR_ADDRESSES = 10


def node_address(i):
    """The i-th node's address (0-based): 198.18.0.1 ... 198.18.0.250,
    198.18.1.1, ... (no .0 or .255 in the last octet); 128,000 of them."""
    if not 0 <= i < 512 * 250:
        raise ValueError(f"node index {i} outside 198.18.0.0/15")
    base = int(FARM_NETWORK.network_address)
    return str(ipaddress.ip_address(base + (i // 250) * 256 + i % 250 + 1))


class DropbearFarm(tl.NetnsHost):
    """n nodes, node i at node_address(i) port 22, all with one host key,
    served by ceil(n / per_process) dropbear processes. 'nice' lowers the
    priority of every process of the farm (the test shares the machine)."""

    def __init__(self, env, n, name="farm", per_process=DROPBEAR_ADDRESSES, client_pub=None, nice=0,
                 host_key_type="ed25519", timeout=120.0):
        if not tl.is_root():
            raise tl.HarnessError("the dropbear farm needs root (network and mount namespaces)")
        if not 1 <= per_process <= DROPBEAR_ADDRESSES:
            raise ValueError(f"per_process must be 1..{DROPBEAR_ADDRESSES}")
        self.n = n
        self.dir = os.path.join(env.dir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.nice = nice
        self.holder = None
        self.procs = []
        self.log_path = os.path.join(self.dir, "dropbear.log")
        self.n_processes = -(-n // per_process)
        env.servers.append(self)  # closed by env.close(), after the daemons
        try:
            self._keys(env, client_pub, host_key_type)
            self._namespace()
            self._dropbears(timeout)
        except BaseException:
            self.close()
            raise

    # -- set-up --
    def _keys(self, env, client_pub, key_type):
        self.host_key = os.path.join(self.dir, f"dropbear_{key_type}_host_key")
        subprocess.run(["dropbearkey", "-t", key_type, "-f", self.host_key]
                       + (["-s", "256"] if key_type == "ecdsa" else []),
                       check=True, capture_output=True, timeout=60)
        out = subprocess.run(["dropbearkey", "-y", "-f", self.host_key], check=True, capture_output=True,
                             text=True, timeout=60).stdout
        pubs = [ln.split() for ln in out.splitlines() if ln.startswith(("ssh-", "ecdsa-")) and " AAAA" in ln]
        if not pubs:
            raise tl.HarnessError(f"no public key in dropbearkey -y output:\n{out}")
        self.host_key_blob = " ".join(pubs[0][:2])
        self.home = os.path.join(self.dir, "home")
        ssh_dir = os.path.join(self.home, ".ssh")
        os.makedirs(ssh_dir, exist_ok=True)
        with open(os.path.join(ssh_dir, "authorized_keys"), "w") as f:
            f.write((client_pub or env.client_pub).strip() + "\n")
        for path, mode in ((self.home, 0o700), (ssh_dir, 0o700), (os.path.join(ssh_dir, "authorized_keys"), 0o600)):
            os.chmod(path, mode)
        self.empty = os.path.join(self.dir, "empty")
        open(self.empty, "w").close()

    def _namespace(self):
        user_home = pwd.getpwuid(os.getuid()).pw_dir
        script = ('mount --bind "$1" /proc/timer_list && mount --bind "$2" "$3" && '
                  'echo ready && exec sleep infinity')
        log = os.path.join(self.dir, "holder.log")
        self.holder = tl._spawn(["unshare", "--net", "--mount", "--propagation", "private", "--",
                                 "sh", "-c", script, "sh", self.empty, self.home, user_home], log)
        base = tl._netns_inode(os.getpid())

        def ready():
            if self.holder.poll() is not None:
                raise tl.HarnessError(f"the namespace holder exited with {self.holder.returncode}:\n"
                                      + tl.tail(log, 20))
            with open(log, errors="replace") as f:
                return "ready" in f.read() and tl._netns_inode(self.holder.pid) not in (None, base)

        tl.wait_until(ready, 10, "the farm's namespaces")
        self.run(["ip", "link", "set", "lo", "up"])
        self.run(["ip", "route", "add", "local", str(FARM_NETWORK), "dev", "lo"])

    def _dropbears(self, timeout):
        nice = ["nice", "-n", str(self.nice)] if self.nice else []
        for j in range(self.n_processes):
            ports = []
            for i in range(j, self.n, self.n_processes):
                ports += ["-p", f"{node_address(i)}:22"]
            # -F foreground, -E log to stderr (not syslog), -s no passwords
            argv = [*self.prefix_mnt, *nice, DROPBEAR, "-F", "-E", "-s", "-r", self.host_key,
                    "-P", os.path.join(self.dir, f"dropbear-{j}.pid"), *ports]
            self.procs.append(tl._spawn(argv, self.log_path))

        def ready():
            for p in self.procs:
                if p.poll() is not None:
                    raise tl.HarnessError(f"a dropbear of the farm exited with {p.returncode}:\n"
                                          + tl.tail(self.log_path, 20))
            return self.listeners(22) >= self.n

        tl.wait_until(ready, timeout, f"{self.n} dropbear listeners", interval=0.2)

    # -- inside the namespace (prefix, run(), spawn(), listening(),
    # echo_server(), pids() and close() are tl.NetnsHost's) --
    @property
    def prefix_mnt(self):
        """The prefix, in the farm's mount namespace too (dropbear)."""
        return ["nsenter", f"--net=/proc/{self.holder.pid}/ns/net", f"--mount=/proc/{self.holder.pid}/ns/mnt",
                "--"]

    def listeners(self, port):
        """Sockets listening on 'port' in the namespace."""
        want = ":%04X" % port
        return sum(1 for r in self._tcp_table() if r[1].endswith(want) and r[3] == "0A")

    def nodes(self, n=None, prefix="n"):
        """The first n nodes (all by default) as NetnsNode objects:
        config_entry() and known_hosts_line() for the daemon."""
        n = self.n if n is None else n
        return [tl.NetnsNode(self, f"{prefix}{i + 1}", node_address(i)) for i in range(n)]

    def dropbear_pids(self):
        """The dropbear processes: listeners and per-connection children."""
        out = []
        for p in self.pids():
            try:
                with open(f"/proc/{p}/comm") as f:
                    if f.read().strip() == "dropbear":
                        out.append(p)
            except OSError:
                pass
        return out


def tree_cpu_seconds(pids):
    """CPU time of 'pids' so far, in seconds: each one's own (schedstat, in
    nanoseconds: a handshake is a few milliseconds, under the clock tick)
    plus its reaped children's; processes gone meanwhile count 0."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            with open(f"/proc/{pid}/schedstat") as f:
                total += int(f.read().split()[0]) / 1e9
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[13]) + int(fields[14])) / tick
        except (OSError, IndexError, ValueError):
            pass
    return total


# --- thousands of streams at once --------------------------------------------------

class Stream:
    __slots__ = ("i", "sock", "node", "payload", "head", "got", "sent", "state", "error")

    def __init__(self, i, node, payload):
        self.i, self.node, self.payload = i, node, payload
        self.sock = None
        self.head = bytearray()
        self.got = bytearray()
        self.sent = 0
        self.state = "dial"  # dial -> head -> echo -> done | failed
        self.error = None


class StreamStorm:
    """n streams through the front door at once, stream i to nodes[i % len]
    at port 'port' of the node's own address: each dials, sends CONNECT,
    reads the 200 exactly, sends its payload ('size' bytes, distinct per
    stream) and reads it back byte for byte. Every stream stays open until
    close(), so all n are open together at the end. One epoll loop; the
    listen backlog being full (EAGAIN on connect) just means "later"."""

    def __init__(self, proxy_sock, nodes, port, n, size=4096):
        self.proxy_sock = proxy_sock
        block = os.urandom(max(size, 16))
        self.streams = []
        for i in range(n):
            node = nodes[i % len(nodes)]
            tag = b"%010d" % i
            self.streams.append(Stream(i, node, (tag + block[len(tag):])[:size]))
        self.requests = {}
        self.port = port
        self.t_open = None   # seconds from the first dial to the last 200
        self.t_done = None   # ... to the last echo
        self.cpu = None      # this process's CPU seconds meanwhile

    def _request(self, node):
        r = self.requests.get(node.addr)
        if r is None:
            r = self.requests[node.addr] = tl.connect_request(node.addr, self.port)
        return r

    def run(self, deadline):
        """Drive every stream to done or failed, or until 'deadline'
        (time.monotonic()); returns the count done."""
        ep = select.epoll()
        by_fd = {}
        pending = list(reversed(self.streams))  # still to dial, popped from the end
        left = len(self.streams)
        n_open = 0
        t0 = time.monotonic()
        c0 = time.process_time()
        IN, OUT = select.EPOLLIN, select.EPOLLOUT

        def fail(st, why):
            nonlocal left
            st.state, st.error = "failed", why
            if st.sock is not None:
                ep.unregister(st.sock.fileno())
                del by_fd[st.sock.fileno()]
            left -= 1

        def send_payload(st):
            try:
                st.sent += st.sock.send(memoryview(st.payload)[st.sent:])
            except BlockingIOError:
                pass
            ep.modify(st.sock.fileno(), IN | (OUT if st.sent < len(st.payload) else 0))

        try:
            while left and time.monotonic() < deadline:
                # dial while the backlog takes them
                while pending:
                    st = pending[-1]
                    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    s.setblocking(False)
                    try:
                        s.connect(self.proxy_sock)
                    except BlockingIOError:
                        s.close()  # backlog full: the daemon is still accepting
                        break
                    except OSError as e:
                        s.close()
                        pending.pop()
                        fail(st, f"connect: {e}")
                        continue
                    pending.pop()
                    st.sock = s
                    try:
                        s.send(self._request(st.node))  # a few dozen bytes: one send
                    except OSError as e:
                        st.sock = None
                        s.close()
                        fail(st, f"send CONNECT: {e}")
                        continue
                    st.state = "head"
                    by_fd[s.fileno()] = st
                    ep.register(s.fileno(), IN)
                for fd, ev in ep.poll(0.05 if pending else 0.5, 1024):
                    st = by_fd.get(fd)
                    if st is None:
                        continue
                    if ev & OUT and st.state == "echo" and st.sent < len(st.payload):
                        send_payload(st)
                    if not ev & (IN | select.EPOLLHUP | select.EPOLLERR):
                        continue
                    try:
                        data = st.sock.recv(65536)
                    except BlockingIOError:
                        continue
                    except OSError as e:
                        fail(st, f"{st.state}: {e}")
                        continue
                    if not data:
                        fail(st, f"closed in state {st.state}: {bytes(st.head or st.got)[:80]!r}")
                    elif st.state == "head":
                        st.head += data
                        if len(st.head) < len(tl.CONNECT_OK) and tl.CONNECT_OK.startswith(st.head):
                            continue
                        if st.head != tl.CONNECT_OK:
                            fail(st, f"reply {bytes(st.head[:80])!r}")
                            continue
                        st.state = "echo"
                        n_open += 1
                        if n_open == len(self.streams):
                            self.t_open = time.monotonic() - t0
                        send_payload(st)
                    else:
                        st.got += data
                        if len(st.got) < len(st.payload) and st.payload.startswith(st.got):
                            continue
                        if st.got != st.payload:
                            fail(st, f"echo of stream {st.i} differs at byte "
                                     f"{next((k for k, (a, b) in enumerate(zip(st.got, st.payload)) if a != b), len(st.payload))}")
                            continue
                        st.state = "done"
                        ep.unregister(fd)
                        del by_fd[fd]
                        left -= 1
        finally:
            ep.close()
            self.cpu = time.process_time() - c0
        done = self.count("done")
        if done == len(self.streams):
            self.t_done = time.monotonic() - t0
        return done

    def count(self, state):
        return sum(1 for st in self.streams if st.state == state)

    def summary(self):
        counts = {}
        errors = {}
        for st in self.streams:
            counts[st.state] = counts.get(st.state, 0) + 1
            if st.error:
                errors[st.error[:100]] = errors.get(st.error[:100], 0) + 1
        top = sorted(errors.items(), key=lambda x: -x[1])[:8]
        return f"{counts}; errors: {top}"

    def close(self):
        for st in self.streams:
            if st.sock is not None:
                st.sock.close()
                st.sock = None
