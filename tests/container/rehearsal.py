#!/usr/bin/env python3
"""The Kubernetes rehearsal: k8s/overlays/prod run as podman containers of the real image,
scaled 3 -> 5 -> 3 and rolled one pod at a time, under a steady load through the routers.

Pods are made from the rendered manifests by k8s_pods.py (arguments, environment,
volumes, user, read-only root, probes and grace period as the objects say; the Secret
gets fresh random values, as the runbook tells an operator to). Each pod is a container
with host networking on a loopback address of its own (nodes 127.0.1.10+, routers
127.0.1.50+); one hosts file stands for cluster DNS.

Steps, as Kubernetes would take them, each gated on the readiness probe:
  deploy (3 nodes, 2 routers), scale out to 5 (Parallel pod management: both at once),
  scale in to 3 (the two highest ordinals, SIGTERM: a graceful leave with hand-off),
  rolling restart of the StatefulSet (highest ordinal first: SIGTERM, the same volume,
  wait ready), rolling update of the router Deployment (maxSurge 1, maxUnavailable 0: a
  new router first, then the old one goes), the cluster key rotated by three such rolls
  of every pod (the Secret's key "old, new", "new, old", "new"), and the API token
  rotated without a restart (the mounted Secret rewritten, POST /admin/reload).
Under load all along: UDP and HTTP announces, registrations with some deletes, searches
for shards registered earlier, each to a router picked in turn (the LoadBalancer).
Checked: no announce fails outside a detection window (DETECTION_S after a pod was
stopped or started; each step is followed by QUIET_S of steady load outside any window), no acknowledged registration is lost and no acknowledged delete
comes back (every router asked, after the last step), searches find the shard searched
for, partitions are balanced after each step (max over mean of primaries), and each
step's duration is printed.

Run: tests/container/run.sh (builds the image), or python3 tests/container/rehearsal.py
with the image built. SYNAPSE_IMAGE names the image.
"""
import json
import os
import random
import secrets
import shutil
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, HERE)
from bencode import bdecode  # noqa: E402
from cluster import shard_body  # noqa: E402
from http_client import http_request  # noqa: E402
from k8s_pods import Dns, Workload, render, secret_data, find  # noqa: E402
from podman import IMAGE, available  # noqa: E402
from tracker_proto import announce_target, peer_id, rand_hash  # noqa: E402
from udp_tracker import UdpClient, UdpError  # noqa: E402
from wait import wait_for  # noqa: E402

OVERLAY = os.path.join(ROOT, "k8s", "overlays", "prod")
DETECTION_S = 3.0  # a member's failure is seen everywhere within ~3 s (SWIM + Lifeguard)
QUIET_S = 2.0  # steady load after each step, outside every window: failures there count
DIM = 32
MODEL = "rehearsal-model"
NODE_IP = "127.0.1.{}".format
ROUTER_IP = "127.0.1.{}".format


def log(*a):
    print(f"[{time.strftime('%H:%M:%S')}] rehearsal:", *a, flush=True)


