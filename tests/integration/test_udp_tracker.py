#!/usr/bin/env python3
"""UDP tracker (BEP 15, BEP 41) against the real binary in standalone mode.

Packets are built and checked byte by byte: connect, announce (6-byte IPv4 peers, 18-byte
IPv6 peers), scrape (up to 74 hashes), error packets for wrong connection ids, unknown
actions and oversized scrapes, silence for short packets, BEP 41 URL data, connection ids
bound to the source address, and stopped removing the peer.

Run: python3 tests/integration/test_udp_tracker.py (SYNAPSE_BIN picks the binary).
"""
import os
import struct
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from bencode import bdecode  # noqa: E402
from http_client import http_get  # noqa: E402
from net import ipv6_loopback_available, loopback_alias_available  # noqa: E402
from synapse_proc import TrackerProcess, shutdown  # noqa: E402
from tracker_proto import announce_target, compact4, compact6, peer_id, rand_hash  # noqa: E402
from udp_tracker import (ANNOUNCE, CONNECT, ERROR, PROTOCOL_ID, SCRAPE,  # noqa: E402
                         UdpClient, UdpError)


class UdpCase(unittest.TestCase):
    tracker = None
    host = "127.0.0.1"

    def client(self, source=None, host=None):
        c = UdpClient(self.tracker.udp_port, host=host or self.host, source=source)
        self.addCleanup(c.close)
        return c

    def assert_error_packet(self, reply, tid, contains=None):
        self.assertGreaterEqual(len(reply), 8, reply)
        action, rt = struct.unpack(">II", reply[:8])
        self.assertEqual(action, ERROR, reply)
        self.assertEqual(rt, tid)
        message = reply[8:]
        self.assertTrue(message, "error packet without a message")
        self.assertNotIn(b"\x00", message, "error message carries a NUL terminator")
        if contains:
            self.assertIn(contains, message)
        return message


