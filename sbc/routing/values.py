"""What routing works with: the `CallRequest` it is asked about and the `Decision` it answers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TypeAlias, cast

from sbc.access import TRUNK, Peer

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class CallRequest:
    """What routing sees of a new INVITE.

    ``user`` is the Request-URI user part, unescaped: the dialled number or name. ``headers``
    holds a few headers for hooks, keyed in lower case; it is made read-only here.
    ``authenticatedUser`` is ``user@domain`` for a device that passed digest authentication.
    """

    source: Peer
    fromUser: str
    fromDomain: str
    user: str
    domain: str
    authenticatedUser: str | None = None
    headers: Mapping[str, str] = field(default_factory=lambda: _EMPTY, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.headers, MappingProxyType) or any(k != k.lower() for k in self.headers):
            headers = {name.lower(): value for name, value in self.headers.items()}
            object.__setattr__(self, "headers", MappingProxyType(headers))

    @property
    def fromTrunk(self) -> bool:
        """True when the call came in from a peer trunk (and not from a device)."""
        return self.source.kind == TRUNK


@dataclass(frozen=True)
class UserTarget:
    """Call a registered user: the B2BUA forks to every binding of ``aor`` (``user@domain``).

    A hook may give a bare user name; `HookRouter` completes it with the caller's domain.
    """

    aor: str

    def describe(self) -> str:
        """``user alice@example.com``, for logs and `explain`."""
        return f"user {self.aor}"


@dataclass(frozen=True)
class TrunkTarget:
    """Call out through trunk ``trunk``, to ``number`` (E.164 with '+', or as normalised)."""

    trunk: str
    number: str

    def describe(self) -> str:
        """``trunk demo +4930...``, for logs and `explain`."""
        return f"trunk {self.trunk} {self.number}"


Target: TypeAlias = UserTarget | TrunkTarget


@dataclass(frozen=True)
class Reject:
    """Refuse the call with a final error response (400 to 699); ``reason`` is the reason phrase."""

    status: int
    reason: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.status, bool) or not isinstance(self.status, int) or not 400 <= self.status <= 699:
            raise ValueError(f"a rejection needs a status from 400 to 699, not {self.status!r}")
        if self.reason is not None and (not isinstance(self.reason, str) or not _isPhrase(self.reason)):
            raise ValueError(f"bad reason phrase {self.reason!r}")

    def describe(self) -> str:
        """``reject 603 Declined``, for logs and `explain`."""
        return f"reject {self.status}" + ("" if self.reason is None else f" {self.reason}")


def _isPhrase(text: str) -> bool:
    """A reason phrase fits on the status line: printable, no CR or LF, not too long."""
    return len(text) <= 128 and text.isprintable()


@dataclass(frozen=True)
class Decision:
    """What a router decided: ``targets`` tried in order (failover), or ``reject``; never both.

    ``router`` names the router that decided (the chain fills it in when a router leaves it empty).
    """

    targets: tuple[Target, ...] = ()
    reject: Reject | None = None
    router: str = ""

    def __post_init__(self) -> None:
        targets: object = self.targets
        if not isinstance(targets, tuple):  # a list is accepted, and kept as a tuple
            object.__setattr__(self, "targets", tuple(cast(Sequence[Target], targets)))
        if (self.reject is None) == (not self.targets):
            raise ValueError("a decision has either targets or a rejection")
        for target in cast(tuple[object, ...], self.targets):  # hooks build these: check at run time
            if not isinstance(target, UserTarget | TrunkTarget):
                raise TypeError(f"not a routing target: {target!r}")

    def describe(self) -> str:
        """One line for logs and `explain`: ``user alice@x, then trunk demo +4930...``."""
        if self.reject is not None:
            return self.reject.describe()
        return ", then ".join(target.describe() for target in self.targets)


NO_ROUTE = Reject(404, "No route")
ROUTING_FAILED = Reject(500, "Routing failed")
