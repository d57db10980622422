"""Helpers for the cluster integration tests (test_cluster_*.py) and bench/cluster_bench.py.

Real processes on loopback (or inside network namespaces the partition test creates): nodes
and routers started through tests/lib/synapse_proc.py's TrackerProcess, which waits for the
`ready ` line. Standard library only (no requests), so every file runs with /usr/bin/python3;
it shares no code with the tracker under test and nothing with the other integration
helpers, which other suites own.

Conventions:
- A node listens for routers on its DATA port and for gossip/replication on DATA+1, so a
  node's data port is picked with both free (free_port_pair).
- Waits are bounded polls of /cluster/status (every 50 ms) with a deadline, never fixed
  sleeps; wait_for() raises with the last value seen, so a failure says what was there.
"""
import hashlib
import http.client
import json
import math
import os
import random
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))

from synapse_proc import TrackerProcess, binary_path, free_port  # noqa: E402,F401

# Fast failure detection for tests (the brief's numbers); the router gives up on a node
# after REQUEST_TIMEOUT_MS and tries the next replica.
FAST_CLUSTER = {"probe_interval_ms": 200, "probe_timeout_ms": 100}
REQUEST_TIMEOUT_MS = 1000  # generous: CI runs two suites at once on two cores
HTTP_TIMEOUT = 10.0
MODEL = "cluster-test-model"


# ---------------------------------------------------------------------------------------
# small utilities

def log(*args):
    print(f"[{time.strftime('%H:%M:%S')}]", *args, file=sys.stderr, flush=True)


def free_port_pair():
    """A TCP port p with p+1 also free (a node's data port; gossip is on p+1)."""
    for _ in range(200):
        p = free_port()
        if p >= 65535:
            continue
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", p))
                b.bind(("127.0.0.1", p + 1))
            return p
        except OSError:
            continue
    raise RuntimeError("no free port pair")


def wait_for(fn, timeout, interval=0.05, what="condition"):
    """Calls fn until it returns something truthy; returns that value. Raises
    AssertionError after `timeout` seconds with the last value or error seen."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            v = fn()
            if v:
                return v
            last = v
        except (OSError, ValueError, http.client.HTTPException, KeyError) as e:
            last = e
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not reached within {timeout}s (last: {last!r})")
        time.sleep(interval)


def config_text(cluster=None, server=None, extra=None):
    """YAML for --config: a server section (request_timeout_ms by default) and a cluster
    section (fast failure detection by default)."""
    srv = {"request_timeout_ms": REQUEST_TIMEOUT_MS}
    srv.update(server or {})
    cl = dict(FAST_CLUSTER)
    cl.update(cluster or {})
    lines = ["server:"] + [f"  {k}: {json.dumps(v)}" for k, v in srv.items()]
    keys = [f"  {k}: {json.dumps(v)}" for k, v in cl.items() if v is not None]
    if keys:  # None drops a key (the built-in default applies)
        lines += ["cluster:"] + keys
    for section, keys in (extra or {}).items():
        lines.append(f"{section}:")
        lines += [f"  {k}: {json.dumps(v)}" for k, v in keys.items()]
    return "\n".join(lines) + "\n"


def median(xs):
    s = sorted(xs)
    n = len(s)
    return (s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2) if n else float("nan")


def percentile(xs, p):
    s = sorted(xs)
    if not s:
        return float("nan")
    k = min(len(s) - 1, max(0, int(math.ceil(p / 100.0 * len(s))) - 1))
    return s[k]


# ---------------------------------------------------------------------------------------
# bencode (decode only; the tracker's replies)

def bdecode(data, strict=False):
    """Decodes one bencoded value. strict: dictionary keys must be sorted and unique
    (canonical BEP 3), which a merged reply must still be."""
    def dec(i):
        c = data[i:i + 1]
        if c == b"i":
            j = data.index(b"e", i)
            return int(data[i + 1:j]), j + 1
        if c == b"l":
            out, i = [], i + 1
            while data[i:i + 1] != b"e":
                v, i = dec(i)
                out.append(v)
            return out, i + 1
        if c == b"d":
            out, i, prev = {}, i + 1, None
            while data[i:i + 1] != b"e":
                k, i = dec(i)
                if strict and prev is not None and k <= prev:
                    raise ValueError(f"dictionary key {k!r} after {prev!r}: unsorted or repeated")
                prev = k
                v, i = dec(i)
                out[k] = v
            return out, i + 1
        if c.isdigit():
            j = data.index(b":", i)
            n = int(data[i:j])
            return data[j + 1:j + 1 + n], j + 1 + n
        raise ValueError(f"bad bencode at {i}: {data[i:i + 20]!r}")
    v, end = dec(0)
    if end != len(data):
        raise ValueError("trailing bytes after bencoded value")
    return v


def compact_ports(blob):
    """Ports of a compact IPv4 peer list."""
    if len(blob) % 6:
        raise ValueError(f"compact peers of {len(blob)} bytes")
    return sorted(struct.unpack(">H", blob[i + 4:i + 6])[0] for i in range(0, len(blob), 6))


# ---------------------------------------------------------------------------------------
# HTTP

def http_request(host, port, method, path, body=None, timeout=HTTP_TIMEOUT, headers=None):
    """One request on a fresh connection: (status, body bytes)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        hdrs = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=hdrs)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def get_json(host, port, path, timeout=HTTP_TIMEOUT):
    status, body = http_request(host, port, "GET", path, timeout=timeout)
    return status, json.loads(body) if body else None


