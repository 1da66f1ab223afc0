"""Checks on a new INVITE before any call exists: who sent it, its body, Accept, Session-Expires and
a device's credentials. Each refusal is answered here; what passes becomes a `CallRequest`."""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

from sbc.access import DEVICES, REGISTRANT, Peer
from sbc.calls.context import Respond
from sbc.config import Config
from sbc.media.bodies import UnreadableBodyError, readBody
from sbc.registrar.authenticator import Authenticator, Outcome
from sbc.routing import CallRequest
from sbc.routing.registrants import calledURI, registrantFor
from sbc.sip.errors import SIPParseError
from sbc.sip.message import Request
from sbc.sip.uri import isDigits, unescape
from sbc.transaction import ServerTransaction

__all__ = ["MIN_SE", "Admitted", "Refresher", "admit", "optionTags", "readable", "sessionExpires"]

# The shortest session interval we accept (RFC 4028 section 5: at least 90 seconds).
MIN_SE = 90
_SDP_TYPES = frozenset({"application/sdp", "application/*", "*/*"})


class Admitted(NamedTuple):
    """A new INVITE that may become a call: its source, what routing gets, A's session timer."""

    peer: Peer
    request: CallRequest
    sessionTimer: tuple[float, Refresher] | None


def admit(
    request: Request,
    transaction: ServerTransaction,
    config: Config,
    authenticator: Authenticator,
    respond: Respond,
) -> Admitted | None:
    """The checks in order; the first that fails answers the INVITE, and None is returned."""
    source = transaction.source
    peer = config.access.classify(source[0])
    if peer is None:
        respond(transaction, 403)
        return None
    if peer.kind == REGISTRANT:  # a registrar: only for a registration of its own (sbc.routing.registrants)
        registrant = registrantFor(config, source[0], request, transaction.transport)
        if registrant is None:
            respond(transaction, 404)
            return None
        peer = Peer(REGISTRANT, registrant.name)
    if not readable(request, transaction, respond):
        return None
    accept = request.headers.getAll("accept")
    if accept and not any(a.split(";")[0].strip().lower() in _SDP_TYPES for a in accept if a):
        # RFC 4475 section 3.3.15: we can only answer with SDP.
        respond(transaction, 406, extra=(("Accept", "application/sdp"), ("Warning", '399 sbc "SDP only"')))
        return None
    try:
        timer = sessionExpires(request)
    except SIPParseError as e:
        respond(transaction, 400, reason=f"Bad Request ({e.reason})")
        return None
    if timer is not None and timer[0] < MIN_SE:
        respond(transaction, 422, extra=(("Min-SE", str(MIN_SE)),))
        return None
    fromAddr = request.fromHeader()
    authenticated: str | None = None
    if peer.kind == DEVICES:
        user, domain = fromAddr.uri.user or "", fromAddr.uri.host.lower()
        if not config.registrar.servesDomain(domain):
            respond(transaction, 403, reason="Not a domain of ours")
            return None
        try:
            verdict = authenticator.check(request, user, domain, source[0], proxy=True)
        except SIPParseError as e:  # unreadable Proxy-Authorization: the sender's error
            respond(transaction, 400, reason=f"Bad Request ({e.reason})")
            return None
        if verdict.outcome is Outcome.FORBIDDEN:
            respond(transaction, 403)
            return None
        if verdict.outcome is not Outcome.OK:
            respond(transaction, 407, extra=authenticator.challenges(domain, verdict, proxy=True))
            return None
        authenticated = verdict.aor
    uri = calledURI(request, peer.kind == REGISTRANT)
    callRequest = CallRequest(
        source=peer,
        fromUser=unescape(fromAddr.uri.user or ""),
        fromDomain=fromAddr.uri.host.lower(),
        user=unescape(uri.user or ""),
        domain=uri.host.lower(),
        authenticatedUser=authenticated,
        headers={
            k: v for k in ("p-asserted-identity", "diversion") if (v := request.headers.get(k)) is not None
        },
    )
    return Admitted(peer, callRequest, timer)


def readable(request: Request, transaction: ServerTransaction, respond: Respond) -> bool:
    """RFC 3261 section 8.2.3: a body we cannot read is refused (415 with Accept, or 400)."""
    try:
        readBody(request)
    except UnreadableBodyError as e:
        reason = f"Bad Request ({e.reason})" if e.status == 400 else None
        respond(transaction, e.status, reason=reason, extra=e.extra)
        return False
    return True


def optionTags(request: Request) -> set[str]:
    """The option tags of Supported and Require (``100rel``, ``timer``), lower case."""
    return {
        t.strip().lower() for h in ("supported", "require") for t in request.headers.getAll(h) if t.strip()
    }


class Refresher(StrEnum):
    """Who refreshes a session (RFC 4028 section 9): the caller's side (uac) or ours (uas)."""

    UAC = "uac"
    UAS = "uas"


def sessionExpires(request: Request) -> tuple[float, Refresher] | None:
    """RFC 4028: the interval and refresher A asked for, or None (raises for a bad value)."""
    value = request.headers.get("session-expires")
    if value is None:
        return None
    delta, _, params = value.partition(";")
    delta = delta.strip()
    if not isDigits(delta):
        raise SIPParseError("bad Session-Expires")
    refresher = Refresher.UAC
    for param in params.split(";"):
        name, _, arg = param.partition("=")
        if name.strip().lower() == "refresher" and arg.strip().lower() in ("uac", "uas"):
            refresher = Refresher(arg.strip().lower())
    return (float(delta), refresher)
