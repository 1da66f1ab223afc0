"""The pool of RTP/RTCP port pairs the relay binds, taken from the range that ops configure.

RTP uses the even port of a pair and RTCP the odd port just above it (RFC 3550 §11), so the pool
hands out even numbers only. Allocation and release are O(1). Released pairs go to the back of the
queue: a port that just closed is the last to be reused, so late packets of an ended call are
unlikely to reach the next one, and a socket that the OS has not fully closed yet is not rebound
at once.
"""

from __future__ import annotations

from collections import deque


class PortPoolExhaustedError(Exception):
    """No RTP/RTCP port pair can be had: every pair of the range is in use (or will not bind).

    The call layer answers such an offer with 503, as rtpengine users do when it runs out of ports.
    """


class PortPool:
    """Even RTP / odd RTCP port pairs from ``low`` to ``high`` inclusive (say 20000 to 29999).

    An odd ``low`` is rounded up, and an even ``high`` leaves its top port unused, so that every
    pair lies wholly inside the range that ops opened in their firewall.
    """

    def __init__(self, low: int, high: int) -> None:
        if not 1 <= low <= high <= 65535:
            raise ValueError(f"bad media port range {low}-{high}: need 1 <= low <= high <= 65535")
        first = low + (low & 1)
        # Each pair p, p+1 must fit: p <= high - 1.
        self._free: deque[int] = deque(range(first, high, 2))
        if not self._free:
            raise ValueError(f"media port range {low}-{high} holds no even/odd port pair")
        self.low = low
        self.high = high
        self.capacity = len(self._free)
        self._used: set[int] = set()

    @property
    def available(self) -> int:
        """How many pairs can be allocated now."""
        return len(self._free)

    @property
    def inUse(self) -> int:
        """How many pairs are allocated and not yet released."""
        return len(self._used)

    def allocate(self) -> int:
        """Take a free pair and return its even (RTP) port; the RTCP port is one above."""
        if not self._free:
            raise PortPoolExhaustedError(
                f"all {self.capacity} RTP/RTCP port pairs of {self.low}-{self.high} are in use"
            )
        port = self._free.popleft()
        self._used.add(port)
        return port

    def release(self, port: int) -> None:
        """Give back the pair whose RTP port is ``port``; releasing a pair twice is a bug, and raises."""
        try:
            self._used.remove(port)
        except KeyError:
            raise ValueError(f"port {port} is not allocated from this pool") from None
        self._free.append(port)

    def __contains__(self, port: object) -> bool:
        """Whether ``port`` is the RTP port of a pair allocated now."""
        return port in self._used

    def __repr__(self) -> str:
        return f"<PortPool {self.low}-{self.high}: {self.inUse} of {self.capacity} pairs in use>"
