"""A small, strict bencode decoder (BEP 3) for the interop tests.

Written here on purpose, so the tests parse tracker replies with code that shares nothing
with the tracker under test. Byte strings stay `bytes` (dictionary keys too).
"""


class BencodeError(ValueError):
    pass


def decode(data):
    """Decodes one complete bencoded value; trailing bytes are an error."""
    if not isinstance(data, (bytes, bytearray)):
        raise BencodeError("bencode input must be bytes")
    value, end = _decode(bytes(data), 0, 0)
    if end != len(data):
        raise BencodeError(f"{len(data) - end} trailing byte(s) after the value")
    return value


def _decode(buf, i, depth):
    if depth > 64:
        raise BencodeError("nesting too deep")
    if i >= len(buf):
        raise BencodeError("unexpected end of input")
    c = buf[i:i + 1]
    if c == b"i":
        end = buf.find(b"e", i + 1)
        if end < 0:
            raise BencodeError("unterminated integer")
        text = buf[i + 1:end]
        if not text or text in (b"-", b"-0") or (text[:1] == b"0" and len(text) > 1) \
                or text.startswith(b"-0") or not text.lstrip(b"-").isdigit():
            raise BencodeError(f"bad integer {text!r} at {i}")
        return int(text), end + 1
    if c == b"l":
        i += 1
        items = []
        while True:
            if i >= len(buf):
                raise BencodeError("unterminated list")
            if buf[i:i + 1] == b"e":
                return items, i + 1
            item, i = _decode(buf, i, depth + 1)
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
            key, i = _decode(buf, i, depth + 1)
            if last is not None and key <= last:
                raise BencodeError(f"dictionary keys not sorted/unique at {key!r}")
            last = key
            out[key], i = _decode(buf, i, depth + 1)
    if c.isdigit():
        colon = buf.find(b":", i)
        if colon < 0:
            raise BencodeError("string length without ':'")
        text = buf[i:colon]
        if not text.isdigit() or (text[:1] == b"0" and len(text) > 1):
            raise BencodeError(f"bad string length {text!r} at {i}")
        n = int(text)
        start = colon + 1
        if start + n > len(buf):
            raise BencodeError("string runs past the end of input")
        return buf[start:start + n], start + n
    raise BencodeError(f"unexpected byte {c!r} at {i}")
