"""Clusters of real processes for the cluster tests (test_cluster_*.py) and
bench/cluster_bench.py, and the tracker operations they run through a member.

Nodes and routers run on loopback (or inside the network namespaces the partition test
creates), each a TrackerProcess that is ready once it prints its `ready ` line.

Conventions:
- A node listens for routers on its DATA port and for gossip/replication on DATA+1, so a
  node's data port is picked with both free (net.free_port_pair).
- Failure detection runs at the built-in defaults (SWIM with Lifeguard: a killed node is
  dead everywhere within about three seconds), and so does the router's request
  deadline, unless a test says otherwise: the defaults are what operators get.
- Waits are bounded polls of /cluster/status (every 50 ms) with a deadline, never fixed
  sleeps (wait.wait_for, which raises with the last value seen).
- The operations (announce, register, search, ...) raise AssertionError with the reply
  when the tracker refuses; `conn` (an http_client.KeepAlive) reuses one connection.
"""
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from bencode import bdecode
from http_client import http_request
from net import free_port, free_port_pair
from synapse_proc import TrackerProcess, thread_dump
from tracker_config import config_yaml
from tracker_proto import announce_target, rand_hash, scrape_target
from vectors import clustered_vectors
from wait import wait_for

# Cluster keys the tests set unless told otherwise: none, the defaults are under test.
TEST_CLUSTER = {}
# Limits the tests set unless told otherwise (extra={"limits": ...} replaces them): the
# checkers of the cluster tests ask a router from one address as fast as it answers,
# which the per-client limiter would refuse; it is tested on its own
# (test_http_defences), and a cluster test that wants it passes its own limits.
TEST_LIMITS = {"rate_limit": False}
HTTP_TIMEOUT = 10.0
MODEL = "cluster-test-model"


def log(*args):
    print(f"[{time.strftime('%H:%M:%S')}]", *args, file=sys.stderr, flush=True)


def config_text(cluster=None, server=None, extra=None):
    """YAML for --config: the server and cluster keys given (a None value drops a key,
    so the built-in default applies), then any extra sections."""
    srv = dict(server or {})
    cl = dict(TEST_CLUSTER)
    cl.update(cluster or {})
    return config_yaml({"server": srv, "cluster": cl, "limits": dict(TEST_LIMITS),
                        **(extra or {})})


def make_vectors(rng, n, dim, clusters=6):
    """n test vectors around `clusters` centres (vectors.clustered_vectors with norms
    0.5..3 and 5 decimals)."""
    return clustered_vectors(rng, n, dim, clusters=clusters, spread=0.5, scale=(0.5, 3.0),
                             digits=5)[0]


def shard_body(hexhash, vec, name=None, tags=("cluster",), model=MODEL):
    return {"info_hash": hexhash, "display_name": name or f"shard {hexhash[:8]}",
            "embedding_model": model, "dimension_size": len(vec), "tags": list(tags),
            "description": "cluster test shard", "embedding": vec}


# ---------------------------------------------------------------------------------------
# processes

