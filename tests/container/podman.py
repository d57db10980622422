"""podman as the container tests use it: runc, host networking, explicit limits.

Every container runs with --network host and binds a loopback address of its own
(127.0.1.N), never podman's default bridge (whose 10.88.0.0/16 lives in the root network
namespace). Containers are named with a per-run prefix and removed when the test ends.
"""
import json
import os
import resource
import subprocess
import time

IMAGE = os.environ.get("SYNAPSE_IMAGE", "localhost/synapse-tracker:test")


def _ulimits():
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    # podman's defaults are refused here; nproc above a few thousand is refused too
    return ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", "nproc=4096:4096"]


def podman(*args, check=True, timeout=120, capture=True):
    """Runs `podman --runtime runc ARGS`; returns the CompletedProcess."""
    p = subprocess.run(["podman", "--runtime", "runc", *args], capture_output=capture,
                       text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)} failed ({p.returncode}): {p.stderr.strip()}")
    return p


def image_config(image=IMAGE):
    return json.loads(podman("image", "inspect", image).stdout)[0]


def run_once(*cmd, entrypoint=None, image=IMAGE, extra=()):
    """Runs a throwaway container to completion; returns its stdout."""
    args = ["run", "--rm", "--network", "host", *_ulimits(), *extra]
    if entrypoint:
        args += ["--entrypoint", entrypoint]
    return podman(*args, image, *cmd).stdout


class Container:
    """A detached container; start() returns once podman reports it running."""

    def __init__(self, name, args=(), image=IMAGE, hostname=None, volumes=(), env=None,
                 read_only=True, user=None, hosts_file=None, extra=()):
        self.name = name
        self.args = list(args)
        self.image = image
        self.hostname = hostname
        self.volumes = list(volumes)
        self.env = dict(env or {})
        self.read_only = read_only
        self.user = user
        self.hosts_file = hosts_file
        self.extra = list(extra)

    def start(self):
        a = ["run", "-d", "--name", self.name, "--network", "host", *_ulimits()]
        if self.hostname:
            a += ["--hostname", self.hostname]
        if self.read_only:
            a += ["--read-only", "--read-only-tmpfs=false"]
        if self.user:
            a += ["--user", self.user]
        if self.hosts_file:  # stands for cluster DNS: rewritten in place as pods come and go
            a += ["--no-hosts", "-v", f"{self.hosts_file}:/etc/hosts:ro"]
        for v in self.volumes:
            a += ["-v", v]
        for k, v in self.env.items():
            a += ["-e", f"{k}={v}"]
        a += self.extra
        podman(*a, self.image, *self.args)
        return self

    def state(self):
        p = podman("inspect", self.name, "--format", "{{json .State}}", check=False)
        return json.loads(p.stdout) if p.returncode == 0 else None

    def stop(self, grace_s=30):
        """SIGTERM, then SIGKILL after grace_s, as the kubelet does; returns
        (exit code, seconds taken)."""
        t0 = time.monotonic()
        podman("stop", "-t", str(grace_s), self.name, check=False, timeout=grace_s + 30)
        st = self.state() or {}
        return st.get("ExitCode"), time.monotonic() - t0

    def logs(self):
        p = podman("logs", self.name, check=False)
        return p.stdout + p.stderr

    def remove(self):
        podman("rm", "-f", "-t", "0", self.name, check=False)


def available():
    """None when podman and the image are usable, else why not."""
    try:
        podman("version", "--format", "{{.Client.Version}}", timeout=30)
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as e:
        return f"podman unusable: {e}"
    if podman("image", "exists", IMAGE, check=False).returncode != 0:
        return f"image {IMAGE} not built (tests/container/build_image.sh)"
    return None
