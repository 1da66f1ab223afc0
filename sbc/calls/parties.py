"""Who is on each end of a call: the CDR's party labels, and the two ends' trunks for live decisions.

A `Party` is a label (what a CDR says: a trunk by name, a user by AOR). Live decisions (trust,
headers that pass, ISUP, port owners, timers) read the `Trunk` objects a call resolves once, in
`Sides`, never a label's kind followed by a lookup.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sbc.access import REGISTRANT, TRUNK, Peer
from sbc.config import Trunk


class PartyKind(StrEnum):
    """What a party is: a trunk (by name), a user (by AOR), or one of our registrants (by name: a
    call that came through that registration). Compares equal to its text."""

    TRUNK = "trunk"
    USER = "user"
    REGISTRANT = "registrant"


class Side(StrEnum):
    """The two ends of a call: A, the caller we answer; B, the callee we place. The text is the
    media relay's side name (rtpengine tags ``<callId>-A``)."""

    A = "A"
    B = "B"

    @property
    def other(self) -> Side:
        """The opposite end."""
        return Side.B if self is Side.A else Side.A


@dataclass(frozen=True)
class Party:
    """One side of a call as a CDR names it: a trunk (by name), a user (by AOR) or a registrant."""

    kind: PartyKind
    name: str

    def __post_init__(self) -> None:
        if self.kind.__class__ is PartyKind:
            return
        try:
            object.__setattr__(self, "kind", PartyKind(self.kind))
        except ValueError:
            raise ValueError(f"a leg is a trunk, a user or a registrant, not {self.kind!r}") from None

    def toJSON(self) -> dict[str, str]:
        """The CDR's JSON object for this party."""
        return {"kind": self.kind.value, "name": self.name}


def partyOf(peer: Peer, user: str | None = None) -> Party:
    """The caller's party: its trunk or registrant, or the user (authenticated AOR, else the
    peer's name)."""
    if peer.kind == TRUNK:
        return Party(PartyKind.TRUNK, peer.name)
    if peer.kind == REGISTRANT:
        return Party(PartyKind.REGISTRANT, peer.name)
    return Party(PartyKind.USER, user or peer.name)


class Sides:
    """The trunks on the two ends of one call, resolved once: A's (the caller's, if a trunk) and
    B's (the answered or tried callee's, if a trunk). Trust, passed headers and ISUP read them."""

    __slots__ = ("a", "b")

    def __init__(self, a: Trunk | None, b: Trunk | None = None) -> None:
        self.a = a
        self.b = b

    @staticmethod
    def trusted(trunk: Trunk | None) -> bool:
        """Whether a party is inside our trust domain (RFC 3325): a trunk with ``trusted = true``."""
        return trunk is not None and trunk.trusted

    @property
    def passA(self) -> tuple[str, ...]:
        """Extra headers A's trunk passes (``pass_headers``)."""
        return self.a.passHeaders if self.a is not None else ()

    def maxCallLength(self, default: float) -> float:
        """How long the call may last: B's trunk's limit, else A's, else ``default``."""
        trunk = self.b if self.b is not None else self.a
        return trunk.maxCallLength if trunk is not None else default

    def isup(self, b: Trunk | None) -> bool:
        """ISUP parts cross only when both A's and B's ends are trunks with ``pass_isup``.

        Both ends must opt in: the trunk ISUP comes from is trusted to send it (as ``trusted`` is
        for P-Asserted-Identity), and the trunk it goes to wants it. A device never speaks ISUP,
        and ISUP's numbers and circuit details are the operator's, so it never reaches one.
        """
        return self.a is not None and self.a.passIsup and b is not None and b.passIsup
