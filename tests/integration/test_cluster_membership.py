#!/usr/bin/env python3
"""Membership changes on purpose: a fourth node joins, then a node leaves gracefully.

One router, three nodes (R = 3, W = 2), fast failure detection. Shards are registered and
swarms announced first, replicated everywhere. A checker thread then runs a loop through
the router for the whole scenario: announce as a new peer of a known swarm (the swarm's
first peers must be in the reply), get a known shard, register a new shard (of another
model, so that it cannot disturb the exact search check) and, every few rounds, search
(exact cosine top-k over the known shards, not partial). Every failure is recorded.

Join (n3), while 30 of the shards are deleted one by one:
- every member lists n3 alive (convergence time printed);
- n3 becomes primary for about 1/4 of the partitions (1024/4 = 256, tolerance +-56), the
  primaries sum to 1024, and nothing else moves: for sampled hashes, a primary that changed
  changed to n3, and each new replica list without n3 is a prefix of the old one;
- hand-off: n3 comes to hold the shards and swarms of its partitions (> 0, and exactly the
  count its replica sets imply); the old nodes drop what they no longer own;
- no request failed meanwhile, and the deleted shards stay deleted (GET 404, not found by
  search): the hand-off must not bring back a copy older than the delete.
Leave (SIGTERM n1):
- every member lists n1 as left (or drops it), n1 owns nothing, the primaries still sum to
  1024 over the others, and n1 exits within its hand-off bound;
- every remaining node holds every shard and swarm (R = 3 of 3 again), and nothing more
  (no deleted shard kept);
- no request failed during the leave; every shard registered during either change is found.
Each replica on its own (what it holds itself, per /cluster/shard): every live shard and
none of the deleted ones.

Run: /usr/bin/python3 tests/integration/test_cluster_membership.py (SYNAPSE_BIN picks the binary).
"""
import json
import os
import random
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cluster as cu  # noqa: E402
from http_client import KeepAlive  # noqa: E402
from tracker_proto import ports_of, rand_hash  # noqa: E402
from vectors import topk_mismatch  # noqa: E402
from wait import wait_for  # noqa: E402

DIM = 16
LOOP_MODEL, LOOP_DIM = "cluster-loop-model", 8
PARTITIONS = 1024
N_SHARDS, N_SWARMS, N_DELETED = 150, 40, 30


