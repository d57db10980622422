#!/usr/bin/env python3
"""WebTorrent tracking over WebSocket against the real binary (standalone): the protocol
as npm bittorrent-tracker's client and server speak it, with a raw client (Debian's
python3-websocket) and with the client itself (tests/interop/webtorrent_ws.mjs).

- handshake on /announce and on /; announce replies (action, interval, info_hash,
  complete, incomplete); binary strings with every byte value that JSON or C string
  handling could trip on, sent as UTF-8 and as \\u escapes, round trip through replies,
  forwarded offers and answers and scrape keys
- offers go one to each other WebSocket peer of the swarm, with the sender's peer id;
  answers go to to_peer_id only; scrapes by one info_hash or a list; completed and
  stopped events; closing a socket drops its peer
- errors answered with a failure reason on a socket that stays open: invalid JSON,
  unknown action, info_hash or peer_id not 20 bytes, too many offers, too many swarms on
  one socket; a message over websocket.max_message_bytes closes with 1009 (also in
  fragments); past websocket.max_connections_per_ip the handshake is refused with 429
- WebSocket peers and HTTP peers of one info_hash are counted together, in both scrapes
- wss:// with a certificate made by `openssl req -x509`; the driver over wss; SIGHUP
  re-reads the certificate: a new connection sees the new one, an open one keeps working

Run: /usr/bin/python3 tests/integration/test_websocket.py (SYNAPSE_BIN picks the binary).
Exit 77 (skipped) only where python3-websocket is not installed; tests that need openssl
or node skip themselves where those are missing.
"""
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
try:
    import websocket  # noqa: E402
except ImportError:
    print("SKIP: python3-websocket is not installed (scripts/setup.sh installs it)")
    sys.exit(77)
from bencode import bdecode  # noqa: E402
from http_client import http_get  # noqa: E402
from net import free_port, loopback_alias_available  # noqa: E402
from synapse_proc import TrackerProcess  # noqa: E402
from tracker_config import ConfigFile, config_yaml  # noqa: E402
from tracker_proto import announce_target, peer_id, rand_hash, scrape_target  # noqa: E402
from wait import wait_for  # noqa: E402
from websocket import ABNF  # noqa: E402
from ws_tracker import WsConn, b2s, connect, driver_missing, run_driver, s2b  # noqa: E402

DEFAULT_INTERVAL = 120
DEFAULT_MAX_MESSAGE = 65536
DEFAULT_MAX_OFFERS = 10
DEFAULT_MAX_SWARMS = 64
# Bytes a binary string must carry intact: NUL, quote, backslash, DEL, the C1 range,
# 0xff; the rest of the 20 from the range JSON writes as two UTF-8 bytes.
TRICKY = bytes([0x00, 0x22, 0x5c, 0x7f, 0x80, 0x9f, 0xa0, 0xc0, 0xc3, 0xe9, 0xff, 0x0a,
                0x2f, 0x01, 0x1f, 0xfe, 0xef, 0xbb, 0xbf, 0x20])
CLOSE_TOO_BIG = 1009


def ws_peer_id(tag=0):
    """A 20-byte peer id with bytes >= 0x80 in it."""
    return b"-WW0001-" + bytes([0x80 + (tag & 0x7f)]) + os.urandom(11)


def offer_value(i, extra=""):
    """An offer as a browser sends one ({type, sdp}), with text that needs escaping."""
    return {"type": "offer",
            "sdp": f"v=0\r\no=- {i} 2 IN IP4 127.0.0.1\r\ns=-\r\na=\"quoted\" \\ é ✓ {extra}\r\n"}


def padded_announce(size):
    """An announce (peer Q*20 in swarm P*20) exactly `size` bytes long: JSON padded with
    spaces."""
    body = json.dumps({"action": "announce", "info_hash": b2s(b"P" * 20),
                       "peer_id": b2s(b"Q" * 20), "left": 0, "numwant": 0, "uploaded": 0,
                       "downloaded": 0, "offers": []})
    assert len(body) < size
    return body[:-1] + " " * (size - len(body)) + "}"


def http_scrape(tracker, ih):
    r = http_get(tracker.http_port, scrape_target([ih]))
    assert r.status == 200, r
    d = bdecode(r.body, strict=False)
    assert b"failure reason" not in d, d
    e = d[b"files"].get(ih, {})
    return (e.get(b"complete", 0), e.get(b"incomplete", 0))


