"""Search fan-out by partition (design decision 4), against the real binaries on loopback.

The router sends each node the partitions it answers for; a node searches only those and
names any it cannot serve yet, which go to their next replica. What must hold:
- every partition is searched exactly once per search: the nodes' search_partitions
  figures grow by P per search in all, and no hit arrives twice (the router's
  synapse_search_copies_dropped_total stays 0);
- the answer is the exact top-k over every shard, the same as a standalone tracker's;
- while a new node joins and pulls the partitions it gained, and while a node dies
  (kill -9), every answer is still whole (not partial) and exact. (A dead node stays in
  the ring until it is reaped, so a join while one is dead is a double fault for R = 2:
  a partition whose replicas are then the dead node and the joining one has nobody ready
  to answer for it, and the answer says partial.)

Run: /usr/bin/python3 tests/integration/test_cluster_search.py (SYNAPSE_BIN picks the binary).
"""
import os
import random
import re
import sys
import threading
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cluster as cu  # noqa: E402
from tracker_proto import rand_hash  # noqa: E402
from vectors import topk_mismatch  # noqa: E402
from wait import wait_for  # noqa: E402

PARTITIONS = 1024
DIM = 16
K = 10


def metric(member, name):
    s, body = member.get("/metrics")
    if s != 200:
        raise AssertionError(f"/metrics {s}")
    m = re.search(rf"^{name} (\S+)$", body.decode(), re.M)
    if not m:
        raise AssertionError(f"{name} missing from /metrics")
    return float(m.group(1))


def node_partitions(router, nodes):
    view = router.members()
    return {n: view[n]["search_partitions"] for n in nodes}


def check_answer(tc, doc, qv, items, k, what):
    tc.assertEqual(doc.get("status"), "success", f"{what}: {doc}")
    tc.assertFalse(doc.get("partial"), f"{what}: partial answer")
    hashes = [r["info_hash"] for r in doc["results"]]
    tc.assertEqual(len(hashes), len(set(hashes)), f"{what}: a shard twice")
    err = topk_mismatch(doc["results"], qv, items, k)
    tc.assertIsNone(err, f"{what}: {err}")


class PartitionedSearchTest(unittest.TestCase):
    def cluster_with_shards(self, seed, count, cluster, server=None):
        """3 nodes and a router holding `count` shards: (cluster, router, {hash: vector})."""
        c = cu.start_cluster(nodes=3, routers=1, cluster=cluster, server=server)
        self.addCleanup(c.close)
        router = c.routers["r0"]
        rng = random.Random(seed)
        items = {rand_hash(rng).hex(): v for v in cu.make_vectors(rng, count, DIM)}
        for h, v in items.items():
            cu.register(router, h, v)
        return c, router, items

    def test_each_partition_searched_once_and_exact(self):
        c, router, items = self.cluster_with_shards(11, 200, {"replication": 3, "write_quorum": 2})
        sa = cu.Standalone().start()
        self.addCleanup(sa.close)
        for h, v in items.items():
            cu.register(sa, h, v)

        # every node's figure is read through the router's /cluster/status
        wait_for(lambda: all(v is not None for v in node_partitions(router, c.nodes).values()),
                 10, what="per-node search figures")
        before = node_partitions(router, c.nodes)
        queries = cu.make_vectors(random.Random(12), 12, DIM)
        for qi, qv in enumerate(queries):
            doc = cu.search(router, qv, limit=K)
            check_answer(self, doc, qv, items, K, f"query {qi}")
            ref = cu.search(sa, qv, limit=K)
            self.assertEqual([r["info_hash"] for r in doc["results"]],
                             [r["info_hash"] for r in ref["results"]], f"query {qi}: standalone")
        after = node_partitions(router, c.nodes)
        grown = {n: after[n] - before[n] for n in c.nodes}
        cu.log(f"partitions searched per node over {len(queries)} searches: {grown}")
        self.assertEqual(sum(grown.values()), len(queries) * PARTITIONS,
                         "every partition searched exactly once per search")
        for n, g in grown.items():
            # R = 3 over 3 nodes: each is primary of about a third of the partitions
            self.assertGreater(g, len(queries) * PARTITIONS // 6, f"{n} answered for too few")
        self.assertEqual(metric(router, "synapse_search_copies_dropped_total"), 0)
        self.assertEqual(metric(router, "synapse_search_partitions_missed_total"), 0)

    def test_whole_and_exact_while_nodes_die_and_join(self):
        c, router, items = self.cluster_with_shards(21, 300, {"replication": 2, "write_quorum": 1},
                                                    {"request_timeout_ms": 1000})
        queries = cu.make_vectors(random.Random(22), 8, DIM)

        answers, failures, phase = [0], [], ["before the kill"]
        stop = threading.Event()

        def searcher():
            i = 0
            while not stop.is_set():
                qv = queries[i % len(queries)]
                i += 1
                try:
                    doc = cu.search(router, qv, limit=K)
                    check_answer(self, doc, qv, items, K, f"search {i}")
                    answers[0] += 1
                except AssertionError as e:
                    failures.append(f"{phase[0]}: {str(e)[:300]}")
                except OSError as e:
                    failures.append(f"search {i}: {e}")

        t = threading.Thread(target=searcher, daemon=True)
        t.start()
        try:
            def answered_more(n):
                start = answers[0]
                wait_for(lambda: answers[0] >= start + n or failures, 30,
                         what=f"{n} more answers")
            answered_more(5)
            # a new node joins: the ring moves, it pulls the partitions it gained (asked
            # of it only once it says it caught up) and the others give some up
            phase[0] = "n3 joining"
            c.add_node("n3")
            wait_for(lambda: c.converged(["n0", "n1", "n2", "n3", "r0"]), 20, what="n3 joined")
            wait_for(lambda: router.members()["n3"].get("caught_up"), 30, what="n3 caught up")
            phase[0] = "n3 caught up"
            answered_more(10)
            # kill -9: its partitions go to their other replica while the router still
            # thinks it alive (its part fails) and once it is dead (it stays in the ring:
            # liveness is not ownership, so the other replica answers alone)
            phase[0] = "n1 killed"
            c.nodes["n1"].kill9()
            wait_for(lambda: all(m.members()["n1"]["state"] == "dead"
                                 for m in (router, c.nodes["n0"], c.nodes["n2"])), 30,
                     what="n1 seen dead")
            phase[0] = "n1 seen dead"
            answered_more(10)
        finally:
            stop.set()
            t.join(10)
        unserved = metric(router, "synapse_node_search_partitions_unserved_total")
        rerouted = metric(router, "synapse_search_partitions_rerouted_total")
        cu.log(f"{answers[0]} answers; partitions rerouted {rerouted:.0f}, "
               f"named unserved by nodes {unserved:.0f}")
        self.assertEqual(failures[:5], [], "answers that were partial or not exact")
        self.assertEqual(metric(router, "synapse_search_copies_dropped_total"), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