class Checker:
    """The request loop that must never fail while members change."""

    def __init__(self, router, items, swarms, seed, doomed=()):
        self.router, self.items, self.swarms = router, items, swarms
        self.doomed = set(doomed)  # being deleted meanwhile: may still appear in results
        self.failures = []      # (time, what, detail)
        self.acked = {}         # loop registrations acknowledged: hex -> vector
        self.unacked = {}       # loop registrations that failed (may exist or not)
        self.acked_at = {}      # hex -> (sent, acknowledged), monotonic
        self.pause_registers = threading.Event()
        self.rounds = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.rng = random.Random(seed)
        self.queries = cu.make_vectors(random.Random(55), 8, DIM)

    def start(self):
        self.thread.start()
        return self

    def finish(self):
        self.stop.set()
        self.thread.join(60)

    def quiesce_registers(self):
        """Stops new registrations and waits for the one in flight."""
        self.pause_registers.set()
        r = self.rounds
        wait_for(lambda: self.rounds >= r + 2 or not self.thread.is_alive(), 20,
                 what="checker rounds")

    def summary(self, t0):
        kinds = {}
        for t, w, _ in self.failures:
            kinds.setdefault(w, []).append(round(t - t0, 2))
        return {w: f"{len(ts)} failed, from {ts[0]}s to {ts[-1]}s" for w, ts in kinds.items()}

    def fail(self, what, detail):
        self.failures.append((time.monotonic(), what, str(detail)[:300]))

    def run(self):
        conn = KeepAlive(self.router.host, self.router.http_port, timeout=10)
        keys = list(self.items)
        swarm_keys = list(self.swarms)
        while not self.stop.is_set():
            self.rounds += 1
            i = self.rounds
            ih = swarm_keys[i % len(swarm_keys)]
            try:
                d = cu.announce(self.router, ih, 41000 + i % 50, left=1, conn=conn)
                got = set(ports_of(d[b"peers"]))
                if not set(self.swarms[ih]) <= got:
                    self.fail("announce", f"{ih.hex()}: peers {sorted(got)} lack {self.swarms[ih]}")
            except Exception as e:
                self.fail("announce", e)
            h = keys[i % len(keys)]
            try:
                s, doc = cu.get_shard(self.router, h, conn=conn)
                if s != 200 or doc.get("status") != "success":
                    self.fail("get", f"{h}: {s} {doc}")
            except Exception as e:
                self.fail("get", e)
            nh = rand_hash(self.rng).hex()
            nv = [self.rng.gauss(0, 1) for _ in range(LOOP_DIM)]
            if not self.pause_registers.is_set():
                try:
                    t = time.monotonic()
                    cu.register(self.router, nh, nv, conn=conn, model=LOOP_MODEL)
                    self.acked[nh] = nv
                    self.acked_at[nh] = (t, time.monotonic())
                except Exception as e:
                    self.unacked[nh] = nv
                    self.fail("register", e)
            if i % 4 == 0:
                qv = self.queries[i % len(self.queries)]
                try:
                    doc = cu.search(self.router, qv, limit=10, filters={"model": cu.MODEL})
                    if doc.get("partial"):
                        self.fail("search", "partial answer")
                    results = [r for r in doc["results"] if r["info_hash"] not in self.doomed]
                    err = None if len(doc["results"]) == 10 else f"{len(doc['results'])} hits"
                    err = err or topk_mismatch(results, qv, self.items, len(results))
                    if err:
                        self.fail("search", err)
                except Exception as e:
                    self.fail("search", e)
        conn.close()


