#!/usr/bin/env python3
"""WebTorrent tracking in a cluster: three nodes and two routers serving ws://, on loopback.

- A raw WebSocket peer on router r1 and one on r2, same info_hash: the offer of the peer
  on r2 reaches the peer on r1 and the answer comes back (router -> owning node -> the
  other router), with the binary strings intact; either router's scrape counts both.
- npm bittorrent-tracker's Client (tests/interop/webtorrent_ws.mjs, held in the swarm):
  A on r1, B on r2 exchange offer and answer through the tracker. An HTTP seeder
  announced through r1 joins the same swarm: WebSocket and HTTP peers are counted
  together (ws scrape and HTTP scrape, either router).
- kill -9 of r1: its WebSocket peer (A) leaves the swarm once membership declares r1
  dead; router r2's ws scrape must show it within DROP_BOUND_S of the kill (the failure
  detection bound of test_cluster_detection, DEAD_BOUND_S, and time for the owner to
  drop the peers and the replicas to follow). B (on r2) and the HTTP seeder (announced
  through r1, but a BitTorrent peer with an address of its own) stay. B leaving (its
  socket closes) then empties the WebSocket side.

Run: /usr/bin/python3 tests/integration/test_cluster_websocket.py (SYNAPSE_BIN picks the
binary). Exit 77 (skipped) only where python3-websocket is not installed; the client part
skips itself where node or the npm clients are missing.
"""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
try:
    import websocket  # noqa: E402,F401
except ImportError:
    print("SKIP: python3-websocket is not installed (scripts/setup.sh installs it)")
    sys.exit(77)
import cluster as cu  # noqa: E402
from net import free_port  # noqa: E402
from tracker_proto import rand_hash  # noqa: E402
from wait import wait_for  # noqa: E402
from ws_tracker import HeldDriver, WsConn, driver_missing, s2b  # noqa: E402

DEAD_BOUND_S = 6.0  # test_cluster_detection: a killed member is dead everywhere by then
DROP_BOUND_S = DEAD_BOUND_S + 4.0
SIGNAL_TIMEOUT_S = 10.0


def ws_peer_id(tag):
    return b"-WW0001-" + bytes([0x80 + tag]) + os.urandom(11)


class ClusterWebSocketTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        c = cu.Cluster()
        try:
            for _ in range(3):
                c.add_node()
            cls.r1 = c.add_router("r1", ws_port=free_port())
            cls.r2 = c.add_router("r2", ws_port=free_port())
            c.wait_converged(40)
        except BaseException:
            c.close()
            raise
        cls.cluster = c

    @classmethod
    def tearDownClass(cls):
        cls.cluster.close()

    def ws(self, router, timeout=SIGNAL_TIMEOUT_S):
        c = WsConn(router.ws_url(), timeout=timeout)
        self.addCleanup(c.close)
        return c

    def announced(self, c, ih, pid, left, offers=()):
        c.announce(ih, pid, left=left, offers=list(offers))
        r = c.announce_reply(ih)
        self.assertNotIn("failure reason", r, f"announce via {c.url} refused: {r}")
        return r

    def test_1_raw_offer_and_answer_across_routers(self):
        ih = bytes([0x00, 0x80, 0xff, 0x22, 0x5c]) + os.urandom(15)
        p, q = self.ws(self.r1), self.ws(self.r2)
        pid_p, pid_q = ws_peer_id(1), ws_peer_id(2)
        oid = bytes(range(0xe0, 0xf4))
        offer = {"type": "offer", "sdp": "v=0\r\na=x é ✓ \"q\"\r\n"}
        r = self.announced(p, ih, pid_p, left=0)
        self.assertEqual((r["complete"], r["incomplete"]), (1, 0), r)
        r = self.announced(q, ih, pid_q, left=10, offers=[(oid, offer)])
        self.assertEqual((r["complete"], r["incomplete"]), (1, 1), r)
        o = p.expect(lambda m: "offer" in m, "q's offer (on r2) delivered to p (on r1)")
        self.assertEqual(s2b(o["peer_id"]), pid_q, o)
        self.assertEqual(s2b(o["offer_id"]), oid, o)
        self.assertEqual(s2b(o["info_hash"]), ih, o)
        self.assertEqual(o["offer"], offer)
        answer = {"type": "answer", "sdp": "answer ü"}
        p.answer(ih, pid_p, pid_q, oid, answer)
        a = q.expect(lambda m: "answer" in m, "p's answer (on r1) delivered to q (on r2)")
        self.assertEqual(s2b(a["peer_id"]), pid_p, a)
        self.assertEqual(s2b(a["offer_id"]), oid, a)
        self.assertEqual(s2b(a["info_hash"]), ih, a)
        self.assertEqual(a["answer"], answer)
        for name, c in (("r1", p), ("r2", q)):
            self.assertEqual(c.scrape_counts(ih)[:2], (1, 1), f"ws scrape via {name}")
        p.close()
        wait_for(lambda: q.scrape_counts(ih)[:2] == (0, 1), 5.0, interval=0.1,
                 what="p's socket on r1 closed: the swarm as r2 sees it")

    def test_1b_shard_figures_count_websocket_peers(self):
        """A registered shard's swarm: a WebSocket seeder on r1 and leecher on r2 show as
        seeders and leechers in its search hit and in GET /api/shard, through either
        router, whichever replica answers."""
        import random
        ih = os.urandom(20)
        vec = cu.make_vectors(random.Random(7), 1, 16)[0]
        cu.register(self.r2, ih.hex(), vec)
        p, q = self.ws(self.r1), self.ws(self.r2)
        self.announced(p, ih, ws_peer_id(3), left=0)
        self.announced(q, ih, ws_peer_id(4), left=5)
        for router in (self.r1, self.r2):
            for _ in range(3):  # a GET reads several replicas: every answer must agree
                s, doc = cu.get_shard(router, ih.hex())
                self.assertEqual(s, 200, doc)
                shard = doc.get("shard", doc)
                self.assertEqual((shard.get("seeders"), shard.get("leechers")), (1, 1), doc)
            hits = cu.search(router, vec, limit=5)["results"]
            hit = next((h for h in hits if h.get("info_hash") == ih.hex()), None)
            self.assertIsNotNone(hit, hits)
            self.assertEqual((hit.get("seeders"), hit.get("leechers")), (1, 1), hit)

    def test_2_webtorrent_clients_across_routers_then_kill9(self):
        why = driver_missing()
        if why:
            self.skipTest(why)
        ih = rand_hash()
        driver = HeldDriver([self.r1.ws_url(), self.r2.ws_url()], info_hash=ih,
                            expect_interval=120)
        self.addCleanup(driver.release)
        summary = driver.start(timeout=60)
        self.assertTrue(summary.get("ok"), f"driver: {summary.get('error')}\n{driver.stderr()}")
        cu.log(f"driver: offer {summary['offer_ms']} ms, answer {summary['answer_ms']} ms")

        # an HTTP seeder, announced through r1, in the same swarm
        d = cu.announce(self.r1, ih, 45001, left=0)
        self.assertEqual((d[b"complete"], d[b"incomplete"]), (2, 1), d)
        probe = self.ws(self.r2)
        self.assertEqual(probe.scrape_counts(ih)[:2], (2, 1), "ws scrape via r2")
        e = cu.scrape(self.r2, [ih])[ih]
        self.assertEqual((e[b"complete"], e[b"incomplete"]), (2, 1), "HTTP scrape via r2")

        self.r1.kill9()
        t0 = time.monotonic()
        dead_at = dropped_at = None
        last = None
        while time.monotonic() - t0 < DROP_BOUND_S + 5:
            if dead_at is None:
                try:
                    if self.r2.members(timeout=2)["r1"]["state"] == "dead":
                        dead_at = time.monotonic() - t0
                except (OSError, KeyError, ValueError):
                    pass
            last = probe.scrape_counts(ih)[:2]
            if last == (1, 1):
                dropped_at = time.monotonic() - t0
                break
            self.assertIn(last, [(2, 1)], "the swarm while r1's peers leave "
                                          "(expected 2/1 until A leaves, then 1/1)")
            time.sleep(0.1)
        cu.log(f"kill -9 r1: r2 saw it dead after {dead_at} s, A left the swarm after "
               f"{dropped_at} s (last ws scrape via r2: {last})")
        self.assertIsNotNone(dropped_at, f"A (on the killed r1) still counted {DROP_BOUND_S + 5} s "
                                         f"after the kill; r2 saw r1 dead after {dead_at} s; "
                                         f"last scrape {last}")
        self.assertLessEqual(dropped_at, DROP_BOUND_S, f"A left {dropped_at:.1f} s after the kill")
        e = cu.scrape(self.r2, [ih])[ih]
        self.assertEqual((e[b"complete"], e[b"incomplete"]), (1, 1),
                         "HTTP scrape via r2: the HTTP seeder and B stay")

        # B leaves: the WebSocket side is empty, the HTTP seeder stays
        self.assertEqual(driver.release(), 0, f"driver exit; log:\n{driver.stderr()}")
        wait_for(lambda: probe.scrape_counts(ih)[:2] == (1, 0), 5.0, interval=0.1,
                 what="B's socket on r2 closed: the swarm as r2 sees it")


    def test_3_owner_killed_then_restarted(self):
        """The node owning a swarm dies (kill -9): the next replica, which the owner had
        sent the WebSocket peer's entry to, serves the swarm at once (a new peer's offer
        reaches the peer already there, without it announcing again). The node is started
        again: catching up, it pulls the swarm's WebSocket peers with the BitTorrent ones,
        and once it owns the swarm again a third peer's offers reach the first two."""
        r3 = self.cluster.add_router("r3", ws_port=free_port())  # r1 was killed above
        wait_for(r3.ready, 20.0, interval=0.1, what="r3 ready")
        ih = rand_hash()
        owners = self.r2.owner(ih.hex())["replicas"]
        self.assertGreaterEqual(len(owners), 2, owners)
        victim = owners[0]

        def ws_peers():
            return {n: m.get("websocket_peers") for n, m in self.r2.members().items()
                    if n in owners}
        # earlier tests' sockets are closed: their peers leave every replica
        wait_for(lambda: all(v == 0 for v in ws_peers().values()), 10.0, interval=0.1,
                 what=f"no WebSocket peer left on {owners}")
        p, q = self.ws(self.r2), self.ws(r3)
        pid_p, pid_q = ws_peer_id(5), ws_peer_id(6)
        self.announced(p, ih, pid_p, left=0)
        wait_for(lambda: all(v == 1 for v in ws_peers().values()), 10.0, interval=0.1,
                 what=f"p's entry on every replica of the swarm ({owners})")

        self.cluster.nodes[victim].kill9()
        oid = bytes(range(0x40, 0x54))
        r = self.announced(q, ih, pid_q, left=3, offers=[(oid, {"type": "offer", "sdp": "x"})])
        self.assertEqual((r["complete"], r["incomplete"]), (1, 1),
                         f"the swarm as the replica after {victim} sees it: {r}")
        o = p.expect(lambda m: "offer" in m, "q's offer (r3) reaches p (r2) via the replica")
        self.assertEqual(s2b(o["peer_id"]), pid_q, o)
        self.assertEqual(s2b(o["offer_id"]), oid, o)

        self.cluster.restart_node(victim)
        seen = {}

        def back():
            seen.update(self.r2.members().get(victim, {}))
            return (seen.get("state") == "alive" and seen.get("caught_up") is True
                    and seen.get("websocket_peers") == 2)
        try:
            wait_for(back, 40.0, interval=0.2,
                     what=f"{victim} back, caught up, holding p's and q's entries")
        except AssertionError as e:
            raise AssertionError(f"{e}; {victim} as r2 sees it: {seen}; all: "
                                 f"{ {n: m.get('websocket_peers') for n, m in self.r2.members().items()} }") from None
        x = self.ws(self.r2)
        pid_x = ws_peer_id(9)
        offers = [(bytes([0x70 + k]) * 20, {"type": "offer", "sdp": f"z{k}"}) for k in range(2)]
        r = self.announced(x, ih, pid_x, left=3, offers=offers)
        self.assertEqual((r["complete"], r["incomplete"]), (1, 2), r)
        for name, c in (("p", p), ("q", q)):
            o = c.expect(lambda m: "offer" in m and s2b(m["peer_id"]) == pid_x,
                         f"x's offer reaches {name} through the restarted owner")
            self.assertIn(s2b(o["offer_id"]), [oid for oid, _ in offers], o)

if __name__ == "__main__":
    unittest.main(verbosity=2)
