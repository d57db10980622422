#!/usr/bin/env python3
"""Cluster benchmarks at scale: what anti-entropy costs, and joins into a loaded cluster.
Loopback only; every process it starts is stopped on exit.

    /usr/bin/python3 bench/cluster_scale.py                       # 100k shards, 1M peers, 20 joins
    /usr/bin/python3 bench/cluster_scale.py --shards 20000 --peers 200000 --joins 3   # quick look

A router in front of three nodes (R = 3, W = 2: every node holds every partition), at the
default cluster settings except anti-entropy every 2 s (the cost of a round is what is
measured, not the schedule). --shards shards of --dim dimensions are registered through
the router's HTTP API, then --peers peers announced through its UDP port (bench/udp_load.c
in --cover mode: every (swarm, peer) pair once, 100 peers a swarm). The figures come
from the nodes' own /metrics (synapse_sync_*: each round's duration and what it compared
and pulled).

- entropy: the periodic anti-entropy round with nothing different (median over every
  node's rounds). Then 1% different: one node is killed, 1% of the shards are updated
  through the router (acknowledged by the two others), the node restarts with its data:
  its catch-up pass compares every partition it holds with a replica (partition digests,
  then the 64 bucket digests of each, then the keys of differing buckets) and pulls what
  differs. The reference, measured in the same run, is the first join below: a node with
  no data pulling every partition it gains.
- joins: --joins times in a row, a new node with an empty data directory joins; the time
  from its start until its /readyz answers 200 (joined and every gained partition's
  shards and swarms pulled); then it leaves gracefully (SIGTERM) and the cluster settles
  before the next join. Each join must be ready within --join-bound seconds.
"""
import argparse
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import cluster as cu  # noqa: E402
from wait import wait_for  # noqa: E402

UDP_LOAD = "/tmp/synapse_udp_load"
PEERS_PER_SWARM = 100


def say(*a):
    print(*a, flush=True)