class ClusterMembershipTest(unittest.TestCase):
    def setUp(self):
        self.cluster = cu.start_cluster(nodes=3, routers=1)
        self.addCleanup(self.cluster.close)
        self.router = self.cluster.routers["r0"]

    def figure(self, nid, key):
        n = self.cluster.nodes[nid]
        return n.members()[nid][key]

    def api_stats(self):
        """(total_shards, active_torrents) from the router's /api/stats: what one tracker
        holding the same data would answer, whatever the replication."""
        s, raw = self.router.get("/api/stats")
        doc = json.loads(raw)
        cu.log("/api/stats:", doc)
        return doc.get("total_shards"), doc.get("active_torrents")

    def expected_counts(self, hashes):
        """{node: how many of hashes have it among their replicas} per the router."""
        out = {}
        for h in hashes:
            for nid in self.router.owner(h)["replicas"]:
                out[nid] = out.get(nid, 0) + 1
        return out

    def wait_holdings(self, key, hashes, node_ids, timeout, what, maybe=(), at_least=False):
        """Waits until each node's figure equals the number of `hashes` it is a replica
        of, plus at most the number of `maybe` hashes it is a replica of (registrations
        that failed may or may not have been stored)."""
        low = self.expected_counts(hashes)
        extra = self.expected_counts(maybe)
        want = {nid: (low.get(nid, 0), 1 << 60 if at_least else low.get(nid, 0) + extra.get(nid, 0))
                for nid in node_ids}

        def check():
            got = {nid: self.figure(nid, key) for nid in node_ids}
            check.last = got
            return all(want[n][0] <= got[n] <= want[n][1] for n in node_ids)
        check.last = None
        try:
            wait_for(check, timeout, interval=0.1, what=f"{what}: {key} in {want}")
        finally:
            cu.log(f"{what}: {key} want {want} got {check.last}")

    def test_join_then_graceful_leave(self):
        rng = random.Random(9)
        router, cluster = self.router, self.cluster
        items = {}
        for v in cu.make_vectors(rng, N_SHARDS, DIM):
            h = rand_hash(rng).hex()
            cu.register(router, h, v)
            items[h] = v
        swarms = {}
        for i in range(N_SWARMS):
            ih = rand_hash(rng)
            swarms[ih] = [52000 + 2 * i, 52001 + 2 * i]
            cu.announce(router, ih, swarms[ih][0], left=0)
            cu.announce(router, ih, swarms[ih][1], left=9)
        for nid in cluster.nodes:
            wait_for(lambda: (self.figure(nid, "shards"), self.figure(nid, "swarms"))
                     == (N_SHARDS, N_SWARMS), 10, what=f"{nid} holds everything")
        self.assertEqual(len(items), N_SHARDS)
        sample = [rand_hash(rng).hex() for _ in range(400)]
        owners_before = {h: router.owner(h)["replicas"] for h in sample}

        # ================= join =================
        # Shards deleted while n3 joins and pulls its partitions: the hand-off must not
        # bring them back (a pulled copy older than the delete).
        doomed = {h: items.pop(h) for h in list(items)[:N_DELETED]}
        delete_errors = []

        def deleter():
            time.sleep(0.2)
            for h in doomed:
                try:
                    cu.delete_shard(router, h)
                except AssertionError as e:
                    delete_errors.append(str(e))
                time.sleep(0.05)
        checker = Checker(router, items, swarms, seed=1, doomed=doomed).start()
        self.addCleanup(checker.finish)
        time.sleep(0.5)
        t0 = time.monotonic()
        deleting = threading.Thread(target=deleter, daemon=True)
        deleting.start()
        n3 = cluster.add_node("n3")
        wait_for(lambda: cluster.converged(["n3"]), 30, what="every member lists n3 alive")
        cu.log(f"join: n3 alive everywhere {time.monotonic() - t0:.2f}s after its start")
        wait_for(n3.ready, 30, what="n3 /readyz")

        view = router.members()
        primaries = {nid: view[nid]["partitions_primary"] for nid in cluster.nodes}
        cu.log("primaries after join:", primaries)
        owners_after = {h: router.owner(h)["replicas"] for h in sample}
        moved = [h for h in sample if owners_after[h][0] != owners_before[h][0]]
        cu.log(f"join: {len(moved)} of {len(sample)} sampled primaries moved")
        with self.subTest("join: a quarter of the partitions move, to n3 only"):
            self.assertEqual(sum(primaries.values()), PARTITIONS)
            self.assertTrue(200 <= primaries["n3"] <= 312, primaries)
            self.assertTrue(0.15 <= len(moved) / len(sample) <= 0.35, len(moved))
            self.assertEqual([h for h in moved if owners_after[h][0] != "n3"], [],
                             "primaries that moved elsewhere than the new node")
            for h in sample:
                rest = [x for x in owners_after[h] if x != "n3"]
                self.assertEqual(rest, owners_before[h][:len(rest)],
                                 f"{h}: replicas {owners_before[h]} -> {owners_after[h]}")
        for m in cluster.live():  # every member computes the same owners
            self.assertEqual({h: m.owner(h)["replicas"] for h in sample[:40]},
                             {h: owners_after[h] for h in sample[:40]}, m.id)

        checker.quiesce_registers()
        deleting.join(30)
        all_shards = list(items) + list(checker.acked)
        with self.subTest("join: hand-off to n3"):
            self.wait_holdings("shards", all_shards, ["n3"], 20, "after join",
                               maybe=list(checker.unacked))
            self.wait_holdings("swarms", [ih.hex() for ih in swarms], ["n3"], 10, "after join")
            self.assertGreater(self.figure("n3", "shards"), 0)
        with self.subTest("join: the old owners drop what moved to n3"):
            # A drop waits for every current holder to vouch it caught up: with two
            # clusters' worth of processes on two cores that took over 10 s.
            self.wait_holdings("shards", all_shards, ["n0", "n1", "n2"], 25, "after join",
                               maybe=list(checker.unacked))
            self.wait_holdings("swarms", [ih.hex() for ih in swarms], ["n0", "n1", "n2"], 10,
                               "after join")
        with self.subTest("join: /api/stats counts each shard and swarm once"):
            shards, torrents = self.api_stats()
            self.assertEqual(torrents, N_SWARMS)
            self.assertTrue(len(all_shards) <= shards <= len(all_shards) + len(checker.unacked),
                            f"total_shards {shards}, registered {len(all_shards)}")
        time.sleep(0.5)
        checker.finish()
        join_failures = checker.failures
        cu.log(f"join: {checker.rounds} checker rounds, {len(join_failures)} failures:",
               checker.summary(t0), join_failures[:4])
        with self.subTest("join: no request failed"):
            self.assertGreater(checker.rounds, 10)
            self.assertEqual(join_failures, [])
        acked = dict(checker.acked)
        maybe = dict(checker.unacked)
        acked_at = {h: ("join", a - t0, b - t0) for h, (a, b) in checker.acked_at.items()}
        with self.subTest("join: shards deleted during the hand-off stay deleted"):
            self.assertEqual(delete_errors, [], "deletes refused during the join")
            back = [h for h in doomed if cu.get_shard(router, h)[0] != 404]
            self.assertEqual(back, [], "deleted shards found again by GET after the join")
            back = []
            for h, v in doomed.items():
                doc = cu.search(router, v, limit=3, filters={"model": cu.MODEL})
                if h in [r["info_hash"] for r in doc["results"]]:
                    back.append(h)
            self.assertEqual(back, [], "deleted shards found again by search after the join")

        # ================= graceful leave =================
        checker = Checker(router, items, swarms, seed=2).start()
        self.addCleanup(checker.finish)
        time.sleep(0.5)
        leaver = cluster.nodes["n1"]
        t0 = time.monotonic()
        leaver.terminate()
        others = [m for m in cluster.live() if m.id != "n1"]

        seen = {}  # member -> n1's state there, or the error asking it
        stuck = {}  # member -> its threads' stacks the first time it did not answer

        def left_everywhere():
            for m in others:
                try:
                    v = m.members()
                except OSError as e:
                    seen[m.id] = f"{e!r} at {time.monotonic() - t0:.2f}s"
                    if m.id not in stuck:  # its stacks while it does not answer
                        stuck[m.id] = m.thread_dump()
                    return False
                seen[m.id] = v["n1"]["state"] if "n1" in v else "reaped"
            return all(st in ("left", "reaped") for st in seen.values())
        try:
            wait_for(left_everywhere, 20, what="every member lists n1 as left")
        except AssertionError as e:
            dumps = "".join(f"\n--- {mid} did not answer; its threads:\n{d}"
                            for mid, d in stuck.items())
            raise AssertionError(f"{e}; n1 as each member saw it: {seen}{dumps}") from None
        cu.log(f"leave: n1 left everywhere {time.monotonic() - t0:.2f}s after SIGTERM")
        rc = leaver.wait_exit(30)
        cu.log(f"leave: n1 exited with {rc} {time.monotonic() - t0:.2f}s after SIGTERM")
        with self.subTest("leave: the process exits cleanly"):
            self.assertEqual(rc, 0, "" if rc is not None else
                             f"still running; its threads:\n{leaver.thread_dump()}")
        view = router.members()
        with self.subTest("leave: n1 owns nothing; the others own everything"):
            if "n1" in view:
                self.assertEqual(view["n1"]["partitions_primary"], 0)
                self.assertEqual(view["n1"]["partitions_replica"], 0)
            self.assertEqual(sum(view[n]["partitions_primary"] for n in ("n0", "n2", "n3")),
                             PARTITIONS)
            for h in sample[:100]:  # nothing else moves: the others keep their order
                now = router.owner(h)["replicas"]
                self.assertEqual(len(now), 3, now)
                self.assertNotIn("n1", now)
                self.assertEqual([x for x in now if x in owners_after[h]],
                                 [x for x in owners_after[h] if x != "n1"],
                                 f"{h}: replicas {owners_after[h]} -> {now}")
        remaining = ["n0", "n2", "n3"]
        checker.quiesce_registers()
        everything = list(items) + list(acked) + list(checker.acked)
        with self.subTest("leave: every remaining node holds everything"):
            self.wait_holdings("shards", everything, remaining, 30, "after leave", at_least=True)
            self.wait_holdings("swarms", [ih.hex() for ih in swarms], remaining, 30, "after leave")
        with self.subTest("leave: and nothing else (no deleted shard kept)"):
            self.wait_holdings("shards", everything, remaining, 5, "after leave",
                               maybe=list(maybe) + list(checker.unacked))
        with self.subTest("leave: /api/stats counts each shard and swarm once"):
            shards, torrents = self.api_stats()
            self.assertEqual(torrents, N_SWARMS)
            unsure = len(maybe) + len(checker.unacked)
            self.assertTrue(len(everything) <= shards <= len(everything) + unsure,
                            f"total_shards {shards}, registered {len(everything)}")
        time.sleep(0.5)
        checker.finish()
        cu.log(f"leave: {checker.rounds} checker rounds, {len(checker.failures)} failures:",
               checker.summary(t0), [(round(t - t0, 2), w, d) for t, w, d in checker.failures[:4]])
        with self.subTest("leave: no request failed"):
            self.assertGreater(checker.rounds, 10)
            self.assertEqual(checker.failures, [])
        acked.update(checker.acked)
        acked_at.update({h: ("leave", a - t0, b - t0) for h, (a, b) in checker.acked_at.items()})

        with self.subTest("leave: shards deleted during the join stay deleted"):
            back = [(h, router.owner(h)["replicas"]) for h in doomed
                    if cu.get_shard(router, h)[0] != 404]
            self.assertEqual(back, [], "deleted shards found again by GET after the leave")
            back = []
            for h, v in doomed.items():
                doc = cu.search(router, v, limit=3, filters={"model": cu.MODEL})
                if h in [r["info_hash"] for r in doc["results"]]:
                    back.append(h)
            self.assertEqual(back, [], "deleted shards found again by search after the leave")

        with self.subTest("registrations made during the changes are all found"):
            lost = [h for h in acked if cu.get_shard(router, h)[0] != 200]
            self.assertEqual(lost, [], f"{len(lost)} of {len(acked)} acknowledged shards lost")
            for h in list(acked)[:20]:
                doc = cu.search(router, acked[h], limit=1, filters={"model": LOOP_MODEL})
                self.assertEqual([r["info_hash"] for r in doc["results"]], [h])

        # ================= each replica on its own =================
        # R = 3 of 3 nodes now: every node must hold every live shard and none of the
        # deleted ones. A GET reads a quorum of replicas, so ask each replica what it
        # holds (/cluster/shard: every replica's own record or tombstone).
        live = list(items) + list(acked)
        holdings = {h: cu.replica_states(router, h) for h in live + list(doomed)}
        for alone in remaining:
            missing = [h for h in live if holdings[h].get(alone, ("absent",))[0] != "live"]
            back = [h for h in doomed if holdings[h].get(alone, ("absent",))[0] == "live"]
            cu.log(f"{alone} alone: {len(missing)} of {len(live)} live shards missing, "
                   f"{len(back)} of {len(doomed)} deleted shards present; missing (hash, "
                   f"replicas, registered during, sent/acked s after the change):",
                   [(h[:8], router.owner(h)["replicas"], *[round(x, 2) if isinstance(x, float)
                                                            else x for x in acked_at.get(h, ())])
                    for h in missing])
            with self.subTest(f"{alone} alone holds every live shard"):
                self.assertEqual(missing, [])
            with self.subTest(f"{alone} alone holds no deleted shard"):
                self.assertEqual(back, [], f"deleted shards still held by {alone}")

if __name__ == "__main__":
    unittest.main(verbosity=2)
