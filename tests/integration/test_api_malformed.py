#!/usr/bin/env python3
"""Malformed requests to the JSON API: every one is answered 4xx with
{"status":"error","error":"<non-empty message naming the problem>"}, and the process keeps
serving (a valid register and search work afterwards).

Each row: name, method, path, body (dict/list -> JSON; str/bytes sent as is; None = no
body), accepted statuses, and a substring the error message must contain (case-insensitive;
None = any non-empty message).

Run alone: /usr/bin/python3 tests/integration/test_api_malformed.py"""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from api_tracker import Tracker  # noqa: E402
from http_client import raw_http  # noqa: E402

H = "0123456789abcdef0123456789abcdef01234567"  # a valid 40-hex info_hash
DIM = 4
MODEL = "known-model"


def reg(**over):
    """A valid registration with some fields replaced (a value of DELETE removes it)."""
    body = {"info_hash": H, "display_name": "ok", "model": MODEL, "dimension": DIM,
            "embedding": [0.1, 0.2, 0.3, 0.4]}
    for k, v in over.items():
        if v is DELETE:
            body.pop(k, None)
        else:
            body[k] = v
    return body


def srch(**over):
    body = {"embedding": [1.0, 0.0, 0.0, 0.0], "limit": 5}
    for k, v in over.items():
        if v is DELETE:
            body.pop(k, None)
        else:
            body[k] = v
    return body


DELETE = object()
B400 = (400,)
B4XX = tuple(range(400, 500))
R, S, T = "/api/register", "/api/search/embedding", "/api/search"


def nested(depth):
    return ('{"a":' * depth) + "1" + ("}" * depth)


