#!/usr/bin/env python3
"""Cluster trust: a shared cluster key seals every message between routers and nodes.

A cluster of two nodes and a router, each given the same key another way (n0 from
SYNAPSE_CLUSTER_KEY, n1 from --cluster-key-file, r0 from cluster.key in its config file):
- end to end: announces meet, a shard registers, is read back and is found by search, and
  no member refuses anything (synapse_cluster_auth_failures_total stays 0);
- a node's data socket, spoken to directly (the nng SP protocol over TCP, from Python):
  a batch sealed here with the key (the seal computed independently, hashlib BLAKE2b) is
  answered with a reply sealed and bound to it; the same batch sealed with another key,
  or not sealed, gets no answer at all and is counted.
Then outsiders, seeded at n0: a node with a wrong key, a node with no key, a router with
a wrong key. Over a 3 s window (bounded: it shows that nothing happens) none of them
appears in the view of n0, n1 or r0, and none learns any member but itself; the wrong-key
router cannot get an announce answered; n0's failure counter rises and it logs the refusal
(rate-limited); the keyless node warned at start that its cluster is open.
Finally, keys that cannot start: too short, and given twice.

Run: /usr/bin/python3 tests/integration/test_cluster_key.py (SYNAPSE_BIN picks the binary).
"""
import hashlib
import os
import random
import re
import secrets
import socket
import struct
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cluster as cu  # noqa: E402
from net import free_port  # noqa: E402
from synapse_proc import binary_path  # noqa: E402
from tracker_config import config_yaml  # noqa: E402
from tracker_proto import ports_of, rand_hash  # noqa: E402
from wait import wait_for  # noqa: E402

WINDOW_S = 3.0  # nothing must happen within it (holds on two loaded cores: joins take ~0.5 s)
BATCH_REQUEST, BATCH_REPLY = 3, 4  # common/cluster_auth.h syn_auth_kind
MAGIC = b"\x00SY\x01"
FAILURES = re.compile(rb"^synapse_cluster_auth_failures_total (\d+)$", re.M)


# ---- the seal, computed independently of the C code (common/cluster_auth.h) ----

def derive(key_text):
    return hashlib.blake2b(key_text.strip().encode(), digest_size=32,
                           person=b"synapse-cluster").digest()


def mac(key, kind, bind, body, time_nonce):
    return hashlib.blake2b(bytes([kind]) + (bind or bytes(32)) + body + time_nonce, key=key,
                           digest_size=32).digest()


def seal(key_text, kind, body, bind=None):
    """(sealed bytes, tag)."""
    tn = struct.pack("<QQ", int(time.time() * 1000), random.getrandbits(64))
    tag = mac(derive(key_text), kind, bind, body, tn)
    return body + MAGIC + tn + tag, tag


def opened(key_text, kind, msg, bind):
    """The body of a sealed message, or None when its seal is not right."""
    if len(msg) < 52 or msg[-52:-48] != MAGIC:
        return None
    body, tn, tag = msg[:-52], msg[-48:-32], msg[-32:]
    return body if mac(derive(key_text), kind, bind, body, tn) == tag else None


# ---- a minimal nng req0 client over TCP (the SP protocol's TCP mapping) ----

