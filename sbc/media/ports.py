"""The pool of RTP/RTCP port pairs the relay binds, taken from the range that ops configure.

RTP uses the even port of a pair and RTCP the odd port just above it (RFC 3550 §11), so the pool
hands out even numbers only. Allocation and release are O(1).

Pairs are handed out at random, not in sequence, so that nobody can guess the ports of the next
call from those of the last (issue 15). A released pair first waits in a quarantine, oldest
first, behind a quarter of the range: a port that just closed is not reused at once, so late
packets of an ended call are unlikely to reach the next one, and a socket that the OS has not
fully closed yet is not rebound. Only when no other pair is free does the oldest quarantined one
go out early. A pair in use is in neither list, so it is never handed out twice.
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Callable

from sbc.interfaces import MediaCapacityError


class PortPoolExhaustedError(MediaCapacityError):
    """No RTP/RTCP port pair can be had: every pair of the range is in use (or will not bind).

    A `MediaCapacityError`: the call layer answers such an offer with 503, as rtpengine users do
    when it runs out of ports.
    """


class PortPool:
    """Even RTP / odd RTCP port pairs from ``low`` to ``high`` inclusive (say 20000 to 29999).

    An odd ``low`` is rounded up, and an even ``high`` leaves its top port unused, so that every
    pair lies wholly inside the range that ops opened in their firewall. ``randbelow`` picks
    among the free pairs (tests may pass a deterministic one).
    """

    def __init__(self, low: int, high: int, randbelow: Callable[[int], int] = secrets.randbelow) -> None:
        if not 1 <= low <= high <= 65535:
            raise ValueError(f"bad media port range {low}-{high}: need 1 <= low <= high <= 65535")
        first = low + (low & 1)
        # Each pair p, p+1 must fit: p <= high - 1.
        self._free: list[int] = list(range(first, high, 2))
        if not self._free:
            raise ValueError(f"media port range {low}-{high} holds no even/odd port pair")
        self.low = low
        self.high = high
        self.capacity = len(self._free)
        # Released pairs wait here, oldest first, until this many have been released after them.
        self.quarantine = max(1, self.capacity // 4)
        self._cooling: deque[int] = deque()
        self._used: set[int] = set()
        self._randbelow = randbelow

    @property
    def available(self) -> int:
        """How many pairs can be allocated now."""
        return len(self._free) + len(self._cooling)

    @property
    def inUse(self) -> int:
        """How many pairs are allocated and not yet released."""
        return len(self._used)

    def allocate(self) -> int:
        """Take a free pair at random and return its even (RTP) port; the RTCP port is one above."""
        free = self._free
        if free:
            index = self._randbelow(len(free))
            port = free[index]
            free[index] = free[-1]  # swap with the last and pop: O(1), order does not matter
            free.pop()
        elif self._cooling:
            port = self._cooling.popleft()
        else:
            raise PortPoolExhaustedError(
                f"all {self.capacity} RTP/RTCP port pairs of {self.low}-{self.high} are in use"
            )
        self._used.add(port)
        return port

    def free(self) -> list[int]:
        """The pairs free now (neither in use nor in quarantine), by RTP port, in no set order:
        what the relay binds idle pairs for at start."""
        return list(self._free)

    def release(self, port: int) -> None:
        """Give back the pair whose RTP port is ``port``; releasing a pair twice is a bug, and raises."""
        try:
            self._used.remove(port)
        except KeyError:
            raise ValueError(f"port {port} is not allocated from this pool") from None
        self._cooling.append(port)
        if len(self._cooling) > self.quarantine:
            self._free.append(self._cooling.popleft())

    def __contains__(self, port: object) -> bool:
        """Whether ``port`` is the RTP port of a pair allocated now."""
        return port in self._used

    def __repr__(self) -> str:
        return f"<PortPool {self.low}-{self.high}: {self.inUse} of {self.capacity} pairs in use>"
