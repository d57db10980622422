#!/usr/bin/env python3
"""HTTP tracker (BEP 3, 7, 23, 48) against the real binary in standalone mode.

Replies are compared byte for byte with what the BEPs prescribe: sorted keys, exact
lengths, compact peers in network order. Also covered: events, numwant, peer selection,
scrape, X-Forwarded-For, keep-alive, pipelining, HTTP/1.0, request limits, and malformed
requests (each must get a clear error while the process keeps serving).

Run: python3 tests/integration/test_http_tracker.py (SYNAPSE_BIN picks the binary).
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from bencode import bdecode  # noqa: E402
from http_client import HttpConn, http_get  # noqa: E402
from net import ipv6_loopback_available, loopback_alias_available  # noqa: E402
from synapse_proc import TrackerProcess, shutdown  # noqa: E402
from tracker_config import ConfigFile  # noqa: E402
from tracker_proto import (announce_target, compact4, compact6, failure_bytes,  # noqa: E402
                           peer_id, ports_of, rand_hash, scrape_target, split_compact)
from udp_tracker import UdpClient  # noqa: E402


def counts_prefix(complete, downloaded, incomplete, interval=1800, min_interval=900):
    return (b"d8:completei%de10:downloadedi%de10:incompletei%de8:intervali%de12:min intervali%de"
            % (complete, downloaded, incomplete, interval, min_interval))


def scrape_entry(h, complete, downloaded, incomplete):
    return (b"20:" + h + b"d8:completei%de10:downloadedi%de10:incompletei%dee"
            % (complete, downloaded, incomplete))


class TrackerCase(unittest.TestCase):
    tracker = None
    intervals = (1800, 900)  # announce_interval, min_interval of the tracker under test

    def announce(self, info_hash, pid, port, conn=None, headers=(), source=None, host="127.0.0.1",
                 **params):
        """One announce that must succeed; returns (response, decoded body)."""
        target = announce_target(info_hash, pid, port, **params)
        if conn is not None:
            r = conn.request(target, headers=headers)
        else:
            r = http_get(self.tracker.http_port, target, host=host, headers=headers,
                         source=source)
        self.assertEqual(r.status, 200, r)
        d = bdecode(r.body)
        self.assertNotIn(b"failure reason", d, r.body)
        return r, d

    def scrape(self, hashes, source=None):
        r = http_get(self.tracker.http_port, scrape_target(hashes), source=source)
        self.assertEqual(r.status, 200, r)
        return bdecode(r.body)

    def assert_good_announce_works(self):
        ih = rand_hash()
        r, d = self.announce(ih, peer_id(), 4242, left=5)
        self.assertEqual(r.body, counts_prefix(0, 0, 1, *self.intervals) + b"5:peers0:e")


class DefaultTrackerTest(TrackerCase):
    """One standalone tracker on 127.0.0.1 with the built-in defaults. Each test uses its
    own random info_hash, so tests share the process without sharing swarms."""

    @classmethod
    def setUpClass(cls):
        # Replies are checked byte for byte: the announce interval without jitter.
        cls.tracker = TrackerProcess(args=["--interval-jitter-percent", "0"])
        cls.tracker.start()

    @classmethod
    def tearDownClass(cls):
        rc = shutdown(cls.tracker)
        assert rc == 0, f"tracker exited with {rc} on SIGTERM"

    def tearDown(self):
        self.assertIsNone(self.tracker.proc.poll(), "tracker process died during the test")

    # ---- reply formats ----

    def test_compact_reply_bytes(self):
        ih = rand_hash()
        a, b = peer_id(1), peer_id(2)
        r, _ = self.announce(ih, a, 6001, event="started", left=100)
        self.assertEqual(r.body, b"d8:completei0e10:downloadedi0e10:incompletei1e"
                                 b"8:intervali1800e12:min intervali900e5:peers0:e")
        self.assertEqual(r.header("content-length"), str(len(r.body)))
        self.assertEqual(r.header("content-type"), "text/plain")
        self.assertEqual(r.version, "HTTP/1.1")
        r, _ = self.announce(ih, b, 6002, event="started", left=0, compact=1)
        self.assertEqual(r.body, b"d8:completei1e10:downloadedi0e10:incompletei1e"
                                 b"8:intervali1800e12:min intervali900e"
                                 b"5:peers6:\x7f\x00\x00\x01\x17\x71e")
        # compact is the default, and no_peer_id changes nothing in the compact form
        r2, _ = self.announce(ih, b, 6002, left=0, no_peer_id=1)
        self.assertEqual(r2.body, r.body)

    def test_dict_reply_bytes(self):
        ih = rand_hash()
        a, b = peer_id(11), peer_id(12)
        r, _ = self.announce(ih, a, 6101, left=3, compact=0)
        self.assertEqual(r.body, counts_prefix(0, 0, 1) + b"5:peerslee")
        r, _ = self.announce(ih, b, 6102, left=3, compact=0)
        self.assertEqual(r.body, counts_prefix(0, 0, 2)
                         + b"5:peersld2:ip9:127.0.0.17:peer id20:" + a + b"4:porti6101eeee")
        r, _ = self.announce(ih, b, 6102, left=3, compact=0, no_peer_id=1)
        self.assertEqual(r.body, counts_prefix(0, 0, 2)
                         + b"5:peersld2:ip9:127.0.0.14:porti6101eeee")
        r, _ = self.announce(ih, a, 6101, left=3, compact=0)
        self.assertEqual(r.body, counts_prefix(0, 0, 2)
                         + b"5:peersld2:ip9:127.0.0.17:peer id20:" + b + b"4:porti6102eeee")

    def test_binary_ids_with_nul_bytes_round_trip(self):
        ih = b"\x00" * 19 + os.urandom(1)
        a = b"\x00\xff%&=+ \x01" + os.urandom(12)
        self.announce(ih, a, 6151, left=1)
        r, _ = self.announce(ih, peer_id(), 6152, left=1, compact=0)
        self.assertEqual(r.body, counts_prefix(0, 0, 2)
                         + b"5:peersld2:ip9:127.0.0.17:peer id20:" + a + b"4:porti6151eeee")
        self.assertEqual(self.scrape([ih])[b"files"][ih][b"incomplete"], 2)

    # ---- events ----

    def test_events_started_completed_stopped(self):
        ih = rand_hash()
        l1, l2, l3 = peer_id(21), peer_id(22), peer_id(23)
        _, d = self.announce(ih, l1, 6201, event="started", left=10)
        self.assertEqual((d[b"complete"], d[b"incomplete"], d[b"downloaded"]), (0, 1, 0))
        _, d = self.announce(ih, l2, 6202, event="started", left=10)
        self.assertEqual(ports_of(d[b"peers"]), [6201])
        _, d = self.announce(ih, l1, 6201, event="completed", left=0)
        self.assertEqual((d[b"complete"], d[b"incomplete"], d[b"downloaded"]), (1, 1, 1))
        # a repeated completed does not count a second download
        _, d = self.announce(ih, l1, 6201, event="completed", left=0)
        self.assertEqual((d[b"complete"], d[b"incomplete"], d[b"downloaded"]), (1, 1, 1))
        self.assertEqual(self.scrape([ih])[b"files"][ih],
                         {b"complete": 1, b"downloaded": 1, b"incomplete": 1})
        # stopped removes the peer at once
        _, d = self.announce(ih, l2, 6202, event="stopped", left=10)
        self.assertEqual((d[b"complete"], d[b"incomplete"]), (1, 0))
        self.assertEqual(self.scrape([ih])[b"files"][ih],
                         {b"complete": 1, b"downloaded": 1, b"incomplete": 0})
        _, d = self.announce(ih, l3, 6203, event="started", left=10)
        self.assertEqual(ports_of(d[b"peers"]), [6201])  # 6202 is gone
        _, d = self.announce(ih, l1, 6201, event="stopped", left=0)
        self.assertEqual(self.scrape([ih])[b"files"][ih],
                         {b"complete": 0, b"downloaded": 1, b"incomplete": 1})
        _, d = self.announce(ih, l3, 6203, left=10)
        self.assertEqual(d[b"peers"], b"")

    def test_stopped_on_unknown_swarm_creates_nothing(self):
        ih = rand_hash()
        _, d = self.announce(ih, peer_id(), 6251, event="stopped", left=1)
        self.assertEqual((d[b"complete"], d[b"incomplete"]), (0, 0))
        self.assertEqual(self.scrape([ih])[b"files"][ih],
                         {b"complete": 0, b"downloaded": 0, b"incomplete": 0})

    # ---- peer selection ----

    def test_numwant_default_max_and_explicit(self):
        ih = rand_hash()
        with HttpConn(self.tracker.http_port) as c:
            for i in range(230):
                self.announce(ih, peer_id(1000 + i), 10000 + i, conn=c, left=1, numwant=0)
            me = 9999

            def peers(**kw):
                _, d = self.announce(ih, peer_id(999), me, conn=c, left=1, **kw)
                self.assertEqual(d[b"incomplete"], 231)
                ports = ports_of(d[b"peers"])
                self.assertEqual(len(ports), len(set(ports)), "a peer was returned twice")
                self.assertNotIn(me, ports, "peer returned to itself")
                self.assertTrue(all(10000 <= p < 10230 for p in ports), ports)
                return ports

            self.assertEqual(len(peers()), 50)            # default
            self.assertEqual(len(peers(numwant=500)), 200)  # clamped to the maximum
            self.assertEqual(len(peers(numwant=200)), 200)
            self.assertEqual(len(peers(numwant=7)), 7)
            self.assertEqual(len(peers(numwant=1)), 1)
            self.assertEqual(len(peers(numwant=0)), 0)

    def test_peer_never_returned_to_itself(self):
        ih = rand_hash()
        _, d = self.announce(ih, peer_id(31), 6301, left=1, numwant=200)
        self.assertEqual(d[b"peers"], b"")
        _, d = self.announce(ih, peer_id(31), 6301, left=1, numwant=200)
        self.assertEqual((d[b"incomplete"], d[b"peers"]), (1, b""))
        # a new peer_id from the same ip:port is the same peer (keyed by address)
        _, d = self.announce(ih, peer_id(32), 6301, left=1, numwant=200, compact=0)
        self.assertEqual((d[b"incomplete"], d[b"peers"]), (1, []))
        self.announce(ih, peer_id(33), 6302, left=1)
        _, d = self.announce(ih, peer_id(32), 6301, left=1, numwant=200)
        self.assertEqual(d[b"peers"], compact4("127.0.0.1", 6302))

    def test_seeder_gets_only_leechers(self):
        ih = rand_hash()
        for port in (6401, 6402, 6403):
            self.announce(ih, peer_id(port), port, left=0)
        for port in (6411, 6412):
            self.announce(ih, peer_id(port), port, left=7)
        _, d = self.announce(ih, peer_id(6401), 6401, left=0)
        self.assertEqual(ports_of(d[b"peers"]), [6411, 6412])
        _, d = self.announce(ih, peer_id(6404), 6404, left=0)
        self.assertEqual(ports_of(d[b"peers"]), [6411, 6412])
        self.assertEqual((d[b"complete"], d[b"incomplete"]), (4, 2))
        _, d = self.announce(ih, peer_id(6411), 6411, left=7)
        self.assertEqual(ports_of(d[b"peers"]), [6401, 6402, 6403, 6404, 6412])

    # ---- scrape ----

    def test_scrape_multi_hash_bytes(self):
        h1, h2, h3 = rand_hash(), rand_hash(), rand_hash()
        self.announce(h1, peer_id(), 6501, left=0)
        self.announce(h1, peer_id(), 6502, left=5)
        self.announce(h1, peer_id(), 6503, left=5)
        self.announce(h1, peer_id(), 6502, left=0, event="completed")
        self.announce(h2, peer_id(), 6504, left=5)
        want = {h1: (2, 1, 1), h2: (0, 0, 1), h3: (0, 0, 0)}
        r = http_get(self.tracker.http_port, scrape_target([h3, h1, h2, h1]))
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b"d5:filesd" + b"".join(
            scrape_entry(h, *want[h]) for h in sorted(want)) + b"ee")
        self.assertEqual(r.header("content-length"), str(len(r.body)))

    def test_scrape_unknown_hashes_are_zeros(self):
        hs = sorted(rand_hash() for _ in range(3))
        r = http_get(self.tracker.http_port, scrape_target(hs))
        self.assertEqual(r.body, b"d5:filesd" + b"".join(scrape_entry(h, 0, 0, 0) for h in hs)
                         + b"ee")

    def test_full_scrape_disabled_by_default(self):
        for target in ("/scrape", "/scrape?", "/scrape?key=1"):
            r = http_get(self.tracker.http_port, target)
            self.assertEqual(r.status, 200)
            d = bdecode(r.body)
            self.assertEqual(list(d), [b"failure reason"], r.body)
            self.assertIn(b"full scrape", d[b"failure reason"])
            self.assertIn(b"disabled", d[b"failure reason"])

    def test_x_forwarded_for_ignored_without_trusted_proxies(self):
        ih = rand_hash()
        self.announce(ih, peer_id(), 6601, left=1,
                      headers=[("X-Forwarded-For", "10.20.30.40")])
        _, d = self.announce(ih, peer_id(), 6602, left=1)
        self.assertEqual(d[b"peers"], compact4("127.0.0.1", 6601))

    # ---- connection handling ----

    def test_keep_alive_several_requests_on_one_connection(self):
        ih = rand_hash()
        with HttpConn(self.tracker.http_port) as c:
            for i in range(5):
                r = c.request(announce_target(ih, peer_id(), 6700 + i, left=1))
                self.assertEqual(r.status, 200)
                self.assertEqual(bdecode(r.body)[b"incomplete"], i + 1)
                self.assertNotEqual((r.header("connection") or "").lower(), "close")
                r = c.request(scrape_target([ih]))
                self.assertEqual(bdecode(r.body)[b"files"][ih][b"incomplete"], i + 1)
                r = c.request("/healthz")
                self.assertEqual((r.status, r.body), (200, b"ok\n"))
            self.assertTrue(c.no_data_within(0.2), "server sent something unasked")

    def test_pipelining_three_requests_in_one_write(self):
        ih = rand_hash()
        with HttpConn(self.tracker.http_port) as c:
            c.send(c.request_bytes(announce_target(ih, peer_id(), 6801, left=1))
                   + c.request_bytes("/healthz")
                   + c.request_bytes(scrape_target([ih])))
            r1, r2, r3 = c.read_response(), c.read_response(), c.read_response()
        self.assertEqual(r1.body, counts_prefix(0, 0, 1) + b"5:peers0:e")
        self.assertEqual(r2.body, b"ok\n")
        self.assertEqual(r3.body, b"d5:filesd" + scrape_entry(ih, 0, 0, 1) + b"ee")

    def test_pipelining_many_requests_answered_in_order(self):
        hashes = [rand_hash() for _ in range(150)]  # more than the server queues at once
        with HttpConn(self.tracker.http_port) as c:
            c.send(b"".join(c.request_bytes(scrape_target([h])) for h in hashes))
            for i, h in enumerate(hashes):
                r = c.read_response()
                self.assertEqual(r.body, b"d5:filesd" + scrape_entry(h, 0, 0, 0) + b"ee",
                                 f"response {i} out of order")

    def test_http_1_0_closes_after_response(self):
        ih = rand_hash()
        with HttpConn(self.tracker.http_port) as c:
            c.send(f"GET {announce_target(ih, peer_id(), 6901, left=1)} HTTP/1.0\r\n\r\n"
                   .encode())
            r = c.read_response()
            self.assertEqual(r.body, counts_prefix(0, 0, 1) + b"5:peers0:e")
            self.assertTrue(c.closed_by_peer(), "HTTP/1.0 connection left open")

    def test_connection_close_header_closes(self):
        with HttpConn(self.tracker.http_port) as c:
            r = c.request("/healthz", headers=[("Connection", "close")])
            self.assertEqual(r.status, 200)
            self.assertEqual((r.header("connection") or "").lower(), "close")
            self.assertTrue(c.closed_by_peer())

    def test_head_response_has_no_body(self):
        # RFC 9110 9.3.2: a response to HEAD carries no content; on a keep-alive connection
        # a body would be read as the start of the next response.
        with HttpConn(self.tracker.http_port) as c:
            c.send(c.request_bytes("/healthz", method="HEAD") + c.request_bytes("/healthz"))
            while c.buf.count(b"HTTP/1.1 ") < 2 or not c.buf.endswith(b"ok\n"):
                c._fill()
            head, rest = c.buf.split(b"\r\n\r\n", 1)
            self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
            self.assertTrue(rest.startswith(b"HTTP/1.1 200"),
                            f"HEAD response carried a body: {rest[:20]!r}")

    # ---- errors ----

    def test_malformed_announces_get_failure_reasons(self):
        ih, pid = rand_hash(), peer_id()
        good = f"info_hash={'%41' * 20}&peer_id={'%42' * 20}"
        cases = [
            (f"/announce?info_hash={'%41' * 19}&peer_id={'%42' * 20}&port=1",
             "invalid info_hash: must be 20 bytes"),
            (f"/announce?info_hash={'%41' * 21}&peer_id={'%42' * 20}&port=1",
             "invalid info_hash: must be 20 bytes"),
            (f"/announce?info_hash=%4G{'%41' * 19}&peer_id={'%42' * 20}&port=1",
             "invalid info_hash: must be 20 bytes"),
            (f"/announce?peer_id={'%42' * 20}&port=1", "missing info_hash"),
            (f"/announce?info_hash={'%41' * 20}&port=1", "missing peer_id"),
            (f"/announce?info_hash={'%41' * 20}&peer_id=short&port=1",
             "invalid peer_id: must be 20 bytes"),
            (f"/announce?{good}", "missing port"),
            (f"/announce?{good}&port=0", "invalid port"),
            (f"/announce?{good}&port=65536", "invalid port"),
            (f"/announce?{good}&port=http", "invalid port"),
            (f"/announce?{good}&port=1&event=bogus", "invalid event"),
            (f"/announce?{good}&port=1&numwant=-1", "invalid numwant"),
            (f"/announce?{good}&port=1&left=-5", "invalid left"),
            (f"/announce?{good}&port=1&uploaded=99999999999999999999", "invalid uploaded"),
            ("/announce", "missing info_hash"),
            ("/scrape?info_hash=short", "invalid info_hash: must be 20 bytes"),
        ]
        with HttpConn(self.tracker.http_port) as c:
            for target, reason in cases:
                r = c.request(target)
                self.assertEqual(r.status, 200, target)
                self.assertEqual(r.body, failure_bytes(reason), target)
            # the same connection keeps serving
            r, _ = self.announce(ih, pid, 6951, conn=c, left=1)
            self.assertEqual(r.body, counts_prefix(0, 0, 1) + b"5:peers0:e")

    def test_garbage_that_is_not_http_gets_400(self):
        for junk in (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n",
                     b"HELLO THERE\r\n\r\n",
                     b"GET /healthz HTTP/1.1\r\nNo colon here\r\n\r\n",
                     b"GET /healthz HTTP/1.1\r\nContent-Length: nope\r\n\r\n",
                     b"\x00" * 64 + b"\r\n\r\n"):
            with HttpConn(self.tracker.http_port) as c:
                c.send(junk)
                r = c.read_response()
                self.assertEqual(r.status, 400, junk)
                self.assertTrue(c.closed_by_peer(), f"connection left open after {junk!r}")
        self.assert_good_announce_works()

    def test_client_closing_midway_does_not_hurt(self):
        for partial in (b"GET /announce?info_hash=", b"GET /healthz HTTP/1.1\r\nHost: x",
                        b"POST /api/register HTTP/1.1\r\nContent-Length: 50\r\n\r\n{\"a\""):
            with HttpConn(self.tracker.http_port) as c:
                c.send(partial)
        # a client that leaves before its answer is written
        with HttpConn(self.tracker.http_port) as c:
            c.send(c.request_bytes(announce_target(rand_hash(), peer_id(), 6961, left=1)) * 3)
        self.assert_good_announce_works()

    def test_unknown_path_404(self):
        for target in ("/nope", "/announcex", "/announce/", "/scrape/x"):
            r = http_get(self.tracker.http_port, target)
            self.assertEqual(r.status, 404, target)

    def test_post_to_announce_and_scrape_405(self):
        for target in ("/announce", "/scrape"):
            r = http_get(self.tracker.http_port, target + "?x=1", method="POST", body=b"a=b")
            self.assertEqual(r.status, 405, target)
            self.assertEqual(r.header("allow"), "GET")
        self.assert_good_announce_works()


class ConfiguredTrackerTest(TrackerCase):
    """A tracker with its own intervals and numwant bounds, full scrape on, one trusted
    proxy (127.0.0.2) and small HTTP limits."""

    intervals = (1200, 60)
    CONFIG = """
