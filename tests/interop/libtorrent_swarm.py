#!/usr/bin/python3
"""Interop: two real libtorrent (python3-libtorrent 2.0.x) sessions swap a file through the tracker.

  /usr/bin/python3 tests/interop/libtorrent_swarm.py --transport http|udp

A random file is put in a v1-only torrent whose only tracker is the one under test. A seeding
session announces it; then a leeching session announces and, with DHT, LSD, UPnP, NAT-PMP and
PEX of no use (all off, only two peers), can learn the seeder's address from the tracker
alone. The leecher must download the whole file, which is compared byte for byte with the
original. Finally an independent scrape (HTTP /scrape or BEP 15 UDP scrape, same transport)
must report complete >= 1.

Tracker: INTEROP_TRACKER=synapse (default; $SYNAPSE_BIN or build/app/synapse-tracker) or
opentracker (see trackers.py). Exit 0 on success, 1 with a message on failure.
"""
import argparse
import os
import secrets
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import trackers  # noqa: E402

try:
    import libtorrent as lt
except ImportError as e:  # pragma: no cover - environment problem, reported clearly
    sys.exit(f"FAIL: python3-libtorrent not importable ({e}); run with /usr/bin/python3 "
             "after `apt-get install python3-libtorrent`")

OVERALL_TIMEOUT = 60.0
FILE_SIZE = 3 * 1024 * 1024 + 12345  # not a multiple of the piece size: last piece is short
PIECE_SIZE = 64 * 1024


class Failure(Exception):
    pass


class Deadline:
    def __init__(self, seconds):
        self.end = time.monotonic() + seconds

    def left(self):
        return self.end - time.monotonic()

    def check(self, what):
        if self.left() <= 0:
            raise Failure(f"timed out after {OVERALL_TIMEOUT:.0f}s while {what}")


def make_session(name):
    settings = {
        "listen_interfaces": "127.0.0.1:0",
        "outgoing_interfaces": "",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        # libtorrent refuses non-/announce paths and some requests to localhost otherwise
        "ssrf_mitigation": False,
        # both peers are 127.0.0.1: allow them to connect, over TCP or uTP
        "allow_multiple_connections_per_ip": True,
        "enable_incoming_utp": True,
        "enable_outgoing_utp": True,
        "enable_incoming_tcp": True,
        "enable_outgoing_tcp": True,
        "announce_to_all_trackers": True,
        "peer_fingerprint": "-LT2080-",
        "user_agent": f"synapse-interop-{name}",
        "alert_mask": (lt.alert_category.error | lt.alert_category.status
                       | lt.alert_category.tracker | lt.alert_category.storage
                       | lt.alert_category.connect | lt.alert_category.peer),
    }
    return lt.session(settings)


def make_torrent(workdir, announce_url):
    seed_dir = os.path.join(workdir, "seed")
    os.makedirs(seed_dir)
    name = "payload.bin"
    payload = secrets.token_bytes(FILE_SIZE)
    with open(os.path.join(seed_dir, name), "wb") as f:
        f.write(payload)
    fs = lt.file_storage()
    lt.add_files(fs, os.path.join(seed_dir, name))
    # v1 only: a hybrid torrent would announce twice (once per info-hash)
    ct = lt.create_torrent(fs, PIECE_SIZE, flags=lt.create_torrent.v1_only)
    ct.add_tracker(announce_url, 0)
    ct.set_creator("synapse interop test")
    lt.set_piece_hashes(ct, seed_dir)
    ti = lt.torrent_info(lt.bencode(ct.generate()))
    return ti, seed_dir, name, payload


def add(ses, ti, save_path):
    p = lt.add_torrent_params()
    p.ti = ti
    p.save_path = save_path
    flags = p.flags
    flags &= ~lt.torrent_flags.auto_managed
    flags &= ~lt.torrent_flags.paused
    flags |= lt.torrent_flags.disable_dht | lt.torrent_flags.disable_lsd | lt.torrent_flags.disable_pex
    p.flags = flags
    return ses.add_torrent(p)


def pump(ses, tag, log, on_alert=None):
    for a in ses.pop_alerts():
        msg = f"[{tag}] {a.what()}: {a.message()}"
        if isinstance(a, (lt.tracker_error_alert, lt.tracker_warning_alert,
                          lt.scrape_failed_alert, lt.torrent_error_alert,
                          lt.file_error_alert, lt.listen_failed_alert)):
            log.append(msg)
            print(msg, file=sys.stderr)
        elif isinstance(a, (lt.tracker_reply_alert, lt.tracker_announce_alert,
                            lt.peer_connect_alert, lt.listen_succeeded_alert,
                            lt.torrent_finished_alert)):
            print(msg, file=sys.stderr)
        if on_alert:
            on_alert(a)


def wait_for(deadline, what, cond, sessions, log, interval=0.05):
    """Polls cond() (while draining alerts) until it holds or the deadline passes."""
    while True:
        for tag, ses in sessions:
            pump(ses, tag, log)
        if cond():
            return
        deadline.check(what)
        time.sleep(interval)


