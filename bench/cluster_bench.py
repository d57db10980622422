#!/usr/bin/env python3
"""Cluster benchmarks: failure detection, join convergence, fan-out search latency, and UDP
announce throughput through a router against standalone. Loopback only; every process it
starts is stopped on exit. Figures and the commands behind them go to bench/cluster_results.md.

    /usr/bin/python3 bench/cluster_bench.py                    # everything (~15-20 min)
    /usr/bin/python3 bench/cluster_bench.py --only detect,join
    /usr/bin/python3 bench/cluster_bench.py --only search --shards 100000
    /usr/bin/python3 bench/cluster_bench.py --only udp --udp-duration 10

Sections:
- detect: 3 nodes (--nodes) + 1 router with the default cluster timings (config.yaml's cluster
  section untouched: probe 400 ms, probe timeout 200 ms, suspicion_mult 3 and
  suspicion_max_mult 4, with Lifeguard's confirmations). A node gets
  kill -9; the time until every other member (the other nodes and the router) reports it dead
  in /cluster/status; then the node restarts with its id and data and the cluster
  converges before the next run. Median of --detect-runs.
  server.request_timeout_ms is set to 250 here, only so that a /cluster/status query does
  not wait 2 s for the silent node's figures (the status answer waits for every node
  still considered alive); it plays no part in failure detection.
- join: the same cluster; a new node is started; the time from its start until every
  member (including itself and the router) lists it alive; then it leaves (SIGTERM).
  Median of --join-runs.
- search: 3 nodes (R = --replication, default 3) + 1 router; --shards shards of 768
  dimensions (100 clusters, like facts.md's measurements) registered through the router;
  then --queries searches (limit 10) one at a time through the router: p50 / p99 client
  side, and the router's fan-out to the 3 nodes. Also a few exact recall@10 figures
  computed in Python (--recall-queries; slow in pure Python).
- udp: bench/udp_load.c (compiled to /tmp/udp_load) against a standalone process, then
  against a router in front of 3 nodes, same duration and window; the ratio of announce
  rates.
"""
import argparse
import http.client
import json
import math
import os
import random
import socket
import subprocess
import tempfile
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import cluster as cu  # noqa: E402
from net import free_port  # noqa: E402

DEFAULT_TIMINGS = {"probe_interval_ms": None, "probe_timeout_ms": None}  # None: not written


def say(*a):
    print(*a, flush=True)


