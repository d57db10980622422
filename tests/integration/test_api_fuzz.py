#!/usr/bin/env python3
"""Hostile JSON through a router in front of three nodes: thousands of mutated and random
bodies (weird values in every field, nested filters, white space and control characters,
huge and negative limits, wrong types, deep nesting, random bytes) for every JSON API
endpoint. Every answer must be a JSON document with a status, none a 5xx, and every
process must still be alive afterwards. The generator is seeded (the seed is printed),
so a failure can be replayed: SYNAPSE_FUZZ_SEED=<seed>.

Run: /usr/bin/python3 tests/integration/test_api_fuzz.py (SYNAPSE_BIN picks the binary).
"""
import json
import os
import random
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cluster as cu  # noqa: E402
from http_client import KeepAlive  # noqa: E402

ROUNDS = int(os.environ.get("SYNAPSE_FUZZ_ROUNDS", "8000"))
MODEL = "fuzz-model"
DIM = 4

WEIRD_STRINGS = ["", " ", "\t\n", "\u0000", "a\u0000b", "\u0001\u0002", "x" * 5000, "org/",
                 " / ", ":latest", "nomic-ai/nomic-embed-text:latest", "\u00e9\u4e2d\U0001f600",
                 "a,b", "\"quoted\"", "\\", "%00", "0" * 40, "g" * 40, "A" * 64, MODEL,
                 " " + MODEL + " ", MODEL.upper()]
WEIRD_NUMBERS = [0, -1, 1, 2, 4, 5, 1000, 1001, 2 ** 31, 2 ** 63 - 1, -(2 ** 63), 1e308,
                 -1e308, 0.5, -0.0, 3.14, 1e-320]


