"""A BEP 15 (UDP tracker protocol) client for the tests, over IPv4 or IPv6.

Two layers on one socket:
- raw: send(), recv(), roundtrip() and silent() show exactly what the tracker sends (or
  that it sends nothing), for tests of packet layouts and of malformed requests;
- exchanges: connect(), announce() and scrape() each send one request and wait for the
  reply carrying its transaction id. Datagrams with another id (a late answer to an
  earlier request) are skipped; the request is sent up to `tries` times, each try waiting
  up to `timeout` seconds. An error packet raises UdpError, a malformed reply
  AssertionError, and no reply at all TimeoutError.
"""
import random
import socket
import struct
import time

from tracker_proto import split_compact

PROTOCOL_ID = 0x41727101980
CONNECT, ANNOUNCE, SCRAPE, ERROR = 0, 1, 2, 3


class UdpError(Exception):
    """The tracker answered with an error packet (action 3)."""

    def __init__(self, tid, message):
        super().__init__(message)
        self.tid = tid
        self.message = message


class UdpClient:
    def __init__(self, port, host="127.0.0.1", source=None, timeout=3.0, tries=1):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.settimeout(timeout)
        if source:
            self.sock.bind((source, 0))
        self.addr = (host, port)
        self.timeout = timeout
        self.tries = tries

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- raw datagrams

    def send(self, pkt):
        self.sock.sendto(pkt, self.addr)

    def recv(self, timeout=None):
        """The next datagram, whatever it is; socket.timeout if none comes in time."""
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

    # ---- exchanges

    @staticmethod
    def tid():
        return random.getrandbits(32)

    def exchange(self, pkt, tid):
        """Sends pkt and returns (action, reply) for the first reply carrying tid."""
        for _ in range(self.tries):
            self.send(pkt)
            deadline = time.monotonic() + self.timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    data = self.recv(left)
                except socket.timeout:
                    break
                if len(data) < 8 or struct.unpack_from(">I", data, 4)[0] != tid:
                    continue
                action = struct.unpack_from(">I", data, 0)[0]
                if action == ERROR:
                    raise UdpError(tid, data[8:].decode(errors="replace"))
                return action, data
        raise TimeoutError(f"no UDP tracker reply from {self.addr} "
                           f"({self.tries} x {self.timeout}s)")

    def connect(self):
        """A connection id."""
        t = self.tid()
        action, reply = self.exchange(struct.pack(">QII", PROTOCOL_ID, CONNECT, t), t)
        if action != CONNECT or len(reply) != 16:
            raise AssertionError(f"connect answered action {action} in {len(reply)} bytes")
        return struct.unpack(">Q", reply[8:16])[0]

    @staticmethod
    def announce_packet(conn_id, tid, info_hash, peer_id, port, event=0, left=1, downloaded=0,
                        uploaded=0, numwant=-1, key=0, ip=0, extra=b""):
        """An announce request; event 0 none, 1 completed, 2 started, 3 stopped."""
        return struct.pack(">QII20s20sQQQIIIiH", conn_id, ANNOUNCE, tid, info_hash, peer_id,
                           downloaded, left, uploaded, event, ip, key, numwant, port) + extra

    def announce(self, conn_id, info_hash, peer_id, port, peer_size=6, **kw):
        """Returns (interval, leechers, seeders, [peer bytes]); peer_size is 6 for IPv4
        peers, 18 for IPv6. kw: announce_packet's fields."""
        t = self.tid()
        action, reply = self.exchange(
            self.announce_packet(conn_id, t, info_hash, peer_id, port, **kw), t)
        if action != ANNOUNCE:
            raise AssertionError(f"announce answered action {action}: {reply[8:]!r}")
        if len(reply) < 20 or (len(reply) - 20) % peer_size:
            raise AssertionError(f"announce reply of {len(reply)} bytes "
                                 f"for peers of {peer_size}")
        interval, leechers, seeders = struct.unpack(">III", reply[8:20])
        return interval, leechers, seeders, split_compact(reply[20:], peer_size)

    def scrape(self, conn_id, hashes):
        """Returns [(seeders, completed, leechers)], one per hash, in request order."""
        t = self.tid()
        action, reply = self.exchange(
            struct.pack(">QII", conn_id, SCRAPE, t) + b"".join(hashes), t)
        if action != SCRAPE:
            raise AssertionError(f"scrape answered action {action}: {reply[8:]!r}")
        if len(reply) != 8 + 12 * len(hashes):
            raise AssertionError(f"scrape reply of {len(reply)} bytes for {len(hashes)} hashes")
        return [struct.unpack(">III", reply[8 + 12 * i:20 + 12 * i]) for i in range(len(hashes))]
