"""Starts the tracker an interop test talks to, and scrapes it with a tiny client of its own
(tests/lib's bencode decoder and BEP 15 client, which share nothing with the tracker).

INTEROP_TRACKER selects the tracker:
  synapse (default)  the real synapse-tracker, started through tests/lib/synapse_proc.py
                     ($SYNAPSE_BIN or build/app/synapse-tracker)
  opentracker        Debian's /usr/bin/opentracker (whitelist build), a reference tracker the
                     tests were developed against while synapse-tracker was being written

Everything binds to 127.0.0.1 only, and every wait has a deadline.
"""
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lib"))

import synapse_proc  # noqa: E402  (tests/lib)
from bencode import bdecode  # noqa: E402
from net import free_port  # noqa: E402
from udp_tracker import UdpClient, UdpError  # noqa: E402

HOST = "127.0.0.1"
OPENTRACKER = os.environ.get("OPENTRACKER_BIN", "/usr/bin/opentracker")


def tracker_kind():
    kind = os.environ.get("INTEROP_TRACKER", "synapse").strip().lower() or "synapse"
    if kind not in ("synapse", "opentracker"):
        raise SystemExit(f"INTEROP_TRACKER={kind!r}: expected 'synapse' or 'opentracker'")
    return kind


def is_opentracker():
    return tracker_kind() == "opentracker"


class _Tracker:
    kind = "?"
    http_port = None
    udp_port = None

    def announce_url(self, transport):
        if transport == "http":
            return f"http://{HOST}:{self.http_port}/announce"
        if transport == "udp":
            return f"udp://{HOST}:{self.udp_port}/announce"
        raise ValueError(f"unknown transport {transport!r}")

    def allow(self, *info_hashes):
        """Lets the tracker serve these info-hashes (only opentracker needs it; call before
        start)."""

    def describe(self):
        return f"{self.kind} http={self.http_port} udp={self.udp_port}"

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class SynapseTracker(_Tracker):
    """synapse-tracker via TrackerProcess; its stdout is drained after `ready` so that
    later log lines can never fill the pipe and stall it."""
    kind = "synapse"

    def __init__(self, info_hashes=(), ready_timeout=30.0):
        self._tp = synapse_proc.TrackerProcess(host=HOST, ready_timeout=ready_timeout)
        self.http_port = self._tp.http_port
        self.udp_port = self._tp.udp_port

    def start(self):
        try:
            self._tp.start()
        except BaseException:
            self._tp.__exit__(None, None, None)
            raise
        out = self._tp.proc.stdout

        def drain():
            for line in iter(out.readline, b""):
                sys.stderr.write("[synapse] " + line.decode(errors="replace"))
        threading.Thread(target=drain, daemon=True).start()
        return self

    def alive(self):
        return self._tp.proc is not None and self._tp.proc.poll() is None

    def stop(self):
        self._tp.__exit__(None, None, None)


class OpenTracker(_Tracker):
    """Debian's opentracker. It is built in whitelist mode, chroots into -d DIR and drops to
    user nobody, so the whitelist (one hex info_hash per line) lives inside that directory,
    is named relative to it, and both must be readable by nobody. It prints no ready line:
    it is ready once an announce for a whitelisted probe hash succeeds over HTTP and UDP
    (the whitelist is loaded by a background thread, so that also proves it was read)."""
    kind = "opentracker"

    def __init__(self, info_hashes=(), ready_timeout=15.0):
        if not os.access(OPENTRACKER, os.X_OK):
            raise RuntimeError(f"{OPENTRACKER} not found (apt-get install opentracker)")
        self.http_port = free_port()
        self.udp_port = free_port(socket.SOCK_DGRAM)
        self.ready_timeout = ready_timeout
        self.info_hashes = [bytes(h) for h in info_hashes]
        self._probe = secrets.token_bytes(20)
        self._dir = None
        self.proc = None

    def start(self):
        self._dir = tempfile.mkdtemp(prefix="interop-opentracker-")
        os.chmod(self._dir, 0o755)
        wl = os.path.join(self._dir, "whitelist.txt")
        with open(wl, "w") as f:
            for h in self.info_hashes + [self._probe]:  # probe last: its presence implies the rest
                f.write(h.hex() + "\n")
        os.chmod(wl, 0o644)
        self._log = open(os.path.join(self._dir, "opentracker.log"), "wb")
        self.proc = subprocess.Popen(
            [OPENTRACKER, "-i", HOST, "-p", str(self.http_port), "-P", str(self.udp_port),
             "-d", self._dir, "-w", "/whitelist.txt"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self):
        deadline = time.monotonic() + self.ready_timeout
        last = "no attempt"
        peer_id = b"-PROBE0-" + secrets.token_bytes(12)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"opentracker exited early (rc={self.proc.returncode}): "
                                   f"{self.log_text()}")
            try:
                r = http_announce(self.announce_url("http"), self._probe, peer_id, 1, left=0,
                                  event="started", timeout=1.0)
                if b"failure reason" in r:
                    last = r[b"failure reason"].decode(errors="replace")
                else:
                    udp_scrape(HOST, self.udp_port, self._probe, timeout=1.0, tries=1)
                    http_announce(self.announce_url("http"), self._probe, peer_id, 1, left=0,
                                  event="stopped", timeout=1.0)
                    return
            except (OSError, ValueError) as e:
                last = repr(e)
            time.sleep(0.05)
        raise RuntimeError(f"opentracker not ready within {self.ready_timeout}s: {last}; "
                           f"log: {self.log_text()}")

    def log_text(self):
        try:
            with open(os.path.join(self._dir, "opentracker.log"), "rb") as f:
                return f.read().decode(errors="replace").strip()
        except OSError:
            return ""

    def allow(self, *info_hashes):
        if self.proc is not None:
            raise RuntimeError("opentracker reads its whitelist at start: allow() before start()")
        self.info_hashes.extend(bytes(h) for h in info_hashes)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._dir:
            self._log.close()
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


