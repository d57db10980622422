#!/usr/bin/env python3
"""A node's swarm pushers follow the current replica sets: a pusher with nothing to send
for cluster.replication_idle_s ends, and so does one stuck on a member the membership no
longer holds usable, which frees its slot (a node has 64). A replica that comes back gets
a pusher again and receives what is announced afterwards.

Before, a pusher lived as long as the node: one for every member it had ever pushed to,
so a long-lived node that had pushed to 64 members stopped replicating to the next new
one (silently), and a dead member's pusher kept its queue and its reported lag for ever.

Run: python3 tests/integration/test_cluster_pushers.py (SYNAPSE_BIN picks the binary).
"""
import os
import random
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cluster as cu  # noqa: E402
from tracker_proto import rand_hash  # noqa: E402
from wait import wait_for  # noqa: E402

IDLE_S = 2


def lag_targets(router):
    """{node id: set of replicas it has a pusher for} from the router's /cluster/status."""
    out = {}
    for m in router.status()["members"]:
        lag = m.get("replication_lag_ms")
        if m.get("role") == "node" and isinstance(lag, dict):
            out[m["id"]] = set(lag)
    return out


def peers_on(router, node_id):
    m = router.members().get(node_id) or {}
    return m.get("peers")


class Pushers(unittest.TestCase):
    def test_pushers_end_when_idle_or_gone_and_come_back(self):
        c = cu.start_cluster(nodes=3, routers=1,
                             cluster={"replication": 3, "write_quorum": 2,
                                      "replication_idle_s": IDLE_S})
        self.addCleanup(c.close)
        router = next(iter(c.routers.values()))
        rng = random.Random(11)
        port = [7000]

        def announce_some(n=30):
            for _ in range(n):
                port[0] += 1
                cu.announce(router, rand_hash(rng), port[0])

        # Every node is primary for some of these and pushes to the two others.
        announce_some()
        want = {"n0": {"n1", "n2"}, "n1": {"n0", "n2"}, "n2": {"n0", "n1"}}
        wait_for(lambda: lag_targets(router) == want, 10, what="a pusher per replica")

        # Idle: with nothing announced, every pusher ends within the idle time.
        wait_for(lambda: all(not t for t in lag_targets(router).values()), 4 * IDLE_S + 10,
                 what="idle pushers ended")

        # Gone: n2 is killed while announces continue; the pushers to n2 end (the others
        # keep theirs, as they are busy), and no one reports a lag for n2 any more.
        c.nodes["n2"].kill9()

        def n2_forgotten():
            announce_some(5)
            t = lag_targets(router)
            return (t.get("n0") == {"n1"} and t.get("n1") == {"n0"}) or None
        wait_for(n2_forgotten, 4 * IDLE_S + 20, interval=0.3, what="pushers to the dead n2 ended")

        # Back: n2 restarts, gets pushers again and holds every peer announced after.
        c.restart_node("n2")
        c.wait_converged(30)
        wait_for(lambda: c.nodes["n2"].ready(), 30, what="n2 ready")
        before = peers_on(router, "n0")
        announce_some(20)
        wait_for(lambda: "n2" in (lag_targets(router).get("n0") or ()), 10,
                 what="a pusher to n2 again")
        # Equal holdings, not an exact count: updates another replica coordinated while
        # n2 was away may still reach n0 after `before` was read.
        wait_for(lambda: (peers_on(router, "n2") == peers_on(router, "n0") ==
                          peers_on(router, "n1") >= before + 20), 15,
                 interval=0.2, what="n2 holds what n0 and n1 hold")


if __name__ == "__main__":
    unittest.main()
