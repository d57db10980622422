"""Starts real synapse-tracker processes on loopback for integration and interop tests.

A process is ready when it prints its `ready` line on stdout (the binary prints
`ready role=<role> http=<port> udp=<port>` once it serves), so tests wait for an event,
not a sleep. Every process is bounded in time and killed when the test ends. The
WebSocket listener is off (`--ws-port 0`) unless a test asks for a port.
"""
import os
import shutil
import select
import socket
import subprocess
import tempfile
import time

from net import free_port

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def _url_host(host):
    return f"[{host}]" if ":" in host else host


def binary_path():
    """The tracker binary under test: $SYNAPSE_BIN, else the default build."""
    path = os.environ.get("SYNAPSE_BIN") or os.path.join(ROOT, "build", "app", "synapse-tracker")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"tracker binary not found at {path}; build first or set SYNAPSE_BIN")
    return path


class TrackerProcess:
    """One tracker process. Use as a context manager; it is stopped on exit."""

    def __init__(self, args=(), role="standalone", http_port=None, udp_port=None,
                 data_dir=None, host="127.0.0.1", ready_timeout=30.0, env=None,
                 stderr_path=None, preexec=None, ws_port=0, wss_port=None, tls_cert=None,
                 tls_key=None):
        """ws_port: the WebSocket (ws://) listener: 0 (the default) turns it off, since
        the built-in default port would collide between tests run in parallel; None
        passes no flag (a --config file or the built-in default decides). wss_port,
        tls_cert, tls_key: --wss-port, --tls-cert, --tls-key when given."""
        self.role = role
        self.host = host
        self.http_port = http_port or free_port()
        self.udp_port = free_port(socket.SOCK_DGRAM) if udp_port is None else udp_port
        self.ws_port = ws_port
        self.wss_port = wss_port
        ws_args = []
        if ws_port is not None:
            ws_args += ["--ws-port", str(ws_port)]
        if wss_port is not None:
            ws_args += ["--wss-port", str(wss_port)]
        if tls_cert is not None:
            ws_args += ["--tls-cert", tls_cert]
        if tls_key is not None:
            ws_args += ["--tls-key", tls_key]
        self._tmp = None
        if data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="synapse-test-")
            data_dir = self._tmp.name
        self.data_dir = data_dir
        self.args = [binary_path(), "--role", role, "--host", host,
                     "--port", str(self.http_port), "--udp-port", str(self.udp_port),
                     "--data-dir", data_dir, *ws_args, *args]
        self.ready_timeout = ready_timeout
        self.env = dict(os.environ, **(env or {}))
        self.proc = None
        self.ready_line = None
        self.stderr_path = stderr_path  # stderr goes there (else it is inherited)
        self.preexec = preexec  # run in the child before exec (e.g. to lower its limits)

    @property
    def base_url(self):
        return f"http://{self.host}:{self.http_port}"

    def ws_url(self, path="/announce"):
        """ws://host:ws_port/announce (the --ws-port given)."""
        return f"ws://{_url_host(self.host)}:{self.ws_port}{path}"

    def wss_url(self, path="/announce"):
        """wss://host:wss_port/announce (the --wss-port given)."""
        return f"wss://{_url_host(self.host)}:{self.wss_port}{path}"

    def start(self):
        err = open(self.stderr_path, "ab") if self.stderr_path else None
        try:
            self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=err,
                                         env=self.env, preexec_fn=self.preexec)
        finally:
            if err:
                err.close()
        self.ready_line = self._wait_ready()
        return self

    def _wait_ready(self):
        deadline = time.monotonic() + self.ready_timeout
        buf = b""
        fd = self.proc.stdout.fileno()
        while time.monotonic() < deadline:
            left = deadline - time.monotonic()
            r, _, _ = select.select([fd], [], [], max(0.0, left))
            if not r:
                break
            chunk = os.read(fd, 4096)
            if not chunk:
                raise RuntimeError(f"tracker exited before ready (rc={self.proc.wait()}): {self.args}")
            buf += chunk
            for line in buf.split(b"\n"):
                if line.startswith(b"ready "):
                    return line.decode()
        self.stop()
        raise RuntimeError(f"tracker not ready within {self.ready_timeout}s: {self.args}")

    def stop(self, sig=None):
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        if sig is None:
            self.proc.terminate()
        else:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            # A process that overstays its stop is a bug: say where each thread waits.
            print(f"{self.role} pid {self.proc.pid} still running 15 s after signal "
                  f"{sig or 'SIGTERM'}; its threads:\n{thread_dump(self.proc.pid)}", flush=True)
            self.proc.kill()
            return self.proc.wait()

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self, sig=None):
        """Stops the process (as stop()), then closes its stdout pipe and removes its
        temporary data directory, even if stopping failed. Returns the exit status."""
        try:
            return self.stop(sig)
        finally:
            if self.proc and self.proc.stdout:
                self.proc.stdout.close()
            if self._tmp:
                self._tmp.cleanup()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        if self._tmp:
            self._tmp.cleanup()



def thread_dump(pid, timeout=20.0):
    """Every thread's stack of a running process, for a failure message about a process
    that stopped answering: gdb's backtraces where gdb is installed, otherwise each
    thread's name, kernel wait channel and current system call from /proc."""
    gdb = shutil.which("gdb")
    if gdb:
        try:
            p = subprocess.run([gdb, "-p", str(pid), "-batch", "-nx", "-ex", "set pagination off",
                                "-ex", "thread apply all bt 25"],
                               capture_output=True, text=True, timeout=timeout)
            lines = [l for l in p.stdout.splitlines() if l.startswith(("#", "Thread"))]
            if lines:
                return "\n".join(lines)
        except (OSError, subprocess.TimeoutExpired) as e:
            return f"gdb failed: {e!r}"
    out = []
    try:
        for tid in sorted(os.listdir(f"/proc/{pid}/task"), key=int):
            def read(name):
                try:
                    with open(f"/proc/{pid}/task/{tid}/{name}") as f:
                        return f.read().strip()
                except OSError as e:
                    return repr(e)
            out.append(f"{tid} {read('comm')} wchan={read('wchan')} syscall={read('syscall')}")
    except OSError as e:
        out.append(repr(e))
    return "\n".join(out)

def shutdown(tracker):
    """Stops a TrackerProcess (SIGTERM, then SIGKILL after a bound), closes its stdout pipe
    and removes its temporary data directory. Returns the exit status."""
    return tracker.close()
