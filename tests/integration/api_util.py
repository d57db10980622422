"""Shared helpers for the JSON API integration tests (test_api_*.py).

Everything here is plain Python 3 plus python3-requests (Debian's), so the tests run with
/usr/bin/python3 and no virtualenv: exact cosine top-k is computed in pure Python.
"""
import hashlib
import http.server
import json
import math
import os
import random
import socket
import sys
import tempfile
import threading
import time
import urllib.parse

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lib"))

from synapse_proc import TrackerProcess, free_port  # noqa: E402,F401

SIM_TOL = 1e-4
HTTP_TIMEOUT = 20


# ---- tracker processes and configuration ----

def yaml_list(items):
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def write_config(sections, directory):
    """Writes a config file from {"section": {"key": value}}; returns its path. Values are
    written as JSON scalars or flow lists, both valid YAML for the tracker's loader."""
    lines = []
    for section, keys in sections.items():
        lines.append(f"{section}:")
        for key, value in keys.items():
            if isinstance(value, (list, tuple)):
                lines.append(f"  {key}: {yaml_list(value)}")
            elif isinstance(value, bool):
                lines.append(f"  {key}: {'true' if value else 'false'}")
            else:
                lines.append(f"  {key}: {json.dumps(value)}")
    path = os.path.join(directory, "config.yaml")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


class Tracker:
    """A TrackerProcess plus a requests session and an optional temp config file."""

    def __init__(self, config=None, args=(), data_dir=None, env=None):
        self._cfgdir = tempfile.TemporaryDirectory(prefix="synapse-api-cfg-")
        extra = list(args)
        if config:
            extra = ["--config", write_config(config, self._cfgdir.name)] + extra
        self.proc = TrackerProcess(args=extra, data_dir=data_dir, env=env)
        self.session = requests.Session()

    def start(self):
        self.proc.start()
        return self

    def close(self):
        self.session.close()
        try:
            self.proc.stop()
        finally:
            if self.proc.proc and self.proc.proc.stdout:
                self.proc.proc.stdout.close()
            if self.proc._tmp:
                self.proc._tmp.cleanup()
            self._cfgdir.cleanup()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    @property
    def url(self):
        return self.proc.base_url

    @property
    def http_port(self):
        return self.proc.http_port

    @property
    def udp_port(self):
        return self.proc.udp_port

    def alive(self):
        return self.proc.proc is not None and self.proc.proc.poll() is None

    def request(self, method, path, **kw):
        kw.setdefault("timeout", HTTP_TIMEOUT)
        return self.session.request(method, self.url + path, **kw)

    def post(self, path, body, **kw):
        return self.request("POST", path, json=body, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    # -- API shortcuts: return the decoded reply after checking the status --

    def register(self, body, expect=200, **kw):
        r = self.post("/api/register", body, **kw)
        if r.status_code != expect:
            raise AssertionError(f"register: {r.status_code} {r.text[:300]}")
        return r.json()

    def search_embedding(self, embedding, limit=10, **extra):
        body = {"embedding": embedding, "limit": limit, **extra}
        r = self.post("/api/search/embedding", body)
        if r.status_code != 200:
            raise AssertionError(f"search/embedding: {r.status_code} {r.text[:300]}")
        doc = r.json()
        if doc.get("status") != "success":
            raise AssertionError(f"search/embedding: {doc}")
        return doc

    def search_text(self, query, limit=10, **extra):
        r = self.post("/api/search", {"query": query, "limit": limit, **extra})
        if r.status_code != 200:
            raise AssertionError(f"search: {r.status_code} {r.text[:300]}")
        return r.json()

    def shard(self, hexhash):
        return self.get("/api/shard/" + hexhash)


# ---- data ----

def rand_hex(rng, n=40):
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def unit(v):
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


def cosine(a, b):
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(x * x for x in b))
    return sum(x * y for x, y in zip(a, b)) / (na * nb)


def similarity(a, b):
    """The contract's similarity: cosine clamped to 0..1."""
    return min(1.0, max(0.0, cosine(a, b)))


