#!/usr/bin/env python3
"""The JSON API's public contract (design.md, "Public contract"), over HTTP on loopback:
the seed README's Python example, the Synapse agent client's request and reply shapes,
search results against exact cosine top-k computed here, filters, delete, update, magnet
links, live swarm figures, /api/peers, bearer tokens and /api/stats.

Run alone: /usr/bin/python3 tests/integration/test_api_contract.py (SYNAPSE_BIN or the
default build's binary)."""
import os
import random
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from api_tracker import Tracker, announce, magnet_params  # noqa: E402
from tracker_proto import rand_hex  # noqa: E402
from vectors import SIM_TOL, check_topk, clustered_vectors, exact_topk, similarity  # noqa: E402

HEX40 = re.compile(r"^[0-9a-f]{40}$")


def start(cls, **kw):
    cls.t = Tracker(**kw).start()
    cls.addClassCleanup(cls.t.close)
    return cls.t


class SeedReadmeExample(unittest.TestCase):
    """The seed README's "From Python Client" example, with a valid 40-hex info_hash. It
    registers WITHOUT an embedding ("Optional: for search"), then searches by text."""

    @classmethod
    def setUpClass(cls):
        start(cls)

    def test_readme_example(self):
        t = self.t
        info_hash = "abcdef1234567890abcdef1234567890abcdef12"
        response = t.session.post(t.url + "/api/register", json={
            "info_hash": info_hash,
            "display_name": "React Hooks Guide",
            "model": "nomic-embed-text-v1.5",
            "dimension": 768,
            "tags": ["react", "javascript", "hooks"],
        }, timeout=20)
        self.assertEqual(response.status_code, 200,
                         f"registration without an embedding must succeed: {response.text}")
        doc = response.json()
        self.assertEqual(doc["status"], "success")
        self.assertEqual(doc["info_hash"], info_hash)
        self.assertEqual(doc["message"], "Shard registered successfully")

        response = t.session.post(t.url + "/api/search", json={
            "query": "How to use React hooks",
            "limit": 5,
        }, timeout=20)
        self.assertEqual(response.status_code, 200, response.text)
        doc = response.json()
        self.assertEqual(doc["status"], "success")
        results = doc["results"]
        self.assertEqual(doc["count"], len(results))
        self.assertEqual([r["info_hash"] for r in results], [info_hash])
        for result in results:
            line = f"{result['display_name']}: {result['similarity']:.2f}"  # the README's print
            self.assertTrue(line.startswith("React Hooks Guide: "))
            self.assertGreater(result["similarity"], 0.0)
            self.assertLessEqual(result["similarity"], 1.0)
            self.assertTrue(result["magnet_link"].startswith("magnet:?xt=urn:btih:" + info_hash))
            self.assertEqual(result["tags"], ["react", "javascript", "hooks"])
        # And it is a shard like any other.
        r = t.shard(info_hash)
        self.assertEqual(r.status_code, 200, r.text)
        self.assertEqual(r.json()["dimension"], 768)