def recv_exact(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed")
        out += chunk
    return out


def sp_request(host, port, body, timeout):
    """Sends body as one req0 request; the reply body, or None if none came in timeout."""
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(b"\x00SP\x00\x00\x30\x00\x00")  # SP header, protocol req0 (0x30)
        peer = recv_exact(s, 8)
        assert peer[:4] == b"\x00SP\x00" and peer[4:6] == b"\x00\x31", peer  # rep0
        payload = struct.pack(">I", 0x80000001) + body  # request id, high bit set
        s.sendall(struct.pack(">Q", len(payload)) + payload)
        s.settimeout(timeout)
        try:
            n = struct.unpack(">Q", recv_exact(s, 8))[0]
            reply = recv_exact(s, n)
        except socket.timeout:
            return None
        assert reply[:4] == payload[:4], "reply to another request id"
        return reply[4:]


# A Batch with one Request {id: 7, stats: {}} (proto/tracker.proto).
STATS_BATCH = b"\x0a\x04\x08\x07\x22\x00"


def failures(member):
    s, body = member.get("/metrics")
    if s != 200:
        raise AssertionError(f"{member.id} /metrics {s}")
    m = FAILURES.search(body)
    if not m:
        raise AssertionError(f"{member.id}: no synapse_cluster_auth_failures_total")
    return int(m.group(1))


class ClusterKeyTest(unittest.TestCase):
    def setUp(self):
        self.key = secrets.token_hex(32)
        self.c = cu.Cluster()
        self.addCleanup(self.c.close)
        self.key_file = os.path.join(self.c.tmp, "cluster.key")
        with open(self.key_file, "w") as f:
            f.write(self.key + "\n")  # as a Secret made with echo: the newline is no part of it

    def node(self, node_id, key=None, args=(), stderr=False):
        n = self.c.add_node(node_id, start=False)
        n.proc.env.pop("SYNAPSE_CLUSTER_KEY", None)
        if key:
            n.proc.env["SYNAPSE_CLUSTER_KEY"] = key
        n.proc.args += list(args)
        if stderr:
            n.proc.stderr_path = os.path.join(self.c.tmp, node_id + ".err")
        return n.start()

    def router(self, router_id, yaml_key):
        config = os.path.join(self.c.tmp, router_id + ".yaml")
        with open(config, "w") as f:
            f.write(config_yaml({"cluster": {"key": yaml_key}}))
        r = cu.Member("router", router_id, self.c.host, free_port(), free_port(), self.c.seeds(),
                      config, udp_port=0, data_dir=os.path.join(self.c.tmp, router_id))
        os.makedirs(r.proc.data_dir, exist_ok=True)
        r.proc.env.pop("SYNAPSE_CLUSTER_KEY", None)
        self.c.routers[router_id] = r
        return r.start()

    def test_keyed_cluster_keeps_outsiders_out(self):
        n0 = self.node("n0", key=self.key, stderr=True)
        n1 = self.node("n1", args=["--cluster-key-file", self.key_file])
        r0 = self.router("r0", self.key)
        self.c.wait_converged(30)
        self.end_to_end(r0)
        for m in (n0, n1, r0):
            self.assertEqual(failures(m), 0, m.id)
        self.data_socket(n0)
        self.outsiders(n0, n1, r0)

    def end_to_end(self, r0):
        rng = random.Random(7)
        ih = rand_hash(rng)
        cu.announce(r0, ih, 51001, left=0)
        d = cu.announce(r0, ih, 51002, left=5)
        self.assertIn(51001, ports_of(d[b"peers"]))
        h = rand_hash(rng).hex()
        vec = [rng.gauss(0, 1) for _ in range(8)]
        cu.register(r0, h, vec)
        s, doc = cu.get_shard(r0, h)
        self.assertEqual((s, doc["status"]), (200, "success"), doc)
        hits = cu.search(r0, vec, limit=3)["results"]
        self.assertEqual(hits[0]["info_hash"], h, hits)

    def data_socket(self, n0):
        host, port = n0.host, n0.cluster_port
        sealed, tag = seal(self.key, BATCH_REQUEST, STATS_BATCH)
        t = time.monotonic()
        reply = sp_request(host, port, sealed, timeout=5)
        cu.log(f"sealed stats batch answered in {time.monotonic() - t:.3f}s")
        self.assertIsNotNone(reply, "a batch sealed with the key got no answer")
        body = opened(self.key, BATCH_REPLY, reply, tag)
        self.assertIsNotNone(body, "the reply's seal is not bound to the request")
        self.assertEqual(body[:1], b"\x0a")  # BatchReply.replies
        self.assertIn(b"\x08\x07", body[:6])  # Reply.id = 7
        self.assertIsNone(opened(self.key, BATCH_REPLY, reply, bytes(32)))
        before = failures(n0)
        other, _ = seal(secrets.token_hex(32), BATCH_REQUEST, STATS_BATCH)
        for what, msg in (("wrong key", other), ("no seal", STATS_BATCH),
                          ("wrong kind", seal(self.key, BATCH_REPLY, STATS_BATCH)[0])):
            self.assertIsNone(sp_request(host, port, msg, timeout=1.0), what + ": answered")
        wait_for(lambda: failures(n0) >= before + 3, 5, what="n0 counts the 3 refusals")

    def outsiders(self, n0, n1, r0):
        before = failures(n0)
        wrong = self.node("n2", key=secrets.token_hex(32), stderr=True)
        keyless = self.node("n3", stderr=True)
        bad_router = self.router("r1", secrets.token_hex(32))
        outsiders = {"n2": wrong, "n3": keyless, "r1": bad_router}
        insiders = {"n0": n0, "n1": n1, "r0": r0}
        until = time.monotonic() + WINDOW_S
        polls = 0
        while time.monotonic() < until:  # showing that nothing happens: a bounded window
            for m in insiders.values():
                seen = set(m.members()) & set(outsiders)
                self.assertFalse(seen, f"{m.id} lists {seen}")
            for m in outsiders.values():
                self.assertEqual(set(m.members()), {m.id}, f"{m.id} learnt members")
            polls += 1
            time.sleep(0.1)
        cu.log(f"{polls} polls over {WINDOW_S}s: no outsider seen, none learnt a member")
        with self.assertRaises(AssertionError) as e:
            cu.announce(bad_router, rand_hash(random.Random(3)), 51003)
        cu.log("wrong-key router's announce:", str(e.exception)[:120])
        self.assertFalse(bad_router.ready())
        after = wait_for(lambda: (lambda v: v if v > before else 0)(failures(n0)), 5,
                         what="n0's failure counter rises")
        cu.log(f"n0 refused {after - before} messages from the outsiders")
        self.assertEqual(set(r0.members()), set(insiders))
        with open(n0.proc.stderr_path, "rb") as f:
            self.assertIn(b"cluster: dropped a ", f.read())
        with open(keyless.proc.stderr_path, "rb") as f:
            self.assertIn(b"no cluster key", f.read())
        with open(wrong.proc.stderr_path, "rb") as f:
            self.assertNotIn(b"no cluster key", f.read())

    def test_bad_keys_refused_at_start(self):
        def start(args, env_key=None):
            env = dict(os.environ)
            env.pop("SYNAPSE_CLUSTER_KEY", None)
            if env_key:
                env["SYNAPSE_CLUSTER_KEY"] = env_key
            p = subprocess.run([binary_path(), "--role", "node", "--data-dir", self.c.tmp,
                                "--port", str(free_port()), *args], env=env,
                               capture_output=True, timeout=20)
            return p.returncode, p.stderr.decode(errors="replace")
        rc, err = start([], env_key="short")
        self.assertEqual(rc, 2, err)
        self.assertIn("at least 32", err)
        rc, err = start(["--cluster-key-file", self.key_file], env_key=self.key)
        self.assertEqual(rc, 2, err)
        self.assertIn("given twice", err)
        rc, err = start(["--cluster-key-file", os.path.join(self.c.tmp, "absent")])
        self.assertEqual(rc, 2, err)
        self.assertIn("cannot read", err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