class Member:
    """A node or router process. `netns` runs it inside that network namespace.
    ws_port: its WebSocket (ws://) listener, 0 (off) unless given; routers serve it."""

    def __init__(self, role, member_id, host, http_port, cluster_port, seeds, config_path,
                 udp_port=0, netns=None, data_dir=None, stderr_path=None, ws_port=0):
        self.role, self.id, self.host = role, member_id, host
        self.cluster_port = cluster_port
        self.netns = netns
        self.cluster_addr = f"tcp://{host}:{cluster_port}"
        args = ["--node-id", member_id, "--cluster-addr", self.cluster_addr,
                "--seeds", ",".join(seeds), "--config", config_path]
        self.proc = TrackerProcess(args=args, role=role, http_port=http_port,
                                   udp_port=udp_port, data_dir=data_dir, host=host,
                                   ready_timeout=40.0, stderr_path=stderr_path,
                                   ws_port=ws_port)
        if netns:
            self.proc.args = ["ip", "netns", "exec", netns] + self.proc.args
        self.proc.env["PYTHONDONTWRITEBYTECODE"] = "1"

    # -- life cycle --
    def start(self):
        self.proc.start()
        return self

    @property
    def pid(self):
        return self.proc.proc.pid if self.proc.proc else None

    def alive(self):
        return self.proc.proc is not None and self.proc.proc.poll() is None

    def kill9(self):
        self.proc.kill9()

    def terminate(self):
        """SIGTERM (a node's graceful leave); returns without waiting."""
        if self.alive():
            self.proc.proc.terminate()

    def thread_dump(self):
        """Its threads' stacks (synapse_proc.thread_dump), for a member that stopped
        answering."""
        return thread_dump(self.pid) if self.alive() else "not running"

    def wait_exit(self, timeout):
        try:
            return self.proc.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def close(self):
        """SIGKILL (if it still runs), then the pipe and temp directory are released."""
        self.proc.close(signal.SIGKILL)

    # -- HTTP --
    @property
    def http_port(self):
        return self.proc.http_port

    @property
    def udp_port(self):
        return self.proc.udp_port

    @property
    def ws_port(self):
        return self.proc.ws_port

    def ws_url(self, path="/announce"):
        return self.proc.ws_url(path)

    def get(self, path, timeout=HTTP_TIMEOUT):
        if self.netns:
            return netns_http_get(self.netns, self.host, self.http_port, path, timeout)
        return http_request(self.host, self.http_port, "GET", path, timeout=timeout)

    def post(self, path, body, timeout=HTTP_TIMEOUT):
        return http_request(self.host, self.http_port, "POST", path, body, timeout=timeout)

    def get_json(self, path, timeout=HTTP_TIMEOUT):
        status, body = self.get(path, timeout)
        return status, json.loads(body)

    def status(self, timeout=3.0):
        s, doc = self.get_json("/cluster/status", timeout)
        if s != 200:
            raise AssertionError(f"{self.id} /cluster/status {s}: {doc}")
        return doc

    def members(self, timeout=3.0):
        """{id: member dict} of this member's view."""
        return {m["id"]: m for m in self.status(timeout)["members"]}

    def owner(self, hexhash):
        s, doc = self.get_json("/cluster/owner/" + hexhash)
        if s != 200:
            raise AssertionError(f"/cluster/owner {s}: {doc}")
        return doc

    def ready(self):
        try:
            return self.get("/readyz", timeout=2)[0] == 200
        except OSError:
            return False


def netns_http_get(netns, host, port, path, timeout=3.0):
    """GET inside a network namespace (curl under `ip netns exec`): (status, body)."""
    cmd = ["ip", "netns", "exec", netns, "curl", "-s", "-g", "-m", str(timeout),
           "-o", "-", "-w", "\n%{http_code}", f"http://{host}:{port}{path}"]
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=timeout + 5)
    except subprocess.TimeoutExpired:
        raise OSError(f"curl in {netns} timed out")
    body, _, code = p.stdout.rpartition(b"\n")
    if p.returncode != 0 or not code.isdigit() or int(code) == 0:
        raise OSError(f"curl in {netns} failed (rc {p.returncode}): {p.stderr[:200]!r}")
    return int(code), body


class Standalone(Member):
    """A standalone process (router + node in one), for side-by-side comparisons."""

    def __init__(self, udp_port=0, config_path=None):
        self.role, self.id, self.host, self.netns = "standalone", "standalone", "127.0.0.1", None
        args = ["--config", config_path] if config_path else []
        self.proc = TrackerProcess(args=args, role="standalone", http_port=free_port(),
                                   udp_port=udp_port, ready_timeout=40.0)