def http_announce(tracker, ih, port, left, event="started"):
    r = http_get(tracker.http_port, announce_target(ih, peer_id(), port, uploaded=0, downloaded=0,
                                                    left=left, compact=1, event=event))
    assert r.status == 200, r
    d = bdecode(r.body, strict=False)
    assert b"failure reason" not in d, d
    return d


class WsCase(unittest.TestCase):
    """Helpers shared by the classes below; cls.tracker is a TrackerProcess with ws."""

    def conn(self, path="/announce", **kw):
        c = WsConn(self.tracker.ws_url(path), **kw)
        self.addCleanup(c.close)
        return c

    def announced(self, c, ih, pid, left=0, **kw):
        c.announce(ih, pid, left=left, **kw)
        r = c.announce_reply(ih)
        self.assertNotIn("failure reason", r, f"announce refused: {r}")
        return r

    def assert_still_open(self, c, what):
        """The socket still answers: a scrape gets its reply."""
        c.scrape([rand_hash()])
        r = c.scrape_reply()
        self.assertEqual(r.get("action"), "scrape", f"after {what}: {r}")
        self.assertNotIn("failure reason", r, f"after {what}")

    def await_counts(self, c, ih, want, timeout=5.0, what="ws scrape"):
        return wait_for(lambda: c.scrape_counts(ih)[:2] == want, timeout,
                        interval=0.1, what=f"{what} of {ih.hex()} == {want}")


def start_tracker(config=None, **kw):
    cfg = ConfigFile(config) if config else None
    args = ["--interval-jitter-percent", "0"] + (["--config", cfg.path] if cfg else [])
    t = TrackerProcess(args=args, ws_port=kw.pop("ws_port", None) or free_port(), **kw)
    try:
        t.start()
    except BaseException:
        t.close()
        if cfg:
            cfg.remove()
        raise
    return t, cfg