def weird_value(rng, depth=0):
    kind = rng.randrange(9 if depth < 4 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice(WEIRD_NUMBERS)
    if kind in (3, 4, 5):
        return rng.choice(WEIRD_STRINGS)
    if kind == 6:
        return [weird_value(rng, depth + 1) for _ in range(rng.randrange(6))]
    if kind == 7:
        return {rng.choice(["model", "tags", "x", "", "filters", "limit"]): weird_value(rng, depth + 1)
                for _ in range(rng.randrange(4))}
    return [rng.uniform(-2, 2) for _ in range(rng.choice([0, 1, DIM, DIM + 1, 4097]))]


def valid_register(rng, h):
    return {"info_hash": h, "display_name": f"fuzz {h[:6]}", "model": MODEL,
            "dimension": DIM, "tags": ["fuzz", rng.choice(["a", "b"])],
            "description": "seeded for the fuzz test", "metadata": {"k": [1, 2]},
            "embedding": [rng.uniform(-1, 1) for _ in range(DIM)]}


def valid_search(rng):
    return {"embedding": [rng.uniform(-1, 1) for _ in range(DIM)], "limit": 5,
            "filters": {"model": MODEL, "tags": ["fuzz"]}, "min_similarity": 0.0}


def mutate(rng, doc):
    """A copy of doc with some fields replaced, removed or added, at any depth."""
    doc = json.loads(json.dumps(doc))
    for _ in range(rng.randrange(1, 4)):
        target = doc
        if isinstance(target.get("filters"), dict) and rng.random() < 0.4:
            target = target["filters"]
        keys = list(target) + ["limit", "filters", "query", "embedding_model", "dimension_size",
                               "min_similarity", "tags", "model"]
        key = rng.choice(keys)
        action = rng.randrange(3)
        if action == 0:
            target.pop(key, None)
        else:
            target[key] = weird_value(rng)
    return doc


def nested(depth):
    body = "1"
    for _ in range(depth):
        body = '{"filters":' + body + "}"
    return body


class ApiFuzzTest(unittest.TestCase):
    def test_hostile_bodies_never_crash_or_5xx(self):
        seed = int(os.environ.get("SYNAPSE_FUZZ_SEED", random.randrange(1 << 30)))
        cu.log(f"fuzz seed {seed}, {ROUNDS} requests")
        rng = random.Random(seed)
        with cu.start_cluster(nodes=3, routers=1) as c:  # limiter off: cluster.TEST_LIMITS
            router = c.routers["r0"]
            hashes = [cu.stable_hex("fuzz", i) for i in range(20)]
            for h in hashes:
                cu.register(router, h, valid_register(rng, h)["embedding"], model=MODEL,
                            tags=("fuzz", "a"))
            conn = KeepAlive(router.host, router.http_port)
            # The body that once crashed a router in front of two nodes (every node
            # refused it, and the first refusal freed the fan-out): now refused at the
            # router, naming the field.
            s, raw = self.send(conn, "POST", "/api/search/embedding",
                               '{"embedding":[1,0,0,0],"limit":5,"filters":{"model":" "}}')
            self.assertEqual(s, 400, raw)
            self.assertIn("filters.model", json.loads(raw)["error"])
            statuses = {}
            bad = []
            for i in range(ROUNDS):
                method, path, body = self.request(rng, hashes)
                try:
                    s, raw = self.send(conn, method, path, body)
                except OSError as e:
                    bad.append((i, method, path, body[:200], f"connection error {e}"))
                    conn.close()
                    continue
                statuses[s] = statuses.get(s, 0) + 1
                problem = self.check(s, raw)
                if problem:
                    bad.append((i, method, path, body[:200], problem))
            conn.close()
            cu.log(f"statuses: {dict(sorted(statuses.items()))}")
            self.assertEqual(bad[:10], [], f"{len(bad)} bad answers (seed {seed})")
            dead = [m.id for m in list(c.nodes.values()) + list(c.routers.values()) if not m.alive()]
            self.assertEqual(dead, [], f"processes died (seed {seed})")
            # Still serving: a new shard registers, reads back and is found.
            h = cu.stable_hex("after-fuzz", 0)
            v = [0.3, -0.2, 0.9, 0.1]
            cu.register(router, h, v, model=MODEL)
            self.assertEqual(cu.get_shard(router, h)[0], 200)
            hits = cu.search(router, v, limit=1, filters={"model": MODEL})["results"]
            self.assertEqual([r["info_hash"] for r in hits], [h])

    @staticmethod
    def send(conn, method, path, body):
        if isinstance(body, str):
            return conn.request_raw(method, path, body.encode("utf-8", "surrogatepass"))
        return conn.request_raw(method, path, body)

    @staticmethod
    def check(status, raw):
        if status >= 500:
            return f"HTTP {status}: {raw[:200]!r}"
        try:
            doc = json.loads(raw)
        except ValueError:
            return f"HTTP {status}: not JSON: {raw[:200]!r}"
        if not isinstance(doc, dict) or doc.get("status") not in ("success", "error"):
            return f"HTTP {status}: no status: {raw[:200]!r}"
        if (status >= 400) != (doc["status"] == "error"):
            return f"HTTP {status} with status {doc['status']}"
        return None

    @staticmethod
    def request(rng, hashes):
        r = rng.random()
        if r < 0.3:
            base = valid_register(rng, rng.choice(hashes + [cu.stable_hex("new", rng.randrange(50))]))
            return "POST", "/api/register", json.dumps(mutate(rng, base))
        if r < 0.55:
            return "POST", "/api/search/embedding", json.dumps(mutate(rng, valid_search(rng)))
        if r < 0.7:
            base = {"query": rng.choice(["fuzz", "seeded test", " ", "\u0000", "a" * 2000, "OR AND *"]),
                    "limit": rng.choice(WEIRD_NUMBERS), "filters": {"model": MODEL}}
            return "POST", "/api/search", json.dumps(mutate(rng, base))
        if r < 0.8:
            h = rng.choice(hashes + ["zz", "0" * 39, "0" * 41, "A" * 64, "%00" * 10, ""])
            method = rng.choice(["GET", "DELETE", "GET"])
            return method, rng.choice(["/api/shard/", "/api/peers/", "/cluster/shard/"]) + h, ""
        if r < 0.9:
            path = rng.choice(["/api/register", "/api/search/embedding", "/api/search"])
            body = rng.choice([nested(rng.randrange(10, 40)), "[" * 50, "{", '{"a":', "null", "[]",
                               '"text"', "1e999", '{"embedding":[1,2,3,NaN]}',
                               '{"embedding":[1e400]}', '{"limit":-5,"embedding":[1]}',
                               '{"query":"x","limit":99999999999999999999}'])
            return "POST", path, body
        path = rng.choice(["/api/register", "/api/search/embedding", "/api/search"])
        return "POST", path, bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))


if __name__ == "__main__":
    unittest.main(verbosity=2)
