"""How a transaction is named and answered: branches, the matching keys, where responses go."""

from __future__ import annotations

from sbc.interfaces import Address, ISIPTransport
from sbc.sip import MAGIC_COOKIE, Request, Via
from sbc.tokens import randomHex

# A server key is (branch, sent-by, method) for RFC 3261 peers, and
# ("", Call-ID, CSeq number, From tag, sent-by, branch or "", method) for RFC 2543 peers. A client key is
# (branch, method). The method of an ACK's key is INVITE, so the ACK finds its INVITE.
Key = tuple[str, ...]


def newBranch() -> str:
    """A fresh Via branch: the magic cookie and 96 random bits, so it is unique in space and time."""
    return MAGIC_COOKIE + randomHex(12)


def serverKey(request: Request, via: Via, method: str) -> Key:
    """The section 17.2.3 matching key, with ``method`` standing for the request's own."""
    branch = via.branch
    if branch is not None and branch.startswith(MAGIC_COOKIE):
        return (branch, via.sentBy, method)
    # RFC 2543 peer: no usable branch, so identify the request by what it carries.
    return (
        "",
        request.callId,
        str(request.cseq().number),
        request.fromHeader().tag or "",
        via.sentBy,
        branch or "",
        method,
    )


def responseAddress(via: Via, transport: ISIPTransport, source: Address) -> Address:
    """Where responses go (RFC 3261 section 18.2.2, RFC 3581 section 4)."""
    if transport.reliable or via.rport is not None:
        return source
    # The received parameter, when the server stamped one, is the source host itself; a
    # received parameter the peer wrote itself is not to be trusted.
    return (source[0], via.port or 5060)
