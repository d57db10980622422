#!/usr/bin/env python3
"""A network partition, with Linux network namespaces (needs root; skipped otherwise).

Four namespaces created here (and only here, by tests/lib/netns.py): one holding a bridge,
three holding a node each, every node joined to the bridge by a veth pair, addresses in
10.200.7.0/24 that exist only inside these namespaces. All traffic stays inside them;
everything is removed at the end (cleanup + atexit), including when the test fails.

- All three nodes see each other alive.
- n2's link is cut (its veth end on the bridge set down): n0 and n1 first mark it suspect
  (suspicion_mult 10, so that the suspect phase lasts about 2 s and polling sees it),
  then dead (times printed; dead within DEAD_BOUND_S); n2 itself loses sight of the others;
  ownership does not change (liveness is not ownership: partitions_primary as before).
- The link comes back: every node lists every node alive within HEAL_BOUND_S, and n2 is
  known at a higher incarnation than before (it refuted the suspicion).

Run (as root): /usr/bin/python3 tests/integration/test_cluster_partition.py
"""
import os
import shutil
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cluster as cu  # noqa: E402
import netns  # noqa: E402
from wait import wait_for  # noqa: E402

SUBNET = "10.200.7"
NODES = ["n0", "n1", "n2"]
DATA_PORT, ADMIN_PORT = 7000, 8000
DEAD_BOUND_S = 10.0
HEAL_BOUND_S = 30.0


class ClusterPartitionTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        why = netns.unavailable()
        if not why and not shutil.which("curl"):
            why = "curl is needed to query nodes inside their namespaces"
        if why:
            raise unittest.SkipTest(why)
        netns.remove_stale()

    def setUp(self):
        self.lab = netns.Lab(NODES, subnet=SUBNET).build()
        self.addCleanup(self.lab.destroy)
        self.tmp = tempfile.mkdtemp(prefix="synapse-netns-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        cfg = os.path.join(self.tmp, "config.yaml")
        with open(cfg, "w") as f:
            # suspicion_mult 10: the suspect phase lasts about 2 s, long enough to be seen
            # by polling; a short router deadline keeps status queries quick while a
            # member is unreachable
            f.write(cu.config_text(cluster={"suspicion_mult": 10},
                                   server={"request_timeout_ms": 200}))
        self.nodes = []
        seeds = [f"tcp://{self.lab.addr('n0')}:{DATA_PORT}"]
        for name in NODES:
            d = os.path.join(self.tmp, name)
            os.makedirs(d)
            n = cu.Member("node", name, self.lab.addr(name), ADMIN_PORT, DATA_PORT, seeds, cfg,
                          udp_port=0, netns=self.lab.ns(name), data_dir=d)
            self.addCleanup(n.close)  # runs before the namespaces go (cleanups are LIFO)
            n.start()
            self.nodes.append(n)

    def views(self, observers):
        return {m.id: m.members(timeout=2) for m in observers}

    def all_alive(self):
        ids = {m.id for m in self.nodes}
        for m in self.nodes:
            v = m.members(timeout=2)
            if not all(i in v and v[i]["state"] == "alive" for i in ids):
                self.last_view = (m.id, {i: (v[i]["state"], v[i]["incarnation"], v[i].get("suspected_by")) for i in v})
                return False
        return True

    def test_partition_and_heal(self):
        n0, n1, n2 = self.nodes
        wait_for(self.all_alive, 30, interval=0.1, what="all three nodes alive everywhere")
        before = n0.members()
        inc_before = max(m.members()["n2"]["incarnation"] for m in self.nodes)
        primaries = {i: before[i]["partitions_primary"] for i in ("n0", "n1", "n2")}
        cu.log("before the cut: n2 incarnation", inc_before, "primaries", primaries)

        # ---- cut n2 off ----
        self.lab.isolate("n2")
        t_cut = time.monotonic()
        suspect_at, dead_at = {}, {}
        others = [n0, n1]
        trace, last = [], {}

        def watch(m):
            # One thread per observer, so that a slow answer from one delays nothing else
            # (a status query waits up to request_timeout_ms for an unreachable node).
            deadline = t_cut + DEAD_BOUND_S + 5
            while time.monotonic() < deadline:
                try:
                    st = m.members(timeout=2)["n2"]["state"]
                except (OSError, KeyError, ValueError) as e:
                    trace.append((round(time.monotonic() - t_cut, 3), m.id, repr(e)))
                    continue
                now = time.monotonic() - t_cut
                if last.get(m.id) != st:
                    last[m.id] = st
                    trace.append((round(now, 3), m.id, st))
                if st == "suspect" and m.id not in suspect_at:
                    suspect_at[m.id] = now
                if st == "dead":
                    dead_at[m.id] = now
                    return
                time.sleep(0.02)
        watchers = [threading.Thread(target=watch, args=(m,), daemon=True) for m in others]
        for w in watchers:
            w.start()
        for w in watchers:
            w.join(DEAD_BOUND_S + 10)
        self.assertEqual(set(dead_at), {"n0", "n1"},
                         f"n0 and n1 did not both declare n2 dead: {trace}")
        cu.log("cut: n2's state as seen by the others (s after the cut):", trace)
        cu.log("cut: suspect at", {k: round(v, 2) for k, v in suspect_at.items()},
               "dead at", {k: round(v, 2) for k, v in dead_at.items()})
        for m in others:
            with self.subTest(f"{m.id}: suspect first, then dead within {DEAD_BOUND_S}s"):
                self.assertIn(m.id, suspect_at, f"{m.id} never showed n2 as suspect")
                self.assertLess(suspect_at[m.id], dead_at[m.id])
                self.assertLess(dead_at[m.id], DEAD_BOUND_S)
        with self.subTest("the isolated node loses sight of the others"):
            wait_for(lambda: all(n2.members(timeout=2)[i]["state"] in ("suspect", "dead")
                                 for i in ("n0", "n1")), 10, what="n2 suspects n0 and n1")
        with self.subTest("n0 and n1 still see each other alive"):
            for m in others:
                v = m.members()
                self.assertEqual((v["n0"]["state"], v["n1"]["state"]), ("alive", "alive"), m.id)
        with self.subTest("liveness is not ownership"):
            v = n0.members()
            self.assertEqual({i: v[i]["partitions_primary"] for i in primaries}, primaries)

        # ---- heal ----
        self.lab.rejoin("n2")
        t_heal = time.monotonic()
        wait_for(self.all_alive, HEAL_BOUND_S, interval=0.05,
                 what=f"every node alive everywhere within {HEAL_BOUND_S}s of the heal")
        healed = time.monotonic() - t_heal
        incs = {m.id: m.members()["n2"]["incarnation"] for m in self.nodes}
        cu.log(f"heal: converged {healed:.2f}s after the link came back; n2 incarnation "
               f"{inc_before} -> {incs}")
        with self.subTest("n2 refuted with a higher incarnation"):
            for mid, inc in incs.items():
                self.assertGreater(inc, inc_before, f"{mid}'s view of n2")
        with self.subTest("stable after the heal (no flapping)"):
            end = time.monotonic() + 2.0
            while time.monotonic() < end:
                self.assertTrue(self.all_alive(), "a member left the alive state after the "
                                f"heal: {self.last_view}")
                time.sleep(0.1)
        v = n1.members()
        self.assertEqual({i: v[i]["partitions_primary"] for i in primaries}, primaries)


if __name__ == "__main__":
    unittest.main(verbosity=2)
