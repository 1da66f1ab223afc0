"""Random identifiers for tags, Call-IDs, branches and call ids.

Each is unguessable (the kernel's CSPRNG, as `secrets` uses), but read in batches: a call takes
half a dozen of them, and one ``getrandom`` system call per identifier showed in profiles.
"""

from __future__ import annotations

import os

_BATCH = 4096  # random octets per read


class _Pool:
    __slots__ = ("hex", "position")

    def __init__(self) -> None:
        self.hex = ""
        self.position = 0


_pool = _Pool()


def randomHex(octets: int) -> str:
    """``octets`` random octets as ``2 * octets`` lower-case hex digits; no two calls share any."""
    pool = _pool
    start = pool.position
    end = start + 2 * octets
    if end > len(pool.hex):
        pool.hex = os.urandom(max(_BATCH, octets)).hex()
        start, end = 0, 2 * octets
    pool.position = end
    return pool.hex[start:end]


def _reseedAfterFork() -> None:
    """A child process must not hand out the identifiers its parent still holds."""
    _pool.hex = ""
    _pool.position = 0


os.register_at_fork(after_in_child=_reseedAfterFork)
