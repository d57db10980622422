#!/usr/bin/env python3
"""The nemesis test's clients: run inside the router's network namespace and talk to it
over HTTP. Standard library only.

  client.py run --router HOST:PORT --clients 4 --keys 8 --seconds 60 --seed S --out H.jsonl
  client.py final --router HOST:PORT --keys-file K.json --out F.json

run: `clients` threads, each with its own keys (a key is written by one client only, one
operation at a time), register, delete, read, search and announce at random until the
time is up. Every operation goes to the history file as one JSON line (checker.py says
what the fields mean), with its outcome: "ok" (acknowledged), "fail" (definitely not
done) or "unknown" (a timeout, or an error after which it may have been done).

final: after the faults have healed, reads every key (and searches for it by its own
vector), waiting out answers that say "retry later"; the state each key ended in.
"""
import argparse
import hashlib
import http.client
import json
import random
import socket
import sys
import threading
import time
import urllib.parse

DIM = 8
MODEL = "nemesis-model"
HTTP_TIMEOUT = 15.0  # beyond the router's three attempts at its 2 s deadline


def key_vector(key):
    """A fixed direction per key, so that searching by it finds that key first."""
    rng = random.Random(int(hashlib.sha1(key.encode()).hexdigest()[:12], 16))
    return [round(rng.uniform(-1, 1), 5) for _ in range(DIM)]


class Conn:
    def __init__(self, host, port):
        self.host, self.port, self.c = host, port, None

    def request(self, method, path, body=None):
        """(status, parsed JSON or raw bytes); raises OSError on timeouts and resets."""
        if self.c is None:
            self.c = http.client.HTTPConnection(self.host, self.port, timeout=HTTP_TIMEOUT)
        try:
            data = json.dumps(body).encode() if body is not None else None
            hdrs = {"Content-Type": "application/json"} if data else {}
            self.c.request(method, path, body=data, headers=hdrs)
            r = self.c.getresponse()
            raw = r.read()
            if r.will_close:
                self.close()
            try:
                return r.status, json.loads(raw)
            except ValueError:
                return r.status, raw
        except (OSError, http.client.HTTPException) as e:
            self.close()
            raise OSError(str(e)) from e

    def close(self):
        if self.c:
            self.c.close()
            self.c = None


class Writer:
    def __init__(self, path):
        self.f = open(path, "a")
        self.lock = threading.Lock()

    def put(self, rec):
        with self.lock:
            self.f.write(json.dumps(rec) + "\n")
            self.f.flush()


def write_outcome(status, doc):
    if status == 200 and isinstance(doc, dict) and doc.get("status") == "success":
        return "ok"
    if status == 404:
        return "ok"  # a delete of nothing still stores its tombstone on a quorum
    if status in (400, 401, 403, 413):
        return "fail"
    return "unknown"  # 503: persisted somewhere, maybe


def announce_path(ih, port):
    q = urllib.parse.quote_from_bytes
    return (f"/announce?info_hash={q(ih, safe='')}&peer_id={q(b'-NEMESI-' + b'%012d' % port, safe='')}"
            f"&port={port}&uploaded=0&downloaded=0&left=1&compact=1&numwant=50")


def client_loop(idx, args, out, stop_at):
    rng = random.Random(f"{args.seed}-{idx}")
    host, port = args.router.rsplit(":", 1)
    conn = Conn(host, int(port))
    keys = [hashlib.sha1(f"nemesis-{args.seed}-{idx}-{k}".encode()).hexdigest()
            for k in range(args.keys)]
    swarm = hashlib.sha1(f"swarm-{args.seed}-{idx}".encode()).digest()
    seq = 0
    while time.monotonic() < stop_at:
        key = rng.choice(keys)
        r = rng.random()
        rec = {"client": f"c{idx}", "key": key, "start": time.time()}
        try:
            if r < 0.35:
                seq += 1
                name = f"{key[:8]}-v{seq}"
                body = {"info_hash": key, "display_name": name, "model": MODEL, "dimension": DIM,
                        "tags": ["nemesis"], "embedding": key_vector(key)}
                s, doc = conn.request("POST", "/api/register", body)
                rec.update(op="register", value=name, outcome=write_outcome(s, doc), result={"status": s})
            elif r < 0.5:
                s, doc = conn.request("DELETE", "/api/shard/" + key)
                rec.update(op="delete", outcome=write_outcome(s, doc), result={"status": s})
            elif r < 0.75:
                s, doc = conn.request("GET", "/api/shard/" + key)
                value = doc.get("display_name") if s == 200 and isinstance(doc, dict) else None
                rec.update(op="get", outcome="ok", result={"status": s, "value": value})
            elif r < 0.85:
                s, doc = conn.request("POST", "/api/search/embedding",
                                      {"embedding": key_vector(key), "limit": 3,
                                       "filters": {"model": MODEL}})
                rec.update(op="search", outcome="ok" if s == 200 else "unknown",
                           result={"status": s})
            else:
                p = 20000 + idx * 1000 + rng.randrange(1000)
                s, doc = conn.request("GET", announce_path(swarm, p))
                ok = s == 200 and isinstance(doc, bytes) and b"failure reason" not in doc
                rec.update(op="announce", key=swarm.hex(), outcome="ok" if ok else "fail",
                           result={"status": s})
        except OSError as e:
            op = ("register" if r < 0.35 else "delete" if r < 0.5 else "get" if r < 0.75
                  else "search" if r < 0.85 else "announce")
            rec.update(op=op, outcome="unknown", result={"error": str(e)[:200]})
            if op == "register":
                rec["value"] = f"{key[:8]}-v{seq}"
            if op == "announce":
                rec["key"] = swarm.hex()
        rec["end"] = time.time()
        out.put(rec)
        time.sleep(rng.uniform(0.005, 0.03))
    conn.close()
    return keys


def run(args):
    out = Writer(args.out)
    stop_at = time.monotonic() + args.seconds
    keys = []
    threads = []
    results = [None] * args.clients

    def body(i):
        results[i] = client_loop(i, args, out, stop_at)
    for i in range(args.clients):
        t = threading.Thread(target=body, args=(i,))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    for r in results:
        keys += r or []
    with open(args.out + ".keys", "w") as f:
        json.dump(keys, f)
    print("done", flush=True)


def final(args):
    host, port = args.router.rsplit(":", 1)
    conn = Conn(host, int(port))
    with open(args.keys_file) as f:
        keys = json.load(f)
    out = {}
    for key in keys:
        deadline = time.monotonic() + 30
        while True:
            try:
                s, doc = conn.request("GET", "/api/shard/" + key)
            except OSError:
                s, doc = 0, None
            if s in (200, 404) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        value = doc.get("display_name") if s == 200 and isinstance(doc, dict) else None
        found = False
        try:
            ss, sd = conn.request("POST", "/api/search/embedding",
                                  {"embedding": key_vector(key), "limit": 3,
                                   "filters": {"model": MODEL}})
            found = ss == 200 and key in [r["info_hash"] for r in sd.get("results", [])]
        except OSError:
            pass
        out[key] = {"status": s, "value": value, "found_by_search": found}
    with open(args.out, "w") as f:
        json.dump(out, f)
    print("done", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["run", "final"])
    ap.add_argument("--router", required=True)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--keys", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", required=True)
    ap.add_argument("--keys-file")
    args = ap.parse_args()
    socket.setdefaulttimeout(HTTP_TIMEOUT)
    (run if args.mode == "run" else final)(args)


if __name__ == "__main__":
    sys.exit(main())