class KeepAlive:
    """A keep-alive HTTP connection that reconnects after any error (for load loops)."""

    def __init__(self, host, port, timeout=HTTP_TIMEOUT):
        self.host, self.port, self.timeout = host, port, timeout
        self.conn = None

    def request(self, method, path, body=None):
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            hdrs = {}
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                hdrs["Content-Type"] = "application/json"
            self.conn.request(method, path, body=data, headers=hdrs)
            r = self.conn.getresponse()
            out = r.status, r.read()
            if r.will_close:
                self.close()
            return out
        except Exception:
            self.close()
            raise

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def q(b):
    return urllib.parse.quote_from_bytes(b, safe="")


def announce_path(ih, port, left=1, event="started", numwant=200, peer_id=None):
    peer_id = peer_id or b"-SYCL01-" + b"%012d" % port
    return ("/announce?info_hash=" + q(ih) + "&peer_id=" + q(peer_id) + f"&port={port}"
            f"&uploaded=0&downloaded=0&left={left}&compact=1&numwant={numwant}"
            + (f"&event={event}" if event else ""))


def scrape_path(hashes):
    return "/scrape?" + "&".join("info_hash=" + q(h) for h in hashes)


def rand_ih(rng=random):
    return bytes(rng.getrandbits(8) for _ in range(20))


# ---------------------------------------------------------------------------------------
# UDP (BEP 15)

UDP_MAGIC = 0x41727101980


