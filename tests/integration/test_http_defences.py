#!/usr/bin/env python3
"""The router's defences against one client taking the tracker off the air, against the
real binary: per-client connection caps, head deadlines (idle and trickling connections),
lingering close after an error reply, per-client rate limits over HTTP, the JSON API and
UDP (with trusted proxies' forwarded addresses), running short of file descriptors, and
dual-stack listening.

Clients are told apart by their loopback source address (127.0.0.1 floods, 127.0.0.2
is the well-behaved client that must keep being answered).

Run: python3 tests/integration/test_http_defences.py (SYNAPSE_BIN picks the binary).
"""
import json
import os
import resource
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from bencode import bdecode  # noqa: E402
from http_client import HttpConn, http_get, http_request  # noqa: E402
from net import ipv6_loopback_available  # noqa: E402
from synapse_proc import TrackerProcess  # noqa: E402
from tracker_config import ConfigFile, config_yaml  # noqa: E402
from tracker_proto import announce_target, peer_id, rand_hash  # noqa: E402
from udp_tracker import UdpClient, UdpError  # noqa: E402

FLOODER = "127.0.0.1"
GOOD = "127.0.0.2"


def metric(tracker, name, conn=None):
    """The value of a metric line `name` (with labels, exactly as printed) on /metrics,
    asked on `conn` when given (an open keep-alive connection), else on a fresh one."""
    if conn is not None:
        r = conn.request("/metrics")
    else:
        r = http_get(tracker.http_port, "/metrics", source="127.0.0.9")
    for line in r.body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in /metrics")


def good_announce(tracker, timeout=1.0):
    """One announce from the well-behaved client on a fresh connection, timed."""
    t0 = time.monotonic()
    r = http_get(tracker.http_port, announce_target(rand_hash(), peer_id(), 6881),
                 source=GOOD, timeout=timeout)
    elapsed = time.monotonic() - t0
    assert r.status == 200 and b"failure reason" not in r.body, r
    return elapsed


def closed_by_peer(sock, timeout):
    """Waits until the server closes `sock` (EOF or reset); returns the seconds it took,
    or None if it stays open for `timeout`. Bytes sent by the server are read away."""
    t0 = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - t0 < timeout:
        try:
            if sock.recv(65536) == b"":
                return time.monotonic() - t0
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - t0
    return None


def open_idle(n, source, port):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind((source, 0))
        s.connect(("127.0.0.1", port))
        socks.append(s)
    return socks


def tracker_with(limits, server=None, **kw):
    cfg = ConfigFile(config_yaml({"limits": limits, "server": server or {}}))
    t = TrackerProcess(args=["--config", cfg.path], **kw)
    t.start()
    return t, cfg


