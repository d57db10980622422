#!/usr/bin/env python3
"""Command line of the real binary: --help, --version, bad flags and values, bad config
files, ports in use, the ready line, /healthz, and clean shutdown on SIGTERM and SIGINT.

Every failure must be one line on stderr that names the problem, with a non-zero exit
and nothing on stdout (in particular no `ready` line).

Run: python3 tests/integration/test_cli.py (SYNAPSE_BIN picks the binary).
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from http_client import HttpConn, http_get  # noqa: E402
from net import free_port, free_port_pair  # noqa: E402
from synapse_proc import TrackerProcess, binary_path, shutdown  # noqa: E402
from tracker_config import ConfigFile  # noqa: E402


class CliTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="synapse-cli-")
        self.addCleanup(self.tmp.cleanup)

    def run_binary(self, *args, timeout=20):
        """Runs the binary to completion on loopback with free ports unless args say
        otherwise; returns (rc, stdout, stderr)."""
        base = [binary_path(), "--data-dir", os.path.join(self.tmp.name, "data")]
        if "--host" not in args:
            base += ["--host", "127.0.0.1"]
        if "--port" not in args and "-p" not in args:
            base += ["--port", str(free_port())]
        if "--udp-port" not in args:
            base += ["--udp-port", str(free_port(socket.SOCK_DGRAM))]
        if "--ws-port" not in args:  # the built-in 6882 would collide between parallel runs
            base += ["--ws-port", "0"]
        p = subprocess.run(base + list(args), capture_output=True, timeout=timeout)
        return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")

    def assert_one_line_error(self, args, *needles, rc_min=1):
        rc, out, err = self.run_binary(*args)
        self.assertGreaterEqual(rc, rc_min, f"{args}: exit {rc}, stderr {err!r}")
        self.assertLess(rc, 128, f"{args}: killed by a signal or crashed (exit {rc}): {err!r}")
        self.assertEqual(out, "", f"{args}: stdout {out!r}")
        self.assertTrue(err.endswith("\n"), f"{args}: stderr {err!r}")
        lines = err.splitlines()
        self.assertEqual(len(lines), 1, f"{args}: not one line: {err!r}")
        for needle in needles:
            self.assertIn(needle, lines[0], f"{args}: {needle!r} not named in {err!r}")
        return lines[0]

    # ---- help and version ----

    def test_help(self):
        for flag in ("--help", "-h"):
            p = subprocess.run([binary_path(), flag], capture_output=True, timeout=20)
            self.assertEqual(p.returncode, 0, flag)
            out = p.stdout.decode()
            self.assertTrue(out.startswith("Usage:"), out[:80])
            for option in ("--host", "--port", "--udp-port", "--config", "--data-dir", "--debug",
                           "--help", "--version", "--role", "--cluster-addr", "--seeds"):
                self.assertIn(option, out, f"--help does not mention {option}")
            self.assertEqual(p.stderr, b"")

    def test_help_wins_over_other_flags(self):
        p = subprocess.run([binary_path(), "--port", "1", "--help"], capture_output=True,
                           timeout=20)
        self.assertEqual(p.returncode, 0)
        self.assertTrue(p.stdout.startswith(b"Usage:"))

    def test_version(self):
        for flag in ("--version", "-V"):
            p = subprocess.run([binary_path(), flag], capture_output=True, timeout=20)
            self.assertEqual(p.returncode, 0, flag)
            self.assertRegex(p.stdout.decode(), r"^synapse-tracker \d+\.\d+\.\d+\S*\n$")
            self.assertEqual(p.stderr, b"")

    # ---- bad flags and values ----

    def test_unknown_flag(self):
        self.assert_one_line_error(["--bogus"], "--bogus")
        self.assert_one_line_error(["--bogus=1"], "--bogus")
        self.assert_one_line_error(["-z"], "-z")
        self.assert_one_line_error(["stray"], "stray")

    def test_bad_flag_values(self):
        cases = [
            (["--port", "abc"], "--port", "abc"),
            (["--port", "70000"], "--port", "70000"),
            (["--port", "0"], "--port"),
            (["--udp-port", "-1"], "--udp-port"),
            (["--udp-port", "65536"], "--udp-port"),
            (["--role", "king"], "--role", "king"),
            (["--port"], "--port", "missing"),
            (["--config", os.path.join(self.tmp.name, "missing.yaml")], "missing.yaml"),
            (["--role", "router"], "seeds"),
        ]
        for args, *needles in cases:
            with self.subTest(args=args):
                self.assert_one_line_error(args, *needles)

    def test_bad_host(self):
        self.assert_one_line_error(["--host", "not-an-address"], "--host", "not-an-address")

    # ---- bad config files ----

    def test_bad_config_values(self):
        # (file text, whether the message names the file, what it must name)
        cases = [
            ("server:\n  announce_interval: abc\n", True, "server.announce_interval", "abc"),
            ("server:\n  bogus_key: 1\n", True, "server.bogus_key"),
            ("bogus_section:\n  a: 1\n", True, "bogus_section"),
            ("server:\n  full_scrape: maybe\n", True, "server.full_scrape", "maybe"),
            ("server:\n  trusted_proxies: [\"10.0.0.0/33\"]\n", True, "server.trusted_proxies",
             "10.0.0.0/33"),
            ("server:\n  request_timeout_ms: 1\n  request_timeout_ms: 2\n", True,
             "server.request_timeout_ms"),
            ("tracker:\n  http_port: 99999\n", True, "tracker.http_port", "99999"),
            ("server: [1, 2\n", True, "line"),
            # checked once every source is applied: the key is named, the file need not be
            ("server:\n  min_interval: 2000\n", False, "server.min_interval",
             "server.announce_interval"),
            ("limits:\n  max_headers: 0\n", False, "limits.max_headers"),
            ("server:\n  udp_secret: \"short\"\n", False, "server.udp_secret"),
        ]
        for text, names_file, *needles in cases:
            with self.subTest(config=text), ConfigFile(text) as path:
                self.assert_one_line_error(["--config", path], *needles,
                                           *([path] if names_file else []))

    def test_flags_override_config_file(self):
        port = free_port()
        with ConfigFile(f"tracker:\n  http_port: {free_port()}\n  host: \"0.0.0.0\"\n") as path:
            with TrackerProcess(args=["--config", path], http_port=port) as t:
                self.assertIn(f"http={port}", t.ready_line)
                self.assertEqual(http_get(port, "/healthz").status, 200)
                shutdown(t)

    # ---- ports in use ----

    def test_http_port_in_use(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            port = s.getsockname()[1]
            self.assert_one_line_error(["--port", str(port)], str(port), "HTTP")

    def test_udp_port_in_use(self):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            self.assert_one_line_error(["--udp-port", str(port)], str(port), "UDP")

    def test_cluster_port_in_use(self):
        # a node listens on its cluster address P and on P + 1 (peers): take P only
        with socket.socket() as s:
            s.bind(("127.0.0.1", free_port_pair()))
            s.listen()
            port = s.getsockname()[1]
            self.assert_one_line_error(
                ["--role", "node", "--cluster-addr", f"tcp://127.0.0.1:{port}"], str(port))

    # ---- running ----

    def test_ready_line_healthz_and_sigterm(self):
        with TrackerProcess() as t:
            self.assertRegex(t.ready_line,
                             rf"^ready role=standalone http={t.http_port} udp={t.udp_port}$")
            r = http_get(t.http_port, "/healthz")
            self.assertEqual((r.status, r.body), (200, b"ok\n"))
            self.assertEqual(shutdown(t), 0)

    def test_sigterm_with_open_connections_exits_cleanly(self):
        with TrackerProcess() as t:
            idle = HttpConn(t.http_port)
            served = HttpConn(t.http_port)
            partial = HttpConn(t.http_port)
            for c in (idle, served, partial):
                self.addCleanup(c.close)
            self.assertEqual(served.request("/healthz").status, 200)  # kept alive
            partial.send(b"GET /healthz HTTP/1.1\r\nHost: x")
            self.assertEqual(http_get(t.http_port, "/healthz").status, 200)  # all accepted
            self.assertEqual(shutdown(t), 0)
            self.assertTrue(served.closed_by_peer())

    def test_sigint_exits_cleanly(self):
        t = TrackerProcess(args=["--udp-port", "0"], udp_port=0)
        t.start()
        try:
            self.assertIn("udp=0", t.ready_line)
            self.assertEqual(http_get(t.http_port, "/healthz").status, 200)
            self.assertEqual(t.stop(signal.SIGINT), 0)
        finally:
            shutdown(t)

    def test_data_dir_is_created(self):
        d = os.path.join(self.tmp.name, "fresh")
        with TrackerProcess(data_dir=d) as t:
            self.assertTrue(os.path.isdir(d))
            shutdown(t)

    def test_unusable_data_dir(self):
        f = os.path.join(self.tmp.name, "a-file")
        open(f, "w").close()
        self.assert_one_line_error(["--data-dir", f], "--data-dir")


if __name__ == "__main__":
    unittest.main(verbosity=2)
