"""One SIP OPTIONS over UDP from a chosen source address, for ``sbc-ctl options``.

The SBC answers only sources on a whitelist, so a probe must leave from the address being tried:
``--from 127.0.0.2`` binds that address, where ``sipsak -H`` would only write it into Via. The probe
is a short-lived command, so it uses a plain blocking socket and the codec, with no reactor. It
retransmits as RFC 3261 section 17.1.2.2 says (T1, doubling, capped at T2) until an answer or the
timeout; silence is a result too, since silence is what a stranger gets.
"""

from __future__ import annotations

import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from sbc.addresses import bracket, unbracket
from sbc.sip import URI, Headers, Request, Response, SIPParseError, parseMessage, parseURI

__all__ = ["ProbeError", "ProbeResult", "sendOptions"]

T1 = 0.5
T2 = 4.0


class ProbeError(Exception):
    """The probe could not be sent (a bad URI, an address we cannot bind)."""


@dataclass(frozen=True)
class ProbeResult:
    """What came back: the final response, or None after ``waited`` seconds of silence."""

    response: Response | None
    waited: float


def _parseTarget(target: str) -> URI:
    try:
        uri = parseURI(target)
    except SIPParseError as e:
        raise ProbeError(f"not a SIP URI: {target!r} ({e})") from None
    if uri.scheme != "sip":
        raise ProbeError(f"not a sip: URI: {target!r} (the probe speaks UDP)")
    return uri


def _request(uri: URI, source: tuple[str, int]) -> Request:
    host = bracket(source[0])
    headers = Headers()
    headers.add("Via", f"SIP/2.0/UDP {host}:{source[1]};branch=z9hG4bK{secrets.token_hex(8)};rport")
    headers.add("Max-Forwards", "70")
    headers.add("From", f"<sip:sbc-ctl@{host}>;tag={secrets.token_hex(6)}")
    headers.add("To", f"<{uri}>")
    headers.add("Call-ID", f"{secrets.token_hex(12)}@{host}")
    headers.add("CSeq", "1 OPTIONS")
    headers.add("Contact", f"<sip:sbc-ctl@{host}:{source[1]}>")
    headers.add("Accept", "application/sdp")
    headers.add("User-Agent", "sbc-ctl")
    request = Request("OPTIONS", uri, headers)
    request.setBody(b"")
    return request


def sendOptions(
    target: str,
    source: str = "0.0.0.0",
    timeout: float = 4.0,
    *,
    monotonic: Callable[[], float] = time.monotonic,
) -> ProbeResult:
    """Send OPTIONS to ``target`` (a sip: URI) from ``source`` and wait up to ``timeout`` seconds.

    Provisional answers are skipped; the first final answer to our request is the result.
    """
    uri = _parseTarget(target)
    destination = (unbracket(uri.host), uri.port or 5060)
    family = socket.AF_INET6 if ":" in destination[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((source, 0))
        except OSError as e:
            raise ProbeError(f"cannot send from {source}: {e.strerror}") from None
        request = _request(uri, sock.getsockname()[:2])
        data = request.toBytes()
        callId = request.callId
        start = monotonic()
        deadline = start + timeout
        interval = T1
        nextSend = start
        while True:
            now = monotonic()
            if now >= deadline:
                return ProbeResult(None, now - start)
            if now >= nextSend:
                sock.sendto(data, destination)
                nextSend = now + interval
                interval = min(interval * 2, T2)
            sock.settimeout(max(0.01, min(nextSend, deadline) - now))
            try:
                reply, _ = sock.recvfrom(65535)
            except TimeoutError:
                continue
            except ConnectionRefusedError:
                continue  # ICMP port unreachable: nobody listens yet; keep trying until the timeout
            try:
                message = parseMessage(reply)
            except SIPParseError:
                continue
            if isinstance(message, Response) and message.callId == callId and message.status >= 200:
                return ProbeResult(message, monotonic() - start)
