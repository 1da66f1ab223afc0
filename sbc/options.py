"""The OPTIONS we send ourselves (RFC 3261 section 11): asking a device or a gateway whether it is there."""

from __future__ import annotations

import secrets

from sbc.addresses import hostport
from sbc.interfaces import ISIPTransport
from sbc.sip.headers import Headers
from sbc.sip.message import Request
from sbc.sip.uri import URI
from sbc.transaction import newBranch


def optionsRequest(uri: URI, to: str, transport: ISIPTransport, serverName: str) -> Request:
    """An out-of-dialog OPTIONS to ``uri`` over ``transport``, from us, with a fresh branch and Call-ID."""
    local = hostport(transport.localAddress)
    return Request(
        "OPTIONS",
        uri,
        Headers.of(
            ("Via", f"SIP/2.0/{transport.name} {local};branch={newBranch()};rport"),
            ("Max-Forwards", "70"),
            ("From", f"<sip:{serverName}@{local}>;tag={secrets.token_hex(6)}"),
            ("To", f"<{to}>"),
            ("Call-ID", secrets.token_hex(12)),
            ("CSeq", "1 OPTIONS"),
            ("User-Agent", serverName),
            ("Content-Length", "0"),
        ),
    )
