"""WebTorrent's WebSocket tracker protocol for the tests: a raw client on Debian's
python3-websocket (websocket-client), and a runner for the Node.js driver
tests/interop/webtorrent_ws.mjs (npm bittorrent-tracker's Client).

The protocol is JSON text messages. info_hash, peer_id, offer_id and to_peer_id are
"binary strings": JavaScript strings whose char codes are the 20 bytes, so bytes map to
str by latin-1 (b2s) and back (s2b, which refuses a char above U+00FF).

WsConn keeps every message it receives in an inbox; expect() takes the first one that
matches (read before or after the call), so a message that arrives while the test waits
for another one is not lost. Every read has a deadline.
"""
import json
import os
import select
import shutil
import socket
import ssl
import subprocess
import threading
import time

import websocket  # python3-websocket; callers skip (exit 77) where it is missing
from websocket import ABNF

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DRIVER = os.path.join(ROOT, "tests", "interop", "webtorrent_ws.mjs")
NPM_DIR = os.path.join(ROOT, "tests", "interop", "npm")


def b2s(b):
    """bytes -> binary string."""
    return bytes(b).decode("latin-1")


def s2b(s, what="binary string"):
    """binary string -> bytes; AssertionError if it is not one."""
    if not isinstance(s, str):
        raise AssertionError(f"{what}: {s!r} is not a string")
    try:
        return s.encode("latin-1")
    except UnicodeEncodeError:
        raise AssertionError(f"{what}: {s!r} has a char above U+00FF: not a binary string")


class WsClosed(Exception):
    """The server closed the WebSocket: code (None if no close frame) and reason."""

    def __init__(self, code, reason=""):
        super().__init__(f"closed by the server: code {code} {reason!r}")
        self.code = code
        self.reason = reason


def connect(url, timeout=5.0, ca_file=None, source=None, path_check=True):
    """A websocket.WebSocket connected to url (ws:// or wss://). ca_file: the PEM bundle
    trusted for wss:// (hostname checked). source: bind to this local address (ws://
    only). Raises websocket.WebSocketBadStatusException (.status_code) when the server
    refuses the handshake."""
    opts = {"timeout": timeout}
    if url.startswith("wss://"):
        opts["sslopt"] = {"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": ca_file,
                          "check_hostname": True}
    if source:
        if url.startswith("wss://"):
            raise ValueError("source= is for ws:// only")
        hostport = url.split("//", 1)[1].split("/", 1)[0]
        host, _, port = hostport.rpartition(":")
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.bind((source, 0))
            s.connect((host, int(port)))
        except OSError:
            s.close()
            raise
        opts["socket"] = s
    return websocket.create_connection(url, **opts)


