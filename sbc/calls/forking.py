"""Which callee to try next: the routing decision's targets in order, parallel or sequential forks
to a user's contacts, failover between a trunk's gateways, redirects, and the best answer so far.

A `Forker` holds no call: it answers with values (the next `Attempt`, a `Verdict` on a failed
branch), and the call acts on them.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import replace
from enum import Enum

from sbc.calls.branch import Branch
from sbc.calls.context import Decide
from sbc.calls.legs import Attempt, LegFactory, LegInputs
from sbc.config import Config, Redirect, Trunk
from sbc.dialog import Leg
from sbc.routing import CallRequest, Decision, Target, TrunkTarget
from sbc.sip.errors import SIPParseError
from sbc.sip.message import Request, Response
from sbc.sip.uri import unescape
from sbc.waiting import Maybe

__all__ = ["MAX_REDIRECTS", "Forker", "Verdict", "noAnswerTimeout", "targetTrunks"]

# Redirects followed per call at most (a loop of 3xx must end).
MAX_REDIRECTS = 3


class Verdict(Enum):
    """What a call does about a branch that failed."""

    WAIT = "wait"  # other branches still ring
    NEXT = "next"  # try the next target
    FINAL = "final"  # give A this answer
    GLOBAL = "global"  # a 6xx: cancel every branch, give A this answer
    REDIRECT = "redirect"  # a 3xx: follow it (or fail with 480)


def targetTrunks(targets: tuple[Target, ...], config: Config) -> list[Trunk]:
    """The trunks a decision's targets name, in order, each looked up once (unknown ones left out)."""
    trunks = [config.trunk(t.trunk) for t in targets if isinstance(t, TrunkTarget)]
    return [trunk for trunk in trunks if trunk is not None]


def noAnswerTimeout(trunks: list[Trunk], config: Config) -> float:
    """Timer C: the first target trunk's ``no_answer_timeout``, else ``[calls]``'."""
    return trunks[0].noAnswerTimeout if trunks else config.calls.noAnswerTimeout