def start_tracker(info_hashes=()):
    """The tracker picked by INTEROP_TRACKER, not yet started (use `with`)."""
    if is_opentracker():
        return OpenTracker(info_hashes)
    return SynapseTracker(info_hashes)


# --- a tiny tracker client, independent of the tracker and of the clients under test ---

def http_get(url, timeout):
    req = urllib.request.Request(url, headers={"User-Agent": "synapse-interop/1"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        if resp.status != 200:
            raise ValueError(f"HTTP {resp.status} from {url}")
        return resp.read()


def http_announce(announce_url, info_hash, peer_id, port, left, event=None, timeout=5.0):
    q = {"info_hash": info_hash, "peer_id": peer_id, "port": str(port), "uploaded": "0",
         "downloaded": "0", "left": str(left), "compact": "1"}
    if event:
        q["event"] = event
    url = announce_url + "?" + urllib.parse.urlencode(q, quote_via=urllib.parse.quote)
    reply = bdecode(http_get(url, timeout))
    if not isinstance(reply, dict):
        raise ValueError(f"announce reply is not a dictionary: {reply!r}")
    return reply


def scrape_url_for(announce_url):
    """BEP 48 convention: replace the last path segment's 'announce' with 'scrape'."""
    parts = urllib.parse.urlsplit(announce_url)
    head, _, last = parts.path.rpartition("/")
    if not last.startswith("announce"):
        raise ValueError(f"{announce_url}: no scrape convention for this path")
    path = head + "/" + "scrape" + last[len("announce"):]
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def http_scrape(announce_url, info_hash, timeout=5.0):
    """{'complete', 'incomplete', 'downloaded'} for info_hash; None when the reply's `files`
    has no entry for it (a tracker may omit torrents it does not know)."""
    url = scrape_url_for(announce_url) + "?" + urllib.parse.urlencode(
        {"info_hash": info_hash}, quote_via=urllib.parse.quote)
    reply = bdecode(http_get(url, timeout))
    if not isinstance(reply, dict):
        raise ValueError(f"scrape reply is not a dictionary: {reply!r}")
    if b"failure reason" in reply:
        raise ValueError("scrape failed: " + reply[b"failure reason"].decode(errors="replace"))
    files = reply.get(b"files")
    if not isinstance(files, dict):
        raise ValueError(f"scrape reply has no 'files' dictionary: {reply!r}")
    entry = files.get(bytes(info_hash))
    if entry is None:
        return None
    out = {}
    for k in ("complete", "incomplete", "downloaded"):
        v = entry.get(k.encode())
        if not isinstance(v, int):
            raise ValueError(f"scrape entry lacks integer '{k}': {entry!r}")
        out[k] = v
    return out


def udp_scrape(host, port, info_hash, timeout=2.0, tries=3):
    """BEP 15 connect + scrape; returns {'complete', 'incomplete', 'downloaded'}. Each
    request is sent up to `tries` times; an error packet or a malformed reply raises
    ValueError, no reply TimeoutError."""
    with UdpClient(port, host=host, timeout=timeout, tries=tries) as c:
        try:
            seeders, completed, leechers = c.scrape(c.connect(), [bytes(info_hash)])[0]
        except UdpError as e:
            raise ValueError(f"UDP tracker error: {e.message}") from e
        except AssertionError as e:
            raise ValueError(f"bad UDP tracker reply: {e}") from e
    return {"complete": seeders, "incomplete": leechers, "downloaded": completed}


def scrape(transport, announce_url, info_hash, host=HOST, udp_port=None):
    if transport == "http":
        return http_scrape(announce_url, info_hash)
    port = udp_port if udp_port is not None else urllib.parse.urlsplit(announce_url).port
    return udp_scrape(host, port, info_hash)