class Load:
    """Announces, registrations, deletes and searches through the routers, each to the
    next router in turn; records every outcome with its time."""

    def __init__(self, routers, token, http_port, udp_port):
        self.routers = routers  # callable: the current router addresses
        self.auth = {"Authorization": f"Bearer {token}"}
        self.http_port, self.udp_port = http_port, udp_port
        self.rng = random.Random(7)
        self.hashes = [rand_hash(self.rng) for _ in range(40)]
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.announces = []  # (time, error or None)
        self.acked = {}  # hex -> embedding, registered and acknowledged
        self.acked_at = {}
        self.deleted = set()  # acknowledged deletes
        # deletes sent but not acknowledged: applied or not, nothing is owed either way (a
        # coordinator that stored the tombstone but missed its quorum answers an error,
        # and anti-entropy then carries the tombstone to the other replicas)
        self.maybe_deleted = set()
        self.searches = []  # (time, error or None)
        self.turn = 0

    def router(self):
        rs = self.routers()
        self.turn += 1
        return rs[self.turn % len(rs)]

    def _announce_once(self, i):
        ih, host = self.hashes[i % len(self.hashes)], self.router()
        port = 20000 + i % 5000
        if i % 2:
            with UdpClient(self.udp_port, host=host, timeout=2) as u:
                u.announce(u.connect(), ih, peer_id(port), port)
            return
        s, body = http_request(host, self.http_port, "GET",
                               announce_target(ih, peer_id(port), port, left=1, compact=1), timeout=3)
        d = bdecode(body, strict=False) if s == 200 else {}
        if s != 200 or b"failure reason" in d:
            raise AssertionError(f"HTTP {s} {body[:120]!r}")

    def _announcer(self):
        i = 0
        while not self.stop.is_set():
            i += 1
            try:
                self._announce_once(i)
                err = None
            except (OSError, AssertionError, TimeoutError, UdpError) as e:
                err = repr(e)
            with self.lock:
                self.announces.append((time.monotonic(), err))
            self.stop.wait(0.02)

    def _call(self, method, path, body=None):
        s, raw = http_request(self.router(), self.http_port, method, path, body, timeout=5,
                              headers=self.auth)
        return s, (json.loads(raw) if raw else {})

    def _registrar(self):
        n = 0
        while not self.stop.is_set():
            n += 1
            hexhash = "%040x" % self.rng.getrandbits(160)
            vec = [round(self.rng.uniform(-1, 1), 4) for _ in range(DIM)]
            body = shard_body(hexhash, vec, name=f"rehearsal shard {n}", tags=("rehearsal",),
                              model=MODEL)
            try:
                s, doc = self._call("POST", "/api/register", body)
                if s == 200 and doc.get("status") == "success":
                    with self.lock:
                        self.acked[hexhash] = vec
                        self.acked_at[hexhash] = time.monotonic()
                live = sorted(set(self.acked) - self.deleted - self.maybe_deleted)
                if n % 5 == 0 and live:
                    victim = self.rng.choice(live)
                    with self.lock:
                        self.maybe_deleted.add(victim)
                    s, doc = self._call("DELETE", "/api/shard/" + victim)
                    if s == 200 and doc.get("status") == "success":
                        with self.lock:
                            self.deleted.add(victim)
                            self.maybe_deleted.discard(victim)
            except (OSError, ValueError):
                pass  # not acknowledged: nothing is owed
            self.stop.wait(0.15)

    def _searcher(self):
        while not self.stop.is_set():
            self.stop.wait(0.25)
            now = time.monotonic()
            with self.lock:
                old = [h for h, t in self.acked_at.items()
                       if now - t > 3 and h not in self.deleted and h not in self.maybe_deleted]
            if not old:
                continue
            hexhash = self.rng.choice(old)
            try:
                s, doc = self._call("POST", "/api/search/embedding",
                                    {"embedding": self.acked[hexhash], "limit": 5})
                hits = [r.get("info_hash") for r in doc.get("results", [])]
                err = None if s == 200 and hexhash in hits else \
                    (f"HTTP {s}: {hexhash[:8]} not in {len(hits)} hits, partial "
                     f"{doc.get('partial')}, error {doc.get('error')}")
            except (OSError, ValueError) as e:
                err = repr(e)
            with self.lock:
                if hexhash not in self.deleted and hexhash not in self.maybe_deleted:
                    # deleted since: no longer owed
                    self.searches.append((time.monotonic(), err))

    def start(self):
        self.threads = [threading.Thread(target=f, daemon=True)
                        for f in (self._announcer, self._registrar, self._searcher)]
        for t in self.threads:
            t.start()

    def finish(self):
        """Stops the load; False if a load thread had died before (its load stopped)."""
        alive = all(t.is_alive() for t in self.threads)
        self.stop.set()
        for t in self.threads:
            t.join(30)
        return alive


def unavailable():
    """Why the rehearsal cannot run here, or None."""
    if not shutil.which("kubectl"):
        return "kubectl is not installed (it renders k8s/; Debian's kubernetes-client is too old)"
    return available()


