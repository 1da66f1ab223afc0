"""What a UAS checks before it acts on a message (RFC 3261 sections 8.2 and 8.1.3.3).

`parseMessage` only frames; these say whether the headers a transaction needs are there, once.
"""

from __future__ import annotations

from sbc.sip.errors import SIPParseError
from sbc.sip.message import KNOWN_METHODS, SIP_VERSION, Message, Request, Response
from sbc.sip.structured import CSeq
from sbc.sip.uri import isDigits

# Headers that may appear at most once (RFC 3261 section 20, the "c"/"m" columns).
_SINGLE = ("call-id", "cseq", "from", "to", "max-forwards", "content-length", "content-type")
_SINGLE_SET = frozenset(_SINGLE)


def _single(message: Message) -> frozenset[str]:
    """One pass: refuse differing repeats of single-valued headers; return the keys present."""
    seen: dict[str, str] = {}
    for field in message.headers.fields:
        key = field.key
        if key in _SINGLE_SET:
            previous = seen.setdefault(key, field.value)
            if previous != field.value:
                raise SIPParseError(f"more than one {key} header")
    return frozenset(seen)


def validateRequest(request: Request) -> CSeq:
    """Check what a UAS needs (RFC 3261 section 8.2); returns the parsed CSeq."""
    if request.version.upper() != SIP_VERSION:
        raise SIPParseError("SIP version not supported", 505)
    request.topVia()
    present = _single(request)
    for key in ("to", "from", "call-id", "cseq"):
        if key not in present:
            raise SIPParseError(f"missing {key} header")
    cseq = request.cseq()
    if cseq.method != request.method and request.method in KNOWN_METHODS:
        raise SIPParseError("CSeq method does not match the request method")
    request.fromHeader()
    request.toHeader()
    request.contacts()
    maxForwards = request.headers.get("max-forwards")
    if maxForwards is not None and not isDigits(maxForwards):
        raise SIPParseError("bad Max-Forwards")
    return cseq


def validateResponse(response: Response) -> CSeq:
    """Check what a client transaction needs before it matches a response."""
    if response.version.upper() != SIP_VERSION:
        raise SIPParseError("SIP version not supported", 505)
    response.topVia()
    if "call-id" not in response.headers:
        raise SIPParseError("missing Call-ID")
    _single(response)
    return response.cseq()
