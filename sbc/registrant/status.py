"""What a registration is doing, as the API, the metrics and the log see it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sbc.interfaces import Address

__all__ = ["RegistrantState", "RegistrantStatus"]


class RegistrantState(StrEnum):
    """One registration's state; `sbc.registrant.client` moves it."""

    IDLE = "idle"  # not started yet
    REGISTERING = "registering"  # a REGISTER (or the registrar's DNS lookup) is under way
    REGISTERED = "registered"  # the registrar took our Contact; a refresh is due before it lapses
    RETRYING = "retrying"  # a transient failure (no answer, 408, 5xx): tried again after a backoff
    FAILED = "failed"  # refused (403, 404, a wrong password): tried again after a long wait
    UNREGISTERING = "unregistering"  # a REGISTER with Expires: 0 is under way (shutdown, reload)
    STOPPED = "stopped"


@dataclass(frozen=True)
class RegistrantStatus:
    """A registration at one moment: times are on the SBC's clock (seconds since the epoch)."""

    name: str
    registrar: str
    aor: str
    state: RegistrantState
    # The last final answer's code and reason, or None and why no answer came (a timeout).
    lastCode: int | None = None
    lastReason: str | None = None
    # When the next REGISTER goes (a refresh or a retry), if one is planned.
    nextAttempt: float | None = None
    # When the registrar's last grant lapses, if it granted one.
    registeredUntil: float | None = None
    # Where the REGISTERs go (the registrar or the outbound proxy, as DNS found it).
    destination: Address | None = None
    # Failed attempts in a row.
    failures: int = 0

    def isUp(self, now: float) -> bool:
        """Whether our Contact is bound at the registrar as far as we know: calls can come in."""
        return (
            self.state is not RegistrantState.FAILED
            and self.registeredUntil is not None
            and self.registeredUntil > now
        )
