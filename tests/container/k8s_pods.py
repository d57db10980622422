"""The rendered k8s/ manifests turned into podman containers, as a kubelet would run them.

Everything a container gets comes from the rendered objects: image arguments with
$(VAR) expanded from the container's environment, the environment itself (values,
fieldRef metadata.name / metadata.namespace / status.podIP, secretKeyRef and
configMapKeyRef), volumes (ConfigMap and Secret as files, emptyDir as a tmpfs, the
StatefulSet's volumeClaimTemplates as a directory kept per pod), the pod's and the
container's securityContext (user and group, read-only root, dropped capabilities, no
privilege escalation), the probes and the grace period.

One translation is not in the manifests: a pod has a network namespace of its own and
the containers here share the host's, so each binds its own loopback address
(--host=<pod IP>, and its DNS names resolve there), never a bridge.
"""
import base64
import os
import re
import subprocess
import time

import yaml

from http_client import http_get
from podman import Container

CLUSTER_DOMAIN = "svc.cluster.local"


def render(overlay):
    """The objects `kubectl kustomize overlay` renders, as dicts."""
    out = subprocess.run(["kubectl", "kustomize", overlay], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def find(objects, kind, name):
    for o in objects:
        if o["kind"] == kind and o["metadata"]["name"] == name:
            return o
    raise KeyError(f"{kind}/{name} not in the rendered manifests")


def secret_data(secret):
    data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    data.update(secret.get("stringData") or {})
    return data


class Workload:
    """A StatefulSet or a Deployment of the rendered manifests, and how to run its pods."""

    def __init__(self, objects, kind, name, image, work_dir, secrets=None):
        self.objects = objects
        self.obj = find(objects, kind, name)
        self.kind = kind
        self.name = name
        self.namespace = self.obj["metadata"].get("namespace", "default")
        self.pod_spec = self.obj["spec"]["template"]["spec"]
        self.container = self.pod_spec["containers"][0]
        self.image = image
        self.work_dir = work_dir
        self.secrets = secrets or {}  # secret name -> {key: value} replacing the rendered
        self.grace_s = int(self.pod_spec.get("terminationGracePeriodSeconds", 30))
        self.claims = [t["metadata"]["name"] for t in self.obj["spec"].get("volumeClaimTemplates", [])]

    # ---- the objects a pod refers to

    def _secret(self, name):
        if name in self.secrets:
            return self.secrets[name]
        return secret_data(find(self.objects, "Secret", name))

    def _config_map(self, name):
        return dict(find(self.objects, "ConfigMap", name).get("data") or {})

    def _env(self, pod_name, pod_ip):
        env = {}
        for e in self.container.get("env", []):
            if "value" in e:
                env[e["name"]] = expand(e["value"], env)
                continue
            src = e["valueFrom"]
            if "fieldRef" in src:
                field = src["fieldRef"]["fieldPath"]
                env[e["name"]] = {"metadata.name": pod_name, "status.podIP": pod_ip,
                                  "metadata.namespace": self.namespace}[field]
            elif "secretKeyRef" in src:
                ref = src["secretKeyRef"]
                env[e["name"]] = self._secret(ref["name"])[ref["key"]]
            elif "configMapKeyRef" in src:
                ref = src["configMapKeyRef"]
                env[e["name"]] = self._config_map(ref["name"])[ref["key"]]
            else:
                raise ValueError(f"env {e['name']}: unsupported source {src}")
        return env

    def _files_dir(self, pod_name, volume, files, mode):
        path = os.path.join(self.work_dir, pod_name, "volumes", volume)
        os.makedirs(path, exist_ok=True)
        for key, value in files.items():
            p = os.path.join(path, key)
            with open(p, "w") as f:
                f.write(value)
            os.chmod(p, mode)
            os.chown(p, 0, self.fs_group)  # as the kubelet does with fsGroup
        return path

    def refresh_secrets(self, pod_name):
        """Rewrites a running pod's Secret volumes from the current values, as the kubelet
        updates a mounted Secret in place (the files change; the process is not told)."""
        by_name = {v["name"]: v for v in self.pod_spec.get("volumes", [])}
        for m in self.container.get("volumeMounts", []):
            v = by_name.get(m["name"], {})
            if "secret" in v:
                self._files_dir(pod_name, m["name"], self._secret(v["secret"]["secretName"]),
                                v["secret"].get("defaultMode", 0o644))

    def claim_dir(self, pod_name, claim):
        """The pod's persistent volume for a claim template: kept across restarts."""
        path = os.path.join(self.work_dir, "claims", f"{claim}-{pod_name}")
        if not os.path.isdir(path):
            os.makedirs(path)
            os.chown(path, self.run_as_user, self.fs_group)
        return path

    @property
    def run_as_user(self):
        return int(self._security("runAsUser", 0))

    @property
    def fs_group(self):
        return int(self.pod_spec.get("securityContext", {}).get("fsGroup", self._security("runAsGroup", 0)))

    def _security(self, key, default):
        c = self.container.get("securityContext", {})
        return c.get(key, self.pod_spec.get("securityContext", {}).get(key, default))

    def port(self, name_or_number):
        if isinstance(name_or_number, int):
            return name_or_number
        for p in self.container.get("ports", []):
            if p.get("name") == name_or_number:
                return p["containerPort"]
        raise KeyError(f"no port named {name_or_number}")

    # ---- a pod

    def pod(self, pod_name, pod_ip, hosts_file):
        env = self._env(pod_name, pod_ip)
        args = [expand(a, env) for a in self.container.get("args", [])]
        args.append(f"--host={pod_ip}")  # the one translation: see the module's docstring
        volumes, extra = [], []
        by_name = {v["name"]: v for v in self.pod_spec.get("volumes", [])}
        for m in self.container.get("volumeMounts", []):
            name, path = m["name"], m["mountPath"]
            if name in self.claims:
                volumes.append(f"{self.claim_dir(pod_name, name)}:{path}")
                continue
            v = by_name[name]
            # ConfigMaps and Secrets are mounted read-only whatever the mount says
            if "configMap" in v:
                d = self._files_dir(pod_name, name, self._config_map(v["configMap"]["name"]),
                                    v["configMap"].get("defaultMode", 0o644))
                volumes.append(f"{d}:{path}:ro")
            elif "secret" in v:
                d = self._files_dir(pod_name, name, self._secret(v["secret"]["secretName"]),
                                    v["secret"].get("defaultMode", 0o644))
                volumes.append(f"{d}:{path}:ro")
            elif "emptyDir" in v:
                size = v["emptyDir"].get("sizeLimit", "64Mi")
                extra += ["--tmpfs", f"{path}:rw,size={size.replace('Mi', 'm').replace('Gi', 'g')},"
                                     f"mode=1777"]
            else:
                raise ValueError(f"volume {name}: unsupported kind {v}")
        sec = self.container.get("securityContext", {})
        if "ALL" in sec.get("capabilities", {}).get("drop", []):
            extra.append("--cap-drop=ALL")
        if sec.get("allowPrivilegeEscalation") is False:
            extra += ["--security-opt", "no-new-privileges"]
        user = f"{self.run_as_user}:{int(self._security('runAsGroup', 0))}"
        c = Container(name=pod_name, args=args, image=self.image, hostname=pod_name,
                      volumes=volumes, env=env, read_only=bool(sec.get("readOnlyRootFilesystem")),
                      user=user, hosts_file=hosts_file, extra=extra)
        c.pod_ip = pod_ip
        c.workload = self
        return c

    def probe_ok(self, pod, probe="readinessProbe"):
        p = self.container.get(probe)
        if not p:
            return True
        get = p["httpGet"]
        try:
            r = http_get(self.port(get["port"]), get["path"], host=pod.pod_ip,
                         timeout=p.get("timeoutSeconds", 1))
            return 200 <= r.status < 400
        except OSError:
            return False

    def await_probe(self, pod, probe="readinessProbe", timeout=None):
        """Polls the probe until it passes; the startup probe's budget bounds the wait."""
        p = self.container.get("startupProbe", {})
        budget = timeout or p.get("failureThreshold", 30) * p.get("periodSeconds", 10)
        deadline = time.monotonic() + budget
        while time.monotonic() < deadline:
            if self.probe_ok(pod, probe):
                return
            time.sleep(0.2)
        raise AssertionError(f"{pod.name}: {probe} did not pass within {budget} s:\n{pod.logs()[-3000:]}")


def expand(text, env):
    """Kubernetes' $(VAR) expansion in args and env values ($$ escapes)."""
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                  lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), text)


class Dns:
    """Cluster DNS for the pods: one hosts file every container mounts, rewritten in
    place (same inode) as pods come and go. The headless Service's name resolves to
    every node pod (publishNotReadyAddresses), each pod's names to its own address."""

    def __init__(self, path, namespace, headless_service):
        self.path = path
        self.namespace = namespace
        self.service = headless_service
        self.pods = {}  # name -> (ip, in the headless service)
        with open(path, "w") as f:
            f.write("127.0.0.1 localhost\n")

    def add(self, name, ip, in_service):
        self.pods[name] = (ip, in_service)
        self._write()

    def remove(self, name):
        self.pods.pop(name, None)
        self._write()

    def _write(self):
        svc = f"{self.service}.{self.namespace}.{CLUSTER_DOMAIN}"
        lines = ["127.0.0.1 localhost"]
        for name, (ip, in_service) in sorted(self.pods.items()):
            names = [name]
            if in_service:
                names.insert(0, f"{name}.{svc}")
                lines.append(f"{ip} {svc}")
            lines.append(f"{ip} {' '.join(names)}")
        with open(self.path, "r+") as f:
            f.seek(0)
            f.write("\n".join(lines) + "\n")
            f.truncate()
