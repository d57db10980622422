#!/usr/bin/env python3
"""WebTorrent (WebSocket) announces with offers: a router in front of 3 nodes against a
standalone process, the same load on each, side by side in one run. Loopback only; every
process it starts is stopped on exit; builds nothing (uses build/app/synapse-tracker, or
$SYNAPSE_BIN).

    /usr/bin/python3 bench/ws_bench.py                      # 2 rounds, ~1.5 min
    /usr/bin/python3 bench/ws_bench.py --rounds 3 --generators 2 --perf 4

Both set-ups run at once for the whole benchmark: a standalone process (its WebSocket
listener on) and a cluster of 3 nodes + 1 router (the router's listener on), each with
`limits: rate_limit: false` (the load comes from one address) and
`websocket: max_connections_per_ip` raised to fit the sockets. Each round runs the load
against the standalone process, then against the router (the one not under load idles),
so slow drifts of the shared machine fall on both alike.

The load: --generators processes of bench/ws_load.mjs (Node.js, one thread each) sharing
--sockets WebSockets between them, all announcing into the same --swarms swarms (same
--seed) with --offers offers each and --window announces in flight per socket. Every
generator measures the same wall-clock window (--start-at), and this script reads
/proc/<pid>/stat (utime + stime, all threads) of every tracker process, of every
generator and /proc/stat (the whole machine) at that window's start and end.

Figures per run: announce replies/s and offers delivered/s (as the generators counted
them), CPU microseconds per announce summed over the tracker's processes (standalone: one;
cluster: router + 3 nodes), each process's share, the busiest tracker thread (% of one
core, and how long it was runnable but waiting for a CPU, from /proc/.../schedstat: run
plus wait near 100% is a saturated thread), the generators' CPU (% of one core each: a
generator near 100% is the bottleneck) and the machine's busy share of all its cores. Then cluster / standalone ratios per round
and their median.

--perf S: after the rounds, one more run against each set-up with
`perf record --call-graph dwarf -F 499` on the standalone process and then on the router
for S seconds of it (not counted in the figures); prints self time by library and the
heaviest user-space functions with their callees.

A failure reason in an announce reply, a message the generator could not classify or
check, a socket closed by the tracker, or a tracker process that exits stops the
benchmark with what was seen (a tracker bug to report, not to work around). Fewer offers
delivered per announce than were sent (every swarm holds all the sockets' peers, so each
offer has a receiver) is reported as a warning with the run's figures: offers handed to
peers that are no longer connected are lost.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import cluster as cu  # noqa: E402
from net import free_port  # noqa: E402
from synapse_proc import TrackerProcess  # noqa: E402
from tracker_config import config_yaml  # noqa: E402

LOAD = os.path.join(HERE, "ws_load.mjs")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def say(*a):
    print(*a, flush=True)


def median(xs):
    s = sorted(xs)
    n = len(s)
    return (s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2) if n else float("nan")


# ------------------------------------------------------------------------------------------
# /proc

def proc_ticks(pid):
    """utime + stime of a whole process (every thread), in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def thread_ticks(pid):
    """{tid: (name, ticks, ns waiting for a CPU)} of a process's threads (the last from
    /proc/.../schedstat: time runnable but not running)."""
    out = {}
    base = f"/proc/{pid}/task"
    for tid in os.listdir(base):
        try:
            with open(f"{base}/{tid}/stat") as f:
                raw = f.read()
            with open(f"{base}/{tid}/schedstat") as f:
                wait_ns = int(f.read().split()[1])
        except (OSError, ValueError, IndexError):
            continue
        name = raw[raw.index("(") + 1:raw.rindex(")")]
        fields = raw.rsplit(")", 1)[1].split()
        out[int(tid)] = (name, int(fields[11]) + int(fields[12]), wait_ns)
    return out


def machine_ticks():
    """(busy, total) ticks over every core, from /proc/stat."""
    with open("/proc/stat") as f:
        cpu = [int(x) for x in f.readline().split()[1:]]
    idle = cpu[3] + (cpu[4] if len(cpu) > 4 else 0)
    return sum(cpu) - idle, sum(cpu)


def sample(procs, gens):
    return {"t": time.monotonic(),
            "procs": {name: proc_ticks(pid) for name, pid in procs.items()},
            "threads": {name: thread_ticks(pid) for name, pid in procs.items()},
            "gens": {i: proc_ticks(p.pid) for i, p in enumerate(gens) if p.poll() is None},
            "machine": machine_ticks()}


# ------------------------------------------------------------------------------------------
# set-ups