@unittest.skipIf(unavailable(), unavailable() or "")
class Rehearsal(unittest.TestCase):
    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="synapse-rehearsal-")
        self.objects = render(OVERLAY)
        secret = find(self.objects, "Secret", "synapse-secrets")
        fresh = {k: (secrets.token_hex(32) if "token" not in k else secrets.token_hex(16) + "\n")
                 for k in secret_data(secret)}
        self.token = fresh["api-tokens"].strip()
        self.admin_token = fresh["admin-tokens"].strip()
        ns = find(self.objects, "StatefulSet", "synapse-node")["metadata"].get("namespace", "default")
        self.dns = Dns(os.path.join(self.work, "hosts"), ns,
                       find(self.objects, "StatefulSet", "synapse-node")["spec"]["serviceName"])
        self.secret = fresh  # what the pods mount; the rotation steps change it
        sec = {"synapse-secrets": fresh}
        self.nodes = Workload(self.objects, "StatefulSet", "synapse-node", IMAGE, self.work, sec)
        self.routers = Workload(self.objects, "Deployment", "synapse-router", IMAGE, self.work, sec)
        self.pods = {}  # name -> container (running)
        self.terminating = set()  # pods sent SIGTERM, out of the Service's endpoints
        self.ready = set()  # pods whose readiness probe passed, in the endpoints
        self.events = []  # times a pod was stopped or started
        self.router_serial = 0
        self.http_port = self.routers.port("http")
        self.udp_port = self.routers.port("udp")

    def tearDown(self):
        for c in list(self.pods.values()):
            c.remove()
        shutil.rmtree(self.work, ignore_errors=True)

    # ---- pods

    def start_node(self, ordinal):
        name = f"synapse-node-{ordinal}"
        ip = NODE_IP(10 + ordinal)
        self.dns.add(name, ip, in_service=True)  # published before ready (bootstrap)
        c = self.nodes.pod(name, ip, self.dns.path).start()
        self.pods[name] = c
        self.events.append(time.monotonic())
        return c

    def start_router(self):
        self.router_serial += 1
        name = f"synapse-router-{secrets.token_hex(3)}-{self.router_serial}"
        ip = ROUTER_IP(50 + self.router_serial)
        self.dns.add(name, ip, in_service=False)
        c = self.routers.pod(name, ip, self.dns.path).start()
        self.pods[name] = c
        self.events.append(time.monotonic())
        return c

    def stop_pod(self, name):
        c = self.pods[name]
        # A terminating pod leaves the Service's endpoints as SIGTERM is sent: the load
        # balancer stops sending it new traffic (what it is answering may still fail).
        self.terminating.add(name)
        self.events.append(time.monotonic())
        code, took = c.stop(grace_s=c.workload.grace_s)
        self.assertEqual(code, 0, f"{name} exited {code} after SIGTERM:\n{c.logs()[-3000:]}")
        self.assertLess(took, c.workload.grace_s, f"{name} outlasted its grace period")
        c.remove()
        del self.pods[name]
        self.terminating.discard(name)
        self.ready.discard(name)
        self.dns.remove(name)
        return took

    def await_ready(self, c):
        """Waits for the pod's readiness probe; only then is it among the Service's
        endpoints (the load balancer sends it traffic)."""
        c.workload.await_probe(c)
        self.ready.add(c.name)

    def router_ips(self):
        """The routers the load balancer sends to: ready and not terminating."""
        return [c.pod_ip for n, c in sorted(self.pods.items())
                if n.startswith("synapse-router") and n in self.ready and n not in self.terminating]

    def node_names(self):
        return sorted(n for n in self.pods if n.startswith("synapse-node"))

    def status(self, router_ip):
        s, raw = http_request(router_ip, self.http_port, "GET", "/cluster/status", timeout=3,
                              headers={"Authorization": f"Bearer {self.admin_token}"})
        if s != 200:
            raise AssertionError(f"/cluster/status {s}: {raw[:200]!r}")
        return json.loads(raw)

    def await_ring(self, what, timeout=120):
        """Every router sees exactly the running nodes alive, each holding primaries:
        returns max over mean of the primaries."""
        want = set(self.node_names())

        def settled():
            spread = None
            for ip in self.router_ips():
                try:
                    doc = self.status(ip)
                except (OSError, AssertionError, ValueError):
                    return None
                alive = {m["id"]: m for m in doc["members"]
                         if m.get("role") == "node" and m.get("state") == "alive"}
                if set(alive) != want:
                    return None
                prim = [alive[n].get("partitions_primary", 0) for n in want]
                if min(prim) == 0:
                    return None
                spread = max(prim) / (sum(prim) / len(prim))
            return spread
        return wait_for(settled, timeout, interval=0.5, what=f"{what}: every router sees {sorted(want)}")

    def step(self, name, fn):
        t0 = time.monotonic()
        fn()
        spread = self.await_ring(name)
        took = time.monotonic() - t0
        self.report.append((name, took, spread))
        log(f"step {name}: {took:.1f} s, partitions max/mean {spread:.2f}")
        time.sleep(QUIET_S)

    # ---- the rehearsal

    def test_scale_and_roll_under_load(self):
        self.report = []
        self.t0 = time.monotonic()
        replicas = self.nodes.obj["spec"]["replicas"]
        router_replicas = self.routers.obj["spec"]["replicas"]
        self.assertGreaterEqual(replicas, 3)

        def deploy():
            started = [self.start_node(i) for i in range(replicas)]  # Parallel
            routers = [self.start_router() for _ in range(router_replicas)]
            for c in started + routers:
                self.await_ready(c)
        self.step("deploy", deploy)

        load = Load(self.router_ips, self.token, self.http_port, self.udp_port)
        load.start()
        try:
            time.sleep(5)  # a baseline of load before the first change

            def scale_out():
                new = [self.start_node(i) for i in range(replicas, replicas + 2)]
                for c in new:
                    self.await_ready(c)
            self.step(f"scale out {replicas} -> {replicas + 2}", scale_out)

            def scale_in():
                names = [f"synapse-node-{i}" for i in (replicas + 1, replicas)]
                threads = [threading.Thread(target=self.stop_pod, args=(n,)) for n in names]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
            self.step(f"scale in {replicas + 2} -> {replicas}", scale_in)

            self.roll_nodes("roll")
            self.roll_routers("roll")
            self.rotate_cluster_key()
            self.rotate_api_token(load)
            time.sleep(3)
        finally:
            load_ran = load.finish()
        self.assertTrue(load_ran, "a load thread died: the load stopped before the last step")
        self.check(load)

    def roll_routers(self, why):
        for old in [n for n in sorted(self.pods) if n.startswith("synapse-router")]:
            def roll_router(old=old):
                self.await_ready(self.start_router())  # maxSurge 1 first
                self.stop_pod(old)  # then maxUnavailable 0 lets the old one go
            self.step(f"{why} {old}", roll_router)

    def roll_nodes(self, why):
        for name in sorted(self.node_names(), reverse=True):  # highest ordinal first
            def roll(name=name):
                self.stop_pod(name)
                self.await_ready(self.start_node(int(name.rsplit("-", 1)[1])))
            self.step(f"{why} {name}", roll)

    def rotate_cluster_key(self):
        """The runbook's rotation: three rolling restarts, the Secret's cluster-key being
        "old, new", then "new, old", then "new" (the first line seals, any opens), so
        no two processes ever stop understanding each other."""
        old, new = self.secret["cluster-key"], secrets.token_hex(32)
        for stage, text in (("key 1/3", f"{old}\n{new}\n"), ("key 2/3", f"{new}\n{old}\n"),
                            ("key 3/3", f"{new}\n")):
            self.secret["cluster-key"] = text
            self.roll_nodes(stage)
            self.roll_routers(stage)

    def rotate_api_token(self, load):
        """Tokens rotate without a restart: the Secret's file gains the new token, every
        router re-reads it (POST /admin/reload), clients move to it, the old one goes."""
        old, new = self.secret["api-tokens"].strip(), secrets.token_hex(16)
        t0 = time.monotonic()
        for text in (f"{old}\n{new}\n", f"{new}\n"):
            self.secret["api-tokens"] = text
            for name in self.pods:
                self.pods[name].workload.refresh_secrets(name)
            for ip in self.router_ips():
                s, raw = http_request(ip, self.http_port, "POST", "/admin/reload", {}, timeout=5,
                                      headers={"Authorization": f"Bearer {self.admin_token}"})
                self.assertEqual(s, 200, raw)
            load.auth = {"Authorization": f"Bearer {new}"}
        for ip in self.router_ips():
            s, _ = http_request(ip, self.http_port, "DELETE", "/api/shard/" + "0" * 40,
                                timeout=5, headers={"Authorization": f"Bearer {old}"})
            self.assertEqual(s, 403, "the old API token still works after its rotation")
        took = time.monotonic() - t0
        self.report.append(("rotate API token", took, self.await_ring("token")))
        log(f"step rotate API token: {took:.1f} s")

    def within_window(self, t):
        return any(e <= t <= e + DETECTION_S for e in self.events)

    def check(self, load):
        bad = [(t, e) for t, e in load.announces if e and not self.within_window(t)]
        failed = sum(1 for _, e in load.announces if e)
        log(f"announces: {len(load.announces)}, failed {failed}, "
            f"outside a detection window {len(bad)}")
        missed = [(t, e) for t, e in load.searches if e and not self.within_window(t)]
        log(f"searches: {len(load.searches)}, missed {sum(1 for _, e in load.searches if e)}, "
            f"outside a detection window {len(missed)}")
        live = sorted(set(load.acked) - load.deleted - load.maybe_deleted)
        log(f"registrations acknowledged: {len(load.acked)}, deletes acknowledged: "
            f"{len(load.deleted)}, deletes unacknowledged (either outcome allowed): "
            f"{len(load.maybe_deleted)}")
        lost, restored = [], []
        for ip in self.router_ips():
            for h in live:
                s, _ = http_request(ip, self.http_port, "GET", "/api/shard/" + h, timeout=5)
                if s != 200:
                    lost.append((ip, h, s))
            for h in sorted(load.deleted):
                s, _ = http_request(ip, self.http_port, "GET", "/api/shard/" + h, timeout=5)
                if s != 404:
                    restored.append((ip, h, s))
        for name in self.node_names():  # why a node stopped serving reads for a while
            resyncs = [l.split(": ", 1)[-1][:90] for l in self.pods[name].logs().splitlines()
                       if "before serving reads" in l]
            if resyncs:
                log(f"  {name} re-compared before serving reads {len(resyncs)}x: {resyncs[:2]}")
        span = load.announces[-1][0] - load.announces[0][0] if load.announces else 0
        covered = sum(1 for t, _ in load.announces if self.within_window(t))
        log(f"detection windows ({DETECTION_S:.0f} s after each of {len(self.events)} pod starts "
            f"and stops) cover {covered / max(1, len(load.announces)):.0%} of {span:.0f} s of load")
        for t, e in [(t, e) for t, e in load.announces + load.searches if e][:10]:
            log(f"  failed at +{t - self.t0:.1f} s (in a window): {e[:160]}")
        for name, took, spread in self.report:
            log(f"  {name:<28} {took:6.1f} s   partitions max/mean {spread:.2f}")
        self.assertGreater(len(load.acked), 50, "the load registered too little to judge")
        self.assertEqual(bad[:5], [], f"{len(bad)} announces failed outside a detection window")
        self.assertEqual(missed[:5], [], f"{len(missed)} searches missed outside a detection window")
        self.assertEqual(lost[:5], [], f"{len(lost)} acknowledged registrations not found")
        self.assertEqual(restored[:5], [], f"{len(restored)} acknowledged deletes came back")
        for name, _, spread in self.report:
            self.assertLess(spread, 1.5, f"partitions unbalanced after {name}")


if __name__ == "__main__":
    unittest.main(verbosity=2)
