#!/usr/bin/env python3
"""A fault-injection test in the spirit of Jepsen: a router and four nodes, each in its
own network namespace (tests/lib/netns.py), clients registering, updating, deleting,
reading, searching and announcing through the router (tests/nemesis/client.py, inside
the router's namespace), while a nemesis, from a seeded random schedule, kills nodes with
SIGKILL and restarts them, pauses them with SIGSTOP for longer than the suspicion
timeout, cuts one node off, splits the cluster two against two, and has a fifth node join
and leave gracefully. Every client operation and its outcome goes into a history; once
every fault has healed and anti-entropy has run, the clients read every key back, and
tests/nemesis/checker.py verifies the history (acknowledged writes kept, no delete coming
back, final content = last acknowledged write, announces failing only inside detection
windows). No process may crash (the sanitizer build runs this too).

One summary line says what happened, with the seed; SYNAPSE_NEMESIS_SEED replays a run,
SYNAPSE_NEMESIS_S sets its length (the test command's short run; bench/nemesis.sh runs
thirty minutes).

Run (as root): /usr/bin/python3 tests/nemesis/test_nemesis.py
"""
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, HERE)
import checker  # noqa: E402
import cluster as cu  # noqa: E402
import netns  # noqa: E402
from wait import wait_for  # noqa: E402

SECONDS = float(os.environ.get("SYNAPSE_NEMESIS_S", "70"))
SEED = int(os.environ.get("SYNAPSE_NEMESIS_SEED", str(random.randrange(1 << 30))))
CORE = ["n0", "n1", "n2", "n3"]
SPARE = "n4"
HOSTS = ["r0"] + CORE + [SPARE]
DATA_PORT, ADMIN_PORT, HTTP_PORT = 7000, 8000, 6881
WINDOW_S = 10.0  # after a fault ends: detection (~3 s), failover, catching up
CRASH_SIGNS = re.compile(r"AddressSanitizer|LeakSanitizer|runtime error|panic:|double free|"
                         r"Segmentation fault|Assertion .* failed|terminate called")


class NemesisTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        why = netns.unavailable()
        if why:
            raise unittest.SkipTest(why)
        netns.remove_stale()

    def setUp(self):
        self.lab = netns.Lab(HOSTS).build()
        self.addCleanup(self.lab.destroy)
        self.tmp = tempfile.mkdtemp(prefix="synapse-nemesis-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.cfg = os.path.join(self.tmp, "config.yaml")
        with open(self.cfg, "w") as f:
            # The defaults, with anti-entropy every 2 s so that the final reads come soon.
            f.write(cu.config_text(cluster={"anti_entropy_interval_ms": 2000}))
        self.members = {}
        self.killed = set()   # members we stopped on purpose (kill -9, SIGTERM)
        self.paused = set()
        self.faults = []      # (start, end) in wall-clock seconds
        self.log = []         # what the nemesis did, for the summary
        self.addCleanup(self.stop_all)

    # ---- processes ----

    def seeds(self):
        return [f"tcp://{self.lab.addr(n)}:{DATA_PORT}" for n in ("n0", "n1")]

    def member(self, name):
        role = "router" if name == "r0" else "node"
        d = os.path.join(self.tmp, name)
        os.makedirs(d, exist_ok=True)
        seeds = [f"tcp://{self.lab.addr(n)}:{DATA_PORT}" for n in CORE] if role == "router" \
            else self.seeds()
        port = HTTP_PORT if role == "router" else ADMIN_PORT
        m = cu.Member(role, name, self.lab.addr(name), port, DATA_PORT, seeds, self.cfg,
                      udp_port=0, netns=self.lab.ns(name), data_dir=d,
                      stderr_path=os.path.join(self.tmp, name + ".err"))
        self.members[name] = m
        return m

    def start(self, name):
        self.member(name).start()
        self.killed.discard(name)

    def stop_all(self):
        for name, m in self.members.items():
            if name in self.paused and m.alive():
                m.proc.proc.send_signal(signal.SIGCONT)
            m.close()

    def live_view(self, observer):
        return self.members[observer].members(timeout=5)

    def converged(self):
        up = [n for n, m in self.members.items() if m.alive() and n not in self.killed]
        for n in up:
            view = self.live_view(n)
            if not all(view.get(i, {}).get("state") == "alive" for i in up):
                return False
        return True

    # ---- the nemesis ----

    def fault(self, rng):
        """One fault from the schedule, held a few seconds, then healed."""
        kind = rng.choice(["kill", "pause", "isolate", "split", "kill", "pause", "membership"])
        target = rng.choice(CORE)
        hold = rng.uniform(4.0, 8.0)  # longer than the suspicion timeout (1.2-4.8 s)
        t0 = time.time()
        m = self.members.get(target)
        if kind == "kill":
            m.kill9()
            self.killed.add(target)
            time.sleep(hold)
            self.start(target)
        elif kind == "pause":
            m.proc.proc.send_signal(signal.SIGSTOP)
            self.paused.add(target)
            time.sleep(hold)
            m.proc.proc.send_signal(signal.SIGCONT)
            self.paused.discard(target)
        elif kind == "isolate":
            self.lab.isolate(target)
            time.sleep(hold)
            self.lab.rejoin(target)
        elif kind == "split":
            other = rng.choice([n for n in CORE if n != target])
            a = {target, other, "r0"}
            b = set(CORE) - a
            if self.members.get(SPARE) and self.members[SPARE].alive():
                b.add(SPARE)
            self.lab.partition([a, b])
            target = f"{sorted(a - {'r0'})}|{sorted(b)}"
            time.sleep(hold)
            self.lab.heal()
        else:  # a fifth node joins, or leaves gracefully
            spare = self.members.get(SPARE)
            if spare is None or not spare.alive():
                self.start(SPARE)
                kind, target = "join", SPARE
            else:
                spare.terminate()
                spare.wait_exit(30)
                self.killed.add(SPARE)
                kind, target = "leave", SPARE
        self.faults.append((t0, time.time()))
        self.log.append((round(t0 - self.t_start, 1), kind, target, round(time.time() - t0, 1)))

    def heal_everything(self):
        self.lab.heal()
        for name in list(self.paused):
            self.members[name].proc.proc.send_signal(signal.SIGCONT)
        self.paused.clear()
        for name in CORE:
            if not self.members[name].alive():
                self.start(name)

    # ---- the test ----

    def test_nemesis(self):
        rng = random.Random(SEED)
        for name in CORE + ["r0"]:
            self.start(name)
        wait_for(self.converged, 60, interval=0.5, what="the cluster alive everywhere")
        wait_for(self.members["r0"].ready, 30, what="router ready")
        history_path = os.path.join(self.tmp, "history.jsonl")
        client = self.lab.popen("r0", [sys.executable, os.path.join(HERE, "client.py"), "run",
                                       "--router", f"{self.lab.addr('r0')}:{HTTP_PORT}",
                                       "--clients", "4", "--keys", "8", "--seconds", str(SECONDS),
                                       "--seed", str(SEED), "--out", history_path],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.t_start = time.time()
        time.sleep(3.0)  # some history before the first fault
        while time.time() - self.t_start < SECONDS - 12:
            self.fault(rng)
            time.sleep(rng.uniform(2.0, 4.0))
        out, err = client.communicate(timeout=SECONDS + 120)
        self.assertEqual(client.returncode, 0, f"client failed: {err.decode()[-2000:]}")
        self.heal_everything()
        wait_for(self.converged, 60, interval=0.5, what="every member alive everywhere again")
        try:
            wait_for(lambda: all(self.live_view("r0")[n].get("caught_up") for n in CORE
                                 if self.members[n].alive()), 60, interval=0.5,
                     what="every node caught up")
        except AssertionError:
            # The seed and schedule to replay it, and what r0 and each node say of it.
            cu.log(f"seed {SEED}; schedule:", self.log)
            for n in CORE:
                if not self.members[n].alive():
                    continue
                try:
                    cu.log(f"{n} as r0 sees it:", self.live_view("r0").get(n),
                           "; as it sees itself:", self.live_view(n).get(n))
                except Exception as e:  # noqa: BLE001 - diagnosis only
                    cu.log(f"{n}: no answer ({e})")
            raise
        time.sleep(5.0)  # two anti-entropy rounds
        finals_path = os.path.join(self.tmp, "finals.json")
        p = self.lab.popen("r0", [sys.executable, os.path.join(HERE, "client.py"), "final",
                                  "--router", f"{self.lab.addr('r0')}:{HTTP_PORT}",
                                  "--keys-file", history_path + ".keys", "--out", finals_path],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _, ferr = p.communicate(timeout=300)
        self.assertEqual(p.returncode, 0, f"final reads failed: {ferr.decode()[-2000:]}")
        with open(history_path) as f:
            history = [json.loads(line) for line in f if line.strip()]
        with open(finals_path) as f:
            finals = json.load(f)
        violations, counts = checker.check(history, finals, self.faults, WINDOW_S)
        crashes = self.crashes()
        kinds = {}
        for _, k, *_ in self.log:
            kinds[k] = kinds.get(k, 0) + 1
        summary = (f"nemesis: seed {SEED}, {SECONDS:.0f}s, {counts['ops']} ops (ok {counts['ok']}, "
                   f"failed {counts['failed']}, unknown {counts['unknown']}; {counts['reads_checked']} "
                   f"reads checked) on {counts['keys']} keys; "
                   f"faults {dict(sorted(kinds.items()))}; announce failures "
                   f"{counts['announce_failures']} ({counts['announce_failures_outside']} outside "
                   f"windows); violations {len(violations)}; crashes {len(crashes)}")
        print(summary, file=sys.stderr, flush=True)
        cu.log("schedule:", self.log)
        for v in violations[:20]:
            cu.log("violation:", v)
        for c in crashes:
            cu.log("crash:", c)
        self.assertEqual(crashes, [])
        self.assertEqual(violations, [])
        self.assertGreater(counts["ok"], 100, "too few operations to judge anything")

    def crashes(self):
        """Members that died without being told to, and crash reports in any stderr."""
        out = []
        for name, m in self.members.items():
            rc = m.proc.proc.poll() if m.proc.proc else None
            if rc is not None and name not in self.killed:
                out.append((name, f"exited {rc}"))
        for name in self.members:
            path = os.path.join(self.tmp, name + ".err")
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    lines = f.readlines()
                for i, line in enumerate(lines):
                    if CRASH_SIGNS.search(line):
                        out.append((name, line.strip()[:300]))
                        # the report itself (a sanitizer's stacks), for the one who reads it
                        print("".join(lines[i:i + 60]), file=sys.stderr, flush=True)
                        break
        return out


if __name__ == "__main__":
    unittest.main(verbosity=2)