class SynapseClientShapes(unittest.TestCase):
    """What the Synapse agent client does: register with embedding_model / dimension_size,
    search only through /api/search/embedding with {embedding, limit}, read info_hash,
    display_name, similarity, magnet_link and count, GET /api/shard/{hash}. Results are
    compared with exact cosine top-k over 300 clustered 64-d vectors."""

    DIM = 64
    N = 300
    MODEL = "synapse-client-embed"

    @classmethod
    def setUpClass(cls):
        t = start(cls)
        rng = random.Random(1234)
        vectors, cls.centres = clustered_vectors(rng, cls.N, cls.DIM, clusters=10)
        cls.items = {}
        cls.records = {}
        for i, v in enumerate(vectors):
            h = rand_hex(rng)
            body = {
                "info_hash": h,
                "display_name": f"memory shard {i}",
                "embedding_model": cls.MODEL,
                "dimension_size": cls.DIM,
                "embedding": v,
                "tags": [f"cluster{i % 10}"],
                "description": f"notes number {i}",
                "file_size": 1000 + i,
                "entry_count": i,
                "metadata": {"i": i, "kind": "test", "nested": {"ok": True}},
                "creator_agent_id": f"agent-{i % 3}",
            }
            doc = t.register(body)
            assert doc["status"] == "success" and doc["info_hash"] == h, doc
            cls.items[h] = v
            cls.records[h] = body
        cls.rng = rng

    def test_client_search_shape(self):
        h, v = next(iter(self.items.items()))
        r = self.t.post("/api/search/embedding", {"embedding": v, "limit": 5})
        self.assertEqual(r.status_code, 200, r.text)
        doc = r.json()
        self.assertEqual(doc["status"], "success")
        self.assertEqual(doc["count"], 5)
        self.assertEqual(len(doc["results"]), 5)
        first = doc["results"][0]
        self.assertEqual(first["info_hash"], h)
        self.assertAlmostEqual(first["similarity"], 1.0, delta=SIM_TOL)
        for res in doc["results"]:
            self.assertRegex(res["info_hash"], HEX40)
            self.assertIsInstance(res["display_name"], str)
            self.assertIsInstance(res["similarity"], float)
            self.assertGreaterEqual(res["similarity"], 0.0)
            self.assertLessEqual(res["similarity"], 1.0 + 1e-6)
            self.assertTrue(res["magnet_link"].startswith("magnet:?xt=urn:btih:" + res["info_hash"]))
            self.assertEqual(res["model"], self.MODEL)
            self.assertEqual(res["dimension"], self.DIM)
            self.assertIsInstance(res["tags"], list)
            self.assertEqual(res["seeders"], 0)
            self.assertEqual(res["leechers"], 0)
            self.assertNotIn("embedding", res)

    def test_default_limit_is_ten(self):
        doc = self.t.post("/api/search/embedding", {"embedding": self.centres[0]}).json()
        self.assertEqual(doc["count"], 10)

    def test_exact_topk(self):
        rng = random.Random(99)
        queries = []
        for c in self.centres:  # near a cluster
            queries.append([x + rng.gauss(0, 0.5) for x in c])
        for _ in range(6):  # anywhere
            queries.append([rng.gauss(0, 1) for _ in range(self.DIM)])
        queries.append(list(self.items.values())[17])  # an exact stored vector
        for qi, q in enumerate(queries):
            for limit in (1, 10, 50):
                doc = self.t.search_embedding(q, limit)
                self.assertEqual(doc["count"], len(doc["results"]))
                check_topk(self, doc["results"], q, self.items, limit, msg=f"query {qi} limit {limit}")

    def test_limit_above_the_set_returns_everything(self):
        q = self.centres[3]
        doc = self.t.search_embedding(q, 1000)
        check_topk(self, doc["results"], q, self.items, 1000, msg="limit 1000")
        self.assertEqual(doc["count"], self.N)

    def test_get_shard(self):
        for h in list(self.records)[:20]:
            rec = self.records[h]
            r = self.t.shard(h)
            self.assertEqual(r.status_code, 200, r.text)
            doc = r.json()
            self.assertEqual(doc["status"], "success")
            for shard in (doc, doc.get("shard", doc)):
                self.assertEqual(shard["info_hash"], h)
                self.assertEqual(shard["display_name"], rec["display_name"])
                self.assertEqual(shard["model"], self.MODEL)
                self.assertEqual(shard["dimension"], self.DIM)
                self.assertEqual(shard["tags"], rec["tags"])
                self.assertEqual(shard["description"], rec["description"])
                self.assertEqual(shard["file_size"], rec["file_size"])
                self.assertEqual(shard["entry_count"], rec["entry_count"])
                self.assertEqual(shard["metadata"], rec["metadata"])
                self.assertEqual(shard["creator_agent_id"], rec["creator_agent_id"])
                self.assertIn("seeders", shard)
                self.assertIn("leechers", shard)
                self.assertIsInstance(shard["created_at"], int)

    def test_get_shard_upper_case_hash(self):
        h = next(iter(self.records))
        r = self.t.shard(h.upper())
        self.assertEqual(r.status_code, 200, r.text)
        self.assertEqual(r.json()["info_hash"], h)

    def test_get_unknown_shard_is_404(self):
        r = self.t.shard("0" * 40)
        self.assertEqual(r.status_code, 404)
        doc = r.json()
        self.assertEqual(doc["status"], "error")
        self.assertTrue(doc["error"])