class Protocol(WsCase):
    @classmethod
    def setUpClass(cls):
        cls.tracker, cls.cfg = start_tracker()

    @classmethod
    def tearDownClass(cls):
        cls.tracker.close()

    # ---- handshake, replies ----

    def test_handshake_on_announce_and_root(self):
        for path in ("/announce", "/"):
            with self.subTest(path=path):
                c = self.conn(path)
                self.assertEqual(c.ws.getstatus(), 101)
                self.assert_still_open(c, f"handshake on {path}")

    def test_announce_reply_fields_and_interval(self):
        ih = rand_hash()
        a = self.conn()
        r = self.announced(a, ih, ws_peer_id(1), left=0, offers=[])
        self.assertEqual(r.get("action"), "announce", r)
        self.assertEqual(s2b(r.get("info_hash"), "info_hash"), ih)
        self.assertEqual(r.get("interval"), DEFAULT_INTERVAL, r)
        self.assertIs(type(r.get("complete")), int, r)
        self.assertIs(type(r.get("incomplete")), int, r)
        self.assertEqual((r["complete"], r["incomplete"]), (1, 0), r)
        b = self.conn()
        pid_b = ws_peer_id(2)
        r = self.announced(b, ih, pid_b, left=1000, offers=[])
        self.assertEqual((r["complete"], r["incomplete"]), (1, 1), r)
        # announcing again is the same peer, not another one
        r = self.announced(b, ih, pid_b, left=1000, offers=[])
        self.assertEqual((r["complete"], r["incomplete"]), (1, 1), r)

    def test_announce_without_offers_key(self):
        # an announce that carries no "offers" at all (a client sending completed/stopped)
        ih = rand_hash()
        a = self.conn()
        a.announce(ih, ws_peer_id(), left=0, offers=None)
        r = a.announce_reply(ih)
        self.assertNotIn("failure reason", r)
        self.assertEqual((r.get("complete"), r.get("incomplete")), (1, 0), r)

    def test_binary_strings_round_trip(self):
        ih = TRICKY
        pid_a = bytes(reversed(TRICKY))
        pid_b = bytes([0xff, 0x00] * 10)
        oid = bytes(range(0x80, 0x94))
        for ensure_ascii in (False, True):  # UTF-8 chars, then \\u00XX escapes
            with self.subTest(ensure_ascii=ensure_ascii):
                a, b = self.conn(), self.conn()
                r = self.announced(a, ih, pid_a, left=0, offers=[], ensure_ascii=ensure_ascii)
                self.assertEqual(s2b(r["info_hash"], "reply info_hash"), ih)
                b.announce(ih, pid_b, left=10, offers=[(oid, offer_value(0))],
                           ensure_ascii=ensure_ascii)
                rb = b.announce_reply(ih)
                self.assertNotIn("failure reason", rb)
                self.assertEqual(s2b(rb["info_hash"], "reply info_hash"), ih)
                o = a.expect(lambda m: "offer" in m, "offer forwarded to A")
                self.assertEqual(s2b(o.get("peer_id"), "offer peer_id"), pid_b)
                self.assertEqual(s2b(o.get("offer_id"), "offer_id"), oid)
                self.assertEqual(s2b(o.get("info_hash"), "offer info_hash"), ih)
                self.assertEqual(o.get("offer"), offer_value(0))
                a.answer(ih, pid_a, pid_b, oid, {"type": "answer", "sdp": "ü \u00ff \"x\""},
                         ensure_ascii=ensure_ascii)
                ans = b.expect(lambda m: "answer" in m, "answer forwarded to B")
                self.assertEqual(s2b(ans.get("peer_id"), "answer peer_id"), pid_a)
                self.assertEqual(s2b(ans.get("offer_id"), "answer offer_id"), oid)
                self.assertEqual(s2b(ans.get("info_hash"), "answer info_hash"), ih)
                self.assertEqual(ans.get("answer"), {"type": "answer", "sdp": "ü \u00ff \"x\""})
                b.scrape(ih, ensure_ascii=ensure_ascii)
                s = b.scrape_reply()
                self.assertEqual([s2b(k, "files key") for k in s.get("files", {})], [ih], s)
                self.assertEqual(s["files"][b2s(ih)].get("complete"), 1, s)
                self.assertEqual(s["files"][b2s(ih)].get("incomplete"), 1, s)
                a.close()
                b.close()
                # the next round starts from an empty swarm
                probe = self.conn()
                self.await_counts(probe, ih, (0, 0))

    # ---- offers and answers ----

    def test_offers_one_to_each_other_peer_and_answer_back(self):
        ih = rand_hash()
        p1, p2, p3 = self.conn(), self.conn(), self.conn()
        id1, id2, id3 = ws_peer_id(1), ws_peer_id(2), ws_peer_id(3)
        self.announced(p1, ih, id1, left=0, offers=[])
        self.announced(p3, ih, id3, left=5, offers=[])
        oids = [os.urandom(20), os.urandom(20)]
        r = self.announced(p2, ih, id2, left=5, offers=[(oids[0], offer_value(0)),
                                                        (oids[1], offer_value(1))])
        self.assertEqual((r["complete"], r["incomplete"]), (1, 2), r)
        # two offers, two other peers: one each (each must get one, so none gets both)
        got = {}
        for name, c in (("p1", p1), ("p3", p3)):
            o = c.expect(lambda m: "offer" in m, f"an offer forwarded to {name}")
            self.assertEqual(o.get("action"), "announce", o)
            self.assertEqual(s2b(o["peer_id"]), id2, o)
            self.assertEqual(s2b(o["info_hash"]), ih, o)
            self.assertIn(s2b(o["offer_id"]), oids, o)
            self.assertEqual(o["offer"], offer_value(oids.index(s2b(o["offer_id"]))), o)
            self.assertNotIn("answer", o)
            got[name] = s2b(o["offer_id"])
        self.assertNotEqual(got["p1"], got["p3"], "the same offer went to two peers")
        # p1 answers its offer: the answer reaches p2 alone, p1 gets no reply to it
        p1.answer(ih, id1, id2, got["p1"], {"type": "answer", "sdp": "answer from p1"})
        a = p2.expect(lambda m: "answer" in m, "p1's answer forwarded to p2")
        self.assertEqual(a.get("action"), "announce", a)
        self.assertEqual(s2b(a["peer_id"]), id1, a)
        self.assertEqual(s2b(a["offer_id"]), got["p1"], a)
        self.assertEqual(s2b(a["info_hash"]), ih, a)
        self.assertEqual(a["answer"], {"type": "answer", "sdp": "answer from p1"})
        self.assertNotIn("offer", a)
        p1.scrape([ih])
        p1.scrape_reply()
        stray = [m for m in p1.inbox if m.get("action") == "announce"]
        self.assertEqual(stray, [], "the answerer got a message about its answer")
        stray3 = [m for m in p3.inbox if "answer" in m]
        self.assertEqual(stray3, [], "p3 got an answer meant for p2")

    def test_offers_need_other_ws_peers(self):
        # alone in its swarm, a peer's offers go nowhere (not back to itself)
        ih = rand_hash()
        a = self.conn()
        self.announced(a, ih, ws_peer_id(), left=3, offers=[(os.urandom(20), offer_value(0))])
        a.scrape([ih])
        a.scrape_reply()
        self.assertEqual([m for m in a.inbox if "offer" in m], [], "an offer came back to its sender")

    def test_answer_to_an_absent_peer_is_harmless(self):
        ih = rand_hash()
        a = self.conn()
        self.announced(a, ih, ws_peer_id(), left=0, offers=[])
        a.answer(ih, ws_peer_id(), os.urandom(20), os.urandom(20), {"type": "answer", "sdp": "x"})
        self.assert_still_open(a, "an answer to a peer that is not there")

    # ---- scrape, events ----

    def test_scrape_one_and_many(self):
        h1, h2, unknown = rand_hash(), rand_hash(), rand_hash()
        a, b, c = self.conn(), self.conn(), self.conn()
        self.announced(a, h1, ws_peer_id(1), left=0)
        self.announced(b, h1, ws_peer_id(2), left=7)
        self.announced(c, h2, ws_peer_id(3), left=7)
        c.scrape(h1)  # a single string
        s = c.scrape_reply()
        self.assertEqual(s.get("action"), "scrape", s)
        e = s["files"][b2s(h1)]
        self.assertEqual((e.get("complete"), e.get("incomplete")), (1, 1), s)
        self.assertIs(type(e.get("downloaded")), int, s)
        c.scrape([h1, h2, unknown])  # an array
        s = c.scrape_reply()
        files = s.get("files", {})
        self.assertEqual((files[b2s(h1)]["complete"], files[b2s(h1)]["incomplete"]), (1, 1), s)
        self.assertEqual((files[b2s(h2)]["complete"], files[b2s(h2)]["incomplete"]), (0, 1), s)
        if b2s(unknown) in files:
            u = files[b2s(unknown)]
            self.assertEqual((u.get("complete"), u.get("incomplete")), (0, 0), s)
        self.assertLessEqual(set(files), {b2s(h1), b2s(h2), b2s(unknown)}, s)

    def test_completed_counts_a_download(self):
        ih = rand_hash()
        a = self.conn()
        pid = ws_peer_id()
        r = self.announced(a, ih, pid, left=100, event="started", offers=[])
        self.assertEqual((r["complete"], r["incomplete"]), (0, 1), r)
        r = self.announced(a, ih, pid, left=0, event="completed")
        self.assertEqual((r["complete"], r["incomplete"]), (1, 0), r)
        self.assertEqual(a.scrape_counts(ih), (1, 0, 1))

    def test_stopped_removes_the_peer(self):
        ih = rand_hash()
        a, probe = self.conn(), self.conn()
        pid = ws_peer_id()
        self.announced(a, ih, pid, left=100, event="started", offers=[])
        self.assertEqual(probe.scrape_counts(ih)[:2], (0, 1))
        a.announce(ih, pid, left=100, event="stopped")
        self.await_counts(probe, ih, (0, 0))
        self.assertEqual(http_scrape(self.tracker, ih), (0, 0))

    def test_closing_the_socket_drops_its_peer_from_every_swarm(self):
        h1, h2 = rand_hash(), rand_hash()
        a, probe = self.conn(), self.conn()
        pid = ws_peer_id()
        self.announced(a, h1, pid, left=0, offers=[])
        self.announced(a, h2, pid, left=9, offers=[])
        self.assertEqual(probe.scrape_counts(h1)[:2], (1, 0))
        self.assertEqual(probe.scrape_counts(h2)[:2], (0, 1))
        a.close()
        self.await_counts(probe, h1, (0, 0))
        self.await_counts(probe, h2, (0, 0))
        self.assertEqual(http_scrape(self.tracker, h1), (0, 0))
        self.assertEqual(http_scrape(self.tracker, h2), (0, 0))

    def test_counts_shared_with_http_peers(self):
        ih = rand_hash()
        http_announce(self.tracker, ih, 40001, left=0)          # an HTTP seeder
        w = self.conn()
        r = self.announced(w, ih, ws_peer_id(), left=50, offers=[])  # a WebSocket leecher
        self.assertEqual((r["complete"], r["incomplete"]), (1, 1), r)
        self.assertEqual(w.scrape_counts(ih)[:2], (1, 1))
        self.assertEqual(http_scrape(self.tracker, ih), (1, 1))
        d = http_announce(self.tracker, ih, 40002, left=10)     # an HTTP leecher
        self.assertEqual((d[b"complete"], d[b"incomplete"]), (1, 2), d)
        self.assertEqual(w.scrape_counts(ih)[:2], (1, 2))
        w.close()
        probe = self.conn()
        self.await_counts(probe, ih, (1, 1))
        self.assertEqual(http_scrape(self.tracker, ih), (1, 1))

    # ---- errors: a failure reason, the socket kept ----

    def check_failure(self, c, what, ih=None, action=None):
        m = c.failure(what)
        reason = m["failure reason"]
        self.assertIsInstance(reason, str, m)
        self.assertTrue(reason, m)
        if "action" in m and action:
            self.assertEqual(m["action"], action, m)
        if "info_hash" in m and ih is not None:
            self.assertEqual(s2b(m["info_hash"]), ih, m)
        self.assert_still_open(c, what)
        return m

    def test_invalid_json(self):
        c = self.conn()
        for text in ("{not json", "", "{\"action\": \"announce\"", "\"a string\"", "[1, 2]", "null"):
            with self.subTest(text=text):
                c.send_text(text)
                self.check_failure(c, f"message {text!r}")

    def test_unknown_or_missing_action(self):
        c = self.conn()
        ih = rand_hash()
        for msg in ({"action": "bogus", "info_hash": b2s(ih)}, {"info_hash": b2s(ih)},
                    {"action": 7}):
            with self.subTest(msg=msg):
                c.send(msg)
                self.check_failure(c, f"message {msg!r}")

    def test_info_hash_not_20_bytes(self):
        c = self.conn()
        pid = ws_peer_id()
        bad = [b2s(os.urandom(19)), b2s(os.urandom(21)), "", 12345, None, ["x" * 20]]
        for v in bad:
            with self.subTest(info_hash=v):
                c.send({"action": "announce", "info_hash": v, "peer_id": b2s(pid),
                        "left": 0, "numwant": 0, "uploaded": 0, "downloaded": 0, "offers": []})
                self.check_failure(c, f"announce with info_hash {v!r}", action="announce")
        for v in (b2s(os.urandom(19)), [b2s(rand_hash()), b2s(os.urandom(21))]):
            with self.subTest(scrape_info_hash=v):
                c.send({"action": "scrape", "info_hash": v})
                self.check_failure(c, f"scrape with info_hash {v!r}", action="scrape")

    def test_binary_string_with_a_char_above_0xff(self):
        # 20 chars, but U+0100 is no byte: not a binary string, so not 20 bytes. (npm's
        # reference server checks the length alone and takes these; a tracker that kept
        # only the low byte would put the peer in another torrent's swarm.)
        c = self.conn()
        ih = rand_hash()
        for field, v in (("info_hash", "\u0100" + "a" * 19), ("peer_id", "\u0101" * 20)):
            with self.subTest(field=field):
                m = {"action": "announce", "info_hash": b2s(ih), "peer_id": b2s(ws_peer_id()),
                     "left": 0, "numwant": 0, "uploaded": 0, "downloaded": 0, "offers": []}
                m[field] = v
                c.send(m)
                self.check_failure(c, f"announce with {field} holding {v[0]!r}",
                                   action="announce")
        self.assertEqual(c.scrape_counts(ih)[:2], (0, 0))
        self.assertEqual(c.scrape_counts(b"\x00" + b"a" * 19)[:2], (0, 0))  # U+0100 cut to 0x00

    def test_peer_id_not_20_bytes(self):
        c = self.conn()
        ih = rand_hash()
        for v in (b2s(os.urandom(19)), b2s(os.urandom(21)), "", 5, None):
            with self.subTest(peer_id=v):
                m = {"action": "announce", "info_hash": b2s(ih), "left": 0, "numwant": 0,
                     "uploaded": 0, "downloaded": 0, "offers": []}
                if v is not None:
                    m["peer_id"] = v
                c.send(m)
                self.check_failure(c, f"announce with peer_id {v!r}", ih=ih, action="announce")
        # nothing was counted
        self.assertEqual(c.scrape_counts(ih)[:2], (0, 0))

    def test_more_offers_than_max_offers(self):
        ih = rand_hash()
        c = self.conn()
        offers = [(os.urandom(20), offer_value(i)) for i in range(DEFAULT_MAX_OFFERS + 1)]
        c.announce(ih, ws_peer_id(), left=0, offers=offers)
        self.check_failure(c, f"{len(offers)} offers", ih=ih, action="announce")
        # exactly max_offers is fine
        r = self.announced(c, ih, ws_peer_id(), left=0, offers=offers[:DEFAULT_MAX_OFFERS])
        self.assertEqual(r.get("action"), "announce")

    def test_more_swarms_than_max_swarms_per_socket(self):
        c = self.conn()
        pid = ws_peer_id()
        hashes = [rand_hash() for _ in range(DEFAULT_MAX_SWARMS + 1)]
        for ih in hashes[:DEFAULT_MAX_SWARMS]:
            self.announced(c, ih, pid, left=1, offers=[])
        c.announce(hashes[-1], pid, left=1, offers=[])
        self.check_failure(c, f"swarm {DEFAULT_MAX_SWARMS + 1} on one socket", ih=hashes[-1],
                           action="announce")
        self.announced(c, hashes[0], pid, left=0, offers=[])  # its swarms still served
        other = self.conn()
        self.announced(other, hashes[-1], ws_peer_id(), left=1, offers=[])

    # ---- message size ----

    def test_message_at_the_limit_is_served(self):
        c = self.conn()
        c.send_text(padded_announce(DEFAULT_MAX_MESSAGE))
        r = c.announce_reply(b"P" * 20)
        self.assertNotIn("failure reason", r)

    def test_message_over_the_limit_closes_1009(self):
        c = self.conn()
        c.send_text(padded_announce(DEFAULT_MAX_MESSAGE + 1))
        self.assertEqual(c.close_code(), CLOSE_TOO_BIG)

    def test_fragmented_message_over_the_limit_closes_1009(self):
        c = self.conn()
        text = padded_announce(DEFAULT_MAX_MESSAGE + 100).encode()
        third = len(text) // 3
        parts = [text[:third], text[third:2 * third], text[2 * third:]]
        try:
            c.ws.send_frame(ABNF.create_frame(parts[0], ABNF.OPCODE_TEXT, 0))
            c.ws.send_frame(ABNF.create_frame(parts[1], ABNF.OPCODE_CONT, 0))
            c.ws.send_frame(ABNF.create_frame(parts[2], ABNF.OPCODE_CONT, 1))
        except (OSError, websocket.WebSocketException):
            pass  # closed while we were still sending: the close code tells
        self.assertEqual(c.close_code(), CLOSE_TOO_BIG)

    # ---- the client itself ----

    def test_webtorrent_client_signaling(self):
        why = driver_missing()
        if why:
            self.skipTest(why)
        rc, summary, err = run_driver([self.tracker.ws_url()], expect_interval=DEFAULT_INTERVAL)
        self.assertEqual(rc, 0, f"driver failed: {summary and summary.get('error')}\n{err}")
        self.assertTrue(summary and summary["ok"], summary)