def run(transport):
    deadline = Deadline(OVERALL_TIMEOUT)
    with tempfile.TemporaryDirectory(prefix="interop-lt-") as workdir:
        # The tracker object picks its ports before it starts, so the torrent can carry the
        # real announce URL, and opentracker's whitelist can get the info-hash.
        tracker = trackers.start_tracker()
        announce_url = tracker.announce_url(transport)
        ti, seed_dir, name, payload = make_torrent(workdir, announce_url)
        info_hash = ti.info_hash().to_bytes()
        tracker.allow(info_hash)
        if [t.url for t in ti.trackers()] != [announce_url]:
            raise Failure(f"torrent trackers are {[t.url for t in ti.trackers()]}, "
                          f"expected only {announce_url}")
        with tracker:
            print(f"tracker: {tracker.describe()}; announce {announce_url}; "
                  f"info_hash {info_hash.hex()}", file=sys.stderr)
            return swarm(deadline, ti, info_hash, workdir, seed_dir, name, payload,
                         transport, announce_url)


def swarm(deadline, ti, info_hash, workdir, seed_dir, name, payload, transport,
          announce_url):
    log = []
    seeder_ses = make_session("seeder")
    leecher_ses = make_session("leecher")
    sessions = [("seeder", seeder_ses), ("leecher", leecher_ses)]
    try:
        replies = {"seeder": 0, "leecher": 0}

        def counter(tag):
            def on_alert(a):
                if isinstance(a, lt.tracker_reply_alert):
                    replies[tag] += 1
            return on_alert

        # --- seeder: checks its file, then announces (event=started, left=0)
        seed_h = add(seeder_ses, ti, seed_dir)

        def seeder_ready():
            pump(seeder_ses, "seeder", log, counter("seeder"))
            st = seed_h.status()
            return st.is_seeding and replies["seeder"] > 0
        wait_for(deadline, "waiting for the seeder to finish checking and get a tracker reply",
                 seeder_ready, [], log)
        st = seed_h.status()
        if st.progress < 1.0:
            raise Failure(f"seeder is not complete after checking (progress {st.progress})")
        print(f"seeder announced; listening on port {seeder_ses.listen_port()}", file=sys.stderr)

        # --- leecher: starts empty; its only source of peers is the tracker's reply
        leech_dir = os.path.join(workdir, "leech")
        os.makedirs(leech_dir)
        leech_h = add(leecher_ses, ti, leech_dir)

        def leecher_done():
            pump(leecher_ses, "leecher", log, counter("leecher"))
            pump(seeder_ses, "seeder", log, counter("seeder"))
            st = leech_h.status()
            return st.is_seeding or (st.is_finished and st.progress >= 1.0)

        try:
            wait_for(deadline, "waiting for the leecher to download the file", leecher_done,
                     [], log, interval=0.1)
        except Failure:
            st = leech_h.status()
            raise Failure(
                f"leecher did not complete: progress {st.progress:.3f}, peers {st.num_peers}, "
                f"tracker replies {replies['leecher']}, last tracker error "
                f"{log[-1] if log else 'none'}; seeder peers {seed_h.status().num_peers}")
        peers_seen = leech_h.status().num_peers
        print(f"leecher complete ({leech_h.status().total_done} bytes, peers {peers_seen})",
              file=sys.stderr)

        # make sure libtorrent has handed every block to the file before we read it
        leech_h.flush_cache()
        flushed = {"done": False}

        def on_flush(a):
            if isinstance(a, lt.cache_flushed_alert):
                flushed["done"] = True

        def is_flushed():
            pump(leecher_ses, "leecher", log, on_flush)
            return flushed["done"]
        wait_for(deadline, "waiting for the leecher's cache flush", is_flushed, [], log)

        got_path = os.path.join(leech_dir, name)
        with open(got_path, "rb") as f:
            got = f.read()
        if len(got) != len(payload):
            raise Failure(f"downloaded file has {len(got)} bytes, expected {len(payload)}")
        if got != payload:
            first = next(i for i in range(len(got)) if got[i] != payload[i])
            raise Failure(f"downloaded file differs from the original at byte {first}")
        print(f"downloaded file matches the original byte for byte ({len(got)} bytes)",
              file=sys.stderr)

        # --- independent scrape over the same transport
        s = None
        last_err = None
        # the seeder's announce is already answered, so complete >= 1 must hold at once;
        # retry only transport hiccups, within the overall deadline.
        while s is None:
            try:
                s = trackers.scrape(transport, announce_url, info_hash)
                if s is None:
                    raise Failure("scrape reply has no entry for the torrent's info_hash")
            except (OSError, ValueError) as e:
                last_err = e
                deadline.check(f"scraping the tracker ({last_err})")
                time.sleep(0.1)
        print(f"scrape over {transport}: {s}", file=sys.stderr)
        if s["complete"] < 1:
            raise Failure(f"scrape reports complete={s['complete']} (expected >= 1): {s}")
        return s
    finally:
        for _, ses in sessions:
            try:
                ses.pause()
            except Exception:  # noqa: BLE001
                pass
        del sessions


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--transport", choices=("http", "udp"), required=True)
    args = ap.parse_args()
    t0 = time.monotonic()
    try:
        s = run(args.transport)
    except Failure as e:
        print(f"FAIL libtorrent_swarm[{args.transport}, {trackers.tracker_kind()}]: {e}",
              file=sys.stderr)
        return 1
    except RuntimeError as e:  # tracker could not be started
        print(f"FAIL libtorrent_swarm[{args.transport}, {trackers.tracker_kind()}]: {e}",
              file=sys.stderr)
        return 1
    print(f"PASS libtorrent_swarm[{args.transport}, {trackers.tracker_kind()}]: libtorrent "
          f"{lt.__version__} leecher downloaded and verified the file via the tracker; scrape "
          f"{s} ({time.monotonic() - t0:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
