#!/usr/bin/env python3
"""What agents send, against the real binary in standalone mode:

- Post-quantum identities: a shard signed with ML-DSA-87 (a 4,627-byte signature sent as
  6,172 base64 characters, the public key as base64 of its PEM, about 4,900 characters)
  registers with a 768- and a 4096-value embedding, and comes back byte-identical from
  GET /api/shard and in a search hit; 16,384 bytes are accepted in `signature` and
  `creator_public_key`, 16,385 answered 400 naming the field.
- Keyword similarity a person can read: the seed README's example (one shard "React
  Hooks Guide", query "How to use React hooks") scores at least 0.5 on a fresh tracker,
  the same once other shards exist, and an unrelated shard scores far lower.
- Pseudo-relevance feedback (vector_search.feedback): with no embedding service, a shard
  that shares no word with the query but whose embedding sits next to the keyword hits'
  is found with feedback on ("mode": "keyword+feedback") and not with it off.

Run alone: /usr/bin/python3 tests/integration/test_api_agents.py"""
import base64
import os
import random
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from api_tracker import Tracker  # noqa: E402
from tracker_proto import rand_hex  # noqa: E402

MLDSA87_SIG = 4627  # bytes (FIPS 204)
MLDSA87_PK = 2592   # bytes
MAX_CRYPTO = 16384


def mldsa_identity(rng):
    """(signature, public key) as the Synapse client sends them: base64 of the raw
    signature, and base64 of the public key's PEM (SubjectPublicKeyInfo: 22 bytes of
    header, then the key)."""
    sig = base64.b64encode(bytes(rng.randrange(256) for _ in range(MLDSA87_SIG))).decode()
    der = bytes(rng.randrange(256) for _ in range(22 + MLDSA87_PK))
    body = base64.b64encode(der).decode()
    pem = "-----BEGIN PUBLIC KEY-----\n"
    pem += "".join(body[i:i + 64] + "\n" for i in range(0, len(body), 64))
    pem += "-----END PUBLIC KEY-----\n"
    return sig, base64.b64encode(pem.encode()).decode()


