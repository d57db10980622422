#!/usr/bin/env python3
"""Member identities and addresses that just work, with real processes on loopback.

- A node and a router started as the command line documents them, without --node-id,
  serve: the node generates an id on its first start and keeps it in its data directory
  (the same id after a restart), the router takes a random one, and the router's peer
  address defaults to its --cluster-addr, the node's to its cluster port + 1.
- A second live node with an id that is already taken is refused at join: it exits with
  status 1, and both processes log one error line that names the id and both addresses;
  the first one keeps serving.

Run: /usr/bin/python3 tests/integration/test_cluster_identity.py (SYNAPSE_BIN picks the binary).
"""
import os
import re
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cluster as cu  # noqa: E402
from net import free_port, free_port_pair  # noqa: E402
from synapse_proc import TrackerProcess  # noqa: E402
from wait import wait_for  # noqa: E402


class IdentityTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="synapse-identity-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            p.close()

    def spawn(self, role, name, args, data_dir=None, udp=0):
        data_dir = data_dir or os.path.join(self.tmp, name)
        os.makedirs(data_dir, exist_ok=True)
        p = TrackerProcess(args=args, role=role, udp_port=udp, data_dir=data_dir,
                           stderr_path=os.path.join(self.tmp, name + ".err"))
        self.procs.append(p)
        return p

    def stderr_of(self, name):
        with open(os.path.join(self.tmp, name + ".err")) as f:
            return f.read()

    def status(self, p):
        s, doc = cu.http_request("127.0.0.1", p.http_port, "GET", "/cluster/status")
        return doc if isinstance(doc, dict) else __import__("json").loads(doc)

    def test_no_node_id_serves(self):
        port = free_port_pair()
        data = f"tcp://127.0.0.1:{port}"
        node = self.spawn("node", "node", ["--cluster-addr", data, "--seeds", data]).start()
        router = self.spawn("router", "router",
                            ["--cluster-addr", f"tcp://127.0.0.1:{free_port()}", "--seeds", data],
                            udp=free_port(__import__("socket").SOCK_DGRAM)).start()
        member = cu.Member.__new__(cu.Member)  # a Member view over the router process
        member.proc, member.host, member.netns, member.id = router, "127.0.0.1", None, "router"
        wait_for(member.ready, 30, what="router /readyz")
        ids = {m["role"]: m for m in member.status()["members"]}
        self.assertRegex(ids["node"]["id"], r"^node-[0-9a-f]{12}$")
        self.assertRegex(ids["router"]["id"], r"^router-[0-9a-f]{12}$")
        self.assertEqual(ids["node"]["peer_address"], f"tcp://127.0.0.1:{port + 1}")
        with open(os.path.join(node.data_dir, "node_id")) as f:
            self.assertEqual(f.read().strip(), ids["node"]["id"])
        h = cu.stable_hex("identity", 1)
        cu.register(member, h, [1.0, 0.0, 0.0, 0.5], name="no id needed")
        self.assertEqual(cu.get_shard(member, h)[0], 200)
        # A restart keeps the stored id, and with it the node's partitions.
        node.close()
        node2 = self.spawn("node", "node2", ["--cluster-addr", data, "--seeds", data],
                           data_dir=node.data_dir).start()
        self.assertIsNotNone(node2)
        wait_for(lambda: any(m["id"] == ids["node"]["id"] and m["state"] == "alive" and
                             m["incarnation"] >= 0 for m in member.status()["members"]), 30,
                 what="the node back under its stored id")
        wait_for(lambda: cu.get_shard(member, h)[0] == 200, 30, what="its shard served again")

    def test_duplicate_id_is_refused(self):
        pa, pb = free_port_pair(), free_port_pair()
        seed = f"tcp://127.0.0.1:{pa}"
        a = self.spawn("node", "a", ["--node-id", "twin", "--cluster-addr", seed,
                                     "--seeds", seed]).start()
        b = self.spawn("node", "b", ["--node-id", "twin", "--cluster-addr",
                                     f"tcp://127.0.0.1:{pb}", "--seeds", seed])
        b.start()
        rc = b.proc.wait(timeout=20)
        self.assertEqual(rc, 1, "the second process with a taken id must exit with 1")
        addr_a, addr_b = f"tcp://127.0.0.1:{pa + 1}", f"tcp://127.0.0.1:{pb + 1}"
        for name in ("a", "b"):
            lines = [ln for ln in self.stderr_of(name).splitlines() if " error " in ln]
            wait_for(lambda: [ln for ln in self.stderr_of(name).splitlines() if " error " in ln],
                     10, what=f"{name} logs the clash")
            lines = [ln for ln in self.stderr_of(name).splitlines() if " error " in ln]
            self.assertEqual(len(lines), 1, f"{name}: {lines}")
            self.assertIn('"twin"', lines[0])
            self.assertIn(addr_a, lines[0])
            self.assertIn(addr_b, lines[0])
        self.assertIsNone(a.proc.poll(), "the first holder keeps running")
        s, _ = cu.http_request("127.0.0.1", a.http_port, "GET", "/readyz")
        self.assertEqual(s, 200)
        self.assertTrue(re.search(r"member id twin", self.stderr_of("a")))


if __name__ == "__main__":
    unittest.main(verbosity=2)