server:
  announce_interval: 1200
  min_interval: 60
  default_numwant: 5
  max_peers_returned: 8
  full_scrape: true
  full_scrape_interval: 600
  trusted_proxies: ["127.0.0.2"]
limits:
  max_request_line: 512
  max_header_bytes: 512
  max_headers: 8
  max_body: 64
"""

    @classmethod
    def setUpClass(cls):
        cls.config = ConfigFile(cls.CONFIG)
        cls.tracker = TrackerProcess(args=["--config", cls.config.path, "--interval-jitter-percent", "0"])
        cls.tracker.start()

    @classmethod
    def tearDownClass(cls):
        shutdown(cls.tracker)
        cls.config.remove()

    def tearDown(self):
        self.assertIsNone(self.tracker.proc.poll(), "tracker process died during the test")

    def rejected(self, raw, status):
        with HttpConn(self.tracker.http_port) as c:
            c.send(raw)
            r = c.read_response()
            self.assertEqual(r.status, status, raw[:80])
            self.assertTrue(c.closed_by_peer(), "connection left open after a rejection")
        self.assert_good_announce_works()

    def test_full_scrape_enabled_and_rate_limited(self):
        if not loopback_alias_available("127.0.0.3"):
            self.skipTest("cannot bind 127.0.0.3")
        h1, h2 = rand_hash(), rand_hash()
        self.announce(h1, peer_id(), 7101, left=0)
        self.announce(h2, peer_id(), 7102, left=3)
        d = self.scrape([], source="127.0.0.1")
        self.assertEqual(d[b"files"][h1], {b"complete": 1, b"downloaded": 0, b"incomplete": 0})
        self.assertEqual(d[b"files"][h2], {b"complete": 0, b"downloaded": 0, b"incomplete": 1})
        # again from the same address within the interval: refused
        d = self.scrape([], source="127.0.0.1")
        self.assertEqual(list(d), [b"failure reason"])
        self.assertIn(b"rate limit", d[b"failure reason"])
        # named hashes are never rate-limited
        d = self.scrape([h1], source="127.0.0.1")
        self.assertIn(h1, d[b"files"])
        # the limit is per client address
        d = self.scrape([], source="127.0.0.3")
        self.assertIn(h2, d[b"files"])

    def test_x_forwarded_for_only_from_trusted_proxies(self):
        if not loopback_alias_available("127.0.0.2"):
            self.skipTest("cannot bind 127.0.0.2")
        ih = rand_hash()
        xff = "X-Forwarded-For"
        self.announce(ih, peer_id(), 7201, left=1, source="127.0.0.2",
                      headers=[(xff, "203.0.113.7")])
        self.announce(ih, peer_id(), 7202, left=1, source="127.0.0.1",
                      headers=[(xff, "198.51.100.9")])  # not a trusted proxy: ignored
        self.announce(ih, peer_id(), 7203, left=1, source="127.0.0.2",
                      headers=[(xff, "192.0.2.1, 203.0.113.8")])  # the proxy's own entry
        self.announce(ih, peer_id(), 7204, left=1, source="127.0.0.2",
                      headers=[(xff, "2001:db8::5")])
        self.announce(ih, peer_id(), 7205, left=1, source="127.0.0.2")  # no header: the proxy
        _, d = self.announce(ih, peer_id(), 7206, left=1, source="127.0.0.1", numwant=200)
        self.assertEqual(sorted(split_compact(d[b"peers"], 6)), sorted([
            compact4("203.0.113.7", 7201), compact4("127.0.0.1", 7202),
            compact4("203.0.113.8", 7203), compact4("127.0.0.2", 7205)]))
        self.assertEqual(d[b"peers6"], compact6("2001:db8::5", 7204))

    def test_configured_intervals_and_numwant(self):
        ih = rand_hash()
        with HttpConn(self.tracker.http_port) as c:
            for i in range(12):
                r, _ = self.announce(ih, peer_id(), 7400 + i, conn=c, left=1, numwant=0)
                self.assertEqual(r.body, counts_prefix(0, 0, i + 1, 1200, 60) + b"5:peers0:e")
            for asked, got in ((None, 5), (100, 8), (8, 8), (3, 3)):
                _, d = self.announce(ih, peer_id(), 7399, conn=c, left=1, numwant=asked)
                self.assertEqual(len(split_compact(d[b"peers"], 6)), got, f"numwant {asked}")
        u = UdpClient(self.tracker.udp_port)
        self.addCleanup(u.close)
        cid = u.connect()
        for asked, got in ((-1, 5), (100, 8), (2, 2)):
            interval, leechers, _, peers = u.announce(cid, ih, peer_id(), 7398, numwant=asked)
            self.assertEqual((interval, leechers, len(peers)), (1200, 14, got), f"numwant {asked}")

    def test_long_request_line_414(self):
        self.rejected(b"GET /announce?pad=" + b"x" * 600 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414)

    def test_huge_headers_431(self):
        self.rejected(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"y" * 600 + b"\r\n\r\n",
                      431)
        self.rejected(b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                      + b"".join(b"X-H%d: %s\r\n" % (i, b"z" * 90) for i in range(6)) + b"\r\n",
                      431)

    def test_too_many_headers_431(self):
        eight = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(
            b"X-H%d: 1\r\n" % i for i in range(7)) + b"\r\n"
        with HttpConn(self.tracker.http_port) as c:
            c.send(eight)
            self.assertEqual(c.read_response().status, 200)  # exactly at the limit
        nine = eight[:-2] + b"X-H9: 1\r\n\r\n"
        self.rejected(nine, 431)

    def test_body_over_max_body_413_content_length(self):
        self.rejected(b"POST /api/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                      b"\r\nContent-Length: 100\r\n\r\n" + b"{" + b" " * 98 + b"}", 413)

    def test_body_over_max_body_413_chunked(self):
        # no Content-Length to refuse up front: the body itself is counted
        self.rejected(b"POST /api/register HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
                      b"\r\n\r\n64\r\n" + b"a" * 100 + b"\r\n0\r\n\r\n", 413)

    def test_requests_within_limits_are_served(self):
        ih = rand_hash()
        target = announce_target(ih, peer_id(), 7301, left=1, numwant=10, key="abcdef")
        self.assertLess(len(target), 400)
        r, _ = self.announce(ih, peer_id(), 7301, left=1, headers=[("User-Agent", "t" * 100)])
        self.assertEqual(r.body, counts_prefix(0, 0, 1, *self.intervals) + b"5:peers0:e")
        r = http_get(self.tracker.http_port, "/announce?x=1", method="POST", body=b"a" * 64)
        self.assertEqual(r.status, 405)


@unittest.skipUnless(ipv6_loopback_available(), "IPv6 loopback (::1) unavailable")
class DualStackTrackerTest(TrackerCase):
    """--host :: serves IPv4 and IPv6 clients; IPv4 peers go to `peers`, IPv6 to `peers6`."""

    @classmethod
    def setUpClass(cls):
        cls.tracker = TrackerProcess(host="::", args=["--interval-jitter-percent", "0"])
        cls.tracker.start()

    @classmethod
    def tearDownClass(cls):
        shutdown(cls.tracker)

    def test_ipv4_and_ipv6_peers(self):
        ih = rand_hash()
        x, y, z, w = peer_id(41), peer_id(42), peer_id(43), peer_id(44)
        r, _ = self.announce(ih, x, 7401, left=1, host="::1")
        self.assertEqual(r.body, counts_prefix(0, 0, 1) + b"5:peers0:e")
        r, _ = self.announce(ih, y, 7402, left=1, host="127.0.0.1")
        self.assertEqual(r.body, counts_prefix(0, 0, 2) + b"5:peers0:6:peers618:"
                         + compact6("::1", 7401) + b"e")
        r, _ = self.announce(ih, z, 7403, left=1, host="127.0.0.1", numwant=10)
        self.assertEqual(r.body, counts_prefix(0, 0, 3) + b"5:peers6:" + compact4("127.0.0.1", 7402)
                         + b"6:peers618:" + compact6("::1", 7401) + b"e")
        _, d = self.announce(ih, w, 7404, left=1, host="::1", compact=0)
        self.assertEqual(sorted((p[b"ip"], p[b"port"], p[b"peer id"]) for p in d[b"peers"]),
                         [(b"127.0.0.1", 7402, y), (b"127.0.0.1", 7403, z), (b"::1", 7401, x)])
        _, d = self.announce(ih, w, 7404, left=1, host="::1")
        self.assertEqual(sorted(split_compact(d[b"peers"], 6)),
                         [compact4("127.0.0.1", 7402), compact4("127.0.0.1", 7403)])
        self.assertEqual(d[b"peers6"], compact6("::1", 7401))
        # stopped over IPv6 removes the IPv6 peer only
        self.announce(ih, x, 7401, left=1, host="::1", event="stopped")
        _, d = self.announce(ih, z, 7403, left=1, host="127.0.0.1")
        self.assertEqual(d[b"peers6"], compact6("::1", 7404))
        self.assertEqual(d[b"peers"], compact4("127.0.0.1", 7402))


if __name__ == "__main__":
    unittest.main(verbosity=2)
