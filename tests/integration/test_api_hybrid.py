#!/usr/bin/env python3
"""Hybrid text search: /api/search with an embedding service configured.

The test runs a small Ollama-style server (POST /api/embed, {"model","input"} ->
{"embeddings":[[...]]}) whose vectors are a deterministic bag of concepts, where synonyms
share a concept ("automobile maintenance" ~ "car repair"). Shards are registered with
vectors from the same function. Then:
- /api/search answers "mode": "hybrid" and fuses vector and keyword hits: a shard that
  shares no word with the query but means the same appears, beside keyword-only hits;
- the service received the query with the configured prefix ("search_query: ...") and
  the configured model;
- with the service hanging past embedding.timeout_ms, and then stopped, /api/search still
  answers 200 from keywords alone ("mode": "keyword") within the timeout.

Run alone: /usr/bin/python3 tests/integration/test_api_hybrid.py"""
import os
import random
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from api_tracker import Tracker  # noqa: E402
from embedding_server import EmbeddingServer, concept_embedding  # noqa: E402
from tracker_proto import rand_hex  # noqa: E402
from vectors import exact_topk  # noqa: E402

DIM = 64
TIMEOUT_MS = 1500
MODEL = "nomic-embed-text"
QUERY = "car repair"

# name, description; vectors are concept_embedding(name + " " + description) unless the
# shard is in DOC_ONLY (its vector comes from its description alone).
SHARDS = {
    "both": ("Car repair handbook", "step by step"),
    "meaning": ("Automobile maintenance notes", "oil and brakes"),
    "weak_both": ("Repair cafe schedule", "volunteers on saturday"),
    "keyword_only": ("Repair diary", "orchestra tuning notes"),
}
DOC_ONLY = {"keyword_only"}
VOCAB = ("apple banana cherry delta echo forest garden harbor island jungle kettle lemon "
         "meadow nebula orbit piano quartz river sunset tundra umbrella violin walnut "
         "xylophone yacht zephyr lantern marble copper velvet").split()


