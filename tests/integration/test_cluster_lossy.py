#!/usr/bin/env python3
"""No false deaths on a lossy, slow network, at the default failure-detection settings:
four nodes in network namespaces created here (tests/lib/netns.py), every host's
outgoing packets delayed 20 ms and 5% of them dropped (tc netem, or its NFQUEUE stand-in
on kernels without sch_netem), for SYNAPSE_LOSSY_S seconds (60 in the test command; the
benchmark runs ten minutes: bench/lossy_soak.sh).

Lifeguard is what makes this hold: a probe that loses a packet leads to a suspicion at
worst, which starts at the longest timeout (nobody confirms it) and is refuted through the
buddy system long before it runs out. The test asserts, from the shaper's own counts, that
packets really were dropped; from every node's counters and views, that no node ever
declared another dead; and that every node sees every other alive at the end. (Suspicions
may or may not happen: TCP retransmits most losses before a probe and its indirect probes
all run out.)

Run (as root): /usr/bin/python3 tests/integration/test_cluster_lossy.py
"""
import os
import re
import shutil
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cluster as cu  # noqa: E402
import netns  # noqa: E402
from wait import wait_for  # noqa: E402

SECONDS = float(os.environ.get("SYNAPSE_LOSSY_S", "60"))
DELAY_MS, LOSS_PCT = 20, 5
NODES = ["n0", "n1", "n2", "n3"]
DATA_PORT, ADMIN_PORT = 7000, 8000


def counter(text, name):
    m = re.search(rf"^{name} (\d+)", text, re.M)
    return int(m.group(1)) if m else 0


class LossyNetworkTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        why = netns.unavailable()
        if not why and not netns.netem_binary() and not shutil.which("tc"):
            why = "no way to delay packets here (neither tc netem nor netem_nfq)"
        if why:
            raise unittest.SkipTest(why)
        netns.remove_stale()

    def test_no_false_dead_at_defaults(self):
        lab = netns.Lab(NODES).build()
        self.addCleanup(lab.destroy)
        tmp = tempfile.mkdtemp(prefix="synapse-lossy-")
        self.addCleanup(shutil.rmtree, tmp, True)
        cfg = os.path.join(tmp, "config.yaml")
        with open(cfg, "w") as f:
            f.write(cu.config_text())  # the defaults
        seeds = [f"tcp://{lab.addr('n0')}:{DATA_PORT}"]
        nodes = []
        for name in NODES:
            d = os.path.join(tmp, name)
            os.makedirs(d)
            n = cu.Member("node", name, lab.addr(name), ADMIN_PORT, DATA_PORT, seeds, cfg,
                          udp_port=0, netns=lab.ns(name), data_dir=d)
            self.addCleanup(n.close)  # before the namespaces go (cleanups are LIFO)
            n.start()
            nodes.append(n)

        def all_alive():
            for m in nodes:
                view = m.members(timeout=3)
                if not all(view.get(i, {}).get("state") == "alive" for i in NODES):
                    return False
            return True

        wait_for(all_alive, 40, interval=0.2, what="all four alive everywhere")
        lab.shape(DELAY_MS, LOSS_PCT, SECONDS + 30, seed=7, netem_binary=netns.netem_binary())
        cu.log(f"{LOSS_PCT}% loss and {DELAY_MS} ms delay on every host for {SECONDS:.0f} s")
        start = time.monotonic()
        deaths_seen = []
        while time.monotonic() - start < SECONDS:
            time.sleep(5)
            for m in nodes:
                view = m.members(timeout=5)
                gone = [i for i in NODES if view.get(i, {}).get("state") == "dead"]
                if gone:
                    deaths_seen.append((round(time.monotonic() - start, 1), m.id, gone))
        totals = {"suspicions": 0, "confirmations": 0, "refutations": 0, "deaths": 0}
        for m in nodes:
            s, body = m.get("/metrics", timeout=5)
            text = body.decode()
            for k in totals:
                totals[k] += counter(text, f"synapse_membership_{k}_total")
        packets = lab.unshape()
        cu.log(f"after {SECONDS:.0f} s: {totals}; packets {packets}; "
               f"dead seen while polling: {deaths_seen}")
        self.assertEqual(totals["deaths"], 0, f"false deaths: {deaths_seen}")
        self.assertEqual(deaths_seen, [])
        # The network really was lossy: about LOSS_PCT of the packets were dropped.
        sent = packets["passed"] + packets["dropped"]
        self.assertGreater(sent, 1000, f"hardly any traffic went through the shaper: {packets}")
        self.assertGreater(packets["dropped"], sent * LOSS_PCT / 100 / 2, f"too few drops: {packets}")
        wait_for(all_alive, 20, interval=0.2, what="all four alive everywhere at the end")


if __name__ == "__main__":
    unittest.main(verbosity=2)