class Target:
    """A set-up under load: the WebSocket URL and the tracker processes ({name: pid})."""

    def __init__(self, label, url, members, perf_pid):
        self.label, self.url, self.members, self.perf_pid = label, url, members, perf_pid

    def procs(self):
        return {name: m.pid for name, m in self.members.items()}

    def check_alive(self):
        for name, m in self.members.items():
            if not m.alive():
                rc = m.proc.proc.poll() if hasattr(m, "proc") and hasattr(m.proc, "proc") else None
                raise RuntimeError(f"{self.label}: tracker process {name} (pid {m.pid}) exited "
                                   f"(status {rc}) during the benchmark")


class StandaloneWs:
    """A standalone process with its WebSocket listener on (tests/lib's Standalone turns
    it off)."""

    def __init__(self, config_path):
        self.proc = TrackerProcess(args=["--config", config_path], role="standalone",
                                   http_port=free_port(), udp_port=free_port(socket.SOCK_DGRAM),
                                   ws_port=free_port(), ready_timeout=40.0)

    def start(self):
        self.proc.start()
        return self

    @property
    def pid(self):
        return self.proc.proc.pid

    def alive(self):
        return self.proc.proc is not None and self.proc.proc.poll() is None

    def close(self):
        self.proc.close(signal.SIGKILL)


# ------------------------------------------------------------------------------------------
# one run