class Filters(unittest.TestCase):
    """Model (normalised), tags (any of), min_similarity; a filtered search still returns
    `limit` results when that many shards match."""

    DIM = 32

    @classmethod
    def setUpClass(cls):
        t = start(cls)
        rng = random.Random(42)
        vectors, cls.centres = clustered_vectors(rng, 240, cls.DIM, clusters=6)
        cls.items = {}
        cls.model_of = {}
        cls.tags_of = {}
        for i, v in enumerate(vectors):
            h = rand_hex(rng)
            model = "nomic-ai/nomic-embed-text-v1.5" if i % 2 == 0 else "other-embed-model"
            tags = [f"t{i % 5}"]
            # "rare": 30 shards, all in cluster 5, i.e. far from the other clusters.
            if i % 6 == 5 and len([1 for x in cls.tags_of.values() if "rare" in x]) < 30:
                tags.append("rare")
            t.register({"info_hash": h, "display_name": f"shard {i}", "model": model,
                        "dimension": cls.DIM, "embedding": v, "tags": tags})
            cls.items[h] = v
            cls.model_of[h] = model
            cls.tags_of[h] = tags
        cls.rare = {h for h, tg in cls.tags_of.items() if "rare" in tg}
        assert len(cls.rare) == 30, len(cls.rare)

    def subset(self, pred):
        return {h: v for h, v in self.items.items() if pred(h)}

    def test_model_names_are_normalised(self):
        nomic = self.subset(lambda h: self.model_of[h].startswith("nomic-ai/"))
        q = self.centres[1]
        for name in ("nomic-embed-text-v1.5", "nomic-ai/nomic-embed-text-v1.5",
                     "NOMIC-EMBED-TEXT-V1.5"):
            doc = self.t.search_embedding(q, 15, filters={"model": name})
            check_topk(self, doc["results"], q, nomic, 15, msg=f"model filter {name}")
        other = self.subset(lambda h: self.model_of[h] == "other-embed-model")
        doc = self.t.search_embedding(q, 15, filters={"model": "other-embed-model"})
        check_topk(self, doc["results"], q, other, 15, msg="model filter other")

    def test_tags_match_any(self):
        q = self.centres[2]
        want = self.subset(lambda h: "t1" in self.tags_of[h] or "t3" in self.tags_of[h])
        doc = self.t.search_embedding(q, 25, filters={"tags": ["t1", "t3"]})
        check_topk(self, doc["results"], q, want, 25, msg="tags t1|t3")
        for res in doc["results"]:
            self.assertTrue({"t1", "t3"} & set(res["tags"]), res["tags"])

    def test_tags_and_model_together(self):
        q = self.centres[0]
        want = self.subset(lambda h: "t2" in self.tags_of[h] and self.model_of[h] != "other-embed-model")
        doc = self.t.search_embedding(q, 12, filters={"tags": ["t2"], "model": "nomic-embed-text-v1.5"})
        check_topk(self, doc["results"], q, want, 12, msg="tags t2 + model")

    def test_min_similarity(self):
        q = self.centres[4]
        full = exact_topk(q, self.items, len(self.items))
        # A threshold half-way between two consecutive similarities: no boundary ties.
        for cut in (3, 17, 60):
            m = (full[cut - 1][1] + full[cut][1]) / 2
            doc = self.t.search_embedding(q, 100, min_similarity=m)
            check_topk(self, doc["results"], q, self.items, 100, min_similarity=m,
                       msg=f"min_similarity {m:.4f}")
            self.assertEqual(doc["count"], cut)
            for res in doc["results"]:
                self.assertGreaterEqual(res["similarity"], m - SIM_TOL)

    def test_filtered_search_still_fills_limit(self):
        # The query sits on cluster 0; the 30 rare shards live in cluster 5, so nearly
        # every nearest neighbour fails the filter: the tracker must search deeper.
        q = self.centres[0]
        top = exact_topk(q, self.items, 20)
        self.assertFalse({h for h, _ in top} & self.rare, "test data: rare shards must be far")
        want = self.subset(lambda h: h in self.rare)
        for limit in (20, 30):
            doc = self.t.search_embedding(q, limit, filters={"tags": ["rare"]})
            self.assertEqual(doc["count"], limit)
            check_topk(self, doc["results"], q, want, limit, msg=f"rare limit {limit}")
        doc = self.t.search_embedding(q, 50, filters={"tags": ["rare"]})
        self.assertEqual(doc["count"], 30)  # all that match, not more

    def test_filter_tag_as_plain_string(self):
        q = self.centres[5]
        want = self.subset(lambda h: h in self.rare)
        doc = self.t.search_embedding(q, 10, filters={"tags": "rare"})
        check_topk(self, doc["results"], q, want, 10, msg="tags as a string")


