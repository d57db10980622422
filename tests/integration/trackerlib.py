"""Helpers for the integration tests: a strict bencode codec, a raw HTTP/1.1 client that
reads responses off a socket byte by byte (so keep-alive, pipelining and closes are seen as
they are), a BEP 15 UDP client, and small utilities (temporary config files, polling with
a deadline). Standard library only; shares no code with the tracker under test.
"""
import os
import random
import socket
import struct
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lib"))

from synapse_proc import TrackerProcess, binary_path, free_port  # noqa: E402,F401

# ---------------------------------------------------------------------------------------
# bencode


class BencodeError(ValueError):
    pass


def bdecode(data):
    """Decodes one complete value; trailing bytes, unsorted keys and non-canonical integers
    are errors, so a reply that decodes is canonical BEP 3."""
    if not isinstance(data, (bytes, bytearray)):
        raise BencodeError("bencode input must be bytes")
    value, end = _bdecode(bytes(data), 0, 0)
    if end != len(data):
        raise BencodeError(f"{len(data) - end} trailing byte(s)")
    return value


def _bdecode(buf, i, depth):
    if depth > 32:
        raise BencodeError("nesting too deep")
    if i >= len(buf):
        raise BencodeError("unexpected end")
    c = buf[i:i + 1]
    if c == b"i":
        end = buf.find(b"e", i)
        if end < 0:
            raise BencodeError("unterminated integer")
        text = buf[i + 1:end]
        digits = text[1:] if text.startswith(b"-") else text
        if not digits.isdigit() or (digits.startswith(b"0") and len(digits) > 1) \
                or text == b"-0":
            raise BencodeError(f"bad integer {text!r}")
        return int(text), end + 1
    if c == b"l":
        i += 1
        out = []
        while True:
            if i >= len(buf):
                raise BencodeError("unterminated list")
            if buf[i:i + 1] == b"e":
                return out, i + 1
            v, i = _bdecode(buf, i, depth + 1)
            out.append(v)
    if c == b"d":
        i += 1
        out = {}
        last = None
        while True:
            if i >= len(buf):
                raise BencodeError("unterminated dictionary")
            if buf[i:i + 1] == b"e":
                return out, i + 1
            if not buf[i:i + 1].isdigit():
                raise BencodeError("dictionary key is not a string")
            k, i = _bdecode(buf, i, depth + 1)
            if last is not None and k <= last:
                raise BencodeError(f"keys not sorted or not unique at {k!r}")
            last = k
            out[k], i = _bdecode(buf, i, depth + 1)
    if c.isdigit():
        colon = buf.find(b":", i)
        if colon < 0:
            raise BencodeError("string without ':'")
        text = buf[i:colon]
        if not text.isdigit() or (text.startswith(b"0") and len(text) > 1):
            raise BencodeError(f"bad string length {text!r}")
        n = int(text)
        if colon + 1 + n > len(buf):
            raise BencodeError("string runs past the end")
        return buf[colon + 1:colon + 1 + n], colon + 1 + n
    raise BencodeError(f"unexpected byte {c!r} at {i}")


def bencode(v):
    """Canonical encoding (sorted keys); used to build expected replies."""
    if isinstance(v, bool):
        raise TypeError("no booleans in bencode")
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, str):
        v = v.encode()
    if isinstance(v, (bytes, bytearray)):
        return b"%d:" % len(v) + bytes(v)
    if isinstance(v, list):
        return b"l" + b"".join(bencode(x) for x in v) + b"e"
    if isinstance(v, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, x) for k, x in v.items())
        return b"d" + b"".join(bencode(k) + bencode(x) for k, x in items) + b"e"
    raise TypeError(f"cannot bencode {type(v)}")


def failure_bytes(reason):
    return bencode({"failure reason": reason})


# ---------------------------------------------------------------------------------------
# HTTP


class HttpResponse:
    def __init__(self, version, status, reason, headers, body):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers  # lower-case name -> value (last one wins)
        self.body = body

    def header(self, name):
        return self.headers.get(name.lower())

    def __repr__(self):
        return f"<HTTP {self.status} {self.reason} {self.headers} {self.body[:200]!r}>"