class Cluster:
    """Nodes n0..n{k-1} (seeded by n0) and routers on loopback, with one config file.
    Close it (or use `with`) to kill everything and remove the temp directories."""

    def __init__(self, cluster=None, server=None, extra=None, host="127.0.0.1"):
        self.host = host
        self.tmp = tempfile.mkdtemp(prefix="synapse-cluster-")
        self.config_path = os.path.join(self.tmp, "config.yaml")
        with open(self.config_path, "w") as f:
            f.write(config_text(cluster, server, extra))
        self.nodes = {}
        self.routers = {}
        self.seed_port = None
        self.next_node = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        for m in list(self.routers.values()) + list(self.nodes.values()):
            try:
                m.close()
            except Exception as e:  # keep cleaning up
                log("cleanup:", m.id, e)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def seeds(self):
        return [f"tcp://{self.host}:{self.seed_port}"]

    def add_node(self, node_id=None, start=True, data_dir=None):
        node_id = node_id or f"n{self.next_node}"
        self.next_node += 1
        port = free_port_pair()
        if self.seed_port is None:
            self.seed_port = port
        data_dir = data_dir or os.path.join(self.tmp, node_id)
        os.makedirs(data_dir, exist_ok=True)
        n = Member("node", node_id, self.host, free_port(), port, self.seeds(), self.config_path,
                   udp_port=0, data_dir=data_dir)
        self.nodes[node_id] = n
        if start:
            n.start()
        return n

    def restart_node(self, node_id):
        """Starts a stopped node again with the same id, addresses and data directory."""
        old = self.nodes[node_id]
        if old.alive():
            raise RuntimeError(f"{node_id} still runs")
        old.close()
        n = Member("node", node_id, self.host, old.http_port, old.cluster_port,
                   self.seeds_for(node_id), self.config_path, udp_port=0,
                   data_dir=old.proc.data_dir)
        self.nodes[node_id] = n
        n.start()
        return n

    def seeds_for(self, node_id):
        """Seeds for a (re)starting node: every other node's data address (the first
        node may be the one restarting)."""
        others = [f"tcp://{self.host}:{m.cluster_port}" for m in self.nodes.values()
                  if m.id != node_id]
        return others or self.seeds()

    def add_router(self, router_id=None, ws_port=0):
        """Starts a router; ws_port: its WebSocket listener (0: off)."""
        router_id = router_id or f"r{len(self.routers)}"
        r = Member("router", router_id, self.host, free_port(), free_port(), self.seeds(),
                   self.config_path, udp_port=free_port(socket.SOCK_DGRAM),
                   data_dir=os.path.join(self.tmp, router_id), ws_port=ws_port)
        os.makedirs(r.proc.data_dir, exist_ok=True)
        self.routers[router_id] = r
        r.start()
        return r

    def live(self):
        return [m for m in list(self.nodes.values()) + list(self.routers.values()) if m.alive()]

    def converged(self, expect_alive, observers=None, gone=()):
        """True when every observer (default: every live member) lists each id of
        expect_alive as alive and each id of `gone` as not alive (or not at all)."""
        for m in observers or self.live():
            view = m.members()
            for i in expect_alive:
                if i not in view or view[i]["state"] != "alive":
                    return False
            for i in gone:
                if i in view and view[i]["state"] == "alive":
                    return False
        return True

    def wait_converged(self, timeout=30, gone=()):
        ids = [m.id for m in self.live()]
        wait_for(lambda: self.converged(ids, gone=gone), timeout, what=f"all of {ids} alive everywhere")
        for r in self.routers.values():
            if r.alive():
                wait_for(r.ready, timeout, what=f"router {r.id} /readyz")


def start_cluster(nodes=3, routers=1, cluster=None, server=None, extra=None, timeout=40):
    c = Cluster(cluster, server, extra)
    try:
        for _ in range(nodes):
            c.add_node()
        for _ in range(routers):
            c.add_router()
        c.wait_converged(timeout)
    except BaseException:
        c.close()
        raise
    return c


# ---------------------------------------------------------------------------------------
# tracker operations through a member (raise AssertionError with the reply on failure)

def announce(member, ih, port, left=1, event="started", numwant=200, conn=None):
    """An HTTP announce of peer `port` (peer id from the port): the decoded reply."""
    path = announce_target(ih, b"-SYCL01-" + b"%012d" % port, port, uploaded=0,
                           downloaded=0, left=left, compact=1, numwant=numwant,
                           event=event or None)
    s, body = conn.request("GET", path) if conn else member.get(path)
    if s != 200:
        raise AssertionError(f"announce HTTP {s}: {body[:200]!r}")
    d = bdecode(body, strict=False)
    if b"failure reason" in d:
        raise AssertionError(f"announce failed: {d[b'failure reason']!r}")
    return d


