#!/usr/bin/env python3
"""Durability of the shard registry (design decision 7: SQLite is the source of truth, the
faiss index is derived state, snapshotted and rebuilt when missing, stale or corrupt).

One data directory through five lives of the tracker:
1. register shards (each acknowledged), delete one, update one, then kill -9: after a
   restart every acknowledged shard is there (GET) and searchable (its own embedding
   finds it first), the deleted one is gone, the updated one has its new vector;
2. stop cleanly, delete the faiss snapshots (data_dir/vectors/vec-*.faiss and .meta, see
   index/vector_index.c syn_vindex_snapshot_names), restart: rebuilt from SQLite;
3. corrupt the snapshots, restart: rejected and rebuilt;
4. keep a copy of the snapshots, register / delete / update more, put the old copy back
   (a stale snapshot), restart: reconciled with SQLite.
All of it with the default index type (auto) and again with HNSW (tombstones).

Run alone: /usr/bin/python3 tests/integration/test_api_durability.py"""
import glob
import os
import random
import shutil
import signal
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from api_tracker import Tracker  # noqa: E402
from tracker_proto import rand_hex  # noqa: E402
from vectors import SIM_TOL, clustered_vectors  # noqa: E402

MODELS = {"durable-a": 32, "nomic-ai/durable-b": 24}


