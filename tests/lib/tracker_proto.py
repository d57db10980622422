"""BitTorrent tracker protocol pieces shared by the HTTP and UDP tests.

Announce and scrape query strings (every reserved byte percent-encoded, as clients send
them), random info-hashes and peer ids, compact peer lists (BEP 23 for IPv4, BEP 7 for
IPv6) and the bencoded failure reply.
"""
import os
import random
import socket
import struct
import urllib.parse

from bencode import bencode


def q(b):
    """Percent-encodes bytes, every reserved byte escaped (as clients do)."""
    return urllib.parse.quote_from_bytes(b, safe="")


def announce_target(info_hash, peer_id, port, **params):
    """/announce?info_hash=..&peer_id=..&port=.. then params in the order given; a None
    value leaves its parameter out, bytes are percent-encoded."""
    parts = [f"info_hash={q(info_hash)}", f"peer_id={q(peer_id)}", f"port={port}"]
    for k, v in params.items():
        if v is None:
            continue
        parts.append(f"{k}={q(v) if isinstance(v, bytes) else v}")
    return "/announce?" + "&".join(parts)


def scrape_target(hashes):
    return "/scrape?" + "&".join(f"info_hash={q(h)}" for h in hashes)


def failure_bytes(reason):
    """The exact reply to a refused announce or scrape."""
    return bencode({"failure reason": reason})


def rand_hash(rng=None):
    """20 random bytes (an info-hash): from rng (a random.Random) when given, so that a
    seeded test draws the same hashes each run, else from os.urandom."""
    if rng is None:
        return os.urandom(20)
    return bytes(rng.getrandbits(8) for _ in range(20))


def rand_hex(rng, n=40):
    """n random lower-case hex digits from rng (40: a v1 info-hash, 64: a v2 one)."""
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def peer_id(n=None):
    """A 20-byte peer id "-ST0001-" + 12 digits: n's, or random ones."""
    tail = f"{random.getrandbits(48):012d}" if n is None else f"{n:012d}"
    return ("-ST0001-" + tail[-12:]).encode()


def compact4(ip, port):
    return socket.inet_pton(socket.AF_INET, ip) + struct.pack(">H", port)


def compact6(ip, port):
    return socket.inet_pton(socket.AF_INET6, ip) + struct.pack(">H", port)


def split_compact(blob, size):
    """A compact peer list cut into its entries (6 bytes for IPv4, 18 for IPv6)."""
    if len(blob) % size:
        raise AssertionError(f"compact peers of {len(blob)} bytes, not a multiple of {size}")
    return [blob[i:i + size] for i in range(0, len(blob), size)]


def ports_of(blob, size=6):
    """The ports of a compact peer list, sorted."""
    return sorted(struct.unpack(">H", p[-2:])[0] for p in split_compact(blob, size))
