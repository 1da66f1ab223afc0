"""The answers the SBC gives by itself: refusals of broken requests, OPTIONS, 481, and the headers
every answer of ours carries (Allow where RFC 3261 wants it, Server, Content-Length)."""

from __future__ import annotations

from collections.abc import Mapping

from sbc.dialog import newTag
from sbc.droplog import DropLog
from sbc.interfaces import Address, ISIPTransport
from sbc.sip.errors import SIPParseError
from sbc.sip.headers import Headers
from sbc.sip.message import Request, Response, responseTo
from sbc.sip.structured import Via, parseVia
from sbc.transaction import ServerTransaction, responseAddress

# Option tags this SBC supports (RFC 3261 section 20.37): a Require outside them gets 420.
SUPPORTED_OPTIONS: frozenset[str] = frozenset({"100rel", "timer"})
ACCEPT = "application/sdp"


class Answers:
    """Builds and sends our own answers; ``methods`` is the controller's method table (for Allow),
    ``counts`` its metrics counters, ``dropLog`` where unanswerable input is noted."""

    def __init__(
        self, methods: Mapping[str, object], counts: dict[str, int], dropLog: DropLog, serverName: str
    ) -> None:
        self.methods = methods
        self.counts = counts
        self.dropLog = dropLog
        self.serverName = serverName  # the reload's: the controller sets it with the config
        self._allow: str | None = None

    def refuse(
        self, error: SIPParseError, headers: Headers | None, transport: ISIPTransport, source: Address
    ) -> None:
        """Answer a broken request statelessly when we can route the answer; drop it otherwise."""
        if headers is not None:
            via = _routableVia(headers)
            if via is not None:
                self.counts["bad_requests"] += 1
                response = responseTo(headers, error.status, reasonFor(error), toTag=newTag())
                self.finish(response)
                transport.send(response.toBytes(), responseAddress(via, transport, source))
                return
        self.counts["dropped_unanswerable"] += 1
        self.dropLog.drop(error.reason, source)

    def respond(
        self,
        transaction: ServerTransaction,
        status: int,
        *,
        reason: str | None = None,
        extra: tuple[tuple[str, str], ...] = (),
        toTag: str | None = None,
    ) -> None:
        """Answer a request in its server transaction, with our headers."""
        response = responseTo(transaction.request.headers, status, reason, toTag=toTag or newTag())
        for name, value in extra:
            response.headers.add(name, value)
        self.finish(response)
        transaction.respond(response)

    def finish(self, response: Response) -> None:
        """Add what every answer of ours carries: Allow on 405/501 and a 200 without one, Server."""
        headers = response.headers
        if response.status in (405, 501) or (response.status == 200 and "allow" not in headers):
            headers.add("Allow", self.allow())
        headers.add("Server", self.serverName)
        headers.add("Content-Length", "0")

    def allow(self) -> str:
        """The Allow header value: the methods we handle, computed once."""
        allow = self._allow
        if allow is None:
            allow = self._allow = ", ".join(sorted({*self.methods, "ACK"} - {"REFER"}))
        return allow

    def options(self, request: Request, transaction: ServerTransaction) -> None:
        """OPTIONS to us: 200 with what we accept and support (RFC 3261 section 11.2)."""
        self.respond(
            transaction,
            200,
            extra=(("Accept", ACCEPT), ("Supported", ", ".join(sorted(SUPPORTED_OPTIONS)))),
        )

    def outOfDialog(self, request: Request, transaction: ServerTransaction) -> None:
        """A request that only makes sense in a dialog, outside any: 481 (RFC 3261 section 12.2.2)."""
        self.respond(transaction, 481)


def _routableVia(headers: Headers) -> Via | None:
    """The top Via, parsed leniently: a 400 for a broken Via parameter still needs a route."""
    for field in headers.fields:
        if field.key == "via":
            value = field.value.split(",", 1)[0]
            try:
                return parseVia(value)
            except SIPParseError:
                pass
            head, _, params = value.partition(";")
            parts = head.split("/", 2)  # a 505 still needs a route through a SIP/7.0 Via
            try:
                via = parseVia("SIP/2.0/" + parts[2] if len(parts) == 3 else head)
            except SIPParseError:
                return None
            if any(p.strip().lower().startswith("rport") for p in params.split(";")):
                via = via.withParam("rport", None)
            return via
    return None


def reasonFor(error: SIPParseError) -> str | None:
    """A 400 says what was wrong, for the peer's engineer reading a trace."""
    if error.status != 400:
        return None
    return "Bad Request (" + "".join(ch for ch in error.reason if ch.isprintable())[:80] + ")"
