#!/usr/bin/env python3
"""Access control against the real binary in standalone mode: info_hash and IP lists
(router/access.h) over HTTP and UDP announce and scrape and the JSON API, their reload by
SIGHUP and by POST /admin/reload, the admin endpoints' tokens, bearer tokens from a file
rotated without a restart, and tracker.registered_only (node/registered.h).

Every change is awaited by polling what the tracker answers (wait_for), never by a sleep.

Run: python3 tests/integration/test_access.py (SYNAPSE_BIN picks the binary).
"""
import os
import signal
import struct
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cluster as cu  # noqa: E402
from api_tracker import Tracker  # noqa: E402
from bencode import bdecode  # noqa: E402
from http_client import http_get  # noqa: E402
from net import loopback_alias_available  # noqa: E402
from tracker_proto import announce_target, peer_id, rand_hash, scrape_target  # noqa: E402
from udp_tracker import ERROR, SCRAPE, UdpClient, UdpError  # noqa: E402
from wait import wait_for  # noqa: E402

ADMIN = "admin-token-0123456789"
WRITE_OLD = "write-token-old-0001"
WRITE_NEW = "write-token-new-0002"
DENIED = bytes.fromhex("de" * 20)
DENIED_V2_HEX = "dd" * 20 + "ee" * 12  # a v2 hash: refused on its first 20 bytes
OTHER_HOST = "127.0.0.2"
WAIT = 10


def write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)  # a reader sees the old file or the new one, never half


def bearer(token):
    return {"Authorization": "Bearer " + token}


def shard_body(h):
    return {"info_hash": h, "display_name": "access test", "model": "m2", "dimension": 2,
            "embedding": [0.5, 0.5]}


class AccessCase(unittest.TestCase):
    t = None

    def announce(self, info_hash, port, source=None):
        """The decoded bencoded reply of one HTTP announce."""
        target = announce_target(info_hash, peer_id(port), port, left=1, compact=1,
                                 event="started")
        r = http_get(self.t.http_port, target, source=source)
        self.assertEqual(r.status, 200, r)
        return bdecode(r.body)

    def assert_refused(self, reply, reason):
        self.assertEqual(reply.get(b"failure reason"), reason.encode(), reply)

    def assert_served(self, reply):
        self.assertNotIn(b"failure reason", reply)
        self.assertIn(b"interval", reply)

    def udp(self, source=None):
        c = UdpClient(self.t.udp_port, source=source)
        self.addCleanup(c.close)
        return c

    @staticmethod
    def udp_exchange(c, pkt, tid):
        """(action, bytes after the header): an error packet is (ERROR, its message)."""
        try:
            action, reply = c.exchange(pkt, tid)
            return action, reply[8:]
        except UdpError as e:
            return ERROR, e.message.encode()

    def udp_announce_raw(self, c, info_hash, port):
        """(action, message or body) of one UDP announce."""
        conn = c.connect()
        tid = c.tid()
        return self.udp_exchange(c, c.announce_packet(conn, tid, info_hash, peer_id(port), port),
                                 tid)

    def admin(self, method, path, token=ADMIN):
        return self.t.request(method, path, headers=bearer(token) if token else None)

    def metric(self, line_prefix):
        body = self.t.get("/metrics").text
        for line in body.splitlines():
            if line.startswith(line_prefix + " "):
                return float(line.split()[-1])
        raise KeyError(line_prefix)


