#!/usr/bin/env python3
"""The Kubernetes manifests of k8s/, checked offline: every overlay renders with
`kubectl kustomize`, every rendered object validates against the Kubernetes OpenAPI
schemas (tests/k8s/validate.js: kubernetes-models, plus a check for fields the schemas do
not know), and the rendered objects keep the deployment's rules: probes, resources and a
locked-down security context on every container, the public Service, the disruption
budget, the headless Service, the network policies, the node and router counts of each
overlay, and the secrets config.yaml names. Finally the binary itself is started with
each overlay's rendered arguments, ConfigMap and Secret (on loopback, paths moved into a
temporary folder), so a flag or a config key it does not know fails here, not in a pod.

kubectl is not installed from Debian here (Debian's kubernetes-client is 1.20, whose
kustomize is too old for these kustomizations), so scripts/setup.sh cannot install it: where
it is absent the test says so and exits 77, which ctest counts as skipped; missing npm packages
(scripts/setup.sh installs them) or node fail it.

Run: python3 tests/k8s/test_manifests.py (SYNAPSE_BIN picks the binary).
"""
import base64
import copy
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
OVERLAYS = os.path.join(ROOT, "k8s", "overlays")
VALIDATE = os.path.join(HERE, "validate.js")
NPM_DIR = os.environ.get("SYNAPSE_NPM_DIR") or os.path.join(ROOT, "tests", "interop", "npm")

NAMESPACE = "synapse"
NODE_LABELS = {"app.kubernetes.io/name": "synapse-node"}
ROUTER_LABELS = {"app.kubernetes.io/name": "synapse-router"}
NODE_DNS = "$(POD_NAME).synapse-nodes.synapse.svc.cluster.local"
SEEDS = "tcp://synapse-nodes.synapse.svc.cluster.local:7000"
NOBODY = 65534
# Ports only the tracker's own pods may reach: (pods, port).
PRIVATE_PORTS = [(NODE_LABELS, 7000), (NODE_LABELS, 7001), (NODE_LABELS, 7080), (ROUTER_LABELS, 7001)]
PUBLIC_PORTS = [(ROUTER_LABELS, 6881, "TCP"), (ROUTER_LABELS, 6882, "TCP"), (ROUTER_LABELS, 6969, "UDP")]
# Labels of pods that are neither nodes nor routers, for "only from nodes and routers".
OTHER_PODS = [{}, {"app.kubernetes.io/name": "something-else"}]


def kubectl():
    return shutil.which("kubectl")