def load_shards(router, n, dim, threads, tag="bench", name="v1", indices=None):
    """Registers shards `indices` (default 0..n-1) through the router; returns seconds."""
    todo = list(indices if indices is not None else range(n))
    lock = threading.Lock()
    errors = []

    def worker():
        conn = http.client.HTTPConnection(router.host, router.http_port, timeout=60)
        while True:
            with lock:
                if not todo:
                    break
                i = todo.pop()
            rng = random.Random(i)
            vec = [round(rng.uniform(-1, 1), 4) for _ in range(dim)]
            body = json.dumps(cu.shard_body(cu.stable_hex(tag, i), vec, name=f"{name} {i}",
                                            model="bench-small"))
            try:
                conn.request("POST", "/api/register", body=body,
                             headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                if resp.status != 200:
                    errors.append((i, resp.status))
            except (OSError, http.client.HTTPException) as e:
                errors.append((i, repr(e)))
                conn.close()
                conn = http.client.HTTPConnection(router.host, router.http_port, timeout=60)
        conn.close()

    t0 = time.monotonic()
    ts = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise RuntimeError(f"{len(errors)} registrations failed, first {errors[:3]}")
    return time.monotonic() - t0


def load_peers(router, peers):
    if not os.access(UDP_LOAD, os.X_OK):
        subprocess.run(["gcc", "-std=gnu11", "-O2", os.path.join(HERE, "udp_load.c"), "-o",
                        UDP_LOAD, "-lm", "-lpthread"], check=True)
    swarms = max(1, peers // PEERS_PER_SWARM)
    cmd = [UDP_LOAD, "--target", f"127.0.0.1:{router.udp_port}", "--cover", "--hashes",
           str(swarms), "--peers", str(PEERS_PER_SWARM), "--max-requests", str(peers),
           "--scrape-every", "0", "--numwant", "0", "--duration", "900", "--window", "64",
           "--timeout", "5"]
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=1000)
    line = next((ln for ln in p.stdout.splitlines() if ln.startswith("RESULT")), "")
    return time.monotonic() - t0, line


def node_peers(router):
    """{node id: peers it holds}, from /cluster/status."""
    s, doc = router.get_json("/cluster/status")
    return {m["id"]: m.get("peers") for m in doc.get("members", []) if m.get("role") == "node"}


def round_samples(router, nodes, kind, rounds, timeout):
    """The duration and figures of each of the next `rounds` rounds of `kind` on each node."""
    samples = []
    last = {n: cu.sync_figures(router).get((n, kind), {}).get("rounds_total", 0) for n in nodes}
    deadline = time.monotonic() + timeout
    while len(samples) < rounds * len(nodes) and time.monotonic() < deadline:
        figs = cu.sync_figures(router)
        for n in nodes:
            f = figs.get((n, kind), {})
            if f.get("rounds_total", 0) > last[n]:
                last[n] = f["rounds_total"]
                samples.append(dict(f, node=n))
        time.sleep(0.05)
    return samples


def catch_up_figures(router, node):
    return cu.sync_figures(router).get((node, "catch_up"), {})


def bench_entropy(c, args, out):
    router = c.routers["r0"]
    nodes = ["n0", "n1", "n2"]
    same = round_samples(router, nodes, "anti_entropy", 5, 120)
    secs = [s["last_round_seconds"] for s in same]
    out["entropy_same"] = {"rounds": len(same), "median_s": statistics.median(secs),
                           "max_s": max(secs),
                           "keys_compared": max(s["last_round_keys_compared"] for s in same)}
    say(f"anti-entropy, nothing different: {len(same)} rounds, median "
        f"{statistics.median(secs) * 1000:.1f} ms, max {max(secs) * 1000:.1f} ms, keys "
        f"compared {out['entropy_same']['keys_compared']:.0f}")

    changed = max(1, args.shards // 100)
    c.nodes["n2"].kill9()
    wait_for(lambda: router.members()["n2"]["state"] != "alive", 30, what="n2 seen down")
    load_shards(router, args.shards, args.dim, args.threads, name="v2",
                indices=random.Random(3).sample(range(args.shards), changed))
    before = catch_up_figures(router, "n0")  # n2's own figures restart with it
    t0 = time.monotonic()
    c.restart_node("n2")
    wait_for(c.nodes["n2"].ready, 120, interval=0.05, what="n2 ready after restart")
    ready_s = time.monotonic() - t0
    f = catch_up_figures(router, "n2")
    out["entropy_1pct"] = {"changed": changed, "ready_s": ready_s,
                           "round_s": f.get("last_round_seconds"),
                           "partitions_differing": f.get("last_round_partitions_differing"),
                           "buckets_differing": f.get("last_round_buckets_differing"),
                           "keys_compared": f.get("last_round_keys_compared"),
                           "records_pulled": f.get("last_round_records_pulled")}
    say(f"1% different ({changed} shards updated while n2 was down): n2 ready "
        f"{ready_s:.2f} s after its start; its catch-up: {out['entropy_1pct']}")
    del before
    c.wait_converged(60)


def bench_joins(c, args, out):
    router = c.routers["r0"]
    results = []
    for k in range(args.joins):
        nid = f"j{k}"
        t0 = time.monotonic()
        n = c.add_node(nid)
        wait_for(n.ready, args.join_bound * 4, interval=0.05, what=f"{nid} ready")
        ready = time.monotonic() - t0
        f = catch_up_figures(router, nid)
        results.append({"node": nid, "ready_s": ready,
                        "pull_s": f.get("last_round_seconds"),
                        "records_pulled": f.get("records_pulled_total")})
        say(f"join {k + 1}/{args.joins}: {nid} ready after {ready:.2f} s "
            f"(catch-up {f.get('last_round_seconds', 0):.2f} s, "
            f"{f.get('records_pulled_total', 0):.0f} records pulled)")
        n.terminate()
        n.wait_exit(60)
        del c.nodes[nid]
        wait_for(lambda: router.members().get(nid, {"state": "left"})["state"] in ("left", "dead"),
                 60, what=f"{nid} gone")
        wait_for(lambda: all(m.ready() for m in c.nodes.values()), 120, interval=0.1,
                 what="every node ready again")
    readies = [r["ready_s"] for r in results]
    out["joins"] = {"runs": results, "median_s": statistics.median(readies),
                    "max_s": max(readies), "bound_s": args.join_bound,
                    "within_bound": sum(r <= args.join_bound for r in readies)}
    say(f"joins: {len(readies)} in a row, ready median {statistics.median(readies):.2f} s, "
        f"max {max(readies):.2f} s; {out['joins']['within_bound']}/{len(readies)} within "
        f"{args.join_bound:.0f} s")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="entropy,joins")
    ap.add_argument("--shards", type=int, default=100_000)
    ap.add_argument("--peers", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=8)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--joins", type=int, default=20)
    ap.add_argument("--join-bound", type=float, default=30.0)
    ap.add_argument("--json", help="write the figures here as JSON")
    args = ap.parse_args()
    only = set(args.only.split(","))
    out = {"shards": args.shards, "peers": args.peers, "dim": args.dim}
    c = cu.start_cluster(nodes=3, routers=1, cluster={"anti_entropy_interval_ms": 2000},
                         server={"request_timeout_ms": 5000}, timeout=60)
    try:
        router = c.routers["r0"]
        secs = load_shards(router, args.shards, args.dim, args.threads)
        say(f"registered {args.shards} shards in {secs:.0f} s ({args.shards / secs:.0f}/s)")
        secs, line = load_peers(router, args.peers)
        held = node_peers(router)
        out["load"] = {"peers_per_node": held}
        say(f"announced {args.peers} peers in {secs:.0f} s; peers per node {held}; {line}")
        if "entropy" in only:
            bench_entropy(c, args, out)
        if "joins" in only:
            bench_joins(c, args, out)
    finally:
        c.close()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    bad = "joins" in out and out["joins"]["within_bound"] < len(out["joins"]["runs"])
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