class DeleteAndUpdate(unittest.TestCase):
    DIM = 16

    @classmethod
    def setUpClass(cls):
        start(cls)
        cls.rng = random.Random(7)
        cls.others = {}
        for i in range(30):
            h = rand_hex(cls.rng)
            v = [cls.rng.gauss(0, 1) for _ in range(cls.DIM)]
            cls.t.register({"info_hash": h, "display_name": f"o{i}", "model": "m16",
                            "dimension": cls.DIM, "embedding": v})
            cls.others[h] = v

    def vec(self):
        return [self.rng.gauss(0, 1) for _ in range(self.DIM)]

    def total_shards(self):
        return self.t.get("/api/stats").json()["total_shards"]

    def test_delete(self):
        h, v = rand_hex(self.rng), self.vec()
        self.t.register({"info_hash": h, "display_name": "to delete", "model": "m16",
                         "dimension": self.DIM, "embedding": v})
        self.assertEqual(self.t.search_embedding(v, 3)["results"][0]["info_hash"], h)
        r = self.t.delete("/api/shard/" + h)
        self.assertEqual(r.status_code, 200, r.text)
        self.assertEqual(r.json()["status"], "success")
        r = self.t.shard(h)
        self.assertEqual(r.status_code, 404, r.text)
        self.assertEqual(r.json()["status"], "error")
        doc = self.t.search_embedding(v, 100)
        self.assertNotIn(h, [x["info_hash"] for x in doc["results"]])
        check_topk(self, doc["results"], v, self.others, 100, msg="after delete")
        r = self.t.delete("/api/shard/" + h)
        self.assertEqual(r.status_code, 404, "deleting twice")
        self.assertEqual(r.json()["status"], "error")

    def test_update_existing_shard(self):
        h, v1, v2 = rand_hex(self.rng), self.vec(), self.vec()
        first = self.t.register({"info_hash": h, "display_name": "first name", "model": "m16",
                                 "dimension": self.DIM, "embedding": v1, "tags": ["old"],
                                 "description": "old text"})
        self.assertIn(first.get("created", True), (True,))
        before = self.t.shard(h).json()
        count = self.total_shards()
        # Wait for the wall clock's next second, so a reset created_at would show.
        while time.time() < before["created_at"] + 1.05:
            time.sleep(0.05)
        second = self.t.register({"info_hash": h.upper(), "display_name": "second name",
                                  "model": "m16", "dimension": self.DIM, "embedding": v2,
                                  "tags": ["new"]})
        self.assertEqual(second["info_hash"], h)
        self.assertIn(second.get("created", False), (False,), "an update is not a creation")
        self.assertEqual(self.total_shards(), count, "an update must not add a shard")
        after = self.t.shard(h).json()
        self.assertEqual(after["display_name"], "second name")
        self.assertEqual(after["tags"], ["new"])
        self.assertEqual(after["created_at"], before["created_at"], "created_at must be kept")
        self.assertGreater(after["updated_at"], before["created_at"])
        hit = self.t.search_embedding(v2, 1)["results"][0]
        self.assertEqual(hit["info_hash"], h)
        self.assertEqual(hit["display_name"], "second name")
        self.assertAlmostEqual(hit["similarity"], 1.0, delta=SIM_TOL)
        # The old vector is gone: h scores as v2 does against v1.
        doc = self.t.search_embedding(v1, 100)
        got = {x["info_hash"]: x["similarity"] for x in doc["results"]}
        self.assertEqual(list(got).count(h), 1)
        self.assertAlmostEqual(got[h], similarity(v1, v2), delta=SIM_TOL)
        items = dict(self.others, **{h: v2})
        check_topk(self, doc["results"], v1, {k: items[k] for k in got}, len(got), msg="after update")


