#!/usr/bin/env python3
"""kill -9 of one node under load: one router, three nodes (R = 3, W = 2), fast failure
detection (probe 200 ms / timeout 100 ms) and a 500 ms router deadline per request.

Before the kill: shards registered (acknowledged) and peers announced, replicated to every
replica (each node's /cluster/status counts them). Then two threads load the router, one
announcing over HTTP keep-alive, one registering shards, while the victim (n0, which is also
everyone's seed) gets SIGKILL. Checked:
- the survivors and the router mark the victim suspect, then dead (detection time printed);
- every announce sent later than DETECTION_BOUND_S after the kill succeeds (and the time of
  the last failure is printed), and so does every registration (2 of 3 replicas remain, W = 2);
- peers announced before the kill are returned to a new peer of the same swarm;
- every acknowledged registration (before and during the failure) is found by GET and by
  search, and search answers are complete (not partial) and exact once the death is known;
- liveness is not ownership: the dead node keeps its partitions (no reshuffle), and when it
  restarts with its id and data directory it rejoins without a reshuffle, catches up the
  shards registered meanwhile, and the old peers are still returned.
Two more tests: a request whose primary was just killed (not yet declared dead) goes to the
next replica instead of failing (NextReplicaTest); the router's /readyz and /cluster/status
answer within a 1 s probe timeout while a node is silent (ReadinessWhileUnreachableTest).

Run: /usr/bin/python3 tests/integration/test_cluster_failover.py (SYNAPSE_BIN picks the binary).
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
from http_client import KeepAlive  # noqa: E402
from tracker_proto import ports_of, rand_hash  # noqa: E402
from vectors import similarity  # noqa: E402
from wait import wait_for  # noqa: E402

DIM = 16
DETECTION_BOUND_S = 3.0    # all announces sent this long after the kill must succeed
LOAD_AFTER_KILL_S = 7.0    # how long the load runs past the kill
VICTIM = "n0"


class Load:
    """Announce and register loops against the router, each in its own thread, recording
    (start time, ok, detail) per request."""

    def __init__(self, router, rng_seed):
        self.router = router
        self.stop = threading.Event()
        self.announces = []
        self.registers = []   # (t, ok, hex, vec, detail)
        self.rng = random.Random(rng_seed)
        self.hashes = [rand_hash(self.rng) for _ in range(64)]
        self.threads = [threading.Thread(target=self.announce_loop, daemon=True),
                        threading.Thread(target=self.register_loop, daemon=True)]

    def start(self):
        for t in self.threads:
            t.start()

    def join(self):
        self.stop.set()
        for t in self.threads:
            t.join(30)

    def announce_loop(self):
        conn = KeepAlive(self.router.host, self.router.http_port, timeout=10)
        rng = random.Random(1)
        port = 40000
        while not self.stop.is_set():
            ih = rng.choice(self.hashes)
            port = port + 1 if port < 60000 else 40000
            t = time.monotonic()
            try:
                cu.announce(self.router, ih, port, left=rng.choice((0, 1)), conn=conn)
                self.announces.append((t, True, ""))
            except Exception as e:  # a failure is data here
                self.announces.append((t, False, f"{type(e).__name__}: {e}"[:200]))
                time.sleep(0.01)
        conn.close()

    def register_loop(self):
        conn = KeepAlive(self.router.host, self.router.http_port, timeout=10)
        rng = random.Random(2)
        while not self.stop.is_set():
            h = rand_hash(rng).hex()
            v = cu.make_vectors(rng, 1, DIM, clusters=1)[0]
            t = time.monotonic()
            try:
                cu.register(self.router, h, v, conn=conn)
                self.registers.append((t, True, h, v, ""))
            except Exception as e:
                self.registers.append((t, False, h, v, f"{type(e).__name__}: {e}"[:200]))
                time.sleep(0.02)
        conn.close()


class ClusterFailoverTest(unittest.TestCase):
    def setUp(self):
        self.cluster = cu.start_cluster(nodes=3, routers=1)
        self.addCleanup(self.cluster.close)
        self.router = self.cluster.routers["r0"]

    def node_self(self, nid, key):
        return self.cluster.nodes[nid].members()[nid][key]

    def test_kill9_under_load(self):
        rng = random.Random(7)
        router, nodes = self.router, self.cluster.nodes

        # ---- before the kill: shards and peers, replicated everywhere ----
        acked = {}
        for v in cu.make_vectors(rng, 60, DIM):
            h = rand_hash(rng).hex()
            cu.register(router, h, v)
            acked[h] = v
        swarms = {}
        for i in range(30):
            ih = rand_hash(rng)
            ports = [50000 + 2 * i, 50001 + 2 * i]
            cu.announce(router, ih, ports[0], left=0)
            cu.announce(router, ih, ports[1], left=5)
            swarms[ih] = ports
        victim_primary = sum(router.owner(ih.hex())["replicas"][0] == VICTIM for ih in swarms)
        cu.log(f"{victim_primary} of {len(swarms)} swarms have {VICTIM} as primary")
        self.assertGreater(victim_primary, 0, "no swarm on the victim: pick other hashes")
        for nid in nodes:  # R = 3 of 3: every node holds every swarm and shard
            wait_for(lambda: (self.node_self(nid, "swarms"), self.node_self(nid, "peers"),
                              self.node_self(nid, "shards")) == (30, 60, 60), 10,
                     what=f"{nid} holds 30 swarms, 60 peers, 60 shards")

        primaries = {nid: m["partitions_primary"] for nid, m in router.members().items()}
        sample = [rand_hash(rng).hex() for _ in range(40)]
        owners_before = {h: router.owner(h)["replicas"] for h in sample}

        # ---- load, then the kill ----
        load = Load(router, 11)
        load.start()
        self.addCleanup(load.join)
        time.sleep(1.5)  # steady load before the kill (the thing under test is the load)
        nodes[VICTIM].kill9()
        t_kill = time.monotonic()
        cu.log(f"killed {VICTIM} (pid gone)")

        survivors = [m for m in self.cluster.live()]
        seen_suspect = {m.id: False for m in survivors}
        detected = {}

        def all_dead():
            for m in survivors:
                if m.id in detected:
                    continue
                st = m.members(timeout=2)[VICTIM]["state"]
                if st == "suspect":
                    seen_suspect[m.id] = True
                if st in ("dead", "left"):
                    detected[m.id] = time.monotonic() - t_kill
            return len(detected) == len(survivors)
        wait_for(all_dead, 20, what=f"every survivor reports {VICTIM} dead")
        cu.log("detection (s after kill):", {k: round(v, 2) for k, v in detected.items()},
               "suspect seen first:", seen_suspect)

        while time.monotonic() < t_kill + LOAD_AFTER_KILL_S:
            time.sleep(0.05)
        load.join()

        with self.subTest("liveness is not ownership: the ring keeps the dead node"):
            self.assertEqual({nid: m["partitions_primary"] for nid, m in router.members().items()},
                             primaries)
            self.assertEqual({h: router.owner(h)["replicas"] for h in sample}, owners_before)

        # ---- announces: only the detection window may fail ----
        before = [a for a in load.announces if a[0] < t_kill - 0.1]
        window = [a for a in load.announces if t_kill <= a[0] < t_kill + DETECTION_BOUND_S]
        after = [a for a in load.announces if a[0] >= t_kill + DETECTION_BOUND_S]
        failed = [a for a in load.announces if not a[1]]
        last_fail = max((a[0] - t_kill for a in failed), default=None)
        cu.log(f"announces: {len(before)} before kill, {len(window)} in the {DETECTION_BOUND_S}s "
               f"window ({sum(not a[1] for a in window)} failed), {len(after)} after; "
               f"last failure at {last_fail if last_fail is None else round(last_fail, 2)} s; "
               f"sample failure: {failed[0][2] if failed else None}")
        self.assertGreater(len(before), 10, "announce load too thin before the kill")
        self.assertGreater(len(after), 10, "announce load too thin after the window")
        with self.subTest("announces before the kill"):
            self.assertEqual([a for a in before if not a[1]], [])
        with self.subTest("announces after the detection window"):
            self.assertEqual([a[2] for a in after if not a[1]], [],
                             f"announces failing more than {DETECTION_BOUND_S}s after the kill")

        # ---- registrations during the failure ----
        regs_after = [r for r in load.registers if r[0] >= t_kill + DETECTION_BOUND_S]
        cu.log(f"registrations: {sum(r[1] for r in load.registers)} acknowledged of "
               f"{len(load.registers)}; {len(regs_after)} after the window, "
               f"{sum(not r[1] for r in regs_after)} failed "
               f"(sample: {next((r[4] for r in load.registers if not r[1]), None)})")
        with self.subTest("registrations after the detection window"):
            self.assertGreater(len(regs_after), 3)
            self.assertEqual([r[4] for r in regs_after if not r[1]], [],
                             "registrations failing with 2 of 3 replicas alive (W = 2)")
        maybe = {r[2]: r[3] for r in load.registers if not r[1]}  # may or may not exist
        for r in load.registers:
            if r[1]:
                acked[r[2]] = r[3]

        # ---- peers announced before the kill are still returned ----
        with self.subTest("old peers returned"):
            missing = []
            for i, (ih, ports) in enumerate(swarms.items()):
                d = cu.announce(router, ih, 55000 + i, left=3)
                got = set(ports_of(d[b"peers"]))
                if not set(ports) <= got:
                    missing.append((ih.hex(), router.owner(ih.hex())["replicas"], ports, sorted(got)))
            self.assertEqual(missing, [], "swarms that lost peers announced before the kill")

        # ---- every acknowledged registration: GET and search ----
        with self.subTest("acknowledged registrations found by GET"):
            lost = []
            for h in acked:
                s, doc = cu.get_shard(router, h)
                if s != 200 or not doc or doc.get("status") != "success":
                    lost.append((h, router.owner(h)["replicas"], s, str(doc)[:120]))
            self.assertEqual(lost, [], f"{len(lost)} of {len(acked)} acknowledged shards not found")

        with self.subTest("acknowledged registrations found by search"):
            lost = []
            for h, v in acked.items():
                doc = cu.search(router, v, limit=3)
                hits = {r["info_hash"]: r["similarity"] for r in doc["results"]}
                if h not in hits and not any(abs(s - 1.0) < 1e-5 for s in hits.values()):
                    lost.append((h, router.owner(h)["replicas"], doc.get("partial")))
            self.assertEqual(lost, [], f"{len(lost)} of {len(acked)} acknowledged shards "
                                       "missing from search by their own embedding")

        with self.subTest("search complete and exact after detection"):
            for qv in cu.make_vectors(random.Random(99), 5, DIM):
                doc = cu.search(router, qv, limit=15)
                self.assertFalse(doc.get("partial"), "partial answer with the death known")
                got = [(r["info_hash"], r["similarity"]) for r in doc["results"]]
                universe = dict(acked, **maybe)
                for hh, sim in got:
                    self.assertIn(hh, universe)
                    self.assertAlmostEqual(sim, similarity(qv, universe[hh]), delta=1e-4)
                self.assertEqual(len(got), 15)
                floor = got[-1][1]
                missing = [hh for hh, v in acked.items()
                           if similarity(qv, v) > floor + 1e-4 and hh not in dict(got)]
                self.assertEqual(missing, [], "acknowledged shards missing from the top-k")

        # ---- the node restarts with its id and data: no reshuffle, it catches up ----
        self.restart_and_catch_up(primaries, owners_before, swarms, acked)

    def restart_and_catch_up(self, primaries, owners_before, swarms, acked):
        router = self.router
        t0 = time.monotonic()
        n0 = self.cluster.restart_node(VICTIM)
        self.cluster.wait_converged(20)
        wait_for(n0.ready, 20, what=f"restarted {VICTIM} /readyz 200")
        cu.log(f"{VICTIM} restarted: alive everywhere and ready after "
               f"{time.monotonic() - t0:.2f}s")
        with self.subTest("restart: no reshuffle"):
            self.assertEqual({nid: m["partitions_primary"] for nid, m in router.members().items()},
                             primaries)
            self.assertEqual({h: router.owner(h)["replicas"] for h in owners_before},
                             owners_before)
        with self.subTest("restart: shards caught up"):
            def caught_up():
                counts = {nid: self.node_self(nid, "shards") for nid in self.cluster.nodes}
                return counts if counts[VICTIM] >= len(acked) else None
            try:
                wait_for(caught_up, 15, what=f"{VICTIM} holds every acknowledged shard")
            finally:
                cu.log("shards per node after restart:",
                       {nid: self.node_self(nid, "shards") for nid in self.cluster.nodes},
                       "acknowledged:", len(acked))
        with self.subTest("restart: old peers still returned"):
            missing = []
            for i, (ih, ports) in enumerate(swarms.items()):
                d = cu.announce(router, ih, 56000 + i, left=3)
                got = set(ports_of(d[b"peers"]))
                if not set(ports) <= got:
                    missing.append((ih.hex(), router.owner(ih.hex())["replicas"][0]))
            self.assertEqual(missing, [], "swarms whose peers were lost once the restarted "
                                          "node serves again (hex, primary)")
        with self.subTest("restart: acknowledged shards found"):
            lost = [h for h in acked if cu.get_shard(router, h)[0] != 200]
            self.assertEqual(lost, [])



class NextReplicaTest(unittest.TestCase):
    """The router sends a request to the primary first and to the next live replica when
    the primary times out or is down (issue 4, router/). So a request whose primary has
    just died, before gossip has declared it dead, is still answered, only later by up
    to one request deadline: no client sees the failure."""

    def test_requests_to_a_just_killed_primary_go_to_the_next_replica(self):
        c = cu.start_cluster(nodes=3, routers=1,
                             cluster={"suspicion_mult": 20})  # stays suspect ~4 s
        self.addCleanup(c.close)
        router = c.routers["r0"]
        rng = random.Random(21)
        victim = "n1"
        cases = []
        for k in range(4):  # several independent cases, each a hash with primary n1
            ih_hex, shard_hex, new_hex = cu.hex_for_primary(router, victim, rng, 3)
            ih = bytes.fromhex(ih_hex)
            cu.announce(router, ih, 31000 + k, left=0)
            vec = cu.make_vectors(rng, 1, DIM)[0]
            cu.register(router, shard_hex, vec)
            cases.append((ih, 31000 + k, shard_hex, new_hex, vec))
        for nid in c.nodes:
            wait_for(lambda: c.nodes[nid].members()[nid]["peers"] == 4, 10,
                     what=f"{nid} holds the 4 peers")
        c.nodes[victim].kill9()
        t_kill = time.monotonic()
        failures = []
        timings = []
        for k, (ih, port, shard_hex, new_hex, vec) in enumerate(cases):
            for what, fn in (
                    ("announce", lambda: ports_of(
                        cu.announce(router, ih, 32000 + k, left=1)[b"peers"])),
                    ("get", lambda: cu.get_shard(router, shard_hex)),
                    ("register", lambda: cu.register(router, new_hex, vec)),
                    ("scrape", lambda: cu.scrape(router, [ih]))):
                t = time.monotonic()
                try:
                    out = fn()
                    if what == "announce" and port not in out:
                        failures.append((what, k, f"old peer {port} missing: {out}"))
                    if what == "get" and out[0] != 200:
                        failures.append((what, k, out))
                    if what == "scrape" and out[ih][b"complete"] < 1:
                        failures.append((what, k, out))
                except AssertionError as e:
                    failures.append((what, k, str(e)[:160]))
                timings.append((what, k, round(time.monotonic() - t, 2)))
        states = router.members()[victim]["state"]
        cu.log(f"requests within {time.monotonic() - t_kill:.2f}s of the kill "
               f"(router sees {victim} {states}): timings {timings}")
        self.assertEqual(failures, [], "requests whose primary had just died failed instead "
                                       "of going to the next replica")


class PartialSearchTest(unittest.TestCase):
    """A search is partial exactly when some partition went unsearched: R = 2 over three
    nodes, nodes frozen with SIGSTOP (alive to the membership for a while, silent to the
    router, which waits out its 500 ms deadline for them). One frozen node: every
    partition still has a replica that answered, so the answer is whole and finds every
    shard. Two frozen: some partitions had no replica answering: partial."""

    def test_partial_means_a_partition_went_unsearched(self):
        c = cu.start_cluster(nodes=3, routers=1, cluster={"replication": 2, "write_quorum": 1,
                                                          "suspicion_mult": 20},
                             server={"request_timeout_ms": 500})
        self.addCleanup(c.close)
        router = c.routers["r0"]
        rng = random.Random(8)
        items = {rand_hash(rng).hex(): v for v in cu.make_vectors(rng, 60, DIM)}
        for h, v in items.items():
            cu.register(router, h, v)
        probe = next(iter(items))
        frozen = []
        try:
            for victim in ("n1", "n2"):
                c.nodes[victim].proc.proc.send_signal(signal.SIGSTOP)
                frozen.append(c.nodes[victim])
                doc = cu.search(router, items[probe], limit=len(items))
                if len(frozen) == 1:
                    self.assertFalse(doc["partial"], "one of two replicas answered everywhere")
                    self.assertEqual({r["info_hash"] for r in doc["results"]}, set(items))
                else:
                    self.assertTrue(doc["partial"], "n0 alone cannot cover every partition")
        finally:
            for m in frozen:
                m.proc.proc.send_signal(signal.SIGCONT)


class ReadinessWhileUnreachableTest(unittest.TestCase):
    """A node that stops answering (SIGSTOP: alive to the kernel, silent to everyone) with
    the default request deadline (server.request_timeout_ms 2000, as k8s/base/configmap.yaml
    sets it). The routers' /readyz and /cluster/status must still answer quickly from
    the router's own state: Kubernetes probes /readyz with a 1 s timeout by default
    (k8s/base/routers-deployment.yaml sets 3 s), and a router that takes 2 s is marked
    unready, every router at once, while one node is merely suspect."""

    PROBE_TIMEOUT_S = 1.0

    def test_readyz_fast_while_a_node_is_silent(self):
        c = cu.start_cluster(nodes=3, routers=1, server={"request_timeout_ms": 2000},
                             cluster={"suspicion_mult": 20})  # suspect for about 4 s
        self.addCleanup(c.close)
        router, n2 = c.routers["r0"], c.nodes["n2"]
        for path in ("/readyz", "/cluster/status"):
            t = time.monotonic()
            self.assertEqual(router.get(path)[0], 200)
            cu.log(f"{path} with every node answering: {time.monotonic() - t:.3f}s")
        n2.proc.proc.send_signal(signal.SIGSTOP)
        self.addCleanup(lambda: n2.alive() and n2.proc.proc.send_signal(signal.SIGCONT))
        slow = []
        end = time.monotonic() + 3.0
        while time.monotonic() < end:
            for path in ("/readyz", "/cluster/status"):
                t = time.monotonic()
                status, _ = router.get(path, timeout=10)
                took = time.monotonic() - t
                if status != 200 or took > self.PROBE_TIMEOUT_S:
                    slow.append((path, status, round(took, 2)))
        cu.log("router answers while n2 is silent (path, status, seconds):", slow[:6])
        self.assertEqual(slow, [], "router /readyz or /cluster/status slower than a "
                                   f"{self.PROBE_TIMEOUT_S}s probe while one node is silent")


if __name__ == "__main__":
    unittest.main(verbosity=2)
