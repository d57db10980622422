#!/usr/bin/env python3
"""Versioned writes and tombstones across real processes: a router in front of three
nodes (R = 3, W = 2) on loopback.

- Rolling restart: a replica is killed, 30 acknowledged shards are deleted, the two
  survivors are restarted one at a time, the dead replica comes back and anti-entropy
  runs: no deleted shard comes back anywhere (GET, search, and on every replica), and no
  kept shard is lost.
- Register, delete, register again, each acknowledged in sequence: after anti-entropy
  every shard is live, with its last content, on every replica.
- Two routers update the same shard concurrently while its primary is paused (so two
  nodes coordinate writes): every replica ends on the same version, the newest.
- A replica away longer than the tombstone grace: its deleted shards' tombstones are
  purged everywhere meanwhile; back, it discards its partitions and pulls them again, so
  it serves no stale and no deleted shard.

Run: /usr/bin/python3 tests/integration/test_cluster_versions.py (SYNAPSE_BIN picks the binary).
"""
import os
import random
import signal
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cluster as cu  # noqa: E402
from wait import wait_for  # noqa: E402

DIM = 8
# Anti-entropy every second: what the test waits for is repair, not the schedule.
FAST_REPAIR = {"anti_entropy_interval_ms": 1000}


def vec(rng):
    return [round(rng.uniform(-1, 1), 4) for _ in range(DIM)]


def every_replica(router, h, want_state, want_name=None):
    """True when every replica of h holds it in want_state (and with want_name)."""
    states = cu.replica_states(router, h)
    if len(states) < 3:
        return False
    return all(st == want_state and (want_name is None or name == want_name)
               for st, _, name in states.values())