def render(overlay):
    p = subprocess.run([kubectl(), "kustomize", overlay], capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise AssertionError(f"kubectl kustomize {overlay} failed:\n{p.stderr}")
    return p.stdout


def validate(yaml_text):
    """Runs validate.js on a YAML stream: (exit code, objects, errors)."""
    p = subprocess.run(["node", VALIDATE], input=yaml_text, capture_output=True, text=True, timeout=120)
    if p.returncode not in (0, 1):
        raise AssertionError(f"validate.js could not run (exit {p.returncode}):\n{p.stderr}")
    out = json.loads(p.stdout)
    return p.returncode, out["objects"], out["errors"]


# ---- reading objects -----------------------------------------------------------------


def find(objects, kind, name=None):
    return [o for o in objects if o.get("kind") == kind and (name is None or o["metadata"].get("name") == name)]


def one(objects, kind, name):
    found = find(objects, kind, name)
    if len(found) != 1:
        raise AssertionError(f"expected one {kind} {name}, found {len(found)}")
    return found[0]


def selects(selector, labels):
    """Whether a LabelSelector selects a pod with these labels."""
    if selector is None:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e["key"], e["operator"], e.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def workloads(objects):
    """(object, pod spec, pod labels, pod annotations) of every pod-making object."""
    out = []
    for o in objects:
        if o["kind"] in ("StatefulSet", "Deployment", "DaemonSet", "ReplicaSet", "Job"):
            t = o["spec"]["template"]
            md = t.get("metadata") or {}
            out.append((o, t["spec"], md.get("labels") or {}, md.get("annotations") or {}))
    return out


def pod_labels(objects, kind, name):
    return one(objects, kind, name)["spec"]["template"]["metadata"]["labels"]


def container(objects, kind, name, cname):
    cs = [c for c in one(objects, kind, name)["spec"]["template"]["spec"]["containers"] if c["name"] == cname]
    if len(cs) != 1:
        raise AssertionError(f"{kind} {name} has no container {cname!r}")
    return cs[0]


def flag(args, name):
    """The value of --name=VALUE (or --name VALUE) in a container's args, or None."""
    for i, a in enumerate(args):
        if a.startswith(f"--{name}="):
            return a.split("=", 1)[1]
        if a == f"--{name}" and i + 1 < len(args):
            return args[i + 1]
    return None


def port_number(c, port):
    if isinstance(port, int):
        return port
    for p in c.get("ports") or []:
        if p.get("name") == port:
            return p["containerPort"]
    return None


# ---- the rules, each returning the problems it finds ------------------------------------


def problems_containers(objects):
    found = []
    for o, spec, _, _ in workloads(objects):
        where = f"{o['kind']}/{o['metadata']['name']}"
        psc = spec.get("securityContext") or {}
        for key in ("runAsUser", "runAsGroup", "fsGroup"):
            if psc.get(key) != NOBODY:
                found.append(f"{where}: pod securityContext.{key} is {psc.get(key)!r}, not {NOBODY}")
        for c in (spec.get("initContainers") or []) + spec["containers"]:
            cw = f"{where} container {c['name']}"
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                if not c.get(probe):
                    found.append(f"{cw}: no {probe}")
            for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
                get = (c.get(probe) or {}).get("httpGet") or {}
                if get.get("path") != path:
                    found.append(f"{cw}: {probe} is not GET {path}")
                elif port_number(c, get.get("port")) is None:
                    found.append(f"{cw}: {probe} port {get.get('port')!r} is not a container port")
            res = c.get("resources") or {}
            for kind in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    if not (res.get(kind) or {}).get(r):
                        found.append(f"{cw}: no {kind}.{r}")
            csc = c.get("securityContext") or {}

            def effective(key):
                return csc[key] if key in csc else psc.get(key)
            if effective("runAsNonRoot") is not True:
                found.append(f"{cw}: runAsNonRoot is not true")
            if not isinstance(effective("runAsUser"), int) or effective("runAsUser") == 0:
                found.append(f"{cw}: no numeric non-root runAsUser")
            if csc.get("readOnlyRootFilesystem") is not True:
                found.append(f"{cw}: readOnlyRootFilesystem is not true")
            if csc.get("allowPrivilegeEscalation") is not False:
                found.append(f"{cw}: allowPrivilegeEscalation is not false")
            if "ALL" not in ((csc.get("capabilities") or {}).get("drop") or []):
                found.append(f"{cw}: capabilities do not drop ALL")
            if (csc.get("capabilities") or {}).get("add"):
                found.append(f"{cw}: adds capabilities")
            if (effective("seccompProfile") or {}).get("type") != "RuntimeDefault":
                found.append(f"{cw}: seccompProfile is not RuntimeDefault")
            volumes = {v["name"] for v in spec.get("volumes") or []}
            volumes |= {t["metadata"]["name"] for t in o["spec"].get("volumeClaimTemplates") or []}
            for m in c.get("volumeMounts") or []:
                if m["name"] not in volumes:
                    found.append(f"{cw}: mounts {m['name']!r}, which is no volume")
    return found


def problems_metrics(objects):
    found = []
    for o, spec, _, ann in workloads(objects):
        where = f"{o['kind']}/{o['metadata']['name']}"
        if ann.get("prometheus.io/scrape") != "true" or ann.get("prometheus.io/path") != "/metrics":
            found.append(f"{where}: no prometheus.io/scrape \"true\" and path /metrics")
        ports = {p["containerPort"] for c in spec["containers"] for p in c.get("ports") or []}
        if not str(ann.get("prometheus.io/port", "")).isdigit() or int(ann["prometheus.io/port"]) not in ports:
            found.append(f"{where}: prometheus.io/port {ann.get('prometheus.io/port')!r} is not a container port")
    return found


def problems_nodes(objects):
    found = []
    sts = one(objects, "StatefulSet", "synapse-node")
    spec = sts["spec"]["template"]["spec"]
    c = container(objects, "StatefulSet", "synapse-node", "node")
    args = c.get("args") or []
    if sts["spec"].get("serviceName") != "synapse-nodes":
        found.append("StatefulSet serviceName is not synapse-nodes")
    if flag(args, "node-id") != "$(POD_NAME)":
        found.append("node id is not the pod name")
    if flag(args, "cluster-addr") != f"tcp://{NODE_DNS}:7000":
        found.append(f"--cluster-addr is {flag(args, 'cluster-addr')!r}")
    if flag(args, "peer-addr") != f"tcp://{NODE_DNS}:7001":
        found.append(f"--peer-addr is {flag(args, 'peer-addr')!r}")
    if flag(args, "seeds") != SEEDS:
        found.append(f"--seeds is {flag(args, 'seeds')!r}, not the headless Service")
    env = {e["name"]: e for e in c.get("env") or []}
    if ((env.get("POD_NAME") or {}).get("valueFrom") or {}).get("fieldRef", {}).get("fieldPath") != "metadata.name":
        found.append("POD_NAME does not come from metadata.name")
    claims = {t["metadata"]["name"] for t in sts["spec"].get("volumeClaimTemplates") or []}
    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts") or []}
    if mounts.get(flag(args, "data-dir")) not in claims:
        found.append("the data directory is not on a volumeClaimTemplate")
    empty = {v["name"] for v in spec.get("volumes") or [] if "emptyDir" in v}
    if mounts.get("/tmp") not in empty:
        found.append("no emptyDir on /tmp (SQLite's temporary files)")
    if (spec.get("terminationGracePeriodSeconds") or 30) < 60:
        found.append("terminationGracePeriodSeconds is under 60 s: no time for a graceful leave")
    keys = {t["topologyKey"] for t in spec.get("topologySpreadConstraints") or []
            if selects(t.get("labelSelector"), pod_labels(objects, "StatefulSet", "synapse-node"))}
    for key in ("kubernetes.io/hostname", "topology.kubernetes.io/zone"):
        if key not in keys:
            found.append(f"nodes are not spread across {key}")
    ports = {p["containerPort"] for p in c.get("ports") or []}
    if not {7000, 7001, 7080} <= ports or flag(args, "port") != "7080":
        found.append("node ports are not 7000, 7001 and admin 7080")
    return found


def problems_routers(objects):
    found = []
    c = container(objects, "Deployment", "synapse-router", "router")
    args = c.get("args") or []
    if flag(args, "seeds") != SEEDS:
        found.append(f"router --seeds is {flag(args, 'seeds')!r}")
    if flag(args, "port") != "6881" or flag(args, "udp-port") != "6969" or flag(args, "ws-port") != "6882":
        found.append("router ports are not HTTP 6881, UDP 6969 and WebSocket 6882")
    ports = {(p["containerPort"], p.get("protocol", "TCP")) for p in c.get("ports") or []}
    if not {(6881, "TCP"), (6882, "TCP"), (6969, "UDP")} <= ports:
        found.append("router container does not declare 6881/TCP, 6882/TCP and 6969/UDP")
    return found


def problems_services(objects):
    found = []
    ns = find(objects, "Namespace")
    if [n["metadata"]["name"] for n in ns] != [NAMESPACE]:
        found.append(f"namespaces are {[n['metadata']['name'] for n in ns]}")
    for o in objects:
        if o["kind"] != "Namespace" and o["metadata"].get("namespace") != NAMESPACE:
            found.append(f"{o['kind']}/{o['metadata']['name']} is not in namespace {NAMESPACE}")
    headless = one(objects, "Service", "synapse-nodes")
    if headless["spec"].get("clusterIP") != "None":
        found.append("synapse-nodes is not headless")
    if headless["spec"].get("publishNotReadyAddresses") is not True:
        found.append("synapse-nodes does not publish not-ready addresses")
    selector = headless["spec"].get("selector")
    if not selector or not selects({"matchLabels": selector}, pod_labels(objects, "StatefulSet", "synapse-node")):
        found.append("synapse-nodes does not select the nodes")
    if not {7000, 7001, 7080} <= {p["port"] for p in headless["spec"].get("ports") or []}:
        found.append("synapse-nodes does not carry 7000, 7001 and 7080")
    lbs = [s for s in find(objects, "Service") if s["spec"].get("type") == "LoadBalancer"]
    if len(lbs) != 1:
        found.append(f"{len(lbs)} LoadBalancer Services, not one")
        return found
    lb = lbs[0]
    if lb["spec"].get("externalTrafficPolicy") != "Local":
        found.append("the public Service's externalTrafficPolicy is not Local")
    router = container(objects, "Deployment", "synapse-router", "router")
    if not lb["spec"].get("selector") or \
            not selects({"matchLabels": lb["spec"]["selector"]}, pod_labels(objects, "Deployment", "synapse-router")):
        found.append("the public Service does not select the routers")
    have = set()
    for p in lb["spec"].get("ports") or []:
        proto = p.get("protocol", "TCP")
        target = p.get("targetPort", p["port"])
        declared = {(q["containerPort"], q.get("protocol", "TCP")) for q in router.get("ports") or []}
        if (port_number(router, target), proto) not in declared:
            found.append(f"public port {p['port']}/{proto} targets {target!r}, no such router port")
        have.add((p["port"], proto))
    for want in ((6881, "TCP"), (6882, "TCP"), (6969, "UDP")):
        if want not in have:
            found.append(f"the public Service does not carry {want[0]}/{want[1]}")
    return found


def problems_pdb(objects):
    node_labels = pod_labels(objects, "StatefulSet", "synapse-node")
    ok = [p for p in find(objects, "PodDisruptionBudget")
          if p["spec"].get("maxUnavailable") == 1 and selects(p["spec"].get("selector"), node_labels)]
    return [] if ok else ["no PodDisruptionBudget with maxUnavailable 1 selects the nodes"]


def admitting_rules(objects, labels, port, protocol, named):
    """Every ingress rule of every policy that selects these pods and admits the port."""
    out = []
    for pol in find(objects, "NetworkPolicy"):
        spec = pol["spec"]
        if not selects(spec.get("podSelector"), labels):
            continue
        if "Ingress" not in (spec.get("policyTypes") or ["Ingress"]):
            continue
        for rule in spec.get("ingress") or []:
            ports = rule.get("ports")
            if not ports or any(
                    p.get("protocol", "TCP") == protocol
                    and (p.get("port") is None or p.get("port") == port or named.get(p.get("port")) == port
                         or (isinstance(p.get("port"), int) and p.get("endPort") and p["port"] <= port <= p["endPort"]))
                    for p in ports):
                out.append((pol["metadata"]["name"], rule))
    return out


def isolated(objects, labels):
    return any(selects(p["spec"].get("podSelector"), labels) and "Ingress" in (p["spec"].get("policyTypes") or ["Ingress"])
               for p in find(objects, "NetworkPolicy"))


def problems_network(objects):
    found = []
    members = [pod_labels(objects, "StatefulSet", "synapse-node"), pod_labels(objects, "Deployment", "synapse-router")]
    pods = {"nodes": (members[0], container(objects, "StatefulSet", "synapse-node", "node")),
            "routers": (members[1], container(objects, "Deployment", "synapse-router", "router"))}
    for want, port in PRIVATE_PORTS:
        who = "nodes" if want is NODE_LABELS else "routers"
        labels, c = pods[who]
        named = {p["name"]: p["containerPort"] for p in c.get("ports") or [] if p.get("name")}
        if not isolated(objects, labels):
            found.append(f"no ingress NetworkPolicy selects the {who}: port {port} is open to all")
            continue
        rules = admitting_rules(objects, labels, port, "TCP", named)
        if not rules:
            found.append(f"{who} port {port}: no rule admits it (nodes and routers must reach it)")
        for name, rule in rules:
            peers = rule.get("from")
            if not peers:
                found.append(f"{who} port {port}: policy {name} admits every source")
                continue
            for peer in peers:
                if "podSelector" not in peer or set(peer) != {"podSelector"}:
                    found.append(f"{who} port {port}: policy {name} admits {sorted(peer)} sources")
                elif any(selects(peer["podSelector"], other) for other in OTHER_PODS) or \
                        not any(selects(peer["podSelector"], m) for m in members):
                    found.append(f"{who} port {port}: policy {name} admits pods other than nodes and routers")
        reached = {i for _, rule in rules for peer in rule.get("from") or [] for i, m in enumerate(members)
                   if selects(peer.get("podSelector"), m)}
        if rules and reached != {0, 1}:
            found.append(f"{who} port {port}: not reachable from both nodes and routers")
    for want, port, proto in PUBLIC_PORTS:
        labels, c = pods["routers"]
        named = {p["name"]: p["containerPort"] for p in c.get("ports") or [] if p.get("name")}
        if not any(not rule.get("from") for _, rule in admitting_rules(objects, labels, port, proto, named)):
            found.append(f"routers {port}/{proto} is not open to every source")
    return found


def problems_secrets(objects):
    """config.yaml names secret files; each must be a key of the Secret mounted there, in
    every workload (a node reads the same file), and every Secret and ConfigMap a pod
    mounts must exist."""
    found = []
    cm = one(objects, "ConfigMap", "synapse-config")
    if "config.yaml" not in (cm.get("data") or {}):
        found.append("synapse-config has no config.yaml")
        return found
    secret = one(objects, "Secret", "synapse-secrets")
    keys = set(secret.get("stringData") or {}) | set(secret.get("data") or {})
    for want in ("udp-secret", "cluster-key", "api-tokens"):
        if want not in keys:
            found.append(f"synapse-secrets has no {want}")
    files = re.findall(r"^\s*(\w*_file):\s*\"?([^\s\"#]+)", cm["data"]["config.yaml"], re.M)
    named = {k for k, _ in files}
    for want in ("udp_secret_file", "key_file", "tokens_file"):
        if want not in named:
            found.append(f"config.yaml does not name the {want} (the Secret mounted as files)")
    for o, spec, _, _ in workloads(objects):
        vols = {v["name"]: v for v in spec.get("volumes") or []}
        for v in vols.values():
            if "secret" in v and not find(objects, "Secret", v["secret"]["secretName"]):
                found.append(f"{o['metadata']['name']}: volume {v['name']} names a missing Secret")
            if "configMap" in v and not find(objects, "ConfigMap", v["configMap"]["name"]):
                found.append(f"{o['metadata']['name']}: volume {v['name']} names a missing ConfigMap")
        for c in spec["containers"]:
            mounts = {m["mountPath"]: vols.get(m["name"]) for m in c.get("volumeMounts") or []}
            for key, path in files:
                d, base = os.path.dirname(path), os.path.basename(path)
                v = mounts.get(d)
                if not v or "secret" not in v or v["secret"]["secretName"] != "synapse-secrets" or base not in keys:
                    found.append(f"{o['metadata']['name']}/{c['name']}: {key} {path} is not a key of "
                                 "synapse-secrets mounted there")
            config = flag(c.get("args") or [], "config")
            v = mounts.get(os.path.dirname(config or ""))
            if not v or (v.get("configMap") or {}).get("name") != "synapse-config" \
                    or os.path.basename(config) != "config.yaml":
                found.append(f"{o['metadata']['name']}/{c['name']}: --config {config!r} is not "
                             "synapse-config's config.yaml")
            if any(e["name"] in ("SYNAPSE_CLUSTER_KEY", "SYNAPSE_UDP_SECRET") for e in c.get("env") or []):
                found.append(f"{o['metadata']['name']}/{c['name']}: a secret in the environment as well as in a file")
    return found


def problems_counts(overlay, objects):
    nodes = one(objects, "StatefulSet", "synapse-node")["spec"].get("replicas", 1)
    routers = one(objects, "Deployment", "synapse-router")["spec"].get("replicas", 1)
    hpas = [h for h in find(objects, "HorizontalPodAutoscaler")
            if h["spec"]["scaleTargetRef"].get("kind") == "Deployment"
            and h["spec"]["scaleTargetRef"].get("name") == "synapse-router"]
    found = []
    for h in hpas:
        if h["apiVersion"] != "autoscaling/v2":
            found.append(f"HPA {h['metadata']['name']} is {h['apiVersion']}")
        if not any(m.get("type") == "Resource" and m["resource"]["name"] == "cpu" for m in h["spec"].get("metrics") or []):
            found.append(f"HPA {h['metadata']['name']} does not scale on cpu")
    if overlay == "dev":
        if nodes != 1 or routers != 1:
            found.append(f"dev runs {nodes} nodes and {routers} routers, not 1 and 1")
        if any(h["spec"].get("minReplicas", 1) > 1 or h["spec"]["maxReplicas"] > 1 for h in hpas):
            found.append("dev's autoscaler would run more than one router")
    if overlay == "prod":
        if nodes < 3:
            found.append(f"prod runs {nodes} nodes, fewer than 3")
        if routers < 2:
            found.append(f"prod runs {routers} routers, fewer than 2")
        if len(hpas) != 1:
            found.append(f"prod has {len(hpas)} autoscalers for the routers, not one")
        elif hpas[0]["spec"].get("minReplicas", 1) < 2:
            found.append("prod's autoscaler may go below 2 routers")
    return found


ALL_RULES = (problems_containers, problems_metrics, problems_nodes, problems_routers, problems_services,
             problems_pdb, problems_network, problems_secrets)


def all_problems(overlay, objects):
    found = []
    for rule in ALL_RULES:
        found += rule(objects)
    return found + problems_counts(overlay, objects)


# ---- the binary with the rendered arguments --------------------------------------------


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def distinct_tcp_ports(n, taken=()):
    """n free TCP ports, different from each other and from `taken`."""
    out, seen = [], set(taken)
    while len(out) < n:
        p = free_port()
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out


def free_port_pair():
    """Two consecutive free TCP ports: a node's peer address is its cluster port + 1."""
    for _ in range(200):
        p = free_port()
        if p >= 65535:
            continue
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", p + 1))
            return p
        except OSError:
            continue
    raise AssertionError("no two consecutive free ports")


class PodOnLoopback:
    """A container of a rendered pod run here: its config and secret volumes written under
    a temporary root, its arguments kept except the addresses, ports and paths."""

    def __init__(self, root, objects, kind, name, cname, pod_name, overrides):
        self.root = root
        obj = one(objects, kind, name)
        spec = obj["spec"]["template"]["spec"]
        c = container(objects, kind, name, cname)
        vols = {v["name"]: v for v in spec.get("volumes") or []}
        mounts = c.get("volumeMounts") or []
        self.mounts = {m["mountPath"]: os.path.join(root, pod_name, m["mountPath"].lstrip("/")) for m in mounts}
        for m in mounts:
            local = self.mounts[m["mountPath"]]
            os.makedirs(local, exist_ok=True)
            v = vols.get(m["name"])
            if v and "configMap" in v:
                for k, text in one(objects, "ConfigMap", v["configMap"]["name"])["data"].items():
                    with open(os.path.join(local, k), "w") as f:
                        f.write(self.localise(text) if k.endswith(".yaml") else text)
            elif v and "secret" in v:
                s = one(objects, "Secret", v["secret"]["secretName"])
                items = {k: base64.b64decode(x) for k, x in (s.get("data") or {}).items()}
                items.update({k: x.encode() for k, x in (s.get("stringData") or {}).items()})
                for k, data in items.items():
                    with open(os.path.join(local, k), "wb") as f:
                        f.write(data)
        args = []
        for a in c.get("args") or []:
            key = a.split("=", 1)[0].lstrip("-")
            if key in overrides:
                continue
            if key in ("config", "data-dir"):
                a = f"--{key}={self.local(a.split('=', 1)[1])}"
            args.append(a.replace("$(POD_NAME)", pod_name))
        self.args = args + [f"--{k}={v}" for k, v in overrides.items()] + ["--host=127.0.0.1"]
        self.log_path = os.path.join(root, f"{pod_name}.log")
        self.proc = None

    def local(self, path):
        best = max((m for m in self.mounts if path == m or path.startswith(m.rstrip("/") + "/")), key=len, default=None)
        return path if best is None else self.mounts[best] + path[len(best):]

    def localise(self, text):
        return re.sub(r"(?<=[\s\"'])(/[^\s\"'#,\]]+)", lambda m: self.local(m.group(1)), text)

    def start(self, binary, seconds=30):
        """Starts the process and waits for its ready line."""
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen([binary] + self.args, stdout=subprocess.PIPE, stderr=log)
        fd = self.proc.stdout.fileno()
        seen = b""
        deadline = time.time() + seconds
        while b"\n" not in seen and time.time() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                seen += chunk
        if not seen.startswith(b"ready "):
            self.stop()
            raise AssertionError(f"{self.args} did not start: {seen!r}\n{self.output()}")

    def output(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self):
        """SIGTERM, as the kubelet sends, then waits; returns what the process logged."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.proc.stdout.close()
        return self.output()


def http_status(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def wait_status(port, path, want, seconds=20):
    deadline = time.time() + seconds
    got = None
    while time.time() < deadline:
        got = http_status(port, path)
        if got == want:
            return got
        time.sleep(0.1)
    return got


def binary():
    path = os.environ.get("SYNAPSE_BIN") or os.path.join(ROOT, "build", "app", "synapse-tracker")
    return path if os.access(path, os.X_OK) else None


# ---- the tests -----------------------------------------------------------------------


class ManifestsTest(unittest.TestCase):
    rendered = {}

    @classmethod
    def setUpClass(cls):
        if not kubectl():
            raise unittest.SkipTest("kubectl is not installed (Debian's 1.20 is too old to render k8s/): "
                                    "the k8s/ manifests are not checked")
        if not shutil.which("node"):
            raise AssertionError("node is not installed: run scripts/setup.sh")
        if not os.path.isdir(os.path.join(NPM_DIR, "node_modules", "kubernetes-models")):
            raise AssertionError(f"kubernetes-models is not installed in {NPM_DIR}/node_modules: "
                                 "run scripts/setup.sh (or npm install there)")
        names = sorted(d for d in os.listdir(OVERLAYS) if os.path.isfile(os.path.join(OVERLAYS, d, "kustomization.yaml")))
        if not {"dev", "prod"} <= set(names):
            raise AssertionError(f"k8s/overlays has {names}, not dev and prod")
        cls.rendered = {}
        for name in names:
            text = render(os.path.join(OVERLAYS, name))
            rc, objects, errors = validate(text)
            cls.rendered[name] = (text, objects, errors, rc)

    def each(self):
        for name, (_, objects, _, _) in self.rendered.items():
            yield name, objects

    def test_schemas(self):
        for name, (_, objects, errors, rc) in self.rendered.items():
            with self.subTest(overlay=name):
                self.assertEqual(errors, [], f"{name}: objects that do not validate")
                self.assertEqual(rc, 0)
                kinds = {o["kind"] for o in objects}
                for kind in ("Namespace", "StatefulSet", "Deployment", "Service", "ConfigMap", "Secret",
                             "PodDisruptionBudget", "NetworkPolicy"):
                    self.assertIn(kind, kinds, f"{name}: no {kind}")

    def test_validator_is_not_vacuous(self):
        """A misspelt field, a wrong type, an unknown kind and a broken document each fail."""
        text = self.rendered["prod"][0]
        cases = {
            "unknown field": (text.replace("readinessProbe:", "readinesProbe:", 1), "readinesProbe: unknown field"),
            "wrong type": (re.sub(r"containerPort: 7000\b", 'containerPort: "seven"', text, count=1),
                           "containerPort must be integer"),
            "bad enum": (text.replace("protocol: UDP", "protocol: QUIC", 1), "allowed values"),
            "unknown kind": (text + "---\napiVersion: example.org/v1\nkind: Widget\nmetadata: {name: w}\n",
                             "no schema for apiVersion example.org/v1 kind Widget"),
            "broken YAML": (text + "---\nkind: [\n", "document"),
        }
        for what, (broken, needle) in cases.items():
            with self.subTest(case=what):
                rc, _, errors = validate(broken)
                self.assertEqual(rc, 1, what)
                self.assertTrue(any(needle in e for e in errors), f"{what}: {errors}")

    def test_policy(self):
        for name, objects in self.each():
            with self.subTest(overlay=name):
                self.assertEqual(all_problems(name, objects), [])

    def test_policy_catches_breakage(self):
        """Each rule finds what it is there for, so a passing run means something."""
        base = self.rendered["prod"][1]

        def broken(edit):
            objects = copy.deepcopy(base)
            edit(objects)
            return all_problems("prod", objects)

        def node_c(o):
            return container(o, "StatefulSet", "synapse-node", "node")

        def router_c(o):
            return container(o, "Deployment", "synapse-router", "router")

        def policy(o, name):
            return one(o, "NetworkPolicy", name)["spec"]

        cases = {
            "no startupProbe": (lambda o: node_c(o).pop("startupProbe"), "no startupProbe"),
            "no cpu limit": (lambda o: router_c(o)["resources"]["limits"].pop("cpu"), "no limits.cpu"),
            "writable root": (lambda o: node_c(o)["securityContext"].update(readOnlyRootFilesystem=False),
                              "readOnlyRootFilesystem"),
            "root": (lambda o: router_c(o)["securityContext"].update(runAsNonRoot=False), "runAsNonRoot"),
            "capabilities kept": (lambda o: router_c(o)["securityContext"]["capabilities"].update(drop=[]),
                                  "drop ALL"),
            "no UDP": (lambda o: one(o, "Service", "synapse-tracker")["spec"]["ports"].pop(1), "6969/UDP"),
            "cluster policy": (lambda o: one(o, "Service", "synapse-tracker")["spec"].update(
                externalTrafficPolicy="Cluster"), "externalTrafficPolicy"),
            "PDB of 2": (lambda o: one(o, "PodDisruptionBudget", "synapse-node")["spec"].update(maxUnavailable=2),
                         "PodDisruptionBudget"),
            "ready addresses only": (lambda o: one(o, "Service", "synapse-nodes")["spec"].update(
                publishNotReadyAddresses=False), "not-ready"),
            "cluster port open": (lambda o: policy(o, "synapse-node")["ingress"][0].pop("from"), "admits every source"),
            "peer port from anywhere": (lambda o: policy(o, "synapse-node")["ingress"][0]["from"].append(
                {"ipBlock": {"cidr": "0.0.0.0/0"}}), "ipBlock"),
            "peer port from any pod": (lambda o: policy(o, "synapse-node")["ingress"][0]["from"].append(
                {"podSelector": {}}), "pods other than"),
            "no node policy": (lambda o: o.remove(one(o, "NetworkPolicy", "synapse-node")) or
                               o.remove(one(o, "NetworkPolicy", "synapse-default-deny")), "open to all"),
            "announces closed": (lambda o: policy(o, "synapse-router")["ingress"].pop(0), "not open"),
            "two nodes": (lambda o: one(o, "StatefulSet", "synapse-node")["spec"].update(replicas=2), "fewer than 3"),
            "HPA min 1": (lambda o: find(o, "HorizontalPodAutoscaler")[0]["spec"].update(minReplicas=1), "below 2"),
            "seeds": (lambda o: node_c(o).update(args=[a for a in node_c(o)["args"] if not a.startswith("--seeds")]),
                      "--seeds"),
            "missing secret key": (lambda o: one(o, "Secret", "synapse-secrets")["stringData"].pop("cluster-key"),
                                   "cluster-key"),
        }
        for what, (edit, needle) in cases.items():
            with self.subTest(case=what):
                found = broken(edit)
                self.assertTrue(any(needle in p for p in found), f"{what}: {found}")

    def test_binary_runs_the_rendered_pods(self):
        """Each overlay's node and router, started here with their rendered arguments,
        ConfigMap and Secret: they start, find each other, take the keys from the files,
        and answer the probes' paths."""
        path = binary()
        if not path:
            self.skipTest("no built binary (SYNAPSE_BIN, or build/app/synapse-tracker)")
        for name, objects in self.each():
            with self.subTest(overlay=name), tempfile.TemporaryDirectory(prefix="synapse-k8s-") as root:
                cluster = free_port_pair()
                # distinct: the kernel may hand back a port just closed by the call before
                admin, http, gossip = distinct_tcp_ports(3, taken={cluster, cluster + 1})
                udp = free_port(socket.SOCK_DGRAM)
                node = PodOnLoopback(root, objects, "StatefulSet", "synapse-node", "node", "synapse-node-0", {
                    "cluster-addr": f"tcp://127.0.0.1:{cluster}", "peer-addr": f"tcp://127.0.0.1:{cluster + 1}",
                    "seeds": f"tcp://127.0.0.1:{cluster}", "port": admin})
                router = PodOnLoopback(root, objects, "Deployment", "synapse-router", "router", "synapse-router-x", {
                    "peer-addr": f"tcp://127.0.0.1:{gossip}", "seeds": f"tcp://127.0.0.1:{cluster}",
                    "port": http, "udp-port": udp})
                try:
                    node.start(path)
                    router.start(path)
                    self.assertEqual(wait_status(admin, "/healthz", 200), 200, node.output())
                    self.assertEqual(wait_status(admin, "/readyz", 200), 200, node.output())
                    self.assertEqual(wait_status(http, "/healthz", 200), 200, router.output())
                    self.assertEqual(wait_status(http, "/readyz", 200), 200, router.output())
                    self.assertEqual(http_status(http, "/metrics"), 200)
                    self.assertEqual(http_status(admin, "/metrics"), 200)
                finally:
                    logs = {"router": router.stop(), "node": node.stop()}
                for who, log in logs.items():
                    self.assertNotIn("no cluster key", log, f"{who} found no cluster key:\n{log}")
                    self.assertNotIn(" error ", log, f"{who} logged an error:\n{log}")
                    self.assertEqual((node if who == "node" else router).proc.returncode, 0, f"{who}:\n{log}")
                self.assertIn("connection-ID key from the configured secret", logs["router"])


# The exit code ctest reads as "skipped" (SKIP_RETURN_CODE in tests/CMakeLists.txt).
SKIPPED = 77

if __name__ == "__main__":
    if not kubectl():
        print("test_manifests: SKIPPED: kubectl is not installed (Debian's 1.20 is too old to render "
              "k8s/): the k8s/ manifests are not checked", file=sys.stderr)
        sys.exit(SKIPPED)
    unittest.main(verbosity=2)
