"""HTTP clients for the tests, one for each kind of need:

- HttpConn and http_get: raw HTTP/1.1 on one socket. Requests are written as given and
  responses read off the socket as they arrive, so keep-alive, pipelining, closes and the
  exact bytes are seen as they are (the HTTP tracker tests). A response must carry
  Content-Length.
- http_request and KeepAlive: http.client with JSON bodies, returning (status, body), for
  tests and benchmarks that care about content, not wire form. KeepAlive reconnects after
  any error, for request loops that run while members fail.
- raw_http: sends bytes that no client library would send and reads the whole reply, with
  or without Content-Length (malformed JSON API requests).

Standard library only; shares no code with the tracker under test.
"""
import http.client
import json
import socket
import time

DEFAULT_TIMEOUT = 10.0


# ---------------------------------------------------------------------------------------
# raw HTTP/1.1


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
        try:
            if source:
                self.sock.bind((source, 0))
            self.sock.connect((host, port))
        except OSError:
            self.sock.close()  # refused or unreachable: nothing left open
            raise
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
    """One raw request on a fresh connection: an HttpResponse."""
    with HttpConn(port, host=host, timeout=timeout, source=source) as c:
        return c.request(target, method=method, headers=headers, body=body)


# ---------------------------------------------------------------------------------------
# http.client, JSON bodies


def _json_body(body):
    if body is None:
        return None, {}
    return json.dumps(body).encode(), {"Content-Type": "application/json"}


def http_request(host, port, method, path, body=None, timeout=DEFAULT_TIMEOUT, headers=None):
    """One request on a fresh connection, body (if any) sent as JSON: (status, body bytes)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        data, json_headers = _json_body(body)
        hdrs = dict(headers or {}, **json_headers)
        conn.request(method, path, body=data, headers=hdrs)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


class KeepAlive:
    """A keep-alive HTTP connection that reconnects after any error (for load loops)."""

    def __init__(self, host, port, timeout=DEFAULT_TIMEOUT):
        self.host, self.port, self.timeout = host, port, timeout
        self.conn = None

    def request(self, method, path, body=None):
        """(status, body bytes); body (if any) is sent as JSON."""
        data, hdrs = _json_body(body)
        return self._exchange(method, path, data, hdrs)

    def request_raw(self, method, path, data):
        """(status, body bytes); `data` (bytes, possibly empty) is sent as it is, labelled
        JSON: for hostile bodies."""
        hdrs = {"Content-Type": "application/json"} if data else {}
        return self._exchange(method, path, data or None, hdrs)

    def _exchange(self, method, path, data, hdrs):
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            self.conn.request(method, path, body=data, headers=hdrs)
            r = self.conn.getresponse()
            out = r.status, r.read()
            if r.will_close:
                self.close()
            return out
        except Exception:
            self.close()
            raise

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


# ---------------------------------------------------------------------------------------
# raw bytes in, whole reply out


def _parse_head(head):
    lines = head.split(b"\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers[k.strip().lower().decode()] = v.strip().decode()
    return int(lines[0].split()[1]), headers


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
                status, headers = _parse_head(head)
                want = int(headers.get("content-length", "-1"))
                if want >= 0 and len(rest) >= want:
                    return status, headers, rest[:want]
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
        status, headers = _parse_head(head)
        return status, headers, rest
