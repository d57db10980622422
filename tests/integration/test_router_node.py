#!/usr/bin/env python3
"""Router and node as two processes over tcp://.

Announce and scrape over HTTP and UDP go through the router to the node; the node's admin
port answers /healthz, /readyz and /metrics. Then the node is killed with SIGKILL: the
router must answer every request with a clear error (bencoded failure reason, UDP error
packet) within its request deadline, never hang, and report not ready. A new node on the
same address (same member id, same data directory) brings announces back. Each process
gets its own --node-id and cluster address, as on separate machines.

Run: python3 tests/integration/test_router_node.py (SYNAPSE_BIN picks the binary).
"""
import os
import struct
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from bencode import bdecode  # noqa: E402
from http_client import HttpConn, http_get  # noqa: E402
from net import free_port, free_port_pair  # noqa: E402
from synapse_proc import TrackerProcess, shutdown  # noqa: E402
from tracker_config import ConfigFile  # noqa: E402
from tracker_proto import (announce_target, compact4, peer_id, rand_hash,  # noqa: E402
                           scrape_target)
from udp_tracker import ANNOUNCE, ERROR, UdpClient  # noqa: E402
from wait import wait_for  # noqa: E402

REQUEST_TIMEOUT_MS = 300
# The deadline is measured from when the router sends the batch; allow scheduling slack on
# a loaded 2-core machine, but far less than any client's own timeout.
ANSWER_WITHIN_S = REQUEST_TIMEOUT_MS / 1000 + 1.2


def ready(port):
    return http_get(port, "/readyz", timeout=3).status == 200