def scrape(member, hashes):
    """An HTTP scrape: the decoded reply's files dictionary."""
    s, body = member.get(scrape_target(hashes))
    if s != 200:
        raise AssertionError(f"scrape HTTP {s}: {body[:200]!r}")
    d = bdecode(body, strict=False)
    if b"failure reason" in d:
        raise AssertionError(f"scrape failed: {d[b'failure reason']!r}")
    return d[b"files"]


def register(member, hexhash, vec, conn=None, **kw):
    body = shard_body(hexhash, vec, **kw)
    s, raw = conn.request("POST", "/api/register", body) if conn else member.post("/api/register", body)
    doc = json.loads(raw) if raw else {}
    if s != 200 or doc.get("status") != "success":
        raise AssertionError(f"register {hexhash[:8]}: HTTP {s} {raw[:200]!r}")
    return doc


def get_shard(member, hexhash, conn=None):
    path = "/api/shard/" + hexhash
    s, raw = conn.request("GET", path) if conn else member.get(path)
    return s, (json.loads(raw) if raw else None)


def delete_shard(member, hexhash):
    s, raw = http_request(member.host, member.http_port, "DELETE", "/api/shard/" + hexhash)
    doc = json.loads(raw) if raw else {}
    if s != 200 or doc.get("status") != "success":
        raise AssertionError(f"delete {hexhash[:8]}: HTTP {s} {raw[:200]!r}")
    return doc


def search(member, vec, limit=10, **extra):
    s, raw = member.post("/api/search/embedding", {"embedding": vec, "limit": limit, **extra})
    doc = json.loads(raw) if raw else None
    if s != 200 or not doc or doc.get("status") != "success":
        raise AssertionError(f"search: HTTP {s} {raw[:300]!r}")
    return doc


def hex_for_primary(member, want_primary, rng, count, tries=5000):
    """`count` random 40-hex hashes whose first replica (per member's /cluster/owner) is
    want_primary."""
    out = []
    for _ in range(tries):
        h = rand_hash(rng).hex()
        if member.owner(h)["replicas"][0] == want_primary:
            out.append(h)
            if len(out) == count:
                return out
    raise AssertionError(f"no hash with primary {want_primary} in {tries} tries")


def stable_hex(label, i):
    return hashlib.sha1(f"{label}-{i}".encode()).hexdigest()


def replica_states(member, hexhash):
    """{replica id: (state, version, display_name)} of a shard, from /cluster/shard: what
    each replica holds ("live", "deleted" or "absent"; version "hlc.node")."""
    s, doc = member.get_json("/cluster/shard/" + hexhash)
    if s != 200:
        raise AssertionError(f"/cluster/shard {s}: {doc}")
    out = {}
    for r in doc["replicas"]:
        if "error" in r:
            out[r["id"]] = ("error", r["error"], None)
        else:
            out[r["id"]] = (r["state"], r.get("version"), r.get("display_name"))
    return out


_SYNC_LINE = re.compile(r'^synapse_sync_(\w+)\{node="([^"]+)",kind="(\w+)"\} (\S+)$', re.M)


def sync_figures(member):
    """{(node, kind): {figure: value}} from /metrics: each node's catch-up passes and
    anti-entropy rounds (rounds_total, last_round_seconds, records_pulled_total, ...)."""
    s, body = member.get("/metrics")
    if s != 200:
        raise AssertionError(f"/metrics {s}")
    out = {}
    for name, node, kind, value in _SYNC_LINE.findall(body.decode()):
        out.setdefault((node, kind), {})[name] = float(value)
    return out


def await_anti_entropy_rounds(member, nodes, rounds=2, timeout=30):
    """Waits until each of `nodes` ran `rounds` more anti-entropy rounds than now."""
    def count():
        figs = sync_figures(member)
        return {n: figs.get((n, "anti_entropy"), {}).get("rounds_total", 0) for n in nodes}
    start = count()
    wait_for(lambda: all(c >= start[n] + rounds for n, c in count().items()), timeout,
             interval=0.1, what=f"{rounds} anti-entropy rounds on {sorted(nodes)}")
