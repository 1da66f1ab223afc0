"""The REGISTER we send (RFC 3261 section 10.2) and what we read from the registrar's answers."""

from __future__ import annotations

from collections.abc import Iterable

from sbc.addresses import hostport
from sbc.config.registrants import MAX_EXPIRES, Registrant
from sbc.interfaces import ISIPTransport
from sbc.sip.errors import SIPParseError
from sbc.sip.headers import Headers
from sbc.sip.message import Request, Response
from sbc.sip.structured import parseNameAddr
from sbc.sip.uri import URI, isDigits
from sbc.transaction import newBranch

__all__ = ["contactFor", "grantedExpiry", "minExpires", "registerRequest", "retryAfter"]


def contactFor(registrant: Registrant, transport: ISIPTransport, user: str) -> URI:
    """The Contact we register: ``user`` (`sbc.registrant.contact.contactUser`) at our address on
    ``transport``. A sips: registrar or outbound proxy gets a sips: Contact (RFC 3261 section
    8.1.1.8), which says TLS itself: no ``transport`` parameter then."""
    host, port = transport.localAddress
    secure = any(
        uri is not None and uri.scheme == "sips" for uri in (registrant.registrarURI, registrant.proxyURI)
    )
    params: tuple[tuple[str, str | None], ...] = ()
    if transport.name != "UDP" and not secure:
        params = (("transport", transport.name.lower()),)
    scheme = "sips" if secure else "sip"
    contact = parseNameAddr(f"<{scheme}:{user}@{hostport((host, port))}>").uri
    return contact.withParams(params)


def registerRequest(
    registrant: Registrant,
    transport: ISIPTransport,
    *,
    callId: str,
    fromTag: str,
    cseq: int,
    expires: int,
    contact: URI,
    credentials: Iterable[tuple[str, str]] = (),
    userAgent: str = "sbc",
) -> Request:
    """A REGISTER of ``contact`` for ``expires`` seconds (0: remove it), with a fresh branch."""
    uri = registrant.registrarURI
    headers = Headers.of(
        ("Via", f"SIP/2.0/{transport.name} {hostport(transport.localAddress)};branch={newBranch()};rport"),
        ("Max-Forwards", "70"),
    )
    proxy = registrant.proxyURI
    if proxy is not None:
        # A loose route (RFC 3261 section 8.1.2): the proxy passes it on to the Request-URI.
        lr = proxy if proxy.param("lr") is not None else proxy.withParams((*proxy.params, ("lr", None)))
        headers.add("Route", f"<{lr}>")
    headers.add("From", f"<{registrant.aor}>;tag={fromTag}")
    headers.add("To", f"<{registrant.aor}>")
    headers.add("Call-ID", callId)
    headers.add("CSeq", f"{cseq} REGISTER")
    headers.add("Contact", f"<{contact}>")
    headers.add("Expires", str(expires))
    for name, value in credentials:
        headers.add(name, value)
    headers.add("User-Agent", userAgent)
    headers.add("Content-Length", "0")
    return Request("REGISTER", uri, headers)


def grantedExpiry(response: Response, contact: URI, asked: int) -> int:
    """The seconds a 2xx grants our Contact: its ``expires`` there, else Expires, else ``asked``;
    never more than ``asked`` (RFC 3261 section 10.3: a registrar may only shorten it), and a
    value too long to be a number of seconds counts as absent."""
    try:
        contacts = response.contacts()
    except SIPParseError:
        contacts = []
    for item in contacts:
        uri = item.uri
        if (
            uri.user == contact.user
            and uri.host.lower() == contact.host.lower()
            and (uri.port or 5060) == (contact.port or 5060)
        ):
            value = _seconds(item.param("expires"))
            if value is not None:
                return min(value, asked)
    header = _seconds(response.headers.get("expires"))
    return asked if header is None else min(header, asked)


def retryAfter(response: Response) -> int | None:
    """Retry-After's seconds (RFC 3261 section 20.33; a comment or parameters may follow), or None."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    return _seconds(value.split(";", 1)[0].split("(", 1)[0])


def minExpires(response: Response) -> int | None:
    """A 423's Min-Expires (RFC 3261 section 20.23), at most the longest ``expires`` config
    allows; None when absent or not a number."""
    value = _seconds(response.headers.get("min-expires"))
    return None if value is None else min(value, MAX_EXPIRES)


def _seconds(value: str | None) -> int | None:
    """A delta-seconds value of at most 10 digits (int() of a longer one could raise), or None."""
    if value is None:
        return None
    value = value.strip()
    return int(value) if isDigits(value) and len(value) <= 10 else None