class Limits(WsCase):
    """Each websocket: key from a config file (the port from --ws-port)."""

    @classmethod
    def setUpClass(cls):
        cls.tracker, cls.cfg = start_tracker(config_yaml({"websocket": {
            "interval": 45, "max_offers": 2, "max_message_bytes": 4096,
            "max_swarms_per_socket": 3, "max_connections_per_ip": 64}}))

    @classmethod
    def tearDownClass(cls):
        cls.tracker.close()
        cls.cfg.remove()

    def test_interval(self):
        r = self.announced(self.conn(), rand_hash(), ws_peer_id(), left=0, offers=[])
        self.assertEqual(r.get("interval"), 45, r)

    def test_max_offers(self):
        c = self.conn()
        ih = rand_hash()
        self.announced(c, ih, ws_peer_id(), left=0,
                       offers=[(os.urandom(20), offer_value(i)) for i in range(2)])
        c.announce(ih, ws_peer_id(), left=0,
                   offers=[(os.urandom(20), offer_value(i)) for i in range(3)])
        m = c.failure("3 offers with max_offers 2")
        self.assert_still_open(c, "3 offers")
        self.assertTrue(m["failure reason"])

    def test_max_message_bytes(self):
        c = self.conn()
        c.send_text(padded_announce(4096))
        self.assertNotIn("failure reason", c.announce_reply(b"P" * 20))
        c.send_text(padded_announce(4097))
        self.assertEqual(c.close_code(), CLOSE_TOO_BIG)

    def test_max_swarms_per_socket(self):
        c = self.conn()
        pid = ws_peer_id()
        hashes = [rand_hash() for _ in range(4)]
        for ih in hashes[:3]:
            self.announced(c, ih, pid, left=1, offers=[])
        c.announce(hashes[3], pid, left=1, offers=[])
        m = c.failure("a 4th swarm with max_swarms_per_socket 3")
        if "info_hash" in m:
            self.assertEqual(s2b(m["info_hash"]), hashes[3], m)
        self.assert_still_open(c, "a 4th swarm")
        self.announced(c, hashes[1], pid, left=0, offers=[])
        self.assertEqual(c.scrape_counts(hashes[3])[:2], (0, 0))


