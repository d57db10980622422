"""Bencode (BEP 3) for the tests: one decoder and the canonical encoder.

Written here on purpose, so the tests parse the tracker's replies with code that shares
nothing with the tracker under test. Byte strings stay `bytes`, dictionary keys too.

bdecode() is strict by default: the value must be canonical (dictionary keys sorted and
unique, no leading zeros or "-0" in integers and string lengths), so a reply that decodes
is canonical BEP 3. strict=False accepts any well-formed value (keys in any order, a
repeated key's last value wins), for tests that check content, not form. Either way
trailing bytes, strings running past the end and nesting deeper than MAX_DEPTH are errors.
"""

MAX_DEPTH = 64


class BencodeError(ValueError):
    pass


def bdecode(data, strict=True):
    """Decodes one complete bencoded value."""
    if not isinstance(data, (bytes, bytearray)):
        raise BencodeError("bencode input must be bytes")
    value, end = _decode(bytes(data), 0, 0, strict)
    if end != len(data):
        raise BencodeError(f"{len(data) - end} trailing byte(s) after the value")
    return value


def _canonical_int(text):
    digits = text[1:] if text.startswith(b"-") else text
    return digits.isdigit() and not (digits.startswith(b"0") and len(digits) > 1) \
        and text != b"-0"


def _decode(buf, i, depth, strict):
    if depth > MAX_DEPTH:
        raise BencodeError("nesting too deep")
    if i >= len(buf):
        raise BencodeError("unexpected end of input")
    c = buf[i:i + 1]
    if c == b"i":
        end = buf.find(b"e", i + 1)
        if end < 0:
            raise BencodeError("unterminated integer")
        text = buf[i + 1:end]
        if strict and not _canonical_int(text):
            raise BencodeError(f"bad integer {text!r} at {i}")
        try:
            return int(text), end + 1
        except ValueError:
            raise BencodeError(f"bad integer {text!r} at {i}") from None
    if c == b"l":
        i += 1
        items = []
        while True:
            if i >= len(buf):
                raise BencodeError("unterminated list")
            if buf[i:i + 1] == b"e":
                return items, i + 1
            item, i = _decode(buf, i, depth + 1, strict)
            items.append(item)
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
                raise BencodeError(f"dictionary key at {i} is not a string")
            key, i = _decode(buf, i, depth + 1, strict)
            if strict and last is not None and key <= last:
                raise BencodeError(f"dictionary key {key!r} after {last!r}: "
                                   "not sorted or not unique")
            last = key
            out[key], i = _decode(buf, i, depth + 1, strict)
    if c.isdigit():
        colon = buf.find(b":", i)
        if colon < 0:
            raise BencodeError("string length without ':'")
        text = buf[i:colon]
        if not text.isdigit() or (strict and text.startswith(b"0") and len(text) > 1):
            raise BencodeError(f"bad string length {text!r} at {i}")
        n = int(text)
        start = colon + 1
        if start + n > len(buf):
            raise BencodeError("string runs past the end of input")
        return buf[start:start + n], start + n
    raise BencodeError(f"unexpected byte {c!r} at {i}")


def bencode(v):
    """Canonical encoding (sorted keys); used to build expected replies. str is encoded
    as UTF-8; booleans are refused (bencode has none)."""
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
