"""What crosses the SBC from one leg of a call to the other: an allow-list of headers.

Everything not listed stays on its side: Via, Route, Record-Route, Contact, Call-ID, tags,
Server and User-Agent, Warning, and any header we do not know. That is topology hiding by
construction: the other leg's messages are built fresh, and only these are copied across.
"""

from __future__ import annotations

from collections.abc import Iterable

from sbc.sip.headers import Headers

# Headers that describe the session or the caller and reveal nothing of the network.
PASSED = frozenset(
    {
        "accept",
        "accept-language",
        "alert-info",
        "allow",
        "allow-events",
        "call-info",
        "content-disposition",
        "content-encoding",
        "content-language",
        "content-type",
        "diversion",
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

# Only between us and trusted trunks (RFC 3325 trust domain).
TRUSTED_ONLY = frozenset(
    {"p-asserted-identity", "p-preferred-identity", "privacy", "diversion", "history-info"}
)

# Option tags we can honour end to end; others are removed from Supported on the way across.
SUPPORTED_TAGS = frozenset({"replaces", "norefersub", "path", "gruu"})
# Option tags a Require may carry across: those the SBC itself handles on each leg (RFC 3262).
REQUIRED_TAGS = frozenset({"100rel"})


_TAG_LISTS = {"supported": SUPPORTED_TAGS, "require": REQUIRED_TAGS}


def copyHeaders(
    source: Headers, target: Headers, *, trusted: bool = False, extra: Iterable[str] = ()
) -> None:
    """Copy the allowed headers of ``source`` to ``target``, in order."""
    extraKeys = frozenset(extra)
    for field in source.fields:
        key = field.key
        if key in PASSED or key in extraKeys or (trusted and key in TRUSTED_ONLY):
            if key in _TAG_LISTS:
                allowed = _TAG_LISTS[key]
                tags = [t.strip() for t in field.value.split(",") if t.strip().lower() in allowed]
                if tags:
                    target.add(key, ", ".join(tags))
                continue
            target.add(key, field.value)