class Durability(unittest.TestCase):
    CONFIG = None  # the default index type (auto)

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="synapse-durability-")
        cls.addClassCleanup(cls.tmp.cleanup)
        cls.data = cls.tmp.name
        cls.rng = random.Random(31337)
        cls.shards = {}  # hash -> (model, name, vector): what must be there
        cls.gone = set()  # hashes whose deletion was acknowledged
        cls.t = None

    @classmethod
    def tearDownClass(cls):
        if cls.t:
            cls.t.proc.kill9()
            cls.t.close()

    # -- helpers --

    def start(self):
        self.__class__.t = Tracker(config=self.CONFIG, data_dir=self.data).start()
        return self.t

    def snapshots(self):
        return sorted(glob.glob(os.path.join(self.data, "vectors", "vec-*")))

    def register_many(self, n, prefix):
        for model, dim in MODELS.items():
            vectors, _ = clustered_vectors(self.rng, n, dim, clusters=5)
            for i, v in enumerate(vectors):
                h = rand_hex(self.rng)
                name = f"{prefix} {model} {i}"
                doc = self.t.register({"info_hash": h, "display_name": name, "model": model,
                                       "dimension": dim, "embedding": v, "tags": [prefix]})
                self.assertEqual(doc["status"], "success")
                self.shards[h] = (model, name, v)

    def delete_some(self, k):
        for h in self.rng.sample(sorted(self.shards), k):
            r = self.t.delete("/api/shard/" + h)
            self.assertEqual(r.status_code, 200, r.text)
            del self.shards[h]
            self.gone.add(h)

    def update_some(self, k, prefix):
        for h in self.rng.sample(sorted(self.shards), k):
            model = self.shards[h][0]
            v = [self.rng.gauss(0, 1) for _ in range(MODELS[model])]
            name = f"{prefix} updated {h[:8]}"
            self.t.register({"info_hash": h, "display_name": name, "model": model,
                             "dimension": MODELS[model], "embedding": v})
            self.shards[h] = (model, name, v)

    def verify(self, stage):
        t = self.t
        stats = t.get("/api/stats").json()
        self.assertEqual(stats["total_shards"], len(self.shards), f"{stage}: total_shards")
        for h, (model, name, v) in self.shards.items():
            r = t.shard(h)
            self.assertEqual(r.status_code, 200, f"{stage}: acknowledged shard {h} lost: {r.text}")
            self.assertEqual(r.json()["display_name"], name, f"{stage}: {h}")
            doc = t.search_embedding(v, 3, filters={"model": model})
            top = doc["results"][0]
            self.assertEqual(top["info_hash"], h, f"{stage}: {h} is not found by its own vector")
            self.assertAlmostEqual(top["similarity"], 1.0, delta=SIM_TOL, msg=f"{stage}: {h}")
            self.assertEqual(top["display_name"], name)
        for h in self.gone:
            self.assertEqual(t.shard(h).status_code, 404, f"{stage}: deleted shard {h} is back")
        # Nothing deleted comes back in a search, however deep.
        for model, dim in MODELS.items():
            for _ in range(3):
                q = [self.rng.gauss(0, 1) for _ in range(dim)]
                doc = t.search_embedding(q, 1000, filters={"model": model})
                got = [x["info_hash"] for x in doc["results"]]
                want = {h for h, s in self.shards.items() if s[0] == model}
                self.assertEqual(len(got), len(set(got)), f"{stage}: duplicate hits")
                missing = sorted((self.shards[h][1], h) for h in want - set(got))
                self.assertEqual(set(got), want,
                                 f"{stage}: {model}: a limit-1000 search returned {len(got)} of "
                                 f"the {len(want)} shards in SQLite; missing {missing}")

    # -- the lives, in order --

    def test_1_kill9_keeps_acknowledged_shards(self):
        self.start()
        self.register_many(60, "first")
        self.delete_some(5)
        self.update_some(5, "first")
        self.verify("before kill -9")
        self.t.proc.kill9()
        self.t.close()
        self.start()
        self.verify("after kill -9")

    def test_2_missing_snapshot_is_rebuilt(self):
        self.assertEqual(self.t.proc.stop(signal.SIGTERM), 0, "clean stop")
        self.t.close()
        snaps = self.snapshots()
        self.assertTrue([p for p in snaps if p.endswith(".faiss")],
                        f"no faiss snapshot written at a clean stop: {snaps}")
        for p in snaps:
            os.unlink(p)
        self.start()
        self.verify("after deleting the snapshots")
        self.register_many(10, "second")
        self.verify("registering after a rebuild")

    def test_3_corrupt_snapshot_is_rebuilt(self):
        self.assertEqual(self.t.proc.stop(signal.SIGTERM), 0, "clean stop")
        self.t.close()
        faiss_files = [p for p in self.snapshots() if p.endswith(".faiss")]
        self.assertTrue(faiss_files)
        for p in faiss_files:
            size = os.path.getsize(p)
            with open(p, "r+b") as f:  # garbage in the middle, length unchanged
                f.seek(size // 2)
                f.write(bytes(self.rng.randrange(256) for _ in range(min(256, size // 4))))
        for p in self.snapshots():
            if p.endswith(".meta"):
                with open(p, "r+b") as f:
                    f.truncate(os.path.getsize(p) // 2)
                break
        self.start()
        self.verify("after corrupting the snapshots")

    def test_4_stale_snapshot_is_reconciled(self):
        self.assertEqual(self.t.proc.stop(signal.SIGTERM), 0, "clean stop")
        self.t.close()
        old = os.path.join(self.data, "vectors-old")
        shutil.copytree(os.path.join(self.data, "vectors"), old)
        self.start()
        self.register_many(10, "third")
        self.delete_some(6)
        self.update_some(6, "third")
        self.assertEqual(self.t.proc.stop(signal.SIGTERM), 0, "clean stop")
        self.t.close()
        shutil.rmtree(os.path.join(self.data, "vectors"))
        os.rename(old, os.path.join(self.data, "vectors"))
        self.start()
        self.verify("after restoring a stale snapshot")
        # And a stale snapshot followed by kill -9 once more.
        self.register_many(5, "fourth")
        self.t.proc.kill9()
        self.t.close()
        self.start()
        self.verify("stale snapshot then kill -9")


class DurabilityHnsw(Durability):
    """The same lives with HNSW, whose deletes are tombstones."""
    CONFIG = {"vector_search": {"index_type": "hnsw"}}


if __name__ == "__main__":
    unittest.main()