def clustered_vectors(rng, n, dim, clusters=8, spread=0.35):
    """n vectors around `clusters` random centres, each scaled by a random norm so the
    tracker has to normalise (cosine, not inner product)."""
    centres = [[rng.gauss(0, 1) for _ in range(dim)] for _ in range(clusters)]
    out = []
    for i in range(n):
        c = centres[i % clusters]
        v = [x + rng.gauss(0, spread) for x in c]
        scale = rng.uniform(0.2, 5.0)
        out.append([round(x * scale, 6) for x in v])
    return out, centres


def exact_topk(query, items, k, min_similarity=0.0):
    """items: {hash: vector}. Returns [(hash, similarity)] best first, ties by hash."""
    scored = [(h, similarity(query, v)) for h, v in items.items()]
    scored = [s for s in scored if s[1] >= min_similarity]
    scored.sort(key=lambda s: (-s[1], s[0]))
    return scored[:k]


def check_topk(tc, results, query, items, k, min_similarity=0.0, tol=SIM_TOL, msg=""):
    """Asserts that `results` (the reply's list) are the exact cosine top-k of `items`:
    same length, same similarities rank by rank (within tol), same hashes in order except
    that hashes whose similarities differ by less than tol may swap, and each reported
    similarity is that hash's true similarity."""
    want = exact_topk(query, items, k, min_similarity)
    got = [(r["info_hash"], r["similarity"]) for r in results]
    tc.assertEqual(len(got), len(want), f"{msg}: result count")
    for i, ((gh, gs), (wh, ws)) in enumerate(zip(got, want)):
        tc.assertIn(gh, items, f"{msg}: rank {i} is a hash outside the searched set")
        tc.assertAlmostEqual(gs, ws, delta=tol, msg=f"{msg}: similarity at rank {i}")
        tc.assertAlmostEqual(gs, similarity(query, items[gh]), delta=tol,
                             msg=f"{msg}: similarity reported for {gh}")
        if gh != wh:
            tc.assertAlmostEqual(similarity(query, items[gh]), ws, delta=tol,
                                 msg=f"{msg}: rank {i} is {gh}, expected {wh}")
    tc.assertEqual(len({h for h, _ in got}), len(got), f"{msg}: duplicate hits")
    sims = [s for _, s in got]
    tc.assertEqual(sims, sorted(sims, reverse=True), f"{msg}: not ordered by similarity")


# ---- BitTorrent announce over HTTP ----

def announce(tracker, hexhash, port, left, event="started", peer_id=None):
    """Announces one peer for the 20-byte swarm key of hexhash (a 64-hex v2 hash is
    truncated, as BEP 52 clients announce it). Returns the raw bencoded reply."""
    info_hash = bytes.fromhex(hexhash[:40])
    peer_id = peer_id or ("-SY0001-" + "%012d" % port).encode()
    query = "&".join([
        "info_hash=" + urllib.parse.quote_from_bytes(info_hash, safe=""),
        "peer_id=" + urllib.parse.quote_from_bytes(peer_id, safe=""),
        f"port={port}", "uploaded=0", "downloaded=0", f"left={left}",
        "compact=1", f"event={event}",
    ])
    r = tracker.get("/announce?" + query)
    if r.status_code != 200 or b"failure reason" in r.content:
        raise AssertionError(f"announce failed: {r.status_code} {r.content[:200]!r}")
    return r.content


# ---- magnet links ----

UNRESERVED = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def magnet_params(link):
    """[(key, decoded value)] in order; asserts the link is well formed and every value is
    strictly percent-encoded (only unreserved characters and %XX escapes; an xt value is
    a URN and keeps its colons)."""
    if not link.startswith("magnet:?"):
        raise AssertionError(f"not a magnet link: {link}")
    out = []
    for part in link[len("magnet:?"):].split("&"):
        key, sep, value = part.partition("=")
        if not sep:
            raise AssertionError(f"parameter without '=': {part!r} in {link}")
        i = 0
        while i < len(value):
            ch = value[i]
            if ch == "%":
                esc = value[i + 1:i + 3]
                if len(esc) != 2 or any(c not in "0123456789ABCDEFabcdef" for c in esc):
                    raise AssertionError(f"bad escape in {part!r}")
                i += 3
                continue
            if ch not in UNRESERVED and not (key == "xt" and ch == ":"):
                raise AssertionError(f"unencoded {ch!r} in {part!r} of {link}")
            i += 1
        out.append((key, urllib.parse.unquote(value, errors="strict")))
    return out


