#!/usr/bin/env python3
"""One router in front of three nodes, as separate processes on loopback.

- Announces through the router land on the owners: with R = 2 of 3 nodes, each node's own
  /cluster/status counts exactly the swarms (and peers) whose replica set (/cluster/owner)
  contains it, and the router's per-node figures agree. Every member computes the same
  owners (ownership is a pure function of the member set).
- A multi-hash scrape spanning all three primaries is merged correctly, over HTTP and UDP
  (counts per hash, request order for UDP, an unknown hash answered with zeros).
- Search through the router (fan-out to every node, k-way merge) equals the exact cosine
  top-k computed here and equals a standalone process holding the same shards; every shard
  is stored on exactly its R replicas.
- /cluster/status is consistent: primaries sum to the partition count, every member's view
  agrees, and last_seen_ms of live members is recent.

Run: /usr/bin/python3 tests/integration/test_cluster_routing.py (SYNAPSE_BIN picks the binary).
"""
import json
import os
import random
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cluster as cu  # noqa: E402
from bencode import bdecode  # noqa: E402
from tracker_proto import ports_of, rand_hash  # noqa: E402
from udp_tracker import UdpClient  # noqa: E402
from vectors import similarity, topk_mismatch  # noqa: E402
from wait import wait_for  # noqa: E402

R = 2
PARTITIONS = 1024
DIM = 16


class ClusterRoutingTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.started = time.monotonic()
        cls.cluster = cu.start_cluster(nodes=3, routers=1,
                                       cluster={"replication": R, "write_quorum": 2},
                                       server={"full_scrape": True})
        cls.router = cls.cluster.routers["r0"]
        cls.nodes = cls.cluster.nodes
        cls.rng = random.Random(4242)
        cls.peers = {}       # info_hash -> {port: seeder?}, every peer announced by the tests
        cls.completed = {}   # info_hash -> completed events
        cls.shards = set()   # every shard registered through the router

    @classmethod
    def tearDownClass(cls):
        cls.cluster.close()

    def track(self, ih, port, left, event=None):
        self.peers.setdefault(ih, {})[port] = left == 0
        if event == "completed":
            self.completed[ih] = self.completed.get(ih, 0) + 1

    def owners(self, hexhash):
        doc = self.router.owner(hexhash)
        self.assertEqual(doc["status"], "success", doc)
        self.assertEqual(len(doc["replicas"]), R, doc)
        self.assertTrue(0 <= doc["partition"] < PARTITIONS, doc)
        return doc["replicas"]

    def node_figures(self, key):
        """{node id: figure} from each node's own /cluster/status (its self entry)."""
        out = {}
        for nid, n in self.nodes.items():
            out[nid] = n.members()[nid][key]
        return out

    def router_figures(self, key):
        view = self.router.members()
        return {nid: view[nid][key] for nid in self.nodes}

    # ------------------------------------------------------------------------------
    def test_1_announces_land_on_owners(self):
        rng = random.Random(1)
        hashes = [rand_hash(rng) for _ in range(60)]
        want_swarms = {nid: 0 for nid in self.nodes}
        want_peers = {nid: 0 for nid in self.nodes}
        for i, ih in enumerate(hashes):
            reps = self.owners(ih.hex())
            # every member computes the same owners
            for n in self.nodes.values():
                self.assertEqual(n.owner(ih.hex())["replicas"], reps, f"owners of {ih.hex()}")
            npeers = 1 + i % 3
            for j in range(npeers):
                d = cu.announce(self.router, ih, 20000 + 10 * i + j, left=j)
                self.track(ih, 20000 + 10 * i + j, j)
                self.assertEqual(ports_of(d[b"peers"]),
                                 [20000 + 10 * i + k for k in range(j)],
                                 "announce reply lists the peers announced before")
                self.assertEqual((d[b"complete"], d[b"incomplete"]), (1, j))
            for nid in reps:
                want_swarms[nid] += 1
                want_peers[nid] += npeers
        cu.log("expected swarms per node", want_swarms, "peers", want_peers)

        def figures_match():
            got = (self.node_figures("swarms"), self.node_figures("peers"))
            return got if got == (want_swarms, want_peers) else None
        try:
            wait_for(figures_match, 10, what="per-node swarms/peers equal the owners' share")
        finally:
            cu.log("nodes report swarms", self.node_figures("swarms"),
                   "peers", self.node_figures("peers"))
        wait_for(lambda: self.router_figures("swarms") == want_swarms, 10,
                 what=f"router's per-node swarms = {want_swarms}")
        self.assertEqual(self.router_figures("peers"), want_peers)

        # a UDP announce through the router reaches the same swarm
        u = UdpClient(self.router.udp_port, host=self.router.host)
        self.addCleanup(u.close)
        cid = u.connect()
        _, leechers, seeders, peers = u.announce(cid, hashes[2], b"-SYCLU1-%012d" % 29999, 29999,
                                                 left=7, event=2, numwant=200)
        ports = ports_of(b"".join(peers))
        self.track(hashes[2], 29999, 7)
        self.assertEqual((seeders, leechers), (1, 3))  # counts include the announcer
        self.assertEqual(ports, [20020, 20021, 20022])

    # ------------------------------------------------------------------------------
    def test_2_scrape_spanning_nodes_is_merged(self):
        rng = random.Random(2)
        spread = []
        for nid in sorted(self.nodes):
            spread += cu.hex_for_primary(self.router, nid, rng, 2)
        hashes = [bytes.fromhex(h) for h in spread]
        want = {}
        for i, ih in enumerate(hashes):
            seeders, leechers = i + 1, i % 3
            for j in range(seeders):
                cu.announce(self.router, ih, 30000 + 100 * i + j, left=0)
                self.track(ih, 30000 + 100 * i + j, 0)
            for j in range(leechers):
                cu.announce(self.router, ih, 30050 + 100 * i + j, left=100)
                self.track(ih, 30050 + 100 * i + j, 100)
            downloaded = 0
            if i % 2 == 0:  # a leecher completes: downloaded counts it
                cu.announce(self.router, ih, 30090 + 100 * i, left=100)
                cu.announce(self.router, ih, 30090 + 100 * i, left=0, event="completed")
                self.track(ih, 30090 + 100 * i, 0, "completed")
                seeders, downloaded = seeders + 1, 1
            want[ih] = (seeders, downloaded, leechers)
        unknown = rand_hash(rng)
        order = hashes[::-1] + [unknown]

        files = cu.scrape(self.router, order)
        for ih in hashes:
            self.assertIn(ih, files, f"scrape reply lacks {ih.hex()}")
            f = files[ih]
            self.assertEqual((f[b"complete"], f[b"downloaded"], f[b"incomplete"]), want[ih],
                             f"HTTP scrape of {ih.hex()} (primary {self.owners(ih.hex())[0]})")
        if unknown in files:  # BEP 48 allows omitting it; if present it must be zeros
            f = files[unknown]
            self.assertEqual((f[b"complete"], f[b"downloaded"], f[b"incomplete"]), (0, 0, 0))
        self.assertLessEqual(set(files), set(order))

        u = UdpClient(self.router.udp_port, host=self.router.host)
        self.addCleanup(u.close)
        cid = u.connect()
        got = u.scrape(cid, order)
        expect = [want[ih] for ih in hashes[::-1]] + [(0, 0, 0)]
        self.assertEqual(got, expect, "UDP scrape: (seeders, completed, leechers) per hash in order")

    # ------------------------------------------------------------------------------
    def test_3_search_equals_exact_and_standalone(self):
        rng = random.Random(3)
        n = 150
        vecs = cu.make_vectors(rng, n, DIM)
        items = {}
        for i, v in enumerate(vecs):
            h = rand_hash(rng).hex()
            items[h] = v
            doc = cu.register(self.router, h, v)
            self.assertEqual(doc.get("info_hash"), h, doc)
            self.shards.add(h)

        sa = cu.Standalone().start()
        self.addCleanup(sa.close)
        for h, v in items.items():
            cu.register(sa, h, v)

        # every shard is found through the router, and stored on exactly its replicas
        want_shards = {nid: 0 for nid in self.nodes}
        for h in items:
            s, doc = cu.get_shard(self.router, h)
            self.assertEqual(s, 200, doc)
            self.assertEqual(doc.get("status"), "success", doc)
            got_hash = doc.get("info_hash") or (doc.get("shard") or {}).get("info_hash")
            self.assertEqual(got_hash, h, doc)
            for nid in self.owners(h):
                want_shards[nid] += 1
        wait_for(lambda: self.node_figures("shards") == want_shards, 10,
                 what=f"per-node shard counts = {want_shards} "
                      f"(got {self.node_figures('shards')})")

        queries = cu.make_vectors(random.Random(33), 6, DIM) + [items[next(iter(items))]]
        for qi, qv in enumerate(queries):
            for k in (1, 10, 40):
                doc = cu.search(self.router, qv, limit=k)
                self.assertFalse(doc.get("partial"), f"query {qi}: partial answer {doc}")
                self.assertEqual(doc["count"], len(doc["results"]))
                err = topk_mismatch(doc["results"], qv, items, k)
                self.assertIsNone(err, f"cluster search, query {qi}, k={k}: {err}")
                ref = cu.search(sa, qv, limit=k)
                err = topk_mismatch(ref["results"], qv, items, k)
                self.assertIsNone(err, f"standalone search, query {qi}, k={k}: {err}")
                self.assertEqual(len(doc["results"]), len(ref["results"]))
                by_hash = {x["info_hash"]: x for x in ref["results"]}
                for rank, (a, b) in enumerate(zip(doc["results"], ref["results"])):
                    # same hit at each rank, except that near-equal similarities may swap
                    self.assertAlmostEqual(a["similarity"], b["similarity"], delta=1e-5,
                                           msg=f"query {qi}, k={k}, rank {rank}")
                    if a["info_hash"] != b["info_hash"]:
                        self.assertAlmostEqual(
                            similarity(qv, items[a["info_hash"]]),
                            similarity(qv, items[b["info_hash"]]), delta=1e-5,
                            msg=f"query {qi}, k={k}, rank {rank}: cluster {a['info_hash']} "
                                f"standalone {b['info_hash']}")
                    if a["info_hash"] in by_hash:
                        b = by_hash[a["info_hash"]]
                        for key in ("display_name", "model", "dimension", "tags"):
                            self.assertEqual(a.get(key), b.get(key), f"{key} of {a['info_hash']}")

    # ------------------------------------------------------------------------------
    def test_4_status_consistent(self):
        views = {m.id: m.status() for m in self.cluster.live()}
        for mid, doc in views.items():
            self.assertEqual(doc["status"], "success")
            self.assertEqual(doc["self"], mid)
            self.assertEqual(doc["partitions"], PARTITIONS)
            self.assertEqual(doc["replication_factor"], R)
            members = {m["id"]: m for m in doc["members"]}
            self.assertEqual(set(members), {"n0", "n1", "n2", "r0"}, mid)
            nodes = [m for m in members.values() if m["role"] == "node"]
            self.assertEqual(sum(m["partitions_primary"] for m in nodes), PARTITIONS, mid)
            self.assertEqual(sum(m["partitions_replica"] for m in nodes), PARTITIONS * (R - 1), mid)
            self.assertEqual(members["r0"]["role"], "router")
            self.assertEqual(members["r0"]["partitions_primary"], 0)
            for m in nodes:  # balance: 1024 / 3 = 341 each, rendezvous spread is small
                self.assertTrue(280 <= m["partitions_primary"] <= 400, m)
            # every member's view agrees on ownership
            ref = {m["id"]: (m["partitions_primary"], m["partitions_replica"], m["state"])
                   for m in views["r0"]["members"]}
            self.assertEqual({m["id"]: (m["partitions_primary"], m["partitions_replica"],
                                        m["state"]) for m in doc["members"]}, ref, mid)

    def test_5_last_seen_is_recent(self):
        # Probes every 200 ms: a live member is heard from several times a second, so a
        # last_seen_ms of many seconds is stale (the figure operators read to spot a
        # silent member). Each member's view of every live node must be recent, also
        # once the cluster has run a while (a figure frozen at join time would pass early).
        remaining = self.started + 6.0 - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)
        stale = []
        for m in self.cluster.live():
            for other in m.status()["members"]:
                if other["role"] != "node" or other.get("self"):
                    continue
                ls = other["last_seen_ms"]
                if ls is None or ls > 3000:
                    stale.append(f"{m.id} sees {other['id']} last_seen_ms={ls}")
        self.assertEqual(stale, [], "last_seen_ms of live members is stale")

    def test_6_full_scrape_lists_each_swarm_once(self):
        # R = 2: every swarm lives on two nodes; the merged full scrape must still list
        # each once, with its counts, as a canonical bencoded dictionary
        s, body = self.router.get("/scrape")
        self.assertEqual(s, 200)
        files = bdecode(body, strict=True)[b"files"]
        want = {ih: (sum(p.values()), self.completed.get(ih, 0), sum(not x for x in p.values()))
                for ih, p in self.peers.items()}
        got = {ih: (f[b"complete"], f[b"downloaded"], f[b"incomplete"]) for ih, f in files.items()}
        self.assertEqual(got, want)

    def test_7_api_stats_count_each_thing_once(self):
        # The cluster must be invisible to clients: /api/stats through the router answers
        # what one tracker holding the same data would (R copies are not R shards).
        s, raw = self.router.get("/api/stats")
        self.assertEqual(s, 200, raw)
        doc = json.loads(raw)
        cu.log("/api/stats:", doc)
        want = {"total_shards": len(self.shards),
                "active_torrents": len(self.peers),
                "total_peers": sum(len(p) for p in self.peers.values())}
        self.assertEqual({k: doc.get(k) for k in want}, want)


if __name__ == "__main__":
    unittest.main(verbosity=2)