class ConnectionCap(WsCase):
    CAP = 3

    @classmethod
    def setUpClass(cls):
        cls.tracker, cls.cfg = start_tracker(config_yaml({"websocket": {
            "max_connections_per_ip": cls.CAP}}))

    @classmethod
    def tearDownClass(cls):
        cls.tracker.close()
        cls.cfg.remove()

    def handshake_status(self, source=None):
        """101 and the connection (kept), or the refusing status and None."""
        try:
            ws = connect(self.tracker.ws_url(), source=source)
        except websocket.WebSocketBadStatusException as e:
            return e.status_code, None
        self.addCleanup(ws.close)
        return ws.getstatus(), ws

    def test_past_the_cap_the_handshake_is_refused_429(self):
        conns = [self.conn() for _ in range(self.CAP)]
        status, _ = self.handshake_status()
        self.assertEqual(status, 429, f"handshake {self.CAP + 1} from one address")
        for c in conns:
            self.assert_still_open(c, "a refused handshake from the same address")
        if loopback_alias_available("127.0.0.2"):
            status, other = self.handshake_status(source="127.0.0.2")
            self.assertEqual(status, 101, "another address is not limited")
            other.close()
        conns.pop().close()
        # once the tracker has seen the close, there is room for one again
        wait_for(lambda: self.handshake_status()[0] == 101, 5.0, interval=0.1,
                 what="a handshake after one of the connections closed")
        status, _ = self.handshake_status()
        self.assertEqual(status, 429, "the cap holds again")


