#!/usr/bin/env python3
"""A node joining a cluster that holds large records (4096-value embeddings, 16 KiB
signatures and public keys: ML-DSA-87 identities) receives every one of them.

128 such records are about 6 MB, past the 4 MiB message limit between members: a records
reply is capped in bytes and says how many of the asked records it covers, and the
joining node asks again for the rest. Before that cap, such a node received none.

Run: python3 tests/integration/test_cluster_large_records.py (SYNAPSE_BIN picks the binary).
"""
import os
import random
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cluster as cu  # noqa: E402
from tracker_proto import rand_hex  # noqa: E402
from wait import wait_for  # noqa: E402

SHARDS = 200
FIELD = 16384


class LargeRecordsHandOff(unittest.TestCase):
    def test_joining_node_receives_every_large_record(self):
        c = cu.Cluster(cluster={"replication": 2, "write_quorum": 1})
        self.addCleanup(c.close)
        c.add_node()
        router = c.add_router()
        c.wait_converged(30)
        rng = random.Random(7)
        hashes = [rand_hex(rng) for _ in range(SHARDS)]
        for i, h in enumerate(hashes):
            body = {"info_hash": h, "display_name": f"large {i}", "model": "m",
                    "dimension": 4096, "embedding": [rng.random() for _ in range(4096)],
                    "signature": "S" * FIELD, "creator_public_key": "K" * FIELD}
            s, raw = router.post("/api/register", body)
            self.assertEqual(s, 200, raw[:200])
        c.add_node()
        c.wait_converged(30)

        def held_by_both():
            return all(sum(1 for st in cu.replica_states(router, h).values() if st[0] == "live")
                       == 2 for h in hashes)
        wait_for(held_by_both, 30, interval=0.5, what="every large record on both replicas")
        figures = cu.sync_figures(router)
        pulled = sum(v.get("records_pulled_total", 0) for (node, kind), v in figures.items())
        self.assertGreaterEqual(pulled, SHARDS)


if __name__ == "__main__":
    unittest.main()
