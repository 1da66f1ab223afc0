"""What crosses the SBC from one leg of a call to the other: an allow-list of headers.

Everything not listed stays on its side: Via, Route, Record-Route, Contact, Call-ID, tags,
Server and User-Agent, Warning, and any header we do not know. That is topology hiding by
construction: the other leg's messages are built fresh, and only these are copied across.

Trust is judged per header field by the party it comes from (``fromTrusted``), never by the
party it goes to: an untrusted callee's answer must not carry an identity to a trusted trunk.
A party is trusted when it is a trunk with ``trusted = true``; devices never are.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sbc.sip.errors import SIPParseError
from sbc.sip.headers import Headers, splitList
from sbc.sip.message import REASON_PHRASES

# Headers that describe the session or the caller and reveal nothing of the network.
PASSED = frozenset(
    {
        "accept",
        "accept-language",
        "allow",
        "allow-events",
        "content-disposition",
        "content-encoding",
        "content-language",
        "content-type",
        "event",
        "expires",
        "info-package",
        "min-expires",
        "organization",
        "priority",
        "reason",
        "recv-info",
        "retry-after",
        "subject",
        "require",
        "supported",
        "unsupported",
    }
)

# Only from a trusted party (RFC 3325 trust domain): identities and the call's history. Diversion
# and History-Info say who was called before; from an outsider they are as forgeable as an identity.
TRUSTED_ONLY = frozenset(
    {"p-asserted-identity", "p-preferred-identity", "privacy", "diversion", "history-info"}
)

# The identities RFC 3325 section 5 takes out of a message leaving the trust domain when its
# Privacy asks for "id".
IDENTITIES = frozenset({"p-asserted-identity", "p-preferred-identity"})

# Dropped unless a trunk's ``pass_headers`` names them, and then without address URLs.
#
# Call-Info and Alert-Info carry auto-answer requests (``answer-after=0``,
# ``info=alert-autoanswer``, ``;intercom``, ...): many phones then answer by themselves, which
# lets whoever sent them listen into a room. Every vendor has its own spelling, so stripping the
# parameters we know of would leave the next one open; dropping the headers closes them all, and
# costs only a ring-tone choice or a caller picture. A trunk that needs them (a paging system)
# opts in with ``pass_headers``: that is ops' decision for that trunk, so its values then cross
# as sent, except for URLs whose host is an address, which would show the far side an internal
# host (``<http://10.1.2.3/ring.wav>``).
ALERTING = frozenset({"call-info", "alert-info"})

# Option tags we can honour end to end; others are removed from Supported on the way across.
SUPPORTED_TAGS = frozenset({"replaces", "norefersub", "path", "gruu"})
# Option tags a Require may carry across: those the SBC itself handles on each leg (RFC 3262).
REQUIRED_TAGS = frozenset({"100rel"})


_TAG_LISTS = {"supported": SUPPORTED_TAGS, "require": REQUIRED_TAGS}


def copyHeaders(
    source: Headers,
    target: Headers,
    *,
    fromTrusted: bool = False,
    toTrusted: bool = False,
    extra: Iterable[str] = (),
) -> None:
    """Copy the allowed headers of ``source`` to ``target``, in order.

    ``fromTrusted``: whether the party that sent ``source`` is trusted; ``toTrusted``: whether the
    party ``target`` goes to is. ``extra`` (a trunk's ``pass_headers``) adds headers, but never
    lifts the trust rule for identities, nor lets an address URL through in Call-Info/Alert-Info.
    """
    extraKeys = frozenset(extra)
    private = fromTrusted and not toTrusted and _privacyAsksFor(source, "id")
    for field in source.fields:
        key = field.key
        if key in TRUSTED_ONLY:
            # RFC 3325 section 5: asserted identities come only from inside the trust domain, and
            # leave it (to a device or an untrusted trunk) only when Privacy does not ask for "id".
            if fromTrusted and not (private and key in IDENTITIES):
                target.add(key, field.value)
            continue
        if key in ALERTING:
            if key in extraKeys:
                value = withoutAddressURLs(field.value)
                if value:
                    target.add(key, value)
            continue
        if key not in PASSED and key not in extraKeys:
            continue
        if key in _TAG_LISTS:
            allowed = _TAG_LISTS[key]
            tags = [t.strip() for t in field.value.split(",") if t.strip().lower() in allowed]
            if tags:
                target.add(key, ", ".join(tags))
            continue
        if key == "reason":
            target.add(key, withoutText(field.value))
            continue
        if key == "retry-after":
            delay = retryAfter(field.value)
            if delay is not None:
                target.add(key, delay)
            continue
        target.add(key, field.value)


def standardReason(status: int) -> str:
    """The reason phrase we send for ``status``: the codec's standard one, never a peer's own
    text (``503 gw 10.1.2.3 down`` names an internal host)."""
    return REASON_PHRASES.get(status) or REASON_PHRASES.get(status // 100 * 100, "Unknown")


_DELTA = re.compile(r"\s*([0-9]{1,10})(?![0-9])")
_DURATION = re.compile(r"\s*duration\s*=\s*([0-9]{1,10})\s*$", re.IGNORECASE)


def retryAfter(value: str) -> str | None:
    """A Retry-After (RFC 3261 section 20.33) with only its delta-seconds and ``duration``: a
    peer's comment (``3600 (gw 10.1.2.3 down)``) and other parameters stay behind; None when the
    value has no delta-seconds."""
    match = _DELTA.match(value)
    if match is None:
        return None
    rest = value[match.end() :].lstrip()
    if rest.startswith("("):  # skip the comment: nested parentheses and quoted pairs allowed
        depth, index = 0, 0
        while index < len(rest):
            char = rest[index]
            if char == "\\":
                index += 1
            elif char == "(":
                depth += 1
            elif char == ")":
                depth -= 1
                if depth == 0:
                    break
            index += 1
        rest = rest[index + 1 :]
    result = match.group(1)
    for param in rest.split(";")[1:]:
        duration = _DURATION.match(param)
        if duration is not None:
            result += f";duration={duration.group(1)}"
            break
    return result


def _privacyAsksFor(headers: Headers, value: str) -> bool:
    """Whether a Privacy header lists ``value`` (RFC 3323: ``id;header`` style lists)."""
    return any(
        part.strip().lower() == value
        for field in headers.fields
        if field.key == "privacy"
        for part in field.value.split(";")
    )


_TEXT = re.compile(r';\s*text\s*=\s*("(?:[^"\\]|\\.)*"|[^;,]*)', re.IGNORECASE)


def withoutText(value: str) -> str:
    """A Reason header (RFC 3326) without its ``text`` parameters: the cause code crosses, a
    peer's prose (which can name its hosts) does not."""
    return _TEXT.sub("", value)


def withoutAddressURLs(value: str) -> str:
    """A Call-Info/Alert-Info value without the elements whose URL host is an IP address (or has
    no readable URL at all); "" when nothing is left."""
    try:
        elements = splitList(value)
    except SIPParseError:
        return ""
    kept = [e for e in elements if (host := _urlHost(e)) is not None and not isAddressHost(host)]
    return ", ".join(kept)


def _urlHost(element: str) -> str | None:
    """The host of ``<url>`` at the start of a list element, or None when there is none."""
    if not element.startswith("<"):
        return None
    url, closed, _ = element[1:].partition(">")
    if not closed:
        return None
    scheme, colon, rest = url.partition(":")
    if not colon or not scheme:
        return None
    rest = rest.removeprefix("//")
    authority = re.split(r"[/?;#]", rest, maxsplit=1)[0]
    authority = authority.rpartition("@")[2]
    if authority.startswith("["):
        return authority.partition("]")[0] + "]"
    return authority.partition(":")[0]


_NUMBER = re.compile(r"^(?:[0-9]+|0[xX][0-9a-fA-F]*)$")


def isAddressHost(host: str) -> bool:
    """Whether a URL host is an address, not a name: ``[v6]``, or any host whose last label is a
    number (the WHATWG URL rule, so ``10.1.2.3``, ``167772161`` and ``0xa000001`` all count)."""
    if host.startswith("[") or ":" in host:
        return True
    labels = host.rstrip(".").split(".")
    return bool(_NUMBER.match(labels[-1]))