class ForwardedCap(WsCase):
    """Behind a trusted proxy (here: all of loopback) the cap counts the client that
    X-Forwarded-For names (its rightmost address), not the proxy."""
    CAP = 2

    @classmethod
    def setUpClass(cls):
        cls.tracker, cls.cfg = start_tracker(config_yaml({
            "websocket": {"max_connections_per_ip": cls.CAP},
            "server": {"trusted_proxies": ["127.0.0.0/8"]}}))

    @classmethod
    def tearDownClass(cls):
        cls.tracker.close()
        cls.cfg.remove()

    def status(self, xff):
        try:
            ws = websocket.create_connection(self.tracker.ws_url(), timeout=5,
                                             header=[f"X-Forwarded-For: {xff}"])
        except websocket.WebSocketBadStatusException as e:
            return e.status_code
        self.addCleanup(ws.close)
        return ws.getstatus()

    def test_the_forwarded_client_is_counted(self):
        for _ in range(self.CAP):
            self.assertEqual(self.status("203.0.113.9, 198.51.100.7"), 101)
        self.assertEqual(self.status("198.51.100.7"), 429, "the same forwarded client")
        self.assertEqual(self.status("203.0.113.9, 198.51.100.8"), 101, "another client")
        self.assertEqual(self.status("2001:db8::1"), 101, "an IPv6 client")