class AccessListTest(AccessCase):
    """Deny lists for info_hashes and addresses; admin and write tokens."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory(prefix="synapse-access-")
        d = cls.dir.name
        cls.hash_deny = os.path.join(d, "hash_deny.txt")
        cls.ip_deny = os.path.join(d, "ip_deny.txt")
        cls.tokens = os.path.join(d, "tokens")
        write(cls.hash_deny, "# refused torrents\n%s\n%s  # a v2 one\n" % (DENIED.hex(),
                                                                          DENIED_V2_HEX))
        cls.alias = loopback_alias_available(OTHER_HOST)
        write(cls.ip_deny, "# refused clients\n%s/32\n2001:db8::/32\n" % OTHER_HOST)
        write(cls.tokens, WRITE_OLD + "\n")
        cls.t = Tracker(config={
            "access": {"info_hash_deny_file": cls.hash_deny, "ip_deny_file": cls.ip_deny},
            "api": {"tokens_file": cls.tokens, "admin_tokens": [ADMIN]},
        }).start()

    @classmethod
    def tearDownClass(cls):
        cls.t.close()
        cls.dir.cleanup()

    def tearDown(self):
        self.assertTrue(self.t.alive(), "tracker process died during the test")

    def reload(self):
        r = self.admin("POST", "/admin/reload")
        self.assertEqual(r.status_code, 200, r.text)
        return r.json()

    def test_denied_info_hash_over_http(self):
        self.assert_refused(self.announce(DENIED, 7001), "info_hash is not allowed on this tracker")
        self.assert_refused(self.announce(bytes.fromhex(DENIED_V2_HEX[:40]), 7002),
                            "info_hash is not allowed on this tracker")
        self.assert_served(self.announce(rand_hash(), 7003))
        r = http_get(self.t.http_port, scrape_target([rand_hash(), DENIED]))
        self.assert_refused(bdecode(r.body), "info_hash is not allowed on this tracker")
        r = http_get(self.t.http_port, scrape_target([rand_hash()]))
        self.assertIn(b"files", bdecode(r.body))

    def test_denied_info_hash_over_udp(self):
        c = self.udp()
        action, msg = self.udp_announce_raw(c, DENIED, 7011)
        self.assertEqual(action, ERROR)
        self.assertEqual(msg, b"info_hash is not allowed on this tracker")
        c.announce(c.connect(), rand_hash(), peer_id(7012), 7012)  # served
        conn = c.connect()
        tid = c.tid()
        pkt = struct.pack(">QII", conn, SCRAPE, tid) + rand_hash() + DENIED
        self.assertEqual(self.udp_exchange(c, pkt, tid),
                         (ERROR, b"info_hash is not allowed on this tracker"))
        self.assertEqual(len(c.scrape(c.connect(), [rand_hash()])), 1)

    def test_denied_address(self):
        if not self.alias:
            self.skipTest(f"cannot bind {OTHER_HOST}")
        self.assert_refused(self.announce(rand_hash(), 7021, source=OTHER_HOST),
                            "your address is not allowed on this tracker")
        self.assert_served(self.announce(rand_hash(), 7022))
        action, msg = self.udp_announce_raw(self.udp(source=OTHER_HOST), rand_hash(), 7023)
        self.assertEqual((action, msg), (ERROR, b"your address is not allowed on this tracker"))
        r = http_get(self.t.http_port, "/api/shard/" + "ab" * 20, source=OTHER_HOST)
        self.assertEqual(r.status, 403, r)
        self.assertIn(b"your address is not allowed", r.body)
        self.assertEqual(self.t.get("/api/shard/" + "ab" * 20).status_code, 404)

    def test_admin_needs_the_admin_token(self):
        for token, status in ((None, 401), ("wrong", 403), (WRITE_OLD, 403), (ADMIN + "x", 403)):
            for method, path in (("POST", "/admin/reload"), ("GET", "/admin/lists")):
                r = self.admin(method, path, token)
                self.assertEqual(r.status_code, status, (token, path, r.text))
                self.assertEqual(r.json()["status"], "error")
        self.assertEqual(self.admin("GET", "/admin/reload").status_code, 405)
        doc = self.admin("GET", "/admin/lists").json()
        self.assertEqual(doc["lists"]["info_hash_deny"], {"file": self.hash_deny, "entries": 2})
        self.assertIsNone(doc["lists"]["info_hash_allow"])
        self.assertEqual(doc["lists"]["ip_deny"]["entries"], 2)
        self.assertTrue(doc["last_reload"]["ok"])
        self.assertGreater(doc["last_reload"]["at_ms"], 0)
        self.assertNotIn(DENIED.hex(), self.admin("GET", "/admin/lists").text)

    def test_reload_by_admin_endpoint(self):
        fresh = rand_hash()
        self.assert_served(self.announce(fresh, 7031))
        try:
            write(self.hash_deny, "%s\n%s\n" % (DENIED.hex(), fresh.hex()))
            doc = self.reload()
            self.assertEqual(doc["lists"]["info_hash_deny"]["entries"], 2)
            self.assert_refused(self.announce(fresh, 7032), "info_hash is not allowed on this tracker")
            # A bad line: the error names file and line, and the old lists stay.
            write(self.hash_deny, "%s\nnot-a-hash\n" % DENIED.hex())
            r = self.admin("POST", "/admin/reload")
            self.assertEqual(r.status_code, 500, r.text)
            self.assertIn("%s:2: " % self.hash_deny, r.json()["error"])
            self.assert_refused(self.announce(fresh, 7033), "info_hash is not allowed on this tracker")
            last = self.admin("GET", "/admin/lists").json()["last_reload"]
            self.assertFalse(last["ok"])
            self.assertIn(":2: ", last["error"])
            self.assertEqual(self.metric("synapse_tracker_access_reload_success"), 0)
        finally:
            write(self.hash_deny, "%s\n%s\n" % (DENIED.hex(), DENIED_V2_HEX))
            self.reload()
        self.assert_served(self.announce(fresh, 7034))
        self.assertEqual(self.metric("synapse_tracker_access_reload_success"), 1)

    def test_reload_by_sighup(self):
        fresh = rand_hash()
        self.assert_served(self.announce(fresh, 7041))
        try:
            write(self.hash_deny, "%s\n%s\n" % (DENIED.hex(), fresh.hex()))
            self.t.proc.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: self.announce(fresh, 7042).get(b"failure reason"), WAIT,
                     what="SIGHUP reloads the deny list")
        finally:
            write(self.hash_deny, "%s\n%s\n" % (DENIED.hex(), DENIED_V2_HEX))
            self.t.proc.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: b"failure reason" not in self.announce(fresh, 7043), WAIT,
                     what="SIGHUP restores the deny list")

    def test_token_file_rotation(self):
        h = os.urandom(20).hex()

        def register(token):
            return self.t.post("/api/register", shard_body(h), headers=bearer(token)).status_code

        self.assertEqual(register(WRITE_OLD), 200)
        self.assertEqual(register(WRITE_NEW), 403)
        try:
            write(self.tokens, "# rotating\n%s\n%s\n" % (WRITE_OLD, WRITE_NEW))
            self.t.proc.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: register(WRITE_NEW) == 200, WAIT, what="the new token accepted")
            self.assertEqual(register(WRITE_OLD), 200, "the old token still listed")
            write(self.tokens, WRITE_NEW + "\n")
            self.assertEqual(self.reload()["tokens"], {"write": 1, "admin": 1})
            self.assertEqual(register(WRITE_OLD), 403)
            self.assertEqual(register(WRITE_NEW), 200)
            r = self.t.delete("/api/shard/" + h, headers=bearer(WRITE_OLD))
            self.assertEqual(r.status_code, 403)
            self.assertEqual(self.t.delete("/api/shard/" + h, headers=bearer(ADMIN)).status_code,
                             200, "an admin token passes the write check")
        finally:
            write(self.tokens, WRITE_OLD + "\n")
            self.reload()

    def test_metrics(self):
        self.announce(DENIED, 7051)
        self.assertGreater(
            self.metric('synapse_tracker_access_refused_total{reason="info_hash_denied"}'), 0)
        self.assertEqual(self.metric('synapse_tracker_access_list_entries{list="ip_deny"}'), 2)
        self.assertGreater(self.metric("synapse_tracker_access_reload_timestamp_seconds"), 0)


class NoAdminTokenTest(AccessCase):
    """With no admin token the admin endpoints are refused, not open; tokens from the
    environment."""

    @classmethod
    def setUpClass(cls):
        cls.t = Tracker(env={"SYNAPSE_API_TOKENS": "env-one, env-two"}).start()

    @classmethod
    def tearDownClass(cls):
        cls.t.close()

    def test_admin_refused(self):
        for token in (None, "anything"):
            r = self.admin("POST", "/admin/reload", token)
            self.assertEqual(r.status_code, 403)
            self.assertEqual(r.json()["error"], "admin endpoints need admin tokens")
        self.assertEqual(self.admin("GET", "/admin/lists", None).status_code, 403)

    def test_environment_tokens(self):
        h = os.urandom(20).hex()
        for token, status in (("env-one", 200), ("env-two", 200), ("env-three", 403)):
            r = self.t.post("/api/register", shard_body(h), headers=bearer(token))
            self.assertEqual(r.status_code, status, (token, r.text))
        self.assertEqual(self.t.post("/api/register", shard_body(h)).status_code, 401)


class RegisteredOnlyTest(AccessCase):
    """tracker.registered_only: the registry is the whitelist."""

    REASON = "info_hash is not registered as a shard"

    @classmethod
    def setUpClass(cls):
        cls.t = Tracker(config={"tracker": {"registered_only": True}}).start()

    @classmethod
    def tearDownClass(cls):
        cls.t.close()

    def test_unregistered_refused_registered_tracked_deleted_stops(self):
        h = os.urandom(20)
        self.assert_refused(self.announce(h, 7101), self.REASON)
        c = self.udp()
        self.assertEqual(self.udp_announce_raw(c, h, 7102), (ERROR, self.REASON.encode()))
        self.assertEqual(self.t.post("/api/register", shard_body(h.hex())).status_code, 200)
        self.assert_served(self.announce(h, 7103))
        _, leechers, _, _ = c.announce(c.connect(), h, peer_id(7104), 7104)
        self.assertEqual(leechers, 2, "both announces are in the swarm")
        self.assertEqual(self.t.delete("/api/shard/" + h.hex()).status_code, 200)
        self.assert_refused(self.announce(h, 7105), self.REASON)
        self.assertEqual(self.udp_announce_raw(c, h, 7106), (ERROR, self.REASON.encode()))
        self.assertGreaterEqual(
            self.metric('synapse_tracker_access_refused_total{reason="not_registered"}'), 4)

    def test_v2_registration_tracks_its_truncated_hash(self):
        hexhash = os.urandom(32).hex()
        key = bytes.fromhex(hexhash[:40])
        self.assert_refused(self.announce(key, 7111), self.REASON)
        self.assertEqual(self.t.post("/api/register", shard_body(hexhash)).status_code, 200)
        self.assert_served(self.announce(key, 7112))


class RegisteredOnlyRestartTest(unittest.TestCase):
    """The set of registered info_hashes is rebuilt from the index at start."""

    def test_restart_keeps_registrations(self):
        data = tempfile.TemporaryDirectory(prefix="synapse-access-data-")
        self.addCleanup(data.cleanup)
        cfg = {"tracker": {"registered_only": True}}
        kept, gone = os.urandom(20), os.urandom(20)
        with Tracker(config=cfg, data_dir=data.name) as t:
            for h in (kept, gone):
                self.assertEqual(t.post("/api/register", shard_body(h.hex())).status_code, 200)
            self.assertEqual(t.delete("/api/shard/" + gone.hex()).status_code, 200)
        with Tracker(config=cfg, data_dir=data.name) as t:
            case = AccessCase()
            case.t = t
            case.assert_served(case.announce(kept, 7201))
            case.assert_refused(case.announce(gone, 7202), RegisteredOnlyTest.REASON)


class ClusterRegisteredOnlyTest(unittest.TestCase):
    """registered_only in a cluster: the nodes holding the partition enforce it, writes
    and deletes replicated to them change what they track."""

    @classmethod
    def setUpClass(cls):
        cls.cluster = cu.start_cluster(nodes=3, routers=1,
                                       extra={"tracker": {"registered_only": True}})
        cls.router = cls.cluster.routers["r0"]

    @classmethod
    def tearDownClass(cls):
        cls.cluster.close()

    def refusal(self, ih, port):
        """The failure reason of an announce through the router, or None when served."""
        try:
            cu.announce(self.router, ih, port)
            return None
        except AssertionError as e:
            return str(e)

    def test_register_tracks_delete_stops(self):
        h = os.urandom(20)
        self.assertIn(RegisteredOnlyTest.REASON, self.refusal(h, 7301) or "")
        cu.register(self.router, h.hex(), [0.6, 0.8])
        wait_for(lambda: self.refusal(h, 7302) is None, WAIT, what="a registered shard tracked")
        cu.delete_shard(self.router, h.hex())
        wait_for(lambda: RegisteredOnlyTest.REASON in (self.refusal(h, 7303) or ""), WAIT,
                 what="a deleted shard refused")


if __name__ == "__main__":
    unittest.main()