CASES = [
    # -- body-level JSON problems --
    ("empty body", "POST", R, b"", B400, "empty"),
    ("whitespace body", "POST", R, b"   \n", B400, "json"),
    ("not json", "POST", R, b"hello", B400, "json"),
    ("truncated json", "POST", R, b'{"info_hash": "0123', B400, "json"),
    ("trailing garbage", "POST", R, json.dumps(reg()).encode() + b"xyz", B400, "json"),
    ("json array body", "POST", R, [reg()], B400, "object"),
    ("json string body", "POST", R, b'"register me"', B400, "json"),
    ("json null body", "POST", R, b"null", B400, "json"),
    ("duplicate keys", "POST", R, b'{"info_hash":"%s","info_hash":"%s"}' % (H.encode(), H.encode()),
     B400, "json"),
    ("invalid utf-8", "POST", R, json.dumps(reg(display_name="X")).encode().replace(b'"X"', b'"\xff\xfe"'),
     B400, "json"),
    ("raw NUL byte in body", "POST", R, json.dumps(reg(display_name="ab")).encode().replace(b"ab", b"a\x00b"),
     B400, None),
    ("escaped NUL in display_name", "POST", R,
     json.dumps(reg(display_name="ab")).encode().replace(b'"ab"', b'"a\\u0000b"'), B400, None),
    ("nesting depth 100", "POST", R, nested(100).encode(), B400, "nest"),
    ("nesting depth 100 in metadata", "POST", R,
     json.dumps(reg(metadata={})).encode().replace(b'"metadata": {}', b'"metadata": ' + nested(100).encode()),
     B400, "nest"),
    ("nesting depth 100 of arrays in search", "POST", S, ("[" * 100 + "]" * 100).encode(), B400, "nest"),
    ("non-finite 1e999", "POST", R,
     json.dumps(reg()).encode().replace(b"0.1,", b"1e999,"), B400, None),
    ("NaN literal", "POST", R, json.dumps(reg()).encode().replace(b"0.1,", b"NaN,"), B400, None),
    ("Infinity literal", "POST", S, json.dumps(srch()).encode().replace(b"1.0,", b"Infinity,"), B400, None),
    # -- info_hash --
    ("missing info_hash", "POST", R, reg(info_hash=DELETE), B400, "info_hash"),
    ("info_hash not a string", "POST", R, reg(info_hash=12345), B400, "info_hash"),
    ("info_hash empty", "POST", R, reg(info_hash=""), B400, "info_hash"),
    ("info_hash 39 hex", "POST", R, reg(info_hash=H[:39]), B400, "info_hash"),
    ("info_hash 41 hex", "POST", R, reg(info_hash=H + "a"), B400, "info_hash"),
    ("info_hash 63 hex", "POST", R, reg(info_hash=(H * 2)[:63]), B400, "info_hash"),
    ("info_hash 65 hex", "POST", R, reg(info_hash=(H * 2)[:65]), B400, "info_hash"),
    ("info_hash not hex", "POST", R, reg(info_hash="g" * 40), B400, "info_hash"),
    ("info_hash with spaces", "POST", R, reg(info_hash=" " + H[:39]), B400, "info_hash"),
    ("info_hash as array", "POST", R, reg(info_hash=[H]), B400, "info_hash"),
    # -- display_name, model, strings --
    ("missing display_name", "POST", R, reg(display_name=DELETE), B400, "display_name"),
    ("display_name number", "POST", R, reg(display_name=5), B400, "display_name"),
    ("display_name empty", "POST", R, reg(display_name=""), B400, "display_name"),
    ("display_name too long", "POST", R, reg(display_name="x" * 100000), B4XX, "display_name"),
    ("missing model", "POST", R, reg(model=DELETE), B400, "model"),
    ("model number", "POST", R, reg(model=3), B400, "model"),
    ("model object", "POST", R, reg(model={"name": "m"}), B400, "model"),
    ("embedding_model empty", "POST", R, reg(model=DELETE, embedding_model=""), B400, "model"),
    ("description number", "POST", R, reg(description=1), B400, "description"),
    ("creator_agent_id bool", "POST", R, reg(creator_agent_id=True), B400, "creator_agent_id"),
    ("signature array", "POST", R, reg(signature=["a"]), B400, "signature"),
    # -- dimension --
    ("missing dimension", "POST", R, reg(dimension=DELETE), B400, "dimension"),
    ("dimension string", "POST", R, reg(dimension="4"), B400, "dimension"),
    ("dimension 0", "POST", R, reg(dimension=0, embedding=DELETE), B400, "dimension"),
    ("dimension negative", "POST", R, reg(dimension=-4), B400, "dimension"),
    ("dimension huge", "POST", R, reg(dimension=10 ** 12, embedding=DELETE), B400, "dimension"),
    ("dimension fraction", "POST", R, reg(dimension=4.5), B400, "dimension"),
    ("dimension_size string", "POST", R, reg(dimension=DELETE, dimension_size="4"), B400, "dimension"),
    # -- embedding --
    ("embedding shorter than dimension", "POST", R, reg(embedding=[0.1, 0.2, 0.3]), B400, "embedding"),
    ("embedding longer than dimension", "POST", R, reg(embedding=[0.1] * 5), B400, "embedding"),
    ("embedding not an array", "POST", R, reg(embedding="0.1,0.2,0.3,0.4"), B400, "embedding"),
    ("embedding of strings", "POST", R, reg(embedding=["0.1", "0.2", "0.3", "0.4"]), B400, "embedding"),
    ("embedding with null", "POST", R, reg(embedding=[0.1, None, 0.3, 0.4]), B400, "embedding"),
    ("embedding nested", "POST", R, reg(embedding=[[0.1, 0.2, 0.3, 0.4]], dimension=1), B400, "embedding"),
    ("embedding overflows float", "POST", R, reg(embedding=[1e39, 0.2, 0.3, 0.4]), B400, "embedding"),
    ("embedding all zero", "POST", R, reg(embedding=[0, 0, 0, 0]), B400, "zero"),
    ("embedding empty", "POST", R, reg(embedding=[]), B400, "embedding"),
    # -- tags, metadata, numbers --
    ("tags not an array", "POST", R, reg(tags="a,b"), B400, "tags"),
    ("tags with a number", "POST", R, reg(tags=["a", 2]), B400, "tag"),
    ("too many tags", "POST", R, reg(tags=[f"t{i}" for i in range(65)]), B400, "tags"),
    ("tag too long", "POST", R, reg(tags=["x" * 65]), B400, "tag"),
    ("tag empty", "POST", R, reg(tags=[""]), B400, "tag"),
    ("metadata array", "POST", R, reg(metadata=[1, 2]), B400, "metadata"),
    ("metadata string", "POST", R, reg(metadata="{}"), B400, "metadata"),
    ("metadata too large", "POST", R, reg(metadata={"k": "v" * 70000}), B4XX, "metadata"),
    ("file_size negative", "POST", R, reg(file_size=-1), B400, "file_size"),
    ("file_size string", "POST", R, reg(file_size="10"), B400, "file_size"),
    ("entry_count fraction", "POST", R, reg(entry_count=1.5), B400, "entry_count"),
    # -- search by embedding --
    ("search: missing embedding", "POST", S, srch(embedding=DELETE), B400, "embedding"),
    ("search: embedding string", "POST", S, srch(embedding="1,0,0,0"), B400, "embedding"),
    ("search: embedding too long", "POST", S, srch(embedding=[0.5] * 5000), B400, "embedding"),
    ("search: embedding all zero", "POST", S, srch(embedding=[0.0] * 4), B400, "zero"),
    ("search: limit 0", "POST", S, srch(limit=0), B400, "limit"),
    ("search: limit 1001", "POST", S, srch(limit=1001), B400, "limit"),
    ("search: limit string", "POST", S, srch(limit="10"), B400, "limit"),
    ("search: limit negative", "POST", S, srch(limit=-5), B400, "limit"),
    ("search: limit fraction", "POST", S, srch(limit=2.5), B400, "limit"),
    ("search: min_similarity 2", "POST", S, srch(min_similarity=2), B400, "min_similarity"),
    ("search: min_similarity negative", "POST", S, srch(min_similarity=-0.1), B400, "min_similarity"),
    ("search: min_similarity string", "POST", S, srch(min_similarity="0.5"), B400, "min_similarity"),
    ("search: filters not an object", "POST", S, srch(filters=["model"]), B400, "filters"),
    ("search: filter model number", "POST", S, srch(filters={"model": 7}), B400, "model"),
    ("search: filter tags number", "POST", S, srch(filters={"tags": 7}), B400, "tags"),
    ("search: too many filter tags", "POST", S, srch(filters={"tags": ["t"] * 65}), B400, "tags"),
    ("search: unknown model filter", "POST", S, srch(filters={"model": "no-such-model"}), B4XX,
     "no-such-model"),
    ("search: dimension differs from model's", "POST", S,
     srch(embedding=[1.0, 0.0, 0.0], filters={"model": MODEL}), B4XX, "dimension"),
    # -- search by text --
    ("text search: missing query", "POST", T, {"limit": 5}, B400, "query"),
    ("text search: query number", "POST", T, {"query": 42}, B400, "query"),
    ("text search: query empty", "POST", T, {"query": ""}, B400, "query"),
    ("text search: query blank", "POST", T, {"query": " \t\n "}, B400, "query"),
    ("text search: query too long", "POST", T, {"query": "word " * 2000}, B400, "query"),
    ("text search: limit 1001", "POST", T, {"query": "x", "limit": 1001}, B400, "limit"),
    ("text search: unknown model filter", "POST", T, {"query": "x", "filters": {"model": "nope-model"}},
     B4XX, "nope-model"),
    # -- paths and methods --
    ("unknown api path", "GET", "/api/nothing-here", None, (404,), "not found"),
    ("unknown api path POST", "POST", "/api/registers", reg(), (404,), "not found"),
    ("GET /api/register", "GET", R, None, (405,), "method"),
    ("GET /api/search", "GET", T, None, (405,), "method"),
    ("DELETE /api/search/embedding", "DELETE", S, None, (405,), "method"),
    ("PUT /api/shard/<hash>", "PUT", "/api/shard/" + H, reg(), (405,), "method"),
    ("PUT /api/shard/x", "PUT", "/api/shard/x", reg(), (400, 405), None),
    ("POST /api/shard/<hash>", "POST", "/api/shard/" + H, reg(), (405,), "method"),
    ("POST /api/peers/<hash>", "POST", "/api/peers/" + H, None, (405,), "method"),
    ("POST /api/stats", "POST", "/api/stats", {}, (405,), "method"),
    ("GET /api/shard/ bad hex", "GET", "/api/shard/" + "z" * 40, None, B400, "info_hash"),
    ("GET /api/shard/ 39 hex", "GET", "/api/shard/" + H[:39], None, B400, "info_hash"),
    ("GET /api/shard/ empty", "GET", "/api/shard/", None, (400, 404), None),
    ("GET /api/shard/ with suffix", "GET", "/api/shard/" + H + "/x", None, (400, 404), None),
    ("GET /api/peers/ 41 hex", "GET", "/api/peers/" + H + "0", None, B400, "info_hash"),
    ("DELETE unknown shard", "DELETE", "/api/shard/" + "f" * 40, None, (404,), "not found"),
    ("GET unknown shard", "GET", "/api/shard/" + "e" * 64, None, (404,), "not found"),
]


