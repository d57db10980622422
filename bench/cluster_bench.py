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
  dimensions registered through the router by bench/search_bench.c (the data and exact
  top-10 of run_search_bench.sh), then, once the nodes are idle (background IVF training
  done), --queries searches (limit 10) one at a time through the router: p50 / p99 client
  side, recall@10 against the exact top-10, and the CPU of each process per search.
- udp: bench/udp_load.c (compiled to /tmp/udp_load) against a standalone process, then
  against a router in front of 3 nodes, same duration and window; the ratio of announce
  rates.
"""
import argparse
import http.client
import json
import math
import os
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
from synapse_proc import binary_path  # noqa: E402

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

def search_bench_cmd():
    """bench/search_bench.c compiled to /tmp/search_bench (the C client: deterministic
    vectors, the exact top-10 of every query, registration over keep-alive connections)."""
    exe = "/tmp/search_bench"
    src = os.path.join(HERE, "search_bench.c")
    if not os.access(exe, os.X_OK) or os.path.getmtime(exe) < os.path.getmtime(src):
        subprocess.run(["gcc", "-std=gnu11", "-O3", "-march=native", src, "-o", exe, "-lm",
                        "-lpthread"], check=True)
    return exe


def run_search_bench(port, extra, timeout=3600, gt_only=False):
    """One search_bench run against a router; its RESULT fields, its stderr echoed."""
    cmd = [search_bench_cmd(), "--port", str(port), "--timeout", "60"] + [str(x) for x in extra]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    for line in p.stderr.splitlines():
        say("  " + line)
    tag = "RESULT search_bench_gt " if gt_only else "RESULT search_bench "
    line = next((x for x in p.stdout.splitlines() if x.startswith(tag)), None)
    if not line:
        raise RuntimeError(f"search_bench gave no RESULT (exit {p.returncode})")
    return dict(kv.split("=", 1) for kv in line.split()[2:])


def wait_nodes_idle(c, settle):
    """Waits until every node uses under 15% of a core over 2 s (gossip, polls and
    anti-entropy stay; a background IVF build keeps a core busy), after at least `settle`
    seconds and at most 600."""
    pids = [m.pid for m in c.nodes.values()]
    time.sleep(settle)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 600:
        a = [cpu_s(p) for p in pids]
        time.sleep(2)
        if all(cpu_s(p) - x < 0.3 for p, x in zip(pids, a)):
            break
    return time.monotonic() - t0 + settle


def measure_search(c, r, common, args, label):
    """--queries searches through router r, once the nodes are idle: latency, recall and
    the CPU of every process per search."""
    idle = wait_nodes_idle(c, args.settle)
    pids = [m.pid for m in c.nodes.values()] + [r.pid]
    cpu_before = [cpu_s(p) for p in pids]
    t0 = time.monotonic()
    res = run_search_bench(r.http_port, common + ["--no-register", "--warmup", 0])
    span = time.monotonic() - t0
    cpu_used = [cpu_s(p) - x for p, x in zip(pids, cpu_before)]
    queries = int(res["queries"])
    per_search_ms = [x * 1000 / queries for x in cpu_used]
    p50, p99 = float(res["p50_us"]) / 1000, float(res["p99_us"]) / 1000
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    say(f"[{label}] nodes idle after {idle:.0f}s; {queries} searches through the router "
        f"(limit 10, one at a time, {span:.0f}s): p50 {p50:.2f} ms, p99 {p99:.2f} ms, "
        f"recall@10 {res['recall10']}; load average after {' '.join(load)}")
    say(f"[{label}] CPU ms per search: nodes " + ", ".join(f"{x:.2f}" for x in per_search_ms[:-1])
        + f"; router {per_search_ms[-1]:.2f}; all {sum(per_search_ms):.2f}")
    return {"p50_ms": p50, "p99_ms": p99, "queries": queries,
            "recall_at_10": float(res["recall10"]), "cpu_ms_per_search": per_search_ms,
            "loadavg_after": load}


def restart_all(c, binary):
    """Every node and the router again with another binary, on the same data: nodes
    kill -9 (a graceful leave would hand their partitions off) and restarted one by one;
    a new router. Returns the router."""
    os.environ["SYNAPSE_BIN"] = binary
    for nid in list(c.nodes):
        c.nodes[nid].kill9()
        c.nodes[nid].wait_exit(10)
    for nid in list(c.nodes):
        c.restart_node(nid)
    for rid in list(c.routers):
        c.routers[rid].kill9()
        c.routers[rid].wait_exit(10)
        del c.routers[rid]
    restart_all.routers = getattr(restart_all, "routers", 0) + 1
    r = c.add_router(f"rb{restart_all.routers}")  # a new id: the old one is still known dead
    c.wait_converged(120, gone=())
    wait_for_ready = time.monotonic()
    while time.monotonic() - wait_for_ready < 300:
        view = r.members()
        if all(view.get(n, {}).get("caught_up") for n in c.nodes):
            break
        time.sleep(1)
    say(f"restarted every process with {binary}")
    return r


def bench_search(args, out):
    R = args.replication
    c = cu.start_cluster(nodes=3, routers=1, cluster=dict(DEFAULT_TIMINGS, replication=R,
                                                          write_quorum=min(2, R)),
                         server={"request_timeout_ms": 5000}, timeout=60)
    try:
        r = c.routers["r0"]
        n = args.shards
        gt = f"/tmp/synapse-cluster-search-gt-{n}-{args.queries}.bin"
        common = ["--n", n, "--queries", args.queries, "--gt-cache", gt]
        t0 = time.monotonic()
        # The router's /metrics counts every replica: the index-size check does not apply,
        # so registration and search are two runs and only their own figures are used.
        reg = run_search_bench(r.http_port, common + ["--no-search", "--conns", args.load_conns])
        load_s = time.monotonic() - t0
        say(f"loaded {n} shards of 768 dims through the router in {load_s:.0f}s "
            f"({float(reg['reg_rate']):.0f}/s), {reg['reg_errors']} failed")
        figures = {k: (v["shards"], v["partitions_primary"]) for k, v in r.members().items()
                   if v["role"] == "node"}
        say("per node (shards held, partitions primary):", figures)
        # the exact top-10, computed before any CPU is counted
        run_search_bench(r.http_port, common + ["--gt-only"], gt_only=True)
        runs = [("this build", binary_path())]
        if args.compare_binary:
            runs += [("compared", args.compare_binary), ("this build again", runs[0][1])]
        results = []
        for i, (label, binary) in enumerate(runs):
            if i > 0:
                r = restart_all(c, binary)
            res = measure_search(c, r, common, args, label)
            res.update({"binary": binary, "label": label})
            results.append(res)
        out["search"] = {"shards": n, "dimension": 768, "replication": R, "load_s": load_s,
                         "load_rate": float(reg["reg_rate"]), "load_errors": int(reg["reg_errors"]),
                         "per_node": figures, "runs": results}
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
    ap.add_argument("--load-conns", type=int, default=16, help="registration connections")
    ap.add_argument("--compare-binary", help="search: after this build, the same data served by "
                    "this binary, then by this build again (A/B/A)")
    ap.add_argument("--settle", type=float, default=15.0)
    ap.add_argument("--queries", type=int, default=1000)
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
