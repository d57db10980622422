"""Ports and addresses for tests on loopback.

Free ports (one, or the pair P, P+1 a cluster node listens on) and checks for the optional
addresses some tests need (IPv6 loopback, the 127.0.0.2 alias), so that those tests can
skip where the machine lacks them. A port is free when this returns; another process may
still take it before the tracker binds it, which tests accept.
"""
import socket


def free_port(kind=socket.SOCK_STREAM, family=socket.AF_INET):
    """A port the kernel just handed out; free again when this returns."""
    with socket.socket(family, kind) as s:
        s.bind(("127.0.0.1" if family == socket.AF_INET else "::1", 0))
        return s.getsockname()[1]


def free_port_pair():
    """A free TCP port P whose P+1 is free too: a node listens for routers on its cluster
    address P and for its peers (gossip, replication) on P+1."""
    for _ in range(200):
        p = free_port()
        if p >= 65535:
            continue
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", p))
                b.bind(("127.0.0.1", p + 1))
            return p
        except OSError:
            continue
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
