"""The user part of the Contact a registration registers, and by which its calls are matched.

It is the registrant's name, a dash and 16 hex digits of HMAC-SHA256 keyed with the SBC's state
secret (`sbc.ops.state.loadSecret`): stable across restarts (the secret is kept in the state
directory), readable in a trace, and not guessable from the config name, so that another customer
of a shared provider proxy cannot ring our users by sending ``INVITE sip:NAME@sbc``. The client
(the Contact it registers) and the inbound match (`sbc.routing.registrars`) both call `contactUser`.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["contactUser"]

# Keeps this use of the secret apart from its others (nonces): the same name never gives the
# same digest twice for two purposes.
_LABEL = b"sbc registrant contact\x00"


def contactUser(secret: bytes, name: str) -> str:
    """``NAME-<16 hex>``: registration ``name``'s Contact user under ``secret``."""
    digest = hmac.new(secret, _LABEL + name.encode(), hashlib.sha256).hexdigest()
    return f"{name}-{digest[:16]}"