class MagnetLinks(unittest.TestCase):
    NAME = "Notes & ideas: caf\u00e9 100% \u2615 a+b=c #1/2?"
    TAGS = ["deep learning", "c&d", "\u00fcber"]

    @classmethod
    def setUpClass(cls):
        start(cls)
        rng = random.Random(5)
        cls.h1 = rand_hex(rng)
        cls.h2 = rand_hex(rng, 64)
        cls.v1 = [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
        cls.v2 = [0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
        cls.t.register({"info_hash": cls.h1, "display_name": cls.NAME,
                        "model": "nomic-ai/nomic-embed-text-v1.5", "dimension": 8,
                        "embedding": cls.v1, "tags": cls.TAGS})
        cls.t.register({"info_hash": cls.h2.upper(), "display_name": "v2 shard", "model": "m8",
                        "dimension": 8, "embedding": cls.v2})

    def hit(self, v, headers=None):
        r = self.t.post("/api/search/embedding", {"embedding": v, "limit": 1}, headers=headers)
        self.assertEqual(r.status_code, 200, r.text)
        return r.json()["results"][0]

    def test_v1_magnet(self):
        res = self.hit(self.v1)
        self.assertEqual(res["info_hash"], self.h1)
        params = magnet_params(res["magnet_link"])
        keys = [k for k, _ in params]
        self.assertEqual(params[0], ("xt", "urn:btih:" + self.h1))
        self.assertEqual(keys.count("xt"), 1)
        d = {}
        for k, v in params:
            d.setdefault(k, []).append(v)
        self.assertEqual(d["dn"], [self.NAME])
        self.assertEqual(d["tr"], [f"http://127.0.0.1:{self.t.http_port}/announce",
                                   f"udp://127.0.0.1:{self.t.udp_port}/announce"])
        self.assertEqual(d["x.model"], ["nomic-ai/nomic-embed-text-v1.5"])
        self.assertEqual(d["x.dims"], ["8"])
        self.assertEqual(d["x.tags"], [",".join(self.TAGS)])
        link = res["magnet_link"]
        self.assertIn("dn=Notes%20%26%20ideas%3A%20caf%C3%A9%20100%25%20%E2%98%95%20a%2Bb%3Dc%20%231%2F2%3F",
                      link)
        self.assertIn("x.tags=deep%20learning%2Cc%26d%2C%C3%BCber", link)

    def test_v2_magnet(self):
        res = self.hit(self.v2)
        self.assertEqual(res["info_hash"], self.h2)
        params = magnet_params(res["magnet_link"])
        xts = [v for k, v in params if k == "xt"]
        self.assertEqual(xts, ["urn:btih:" + self.h2[:40], "urn:btmh:1220" + self.h2])
        self.assertNotIn("x.tags", [k for k, _ in params])

    def test_trackers_follow_host_header(self):
        for host, http, udp in (
                ("tracker.example.org:6881", "http://tracker.example.org:6881/announce",
                 f"udp://tracker.example.org:{self.t.udp_port}/announce"),
                ("tracker.example.org", "http://tracker.example.org/announce",
                 f"udp://tracker.example.org:{self.t.udp_port}/announce"),
                ("[::1]:8080", "http://[::1]:8080/announce", f"udp://[::1]:{self.t.udp_port}/announce")):
            res = self.hit(self.v1, headers={"Host": host})
            trs = [v for k, v in magnet_params(res["magnet_link"]) if k == "tr"]
            self.assertEqual(trs, [http, udp], host)

    def test_hostile_host_header_is_not_echoed(self):
        res = self.hit(self.v1, headers={"Host": "evil.example/\"<x>&y"})
        trs = [v for k, v in magnet_params(res["magnet_link"]) if k == "tr"]
        self.assertEqual(len(trs), 2)
        for tr in trs:
            self.assertNotIn("evil", tr)


class MagnetLinksPublicUrls(unittest.TestCase):
    URLS = ["http://tracker.example.org:6881/announce", "udp://tracker.example.org:6969/announce",
            "https://backup.example.net/announce?key=a b"]

    @classmethod
    def setUpClass(cls):
        start(cls, config={"server": {"public_announce_urls": cls.URLS}})
        cls.h = "c" * 40
        cls.t.register({"info_hash": cls.h, "display_name": "public", "model": "m4",
                        "dimension": 4, "embedding": [1, 2, 3, 4]})

    def test_exactly_the_configured_urls(self):
        for headers in (None, {"Host": "other.example:1234"}):
            r = self.t.post("/api/search/embedding", {"embedding": [1, 2, 3, 4], "limit": 1},
                            headers=headers)
            link = r.json()["results"][0]["magnet_link"]
            trs = [v for k, v in magnet_params(link) if k == "tr"]
            self.assertEqual(trs, self.URLS)


class LiveSwarm(unittest.TestCase):
    """Search hits, GET /api/shard and /api/peers carry the live swarm of the info_hash."""

    @classmethod
    def setUpClass(cls):
        start(cls)
        cls.h1 = "1f" * 20
        cls.h2 = "2e" * 32  # v2: announced truncated to 20 bytes
        cls.v1 = [1, 0, 0, 0]
        cls.v2 = [0, 1, 0, 0]
        cls.t.register({"info_hash": cls.h1, "display_name": "swarm v1", "model": "m4",
                        "dimension": 4, "embedding": cls.v1})
        cls.t.register({"info_hash": cls.h2, "display_name": "swarm v2", "model": "m4",
                        "dimension": 4, "embedding": cls.v2})

    def hit(self, v):
        return self.t.search_embedding(v, 1)["results"][0]

    def test_figures_follow_announces(self):
        t = self.t
        announce(t, self.h1, 6001, 0)
        announce(t, self.h1, 6002, 1000)
        announce(t, self.h1, 6003, 5)
        res = self.hit(self.v1)
        self.assertEqual(res["info_hash"], self.h1)
        self.assertEqual((res["seeders"], res["leechers"]), (1, 2))
        shard = t.shard(self.h1).json()
        self.assertEqual((shard["seeders"], shard["leechers"]), (1, 2))

        r = t.get("/api/peers/" + self.h1)
        self.assertEqual(r.status_code, 200, r.text)
        peers = r.json()
        self.assertEqual(peers["status"], "success")
        self.assertEqual((peers["seeders"], peers["leechers"], peers["count"]), (1, 2, 3))
        self.assertEqual(sorted((p["ip"], p["port"]) for p in peers["peers"]),
                         [("127.0.0.1", 6001), ("127.0.0.1", 6002), ("127.0.0.1", 6003)])

        announce(t, self.h1, 6003, 0, event="stopped")
        announce(t, self.h1, 6002, 0, event="completed")
        res = self.hit(self.v1)
        self.assertEqual((res["seeders"], res["leechers"]), (2, 0))
        self.assertEqual(t.get("/api/peers/" + self.h1).json()["count"], 2)

    def test_v2_hash_swarm(self):
        announce(self.t, self.h2, 7001, 0)
        res = self.hit(self.v2)
        self.assertEqual(res["info_hash"], self.h2)
        self.assertEqual((res["seeders"], res["leechers"]), (1, 0))
        peers = self.t.get("/api/peers/" + self.h2).json()
        self.assertEqual(peers["count"], 1)

    def test_peers_of_an_empty_swarm(self):
        r = self.t.get("/api/peers/" + "9" * 40)
        self.assertEqual(r.status_code, 200, r.text)
        doc = r.json()
        self.assertEqual((doc["count"], doc["peers"], doc["seeders"]), (0, [], 0))


class BearerTokens(unittest.TestCase):
    TOKENS = ["tok-alpha-1234567890", "tok-beta-0987654321"]

    @classmethod
    def setUpClass(cls):
        start(cls, config={"api": {"tokens": cls.TOKENS}})

    def body(self, h):
        return {"info_hash": h, "display_name": "secret", "model": "m2", "dimension": 2,
                "embedding": [0.5, 0.5]}

    def check_error(self, r, status):
        self.assertEqual(r.status_code, status, r.text)
        doc = r.json()
        self.assertEqual(doc["status"], "error")
        self.assertTrue(doc["error"])

    def test_register_and_delete(self):
        h = "ab" * 20
        for headers in (None, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer"},
                        {"Authorization": ""}):
            r = self.t.post("/api/register", self.body(h), headers=headers)
            self.check_error(r, 401)
            self.assertIn("bearer", r.headers.get("WWW-Authenticate", "").lower())
        for bad in ("wrong", self.TOKENS[0][:-1], self.TOKENS[0] + "x", self.TOKENS[0].upper()):
            r = self.t.post("/api/register", self.body(h), headers={"Authorization": "Bearer " + bad})
            self.check_error(r, 403)
        self.assertEqual(self.t.shard(h).status_code, 404, "a refused registration stored nothing")

        for tok in self.TOKENS:
            r = self.t.post("/api/register", self.body(h), headers={"Authorization": "Bearer " + tok})
            self.assertEqual(r.status_code, 200, r.text)
        r = self.t.post("/api/register", self.body(h), headers={"Authorization": "bearer " + self.TOKENS[1]})
        self.assertEqual(r.status_code, 200, "the auth scheme is case-insensitive (RFC 7235)")

        # Reads stay open.
        self.assertEqual(self.t.shard(h).status_code, 200)
        self.assertEqual(self.t.post("/api/search/embedding", {"embedding": [1, 1]}).status_code, 200)

        self.check_error(self.t.delete("/api/shard/" + h), 401)
        self.check_error(self.t.delete("/api/shard/" + h, headers={"Authorization": "Bearer nope"}), 403)
        self.assertEqual(self.t.shard(h).status_code, 200, "a refused delete deleted nothing")
        r = self.t.delete("/api/shard/" + h, headers={"Authorization": "Bearer " + self.TOKENS[0]})
        self.assertEqual(r.status_code, 200, r.text)
        self.assertEqual(self.t.shard(h).status_code, 404)

    def test_token_from_environment(self):
        with Tracker(env={"SYNAPSE_API_TOKEN": "env-token-abcdef123456"}) as t:
            self.assertEqual(t.post("/api/register", self.body("cd" * 20)).status_code, 401)
            r = t.post("/api/register", self.body("cd" * 20),
                       headers={"Authorization": "Bearer env-token-abcdef123456"})
            self.assertEqual(r.status_code, 200, r.text)


class Stats(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        start(cls)

    def stats(self):
        r = self.t.get("/api/stats")
        self.assertEqual(r.status_code, 200, r.text)
        doc = r.json()
        self.assertEqual(doc["status"], "success")
        for key in ("total_shards", "total_peers", "active_torrents", "total_announced"):
            self.assertIsInstance(doc[key], int, key)
        return doc

    def test_totals(self):
        self.assertEqual(self.stats()["total_shards"], 0)
        hashes = ["%040x" % (i + 1) for i in range(5)]
        for i, h in enumerate(hashes):
            self.t.register({"info_hash": h, "display_name": f"s{i}", "model": "m3",
                             "dimension": 3, "embedding": [1, i, 2]})
        self.assertEqual(self.stats()["total_shards"], 5)
        self.t.register({"info_hash": hashes[0], "display_name": "again", "model": "m3",
                         "dimension": 3, "embedding": [1, 1, 1]})
        self.assertEqual(self.stats()["total_shards"], 5)
        self.assertEqual(self.t.delete("/api/shard/" + hashes[1]).status_code, 200)
        self.assertEqual(self.stats()["total_shards"], 4)
        before = self.stats()
        announce(self.t, hashes[2], 6100, 0)
        after = self.stats()
        self.assertEqual(after["total_announced"], before["total_announced"] + 1)
        self.assertEqual(after["total_peers"], before["total_peers"] + 1)
        self.assertEqual(after["active_torrents"], before["active_torrents"] + 1)


if __name__ == "__main__":
    unittest.main()