class ClusterVersionsTest(unittest.TestCase):
    def setUp(self):
        self.rng = random.Random(self.id())

    def start(self, cluster_keys=None, routers=1):
        keys = dict(FAST_REPAIR, **(cluster_keys or {}))
        self.cluster = cu.start_cluster(nodes=3, routers=routers, cluster=keys)
        self.addCleanup(self.cluster.close)
        return self.cluster

    def test_rolling_restart_keeps_deletes(self):
        c = self.start()
        router = c.routers["r0"]
        shards = {cu.stable_hex("rolling", i): vec(self.rng) for i in range(60)}
        for h, v in shards.items():
            cu.register(router, h, v, name=f"keep {h[:6]}")
        doomed = list(shards)[:30]
        kept = list(shards)[30:]
        c.nodes["n2"].kill9()
        wait_for(lambda: router.members()["n2"]["state"] != "alive", 15, what="n2 seen down")
        for h in doomed:
            cu.delete_shard(router, h)
        for survivor in ("n0", "n1"):  # a rolling restart of the two survivors
            c.nodes[survivor].kill9()
            c.restart_node(survivor)
            wait_for(c.nodes[survivor].ready, 30, what=f"{survivor} ready again")
        c.restart_node("n2")
        c.wait_converged(30)
        wait_for(c.nodes["n2"].ready, 30, what="n2 ready again")
        wait_for(lambda: all(every_replica(router, h, "deleted") for h in doomed), 30,
                 what="every replica holds the tombstones")
        wait_for(lambda: all(every_replica(router, h, "live") for h in kept), 30,
                 what="every replica holds the kept shards")
        # n2 missed the deletes: its catch-up pulled the tombstones, comparing digests.
        n2_pulled = cu.sync_figures(router)[("n2", "catch_up")]["records_pulled_total"]
        self.assertGreaterEqual(n2_pulled, len(doomed))
        back = [h for h in doomed if cu.get_shard(router, h)[0] != 404]
        self.assertEqual(back, [], "deleted shards readable again")
        lost = [h for h in kept if cu.get_shard(router, h)[0] != 200]
        self.assertEqual(lost, [], "kept shards lost")
        for h in doomed[:10]:
            hits = [r["info_hash"] for r in cu.search(router, shards[h], limit=3)["results"]]
            self.assertNotIn(h, hits, "a deleted shard found by search")
        # Later anti-entropy rounds change nothing.
        cu.await_anti_entropy_rounds(router, ("n0", "n1", "n2"))
        self.assertTrue(all(every_replica(router, h, "deleted") for h in doomed))

    def test_register_delete_register(self):
        c = self.start()
        router = c.routers["r0"]
        final = {}
        for i in range(40):
            h = cu.stable_hex("again", i)
            cu.register(router, h, vec(self.rng), name=f"first {i}")
            cu.delete_shard(router, h)
            cu.register(router, h, vec(self.rng), name=f"second {i}")
            final[h] = f"second {i}"
        # Two anti-entropy rounds later, every replica holds the last write.
        cu.await_anti_entropy_rounds(router, ("n0", "n1", "n2"))
        wait_for(lambda: all(every_replica(router, h, "live", n) for h, n in final.items()), 20,
                 what="every replica holds each shard's last registration")
        for h, name in final.items():
            s, doc = cu.get_shard(router, h)
            self.assertEqual(s, 200, f"{h[:8]} lost")
            self.assertEqual(doc["display_name"], name)

    def test_concurrent_updates_converge_on_newest(self):
        c = self.start(routers=2)
        r0, r1 = c.routers["r0"], c.routers["r1"]
        wait_for(r1.ready, 30, what="r1 ready")
        h = cu.stable_hex("contended", 0)
        v = vec(self.rng)
        cu.register(r0, h, v, name="initial")
        primary = r0.owner(h)["replicas"][0]
        acked = []
        stop = threading.Event()

        def writer(router, tag):
            i = 0
            while not stop.is_set():
                name = f"{tag}-{i}"
                try:
                    cu.register(router, h, v, name=name)
                    acked.append(name)
                except (AssertionError, OSError):
                    pass  # refused while the primary is paused: not acknowledged
                i += 1

        threads = [threading.Thread(target=writer, args=(r, t)) for r, t in ((r0, "a"), (r1, "b"))]
        for t in threads:
            t.start()
        try:
            time.sleep(1.0)
            # Pause the primary: the routers time out on it and send writes to the next
            # replica, so two nodes coordinate writes of one shard at once.
            c.nodes[primary].proc.proc.send_signal(signal.SIGSTOP)
            time.sleep(3.0)
            c.nodes[primary].proc.proc.send_signal(signal.SIGCONT)
            time.sleep(1.5)
        finally:
            stop.set()
            for t in threads:
                t.join()
        self.assertTrue(acked, "no update was acknowledged")

        seen = {}

        def converged():
            states = seen["last"] = cu.replica_states(r0, h)
            # Every replica answered; those serving reads (a quorum at least) hold one
            # version. The paused one may still refuse reads while it compares everything
            # after its pause ("error"): not a divergence, and its version is not read.
            live = {k: v for k, v in states.items() if v[0] == "live"}
            versions = {ver for _, ver, _ in live.values()}
            return len(states) == 3 and len(live) >= 2 and len(versions) == 1 and live
        try:
            states = wait_for(converged, 30, what="every replica on one version")
        except AssertionError:
            raise AssertionError(f"replicas not on one version within 30 s: {seen.get('last')}")
        version = next(iter(states.values()))[1]
        name = next(iter(states.values()))[2]
        cu.log(f"{len(acked)} updates acknowledged; replicas end on {version} ({name})")
        self.assertIn(name, acked)
        # The newest: no replica ever answers with a version above it.
        hlc = int(version.split(".")[0])
        for rt in (r0, r1):
            s, doc = cu.get_shard(rt, h)
            self.assertEqual(s, 200)
            self.assertEqual(doc["version"], version)
            self.assertLessEqual(int(doc["version"].split(".")[0]), hlc)

    def test_replica_back_after_the_grace_serves_nothing_stale(self):
        # Grace 6 s, reap 3 s (the grace must outlast the reap): a replica away 9 s finds
        # its deleted shards' tombstones purged everywhere.
        c = self.start({"tombstone_grace_s": 6, "reap_timeout_s": 3})
        router = c.routers["r0"]
        shards = {cu.stable_hex("grace", i): vec(self.rng) for i in range(30)}
        for h, v in shards.items():
            cu.register(router, h, v, name="before")
        doomed, updated, untouched = list(shards)[:10], list(shards)[10:20], list(shards)[20:]
        c.nodes["n2"].kill9()
        wait_for(lambda: router.members()["n2"]["state"] == "dead", 15, what="n2 dead")
        for h in doomed:
            cu.delete_shard(router, h)
        for h in updated:
            cu.register(router, h, shards[h], name="after")
        # n2 is reaped (3 s), the tombstones are purged (6 s grace, purge every 3 s).
        wait_for(lambda: "n2" not in router.members(), 20, what="n2 reaped")
        time.sleep(9.0)
        c.restart_node("n2")
        c.wait_converged(30)
        wait_for(c.nodes["n2"].ready, 30, what="n2 ready")
        wait_for(lambda: all(every_replica(router, h, "live", "after") for h in updated), 30,
                 what="updated shards new everywhere")
        states = {h: cu.replica_states(router, h) for h in doomed}
        stale = {h[:8]: s for h, s in states.items() if any(st == "live" for st, _, _ in s.values())}
        self.assertEqual(stale, {}, "a deleted shard held again")
        for h in doomed:
            self.assertEqual(cu.get_shard(router, h)[0], 404)
        for h in untouched:
            self.assertTrue(every_replica(router, h, "live", "before"), h[:8])
        # Reads from n2 alone: freeze the others until the router declares them dead.
        others = [c.nodes[n] for n in ("n0", "n1")]
        for m in others:
            m.proc.proc.send_signal(signal.SIGSTOP)
        try:
            # Dead, or already reaped (3 s after): either way the router routes around them.
            wait_for(lambda: all(router.members().get(m.id, {"state": "dead"})["state"] == "dead"
                                 for m in others), 20, what="router declares n0 and n1 dead")
            wait_for(lambda: cu.get_shard(router, untouched[0])[0] == 200, 15, what="n2 serves")
            served = {h[:8]: cu.get_shard(router, h)[0] for h in doomed + updated}
            self.assertEqual({k: v for k, v in served.items() if v not in (200, 404)}, {})
            self.assertEqual([h for h in doomed if cu.get_shard(router, h)[0] != 404], [])
            names = {cu.get_shard(router, h)[1]["display_name"] for h in updated}
            self.assertEqual(names, {"after"})
        finally:
            for m in others:
                m.proc.proc.send_signal(signal.SIGCONT)


if __name__ == "__main__":
    unittest.main(verbosity=2)
