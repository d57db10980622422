#!/usr/bin/env python3
"""POST /api/register/batch and group commit, against the real binary.

Standalone:
- A batch answers one result per shard, in request order: valid shards registered (and
  readable), invalid ones refused with the very message and status /api/register gives
  the same shard; "created" is true for a new shard and false for a re-registration; the
  top-level status is "success" only when every shard was registered.
- The envelope: not an object, no "shards", an empty list, more than 1,000 shards (413),
  a body over limits.max_batch_body (413), GET (405); the token scope is /api/register's
  (401 without a token, 403 with a wrong one, 200 with a write token).
- Every shard of an acknowledged batch, and every one of many concurrent single
  registrations (16 connections at once, so they share commits), survives kill -9.
Cluster (a router in front of 3 nodes, R = 3, W = 2): a batch through the router is
acknowledged per shard only once two replicas hold it (the nodes' own shard counts add
up to at least 2 per shard right after the reply), and every shard is still read through
the router after one node is killed with kill -9.

Run alone: /usr/bin/python3 tests/integration/test_api_register_batch.py"""
import concurrent.futures
import json
import os
import random
import sys
import tempfile
import unittest

import requests

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cluster as cu  # noqa: E402
from api_tracker import Tracker  # noqa: E402
from tracker_proto import rand_hex  # noqa: E402
from wait import wait_for  # noqa: E402

DIM = 16
MODEL = "batch-test-model"
TOKEN = "batch-write-token-0123456789"


def shard(rng, h=None, name=None, dim=DIM):
    return {"info_hash": h or rand_hex(rng), "display_name": name or "batch shard",
            "embedding_model": MODEL, "dimension_size": dim, "tags": ["batch"],
            "embedding": [round(rng.gauss(0, 1), 5) for _ in range(dim)]}


# Shards /api/register refuses, each with the field its message names.
def bad_shards(rng):
    no_name = shard(rng)
    del no_name["display_name"]
    wrong_len = shard(rng)
    wrong_len["embedding"] = wrong_len["embedding"][:-1]
    zero = shard(rng)
    zero["embedding"] = [0.0] * DIM
    bad_meta = shard(rng)
    bad_meta["metadata"] = [1, 2]
    return [{"info_hash": "xyz", "display_name": "n", "model": MODEL, "dimension": 2},
            no_name, wrong_len, zero, bad_meta]