class Forker:
    """The targets of one call, the branches placed for them, and the best final answer so far."""

    __slots__ = (
        "attempts",
        "best",
        "bestStatus",
        "bestTrunk",
        "branches",
        "decide",
        "inputs",
        "legs",
        "lookahead",
        "policy",
        "queued",
        "redirects",
        "request",
        "sequential",
    )

    def __init__(
        self,
        legs: LegFactory,
        inputs: LegInputs,
        targets: tuple[Target, ...],
        sequential: bool,
        request: CallRequest,
        policy: Redirect,
        decide: Decide,
    ) -> None:
        self.legs = legs
        # What a 3xx is followed by: the call's routing request, ``[calls] redirect`` and routing.
        self.request = request
        self.policy = policy
        self.decide = decide
        self.inputs = inputs
        self.sequential = sequential
        self.attempts: Iterator[Attempt] = legs.attempts(targets, inputs)
        self.lookahead: Attempt | None = None
        self.queued: list[Attempt] = []  # sequential forking: the rest of a user's contacts
        self.branches: list[Branch] = []
        self.best: Response | None = None
        self.bestStatus = 0
        self.bestTrunk: Trunk | None = None  # the trunk the best answer came from
        self.redirects = 0

    def next(self) -> Attempt | None:
        """The next attempt, or None when none is left. Raises when building its leg fails (the
        targets after it are still there)."""
        if self.queued:
            return self.queued.pop(0)
        if self.lookahead is not None:
            attempt, self.lookahead = self.lookahead, None
            return attempt
        return next(self.attempts, None)

    def more(self) -> bool:
        """Whether anything is left to try after the current attempt (peeks one ahead)."""
        if self.queued or self.lookahead is not None:
            return True
        self.lookahead = next(self.attempts, None)
        return self.lookahead is not None

    def now(self, attempt: Attempt, legs: list[tuple[Leg, Request]]) -> list[tuple[Leg, Request]]:
        """The legs of ``attempt`` to place now: all of them, or (sequential, or a trunk's resolved
        gateways) the first, the rest queued as attempts of their own."""
        if not (self.sequential or attempt.stepwise) or len(legs) < 2:
            return legs
        self.queued.extend(Attempt(attempt.party, attempt.trunk, [leg]) for leg in legs[1:])
        return legs[:1]

    def ringing(self) -> bool:
        """Whether any branch still waits for its final answer."""
        return any(branch.ringing for branch in self.branches)

    def trunkLeft(self, branch: Branch | None) -> str | None:
        """The trunk that ``branch`` (ended) was a leg to, unless another leg to it still rings."""
        name = branch.trunk.name if branch is not None and branch.trunk is not None else None
        ringing = {b.trunk.name for b in self.branches if b.ringing and b.trunk is not None}
        return None if name is None or name in ringing else name

    def failed(self, branch: Branch | None, status: int, response: Response | None) -> Verdict:
        """A branch (or, with None, an attempt that placed none) ended without an answer."""
        if 300 <= status < 400:
            return Verdict.REDIRECT
        if self.best is None or _better(status, self.bestStatus):
            self.best = response
            self.bestStatus = status
            self.bestTrunk = branch.trunk if branch is not None else None
        if status >= 600:
            return Verdict.GLOBAL
        trunk = branch.trunk if branch is not None else None
        retry = status == 408 or status == 480 or (trunk is not None and status in trunk.failoverCodes)
        if trunk is None and branch is not None and status != 408:
            retry = status >= 500 or status == 480
        if self.ringing():
            return Verdict.WAIT
        if self.queued and branch is not None and branch.trunk is None:  # a user's contact
            return Verdict.NEXT  # sequential forking goes on to the next contact whatever the code
        if retry or branch is None:
            return Verdict.NEXT
        return Verdict.FINAL

    def redirect(self, response: Response | None) -> Maybe[Decision] | None:
        """Where a 3xx points, decided as a new request (at once, or later); None when it is not
        to be followed (``redirect = "reject"``, no usable Contact, or too many redirects)."""
        contacts = []
        if response is not None:
            try:
                contacts = [c.uri for c in response.contacts() if c.uri.isSIP and c.uri.user]
            except SIPParseError:
                contacts = []
        if self.policy is not Redirect.FOLLOW or not contacts or self.redirects >= MAX_REDIRECTS:
            return None
        self.redirects += 1
        uri = contacts[0]
        return self.decide(replace(self.request, user=unescape(uri.user or ""), domain=uri.host.lower()))

    def reroute(self, decision: Decision) -> int:
        """A followed redirect's targets go first, before what was left: 0; or the status a
        decision without targets gives."""
        if decision.reject is not None or not decision.targets:
            return decision.reject.status if decision.reject is not None else 404
        rest = [self.lookahead] if self.lookahead is not None else []
        self.lookahead = None
        self.attempts = itertools.chain(
            self.legs.attempts(decision.targets, self.inputs), rest, self.attempts
        )
        return 0

    def cancelAll(self, keep: Branch | None = None) -> None:
        """CANCEL every branch still ringing (but ``keep``)."""
        for branch in self.branches:
            if branch is not keep and branch.ringing:
                branch.cancel()

    def answered(self, branch: Branch) -> None:
        """``branch`` answered: nothing more to try, and every other branch is cancelled."""
        self.stop()
        self.cancelAll(keep=branch)
        self.queued = []
        self.inputs.release()

    def trunkOf(self, response: Response | None) -> Trunk | None:
        """The trunk of the branch a response came on (None for a user's, or none)."""
        if response is not None:
            callId = response.headers.get("call-id")
            for branch in self.branches:
                if branch.leg.callId == callId:
                    return branch.trunk
        return None

    def dialogs(self) -> list[Leg]:
        """The leg of every branch placed."""
        return [branch.leg for branch in self.branches]

    def stop(self) -> None:
        """Nothing more to try: let the targets go, and stop every failover timer."""
        self.attempts, self.lookahead = iter(()), None
        for branch in self.branches:
            branch.stopFailover()


def _better(status: int, best: int) -> bool:
    """RFC 3261 section 16.7: 6xx beats all; otherwise the lowest class, 408 and 5xx last."""
    if best == 0:
        return True

    def rank(code: int) -> tuple[int, int]:
        if code >= 600:
            return (0, code)
        if code == 408 or code >= 500:
            return (3, code)
        return (1 if code < 400 else 2, code)

    return rank(status) < rank(best)