class SignedShards(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.t = Tracker().start()
        cls.addClassCleanup(cls.t.close)
        cls.rng = random.Random(87)

    def register_signed(self, dim):
        sig, pk = mldsa_identity(self.rng)
        self.assertEqual(len(sig), 6172)
        self.assertTrue(4700 <= len(pk) <= 5000, len(pk))
        h = rand_hex(self.rng)
        vec = [round(self.rng.uniform(-1, 1), 6) for _ in range(dim)]
        body = {"info_hash": h, "display_name": f"Signed shard {dim}",
                "model": f"signed-model-{dim}", "dimension": dim, "embedding": vec,
                "creator_agent_id": "agent-" + h[:8], "creator_public_key": pk,
                "signature": sig}
        doc = self.t.register(body)
        self.assertEqual(doc["status"], "success")
        return h, vec, body

    def check_identity(self, got, body):
        for field in ("creator_agent_id", "creator_public_key", "signature"):
            self.assertEqual(got[field], body[field], f"{field} changed on the way")

    def test_mldsa_signed_shard_round_trips(self):
        for dim in (768, 4096):
            with self.subTest(dim=dim):
                h, vec, body = self.register_signed(dim)
                r = self.t.shard(h)
                self.assertEqual(r.status_code, 200, r.text)
                self.check_identity(r.json()["shard"], body)
                doc = self.t.search_embedding(vec, 1, filters={"model": body["model"]})
                self.assertEqual(doc["results"][0]["info_hash"], h)
                self.check_identity(doc["results"][0], body)

    def test_field_bounds(self):
        for field in ("signature", "creator_public_key"):
            with self.subTest(field=field):
                h = rand_hex(self.rng)
                base = {"info_hash": h, "display_name": "bounds", "model": "m",
                        "dimension": 2, "embedding": [1, 0]}
                self.t.register({**base, field: "A" * MAX_CRYPTO})
                self.assertEqual(self.t.shard(h).json()["shard"][field], "A" * MAX_CRYPTO)
                r = self.t.post("/api/register", {**base, field: "A" * (MAX_CRYPTO + 1)})
                self.assertEqual(r.status_code, 400, r.text)
                self.assertIn(f'"{field}" is longer than 16384 bytes', r.json()["error"])


SEED_QUERY = "How to use React hooks"


class KeywordSimilarity(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.t = Tracker().start()
        cls.addClassCleanup(cls.t.close)

    def search(self, query=SEED_QUERY, limit=5):
        doc = self.t.search_text(query, limit)
        self.assertEqual(doc["status"], "success")
        return {r["info_hash"]: r["similarity"] for r in doc["results"]}, doc

    def test_seed_example(self):
        react = "abcdef1234567890abcdef1234567890abcdef12"
        self.t.register({"info_hash": react, "display_name": "React Hooks Guide",
                         "model": "nomic-embed-text-v1.5", "dimension": 768,
                         "tags": ["react", "hooks"]})
        sims, doc = self.search()
        self.assertEqual(list(sims), [react], doc)
        self.assertEqual(doc["mode"], "keyword")
        alone = sims[react]
        print(f"\nReact Hooks Guide: {alone:.2f} (one shard)", file=sys.stderr)
        self.assertGreaterEqual(alone, 0.5, "the seed example must read as a match")
        # Other shards, one sharing a single word ("use") in its description: the React
        # shard keeps its score (no dependence on the corpus), the other is far lower.
        rng = random.Random(5)
        other = rand_hex(rng)
        self.t.register({"info_hash": other, "display_name": "Gardening diary",
                         "description": "what to use against slugs", "model": "m",
                         "dimension": 4, "tags": ["garden"]})
        for i in range(20):
            self.t.register({"info_hash": rand_hex(rng), "display_name": f"Notes {i}",
                             "model": "m", "dimension": 4, "tags": ["misc"]})
        sims, doc = self.search()
        self.assertEqual(list(sims), [react, other], doc)
        print(f"React Hooks Guide: {sims[react]:.2f}, Gardening diary: {sims[other]:.2f} "
              f"(22 shards)", file=sys.stderr)
        self.assertAlmostEqual(sims[react], alone, places=6)
        self.assertLessEqual(sims[other], sims[react] / 3)

    def test_every_term_in_name_or_tags(self):
        h = rand_hex(random.Random(9))
        self.t.register({"info_hash": h, "display_name": "Rust async executors",
                         "model": "m", "dimension": 4, "tags": ["tokio"]})
        sims, _ = self.search("async tokio rust", 3)
        self.assertAlmostEqual(sims[h], 1.0, places=6)


DIM = 16
FEEDBACK_QUERY = "react hooks"


def near(rng, centre, spread=0.05):
    return [round(x + rng.gauss(0, spread), 6) for x in centre]


class PseudoRelevanceFeedback(unittest.TestCase):
    """Three shards share the query's words and sit near one point; "Component lifecycle
    notes" sits next to them and shares no word with the query; twenty distractors lie
    elsewhere, and a shard of another model sits on the point itself. No embedding
    service is configured."""

    @classmethod
    def setUpClass(cls):
        rng = random.Random(31)
        centre = [rng.gauss(0, 1) for _ in range(DIM)]
        shards = [("React hooks guide", ["react"], near(rng, centre)),
                  ("Hooks in practice", ["react", "hooks"], near(rng, centre)),
                  ("React state patterns", ["frontend"], near(rng, centre))]
        cls.meaning_vec = near(rng, centre, 0.01)  # next to them: inside their spread
        cls.bodies = []
        for name, tags, vec in shards:
            cls.bodies.append({"info_hash": rand_hex(rng), "display_name": name,
                               "model": "nomic-embed-text", "dimension": DIM, "tags": tags,
                               "embedding": vec})
        cls.meaning = rand_hex(rng)
        cls.bodies.append({"info_hash": cls.meaning, "display_name": "Component lifecycle notes",
                           "model": "nomic-embed-text", "dimension": DIM, "tags": ["ui"],
                           "embedding": cls.meaning_vec})
        for i in range(20):
            cls.bodies.append({"info_hash": rand_hex(rng), "display_name": f"Distractor {i}",
                               "model": "nomic-embed-text", "dimension": DIM, "tags": ["misc"],
                               "embedding": [round(rng.gauss(0, 1), 6) for _ in range(DIM)]})
        # Another model next to the same point: feedback stays within the best hit's model.
        cls.foreign = rand_hex(rng)
        cls.bodies.append({"info_hash": cls.foreign, "display_name": "Foreign vectors",
                           "model": "other-model", "dimension": DIM, "tags": ["x"],
                           "embedding": centre})
        cls.keyword = {b["info_hash"] for b in cls.bodies[:3]}

    def tracker(self, feedback):
        t = Tracker(config={"vector_search": {"feedback": feedback, "feedback_docs": 3}}).start()
        self.addCleanup(t.close)
        for b in self.bodies:
            t.register(b)
        return t

    def test_feedback_on_finds_by_meaning(self):
        t = self.tracker(True)
        doc = t.search_text(FEEDBACK_QUERY, 5)
        self.assertEqual(doc["mode"], "keyword+feedback", doc)
        got = [r["info_hash"] for r in doc["results"]]
        self.assertEqual(len(got), len(set(got)), "duplicates in fused results")
        # Only what lies within the keyword hits' spread is added: no distractor pads the
        # answer up to the limit.
        self.assertEqual(len(got), 4, doc)
        self.assertIn(self.meaning, got, "the shard next to the keyword hits was not found")
        self.assertLessEqual(self.keyword, set(got))
        self.assertNotIn(self.foreign, got, "feedback mixed another model's vectors")
        # The keyword hits keep their keyword similarity (coverage), and fused order
        # puts every keyword hit (in both lists) above the feedback-only one.
        ranks = {h: i for i, h in enumerate(got)}
        self.assertTrue(all(ranks[h] < ranks[self.meaning] for h in self.keyword), doc)
        by_hash = {r["info_hash"]: r for r in doc["results"]}
        self.assertGreaterEqual(by_hash[self.bodies[1]["info_hash"]]["similarity"], 0.999)

    def test_one_keyword_hit_is_not_enough(self):
        # One embedding says nothing about a topic's spread: no feedback from it.
        t = self.tracker(True)
        doc = t.search_text("lifecycle", 5)
        self.assertEqual(doc["mode"], "keyword", doc)
        self.assertEqual([r["info_hash"] for r in doc["results"]], [self.meaning])

    def test_feedback_off_is_keywords_alone(self):
        t = self.tracker(False)
        doc = t.search_text(FEEDBACK_QUERY, 5)
        self.assertEqual(doc["mode"], "keyword", doc)
        got = {r["info_hash"] for r in doc["results"]}
        self.assertEqual(got, self.keyword)
        self.assertNotIn(self.meaning, got)


class ClusterFeedback(unittest.TestCase):
    """Three nodes, one replica each (R = 1), one router: each keyword hit lives on its
    own node, so no node alone holds the two embeddings feedback needs; the shard found
    by meaning lives wherever its hash falls. Found only if the router averages the
    cluster-wide best keyword hits and searches every node near them. Signed shards cross
    the router -> node link over TCP and come back byte-identical."""

    @classmethod
    def setUpClass(cls):
        from cluster import start_cluster  # noqa: E402 (its imports are heavier)
        cls.c = start_cluster(nodes=3, routers=1,
                              cluster={"replication": 1, "write_quorum": 1})
        cls.addClassCleanup(cls.c.close)
        cls.router = cls.c.routers["r0"]

    def post(self, path, body):
        import json
        status, raw = self.router.post(path, body)
        self.assertEqual(status, 200, raw[:300])
        return json.loads(raw)

    def test_feedback_uses_the_cluster_wide_best_hits(self):
        rng = random.Random(77)
        centre = [rng.gauss(0, 1) for _ in range(DIM)]
        names = ["React hooks guide", "Hooks in practice", "React hooks patterns"]
        keyword = []
        for node, name in zip(("n0", "n1", "n2"), names):
            h = next(h for h in (rand_hex(rng) for _ in range(5000))
                     if self.router.owner(h)["replicas"][0] == node)
            keyword.append(h)
            self.post("/api/register", {"info_hash": h, "display_name": name,
                                        "model": "nomic-embed-text", "dimension": DIM,
                                        "embedding": near(rng, centre)})
        meaning = rand_hex(rng)
        self.post("/api/register", {"info_hash": meaning, "display_name": "Component lifecycle",
                                    "model": "nomic-embed-text", "dimension": DIM,
                                    "embedding": near(rng, centre, 0.01)})
        for i in range(12):
            self.post("/api/register", {"info_hash": rand_hex(rng), "display_name": f"Other {i}",
                                        "model": "nomic-embed-text", "dimension": DIM,
                                        "embedding": [round(rng.gauss(0, 1), 6)
                                                      for _ in range(DIM)]})
        doc = self.post("/api/search", {"query": "react hooks", "limit": 5})
        self.assertEqual(doc["mode"], "keyword+feedback", doc)
        self.assertFalse(doc["partial"])
        got = [r["info_hash"] for r in doc["results"]]
        self.assertEqual(set(got), set(keyword) | {meaning}, doc)

    def test_signed_shard_through_the_cluster(self):
        rng = random.Random(4627)
        sig, pk = mldsa_identity(rng)
        h = rand_hex(rng)
        vec = [round(rng.uniform(-1, 1), 6) for _ in range(4096)]
        body = {"info_hash": h, "display_name": "Signed in a cluster", "model": "big-model",
                "dimension": 4096, "embedding": vec, "creator_public_key": pk,
                "signature": sig, "creator_agent_id": "agent-1"}
        self.post("/api/register", body)
        import json
        status, raw = self.router.get("/api/shard/" + h)
        self.assertEqual(status, 200, raw[:300])
        shard = json.loads(raw)["shard"]
        doc = self.post("/api/search/embedding", {"embedding": vec, "limit": 1,
                                                  "filters": {"model": "big-model"}})
        for got in (shard, doc["results"][0]):
            for field in ("creator_agent_id", "creator_public_key", "signature"):
                self.assertEqual(got[field], body[field], field)


if __name__ == "__main__":
    unittest.main(verbosity=2)
