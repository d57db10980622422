#!/usr/bin/env python3
"""Starts the interop tracker (see trackers.py / INTEROP_TRACKER) for a test that is not
written in Python, e.g. webtorrent_client.mjs.

  tracker_launcher.py [--info-hash HEX ...] [--max-seconds N]

Prints exactly one line on stdout once the tracker serves:
  ready kind=<synapse|opentracker> http=<port> udp=<port>
then keeps the tracker running until its stdin reaches EOF (the parent closed it or died),
SIGTERM/SIGINT arrives, or --max-seconds pass, and stops it. Exits non-zero with a message
on stderr if the tracker cannot be started.
"""
import argparse
import os
import select
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import trackers  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--info-hash", action="append", default=[],
                    help="40 hex digits; needed for opentracker's whitelist")
    ap.add_argument("--max-seconds", type=float, default=180.0)
    args = ap.parse_args()
    hashes = [bytes.fromhex(h) for h in args.info_hash]

    stop = {"flag": False}

    def on_signal(signum, frame):
        stop["flag"] = True
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    try:
        tracker = trackers.start_tracker(hashes).start()
    except Exception as e:  # noqa: BLE001 - reported to the parent test
        print(f"tracker_launcher: cannot start tracker: {e}", file=sys.stderr, flush=True)
        return 2
    try:
        print(f"ready kind={tracker.kind} http={tracker.http_port} udp={tracker.udp_port}",
              flush=True)
        deadline = time.monotonic() + args.max_seconds
        fd = sys.stdin.fileno()
        while not stop["flag"] and time.monotonic() < deadline:
            if not tracker.alive():
                print("tracker_launcher: tracker exited unexpectedly", file=sys.stderr, flush=True)
                return 3
            try:
                r, _, _ = select.select([fd], [], [], 0.5)
            except InterruptedError:
                continue
            if r and not os.read(fd, 4096):
                break  # EOF: parent is done
    finally:
        tracker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
