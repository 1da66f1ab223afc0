"""`explain`: what each router of a chain says about a call, for ops (and the routing tests)."""

from __future__ import annotations

from typing import TypeAlias

from twisted.python.failure import Failure

from sbc.interfaces import IRouter
from sbc.routing.chain import RoutingChain, checkedAnswer, raisedAt
from sbc.routing.values import NO_ROUTE, ROUTING_FAILED, CallRequest, Decision
from sbc.waiting import whenReady

# What a router said, as explain reports it.
Answer: TypeAlias = "Decision | Failure | None"


def explain(chain: RoutingChain, call: CallRequest) -> list[str]:
    """What each router of ``chain`` says about ``call``, and which decision the chain takes.

    Every router is asked, even after one has decided, so ops see what a later one would have
    done (marked "not reached"). The last line is the result. Failures are described but not
    logged or counted. A router whose Deferred has not fired yet (none of ours is asynchronous)
    is reported as "no answer yet", and the result line then says the outcome is open.
    """
    lines: list[str] = []
    chosen: str | None = None
    pending = False
    for router in chain.routers:
        # What the router says, once it has said it: a late answer or failure is only dropped.
        answers: list[Answer] = []

        def said(answer: object, router: IRouter = router, answers: list[Answer] = answers) -> None:
            answers.append(checkedAnswer(answer, router))

        try:
            whenReady(router.route(call), said, answers.append)
        except Exception:
            answers.append(Failure())
        if not answers:
            lines.append(f"{router.name}: no answer yet (asynchronous)")
            pending = pending or chosen is None
            continue
        result = answers[0]
        if result is None:
            lines.append(f"{router.name}: pass")
            continue
        if isinstance(result, Failure):
            where = raisedAt(result)
            text = f"failed: {type(result.value).__name__}: {result.getErrorMessage()}"
            text += (f" ({where})" if where else "") + f" -> {ROUTING_FAILED.describe()}"
        else:
            text = result.describe()
        if chosen is None and not pending:
            chosen = f"{router.name}: {text}"
            lines.append(f"{router.name}: {text}  <- chosen")
        else:
            lines.append(f"{router.name}: {text}  (not reached)")
    if pending:
        lines.append("result: open (waiting for an asynchronous router)")
    else:
        lines.append(f"result: {chosen if chosen is not None else f'{chain.name}: {NO_ROUTE.describe()}'}")
    return lines