class UdpClient:
    def __init__(self, host, port, timeout=3.0):
        self.addr = (host, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(timeout)
        self.tid = random.getrandbits(31)

    def close(self):
        self.sock.close()

    def _rt(self, pkt, tid):
        self.sock.sendto(pkt, self.addr)
        while True:
            data, _ = self.sock.recvfrom(65536)
            if len(data) >= 8 and struct.unpack(">I", data[4:8])[0] == tid:
                return data

    def _next(self):
        self.tid = (self.tid + 1) & 0x7FFFFFFF
        return self.tid

    def connect(self):
        tid = self._next()
        d = self._rt(struct.pack(">QII", UDP_MAGIC, 0, tid), tid)
        action, _, cid = struct.unpack(">IIQ", d[:16])
        if action != 0:
            raise AssertionError(f"UDP connect answered action {action}: {d[8:]!r}")
        return cid

    def announce(self, cid, ih, port, left=1, event=2, numwant=200):
        tid = self._next()
        pkt = struct.pack(">QII20s20sQQQIIIiH", cid, 1, tid, ih, b"-SYCLU1-" + b"%012d" % port,
                          0, left, 0, event, 0, 0, numwant, port)
        d = self._rt(pkt, tid)
        action = struct.unpack(">I", d[:4])[0]
        if action != 1:
            raise AssertionError(f"UDP announce answered action {action}: {d[8:]!r}")
        interval, leechers, seeders = struct.unpack(">III", d[8:20])
        return leechers, seeders, compact_ports(d[20:])

    def scrape(self, cid, hashes):
        tid = self._next()
        d = self._rt(struct.pack(">QII", cid, 2, tid) + b"".join(hashes), tid)
        action = struct.unpack(">I", d[:4])[0]
        if action != 2:
            raise AssertionError(f"UDP scrape answered action {action}: {d[8:]!r}")
        body = d[8:]
        if len(body) != 12 * len(hashes):
            raise AssertionError(f"UDP scrape: {len(body)} bytes for {len(hashes)} hashes")
        return [struct.unpack(">III", body[i:i + 12]) for i in range(0, len(body), 12)]


# ---------------------------------------------------------------------------------------
# vectors

def unit(v):
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


def cosine(a, b):
    return sum(x * y for x, y in zip(unit(a), unit(b)))


def similarity(a, b):
    return min(1.0, max(0.0, cosine(a, b)))


def make_vectors(rng, n, dim, clusters=6, spread=0.5):
    centres = [[rng.gauss(0, 1) for _ in range(dim)] for _ in range(clusters)]
    out = []
    for i in range(n):
        c = centres[i % clusters]
        scale = rng.uniform(0.5, 3.0)
        out.append([round((x + rng.gauss(0, spread)) * scale, 5) for x in c])
    return out


def exact_topk(query, items, k):
    """items {hex: vector} -> [(hex, similarity)] best first."""
    scored = sorted(((h, similarity(query, v)) for h, v in items.items()),
                    key=lambda s: (-s[1], s[0]))
    return scored[:k]


def topk_mismatch(results, query, items, k, tol=1e-4):
    """None when `results` (a search reply's list) is the exact cosine top-k of items
    (hashes may swap only between near-equal similarities); else a description."""
    want = exact_topk(query, items, k)
    got = [(r["info_hash"], r["similarity"]) for r in results]
    if len(got) != len(want):
        return f"{len(got)} results, expected {len(want)}"
    if len({h for h, _ in got}) != len(got):
        return "duplicate hits"
    for i, ((gh, gs), (wh, ws)) in enumerate(zip(got, want)):
        if gh not in items:
            return f"rank {i}: {gh} is not a registered shard"
        if abs(gs - ws) > tol:
            return f"rank {i}: similarity {gs} expected {ws} ({gh} vs {wh})"
        if abs(similarity(query, items[gh]) - gs) > tol:
            return f"rank {i}: {gh} reported {gs}, true {similarity(query, items[gh])}"
    return None


def shard_body(hexhash, vec, name=None, tags=("cluster",), model=MODEL):
    return {"info_hash": hexhash, "display_name": name or f"shard {hexhash[:8]}",
            "embedding_model": model, "dimension_size": len(vec), "tags": list(tags),
            "description": "cluster test shard", "embedding": vec}


# ---------------------------------------------------------------------------------------
# processes

class Member:
    """A node or router process. `netns` runs it inside that network namespace."""

    def __init__(self, role, member_id, host, http_port, cluster_port, seeds, config_path,
                 udp_port=0, netns=None, data_dir=None):
        self.role, self.id, self.host = role, member_id, host
        self.cluster_port = cluster_port
        self.netns = netns
        self.cluster_addr = f"tcp://{host}:{cluster_port}"
        args = ["--node-id", member_id, "--cluster-addr", self.cluster_addr,
                "--seeds", ",".join(seeds), "--config", config_path]
        self.proc = TrackerProcess(args=args, role=role, http_port=http_port,
                                   udp_port=udp_port, data_dir=data_dir, host=host,
                                   ready_timeout=40.0)
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

    def wait_exit(self, timeout):
        try:
            return self.proc.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def close(self):
        try:
            if self.alive():
                self.proc.proc.kill()
                self.proc.proc.wait()
        finally:
            if self.proc.proc and self.proc.proc.stdout:
                self.proc.proc.stdout.close()
            if self.proc._tmp:
                self.proc._tmp.cleanup()

    # -- HTTP --
    @property
    def http_port(self):
        return self.proc.http_port

    @property
    def udp_port(self):
        return self.proc.udp_port

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

    def add_router(self, router_id=None):
        router_id = router_id or f"r{len(self.routers)}"
        r = Member("router", router_id, self.host, free_port(), free_port(), self.seeds(),
                   self.config_path, udp_port=free_port(socket.SOCK_DGRAM),
                   data_dir=os.path.join(self.tmp, router_id))
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
# tracker operations through a router (raise AssertionError with the reply on failure)

def announce(member, ih, port, left=1, event="started", numwant=200, conn=None):
    path = announce_path(ih, port, left, event, numwant)
    s, body = conn.request("GET", path) if conn else member.get(path)
    if s != 200:
        raise AssertionError(f"announce HTTP {s}: {body[:200]!r}")
    d = bdecode(body)
    if b"failure reason" in d:
        raise AssertionError(f"announce failed: {d[b'failure reason']!r}")
    return d


def scrape(member, hashes):
    s, body = member.get(scrape_path(hashes))
    if s != 200:
        raise AssertionError(f"scrape HTTP {s}: {body[:200]!r}")
    d = bdecode(body)
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
        h = rand_ih(rng).hex()
        if member.owner(h)["replicas"][0] == want_primary:
            out.append(h)
            if len(out) == count:
                return out
    raise AssertionError(f"no hash with primary {want_primary} in {tries} tries")


def stable_hex(label, i):
    return hashlib.sha1(f"{label}-{i}".encode()).hexdigest()
