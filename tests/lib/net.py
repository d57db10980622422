"""Ports and addresses for tests on loopback.

Free ports (one, or the pair P, P+1 a cluster node listens on) and checks for the optional
addresses some tests need (IPv6 loopback, the 127.0.0.2 alias), so that those tests can
skip where the machine lacks them.

Ports come from below the kernel's ephemeral range (ip_local_port_range): a port the
kernel hands out for bind(0) is also one it may hand to the next outgoing connection, and
the trackers under test dial each other all the time, so a port picked that way could be
taken by a connection before the tracker binds it. A process never gets the same port
twice. Another process may still bind a port between this check and the tracker's bind;
with a random pick among some twenty thousand ports, tests accept that.
"""
import random
import socket

_given = set()
_rng = random.SystemRandom()


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_LOW, _HIGH = 10000, max(10002, _ephemeral_low() - 2)


def _bindable(port, kind, family):
    host = "127.0.0.1" if family == socket.AF_INET else "::1"
    try:
        with socket.socket(family, kind) as s:
            s.bind((host, port))
        return True
    except OSError:
        return False


def free_port(kind=socket.SOCK_STREAM, family=socket.AF_INET):
    """A port free for `kind` now, outside the ephemeral range, not given out before."""
    for _ in range(1000):
        p = _rng.randrange(_LOW, _HIGH)
        if p not in _given and _bindable(p, kind, family):
            _given.add(p)
            return p
    raise RuntimeError("no free port")


def free_port_pair():
    """A free TCP port P whose P+1 is free too: a node listens for routers on its cluster
    address P and for its peers (gossip, replication) on P+1."""
    for _ in range(1000):
        p = _rng.randrange(_LOW, _HIGH)
        if {p, p + 1} & _given:
            continue
        if _bindable(p, socket.SOCK_STREAM, socket.AF_INET) and \
                _bindable(p + 1, socket.SOCK_STREAM, socket.AF_INET):
            _given.update((p, p + 1))
            return p
    raise RuntimeError("no free port pair")


def ipv6_loopback_available():
    """True when ::1 (UDP) and :: (TCP) can be bound."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::", 0))
        return True
    except OSError:
        return False


def loopback_alias_available(ip="127.0.0.2"):
    """True when this loopback address can be bound (a second client address)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((ip, 0))
        return True
    except OSError:
        return False
