"""
Pick free loopback ports for the processes an interop test starts.

Ports are drawn from L{FIXED_RANGE}, below the kernel's ephemeral range (32768 and up on Linux) and
above the demo's media ports (20000-29999): a port the kernel hands to some process's outgoing socket
(SIPp's, Kamailio's, a probe's) can then never collide with a listener we chose.  We close the socket
again before the child process binds the port, so another test could still take it in between; the
harness restarts the child on fresh ports when its log says so.
"""

from __future__ import annotations

import errno
import random
import socket
from collections.abc import Collection

# Either transport, or both: a SIP listener usually serves UDP and TCP on one port number.
UDP = "udp"
TCP = "tcp"

# Listener ports come from here: not ephemeral, not the demo relay's media range.
FIXED_RANGE = (30000, 32767)
_chance = random.Random()


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
    for _ in range(200):
        candidate = _chance.randint(*FIXED_RANGE)
        if candidate in avoid:
            continue
        held: list[socket.socket] = []
        try:
            for kind in kinds:
                held.append(_bind(kind, host, candidate))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                continue
            raise
        finally:
            for sock in held:
                sock.close()
        return candidate
    raise RuntimeError(f"no port free for {kinds} on {host} in {FIXED_RANGE} after 200 tries")


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