def cpu_s(pid):
    """CPU seconds (user + system) a process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


def stats(xs):
    return {"n": len(xs), "median": median(xs), "min": min(xs), "max": max(xs)}


def fmt(xs):
    if not xs:
        return "not run"
    s = stats(xs)
    return (f"median {s['median']:.2f} s (min {s['min']:.2f}, max {s['max']:.2f}, "
            f"n={s['n']}): {[round(x, 2) for x in xs]}")


# ------------------------------------------------------------------------------------------
# detection and join

def poll_states(observers, target, until, timeout, interval=0.05):
    """Polls each observer in its own thread; returns {observer id: first time (monotonic)
    its /cluster/status shows `target` in a state for which until(state) is true}."""
    seen = {}
    deadline = time.monotonic() + timeout

    def watch(m):
        while time.monotonic() < deadline:
            try:
                v = m.members(timeout=5)
                st = v[target]["state"] if target in v else None
                if until(st):
                    seen[m.id] = time.monotonic()
                    return
            except (OSError, ValueError, KeyError, AssertionError, http.client.HTTPException):
                pass
            time.sleep(interval)
    ts = [threading.Thread(target=watch, args=(m,), daemon=True) for m in observers]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout + 5)
    return seen


def bench_detect_join(args, out):
    c = cu.start_cluster(nodes=args.nodes, routers=1, cluster=DEFAULT_TIMINGS,
                         server={"request_timeout_ms": 250}, timeout=60)
    try:
        detect, suspect = [], []
        victims = [f"n{i}" for i in range(1, args.nodes)]
        for run in range(args.detect_runs):
            victim = victims[run % len(victims)]
            observers = [m for m in c.live() if m.id != victim]
            c.nodes[victim].kill9()
            t0 = time.monotonic()
            sus = {}
            sthread = threading.Thread(target=lambda: sus.update(poll_states(
                observers, victim, lambda s: s in ("suspect", "dead"), 60)), daemon=True)
            sthread.start()
            dead = poll_states(observers, victim, lambda s: s == "dead", 60)
            sthread.join(65)
            if len(dead) != len(observers):
                raise RuntimeError(f"run {run}: {victim} not dead everywhere: {dead}")
            detect.append(max(dead.values()) - t0)
            suspect.append(min(sus.values()) - t0 if sus else float("nan"))
            say(f"detect run {run}: {victim} suspect after {suspect[-1]:.2f}s, dead everywhere "
                f"after {detect[-1]:.2f}s ({ {k: round(v - t0, 2) for k, v in dead.items()} })")
            c.restart_node(victim)
            c.wait_converged(60)
            time.sleep(2)
        out["detect"] = {"dead_everywhere_s": detect, "first_suspect_s": suspect}
        say("failure detection (kill -9 -> dead everywhere):", fmt(detect))
        say("first suspicion:", fmt(suspect))

        conv, ready = [], []
        for run in range(args.join_runs):
            nid = f"j{run}"
            t0 = time.monotonic()
            n = c.add_node(nid)          # returns once the process printed `ready`
            t_ready = time.monotonic()
            observers = c.live()
            seen = poll_states(observers, nid, lambda s: s == "alive", 60, interval=0.02)
            if len(seen) != len(observers):
                raise RuntimeError(f"join run {run}: {nid} not alive everywhere: {seen}")
            conv.append(max(seen.values()) - t0)
            ready.append(t_ready - t0)
            say(f"join run {run}: ready line after {ready[-1]:.2f}s, alive everywhere after "
                f"{conv[-1]:.2f}s")
            n.terminate()
            n.wait_exit(30)
            left = poll_states([m for m in c.live()], nid, lambda s: s in (None, "left"), 30)
            if len(left) != len(c.live()):
                raise RuntimeError(f"{nid} did not leave cleanly")
            time.sleep(1)
        out["join"] = {"alive_everywhere_s": conv, "ready_line_s": ready}
        say("join convergence (start -> alive everywhere):", fmt(conv))
    finally:
        c.close()


# ------------------------------------------------------------------------------------------
# search

def vec_for(i, centres, dim, rng_seed=0):
    rng = random.Random(i * 7919 + rng_seed)
    c = centres[i % len(centres)]
    r = rng.random
    return [round(x + (r() - 0.5) * 0.6, 4) for x in c]


def bench_search(args, out):
    dim = 768
    rng = random.Random(5)
    centres = [[rng.gauss(0, 1) for _ in range(dim)] for _ in range(100)]
    R = args.replication
    c = cu.start_cluster(nodes=3, routers=1, cluster=dict(DEFAULT_TIMINGS, replication=R,
                                                          write_quorum=min(2, R)),
                         server={"request_timeout_ms": 5000}, timeout=60)
    try:
        r = c.routers["r0"]
        n = args.shards
        counter = [0]
        lock = threading.Lock()
        errors = []

        batch = args.load_batch

        def worker():
            # batches of --load-batch shards (POST /api/register/batch); a batch whose
            # reply is not 200, or an item not registered, counts as failed
            conn = http.client.HTTPConnection(r.host, r.http_port, timeout=120)
            while True:
                with lock:
                    first = counter[0]
                    counter[0] += batch
                if first >= n:
                    break
                ids = range(first, min(first + batch, n))
                body = json.dumps({"shards": [cu.shard_body(cu.stable_hex("bench", i),
                                                            vec_for(i, centres, dim),
                                                            model="bench-768") for i in ids]})
                try:
                    conn.request("POST", "/api/register/batch", body=body,
                                 headers={"Content-Type": "application/json"})
                    resp = conn.getresponse()
                    data = resp.read()
                    if resp.status != 200:
                        errors.extend((i, resp.status) for i in ids)
                        continue
                    for i, item in zip(ids, json.loads(data).get("results", [])):
                        if item.get("status") != "success":
                            errors.append((i, item.get("error")))
                except (OSError, http.client.HTTPException) as e:
                    errors.extend((i, str(e)) for i in ids)
                    conn.close()
                    conn = http.client.HTTPConnection(r.host, r.http_port, timeout=120)
            conn.close()
        t0 = time.monotonic()
        ts = [threading.Thread(target=worker, daemon=True) for _ in range(args.load_threads)]
        for t in ts:
            t.start()
        last = 0
        while any(t.is_alive() for t in ts):
            time.sleep(5)
            done = min(counter[0], n)
            if done - last >= n // 20 or done == n:
                say(f"  registered {done}/{n} ({done / (time.monotonic() - t0):.0f}/s)")
                last = done
        load_s = time.monotonic() - t0
        say(f"loaded {n} shards of {dim} dims in {load_s:.0f}s ({n / load_s:.0f}/s), "
            f"{len(errors)} failed")
        figures = {k: (v["shards"], v["partitions_primary"]) for k, v in r.members().items()
                   if v["role"] == "node"}
        say("per node (shards held, partitions primary):", figures)
        # the indexes switch to IVF in the background: wait until the nodes are idle
        # (under 5% of a core each over 2 s), at least --settle seconds
        pids = [m.pid() for m in c.nodes.values()] + [r.pid()]
        time.sleep(args.settle)
        t_idle = time.monotonic()
        while time.monotonic() - t_idle < 300:
            a = [cpu_s(p) for p in pids[:-1]]
            time.sleep(2)
            if all(cpu_s(p) - x < 0.1 for p, x in zip(pids[:-1], a)):
                break
        say(f"nodes idle {time.monotonic() - t_idle + args.settle:.0f}s after loading")
        queries = [vec_for(10_000_000 + q, centres, dim, rng_seed=1) for q in range(args.queries)]
        conn = http.client.HTTPConnection(r.host, r.http_port, timeout=30)

        def one(qv):
            body = json.dumps({"embedding": qv, "limit": 10})
            t = time.perf_counter()
            conn.request("POST", "/api/search/embedding", body=body,
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            dt = time.perf_counter() - t
            doc = json.loads(data)
            if resp.status != 200 or doc.get("status") != "success":
                raise RuntimeError(f"search failed: {resp.status} {data[:200]!r}")
            return dt, doc
        for qv in queries[:50]:
            one(qv)
        lat, partial, docs = [], 0, []
        cpu_before = [cpu_s(p) for p in pids]
        for qv in queries:
            dt, doc = one(qv)
            lat.append(dt * 1000)
            partial += bool(doc.get("partial"))
            if len(docs) < args.recall_queries:
                docs.append(doc)
        cpu_used = [cpu_s(p) - x for p, x in zip(pids, cpu_before)]
        conn.close()
        with open("/proc/loadavg") as f:
            load = f.read().split()[:3]
        p50, p99 = percentile(lat, 50), percentile(lat, 99)
        per_search_ms = [x * 1000 / len(lat) for x in cpu_used]
        say(f"search through the router (limit 10, {len(lat)} queries, one at a time): "
            f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, mean {sum(lat) / len(lat):.2f} ms, "
            f"partial answers {partial}; load average after: {' '.join(load)}")
        say("CPU ms per search: nodes " + ", ".join(f"{x:.2f}" for x in per_search_ms[:-1]) +
            f"; router {per_search_ms[-1]:.2f}; all {sum(per_search_ms):.2f}")
        recalls = []
        if docs:
            # the exact answers, by a pure-Python scan of every vector (about a minute per
            # query at 100k x 768); the router's answers were kept from the timed loop
            say(f"exact recall@10 for {len(docs)} queries (pure Python scan)...")
            for q, doc in enumerate(docs):
                qv = queries[q]
                qn = math.sqrt(sum(x * x for x in qv))
                best = []
                for i in range(n):
                    v = vec_for(i, centres, dim)
                    s = sum(a * b for a, b in zip(qv, v)) / (qn * math.sqrt(sum(x * x for x in v)))
                    best.append((s, cu.stable_hex("bench", i)))
                best.sort(reverse=True)
                want = {h for _, h in best[:10]}
                got = {x["info_hash"] for x in doc["results"]}
                recalls.append(len(want & got) / 10)
                say(f"  query {q}: recall@10 {recalls[-1]:.2f}")
        out["search"] = {"shards": n, "dimension": dim, "replication": R, "load_s": load_s,
                         "load_rate": n / load_s, "load_errors": len(errors),
                         "p50_ms": p50, "p99_ms": p99, "queries": len(lat),
                         "partial": partial, "recall_at_10": recalls, "per_node": figures,
                         "cpu_ms_per_search": per_search_ms,
                         "loadavg_after": load}
    finally:
        c.close()


# ------------------------------------------------------------------------------------------
# UDP

def run_udp_load(port, duration, window):
    cmd = ["/tmp/udp_load", "--target", f"127.0.0.1:{port}", "--duration", str(duration),
           "--window", str(window)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    line = next((ln for ln in p.stdout.splitlines() if ln.startswith("RESULT")), None)
    if not line:
        raise RuntimeError(f"udp_load gave no RESULT: {p.stdout[-500:]} {p.stderr[-500:]}")
    fields = dict(kv.split("=", 1) for kv in line.split()[2:])
    return line, fields


def bench_udp(args, out):
    if not os.access("/tmp/udp_load", os.X_OK):
        subprocess.run(["gcc", "-O2", os.path.join(HERE, "udp_load.c"), "-o", "/tmp/udp_load",
                        "-lm", "-lpthread"], check=True)
    results = {}
    # The load comes from one address: per-client rate limits off, as in the cluster's
    # config (tests/lib/cluster.py TEST_LIMITS), so both sides carry the same load.
    limits = tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="synapse-bench-")
    limits.write("limits:\n  rate_limit: false\n")
    limits.flush()
    sa = cu.Standalone(udp_port=free_port(socket.SOCK_DGRAM), config_path=limits.name).start()
    try:
        run_udp_load(sa.udp_port, 2, args.udp_window)  # warm-up
        line, f = run_udp_load(sa.udp_port, args.udp_duration, args.udp_window)
        say("standalone:", line)
        results["standalone"] = f
    finally:
        sa.close()
        limits.close()
    c = cu.start_cluster(nodes=3, routers=1, cluster=DEFAULT_TIMINGS, timeout=60)
    try:
        r = c.routers["r0"]
        run_udp_load(r.udp_port, 2, args.udp_window)
        line, f = run_udp_load(r.udp_port, args.udp_duration, args.udp_window)
        say("router + 3 nodes:", line)
        results["cluster"] = f
        results["per_node_swarms"] = {k: v["swarms"] for k, v in r.members().items()
                                      if v["role"] == "node"}
    finally:
        c.close()
    ratio = float(results["cluster"]["rps"]) / float(results["standalone"]["rps"])
    results["ratio"] = ratio
    say(f"UDP announces/s: standalone {float(results['standalone']['rps']):.0f}, "
        f"router + 3 nodes {float(results['cluster']['rps']):.0f}, ratio {ratio:.2f}")
    out["udp"] = results


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="detect,join,search,udp")
    ap.add_argument("--detect-runs", type=int, default=5)
    ap.add_argument("--nodes", type=int, default=3, help="nodes in the detect/join cluster (2-10)")
    ap.add_argument("--join-runs", type=int, default=5)
    ap.add_argument("--shards", type=int, default=100_000)
    ap.add_argument("--replication", type=int, default=3)
    ap.add_argument("--load-threads", type=int, default=4)
    ap.add_argument("--load-batch", type=int, default=500, help="shards per register batch")
    ap.add_argument("--settle", type=float, default=15.0)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--recall-queries", type=int, default=3)
    ap.add_argument("--udp-duration", type=int, default=10)
    ap.add_argument("--udp-window", type=int, default=64)
    ap.add_argument("--json", help="write the figures here as JSON")
    args = ap.parse_args()
    only = set(args.only.split(","))
    with open("/proc/loadavg") as f:
        say("load average before start:", f.read().strip(), f"({os.cpu_count()} cpus)")
    out = {}
    if only & {"detect", "join"}:
        if "detect" not in only:
            args.detect_runs = 0
        if "join" not in only:
            args.join_runs = 0
        bench_detect_join(args, out)
    if "search" in only:
        bench_search(args, out)
    if "udp" in only:
        bench_udp(args, out)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    say("RESULT cluster_bench " + json.dumps(out, separators=(",", ":")))


if __name__ == "__main__":
    main()