class WsConn:
    """One WebSocket to the tracker, speaking the WebTorrent tracker protocol."""

    def __init__(self, url, timeout=5.0, **kw):
        self.url = url
        self.timeout = timeout
        self.ws = connect(url, timeout=timeout, **kw)
        self.inbox = []
        self.closed = None  # WsClosed once the server closed

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.ws.close(timeout=1)
        except (OSError, websocket.WebSocketException):
            pass
        finally:
            self.ws.shutdown()  # the socket goes even when the closing handshake failed

    def peer_certificate(self):
        """The server's certificate (DER) of a wss:// connection."""
        return self.ws.sock.getpeercert(binary_form=True)

    # ---- sending ----
    def send(self, msg, ensure_ascii=False):
        """A message (dict) as JSON text. ensure_ascii=False writes chars U+0080..U+00FF
        as UTF-8, as JavaScript's JSON.stringify does; True writes \\u00XX escapes."""
        self.ws.send(json.dumps(msg, ensure_ascii=ensure_ascii))

    def send_text(self, text):
        self.ws.send(text)

    def announce(self, info_hash, peer_id, left=0, event=None, offers=None, numwant=None,
                 uploaded=0, downloaded=0, ensure_ascii=False, **extra):
        """offers: [(offer_id bytes, offer JSON value)]."""
        m = {"action": "announce", "info_hash": b2s(info_hash), "peer_id": b2s(peer_id),
             "uploaded": uploaded, "downloaded": downloaded, "left": left,
             "numwant": len(offers or ()) if numwant is None else numwant}
        if event:
            m["event"] = event
        if offers is not None:
            m["offers"] = [{"offer": o, "offer_id": b2s(oid)} for oid, o in offers]
        m.update(extra)
        self.send(m, ensure_ascii)

    def answer(self, info_hash, peer_id, to_peer_id, offer_id, answer, ensure_ascii=False):
        self.send({"action": "announce", "info_hash": b2s(info_hash), "peer_id": b2s(peer_id),
                   "to_peer_id": b2s(to_peer_id), "answer": answer,
                   "offer_id": b2s(offer_id)}, ensure_ascii)

    def scrape(self, hashes, ensure_ascii=False):
        """hashes: one info_hash (sent as a string) or a list (sent as an array)."""
        ih = b2s(hashes) if isinstance(hashes, bytes) else [b2s(h) for h in hashes]
        self.send({"action": "scrape", "info_hash": ih}, ensure_ascii)

    # ---- receiving ----
    def _read_one(self, timeout):
        """Reads one message into the inbox; False if none came within timeout."""
        if self.closed:
            raise self.closed
        self.ws.settimeout(max(timeout, 0.001))
        try:
            opcode, frame = self.ws.recv_data_frame(True)
        except (websocket.WebSocketTimeoutException, socket.timeout):
            return False
        except websocket.WebSocketPayloadException as e:
            raise AssertionError(f"the tracker sent a text frame that is not UTF-8: {e}")
        except (websocket.WebSocketConnectionClosedException, ConnectionResetError,
                BrokenPipeError) as e:
            self.closed = WsClosed(None, f"connection ended without a close frame ({e!r})")
            raise self.closed
        data = frame.data
        if opcode == ABNF.OPCODE_CLOSE:
            raw = data
            code = int.from_bytes(raw[:2], "big") if len(raw) >= 2 else None
            self.closed = WsClosed(code, raw[2:].decode("utf-8", "replace"))
            raise self.closed
        if opcode != ABNF.OPCODE_TEXT:
            raise AssertionError(f"the tracker sent a non-text frame (opcode {opcode}): {data!r}")
        try:
            text = data.decode("utf-8")  # strict: a text frame must be UTF-8
        except UnicodeDecodeError as e:
            raise AssertionError(f"the tracker sent a text frame that is not UTF-8: {e}: {data[:200]!r}")
        try:
            msg = json.loads(text)
        except ValueError as e:
            raise AssertionError(f"the tracker sent text that is not JSON: {e}: {text[:300]!r}")
        if not isinstance(msg, dict):
            raise AssertionError(f"the tracker sent JSON that is not an object: {text[:300]!r}")
        self.inbox.append(msg)
        return True

    def expect(self, pred, what, timeout=None):
        """The first message (in the inbox or arriving within timeout) for which pred is
        true, taken out of the inbox. AssertionError with what was received otherwise."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        seen = 0
        while True:
            for i in range(seen, len(self.inbox)):
                if pred(self.inbox[i]):
                    return self.inbox.pop(i)
            seen = len(self.inbox)
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{what}: nothing within {timeout or self.timeout}s; "
                                     f"received meanwhile: {_short(self.inbox)}")
            try:
                self._read_one(left)
            except WsClosed as e:
                raise AssertionError(f"{what}: {e}; received before: {_short(self.inbox)}")

    def quiet_for(self, seconds):
        """Reads for `seconds`; the messages that arrived (left in the inbox too)."""
        before = len(self.inbox)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._read_one(deadline - time.monotonic())
        return self.inbox[before:]

    def announce_reply(self, info_hash, timeout=None):
        """The reply to our announce of info_hash: {"action": "announce", "interval", ...}
        or a failure, whichever comes first (forwarded offers and answers are left)."""
        want = b2s(info_hash)
        return self.expect(lambda m: "failure reason" in m or (
            m.get("action") == "announce" and m.get("info_hash") == want and
            "offer" not in m and "answer" not in m), f"announce reply for {info_hash.hex()}",
            timeout)

    def scrape_reply(self, timeout=None):
        return self.expect(lambda m: "failure reason" in m or m.get("action") == "scrape",
                           "scrape reply", timeout)

    def failure(self, what, timeout=None):
        m = self.expect(lambda m: True, what, timeout)
        if "failure reason" not in m:
            raise AssertionError(f"{what}: expected a failure reason, got {_short([m])}")
        return m

    def scrape_counts(self, info_hash, timeout=None):
        """(complete, incomplete, downloaded) of info_hash from a ws scrape; an entry
        missing from files counts as (0, 0, 0)."""
        self.scrape([info_hash])
        m = self.scrape_reply(timeout)
        if "failure reason" in m:
            raise AssertionError(f"scrape failed: {m}")
        files = m.get("files")
        if not isinstance(files, dict):
            raise AssertionError(f"scrape reply without a files object: {m}")
        e = files.get(b2s(info_hash))
        if e is None:
            return (0, 0, 0)
        return (e.get("complete"), e.get("incomplete"), e.get("downloaded"))

    def close_code(self, timeout=None):
        """Reads until the server closes: the close code (None: no close frame)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"the server did not close within {timeout or self.timeout}s; "
                                     f"received: {_short(self.inbox)}")
            try:
                self._read_one(left)
            except WsClosed as e:
                return e.code


