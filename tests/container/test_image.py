#!/usr/bin/env python3
"""The tracker's image, run with podman (tests/container/run.sh builds it first).

- The runtime stage holds exactly the packages that own what `ldd` lists for the binary,
  past those the base image has: the Dockerfile's list is held against ldd and dpkg -S
  inside the built image, both ways (nothing missing, nothing extra).
- It runs as a non-root user with a read-only root file system and a data volume: a
  standalone tracker answers HTTP and UDP announces, writes only the volume, reports
  healthy through the image's HEALTHCHECK, stops on SIGTERM as PID 1 with status 0 and
  its swarms saved, and a new container on the same volume serves them again.

Every container uses host networking on a loopback address of its own (127.0.1.x).
Run: tests/container/run.sh (or python3 tests/container/test_image.py once the image is
built; SYNAPSE_IMAGE names it).
"""
import os
import re
import shutil
import socket
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, HERE)
from bencode import bdecode  # noqa: E402
from http_client import http_get  # noqa: E402
from net import free_port  # noqa: E402
from podman import IMAGE, Container, available, image_config, podman, run_once  # noqa: E402
from tracker_proto import announce_target, peer_id, rand_hash, scrape_target  # noqa: E402
from udp_tracker import UdpClient  # noqa: E402
from wait import wait_for  # noqa: E402

HOST = "127.0.1.1"
BASE_IMAGE = os.environ.get("SYNAPSE_IMAGE_BASE", "localhost/debian:bookworm")
NOBODY = 65534


def dockerfile_runtime_packages():
    """The package names the runtime stage's apt-get install line names."""
    text = open(os.path.join(ROOT, "Dockerfile")).read()
    runtime = text.split("\nFROM ")[-1]  # the last stage
    m = re.search(r"--no-install-recommends(.*?)&&", runtime, re.S)
    return set(m.group(1).replace("\\", " ").split())


def http_ok(port, path="/healthz"):
    try:
        return http_get(port, path, host=HOST, timeout=2).status == 200
    except OSError:
        return False


@unittest.skipIf(available(), available() or "")
class ImageTest(unittest.TestCase):
    def setUp(self):
        self.containers = []
        self.tmp = tempfile.mkdtemp(prefix="synapse-image-")

    def tearDown(self):
        for c in self.containers:
            c.remove()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def data_volume(self):
        path = os.path.join(self.tmp, "data")
        os.mkdir(path)
        os.chown(path, NOBODY, NOBODY)
        return path

    def standalone(self, data, name):
        http, udp = free_port(), free_port(socket.SOCK_DGRAM)
        c = Container(f"synapse-image-test-{os.getpid()}-{name}",
                      args=["--config=/etc/synapse/config.yaml", "--data-dir=/var/lib/synapse",
                            f"--host={HOST}", f"--port={http}", f"--udp-port={udp}"],
                      volumes=[f"{data}:/var/lib/synapse"],
                      env={"SYNAPSE_HEALTH_HOST": HOST, "SYNAPSE_HEALTH_PORT": http})
        self.containers.append(c)
        c.start()
        c.http, c.udp = http, udp
        wait_for(lambda: http_ok(http), 30, what=f"{name}: /healthz from the container")
        return c

    def test_runtime_packages_are_what_the_binary_links(self):
        script = ("set -e; ldd /usr/local/bin/synapse-tracker; echo ---; "
                  "for l in $(ldd /usr/local/bin/synapse-tracker | awk '/=>/{print $3}'); do "
                  "dpkg -S \"$(readlink -f $l)\" 2>/dev/null || dpkg -S \"$l\"; done; echo ---; "
                  "dpkg-query -W -f='${Package}|${Essential}|${Priority}\\n'")
        out = run_once("-c", script, entrypoint="bash")
        ldd, owners, installed = out.split("---\n")
        self.assertNotIn("not found", ldd, ldd)
        owning = {line.split(":")[0] for line in owners.splitlines() if ":" in line}
        # what the runtime base brings already (any Debian base has libc6; a slim one
        # may have more): the Dockerfile must list the rest, and nothing the binary
        # does not link
        base = set(run_once("-W", "-f=${Package}\n", entrypoint="dpkg-query",
                            image=BASE_IMAGE).split())
        listed = dockerfile_runtime_packages()
        self.assertEqual(owning - base - listed, set(),
                         f"the binary links libraries of packages the Dockerfile does not install")
        self.assertEqual(listed - owning, set(),
                         f"the Dockerfile installs packages the binary does not link")
        config = image_config()
        size_mb = config["Size"] / 1e6
        print(f"\nimage {IMAGE}: {size_mb:.1f} MB", flush=True)

    def test_non_root_and_healthcheck_in_the_image(self):
        image = image_config()
        self.assertEqual(image["Config"].get("User"), f"{NOBODY}:{NOBODY}")
        health = image.get("Healthcheck") or {}
        self.assertIn("/healthz", " ".join(health.get("Test") or []), "no HEALTHCHECK on /healthz")
        self.assertEqual(run_once("-u", entrypoint="id").strip(), str(NOBODY))

    def test_standalone_read_only_sigterm_and_warm_restart(self):
        data = self.data_volume()
        c = self.standalone(data, "a")
        self.assertGreater(c.state()["Pid"], 0)
        ih, pid = rand_hash(), peer_id()
        r = http_get(c.http, announce_target(ih, pid, 7001, left=0), host=HOST)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(bdecode(r.body)[b"complete"], 1)
        with UdpClient(c.udp, host=HOST) as u:
            conn = u.connect()
            _, leechers, seeders, peers = u.announce(conn, ih, peer_id(), 7002)
        self.assertEqual((leechers, seeders), (1, 1))
        self.assertEqual(len(peers), 1)
        # the HEALTHCHECK command, run by podman inside the container
        self.assertEqual(podman("healthcheck", "run", c.name, check=False).returncode, 0,
                         c.logs())
        # the process writes nothing outside its volume (the root is read-only)
        self.assertTrue(os.path.exists(os.path.join(data, "udp_secret")), os.listdir(data))
        # PID 1 stops on SIGTERM, in time and cleanly, saving its swarms
        code, took = c.stop(grace_s=20)
        self.assertEqual(code, 0, c.logs())
        self.assertLess(took, 15, "SIGTERM as PID 1 took too long")
        self.assertIn("signal 15: shutting down", c.logs())
        # a new container on the same volume serves the same swarm
        c2 = self.standalone(data, "b")
        r = http_get(c2.http, scrape_target([ih]), host=HOST)
        files = bdecode(r.body)[b"files"]
        self.assertEqual(files[ih][b"complete"], 1, r.body)
        self.assertEqual(files[ih][b"incomplete"], 1, r.body)
        code, _ = c2.stop(grace_s=20)
        self.assertEqual(code, 0, c2.logs())


if __name__ == "__main__":
    unittest.main(verbosity=2)