class Malformed(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.t = Tracker().start()
        cls.addClassCleanup(cls.t.close)
        # One known shard so that model and dimension checks have something to compare.
        cls.t.register({"info_hash": "ab" * 20, "display_name": "known", "model": MODEL,
                        "dimension": DIM, "embedding": [1, 2, 3, 4]})

    def check(self, name, r, statuses, needle):
        want = "4xx" if statuses == B4XX else "/".join(map(str, statuses))
        self.assertTrue(r.status_code in statuses,
                        f"{name}: got {r.status_code}, want {want}: {r.text[:300]}")
        try:
            doc = r.json()
        except ValueError:
            self.fail(f"{name}: the reply is not JSON: {r.headers.get('Content-Type')} {r.text[:200]!r}")
        self.assertIsInstance(doc, dict, name)
        self.assertEqual(doc.get("status"), "error", f"{name}: {doc}")
        self.assertIsInstance(doc.get("error"), str, f"{name}: {doc}")
        self.assertTrue(doc["error"].strip(), f"{name}: empty message")
        if needle:
            self.assertIn(needle.lower(), doc["error"].lower(),
                          f"{name}: the message does not name the problem: {doc['error']!r}")

    def test_table(self):
        self.assertGreaterEqual(len(CASES), 30)
        names = [c[0] for c in CASES]
        self.assertEqual(len(names), len(set(names)), "case names must be unique")
        for name, method, path, body, statuses, needle in CASES:
            with self.subTest(name):
                kw = {}
                if isinstance(body, (dict, list)):
                    kw["data"] = json.dumps(body).encode()
                elif isinstance(body, str):
                    kw["data"] = body.encode()
                elif body is not None:
                    kw["data"] = body
                if "data" in kw:
                    kw["headers"] = {"Content-Type": "application/json"}
                r = self.t.request(method, path, **kw)
                self.check(name, r, statuses, needle)
                self.assertTrue(self.t.alive(), f"the tracker died on {name}")
        self.assertEqual(self.t.shard(H).status_code, 404, "no malformed registration was stored")

    def test_body_over_max_body(self):
        # Declared too large: refused from the headers, without reading the body.
        head = (f"POST /api/register HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {1024 * 1024 + 1}\r\n\r\n").encode()
        status, headers, body = raw_http("127.0.0.1", self.t.http_port, head)
        self.assertEqual(status, 413)
        self.assertIn("application/json", headers.get("content-type", ""),
                      f"an /api/* 413 must be a JSON error, got {headers.get('content-type')}: {body[:100]!r}")
        doc = json.loads(body)
        self.assertEqual(doc["status"], "error")
        self.assertTrue(doc["error"])

    def test_body_over_max_body_chunked(self):
        # No Content-Length: the limit is enforced while reading. 2 MiB in chunks.
        chunk = b"[" + b"1," * 32767 + b"1]"
        data = (b"POST /api/search/embedding HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n")
        for _ in range(32):
            data += b"%x\r\n" % len(chunk) + chunk + b"\r\n"
        data += b"0\r\n\r\n"
        try:
            status, headers, body = raw_http("127.0.0.1", self.t.http_port, data)
        except (BrokenPipeError, ConnectionResetError):
            self.skipTest("refused while we were still sending: the reply was lost")
        self.assertEqual(status, 413)
        self.assertIn("application/json", headers.get("content-type", ""),
                      f"an /api/* 413 must be a JSON error, got {headers.get('content-type')}: {body[:100]!r}")
        doc = json.loads(body)
        self.assertEqual(doc["status"], "error")
        self.assertTrue(doc["error"])
        self.assertTrue(self.t.alive())

    def test_zz_still_serving(self):
        # Runs last (alphabetical): the process serves normally after all of the above.
        self.assertTrue(self.t.alive())
        h = "fe" * 20
        doc = self.t.register({"info_hash": h, "display_name": "after the storm", "model": MODEL,
                               "dimension": DIM, "embedding": [4, 3, 2, 1]})
        self.assertEqual(doc["status"], "success")
        res = self.t.search_embedding([4, 3, 2, 1], 1)["results"]
        self.assertEqual(res[0]["info_hash"], h)
        doc = self.t.search_text("storm")
        self.assertEqual([r["info_hash"] for r in doc["results"]], [h])
        self.assertEqual(self.t.shard(h).status_code, 200)
        self.assertEqual(self.t.get("/api/stats").json()["total_shards"], 2)


if __name__ == "__main__":
    unittest.main()