class HttpConn:
    """One TCP connection; requests are sent as raw bytes, responses read one at a time."""

    def __init__(self, port, host="127.0.0.1", timeout=5.0, source=None):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        if source:
            self.sock.bind((source, 0))
        self.sock.connect((host, port))
        self.buf = b""
        self.host = host
        self.port = port

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def request_bytes(self, target, method="GET", headers=(), body=b"", version="HTTP/1.1"):
        lines = [f"{method} {target} {version}", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in headers]
        if body:
            lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    def request(self, target, **kw):
        self.send(self.request_bytes(target, **kw))
        return self.read_response()

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed by the server")
        self.buf += chunk

    def read_response(self):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        version, status, reason = (lines[0].split(" ", 2) + [""])[:3]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" not in headers:
            raise AssertionError(f"response without Content-Length: {lines}")
        n = int(headers["content-length"])
        while len(self.buf) < n:
            self._fill()
        body, self.buf = self.buf[:n], self.buf[n:]
        return HttpResponse(version, int(status), reason, headers, body)

    def closed_by_peer(self, timeout=3.0):
        """True when the server closes the connection (EOF or reset) within timeout,
        with nothing more sent."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return not self.buf
                self.buf += chunk
        except ConnectionResetError:
            return not self.buf
        except socket.timeout:
            return False

    def no_data_within(self, timeout):
        """True when nothing arrives (and the connection stays open) for timeout seconds."""
        self.sock.settimeout(timeout)
        try:
            self.sock.recv(1, socket.MSG_PEEK)
            return False
        except socket.timeout:
            return True


def http_get(port, target, host="127.0.0.1", headers=(), source=None, timeout=5.0,
             method="GET", body=b""):
    """One request on a fresh connection."""
    with HttpConn(port, host=host, timeout=timeout, source=source) as c:
        return c.request(target, method=method, headers=headers, body=body)


def q(b):
    """Percent-encodes bytes, every reserved byte escaped (as clients do)."""
    return urllib.parse.quote_from_bytes(b, safe="")


def announce_target(info_hash, peer_id, port, **params):
    parts = [f"info_hash={q(info_hash)}", f"peer_id={q(peer_id)}", f"port={port}"]
    for k, v in params.items():
        if v is None:
            continue
        parts.append(f"{k}={q(v) if isinstance(v, bytes) else v}")
    return "/announce?" + "&".join(parts)


def scrape_target(hashes):
    return "/scrape?" + "&".join(f"info_hash={q(h)}" for h in hashes)


def rand_hash():
    return os.urandom(20)


def peer_id(n=None):
    tail = f"{random.getrandbits(48):012d}" if n is None else f"{n:012d}"
    return ("-ST0001-" + tail[-12:]).encode()


def compact4(ip, port):
    return socket.inet_pton(socket.AF_INET, ip) + struct.pack(">H", port)


def compact6(ip, port):
    return socket.inet_pton(socket.AF_INET6, ip) + struct.pack(">H", port)


def split_compact(blob, size):
    assert len(blob) % size == 0, f"compact peers of {len(blob)} bytes, not a multiple of {size}"
    return [blob[i:i + size] for i in range(0, len(blob), size)]


def ports_of(blob, size=6):
    return sorted(struct.unpack(">H", p[-2:])[0] for p in split_compact(blob, size))


# ---------------------------------------------------------------------------------------
# UDP (BEP 15)

PROTOCOL_ID = 0x41727101980
CONNECT, ANNOUNCE, SCRAPE, ERROR = 0, 1, 2, 3


class UdpError(Exception):
    def __init__(self, tid, message):
        super().__init__(message)
        self.tid = tid
        self.message = message


class UdpClient:
    def __init__(self, port, host="127.0.0.1", source=None, timeout=3.0):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.settimeout(timeout)
        if source:
            self.sock.bind((source, 0))
        self.addr = (host, port)
        self.timeout = timeout

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, pkt):
        self.sock.sendto(pkt, self.addr)

    def recv(self, timeout=None):
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        data, src = self.sock.recvfrom(65536)
        return data

    def roundtrip(self, pkt):
        self.send(pkt)
        return self.recv()

    def silent(self, timeout=0.5):
        """True when nothing arrives within timeout."""
        try:
            self.recv(timeout)
            return False
        except socket.timeout:
            return True

    @staticmethod
    def tid():
        return random.getrandbits(32)

    def connect(self):
        t = self.tid()
        reply = self.roundtrip(struct.pack(">QII", PROTOCOL_ID, CONNECT, t))
        action, rt = struct.unpack(">II", reply[:8])
        if action == ERROR:
            raise UdpError(rt, reply[8:].decode(errors="replace"))
        assert len(reply) == 16, f"connect reply of {len(reply)} bytes"
        assert action == CONNECT and rt == t, (action, rt, t)
        return struct.unpack(">Q", reply[8:16])[0]

    @staticmethod
    def announce_packet(conn_id, tid, info_hash, peer_id, port, event=0, left=1, downloaded=0,
                        uploaded=0, numwant=-1, key=0, ip=0, extra=b""):
        return struct.pack(">QII20s20sQQQIIIiH", conn_id, ANNOUNCE, tid, info_hash, peer_id,
                           downloaded, left, uploaded, event, ip, key, numwant, port) + extra

    def announce(self, conn_id, info_hash, peer_id, port, peer_size=6, **kw):
        """Returns (interval, leechers, seeders, [peer bytes]) or raises UdpError."""
        t = self.tid()
        reply = self.roundtrip(self.announce_packet(conn_id, t, info_hash, peer_id, port, **kw))
        return self.parse_announce(reply, t, peer_size)

    @staticmethod
    def parse_announce(reply, t, peer_size=6):
        action, rt = struct.unpack(">II", reply[:8])
        if action == ERROR:
            raise UdpError(rt, reply[8:].decode(errors="replace"))
        assert action == ANNOUNCE and rt == t, (action, rt, t)
        assert len(reply) >= 20 and (len(reply) - 20) % peer_size == 0, len(reply)
        interval, leechers, seeders = struct.unpack(">III", reply[8:20])
        return interval, leechers, seeders, split_compact(reply[20:], peer_size)

    def scrape(self, conn_id, hashes):
        """Returns [(seeders, completed, leechers)] or raises UdpError."""
        t = self.tid()
        reply = self.roundtrip(struct.pack(">QII", conn_id, SCRAPE, t) + b"".join(hashes))
        action, rt = struct.unpack(">II", reply[:8])
        if action == ERROR:
            raise UdpError(rt, reply[8:].decode(errors="replace"))
        assert action == SCRAPE and rt == t, (action, rt, t)
        assert len(reply) == 8 + 12 * len(hashes), len(reply)
        return [struct.unpack(">III", reply[8 + 12 * i:20 + 12 * i]) for i in range(len(hashes))]


# ---------------------------------------------------------------------------------------
# misc


def free_port_pair():
    """A free TCP port P whose P+1 is free too: a node listens for routers on its cluster
    address P and for its peers (gossip) on P+1."""
    for _ in range(50):
        p = free_port()
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", p + 1))
            return p
        except OSError:
            continue
    raise RuntimeError("no free port pair")


def ipv6_loopback_available():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::", 0))
        return True
    except OSError:
        return False


def loopback_alias_available(ip="127.0.0.2"):
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((ip, 0))
        return True
    except OSError:
        return False


class ConfigFile:
    """A temporary YAML config file, removed on exit."""

    def __init__(self, text):
        fd, self.path = tempfile.mkstemp(prefix="synapse-test-", suffix=".yaml")
        with os.fdopen(fd, "w") as f:
            f.write(text)

    def __enter__(self):
        return self.path

    def __exit__(self, *exc):
        self.remove()

    def remove(self):
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def shutdown(tracker):
    """Stops a TrackerProcess (SIGTERM, then SIGKILL after a bound), removes its data
    directory and closes its stdout pipe. Returns the exit status."""
    rc = tracker.stop()
    tracker.__exit__(None, None, None)
    if tracker.proc and tracker.proc.stdout:
        tracker.proc.stdout.close()
    return rc


def poll(fn, timeout, interval=0.05, what="condition"):
    """Calls fn until it returns a truthy value; returns it, or fails after timeout.
    Polling is for conditions with no event to wait on (another process's readiness)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            v = fn()
            if v:
                return v
        except OSError as e:  # connection refused while a process comes up, and the like
            last = e
        time.sleep(interval)
    raise AssertionError(f"{what} not reached within {timeout}s (last error: {last})")