class BatchStandalone(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="synapse-batch-")
        cls.addClassCleanup(cls.tmp.cleanup)
        cls.rng = random.Random(9090)
        cls.config = {"limits": {"rate_limit": False, "max_body": 262144, "max_batch_body": 600000}}
        cls.t = Tracker(config=cls.config, data_dir=cls.tmp.name).start()
        cls.acked = {}  # info_hash -> display_name: every shard acknowledged

    @classmethod
    def tearDownClass(cls):
        cls.t.close()

    def batch(self, shards, expect=200, **kw):
        r = self.t.post("/api/register/batch", {"shards": shards}, **kw)
        self.assertEqual(r.status_code, expect, r.text[:500])
        return r.json()

    def test_1_per_item_results(self):
        good = [shard(self.rng, name=f"good {i}") for i in range(20)]
        bad = bad_shards(self.rng)
        items = good[:10] + bad + good[10:] + ["not an object"]
        bad.append(items[-1])
        doc = self.batch(items)
        self.assertEqual(doc["status"], "error", doc)
        self.assertEqual(doc["count"], len(items))
        self.assertEqual(doc["registered"], len(good))
        self.assertEqual(doc["failed"], len(bad))
        self.assertIn(f"{len(bad)} of {len(items)} shards were not registered", doc["error"])
        results = doc["results"]
        self.assertEqual([r["index"] for r in results], list(range(len(items))))
        for i, (item, res) in enumerate(zip(items, results)):
            if item == "not an object":
                self.assertEqual((res["code"], res["error"]), (400, "the shard must be a JSON object"))
                continue
            if item in bad:
                single = self.t.post("/api/register", item)
                self.assertEqual(res["status"], "error", res)
                self.assertEqual(res["code"], single.status_code, (res, single.text))
                self.assertEqual(res["error"], single.json()["error"], f"shard {i}")
                continue
            self.assertEqual(res, {"index": i, "status": "success",
                                   "info_hash": item["info_hash"].lower(),
                                   "message": "Shard registered successfully", "created": True})
            self.acked[item["info_hash"]] = item["display_name"]
        for h, name in self.acked.items():
            r = self.t.shard(h)
            self.assertEqual(r.status_code, 200, r.text)
            self.assertEqual(r.json()["display_name"], name)
        # Found by its own vector: the batch's vectors are in the index.
        hit = self.t.search_embedding(good[3]["embedding"], 1)["results"][0]
        self.assertEqual(hit["info_hash"], good[3]["info_hash"])

    def test_2_reregistration_and_all_success(self):
        again = [dict(shard(self.rng), info_hash=h, display_name=f"again {h[:6]}")
                 for h in list(self.acked)[:5]]
        fresh = [shard(self.rng, name="fresh")]
        v2 = shard(self.rng, h=rand_hex(self.rng) + rand_hex(self.rng)[:24], name="v2 hash")
        doc = self.batch(again + fresh + [v2])
        self.assertEqual(doc["status"], "success", doc)
        self.assertNotIn("error", doc)
        self.assertEqual([r["created"] for r in doc["results"]], [False] * 5 + [True, True])
        self.assertEqual(doc["results"][-1]["info_hash"], v2["info_hash"])
        for item in again + fresh + [v2]:
            self.acked[item["info_hash"]] = item["display_name"]
            self.assertEqual(self.t.shard(item["info_hash"]).json()["display_name"],
                             item["display_name"])

    def test_3_envelope(self):
        cases = [
            (b"[1,2]", 400, "the body must be a JSON object"),
            (b"{}", 400, 'missing field "shards"'),
            (b'{"shards": {}}', 400, '"shards" must be an array'),
            (b'{"shards": []}', 400, '"shards" is empty'),
            (json.dumps({"shards": [1] * 1001}).encode(), 413, "at most 1000 a request"),
            (b"{", 400, "invalid JSON"),
        ]
        for body, status, text in cases:
            r = self.t.request("POST", "/api/register/batch", data=body,
                               headers={"Content-Type": "application/json"})
            self.assertEqual(r.status_code, status, (body[:40], r.text))
            self.assertEqual(r.json()["status"], "error")
            self.assertIn(text, r.json()["error"], body[:40])
        big = [shard(self.rng, dim=1024) for _ in range(80)]  # ~ 0.7 MB > max_batch_body
        r = self.t.post("/api/register/batch", {"shards": big})
        self.assertEqual(r.status_code, 413, r.text[:200])
        r = self.t.get("/api/register/batch")
        self.assertEqual(r.status_code, 405)
        self.assertEqual(r.headers.get("Allow"), "POST")
        # A batch may be larger than limits.max_body (1 MiB by default) up to its own limit.
        with Tracker(config={"limits": {"rate_limit": False, "max_body": 65536}}) as t:
            items = [shard(self.rng, dim=512) for _ in range(30)]  # ~ 0.3 MB
            r = t.post("/api/register/batch", {"shards": items})
            self.assertEqual(r.status_code, 200, r.text[:300])
            self.assertEqual(r.json()["registered"], 30)

    def test_4_token_scope_as_register(self):
        with Tracker(config={"limits": {"rate_limit": False}, "api": {"tokens": [TOKEN]}}) as t:
            body = {"shards": [shard(self.rng)]}
            for headers, status in (({}, 401), ({"Authorization": "Bearer wrong-token-1234"}, 403)):
                single = t.post("/api/register", body["shards"][0], headers=headers)
                r = t.post("/api/register/batch", body, headers=headers)
                self.assertEqual(r.status_code, status, r.text)
                self.assertEqual(single.status_code, status)
                self.assertEqual(r.json()["error"], single.json()["error"])
            r = t.post("/api/register/batch", body, headers={"Authorization": "Bearer " + TOKEN})
            self.assertEqual(r.status_code, 200, r.text)
            self.assertEqual(r.json()["status"], "success")

    def test_5_acknowledged_survive_kill9(self):
        batch = [shard(self.rng, name=f"durable {i}") for i in range(300)]
        for i in range(0, 300, 100):
            doc = self.batch(batch[i:i + 100])
            self.assertEqual(doc["registered"], 100, doc)
        for item in batch:
            self.acked[item["info_hash"]] = item["display_name"]

        # 320 single registrations over 16 connections at once (a session each), so
        # they share commits; every one acknowledged must survive too.
        singles = [shard(self.rng, name=f"single {i}") for i in range(320)]

        def one(k):
            with requests.Session() as s:
                return [(item, s.post(self.t.url + "/api/register", json=item, timeout=20))
                        for item in singles[k::16]]

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            for out in pool.map(one, range(16)):
                for item, r in out:
                    self.assertEqual(r.status_code, 200, r.text)
                    self.acked[item["info_hash"]] = item["display_name"]

        self.t.proc.kill9()
        self.t.close()
        self.__class__.t = Tracker(config=self.config, data_dir=self.tmp.name).start()
        stats = self.t.get("/api/stats").json()
        self.assertEqual(stats["total_shards"], len(self.acked), stats)
        lost = [h for h, name in self.acked.items()
                if self.t.shard(h).status_code != 200 or
                self.t.shard(h).json()["display_name"] != name]
        self.assertEqual(lost, [], f"{len(lost)} acknowledged shards lost after kill -9")


class BatchCluster(unittest.TestCase):
    """Through a router in front of three nodes, R = 3, W = 2."""

    @classmethod
    def setUpClass(cls):
        cls.cluster = cu.start_cluster(nodes=3, routers=1,
                                       cluster={"replication": 3, "write_quorum": 2})
        cls.router = cls.cluster.routers["r0"]
        cls.rng = random.Random(777)

    @classmethod
    def tearDownClass(cls):
        cls.cluster.close()

    def node_shards(self):
        return sum(n.members()[nid]["shards"] for nid, n in self.cluster.nodes.items())

    def test_batch_acknowledged_by_w_replicas(self):
        items = [shard(self.rng, name=f"cluster {i}") for i in range(150)]
        items.insert(40, {"info_hash": "zz", "display_name": "bad"})
        s, body = self.router.post("/api/register/batch", {"shards": items}, timeout=30)
        self.assertEqual(s, 200, body[:300])
        doc = json.loads(body)
        self.assertEqual(doc["registered"], 150, doc["results"][:3])
        self.assertEqual(doc["results"][40]["status"], "error")
        self.assertEqual(doc["results"][40]["code"], 400)
        held = self.node_shards()  # at once: W of each acknowledged shard hold it
        self.assertGreaterEqual(held, 2 * 150, "fewer than W copies of acknowledged shards")
        good = [x for x in items if x["display_name"] != "bad"]
        # All three replicas end up holding them (the copies go to every replica at once).
        wait_for(lambda: self.node_shards() == 3 * 150, 20, what="3 copies of every shard")
        victim = sorted(self.cluster.nodes)[0]
        self.cluster.nodes[victim].kill9()
        for item in good:
            st, doc = cu.get_shard(self.router, item["info_hash"])
            self.assertEqual(st, 200, doc)
            self.assertEqual(doc["display_name"], item["display_name"])


if __name__ == "__main__":
    unittest.main()
