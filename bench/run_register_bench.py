#!/usr/bin/env python3
"""Registration throughput: single POST /api/register against POST /api/register/batch,
standalone and through a router in front of 3 nodes (R = 3, W = 2: each registration is
acknowledged once two nodes have it on disk), with an optional reference binary run
interleaved in the same session (before/after). Loopback only, bounded in count and time.

    bench/run_register_bench.py                                   # ~1-2 min
    bench/run_register_bench.py --n 5000 --dim 768 --rounds 2
    bench/run_register_bench.py --before /tmp/old/synapse-tracker # adds the old binary
    bench/run_register_bench.py --only load --load-n 1000000 --dim 64   # a long load

Each trial starts a fresh tracker (or cluster) with the per-client rate limiter off (one
load generator sends everything from 127.0.0.1) and runs bench/register_bench.c (compiled
into a temporary directory) once: `single` = 16 connections, one registration in flight
on each; `batch` = --batch-conns connections, one batch of --batch shards in flight on
each. Trials of every kind alternate (ABAB across --rounds), so a busy machine skews
them alike. Prints every trial's RESULT line, the command that reproduces it, and a
table of medians with ratios against the first kind. `--only load` registers --load-n
shards through batches into one standalone tracker and prints the time.

SYNAPSE_BIN picks the tracker (default build/app/synapse-tracker)."""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "lib"))
import cluster as cu  # noqa: E402
from synapse_proc import TrackerProcess  # noqa: E402
from tracker_config import write_config  # noqa: E402

LIMITS = {"limits": {"rate_limit": False}}


def build_client(tmp):
    out = os.path.join(tmp, "register_bench")
    subprocess.run(["gcc", "-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror",
                    os.path.join(HERE, "register_bench.c"), "-o", out, "-lpthread"], check=True)
    return out


def run_client(client, port, args, timeout):
    cmd = [client, "--port", str(port), *map(str, args)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    sys.stderr.write(p.stderr)
    res = next((ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if p.returncode or not res:
        raise RuntimeError(f"register_bench failed ({p.returncode}): {p.stdout} {p.stderr}")
    fields = dict(kv.split("=", 1) for kv in res.split()[2:])
    return fields, res, " ".join(cmd)


def standalone(binary, tmp):
    os.environ["SYNAPSE_BIN"] = binary
    cfg = write_config(LIMITS, tempfile.mkdtemp(dir=tmp))
    data = tempfile.mkdtemp(dir=tmp, prefix="data-")
    t = TrackerProcess(args=["--config", cfg], data_dir=data, udp_port=0)
    t.start()
    return t, t.http_port, t.close


def clustered(binary, tmp):
    os.environ["SYNAPSE_BIN"] = binary
    c = cu.start_cluster(nodes=3, routers=1, cluster={"replication": 3, "write_quorum": 2})
    return c, c.routers["r0"].http_port, c.close


def trial(kind, binary, client, o, tmp):
    start = standalone if kind.startswith("standalone") else clustered
    _, port, stop = start(binary, tmp)
    try:
        if kind.endswith("single"):
            args = ["--n", o.n, "--dim", o.dim, "--conns", 16, "--batch", 0]
        else:
            args = ["--n", o.n, "--dim", o.dim, "--conns", o.batch_conns, "--batch", o.batch]
        return run_client(client, port, args + ["--max-secs", o.max_secs], o.max_secs + 60)
    finally:
        stop()


def compare(o, client, tmp):
    binaries = [("after", o.binary)] + ([("before", o.before)] if o.before else [])
    paths = ["standalone", "cluster"] if o.only in (None, "both") else [o.only]
    kinds = [(f"{p}-{m}", name, b) for p in paths for m in ("single", "batch")
             for name, b in binaries if not (m == "batch" and name == "before")]
    rates = {k: [] for k in kinds}
    for r in range(o.rounds):
        for k in kinds:
            fields, res, cmd = trial(k[0], k[2], client, o, tmp)
            print(f"round {r + 1} {k[0]} ({k[1]}): {res}\n  command: {cmd}", flush=True)
            rates[k].append(float(fields["rate"]))
    print("\n| path | mode | binary | shards/s (median) | ratio to this path's single (after) |")
    print("|---|---|---|---|---|")
    for k in kinds:
        ref = statistics.median(rates[(f"{k[0].split('-')[0]}-single", "after", o.binary)])
        med = statistics.median(rates[k])
        print(f"| {k[0].split('-')[0]} | {k[0].split('-')[1]} | {k[1]} | {med:.0f} | "
              f"{med / ref:.2f}x |")


def load(o, client, tmp):
    _, port, stop = standalone(o.binary, tmp)
    try:
        t0 = time.monotonic()
        fields, res, cmd = run_client(client, port,
                                      ["--n", o.load_n, "--dim", o.dim, "--conns",
                                       o.batch_conns, "--batch", o.batch, "--max-secs",
                                       o.max_secs], o.max_secs + 120)
        secs = time.monotonic() - t0
        print(f"{res}\n  command: {cmd}\nloaded {fields['n']} shards of {o.dim}-d through "
              f"batches of {o.batch} in {secs:.0f} s ({int(fields['n']) / secs:.0f}/s)")
        du = subprocess.run(["du", "-sk", tmp], capture_output=True, text=True).stdout.split()[0]
        print(f"data on disk: {int(du) / 1024:.0f} MiB")
    finally:
        stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=4000, help="shards per trial")
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--batch-conns", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--max-secs", type=float, default=120)
    ap.add_argument("--only", choices=["standalone", "cluster", "both", "load"])
    ap.add_argument("--load-n", type=int, default=1000000)
    ap.add_argument("--before", help="a reference tracker binary, run interleaved")
    o = ap.parse_args()
    o.binary = os.environ.get("SYNAPSE_BIN") or os.path.join(HERE, "..", "build", "app",
                                                             "synapse-tracker")
    with tempfile.TemporaryDirectory(prefix="synapse-regbench-") as tmp:
        client = build_client(tmp)
        print(f"register bench: {o.n} shards of {o.dim}-d a trial, single = 16 connections, "
              f"batch = {o.batch_conns} connections x {o.batch} shards; load average "
              f"{os.getloadavg()[0]:.1f}", flush=True)
        if o.only == "load":
            load(o, client, tmp)
        else:
            compare(o, client, tmp)


if __name__ == "__main__":
    main()