def _short(msgs, n=600):
    text = json.dumps(msgs, ensure_ascii=True)
    return text if len(text) <= n else text[:n] + "..."


# ---------------------------------------------------------------------------------------
# the Node.js driver

def driver_missing():
    """Why the driver cannot run here (a missing tool), or None."""
    if not shutil.which("node"):
        return "node not installed"
    if not os.path.exists(os.path.join(NPM_DIR, "node_modules", "bittorrent-tracker", "client.js")):
        return f"bittorrent-tracker not installed in {NPM_DIR} (npm install --no-audit --no-fund)"
    return None


def _driver_cmd(urls, info_hash=None, expect_interval=None, hold=False):
    cmd = ["node", DRIVER, "--urls", ",".join(urls)]
    if info_hash is not None:
        cmd += ["--info-hash", info_hash.hex()]
    if expect_interval is not None:
        cmd += ["--expect-interval", str(expect_interval)]
    if hold:
        cmd.append("--hold")
    return cmd


def _env(ca_file):
    env = dict(os.environ)
    if ca_file:
        env["NODE_EXTRA_CA_CERTS"] = ca_file
    return env


def _summary(out):
    for line in reversed(out.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    return None


def run_driver(urls, ca_file=None, timeout=90, **kw):
    """Runs the driver to its end: (exit code, summary dict or None, stderr text)."""
    p = subprocess.run(_driver_cmd(urls, **kw), capture_output=True, text=True,
                       timeout=timeout, env=_env(ca_file), cwd=ROOT)
    return p.returncode, _summary(p.stdout), p.stderr


class HeldDriver:
    """The driver with --hold: start() returns its summary once both clients are in the
    swarm (they stay until release())."""

    def __init__(self, urls, ca_file=None, **kw):
        self.cmd = _driver_cmd(urls, hold=True, **kw)
        self.env = _env(ca_file)
        self.proc = None
        self.pump = None
        self.stderr_lines = []

    def start(self, timeout=60):
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=self.env, cwd=ROOT)
        deadline = time.monotonic() + timeout
        buf = {self.proc.stdout.fileno(): b"", self.proc.stderr.fileno(): b""}
        out_fd = self.proc.stdout.fileno()
        while time.monotonic() < deadline:
            fds = [fd for fd in buf if fd is not None]
            r, _, _ = select.select(fds, [], [], max(0.0, deadline - time.monotonic()))
            for fd in r:
                chunk = os.read(fd, 65536)
                if not chunk:
                    if fd == out_fd:
                        self.proc.wait(timeout=10)
                        raise AssertionError(f"driver exited (rc {self.proc.returncode}) before "
                                             f"its summary; stderr:\n{self.stderr()}")
                    buf.pop(fd)
                    continue
                buf[fd] += chunk
                if fd != out_fd:
                    *lines, buf[fd] = buf[fd].split(b"\n")
                    self.stderr_lines += [l.decode(errors="replace") for l in lines]
                elif b"\n" in buf[fd]:
                    line = buf[fd].split(b"\n", 1)[0]
                    self._drain_stderr()
                    return json.loads(line)
        raise AssertionError(f"driver printed no summary within {timeout}s; stderr:\n{self.stderr()}")

    def _drain_stderr(self):
        # keep reading its log so that the pipe never fills
        def pump():
            for line in self.proc.stderr:
                self.stderr_lines.append(line.decode(errors="replace").rstrip("\n"))
        self.pump = threading.Thread(target=pump, daemon=True)
        self.pump.start()

    def stderr(self):
        return "\n".join(self.stderr_lines)

    def release(self, timeout=30):
        """Closes its stdin (the clients leave); its exit code."""
        if self.proc is None:
            return None
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None
        finally:
            self.proc.stdout.close()
            if self.pump is not None:
                self.pump.join(timeout=5)
            self.proc.stderr.close()