class HybridSearch(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = EmbeddingServer(dim=DIM).start()
        cls.addClassCleanup(cls.server.stop)
        # Feedback off: the fallback tested here is keyword search alone
        # (test_api_agents.py tests pseudo-relevance feedback).
        cls.t = Tracker(config={"embedding": {"url": cls.server.url, "api": "ollama",
                                              "model": MODEL, "query_prefix": "search_query: ",
                                              "timeout_ms": TIMEOUT_MS},
                                "vector_search": {"feedback": False}}).start()
        cls.addClassCleanup(cls.t.close)
        rng = random.Random(2024)
        cls.hash = {}
        cls.vectors = {}  # the embedding model's collection, as registered
        for key, (name, desc) in SHARDS.items():
            h = rand_hex(rng)
            text = desc if key in DOC_ONLY else name + " " + desc
            v = concept_embedding(text, DIM)
            cls.t.register({"info_hash": h, "display_name": name, "description": desc,
                            "model": "nomic-ai/nomic-embed-text", "dimension": DIM,
                            "embedding": v})
            cls.hash[key] = h
            cls.vectors[h] = v
        for i in range(40):  # distractors: random words, none of the query's concepts
            name = " ".join(rng.sample(VOCAB, 3))
            h = rand_hex(rng)
            v = concept_embedding(name, DIM)
            cls.t.register({"info_hash": h, "display_name": name, "model": MODEL,
                            "dimension": DIM, "embedding": v})
            cls.vectors[h] = v
        # Same dimension, another model, and a vector equal to the query's: must never be
        # a vector hit of a query embedded by MODEL (models never mix).
        cls.foreign = rand_hex(rng)
        cls.t.register({"info_hash": cls.foreign, "display_name": "Zyzzyva foreign",
                        "model": "other-model", "dimension": DIM,
                        "embedding": concept_embedding(QUERY, DIM)})

    def search(self, query=QUERY, limit=5, **extra):
        started = time.monotonic()
        r = self.t.post("/api/search", {"query": query, "limit": limit, **extra})
        elapsed = time.monotonic() - started
        self.assertEqual(r.status_code, 200, r.text)
        doc = r.json()
        self.assertEqual(doc["status"], "success")
        self.assertEqual(doc["count"], len(doc["results"]))
        for res in doc["results"]:
            self.assertGreaterEqual(res["similarity"], 0.0)
            self.assertLessEqual(res["similarity"], 1.0 + 1e-6)
            self.assertTrue(res["magnet_link"].startswith("magnet:?xt=urn:btih:" + res["info_hash"]))
        return doc, elapsed

    def test_1_hybrid_fuses_vector_and_keyword_hits(self):
        doc, _ = self.search()
        self.assertEqual(doc["mode"], "hybrid", doc)
        got = [r["info_hash"] for r in doc["results"]]
        self.assertEqual(len(got), 5)
        self.assertEqual(len(set(got)), 5, "duplicates in fused results")
        # In both lists near the top: first.
        self.assertEqual(got[0], self.hash["both"], doc)
        # Found by meaning alone (no word in common with the query).
        self.assertIn(self.hash["meaning"], got)
        # Found by keyword alone (its vector is far from the query).
        vector_top = [h for h, _ in exact_topk(concept_embedding(QUERY, DIM), self.vectors, 5)]
        self.assertNotIn(self.hash["keyword_only"], vector_top, "test data")
        self.assertIn(self.hash["keyword_only"], got)
        self.assertIn(self.hash["weak_both"], got)
        # Everything comes from one of the two lists.
        keyword = {self.hash[k] for k in ("both", "weak_both", "keyword_only")}
        self.assertLessEqual(set(got), set(vector_top) | keyword | {self.foreign})
        # The prefixed query reached the service, with the configured model.
        self.assertIn("search_query: " + QUERY, self.server.inputs())
        models = {r["body"].get("model") for r in self.server.requests if isinstance(r["body"], dict)}
        self.assertEqual(models, {MODEL})

    def test_2_vector_hits_stay_within_the_embedding_model(self):
        doc, _ = self.search(limit=10)
        self.assertEqual(doc["mode"], "hybrid")
        got = [r["info_hash"] for r in doc["results"]]
        self.assertNotIn(self.foreign, got,
                         "a shard of another model was matched against a query embedded by "
                         f"{MODEL}: vectors of different models must never mix")

    def test_3_hybrid_respects_filters(self):
        doc, _ = self.search(filters={"model": "nomic-embed-text"}, limit=10)
        self.assertEqual(doc["mode"], "hybrid")
        self.assertNotIn(self.foreign, [r["info_hash"] for r in doc["results"]])
        self.assertIn(self.hash["meaning"], [r["info_hash"] for r in doc["results"]])

    def test_4_service_timeout_falls_back_to_keywords(self):
        self.server.hang = True
        try:
            before = len(self.server.requests)
            doc, elapsed = self.search()
        finally:
            self.server.hang = False
            self.server.release.set()
        self.assertGreater(len(self.server.requests), before, "the service was not asked")
        self.assertEqual(doc["mode"], "keyword", doc)
        self.assertLess(elapsed, TIMEOUT_MS / 1000 + 1.0, "the answer waited past the timeout")
        got = {r["info_hash"] for r in doc["results"]}
        self.assertEqual(got, {self.hash[k] for k in ("both", "weak_both", "keyword_only")})

    def test_5_service_stopped_falls_back_to_keywords(self):
        self.server.stop()
        doc, elapsed = self.search()
        self.assertEqual(doc["mode"], "keyword", doc)
        self.assertLess(elapsed, TIMEOUT_MS / 1000 + 0.5)
        got = [r["info_hash"] for r in doc["results"]]
        self.assertEqual(set(got), {self.hash[k] for k in ("both", "weak_both", "keyword_only")})
        self.assertNotIn(self.hash["meaning"], got, "keyword search cannot find by meaning")
        self.assertEqual(got[0], self.hash["both"], "two matching words rank first")
        # And the embedding endpoint keeps working without the service.
        r = self.t.post("/api/search/embedding",
                        {"embedding": concept_embedding(QUERY, DIM), "limit": 1,
                         "filters": {"model": MODEL}})
        self.assertEqual(r.status_code, 200, r.text)
        self.assertIn(r.json()["results"][0]["info_hash"], (self.hash["both"], self.hash["meaning"]))


if __name__ == "__main__":
    unittest.main()
