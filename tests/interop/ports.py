"""
Pick free loopback ports for the processes an interop test starts.

The kernel hands out a free port when we bind port 0.  We close the socket again before the child
process binds the port, so another process could take it in between; on a test machine that is rare, and
the harness reports the child's log when its start fails.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Collection

# Either transport, or both: a SIP listener usually serves UDP and TCP on one port number.
UDP = "udp"
TCP = "tcp"


def _bind(kind: str, host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM if kind == UDP else socket.SOCK_STREAM)
    try:
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def freePort(
    host: str = "127.0.0.1", kinds: Collection[str] = (UDP, TCP), avoid: Collection[int] = ()
) -> int:
    """
    Return a port number on C{host} that is free right now for every transport in C{kinds}.

    @param avoid: port numbers not to return, e.g. ones already picked for another listener.
    """
    if not kinds:
        raise ValueError("kinds must name at least one transport")
    kinds = list(kinds)
    for _ in range(100):
        first = _bind(kinds[0], host, 0)
        held = [first]
        try:
            port: int = first.getsockname()[1]
            if port in avoid:
                continue
            try:
                for kind in kinds[1:]:
                    held.append(_bind(kind, host, port))
            except OSError as e:
                if e.errno == errno.EADDRINUSE:
                    continue
                raise
            return port
        finally:
            for sock in held:
                sock.close()
    raise RuntimeError(f"no port free for {kinds} on {host} after 100 tries")


def udpPortBound(host: str, port: int) -> bool:
    """
    Whether some process has bound UDP C{port} on C{host} (or on every address): our bind then fails.
    """
    try:
        sock = _bind(UDP, host, port)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            return True
        raise
    sock.close()
    return False


def tcpPortListening(host: str, port: int, timeout: float = 0.5) -> bool:
    """
    Whether a TCP connection to C{host}:C{port} is accepted; the connection is closed at once.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
