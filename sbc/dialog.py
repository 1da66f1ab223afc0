"""One leg of a bridged call: the dialog we hold with one peer (RFC 3261 section 12).

A leg knows how to build requests inside its dialog (CSeq, tags, route set, our Via and
Contact) and where they go: over the peer's own flow (the address and connection its messages
came from, so NATed devices are reached), not to the host its Contact names. A record-routing
peer's route set goes into every request (section 12.2.1.1, loose or strict); the caller decides
whether the first route's address replaces the flow (`Leg.nextHop`).
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace

from sbc.addresses import bracket, hostport, unbracket
from sbc.interfaces import Address, ISIPTransport
from sbc.sip.errors import SIPParseError
from sbc.sip.headers import Headers
from sbc.sip.message import Request, Response
from sbc.sip.structured import Via, parseNameAddr
from sbc.sip.uri import URI
from sbc.tokens import randomHex
from sbc.transaction import newBranch


def newTag() -> str:
    """A From or To tag (RFC 3261 section 19.3): 48 random bits, unique across our dialogs."""
    return randomHex(6)


def newCallId() -> str:
    """A Call-ID for a leg we start (RFC 3261 section 8.1.1.4): 96 random bits, no host name leaked."""
    return randomHex(12)


def ourContact(transport: ISIPTransport, user: str = "sbc") -> str:
    """Our Contact on a leg: our own address only, never the other side's."""
    suffix = "" if transport.name == "UDP" else f";transport={transport.name.lower()}"
    return f"<sip:{user}@{hostport(transport.localAddress)}{suffix}>"


class Leg:
    """Dialog state of one side, seen from the SBC as a user agent."""

    __slots__ = (
        "address",
        "callId",
        "contact",
        "localSeq",
        "localTag",
        "localUri",
        "remoteSeq",
        "remoteTag",
        "remoteTarget",
        "remoteUri",
        "routeSet",
        "transport",
    )

    def __init__(
        self,
        *,
        callId: str,
        localTag: str,
        localUri: str,
        remoteUri: str,
        remoteTarget: URI,
        transport: ISIPTransport,
        address: Address,
        remoteTag: str | None = None,
        localSeq: int = 0,
        remoteSeq: int = 0,
        routeSet: tuple[str, ...] = (),
    ) -> None:
        self.callId = callId
        self.localTag = localTag
        self.remoteTag = remoteTag
        self.localUri = localUri
        self.remoteUri = remoteUri
        self.remoteTarget = remoteTarget
        self.routeSet = routeSet
        self.transport = transport
        self.address = address
        self.localSeq = localSeq
        self.remoteSeq = remoteSeq
        self.contact = ourContact(transport)

    @property
    def key(self) -> tuple[str, str]:
        """How requests from the peer find this leg: their Call-ID and our tag (their To tag)."""
        return (self.callId, self.localTag)

    def request(self, method: str, *, cseq: int | None = None, branch: str | None = None) -> Request:
        """A new request in this dialog; INVITE and most others take the next CSeq."""
        if cseq is None:
            self.localSeq += 1
            cseq = self.localSeq
        to = f"<{self.remoteUri}>" + (f";tag={self.remoteTag}" if self.remoteTag else "")
        headers = Headers.of(
            ("Max-Forwards", "70"),
            ("From", f"<{self.localUri}>;tag={self.localTag}"),
            ("To", to),
            ("Call-ID", self.callId),
            ("CSeq", f"{cseq} {method}"),
        )
        uri = self.remoteTarget
        if self.routeSet:
            uri, routes = self.routing()
            for route in routes:
                headers.add("Route", route)
        if method in ("INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"):
            headers.add("Contact", self.contact)
        headers.add("Content-Length", "0")  # mandatory on streams; setBody keeps it true
        request = Request(method, uri, headers)
        host, port = self.transport.localAddress
        request.setTopVia(
            Via(
                self.transport.name,
                bracket(host),
                port,
                (("branch", branch or newBranch()), ("rport", None)),
            )
        )
        return request

    def routing(self) -> tuple[URI, tuple[str, ...]]:
        """The Request-URI and Route values of a request in this dialog (RFC 3261 12.2.1.1).

        A loose router (``;lr`` on the first route) leaves the remote target in the Request-URI.
        A strict router wants itself there instead, and the remote target last among the routes.
        """
        first = _firstRoute(self.routeSet)
        if first is None or first.param("lr") is not None:
            return self.remoteTarget, self.routeSet
        # Strict: the first route becomes the Request-URI, without what a Request-URI may not
        # carry (the method parameter and URI headers, section 19.1.1 Table 1).
        uri = replace(first, headers=None, params=tuple(p for p in first.params if p[0].lower() != "method"))
        return uri, (*self.routeSet[1:], f"<{self.remoteTarget}>")

    def nextHop(self) -> Address | None:
        """Where a request in this dialog goes by its route set: the first route's IP and port.

        None without a route set, or when the first route names a host rather than an address
        (we resolve no DNS here): the request then goes to `address` as before.
        """
        first = _firstRoute(self.routeSet)
        if first is None:
            return None
        host = first.param("maddr") or first.host
        host = unbracket(host)
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return None
        secure = first.scheme == "sips" or (first.param("transport") or "").lower() == "tls"
        return (host, first.port or (5061 if secure else 5060))

    def learn(self, response: Response) -> None:
        """Take the remote tag, target and route set from a response that makes the dialog.

        As a UAC (section 12.1.2): the route set is the response's Record-Route, reversed; an 18x
        with a tag sets it for the early dialog, and the 2xx sets it again (section 13.2.2.4).
        """
        tag = response.toHeader().tag
        if not tag:
            return  # no dialog made (a 18x without To tag): nothing to learn
        self.remoteTag = tag
        self.refresh(response)
        self.routeSet = tuple(reversed(response.headers.getAll("record-route")))

    def refresh(self, response: Response) -> None:
        """A target refresh (the 2xx of a re-INVITE) changes the remote target, never the route
        set (section 12.2.1.2)."""
        contacts = response.contacts()
        if contacts:
            self.remoteTarget = contacts[0].uri

    def send(self, message: Request | Response) -> None:
        """Send a message of this dialog over the peer's flow, not to the host its Contact names."""
        self.transport.send(message.toBytes(), self.address)


def _firstRoute(routeSet: tuple[str, ...]) -> URI | None:
    """The URI of the first route, or None (none, or one we cannot parse: sent as it is)."""
    if not routeSet:
        return None
    try:
        return parseNameAddr(routeSet[0]).uri
    except SIPParseError:
        return None