class RouterNodeTest(unittest.TestCase):
    def setUp(self):
        self.config = ConfigFile(f"server:\n  request_timeout_ms: {REQUEST_TIMEOUT_MS}\n")
        self.addCleanup(self.config.remove)
        self.node_data = tempfile.TemporaryDirectory(prefix="synapse-node-")
        self.addCleanup(self.node_data.cleanup)
        # Every member needs its own id (the default is the host name, shared by both
        # processes here) and its own cluster address.
        tag = f"{os.getpid()}-{self._testMethodName[-8:]}"
        self.node_id, self.router_id = f"test-node-{tag}", f"test-router-{tag}"
        self.cluster_addr = f"tcp://127.0.0.1:{free_port_pair()}"
        self.admin_port = free_port()
        self.node = self.start_node()
        self.router = TrackerProcess(role="router", args=[
            "--node-id", self.router_id, "--cluster-addr", f"tcp://127.0.0.1:{free_port()}",
            "--seeds", self.cluster_addr, "--config", self.config.path,
            "--interval-jitter-percent", "0"])  # replies checked byte for byte
        self.router.start()
        self.addCleanup(shutdown, self.router)
        self.assertIn("role=router", self.router.ready_line)
        wait_for(lambda: ready(self.router.http_port), 15, what="router /readyz 200")

    def start_node(self):
        node = TrackerProcess(role="node", http_port=self.admin_port,
                              data_dir=self.node_data.name, args=[
                                  "--node-id", self.node_id, "--cluster-addr", self.cluster_addr,
                                  "--config", self.config.path])
        node.start()
        self.addCleanup(shutdown, node)
        self.assertIn("role=node", node.ready_line)
        return node

    def http_announce(self, ih, port, **kw):
        r = http_get(self.router.http_port, announce_target(ih, peer_id(), port, **kw))
        self.assertEqual(r.status, 200, r)
        return r, bdecode(r.body)

    def test_router_node_over_tcp_and_node_failure(self):
        rp = self.router.http_port
        ih = rand_hash()

        # ---- HTTP through the router ----
        r, d = self.http_announce(ih, 9001, left=0)
        self.assertEqual(r.body, b"d8:completei1e10:downloadedi0e10:incompletei0e"
                                 b"8:intervali1800e12:min intervali900e5:peers0:e")
        r, d = self.http_announce(ih, 9002, left=5)
        self.assertEqual(d[b"peers"], compact4("127.0.0.1", 9001))
        r = http_get(rp, scrape_target([ih]))
        self.assertEqual(r.body, b"d5:filesd20:" + ih
                         + b"d8:completei1e10:downloadedi0e10:incompletei1eeee")

        # ---- UDP through the router ----
        u = UdpClient(self.router.udp_port)
        self.addCleanup(u.close)
        cid = u.connect()
        interval, leechers, seeders, peers = u.announce(cid, ih, peer_id(), 9003, left=5)
        self.assertEqual((interval, leechers, seeders), (1800, 2, 1))
        self.assertEqual(sorted(peers), [compact4("127.0.0.1", 9001), compact4("127.0.0.1", 9002)])
        self.assertEqual(u.scrape(cid, [ih, rand_hash()]), [(1, 0, 2), (0, 0, 0)])

        # ---- the node's admin port ----
        ap = self.admin_port
        r = http_get(ap, "/healthz")
        self.assertEqual((r.status, r.body), (200, b"ok\n"))
        self.assertEqual(http_get(ap, "/readyz").status, 200)
        r = http_get(ap, "/metrics")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.header("content-type").startswith("text/plain"), r.headers)
        metrics = dict(line.rsplit(" ", 1) for line in r.body.decode().splitlines()
                       if line and not line.startswith("#"))
        self.assertEqual(metrics.get("synapse_tracker_active_peers"), "3", r.body)
        self.assertEqual(metrics.get("synapse_tracker_active_torrents"), "1", r.body)
        self.assertEqual(metrics.get("synapse_tracker_active_seeders"), "1", r.body)
        # the admin port serves nothing else
        self.assertEqual(http_get(ap, announce_target(ih, peer_id(), 9004)).status, 404)
        r = http_get(rp, "/metrics")
        self.assertIn(b"synapse_tracker_announces_total 3\n", r.body)

        # ---- node dies ----
        self.node.kill9()
        self.assertEqual(self.node.proc.returncode, -9)

        t0 = time.monotonic()
        r = http_get(rp, announce_target(ih, peer_id(), 9005, left=1), timeout=10)
        elapsed = time.monotonic() - t0
        self.assertEqual(r.status, 200)
        d = bdecode(r.body)
        self.assertEqual(list(d), [b"failure reason"], r.body)
        self.assertTrue(d[b"failure reason"])
        self.assertLess(elapsed, ANSWER_WITHIN_S, "HTTP announce not failed within the deadline")

        r = http_get(rp, scrape_target([ih]), timeout=10)
        self.assertEqual(list(bdecode(r.body)), [b"failure reason"], r.body)

        # several at once on one keep-alive connection: all answered, in order
        with HttpConn(rp, timeout=10) as c:
            c.send(b"".join(c.request_bytes(announce_target(rand_hash(), peer_id(), 9010 + i))
                            for i in range(3)) + c.request_bytes("/healthz"))
            for _ in range(3):
                self.assertIn(b"failure reason", bdecode(c.read_response().body))
            self.assertEqual(c.read_response().body, b"ok\n")

        t0 = time.monotonic()
        tid = 0x600DCAFE
        u.send(UdpClient.announce_packet(cid, tid, ih, peer_id(), 9006))
        reply = u.recv(timeout=10)
        elapsed = time.monotonic() - t0
        action, rt = struct.unpack(">II", reply[:8])
        self.assertEqual((action, rt), (ERROR, tid), reply)
        self.assertTrue(reply[8:], "UDP error packet without a message")
        self.assertLess(elapsed, ANSWER_WITHIN_S, "UDP announce not failed within the deadline")
        tid += 1
        u.send(struct.pack(">QII", cid, 2, tid) + ih)
        reply = u.recv(timeout=10)
        self.assertEqual(struct.unpack(">II", reply[:8]), (ERROR, tid), reply)

        r = http_get(rp, "/readyz", timeout=10)
        self.assertEqual(r.status, 503)
        self.assertEqual(http_get(rp, "/healthz").status, 200)  # the router itself is alive
        t0 = time.monotonic()
        r = http_get(rp, "/metrics", timeout=10)  # the router's own figures, without the node's
        self.assertEqual(r.status, 200)
        self.assertIn(b"synapse_tracker_announces_total", r.body)
        self.assertLess(time.monotonic() - t0, ANSWER_WITHIN_S)

        # ---- a new node on the same address ----
        self.node = self.start_node()
        wait_for(lambda: ready(rp), 20, what="router /readyz 200 after the node came back")
        r, d = self.http_announce(ih, 9007, left=1)
        self.assertEqual(r.body, b"d8:completei0e10:downloadedi0e10:incompletei1e"
                                 b"8:intervali1800e12:min intervali900e5:peers0:e")
        # the router kept its UDP key: the old connection id still works
        tid += 1
        u.send(UdpClient.announce_packet(cid, tid, ih, peer_id(), 9008, left=0))
        self.assertEqual(u.recv(), struct.pack(">IIIII", ANNOUNCE, tid, 1800, 1, 1)
                         + compact4("127.0.0.1", 9007))
        self.assertEqual(http_get(self.admin_port, "/readyz").status, 200)

        # both processes stop cleanly
        self.assertEqual(self.router.stop(), 0)
        self.assertEqual(self.node.stop(), 0)

    def test_router_without_node_fails_fast_and_recovers(self):
        # node gone before the router ever talked to it: same guarantees
        self.node.kill9()
        rp = self.router.http_port
        t0 = time.monotonic()
        r = http_get(rp, announce_target(rand_hash(), peer_id(), 9101), timeout=10)
        self.assertLess(time.monotonic() - t0, ANSWER_WITHIN_S)
        self.assertEqual(list(bdecode(r.body)), [b"failure reason"])
        self.assertEqual(http_get(rp, "/readyz", timeout=10).status, 503)
        self.node = self.start_node()
        wait_for(lambda: ready(rp), 20, what="router /readyz 200 after the node came back")
        _, d = self.http_announce(rand_hash(), 9102)
        self.assertEqual(d[b"incomplete"], 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