def split(total, parts):
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def run_load(target, args, perf_out=None):
    """One load run against target; returns its figures (raises on a tracker failure)."""
    target.check_alive()
    start_at = time.time() + 1.5 + args.warmup   # 1.5 s to start node and open the sockets
    gens = []
    for g, n in enumerate(split(args.sockets, args.generators)):
        cmd = ["node", LOAD, "--url", target.url, "--sockets", str(n), "--swarms", str(args.swarms),
               "--offers", str(args.offers), "--window", str(args.window),
               "--duration", str(args.duration), "--warmup", str(args.warmup),
               "--start-at", str(int(start_at * 1000)), "--seed", str(args.seed),
               "--sdp-bytes", str(args.sdp_bytes), "--tag", str(g)]
        gens.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    perf = None
    try:
        time.sleep(max(0.0, start_at - time.time()))
        s0 = sample(target.procs(), gens)
        if perf_out:
            perf = subprocess.Popen(["perf", "record", "--call-graph", "dwarf,16384", "-F", "499",
                                     "-o", perf_out, "-p", str(target.perf_pid),
                                     "--", "sleep", str(args.perf)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(max(0.0, start_at + args.duration - time.time()))
        s1 = sample(target.procs(), gens)
        outs = []
        for i, p in enumerate(gens):
            try:
                out, err = p.communicate(timeout=args.duration + 30)
            except subprocess.TimeoutExpired:
                p.kill()
                out, err = p.communicate()
                raise RuntimeError(f"{target.label}: generator {i} did not exit; stderr: {err[-500:]}")
            line = next((ln for ln in out.splitlines() if ln.startswith("{")), None)
            if not line:
                raise RuntimeError(f"{target.label}: generator {i} printed no figures (rc {p.returncode});"
                                   f" stderr: {err[-800:]}")
            outs.append(json.loads(line))
        if perf:
            _, perr = perf.communicate(timeout=args.perf + 30)
            if perf.returncode != 0:
                say(f"perf record failed (rc {perf.returncode}): {perr.strip()[-300:]}")
    finally:
        for p in gens + ([perf] if perf else []):
            if p.poll() is None:
                p.kill()
                p.wait()
    target.check_alive()
    for i, o in enumerate(outs):
        problems = {k: o.get(k) for k in ("failures", "other", "bad", "answers", "closed_by_server",
                                          "socket_errors") if o.get(k)}
        if not o.get("ok") or problems or o.get("opened") != o.get("sockets"):
            raise RuntimeError(f"{target.label}: generator {i} saw a problem {problems}: "
                               f"{json.dumps(o)[:1500]}")
    secs = s1["t"] - s0["t"]
    replies = sum(o["replies"] for o in outs)
    offers = sum(o["offers_received"] for o in outs)
    gen_secs = sum(o["seconds"] for o in outs) / len(outs)
    cpu = {n: (s1["procs"][n] - s0["procs"][n]) / CLK_TCK for n in s0["procs"]}
    cpu_total = sum(cpu.values())
    threads = []
    for n, th in s1["threads"].items():
        for tid, (name, t1, w1) in th.items():
            _, t0, w0 = s0["threads"][n].get(tid, (name, 0, 0))
            threads.append((100.0 * (t1 - t0) / CLK_TCK / secs, f"{n}:{name}:{tid}",
                            100.0 * (w1 - w0) / 1e9 / secs))
    threads.sort(reverse=True)
    gen_cpu = [100.0 * (s1["gens"][i] - s0["gens"][i]) / CLK_TCK / secs for i in s0["gens"]
               if i in s1["gens"]]
    busy = (s1["machine"][0] - s0["machine"][0]) / max(1, s1["machine"][1] - s0["machine"][1])
    return {
        "seconds": round(secs, 2),
        "announces_per_s": replies / gen_secs,
        "offers_per_s": offers / gen_secs,
        "offers_per_announce": offers / replies if replies else float("nan"),
        "us_per_announce": cpu_total * 1e6 / replies if replies else float("nan"),
        "cpu_s": {n: round(v, 2) for n, v in cpu.items()},
        "us_per_announce_by_process": {n: round(v * 1e6 / replies, 1) for n, v in cpu.items()},
        "busiest_threads_pct": [(round(p, 1), n) for p, n, _ in threads[:3]],
        # the busiest thread's time runnable but waiting for a CPU (% of the window)
        "busiest_thread_cpu_wait_pct": round(threads[0][2], 1) if threads else None,
        "generators_cpu_pct": [round(x, 1) for x in gen_cpu],
        "generators_self_cpu_pct": [o["gen_cpu_pct"] for o in outs],
        "machine_busy_pct": round(100.0 * busy, 1),
        "mean_latency_ms": (args.sockets * args.window) / (replies / gen_secs) * 1000 if replies else None,
        "replies_per_socket_min_max": [min(o["replies_per_socket_min"] for o in outs),
                                       max(o["replies_per_socket_max"] for o in outs)],
    }


def show(label, r):
    say(f"  {label}: {r['announces_per_s']:,.0f} announces/s, {r['offers_per_s']:,.0f} offers "
        f"delivered/s ({r['offers_per_announce']:.2f} per announce), {r['us_per_announce']:.1f} us "
        f"CPU/announce (by process {r['us_per_announce_by_process']}), busiest threads "
        f"{r['busiest_threads_pct']} (the first waited for a CPU {r['busiest_thread_cpu_wait_pct']}% "
        f"of the time), generators {r['generators_cpu_pct']}% of a core, machine "
        f"{r['machine_busy_pct']}% busy, mean latency {r['mean_latency_ms']:.1f} ms, replies per "
        f"socket {r['replies_per_socket_min_max']}")


def perf_summary(path):
    """Self time by library, then the heaviest functions with their callees (children),
    named ones only, from a `perf record --call-graph dwarf` file."""
    def report(*extra):
        p = subprocess.run(["perf", "report", "-i", path, "--stdio", "-g", "none", *extra],
                           capture_output=True, text=True, timeout=180)
        return [ln.rstrip() for ln in p.stdout.splitlines() if ln.strip() and not ln.startswith("#")]
    dsos = report("--no-children", "--sort", "dso", "--percent-limit", "0.5")
    generic = ("_start", "main", "uv_run", "__libc_start", "clone3", "start_thread", "entry_SYSCALL",
               "do_syscall_64", "0x")
    kids = []
    for ln in report("--children", "--sort", "dso,sym", "--percent-limit", "2"):
        parts = ln.split()
        sym = " ".join(parts[4:]) if len(parts) > 4 else ""
        if sym and not sym.startswith(generic) and "(inlined)" not in sym and "[k]" not in parts[3]:
            kids.append(ln)
    return dsos[:10], kids[:30]


# ------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sockets", type=int, default=64, help="WebSockets in all (default 64)")
    ap.add_argument("--generators", type=int, default=1, help="ws_load.mjs processes (default 1)")
    ap.add_argument("--swarms", type=int, default=16)
    ap.add_argument("--offers", type=int, default=2, help="offers per announce (default 2)")
    ap.add_argument("--window", type=int, default=4, help="announces in flight per socket (default 4)")
    ap.add_argument("--duration", type=float, default=8.0, help="measured seconds per run (default 8)")
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--sdp-bytes", type=int, default=200)
    ap.add_argument("--perf", type=float, default=0.0,
                    help="seconds of perf record on the standalone process and the router (0: none)")
    ap.add_argument("--json", help="write the figures here as JSON")
    args = ap.parse_args()
    if not (1 <= args.generators <= 8 and args.generators <= args.sockets <= 1024):
        ap.error("--generators 1-8, --sockets at least that and at most 1024")
    if args.duration + args.warmup > 50:
        ap.error("keep a run under a minute: --duration + --warmup at most 50")
    if args.perf and (args.perf >= args.duration or not shutil.which("perf")):
        ap.error("--perf needs perf and fewer seconds than --duration")
    cmd = " ".join(["/usr/bin/python3", "bench/ws_bench.py"] + sys.argv[1:])
    with open("/proc/loadavg") as f:
        say(f"command: {cmd}")
        say("load average before start:", f.read().strip(), f"({os.cpu_count()} cpus)")
    ws_cfg = {"max_connections_per_ip": max(64, args.sockets * 2), "max_offers": max(10, args.offers)}
    tmp = tempfile.mkdtemp(prefix="synapse-wsbench-")
    sa, c = None, None
    out = {"command": cmd, "args": vars(args), "rounds": []}
    try:
        cfg = os.path.join(tmp, "standalone.yaml")
        with open(cfg, "w") as f:
            f.write(config_yaml({"limits": {"rate_limit": False}, "websocket": ws_cfg}))
        sa = StandaloneWs(cfg).start()
        # the cluster: cluster.py's config (rate_limit false, default cluster timings) plus
        # the websocket section; only the router listens for WebSockets
        c = cu.Cluster(extra={"websocket": ws_cfg})
        for _ in range(3):
            c.add_node()
        r = c.add_router(ws_port=free_port())
        c.wait_converged(60)
        targets = {
            "standalone": Target("standalone", sa.proc.ws_url(), {"standalone": sa}, sa.pid),
            "cluster": Target("router + 3 nodes", r.ws_url(),
                              {"router": r, **{k: v for k, v in c.nodes.items()}}, r.pid),
        }
        say(f"load: {args.sockets} sockets in {args.generators} generator process(es), {args.swarms} "
            f"swarms, {args.offers} offers of ~{args.sdp_bytes} B per announce, window {args.window}, "
            f"{args.duration:g} s measured after {args.warmup:g} s warm-up per run")
        ratios = []
        warnings = out["warnings"] = []
        for rnd in range(args.rounds):
            res = {}
            for key in ("standalone", "cluster"):
                res[key] = run_load(targets[key], args)
                show(f"round {rnd + 1} {targets[key].label}", res[key])
            for key in ("standalone", "cluster"):
                got = res[key]["offers_per_announce"]
                if args.offers and got < args.offers * 0.995:
                    w = (f"round {rnd + 1} {targets[key].label}: {got:.3f} offers delivered per announce "
                         f"of {args.offers} sent ({100 * (1 - got / args.offers):.1f}% lost)")
                    warnings.append(w)
                    say("  WARNING:", w)
            ratio = {k: res["cluster"][k] / res["standalone"][k]
                     for k in ("announces_per_s", "offers_per_s", "us_per_announce")}
            ratios.append(ratio)
            say(f"  round {rnd + 1} cluster / standalone: announces/s {ratio['announces_per_s']:.2f}, "
                f"offers/s {ratio['offers_per_s']:.2f}, CPU us per announce {ratio['us_per_announce']:.2f}")
            out["rounds"].append({**res, "ratio": ratio})
        med = {k: median([x[k] for x in ratios]) for k in ratios[0]}
        figs = {key: {k: median([rr[key][k] for rr in out["rounds"]])
                      for k in ("announces_per_s", "offers_per_s", "us_per_announce")}
                for key in ("standalone", "cluster")}
        out["median"] = {"ratio": med, **figs}
        gen_max = max(x for rr in out["rounds"] for key in ("standalone", "cluster")
                      for x in rr[key]["generators_cpu_pct"])
        say("")
        say(f"median over {args.rounds} rounds:")
        for key, lab in (("standalone", "standalone"), ("cluster", "router + 3 nodes")):
            f_ = figs[key]
            say(f"  {lab}: {f_['announces_per_s']:,.0f} announces/s, {f_['offers_per_s']:,.0f} "
                f"offers delivered/s, {f_['us_per_announce']:.1f} us CPU per announce (all tracker "
                f"processes)")
        say(f"  cluster / standalone: announces/s {med['announces_per_s']:.2f}, offers/s "
            f"{med['offers_per_s']:.2f}, CPU per announce {med['us_per_announce']:.2f}")
        for w in warnings:
            say("  WARNING:", w)
        if gen_max > 85:
            say(f"  note: a generator reached {gen_max:.0f}% of a core: the load generator may be the "
                f"bottleneck; try --generators {args.generators + 1}")
        if args.perf:
            out["perf"] = {}
            for key in ("standalone", "cluster"):
                path = os.path.join(tmp, f"perf-{key}.data")
                run_load(targets[key], args, perf_out=path)
                dsos, kids = perf_summary(path)
                out["perf"][key] = {"self_by_dso": dsos, "children": kids}
                who = "standalone process" if key == "standalone" else "router"
                say(f"perf record --call-graph dwarf -F 499 -p <{who}> for {args.perf:g} s; self time "
                    f"by library:")
                for ln in dsos:
                    say("   ", ln)
                say("  heaviest functions, with callees (children, self):")
                for ln in kids:
                    say("   ", ln)
    finally:
        if c:
            c.close()
        if sa:
            sa.close()
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    say("RESULT ws_bench " + json.dumps(out.get("median", {}), separators=(",", ":")))


if __name__ == "__main__":
    main()