# ---------------------------------------------------------------------------------------
# wss://

def make_cert(directory, name):
    """A self-signed EC certificate for 127.0.0.1 (openssl req -x509): (cert, key) paths."""
    cert = os.path.join(directory, name + ".crt")
    key = os.path.join(directory, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", f"/CN=127.0.0.1/O=synapse-test-{name}",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def der(cert_path):
    with open(cert_path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def replace_file(src, dst):
    tmp = dst + ".new"
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


@unittest.skipUnless(shutil.which("openssl"), "openssl not installed")
class Tls(WsCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="synapse-wss-")
        cls.cert1, cls.key1 = make_cert(cls.tmp, "one")
        cls.cert2, cls.key2 = make_cert(cls.tmp, "two")
        cls.bundle = os.path.join(cls.tmp, "trusted.pem")
        with open(cls.bundle, "w") as out:
            for p in (cls.cert1, cls.cert2):
                with open(p) as f:
                    out.write(f.read())
        # the files the tracker reads: cert one now, cert two after the reload test
        cls.cert = os.path.join(cls.tmp, "tracker.crt")
        cls.key = os.path.join(cls.tmp, "tracker.key")
        replace_file(cls.cert1, cls.cert)
        replace_file(cls.key1, cls.key)
        cls.tracker = TrackerProcess(args=["--interval-jitter-percent", "0"], ws_port=0,
                                     wss_port=free_port(), tls_cert=cls.cert, tls_key=cls.key)
        try:
            cls.tracker.start()
        except BaseException:
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        cls.tracker.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def wss(self, path="/announce"):
        c = WsConn(self.tracker.wss_url(path), ca_file=self.bundle)
        self.addCleanup(c.close)
        return c

    # unittest runs these in name order: t1, t2 with certificate one, t3 reloads to two

    def test_t1_handshake_certificate_and_protocol(self):
        c = self.wss()
        self.assertEqual(c.peer_certificate(), der(self.cert1))
        ih = rand_hash()
        r = self.announced(c, ih, ws_peer_id(), left=0, offers=[])
        self.assertEqual(r.get("interval"), DEFAULT_INTERVAL, r)
        self.assertEqual(c.scrape_counts(ih)[:2], (1, 0))
        self.assertEqual(http_scrape(self.tracker, ih), (1, 0))
        # a client trusting only the other certificate refuses this one
        with self.assertRaises(ssl.SSLError):
            connect(self.tracker.wss_url(), ca_file=self.cert2).close()

    def test_t2_webtorrent_client_over_wss(self):
        why = driver_missing()
        if why:
            self.skipTest(why)
        rc, summary, err = run_driver([self.tracker.wss_url()], ca_file=self.bundle,
                                      expect_interval=DEFAULT_INTERVAL)
        self.assertEqual(rc, 0, f"driver over wss failed: {summary and summary.get('error')}\n{err}")
        self.assertTrue(summary and summary["ok"], summary)

    def test_t3_sighup_reloads_the_certificate(self):
        old = self.wss()
        self.assertEqual(old.peer_certificate(), der(self.cert1))
        ih = rand_hash()
        self.announced(old, ih, ws_peer_id(), left=0, offers=[])
        replace_file(self.cert2, self.cert)
        replace_file(self.key2, self.key)
        self.tracker.proc.send_signal(signal.SIGHUP)

        def new_cert_served():
            c = WsConn(self.tracker.wss_url(), ca_file=self.bundle)
            try:
                return c.peer_certificate() == der(self.cert2)
            finally:
                c.close()
        wait_for(new_cert_served, 10.0, interval=0.1,
                 what="a new wss connection presenting the second certificate")
        self.assertIsNone(self.tracker.proc.poll(), "the tracker exited on SIGHUP")
        # the connection made before the reload is kept and served
        self.assertEqual(old.scrape_counts(ih)[:2], (1, 0))
        self.announced(old, ih, ws_peer_id(), left=5, offers=[])
        fresh = self.wss()
        self.assertEqual(fresh.peer_certificate(), der(self.cert2))
        self.assertEqual(fresh.scrape_counts(ih)[:2], (1, 1))


@unittest.skipUnless(shutil.which("openssl"), "openssl not installed")
class TlsFromConfig(WsCase):
    def test_wss_from_the_websocket_section(self):
        tmp = tempfile.mkdtemp(prefix="synapse-wss-")
        self.addCleanup(shutil.rmtree, tmp, True)
        cert, key = make_cert(tmp, "cfg")
        port = free_port()
        cfg = ConfigFile(config_yaml({"websocket": {"tls_port": port, "cert_file": cert,
                                                    "key_file": key}}))
        self.addCleanup(cfg.remove)
        t = TrackerProcess(args=["--config", cfg.path], ws_port=0)
        t.wss_port = port
        self.addCleanup(t.close)
        t.start()
        c = WsConn(t.wss_url(), ca_file=cert)
        self.addCleanup(c.close)
        self.assertEqual(c.peer_certificate(), der(cert))
        self.assert_still_open(c, "a wss handshake")


if __name__ == "__main__":
    unittest.main(verbosity=2)
