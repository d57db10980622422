"""A small Ollama-style embedding service for the hybrid search tests.

EmbeddingServer speaks Ollama's POST /api/embed on a free loopback port, in a thread, and
records every request. Its embeddings are deterministic bags of concepts
(concept_embedding): words that mean the same thing share a concept, so that vectors find
by meaning what keywords cannot.
"""
import hashlib
import http.server
import json
import random
import threading


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