# ---- a small Ollama-style embedding server ----

# Words that mean the same thing share a concept, so that vectors find by meaning what
# keywords cannot ("automobile maintenance" ~ "car repair").
CONCEPTS = {
    "car": "car", "cars": "car", "automobile": "car", "automobiles": "car", "vehicle": "car",
    "repair": "fix", "repairs": "fix", "fix": "fix", "maintenance": "fix", "mend": "fix",
}


def words(text):
    out, cur = [], []
    for ch in text.lower():
        if ch.isalnum():
            cur.append(ch)
        elif cur:
            out.append("".join(cur))
            cur = []
    if cur:
        out.append("".join(cur))
    return out


def word_vector(word, dim):
    seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "big")
    rng = random.Random(seed)
    return [rng.gauss(0, 1) for _ in range(dim)]


def concept_embedding(text, dim=64):
    """Deterministic bag-of-concepts embedding (unnormalised); all-zero text -> a fixed
    nonzero vector so the tracker never sees a zero vector."""
    v = [0.0] * dim
    for w in words(text):
        for i, x in enumerate(word_vector(CONCEPTS.get(w, w), dim)):
            v[i] += x
    if not any(v):
        v[0] = 1.0
    return v


class EmbeddingServer:
    """Speaks Ollama's POST /api/embed ({"model","input"} -> {"embeddings":[[...]]}) on a
    free loopback port, in a thread. Records every request. `hang` makes it hold each
    request until released (or the server closes): a service that times out."""

    def __init__(self, dim=64, prefix="search_query: "):
        self.dim = dim
        self.prefix = prefix
        self.requests = []
        self.hang = False
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.received = threading.Condition(self.lock)
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                with server.lock:
                    server.requests.append({"path": self.path, "body": body})
                    server.received.notify_all()
                if server.hang:
                    server.release.wait(30)
                    return
                if self.path != "/api/embed" or not isinstance(body, dict):
                    self.send_error(404)
                    return
                text = body.get("input")
                texts = text if isinstance(text, list) else [text]
                embeddings = []
                for t in texts:
                    if server.prefix and t.startswith(server.prefix):
                        t = t[len(server.prefix):]
                    embeddings.append(concept_embedding(t, server.dim))
                data = json.dumps({"model": body.get("model"), "embeddings": embeddings}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/api/embed"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        """Stops serving and closes the listening socket: later connects are refused."""
        self.release.set()
        if self.thread.is_alive():
            self.httpd.shutdown()
        self.httpd.server_close()

    def inputs(self):
        with self.lock:
            return [r["body"].get("input") for r in self.requests if isinstance(r["body"], dict)]


# ---- raw HTTP, for requests that requests.Session will not send ----

def raw_http(host, port, data, timeout=10):
    """Sends raw bytes and reads the whole reply (the server answers and closes, or the
    reply's Content-Length bounds it). Returns (status, headers dict, body bytes)."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(data)
        buf = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            head, sep, rest = buf.partition(b"\r\n\r\n")
            if sep:
                headers = {}
                lines = head.split(b"\r\n")
                for line in lines[1:]:
                    k, _, v = line.partition(b":")
                    headers[k.strip().lower().decode()] = v.strip().decode()
                want = int(headers.get("content-length", "-1"))
                if want >= 0 and len(rest) >= want:
                    return int(lines[0].split()[1]), headers, rest[:want]
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                break
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        if not head:
            raise AssertionError("no HTTP reply")
        lines = head.split(b"\r\n")
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            headers[k.strip().lower().decode()] = v.strip().decode()
        return int(lines[0].split()[1]), headers, rest