class ConnectionDefences(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tracker, cls.cfg = tracker_with({"header_timeout_ms": 2000,
                                             "max_connections_per_ip": 100})

    @classmethod
    def tearDownClass(cls):
        cls.tracker.close()
        cls.cfg.remove()

    def test_idle_flood_from_one_address_leaves_others_served(self):
        port = self.tracker.http_port
        socks = open_idle(400, FLOODER, port)  # four times the per-client cap
        try:
            for _ in range(20):
                self.assertLess(good_announce(self.tracker), 1.0)
            # Beyond the cap the flooder's connections are closed at once.
            refused = [s for s in socks[100:] if closed_by_peer(s, 0.5) is not None]
            self.assertGreater(len(refused), 250)
            self.assertGreaterEqual(
                metric(self.tracker,
                       'synapse_tracker_http_connections_refused_total{reason="per_client"}'),
                250)
        finally:
            for s in socks:
                s.close()

    def test_silent_connection_closed_at_the_head_deadline(self):
        s = socket.create_connection(("127.0.0.1", self.tracker.http_port))
        with s:
            took = closed_by_peer(s, 6.0)
        # 2 s deadline, checked once a second: closed well before the 60 s idle timeout.
        self.assertIsNotNone(took, "a connection that sends nothing stayed open")
        self.assertGreater(took, 1.5)
        self.assertLess(took, 4.5)

    def test_trickling_head_answered_408_at_the_deadline(self):
        s = socket.create_connection(("127.0.0.1", self.tracker.http_port))
        stop = threading.Event()
        head = b"GET /announce?info_hash=aaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: x\r\n" * 10

        def trickle():
            for b in head:  # one byte every half second: never a whole head
                if stop.wait(0.5):
                    return
                try:
                    s.send(bytes([b]))
                except OSError:
                    return

        th = threading.Thread(target=trickle, daemon=True)
        t0 = time.monotonic()
        th.start()
        try:
            s.settimeout(6.0)
            reply = b""
            while True:
                try:
                    chunk = s.recv(4096)
                except (socket.timeout, ConnectionResetError):
                    break
                if not chunk:
                    break
                reply += chunk
            took = time.monotonic() - t0
        finally:
            stop.set()
            th.join()
            s.close()
        self.assertTrue(reply.startswith(b"HTTP/1.1 408 "), reply[:100])
        self.assertLess(took, 5.0)
        self.assertGreaterEqual(metric(self.tracker, "synapse_tracker_http_header_timeouts_total"),
                                1)

    def test_oversized_body_gets_a_readable_413(self):
        body = b"x" * (3 << 20)
        head = (b"POST /api/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body))
        with socket.create_connection(("127.0.0.1", self.tracker.http_port), timeout=10) as s:
            s.sendall(head)
            s.sendall(body)  # the server drains it: no reset while we are still sending
            reply = b""
            while True:
                chunk = s.recv(65536)  # a reset here would raise ConnectionResetError
                if not chunk:
                    break
                reply += chunk
        self.assertTrue(reply.startswith(b"HTTP/1.1 413 "), reply[:200])
        self.assertIn(b"Connection: close", reply)
        self.assertIn(b'"status":"error"', reply)


class RateLimits(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tracker, cls.cfg = tracker_with(
            {"announce_rate": 5, "announce_burst": 20, "scrape_rate": 5, "scrape_burst": 10,
             "api_read_rate": 5, "api_read_burst": 10, "api_write_rate": 5,
             "api_write_burst": 10},
            server={"trusted_proxies": ["127.0.0.3/32"]})

    @classmethod
    def tearDownClass(cls):
        cls.tracker.close()
        cls.cfg.remove()

    def test_http_announce_flood_429_while_another_address_served(self):
        ih = rand_hash()
        statuses = []
        with HttpConn(self.tracker.http_port, source="127.0.0.4") as c:
            for i in range(60):
                r = c.request(announce_target(ih, peer_id(), 7000 + i))
                statuses.append(r.status)
                if r.status == 429:
                    limited = r
        self.assertGreaterEqual(statuses.count(200), 20)
        self.assertLessEqual(statuses.count(200), 30)  # the burst, plus 5/s refilled
        self.assertGreater(statuses.count(429), 25)
        reason = bdecode(limited.body)[b"failure reason"]
        self.assertIn(b"rate limit", reason)
        self.assertTrue(limited.header("retry-after").isdigit())
        self.assertLess(good_announce(self.tracker), 1.0)
        self.assertGreater(
            metric(self.tracker, 'synapse_tracker_rate_limited_total{class="announce"}'), 25)

    def test_api_flood_429_json(self):
        statuses = []
        for _ in range(30):
            st, body = http_request("127.0.0.1", self.tracker.http_port, "POST",
                                    "/api/search", {"query": "flood", "limit": 1})
            statuses.append(st)
            if st == 429:
                last = json.loads(body)
        self.assertGreater(statuses.count(429), 10)
        self.assertEqual(last["status"], "error")
        self.assertIn("rate limit", last["error"])

    def test_forwarded_address_is_the_one_limited(self):
        def announce_as(client):
            r = http_get(self.tracker.http_port, announce_target(rand_hash(), peer_id(), 7100),
                         source="127.0.0.3", headers=[("X-Forwarded-For", client)])
            return r.status

        first = [announce_as("198.51.100.7") for _ in range(40)]
        self.assertIn(429, first)
        # The proxy's other clients are not limited by that one.
        self.assertEqual([announce_as("198.51.100.8") for _ in range(10)], [200] * 10)

    def test_udp_announce_flood_gets_bep15_errors(self):
        with UdpClient(self.tracker.udp_port, source="127.0.0.5") as u:
            cid = u.connect()
            answered = errors = 0
            for i in range(60):
                try:
                    u.announce(cid, rand_hash(), peer_id(), 7200 + i)
                    answered += 1
                except UdpError as e:
                    self.assertIn("rate limit", e.message)
                    errors += 1
        self.assertGreaterEqual(answered, 20)
        self.assertGreater(errors, 25)
        with UdpClient(self.tracker.udp_port, source="127.0.0.6") as u:
            u.announce(u.connect(), rand_hash(), peer_id(), 7300)


class DescriptorExhaustion(unittest.TestCase):
    """With few file descriptors the server holds its connection limit below them, closes
    what comes beyond, keeps serving its open connections, and recovers when the flood
    ends."""

    LIMIT = 600

    def test_keeps_serving_at_the_descriptor_limit(self):
        def low_limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (self.LIMIT, self.LIMIT))

        t = TrackerProcess(preexec=low_limit)
        t.start()
        try:
            keep = HttpConn(t.http_port, source=GOOD)
            self.assertEqual(keep.request(announce_target(rand_hash(), peer_id(), 1)).status, 200)
            socks = []
            for i in range(40):  # 40 clients x 12: far past the limit, under the per-client cap
                socks += open_idle(12, f"127.0.1.{i + 1}", t.http_port)
            try:
                refused = metric(t, 'synapse_tracker_http_connections_refused_total'
                                    '{reason="max_connections"}', conn=keep)
                self.assertGreater(refused, 0)
                for _ in range(5):  # the open keep-alive connection is still served
                    r = keep.request(announce_target(rand_hash(), peer_id(), 2))
                    self.assertEqual(r.status, 200)
            finally:
                for s in socks:
                    s.close()
            deadline = time.monotonic() + 5
            while True:  # the flood's closes are processed: fresh clients are served again
                try:
                    good_announce(t)
                    break
                except (AssertionError, OSError):
                    if time.monotonic() > deadline:
                        raise
            keep.close()
        finally:
            t.close()


@unittest.skipUnless(ipv6_loopback_available(), "no IPv6 loopback")
class DualStack(unittest.TestCase):
    def test_default_host_serves_ipv4_and_ipv6(self):
        with TrackerProcess(host="::") as t:
            for host in ("127.0.0.1", "::1"):
                r = http_get(t.http_port, announce_target(rand_hash(), peer_id(), 1), host=host)
                self.assertEqual(r.status, 200, host)
                with UdpClient(t.udp_port, host=host) as u:
                    u.announce(u.connect(), rand_hash(), peer_id(), 2)


if __name__ == "__main__":
    unittest.main()
