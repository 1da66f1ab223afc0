"""Which call a message belongs to: dialogs by (Call-ID, our tag), and calls by their INVITE."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from sbc.dialog import Leg
from sbc.transaction import ServerTransaction

if TYPE_CHECKING:
    from sbc.calls.call import Call

__all__ = ["DialogIndex"]


class DialogIndex:
    """Owns the map from each leg's (Call-ID, local tag) to its call and leg, and from each A-side
    INVITE server transaction to its call. Calls add their legs; the manager looks up and forgets."""

    __slots__ = ("invites", "legs")

    def __init__(self) -> None:
        self.invites: dict[ServerTransaction, Call] = {}
        self.legs: dict[tuple[str, str], tuple[Call, Leg]] = {}

    def __len__(self) -> int:
        """How many calls are indexed (by their INVITE)."""
        return len(self.invites)

    def addCall(self, invite: ServerTransaction, call: Call) -> None:
        """Index a new call by the INVITE that made it."""
        self.invites[invite] = call

    def addLeg(self, call: Call, leg: Leg) -> None:
        """Requests in ``leg``'s dialog now reach ``call``."""
        self.legs[leg.key] = (call, leg)

    def dropLeg(self, leg: Leg) -> None:
        """``leg``'s dialog is gone (its branch failed or was abandoned)."""
        self.legs.pop(leg.key, None)

    def find(self, callId: str, tag: str) -> tuple[Call, Leg] | None:
        """The call and leg of a dialog, by Call-ID and our tag."""
        return self.legs.get((callId, tag))

    def callOf(self, invite: ServerTransaction) -> Call | None:
        """The call an INVITE server transaction made, if any."""
        return self.invites.get(invite)

    def calls(self) -> list[Call]:
        """Every indexed call."""
        return list(self.invites.values())

    def forget(self, invite: ServerTransaction, legs: Iterable[Leg]) -> None:
        """A call has ended: its INVITE and every leg it had leave the index."""
        self.invites.pop(invite, None)
        for leg in legs:
            self.legs.pop(leg.key, None)
