"""Several hosts on one machine, for tests of what crosses a network: Linux network
namespaces created (and removed) by the test itself, one per host, each joined by a veth
pair to a bridge that lives in a namespace of its own. No interface ever appears in the
test runner's namespace; all traffic stays inside these namespaces. Needs root.

- Lab(names).build(): hosts named as given, addresses SUBNET.10, .11, ...
- partition(groups) / heal(): hosts in different groups cannot reach each other (blackhole
  routes on each host, both ways), and heal() lifts every cut.
- isolate(name) / rejoin(name): one host cut off (its veth end on the bridge set down).
- shape(delay_ms, loss_pct): delay and loss on every host's outgoing traffic: tc netem
  when the kernel has it, else an NFQUEUE rule and tests/tools/netem_nfq (kernels built
  without sch_netem), started inside each namespace and bounded in time.
- popen(name, args): a process inside a host's namespace.

Every namespace is named syn<pid>-...; destroy() (also at exit) removes this run's, and
remove_stale() those of earlier runs killed before they could clean up.
"""
import atexit
import os
import re
import shutil
import subprocess

SUBNET = "10.200.9"


def sh(*args, check=True, timeout=20):
    p = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: rc {p.returncode}: {p.stderr.strip()}")
    return p


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def remove_stale():
    """Namespaces syn<pid>-... of runs whose pid no longer runs (killed with SIGKILL)."""
    p = sh("ip", "netns", "list", check=False)
    for line in p.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.fullmatch(r"syn(\d+)-.*", name)
        if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            sh("ip", "netns", "del", name, check=False)


def unavailable():
    """None when namespaces can be made here, else why not (for unittest.SkipTest)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = f"syn{os.getpid()}-probe"
    p = sh("ip", "netns", "add", probe, check=False)
    if p.returncode != 0:
        return f"`ip netns add` not permitted here: {p.stderr.strip()}"
    sh("ip", "netns", "del", probe, check=False)
    return None


class Lab:
    def __init__(self, names, subnet=SUBNET):
        self.names = list(names)
        self.subnet = subnet
        self.tag = f"syn{os.getpid()}"
        self.bridge = f"{self.tag}-br"
        self.created = []
        self.shapers = []
        self.cuts = set()
        atexit.register(self.destroy)

    def ns(self, name):
        return f"{self.tag}-{name}"

    def addr(self, name):
        return f"{self.subnet}.{10 + self.names.index(name)}"

    def run(self, name, *args, check=True):
        return sh("ip", "netns", "exec", self.ns(name), *args, check=check)

    def popen(self, name, args, **kw):
        return subprocess.Popen(["ip", "netns", "exec", self.ns(name), *args], **kw)

    def build(self):
        for ns in [self.bridge] + [self.ns(n) for n in self.names]:
            sh("ip", "netns", "add", ns)
            self.created.append(ns)
            sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        b = ("ip", "netns", "exec", self.bridge)
        sh(*b, "ip", "link", "add", "br0", "type", "bridge")
        sh(*b, "ip", "link", "set", "br0", "up")
        for i, name in enumerate(self.names):
            # Made inside the host's namespace, the peer end moved into the bridge's.
            self.run(name, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", f"b{i}",
                     "netns", self.bridge)
            self.run(name, "ip", "addr", "add", f"{self.addr(name)}/24", "dev", "eth0")
            self.run(name, "ip", "link", "set", "eth0", "up")
            sh(*b, "ip", "link", "set", f"b{i}", "master", "br0")
            sh(*b, "ip", "link", "set", f"b{i}", "up")
        return self

    # ---- faults ----

    def isolate(self, name):
        sh("ip", "netns", "exec", self.bridge, "ip", "link", "set",
           f"b{self.names.index(name)}", "down")

    def rejoin(self, name):
        sh("ip", "netns", "exec", self.bridge, "ip", "link", "set",
           f"b{self.names.index(name)}", "up")

    def partition(self, groups):
        """Hosts of different groups cannot reach each other; hosts in no group keep
        every link (a router, say, that stays on one side: put it in a group)."""
        for gi, a_group in enumerate(groups):
            for gj, b_group in enumerate(groups):
                if gi == gj:
                    continue
                for a in a_group:
                    for b in b_group:
                        if (a, b) in self.cuts:
                            continue
                        self.run(a, "ip", "route", "add", "blackhole", f"{self.addr(b)}/32")
                        self.cuts.add((a, b))

    def heal(self):
        for a, b in sorted(self.cuts):
            self.run(a, "ip", "route", "del", "blackhole", f"{self.addr(b)}/32", check=False)
        self.cuts.clear()
        for name in self.names:
            self.rejoin(name)

    def shape(self, delay_ms, loss_pct, seconds, seed=1, netem_binary=None):
        """Delay and loss on every host's outgoing packets for `seconds`."""
        for i, name in enumerate(self.names):
            p = self.run(name, "tc", "qdisc", "replace", "dev", "eth0", "root", "netem", "delay",
                         f"{delay_ms}ms", "loss", f"{loss_pct}%", check=False)
            if p.returncode == 0:
                continue
            if not netem_binary:
                raise RuntimeError("no netem here (tc: " + p.stderr.strip() +
                                   "), and no netem_nfq binary (SYNAPSE_NETEM) to stand in")
            self.run(name, "iptables-legacy", "-A", "OUTPUT", "-o", "eth0", "-j", "NFQUEUE",
                     "--queue-num", "0", "--queue-bypass")
            proc = self.popen(name, [netem_binary, "--queue", "0", "--delay-ms", str(delay_ms),
                                     "--loss-pct", str(loss_pct), "--seed", str(seed + i),
                                     "--duration-s", str(seconds)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            line = proc.stdout.readline()
            if not line.startswith(b"ready"):
                raise RuntimeError(f"netem_nfq in {name} did not start: {line!r}")
            self.shapers.append(proc)

    def unshape(self):
        """Stop shaping; returns the packets {"passed", "dropped"} summed over the hosts."""
        totals = {"passed": 0, "dropped": 0}
        for p in self.shapers:
            if p.poll() is None:
                p.terminate()
            try:
                out, _ = p.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                out, _ = p.communicate()
            m = re.search(rb"done passed (\d+) dropped (\d+)", out or b"")
            if m:
                totals["passed"] += int(m.group(1))
                totals["dropped"] += int(m.group(2))
        self.shapers.clear()
        for name in self.names:
            p = self.run(name, "tc", "-s", "qdisc", "show", "dev", "eth0", check=False)
            m = re.search(r"netem.*?Sent \d+ bytes (\d+) pkt \(dropped (\d+)", p.stdout, re.S)
            if m:
                totals["passed"] += int(m.group(1))
                totals["dropped"] += int(m.group(2))
            self.run(name, "tc", "qdisc", "del", "dev", "eth0", "root", check=False)
            self.run(name, "iptables-legacy", "-F", "OUTPUT", check=False)
        return totals

    def destroy(self):
        self.unshape()
        while self.created:
            sh("ip", "netns", "del", self.created.pop(), check=False)


def netem_binary():
    """The netem_nfq stand-in the build made (SYNAPSE_NETEM), or None."""
    path = os.environ.get("SYNAPSE_NETEM")
    if path and os.access(path, os.X_OK):
        return path
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    default = os.path.join(root, "build", "tests", "netem_nfq")
    return default if os.access(default, os.X_OK) else shutil.which("netem_nfq")