class UdpTrackerTest(UdpCase):
    @classmethod
    def setUpClass(cls):
        # Replies are checked byte for byte: the announce interval without jitter.
        cls.tracker = TrackerProcess(args=["--interval-jitter-percent", "0"])
        cls.tracker.start()

    @classmethod
    def tearDownClass(cls):
        shutdown(cls.tracker)

    def tearDown(self):
        self.assertIsNone(self.tracker.proc.poll(), "tracker process died during the test")

    def test_connect_reply_layout(self):
        c = self.client()
        for extra in (b"", b"trailing bytes are ignored"):
            tid = 0xDEADBEEF
            reply = c.roundtrip(struct.pack(">QII", PROTOCOL_ID, CONNECT, tid) + extra)
            self.assertEqual(len(reply), 16)
            action, rt, conn_id = struct.unpack(">IIQ", reply)
            self.assertEqual((action, rt), (CONNECT, tid))
            self.assertNotEqual(conn_id, PROTOCOL_ID)
            # the id is usable at once
            _, _, _, peers = c.announce(conn_id, rand_hash(), peer_id(), 8000)
            self.assertEqual(peers, [])

    def test_connect_without_magic_is_ignored(self):
        c = self.client()
        c.send(struct.pack(">QII", PROTOCOL_ID + 1, CONNECT, 7))
        c.send(struct.pack(">QII", 0, CONNECT, 8))
        self.assertTrue(c.silent(0.3), "answered a connect without the protocol id")
        c.connect()

    def test_announce_reply_layout_ipv4(self):
        c = self.client()
        cid = c.connect()
        ih = rand_hash()
        tid = 0x01020304
        c.send(UdpClient.announce_packet(cid, tid, ih, peer_id(1), 8001, event=2, left=5))
        self.assertEqual(c.recv(), struct.pack(">IIIII", ANNOUNCE, tid, 1800, 1, 0))
        tid = 0xFFFFFFFF
        c.send(UdpClient.announce_packet(cid, tid, ih, peer_id(2), 8002, event=2, left=0))
        self.assertEqual(c.recv(), struct.pack(">IIIII", ANNOUNCE, tid, 1800, 1, 1)
                         + compact4("127.0.0.1", 8001))
        tid = 0
        c.send(UdpClient.announce_packet(cid, tid, ih, peer_id(1), 8001, left=5))
        self.assertEqual(c.recv(), struct.pack(">IIIII", ANNOUNCE, tid, 1800, 1, 1)
                         + compact4("127.0.0.1", 8002))

    def test_ip_field_in_announce_is_ignored(self):
        c = self.client()
        cid = c.connect()
        ih = rand_hash()
        c.announce(cid, ih, peer_id(), 8011, ip=0x01020304)
        _, _, _, peers = c.announce(cid, ih, peer_id(), 8012)
        self.assertEqual(peers, [compact4("127.0.0.1", 8011)])

    def test_interval_leechers_seeders_and_numwant(self):
        c = self.client()
        cid = c.connect()
        ih = rand_hash()
        for i in range(40):
            c.announce(cid, ih, peer_id(i), 20000 + i, left=10, numwant=0)
        for i in range(25):
            c.announce(cid, ih, peer_id(100 + i), 21000 + i, left=0, numwant=0)
        interval, leechers, seeders, peers = c.announce(cid, ih, peer_id(999), 29999, left=1)
        self.assertEqual((interval, leechers, seeders), (1800, 41, 25))
        self.assertEqual(len(peers), 50)  # numwant -1: the default
        self.assertEqual(len(set(peers)), 50)
        self.assertNotIn(compact4("127.0.0.1", 29999), peers)
        for asked, got in ((10, 10), (1, 1), (500, 65), (0x7FFFFFFF, 65)):
            _, _, _, peers = c.announce(cid, ih, peer_id(999), 29999, left=1, numwant=asked)
            self.assertEqual(len(peers), got, f"numwant {asked}")
        # a seeder gets leechers only
        _, leechers, seeders, peers = c.announce(cid, ih, peer_id(100), 21000, left=0,
                                                 numwant=200)
        self.assertEqual((leechers, seeders), (41, 25))
        self.assertEqual(sorted(peers), sorted(
            [compact4("127.0.0.1", 20000 + i) for i in range(40)]
            + [compact4("127.0.0.1", 29999)]))

    def test_udp_and_http_share_swarms(self):
        ih = rand_hash()
        r = http_get(self.tracker.http_port, announce_target(ih, peer_id(), 8021, left=0))
        self.assertEqual(bdecode(r.body)[b"complete"], 1)
        c = self.client()
        _, leechers, seeders, peers = c.announce(c.connect(), ih, peer_id(), 8022)
        self.assertEqual((leechers, seeders, peers), (1, 1, [compact4("127.0.0.1", 8021)]))

    def test_scrape_74_hashes(self):
        c = self.client()
        cid = c.connect()
        hashes = [rand_hash() for _ in range(74)]
        c.announce(cid, hashes[0], peer_id(), 8031, left=0)
        c.announce(cid, hashes[0], peer_id(), 8032, left=4)
        c.announce(cid, hashes[73], peer_id(), 8033, left=4)
        c.announce(cid, hashes[73], peer_id(), 8033, left=0, event=1)  # completed
        tid = 0x55AA55AA
        reply = c.roundtrip(struct.pack(">QII", cid, SCRAPE, tid) + b"".join(hashes))
        want = [(0, 0, 0)] * 74
        want[0] = (1, 0, 1)
        want[73] = (1, 1, 0)
        self.assertEqual(reply, struct.pack(">II", SCRAPE, tid)
                         + b"".join(struct.pack(">III", *w) for w in want))
        # one hash, and duplicates answered in request order
        self.assertEqual(c.scrape(cid, [hashes[73], hashes[1], hashes[73]]),
                         [(1, 1, 0), (0, 0, 0), (1, 1, 0)])

    def test_scrape_75_hashes_or_none_is_an_error(self):
        c = self.client()
        cid = c.connect()
        for n in (75, 100, 0):
            tid = 1000 + n
            reply = c.roundtrip(struct.pack(">QII", cid, SCRAPE, tid)
                                + b"".join(rand_hash() for _ in range(n)))
            self.assert_error_packet(reply, tid)
        reply = c.roundtrip(struct.pack(">QII", cid, SCRAPE, 77) + rand_hash() + b"short")
        self.assert_error_packet(reply, 77)
        self.assertEqual(c.scrape(cid, [rand_hash()]), [(0, 0, 0)])

    def test_wrong_connection_id_gets_error_packet(self):
        c = self.client()
        cid = c.connect()
        ih = rand_hash()
        for bad in (0, cid ^ 1, cid ^ (1 << 40), PROTOCOL_ID, (cid & 0xFFFFFFFF00000000) + 1):
            tid = bad & 0xFFFFFFFF
            reply = c.roundtrip(UdpClient.announce_packet(bad, tid, ih, peer_id(), 8041))
            self.assert_error_packet(reply, tid, b"connection id")
            reply = c.roundtrip(struct.pack(">QII", bad, SCRAPE, tid) + ih)
            self.assert_error_packet(reply, tid, b"connection id")
        # nothing was stored by the refused announces
        self.assertEqual(c.scrape(cid, [ih]), [(0, 0, 0)])

    def test_unknown_action_gets_error_packet(self):
        c = self.client()
        cid = c.connect()
        for action in (4, 5, 1000, 0xFFFFFFFF):
            tid = action ^ 0xABCD
            reply = c.roundtrip(struct.pack(">QII", cid, action, tid) + b"\x00" * 90)
            self.assert_error_packet(reply, tid, b"action")
        # action 3 (error) is not a request either
        reply = c.roundtrip(struct.pack(">QII", cid, ERROR, 99) + b"oops")
        self.assert_error_packet(reply, 99)

    def test_short_packets_get_silence(self):
        c = self.client()
        cid = c.connect()
        full = UdpClient.announce_packet(cid, 5, rand_hash(), peer_id(), 8051)
        for pkt in (b"", b"\x00", b"\x00" * 8, struct.pack(">QII", PROTOCOL_ID, CONNECT, 1)[:15],
                    full[:16], full[:97], struct.pack(">QI", cid, ANNOUNCE)):
            c.send(pkt)
        self.assertTrue(c.silent(0.5), "a short packet was answered")
        # the tracker still serves, and this client is still known
        _, _, _, peers = c.announce(cid, rand_hash(), peer_id(), 8052)
        self.assertEqual(peers, [])

    def test_bep41_url_data_accepted(self):
        c = self.client()
        cid = c.connect()
        ih = rand_hash()
        c.announce(cid, ih, peer_id(), 8061, left=1)
        options = [
            b"\x02\x0c/announce?a=" + b"\x01" + b"\x02\x05&c=de" + b"\x00",
            b"\x02\x10/announce?k=1234" + b"\x00garbage after end",
            b"\x01\x01\x01",
            b"\x02\xff/short",        # length past the end: options end, announce stands
            b"\x07\x03abc",           # unknown option type
            b"\x02" + bytes([255]) + b"x" * 255 + b"\x02" + bytes([255]) + b"y" * 255
            + b"\x02" + bytes([255]) + b"z" * 255 + b"\x02" + bytes([255]) + b"w" * 255
            + b"\x02\x10" + b"v" * 16,  # more URL data than the tracker keeps
        ]
        for i, extra in enumerate(options):
            _, leechers, _, peers = c.announce(cid, ih, peer_id(), 8062 + i, left=1,
                                               extra=extra)
            self.assertEqual(leechers, 2 + i, extra[:20])
            self.assertIn(compact4("127.0.0.1", 8061), peers)

    def test_connection_id_bound_to_source_address(self):
        if not loopback_alias_available("127.0.0.2"):
            self.skipTest("cannot bind 127.0.0.2")
        a = self.client(source="127.0.0.1")
        b = self.client(source="127.0.0.2")
        cid_a = a.connect()
        ih = rand_hash()
        tid = 0x13572468
        b.send(UdpClient.announce_packet(cid_a, tid, ih, peer_id(), 8071))
        self.assert_error_packet(b.recv(), tid, b"connection id")
        b.send(struct.pack(">QII", cid_a, SCRAPE, tid + 1) + ih)
        self.assert_error_packet(b.recv(), tid + 1, b"connection id")
        # with its own id, b is served, and sees a's peer
        a.announce(cid_a, ih, peer_id(), 8072)
        _, _, _, peers = b.announce(b.connect(), ih, peer_id(), 8073)
        self.assertEqual(peers, [compact4("127.0.0.1", 8072)])

    def test_stopped_removes_peer(self):
        c = self.client()
        cid = c.connect()
        ih = rand_hash()
        c.announce(cid, ih, peer_id(1), 8081, left=3, event=2)
        c.announce(cid, ih, peer_id(2), 8082, left=0, event=2)
        self.assertEqual(c.scrape(cid, [ih]), [(1, 0, 1)])
        _, leechers, seeders, _ = c.announce(cid, ih, peer_id(2), 8082, left=0, event=3)
        self.assertEqual((leechers, seeders), (1, 0))
        self.assertEqual(c.scrape(cid, [ih]), [(0, 0, 1)])
        _, leechers, seeders, peers = c.announce(cid, ih, peer_id(1), 8081, left=3)
        self.assertEqual((leechers, seeders, peers), (1, 0, []))
        c.announce(cid, ih, peer_id(1), 8081, left=3, event=3)
        self.assertEqual(c.scrape(cid, [ih]), [(0, 0, 0)])

    def test_port_zero_peer_is_never_handed_out(self):
        # A peer at port 0 cannot be reached; HTTP refuses port=0 as "invalid port", and
        # UDP must not hand such a peer out either (an error packet is fine).
        c = self.client()
        cid = c.connect()
        ih = rand_hash()
        try:
            c.announce(cid, ih, peer_id(), 0, left=1)
        except UdpError:
            pass
        _, _, _, peers = c.announce(cid, ih, peer_id(), 8095, left=1)
        self.assertEqual(peers, [], "a peer with port 0 was handed out")

    def test_completed_counts_once(self):
        c = self.client()
        cid = c.connect()
        ih = rand_hash()
        c.announce(cid, ih, peer_id(1), 8091, left=3, event=2)
        c.announce(cid, ih, peer_id(1), 8091, left=0, event=1)
        c.announce(cid, ih, peer_id(1), 8091, left=0, event=1)
        self.assertEqual(c.scrape(cid, [ih]), [(1, 1, 0)])


