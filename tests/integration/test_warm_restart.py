#!/usr/bin/env python3
"""Warm restart and operations, against the real binary in standalone mode.

- Swarms survive SIGTERM: scrape figures (seeders, leechers, downloaded) are the same
  after the restart on the same data directory, and a new peer is handed the earlier ones.
- A corrupt snapshot is refused with a log line; the tracker starts empty.
- A UDP connection ID issued before the restart is accepted after it (the key generated
  once into the data directory).
- min interval: a repeated `started`, or a changed `left`, sooner than min interval is
  answered but not applied, and counted on /metrics; `completed` is applied at once.
- The interval told varies (jitter); --log-format json lines parse as JSON.

Every wait is for an event (the ready line, a process exit, a log line); no fixed sleeps.
Run: python3 tests/integration/test_warm_restart.py (SYNAPSE_BIN picks the binary).
"""
import json
import os
import re
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from bencode import bdecode  # noqa: E402
from http_client import http_get  # noqa: E402
from synapse_proc import TrackerProcess  # noqa: E402
from tracker_proto import announce_target, peer_id, rand_hash, scrape_target, split_compact  # noqa: E402
from udp_tracker import UdpClient  # noqa: E402
from wait import wait_for  # noqa: E402

SNAPSHOT = "swarms.snapshot"


class WarmRestartTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory(prefix="synapse-warm-")
        self.addCleanup(self.dir.cleanup)
        self.log = os.path.join(self.dir.name, "stderr.log")
        self.data = os.path.join(self.dir.name, "data")
        os.mkdir(self.data)

    def start(self, *args):
        t = TrackerProcess(data_dir=self.data, stderr_path=self.log, args=list(args))
        t.start()
        self.addCleanup(t.close)
        return t

    def stop(self, t):
        self.assertEqual(t.stop(), 0)  # SIGTERM: a clean exit, snapshot written

    def announce(self, t, ih, n, left, event=None, numwant=None):
        r = http_get(t.http_port, announce_target(ih, peer_id(n), 10000 + n, left=left,
                                                  event=event, numwant=numwant, compact=1))
        self.assertEqual(r.status, 200, r)
        d = bdecode(r.body)
        self.assertNotIn(b"failure reason", d, r.body)
        return d

    def scrape(self, t, hashes):
        r = http_get(t.http_port, scrape_target(hashes))
        self.assertEqual(r.status, 200, r)
        return bdecode(r.body)[b"files"]

    def metric(self, t, name):
        body = http_get(t.http_port, "/metrics").body.decode()
        m = re.search(r"^%s (\S+)$" % re.escape(name), body, re.M)
        self.assertIsNotNone(m, f"{name} not on /metrics")
        return float(m.group(1))

    def log_text(self):
        with open(self.log, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def populate(self, t):
        """Three swarms: leechers, seeders (one completed), one with a download only."""
        hashes = [rand_hash() for _ in range(3)]
        for n in range(1, 5):
            self.announce(t, hashes[0], n, left=100, event="started")
        self.announce(t, hashes[0], 5, left=0, event="started")
        self.announce(t, hashes[1], 6, left=100, event="started")
        self.announce(t, hashes[1], 6, left=0, event="completed")
        self.announce(t, hashes[1], 7, left=50, event="started")
        self.announce(t, hashes[2], 8, left=0, event="completed")
        self.announce(t, hashes[2], 8, left=0, event="stopped")
        return hashes

    def test_swarms_survive_restart(self):
        t = self.start()
        hashes = self.populate(t)
        before = self.scrape(t, hashes)
        self.assertEqual(before[hashes[0]], {b"complete": 1, b"downloaded": 0, b"incomplete": 4})
        self.assertEqual(before[hashes[1]], {b"complete": 1, b"downloaded": 1, b"incomplete": 1})
        self.assertEqual(before[hashes[2]], {b"complete": 0, b"downloaded": 1, b"incomplete": 0})
        udp = UdpClient(t.udp_port)
        self.addCleanup(udp.close)
        conn_id = udp.connect()
        self.stop(t)
        self.assertIn("swarm snapshot", self.log_text())
        self.assertTrue(os.path.exists(os.path.join(self.data, SNAPSHOT)))
        self.assertEqual(os.stat(os.path.join(self.data, "udp_secret")).st_mode & 0o777, 0o600)

        t = self.start()
        self.assertEqual(self.scrape(t, hashes), before)
        # A new leecher is handed the five earlier peers of the first swarm.
        d = self.announce(t, hashes[0], 20, left=100, event="started", numwant=50)
        ports = sorted(int.from_bytes(p[4:6], "big") for p in split_compact(d[b"peers"], 6))
        self.assertEqual(ports, [10001, 10002, 10003, 10004, 10005])
        self.assertEqual(self.metric(t, "synapse_swarm_snapshot_peers_loaded"), 7)
        self.assertEqual(self.metric(t, "synapse_swarm_snapshot_peers_saved"), 7)
        self.assertGreater(self.metric(t, "synapse_swarm_snapshot_load_seconds"), 0)
        # The connection ID from before the restart is still good.
        udp2 = UdpClient(t.udp_port)
        self.addCleanup(udp2.close)
        interval, leechers, seeders, peers = udp2.announce(conn_id, hashes[1], peer_id(30), 10030)
        self.assertEqual((leechers, seeders), (2, 1))
        self.assertEqual(len(peers), 2)

    def test_corrupt_snapshot_is_refused(self):
        t = self.start()
        hashes = self.populate(t)
        self.stop(t)
        path = os.path.join(self.data, SNAPSHOT)
        with open(path, "r+b") as f:
            f.seek(40)
            b = f.read(1)
            f.seek(40)
            f.write(bytes([b[0] ^ 0xFF]))
        t = self.start()
        self.assertRegex(self.log_text(), r"swarm snapshot .* refused \(corrupt")
        self.assertEqual(self.scrape(t, hashes[:1])[hashes[0]],
                         {b"complete": 0, b"downloaded": 0, b"incomplete": 0})
        self.assertEqual(self.metric(t, "synapse_swarm_snapshot_peers_loaded"), 0)
        self.announce(t, hashes[0], 1, left=100)  # and it serves
        # A truncated one too.
        self.stop(t)
        os.truncate(path, os.path.getsize(path) - 7)
        t = self.start()
        self.assertEqual(self.log_text().count("refused"), 2)
        self.assertEqual(self.scrape(t, hashes[:1])[hashes[0]][b"incomplete"], 0)

    def test_min_interval(self):
        t = self.start()
        ih = rand_hash()
        self.announce(t, ih, 1, left=100, event="started")
        self.announce(t, ih, 2, left=100, event="started")
        early = self.metric(t, "synapse_announces_early_total")
        # started twice, now claiming to be done: not applied.
        d = self.announce(t, ih, 1, left=0, event="started")
        self.assertEqual((d[b"complete"], d[b"incomplete"]), (0, 2))
        self.assertEqual(len(split_compact(d[b"peers"], 6)), 1)  # the ordinary reply
        # a changed left with no event: not applied either.
        self.announce(t, ih, 2, left=0)
        self.assertEqual(self.scrape(t, [ih])[ih],
                         {b"complete": 0, b"downloaded": 0, b"incomplete": 2})
        self.assertEqual(self.metric(t, "synapse_announces_early_total"), early + 2)
        # completed is always applied.
        d = self.announce(t, ih, 1, left=0, event="completed")
        self.assertEqual((d[b"complete"], d[b"downloaded"], d[b"incomplete"]), (1, 1, 1))
        self.assertEqual(self.metric(t, "synapse_announces_early_total"), early + 2)

    def test_interval_jitter(self):
        t = self.start()
        ih = rand_hash()
        told = {self.announce(t, ih, n, left=1)[b"interval"] for n in range(12)}
        self.assertGreater(len(told), 1, told)
        for v in told:
            self.assertTrue(1800 - 90 <= v <= 1800 + 90, v)

    def test_json_logs(self):
        t = self.start("--log-format", "json")
        wait_for(lambda: '"component":"serving"' in self.log_text(), 10, what="the serving line")
        self.stop(t)
        lines = [ln for ln in self.log_text().splitlines() if ln.strip()]
        self.assertGreaterEqual(len(lines), 3)
        for ln in lines:
            obj = json.loads(ln)
            self.assertRegex(obj["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            self.assertIn(obj["level"], ("debug", "info", "warn", "error"))
            self.assertTrue(obj["component"])
            self.assertIn("message", obj)
        self.assertIn("node", {json.loads(ln)["component"] for ln in lines})


if __name__ == "__main__":
    unittest.main(verbosity=2)
