#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_ws (tests/fuzz/fuzz_ws/seeds/).

    python3 tests/fuzz/fuzz_ws/gen_seeds.py

Each seed is what tests/fuzz/fuzz_ws.c takes: one byte choosing the chunk size (its low
six bits: (b % 64) * 37 + 1 bytes a write) and whether the socket peer is a trusted proxy
(bit 6), then the bytes of one client connection: an opening handshake, then client
frames, every one masked as RFC 6455 5.3 requires. Most use the all-zero masking key (the
mask bit set, the payload unchanged), so that what the fuzzer mutates or inserts from the
dictionary lands in the JSON as it is; the browser-like seeds use a random-looking key.
The output is fixed: rerunning the script rewrites the same files.
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
SEEDS = os.path.join(HERE, "seeds")

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 1.3's sample nonce
ZERO = b"\0\0\0\0"
BROWSER = bytes([0x37, 0xFA, 0x21, 0x3D])  # RFC 6455 5.7's sample key

TEXT, BINARY, CONT, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


def handshake(path="/announce", method="GET", version="13", key=KEY, extra=(), upgrade="websocket",
              connection="Upgrade"):
    lines = [f"{method} {path} HTTP/1.1", "Host: tracker.example:6882"]
    if upgrade is not None:
        lines.append(f"Upgrade: {upgrade}")
    if connection is not None:
        lines.append(f"Connection: {connection}")
    if key is not None:
        lines.append(f"Sec-WebSocket-Key: {key}")
    if version is not None:
        lines.append(f"Sec-WebSocket-Version: {version}")
    lines.extend(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def frame(opcode, payload, fin=True, mask=ZERO, length=None, rsv=0):
    """A client frame; `length` overrides the declared payload length (bytes sent stay)."""
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    if n < 126 and length is None:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    if mask is None:  # unmasked: a protocol error from a client
        return bytes([head[0], head[1] & 0x7F]) + head[2:] + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def close_payload(code, reason=b""):
    return struct.pack(">H", code) + reason


def binstr(b):
    """A WebTorrent binary string: one code point per byte."""
    return "".join(chr(x) for x in b)


def msg(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


# 20-byte ids with bytes >= 0x80 and a 0x00, as real random ids have.
INFO_HASH = bytes([0x12, 0x34, 0x00, 0x80, 0xFF, 0xC3, 0xA9, 0x7F, 0x01, 0xFE,
                   0x90, 0x00, 0x41, 0x42, 0xE2, 0x82, 0xAC, 0x10, 0x20, 0x99])
PEER_ID = b"-WW0208-" + bytes([0x00, 0x85, 0xA0, 0xFF, 0x0A, 0x22, 0x5C, 0xC0, 0x7E, 0x00, 0x81, 0x3F])
OTHER_PEER = b"-WW0208-" + bytes(range(0xF0, 0xFC))
OFFER_IDS = [bytes([0x00] + list(range(0x80, 0x93))), bytes(range(0xEC, 0x100))]
SDP = ("v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
       "a=group:BUNDLE 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"
       "c=IN IP4 0.0.0.0\r\na=ice-ufrag:Zq3x\r\na=ice-pwd:0123456789abcdefghijkl\r\n"
       "a=fingerprint:sha-256 AB:CD:EF\r\na=setup:actpass\r\na=mid:0\r\n"
       "a=sctp-port:5000\r\na=max-message-size:262144\r\n")

ANNOUNCE = msg({
    "action": "announce", "info_hash": binstr(INFO_HASH), "peer_id": binstr(PEER_ID),
    "numwant": 2, "uploaded": 0, "downloaded": 0, "left": 1048576, "event": "started",
    "offers": [{"offer": {"type": "offer", "sdp": SDP}, "offer_id": binstr(OFFER_IDS[0])},
               {"offer": {"type": "offer", "sdp": "v=0\r\n"}, "offer_id": binstr(OFFER_IDS[1])}],
})
ANSWER = msg({
    "action": "announce", "info_hash": binstr(INFO_HASH), "peer_id": binstr(PEER_ID),
    "to_peer_id": binstr(OTHER_PEER), "offer_id": binstr(OFFER_IDS[0]),
    "answer": {"type": "answer", "sdp": SDP.replace("actpass", "active")},
})
UPDATE = msg({"action": "announce", "info_hash": binstr(INFO_HASH), "peer_id": binstr(PEER_ID),
              "left": "0", "event": "completed"})
STOPPED = msg({"action": "announce", "info_hash": binstr(INFO_HASH), "peer_id": binstr(PEER_ID),
               "left": 0, "event": "stopped", "numwant": 0})
SCRAPE_ARRAY = msg({"action": "scrape",
                    "info_hash": [binstr(INFO_HASH), binstr(bytes(20)), binstr(bytes(range(0x80, 0x94)))]})
SCRAPE_ONE = msg({"action": "scrape", "info_hash": binstr(INFO_HASH)})

HS = handshake()
BYE = frame(CLOSE, close_payload(1000))

SEED_FILES = {
    # A browser: extra headers, a real masking key, two offers, then leaves.
    "announce_offers": b"\x3f" + handshake(
        path="/announce", connection="keep-alive, Upgrade",
        extra=("Origin: https://webtorrent.example", "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
               "User-Agent: Mozilla/5.0")) + frame(TEXT, ANNOUNCE, mask=BROWSER) + frame(CLOSE, close_payload(1001), mask=BROWSER),
    "answer": b"\x3f" + HS + frame(TEXT, ANSWER) + frame(TEXT, UPDATE) + BYE,
    "scrape_array": b"\x3f" + HS + frame(TEXT, SCRAPE_ARRAY) + frame(BINARY, SCRAPE_ONE) + BYE,
    "invalid_json": b"\x3f" + HS + frame(TEXT, b'{"action":"announce","info_hash":') + frame(TEXT, b"42")
    + frame(TEXT, b'{"action":"announce","info_hash":"\\u0100","peer_id":""}')
    + frame(TEXT, b'{"action":"announce","action":"scrape"}') + frame(TEXT, b'{"action":"fly"}') + BYE,
    # One scrape in three fragments with a ping between them, then a fragmented announce.
    "fragmented": b"\x3f" + HS + frame(TEXT, SCRAPE_ONE[:10], fin=False) + frame(PING, b"mid")
    + frame(CONT, SCRAPE_ONE[10:30], fin=False) + frame(CONT, SCRAPE_ONE[30:])
    + frame(TEXT, STOPPED[:1], fin=False) + frame(CONT, STOPPED[1:], fin=True) + BYE,
    "ping": b"\x3f" + HS + frame(PING, b"are you there") + frame(PONG, b"unasked") + frame(PING, b"")
    + frame(TEXT, STOPPED) + BYE,
    # The client closes first, then keeps talking: what follows its close is ignored.
    "close": b"\x3f" + HS + frame(CLOSE, close_payload(1000, b"done")) + frame(TEXT, SCRAPE_ONE),
    "close_then_eof": b"\x3f" + HS + frame(TEXT, SCRAPE_ONE),
    # A header declaring 2^63 - 1 bytes: over the message limit, closed with 1009.
    "oversized_header": b"\x3f" + HS + frame(TEXT, b"{}", length=(1 << 63) - 1),
    "oversized_msb": b"\x3f" + HS + frame(BINARY, b"", length=(1 << 64) - 1),
    # Fragments each small whose sum passes the 1024-byte limit the harness sets.
    "oversized_fragments": b"\x3f" + HS + frame(TEXT, b"[" + b" " * 600, fin=False)
    + frame(CONT, b" " * 600, fin=False) + frame(CONT, b"]"),
    # Protocol errors: an unmasked client frame, a non-minimal length, a reserved bit, a
    # continuation with nothing to continue, a fragmented ping.
    "unmasked": b"\x3f" + HS + frame(TEXT, SCRAPE_ONE, mask=None),
    "nonminimal_length": b"\x3f" + HS + frame(TEXT, b"{}", length=2) + frame(TEXT, SCRAPE_ONE),
    "reserved_bit": b"\x3f" + HS + frame(TEXT, SCRAPE_ONE, rsv=4),
    "stray_continuation": b"\x3f" + HS + frame(CONT, SCRAPE_ONE),
    "fragmented_ping": b"\x3f" + HS + frame(PING, b"x", fin=False),
    # Five messages: the server closes after the fourth; the fifth comes after its close.
    "many_messages": b"\x3f" + HS + frame(TEXT, SCRAPE_ONE) + frame(TEXT, UPDATE) + frame(TEXT, b"null")
    + frame(TEXT, SCRAPE_ARRAY) + frame(TEXT, ANNOUNCE) + BYE,
    # Refused handshakes.
    "bad_version": b"\x3f" + handshake(version="8") + frame(TEXT, SCRAPE_ONE),
    "missing_key": b"\x3f" + handshake(key=None),
    "bad_key": b"\x3f" + handshake(key="not-base64-at-all-!!!!=="),
    "post": b"\x3f" + handshake(method="POST", extra=("Content-Length: 2",)) + b"{}",
    "not_found": b"\x3f" + handshake(path="/scrape?info_hash=x"),
    "no_upgrade": b"\x3f" + handshake(upgrade=None, connection="keep-alive"),
    "root_path": b"\x3f" + handshake(path="/?x=1") + frame(TEXT, STOPPED) + BYE,
    "garbage": b"\x3f" + b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    # Behind a trusted proxy (bit 6): the client X-Forwarded-For names is counted.
    "xff_proxy": b"\x7f" + handshake(extra=("X-Forwarded-For: 198.51.100.1, 203.0.113.9",
                                            "X-Forwarded-For: 2001:db8::1")) + frame(TEXT, SCRAPE_ONE) + BYE,
    # A handshake and frames split into small writes (chunk: a few bytes, then 38).
    "handshake_split": b"\x00" + HS + frame(TEXT, STOPPED) + frame(PING, b"p") + BYE,
    "handshake_split_38": b"\x01" + handshake(connection="Upgrade, keep-alive") + frame(TEXT, ANSWER) + BYE,
}


def main():
    os.makedirs(SEEDS, exist_ok=True)
    for name, data in SEED_FILES.items():
        with open(os.path.join(SEEDS, name), "wb") as f:
            f.write(data)
    print(f"{len(SEED_FILES)} seeds in {SEEDS}")


if __name__ == "__main__":
    main()