@unittest.skipUnless(ipv6_loopback_available(), "IPv6 loopback (::1) unavailable")
class UdpDualStackTest(UdpCase):
    host = "::1"

    @classmethod
    def setUpClass(cls):
        cls.tracker = TrackerProcess(host="::", args=["--interval-jitter-percent", "0"])
        cls.tracker.start()

    @classmethod
    def tearDownClass(cls):
        shutdown(cls.tracker)

    def test_ipv6_announce_gets_18_byte_peers(self):
        c = self.client()
        cid = c.connect()
        ih = rand_hash()
        _, _, _, peers = c.announce(cid, ih, peer_id(1), 8101, peer_size=18)
        self.assertEqual(peers, [])
        tid = 0x0BADF00D
        c.send(UdpClient.announce_packet(cid, tid, ih, peer_id(2), 8102, left=0))
        self.assertEqual(c.recv(), struct.pack(">IIIII", ANNOUNCE, tid, 1800, 1, 1)
                         + compact6("::1", 8101))
        # an IPv4 client of the same tracker gets 6-byte IPv4 peers only
        v4 = self.client(host="127.0.0.1")
        cid4 = v4.connect()
        _, leechers, seeders, peers = v4.announce(cid4, ih, peer_id(3), 8103)
        self.assertEqual((leechers, seeders, peers), (2, 1, []))
        _, leechers, seeders, peers = c.announce(cid, ih, peer_id(1), 8101, peer_size=18)
        self.assertEqual((leechers, seeders), (2, 1))
        self.assertEqual(peers, [compact6("::1", 8102)])
        _, _, _, peers = v4.announce(cid4, ih, peer_id(4), 8104, left=0)
        self.assertEqual(peers, [compact4("127.0.0.1", 8103)])
        # IPv6 scrape, and stopped over IPv6
        self.assertEqual(c.scrape(cid, [ih]), [(2, 0, 2)])
        c.announce(cid, ih, peer_id(1), 8101, peer_size=18, event=3)
        self.assertEqual(c.scrape(cid, [ih]), [(2, 0, 1)])

    def test_ipv6_connection_id_not_valid_over_ipv4(self):
        c = self.client()
        cid = c.connect()
        v4 = self.client(host="127.0.0.1")
        v4.send(UdpClient.announce_packet(cid, 42, rand_hash(), peer_id(), 8111))
        self.assert_error_packet(v4.recv(), 42, b"connection id")


if __name__ == "__main__":
    unittest.main(verbosity=2)
