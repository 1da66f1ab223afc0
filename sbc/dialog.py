"""One leg of a bridged call: the dialog we hold with one peer (RFC 3261 section 12).

A leg knows how to build requests inside its dialog (CSeq, tags, route set, our Via and
Contact) and where they go: over the peer's own flow (the address and connection its messages
came from, so NATed devices are reached), not to the host its Contact names.
"""

from __future__ import annotations

from sbc.interfaces import Address, ISIPTransport
from sbc.sip.headers import Headers, Via
from sbc.sip.message import Request, Response
from sbc.sip.uri import URI
from sbc.tokens import randomHex
from sbc.transaction import newBranch


def newTag() -> str:
    return randomHex(6)


def newCallId() -> str:
    return randomHex(12)


def hostport(address: Address) -> str:
    host = f"[{address[0]}]" if ":" in address[0] else address[0]
    return f"{host}:{address[1]}"


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
        for route in self.routeSet:
            headers.add("Route", route)
        if method in ("INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"):
            headers.add("Contact", self.contact)
        headers.add("Content-Length", "0")  # mandatory on streams; setBody keeps it true
        request = Request(method, self.remoteTarget, headers)
        host, port = self.transport.localAddress
        request.setTopVia(
            Via(
                self.transport.name,
                f"[{host}]" if ":" in host else host,
                port,
                (("branch", branch or newBranch()), ("rport", None)),
            )
        )
        return request

    def learn(self, response: Response) -> None:
        """Take the remote tag, target and route set from a response that makes the dialog."""
        tag = response.toHeader().tag
        if tag:
            self.remoteTag = tag
        contacts = response.contacts()
        if contacts:
            self.remoteTarget = contacts[0].uri
        routes = response.headers.getAll("record-route")
        if routes:
            self.routeSet = tuple(reversed(routes))

    def send(self, message: Request | Response) -> None:
        self.transport.send(message.toBytes(), self.address)
