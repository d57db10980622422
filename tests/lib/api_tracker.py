"""One standalone tracker for the JSON API tests (test_api_*.py), driven with requests.

Tracker wraps a TrackerProcess with an optional generated config file and a
requests.Session (Debian's python3-requests, so the tests still run with /usr/bin/python3
and no virtualenv), with shortcuts for the API calls the tests repeat. Also here: an HTTP
announce through such a tracker, and the strict magnet-link parser the tests check links
with.
"""
import tempfile
import urllib.parse

import requests

from synapse_proc import TrackerProcess
from tracker_config import write_config
from tracker_proto import announce_target

HTTP_TIMEOUT = 20


class Tracker:
    """A TrackerProcess plus a requests session and an optional temp config file
    (config: {"section": {"key": value}}, see tracker_config.config_yaml)."""

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
            self.proc.close()
        finally:
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


def announce(tracker, hexhash, port, left, event="started", peer_id=None):
    """Announces one peer for the 20-byte swarm key of hexhash (a 64-hex v2 hash is
    truncated, as BEP 52 clients announce it). Returns the raw bencoded reply."""
    info_hash = bytes.fromhex(hexhash[:40])
    peer_id = peer_id or ("-SY0001-" + "%012d" % port).encode()
    target = announce_target(info_hash, peer_id, port, uploaded=0, downloaded=0, left=left,
                             compact=1, event=event)
    r = tracker.get(target)
    if r.status_code != 200 or b"failure reason" in r.content:
        raise AssertionError(f"announce failed: {r.status_code} {r.content[:200]!r}")
    return r.content


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
